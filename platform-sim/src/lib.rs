//! Deterministic simulation of a sasyncd cluster.
//!
//! Nothing is simulated yet: the simulated kernel, carp, network and clock
//! arrive with the state machine (`core::node`) they drive.
