//! Behaviour of whole nodes talking to each other, on simulated OpenBSD
//! kernels fed real PF_KEY bytes (see `sasyncd_tests::harness`).
//!
//! Each test names the behaviour it checks; most run under both the v2
//! protocol and the OpenBSD-compatible legacy one.

use sasyncd_core::node::IkeMode;
use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::Msg;
use sasyncd_core::state::RunState;
use sasyncd_tests::harness::{addr, config, TestWorld, World, BACKUP, MASTER};
use sasyncd_tests::msgs::{esp_add, esp_delete, flow, ip, ip4};

const BOTH: [&str; 2] = ["v2", "legacy"];

/// Master 0 and slave 1, locked.
fn pair(proto: &str) -> World {
    TestWorld::new(vec![
        config(0, 2, &format!("mode master\nprotocol {proto}")),
        config(1, 2, &format!("mode slave\nprotocol {proto}")),
    ])
}

/// `n` nodes tracking carp.
fn tracking(n: usize, proto: &str) -> World {
    TestWorld::new(
        (0..n)
            .map(|i| config(i, n, &format!("protocol {proto}")))
            .collect(),
    )
}

fn add_some(w: &mut World, node: usize, n: u32, net: u32) {
    for k in 0..n {
        let spi = w.next_spi();
        w.ike_write(node, &esp_add(spi, ip("192.0.2.1"), ip4(net + k)));
    }
}

#[test]
fn locked_roles_connect_and_announce() {
    for proto in BOTH {
        let mut w = pair(proto);
        w.run_for(3000);
        assert!(w.promisc(0), "{proto}: master turned promiscuous mode on");
        assert!(!w.promisc(1));
        assert_eq!(w.lan.hosts[0].ike, Some(IkeMode::Active));
        assert_eq!(w.lan.hosts[1].ike, Some(IkeMode::Passive));
        let p0 = w.peers(0);
        let p1 = w.peers(1);
        assert!(p0[0].connected && p1[0].connected, "{proto}");
        assert_eq!(p0[0].state, Some(RunState::Slave), "{proto}");
        assert_eq!(p1[0].state, Some(RunState::Master), "{proto}");
        // The slave's demotion is gone once the (empty) snapshot arrived.
        assert_eq!(
            w.lan.hosts[1].demoted, 1,
            "{proto}: raised once, released once"
        );
        assert!(!w.stats(1).demote_held, "{proto}");
    }
}

#[test]
fn snapshot_then_live_deltas() {
    for proto in BOTH {
        let mut w = pair(proto);
        // The master has state before the slave exists.
        w.crash(1);
        w.run_for(100);
        for k in 0..5 {
            let spi = w.next_spi();
            let m = esp_add(spi, ip("192.0.2.1"), ip(&format!("198.51.100.{k}")));
            w.lan.hosts[0].kernel.manual_write(&m).unwrap();
        }
        let f = flow(ip("192.0.2.0"), ip("198.51.100.0"));
        w.lan.hosts[0].kernel.manual_write(&f).unwrap();
        w.start(1);
        w.run_for(5000);
        assert_eq!(w.lan.hosts[1].kernel.sa_count(), 5, "{proto}: snapshot SAs");
        assert!(
            w.synced(0, 1),
            "{proto}: slave equals master after the snapshot"
        );
        // Live changes.
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("203.0.113.9")));
        w.ike_write(0, &esp_delete(0x1001, ip("192.0.2.1"), ip("198.51.100.0")));
        w.ike_write(0, &flow(ip("192.0.2.7"), ip("203.0.113.0")));
        w.run_for(1000);
        assert_eq!(w.lan.hosts[1].kernel.sa_count(), 5, "{proto}");
        assert_eq!(w.lan.hosts[1].kernel.flow_count(), 2, "{proto}");
        assert!(w.synced(0, 1), "{proto}: live deltas applied");
        assert!(
            w.lan.hosts[1].refused.is_empty(),
            "{proto}: {:?}",
            w.lan.hosts[1].refused
        );
    }
}

#[test]
fn slave_pid_and_seq_are_its_own() {
    for proto in BOTH {
        let mut w = pair(proto);
        w.run_for(2000);
        let before = w.lan.hosts[1].written.len();
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
        w.run_for(500);
        assert_eq!(w.lan.hosts[1].kernel.sa_count(), 1, "{proto}");
        let m = w.lan.hosts[1].written.last().unwrap().clone();
        let m = Msg::parse(&m).unwrap();
        assert_eq!(m.msg_type(), SADB_ADD);
        assert_eq!(
            m.pid(),
            w.lan.hosts[1].pid,
            "{proto}: written with the slave's pid"
        );
        // Its own counter (the IKE daemon's seq was different, and the
        // legacy snapshot's FLUSH took 1).
        assert_eq!(m.seq() as usize, before + 1, "{proto}: the slave's own seq");
    }
}

