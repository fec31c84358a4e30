//! Behaviour of the whole node, driven through the tiny world in
//! `tests/world.rs`. Scenario tests across crates live in `tests/`.

mod world;

use core::net::IpAddr;
use std::vec::Vec;

use crate::pfkey::consts::*;
use crate::pfkey::testutil::TestMsg;
use crate::state::RunState;

use world::{addr, config, World};

fn esp_add(spi: u32, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    TestMsg::new(SADB_ADD, SADB_SATYPE_ESP)
        .sa(spi, SADB_SASTATE_MATURE, 5, 12)
        .lifetime(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0)
        .addr(SADB_EXT_ADDRESS_SRC, src, 0)
        .addr(SADB_EXT_ADDRESS_DST, dst, 0)
        .key(SADB_EXT_KEY_AUTH, 256, &[0xaa; 32])
        .key(SADB_EXT_KEY_ENCRYPT, 128, &[0xbb; 16])
        .build()
}

fn esp_delete(spi: u32, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    TestMsg::new(SADB_DELETE, SADB_SATYPE_ESP)
        .sa(spi, SADB_SASTATE_MATURE, 0, 0)
        .addr(SADB_EXT_ADDRESS_SRC, src, 0)
        .addr(SADB_EXT_ADDRESS_DST, dst, 0)
        .build()
}

fn flow(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    TestMsg::new(SADB_X_ADDFLOW, SADB_SATYPE_ESP)
        .flow(SADB_X_FLOW_TYPE_REQUIRE, IPSP_DIRECTION_OUT, 0, src, dst)
        .build()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Master 0 and slave 1, locked.
fn pair(proto: &str) -> World {
    World::new(std::vec![
        config(0, 2, &std::format!("mode master\nprotocol {proto}")),
        config(1, 2, &std::format!("mode slave\nprotocol {proto}")),
    ])
}

fn synced(w: &World, a: usize, b: usize) -> bool {
    w.nodes[a].kernel.content() == w.nodes[b].kernel.content()
}

#[test]
fn locked_roles_connect_and_announce() {
    for proto in ["v2", "legacy"] {
        let mut w = pair(proto);
        w.run_for(3000);
        assert!(
            w.nodes[0].promisc,
            "{proto}: master turned promiscuous mode on"
        );
        assert!(!w.nodes[1].promisc);
        assert_eq!(w.nodes[0].ike, Some(super::ike::IkeMode::Active));
        assert_eq!(w.nodes[1].ike, Some(super::ike::IkeMode::Passive));
        let p0: Vec<_> = w.node(0).peers().collect();
        let p1: Vec<_> = w.node(1).peers().collect();
        assert!(p0[0].connected && p1[0].connected, "{proto}");
        assert_eq!(p0[0].state, Some(RunState::Slave), "{proto}");
        assert_eq!(p1[0].state, Some(RunState::Master), "{proto}");
        // The slave's demotion is gone once the (empty) snapshot arrived.
        assert_eq!(w.nodes[1].demoted, 1, "{proto}: raised once, released once");
        assert!(!w.node(1).stats().demote_held, "{proto}");
    }
}

#[test]
fn snapshot_then_live_deltas() {
    for proto in ["v2", "legacy"] {
        let mut w = pair(proto);
        // The master has state before the slave exists.
        w.crash(1);
        w.run_for(100);
        for k in 0..5 {
            let spi = w.next_spi();
            w.nodes[0].kernel.write(&esp_add(
                spi,
                ip("192.0.2.1"),
                ip(&std::format!("198.51.100.{k}")),
            ));
        }
        w.nodes[0]
            .kernel
            .write(&flow(ip("192.0.2.0"), ip("198.51.100.0")));
        w.start(1);
        w.run_for(5000);
        assert_eq!(w.nodes[1].kernel.sas.len(), 5, "{proto}: snapshot SAs");
        assert!(
            synced(&w, 0, 1),
            "{proto}: slave equals master after the snapshot"
        );
        // Live changes.
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("203.0.113.9")));
        w.ike_write(0, &esp_delete(0x1001, ip("192.0.2.1"), ip("198.51.100.0")));
        w.ike_write(0, &flow(ip("192.0.2.7"), ip("203.0.113.0")));
        w.run_for(1000);
        assert_eq!(w.nodes[1].kernel.sas.len(), 5, "{proto}");
        assert!(synced(&w, 0, 1), "{proto}: live deltas applied");
        assert_eq!(w.nodes[1].kernel.errors, 0, "{proto}");
    }
}

