//! End to end, the configuration file and the signals, through the daemon
//! binary: `-n` on good and bad files (and refusing exactly what start-up
//! refuses), the file's owner, mode and symlink checks at `-n` and at
//! start-up, a second daemon on the same control socket, SIGHUP with a
//! changed and with a broken file, and SIGTERM on a slave that still holds
//! its start-up demotion.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::Signal;
use sasyncd_tests::cluster::{bin, gone, is_root, run, write_private, Cluster, Options, Ran};

/// `sasyncd -n -c FILE`, run to its end.
fn check_only(conf: &Path) -> Ran {
    run(Command::new(bin("sasyncd")).arg("-n").arg("-c").arg(conf))
}

/// Gateway `i`'s daemon started on `conf`, run to its end: it must refuse
/// to start (exit 1, nothing opened on its devhost, no control socket).
fn refused_at_startup(c: &mut Cluster, i: usize, conf: &Path) -> Ran {
    let own = std::mem::replace(&mut c.gw[i].conf, conf.to_path_buf());
    let r = run(&mut c.command(i, 1));
    c.gw[i].conf = own;
    assert_eq!(
        r.status.code(),
        Some(1),
        "start-up on {} must exit 1; stderr: {}",
        conf.display(),
        r.stderr
    );
    assert!(
        !c.gw[i].control.exists(),
        "a refused daemon must not create its control socket"
    );
    let clients = c.host_status(i, "clients");
    assert!(
        clients.starts_with("pfkey:0,host:0,carp:0"),
        "a refused daemon must not open its kernel: devhost clients {clients}"
    );
    r
}

/// The one `error:` line a refused run printed.
fn error_line(r: &Ran) -> String {
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected in {:?}", r.stderr);
    errors[0].to_string()
}

#[test]
fn check_only_accepts_a_good_file_and_names_the_line_of_a_bad_one() {
    let c = Cluster::new(2, &[]);
    let good = check_only(&c.gw[0].conf);
    assert_eq!(good.status.code(), Some(0), "stderr: {}", good.stderr);
    assert!(
        good.stderr.contains("configuration OK"),
        "-n says \"configuration OK\" on stderr, said {:?}",
        good.stderr
    );
    // A role locked to master: -n checks it, it takes no role.
    let master = c.dir.join("master.conf");
    write_private(&master, &format!("{}mode master\n", c.config_text(0, &[1])));
    let r = check_only(&master);
    assert_eq!(r.status.code(), Some(0), "stderr: {}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        "configuration OK",
        "-n of a mode master file"
    );
    // A statement that does not exist, on line 3.
    let bad = c.dir.join("bad.conf");
    let text = c.config_text(0, &[1]);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2, "frobnicate on");
    write_private(&bad, &lines.join("\n"));
    let r = check_only(&bad);
    assert_eq!(r.status.code(), Some(1), "stderr: {}", r.stderr);
    let line = error_line(&r);
    assert!(
        line.contains(&format!("{}:3: ", bad.display())) && line.contains("frobnicate"),
        "the error names the file, line 3 and the word: {line}"
    );
    assert!(!r.stderr.contains("configuration OK"));
}

