//! What a snapshot contained, for the slave's sweep: exactly, at any size.
//!
//! A v2 resync does not flush first; after the snapshot the slave deletes
//! what the snapshot did not contain. Each entry the snapshot brings is
//! remembered as a [`Mark`]: a fingerprint of its identity (what the kernel
//! knows it by) and one of its content (its canonical form), keyed afresh
//! for every snapshot. The sweep looks its own entries up in the sorted
//! marks: an entry whose identity is not there was not in the snapshot and
//! is deleted; one whose identity is there with other content was not
//! replaced by the snapshot's ADD (the kernel answers EEXIST), so it is
//! deleted too and asked for again.
//!
//! The node cannot allocate, so the marks live in storage the platform
//! gives it ([`MarkStore`]): a std platform grows it to what the SADB needs
//! (the snapshot announces its size) and lends room for an index over the
//! sorted marks, firmware gives a fixed buffer ([`FixedMarks`]) and lookups
//! interpolate. When it runs out, the sweep deletes nothing (a
//! missing mark would look like a stale entry) and says so; anti-entropy
//! then repairs bucket by bucket, each small enough to fit.
//!
//! A live entry is never deleted: its own mark is always found. A stale
//! entry survives only if its fingerprints collide with a live one's under
//! this snapshot's key (about 2^-64 per pair); the next digest round
//! repairs it with another key.

use super::fingerprint::{siphash, Key};

/// One entry of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    /// Fingerprint of the identity.
    pub id: u64,
    /// Fingerprint of the content.
    pub content: u64,
}

/// Storage for a snapshot's marks, given by the platform.
pub trait MarkStore {
    /// Forgets every mark.
    fn clear(&mut self);
    /// Makes room for `n` marks if the store can grow; a fixed store
    /// ignores it.
    fn reserve(&mut self, n: usize);
    /// Appends a mark; `false` if the store is full.
    fn push(&mut self, m: Mark) -> bool;
    /// The marks held.
    fn marks(&self) -> &[Mark];
    /// The marks held, to sort them.
    fn marks_mut(&mut self) -> &mut [Mark];
    /// The most marks it can ever hold (`None`: as many as memory allows).
    fn limit(&self) -> Option<usize>;
    /// Sorts the marks (once per sweep). The default is the core
    /// library's unstable sort (fastest; recursive, to a depth of about
    /// log2 of the count).
    fn sort(&mut self) {
        self.marks_mut().sort_unstable();
    }
    /// The marks, and room for an index over them once sorted: `want`
    /// slots asked for, about one per eight marks. With it a lookup reads
    /// one slot and a cache line or two of marks; without it (the default,
    /// and [`FixedMarks`]) lookups interpolate, which at a million marks
    /// misses the cache several times per entry of the sweep. A store may
    /// give fewer slots than asked (a coarser index) or none.
    fn index_room(&mut self, _want: usize) -> (&[Mark], &mut [u32]) {
        (Self::marks(self), &mut [])
    }
    /// The slots [`index_room`](Self::index_room) last gave, as the node
    /// filled them.
    fn index(&self) -> &[u32] {
        &[]
    }
}

/// A store lent by the platform: the node holds a reference, the store
/// stays where the platform keeps it (a `static` on firmware).
impl<S: MarkStore + ?Sized> MarkStore for &mut S {
    fn clear(&mut self) {
        (**self).clear();
    }
    fn reserve(&mut self, n: usize) {
        (**self).reserve(n);
    }
    fn push(&mut self, m: Mark) -> bool {
        (**self).push(m)
    }
    fn marks(&self) -> &[Mark] {
        (**self).marks()
    }
    fn marks_mut(&mut self) -> &mut [Mark] {
        (**self).marks_mut()
    }
    fn limit(&self) -> Option<usize> {
        (**self).limit()
    }
    fn sort(&mut self) {
        (**self).sort();
    }
    fn index_room(&mut self, want: usize) -> (&[Mark], &mut [u32]) {
        (**self).index_room(want)
    }
    fn index(&self) -> &[u32] {
        (**self).index()
    }
}

