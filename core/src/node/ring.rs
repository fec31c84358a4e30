//! The master's delta ring: the most recent PF_KEY deltas of the current
//! epoch, so a slave that reconnects can resume after its last applied
//! [`Position`] instead of taking a full snapshot (fixes D-12: messages for
//! a disconnected peer are no longer simply lost).
//!
//! Records live in one fixed byte buffer, each as a 2-byte length followed
//! by the message, and are always contiguous so replay hands out `&[u8]`
//! without copying. A record that does not fit before the end of the buffer
//! goes to the start; the gap left behind starts with a wrap marker (or
//! is shorter than a length field, which means the same). Sequence numbers
//! are not stored: they run consecutively from `first_seq`. The oldest
//! records are evicted to make room; a replay from a position whose
//! successors were evicted fails, and the caller sends a snapshot instead.

use crate::state::Position;

use super::storage::ManagedSlice;

/// The largest record (a PF_KEY message the original can carry).
pub const MAX_RECORD: usize = 4096;
/// Bytes of the per-record length field.
const HDR: usize = 2;
/// The smallest ring: one maximal record. A node with a smaller one is
/// refused (a ring that cannot hold a change never forwards it):
///
/// ```
/// # use sasyncd_core::{config::Config, crypto::SoftCrypto, random::Random, time::Instant};
/// # use sasyncd_core::node::*;
/// # use sasyncd_core::dialect::OpenBsd;
/// # struct Zero;
/// # impl Random for Zero { fn fill(&mut self, out: &mut [u8]) { out.fill(7) } }
/// let cfg = Config::parse(b"peer 192.0.2.2\nsharedkey sixteen-byte-key\nmode slave\n").unwrap();
/// let build = |ring: &mut [u8]| {
///     let (mut pfkey, mut events) = ([0; MIN_PFKEY_QUEUE_BYTES], [None; min_events(1)]);
///     let (mut tx, mut rx) = ([[0; MIN_TX_BYTES]; 2], [[0; RX_BYTES]; 2]);
///     let [t0, t1] = &mut tx;
///     let [r0, r1] = &mut rx;
///     let mut peers = [Peer::default()];
///     let mut conns = [[ConnSlot::new(t0, r0), ConnSlot::new(t1, r1)]];
///     let mut scratch = Scratch::new();
///     let storage = NodeStorage {
///         ring: ring.into(),
///         pfkey: (&mut pfkey).into(),
///         events: (&mut events).into(),
///         peers: (&mut peers).into(),
///         conns: (&mut conns).into(),
///         scratch: (&mut scratch).into(),
///     };
///     Node::<_, _, _, OpenBsd>::new(&cfg, Settings::new([1; 16], 1, 1), SoftCrypto, Zero, FixedMarks::<4>::new(),
///         storage, Instant::ZERO).map(|_| ())
/// };
/// assert_eq!(build(&mut [0; MIN_RING_BYTES]), Ok(()));
/// assert_eq!(build(&mut [0; MIN_RING_BYTES - 1]), Err(NodeError::Storage(StorageError::Ring)));
/// ```
pub const MIN_RING_BYTES: usize = MAX_RECORD + HDR;
/// Length value marking "the rest of the buffer is unused".
const WRAP: u16 = 0xFFFF;

/// Why a record was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// Longer than [`MAX_RECORD`] or than the ring itself.
    TooLarge {
        /// The record's length.
        len: usize,
    },
    /// The ring has no epoch yet (epoch 0).
    NoEpoch,
    /// Sequence numbers of this epoch are used up.
    SeqExhausted,
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::TooLarge { len } => write!(f, "delta of {len} bytes does not fit the ring"),
            RingError::NoEpoch => f.write_str("delta ring has no epoch"),
            RingError::SeqExhausted => f.write_str("delta sequence numbers exhausted"),
        }
    }
}

impl core::error::Error for RingError {}

/// Why a replay is impossible: the caller must send a full snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotInRing {
    /// The position belongs to another epoch (or to none).
    OtherEpoch,
    /// Deltas after the position were already evicted.
    Evicted,
    /// The position is beyond the last delta of this epoch.
    Ahead,
}

