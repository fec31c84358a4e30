//! The sasyncd state machine, built from small sans-IO parts.
//!
//! Each part owns one rule and is driven the same way: the node feeds it
//! events (`handle_*`, with the current [`Instant`](crate::time::Instant)
//! passed in), drains what it wants done (`poll_*`), and asks it for its
//! next deadline (`poll_timeout`). The `Node` (assembled later) owns one of
//! each, routes platform events to them and merges their deadlines:
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
//! * [`txbuf`]: a connection's outgoing bytes; [`pfkeyq`]: PF_KEY messages
//!   waiting for the kernel; [`marks`]: what a snapshot contained, for the
//!   slave's sweep.

pub mod backoff;
pub mod carp;
pub mod demote;
pub mod digest;
pub mod ike;
pub mod marks;
pub mod peer_stats;
pub mod peer_table;
pub mod pfkeyq;
pub mod ring;
pub mod txbuf;
