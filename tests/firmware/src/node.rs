//! The one place the firmware names its node type and builds a node.
//!
//! The node is core's [`Node`] over the smallest storage that works (one
//! peer, the smallest ring, send buffers, PF_KEY and event queues), all of
//! it in statics the firmware owns and lends it, with its snapshot marks
//! likewise: neither the buffers nor the marks ever pass through the stack.

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::{
    min_events, ConnSlot, Event, FixedMarks, Node, NodeError, NodeStorage, Peer, Scratch,
    Settings, MIN_PFKEY_QUEUE_BYTES, MIN_TX_BYTES, RX_BYTES, SMALL_RING_BYTES,
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
/// Events waiting for the platform: the least a one-peer node accepts.
pub const EVENTS: usize = min_events(1);

/// The marks' store, lent to the node.
pub type Marks = FixedMarks<MARKS>;

/// The firmware's node.
pub type FwNode = Node<'static, SoftCrypto, TestRng, &'static mut Marks>;

/// A node's event queue (apart from [`Buffers`]: an empty event is not
/// all zero bytes, and would take the buffers into `.data`).
pub type Events = [Option<Event>; EVENTS];

/// A node's buffers, all zero at start (so in .bss), lent to it.
pub struct Buffers {
    ring: [u8; RING],
    pfkey: [u8; MIN_PFKEY_QUEUE_BYTES],
    tx: [[u8; TX]; 2],
    rx: [[u8; RX_BYTES]; 2],
    scratch: Scratch,
}

impl Buffers {
    /// Zeroed buffers (a constant: a static holds them in place).
    pub const fn new() -> Buffers {
        Buffers {
            ring: [0; RING],
            pfkey: [0; MIN_PFKEY_QUEUE_BYTES],
            tx: [[0; TX]; 2],
            rx: [[0; RX_BYTES]; 2],
            scratch: Scratch::new(),
        }
    }
}

/// The node's peer and its two connection slots (over the send and
/// receive buffers of [`Buffers`]): written when the node is built.
pub struct Parts {
    peers: [Peer; 1],
    conns: [[ConnSlot<'static, SoftCrypto>; 2]; 1],
}

/// Builds a node into `slot` (static memory) over `buffers`, `events` and
/// `parts`,
/// lending it `marks`.
pub fn build(
    slot: &'static mut Option<FwNode>,
    buffers: &'static mut Buffers,
    events: &'static mut Events,
    parts: &'static mut Option<Parts>,
    marks: &'static mut Marks,
    config: &Config,
    settings: Settings,
    seed: u64,
    now: Instant,
) -> Result<&'static mut FwNode, NodeError> {
    let Buffers {
        ring,
        pfkey,
        tx: [t0, t1],
        rx: [r0, r1],
        scratch,
    } = buffers;
    let Parts { peers, conns } = parts.insert(Parts {
        peers: [Peer::default()],
        conns: [[ConnSlot::new(t0, r0), ConnSlot::new(t1, r1)]],
    });
    let storage = NodeStorage {
        ring: ring.into(),
        pfkey: pfkey.into(),
        events: events.into(),
        peers: peers.into(),
        conns: conns.into(),
        scratch: scratch.into(),
    };
    Node::new_in(
        slot,
        config,
        settings,
        SoftCrypto,
        TestRng::new(seed),
        marks,
        storage,
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
