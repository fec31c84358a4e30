//! What each process may still do once it runs (reference
//! `openbsd-daemon-practice.md` §2).
//!
//! * The network process, chrooted and unprivileged, pledges
//!   [`NET_PROMISES`] once its kernel sockets are open: `stdio` for its
//!   descriptors (PF_KEY, routing socket, channel, control socket and its
//!   clients) and `inet` for peer connections (accepting on the inherited
//!   control socket needs no more: accept is allowed on any domain). No
//!   `dns`: peers named by host name are resolved by the privileged
//!   process, at start-up and at each reload.
//! * The privileged process cannot pledge: no promise allows the dump
//!   sysctls or the group ioctls. It unveils what it opens by path
//!   ([`priv_unveils`]), the resolver's files included, and locks unveil.

use std::path::{Path, PathBuf};

use crate::ike::IkeTargets;

/// The network process's pledge.
pub const NET_PROMISES: &str = "stdio inet";

/// The password database: re-reading the configuration (SIGHUP) checks
/// that its owner is root or `_isakmpd`, which looks the user up.
pub const PASSWD_DB: &str = "/etc/pwd.db";

/// What the resolver reads: a reload resolves peers named by host name in
/// the privileged process, as start-up does (the network process's
/// chroot has neither file).
pub const RESOLVER_FILES: [&str; 2] = ["/etc/hosts", "/etc/resolv.conf"];

/// One path the privileged process keeps, and what it may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unveil {
    /// The path.
    pub path: PathBuf,
    /// unveil(2) permissions: `r`, `w`, `c`.
    pub permissions: &'static str,
}

fn unveil(path: &Path, permissions: &'static str) -> Unveil {
    Unveil {
        path: path.to_path_buf(),
        permissions,
    }
}

/// What the privileged process keeps: both IKE control paths whatever
/// `control` says now (a reload may change it; connecting to a unix
/// socket needs `w`), the configuration file (re-read on SIGHUP), the
/// password database (see [`PASSWD_DB`]), the resolver's files (see
/// [`RESOLVER_FILES`]) and the control socket, removed at exit (`c`).
pub fn priv_unveils(config: &Path, control_socket: &Path, ike: &IkeTargets) -> Vec<Unveil> {
    vec![
        unveil(&ike.fifo, "w"),
        unveil(&ike.socket, "w"),
        unveil(config, "r"),
        unveil(Path::new(PASSWD_DB), "r"),
        unveil(Path::new(RESOLVER_FILES[0]), "r"),
        unveil(Path::new(RESOLVER_FILES[1]), "r"),
        unveil(control_socket, "c"),
    ]
}

/// Why confining a process failed.
#[cfg(target_os = "openbsd")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfineError {
    /// pledge(2) failed.
    Pledge(nix::errno::Errno),
    /// Locking unveil failed.
    UnveilLock(nix::errno::Errno),
}

#[cfg(target_os = "openbsd")]
impl std::fmt::Display for ConfineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfineError::Pledge(e) => write!(f, "pledge: {}", e.desc()),
            ConfineError::UnveilLock(e) => write!(f, "unveil: {}", e.desc()),
        }
    }
}

#[cfg(target_os = "openbsd")]
impl std::error::Error for ConfineError {}

/// Pledges the network process.
#[cfg(target_os = "openbsd")]
pub fn pledge_net() -> Result<(), ConfineError> {
    let promises = std::ffi::CString::new(NET_PROMISES)
        .map_err(|_| ConfineError::Pledge(nix::errno::Errno::EINVAL))?;
    crate::sys::pledge(&promises).map_err(ConfineError::Pledge)
}

/// Unveils `paths` and locks unveil. A path that cannot be unveiled is
/// logged and left hidden (what needs it then fails with a clear error);
/// failing to lock is an error.
#[cfg(target_os = "openbsd")]
pub fn unveil_priv(paths: &[Unveil]) -> Result<(), ConfineError> {
    for u in paths {
        let Ok(perms) = std::ffi::CString::new(u.permissions) else {
            continue;
        };
        if let Err(e) = crate::sys::unveil(&u.path, &perms) {
            log::warn!(
                "unveil {} {}: {}",
                u.path.display(),
                u.permissions,
                e.desc()
            );
        }
    }
    crate::sys::unveil_lock().map_err(ConfineError::UnveilLock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasyncd_core::config::Control;

    #[test]
    fn the_privileged_process_keeps_only_what_it_opens() {
        let ike = IkeTargets::new(Control {
            isakmpd: true,
            iked: false,
        });
        let u = priv_unveils(
            Path::new("/etc/sasyncd.conf"),
            Path::new("/var/run/sasyncd.sock"),
            &ike,
        );
        let got: Vec<(&str, &str)> = u
            .iter()
            .map(|u| (u.path.to_str().unwrap(), u.permissions))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/var/run/isakmpd.fifo", "w"),
                ("/var/run/iked.sock", "w"),
                ("/etc/sasyncd.conf", "r"),
                ("/etc/pwd.db", "r"),
                ("/etc/hosts", "r"),
                ("/etc/resolv.conf", "r"),
                ("/var/run/sasyncd.sock", "c"),
            ]
        );
    }

    #[test]
    fn the_network_process_pledges_no_more_than_it_needs() {
        assert_eq!(NET_PROMISES, "stdio inet");
    }
}
