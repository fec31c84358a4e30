//! sasyncd.conf parsing: never panics, and what it accepts is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sasyncd_core::config::{Config, MAX_PEERS};

fuzz_target!(|data: &[u8]| {
    match Config::parse(data) {
        Ok(c) => {
            assert!(matches!(c.sharedkey.as_bytes().len(), 16 | 24 | 32));
            assert!(c.interface.is_some() || c.locked.is_some());
            assert!(c.peers.len() <= MAX_PEERS);
            for (i, p) in c.peers.iter().enumerate() {
                assert_ne!(p.port, Some(0));
                for q in &c.peers[..i] {
                    // No peer twice.
                    assert!(p.addr.is_none() || p.addr != q.addr);
                    assert!(!p.name.eq_ignore_ascii_case(&q.name));
                }
            }
            let _ = format!("{c:?}");
            // Parsing is a function of the text.
            let again = Config::parse(data).expect("same text parses again");
            assert_eq!(format!("{again:?}"), format!("{c:?}"));
        }
        Err(e) => {
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(e.line as usize <= lines, "error line {} of {lines}", e.line);
            let text = format!("{}", e.display_with("sasyncd.conf"));
            assert!(text.starts_with("sasyncd.conf"));
            assert!(!text.contains('\n'));
        }
    }
});
