//! End to end, a storm of connections from a peer's address: anyone can
//! open them (the daemon tells peers apart by source address), so they
//! must neither keep a session from forming nor replace a live one, and
//! the log lines they cause are bounded. Storms are bounded in time and
//! count and go to 127.x addresses only.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sasyncd_tests::cluster::{Cluster, Options};
use sasyncd_tests::raw::{connect_from, random_bytes};

/// A storm in a thread: `per_s` connections a second from `from` to `to`
/// until stopped, `limit` elapsed or `max` made; each sends `payload` and
/// the last `held` stay open.
struct Storm {
    stop: Arc<AtomicBool>,
    made: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Storm {
    /// Four threads share the rate, so that a slow connect does not slow
    /// the storm down.
    fn start(
        from: Ipv4Addr,
        to: SocketAddrV4,
        per_s: u32,
        limit: Duration,
        max: usize,
        payload: Vec<u8>,
        held: usize,
    ) -> Storm {
        assert!(from.is_loopback() && to.ip().is_loopback());
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let until = started + limit;
        let n = 4;
        let threads = (0..n)
            .map(|_| {
                let (s, m, payload) = (stop.clone(), made.clone(), payload.clone());
                std::thread::spawn(move || {
                    let gap = Duration::from_secs(1) * n / per_s;
                    let mut open: std::collections::VecDeque<TcpStream> = Default::default();
                    let mut next = Instant::now();
                    while !s.load(Ordering::Relaxed)
                        && Instant::now() < until
                        && m.fetch_add(1, Ordering::Relaxed) < max
                    {
                        let mut c = connect_from(from, to);
                        let _ = c.write_all(&payload);
                        open.push_back(c);
                        while open.len() > held / n as usize {
                            open.pop_front();
                        }
                        next += gap;
                        if let Some(d) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(d);
                        }
                    }
                })
            })
            .collect();
        Storm {
            stop,
            made,
            threads,
            started,
        }
    }

    /// Still storming.
    /// Connections made so far.
    fn made(&self) -> usize {
        self.made.load(Ordering::Relaxed)
    }

    fn running(&self) -> bool {
        self.threads.iter().any(|t| !t.is_finished())
    }

