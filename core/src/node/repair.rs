//! The slave's repair plan: which buckets it still owes itself, in
//! batches that fit its mark storage.
//!
//! A sweep deletes what a snapshot (or repair) did not hold, and needs a
//! mark per entry received. When the platform's mark store is smaller than
//! the table, the snapshot's sweep is skipped and redone as repairs of a
//! few buckets at a time; a batch that still overflows teaches how many
//! buckets fit. Entries whose content differed are deleted by the sweep
//! and asked for once more (their snapshot ADDs were refused while they
//! existed). The node sends the repairs; this part decides what they ask.

use crate::ctl::{BucketSet, BUCKETS};

use super::fingerprint;

/// What a slave owes itself after snapshots and sweeps (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RepairPlan {
    /// Buckets still to repair, a batch that fits the mark storage at a
    /// time.
    queue: BucketSet,
    /// The most buckets a batch may hold, learnt from a batch that
    /// overflowed the marks (0: not learnt; the estimate from the entry
    /// count rules).
    fit: usize,
    /// A full snapshot overflowed the marks; it is complete (in sync,
    /// demotion released) once the batches that sweep it are done.
    in_batches: bool,
    /// The current sweep's marks overflowed: it deleted nothing.
    overflowed: bool,
    /// The last full snapshot's entries, and how many the master's last
    /// digest counted: what a bucket holds, on average.
    snapshot_entries: usize,
    master_entries: u32,
    /// Buckets in which the current sweep deleted entries whose content
    /// differed.
    stale: BucketSet,
    /// A sweep already asked for its stale buckets again (once is enough).
    stale_retried: bool,
}

/// What to do once a sweep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterSweep {
    /// Ask for these buckets again: entries in them differed.
    RetryStale(BucketSet),
    /// Nothing to retry; `overflowed`: the sweep's marks overflowed, and
    /// what the batches find is that debt, not loss.
    Done { overflowed: bool },
}

impl RepairPlan {
    pub const fn new() -> Self {
        RepairPlan {
            queue: [0; BUCKETS / 8],
            fit: 0,
            in_batches: false,
            overflowed: false,
            snapshot_entries: 0,
            master_entries: 0,
            stale: [0; BUCKETS / 8],
            stale_retried: false,
        }
    }

    /// Buckets still queued.
    pub fn queued(&self) -> usize {
        fingerprint::count(&self.queue)
    }

    /// Whether a repair is owed: buckets queued, or a full snapshot that
    /// completes in batches.
    pub fn owed(&self) -> bool {
        self.queued() > 0 || self.in_batches
    }

    /// Forgets the queue: a full snapshot begins (it supersedes what was
    /// queued), or a new stream.
    pub fn drop_queue(&mut self) {
        self.queue = [0; BUCKETS / 8];
        self.in_batches = false;
    }

    /// We follow another master: its stream owes us nothing of this plan.
    /// Whether something was owed.
    pub fn abandon(&mut self) -> bool {
        let owed = self.owed();
        self.queue = [0; BUCKETS / 8];
        self.fit = 0;
        self.in_batches = false;
        owed
    }

    /// A sweep starts over `inserted` marks (`full`: a full snapshot's),
    /// which `overflowed` the store.
    pub fn sweep_starts(&mut self, full: bool, inserted: usize, overflowed: bool) {
        if full {
            self.snapshot_entries = inserted;
        }
        if overflowed {
            self.overflowed = true;
        }
    }

    /// The sweep deleted an entry of bucket `b` whose content differed.
    pub fn stale_entry(&mut self, b: usize) {
        fingerprint::add(&mut self.stale, b);
    }

    /// The master's digest counted `n` entries.
    pub fn master_entries(&mut self, n: u32) {
        self.master_entries = n;
    }

    /// A new repair round gets its own retry of stale entries.
    pub fn new_round(&mut self) {
        self.stale_retried = false;
    }

    /// Repair `differ` in batches (the marks are few).
    pub fn queue(&mut self, differ: BucketSet) {
        self.queue = differ;
    }

    /// A sweep ended (`buckets`: a repair's; `None`: a full snapshot's)
    /// with `inserted` marks of a store of `limit`.
    pub fn sweep_ended(
        &mut self,
        buckets: Option<BucketSet>,
        inserted: usize,
        limit: usize,
    ) -> AfterSweep {
        let stale = core::mem::replace(&mut self.stale, [0; BUCKETS / 8]);
        if fingerprint::count(&stale) > 0 && !self.stale_retried {
            self.stale_retried = true;
            // The second pass finishes a full snapshot: its end, not this
            // one's, completes it.
            if buckets.is_none() {
                self.in_batches = true;
            }
            return AfterSweep::RetryStale(stale);
        }
        self.stale_retried = false;
        if !core::mem::take(&mut self.overflowed) {
            return AfterSweep::Done { overflowed: false };
        }
        match buckets {
            None => {
                self.queue = fingerprint::ALL;
                self.in_batches = true;
            }
            Some(b) if fingerprint::count(&b) > 1 => {
                // Again, in batches as much smaller as the overflow was
                // larger than the store.
                let n = fingerprint::count(&b);
                let got = inserted.max(1);
                self.fit = (n.saturating_mul(limit) / got).clamp(1, n - 1);
                for (q, b) in self.queue.iter_mut().zip(b) {
                    *q |= b;
                }
            }
            // A single bucket that does not fit stays as it is; the next
            // digest tries again.
            Some(_) => {}
        }
        AfterSweep::Done { overflowed: true }
    }