/// Accepted (`None`), or refused at this line with this text.
type Verdict = Option<(u32, &'static str)>;

/// The table of files that `-n` and start-up must judge alike: each is run
/// through both; a refused file gives the same one error line, with the
/// file and the line of the statement at fault, and an accepted file
/// starts a daemon.
#[test]
fn check_only_and_start_up_judge_a_table_of_files_alike() {
    let mut c = Cluster::new(1, &[]);
    let me = c.gw[0].addr;
    let port = c.port;
    // Line 1 is `listen on`, 2 `interface`, 3 `sharedkey`, 4 `control`,
    // 5 empty: what is appended starts on line 6.
    let base = c.config_text(0, &[]);
    assert!(base.starts_with("listen on "), "{base}");
    let with = |extra: &str| format!("{base}{extra}\n");
    let listen = |on: &str| {
        let rest = base.split_once('\n').expect("lines").1;
        format!("listen on {on} port {port}\n{rest}peer 127.1.2.3\n")
    };
    let mut nine = String::new();
    for k in 0..9u32 {
        nine += &format!(
            "peer {}\n",
            std::net::Ipv4Addr::from(u32::from(me) + 10 + k)
        );
    }
    let cases: Vec<(&str, String, Verdict)> = vec![
        ("good", with("peer 127.1.2.3"), None),
        ("good-by-name", with("peer localhost"), None),
        (
            "nine-peers",
            format!("{base}{nine}"),
            Some((14, "too many peers (at most 8)")),
        ),
        (
            "unresolvable",
            with("peer no-such-host.invalid"),
            Some((6, "peer no-such-host.invalid: cannot resolve")),
        ),
        (
            "peer-is-us",
            with(&format!("\npeer {me}")),
            Some((7, "is an address of this host")),
        ),
        (
            "peer-unspecified",
            with("peer 0.0.0.0"),
            Some((6, "the unspecified address")),
        ),
        (
            "peer-multicast",
            with("peer 224.0.0.18"),
            Some((6, "a multicast or broadcast address")),
        ),
        (
            "peer-scoped",
            with("peer fe80::1%lo"),
            Some((6, "a link-local or scoped address")),
        ),
        (
            "listen-not-an-address",
            listen("999.1.1.1"),
            Some((
                1,
                "listen on 999.1.1.1: neither an address nor an interface name",
            )),
        ),
        (
            "listen-no-such-interface",
            listen("nosuchif9"),
            Some((
                1,
                "listen on nosuchif9: interface nosuchif9 has no usable address",
            )),
        ),
        (
            "listen-not-ours",
            listen("192.0.2.77"),
            Some((
                1,
                "listen on 192.0.2.77: 192.0.2.77 is not an address of this host",
            )),
        ),
        (
            "two-keys",
            with("sharedkey \"another-key-16by\""),
            Some((6, "duplicate sharedkey statement (first on line 3")),
        ),
        (
            "two-listens",
            with(&format!("listen on {me}")),
            Some((6, "duplicate listen on statement (first on line 1")),
        ),
        (
            "weak-key",
            listen(&me.to_string()).replace(
                &format!("sharedkey \"{}\"", sasyncd_tests::cluster::KEY),
                "sharedkey 0x00000000000000000000000000000000",
            ),
            Some((3, "sharedkey is one byte repeated")),
        ),
    ];
    for (name, text, verdict) in cases {
        let conf = c.dir.join(format!("{name}.conf"));
        write_private(&conf, &text);
        let n = check_only(&conf);
        match verdict {
            None => {
                assert_eq!(n.status.code(), Some(0), "{name}: -n accepts; {}", n.stderr);
                let own = std::mem::replace(&mut c.gw[0].conf, conf.clone());
                c.start(0);
                c.signal(0, Signal::SIGTERM);
                c.wait_exit(0);
                c.gw[0].conf = own;
            }
            Some((line, says)) => {
                assert_eq!(n.status.code(), Some(1), "{name}: -n refuses; {}", n.stderr);
                let l = error_line(&n);
                let at = format!("{}:{line}: ", conf.display());
                assert!(
                    l.contains(&at) && l.contains(says),
                    "{name}: -n says {at:?} and {says:?}: {l}"
                );
                assert!(!n.stderr.contains("configuration OK"));
                let started = refused_at_startup(&mut c, 0, &conf);
                assert_eq!(
                    error_line(&started),
                    l,
                    "{name}: start-up refuses it as -n does"
                );
            }
        }
    }
}

#[test]
fn unsafe_files_are_refused_by_check_only_and_at_start_up() {
    let mut c = Cluster::new(1, &[]);
    let text = c.config_text(0, &[]) + "peer 192.0.2.7\n";
    let target = c.dir.join("target.conf");
    write_private(&target, &text);
    let link = c.dir.join("link.conf");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let open = c.dir.join("open.conf");
    write_private(&open, &text);
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut cases = vec![
        (link, "is a symbolic link".to_string()),
        (open, "mode 0644 lets group or others access it".to_string()),
    ];
    if is_root() {
        let foreign = c.dir.join("foreign.conf");
        write_private(&foreign, &text);
        std::os::unix::fs::chown(&foreign, Some(12345), None).expect("chown");
        cases.push((foreign, "owned by uid 12345; must be owned by".to_string()));
    } else {
        sasyncd_tests::skip::skip(
            "in part: not root, so the owner check is not tested (chown needs root)",
        );
    }
    // The file they point at or copy is fine.
    assert_eq!(check_only(&target).status.code(), Some(0));
    for (conf, says) in &cases {
        let want = format!("{}: {says}", conf.display());
        let r = check_only(conf);
        assert_eq!(
            r.status.code(),
            Some(1),
            "-n must refuse {}",
            conf.display()
        );
        assert!(
            error_line(&r).contains(&want),
            "-n says {want:?}: {}",
            r.stderr
        );
        let s = refused_at_startup(&mut c, 0, conf);
        assert!(
            error_line(&s).contains(&want),
            "start-up says {want:?}: {}",
            s.stderr
        );
    }
}

#[test]
fn a_second_daemon_on_the_same_control_socket_is_refused() {
    let mut c = Cluster::new(2, &[]);
    c.start(0);
    c.gw[1].control = c.gw[0].control.clone();
    let r = run(&mut c.command(1, 1));
    assert_eq!(r.status.code(), Some(1), "stderr: {}", r.stderr);
    let want = format!(
        "{}: another sasyncd answers there",
        c.gw[0].control.display()
    );
    assert!(
        error_line(&r).contains(&want),
        "says {want:?}: {}",
        r.stderr
    );
    assert!(c.running(0), "the first daemon keeps running");
    assert!(
        c.show(0).contains_key("state"),
        "the first daemon still answers on its control socket"
    );
}

/// A master (0) with only peer 1, slaves 1 and 2 naming the master.
fn master_without_peer_2() -> Cluster {
    let only_1 = Options {
        peers: Some(vec![1]),
        ..Options::default()
    };
    let to_master = Options {
        peers: Some(vec![0]),
        ..Options::default()
    };
    let mut c = Cluster::new(3, &[only_1, to_master.clone(), to_master]);
    c.carp(0, "master");
    c.start(0);
    c.host(0, "add-sa");
    c.start(1);
    c.start(2);
    c.wait_synced(0, 1);
    c
}

#[test]
fn sighup_applies_a_changed_file() {
    let c = master_without_peer_2();
    let stranger = c.gw[2].addr;
    c.wait_log(
        0,
        &[&format!(
            "connection from {stranger} refused: not a configured peer"
        )],
    );
    assert_eq!(c.counts(2), (0, 0), "an unknown slave gets nothing");
    c.write_conf(0, &c.config_text(0, &[1, 2]));
    c.signal(0, Signal::SIGHUP);
    c.wait_log(0, &["configuration reloaded"]);
    c.wait_synced(0, 2);
    assert_eq!(c.counts(2), (2, 0), "the added peer receives the SAs");
    // The peer that was there all along is still served.
    c.host(0, "add-sa single");
    c.wait_synced(0, 1);
    c.wait_synced(0, 2);
}

/// A peer given by name is resolved by the privileged process on reload as
/// at start-up: the network process (chrooted when root) has no resolver,
/// and used to refuse even an unchanged file. The reload is logged once.
#[test]
fn sighup_reloads_a_file_with_a_peer_given_by_name() {
    if !is_root() {
        sasyncd_tests::skip::skip("in part: not root, so the network process is not chrooted");
    }
    let mut c = Cluster::new(1, &[]);
    c.write_conf(0, &(c.config_text(0, &[]) + "peer localhost\n"));
    c.start(0);
    c.signal(0, Signal::SIGHUP);
    c.wait_log(0, &["configuration reloaded"]);
    let log = c.log(0);
    assert!(!log.contains("keeping the running"), "{log}");
    assert_eq!(
        log.matches("reloaded: 1 peer kept").count(),
        1,
        "one line per reload: {log}"
    );
    // With -d, a running daemon's lines start with the UTC time.
    let line = log
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .expect("the reload line");
    let (stamp, rest) = line.split_once(' ').expect("a timestamp, then the line");
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{line}"
    );
    assert!(rest.starts_with("priv: configuration reloaded"), "{line}");
}