#[test]
fn slave_pid_and_seq_are_its_own() {
    let mut w = pair("v2");
    w.run_for(2000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(500);
    let m = w.nodes[1].kernel.sas.values().next().unwrap().clone();
    assert_eq!(
        u32::from_ne_bytes(m[12..16].try_into().unwrap()),
        w.nodes[1].pid
    );
}

#[test]
fn wrong_key_is_refused_and_nothing_applied() {
    let mut w = World::new(std::vec![
        config(0, 2, "mode master"),
        std::format!("peer {}\nsharedkey different-key-16\nmode slave\n", addr(0)).into_bytes(),
    ]);
    w.run_for(3000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(3000);
    assert!(w.nodes[1].kernel.sas.is_empty());
    let p: Vec<_> = w.node(1).peers().collect();
    assert!(!p[0].connected);
    assert!(
        p[0].stats.errors.auth > 0,
        "key mismatch counted as an auth error"
    );
}

#[test]
fn unknown_peer_is_rejected() {
    let mut w = pair("v2");
    let now = w.now;
    let r = w.node(0).handle_accept(now, ip("10.9.9.9"));
    assert!(r.is_err());
    assert_eq!(w.node(0).stats().counters.rejected_unknown, 1);
}

#[test]
fn reconnect_resumes_from_the_ring() {
    let mut w = pair("v2");
    w.run_for(2000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(500);
    let snaps = w.node(0).stats().counters.snapshots_started;
    w.cut(0, 1);
    for k in 0..3 {
        let spi = w.next_spi();
        w.ike_write(
            0,
            &esp_add(spi, ip("192.0.2.1"), ip(&std::format!("198.51.100.{k}"))),
        );
    }
    w.run_for(5000);
    assert!(synced(&w, 0, 1));
    let c = w.node(0).stats().counters;
    assert_eq!(c.snapshots_started, snaps, "no new snapshot");
    assert_eq!(c.ring_resumes, 1);
}

#[test]
fn ring_overflow_gives_a_sweeping_snapshot() {
    let mut w = pair("v2");
    w.run_for(2000);
    let sweeps = w.node(1).stats().counters.sweeps;
    w.cut(0, 1);
    // A stale SA only the slave has: the sweep must remove it.
    w.nodes[1]
        .kernel
        .write(&esp_add(0xdead, ip("192.0.2.1"), ip("192.0.2.99")));
    for k in 0..60 {
        let spi = w.next_spi();
        w.ike_write(
            0,
            &esp_add(spi, ip("192.0.2.1"), ip(&std::format!("198.51.100.{k}"))),
        );
    }
    w.run_for(5000);
    assert!(synced(&w, 0, 1), "slave converged");
    let c1 = w.node(1).stats().counters;
    assert_eq!(c1.sweeps, sweeps + 1);
    assert_eq!(c1.swept, 1);
    assert!(w.node(0).stats().counters.snapshots_started >= 2);
}

#[test]
fn split_brain_is_detected_and_nothing_applied() {
    let mut w = World::new(std::vec![
        config(0, 2, "mode master"),
        config(1, 2, "mode master")
    ]);
    w.run_for(3000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(1000);
    assert!(w.nodes[1].kernel.sas.is_empty());
    for i in 0..2 {
        let s = w.node(i).stats();
        assert!(s.split_brain);
        assert_eq!(s.counters.split_brain_episodes, 1);
    }
}

#[test]
fn failover_and_return() {
    // Tracking carp: node 0 starts master, node 1 backup.
    let mut w = World::new(std::vec![config(0, 2, ""), config(1, 2, "")]);
    w.set_link(0, 4);
    w.run_for(3000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(500);
    assert!(synced(&w, 0, 1));
    // Master dies; carp makes node 1 master.
    w.crash(0);
    w.set_link(1, 4);
    w.run_for(500);
    assert_eq!(w.node(1).run_state(), RunState::Master);
    assert_eq!(w.nodes[1].kernel.sas.len(), 1, "new master holds the SA");
    let spi = w.next_spi();
    w.ike_write(1, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.3")));
    // Old master returns as backup and resyncs.
    w.nodes[0].link_state = 2;
    w.start(0);
    w.run_for(5000);
    assert_eq!(w.node(0).run_state(), RunState::Slave);
    assert!(synced(&w, 0, 1));
    assert_eq!(w.nodes[0].kernel.sas.len(), 2);
}

#[test]
fn anti_entropy_repairs_a_manual_edit() {
    let mut w = pair("v2");
    w.run_for(2000);
    for k in 0..3 {
        let spi = w.next_spi();
        w.ike_write(
            0,
            &esp_add(spi, ip("192.0.2.1"), ip(&std::format!("198.51.100.{k}"))),
        );
    }
    w.run_for(500);
    assert!(synced(&w, 0, 1));
    // An operator deletes an SA on the slave by hand.
    let k = w.nodes[1].kernel.sas.keys().next().unwrap().clone();
    w.nodes[1].kernel.sas.remove(&k);
    w.run_for(65_000);
    assert!(synced(&w, 0, 1), "healed within one digest period");
    assert_eq!(w.node(1).stats().counters.digest_mismatches, 1);
}

#[test]
fn becoming_master_syncs_connected_slaves() {
    // D-12: node 1 becomes master while node 2 is connected to it.
    let mut w = World::new(std::vec![
        config(0, 3, ""),
        config(1, 3, ""),
        config(2, 3, "")
    ]);
    w.set_link(0, 4);
    w.run_for(3000);
    w.crash(0);
    w.nodes[1]
        .kernel
        .write(&esp_add(0x77, ip("192.0.2.1"), ip("192.0.2.5")));
    w.set_link(1, 4);
    w.run_for(3000);
    assert!(
        synced(&w, 1, 2),
        "slave synced by the new master without reconnecting"
    );
}

#[test]
fn sizes() {
    std::eprintln!(
        "TestNode: {} bytes",
        core::mem::size_of::<world::TestNode>()
    );
    std::eprintln!(
        "Conn: {} bytes",
        core::mem::size_of::<super::conn::Conn<crate::crypto::SoftCrypto>>()
    );
    std::eprintln!(
        "Session: {} bytes",
        core::mem::size_of::<crate::wire::v2::Session<crate::crypto::SoftCrypto>>()
    );
}

#[test]
fn deltas_during_a_snapshot_are_neither_lost_nor_reordered() {
    let mut w = pair("v2");
    w.crash(1);
    let mut spis = Vec::new();
    for k in 0..200u32 {
        let spi = w.next_spi();
        spis.push(spi);
        let dst = IpAddr::V4(core::net::Ipv4Addr::from(0xc633_6400 + k));
        w.nodes[0].kernel.write(&esp_add(spi, ip("192.0.2.1"), dst));
    }
    w.start(1);
    // Step until the snapshot is under way but not finished.
    for _ in 0..10_000 {
        w.step();
        let n = w.nodes[1].kernel.sas.len();
        if n > 10 && n < 150 {
            break;
        }
    }
    let n = w.nodes[1].kernel.sas.len();
    assert!(n > 10 && n < 150, "snapshot mid-way ({n})");
    // Delete one SA the slave already has and one it has not seen yet,
    // and add a new one, while the snapshot streams.
    let first = IpAddr::V4(core::net::Ipv4Addr::from(0xc633_6400));
    let last = IpAddr::V4(core::net::Ipv4Addr::from(0xc633_6400 + 199));
    w.ike_write(0, &esp_delete(spis[0], ip("192.0.2.1"), first));
    w.ike_write(0, &esp_delete(spis[199], ip("192.0.2.1"), last));
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("203.0.113.1")));
    w.run_for(5000);
    assert_eq!(w.nodes[0].kernel.sas.len(), 199);
    assert!(synced(&w, 0, 1));
}

#[test]
fn anti_entropy_removes_a_stray_entry() {
    let mut w = pair("v2");
    w.run_for(2000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(500);
    w.nodes[1]
        .kernel
        .write(&esp_add(0xbad, ip("192.0.2.1"), ip("192.0.2.77")));
    w.nodes[1]
        .kernel
        .write(&flow(ip("192.0.2.8"), ip("192.0.2.9")));
    w.run_for(65_000);
    assert!(synced(&w, 0, 1));
    assert!(w.node(1).stats().counters.swept >= 2);
}

#[test]
fn demotion_released_after_sixty_seconds_without_peers() {
    let mut w = World::new(std::vec![config(0, 2, "")]);
    w.run_for(59_000);
    assert_eq!(w.nodes[0].demoted, 2, "held while waiting for peers");
    w.run_for(2_000);
    assert_eq!(w.nodes[0].demoted, 1, "released once after 60 s");
    w.run_for(60_000);
    assert_eq!(w.nodes[0].demoted, 1, "never released twice");
}

#[test]
fn demotion_released_on_shutdown() {
    let mut w = World::new(std::vec![config(0, 2, "")]);
    w.run_for(1000);
    assert_eq!(w.nodes[0].demoted, 2);
    let now = w.now;
    w.node(0).handle_shutdown(now);
    w.settle();
    assert_eq!(w.nodes[0].demoted, 1);
}

#[test]
fn backpressure_loses_nothing() {
    let mut w = pair("v2");
    w.run_for(2000);
    w.nodes[1].stall = true;
    for k in 0..300u32 {
        let spi = w.next_spi();
        let dst = IpAddr::V4(core::net::Ipv4Addr::from(0xcb00_7100 + k));
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), dst));
        w.settle();
    }
    assert!(w.nodes[1].kernel.sas.is_empty());
    assert!(w.node(1).stats().pfkey_queued > 0);
    w.nodes[1].stall = false;
    w.run_for(1000);
    assert_eq!(w.nodes[1].kernel.sas.len(), 300);
    assert!(synced(&w, 0, 1));
    let lag = w.node(0).peers().next().unwrap().stats.lag;
    assert_eq!(lag, 0, "the master knows the slave caught up");
}

#[test]
fn garbage_from_a_peer_closes_only_that_connection() {
    let mut w = World::new(std::vec![
        config(0, 3, "mode master"),
        config(1, 3, "mode slave"),
        config(2, 3, "mode slave")
    ]);
    w.run_for(2000);
    #[allow(clippy::ptr_arg)] // the tamper hook may resize
    fn flip(from: usize, b: &mut Vec<u8>) {
        if from == 2 {
            for x in b.iter_mut() {
                *x ^= 0x5a;
            }
        }
    }
    w.tamper = Some(flip);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    // Node 2 speaks garbage now: its own keep-state messages get mangled.
    let now = w.now;
    w.node(2).handle_link_state(now, 2);
    w.run_for(3000);
    assert!(synced(&w, 0, 1), "the honest slave keeps being served");
    assert!(
        w.node(0).stats().counters.rejected_frames > 0,
        "garbage was rejected"
    );
}

#[test]
fn simultaneous_connects_settle_on_one_session() {
    let mut w = pair("v2");
    // Both dial at the same instant (the world delivers connects at once).
    w.run_for(5000);
    for i in 0..2 {
        let p: Vec<_> = w.node(i).peers().collect();
        assert!(p[0].connected);
    }
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(500);
    assert!(synced(&w, 0, 1));
}

#[test]
fn restarted_peer_replaces_its_dead_session() {
    let mut w = pair("v2");
    w.run_for(2000);
    // Node 1 restarts without its old connection being reset (the host
    // vanished): node 0 still holds the old session.
    w.vanish(1);
    w.start(1);
    w.run_for(3000);
    let spi = w.next_spi();
    w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(1000);
    assert!(synced(&w, 0, 1), "the restarted slave is served");
}

#[test]
fn a_vanished_peer_is_noticed_and_replaced() {
    let mut w = pair("v2");
    w.run_for(2000);
    w.vanish(0);
    w.run_for(40_000);
    let p: Vec<_> = w.node(1).peers().collect();
    assert!(!p[0].connected, "the half-open session was closed");
    // Quiet but alive sessions stay up (keepalives).
    let mut w = pair("v2");
    w.run_for(120_000);
    let p: Vec<_> = w.node(1).peers().collect();
    assert!(p[0].connected);
    assert_eq!(w.node(1).stats().counters.snapshots_started, 0);
    assert_eq!(
        w.node(0).stats().counters.snapshots_started,
        1,
        "one session all along"
    );
}
