//! End to end, who may do what on the control socket: members of
//! `--control-group` may look (`show`) but not change anything (reload,
//! resync, logging), which only root (or the user who started a
//! development-mode daemon) may; and idle clients of the group cannot
//! lock root out. Needs root (to be another user); skipped otherwise.

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use sasyncd_tests::cluster::{bin, is_root, Cluster, Options};

/// The unprivileged user and group the clients run as.
const NOBODY: u32 = 65534;

fn skip() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root to run control clients as another user");
        return true;
    }
    if nix::unistd::Group::from_name("nogroup")
        .ok()
        .flatten()
        .is_none()
    {
        eprintln!("skipped: no group nogroup on this system");
        return true;
    }
    false
}

fn gateway() -> Cluster {
    let opts = Options {
        args: vec!["--control-group".into(), "nogroup".into()],
        ..Options::default()
    };
    let mut c = Cluster::new(1, &[opts]);
    c.carp(0, "master");
    c.start(0);
    c
}

/// `sasyncctl ARGS` as nobody:nogroup.
fn as_member(c: &Cluster, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin("sasyncctl"))
        .arg("-s")
        .arg(&c.gw[0].control)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("run sasyncctl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn members_of_the_control_group_may_look_but_only_root_may_change() {
    if skip() {
        return;
    }
    let c = gateway();
    as_member(&c, &["show"]).expect("a member of the control group may look");
    for (req, cmd) in [
        (&["log", "verbose"][..], "log"),
        (&["reload"][..], "reload"),
        (&["resync"][..], "resync"),
    ] {
        let e = as_member(&c, req).expect_err("a member changed something");
        assert!(
            e.contains(&format!("{cmd}: only root may do this")),
            "{req:?}: {e}"
        );
    }
    assert!(
        !c.log(0).contains("control socket: logging verbose"),
        "a member changed the logging"
    );
    c.ctl(0, &["log", "verbose"])
        .expect("root may change the logging");
    c.wait_log(0, &["control socket: logging verbose"]);
}

#[test]
fn idle_clients_of_the_group_cannot_lock_root_out() {
    if skip() {
        return;
    }
    let c = gateway();
    // A process of the group holds 16 idle connections for 8 s.
    let path = c.gw[0].control.clone();
    // Any program will do to carry the uid; the connections are made in
    // pre_exec, as nobody, and inherited by a sleeping process.
    let mut hog = Command::new("sleep");
    hog.arg("8").uid(NOBODY).gid(NOBODY);
    // SAFETY: the closure only makes sockets and leaks their descriptors
    // into the program it becomes.
    unsafe {
        hog.pre_exec(move || {
            for _ in 0..16 {
                let s = UnixStream::connect(&path)?;
                // Kept across exec: a duplicate without close-on-exec.
                std::mem::forget(nix::unistd::dup(&s)?);
                std::mem::forget(s);
            }
            Ok(())
        });
    }
    let mut hog = hog.spawn().expect("start the idle clients");
    std::thread::sleep(Duration::from_millis(300));
    // Root still gets in, every time.
    for i in 0..5 {
        c.ctl(0, &["show"])
            .unwrap_or_else(|e| panic!("root was locked out (try {i}): {e}"));
    }
    // And a member beyond the group's share is told the daemon is busy.
    let e = as_member(&c, &["show"]).expect_err("the group got more than its share");
    // (The daemon answers "busy" and closes at once; sasyncctl reads that
    // even when its request was refused by the closed socket.)
    assert_eq!(e, "sasyncctl: busy: too many control clients\n");
    let _ = hog.kill();
    let _ = hog.wait();
}
