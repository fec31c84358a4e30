//! Process plumbing for the two-process daemon, through nix's safe
//! wrappers: detaching ([`daemonize`]), dropping privileges in the network
//! process ([`drop_privileges`]), process titles ([`set_process_title`])
//! signals a poll(2) loop can wait for ([`Signals`]) and the kernel's
//! random numbers ([`OsRandom`]).

mod daemon;
mod error;
mod harden;
mod privdrop;
mod random;
mod signals;
mod title;

pub use daemon::{daemonize, READY};
pub use error::{SysError, Verify};
pub use harden::{close_inherited_fds, no_core_dumps, wipe_stack};
#[cfg(target_os = "linux")]
pub use privdrop::drop_privileges_keeping_net_admin;
pub use privdrop::{drop_privileges, lookup_user, Unpriv};
pub use random::OsRandom;
pub use signals::{hold, ignore, ignore_sigpipe, release, Signals, STOP_RELOAD};
pub use title::set_process_title;