/// Sorts in place without recursion or extra memory (a heapsort): what
/// [`FixedMarks`] uses, for firmware stacks.
pub fn heapsort(v: &mut [Mark]) {
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift_down(v, root, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

/// Moves `v[root]` down the max-heap held in `v[..end]`.
fn sift_down(v: &mut [Mark], mut root: usize, end: usize) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && v[child] < v[child + 1] {
            child += 1;
        }
        if v[root] >= v[child] {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

/// A fixed store of `N` marks (16 bytes each), for firmware.
#[derive(Clone)]
pub struct FixedMarks<const N: usize> {
    marks: [Mark; N],
    len: usize,
}

impl<const N: usize> FixedMarks<N> {
    /// An empty store.
    pub const fn new() -> Self {
        FixedMarks {
            marks: [Mark { id: 0, content: 0 }; N],
            len: 0,
        }
    }
}

impl<const N: usize> Default for FixedMarks<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Debug for FixedMarks<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FixedMarks({} of {N})", self.len)
    }
}

impl<const N: usize> MarkStore for FixedMarks<N> {
    fn clear(&mut self) {
        self.len = 0;
    }
    fn reserve(&mut self, _n: usize) {}
    fn push(&mut self, m: Mark) -> bool {
        match self.marks.get_mut(self.len) {
            Some(slot) => {
                *slot = m;
                self.len += 1;
                true
            }
            None => false,
        }
    }
    fn marks(&self) -> &[Mark] {
        &self.marks[..self.len]
    }
    fn marks_mut(&mut self) -> &mut [Mark] {
        &mut self.marks[..self.len]
    }
    fn limit(&self) -> Option<usize> {
        Some(N)
    }
    /// No recursion on a firmware stack.
    fn sort(&mut self) {
        heapsort(self.marks_mut());
    }
}

/// What the sweep does with one of the slave's own entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkVerdict {
    /// The snapshot had it as it is.
    Keep,
    /// The snapshot did not have it.
    Stale,
    /// The snapshot had it with other content.
    Differs,
    /// The marks overflowed: nothing can be said, nothing is deleted.
    Unknown,
}

/// A snapshot's marks in the platform's store.
#[derive(Debug)]
pub struct SnapshotMarks<M> {
    store: M,
    key: Key,
    overflowed: bool,
    sorted: bool,
    /// The index over the sorted marks is by this many top bits of the
    /// id (0: no index).
    index_bits: u32,
    inserted: usize,
}

impl<M: MarkStore> SnapshotMarks<M> {
    /// Marks kept in `store`.
    pub fn new(store: M) -> Self {
        SnapshotMarks {
            store,
            key: Key::default(),
            overflowed: false,
            sorted: false,
            index_bits: 0,
            inserted: 0,
        }
    }

    /// Starts a snapshot of about `expect` entries under a fresh key.
    pub fn reset(&mut self, key: [u8; 16], expect: usize) {
        self.store.clear();
        self.store.reserve(expect);
        self.key = Key::from_bytes(key);
        self.overflowed = false;
        self.sorted = false;
        self.index_bits = 0;
        self.inserted = 0;
    }

    /// Remembers an entry of the snapshot.
    pub fn insert(&mut self, identity: &[u8], content: &[u8]) {
        let m = Mark {
            id: siphash(self.key, &[identity]),
            content: siphash(self.key, &[content]),
        };
        if !self.store.push(m) {
            self.overflowed = true;
        }
        self.inserted += 1;
        self.sorted = false;
    }

    /// Entries of this snapshot, remembered or not.
    pub fn inserted(&self) -> usize {
        self.inserted
    }

    /// Whether some entry did not fit the store.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Entries remembered.
    pub fn len(&self) -> usize {
        self.store.marks().len()
    }

    /// Whether nothing was remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The store's limit (see [`MarkStore::limit`]).
    pub fn limit(&self) -> Option<usize> {
        self.store.limit()
    }

    /// Sorts the marks for lookups and indexes them if the store gives
    /// room (once, before the sweep).
    pub fn seal(&mut self) {
        if self.sorted {
            return;
        }
        self.store.sort();
        self.sorted = true;
        self.index_bits = 0;
        let n = self.store.marks().len();
        if n < 64 || u32::try_from(n).is_err() {
            return;
        }
        // About eight marks (two cache lines) per slot.
        let want_bits = (n / 8).ilog2();
        let (marks, index) = self.store.index_room((1 << want_bits) + 1);
        if index.len() < 3 {
            return;
        }
        let bits = (index.len() - 1).ilog2().min(want_bits);
        let slots = &mut index[..(1 << bits) + 1];
        // slots[b]: the first mark whose top `bits` bits are b or more.
        let mut b = 0;
        for (i, m) in marks.iter().enumerate() {
            let top = (m.id >> (64 - bits)) as usize;
            while b <= top {
                slots[b] = i as u32;
                b += 1;
            }
        }
        for slot in &mut slots[b..] {
            *slot = n as u32;
        }
        self.index_bits = bits;
    }

    /// The index of the first mark whose id is not below `id`.
    fn lookup(&self, id: u64) -> usize {
        let marks = self.store.marks();
        if self.index_bits > 0 {
            let b = (id >> (64 - self.index_bits)) as usize;
            let index = self.store.index();
            if let (Some(&lo), Some(&hi)) = (index.get(b), index.get(b + 1)) {
                let (lo, hi) = (lo as usize, hi as usize);
                if let Some(bucket) = marks.get(lo..hi) {
                    // Sorted, so the marks below `id` are the first ones.
                    // Counted without branching on them, their cache
                    // lines are fetched at once instead of one after the
                    // other as a binary search's probes would be.
                    return lo + bucket.iter().filter(|m| m.id < id).count();
                }
            }
        }
        first_at_least(marks, id)
    }