#[test]
fn sighup_with_a_broken_file_keeps_the_running_configuration() {
    let mut c = master_without_peer_2();
    let conf = c.gw[0].conf.display().to_string();
    // A syntax error on line 2, and a peer that would be new.
    let good = c.config_text(0, &[1, 2]);
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(1, "frobnicate");
    c.write_conf(0, &lines.join("\n"));
    c.signal(0, Signal::SIGHUP);
    let l = c.wait_log(0, &["keeping the running configuration"]);
    assert!(
        l.contains(&format!("{conf}:2: ")),
        "the refusal names the file and line 2: {l}"
    );
    // Right syntax, wrong mode: refused by the file checks.
    c.write_conf(0, &good);
    std::fs::set_permissions(&c.gw[0].conf, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    c.signal(0, Signal::SIGHUP);
    c.wait("the mode refusal to be logged with the file's name", |c| {
        c.log_lines(0, "keeping the running configuration")
            .iter()
            .any(|l| l.contains(&format!("{conf}: mode 0640")))
    });
    // Still running, still syncing, and still the old peers only.
    assert!(c.running(0), "the daemon keeps running");
    c.host(0, "add-sa single");
    c.wait_synced(0, 1);
    assert_eq!(
        c.counts(2),
        (0, 0),
        "the new peer of the refused file is not used"
    );
    assert!(
        !c.log(0).contains("configuration reloaded"),
        "nothing was reloaded"
    );
}

#[test]
fn sigterm_releases_the_start_up_demotion_and_leaves_the_sas() {
    // A slave with no master anywhere cannot sync: it keeps the carp group
    // demoted (the counter goes from the boot scripts' 1 to 2).
    let mut c = Cluster::new(2, &[]);
    c.start(1);
    c.wait("the lone slave to demote the carp group", |c| {
        c.host_status(1, "demote") == "2"
    });
    assert_eq!(c.show(1)["demotion_held"], "true");
    c.host(1, "add-sa");
    c.host(1, "add-flow");
    let net = c.net_pid(1).expect("the network process");
    let daemon = c.pid(1).expect("the daemon");
    c.signal(1, Signal::SIGTERM);
    let st = c.wait_exit(1);
    assert_eq!(st.code(), Some(0), "SIGTERM is an orderly exit: {st}");
    assert_eq!(
        c.host_status(1, "demote"),
        "1",
        "the demotion is released on exit"
    );
    assert_eq!(
        c.counts(1),
        (2, 1),
        "the kernel's SAs and flow are left alone"
    );
    assert!(gone(daemon), "the privileged process is gone");
    sasyncd_tests::cluster::wait_gone(net, "the network process to be gone");
    c.wait_log(1, &["priv: exiting"]);
}

/// Gateway `i`'s daemon started without `-d` (it detaches), stderr to
/// `err`, with `--chroot` replaced by `jail` when given; returns once the
/// command (the waiting parent) exited.
fn detached(c: &Cluster, i: usize, err: &Path, jail: Option<&Path>) -> std::process::ExitStatus {
    let g = &c.gw[i];
    let mut cmd = Command::new(bin("sasyncd"));
    cmd.arg("-c").arg(&g.conf);
    cmd.arg("--dev-host").arg(&g.host);
    cmd.arg("--control").arg(&g.control);
    if is_root() {
        cmd.args(["--user", "nobody"]);
        cmd.arg("--chroot").arg(jail.unwrap_or(&c.jail));
    }
    let errf = std::fs::File::create(err).expect("stderr file");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(errf)
        .status()
        .expect("run sasyncd")
}

/// The privileged process of the daemon started with this control socket
/// (the path is unique to the test): found in /proc by its command line
/// and its task name.
fn priv_pid(control: &Path) -> Option<nix::unistd::Pid> {
    let want = control.as_os_str().as_encoded_bytes();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == "sasyncd-priv" && cmdline.split(|&b| b == 0).any(|a| a == want) {
            return Some(nix::unistd::Pid::from_raw(pid));
        }
    }
    None
}

