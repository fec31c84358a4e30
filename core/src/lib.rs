//! `sasyncd-core`: everything sasyncd decides, with no I/O and no heap.
//!
//! The platforms (OpenBSD, the simulator, firmware) move bytes between this
//! crate and the world; this crate turns them into typed values and decisions.
//! Time and randomness are always passed in.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod config;
pub mod crypto;
pub mod ctl;
pub mod dialect;
pub mod node;
pub mod pfkey;
pub mod platform;
pub mod random;
pub mod state;
pub mod time;
pub mod wire;
pub mod xfrm;
