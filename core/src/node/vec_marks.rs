//! Snapshot-mark storage for hosts with a heap (feature `alloc`): a vector
//! that grows to what the snapshot announces, as big as the SADB needs.
//! Firmware passes a [`FixedMarks`](super::FixedMarks) instead; the node
//! itself never allocates, only this store (the platform's storage) does.

use alloc::vec::Vec;

use super::marks::{Mark, MarkStore};

/// Marks in a growable vector with an index over them, or capped and
/// without an index like firmware's store (the simulator gives some nodes
/// such a limit, to exercise what happens when it runs out).
#[derive(Debug, Default, Clone)]
pub struct VecMarks {
    marks: Vec<Mark>,
    index: Vec<u32>,
    limit: Option<usize>,
}

impl VecMarks {
    /// An empty store that grows as needed, and gives room for an index.
    pub fn new() -> VecMarks {
        VecMarks::default()
    }

    /// An empty store holding at most `limit` marks, without an index.
    pub fn with_limit(limit: usize) -> VecMarks {
        VecMarks {
            limit: Some(limit),
            ..VecMarks::default()
        }
    }
}

impl MarkStore for VecMarks {
    fn clear(&mut self) {
        self.marks.clear();
        // A snapshot of a million entries should not pin 16 MB for good.
        if self.marks.capacity() > 64 * 1024 {
            self.marks.shrink_to(64 * 1024);
        }
        self.index.clear();
        self.index.shrink_to(8 * 1024);
    }
    fn reserve(&mut self, n: usize) {
        self.marks.reserve(n.min(self.limit.unwrap_or(usize::MAX)));
    }
    fn push(&mut self, m: Mark) -> bool {
        if self.limit.is_some_and(|l| self.marks.len() >= l) {
            return false;
        }
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
        self.limit
    }
    fn index_room(&mut self, want: usize) -> (&[Mark], &mut [u32]) {
        if self.limit.is_none() {
            self.index.resize(want, 0);
        }
        (&self.marks, &mut self.index)
    }
    fn index(&self) -> &[u32] {
        &self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64) -> Mark {
        Mark { id, content: !id }
    }

    #[test]
    fn grows_and_indexes_without_a_limit() {
        let mut s = VecMarks::new();
        for i in 0..100 {
            assert!(s.push(m(i)));
        }
        assert_eq!(s.limit(), None);
        assert_eq!(s.index_room(13).1.len(), 13);
        assert_eq!(s.marks().len(), 100);
        s.clear();
        assert!(s.marks().is_empty() && s.index().is_empty());
    }

    #[test]
    fn a_limited_store_refuses_past_it_and_has_no_index() {
        let mut s = VecMarks::with_limit(2);
        assert!(s.push(m(1)) && s.push(m(2)));
        assert!(!s.push(m(3)));
        assert_eq!(s.marks(), &[m(1), m(2)]);
        assert_eq!(s.limit(), Some(2));
        assert!(s.index_room(5).1.is_empty());
    }
}
