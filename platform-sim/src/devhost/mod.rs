//! The development-mode host: one process that plays one gateway's kernel
//! (PF_KEY SADB and SPD, sysctl dumps), carp interface and IKE daemon, so
//! the real `sasyncd` can run and be tested end to end on Linux. The
//! kernel is the simulator's [`Kernel`](crate::kernel::Kernel), driven by
//! real monotonic time.
//!
//! This part: the gateway model ([`gateway`]), the replies its PF_KEY
//! writers get ([`reply`]) and its text commands ([`ctl`]).

pub mod ctl;
pub mod gateway;
pub mod reply;

use std::net::IpAddr;

pub use gateway::GatewayConfig;

/// The pid the IKE stand-in writes with (`ctl` edits, the workload):
/// above every real pid on Linux (at most 2^22) and OpenBSD (< 100000),
/// so it never collides with a pfkey client's.
pub const IKE_PID: u32 = 1_000_000_500;

/// The gateway's own address (the carp address its SAs are bound to).
pub const DEFAULT_LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 100));

/// The remote IKE peer of `add-sa` and `add-flow` by default.
pub const DEFAULT_REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
