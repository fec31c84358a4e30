//! End to end, privilege separation (root only; skipped with a message
//! otherwise): the network process runs as nobody in its chroot while the
//! privileged process keeps root, and each process dies with the other —
//! the privileged one releasing the carp demotion its child held.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sasyncd_tests::cluster::{is_root, wait_gone, Cluster};

/// The `Uid:` or `Gid:` line of a process: real, effective, saved, fs.
fn ids(pid: u32, which: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{which}:")))
        .expect("the line")
        .split_whitespace()
        .map(|w| w.parse().expect("an id"))
        .collect()
}

fn root_of(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/root")).expect("read /proc/PID/root")
}

/// A lone slave (no master anywhere): it holds the carp demotion.
fn demoted_slave() -> Option<Cluster> {
    if !is_root() {
        sasyncd_tests::skip::skip("privilege separation is only in effect as root");
        return None;
    }
    let mut c = Cluster::new(2, &[]);
    c.start(1);
    c.wait("the lone slave to demote the carp group", |c| {
        c.host_status(1, "demote") == "2"
    });
    Some(c)
}

#[test]
fn the_network_process_runs_as_nobody_in_its_chroot() {
    let Some(c) = demoted_slave() else { return };
    let daemon = c.pid(1).expect("the daemon");
    let net = c.net_pid(1).expect("the network process");
    assert_eq!(
        ids(net, "Uid"),
        vec![65534; 4],
        "the network process runs as nobody (real, effective, saved, fs uid)"
    );
    assert_eq!(ids(net, "Gid"), vec![65534; 4], "and in nobody's group");
    let jail = c.jail.canonicalize().expect("the jail");
    assert_eq!(
        root_of(net),
        jail,
        "the network process is chrooted into the cluster's jail"
    );
    assert_eq!(
        ids(daemon, "Uid"),
        vec![0; 4],
        "the privileged process keeps root"
    );
    assert_eq!(root_of(daemon), PathBuf::from("/"), "and the real root");
    c.wait_log(1, &["running as nobody in", &c.jail.display().to_string()]);
}

#[test]
fn a_killed_network_process_takes_the_daemon_and_its_demotion_down() {
    let Some(mut c) = demoted_slave() else { return };
    let net = c.net_pid(1).expect("the network process");
    kill(Pid::from_raw(net as i32), Signal::SIGKILL).expect("kill the network process");
    let st = c.wait_exit(1);
    assert_eq!(
        st.code(),
        Some(1),
        "the daemon exits 1 without its network process"
    );
    c.wait_log(1, &["the network process was killed by SIGKILL"]);
    assert_eq!(
        c.host_status(1, "demote"),
        "1",
        "the privileged process released the demotion the dead child held"
    );
}

#[test]
fn a_killed_privileged_process_takes_the_network_process_down() {
    let Some(mut c) = demoted_slave() else { return };
    let daemon = c.pid(1).expect("the daemon");
    let net = c.net_pid(1).expect("the network process");
    kill(Pid::from_raw(daemon as i32), Signal::SIGKILL).expect("kill the privileged process");
    let st = c.wait_exit(1);
    assert_eq!(
        st.signal(),
        Some(9),
        "the privileged process was killed: {st}"
    );
    wait_gone(net, "the network process to exit after its parent");
    c.wait_log(1, &["the privileged process exited; shutting down"]);
    // Only root may lower the counter: the network process says it could
    // not, rather than that it released it.
    c.wait_log(
        1,
        &["the privileged process is gone: our carp demotion cannot be released"],
    );
    assert_eq!(
        c.host_status(1, "demote"),
        "2",
        "the demotion of a killed [priv] stays"
    );
    // A restarted daemon shows the counter it found above its own.
    c.start(1);
    c.wait_log(
        1,
        &["carp group demoted until we are in sync (counter 2 before ours)"],
    );
}

