//! What a status tool shows (`Node::stats`, `Node::peers`), checked end to
//! end on whole nodes: sessions, snapshots, positions, errors by cause,
//! the node's carp, demotion, IKE and ring state.

use std::time::Duration;

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::{ErrorKind, Event, IkeMode, Node, SessionPhase, Settings};
use sasyncd_core::state::{Position, RunState};
use sasyncd_core::time::Instant;
use sasyncd_sim::rng::Rng;
use sasyncd_sim::world::SimRandom;
use sasyncd_tests::harness::{addr, config, HNode, TestWorld, World, BACKUP};
use sasyncd_tests::msgs::{esp_add, ip, ip4};

const BOTH: [&str; 2] = ["v2", "legacy"];

/// Master 0 with five SAs, then slave 1 starts and takes its snapshot.
fn snapshot_pair(proto: &str) -> World {
    let mut w = TestWorld::new(vec![
        config(0, 2, &format!("mode master\nprotocol {proto}")),
        config(1, 2, &format!("mode slave\nprotocol {proto}")),
    ]);
    w.crash(1);
    w.run_for(100);
    for k in 0..5 {
        let spi = w.next_spi();
        let m = esp_add(spi, ip("192.0.2.1"), ip4(0xc633_6400 + k));
        w.lan.hosts[0].kernel.manual_write(&m).unwrap();
    }
    w.start(1);
    w.run_for(5000);
    assert!(w.synced(0, 1), "{proto}");
    w
}

#[test]
fn a_snapshot_shows_on_both_sides() {
    for proto in BOTH {
        let mut w = snapshot_pair(proto);
        let slave = w.peers(1)[0];
        assert_eq!(slave.phase, SessionPhase::Up, "{proto}");
        assert!(slave.connected, "{proto}");
        assert_eq!(slave.phase_since, slave.stats.up_since, "{proto}");
        assert_eq!(slave.stats.snapshots_received, 1, "{proto}");
        assert!(slave.stats.last_snapshot_received.is_some(), "{proto}");
        assert_eq!(slave.stats.receiving_snapshot_since, None, "{proto}");
        assert_eq!(
            (slave.stats.sessions, slave.stats.reconnects),
            (1, 0),
            "{proto}"
        );
        assert!(slave.stats.frames_in >= 6, "{proto}: five SAs and more");
        assert!(
            slave.stats.bytes_in > 0 && slave.stats.bytes_out > 0,
            "{proto}"
        );
        let master = w.peers(0)[0];
        assert_eq!(master.stats.snapshots_sent, 1, "{proto}");
        assert!(master.stats.last_snapshot_sent.is_some(), "{proto}");
        assert_eq!(master.stats.sending_snapshot_since, None, "{proto}");
        assert!(master.stats.frames_out >= 6, "{proto}");
        assert!(
            master.stats.bytes_out >= slave.stats.bytes_in / 2,
            "{proto}"
        );
        assert_eq!(
            master.stats.last_error.map(|e| e.kind),
            Some(ErrorKind::Io),
            "{proto}: the slave's process was down before"
        );
        assert_eq!(
            master.stats.errors.total(),
            master.stats.errors.io,
            "{proto}"
        );
        assert_eq!(slave.stats.errors.total(), 0, "{proto}");
        if proto == "legacy" {
            // Counted from the session's start: the feed waits 2 s.
            let d = slave.stats.last_snapshot_received.unwrap();
            assert!(d >= Duration::from_secs(2), "{proto}: {d:?}");
        }
    }
}