#[test]
fn wrong_key_is_refused_and_nothing_applied() {
    let mut w = TestWorld::new(vec![
        config(0, 2, "mode master"),
        format!("peer {}\nsharedkey different-key-16\nmode slave\n", addr(0)).into_bytes(),
    ]);
    w.run_for(3000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(3000);
    assert_eq!(w.lan.hosts[1].kernel.sa_count(), 0);
    let p = w.peers(1);
    assert!(!p[0].connected);
    // The acceptor sees the bad CONFIRM on a connection anyone could have
    // made from the peer's address: a rejected frame, not the peer's.
    assert!(
        w.stats(0).counters.rejected_frames + w.stats(1).counters.rejected_frames > 0,
        "key mismatch counted as a rejected frame"
    );
}

#[test]
fn wrong_key_legacy_frames_are_dropped_and_nothing_applied() {
    let mut w = TestWorld::new(vec![
        config(0, 2, "mode master\nprotocol legacy"),
        format!(
            "peer {}\nsharedkey different-key-16\nmode slave\nprotocol legacy\n",
            addr(0)
        )
        .into_bytes(),
    ]);
    w.run_for(3000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(3000);
    assert_eq!(w.lan.hosts[1].kernel.sa_count(), 0);
    assert!(
        w.lan.hosts[1].written.is_empty(),
        "nothing reached the slave's kernel"
    );
    // The original keeps the connection and drops each frame (§9.4 step
    // 9); we close one that never delivered an authentic frame at its
    // first bad one, and count it as rejected, not against the peer
    // (anyone may connect from its address).
    let (p0, p1) = (w.peers(0), w.peers(1));
    assert!(
        w.stats(0).counters.rejected_frames + w.stats(1).counters.rejected_frames > 0,
        "hash mismatch counted as a rejected frame"
    );
    assert_eq!(p0[0].state, None, "no state learnt through a wrong key");
    assert_eq!(p1[0].state, None, "no state learnt through a wrong key");
}

#[test]
fn unknown_peer_is_rejected() {
    for proto in BOTH {
        let mut w = pair(proto);
        let now = w.lan.now;
        let r = w.node(0).handle_accept(now, ip("10.9.9.9"));
        assert!(r.is_err());
        assert_eq!(w.stats(0).counters.rejected_unknown, 1);
    }
}

#[test]
fn reconnect_resumes_from_the_ring() {
    let mut w = pair("v2");
    w.run_for(2000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(500);
    let snaps = w.stats(0).counters.snapshots_started;
    w.cut(0, 1);
    for k in 0..3 {
        let spi = w.next_spi();
        w.ike_write(
            0,
            &esp_add(spi, ip("192.0.2.1"), ip(&format!("198.51.100.{k}"))),
        );
    }
    w.run_for(5000);
    assert!(w.synced(0, 1));
    let c = w.stats(0).counters;
    assert_eq!(c.snapshots_started, snaps, "no new snapshot");
    assert_eq!(c.ring_resumes, 1);
}

#[test]
fn legacy_reconnect_gets_a_flushing_snapshot() {
    let mut w = pair("legacy");
    w.run_for(2000);
    add_some(&mut w, 0, 2, 0xc633_6400);
    w.run_for(500);
    let snaps = w.stats(0).counters.snapshots_started;
    w.cut(0, 1);
    // Missed while disconnected (the original keeps nothing for it).
    add_some(&mut w, 0, 3, 0xc633_6500);
    let before = w.lan.hosts[1].written.len();
    w.run_for(5000);
    assert!(w.synced(0, 1));
    assert_eq!(w.stats(0).counters.snapshots_started, snaps + 1);
    let first = Msg::parse(&w.lan.hosts[1].written[before])
        .unwrap()
        .msg_type();
    assert_eq!(first, SADB_FLUSH, "flushmode startup: FLUSH first");
}

/// Issue 9: a slave that fell behind the ring is resumed from the head and
/// repaired bucket by bucket (no full snapshot): the missed SAs arrive and
/// the stale one goes, in a repair of only the buckets that differ.
#[test]
fn ring_overflow_is_repaired_by_bucket() {
    let mut w = pair("v2");
    w.run_for(2000);
    let snaps = w.stats(0).counters.snapshots_started;
    w.cut(0, 1);
    // A stale SA only the slave has: the repair's sweep must remove it.
    let stale = esp_add(0xdead, ip("192.0.2.1"), ip("192.0.2.99"));
    w.lan.hosts[1].kernel.manual_write(&stale).unwrap();
    for k in 0..60 {
        let spi = w.next_spi();
        w.ike_write(
            0,
            &esp_add(spi, ip("192.0.2.1"), ip(&format!("198.51.100.{k}"))),
        );
    }
    w.run_for(5000);
    assert!(w.synced(0, 1), "slave converged");
    let (c0, c1) = (w.stats(0).counters, w.stats(1).counters);
    assert_eq!(c0.snapshots_started, snaps, "no full snapshot");
    assert_eq!(c0.resumes_with_repair, 1);
    assert!(c0.repairs >= 1 && c1.repairs_done >= 1);
    assert_eq!(c1.swept, 1, "the stale SA was swept");
    assert_eq!(
        c1.digest_mismatches, 0,
        "differences after a resume are repairs"
    );
    assert!(c1.resume_repairs >= 1);
}

/// A snapshot that outlasts the delta ring (a large SADB on a busy master)
/// ends in a resume and a repair of what the evicted deltas changed, not
/// in another full snapshot, which would outlast the ring again.
#[test]
fn a_snapshot_that_outlasts_the_ring_ends_in_a_repair() {
    let mut w: World<{ sasyncd_core::node::MIN_RING_BYTES }, 4096> = World::new(vec![
        config(0, 2, "mode master\nprotocol v2"),
        config(1, 2, "mode slave\nprotocol v2"),
    ]);
    w.lan.window = Some(4096);
    w.crash(1);
    for k in 0..200u32 {
        let spi = w.next_spi();
        let m = esp_add(spi, ip("192.0.2.1"), ip4(0xc633_6400 + k));
        w.lan.hosts[0].kernel.manual_write(&m).unwrap();
    }
    let stale = esp_add(0xdead, ip("192.0.2.1"), ip("192.0.2.99"));
    w.lan.hosts[1].kernel.manual_write(&stale).unwrap();
    w.settle();
    w.start(1);
    for _ in 0..10_000 {
        if !w.step() {
            w.tick(10);
        }
        let n = w.lan.hosts[1].kernel.sa_count();
        if n > 10 && n < 150 {
            break;
        }
    }
    let n = w.lan.hosts[1].kernel.sa_count();
    assert!(n > 10 && n < 150, "snapshot mid-way ({n})");
    // Far more deltas than the smallest ring (4 KiB) holds, while it streams.
    for k in 0..40 {
        let spi = w.next_spi();
        w.ike_write(
            0,
            &esp_add(spi, ip("192.0.2.1"), ip(&format!("198.51.100.{k}"))),
        );
    }
    w.run_for(5000);
    assert!(w.synced(0, 1), "slave converged");
    let (c0, c1) = (w.stats(0).counters, w.stats(1).counters);
    assert_eq!(c0.snapshots_started, 1, "no second full snapshot");
    assert_eq!(c0.resumes_with_repair, 1);
    assert!(c1.repairs_done >= 1, "the buckets were repaired");
    assert_eq!(c1.swept, 1, "the stale SA was swept");
    assert_eq!(
        c1.digest_mismatches, 0,
        "differences after a resume are repairs"
    );
    assert!(!w.stats(1).repairing);
}

/// A connected slave too slow for a burst falls behind the delta ring; it
/// is resumed at the head and repaired by bucket, not sent everything.
#[test]
fn a_slave_that_falls_behind_is_repaired_not_resent() {
    let mut w: World<{ sasyncd_core::node::MIN_RING_BYTES }, 4096> = World::new(vec![
        config(0, 2, "mode master\nprotocol v2"),
        config(1, 2, "mode slave\nprotocol v2"),
    ]);
    w.run_for(2000);
    let snaps = w.stats(0).counters.snapshots_started;
    w.lan.window = Some(512);
    for k in 0..200u32 {
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip4(0xc633_6400 + k)));
    }
    w.run_for(5000);
    assert!(w.synced(0, 1), "slave converged");
    let (c0, c1) = (w.stats(0).counters, w.stats(1).counters);
    assert_eq!(c0.snapshots_started, snaps, "no full snapshot");
    assert!(c0.resumes_with_repair >= 1, "resumed at the head");
    assert!(c1.repairs_done >= 1, "and repaired by bucket");
    assert_eq!(
        c1.digest_mismatches, 0,
        "differences after a resume are repairs"
    );
}

/// With a mark store far smaller than the SADB (firmware), the snapshot's
/// sweep is redone in batches of buckets; a batch that holds more entries
/// than the store is asked again in smaller ones. Nothing live is deleted
/// and nothing stale survives.
#[test]
fn a_small_mark_store_sweeps_exactly_in_batches() {
    let mut w: World<8192, 12> = World::new(vec![
        config(0, 2, "mode master\nprotocol v2"),
        config(1, 2, "mode slave\nprotocol v2"),
    ]);
    w.crash(1);
    for k in 0..600u32 {
        let spi = w.next_spi();
        let m = esp_add(spi, ip("192.0.2.1"), ip4(0xc633_6400 + k));
        w.lan.hosts[0].kernel.manual_write(&m).unwrap();
    }
    for k in 0..30u32 {
        let stale = esp_add(0xd000 + k, ip("192.0.2.1"), ip4(0xcb00_7100 + k));
        w.lan.hosts[1].kernel.manual_write(&stale).unwrap();
    }
    w.settle();
    w.start(1);
    w.run_for(20_000);
    assert!(w.synced(0, 1), "slave converged");
    let s = w.stats(1);
    assert_eq!(s.counters.swept, 30, "every stale SA swept");
    assert!(
        s.counters.sweeps_skipped >= 2,
        "the snapshot and at least one batch overflowed ({})",
        s.counters.sweeps_skipped
    );
    assert!(!s.syncing && !s.repairing);
    assert_eq!(
        w.stats(0).counters.snapshots_started,
        1,
        "one full snapshot"
    );
}

#[test]
fn split_brain_is_detected_and_nothing_applied() {
    for proto in BOTH {
        let mut w = TestWorld::new(vec![
            config(0, 2, &format!("mode master\nprotocol {proto}")),
            config(1, 2, &format!("mode master\nprotocol {proto}")),
        ]);
        w.run_for(3000);
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
        w.run_for(1000);
        assert_eq!(w.lan.hosts[1].kernel.sa_count(), 0, "{proto}");
        for i in 0..2 {
            let s = w.stats(i);
            if proto == "v2" {
                assert!(s.split_brain, "{proto}");
                assert_eq!(s.counters.split_brain_episodes, 1, "{proto}");
            }
            assert!(
                w.lan.hosts[i].written.is_empty(),
                "{proto}: node {i} applied nothing"
            );
        }
    }
}

#[test]
fn failover_and_return() {
    for proto in BOTH {
        // Tracking carp: node 0 starts master, node 1 backup.
        let mut w = tracking(2, proto);
        w.set_link(0, MASTER);
        w.run_for(3000);
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
        w.run_for(500);
        assert!(w.synced(0, 1), "{proto}");
        // Master dies; carp makes node 1 master.
        w.crash(0);
        w.set_link(1, MASTER);
        w.run_for(500);
        assert_eq!(w.run_state(1), RunState::Master, "{proto}");
        assert_eq!(
            w.lan.hosts[1].kernel.sa_count(),
            1,
            "{proto}: new master holds the SA"
        );
        assert!(
            w.promisc(1),
            "{proto}: the new master listens to its kernel"
        );
        assert_eq!(w.lan.hosts[1].ike, Some(IkeMode::Active), "{proto}");
        let spi = w.next_spi();
        w.ike_write(1, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.3")));
        // Old master returns as backup and resyncs.
        w.lan.hosts[0].link_state = BACKUP;
        w.start(0);
        w.run_for(5000);
        assert_eq!(w.run_state(0), RunState::Slave, "{proto}");
        assert!(w.synced(0, 1), "{proto}");
        assert_eq!(w.lan.hosts[0].kernel.sa_count(), 2, "{proto}");
        assert_eq!(w.lan.hosts[0].ike, Some(IkeMode::Passive), "{proto}");
    }
}

/// Issue 7: the master vanishes (no reset reaches anyone, so its sessions
/// look up until the liveness timeout), carp makes node 1 master, and the
/// slave (node 2) takes node 1's changes at once instead of waiting 30 s
/// for the dead session to time out.
#[test]
fn a_slave_follows_a_new_master_at_once() {
    for proto in BOTH {
        let mut w = tracking(3, proto);
        w.set_link(0, MASTER);
        w.run_for(3000);
        add_some(&mut w, 0, 2, 0xc633_6400);
        w.run_for(500);
        assert!(w.synced(0, 2), "{proto}");
        assert_eq!(w.stats(2).following.map(|f| f.0), Some(addr(0)), "{proto}");
        w.vanish(0);
        w.set_link(1, MASTER);
        // A legacy slave hangs up on a master it has not taken data from
        // before, so that the reconnect brings a full snapshot (the
        // original protocol cannot ask for one): a backoff more.
        w.run_for(if proto == "v2" { 200 } else { 3000 });
        assert_eq!(
            w.stats(2).following.map(|f| f.0),
            Some(addr(1)),
            "{proto}: the slave follows the new master"
        );
        add_some(&mut w, 1, 3, 0xc633_6500);
        w.run_for(300);
        assert!(
            w.synced(1, 2),
            "{proto}: the new master's SAs reached the slave"
        );
        assert_eq!(w.lan.hosts[2].kernel.sa_count(), 5, "{proto}");
    }
}

/// The master's kernel drops change messages (its socket's queue full):
/// the slave misses them, and nothing tells it until the next digest, a
/// minute on. Told that messages were lost (a Linux watch's `ENOBUFS`),
/// the master digests at once and the slave is repaired in moments.
#[test]
fn lost_kernel_messages_bring_the_digest_forward() {
    let mut w = pair("v2");
    w.run_for(2000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("198.51.100.1")));
    w.run_for(500);
    assert!(w.synced(0, 1));
    // Nothing fits the master's receive queue: every copy is dropped.
    w.lan.hosts[0].kernel.set_rcvbuf(0);
    for k in 2..5 {
        let spi = w.next_spi();
        w.ike_write(
            0,
            &esp_add(spi, ip("192.0.2.1"), ip(&format!("198.51.100.{k}"))),
        );
    }
    w.lan.hosts[0].kernel.set_rcvbuf(8192);
    w.run_for(3000);
    assert!(!w.synced(0, 1), "the slave missed the dropped changes");
    let now = w.now();
    w.node(0).handle_events_lost(now);
    w.run_for(3000);
    assert!(
        w.synced(0, 1),
        "repaired within moments, not a digest period"
    );
    assert_eq!(w.stats(1).counters.digest_mismatches, 1);
}

#[test]
fn anti_entropy_repairs_a_manual_edit() {
    let mut w = pair("v2");
    w.run_for(2000);
    for k in 0..3 {
        let spi = w.next_spi();
        w.ike_write(
            0,
            &esp_add(spi, ip("192.0.2.1"), ip(&format!("198.51.100.{k}"))),
        );
    }
    w.run_for(500);
    assert!(w.synced(0, 1));
    // An operator deletes an SA on the slave by hand.
    let k = w.lan.hosts[1].kernel.sa_keys()[0];
    w.lan.hosts[1].kernel.manual_delete_sa(&k).unwrap();
    w.run_for(65_000);
    assert!(w.synced(0, 1), "healed within one digest period");
    assert_eq!(w.stats(1).counters.digest_mismatches, 1);
    // Each side's peer statistics count it as a repair, not a snapshot.
    let (to_slave, from_master) = (w.peers(0)[0].stats, w.peers(1)[0].stats);
    assert_eq!((to_slave.repairs_sent, to_slave.snapshots_sent), (1, 1));
    assert_eq!(
        (from_master.repairs_received, from_master.snapshots_received),
        (1, 1)
    );
    assert!(from_master.last_repair_received.is_some());
    assert!(to_slave.last_repair_sent.is_some());
}

#[test]
fn becoming_master_syncs_connected_slaves() {
    // D-12: node 1 becomes master while node 2 is connected to it.
    for proto in BOTH {
        let mut w = tracking(3, proto);
        w.set_link(0, MASTER);
        w.run_for(3000);
        w.crash(0);
        let m = esp_add(0x77, ip("192.0.2.1"), ip("192.0.2.5"));
        w.lan.hosts[1].kernel.manual_write(&m).unwrap();
        w.set_link(1, MASTER);
        w.run_for(3000);
        assert_eq!(w.lan.hosts[2].kernel.sa_count(), 1, "{proto}");
        assert!(
            w.synced(1, 2),
            "{proto}: slave synced by the new master without reconnecting"
        );
    }
}

#[test]
fn sizes() {
    eprintln!(
        "harness node: {} bytes",
        std::mem::size_of::<sasyncd_tests::harness::HNode<4096>>()
    );
    eprintln!(
        "Session: {} bytes",
        std::mem::size_of::<sasyncd_core::wire::v2::Session<sasyncd_core::crypto::SoftCrypto>>()
    );
}

#[test]
fn deltas_during_a_snapshot_are_neither_lost_nor_reordered() {
    for proto in BOTH {
        let mut w = pair(proto);
        w.lan.window = Some(4096);
        w.crash(1);
        let mut spis = Vec::new();
        for k in 0..200u32 {
            let spi = w.next_spi();
            spis.push(spi);
            let m = esp_add(spi, ip("192.0.2.1"), ip4(0xc633_6400 + k));
            w.lan.hosts[0].kernel.manual_write(&m).unwrap();
        }
        w.settle();
        w.start(1);
        // Step until the snapshot is under way but not finished.
        for _ in 0..10_000 {
            if !w.step() {
                // Quiet: the legacy master's snapshot waits 2 s.
                w.tick(10);
            }
            let n = w.lan.hosts[1].kernel.sa_count();
            if n > 10 && n < 150 {
                break;
            }
        }
        let n = w.lan.hosts[1].kernel.sa_count();
        assert!(n > 10 && n < 150, "{proto}: snapshot mid-way ({n})");
        // Delete one SA the slave already has and one it has not seen yet,
        // and add a new one, while the snapshot streams.
        w.ike_write(0, &esp_delete(spis[0], ip("192.0.2.1"), ip4(0xc633_6400)));
        w.ike_write(
            0,
            &esp_delete(spis[199], ip("192.0.2.1"), ip4(0xc633_6400 + 199)),
        );
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("203.0.113.1")));
        w.run_for(5000);
        assert_eq!(w.lan.hosts[0].kernel.sa_count(), 199, "{proto}");
        assert!(w.synced(0, 1), "{proto}");
    }
}

