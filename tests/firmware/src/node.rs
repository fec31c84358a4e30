//! The one place the firmware names its node type and builds a node: when
//! the core offers an in-place initialiser or a small configuration of its
//! own, only this file changes.

use core::mem::MaybeUninit;

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::{FixedMarks, Node, NodeError, Settings, MIN_TX_BYTES};
use sasyncd_core::random::Random;
use sasyncd_core::time::Instant;

/// Peers per node: the other gateway.
pub const PEERS: usize = 1;
/// The master's delta ring, for slaves that reconnect.
pub const RING: usize = 16 * 1024;
/// Marks for a snapshot's sweep: one per SA or flow a snapshot carries
/// (the kernels here hold at most 384 SAs and 64 flows).
pub const MARKS: usize = 512;
/// Send buffer per connection: the least a node accepts.
pub const TX: usize = MIN_TX_BYTES;

/// The firmware's node.
pub type FwNode = Node<SoftCrypto, TestRng, PEERS, RING, FixedMarks<MARKS>, TX>;

/// Builds a node into `slot` (static memory) and returns it.
///
/// `Node::new` returns the node by value, so this needs a stack frame of
/// about the node's size (the peak stack of construction shows it) until
/// the core can initialise a node in place.
pub fn build(
    slot: &'static mut MaybeUninit<FwNode>,
    config: &Config,
    settings: Settings,
    seed: u64,
    now: Instant,
) -> Result<&'static mut FwNode, NodeError> {
    let node = Node::new(
        config,
        settings,
        SoftCrypto,
        TestRng::new(seed),
        FixedMarks::new(),
        now,
    )?;
    Ok(slot.write(node))
}

/// A deterministic PRNG (xorshift64*), seeded per node.
///
/// This is a test: nonces, IVs and epochs only need to differ between the
/// two nodes here. A real firmware port must give the node a CSPRNG (a
/// TRNG-seeded DRBG) instead.
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> TestRng {
        TestRng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    fn step(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Random for TestRng {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.step().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
