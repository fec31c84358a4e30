use super::*;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;

use nix::sys::wait::WaitStatus;

use crate::testutil::{in_child, is_root, TempDir};

fn nobody() -> Unpriv {
    lookup_user("nobody").expect("this host has no user nobody")
}

#[test]
fn unknown_user() {
    let e = lookup_user("sasyncd-no-such-user").unwrap_err();
    assert_eq!(e, SysError::UnknownUser("sasyncd-no-such-user".into()));
    assert_eq!(e.to_string(), "no such user sasyncd-no-such-user");
}

#[test]
fn root_is_not_a_target() {
    // Refused before anything changes, so it is safe to run in the test
    // process itself.
    let ids = || {
        let u = getresuid().unwrap();
        (u.real, u.effective, u.saved, getgroups().unwrap())
    };
    let before = ids();
    let root = lookup_user("root").unwrap();
    assert_eq!(root.uid, Uid::from_raw(0));
    assert_eq!(
        drop_privileges(&root, None).unwrap_err(),
        SysError::TargetIsRoot
    );
    assert_eq!(ids(), before);
}

/// A child drops to nobody inside a fresh chroot and reports what it is
/// left with; the parent checks the report.
#[test]
fn drops_to_nobody_in_a_chroot() {
    if !is_root() {
        crate::testutil::skip("dropping privileges needs root");
        return;
    }
    let user = nobody();
    let jail = TempDir::new("jail");
    fs::set_permissions(jail.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let outside = TempDir::new("outside");
    let secret = outside.path().join("secret");
    fs::write(&secret, b"root only").unwrap();

    let (status, report) = in_child(|out| {
        // /proc is not inside the chroot: open it before, read it after
        // (the kernel writes the file's text at read time).
        let mut status = File::open("/proc/self/status").unwrap();
        match drop_privileges(&user, Some(jail.path())) {
            Ok(()) => writeln!(out, "dropped").unwrap(),
            Err(e) => writeln!(out, "error {e}").unwrap(),
        }
        let u = getresuid().unwrap();
        let g = getresgid().unwrap();
        writeln!(out, "resuid {} {} {}", u.real, u.effective, u.saved).unwrap();
        writeln!(out, "resgid {} {} {}", g.real, g.effective, g.saved).unwrap();
        let groups: Vec<String> = getgroups().unwrap().iter().map(|g| g.to_string()).collect();
        writeln!(out, "groups {}", groups.join(" ")).unwrap();
        writeln!(out, "setuid0 {:?}", setuid(Uid::from_raw(0))).unwrap();
        let cwd = std::env::current_dir().unwrap();
        writeln!(out, "cwd {}", cwd.display()).unwrap();
        let err = File::open(&secret).map(drop).map_err(|e| e.kind());
        writeln!(out, "outside {err:?}").unwrap();
        let mut text = String::new();
        status.read_to_string(&mut text).unwrap();
        for line in text.lines() {
            if ["Uid:", "Gid:", "Groups:"]
                .iter()
                .any(|k| line.starts_with(k))
            {
                writeln!(
                    out,
                    "{}",
                    line.split_whitespace().collect::<Vec<_>>().join(" ")
                )
                .unwrap();
            }
        }
    });
    assert_eq!(
        status,
        WaitStatus::Exited(status.pid().unwrap(), 0),
        "{report}"
    );
    let (u, g) = (user.uid, user.gid);
    let expected = format!(
        "dropped\nresuid {u} {u} {u}\nresgid {g} {g} {g}\ngroups {g}\nsetuid0 Err(EPERM)\ncwd /\n\
         outside Err(NotFound)\nUid: {u} {u} {u} {u}\nGid: {g} {g} {g} {g}\nGroups: {g}\n"
    );
    assert_eq!(report, expected);
}

/// A failing step leaves the process as it was, and says which step.
#[test]
fn failed_chroot_changes_nothing() {
    if !is_root() {
        crate::testutil::skip("chroot needs root");
        return;
    }
    let user = nobody();
    let dir = TempDir::new("gone");
    let missing = dir.path().join("missing");
    let (status, report) = in_child(|out| {
        let e = drop_privileges(&user, Some(&missing)).unwrap_err();
        writeln!(out, "{e}").unwrap();
        let u = getresuid().unwrap();
        writeln!(out, "resuid {} {} {}", u.real, u.effective, u.saved).unwrap();
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{report}");
    assert_eq!(
        report,
        format!(
            "chroot {}: ENOENT: No such file or directory\nresuid 0 0 0\n",
            missing.display()
        )
    );
}

#[test]
fn verification_messages() {
    let uids = SysError::NotDropped(Verify::Uids {
        got: (65534, 65534, 0),
        want: 65534,
    });
    assert_eq!(
        uids.to_string(),
        "privileges not dropped: uids are 65534/65534/0, want 65534"
    );
    assert_eq!(
        SysError::NotDropped(Verify::RegainedRoot).to_string(),
        "privileges not dropped: setuid(0) still succeeds"
    );
    let call = SysError::Call {
        call: "setresuid",
        errno: nix::errno::Errno::EPERM,
    };
    assert_eq!(
        call.to_string(),
        "setresuid: EPERM: Operation not permitted"
    );
}

/// On Linux the network process keeps `CAP_NET_ADMIN` alone: an XFRM
/// socket opened as root still takes requests and joins groups, while
/// root itself (`setuid(0)`) and every other capability are gone.
#[cfg(target_os = "linux")]
#[test]
fn keeps_net_admin_alone() {
    if !is_root() {
        crate::testutil::skip("dropping privileges needs root");
        return;
    }
    let user = nobody();
    let (status, report) = in_child(|out| {
        let mut sock = sasyncd_linux::socket::XfrmSocket::open(0).unwrap();
        drop_privileges_keeping_net_admin(&user, None).unwrap();
        writeln!(out, "caps {:?}", caps::current().unwrap()).unwrap();
        writeln!(out, "setuid0 {}", setuid(Uid::from_raw(0)).is_ok()).unwrap();
        // A dump asks for CAP_NET_ADMIN of the opener and the sender.
        let dumped = sock.dump(sasyncd_linux::xfrm::msg::GETSA, |_| {});
        writeln!(out, "dump {}", dumped.is_ok()).unwrap();
        let joined = sock.set_groups(sasyncd_linux::xfrm::group::SA, true);
        writeln!(out, "join {}", joined.is_ok()).unwrap();
    });
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}: {report}"
    );
    assert_eq!(
        report,
        format!(
            "caps {:?}\nsetuid0 false\ndump true\njoin true\n",
            caps::NET_ADMIN_ONLY
        )
    );
    // Without it, the same socket is refused: the reason to keep it.
    let (status, report) = in_child(|out| {
        let mut sock = sasyncd_linux::socket::XfrmSocket::open(0).unwrap();
        drop_privileges(&user, None).unwrap();
        let dumped = sock.dump(sasyncd_linux::xfrm::msg::GETSA, |_| {});
        writeln!(out, "dump {}", dumped.is_ok()).unwrap();
        let joined = sock.set_groups(sasyncd_linux::xfrm::group::SA, true);
        writeln!(out, "join {}", joined.is_ok()).unwrap();
    });
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}: {report}"
    );
    assert_eq!(report, "dump false\njoin false\n");
}