/// Without `-d` the command returns only once both processes are up (the
/// control socket answers the moment it exits 0), and a failure after
/// detaching (a chroot that does not exist) is exit 1 with the reason on
/// stderr, where it used to be exit 0, silence and no daemon.
#[test]
fn detaching_waits_until_up_and_reports_a_later_failure() {
    let c = Cluster::new(1, &[]);
    let err = c.dir.join("detached.err");
    let st = detached(&c, 0, &err, None);
    let said = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(st.code(), Some(0), "stderr: {said}");
    assert!(
        std::os::unix::net::UnixStream::connect(&c.gw[0].control).is_ok(),
        "the control socket answers as soon as the command returned"
    );
    let pid = priv_pid(&c.gw[0].control).expect("the detached daemon's [priv]");
    nix::sys::signal::kill(pid, Signal::SIGTERM).expect("SIGTERM the daemon");
    c.wait("the detached daemon to exit", |c| !c.gw[0].control.exists());
    if !is_root() {
        sasyncd_tests::skip::skip("in part: not root, so there is no chroot to fail");
        return;
    }
    let st = detached(&c, 0, &err, Some(Path::new("/nonexistent-sasyncd-jail")));
    let said = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(
        st.code(),
        Some(1),
        "a failed start is exit 1; stderr: {said}"
    );
    assert!(
        said.contains("sasyncd: net: error: ") && said.contains("/nonexistent-sasyncd-jail"),
        "the reason is on stderr: {said}"
    );
    c.wait("the failed daemon to remove its socket", |c| {
        !c.gw[0].control.exists()
    });
}

