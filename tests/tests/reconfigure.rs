//! Reloading the configuration of running nodes (SIGHUP): what is kept,
//! what is redone, and that a config the node cannot apply changes nothing.
//! Most tests run under both protocols.

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SecretKey;
use sasyncd_core::node::{
    IkeMode, NodeError, Reconfigured, RoleChange, SessionPhase, SessionReset,
};
use sasyncd_core::state::RunState;
use sasyncd_tests::harness::{addr, config, TestWorld, World, KEY, MASTER};
use sasyncd_tests::msgs::{esp_add, ip, ip4};

const BOTH: [&str; 2] = ["v2", "legacy"];
/// Another 16-byte key.
const KEY2: &str = "another-test-key";

/// Master 0 and slave 1, locked.
fn pair(proto: &str) -> World {
    TestWorld::new(vec![
        config(0, 2, &format!("mode master\nprotocol {proto}")),
        config(1, 2, &format!("mode slave\nprotocol {proto}")),
    ])
}

fn add_some(w: &mut World, node: usize, n: u32, net: u32) {
    for k in 0..n {
        let spi = w.next_spi();
        w.ike_write(node, &esp_add(spi, ip("192.0.2.1"), ip4(net + k)));
    }
}

#[test]
fn unchanged_config_changes_nothing() {
    for proto in BOTH {
        let mut w = pair(proto);
        w.run_for(3000);
        add_some(&mut w, 0, 3, 0xc633_6400);
        w.run_for(500);
        assert!(w.synced(0, 1), "{proto}");
        let before: Vec<_> = (0..2).map(|i| (w.peers(i), w.stats(i))).collect();
        let dialled: Vec<_> = (0..2).map(|i| w.lan.hosts[i].dialled.len()).collect();
        let demoted: Vec<_> = (0..2).map(|i| w.lan.hosts[i].demoted).collect();
        for i in 0..2 {
            let cfg = w.nodes[i].config.clone();
            let r = w.reconfigure(i, cfg).expect("same config applies");
            assert_eq!(
                r,
                Reconfigured {
                    peers_kept: 1,
                    ..Reconfigured::default()
                },
                "{proto}"
            );
            assert!(!r.changed(), "{proto}");
            assert_eq!(r.to_string(), "reloaded: 1 peer kept, 0 added, 0 removed");
        }
        w.run_for(5000);
        for i in 0..2 {
            let (peers, stats) = &before[i];
            let now = w.peers(i);
            assert_eq!(
                now[0].stats.up_since, peers[0].stats.up_since,
                "{proto}: node {i}'s session kept"
            );
            assert_eq!(
                now[0].stats.reconnects, peers[0].stats.reconnects,
                "{proto}"
            );
            assert_eq!(
                now[0].stats.snapshots_sent, peers[0].stats.snapshots_sent,
                "{proto}"
            );
            assert_eq!(
                now[0].stats.snapshots_received, peers[0].stats.snapshots_received,
                "{proto}"
            );
            assert_eq!(
                w.lan.hosts[i].dialled.len(),
                dialled[i],
                "{proto}: node {i} dialled nobody"
            );
            assert_eq!(
                w.lan.hosts[i].demoted, demoted[i],
                "{proto}: no demotion raised"
            );
            let s = w.stats(i);
            assert!(!s.demote_held, "{proto}");
            assert_eq!(s.run_state_since, stats.run_state_since, "{proto}");
            assert_eq!(
                s.counters.snapshots_started, stats.counters.snapshots_started,
                "{proto}"
            );
        }
        add_some(&mut w, 0, 1, 0xc633_6500);
        w.run_for(500);
        assert!(w.synced(0, 1), "{proto}: still syncing");
    }
}