    /// Whether the sweep that ended completes a full snapshot (`full`, or
    /// the last batch of one).
    pub fn completes_snapshot(&mut self, full: bool) -> bool {
        full || core::mem::take(&mut self.in_batches)
    }

    /// The next batch of queued buckets that fits a mark store of `limit`
    /// (`None`: unlimited), taken from the queue; `None` when it is empty.
    pub fn next_batch(&mut self, limit: Option<usize>) -> Option<(BucketSet, usize)> {
        if self.queued() == 0 {
            self.fit = 0;
            return None;
        }
        let entries = (self.master_entries as usize).max(self.snapshot_entries);
        let per_bucket = entries.div_ceil(BUCKETS).max(1);
        let mut fit = limit.map_or(BUCKETS, |l| (l / per_bucket).max(1));
        if self.fit > 0 {
            fit = fit.min(self.fit);
        }
        let mut set = [0u8; BUCKETS / 8];
        let mut taken = 0;
        for b in 0..BUCKETS {
            if taken == fit {
                break;
            }
            if fingerprint::has(&self.queue, b) {
                fingerprint::add(&mut set, b);
                self.queue[b / 8] &= !(1 << (b % 8));
                taken += 1;
            }
        }
        Some((set, taken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(buckets: &[usize]) -> BucketSet {
        let mut s = [0; BUCKETS / 8];
        for &b in buckets {
            fingerprint::add(&mut s, b);
        }
        s
    }

    #[test]
    fn a_full_snapshot_that_overflowed_is_swept_in_batches_that_fit() {
        let mut p = RepairPlan::new();
        // 2560 entries, 10 a bucket; marks for 100.
        p.sweep_starts(true, 100, true);
        p.master_entries(2560);
        assert_eq!(
            p.sweep_ended(None, 100, 100),
            AfterSweep::Done { overflowed: true }
        );
        assert!(p.owed());
        let mut batches = 0;
        while let Some((b, n)) = p.next_batch(Some(100)) {
            assert_eq!(fingerprint::count(&b), n);
            assert!(n <= 10, "ten buckets of ten entries fill 100 marks");
            batches += 1;
        }
        assert_eq!(batches, BUCKETS.div_ceil(10));
        assert!(p.completes_snapshot(false), "the last batch completes it");
        assert!(!p.completes_snapshot(false), "once");
        assert!(!p.owed());
    }

    #[test]
    fn a_repair_that_overflowed_learns_a_smaller_batch() {
        let mut p = RepairPlan::new();
        let b = set(&[1, 2, 3, 4, 5, 6, 7, 8]);
        p.sweep_starts(false, 40, true);
        // 8 buckets gave 40 marks into a store of 10: 2 buckets fit.
        assert_eq!(
            p.sweep_ended(Some(b), 40, 10),
            AfterSweep::Done { overflowed: true }
        );
        assert_eq!(p.queued(), 8);
        let (first, n) = p.next_batch(None).unwrap();
        assert_eq!((n, first), (2, set(&[1, 2])));
        assert_eq!(p.queued(), 6);
    }

    #[test]
    fn stale_entries_are_asked_for_once_per_round() {
        let mut p = RepairPlan::new();
        p.stale_entry(9);
        assert_eq!(
            p.sweep_ended(None, 5, 100),
            AfterSweep::RetryStale(set(&[9]))
        );
        assert!(p.owed(), "the retry completes the snapshot");
        p.stale_entry(9);
        assert_eq!(
            p.sweep_ended(Some(set(&[9])), 1, 100),
            AfterSweep::Done { overflowed: false },
            "the retry's own sweep does not retry"
        );
        p.stale_entry(9);
        assert!(matches!(
            p.sweep_ended(Some(set(&[9])), 1, 100),
            AfterSweep::RetryStale(_)
        ));
        // That retry is cut short (another master); a new round may retry.
        p.new_round();
        p.stale_entry(9);
        assert!(matches!(
            p.sweep_ended(Some(set(&[9])), 1, 100),
            AfterSweep::RetryStale(_)
        ));
    }

    #[test]
    fn a_full_snapshot_or_another_master_drops_the_queue() {
        let mut p = RepairPlan::new();
        p.queue(set(&[1, 2]));
        p.drop_queue();
        assert!(!p.owed());
        p.queue(set(&[3]));
        assert!(p.abandon(), "something was owed");
        assert!(!p.abandon());
        assert_eq!(p.next_batch(Some(1)), None);
    }
}
