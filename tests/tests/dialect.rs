//! A cluster runs one kind of kernel: v2's HELLO names the dialect of the
//! kernel records a node sends, and nodes of different dialects refuse
//! each other at the handshake, each with one clear log line; nodes of one
//! dialect (Linux's too) proceed; an older v2 peer, whose HELLO has 0 in
//! the byte, is taken for OpenBSD.

use sasyncd_core::dialect::{Dialect, KernelDialect, OpenBsd};
use sasyncd_core::state::{Position, RunState};
use sasyncd_core::wire::v2::{ArchTag, Hello, HELLO_LEN};
use sasyncd_core::xfrm::Xfrm;
use sasyncd_sim::logcap;
use sasyncd_tests::harness::{addr, config, World};
use sasyncd_tests::raw::random_bytes;

// The harness's kernels are OpenBSD's; these tests keep the tables empty,
// so nodes of the XFRM dialect only shake hands there (the XFRM swarm,
// `sasyncd-sim --kernel xfrm`, runs them over Linux's).

fn pair<D: Dialect + Default>() -> World<8192, 4096, D> {
    World::new(vec![
        config(0, 2, "mode master"),
        config(1, 2, "mode slave"),
    ])
}

/// Node 0 (of dialect `D`) is offered a session by a peer that sends
/// another kernel's records (`theirs`): it says so in one line, counts it,
/// and closes.
fn refuses<D: Dialect + Default>(theirs: KernelDialect) {
    logcap::capture(true);
    let mut w = pair::<D>();
    // Node 1 is replaced by a scripted peer at its address.
    w.crash(1);
    w.run_for(100);
    let x = w.ext_connect(0, addr(1)).expect("a configured peer");
    w.settle();
    let hello = Hello::decode(&w.ext_take(x)).expect("the node's HELLO");
    assert_eq!(hello.dialect, D::ID, "the HELLO names the node's dialect");
    let ours = Hello {
        node_id: [0; 16],
        boot_epoch: 7,
        nonce: random_bytes(32).try_into().unwrap(),
        run_state: RunState::Slave,
        resume: Position::NONE,
        arch: ArchTag::host(),
        dialect: theirs,
    };
    let mut buf = [0u8; HELLO_LEN];
    let n = ours.encode(&mut buf).unwrap();
    w.ext_send(x, &buf[..n]);
    w.run_for(500);
    let lines = logcap::take();
    logcap::capture(false);
    assert!(!w.lan.ext[x].open, "the node closed the connection");
    let p = w.peers(0);
    assert_eq!(p[0].stats.sessions, 0);
    assert!(p[0].stats.errors.protocol >= 1);
    assert_eq!(p[0].stats.other_protocol, Some("other kernel dialect"));
    let want = format!(
        "peer {}: closing connection: peer runs another kernel",
        addr(1)
    );
    let said: Vec<_> = lines
        .iter()
        .filter(|(l, s)| matches!(l.as_str(), "WARN" | "ERROR") && s.starts_with(&want))
        .collect();
    assert_eq!(said.len(), 1, "said once: {lines:#?}");
    assert!(
        said[0].1.contains(D::ID.name()) && said[0].1.contains(theirs.name()),
        "{said:?}"
    );
}

#[test]
fn nodes_of_different_dialects_refuse_each_other_with_one_line_each() {
    refuses::<OpenBsd>(KernelDialect::LinuxXfrm);
    refuses::<Xfrm>(KernelDialect::OpenBsd);
}

fn proceeds<D: Dialect + Default>() {
    let mut w = pair::<D>();
    w.run_for(3000);
    let (p0, p1) = (w.peers(0), w.peers(1));
    assert!(p0[0].connected && p1[0].connected, "{}", D::ID);
    assert_eq!(p1[0].state, Some(RunState::Master), "{}", D::ID);
}

#[test]
fn nodes_of_one_dialect_proceed() {
    proceeds::<OpenBsd>();
    proceeds::<Xfrm>();
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

/// The original's protocol carries OpenBSD PF_KEY records: a node of
/// another kernel refuses it, at the configuration check (`sasyncd -n`,
/// start-up) and on a reload, where it runs on as before.
#[test]
fn the_legacy_protocol_is_openbsds_only() {
    use sasyncd_core::config::Config;
    use sasyncd_core::crypto::SoftCrypto;
    use sasyncd_core::node::NodeError;
    use sasyncd_tests::harness::HNode;
    let legacy = Config::parse(&config(0, 2, "mode master\nprotocol legacy")).unwrap();
    assert_eq!(
        HNode::<4096, Xfrm>::check_config(&legacy, &SoftCrypto, 4),
        Err(NodeError::LegacyDialect)
    );
    assert_eq!(
        HNode::<4096, OpenBsd>::check_config(&legacy, &SoftCrypto, 4),
        Ok(())
    );
    let mut w = pair::<Xfrm>();
    w.run_for(3000);
    let r = w.reconfigure(0, config(0, 2, "mode master\nprotocol legacy"));
    assert_eq!(r.err(), Some(NodeError::LegacyDialect));
    w.run_for(3000);
    assert!(w.peers(0)[0].connected, "the v2 session runs on");
    let mut w = pair::<OpenBsd>();
    assert!(w
        .reconfigure(0, config(0, 2, "mode master\nprotocol legacy"))
        .is_ok());
}