impl core::fmt::Display for NotInRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NotInRing::OtherEpoch => "position is from another epoch",
            NotInRing::Evicted => "deltas after position were evicted",
            NotInRing::Ahead => "position is ahead of the delta stream",
        })
    }
}

impl core::error::Error for NotInRing {}

/// A ring of deltas in the platform's buffer (2 bytes overhead per
/// record).
#[derive(Debug)]
pub struct DeltaRing<'a> {
    buf: ManagedSlice<'a, u8>,
    epoch: u64,
    /// Offset of the oldest record (never a wrap point while non-empty).
    head: usize,
    /// Offset just past the newest record.
    tail: usize,
    count: usize,
    /// Sequence number of the oldest record (`next_seq` when empty).
    first_seq: u64,
    next_seq: u64,
}

impl<'a> DeltaRing<'a> {
    /// An empty ring over `buf` in `epoch` (0 = no epoch: pushes are
    /// refused).
    pub fn new(buf: impl Into<ManagedSlice<'a, u8>>, epoch: u64) -> Self {
        DeltaRing {
            buf: buf.into(),
            epoch,
            head: 0,
            tail: 0,
            count: 0,
            first_seq: 1,
            next_seq: 1,
        }
    }

    /// Starts `epoch` (we became master): forgets every record; the next
    /// push gets sequence number 1.
    pub fn new_epoch(&mut self, epoch: u64) {
        // Field by field: the buffer is not copied (it is up to 128 KiB).
        self.epoch = epoch;
        self.head = 0;
        self.tail = 0;
        self.count = 0;
        self.first_seq = 1;
        self.next_seq = 1;
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Sequence number of the oldest record held, if any.
    pub fn first_seq(&self) -> Option<u64> {
        (self.count > 0).then_some(self.first_seq)
    }

    /// Sequence number of the newest record of this epoch (0 if none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The master's position: this epoch, up to the last record.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            seq: self.last_seq(),
        }
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the held records occupy, length fields and the unusable gap
    /// left at the end of the buffer by a wrap included: how full the ring
    /// is.
    pub fn bytes_used(&self) -> usize {
        if self.count == 0 {
            0
        } else if self.tail > self.head {
            self.tail - self.head
        } else {
            self.buf.len() - self.head + self.tail
        }
    }

    /// The ring's size in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record, evicting the oldest ones as needed; returns its
    /// sequence number.
    pub fn push(&mut self, msg: &[u8]) -> Result<u64, RingError> {
        let need = HDR + msg.len();
        if msg.len() > MAX_RECORD || need > self.buf.len() {
            return Err(RingError::TooLarge { len: msg.len() });
        }
        if self.epoch == 0 {
            return Err(RingError::NoEpoch);
        }
        let seq = self.next_seq;
        let next = seq.checked_add(1).ok_or(RingError::SeqExhausted)?;
        let pos = loop {
            if let Some(pos) = self.place(need) {
                break pos;
            }
            self.evict_oldest();
        };
        if pos != self.tail {
            // Skipping the end of the buffer: mark the gap if it has room.
            if let Some(h) = self.buf.get_mut(self.tail..self.tail + HDR) {
                h.copy_from_slice(&WRAP.to_be_bytes());
            }
        }
        if let Some(rec) = self.buf.get_mut(pos..pos + need) {
            // msg.len() <= MAX_RECORD < WRAP, so the cast is lossless.
            rec[..HDR].copy_from_slice(&(msg.len() as u16).to_be_bytes());
            rec[HDR..].copy_from_slice(msg);
        }
        self.tail = pos + need;
        self.count += 1;
        self.next_seq = next;
        Ok(seq)
    }

