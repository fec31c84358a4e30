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
use sasyncd_core::pfkey::build_promisc;
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
    /// Switches the watch of other processes' changes on (master) or off.
    /// PF_KEY's way (OpenBSD, development mode): an `X_PROMISC` message
    /// with sequence number `seq` written by `pid` on the socket itself.
    fn set_promisc(&mut self, on: bool, seq: u32, pid: u32) {
        let mut m = [0u8; 16];
        match build_promisc(on, seq, pid, &mut m) {
            Ok(_) => {
                if self.write_message(&m) == PfkeyWrite::WouldBlock {
                    log::error!("cannot switch PF_KEY promiscuous mode: socket full");
                }
            }
            Err(e) => log::error!("cannot build X_PROMISC: {e}"),
        }
    }
    /// What the kernel's copies of our own writes carry to name us (the
    /// node's writer id): the process id on PF_KEY; a netlink socket's
    /// port on Linux.
    fn writer_id(&self, pid: u32) -> u32 {
        pid
    }
    /// Whether the kernel dropped change messages since the last call (a
    /// netlink watch's receive buffer overran: `ENOBUFS`). Asking clears
    /// it.
    fn take_lost(&mut self) -> bool {
        false
    }
    /// How this kernel frames the records its dumps and watch deliver.
    fn framing(&self) -> Framing {
        Framing::Pfkey
    }
}

/// How the records of a kernel dump are framed: each record says its own
/// length, in the kernel's message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// PF_KEY: `sadb_msg_len`, in 8-byte units, at offset 4.
    #[default]
    Pfkey,
    /// Netlink (XFRM): `nlmsg_len`, in bytes, at offset 0; records are
    /// padded to 4 bytes.
    Netlink,
}

impl Framing {
    /// The length of the record at the start of `b` (0 if its header is
    /// cut or names no length), as the next record's offset.
    pub fn record_len(self, b: &[u8]) -> usize {
        match self {
            Framing::Pfkey => b
                .get(4..6)
                .map_or(0, |x| u16::from_ne_bytes([x[0], x[1]]) as usize * 8),
            Framing::Netlink => b.get(0..4).map_or(0, |x| {
                let n = u32::from_ne_bytes([x[0], x[1], x[2], x[3]]) as usize;
                // Shorter than a header names no record.
                if n < 16 {
                    0
                } else {
                    (n + 3) & !3
                }
            }),
        }
    }
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
    /// How the records of [`dump`](Self::dump) are framed.
    fn framing(&self) -> Framing {
        Framing::Pfkey
    }
}
