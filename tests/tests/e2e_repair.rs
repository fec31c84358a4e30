//! End to end, with real daemon processes (see `sasyncd_tests::cluster`):
//! anti-entropy. A slave whose kernel was changed behind sasyncd's back
//! (an SA deleted by hand, another added) is repaired at the master's next
//! digest, bucket by bucket, without a full snapshot. The master digests
//! every 60 s, so this test takes about a minute.

use std::time::Duration;

use sasyncd_tests::cluster::{Cluster, Options};

/// Bytes the master has sent the slave so far.
fn sent(c: &Cluster) -> u64 {
    c.peer_count(0, c.gw[1].addr, "bytes_out")
}

#[test]
fn a_damaged_slave_is_repaired_by_bucket_at_the_next_digest() {
    let mut c = Cluster::new(2, &[Options::default(), Options::default()]);
    c.carp(0, "master");
    // About a dozen entries per bucket, so that a bucket is a small share
    // of a snapshot.
    c.host(0, "bulk-sa 2000");
    c.start(0);
    c.start(1);
    c.wait_synced(0, 1);
    let spi = c.host(0, "add-sa single");
    let spi = spi.trim().trim_start_matches("spi=").to_string();
    c.wait_synced(0, 1);
    c.wait_log(1, &["in sync with master"]);
    let snapshot = sent(&c);
    let snapshots = c.counter(0, "snapshots_started");

    // Behind sasyncd's back: one of the master's SAs deleted on the slave,
    // one the master never had added there.
    c.host(1, &format!("delete-sa spi={spi}"));
    c.host(1, "add-sa single");
    assert_eq!(c.counts(1), c.counts(0), "one SA gone, one too many");
    assert_ne!(c.digest(0), c.digest(1));
    let before = sent(&c);

    c.wait_up_to(
        Duration::from_secs(90),
        "the next digest to repair the slave",
        |c| !c.log_lines(1, "buckets repaired from master").is_empty(),
    );
    c.wait_synced(0, 1);
    let line = c.wait_log(1, &["our tables differ from the master's in"]);
    assert!(
        line.contains(" 1 of 256 buckets") || line.contains(" 2 of 256 buckets"),
        "only the damaged buckets are asked for: {line}"
    );
    assert_eq!(
        c.counter(0, "snapshots_started"),
        snapshots,
        "no full snapshot"
    );
    assert_eq!(c.counter(1, "digest_mismatches"), 1);
    let moved = sent(&c) - before;
    eprintln!("repair: {moved} bytes to the slave; its snapshot was {snapshot}; {line}");
    assert!(
        moved * 20 < snapshot,
        "the repair moved {moved} bytes, the snapshot {snapshot}: more than 5 %"
    );
}
