//! Control messages: decoding, and the re-encoding of what was accepted.
//!
//! v2 messages are exact: re-encoding gives back the input. Legacy messages
//! are 12 bytes whose unused words (and any bytes after the twelfth) the
//! original ignores: re-encoding gives back the used words, zeros in the
//! unused ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sasyncd_core::ctl::{Ctl, CtlError, LEGACY_LEN, MAX_LEN};

fuzz_target!(|data: &[u8]| {
    let msg = match Ctl::decode(data) {
        Ok(m) => m,
        Err(e) => {
            if data.len() < LEGACY_LEN {
                assert_eq!(e, CtlError::Truncated);
            }
            assert_ne!(e, CtlError::BufferTooSmall);
            return;
        }
    };
    let mut out = [0u8; MAX_LEN];
    let n = msg.encode(&mut out).expect("encode");
    assert_eq!(n, msg.encoded_len());
    let out = &out[..n];
    assert_eq!(Ctl::decode(out), Ok(msg));

    if msg.is_legacy() {
        assert_eq!(n, LEGACY_LEN);
        // Type word plus the data words this type uses.
        let used = 4 * match msg {
            Ctl::State(_) | Ctl::Error(_) => 2,
            Ctl::Ack { .. } => 3,
            _ => 1,
        };
        assert_eq!(out[..used], data[..used]);
        assert!(out[used..].iter().all(|&b| b == 0));
    } else {
        assert_eq!(out, data);
    }

    // A buffer one byte short is refused.
    let mut short = [0u8; MAX_LEN];
    assert_eq!(
        msg.encode(&mut short[..n - 1]),
        Err(CtlError::BufferTooSmall)
    );
});