#[test]
fn an_added_peer_is_dialled_and_synced() {
    for proto in BOTH {
        // Node 2 knows both, but neither knows it yet.
        let mut w = TestWorld::new(vec![
            config(0, 2, &format!("mode master\nprotocol {proto}")),
            config(1, 2, &format!("mode slave\nprotocol {proto}")),
            config(2, 3, &format!("mode slave\nprotocol {proto}")),
        ]);
        w.run_for(3000);
        add_some(&mut w, 0, 4, 0xc633_6400);
        w.run_for(500);
        assert!(w.synced(0, 1), "{proto}");
        assert_eq!(
            w.lan.hosts[2].kernel.sa_count(),
            0,
            "{proto}: refused as unknown"
        );
        assert!(w.stats(0).counters.rejected_unknown > 0, "{proto}");
        let up = w.peers(0)[0].stats.up_since;
        let r = w
            .reconfigure(0, config(0, 3, &format!("mode master\nprotocol {proto}")))
            .unwrap();
        assert_eq!(
            (r.peers_kept, r.peers_added, r.peers_removed),
            (1, 1, 0),
            "{proto}"
        );
        assert!(r.sessions_reset.is_none(), "{proto}");
        w.settle();
        assert_eq!(
            w.lan.hosts[0].dialled.last(),
            Some(&addr(2)),
            "{proto}: dialled at once"
        );
        w.run_for(5000);
        let p = w.peers(0);
        assert_eq!(p[1].addr, addr(2), "{proto}");
        assert_eq!(p[1].phase, SessionPhase::Up, "{proto}");
        assert_eq!(
            p[0].stats.up_since, up,
            "{proto}: the kept peer's session is untouched"
        );
        assert!(w.synced(0, 2), "{proto}: the new peer got a snapshot");
        add_some(&mut w, 0, 2, 0xc633_6500);
        w.run_for(500);
        assert!(w.synced(0, 1) && w.synced(0, 2), "{proto}: both follow");
    }
}

/// A config for node `i` listing exactly `peers`, plus `extra`.
fn peers_config(peers: &[usize], extra: &str) -> Vec<u8> {
    let mut s = String::new();
    for &j in peers {
        s += &format!("peer {}\n", addr(j));
    }
    // A statement may appear once: `extra` replaces the key or interface.
    if !extra.contains("sharedkey ") {
        s += &format!("sharedkey {KEY}\n");
    }
    if !extra.contains("interface ") {
        s += "interface carp0\n";
    }
    s += &format!("{extra}\n");
    s.into_bytes()
}

#[test]
fn a_removed_peer_is_disconnected_and_never_redialled() {
    for proto in BOTH {
        // Node 2 lists the master second.
        let mut w = TestWorld::new(vec![
            config(0, 3, &format!("mode master\nprotocol {proto}")),
            config(1, 3, &format!("mode slave\nprotocol {proto}")),
            peers_config(&[1, 0], &format!("mode slave\nprotocol {proto}")),
        ]);
        w.run_for(3000);
        add_some(&mut w, 0, 2, 0xc633_6400);
        w.run_for(500);
        assert!(w.synced(0, 1) && w.synced(0, 2), "{proto}");
        let up = w.peers(0)[1].stats.up_since;
        let up2 = w.peers(2)[1].stats.up_since;
        let rejected = w.stats(0).counters.rejected_unknown;
        // Node 0 drops node 1: node 2 moves to the first place of its table.
        let r = w
            .reconfigure(
                0,
                peers_config(&[2], &format!("mode master\nprotocol {proto}")),
            )
            .unwrap();
        assert_eq!(
            (r.peers_kept, r.peers_added, r.peers_removed),
            (1, 0, 1),
            "{proto}"
        );
        // Node 2 drops node 1 too: its master moves to the first place.
        let r = w
            .reconfigure(
                2,
                peers_config(&[0], &format!("mode slave\nprotocol {proto}")),
            )
            .unwrap();
        assert_eq!(
            (r.peers_kept, r.peers_added, r.peers_removed),
            (1, 0, 1),
            "{proto}"
        );
        let dialled = w.lan.hosts[0].dialled.len();
        let bytes = w.peers(0)[0].stats.bytes_out;
        w.run_for(20_000);
        let p = w.peers(0);
        assert_eq!(p.len(), 1, "{proto}");
        assert_eq!(p[0].addr, addr(2), "{proto}");
        assert_eq!(
            p[0].stats.up_since, up,
            "{proto}: the kept peer's session is untouched"
        );
        assert_eq!(w.peers(2)[0].stats.up_since, up2, "{proto}: on both sides");
        assert!(
            !w.lan.hosts[0].dialled[dialled..].contains(&addr(1)),
            "{proto}: never redialled"
        );
        assert!(!w.peers(1)[0].connected, "{proto}: node 1 lost node 0");
        assert!(
            w.stats(0).counters.rejected_unknown > rejected,
            "{proto}: node 1's redials are refused"
        );
        add_some(&mut w, 0, 1, 0xc633_6500);
        w.run_for(500);
        assert!(
            w.synced(0, 2),
            "{proto}: the kept peer is fed where it moved"
        );
        assert!(
            w.peers(0)[0].stats.bytes_out > bytes,
            "{proto}: and counted there"
        );
        assert_eq!(
            w.lan.hosts[1].kernel.sa_count(),
            2,
            "{proto}: node 1 is no longer fed"
        );
        assert_eq!(w.peers(2)[0].stats.reconnects, 0, "{proto}");
    }
}

