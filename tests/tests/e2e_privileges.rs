//! End to end, privilege separation (root only; skipped with a message
//! otherwise): the network process runs as nobody in its chroot while the
//! privileged process keeps root, and each process dies with the other —
//! the privileged one releasing the carp demotion its child held.

use std::os::unix::process::ExitStatusExt;
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
}
