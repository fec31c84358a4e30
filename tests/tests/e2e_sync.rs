//! End to end, with real daemon processes (see `sasyncd_tests::cluster`):
//! the initial snapshot, live changes of SAs and flows, a slave restarted
//! while the master keeps changing (and deleting) SAs, and the legacy
//! protocol on both ends. Failover is in `e2e_failover.rs`.

use sasyncd_tests::cluster::{Cluster, Options};

fn pair() -> Cluster {
    let mut c = Cluster::new(2, &[Options::default(), Options::default()]);
    c.carp(0, "master");
    c.start(0);
    c.start(1);
    c
}

#[test]
fn initial_snapshot_then_live_changes() {
    // The master holds SAs and a flow before the slave starts.
    let mut c = Cluster::new(2, &[Options::default(), Options::default()]);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    c.host(0, "add-sa");
    c.host(0, "add-flow");
    assert_eq!(c.counts(0), (4, 1));
    // The slave is not there yet: the master says whom it cannot reach.
    c.wait_log(0, &[&format!("peer {}: connect failed", c.gw[1].addr)]);
    c.start(1);
    c.wait_synced(0, 1);
    assert_eq!(c.counts(1), (4, 1));
    c.wait("the slave to release its demotion", |c| {
        c.host_status(1, "demote") == "1"
    });
    // Live: an add and a delete on the master reach the slave.
    let spis = c.host(0, "add-sa single");
    let spi = spis.trim().trim_start_matches("spi=").to_string();
    c.wait_synced(0, 1);
    assert_eq!(c.counts(1), (5, 1));
    c.host(0, &format!("delete-sa spi={spi}"));
    c.wait_synced(0, 1);
    assert_eq!(c.counts(1), (4, 1));
    assert_eq!(c.following(1), Some((c.gw[0].addr.to_string(), true)));
    // The slave's kernel took every write (an OpenBSD kernel refuses a
    // snapshot ADD that keeps X_REPLAY with EPERM, issue 19).
    assert!(c.counter(1, "applied") > 0, "the slave answers");
    assert_eq!(
        c.counter(1, "kernel_errors"),
        0,
        "no kernel errors on the slave"
    );
}

#[test]
fn a_restarted_slave_catches_up_with_a_busy_master() {
    let mut c = pair();
    c.host(0, "add-sa");
    c.wait_synced(0, 1);
    c.kill9(1);
    for _ in 0..5 {
        c.host(0, "add-sa");
    }
    c.host(0, "add-flow");
    c.start(1);
    for _ in 0..5 {
        c.host(0, "add-sa");
    }
    c.wait_synced(0, 1);
    assert_eq!(c.counts(1), (22, 1));
}

#[test]
fn flows_and_deletes_follow_live_and_across_a_slave_restart() {
    let mut c = pair();
    // Live: flows come and go on the slave as on the master.
    c.host(0, "add-flow src=172.16.1.0/24");
    c.host(0, "add-flow src=172.16.2.0/24");
    let spis = c.host(0, "add-sa");
    c.wait_synced(0, 1);
    assert_eq!(c.counts(1), (2, 2), "two SAs and two flows reach the slave");
    c.host(0, "delete-flow src=172.16.1.0/24");
    c.wait_synced(0, 1);
    assert_eq!(c.counts(1), (2, 1), "a deleted flow goes from the slave");
    // While the slave is down the master deletes an SA and a flow and
    // adds others: the returning slave has exactly the master's tables.
    c.kill9(1);
    let first = spis.split_whitespace().next().expect("an spi").to_string();
    c.host(0, &format!("delete-sa {first}"));
    c.host(0, "delete-flow src=172.16.2.0/24");
    c.host(0, "add-flow src=172.16.3.0/24");
    c.host(0, "add-sa single");
    assert_eq!(c.counts(0), (2, 1));
    c.start(1);
    c.wait_synced(0, 1);
    assert_eq!(
        c.counts(1),
        (2, 1),
        "what the master deleted while the slave was down is gone from it"
    );
}

#[test]
fn legacy_protocol_snapshot_and_live_changes() {
    let legacy = Options {
        extra: "protocol legacy".into(),
        ..Options::default()
    };
    let mut c = Cluster::new(2, &[legacy.clone(), legacy]);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    c.host(0, "add-flow");
    let started = std::time::Instant::now();
    c.start(1);
    c.wait_synced(0, 1);
    // The legacy master feeds a new session after 2 s, as the original (a
    // v2 master feeds at once).
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1800),
        "the legacy master fed the new slave after {:?}, not after its 2 s",
        started.elapsed()
    );
    assert_eq!(c.counts(1), (2, 1), "the snapshot reached the legacy slave");
    let spi = c.host(0, "add-sa single");
    c.wait_synced(0, 1);
    assert_eq!(c.counts(1), (3, 1), "a live add reached the legacy slave");
    c.host(0, &format!("delete-sa {}", spi.trim()));
    c.wait_synced(0, 1);
    assert_eq!(
        c.counts(1),
        (2, 1),
        "a live delete reached the legacy slave"
    );
    assert!(c.counter(1, "applied") > 0, "the slave answers");
    assert_eq!(
        c.counter(1, "kernel_errors"),
        0,
        "no kernel errors on the slave"
    );
}
