//! What can go wrong in the process plumbing.

use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;

/// A check after dropping privileges that did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Real, effective and saved uid are not all the target.
    Uids {
        /// (real, effective, saved) after the drop.
        got: (u32, u32, u32),
        /// The target uid.
        want: u32,
    },
    /// Real, effective and saved gid are not all the target.
    Gids {
        /// (real, effective, saved) after the drop.
        got: (u32, u32, u32),
        /// The target gid.
        want: u32,
    },
    /// The supplementary groups are not exactly the target gid.
    Groups,
    /// `setuid(0)` succeeded: root could be regained.
    RegainedRoot,
}

impl fmt::Display for Verify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Verify::Uids {
                got: (r, e, s),
                want,
            } => {
                write!(f, "uids are {r}/{e}/{s}, want {want}")
            }
            Verify::Gids {
                got: (r, e, s),
                want,
            } => {
                write!(f, "gids are {r}/{e}/{s}, want {want}")
            }
            Verify::Groups => f.write_str("supplementary groups were not replaced"),
            Verify::RegainedRoot => f.write_str("setuid(0) still succeeds"),
        }
    }
}

/// Why a process-plumbing step failed. Every step is all-or-nothing for
/// the caller: an error means "exit", never "carry on half done".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysError {
    /// A system call failed.
    Call {
        /// The call (`fork`, `setsid`, `setresuid`, ...).
        call: &'static str,
        /// Its errno.
        errno: Errno,
    },
    /// `chroot` or the `chdir` into it failed.
    Chroot {
        /// The directory.
        dir: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// No such user in the password database.
    UnknownUser(String),
    /// Looking a user up failed.
    UserLookup {
        /// The user name.
        name: String,
        /// The errno.
        errno: Errno,
    },
    /// Asked to drop privileges to uid 0, which drops nothing.
    TargetIsRoot,
    /// The privileges were changed but a check afterwards failed.
    NotDropped(Verify),
    /// Signal handlers are already installed in this process.
    SignalsInstalled,
}

impl SysError {
    pub(crate) fn call(call: &'static str) -> impl FnOnce(Errno) -> SysError {
        move |errno| SysError::Call { call, errno }
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysError::Call { call, errno } => write!(f, "{call}: {errno}"),
            SysError::Chroot { dir, errno } => write!(f, "chroot {}: {errno}", dir.display()),
            SysError::UnknownUser(name) => write!(f, "no such user {name}"),
            SysError::UserLookup { name, errno } => write!(f, "looking up user {name}: {errno}"),
            SysError::TargetIsRoot => f.write_str("refusing to drop privileges to uid 0"),
            SysError::NotDropped(v) => write!(f, "privileges not dropped: {v}"),
            SysError::SignalsInstalled => f.write_str("signal handlers are already installed"),
        }
    }
}

impl std::error::Error for SysError {}
