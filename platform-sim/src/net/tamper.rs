//! The adversary's hook on bytes in flight.

use std::fmt::Debug;

use sasyncd_core::time::Instant;

use super::{ConnId, NodeId};
use crate::rng::Rng;

/// Where a data segment is going when the adversary sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sending node.
    pub from: NodeId,
    /// Receiving node.
    pub to: NodeId,
    /// The receiving end of the connection.
    pub conn: ConnId,
    /// Delivery time.
    pub at: Instant,
}

/// Sees (and may alter) every data segment just before delivery: flip
/// bits, truncate, append injected or replayed bytes. Whatever `bytes`
/// holds afterwards is what the receiver reads.
pub trait Tamper: Debug {
    /// Called once per delivered data segment.
    fn data(&mut self, seg: &SegmentInfo, bytes: &mut Vec<u8>, rng: &mut Rng);
}

/// A random adversary: with the given per-segment probabilities it flips
/// one bit, truncates, appends random bytes, or appends a segment recorded
/// earlier (from any connection: replay and cross-connection splicing).
#[derive(Debug, Clone, Default)]
pub struct RandomTamper {
    /// Probability of flipping one bit.
    pub flip: f64,
    /// Probability of truncating the segment.
    pub truncate: f64,
    /// Probability of appending random bytes.
    pub inject: f64,
    /// Probability of appending a recorded segment.
    pub replay: f64,
    /// Segments seen so far (the last 64), for replays.
    pub recorded: Vec<Vec<u8>>,
    /// How many segments were altered.
    pub altered: u64,
}

impl Tamper for RandomTamper {
    fn data(&mut self, _seg: &SegmentInfo, bytes: &mut Vec<u8>, rng: &mut Rng) {
        let before = bytes.clone();
        if !bytes.is_empty() && rng.chance(self.flip) {
            let i = rng.index(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        if !bytes.is_empty() && rng.chance(self.truncate) {
            let n = rng.index(bytes.len());
            bytes.truncate(n);
        }
        if rng.chance(self.inject) {
            let mut junk = vec![0u8; rng.range(1..64) as usize];
            rng.fill(&mut junk);
            bytes.extend_from_slice(&junk);
        }
        if !self.recorded.is_empty() && rng.chance(self.replay) {
            let i = rng.index(self.recorded.len());
            bytes.extend_from_slice(&self.recorded[i]);
        }
        if self.recorded.len() >= 64 {
            self.recorded.remove(0);
        }
        self.recorded.push(before.clone());
        if *bytes != before {
            self.altered += 1;
        }
    }
}
