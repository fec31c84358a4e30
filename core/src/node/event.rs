//! The node's vocabulary with its platform: identifiers, requests it makes
//! (`Event`), and the settings it starts from.

use core::net::IpAddr;
use core::time::Duration;

use super::demote::DemoteEffect;
use super::ike::IkeRequest;

/// A TCP connection, as the node names it. The node chooses ids for the
/// connections it asks for and for the ones the platform accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// One streamed kernel dump (a point-in-time copy the platform holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DumpId(pub u32);

/// Which kernel table a dump reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// The SADB (`net.key.sadb_dump`).
    Sadb,
    /// The SPD (`net.key.spd_dump`).
    Spd,
}

/// What the platform should do with a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpOp {
    /// Take a point-in-time copy of the table. Its records are fed with
    /// `handle_dump_entry` while `poll_dump` names it, and
    /// `handle_dump_end` follows the last one.
    Start(Table),
    /// Drop the dump: the node no longer needs it.
    Cancel,
}

/// Whether the node wants the next dump record now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a paused dump must not be fed until poll_dump names it again"]
pub enum DumpFlow {
    /// Keep feeding.
    More,
    /// Stop until `poll_dump` names the dump again (the consumer's buffer
    /// is full).
    Pause,
}

/// Something the node wants the platform to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Open a TCP connection; report with `handle_connected` or
    /// `handle_connect_failed`.
    Connect {
        /// The id the node gave it.
        conn: ConnId,
        /// Peer address.
        addr: IpAddr,
        /// Peer port.
        port: u16,
    },
    /// Close this connection; the node has already forgotten it.
    Close {
        /// Which one.
        conn: ConnId,
    },
    /// Turn PF_KEY promiscuous mode on or off.
    Promisc(bool),
    /// Tell the IKE daemon(s) to go active or passive; report with
    /// `handle_ike_result`.
    Ike(IkeRequest),
    /// Change our carp group demotion; report a `Raise` with
    /// `handle_demote_result`.
    Demote(DemoteEffect),
    /// Work on a kernel dump.
    Dump {
        /// Which dump.
        dump: DumpId,
        /// What to do.
        op: DumpOp,
    },
    /// Read the carp interface's link state again and report it with
    /// `handle_link_state` (a peer disputed our state).
    RecheckCarp,
}

/// Why an inbound connection was refused (the platform closes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The address is not a configured peer.
    UnknownPeer(IpAddr),
    /// The node is shutting down.
    ShuttingDown,
    /// The peer's connection slots hold its session and our own dial.
    Busy(IpAddr),
}

impl core::fmt::Display for Rejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Rejected::UnknownPeer(a) => {
                write!(f, "connection from {a} refused: not a configured peer")
            }
            Rejected::ShuttingDown => f.write_str("connection refused: shutting down"),
            Rejected::Busy(a) => {
                write!(f, "connection from {a} refused: its peer's slots are busy")
            }
        }
    }
}

impl core::error::Error for Rejected {}

/// What `handle_recv` did with the bytes it was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use = "bytes not consumed must be kept and offered again"]
pub struct Received {
    /// Bytes taken from the front of what was offered; the platform keeps
    /// the rest and offers it again (the node pauses reading while its
    /// kernel queue is full or a sweep holds the stream).
    pub consumed: usize,
    /// PF_KEY messages from the master queued for our kernel.
    pub applied: usize,
}

/// Why a node could not be built, or a configuration not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeError {
    /// More peers than the node's capacity.
    TooManyPeers,
    /// A peer was given by name; the platform must resolve it first.
    PeerNotAddress,
    /// Two peers have the same address (e.g. `::ffff:a.b.c.d` and
    /// `a.b.c.d`).
    DuplicatePeer,
    /// The shared key does not fit the configured protocol.
    BadKey,
    /// The node is shutting down: there is nothing left to reconfigure.
    ShuttingDown,
    /// Part of the node's storage is below its minimum.
    Storage(super::StorageError),
    /// `protocol legacy` on a node of another kernel than OpenBSD's: the
    /// original's protocol carries OpenBSD PF_KEY records, and its HELLO
    /// cannot name another dialect.
    LegacyDialect,
}

impl core::error::Error for NodeError {}

impl core::fmt::Display for NodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if let NodeError::Storage(e) = self {
            return write!(f, "node storage: {e}");
        }
        f.write_str(match self {
            NodeError::Storage(_) => "node storage",
            NodeError::TooManyPeers => "more peers than this node was built for",
            NodeError::PeerNotAddress => "a peer is given by name; resolve it to an address first",
            NodeError::DuplicatePeer => "a peer is configured twice",
            NodeError::BadKey => "the shared key must be 16, 24 or 32 bytes",
            NodeError::ShuttingDown => "the node is shutting down",
            NodeError::LegacyDialect => {
                "protocol legacy carries OpenBSD PF_KEY records only; this node runs another kernel"
            }
        })
    }
}

impl From<super::peer_table::TableError> for NodeError {
    fn from(e: super::peer_table::TableError) -> Self {
        match e {
            super::peer_table::TableError::Full => NodeError::TooManyPeers,
            super::peer_table::TableError::Duplicate(_) => NodeError::DuplicatePeer,
        }
    }
}

/// What a node is, beyond its configuration file.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Stable identity of this node (v2 HELLO; simultaneous-connect
    /// tie-break). E.g. a hash of the host's name or first address.
    pub node_id: [u8; 16],
    /// Changes at every start of the process (v2 HELLO).
    pub boot_epoch: u64,
    /// Our process id: PF_KEY messages we write carry it, and promiscuous
    /// copies of our own writes are recognised by it.
    pub pid: u32,
    /// How often a master sends anti-entropy digests.
    pub digest_interval: Duration,
    /// How long a connect may take before the node gives up on it (and
    /// tells the platform to close it), whatever the platform reports.
    pub connect_timeout: Duration,
    /// How long a v2 handshake may take before the connection is dropped.
    pub handshake_timeout: Duration,
    /// A v2 session that sent nothing for this long sends its state, so
    /// that its peer can tell a quiet session from a dead one.
    pub keepalive: Duration,
    /// A v2 session that received nothing for this long is dead (a peer
    /// that vanished leaves TCP half-open) and is closed.
    pub dead_after: Duration,
}

impl Settings {
    /// Defaults: 60 s digests, 10 s connects and handshakes, 10 s
    /// keepalives, dead after 30 s.
    pub const fn new(node_id: [u8; 16], boot_epoch: u64, pid: u32) -> Settings {
        Settings {
            node_id,
            boot_epoch,
            pid,
            digest_interval: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
        }
    }
}
