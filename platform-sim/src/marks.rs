//! Snapshot-mark storage for std platforms: the core's growable store
//! (feature `alloc`), re-exported where the simulator has always taken it.

pub use sasyncd_core::node::VecMarks;
