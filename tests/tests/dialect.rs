//! A cluster runs one kind of kernel: v2's HELLO names the dialect of the
//! kernel records a node sends, and nodes of different dialects refuse
//! each other at the handshake, each with one clear log line; nodes of one
//! dialect (Linux's too) proceed; an older v2 peer, whose HELLO has 0 in
//! the byte, is taken for OpenBSD.

use sasyncd_core::dialect::KernelDialect;
use sasyncd_core::state::RunState;
use sasyncd_core::wire::v2::{Hello, HELLO_LEN};
use sasyncd_sim::logcap;
use sasyncd_tests::harness::{addr, config, TestWorld, World};
use sasyncd_tests::raw::random_bytes;

fn pair(d0: KernelDialect, d1: KernelDialect) -> World {
    let mut w = TestWorld::new(vec![
        config(0, 2, "mode master"),
        config(1, 2, "mode slave"),
    ]);
    w.nodes[0].dialect = d0;
    w.nodes[1].dialect = d1;
    w.start(0);
    w.start(1);
    w
}

#[test]
fn nodes_of_different_dialects_refuse_each_other_with_one_line_each() {
    logcap::capture(true);
    let mut w = pair(KernelDialect::OpenBsd, KernelDialect::LinuxXfrm);
    // Long enough for several reconnects.
    w.run_for(20_000);
    let lines = logcap::take();
    logcap::capture(false);
    for (i, other) in [(0, 1), (1, 0)] {
        let p = w.peers(i);
        assert!(!p[0].connected, "node {i} has no session");
        assert_eq!(p[0].stats.sessions, 0, "node {i}");
        // Counted as a protocol error and remembered as the mismatch (the
        // last error may be the other side's close racing ours).
        assert!(p[0].stats.errors.protocol >= 1, "node {i}");
        assert_eq!(
            p[0].stats.other_protocol,
            Some("other kernel dialect"),
            "node {i}"
        );
        let want = format!(
            "peer {}: closing connection: peer runs another kernel",
            addr(other)
        );
        let said: Vec<_> = lines
            .iter()
            .filter(|(l, s)| matches!(l.as_str(), "WARN" | "ERROR") && s.starts_with(&want))
            .collect();
        assert_eq!(said.len(), 1, "node {i} says it once: {lines:#?}");
        assert!(
            said[0].1.contains("Linux XFRM") && said[0].1.contains("OpenBSD PF_KEY"),
            "{said:?}"
        );
    }
}

#[test]
fn nodes_of_one_dialect_proceed() {
    for d in [KernelDialect::OpenBsd, KernelDialect::LinuxXfrm] {
        let mut w = pair(d, d);
        w.run_for(3000);
        let (p0, p1) = (w.peers(0), w.peers(1));
        assert!(p0[0].connected && p1[0].connected, "{d}");
        assert_eq!(p1[0].state, Some(RunState::Master), "{d}");
    }
}

#[test]
fn an_older_v2_hello_is_openbsd() {
    // What a v2 node from before the dialect byte sent: byte 83 reserved
    // and zero.
    let mut old = [0u8; HELLO_LEN];
    old[..8].copy_from_slice(&[0x53, 0x41, 0x53, 0x59, 2, 1, 0, 84]);
    old[8..].copy_from_slice(&random_bytes(HELLO_LEN - 8));
    old[80] = 1; // SLAVE
    old[81] = 1; // little-endian
    old[82] = 8;
    old[83] = 0;
    let h = Hello::decode(&old).expect("an older HELLO decodes");
    assert_eq!(h.dialect, KernelDialect::OpenBsd);
    // And this node, OpenBSD by default, says so in the same byte.
    let mut buf = [0u8; HELLO_LEN];
    h.encode(&mut buf).unwrap();
    assert_eq!(buf, old);
}
