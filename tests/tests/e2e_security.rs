//! End to end, the adversary's view: a gateway with another shared key,
//! a connection from an address that is no peer, and bytes from a socket
//! that claims a peer's address (garbage, a frame too short for its type,
//! an oversized length, our own HELLO reflected, an authentic frame sent
//! twice, a recorded session replayed). Each is refused where it comes in,
//! counted and logged, and the real peer keeps being served.

use std::io::Write;
use std::net::Ipv4Addr;

use nix::sys::signal::Signal;
use sasyncd_core::ctl::Ctl;
use sasyncd_core::state::RunState;
use sasyncd_core::wire::v2::HELLO_LEN;
use sasyncd_tests::cluster::{Cluster, Options, KEY};
use sasyncd_tests::raw::{connect_from, random_bytes, read_exact, read_until_closed, V2Peer};

/// A master (0) and a slave (1) in sync, with SAs.
fn synced_pair() -> Cluster {
    let mut c = Cluster::new(2, &[Options::default(), Options::default()]);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    c.start(1);
    c.wait_synced(0, 1);
    c
}

/// A live change on the master still reaches the slave.
fn still_served(c: &Cluster, what: &str) {
    let before = c.counts(0).0;
    c.host(0, "add-sa single");
    c.wait(
        &format!("a live change to reach the slave after {what}"),
        |c| c.counts(1).0 == before + 1 && c.digest(0) == c.digest(1),
    );
}

#[test]
fn a_gateway_with_another_key_is_refused_by_name_and_gets_nothing() {
    let other = Options {
        key: "another-key-16by".into(),
        ..Options::default()
    };
    let mut c = Cluster::new(2, &[Options::default(), other]);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    c.host(0, "add-flow");
    c.start(1);
    let (master, slave) = (c.gw[0].addr, c.gw[1].addr);
    let failed = "key confirmation failed: the peer has a different shared key";
    c.wait_log(0, &[&format!("peer {slave}"), failed]);
    c.wait_log(1, &[&format!("peer {master}"), failed]);
    c.wait("both to count the failure as a wrong key", |c| {
        c.peer_errors(0, slave, "wrong_key") > 0 && c.peer_errors(1, master, "wrong_key") > 0
    });
    // Let it retry a while: still nothing reaches the slave.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(c.counts(0), (2, 1), "the master holds its SAs and flow");
    assert_eq!(
        c.counts(1),
        (0, 0),
        "a slave with another key must apply nothing"
    );
    assert_eq!(c.peer_view(1, master)["snapshots_received"], "0");
    assert_eq!(c.show(1)["following"], "none");
    assert_eq!(c.counter(1, "applied"), 0, "the slave applied nothing");
}

#[test]
fn a_connection_from_an_unconfigured_address_is_refused() {
    let c = synced_pair();
    let stranger = Ipv4Addr::from(u32::from(c.gw[1].addr) + 7);
    let before = c.counter(0, "rejected_unknown");
    let mut s = connect_from(stranger, c.endpoint(0));
    let got = read_until_closed(&mut s);
    assert!(
        got.is_empty(),
        "the daemon must send nothing to a stranger, sent {} bytes",
        got.len()
    );
    c.wait_log(
        0,
        &[&format!(
            "connection from {stranger} refused: not a configured peer"
        )],
    );
    assert_eq!(
        c.counter(0, "rejected_unknown"),
        before + 1,
        "counter rejected_unknown counts the stranger once"
    );
    still_served(&c, "a stranger's connection");
    assert_eq!(c.peer_view(0, c.gw[1].addr)["connected"], "true");
}

/// Connects "as" the slave to the master, sends `bytes`, and checks the
/// master closes that connection, counts a rejected frame and logs
/// `says`, but records no error of `kind` against the slave (anyone can
/// connect from its address); the real slave is still served.
fn refused_as_peer(c: &Cluster, bytes: &[u8], kind: &str, says: &str) {
    let slave = c.gw[1].addr;
    let frames = c.counter(0, "rejected_frames");
    let errors = c.peer_errors(0, slave, kind);
    let mut s = connect_from(slave, c.endpoint(0));
    s.write_all(bytes).expect("send to the master");
    read_until_closed(&mut s);
    c.wait(&format!("the master to count the refusal ({says})"), |c| {
        c.counter(0, "rejected_frames") > frames
    });
    c.wait_log(0, &[&format!("peer {slave}: closing connection: {says}")]);
    assert_eq!(
        c.peer_errors(0, slave, kind),
        errors,
        "an unauthenticated connection's failure was recorded against the peer"
    );
    still_served(c, says);
}

#[test]
fn garbage_as_a_peer_is_refused() {
    let c = synced_pair();
    let mut junk = random_bytes(512);
    junk[0] = 0xff; // neither the v2 magic nor a legacy length
    refused_as_peer(&c, &junk, "malformed", "not a v2 frame (bad magic)");
}

#[test]
fn a_frame_shorter_than_its_type_is_refused() {
    let c = synced_pair();
    // A HELLO header announcing 40 bytes: a HELLO has 84.
    let mut f = b"SASY\x02\x01\x00\x28".to_vec();
    f.resize(40, 0);
    refused_as_peer(&c, &f, "malformed", "v2 frame length 40 out of range");
}

