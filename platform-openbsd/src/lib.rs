//! The OpenBSD platform layer of sasyncd: the kernel and daemon interfaces
//! the daemon's processes work through on a real gateway.
//!
//! Underneath everything: the declarations `libc` lacks ([`ffi`], every
//! layout asserted at compile time), the ioctl encoding ([`ioctl`]),
//! kernel names ([`ifname`]) and the raw system calls (`sys`, OpenBSD
//! only). The carp watch reads a routing socket ([`carp`], parsing in
//! [`route`]). IKE daemon control is in [`ike`]. The network process's
//! PF_KEY socket is [`pfkey`]; the privileged process dumps the kernel's
//! tables through [`sysctl`] and checks them with [`dump`].

pub mod carp;
pub mod dump;
pub mod ffi;
pub mod ifname;
pub mod ike;
pub mod ioctl;
pub mod pfkey;
pub mod route;
#[cfg(target_os = "openbsd")]
pub mod sys;
pub mod sysctl;
