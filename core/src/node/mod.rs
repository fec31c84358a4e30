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
//! * `slave`: the slave's sync (where it stands in its master's stream,
//!   whom it follows, the repair it owes itself); `feed`: the master's
//!   digest schedule, last digest and bundle passes; `slots`: the
//!   connection slots with each peer's backoff and the send turn;
//! * [`txbuf`]: a connection's outgoing bytes; [`pfkeyq`]: PF_KEY messages
//!   waiting for the kernel; [`marks`]: what a snapshot contained, for the
//!   slave's sweep.
//!
//! A platform drives a [`Node`] through the platform contract,
//! [`crate::platform`]: the [`Platform`](crate::platform::Platform) trait
//! and the one runtime [`drive`](crate::platform::drive). How the
//! node's parts, the platforms and the daemon's processes fit together is
//! in `doc/ARCHITECTURE.md`; the sync session it speaks, in
//! `doc/PROTOCOL.md`.

pub mod backoff;
pub mod carp;
mod conn;
pub mod demote;
pub mod digest;
pub mod event;
mod feed;
mod fingerprint;
mod follow;
pub mod ike;
mod jobs;
pub mod log_limit;
mod machine;
pub mod marks;
mod master;
mod operator;
pub mod outseq;
pub mod peer_stats;
pub mod peer_table;
pub mod pfkeyq;
mod reconfigure;
mod recv;
mod repair;
pub mod ring;
mod scratch;
mod session;
mod slave;
mod slots;
pub mod stats;
mod storage;
pub mod txbuf;
#[cfg(feature = "alloc")]
mod vec_marks;
mod wipe;

pub use conn::{ConnSlot, MIN_TX_BYTES, TX_BYTES};
pub use demote::DemoteEffect;
pub use event::{
    ConnId, DumpFlow, DumpId, DumpOp, Event, NodeError, Received, Rejected, Settings, Table,
};
pub use ike::{IkeMode, IkeRequest};
#[cfg(feature = "planted-bugs")]
pub use machine::PlantedBugs;
pub use machine::{frame_room, min_events, Node, EVENTS, MIN_PFKEY_QUEUE_BYTES, PFKEY_QUEUE_BYTES};
pub use marks::{FixedMarks, Mark, MarkStore};
pub use operator::ResyncError;
pub use peer_stats::{
    ErrorCounts, ErrorKind, LastError, PeerStats, PEER_SPEAKS_LEGACY, PEER_SPEAKS_V2,
};
pub use peer_table::Peer;
pub use reconfigure::{Reconfigured, RoleChange, SessionReset};
pub use ring::MIN_RING_BYTES;
pub use scratch::Scratch;
pub use stats::{Counters, NodeStats, PeerView, RingFill, SessionPhase};
pub use storage::{Managed, ManagedSlice, NodeStorage, StorageError, RX_BYTES};
#[cfg(feature = "alloc")]
pub use vec_marks::VecMarks;

/// The default delta ring ([`NodeStorage::default_on_heap`]): 128 KiB.
pub const DEFAULT_RING_BYTES: usize = 128 * 1024;

/// Delta ring of the smallest node (the firmware sizing, issue 12): one
/// maximal delta or about 18 typical ESP ones. A slave that reconnects
/// after missing more, or falls behind a burst, resumes at the head and is
/// repaired by bucket.
pub const SMALL_RING_BYTES: usize = MIN_RING_BYTES;