    /// Everything after `pos`, oldest first, if the ring still holds all of
    /// it (`pos.seq == last_seq()` gives an empty replay).
    pub fn replay_after(&self, pos: Position) -> Result<Replay<'_>, NotInRing> {
        if self.epoch == 0 || pos.epoch != self.epoch {
            return Err(NotInRing::OtherEpoch);
        }
        if pos.seq > self.last_seq() {
            return Err(NotInRing::Ahead);
        }
        // pos.seq <= last_seq < u64::MAX, so +1 cannot overflow.
        if pos.seq + 1 < self.first_seq {
            return Err(NotInRing::Evicted);
        }
        Ok(Replay {
            buf: &self.buf,
            off: self.head,
            remaining: self.count,
            seq: self.first_seq,
            skip: pos.seq + 1 - self.first_seq,
        })
    }

    /// A cursor just after `pos`, for reading the records that follow one
    /// by one in constant time ([`next`](Self::next)). Finding the place is
    /// a walk from the oldest record, once per resume.
    pub fn cursor(&self, pos: Position) -> Result<Cursor, NotInRing> {
        let mut r = self.replay_after(pos)?;
        // Skip the records at or before `pos`; what is left starts there.
        let mut off = r.off;
        while r.skip > 0 && r.remaining > 0 {
            let Some((o, len)) = record_at(r.buf, r.off) else {
                break;
            };
            r.off = o + HDR + len;
            r.remaining -= 1;
            r.skip -= 1;
            off = r.off;
        }
        Ok(Cursor { pos, off })
    }

    /// The record after `cursor` and the cursor past it, or `None` when the
    /// cursor is at the newest record. Constant time.
    pub fn next(&self, cursor: Cursor) -> Result<Option<(Cursor, &[u8])>, NotInRing> {
        let pos = cursor.pos;
        if self.epoch == 0 || pos.epoch != self.epoch {
            return Err(NotInRing::OtherEpoch);
        }
        if pos.seq > self.last_seq() {
            return Err(NotInRing::Ahead);
        }
        if pos.seq == self.last_seq() {
            return Ok(None);
        }
        if pos.seq + 1 < self.first_seq {
            return Err(NotInRing::Evicted);
        }
        // The next record is the oldest one (the ring may have been emptied
        // and restarted at 0 since), or it follows the cursor's record.
        let at = if pos.seq + 1 == self.first_seq {
            self.head
        } else {
            cursor.off
        };
        let (off, len) = record_at(&self.buf, at).ok_or(NotInRing::Evicted)?;
        let body = self
            .buf
            .get(off + HDR..off + HDR + len)
            .ok_or(NotInRing::Evicted)?;
        let next = Cursor {
            pos: Position {
                epoch: pos.epoch,
                seq: pos.seq + 1,
            },
            off: off + HDR + len,
        };
        Ok(Some((next, body)))
    }

    /// Where a record of `need` bytes can go without evicting, if anywhere.
    fn place(&mut self, need: usize) -> Option<usize> {
        if self.count == 0 {
            self.head = 0;
            self.tail = 0;
            return Some(0);
        }
        if self.tail > self.head {
            // Free: [tail, BYTES) and [0, head).
            if self.tail + need <= self.buf.len() {
                Some(self.tail)
            } else if need <= self.head {
                Some(0)
            } else {
                None
            }
        } else if self.tail + need <= self.head {
            // Wrapped (or exactly full when tail == head): free is [tail, head).
            Some(self.tail)
        } else {
            None
        }
    }

    fn evict_oldest(&mut self) {
        let Some((off, len)) = record_at(&self.buf, self.head) else {
            // Unreachable with a consistent ring; start afresh rather than loop.
            self.count = 0;
            self.first_seq = self.next_seq;
            return;
        };
        self.count -= 1;
        self.first_seq += 1;
        self.head = off + HDR + len;
        if self.count > 0 {
            // Keep head on a real record so `place` sees the true free space.
            self.head = record_at(&self.buf, self.head).map_or(0, |(o, _)| o);
        }
    }
}

/// The record starting at `off`, or at 0 if `off` is a wrap point.
fn record_at(buf: &[u8], off: usize) -> Option<(usize, usize)> {
    let len_at = |o: usize| match buf.get(o..o + HDR) {
        Some(&[a, b]) if u16::from_be_bytes([a, b]) != WRAP => {
            Some(usize::from(u16::from_be_bytes([a, b])))
        }
        _ => None,
    };
    match len_at(off) {
        Some(len) => Some((off, len)),
        None => len_at(0).map(|len| (0, len)),
    }
}