    /// Stops it; how many connections it made, and how many a second.
    fn stop(mut self) -> (usize, f64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("storm thread");
        }
        let made = self.made.load(Ordering::Relaxed);
        let rate = made as f64 / self.started.elapsed().as_secs_f64();
        eprintln!("storm: {made} connections, {rate:.0} a second");
        (made, rate)
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Lines of gateway `i`'s log that name `addr`.
fn lines_about(c: &Cluster, i: usize, addr: Ipv4Addr) -> usize {
    let needle = format!("peer {addr}:");
    c.log(i).lines().filter(|l| l.contains(&needle)).count()
}

#[test]
fn a_v2_session_forms_during_a_storm_from_the_peers_address() {
    // Default verbosity: the log bound is for what runs in production.
    let quiet = Options {
        verbosity: 0,
        ..Options::default()
    };
    let mut c = Cluster::new(2, &[quiet.clone(), quiet]);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    let slave = c.gw[1].addr;
    // ~470 connections a second "from the slave" to the master, each
    // sending a v2 HELLO header's worth of junk; 16 held open.
    let mut junk = random_bytes(84);
    junk[..4].copy_from_slice(b"SASY");
    let storm = Storm::start(
        slave,
        c.endpoint(0),
        470,
        Duration::from_secs(30),
        14_000,
        junk,
        16,
    );
    std::thread::sleep(Duration::from_millis(500));
    let before = lines_about(&c, 0, slave);
    c.start(1);
    c.wait_up_to(
        Duration::from_secs(15),
        "the slave to sync with its master during the storm",
        |c| c.digest(0) == c.digest(1),
    );
    assert!(storm.running(), "the storm ended before the session formed");
    let kinds = ["malformed", "wrong_key", "auth"];
    let errors: Vec<u64> = kinds.iter().map(|k| c.peer_errors(0, slave, k)).collect();
    // And it stays up and served while the storm goes on.
    for _ in 0..3 {
        let before = c.counts(0).0;
        c.host(0, "add-sa single");
        c.wait("a live change to reach the slave during the storm", |c| {
            c.counts(1).0 == before + 1 && c.digest(0) == c.digest(1)
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    // On a loaded machine the checks above take less time than the storm
    // needs for its count: it goes on, and the session must stay up.
    c.wait("the storm to make 1000 connections", |_| {
        storm.made() > 1000
    });
    assert!(storm.running(), "the storm ended before the test did");
    assert_eq!(c.peer_view(0, slave)["connected"], "true");
    let (made, _) = storm.stop();
    let lines = lines_about(&c, 0, slave) - before;
    assert!(made > 1000, "the storm made only {made} connections");
    // A few lines per minute for the storm, and the session's own.
    assert!(
        lines < 40,
        "{made} spoofed connections caused {lines} log lines:\n{}",
        c.log(0)
    );
    // While its session is up, the attacker's failures are not the real
    // peer's.
    for (kind, before) in kinds.iter().zip(errors) {
        assert_eq!(
            c.peer_errors(0, slave, kind),
            before,
            "{kind} counted against the peer"
        );
    }
}

#[test]
fn a_live_legacy_session_survives_a_storm_from_the_masters_address() {
    let legacy = Options {
        extra: "protocol legacy".into(),
        verbosity: 0,
        ..Options::default()
    };
    let mut c = Cluster::new(2, &[legacy.clone(), legacy]);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    c.start(1);
    c.wait_synced(0, 1);
    let master = c.gw[0].addr;
    let slave = c.gw[1].addr;
    let before = lines_about(&c, 1, master);
    let sessions = c.peer_count(1, master, "sessions");
    let reconnects = c.peer_count(1, master, "reconnects");
    // The master's side too: a crossed start leaves the slave reading the
    // master's connection as an alias, and a spoofed connection that
    // evicted it would end the session at the master's end.
    let master_reconnects = c.peer_count(0, slave, "reconnects");
    // 20 connections a second "from the master" to the slave: half send
    // nothing, and every one is held for a while (bad legacy frames are
    // in `legacy_bad_frames_end_the_connection`).
    let storm = Storm::start(
        master,
        c.endpoint(1),
        20,
        Duration::from_secs(30),
        600,
        Vec::new(),
        20,
    );
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..4 {
        let before = c.counts(0).0;
        c.host(0, "add-sa single");
        c.wait_up_to(
            Duration::from_secs(10),
            "a live change to reach the legacy slave during the storm",
            |c| c.counts(1).0 == before + 1 && c.digest(0) == c.digest(1),
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(storm.running(), "the storm ended before the test did");
    let (made, _) = storm.stop();
    assert!(made > 40, "the storm made only {made} connections");
    // Both sides dial: a crossing may settle on the other direction's
    // connection after the sync (one more session, not a reconnect). A
    // spoofed connection that replaced the session would be a reconnect,
    // and 20 a second would be many sessions.
    assert_eq!(
        c.peer_count(1, master, "reconnects"),
        reconnects,
        "a spoofed connection replaced the live legacy session"
    );
    assert!(
        c.peer_count(1, master, "sessions") <= sessions + 1,
        "spoofed connections replaced the live legacy session"
    );
    assert_eq!(
        c.peer_count(0, slave, "reconnects"),
        master_reconnects,
        "a spoofed connection ended the live legacy session at the master's end:\n{}",
        c.log(0)
    );
    let lines = lines_about(&c, 1, master) - before;
    assert!(
        lines < 40,
        "{made} spoofed connections caused {lines} log lines:\n{}",
        c.log(1)
    );
}

#[test]
fn legacy_bad_frames_end_the_connection_and_the_log_stays_short() {
    let legacy = Options {
        extra: "protocol legacy".into(),
        verbosity: 0,
        ..Options::default()
    };
    let mut c = Cluster::new(2, &[legacy.clone(), legacy]);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    c.start(1);
    c.wait_synced(0, 1);
    // Start-up said what legacy lacks.
    c.wait_log(
        1,
        &["protocol legacy: frames have no MAC and no replay protection"],
    );
    let master = c.gw[0].addr;
    let before = lines_about(&c, 1, master);
    // 20 000 frames of the right shape with a wrong hash, on one
    // connection "from the master".
    // Length word (the rest: 92), type CTL, no padding, then a hash, an
    // IV and three blocks that do not decrypt to what the hash says.
    let mut frame = Vec::new();
    frame.extend_from_slice(&92u32.to_be_bytes());
    frame.extend_from_slice(&[0; 8]);
    frame.resize(96, 0x5a);
    let mut s = connect_from(master, c.endpoint(1));
    let mut sent = 0;
    for _ in 0..20_000 {
        if s.write_all(&frame).is_err() {
            break;
        }
        sent += 1;
    }
    sasyncd_tests::raw::read_until_closed(&mut s);
    assert!(sent < 20_000 || c.counter(1, "rejected_frames") > 0);
    c.wait("the slave to count the rejected connection", |c| {
        c.counter(1, "rejected_frames") > 0
    });
    let before_sa = c.counts(0).0;
    c.host(0, "add-sa single");
    c.wait(
        "a live change to reach the slave after the bad frames",
        |c| c.counts(1).0 == before_sa + 1,
    );
    let lines = lines_about(&c, 1, master) - before;
    assert!(
        lines < 10,
        "bad frames caused {lines} log lines:\n{}",
        c.log(1)
    );
}