#[test]
fn anti_entropy_removes_a_stray_entry() {
    let mut w = pair("v2");
    w.run_for(2000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(500);
    let stray = esp_add(0xbad, ip("192.0.2.1"), ip("192.0.2.77"));
    w.lan.hosts[1].kernel.manual_write(&stray).unwrap();
    w.lan.hosts[1]
        .kernel
        .manual_write(&flow(ip("192.0.2.8"), ip("192.0.2.9")))
        .unwrap();
    w.run_for(65_000);
    assert!(w.synced(0, 1));
    assert!(w.stats(1).counters.swept >= 2);
}

#[test]
fn demotion_released_after_sixty_seconds_without_peers() {
    for proto in BOTH {
        let mut w = TestWorld::new(vec![config(0, 2, &format!("protocol {proto}"))]);
        w.run_for(59_000);
        assert_eq!(
            w.lan.hosts[0].demoted, 2,
            "{proto}: held while waiting for peers"
        );
        w.run_for(2_000);
        assert_eq!(
            w.lan.hosts[0].demoted, 1,
            "{proto}: released once after 60 s"
        );
        w.run_for(60_000);
        assert_eq!(w.lan.hosts[0].demoted, 1, "{proto}: never released twice");
        let now = w.lan.now;
        w.node(0).handle_shutdown(now);
        w.settle();
        assert_eq!(
            w.lan.hosts[0].demoted, 1,
            "{proto}: not released again on shutdown"
        );
    }
}

#[test]
fn demotion_released_on_shutdown() {
    for proto in BOTH {
        let mut w = TestWorld::new(vec![config(0, 2, &format!("protocol {proto}"))]);
        w.run_for(1000);
        assert_eq!(w.lan.hosts[0].demoted, 2, "{proto}");
        let now = w.lan.now;
        w.node(0).handle_shutdown(now);
        w.settle();
        assert_eq!(w.lan.hosts[0].demoted, 1, "{proto}");
    }
}

#[test]
fn backpressure_loses_nothing() {
    for proto in BOTH {
        let mut w = pair(proto);
        w.run_for(2000);
        w.lan.hosts[1].stall = true;
        for k in 0..300u32 {
            let spi = w.next_spi();
            w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip4(0xcb00_7100 + k)));
            w.settle();
        }
        assert_eq!(w.lan.hosts[1].kernel.sa_count(), 0, "{proto}");
        assert!(w.stats(1).pfkey_queued > 0, "{proto}");
        assert!(
            w.stats(1).paused_reads > 0,
            "{proto}: the slave stopped reading"
        );
        w.lan.hosts[1].stall = false;
        w.run_for(1000);
        assert_eq!(w.lan.hosts[1].kernel.sa_count(), 300, "{proto}");
        assert!(w.synced(0, 1), "{proto}");
        if proto == "v2" {
            let lag = w.peers(0)[0].stats.lag;
            assert_eq!(lag, 0, "the master knows the slave caught up");
        }
    }
}