#[test]
fn sigterm_to_both_processes_is_an_orderly_exit_without_an_error_line() {
    // What `pkill sasyncd` does: both processes get SIGTERM at once.
    let mut c = Cluster::new(2, &[]);
    c.start(1);
    // Up, its signal handlers installed (a signal before that is fatal,
    // as for any daemon).
    c.wait_log(1, &["listening on"]);
    let net = c.net_pid(1).expect("the network process");
    let daemon = c.pid(1).expect("the daemon");
    for pid in [net, daemon] {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM)
            .expect("SIGTERM");
    }
    let st = c.wait_exit(1);
    assert_eq!(st.code(), Some(0), "SIGTERM is an orderly exit: {st}");
    let log = c.log(1);
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("error:")).collect();
    assert!(
        errors.is_empty(),
        "an orderly stop logged errors: {errors:?}"
    );
}

/// A SIGTERM sent the moment the control socket answers (before either
/// process has set up its signals) is an orderly stop: exit 0 and the
/// socket removed, never a daemon killed with its socket left behind.
#[test]
fn sigterm_at_once_after_start_is_an_orderly_stop() {
    let mut c = Cluster::new(1, &[]);
    for round in 0..10 {
        c.start(0);
        c.signal(0, Signal::SIGTERM);
        let st = c.wait_exit(0);
        assert_eq!(st.code(), Some(0), "round {round}: {st}");
        assert!(
            !c.gw[0].control.exists(),
            "round {round}: the control socket was removed"
        );
    }
}