#[test]
fn a_new_key_resets_sessions_and_they_come_back_with_it() {
    for proto in BOTH {
        let mut w = pair(proto);
        w.run_for(3000);
        add_some(&mut w, 0, 2, 0xc633_6400);
        w.run_for(500);
        let up = w.peers(0)[0].stats.up_since;
        let snaps = w.stats(0).counters.snapshots_started;
        let r = w
            .reconfigure(
                0,
                config(
                    0,
                    2,
                    &format!("mode master\nprotocol {proto}\nsharedkey {KEY2}"),
                ),
            )
            .unwrap();
        assert_eq!(r.sessions_reset, Some(SessionReset::SharedKey), "{proto}");
        assert_eq!(r.peers_kept, 1, "{proto}");
        assert!(
            r.to_string()
                .contains("shared key changed: all sessions reset"),
            "{proto}: {r}"
        );
        assert!(!w.peers(0)[0].connected, "{proto}: closed at once");
        // Until node 1 has the new key too, nothing gets through.
        add_some(&mut w, 0, 1, 0xc633_6500);
        w.run_for(3000);
        assert_eq!(w.lan.hosts[1].kernel.sa_count(), 2, "{proto}");
        let e = w.peers(1)[0].stats.errors;
        if proto == "v2" {
            assert!(!w.peers(0)[0].connected, "{proto}");
        }
        // The acceptor sees the bad CONFIRM (legacy: the bad first frame),
        // on a connection anyone could have made from the peer's address:
        // counted as a rejected frame, not against the peer.
        let rejected = w.stats(0).counters.rejected_frames + w.stats(1).counters.rejected_frames;
        assert!(rejected > 0, "{proto}: {e:?}");
        let r = w
            .reconfigure(
                1,
                config(
                    1,
                    2,
                    &format!("mode slave\nprotocol {proto}\nsharedkey {KEY2}"),
                ),
            )
            .unwrap();
        assert_eq!(r.sessions_reset, Some(SessionReset::SharedKey), "{proto}");
        w.run_for(5000);
        for i in 0..2 {
            let p = w.peers(i);
            assert!(p[0].connected, "{proto}: node {i} is back");
            assert!(p[0].stats.up_since > up, "{proto}: a new session");
        }
        assert!(w.synced(0, 1), "{proto}: in sync under the new key");
        if proto == "v2" {
            assert_eq!(
                w.stats(0).counters.snapshots_started,
                snaps,
                "{proto}: the slave resumed from the ring"
            );
        }
        add_some(&mut w, 0, 1, 0xc633_6600);
        w.run_for(500);
        assert!(w.synced(0, 1), "{proto}");
    }
}

#[test]
fn a_new_protocol_resets_sessions_and_they_come_back_with_it() {
    let mut w = pair("v2");
    w.run_for(3000);
    add_some(&mut w, 0, 2, 0xc633_6400);
    w.run_for(500);
    let r0 = w
        .reconfigure(0, config(0, 2, "mode master\nprotocol legacy"))
        .unwrap();
    let r1 = w
        .reconfigure(1, config(1, 2, "mode slave\nprotocol legacy"))
        .unwrap();
    assert_eq!(r0.sessions_reset, Some(SessionReset::Protocol));
    assert_eq!(r1.sessions_reset, Some(SessionReset::Protocol));
    add_some(&mut w, 0, 1, 0xc633_6500);
    w.run_for(5000);
    assert!(w.peers(1)[0].connected);
    assert!(w.synced(0, 1), "legacy now");
    add_some(&mut w, 0, 1, 0xc633_6600);
    w.run_for(500);
    assert!(w.synced(0, 1));
}

