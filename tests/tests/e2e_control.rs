//! End to end, `sasyncctl` against real daemons (see
//! `sasyncd_tests::cluster`): the reports against known cluster states,
//! in text and JSON; resync, reload and log at run time; and abuse of the
//! control socket (garbage, huge and half lines, silent and greedy
//! clients, more clients than served) that the daemon survives while it
//! keeps syncing and answering.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sasyncd_tests::cluster::{bin, control, is_root, Cluster, Options};
use serde_json::Value;

/// Gateway 0 carp master, gateway 1 its slave, in sync over two SAs.
fn pair(opts: &[Options]) -> Cluster {
    let mut c = Cluster::new(2, opts);
    c.carp(0, "master");
    c.start(0);
    c.start(1);
    c.host(0, "add-sa");
    c.wait_synced(0, 1);
    c
}

#[test]
fn show_reports_the_cluster_as_it_is() {
    let c = pair(&[]);
    let (m, s) = (c.gw[0].addr.to_string(), c.gw[1].addr.to_string());
    c.wait(
        "the slave to release its demotion and the master to see no lag",
        |c| {
            let slave = c.show_json(1);
            let master = c.show_json(0);
            slave["node"]["demotion_held"] == false
                && master["peers"][0]["lag"] == 0
                && master["peers"][0]["acked_by"] == master["node"]["position"]
        },
    );

    // JSON, the master's view.
    let v = c.show_json(0);
    assert_eq!(v["schema"], 2);
    assert_eq!(v["report"], "show");
    assert!(v["time_ms"].as_u64().unwrap() > 1_600_000_000_000);
    let n = &v["node"];
    assert_eq!(n["state"], "MASTER");
    assert_eq!(n["carp_link"], "master");
    assert_eq!(n["carp_link_state"], 4);
    assert_eq!(n["locked"], false);
    assert_eq!(n["protocol"], "v2");
    assert_eq!(n["ike_requested"], "active");
    assert_eq!(n["following"], Value::Null);
    assert_eq!(n["split_brain"], false);
    // The epoch is the hex string the text shows (jq would round a number
    // above 2^53).
    let epoch = n["position"]["epoch"].as_str().expect("epoch is a string");
    assert!(u64::from_str_radix(epoch, 16).unwrap() > 0, "{epoch}");
    let text = c.ctl(0, &["show"]).unwrap();
    assert!(text.contains(&format!("(epoch {epoch})")), "{text}");
    let p = &v["peers"][0];
    assert_eq!(p["addr"], s.as_str());
    assert_eq!(p["port"], c.port);
    assert_eq!(p["session"], "up");
    assert_eq!(p["connected"], true);
    assert_eq!(p["state"], "SLAVE");
    assert_eq!(p["snapshots_sent"], 1);
    assert!(p["frames_out"].as_u64().unwrap() > 0);
    // The master started first: its first dial found nobody.
    assert!(
        p["last_error"].is_null() || p["last_error"]["kind"] == "io",
        "{p}"
    );
    for k in ["auth", "replay", "wrong_key", "malformed", "protocol"] {
        assert_eq!(p["errors"][k], 0, "{k}");
    }
    assert_eq!(v["peers"].as_array().unwrap().len(), 1);

    // JSON, the slave's view.
    let v = c.show_json(1);
    let n = &v["node"];
    assert_eq!(n["state"], "SLAVE");
    assert_eq!(n["carp_link"], "backup");
    assert_eq!(n["ike_requested"], "passive");
    assert_eq!(n["following"]["addr"], m.as_str());
    assert_eq!(n["following"]["streaming"], true);
    assert_eq!(n["demotion_held"], false);
    assert_eq!(n["syncing"], false);
    let p = &v["peers"][0];
    assert_eq!(p["state"], "MASTER");
    assert_eq!(p["snapshots_received"], 1);
    assert!(p["last_snapshot_received_ms"].is_u64());
    assert_eq!(p["applied"], n["position"]);

    // Text: one screen, one row per peer.
    let text = c.ctl(1, &["show"]).unwrap();
    assert!(text.contains("State:        SLAVE for "), "{text}");
    assert!(text.contains("(carp link backup (2))"), "{text}");
    assert!(
        text.contains(&format!("Following:    {m}, streaming")),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{m}:{}", c.port)))
        .unwrap_or_else(|| panic!("a row for the master in\n{text}"));
    assert!(row.contains(" up ") && row.contains("MASTER"), "{row}");
    let text = c.ctl(0, &["show"]).unwrap();
    assert!(text.contains("State:        MASTER for "), "{text}");
    assert!(!text.contains("Following:"), "a master follows no one");

    // show peer.
    let d = c.ctl(1, &["show", "peer", &m]).unwrap();
    assert!(d.starts_with(&format!("Peer {m} port {}", c.port)), "{d}");
    assert!(d.contains("Announced:      MASTER"), "{d}");
    assert!(d.contains("Snapshots recv: 1, last took "), "{d}");
    let j = c.ctl_json(1, &["show", "peer", &m]);
    assert_eq!(j["report"], "peer");
    assert_eq!(j["peer"]["addr"], m.as_str());
    assert!(j["peer"]["bytes_in"].as_u64().unwrap() > 0);
    assert_eq!(j["peer"]["errors"]["auth"], 0);
    let e = c.ctl(1, &["show", "peer", "192.0.2.77"]).unwrap_err();
    assert!(e.contains("no such peer: 192.0.2.77"), "{e}");

    // show stats: zeros hidden unless -v; JSON has them all.
    let brief = c.ctl(1, &["show", "stats"]).unwrap();
    let all = c.ctl(1, &["show", "stats", "-v"]).unwrap();
    assert!(brief.starts_with("sasyncd:\n"), "{brief}");
    assert!(!brief.contains("\t0 "), "{brief}");
    assert!(all.contains("\t0 "), "{all}");
    assert!(all.lines().count() > brief.lines().count());
    assert!(
        brief.contains("PF_KEY messages written to the kernel"),
        "{brief}"
    );
    let j = c.ctl_json(1, &["show", "stats"]);
    assert_eq!(j["report"], "stats");
    assert!(j["counters"]["pfkey_written"].as_u64().unwrap() >= 2);
    assert_eq!(j["counters"]["split_brain_episodes"], 0);
    assert_eq!(c.counter(0, "snapshots_done"), 1);
}

#[test]
fn resync_repairs_a_damaged_slave() {
    let c = pair(&[]);
    let m = c.gw[0].addr.to_string();
    // An operator deletes an SA on the slave by hand: the master does not
    // hear of it, the tables now differ.
    let spi = c.host(0, "add-sa single");
    let spi = spi.trim().trim_start_matches("spi=").to_string();
    c.wait_synced(0, 1);
    c.host(1, &format!("delete-sa spi={spi}"));
    assert_ne!(c.digest(0), c.digest(1));
    let resyncs = c.counter(0, "resyncs");
    let out = c.ctl(1, &["resync"]).unwrap();
    assert_eq!(out.trim(), format!("asked {m} for a full resync"));
    c.wait_synced(0, 1);
    assert!(c.counter(0, "resyncs") > resyncs);
    c.wait_log(1, &[&format!("asking master {m} for a full resync")]);
    // Naming the master works; the master and a non-master refuse.
    assert!(c.ctl(1, &["resync", &m]).is_ok());
    let e = c.ctl(0, &["resync"]).unwrap_err();
    assert!(e.contains("we are master"), "{e}");
    let e = c.ctl(1, &["resync", "192.0.2.1"]).unwrap_err();
    assert!(e.contains("192.0.2.1 is not a configured peer"), "{e}");
}

#[test]
fn reload_reports_what_happened() {
    let mut c = pair(&[]);
    let good = std::fs::read_to_string(&c.gw[1].conf).unwrap();
    // Unchanged: applied, and said so.
    let out = c.ctl(1, &["reload"]).unwrap();
    assert!(
        out.starts_with("reloaded: 1 peer kept, 0 added, 0 removed"),
        "{out}"
    );
    // A syntax error: refused with the line, the running one kept.
    c.write_conf(1, &format!("{good}\nbogus words\n"));
    let e = c.ctl(1, &["reload"]).unwrap_err();
    assert!(e.contains("configuration not reloaded"), "{e}");
    assert!(e.contains("gw1.conf:"), "names the file and line: {e}");
    // A file others may read: refused by the privileged process's checks.
    c.write_conf(1, &good);
    std::fs::set_permissions(&c.gw[1].conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = c.ctl(1, &["reload"]).unwrap_err();
    assert!(e.contains("chmod 600"), "{e}");
    // A valid change (a second, unreachable peer): applied.
    c.write_conf(1, &format!("{good}peer 192.0.2.9\n"));
    let out = c.ctl(1, &["reload"]).unwrap();
    assert!(out.contains("1 added"), "{out}");
    assert_eq!(c.show_json(1)["peers"].as_array().unwrap().len(), 2);
    // The daemon kept syncing through all of it.
    c.host(0, "add-sa");
    c.wait_synced(0, 1);
    assert!(c.running(1));
}

#[test]
fn log_verbosity_changes_at_run_time() {
    let quiet = Options {
        verbosity: 0,
        ..Options::default()
    };
    let c = pair(&[Options::default(), quiet]);
    let bad = |c: &Cluster, word: &str| {
        let r = control(&c.gw[1].control, word).unwrap();
        assert!(r.starts_with("error: unknown command"), "{r}");
    };
    // At -v0 a bad request is not logged (debug).
    bad(&c, "first-bad-word");
    assert_eq!(
        c.ctl(1, &["log", "verbose"]).unwrap().trim(),
        "logging verbose"
    );
    bad(&c, "second-bad-word");
    c.wait_log(
        1,
        &["control socket: bad request: unknown command: second-bad-word"],
    );
    assert_eq!(c.ctl(1, &["log", "brief"]).unwrap().trim(), "logging brief");
    bad(&c, "third-bad-word");
    // Logged in order: the brief switch comes after the second word.
    c.wait_log(1, &["control socket: logging brief"]);
    let log = c.log(1);
    assert!(!log.contains("first-bad-word"), "{log}");
    assert!(!log.contains("third-bad-word"), "{log}");
}

#[test]
fn the_socket_speaks_the_documented_protocol() {
    let c = pair(&[]);
    let r = control(&c.gw[0].control, "show stats json").unwrap();
    assert!(r.starts_with("ok\n{\"schema\":2,"), "{r:?}");
    assert!(r.ends_with("}\n.\n"), "{r:?}");
    assert_eq!(r.lines().count(), 3);
    let r = control(&c.gw[0].control, "reboot").unwrap();
    assert_eq!(r, "error: unknown command: reboot\n.\n");
    let mode = std::fs::metadata(&c.gw[0].control).unwrap().mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[test]
fn the_control_group_is_set() {
    if !is_root() {
        sasyncd_tests::skip::skip("only root may give a socket to another group");
        return;
    }
    // Some group other than ours that exists on any Debian or OpenBSD
    // system.
    let group = nix::unistd::Group::from_name("daemon")
        .ok()
        .flatten()
        .expect("group daemon");
    let o = Options {
        args: vec!["--control-group".into(), "daemon".into()],
        ..Options::default()
    };
    let unknown = Options {
        args: vec!["--control-group".into(), "no-such-group-x".into()],
        ..Options::default()
    };
    let mut c = Cluster::new(2, &[o, unknown]);
    c.start(0);
    let meta = std::fs::metadata(&c.gw[0].control).unwrap();
    assert_eq!(meta.gid(), group.gid.as_raw());
    assert_eq!(meta.mode() & 0o777, 0o660);
    // An unknown group stops the start, before detaching, with a reason.
    let r = sasyncd_tests::cluster::run(&mut c.command(1, 0));
    assert_eq!(r.status.code(), Some(1));
    assert!(
        r.stderr.contains("no such group: no-such-group-x"),
        "{}",
        r.stderr
    );
}

/// Reads until EOF (or 15 s).
fn read_all(s: &mut UnixStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn abuse_of_the_control_socket_is_survived() {
    let mut c = pair(&[]);
    let path = c.gw[0].control.clone();
    let started = Instant::now();
    // Clients that say nothing, more than are served at once.
    let silent: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&path).expect("connect"))
        .collect();
    // The master keeps syncing meanwhile.
    c.host(0, "add-sa");
    c.wait_synced(0, 1);
    // The ones beyond the limit were told at once.
    let mut served = silent;
    let mut busy = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while busy < 4 && Instant::now() < until {
        served.retain_mut(|s| {
            s.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 64];
            match s.read(&mut buf) {
                Ok(n) => {
                    assert!(buf[..n].starts_with(b"error: busy"), "{:?}", &buf[..n]);
                    busy += 1;
                    false
                }
                Err(_) => true,
            }
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        (served.len(), busy),
        (16, 4),
        "16 served, 4 told the daemon is busy"
    );
    let mut silent = served;
    // Garbage, binary, a huge line, half a request, requests one byte at
    // a time, and clients that leave at once.
    let mut replies = Vec::new();
    drop(silent.drain(..10));
    for bytes in [
        &b"\x00\xff\xfe garbage\n"[..],
        &vec![b'A'; 1 << 20][..],
        b"show pe",
        b"\n",
        b"show peer 999.1.1.1\n",
        b"log verbose now\n",
    ] {
        let mut s = UnixStream::connect(&path).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        replies.push(read_all(&mut s));
    }
    for r in &replies {
        let t = String::from_utf8_lossy(r);
        assert!(t.starts_with("error: ") && t.ends_with("\n.\n"), "{t:?}");
    }
    assert!(String::from_utf8_lossy(&replies[1]).contains("longer than 255"));
    assert!(String::from_utf8_lossy(&replies[2]).contains("incomplete"));
    for _ in 0..50 {
        drop(UnixStream::connect(&path).unwrap());
    }
    // A request a byte at a time (once the daemon has seen the 50 go: it
    // may say it is busy until then).
    let mut r = String::new();
    for _ in 0..50 {
        let mut slow = UnixStream::connect(&path).unwrap();
        let mut sent = true;
        for b in b"show json\n" {
            sent &= slow.write_all(&[*b]).is_ok();
            std::thread::sleep(Duration::from_millis(5));
        }
        r = String::from_utf8_lossy(&read_all(&mut slow)).into_owned();
        if sent && !r.starts_with("error: busy") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(r.starts_with("ok\n{"), "{r:?}");
    // A client that asks and never reads its (large) reply, many times.
    let greedy: Vec<UnixStream> = (0..5)
        .map(|_| {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(b"show stats all\n").unwrap();
            s
        })
        .collect();
    // Through all of it the daemon syncs and answers.
    c.host(0, "add-sa");
    c.wait_synced(0, 1);
    assert_eq!(c.show(0)["state"], "MASTER");
    assert!(c.running(0) && c.running(1));
    // The silent clients still served are dropped after the timeout.
    let mut left = silent.pop().unwrap();
    left.set_nonblocking(false).unwrap();
    let out = read_all(&mut left);
    assert!(out.is_empty(), "{out:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(30),
        "dropped after about 10 s, not {waited:?}"
    );
    drop(greedy);
    assert!(c.ctl(0, &["show"]).is_ok());
    let log = c.log(0);
    assert!(!log.contains("panicked"), "{log}");
}

/// sasyncctl's exit status tells apart a refusal (1), a usage error (2)
/// and a daemon that could not be asked (3), as sasyncctl(8) says.
#[test]
fn sasyncctl_exit_codes_are_distinct() {
    let c = pair(&[]);
    let ctl = |sock: &std::path::Path, args: &[&str]| {
        Command::new(bin("sasyncctl"))
            .arg("-s")
            .arg(sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run sasyncctl")
    };
    assert_eq!(ctl(&c.gw[0].control, &["show"]).status.code(), Some(0));
    // The master refuses to resync from a master it does not follow.
    let r = ctl(&c.gw[0].control, &["resync"]);
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(
        ctl(&c.gw[0].control, &["frobnicate"]).status.code(),
        Some(2)
    );
    assert_eq!(
        ctl(&c.gw[0].control, &["resync", "not-an-address"])
            .status
            .code(),
        Some(2)
    );
    let nowhere = c.dir.join("no-daemon.sock");
    let r = ctl(&nowhere, &["show"]);
    assert_eq!(r.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&r.stderr).contains("no-daemon.sock"));
}

/// With every slot taken, the daemon answers a new client "busy" and
/// closes without reading its request: `sasyncctl` prints that refusal
/// and exits 1 (the daemon refused), whether its request went out before
/// the close or was refused by the closed socket (`EPIPE`; it must still
/// read the answer waiting for it, not report "Broken pipe").
#[test]
fn sasyncctl_prints_the_busy_refusal() {
    let mut c = Cluster::new(1, &[]);
    c.start(0);
    c.wait_log(0, &["listening on"]);
    let path = c.gw[0].control.clone();
    let mut tries = 0;
    for round in 0..3 {
        let (held, since) = take_every_slot(&c, &path);
        while since.elapsed() < Duration::from_secs(5) {
            let r = Command::new(bin("sasyncctl"))
                .arg("-s")
                .arg(&path)
                .arg("show")
                .stdin(Stdio::null())
                .output()
                .expect("run sasyncctl");
            let err = String::from_utf8_lossy(&r.stderr);
            assert_eq!(
                (r.status.code(), err.as_ref()),
                (Some(1), "sasyncctl: busy: too many control clients\n"),
                "round {round}, try {tries}: the daemon's refusal, as a refusal"
            );
            tries += 1;
        }
        drop(held);
    }
    assert!(tries >= 3, "only {tries} tries");
}

/// Holds all 16 slots of the control socket, root's included (the test
/// runs as the daemon's owner), with clients that say nothing; returns
/// them and when they connected (the daemon drops them after
/// CLIENT_TIMEOUT, 10 s). A client the daemon had not yet seen leave (a
/// harness's probe, a previous round's) may hold a slot a moment longer:
/// then one of ours is refused, and we try again.
fn take_every_slot(c: &Cluster, path: &std::path::Path) -> (Vec<UnixStream>, Instant) {
    loop {
        c.wait("a free slot", |c| c.ctl(0, &["show"]).is_ok());
        let held: Vec<UnixStream> = (0..16)
            .map(|_| UnixStream::connect(path).expect("connect"))
            .collect();
        let since = Instant::now();
        // Every slot is taken once the daemon answers the next one "busy".
        c.wait("the daemon to take every slot", |_| {
            let mut s = UnixStream::connect(path).expect("connect");
            read_all(&mut s).starts_with(b"error: busy")
        });
        let refused = held.iter().any(|h| {
            h.set_nonblocking(true).expect("nonblocking");
            let mut b = [0u8; 64];
            let answered =
                !matches!((&*h).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            h.set_nonblocking(false).expect("blocking");
            answered
        });
        if !refused {
            return (held, since);
        }
    }
}

/// A legacy daemon and a v2 daemon: the legacy one logs what the peer
/// speaks once (not "frame length out of range" at every reconnect), and
/// `show peer` names the peer's protocol.
#[test]
fn a_protocol_mismatch_is_logged_once_and_shown() {
    let legacy = Options {
        extra: "protocol legacy".into(),
        ..Options::default()
    };
    let mut c = Cluster::new(2, &[legacy]);
    c.carp(0, "master");
    c.start(0);
    c.start(1);
    let v2 = c.gw[1].addr;
    c.wait("the legacy daemon to refuse the v2 peer three times", |c| {
        c.peer_errors(0, v2, "protocol") >= 3
    });
    let log = c.log(0);
    let told = log
        .lines()
        .filter(|l| l.contains("warning: ") && l.contains("the peer speaks the v2 protocol"))
        .count();
    // A warning once; the repeats are debug lines (shown with -v).
    assert_eq!(told, 1, "warned once: {log}");
    assert!(!log.contains("frame length out of range"), "{log}");
    let detail = c.ctl(0, &["show", "peer", &v2.to_string()]).unwrap();
    assert!(
        detail.contains("Protocol:       legacy here, but the peer speaks v2"),
        "{detail}"
    );
    let j = c.ctl_json(0, &["show", "peer", &v2.to_string()]);
    assert_eq!(j["peer"]["protocol"], "v2", "{j}");
}

/// When the master goes quiet, the slave's last applied change gets
/// acknowledged too (the ack timer): Acked catches up with Applied. The
/// changes come while the slave is still starting, as in the README's
/// story.
#[test]
fn acks_catch_up_when_idle() {
    let mut c = Cluster::new(2, &[]);
    c.carp(0, "master");
    c.start(0);
    c.start(1);
    c.host(0, "add-sa");
    c.host(0, "add-flow");
    c.wait_synced(0, 1);
    c.wait("the slave to acknowledge all it applied", |c| {
        let v = c.show_json(1);
        let p = &v["peers"][0];
        !p["applied"].is_null() && p["acked_to"] == p["applied"]
    });
    // And the master sees it.
    c.wait("the master to see the ack", |c| {
        let v = c.show_json(0);
        v["peers"][0]["acked_by"] == v["node"]["position"]
    });
}
