//! Reading sasyncd.conf safely: the file holds the shared key, so it must be
//! root's (or the IKE user's) and private, and checking that must not race
//! with someone swapping the file.
//!
//! The original `stat`s the path (following symlinks) and then reads it
//! (reference §6.1), so a symlink or a swap between the two calls defeats
//! the checks. Here the path is opened once with `O_NOFOLLOW` and every
//! check looks at the open descriptor (`fstat`):
//!
//! 1. not a symbolic link (refused even when it points at a good file);
//! 2. a regular file;
//! 3. owned by root, by `_isakmpd` if that user exists (as the original
//!    allows), or by our own effective uid (a developer running `-d -c`
//!    with a file of their own);
//! 4. no permission bits for group or others;
//! 5. at most [`MAX_CONFIG_BYTES`] long.
//!
//! Every refusal names the full path and has its own stable wording, so an
//! operator can grep for it.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::{geteuid, User};
use sasyncd_core::config::{addr_problem, AddrProblem, Config, ConfigError};

use crate::secret::SecretBytes;

/// Largest configuration file accepted. A real one is well under a
/// kilobyte; the bound keeps a mistaken path (a log file) from being read
/// whole into memory.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// The user the original allows to own the file besides root, and whose
/// home the network process chroots to.
pub const IKE_USER: &str = "_isakmpd";

/// The owners a configuration file may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owners {
    /// uid of [`IKE_USER`], if that user exists.
    pub ike_user: Option<u32>,
    /// Our effective uid, if it is not root.
    pub euid: Option<u32>,
}

impl Owners {
    /// The owners allowed on this host for this process.
    pub fn current() -> Owners {
        let ike_user = match User::from_name(IKE_USER) {
            Ok(Some(u)) => Some(u.uid.as_raw()),
            _ => None,
        };
        let euid = geteuid().as_raw();
        Owners {
            ike_user,
            euid: (euid != 0).then_some(euid),
        }
    }

    /// Whether `uid` may own the file.
    pub fn allows(&self, uid: u32) -> bool {
        uid == 0 || self.ike_user == Some(uid) || self.euid == Some(uid)
    }
}

impl fmt::Display for Owners {
    /// `root`, `root or _isakmpd`, `root, _isakmpd or uid 1000 (ours)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ike = self.ike_user.map(|_| IKE_USER.to_owned());
        let us = self
            .euid
            .filter(|&u| Some(u) != self.ike_user)
            .map(|u| format!("uid {u} (ours)"));
        let names: Vec<String> = std::iter::once("root".to_owned())
            .chain(ike)
            .chain(us)
            .collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => {
                write!(f, "{} or {last}", rest.join(", "))
            }
            _ => f.write_str("root"),
        }
    }
}

/// Why a configuration file was refused.
#[derive(Debug)]
pub enum ConfFileError {
    /// The path is a symbolic link.
    Symlink(PathBuf),
    /// The path could not be opened.
    Open(PathBuf, io::Error),
    /// Not a regular file (a directory, a device, a fifo...).
    NotRegular(PathBuf),
    /// Owned by someone not allowed.
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Who may own it.
        allowed: Owners,
    },
    /// Group or others have permission bits.
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits (`st_mode & 07777`).
        mode: u32,
    },
    /// Longer than [`MAX_CONFIG_BYTES`].
    TooLarge(PathBuf),
    /// Reading it failed.
    Read(PathBuf, io::Error),
    /// The text is not a valid configuration.
    Parse(PathBuf, ConfigError),
}

