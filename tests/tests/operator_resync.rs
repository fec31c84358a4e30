//! `Node::request_resync` (what `sasyncctl resync` asks): a slave whose
//! tables were damaged behind its back gets a full snapshot from its
//! master on request, in both protocols; the request is refused where it
//! makes no sense.

use sasyncd_core::config::Protocol;
use sasyncd_core::node::ResyncError;
use sasyncd_core::state::RunState;
use sasyncd_tests::harness::{addr, config, TestWorld, World};
use sasyncd_tests::in_core;
use sasyncd_tests::msgs::{esp_add, esp_delete, ip, ip4};

/// Master 0 with three SAs, slaves 1 and 2 in sync with it.
fn cluster(proto: &str) -> World {
    let mut w = TestWorld::new(vec![
        config(0, 3, &format!("mode master\nprotocol {proto}")),
        config(1, 3, &format!("mode slave\nprotocol {proto}")),
        config(2, 3, &format!("mode slave\nprotocol {proto}")),
    ]);
    for k in 0..3 {
        let spi = w.next_spi();
        let m = esp_add(spi, ip("192.0.2.1"), ip4(0xc633_6400 + k));
        w.lan.hosts[0].kernel.manual_write(&m).unwrap();
    }
    w.run_for(5000);
    assert!(w.synced(0, 1) && w.synced(0, 2), "{proto}");
    w
}

fn snapshots_received(w: &mut World, i: usize) -> u32 {
    w.peers(i)[0].stats.snapshots_received
}

#[test]
fn a_damaged_slave_is_repaired_on_request() {
    for proto in ["v2", "legacy"] {
        let mut w = cluster(proto);
        let want = if proto == "v2" {
            Protocol::V2
        } else {
            Protocol::Legacy
        };
        assert_eq!(in_core!(w.node(1).protocol()), want);
        // Someone deletes an SA on slave 1 by hand.
        let spi = 0x1001;
        let del = esp_delete(spi, ip("192.0.2.1"), ip4(0xc633_6400));
        w.lan.hosts[1].kernel.manual_write(&del).unwrap();
        assert!(!w.synced(0, 1), "{proto}: the damage shows");
        let before = snapshots_received(&mut w, 1);
        let now = w.lan.now;
        let asked = in_core!(w.node(1).request_resync(now, None));
        assert_eq!(asked, Ok(addr(0)), "{proto}");
        w.run_for(5000);
        assert!(w.synced(0, 1), "{proto}: repaired");
        assert!(snapshots_received(&mut w, 1) > before, "{proto}");
        assert_eq!(w.run_state(1), RunState::Slave);
        assert!(w.synced(0, 2), "{proto}: the other slave is untouched");
    }
}

#[test]
fn naming_the_master_works_and_anyone_else_is_refused() {
    let mut w = cluster("v2");
    let now = w.lan.now;
    assert_eq!(
        in_core!(w.node(1).request_resync(now, Some(addr(0)))),
        Ok(addr(0))
    );
    assert_eq!(
        in_core!(w.node(1).request_resync(now, Some(addr(2)))),
        Err(ResyncError::NotMaster(addr(2))),
        "a slave is no master"
    );
    assert_eq!(
        in_core!(w.node(1).request_resync(now, Some(ip("192.0.2.99")))),
        Err(ResyncError::UnknownPeer(ip("192.0.2.99")))
    );
    assert_eq!(
        in_core!(w.node(0).request_resync(now, None)),
        Err(ResyncError::Master)
    );
    let started = w.stats(0).counters.resyncs;
    w.run_for(3000);
    assert!(
        w.stats(0).counters.resyncs > started,
        "the master honoured it"
    );
    assert!(w.synced(0, 1));
}

#[test]
fn without_a_master_nobody_is_asked() {
    let mut w = cluster("v2");
    w.crash(0);
    w.run_for(2000);
    let now = w.lan.now;
    assert_eq!(
        in_core!(w.node(1).request_resync(now, None)),
        Err(ResyncError::NoMaster)
    );
    let e = in_core!(w.node(1).request_resync(now, Some(addr(0)))).unwrap_err();
    assert_eq!(e, ResyncError::NotMaster(addr(0)));
    assert_eq!(
        e.to_string(),
        format!("peer {} is not a connected master", addr(0))
    );
}