#[test]
fn positions_acks_and_lag() {
    let mut w = snapshot_pair("v2");
    // The operator's five writes went through the master's ring too.
    let start = w.stats(0).position.seq;
    assert_eq!(start, 5);
    for k in 0..3 {
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip4(0xc633_6500 + k)));
    }
    w.run_for(500);
    assert!(w.synced(0, 1));
    let head = w.stats(0).position;
    assert_eq!(head.seq, start + 3);
    let slave = w.peers(1)[0].stats;
    assert_eq!(slave.applied, head, "the slave applied up to the head");
    assert_eq!(slave.acked_to, head, "and said so");
    assert_eq!(w.stats(1).position, head);
    let master = w.peers(0)[0].stats;
    assert_eq!(master.acked_by, head, "the master heard it");
    assert_eq!(master.lag, 0, "an in-sync slave lags 0");
    let r = w.stats(0).ring;
    assert_eq!(r.records, 8);
    assert!(r.bytes > 8 * 100 && r.bytes <= r.capacity);
    assert_eq!(r.capacity, 8192);
    // With the slave's kernel stalled it stops reading, and the master
    // sees it fall behind.
    w.lan.hosts[1].stall = true;
    for k in 0..300 {
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip4(0xcb00_7100 + k)));
        w.settle();
    }
    assert!(w.peers(0)[0].stats.lag > 0);
    w.lan.hosts[1].stall = false;
    w.run_for(1000);
    assert!(w.synced(0, 1));
    assert_eq!(w.peers(0)[0].stats.lag, 0, "caught up");
}

#[test]
fn node_state_for_the_status_tool() {
    let mut w = snapshot_pair("v2");
    let m = w.stats(0);
    let s = w.stats(1);
    assert_eq!(
        (m.run_state, s.run_state),
        (RunState::Master, RunState::Slave)
    );
    assert_eq!(m.link_state, None, "locked: carp is not read");
    assert_eq!(
        (m.ike_requested, m.ike_confirmed),
        (Some(IkeMode::Active), Some(IkeMode::Active))
    );
    assert_eq!(
        (s.ike_requested, s.ike_confirmed),
        (Some(IkeMode::Passive), Some(IkeMode::Passive))
    );
    assert!(!s.demote_held);
    assert_eq!(s.demote_deadline, None, "released after the snapshot");
    assert_eq!(m.ring.records, 5, "the operator's writes were forwarded");

    // A tracking node: its carp reading, when its state began, and the
    // demotion it holds while waiting for a peer that never answers.
    let mut w = TestWorld::new(vec![config(0, 2, "")]);
    w.run_for(5000);
    let s = w.stats(0);
    assert_eq!(s.link_state, Some(BACKUP));
    assert_eq!(s.run_state, RunState::Slave);
    assert_eq!(s.run_state_since, Instant::from_millis(1000));
    assert!(s.demote_held);
    assert_eq!(s.demote_deadline, Some(Instant::from_millis(61_000)));
    let p = w.peers(0)[0];
    assert_eq!(p.addr, addr(1));
    assert_eq!(p.phase, SessionPhase::Down, "nobody there");
    assert!(p.phase_since.is_some());
    assert!(p.stats.errors.io > 0);
    let e = p.stats.last_error.expect("a last error");
    assert_eq!((e.kind, e.reason), (ErrorKind::Io, "connect failed"));
    w.run_for(60_000);
    assert_eq!(w.stats(0).demote_deadline, None);
}

#[test]
fn a_wrong_key_shows_as_wrong_key() {
    let mut w = TestWorld::new(vec![
        config(0, 2, "mode master"),
        format!("peer {}\nsharedkey different-key-16\nmode slave\n", addr(0)).into_bytes(),
    ]);
    w.run_for(3000);
    let mut last = Vec::new();
    for i in 0..2 {
        let p = w.peers(i)[0];
        assert_ne!(p.phase, SessionPhase::Up, "node {i}");
        assert!(
            p.stats.errors.wrong_key > 0,
            "node {i}: {:?}",
            p.stats.errors
        );
        assert_eq!(p.stats.errors.auth, 0, "node {i}: not a forged frame");
        assert_eq!(p.stats.sessions, 0, "node {i}");
        last.push(p.stats.last_error.expect("an error").kind);
    }
    // The side that checks the other's confirmation first hangs up; the
    // other may only see its connection closed during the handshake.
    assert!(last.contains(&ErrorKind::WrongKey), "{last:?}");
}

