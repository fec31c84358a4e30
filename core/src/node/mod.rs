//! The sasyncd state machine, built from small sans-IO parts.
//!
//! Each part owns one rule and is driven the same way: the node feeds it
//! events (`handle_*`, with the current [`Instant`](crate::time::Instant)
//! passed in), drains what it wants done (`poll_*`), and asks it for its
//! next deadline (`poll_timeout`). The [`Node`] owns one of each, routes
//! platform events to them and merges their deadlines:
//!
//! * [`carp`]: our run state from the carp link state, or locked by config;
//! * [`demote`]: the start-up carp demotion and when to release it;
//! * [`ike`]: isakmpd/iked active or passive, latest wins;
//! * [`backoff`]: when to reconnect a peer;
//! * [`ring`]: the master's recent deltas, so a reconnecting slave can
//!   resume instead of taking a full snapshot;
//! * [`digest`]: order-independent digests of the SADB/SPD for anti-entropy;
//! * [`peer_table`]: configured peers, their sessions and announced states,
//!   with [`peer_stats`] counters;
//! * `reconfigure`: applying a reloaded configuration to a running node;
//! * [`txbuf`]: a connection's outgoing bytes; [`pfkeyq`]: PF_KEY messages
//!   waiting for the kernel; [`marks`]: what a snapshot contained, for the
//!   slave's sweep.
//!
//! A platform drives a [`Node`] through the platform contract,
//! [`crate::platform`]: the [`Platform`](crate::platform::Platform) trait
//! and the one output driver [`drive`](crate::platform::drive). How the
//! node's parts, the platforms and the daemon's processes fit together is
//! in `doc/ARCHITECTURE.md`; the sync session it speaks, in
//! `doc/PROTOCOL.md`.

pub mod backoff;
pub mod carp;
mod conn;
pub mod demote;
pub mod digest;
pub mod event;
mod fingerprint;
mod follow;
pub mod ike;
mod init;
mod jobs;
pub mod log_limit;
mod machine;
pub mod marks;
mod master;
mod operator;
pub mod peer_stats;
pub mod peer_table;
pub mod pfkeyq;
mod reconfigure;
mod recv;
pub mod ring;
mod scratch;
mod session;
pub mod stats;
pub mod txbuf;
#[cfg(feature = "alloc")]
mod vec_marks;

pub use conn::{MIN_TX_BYTES, TX_BYTES};
pub use demote::DemoteEffect;
pub use event::{
    ConnId, DumpFlow, DumpId, DumpOp, Event, NodeError, Received, Rejected, Settings, Table,
};
pub use ike::{IkeMode, IkeRequest};
pub use jobs::{identity, IDENTITY_MAX};
#[cfg(feature = "planted-bugs")]
pub use machine::PlantedBugs;
pub use machine::{min_events, Node, EVENTS, MIN_PFKEY_QUEUE_BYTES, PFKEY_QUEUE_BYTES};
pub use marks::{FixedMarks, Mark, MarkStore};
pub use operator::ResyncError;
pub use peer_stats::{
    ErrorCounts, ErrorKind, LastError, PeerStats, PEER_SPEAKS_LEGACY, PEER_SPEAKS_V2,
};
pub use reconfigure::{Reconfigured, RoleChange, SessionReset};
pub use ring::MIN_RING_BYTES;
pub use stats::{Counters, NodeStats, PeerView, RingFill, SessionPhase};
#[cfg(feature = "alloc")]
pub use vec_marks::VecMarks;

/// A node with default capacities: [`MAX_PEERS`](crate::config::MAX_PEERS)
/// peers (the limit the configuration parser enforces), a 128 KiB delta ring, 16 KiB
/// of send buffer per connection, a 16 KiB PF_KEY queue, 256 events, and
/// the platform's mark store `M`.
pub type DefaultNode<C, R, M> =
    Node<C, R, { crate::config::MAX_PEERS }, { 128 * 1024 }, M, TX_BYTES>;

/// Delta ring of [`SmallNode`]: the smallest, one maximal delta or about
/// 18 typical ESP ones. A slave that reconnects after missing more, or
/// falls behind a burst, resumes at the head and is repaired by bucket.
pub const SMALL_RING_BYTES: usize = MIN_RING_BYTES;

/// A node for a one-peer appliance (the firmware sizing, issue 12): one
/// peer, the smallest ring, send buffers, PF_KEY queue and event
/// queue that still work, and the platform's mark store `M` (for example
/// `&'static mut FixedMarks<N>`: a store in the firmware's own static,
/// lent to the node). Every other buffer of the node is the size of one
/// maximal message. For two peers, the same with `P = 2` and
/// `{ min_events(2) }` events. Build it in place with [`Node::init_in`].
pub type SmallNode<C, R, M> =
    Node<C, R, 1, SMALL_RING_BYTES, M, MIN_TX_BYTES, MIN_PFKEY_QUEUE_BYTES, { min_events(1) }>;