/// sasyncd.8: the network process ignores SIGTERM, SIGINT and SIGHUP
/// (any process of its user could send them); they are for the privileged
/// process. Signalled directly, by its user or by root, it neither stops
/// nor reloads; the same SIGHUP to the privileged process reloads.
#[test]
fn a_process_of_the_network_user_cannot_stop_or_reload_the_daemon() {
    let Some(mut c) = demoted_slave() else { return };
    let net = c.net_pid(1).expect("the network process");
    // What any other process of the unprivileged user may do to it, and
    // what root may do by mistake (`kill` of the wrong pid).
    for uid in [65534, 0] {
        for sig in ["TERM", "INT", "HUP"] {
            let st = std::process::Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(net.to_string())
                .uid(uid)
                .gid(uid)
                .status()
                .expect("run kill");
            assert!(
                st.success(),
                "uid {uid} may signal the network process (SIG{sig})"
            );
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        c.running(1),
        "a signal to the network process stopped the daemon:\n{}",
        c.log(1)
    );
    assert_eq!(c.net_pid(1), Some(net), "the same network process runs");
    c.ctl(1, &["show"]).expect("the daemon still answers");
    assert!(
        !c.log(1).contains("configuration reloaded"),
        "a SIGHUP to the network process reloaded:\n{}",
        c.log(1)
    );
    assert_eq!(
        c.host_status(1, "demote"),
        "2",
        "and still holds its demotion"
    );
    // The privileged process does what the network process would not.
    c.signal(1, Signal::SIGHUP);
    c.wait_log(1, &["configuration reloaded"]);
    assert!(c.running(1), "a reload leaves it running");
}

#[test]
fn inherited_descriptors_do_not_reach_either_process() {
    // Meaningful as root (the network process drops to nobody); checked
    // either way.
    let c = Cluster::new(1, &[]);
    let secret = c.dir.join("secret");
    std::fs::write(&secret, "not for the network process").expect("write the secret");
    let file = std::fs::File::open(&secret).expect("open the secret");
    let mut cmd = c.command(0, 1);
    let log = std::fs::File::create(&c.gw[0].log).expect("log file");
    // SAFETY: dup2(2) between two descriptors we own, before exec.
    unsafe {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = file.as_raw_fd();
        cmd.pre_exec(move || {
            if libc_dup2(fd, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = std::os::unix::process::CommandExt::process_group(&mut cmd, 0)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start sasyncd with descriptor 9 open");
    let guard = sasyncd_tests::cluster::ChildGuard(child);
    let daemon = guard.0.id();
    let mut net = None;
    for _ in 0..400 {
        if std::os::unix::net::UnixStream::connect(&c.gw[0].control).is_ok() {
            net = sasyncd_tests::cluster::children(daemon).first().copied();
            if net.is_some() {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let net = net.unwrap_or_else(|| panic!("no network process; log:\n{}", c.log(0)));
    for (who, pid) in [
        ("the privileged process", daemon),
        ("the network process", net),
    ] {
        for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("list descriptors")
            .flatten()
        {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            assert_ne!(
                target,
                secret,
                "{who} holds inherited descriptor {:?} to the secret",
                e.file_name()
            );
        }
    }
    drop(guard);
}

/// dup2(2): `to` becomes a copy of `from` (kept open across exec).
fn libc_dup2(from: i32, to: i32) -> i32 {
    // SAFETY: both are descriptors the caller owns; the new one is handed
    // to the program about to be exec'd, so it is not closed here.
    match unsafe { nix::unistd::dup2_raw(std::os::fd::BorrowedFd::borrow_raw(from), to) } {
        Ok(fd) => {
            std::mem::forget(fd);
            0
        }
        Err(_) => -1,
    }
}

/// How many times `needle` is in the writable memory of process `pid`.
fn in_memory(pid: u32, needle: &[u8]) -> usize {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("open mem");
    let mut found = 0;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let (a, b) = range.split_once('-').expect("a range");
        let (a, b) = (
            u64::from_str_radix(a, 16).expect("start"),
            u64::from_str_radix(b, 16).expect("end"),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        let n = buf.windows(needle.len()).filter(|w| *w == needle).count();
        if n > 0 {
            eprintln!("{pid}: {n} in {line}");
        }
        found += n;
    }
    found
}

#[test]
fn the_privileged_process_keeps_no_shared_key_and_no_core_file() {
    let Some(mut c) = demoted_slave() else { return };
    // Through a reload too: [priv] parses the file again.
    c.signal(1, Signal::SIGHUP);
    c.wait_log(1, &["configuration reloaded"]);
    let daemon = c.pid(1).expect("the daemon");
    let key = sasyncd_tests::cluster::KEY.as_bytes();
    assert_eq!(
        in_memory(daemon, key),
        0,
        "the privileged process holds the shared key"
    );
    let limits = std::fs::read_to_string(format!("/proc/{daemon}/limits")).expect("limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("the core limit");
    assert_eq!(
        core.split_whitespace().nth(4),
        Some("0"),
        "the privileged process may write a core file: {core}"
    );
    // The network process needs the key: it is there, so the search works.
    let net = c.net_pid(1).expect("the network process");
    assert!(in_memory(net, key) > 0, "the search finds nothing anywhere");
    let _ = c.running(1);
}
