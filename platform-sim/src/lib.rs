//! Deterministic simulation of a sasyncd gateway cluster: the parts of the
//! world the `core::node` state machines run in, each a plain type driven
//! by simulated time ([`sasyncd_core::time::Instant`]) and one seeded
//! [`rng::Rng`]. No wall clock, no threads, no hash-order dependence: the
//! same seed gives the same run, byte for byte (checked with
//! [`trace::Trace`]'s hash).
//!
//! Simulated:
//! * [`kernel`]: one node's SADB/SPD behind PF_KEY, speaking real PF_KEY
//!   bytes, with promiscuous copies, bounded listener queues and sysctl
//!   dumps;
//! * [`carp`]: carp election with advskew, group demotion, preemption,
//!   partitions and crashes, reported as link-state changes;
//! * [`net`]: TCP-like byte streams with latency, bandwidth, bounded send
//!   buffers, random read chunking, resets, partitions and an adversary hook;
//! * [`links`]: who can reach whom (shared by carp and the network);
//! * [`ike`]: the IKE daemon's PF_KEY workload on the active node.
//!
//! Not simulated: the node itself (`core::node` is wired into these parts
//! by the world that drives them), the routing socket's byte format, the
//! privilege-separation monitor, isakmpd/iked control channels, real
//! cryptography in the workload (keys are random bytes), packet forwarding.

pub mod carp;
pub mod errno;
pub mod ike;
pub mod kernel;
pub mod links;
pub mod net;
pub mod pfmsg;
pub mod rng;
pub mod trace;
