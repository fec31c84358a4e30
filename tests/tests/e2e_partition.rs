//! End to end, a network partition (root only; skipped with a message when
//! network namespaces cannot be made): master and slave each run in their
//! own namespace, joined by a veth pair that is cut while the master adds
//! and deletes SAs. When it is restored the slave converges without a full
//! snapshot: over the surviving session after a short cut, and resumed from
//! the master's delta ring when the session was lost.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use sasyncd_tests::cluster::{Cluster, Options};
use sasyncd_tests::netns::NetPair;

/// The pair, or `None` (and a message) where namespaces cannot be made.
fn namespaces() -> Option<NetPair> {
    match NetPair::new() {
        Ok(n) => Some(n),
        Err(e) => {
            sasyncd_tests::skip::skip(&format!("cannot make network namespaces: {e}"));
            None
        }
    }
}

/// Master (0) and slave (1), each in its namespace, in sync with SAs and a
/// flow.
fn split_pair(net: &NetPair) -> Cluster {
    let opts: Vec<Options> = (0..2)
        .map(|i| Options {
            addr: Some(net.addr[i]),
            netns: Some(net.ns[i].clone()),
            ..Options::default()
        })
        .collect();
    let mut c = Cluster::new(2, &opts);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    c.host(0, "add-sa");
    c.host(0, "add-flow");
    c.start(1);
    c.wait_synced(0, 1);
    // Equal tables come before the end of the snapshot (its sweep): wait
    // for the end, so the counts below start from it.
    let master = c.gw[0].addr;
    c.wait("the slave's snapshot to complete", |c| {
        c.show(1).get("syncing").map(String::as_str) == Some("false")
            && snapshots_received(c, master) != "0"
    });
    c
}

/// While the link is cut: the master adds and deletes SAs and adds a
/// flow, and the slave does not see it.
fn change_while_cut(c: &Cluster) {
    let spis = c.host(0, "add-sa");
    let first = spis.split_whitespace().next().expect("an spi").to_string();
    c.host(0, "add-sa single");
    c.host(0, &format!("delete-sa {first}"));
    c.host(0, "add-flow src=172.16.5.0/24");
    assert_eq!(c.counts(0), (6, 2));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.counts(1),
        (4, 1),
        "nothing crosses a cut link: the slave still has the old tables"
    );
}

/// The slave's count of snapshots received from the master.
fn snapshots_received(c: &Cluster, master: Ipv4Addr) -> String {
    c.peer_view(1, master)["snapshots_received"].clone()
}

#[test]
fn a_short_cut_is_bridged_by_the_session_without_a_snapshot() {
    let Some(net) = namespaces() else { return };
    let c = split_pair(&net);
    let master = c.gw[0].addr;
    let started = c.counter(0, "snapshots_started");
    let received = snapshots_received(&c, master);
    let sessions = c.log_lines(1, "session up").len();
    net.cut(1);
    change_while_cut(&c);
    net.restore(1);
    c.wait_synced(0, 1);
    assert_eq!(c.counts(1), (6, 2));
    assert_eq!(
        c.counter(0, "snapshots_started"),
        started,
        "the master sent no new snapshot"
    );
    assert_eq!(
        snapshots_received(&c, master),
        received,
        "the slave received no new snapshot"
    );
    assert_eq!(
        c.log_lines(1, "session up").len(),
        sessions,
        "the session outlived a cut shorter than the liveness limit"
    );
}

/// Ends every TCP connection to or from `peer` in namespace `ns`, as the
/// liveness limit would after a long cut (but at once).
fn kill_connections(ns: &str, peer: Ipv4Addr) {
    let st = Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-K", "dst", &peer.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run ss -K");
    assert!(st.success(), "ss -K in {ns} failed: {st}");
}

#[test]
fn a_lost_session_resumes_from_the_ring_without_a_snapshot() {
    let Some(net) = namespaces() else { return };
    let c = split_pair(&net);
    let (master, slave) = (c.gw[0].addr, c.gw[1].addr);
    let started = c.counter(0, "snapshots_started");
    let resumes = c.counter(0, "ring_resumes");
    let sent = c.peer_view(0, slave)["snapshots_sent"].clone();
    net.cut(1);
    change_while_cut(&c);
    // Both ends lose the session while the link is down.
    kill_connections(&net.ns[1], master);
    kill_connections(&net.ns[0], slave);
    c.wait("the slave to notice the lost session", |c| {
        c.peer_view(1, master)["connected"] == "false"
    });
    net.restore(1);
    c.wait_synced(0, 1);
    assert_eq!(c.counts(1), (6, 2));
    assert!(
        c.counter(0, "ring_resumes") > resumes,
        "the master resumed the slave from its delta ring"
    );
    assert_eq!(
        c.counter(0, "snapshots_started"),
        started,
        "the master started no new snapshot"
    );
    // Not the slave's snapshots_received here: it counts a resume as a
    // snapshot received.
    assert_eq!(
        c.peer_view(0, slave)["snapshots_sent"],
        sent,
        "the master sent the slave no new snapshot"
    );
}
