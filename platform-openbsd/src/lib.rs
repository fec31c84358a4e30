//! The OpenBSD platform layer of sasyncd: the kernel and daemon interfaces
//! the core's decisions are carried out through.
//!
//! What is here today is the byte-level half of those interfaces, testable
//! on any Unix: IKE-daemon control ([`ike`]), routing-socket link-state
//! messages ([`route`]) and interface ioctl numbers ([`ioctl`]). The
//! syscall half (PF_KEY socket, sysctl dumps, carp ioctls, privilege
//! separation) arrives with the daemon that drives `core::node`.

pub mod ike;
pub mod ioctl;
pub mod route;
