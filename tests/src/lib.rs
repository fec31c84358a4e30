//! Shared helpers for the cross-crate tests: real daemon processes on
//! loopback for the end-to-end tests ([`cluster`]), with raw sockets and a
//! key-holding v2 peer to play the adversary ([`raw`]) and network
//! namespaces to partition them ([`netns`]), a deterministic
//! in-memory [`harness`] that runs `sasyncd_core::node::Node`s on simulated
//! PF_KEY kernels, PF_KEY message builders ([`msgs`]), and the "inside core" flag
//! the zero-allocation test counts with ([`probe`]), the benchmark plots
//! ([`plot`]), and skipping a test
//! out loud ([`skip`]).

pub mod cluster;
pub mod harness;
pub mod msgs;
pub mod netns;
pub mod plot;
pub mod probe;
pub mod raw;
pub mod skip;
