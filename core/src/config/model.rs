//! What a parsed sasyncd.conf says: plain values, fixed capacities, no heap.

use core::net::IpAddr;

use crate::crypto::SecretKey;
use crate::state::{FlushMode, RunState};

/// Most `peer` statements a configuration may hold, and the number of peers
/// the daemon's node is built for: the one limit, stated here and enforced
/// by the parser with the line of the peer too many. A cluster of CARP
/// nodes is small; a fixed bound keeps [`Config`] allocation-free.
pub const MAX_PEERS: usize = 8;

/// Longest interface or interface-group name in bytes: the kernel's
/// `IFNAMSIZ` (16) minus the terminating NUL.
pub const IFNAME_MAX: usize = 15;

/// Longest peer name in bytes (a DNS name is at most 253 characters).
pub const PEER_NAME_MAX: usize = 255;

/// Longest `demote file` path in bytes: a fixed bound keeps [`Config`]
/// allocation-free; keepalived's track files live in short paths
/// (`/run/...`, `/etc/keepalived/...`).
pub const DEMOTE_PATH_MAX: usize = 255;

/// Port used for listening and, unless a peer names its own, for connecting.
pub const DEFAULT_PORT: u16 = 500;

/// `replay margin` unless given: how far past the last outbound sequence
/// number carried a new master moves each outbound SA (Linux; see
/// sasyncd.conf(5) for why 4096).
pub const DEFAULT_REPLAY_MARGIN: u32 = 4096;

/// Interface group whose CARP demotion counter is adjusted by default.
pub const DEFAULT_GROUP: &str = "carp";

/// An interface or interface-group name (at most [`IFNAME_MAX`] bytes).
pub type IfName = heapless::String<IFNAME_MAX>;

/// The path of a `demote file` (at most [`DEMOTE_PATH_MAX`] bytes).
pub type DemotePath = heapless::String<DEMOTE_PATH_MAX>;

/// A peer's name as written in the file (at most [`PEER_NAME_MAX`] bytes).
pub type PeerName = heapless::String<PEER_NAME_MAX>;

/// One `peer` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The text from the file, kept for log messages and for name resolution.
    pub name: PeerName,
    /// `Some` if `name` is an IPv4 or IPv6 literal. `None` means a host name
    /// (or a scoped literal such as `fe80::1%em0`) that this crate does not
    /// resolve: the platform may resolve it, or refuse it.
    pub addr: Option<IpAddr>,
    /// `peer ADDR port N`. `None`: the peer listens on our own listen port, as
    /// the original always assumed (reference D-23).
    pub port: Option<u16>,
}

impl Peer {
    /// The port to connect to, given our own listen port.
    pub fn port_or(&self, listen_port: u16) -> u16 {
        self.port.unwrap_or(listen_port)
    }
}

/// Address family qualifier of `listen on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `inet`: IPv4 only.
    Inet,
    /// `inet6`: IPv6 only.
    Inet6,
}

impl Family {
    /// The keyword as written in the file.
    pub const fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        }
    }
}

/// Where to accept peer connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenOn {
    /// No `listen on` statement: the IPv4 wildcard, as the original did
    /// (reference §8.2; whether to add IPv6 is the platform's choice, D-24).
    Any,
    /// `listen on` an IPv4 or IPv6 literal.
    Addr(IpAddr),
    /// `listen on` an interface name: every address it has (of `family`).
    Interface(IfName),
}

/// The `listen on` statement, or its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// Address or interface.
    pub on: ListenOn,
    /// `inet` / `inet6`; only meaningful with an interface name (for a literal
    /// it must agree with the literal's family, which the parser checks).
    pub family: Option<Family>,
    /// TCP port, 1..=65535; [`DEFAULT_PORT`] unless given.
    pub port: u16,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            on: ListenOn::Any,
            family: None,
            port: DEFAULT_PORT,
        }
    }
}

/// Which IKE daemons sasyncd activates on MASTER and passivates on SLAVE
/// (`control isakmpd|iked|all|none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Control {
    /// Control isakmpd through its fifo.
    pub isakmpd: bool,
    /// Control iked through its control socket.
    pub iked: bool,
}

impl Default for Control {
    /// `control isakmpd`, the original's default.
    fn default() -> Self {
        Control {
            isakmpd: true,
            iked: false,
        }
    }
}

/// The peer protocol (`protocol legacy|v2`), an addition of this
/// implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// The original's frame format, to interoperate with OpenBSD's sasyncd.
    Legacy,
    /// Authenticated, replay-protected sessions with resumable streams.
    #[default]
    V2,
}

/// A parsed and checked sasyncd.conf. Built by [`Config::parse`].
#[derive(Debug)]
pub struct Config {
    /// CARP interface whose link state drives the run state. Always `Some`
    /// unless `locked` is.
    pub interface: Option<IfName>,
    /// `interface NAME address ADDR`: the role follows the presence of this
    /// (virtual) address on the interface, as keepalived's VRRP moves it,
    /// instead of a carp interface's link state (Linux).
    pub address: Option<IpAddr>,
    /// `demote file PATH`: demotion is written as the integer in this file,
    /// which keepalived's `track_file` reads, instead of a carp group's
    /// demotion counter (Linux).
    pub demote_file: Option<DemotePath>,
    /// Interface group whose CARP demotion counter is adjusted.
    pub group: IfName,
    /// `flushmode`; the last statement wins (the original OR-ed them, D-28).
    pub flushmode: FlushMode,
    /// Peers in file order (the original reversed it). No duplicates.
    pub peers: heapless::Vec<Peer, MAX_PEERS>,
    /// Where to accept peer connections.
    pub listen: Listen,
    /// `mode master` / `mode slave`: the run state is fixed, CARP not tracked.
    pub locked: Option<RunState>,
    /// `mode skipslave`: do not sync SAs and flows whose endpoint is a peer.
    pub skipslave: bool,
    /// The shared key, 16, 24 or 32 bytes.
    pub sharedkey: SecretKey<32>,
    /// Which IKE daemons to control.
    pub control: Control,
    /// Peer protocol.
    pub protocol: Protocol,
    /// `replay margin N`: how far past the last outbound sequence number
    /// carried a new master moves each outbound SA (Linux), 1..=2^31.
    pub replay_margin: u32,
    /// Where statements were, so that checks made after parsing (a name
    /// that does not resolve, an address that is not ours) name the line.
    pub lines: Lines,
}

/// The lines of the statements that later checks report on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    /// The `listen on` statement (0: none, the default applies).
    pub listen: u32,
    /// Each `peer` statement, in the order of [`Config::peers`].
    pub peers: heapless::Vec<u32, MAX_PEERS>,
}

impl Lines {
    /// The line of peer `i` (0 if unknown).
    pub fn peer(&self, i: usize) -> u32 {
        self.peers.get(i).copied().unwrap_or(0)
    }
}