impl fmt::Display for ConfFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfFileError::Symlink(p) => {
                write!(f, "{}: is a symbolic link; refusing it", p.display())
            }
            ConfFileError::Open(p, e) => write!(f, "{}: {}", p.display(), os_error(e)),
            ConfFileError::NotRegular(p) => write!(f, "{}: not a regular file", p.display()),
            ConfFileError::Owner { path, uid, allowed } => write!(
                f,
                "{}: owned by uid {uid}; must be owned by {allowed}",
                path.display()
            ),
            ConfFileError::Mode { path, mode } => write!(
                f,
                "{}: mode {mode:04o} lets group or others access it; chmod 600 it",
                path.display()
            ),
            ConfFileError::TooLarge(p) => write!(
                f,
                "{}: larger than {MAX_CONFIG_BYTES} bytes; refusing it",
                p.display()
            ),
            ConfFileError::Read(p, e) => write!(f, "{}: read: {}", p.display(), os_error(e)),
            ConfFileError::Parse(p, e) => {
                let name = p.to_string_lossy();
                write!(f, "{}", e.display_with(&name))
            }
        }
    }
}

/// The system's text for an errno (`No such file or directory`), without
/// the `(os error 2)` that io::Error adds.
fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_owned(),
        None => e.to_string(),
    }
}

impl std::error::Error for ConfFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfFileError::Open(_, e) | ConfFileError::Read(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Reads, checks and parses the configuration at `path` with the owners
/// allowed for this process ([`Owners::current`]).
pub fn load(path: &Path) -> Result<Config, ConfFileError> {
    load_with(path, &Owners::current())
}

/// [`load`] with explicit owners.
pub fn load_with(path: &Path, owners: &Owners) -> Result<Config, ConfFileError> {
    let text = read_checked(path, owners)?;
    Config::parse(&text).map_err(|e| ConfFileError::Parse(path.to_owned(), e))
}

/// The file's bytes after every check. The buffer holds the shared key, so
/// it wipes itself when dropped; the privileged process sends these bytes
/// to the network process on reload.
pub fn read_checked(path: &Path, owners: &Owners) -> Result<SecretBytes, ConfFileError> {
    let p = || path.to_owned();
    let mut file = File::options()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ELOOP) => ConfFileError::Symlink(p()),
            _ => ConfFileError::Open(p(), e),
        })?;
    // `File::metadata` is fstat(2) on the descriptor just opened.
    let meta = file.metadata().map_err(|e| ConfFileError::Read(p(), e))?;
    if !meta.file_type().is_file() {
        return Err(ConfFileError::NotRegular(p()));
    }
    if !owners.allows(meta.uid()) {
        return Err(ConfFileError::Owner {
            path: p(),
            uid: meta.uid(),
            allowed: owners.clone(),
        });
    }
    if meta.mode() & 0o077 != 0 {
        return Err(ConfFileError::Mode {
            path: p(),
            mode: meta.mode() & 0o7777,
        });
    }
    if meta.len() > MAX_CONFIG_BYTES as u64 {
        return Err(ConfFileError::TooLarge(p()));
    }
    // Read to the end rather than trusting st_size (the file may change
    // under us), one byte past the limit to notice growth. The capacity is
    // fixed up front so the buffer is never reallocated, which would leave
    // an unwiped copy of the key behind.
    let mut text = SecretBytes::new(Vec::with_capacity(MAX_CONFIG_BYTES + 1));
    (&mut file)
        .take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(text.as_mut_vec())
        .map_err(|e| ConfFileError::Read(p(), e))?;
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfFileError::TooLarge(p()));
    }
    Ok(text)
}

/// Why a peer's address could not be found or cannot be used.
#[derive(Debug)]
pub enum ResolveError {
    /// A name did not resolve.
    Failed {
        /// The name as written in the file.
        peer: String,
        /// Its line.
        line: u32,
        /// What the resolver said (`None`: it returned no address).
        error: Option<io::Error>,
    },
    /// A name resolved to the address of another peer: peers are told
    /// apart by address, so the two would be one.
    Duplicate {
        /// The name as written in the file.
        peer: String,
        /// Its line.
        line: u32,
        /// The address it resolved to.
        addr: IpAddr,
        /// The peer that has this address.
        other: String,
    },
    /// A name resolved to an address no peer can have.
    Unusable {
        /// The name as written in the file.
        peer: String,
        /// Its line.
        line: u32,
        /// The address it resolved to.
        addr: IpAddr,
        /// What is wrong with it.
        why: AddrProblem,
    },
    /// The peer is this host: a session with itself would be refused as a
    /// duplicate connection every second, forever.
    Own {
        /// The peer as written in the file.
        peer: String,
        /// Its line.
        line: u32,
        /// Its address.
        addr: IpAddr,
    },
}