#[test]
fn a_config_that_cannot_be_applied_changes_nothing() {
    for proto in BOTH {
        let mut w = pair(proto);
        w.run_for(3000);
        add_some(&mut w, 0, 2, 0xc633_6400);
        w.run_for(500);
        let before = (w.peers(0), w.stats(0), w.lan.hosts[0].dialled.len());
        // Five peers (the harness node holds four), with a new key and role
        // that must not be applied either.
        let mut many = String::new();
        for k in 1..=5 {
            many += &format!("peer 10.0.1.{k}\n");
        }
        let too_many = config(
            0,
            2,
            &format!("{many}mode slave\nprotocol {proto}\nsharedkey {KEY2}"),
        );
        assert_eq!(
            w.reconfigure(0, too_many),
            Err(NodeError::TooManyPeers),
            "{proto}"
        );
        let named = config(
            0,
            2,
            &format!("peer gw3.example\nmode master\nprotocol {proto}"),
        );
        assert_eq!(
            w.reconfigure(0, named),
            Err(NodeError::PeerNotAddress),
            "{proto}"
        );
        // A key no protocol takes (the parser never makes one).
        let mut cfg =
            Config::parse(&config(0, 2, &format!("mode master\nprotocol {proto}"))).unwrap();
        cfg.sharedkey = SecretKey::new(b"short key").unwrap();
        let now = w.lan.now;
        assert_eq!(
            w.node(0).reconfigure(now, &cfg).err(),
            Some(NodeError::BadKey),
            "{proto}"
        );
        w.settle();
        assert_eq!(w.peers(0), before.0, "{proto}: peers untouched");
        assert_eq!(w.stats(0), before.1, "{proto}: node untouched");
        assert_eq!(w.lan.hosts[0].dialled.len(), before.2, "{proto}");
        add_some(&mut w, 0, 1, 0xc633_6500);
        w.run_for(500);
        assert!(w.synced(0, 1), "{proto}: runs on with the old config");
    }
}

#[test]
fn a_master_keeps_its_ring_and_an_in_sync_slave_needs_no_snapshot() {
    for proto in BOTH {
        let mut w = pair(proto);
        w.run_for(3000);
        add_some(&mut w, 0, 3, 0xc633_6400);
        w.run_for(500);
        assert!(w.synced(0, 1), "{proto}");
        let (m, s) = (w.stats(0), w.stats(1));
        let (mp, sp) = (w.peers(0), w.peers(1));
        // Policy, IKE control and one more (unreachable) peer change on the
        // master; the slave's policy changes too.
        let r = w
            .reconfigure(
                0,
                config(
                    0,
                    2,
                    &format!("peer 10.0.9.9\nmode master\nmode skipslave\nflushmode never\ncontrol all\nprotocol {proto}"),
                ),
            )
            .unwrap();
        assert!(r.policy_changed && r.control_changed, "{proto}: {r}");
        assert_eq!((r.peers_kept, r.peers_added), (1, 1), "{proto}");
        assert_eq!(r.role, None, "{proto}");
        let r = w
            .reconfigure(
                1,
                config(
                    1,
                    2,
                    &format!("mode slave\nflushmode sync\nprotocol {proto}"),
                ),
            )
            .unwrap();
        assert!(r.policy_changed, "{proto}");
        w.run_for(3000);
        assert_eq!(w.run_state(0), RunState::Master, "{proto}");
        assert_eq!(w.lan.hosts[0].ike, Some(IkeMode::Active), "{proto}");
        let (m2, s2) = (w.stats(0), w.stats(1));
        assert_eq!(m2.position, m.position, "{proto}: same epoch, same head");
        assert_eq!(m2.ring, m.ring, "{proto}: the ring is kept");
        assert_eq!(
            m2.counters.snapshots_started, m.counters.snapshots_started,
            "{proto}"
        );
        assert_eq!(
            s2.position, s.position,
            "{proto}: the slave's position is kept"
        );
        assert_eq!(
            w.peers(0)[0].stats.up_since,
            mp[0].stats.up_since,
            "{proto}"
        );
        assert_eq!(
            w.peers(1)[0].stats.snapshots_received,
            sp[0].stats.snapshots_received,
            "{proto}"
        );
        add_some(&mut w, 0, 2, 0xc633_6500);
        w.run_for(500);
        assert!(w.synced(0, 1), "{proto}: deltas flow on");
        assert_eq!(
            w.stats(0).counters.snapshots_started,
            m.counters.snapshots_started,
            "{proto}: without a snapshot"
        );
        if proto == "v2" {
            assert_eq!(w.peers(0)[0].stats.lag, 0, "{proto}");
            assert_eq!(w.stats(1).position.epoch, m.position.epoch, "{proto}");
        }
    }
}

