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
    setresuid(uid, uid, uid).map_err(SysError::call("setresuid"))?;
    verify(uid, gid)
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
