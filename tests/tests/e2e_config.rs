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

#[test]
fn check_only_refuses_what_start_up_refuses() {
    let mut c = Cluster::new(1, &[]);
    // Nine peers: the daemon's node holds eight.
    let nine = c.dir.join("nine.conf");
    let mut text = String::new();
    for k in 0..9 {
        let a = u32::from(c.gw[0].addr) + 10 + k;
        text += &format!("peer {}\n", std::net::Ipv4Addr::from(a));
    }
    text += &format!(
        "listen on {} port {}\ninterface carp0\nsharedkey \"{}\"\n",
        c.gw[0].addr,
        c.port,
        sasyncd_tests::cluster::KEY
    );
    write_private(&nine, &text);
    // A peer name that cannot resolve.
    let unresolvable = c.dir.join("unresolvable.conf");
    let text = c.config_text(0, &[]) + "peer no-such-host.invalid\n";
    write_private(&unresolvable, &text);
    for (conf, says) in [
        (&nine, "more peers than this node was built for"),
        (&unresolvable, "peer no-such-host.invalid: cannot resolve"),
    ] {
        let r = check_only(conf);
        assert_eq!(
            r.status.code(),
            Some(1),
            "-n must refuse {}",
            conf.display()
        );
        let line = error_line(&r);
        assert!(
            line.contains(&conf.display().to_string()) && line.contains(says),
            "-n says the file and {says:?}: {line}"
        );
        assert!(!r.stderr.contains("configuration OK"));
        let started = refused_at_startup(&mut c, 0, conf);
        assert_eq!(
            error_line(&started),
            line,
            "start-up refuses {} exactly as -n does",
            conf.display()
        );
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
        println!("not root: the owner check is not tested (chown needs root)");
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