impl ResolveError {
    /// The line of the peer statement.
    pub fn line(&self) -> u32 {
        match self {
            ResolveError::Failed { line, .. }
            | ResolveError::Duplicate { line, .. }
            | ResolveError::Unusable { line, .. }
            | ResolveError::Own { line, .. } => *line,
        }
    }

    /// `FILE:LINE: message`, as configuration errors are printed.
    pub fn display_with(&self, file: &Path) -> String {
        format!("{}:{}: {self}", file.display(), self.line())
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Failed {
                peer,
                error: Some(e),
                ..
            } => write!(f, "peer {peer}: cannot resolve: {e}"),
            ResolveError::Failed {
                peer, error: None, ..
            } => {
                write!(f, "peer {peer}: cannot resolve: no address")
            }
            ResolveError::Duplicate {
                peer, addr, other, ..
            } => write!(
                f,
                "peer {peer}: resolves to {addr}, the address of peer {other}"
            ),
            ResolveError::Unusable {
                peer, addr, why, ..
            } => write!(f, "peer {peer}: resolves to {addr}: {why}"),
            ResolveError::Own { peer, addr, .. } => write!(
                f,
                "peer {peer}: {addr} is an address of this host; list the other gateways only"
            ),
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResolveError::Failed { error: Some(e), .. } => Some(e),
            _ => None,
        }
    }
}

/// Resolves every peer given by name (`addr == None`) to its first address
/// and stores it in the peer, as the original resolved names once at
/// start; then refuses a peer at one of `own` (this host's addresses).
/// Runs in the privileged process, before chroot and on every reload (the
/// resolver needs `/etc`). A name that does not resolve is an error naming
/// it and its line: a silently missing peer would only show as a gateway
/// that never syncs.
pub fn resolve_peers(config: &mut Config, own: &[IpAddr]) -> Result<(), ResolveError> {
    resolve_peers_with(config, own, |name| {
        (name, 0u16).to_socket_addrs().map(|a| a.collect())
    })
}

/// [`resolve_peers`] with the resolver given (for tests).
pub fn resolve_peers_with<F>(
    config: &mut Config,
    own: &[IpAddr],
    mut resolve: F,
) -> Result<(), ResolveError>
where
    F: FnMut(&str) -> io::Result<Vec<SocketAddr>>,
{
    for i in 0..config.peers.len() {
        let Some(peer) = config.peers.get(i) else {
            break;
        };
        let line = config.lines.peer(i);
        let name = peer.name.to_string();
        if let Some(addr) = peer.addr {
            if own.contains(&addr) {
                return Err(ResolveError::Own {
                    peer: name,
                    line,
                    addr,
                });
            }
            continue;
        }
        let addr = match resolve(&name) {
            Ok(addrs) => match addrs.first() {
                Some(a) => a.ip(),
                None => {
                    return Err(ResolveError::Failed {
                        peer: name,
                        line,
                        error: None,
                    })
                }
            },
            Err(e) => {
                return Err(ResolveError::Failed {
                    peer: name,
                    line,
                    error: Some(e),
                })
            }
        };
        if let Some(why) = addr_problem(addr) {
            return Err(ResolveError::Unusable {
                peer: name,
                line,
                addr,
                why,
            });
        }
        if own.contains(&addr) {
            return Err(ResolveError::Own {
                peer: name,
                line,
                addr,
            });
        }
        if let Some(other) = config.peers.iter().find(|p| p.addr == Some(addr)) {
            return Err(ResolveError::Duplicate {
                peer: name,
                line,
                addr,
                other: other.name.to_string(),
            });
        }
        if let Some(peer) = config.peers.get_mut(i) {
            peer.addr = Some(addr);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
