//! Who can reach whom: the partition map that carp advertisements and
//! network packets both consult, so one call partitions the whole world.
//!
//! Simulated: symmetric partitions (groups of nodes) and one-way link cuts.
//! Not simulated: loss rates or latency (see [`crate::net`]).

use std::collections::BTreeSet;

/// The reachability between nodes (indices as used by carp and the net).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// Partition group of each node; nodes beyond the vector are in group 0.
    group: Vec<u32>,
    /// One-way cuts `(from, to)`.
    cut: BTreeSet<(usize, usize)>,
}

impl Links {
    /// Everyone reaches everyone.
    pub fn new() -> Links {
        Links::default()
    }

    fn group_of(&self, n: usize) -> u32 {
        self.group.get(n).copied().unwrap_or(0)
    }

    /// Whether a packet from `from` arrives at `to` (a node always
    /// reaches itself).
    pub fn reachable(&self, from: usize, to: usize) -> bool {
        from == to || (self.group_of(from) == self.group_of(to) && !self.cut.contains(&(from, to)))
    }

    /// Splits the world: the nodes of `sides[i]` can only reach each other;
    /// nodes in no side form one more side of their own. Replaces any
    /// earlier partition (one-way cuts stay).
    pub fn partition(&mut self, sides: &[&[usize]]) {
        self.group.clear();
        for (i, side) in sides.iter().enumerate() {
            for &n in side.iter() {
                if self.group.len() <= n {
                    self.group.resize(n + 1, 0);
                }
                self.group[n] = i as u32 + 1;
            }
        }
    }

    /// Cuts `node` off from everyone (keeping other partitions).
    pub fn isolate(&mut self, node: usize) {
        let g = self.group.iter().copied().max().unwrap_or(0) + 1;
        if self.group.len() <= node {
            self.group.resize(node + 1, 0);
        }
        self.group[node] = g;
    }

    /// Drops packets from `from` to `to` (not the other way).
    pub fn cut(&mut self, from: usize, to: usize) {
        self.cut.insert((from, to));
    }

    /// Removes every partition and cut.
    pub fn heal(&mut self) {
        self.group.clear();
        self.cut.clear();
    }

    /// Whether any partition or cut is in force.
    pub fn is_split(&self) -> bool {
        self.group.iter().any(|&g| g != 0) || !self.cut.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_cuts() {
        let mut l = Links::new();
        assert!(l.reachable(0, 5) && !l.is_split());
        l.partition(&[&[0, 1], &[2]]);
        assert!(l.reachable(0, 1) && l.reachable(1, 0));
        assert!(!l.reachable(0, 2) && !l.reachable(2, 1));
        assert!(!l.reachable(0, 3), "unlisted nodes form their own side");
        assert!(l.reachable(3, 4) && l.reachable(2, 2));
        l.heal();
        l.cut(0, 1);
        assert!(!l.reachable(0, 1) && l.reachable(1, 0) && l.is_split());
        l.heal();
        l.isolate(7);
        assert!(!l.reachable(7, 0) && l.reachable(0, 1));
    }
}