#[test]
fn garbage_from_a_peer_closes_only_that_connection() {
    for proto in BOTH {
        let mut w = TestWorld::new(vec![
            config(0, 3, &format!("mode master\nprotocol {proto}")),
            config(1, 3, &format!("mode slave\nprotocol {proto}")),
            config(2, 3, &format!("mode slave\nprotocol {proto}")),
        ]);
        w.run_for(2000);
        w.lan.tamper = Some(Box::new(|from, b: &mut Vec<u8>| {
            if from == 2 {
                for x in b.iter_mut() {
                    *x ^= 0x5a;
                }
            }
        }));
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
        // Node 2 speaks garbage now: its own keep-state messages get mangled.
        let now = w.lan.now;
        w.node(2).handle_link_state(now, BACKUP);
        // And when it reconnects (a legacy slave is otherwise silent).
        w.cut(0, 2);
        w.run_for(3000);
        assert!(
            w.synced(0, 1),
            "{proto}: the honest slave keeps being served"
        );
        assert!(
            w.stats(0).counters.rejected_frames > 0,
            "{proto}: garbage was rejected"
        );
        assert!(
            w.peers(1)[0].connected,
            "{proto}: the honest slave's session is intact"
        );
    }
}

#[test]
fn chunked_delivery_and_partial_writes_change_nothing() {
    for proto in BOTH {
        let mut w = pair(proto);
        w.lan.chunking = true;
        w.run_for(2000);
        add_some(&mut w, 0, 40, 0xc633_6400);
        w.ike_write(0, &flow(ip("192.0.2.7"), ip("203.0.113.0")));
        w.run_for(2000);
        assert_eq!(w.lan.hosts[1].kernel.sa_count(), 40, "{proto}");
        assert!(w.synced(0, 1), "{proto}");
        assert_eq!(w.stats(0).counters.rejected_frames, 0, "{proto}");
        assert_eq!(w.stats(1).counters.rejected_frames, 0, "{proto}");
    }
}