#[test]
fn an_oversized_length_is_refused_before_it_is_buffered() {
    let c = synced_pair();
    // A CTL header announcing 65535 bytes (at most 4144 exist); only the
    // header is sent, so the daemon must refuse it from the header alone.
    refused_as_peer(
        &c,
        b"SASY\x02\x03\xff\xff",
        "oversize",
        "v2 frame length 65535 out of range",
    );
}

#[test]
fn the_daemons_own_hello_reflected_is_refused() {
    let c = synced_pair();
    let slave = c.gw[1].addr;
    let auth = c.peer_errors(0, slave, "auth");
    let frames = c.counter(0, "rejected_frames");
    let mut s = connect_from(slave, c.endpoint(0));
    let hello = read_exact(&mut s, HELLO_LEN);
    s.write_all(&hello).expect("send the HELLO back");
    read_until_closed(&mut s);
    c.wait("the reflection to count as a rejected frame", |c| {
        c.counter(0, "rejected_frames") > frames
    });
    assert_eq!(
        c.peer_errors(0, slave, "auth"),
        auth,
        "a stranger's reflection was recorded against the peer"
    );
    c.wait_log(
        0,
        &[&format!(
            "peer {slave}: closing connection: our own v2 frame or nonce came back"
        )],
    );
    still_served(&c, "a reflected HELLO");
}

#[test]
fn an_authentic_frame_sent_twice_and_a_replayed_session_are_refused() {
    let c = synced_pair();
    let slave = c.gw[1].addr;
    let frames = c.counter(0, "rejected_frames");
    // Someone with the key, as the slave: the master takes it for the
    // slave restarted (that is what the key vouches for).
    let mut fake = V2Peer::handshake(slave, c.endpoint(0), KEY);
    let frame = fake.send_ctl(&Ctl::State(RunState::Slave));
    fake.send_raw(&frame);
    read_until_closed(&mut fake.stream);
    c.wait_log(
        0,
        &[&format!(
            "peer {slave}: closing connection: replayed v2 frame: sequence 1, expected 2"
        )],
    );
    assert!(
        c.counter(0, "rejected_frames") > frames,
        "the replayed frame counts as rejected"
    );
    // The real slave's session was replaced by the impostor's; it comes
    // back.
    c.wait("the real slave's session to come back", |c| {
        c.peer_view(0, slave)
            .get("state")
            .is_some_and(|s| s == "SLAVE")
            && c.following(1).is_some_and(|(_, streaming)| streaming)
    });
    // The whole session again on a new connection: the master's fresh
    // nonce makes other keys, so the recorded CONFIRM fails.
    // The node cannot tell a replayed handshake from a wrong key: both
    // fail the key confirmation, and the line says so.
    let wrong = c.peer_errors(0, slave, "wrong_key");
    let frames = c.counter(0, "rejected_frames");
    let mut s = connect_from(slave, c.endpoint(0));
    s.write_all(&fake.sent).expect("replay the session");
    read_until_closed(&mut s);
    c.wait("the replayed session to fail its key confirmation", |c| {
        c.counter(0, "rejected_frames") > frames
    });
    c.wait_log(0, &["the handshake was altered or replayed"]);
    assert_eq!(
        c.peer_errors(0, slave, "wrong_key"),
        wrong,
        "a replayed session counted as the (connected) peer's wrong key"
    );
    assert_eq!(
        c.log_lines(0, "closing connection: key confirmation failed")
            .len(),
        1,
        "the replayed session fails its key confirmation"
    );
    still_served(&c, "a replayed frame and a replayed session");
}

#[test]
fn the_shared_key_is_never_logged_even_at_vvvv() {
    let loud = Options {
        verbosity: 4,
        ..Options::default()
    };
    let mut c = Cluster::new(2, &[loud.clone(), loud]);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    c.host(0, "add-flow");
    c.start(1);
    c.wait_synced(0, 1);
    let spi = c.host(0, "add-sa single");
    c.host(0, &format!("delete-sa {}", spi.trim()));
    c.host(0, "add-flow src=172.16.9.0/24");
    c.wait_synced(0, 1);
    // A reload of the same file, then of a broken one.
    c.signal(0, Signal::SIGHUP);
    c.wait_log(0, &["configuration reloaded"]);
    let mut broken = c.config_text(0, &[1]);
    broken.push_str("frobnicate\n");
    c.write_conf(0, &broken);
    c.signal(0, Signal::SIGHUP);
    c.wait_log(0, &["keeping the running configuration"]);
    still_served(&c, "the reloads");
    let hex: String = KEY.bytes().map(|b| format!("{b:02x}")).collect();
    for i in 0..2 {
        let log = c.log(i);
        // Debug lines are there: the logging was verbose.
        assert!(
            log.contains(": announces "),
            "gateway {i} logged no debug lines at -vvvv:\n{log}"
        );
        for (form, needle) in [
            ("as text", KEY.to_string()),
            ("as lower-case hex", hex.clone()),
            ("as upper-case hex", hex.to_uppercase()),
        ] {
            let leaks: Vec<&str> = log.lines().filter(|l| l.contains(&needle)).collect();
            assert!(
                leaks.is_empty(),
                "gateway {i} logged the shared key {form}: {leaks:?}"
            );
        }
    }
}