#[test]
fn locking_mode_master_makes_a_tracking_backup_master_and_unlocking_asks_carp() {
    for proto in BOTH {
        let mut w = TestWorld::new(
            (0..2)
                .map(|i| config(i, 2, &format!("protocol {proto}")))
                .collect(),
        );
        w.set_link(0, MASTER);
        w.run_for(3000);
        assert_eq!(w.run_state(1), RunState::Slave, "{proto}");
        let demoted = w.lan.hosts[1].demoted;
        let r = w
            .reconfigure(1, config(1, 2, &format!("mode master\nprotocol {proto}")))
            .unwrap();
        assert_eq!(
            r.role,
            Some(RoleChange::Locked(RunState::Master)),
            "{proto}"
        );
        assert!(
            r.to_string().contains("role locked to MASTER"),
            "{proto}: {r}"
        );
        assert_eq!(w.run_state(1), RunState::Master, "{proto}: at once");
        w.settle();
        let s = w.stats(1);
        assert!(s.locked, "{proto}");
        assert!(w.promisc(1), "{proto}");
        assert_eq!(w.lan.hosts[1].ike, Some(IkeMode::Active), "{proto}");
        assert_eq!(s.ike_confirmed, Some(IkeMode::Active), "{proto}");
        assert_eq!(
            w.lan.hosts[1].demoted, demoted,
            "{proto}: no demotion raised"
        );
        // Back to tracking: carp (still BACKUP) decides.
        let rechecks = w.lan.hosts[1].rechecks;
        let r = w
            .reconfigure(1, config(1, 2, &format!("protocol {proto}")))
            .unwrap();
        assert_eq!(r.role, Some(RoleChange::Unlocked), "{proto}");
        w.settle();
        assert_eq!(
            w.lan.hosts[1].rechecks,
            rechecks + 1,
            "{proto}: carp re-read"
        );
        assert_eq!(w.run_state(1), RunState::Slave, "{proto}");
        assert!(!w.stats(1).locked, "{proto}");
        // Another carp interface is read at once.
        let r = w
            .reconfigure(
                1,
                config(1, 2, &format!("interface carp1\nprotocol {proto}")),
            )
            .unwrap();
        assert!(r.interface_changed && r.role.is_none(), "{proto}");
        w.settle();
        assert_eq!(w.lan.hosts[1].rechecks, rechecks + 2, "{proto}");
        w.run_for(3000);
        assert!(w.synced(0, 1), "{proto}");
    }
}

#[test]
fn listen_and_group_changes_are_left_to_the_platform() {
    let mut w = pair("v2");
    w.run_for(3000);
    let up = w.peers(0)[0].stats.up_since;
    let r = w
        .reconfigure(
            0,
            config(0, 2, "mode master\nlisten on 10.0.0.1\ngroup other"),
        )
        .unwrap();
    assert!(r.listen_changed && r.group_changed && r.needs_platform());
    assert_eq!(
        r.to_string(),
        "reloaded: 1 peer kept, 0 added, 0 removed; listen address changed: restart to apply; carp group changed: restart to apply"
    );
    // A new listen port moves the peers that use it: they are new peers.
    let r = w
        .reconfigure(
            0,
            config(
                0,
                2,
                "mode master\nlisten on 10.0.0.1 port 4500\ngroup other",
            ),
        )
        .unwrap();
    assert_eq!((r.peers_kept, r.peers_added, r.peers_removed), (0, 1, 1));
    assert_eq!(w.peers(0)[0].port, 4500);
    assert!(w.peers(0)[0].stats.up_since != up);
}

#[test]
fn a_node_that_shuts_down_takes_no_new_config() {
    let mut w = pair("v2");
    w.run_for(1000);
    let now = w.lan.now;
    w.node(0).handle_shutdown(now);
    let cfg = w.nodes[0].config.clone();
    assert_eq!(w.reconfigure(0, cfg), Err(NodeError::ShuttingDown));
}
