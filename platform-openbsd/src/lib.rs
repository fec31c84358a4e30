//! The OpenBSD platform layer of sasyncd: the kernel and daemon interfaces
//! the daemon's processes work through on a real gateway.
//!
//! * Network process: the PF_KEY socket ([`pfkey`]) and the carp watch on
//!   a routing socket ([`carp`], parsing in [`route`]), both opened while
//!   still root; its pledge ([`confine`]).
//! * Privileged process: the SADB/SPD dumps through sysctl ([`sysctl`],
//!   checked by [`dump`]), the carp link state and group demotion ioctls
//!   ([`ifioctl`]), isakmpd/iked control ([`ike`]), the pfsync check
//!   ([`pfsync`]) and its unveil list ([`confine`]).
//! * Underneath: the declarations `libc` lacks ([`ffi`], every layout
//!   asserted at compile time), the ioctl encoding ([`ioctl`]), kernel
//!   names ([`ifname`]) and the raw system calls (`sys`, OpenBSD only).
//!
//! Everything that is bytes — message layouts and parsers, the dump walker,
//! the imsg and FIFO requests, the ioctl numbers, the sysctl MIBs and the
//! size-probe-and-retry loop — is portable and unit-tested on any Unix; the
//! socket readers and writers are tested over socket pairs. What can only
//! run on OpenBSD (opening PF_KEY and routing sockets, sysctl, the
//! interface ioctls, pledge, unveil) is compiled there only.

pub mod carp;
pub mod confine;
pub mod dump;
pub mod ffi;
pub mod ifioctl;
pub mod ifname;
pub mod ike;
pub mod ioctl;
pub mod pfkey;
pub mod pfsync;
pub mod route;
#[cfg(target_os = "openbsd")]
pub mod sys;
pub mod sysctl;
