//! The kernel side of the daemon: what each process needs from the host it
//! runs on, whatever that host is. On OpenBSD these are the PF_KEY socket,
//! the routing socket, the sysctl dumps, the carp group ioctls and the IKE
//! daemons' control channels; in development mode a devhost plays the
//! gateway ([`crate::dev`]). The network process holds a [`PfkeySocket`]
//! and a [`LinkWatch`], opened before it drops its privileges; the
//! privileged process holds the [`Host`].

use std::io;
use std::os::fd::AsFd;

use sasyncd_core::node::Table;
use sasyncd_core::platform::PfkeyWrite;

use crate::secret::SecretBytes;

/// The network process's PF_KEY socket.
pub trait PfkeySocket: AsFd {
    /// Reads what is available and appends every whole PF_KEY message to
    /// `out`. The end of the socket is an error.
    fn read_messages(&mut self, out: &mut Vec<Vec<u8>>) -> io::Result<()>;
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
}