    /// What to do with an entry of ours with this identity and content.
    pub fn check(&mut self, identity: &[u8], content: &[u8]) -> MarkVerdict {
        self.check_with(identity, || Some(content))
    }

    /// [`check`](Self::check), with the content computed only for an
    /// identity the snapshot had: a stale entry (the sweep's usual finding)
    /// needs no canonical form. Content that cannot be had (`None`) keeps
    /// the entry.
    pub fn check_with<'c>(
        &mut self,
        identity: &[u8],
        content: impl FnOnce() -> Option<&'c [u8]>,
    ) -> MarkVerdict {
        if self.overflowed {
            return MarkVerdict::Unknown;
        }
        self.seal();
        let id = siphash(self.key, &[identity]);
        let first = self.lookup(id);
        let marks = self.store.marks();
        let mut same_id = marks[first..].iter().take_while(|m| m.id == id).peekable();
        if same_id.peek().is_none() {
            return MarkVerdict::Stale;
        }
        let Some(content) = content() else {
            return MarkVerdict::Unknown;
        };
        let c = siphash(self.key, &[content]);
        if same_id.any(|m| m.content == c) {
            MarkVerdict::Keep
        } else {
            MarkVerdict::Differs
        }
    }
}

/// The index of the first mark whose id is not below `id` (marks sorted).
/// The ids are keyed hashes, uniform over `u64`, so interpolation finds it
/// in a few probes; a binary search over a million marks misses the cache
/// some twenty times per entry of the sweep. After a few interpolation
/// steps (a skewed set), the rest is a binary search.
fn first_at_least(marks: &[Mark], id: u64) -> usize {
    // Every index below `lo` holds a smaller id, every one from `hi` on
    // a larger or equal one.
    let (mut lo, mut hi) = (0usize, marks.len());
    for _ in 0..8 {
        if hi - lo <= 16 {
            break;
        }
        let (a, b) = (marks[lo].id, marks[hi - 1].id);
        if id <= a {
            return lo;
        }
        if id > b {
            return hi;
        }
        // a < id <= b, so b > a. A guess in floating point (a 128-bit
        // division took a library call per probe), kept within lo..hi.
        let off = (id - a) as f64 / (b - a) as f64 * (hi - 1 - lo) as f64;
        let g = (lo + off as usize).min(hi - 1);
        if marks[g].id < id {
            lo = g + 1;
        } else {
            hi = g;
        }
    }
    lo + marks[lo..hi].partition_point(|m| m.id < id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn heapsort_sorts_like_the_library() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in [0usize, 1, 2, 3, 7, 64, 257, 1000] {
            let mut v: std::vec::Vec<Mark> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Few distinct ids: equal keys are sorted too.
                    Mark {
                        id: x % 50,
                        content: x >> 40,
                    }
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable();
            heapsort(&mut v);
            assert_eq!(v, want, "{n} marks");
        }
    }

    #[test]
    fn interpolation_finds_what_a_binary_search_finds() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [0usize, 1, 2, 17, 1000, 100_000] {
            let mut marks: Vec<Mark> = (0..n)
                .map(|i| Mark {
                    // Uniform ids, some repeated, and a skewed cluster.
                    id: if i % 97 == 0 { 42 } else { next() },
                    content: i as u64,
                })
                .collect();
            marks.sort_unstable();
            let mut probes: Vec<u64> = marks.iter().map(|m| m.id).collect();
            probes.extend([0, 1, 41, 42, 43, u64::MAX]);
            probes.extend((0..1000).map(|_| next()));
            for id in probes {
                let want = marks.partition_point(|m| m.id < id);
                assert_eq!(first_at_least(&marks, id), want, "n {n} id {id}");
            }
        }
    }

    /// A growable store, as a std platform gives, with room for an index
    /// of at most `cap` slots (`None`: as many as asked for).
    #[derive(Default)]
    struct VecStore {
        marks: Vec<Mark>,
        index: Vec<u32>,
        cap: Option<usize>,
    }

    impl MarkStore for VecStore {
        fn clear(&mut self) {
            self.marks.clear();
        }
        fn reserve(&mut self, n: usize) {
            self.marks.reserve(n);
        }
        fn push(&mut self, m: Mark) -> bool {
            self.marks.push(m);
            true
        }
        fn marks(&self) -> &[Mark] {
            &self.marks
        }
        fn marks_mut(&mut self) -> &mut [Mark] {
            &mut self.marks
        }
        fn limit(&self) -> Option<usize> {
            None
        }
        fn index_room(&mut self, want: usize) -> (&[Mark], &mut [u32]) {
            self.index
                .resize(want.min(self.cap.unwrap_or(want)), u32::MAX);
            (&self.marks, &mut self.index)
        }
        fn index(&self) -> &[u32] {
            &self.index
        }
    }

    #[test]
    fn indexed_lookup_finds_what_a_binary_search_finds() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [0usize, 1, 63, 64, 65, 1000, 100_000] {
            let marks: Vec<Mark> = (0..n)
                .map(|i| Mark {
                    // Uniform ids, a repeated one, a skewed cluster low
                    // and ids at the very top (the last slot's bucket).
                    id: match i % 101 {
                        0 => 42,
                        1 => u64::MAX - (i as u64 % 3),
                        2 => i as u64,
                        _ => next(),
                    },
                    content: i as u64,
                })
                .collect();
            let mut sorted = marks.clone();
            sorted.sort_unstable();
            let mut probes: Vec<u64> = sorted.iter().map(|m| m.id).collect();
            probes.extend([0, 1, 41, 42, 43, u64::MAX - 3, u64::MAX]);
            probes.extend((0..1000).map(|_| next()));
            for cap in [None, Some(0), Some(2), Some(3), Some(5), Some(1000)] {
                let store = VecStore {
                    marks: marks.clone(),
                    cap,
                    ..VecStore::default()
                };
                let mut m = SnapshotMarks::new(store);
                m.seal();
                let indexed = n >= 64 && cap.is_none_or(|c| c >= 3);
                assert_eq!(m.index_bits > 0, indexed, "n {n} cap {cap:?}");
                for &id in &probes {
                    let want = sorted.partition_point(|m| m.id < id);
                    assert_eq!(m.lookup(id), want, "n {n} cap {cap:?} id {id}");
                }
            }
        }
    }

    fn id(i: u32) -> [u8; 4] {
        i.to_be_bytes()
    }

    #[test]
    fn exact_at_a_hundred_thousand() {
        let mut m = SnapshotMarks::new(VecStore::default());
        m.reset([7; 16], 100_000);
        for i in 0..100_000u32 {
            m.insert(&id(i), &id(i ^ 0xffff));
        }
        assert!(!m.overflowed());
        for i in 0..100_000u32 {
            assert_eq!(m.check(&id(i), &id(i ^ 0xffff)), MarkVerdict::Keep, "{i}");
        }
        for i in 100_000..200_000u32 {
            assert_eq!(m.check(&id(i), &id(i ^ 0xffff)), MarkVerdict::Stale, "{i}");
        }
        assert_eq!(m.check(&id(5), b"other content"), MarkVerdict::Differs);
    }

    #[test]
    fn a_full_fixed_store_deletes_nothing() {
        let mut m = SnapshotMarks::new(FixedMarks::<4>::new());
        m.reset([1; 16], 10);
        for i in 0..4u32 {
            m.insert(&id(i), b"c");
        }
        assert!(!m.overflowed());
        assert_eq!(m.check(&id(9), b"c"), MarkVerdict::Stale);
        m.insert(&id(4), b"c");
        assert!(m.overflowed());
        assert_eq!(
            m.check(&id(9), b"c"),
            MarkVerdict::Unknown,
            "stale or not, it stays"
        );
        assert_eq!(m.check(&id(4), b"c"), MarkVerdict::Unknown);
        m.reset([2; 16], 0);
        assert!(!m.overflowed() && m.is_empty());
    }

    #[test]
    fn an_identity_marked_twice_keeps_either_content() {
        let mut m = SnapshotMarks::new(FixedMarks::<8>::new());
        m.reset([3; 16], 0);
        m.insert(b"sa", b"old");
        m.insert(b"sa", b"new");
        assert_eq!(m.check(b"sa", b"old"), MarkVerdict::Keep);
        assert_eq!(m.check(b"sa", b"new"), MarkVerdict::Keep);
        assert_eq!(m.check(b"sa", b"third"), MarkVerdict::Differs);
    }

    #[test]
    fn content_is_computed_only_for_a_marked_identity() {
        let mut m = SnapshotMarks::new(FixedMarks::<8>::new());
        m.reset([4; 16], 0);
        m.insert(b"sa", b"c");
        let mut asked = 0;
        let mut content = |c: &'static [u8]| {
            asked += 1;
            Some(c)
        };
        assert_eq!(m.check_with(b"other", || content(b"c")), MarkVerdict::Stale);
        assert_eq!(m.check_with(b"sa", || content(b"c")), MarkVerdict::Keep);
        assert_eq!(m.check_with(b"sa", || content(b"x")), MarkVerdict::Differs);
        assert_eq!(asked, 2, "not for the stale identity");
        assert_eq!(
            m.check_with(b"sa", || None),
            MarkVerdict::Unknown,
            "no content: the entry stays"
        );
    }
}
