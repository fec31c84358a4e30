//! Snapshot-mark storage for std platforms: a vector that grows to what
//! the snapshot announces, as big as the SADB needs (the core's node takes
//! its mark storage from the platform; firmware uses a fixed array).

use sasyncd_core::node::{Mark, MarkStore};

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
