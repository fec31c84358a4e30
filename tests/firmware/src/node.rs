//! The one place the firmware names its node type and builds a node.
//!
//! The node is core's [`SmallNode`] (one peer, the smallest buffers that
//! work) with its snapshot marks in a store the firmware owns and lends
//! it, built in place with [`Node::init_in`]: neither the node nor the
//! marks ever pass through the stack.

use core::mem::MaybeUninit;

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::{
    FixedMarks, Node, NodeError, Settings, SmallNode, MIN_TX_BYTES, SMALL_RING_BYTES,
};
use sasyncd_core::random::Random;
use sasyncd_core::time::Instant;

/// The master's delta ring, for slaves that reconnect.
pub const RING: usize = SMALL_RING_BYTES;
/// Marks for a snapshot's sweep: one per SA or flow a snapshot carries
/// (the kernels here hold at most 384 SAs and 64 flows).
pub const MARKS: usize = 384;
/// Send buffer per connection: the least a node accepts.
pub const TX: usize = MIN_TX_BYTES;

/// The marks' store, lent to the node.
pub type Marks = FixedMarks<MARKS>;

/// The firmware's node.
pub type FwNode = SmallNode<SoftCrypto, TestRng, &'static mut Marks>;

/// Builds a node into `slot` (static memory), lending it `marks`.
pub fn build(
    slot: &'static mut MaybeUninit<FwNode>,
    marks: &'static mut Marks,
    config: &Config,
    settings: Settings,
    seed: u64,
    now: Instant,
) -> Result<&'static mut FwNode, NodeError> {
    Node::init_in(
        slot,
        config,
        settings,
        SoftCrypto,
        TestRng::new(seed),
        marks,
        now,
    )
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