/// A reader's place in the ring: the last record it took and where the
/// next one starts. Valid while the ring holds the records after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pos: Position,
    off: usize,
}

impl Cursor {
    /// The position of the last record taken.
    pub fn position(&self) -> Position {
        self.pos
    }
}

/// Iterator over `(seq, message)` of a replay, oldest first.
#[derive(Debug, Clone)]
pub struct Replay<'a> {
    buf: &'a [u8],
    off: usize,
    remaining: usize,
    seq: u64,
    skip: u64,
}

impl<'a> Iterator for Replay<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<(u64, &'a [u8])> {
        while self.remaining > 0 {
            let (off, len) = record_at(self.buf, self.off)?;
            let body = self.buf.get(off + HDR..off + HDR + len)?;
            let seq = self.seq;
            self.off = off + HDR + len;
            self.remaining -= 1;
            self.seq += 1;
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            return Some((seq, body));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// A ring over `bytes` bytes of its own.
    fn test_ring(bytes: usize, epoch: u64) -> DeltaRing<'static> {
        DeltaRing::new(std::vec![0; bytes].leak(), epoch)
    }

    fn at(epoch: u64, seq: u64) -> Position {
        Position { epoch, seq }
    }

    fn all(r: &DeltaRing<'_>) -> Vec<(u64, Vec<u8>)> {
        let from = r.first_seq().map_or(r.last_seq(), |f| f - 1);
        r.replay_after(at(r.epoch(), from))
            .unwrap()
            .map(|(s, b)| (s, b.to_vec()))
            .collect()
    }

    fn rec(n: usize, fill: u8) -> Vec<u8> {
        std::vec![fill; n]
    }

    #[test]
    fn push_and_replay_in_order() {
        let mut r = test_ring(64, 7);
        assert_eq!(r.push(b"one"), Ok(1));
        assert_eq!(r.push(b"two"), Ok(2));
        assert_eq!(r.push(b""), Ok(3));
        assert_eq!((r.first_seq(), r.last_seq()), (Some(1), 3));
        assert_eq!(r.position(), at(7, 3));
        let got: Vec<_> = r.replay_after(at(7, 1)).unwrap().collect();
        assert_eq!(got, [(2, &b"two"[..]), (3, &b""[..])]);
        assert_eq!(r.replay_after(at(7, 0)).unwrap().count(), 3);
    }

