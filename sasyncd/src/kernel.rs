//! The kernel side of the daemon: what each process needs from the host it
//! runs on, whatever that host is. On OpenBSD these are the PF_KEY socket,
//! the routing socket, the sysctl dumps, the carp group ioctls and the IKE
//! daemons' control channels ([`crate::openbsd`]); in development mode a
//! devhost plays the gateway ([`crate::dev`]). The network process holds a
//! [`PfkeySocket`] and a [`LinkWatch`], opened before it drops its
//! privileges; the privileged process holds the [`Host`].

use std::io;
use std::os::fd::AsFd;

use sasyncd_core::config::Config;
use sasyncd_core::node::Table;
use sasyncd_core::platform::PfkeyWrite;

use crate::secret::SecretBytes;

/// The network process's PF_KEY socket.
pub trait PfkeySocket: AsFd {
    /// Reads what is available and appends every whole PF_KEY message to
    /// `out`, each in a buffer wiped when dropped (they carry SA keys).
    /// The end of the socket is an error.
    fn read_messages(&mut self, out: &mut Vec<SecretBytes>) -> io::Result<()>;
    /// Writes one message, or queues it whole to be written when the socket
    /// is writable ([`PfkeyWrite::WouldBlock`] when even that cannot be
    /// done now).
    fn write_message(&mut self, msg: &[u8]) -> PfkeyWrite;
    /// Bytes wait for the socket to become writable.
    fn wants_write(&self) -> bool;
    /// Writes what waits.
    fn flush(&mut self) -> io::Result<()>;
}

/// Changes of the carp interface's link state (the routing socket).
pub trait LinkWatch: AsFd {
    /// The link states reported since the last call, oldest first.
    fn read_states(&mut self) -> io::Result<Vec<u8>>;
    /// A reloaded configuration tracks another carp interface (`None`: the
    /// role is locked). A watch that follows the devhost's one interface
    /// ignores it.
    fn set_interface(&mut self, _name: Option<&str>) {}
    /// Whether the interface's state must be read again through the
    /// privileged process: the watch lost track of it (the interface was
    /// re-created, or the kernel dropped messages). Asking clears it.
    fn take_recheck(&mut self) -> bool {
        false
    }
}

/// What only the privileged process may do.
pub trait Host {
    /// A point-in-time copy of a kernel table, in sysctl dump format.
    fn dump(&mut self, table: Table) -> io::Result<SecretBytes>;
    /// The carp group's demotion counter.
    fn demote_counter(&mut self) -> io::Result<i32>;
    /// Changes the carp group's demotion counter by `delta`.
    fn demote(&mut self, delta: i32) -> io::Result<()>;
    /// Tells the IKE daemon(s) to go active or passive.
    fn ike(&mut self, active: bool) -> io::Result<()>;
    /// The carp interface's link state (`LINK_STATE_*`).
    fn link_state(&mut self) -> io::Result<u8>;
    /// The network process applied a reloaded configuration: follow its
    /// carp interface and IKE control. The demotion group stays as it was
    /// at start-up (a demotion is released where it was raised; the node
    /// reports a changed group as needing a restart).
    fn reconfigure(&mut self, _cfg: &Config) {}
    /// Whether a pfsync interface is up; `None` where the host cannot tell
    /// (development mode).
    fn pfsync_up(&mut self) -> Option<bool> {
        None
    }
}
