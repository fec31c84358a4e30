//! The one place the benchmark builds a node: when `Node::new` or its
//! storage change, only this file changes.

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::{Node, NodeStorage, Settings};
use sasyncd_core::time::Instant;
use sasyncd_sim::marks::VecMarks;
use sasyncd_sim::rng::Rng;
use sasyncd_sim::world::SimRandom;

/// The node the benchmark measures: the daemon's capacities (8 peers,
/// 128 KiB delta ring, 16 KiB send buffers, snapshot marks in a vector
/// grown to what the snapshot announces, as the daemon's).
pub type BenchNode = Node<'static, SoftCrypto, SimRandom, VecMarks>;

/// Builds a node on the heap (it is a few hundred KiB), its randomness
/// seeded with `seed`.
pub fn build_node(config: &Config, settings: Settings, seed: u64, now: Instant) -> Box<BenchNode> {
    Box::new(
        Node::new(
            config,
            settings,
            SoftCrypto,
            SimRandom(Rng::new(seed)),
            VecMarks::default(),
            NodeStorage::default_on_heap(),
            now,
        )
        .expect("the benchmark's config builds a node"),
    )
}