    #[test]
    fn fill_counts_records_headers_and_the_wrap_gap() {
        let mut r = test_ring(64, 1);
        assert_eq!((r.bytes_used(), r.capacity()), (0, 64));
        r.push(&rec(25, 1)).unwrap();
        r.push(&rec(25, 2)).unwrap();
        assert_eq!(r.bytes_used(), 54);
        // The third does not fit before the end: the first is evicted and
        // it goes to the start, leaving a 10-byte gap at the end.
        r.push(&rec(10, 3)).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.bytes_used(), 27 + 10 + 12);
        r.new_epoch(2);
        assert_eq!(r.bytes_used(), 0);
    }

    #[test]
    fn up_to_date_is_an_empty_replay() {
        let mut r = test_ring(64, 1);
        assert_eq!(r.replay_after(at(1, 0)).unwrap().count(), 0);
        r.push(b"x").unwrap();
        assert_eq!(r.replay_after(at(1, 1)).unwrap().count(), 0);
    }

    #[test]
    fn positions_outside_the_ring_need_a_snapshot() {
        let mut r = test_ring(16, 3);
        for _ in 0..4 {
            r.push(&rec(5, 1)).unwrap(); // 7 bytes each: two fit
        }
        assert_eq!(r.first_seq(), Some(3));
        assert_eq!(r.replay_after(at(3, 1)).err(), Some(NotInRing::Evicted));
        assert_eq!(r.replay_after(at(3, 0)).err(), Some(NotInRing::Evicted));
        assert_eq!(r.replay_after(at(3, 2)).unwrap().count(), 2);
        assert_eq!(r.replay_after(at(3, 5)).err(), Some(NotInRing::Ahead));
        assert_eq!(r.replay_after(at(2, 3)).err(), Some(NotInRing::OtherEpoch));
        assert_eq!(
            r.replay_after(Position::NONE).err(),
            Some(NotInRing::OtherEpoch)
        );
    }

    #[test]
    fn exact_fill_then_evict() {
        let mut r = test_ring(16, 1);
        r.push(&rec(14, 9)).unwrap();
        assert_eq!(all(&r), [(1, rec(14, 9))]);
        r.push(&rec(0, 0)).unwrap();
        assert_eq!(all(&r), [(2, rec(0, 0))]);
        // Two records filling the ring exactly are both kept.
        let mut r = test_ring(16, 1);
        r.push(&rec(6, 1)).unwrap();
        r.push(&rec(6, 2)).unwrap();
        assert_eq!(all(&r), [(1, rec(6, 1)), (2, rec(6, 2))]);
    }

    #[test]
    fn wraps_with_marker() {
        let mut r = test_ring(32, 1);
        r.push(&rec(10, 1)).unwrap(); // [0,12)
        r.push(&rec(10, 2)).unwrap(); // [12,24)
        r.push(&rec(10, 3)).unwrap(); // evicts 1, goes to [0,12), marker at 24
        assert_eq!(all(&r), [(2, rec(10, 2)), (3, rec(10, 3))]);
        // Needs 16 bytes: evicting 2 moves head onto the marker, i.e. to 0,
        // which frees [12,32): record 3 must survive.
        r.push(&rec(14, 4)).unwrap();
        assert_eq!(all(&r), [(3, rec(10, 3)), (4, rec(14, 4))]);
    }

    #[test]
    fn wraps_without_room_for_a_marker() {
        let mut r = test_ring(25, 1);
        r.push(&rec(10, 1)).unwrap(); // [0,12)
        r.push(&rec(10, 2)).unwrap(); // [12,24): one byte left at the end
        r.push(&rec(9, 3)).unwrap(); // evicts 1, [0,11)
        assert_eq!(all(&r), [(2, rec(10, 2)), (3, rec(9, 3))]);
        r.push(&rec(1, 4)).unwrap(); // needs 3 bytes, 1 free before record 2: evicts it
        assert_eq!(all(&r), [(3, rec(9, 3)), (4, rec(1, 4))]);
    }

    #[test]
    fn too_large_is_an_error_and_changes_nothing() {
        let mut r = test_ring(32, 1);
        r.push(b"keep").unwrap();
        assert_eq!(r.push(&rec(31, 0)), Err(RingError::TooLarge { len: 31 }));
        assert_eq!(all(&r), [(1, b"keep".to_vec())]);
        let mut big = test_ring(8192, 1);
        assert_eq!(
            big.push(&rec(MAX_RECORD + 1, 0)),
            Err(RingError::TooLarge { len: 4097 })
        );
        assert_eq!(big.push(&rec(MAX_RECORD, 0)), Ok(1));
        let mut tiny = test_ring(1, 1);
        assert!(tiny.push(b"").is_err());
    }

    #[test]
    fn no_epoch_refuses_pushes() {
        let mut r = test_ring(32, 0);
        assert_eq!(r.push(b"x"), Err(RingError::NoEpoch));
    }

    #[test]
    fn new_epoch_clears_and_restarts_sequence() {
        let mut r = test_ring(64, 1);
        r.push(b"a").unwrap();
        r.push(b"b").unwrap();
        r.new_epoch(2);
        assert!(r.is_empty());
        assert_eq!((r.first_seq(), r.last_seq()), (None, 0));
        assert_eq!(r.replay_after(at(1, 2)).err(), Some(NotInRing::OtherEpoch));
        assert_eq!(r.push(b"c"), Ok(1));
        assert_eq!(all(&r), [(1, b"c".to_vec())]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(usize, u8),
        NewEpoch,
        Replay(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0usize..300, any::<u8>()).prop_map(|(n, b)| Op::Push(n, b)),
            1 => (0usize..1200, any::<u8>()).prop_map(|(n, b)| Op::Push(n, b)),
            1 => Just(Op::NewEpoch),
            3 => (0u64..200).prop_map(Op::Replay),
        ]
    }

    const B: usize = 1024;

    proptest! {
        /// A cursor kept across pushes reads exactly the history after its
        /// start, one record at a time, or says the records were evicted;
        /// a cursor made later at any position agrees with it.
        #[test]
        fn cursor_follows_pushes(ops in proptest::collection::vec((0usize..400, any::<u8>(), 0usize..4), 1..300)) {
            let mut ring = test_ring(B, 3);
            let mut history: Vec<Vec<u8>> = Vec::new();
            let mut cur = ring.cursor(at(3, 0)).unwrap();
            let mut lost = false;
            for (n, b, reads) in ops {
                let msg = rec(n, b);
                if ring.push(&msg).is_ok() {
                    history.push(msg);
                }
                for _ in 0..reads {
                    if lost {
                        break;
                    }
                    match ring.next(cur) {
                        Ok(Some((next, body))) => {
                            let seq = next.position().seq;
                            prop_assert_eq!(body, &history[seq as usize - 1][..]);
                            // A fresh cursor at the same place reads the same next record.
                            let again = ring.cursor(cur.position()).unwrap();
                            prop_assert_eq!(ring.next(again).unwrap().map(|(c, b)| (c.position(), b.to_vec())), Some((next.position(), body.to_vec())));
                            cur = next;
                        }
                        Ok(None) => prop_assert_eq!(cur.position().seq, history.len() as u64),
                        Err(e) => {
                            prop_assert_eq!(e, NotInRing::Evicted);
                            prop_assert!(cur.position().seq + 1 < ring.first_seq().unwrap());
                            lost = true;
                        }
                    }
                }
            }
        }

        /// The ring always holds a suffix of the epoch's history, never
        /// more than fits, and evicts only what it must.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut ring = test_ring(B, 1);
            let mut epoch = 1u64;
            let mut history: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(n, b) => {
                        let msg = rec(n, b);
                        match ring.push(&msg) {
                            Ok(seq) => {
                                prop_assert!(n + HDR <= B);
                                prop_assert_eq!(seq, history.len() as u64 + 1);
                                history.push_back((seq, msg));
                            }
                            Err(e) => {
                                prop_assert_eq!(e, RingError::TooLarge { len: n });
                                prop_assert!(n + HDR > B);
                            }
                        }
                    }
                    Op::NewEpoch => {
                        epoch += 1;
                        ring.new_epoch(epoch);
                        history.clear();
                    }
                    Op::Replay(seq) => {
                        let first = ring.first_seq().unwrap_or(history.len() as u64 + 1);
                        let res = ring.replay_after(at(epoch, seq));
                        if seq > history.len() as u64 {
                            prop_assert_eq!(res.err(), Some(NotInRing::Ahead));
                        } else if seq + 1 < first {
                            prop_assert_eq!(res.err(), Some(NotInRing::Evicted));
                        } else {
                            let got: Vec<_> = res.unwrap().map(|(s, b)| (s, b.to_vec())).collect();
                            let want: Vec<_> = history.iter().skip(seq as usize).cloned().collect();
                            prop_assert_eq!(got, want);
                        }
                        prop_assert!(ring.replay_after(at(epoch + 1, seq)).is_err());
                    }
                }
                // Suffix of the history, newest record always kept.
                let held = all(&ring);
                prop_assert_eq!(ring.len(), held.len());
                let start = history.len() - held.len();
                prop_assert!(held.iter().eq(history.iter().skip(start)));
                prop_assert_eq!(ring.last_seq(), history.len() as u64);
                let held_need: usize = held.iter().map(|(_, m)| m.len() + HDR).sum();
                prop_assert!(held_need <= B);
                // Not over-evicting: what is held plus the newest evicted
                // record and two worst-case gaps exceeds the ring.
                if start > 0 {
                    let e = history[start - 1].1.len() + HDR;
                    let max = history.iter().map(|(_, m)| m.len() + HDR).max().unwrap();
                    prop_assert!(held_need + e + 2 * max > B, "held {} e {} max {}", held_need, e, max);
                }
            }
        }
    }
}
