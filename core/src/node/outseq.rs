//! Outbound sequence numbers carried from master to slaves, and moved
//! past at a takeover (`wire/README.md`, CTL_OUTSEQ).
//!
//! An outbound SA copied to a backup starts at the sequence number it had
//! when copied; after a takeover the remote peer's anti-replay window drops
//! every packet whose number it has seen. So the master carries each
//! outbound SA's last number as its kernel reports it
//! ([`Dialect::outbound_seq`](crate::dialect::Dialect::outbound_seq)), the
//! slave keeps the last one per SA ([`Carried`]), and a node that becomes
//! master moves every outbound SA past it by the configured margin
//! ([`Dialect::seq_jump`](crate::dialect::Dialect::seq_jump)) before its
//! IKE daemon is told to go active.
//!
//! The table is keyed by a 64-bit hash of the SA's identity bytes: no
//! heap, no identity parsing, and a collision (there is no attacker: the
//! identities come from the authenticated master) only makes one jump
//! larger than it had to be, since values are combined by maximum.

use super::fingerprint::{siphash, Key};

/// SAs whose numbers a slave keeps. Past this, the number of an SA not
/// yet held is dropped (counted): its jump then starts from the number its
/// own kernel holds (the snapshot's or the last add's), which the margin
/// may not cover.
pub const CARRIED_SAS: usize = 1024;

/// The hash key of identities (a constant: both sides of nothing; only
/// this node looks values up).
const ID_KEY: Key = Key(0x6f75_7473_6571_2069, 0x6465_6e74_6974_7920);

/// The hash an identity is kept under.
pub(super) fn id_hash(id: &[u8]) -> u64 {
    siphash(ID_KEY, &[id])
}

/// Where a node keeps the numbers carried: its dialect's choice
/// ([`Dialect::Seqs`](crate::dialect::Dialect::Seqs)), so that a node whose
/// kernel needs none (OpenBSD: pfsync) spends no memory on it.
pub trait SeqTable: Default + core::fmt::Debug {
    /// Keeps `seq` for the SA whose identity bytes are `id` (the larger of
    /// it and what is kept).
    fn note(&mut self, id: &[u8], seq: u64);
    /// The number kept for the SA whose identity bytes are `id`.
    fn get(&self, id: &[u8]) -> Option<u64>;
    /// How many SAs are kept.
    fn len(&self) -> usize;
    /// Whether none is.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Forgets everything.
    fn clear(&mut self);
}

/// No table: the dialect carries no numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSeqs;

impl SeqTable for NoSeqs {
    fn note(&mut self, _id: &[u8], _seq: u64) {}
    fn get(&self, _id: &[u8]) -> Option<u64> {
        None
    }
    fn len(&self) -> usize {
        0
    }
    fn clear(&mut self) {}
}

/// The last outbound number carried per SA, by identity hash, sorted:
/// `N` SAs (16 bytes each).
#[derive(Debug, Clone, Default)]
pub struct Carried<const N: usize = CARRIED_SAS> {
    table: heapless::Vec<(u64, u64), N>,
    /// Numbers dropped because the table was full.
    pub dropped: u64,
}

impl<const N: usize> SeqTable for Carried<N> {
    fn note(&mut self, id: &[u8], seq: u64) {
        Carried::note(self, id, seq)
    }
    fn get(&self, id: &[u8]) -> Option<u64> {
        Carried::get(self, id)
    }
    fn len(&self) -> usize {
        self.table.len()
    }
    fn clear(&mut self) {
        self.table.clear()
    }
}

impl<const N: usize> Carried<N> {
    /// An empty table.
    pub const fn new() -> Self {
        Carried {
            table: heapless::Vec::new(),
            dropped: 0,
        }
    }

    /// Keeps `seq` for the SA whose identity bytes are `id` (the larger
    /// of it and what is kept: events can arrive after a later dump).
    pub fn note(&mut self, id: &[u8], seq: u64) {
        let h = id_hash(id);
        match self.table.binary_search_by_key(&h, |e| e.0) {
            Ok(i) => self.table[i].1 = self.table[i].1.max(seq),
            Err(i) => {
                if self.table.insert(i, (h, seq)).is_err() {
                    self.dropped += 1;
                }
            }
        }
    }

    /// The number kept for the SA whose identity bytes are `id`.
    pub fn get(&self, id: &[u8]) -> Option<u64> {
        let h = id_hash(id);
        self.table
            .binary_search_by_key(&h, |e| e.0)
            .ok()
            .map(|i| self.table[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_largest_per_identity() {
        let mut c: Carried = Carried::new();
        c.note(b"sa-1", 100);
        c.note(b"sa-2", 7);
        c.note(b"sa-1", 50);
        assert_eq!(c.get(b"sa-1"), Some(100), "an older number does not win");
        c.note(b"sa-1", 1 << 40);
        assert_eq!(c.get(b"sa-1"), Some(1 << 40));
        assert_eq!(c.get(b"sa-2"), Some(7));
        assert_eq!(c.get(b"sa-3"), None);
        assert_eq!(c.len(), 2);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn no_table_keeps_nothing() {
        let mut n = NoSeqs;
        n.note(b"sa", 5);
        assert_eq!((n.get(b"sa"), n.len()), (None, 0));
        assert!(core::mem::size_of::<NoSeqs>() == 0);
    }

    #[test]
    fn a_full_table_counts_what_it_drops() {
        let mut c: Carried = Carried::new();
        for i in 0..CARRIED_SAS as u32 + 3 {
            c.note(&i.to_be_bytes(), u64::from(i) + 1);
        }
        assert_eq!(c.len(), CARRIED_SAS);
        assert_eq!(c.dropped, 3);
        // What is held is still updated.
        let held = (0..CARRIED_SAS as u32 + 3)
            .find(|i| c.get(&i.to_be_bytes()).is_some())
            .unwrap();
        c.note(&held.to_be_bytes(), 1 << 50);
        assert_eq!(c.get(&held.to_be_bytes()), Some(1 << 50));
        assert_eq!(c.dropped, 3);
    }
}
