//! Dropping root in the network process: chroot, then groups, gids and
//! uids, each real, effective and saved, then checking that it took.

use std::path::{Path, PathBuf};

use nix::unistd::{
    chdir, chroot, getgroups, getresgid, getresuid, setgroups, setresgid, setresuid, setuid, Gid,
    Uid, User,
};

use super::{SysError, Verify};

/// The unprivileged user the network process runs as (`_isakmpd` on
/// OpenBSD, as for the original).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpriv {
    /// Its name, for messages.
    pub name: String,
    /// Its uid.
    pub uid: Uid,
    /// Its primary gid.
    pub gid: Gid,
    /// Its home directory: the chroot (normally `/var/empty`).
    pub home: PathBuf,
}

/// Looks `name` up in the password database. Do it before chroot: the
/// database is not reachable afterwards.
pub fn lookup_user(name: &str) -> Result<Unpriv, SysError> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(Unpriv {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
            home: u.dir,
        }),
        Ok(None) => Err(SysError::UnknownUser(name.to_owned())),
        Err(errno) => Err(SysError::UserLookup {
            name: name.to_owned(),
            errno,
        }),
    }
}

/// Chroots to `chroot` (if given) and `chdir("/")`, then sets the
/// supplementary groups to the user's gid alone, then real, effective and
/// saved gid, then real, effective and saved uid — in that order, since
/// groups and gids can only be changed while still root.
///
/// Afterwards it checks that all three uids and gids are the user's, that
/// the groups are just its gid, and that `setuid(0)` fails: a kernel or
/// libc that silently did less (a saved uid left at 0) must not go
/// unnoticed. Any error means the caller exits; it must never carry on
/// half dropped.
pub fn drop_privileges(user: &Unpriv, chroot_dir: Option<&Path>) -> Result<(), SysError> {
    drop_to(user, chroot_dir, false)
}

/// [`drop_privileges`], keeping `CAP_NET_ADMIN` alone (Linux). An XFRM
/// netlink request is obeyed only if both the socket's opener and the
/// process sending it hold `CAP_NET_ADMIN` (the kernel's
/// `__netlink_ns_capable`), and only such a process may join the XFRM
/// multicast groups: a socket opened as root goes deaf and mute once its
/// process is unprivileged, unlike OpenBSD's PF_KEY socket. So the network
/// process keeps that one capability (permitted and effective; nothing
/// inheritable), as chrony keeps `CAP_SYS_TIME`; every other one is gone,
/// `setuid(0)` still fails, and the seccomp filter still denies exec,
/// opens, mounts and module loads.
#[cfg(target_os = "linux")]
pub fn drop_privileges_keeping_net_admin(
    user: &Unpriv,
    chroot_dir: Option<&Path>,
) -> Result<(), SysError> {
    drop_to(user, chroot_dir, true)
}

fn drop_to(user: &Unpriv, chroot_dir: Option<&Path>, keep_net_admin: bool) -> Result<(), SysError> {
    if user.uid.is_root() {
        return Err(SysError::TargetIsRoot);
    }
    if let Some(dir) = chroot_dir {
        let err = |errno| SysError::Chroot {
            dir: dir.to_owned(),
            errno,
        };
        chroot(dir).map_err(err)?;
        chdir("/").map_err(err)?;
    }
    let (uid, gid) = (user.uid, user.gid);
    setgroups(&[gid]).map_err(SysError::call("setgroups"))?;
    setresgid(gid, gid, gid).map_err(SysError::call("setresgid"))?;
    #[cfg(target_os = "linux")]
    if keep_net_admin {
        caps::keep_on_setuid(true)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = keep_net_admin;
    setresuid(uid, uid, uid).map_err(SysError::call("setresuid"))?;
    #[cfg(target_os = "linux")]
    if keep_net_admin {
        caps::only_net_admin()?;
        caps::keep_on_setuid(false)?;
    }
    verify(uid, gid)?;
    #[cfg(target_os = "linux")]
    if keep_net_admin && caps::current()? != caps::NET_ADMIN_ONLY {
        return Err(SysError::Call {
            call: "capset (CAP_NET_ADMIN alone)",
            errno: nix::errno::Errno::EPERM,
        });
    }
    Ok(())
}

/// Capabilities, through the two system calls (no crate for three calls).
#[cfg(target_os = "linux")]
pub(crate) mod caps {
    use super::SysError;
    use nix::errno::Errno;

    /// `CAP_NET_ADMIN`'s bit.
    const CAP_NET_ADMIN: u32 = 12;
    /// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
    const VERSION_3: u32 = 0x2008_0522;

    /// (effective, permitted, inheritable) of the first word; the second
    /// word is all zero.
    pub const NET_ADMIN_ONLY: (u32, u32, u32) = (1 << CAP_NET_ADMIN, 1 << CAP_NET_ADMIN, 0);

    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    /// `PR_SET_KEEPCAPS`: whether the permitted set survives `setresuid`.
    pub fn keep_on_setuid(on: bool) -> Result<(), SysError> {
        // SAFETY: prctl(2) with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(on), 0, 0, 0) };
        if r < 0 {
            return Err(SysError::call("prctl(PR_SET_KEEPCAPS)")(Errno::last()));
        }
        Ok(())
    }

    /// Sets this thread's sets to `CAP_NET_ADMIN` alone.
    pub fn only_net_admin() -> Result<(), SysError> {
        let hdr = Header {
            version: VERSION_3,
            pid: 0,
        };
        let (e, p, i) = NET_ADMIN_ONLY;
        let data = [
            Data {
                effective: e,
                permitted: p,
                inheritable: i,
            },
            Data::default(),
        ];
        // SAFETY: capset(2) reads one header and two data structs, both
        // live and laid out as the kernel's `__user_cap_*_struct`.
        let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) };
        if r < 0 {
            return Err(SysError::call("capset")(Errno::last()));
        }
        Ok(())
    }

    /// This thread's (effective, permitted, inheritable) first words; an
    /// error if any bit of the second words is set.
    pub fn current() -> Result<(u32, u32, u32), SysError> {
        let mut hdr = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: capget(2) writes two data structs into our array and may
        // rewrite the header's version; both are live and ours.
        let r =
            unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) };
        if r < 0 {
            return Err(SysError::call("capget")(Errno::last()));
        }
        let high = data[1];
        if high.effective | high.permitted | high.inheritable != 0 {
            return Err(SysError::call("capget (capabilities above 31 kept)")(
                Errno::EPERM,
            ));
        }
        Ok((data[0].effective, data[0].permitted, data[0].inheritable))
    }
}

/// The checks of [`drop_privileges`].
fn verify(uid: Uid, gid: Gid) -> Result<(), SysError> {
    let u = getresuid().map_err(SysError::call("getresuid"))?;
    if [u.real, u.effective, u.saved] != [uid; 3] {
        return Err(SysError::NotDropped(Verify::Uids {
            got: (u.real.as_raw(), u.effective.as_raw(), u.saved.as_raw()),
            want: uid.as_raw(),
        }));
    }
    let g = getresgid().map_err(SysError::call("getresgid"))?;
    if [g.real, g.effective, g.saved] != [gid; 3] {
        return Err(SysError::NotDropped(Verify::Gids {
            got: (g.real.as_raw(), g.effective.as_raw(), g.saved.as_raw()),
            want: gid.as_raw(),
        }));
    }
    let groups = getgroups().map_err(SysError::call("getgroups"))?;
    if groups.iter().any(|&g| g != gid) {
        return Err(SysError::NotDropped(Verify::Groups));
    }
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err(SysError::NotDropped(Verify::RegainedRoot));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