#[test]
fn simultaneous_connects_settle_on_one_session() {
    for proto in BOTH {
        let mut w = pair(proto);
        // Both dial at the same instant (the world delivers connects at once).
        w.run_for(5000);
        for i in 0..2 {
            assert!(w.peers(i)[0].connected, "{proto}");
        }
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
        w.run_for(500);
        assert!(w.synced(0, 1), "{proto}");
        assert!(
            w.lan.hosts[1].refused.is_empty(),
            "{proto}: applied once, not once per session"
        );
    }
}

#[test]
fn restarted_peer_replaces_its_dead_session() {
    for proto in BOTH {
        let mut w = pair(proto);
        // Past the legacy crossed-start window: a connection from the peer
        // then means it dialled again.
        w.run_for(12_000);
        // Node 1 restarts without its old connection being reset (the host
        // vanished): node 0 still holds the old session.
        w.vanish(1);
        w.start(1);
        w.run_for(3000);
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
        w.run_for(1000);
        assert!(w.synced(0, 1), "{proto}: the restarted slave is served");
        assert_eq!(w.lan.hosts[1].kernel.sa_count(), 1, "{proto}");
    }
}

#[test]
fn a_vanished_peer_is_noticed_and_replaced() {
    let mut w = pair("v2");
    w.run_for(2000);
    w.vanish(0);
    w.run_for(40_000);
    assert!(!w.peers(1)[0].connected, "the half-open session was closed");
    // Quiet but alive sessions stay up (keepalives).
    let mut w = pair("v2");
    w.run_for(120_000);
    assert!(w.peers(1)[0].connected);
    assert_eq!(w.stats(1).counters.snapshots_started, 0);
    assert_eq!(
        w.stats(0).counters.snapshots_started,
        1,
        "one session all along"
    );
}

