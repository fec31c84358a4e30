//! End to end, failover: a master killed with SIGKILL and a slave taking
//! over with every SA, the old master's return as a slave; a carp
//! switchover with both daemons running; a third gateway, in sync with
//! the dead master, resuming with the new one without a snapshot.

use sasyncd_tests::cluster::{Cluster, Options};

fn pair() -> Cluster {
    let mut c = Cluster::new(2, &[Options::default(), Options::default()]);
    c.carp(0, "master");
    c.start(0);
    c.start(1);
    c
}

#[test]
fn master_killed_slave_takes_over_old_master_resyncs() {
    let mut c = pair();
    for _ in 0..5 {
        c.host(0, "add-sa");
    }
    c.wait_synced(0, 1);
    // kill -9 the master's daemon; carp makes the slave master.
    c.kill9(0);
    c.carp(0, "backup");
    c.carp(1, "master");
    c.wait("the slave to become master", |c| {
        c.show(1).get("state").map(String::as_str) == Some("MASTER")
    });
    assert_eq!(c.counts(1).0, 10, "the new master holds every SA");
    assert_eq!(c.host_status(1, "ike"), "active");
    // The new master negotiates more; the old one returns as a slave.
    c.host(1, "add-sa");
    c.start(0);
    c.wait_synced(1, 0);
    assert_eq!(c.counts(0).0, 12);
    assert_eq!(c.show(0)["state"], "SLAVE");
    assert_eq!(c.host_status(0, "ike"), "passive");
}

#[test]
fn a_carp_switchover_turns_the_sync_around() {
    let c = pair();
    for _ in 0..3 {
        c.host(0, "add-sa");
    }
    c.host(0, "add-flow");
    c.wait_synced(0, 1);
    assert_eq!(c.host_status(0, "ike"), "active");
    // carp moves the master role; both daemons keep running.
    c.carp(0, "backup");
    c.carp(1, "master");
    c.wait("the roles to swap", |c| {
        c.show(1).get("state").map(String::as_str) == Some("MASTER")
            && c.show(0).get("state").map(String::as_str) == Some("SLAVE")
    });
    c.wait("the IKE daemons to follow the roles", |c| {
        c.host_status(1, "ike") == "active" && c.host_status(0, "ike") == "passive"
    });
    // What the new master negotiates and deletes reaches the old one.
    let spis = c.host(1, "add-sa");
    c.host(1, "add-flow src=172.16.7.0/24");
    c.wait_synced(1, 0);
    assert_eq!(c.counts(0), (8, 2));
    let first = spis.split_whitespace().next().expect("an spi").to_string();
    c.host(1, &format!("delete-sa {first}"));
    c.wait_synced(1, 0);
    assert_eq!(
        c.counts(0),
        (7, 2),
        "a delete on the new master reaches the old one"
    );
    c.wait("the old master to follow the new one", |c| {
        c.following(0) == Some((c.gw[1].addr.to_string(), true))
    });
}

/// Without pfsync(4) a failover breaks replay-protected SAs: the daemon
/// warns at start-up and its status says so; once pfsync is up, the next
/// reload (or the minute's check) finds it and the status follows.
#[test]
fn pfsync_down_is_warned_about_and_reported() {
    let mut c = Cluster::new(2, &[Options::default(), Options::default()]);
    c.carp(0, "master");
    c.host(0, "pfsync down");
    c.start(0);
    c.start(1);
    c.wait_log(0, &["no pfsync interface is up"]);
    c.wait("the master's status to say pfsync is down", |c| {
        c.show(0).get("pfsync").map(String::as_str) == Some("false")
    });
    assert!(
        c.log_lines(1, "pfsync").is_empty(),
        "the slave has pfsync: no warning"
    );
    c.wait("the slave's status to say pfsync is up", |c| {
        c.show(1).get("pfsync").map(String::as_str) == Some("true")
    });
    c.host(0, "pfsync up");
    c.ctl(0, &["reload"]).expect("reload");
    c.wait_log(0, &["a pfsync interface is up again"]);
    assert_eq!(c.show(0)["pfsync"], "true");
    let text = c.ctl(0, &["show"]).expect("show");
    assert!(text.contains("pfsync"), "{text}");
}

/// A slave that was in sync with the old master resumes with the new one
/// at its position and is checked by an immediate digest, instead of
/// receiving every SA again.
#[test]
fn an_in_sync_slave_resumes_with_the_new_master_without_a_snapshot() {
    let opts = Options::default();
    let mut c = Cluster::new(3, &[opts.clone(), opts.clone(), opts]);
    c.carp(0, "master");
    c.host(0, "bulk-sa 2000");
    for i in 0..3 {
        c.start(i);
    }
    c.wait_synced(0, 1);
    c.wait_synced(0, 2);
    c.wait_log(2, &["in sync with master"]);
    let snapshot = c.peer_count(0, c.gw[2].addr, "bytes_out");

    c.kill9(0);
    c.carp(0, "backup");
    c.carp(1, "master");
    let (b, cc) = (c.gw[1].addr.to_string(), c.gw[2].addr.to_string());
    c.wait_log(1, &[&format!("peer {cc}: resuming from our position")]);
    c.wait_log(2, &[&format!("master {b} resumed us at another position")]);
    // What the new master negotiates reaches the slave as a delta.
    c.host(1, "add-sa single");
    c.wait_synced(1, 2);
    c.wait("the new master's digest to find the slave in sync", |c| {
        c.counter(2, "digests_matched") >= 1
    });
    assert_eq!(c.counter(1, "snapshots_started"), 0, "no full snapshot");
    assert_eq!(c.counter(2, "digest_mismatches"), 0);
    let moved = c.peer_count(1, c.gw[2].addr, "bytes_out");
    eprintln!("failover: the new master sent {moved} bytes; the old one's snapshot was {snapshot}");
    assert!(
        moved * 100 < snapshot,
        "the new master sent {moved} bytes, the snapshot was {snapshot}: 1 % or more"
    );
}
