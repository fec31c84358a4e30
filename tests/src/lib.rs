//! Shared helpers for the cross-crate tests: a deterministic in-memory
//! [`harness`] that runs `sasyncd_core::node::Node`s on simulated PF_KEY
//! kernels, PF_KEY message builders ([`msgs`]), and the "inside core" flag
//! the zero-allocation test counts with ([`probe`]).

pub mod harness;
pub mod msgs;
pub mod probe;