#[test]
fn reconnects_count_sessions_after_the_first() {
    for proto in BOTH {
        let mut w = snapshot_pair(proto);
        w.cut(0, 1);
        w.run_for(5000);
        for i in 0..2 {
            let p = w.peers(i)[0];
            assert_eq!(p.phase, SessionPhase::Up, "{proto}");
            assert_eq!(
                (p.stats.sessions, p.stats.reconnects),
                (2, 1),
                "{proto}: node {i}"
            );
            assert_eq!(
                p.stats.last_error.map(|e| (e.kind, e.reason)),
                Some((ErrorKind::Io, "connection closed")),
                "{proto}: node {i}"
            );
        }
        if proto == "v2" {
            // Resumed from the ring: no second snapshot.
            assert_eq!(w.peers(1)[0].stats.snapshots_received, 1, "{proto}");
        }
    }
}

/// A node on its own, stepped by hand: its peer goes from connecting to
/// handshake to down, each with its time.
#[test]
fn phases_step_by_step() {
    let cfg = Config::parse(&config(0, 2, "")).unwrap();
    let t0 = Instant::from_millis(1000);
    let mut n: HNode<4096> = Node::new(
        &cfg,
        Settings::new([1; 16], 7, 100),
        SoftCrypto,
        SimRandom(Rng::new(7)),
        sasyncd_core::node::FixedMarks::new(),
        sasyncd_tests::harness::storage(8192),
        t0,
    )
    .unwrap();
    let p = n.peers().next().unwrap();
    assert_eq!(
        (p.phase, p.phase_since),
        (SessionPhase::Connecting, Some(t0))
    );
    let conn = std::iter::from_fn(|| n.poll_event())
        .find_map(|e| match e {
            Event::Connect { conn, .. } => Some(conn),
            _ => None,
        })
        .expect("dials its peer");
    let t1 = Instant::from_millis(1500);
    n.handle_connected(t1, conn);
    let p = n.peers().next().unwrap();
    assert_eq!(
        (p.phase, p.phase_since),
        (SessionPhase::Handshake, Some(t1))
    );
    assert_eq!(p.stats.frames_out, 1, "our HELLO");
    let t2 = Instant::from_millis(2000);
    n.handle_closed(t2, conn);
    let p = n.peers().next().unwrap();
    assert_eq!((p.phase, p.phase_since), (SessionPhase::Down, Some(t2)));
    assert_eq!(p.stats.applied, Position::NONE);
}

/// A legacy node facing a v2 node's HELLO says what the peer speaks (it
/// used to see only "frame length out of range"), and keeps saying it as
/// reconnects repeat; the v2 node never gets a session either.
#[test]
fn a_legacy_node_names_a_v2_peer() {
    use sasyncd_core::node::PEER_SPEAKS_V2;
    for (legacy, v2) in [(0, 1), (1, 0)] {
        let mut configs = vec![
            config(0, 2, "mode master\nprotocol v2"),
            config(1, 2, "mode slave\nprotocol v2"),
        ];
        configs[legacy] = config(
            legacy,
            2,
            &format!("mode {}\nprotocol legacy", ["master", "slave"][legacy]),
        );
        let mut w = TestWorld::new(configs);
        w.run_for(10_000);
        let p = w.peers(legacy)[0];
        assert!(
            p.stats.errors.protocol > 1,
            "node {legacy}: {:?}",
            p.stats.errors
        );
        let last = p.stats.last_error.expect("an error");
        assert_eq!(
            (last.kind, last.reason),
            (ErrorKind::Protocol, PEER_SPEAKS_V2)
        );
        assert_eq!(w.peers(v2)[0].stats.sessions, 0, "node {v2}");
    }
}
