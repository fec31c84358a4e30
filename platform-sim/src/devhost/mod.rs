//! The development-mode host: one process that plays one gateway's kernel
//! (PF_KEY SADB and SPD, sysctl dumps), carp interface and IKE daemon, so
//! the real `sasyncd` can run and be tested end to end on Linux. The
//! kernel is the simulator's [`Kernel`](crate::kernel::Kernel), driven by
//! real monotonic time; see [`server::Server`]. The wire format and the
//! client side (the daemon's in development mode, and tests') are the
//! `sasyncd-devhost-proto` crate's, re-exported here as [`client`],
//! [`framer`] and [`proto`].
//!
//! # Gateway model
//!
//! The carp state changes only by `ctl carp ...` (the demotion counter is
//! kept and checked but moves no election: there is one host). The IKE
//! stand-in writes with [`IKE_PID`]; the `workload` runs the simulator's
//! [`Ike`](crate::ike::Ike) on the kernel while the host role last said
//! "active".

mod conn;
pub mod ctl;
pub mod gateway;
pub mod reply;
pub mod server;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use gateway::GatewayConfig;
pub use sasyncd_core::node::Table;
use sasyncd_devhost_proto::frame;
pub use sasyncd_devhost_proto::{client, framer, proto};
pub use sasyncd_devhost_proto::{
    connect_carp, connect_pfkey, ctl, CarpWatch, HostClient, PfkeyFrameError, PfkeyFramer,
};
pub use server::Server;

/// The pid the IKE stand-in writes with (`ctl` edits, the workload):
/// above every real pid on Linux (at most 2^22) and OpenBSD (< 100000),
/// so it never collides with a pfkey client's.
pub const IKE_PID: u32 = 1_000_000_500;

/// The gateway's own address (the carp address its SAs are bound to).
pub const DEFAULT_LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 100));

/// The remote IKE peer of `add-sa` and `add-flow` by default.
pub const DEFAULT_REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