#[test]
fn anti_entropy_replaces_an_entry_whose_content_differs() {
    // The slave holds the master's SA identity (SPI, destination) with
    // other keys, e.g. left over from a split brain. A snapshot's ADD of it
    // is refused with EEXIST, and the sweep keeps it (it was in the
    // snapshot): the slave must still end up with the master's keys.
    let mut w = TestWorld::with_digest_interval(
        vec![config(0, 2, "mode master"), config(1, 2, "mode slave")],
        std::time::Duration::from_secs(5),
    );
    w.run_for(2000);
    w.ike_write(0, &esp_add(0x4242, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(500);
    assert!(w.synced(0, 1));
    let k = w.lan.hosts[1].kernel.sa_keys()[0];
    w.lan.hosts[1].kernel.manual_delete_sa(&k).unwrap();
    let mut other = esp_add(0x4242, ip("192.0.2.1"), ip("192.0.2.2"));
    let n = other.len();
    other[n - 16..].fill(0xcc); // another encryption key
    w.lan.hosts[1].kernel.manual_write(&other).unwrap();
    assert!(!w.synced(0, 1));
    w.run_for(30_000);
    assert!(
        w.stats(1).counters.digest_mismatches > 0,
        "the divergence was noticed"
    );
    assert!(w.synced(0, 1), "the slave has the master's keys");
}

/// A platform that never reports the end of a connect (no `Connected`, no
/// `ConnectFailed`, as the simulator's resets once did) does not leave the
/// peer unreachable: the node gives up after its connect deadline, tells
/// the platform to close the attempt, and dials again after a backoff.
#[test]
fn a_connect_that_never_ends_is_ended_by_the_node() {
    use sasyncd_core::config::Config;
    use sasyncd_core::crypto::SoftCrypto;
    use sasyncd_core::node::{Event, Node, Settings};
    use sasyncd_core::time::Instant;
    use sasyncd_sim::rng::Rng;
    use sasyncd_sim::world::SimRandom;

    let cfg = Config::parse(&config(0, 2, "")).unwrap();
    let t0 = Instant::from_millis(1000);
    let mut n: sasyncd_tests::harness::HNode<4096> = Node::new(
        &cfg,
        Settings::new([1; 16], 7, 100),
        SoftCrypto,
        SimRandom(Rng::new(7)),
        sasyncd_core::node::FixedMarks::new(),
        sasyncd_tests::harness::storage(8192),
        t0,
    )
    .unwrap();
    n.handle_link_state(t0, BACKUP);
    let connects = |n: &mut sasyncd_tests::harness::HNode<4096>| {
        let mut v = Vec::new();
        let mut closes = Vec::new();
        while let Some(e) = n.poll_event() {
            match e {
                Event::Connect { conn, .. } => v.push(conn),
                Event::Close { conn } => closes.push(conn),
                _ => {}
            }
        }
        (v, closes)
    };
    let (dialled, _) = connects(&mut n);
    assert_eq!(dialled.len(), 1, "dials its one peer");
    let deadline = n.poll_timeout().expect("a deadline for the connect");
    assert!(deadline.since(t0) <= std::time::Duration::from_secs(10));
    let mut now = deadline;
    n.handle_timeout(now);
    let (again, closed) = connects(&mut n);
    assert_eq!(closed, dialled, "the stuck attempt is closed");
    assert!(again.is_empty(), "not redialled at once");
    // A backoff later it dials again.
    for _ in 0..10 {
        now = n.poll_timeout().expect("a reconnect is scheduled");
        n.handle_timeout(now);
        let (again, _) = connects(&mut n);
        if !again.is_empty() {
            assert!(now.since(deadline) <= std::time::Duration::from_secs(31));
            return;
        }
    }
    panic!("never redialled");
}

/// A slave whose own copy of an SA differs from the master's gets it in a
/// second pass over that bucket; that pass ends the initial sync, so the
/// demotion goes at once, not at the 60 s limit.
#[test]
fn a_differing_entry_at_start_ends_the_sync_after_its_second_pass() {
    let mut w = pair("v2");
    w.crash(1);
    w.run_for(100);
    let spi = 0x5000;
    let mine = esp_add(spi, ip("192.0.2.1"), ip("198.51.100.7"));
    w.lan.hosts[0].kernel.manual_write(&mine).unwrap();
    // Same identity (type, SPI, destination), another source: other content.
    let theirs = esp_add(spi, ip("192.0.2.66"), ip("198.51.100.7"));
    w.lan.hosts[1].kernel.manual_write(&theirs).unwrap();
    w.start(1);
    w.run_for(5000);
    assert!(w.synced(0, 1), "the differing SA was replaced");
    assert!(
        !w.stats(1).demote_held,
        "the initial sync ended with the second pass"
    );
    assert_eq!(w.lan.hosts[1].demoted, 1, "raised once, released once");
}
