//! The master's feed, beyond each connection's own position in it: when
//! the next anti-entropy digest is due, the last digest announced (sent to
//! each slave when its stream reaches the digest's position, and the
//! basis of the entry count a snapshot announces), and each connection
//! slot's bundle pass.
//!
//! A digest is periodic while we are a v2 master, and brought forward when
//! a slave is resumed at our head (its tables are repaired by bucket at
//! the next digest) or when a digest was partial (deltas arrived while the
//! tables were read, so some buckets were unknown). ADD cannot carry the
//! SA bundle extensions, so a snapshot that sent a grouped entry walks the
//! SADB once more for the X_GRPSPIS of each bundle (see [`Regroup`]).

use core::time::Duration;

use crate::config::MAX_PEERS;
use crate::ctl::{BucketSet, Ctl, BUCKETS};
use crate::state::Position;
use crate::time::Instant;

use super::fingerprint;

/// How soon a digest is retried when the node is busy reading a dump for
/// something else.
const BUSY_RETRY: Duration = Duration::from_secs(1);
/// How soon the next digest follows a partial one (a slave resuming after
/// a failover waits for a whole one).
const AFTER_PARTIAL: Duration = Duration::from_secs(5);

/// Where a snapshot (or repair) stands with SA bundles. ADD cannot carry
/// the group extensions, so after the SADB's ADDs the master walks the
/// SADB again and sends an X_GRPSPIS for each grouped entry (every SA of
/// the bundle exists on the slave by then).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Regroup {
    /// No grouped entry sent yet.
    #[default]
    None,
    /// The ADD pass sent a grouped entry: a bundle pass follows.
    Seen,
    /// The bundle pass is running.
    Pass,
}

/// The master's feed (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MasterFeed {
    /// When the next digest is due (v2 masters only).
    next_digest: Option<Instant>,
    /// The last digest announced.
    announced: Option<Ctl>,
    /// Per connection slot, the bundle pass of the snapshot it is fed.
    regroup: [[Regroup; 2]; MAX_PEERS],
}

impl MasterFeed {
    pub const fn new() -> Self {
        MasterFeed {
            next_digest: None,
            announced: None,
            regroup: [[Regroup::None; 2]; MAX_PEERS],
        }
    }

    // ----- the digest schedule -------------------------------------------

    /// When the next digest is due.
    pub fn digest_at(&self) -> Option<Instant> {
        self.next_digest
    }

    /// We became master (`v2`: anti-entropy is a v2 feature), or the
    /// protocol changed while we are: digests every `interval` from `now`.
    /// Otherwise none.
    pub fn schedule_digests(&mut self, v2_master: bool, now: Instant, interval: Duration) {
        self.next_digest = v2_master.then(|| now.add(interval));
    }

    /// We are no longer master: no more digests.
    pub fn stop_digests(&mut self) {
        self.next_digest = None;
    }

    /// A slave was resumed at our head: the digest that repairs it is due
    /// at once.
    pub fn digest_now(&mut self, now: Instant) {
        self.next_digest = Some(now);
    }

    /// Whether a digest is due at `now`; if so, the next one is an
    /// `interval` later.
    pub fn digest_due(&mut self, now: Instant, interval: Duration) -> bool {
        match self.next_digest {
            Some(at) if now >= at => {
                self.next_digest = Some(now.add(interval));
                true
            }
            _ => false,
        }
    }

    /// The due digest cannot start (a dump for something else is being
    /// read): soon, not a whole interval later.
    pub fn digest_busy(&mut self, now: Instant) {
        self.next_digest = Some(now.add(BUSY_RETRY));
    }

    // ----- the digest announced ------------------------------------------

    /// A digest of our tables at `pos` is complete: it is what the slaves
    /// get next. `partial`: deltas arrived while the tables were read, so
    /// the next digest comes soon.
    #[allow(clippy::too_many_arguments)]
    pub fn announce(
        &mut self,
        now: Instant,
        pos: Position,
        sas: u32,
        flows: u32,
        sa_digest: [u8; 32],
        flow_digest: [u8; 32],
        partial: bool,
    ) {
        if partial {
            let soon = now.add(AFTER_PARTIAL);
            self.next_digest = self.next_digest.map(|t| t.min(soon));
        }
        self.announced = Some(Ctl::Digest {
            pos,
            sas,
            flows,
            sa_digest,
            flow_digest,
            partial,
        });
    }

    /// The last digest announced.
    pub fn announced(&self) -> Option<&Ctl> {
        self.announced.as_ref()
    }

    /// About how many entries a snapshot of `buckets` (or all) holds, from
    /// the last digest's counts, so the slave can size its marks.
    pub fn expect(&self, buckets: Option<&BucketSet>) -> u32 {
        let total = match self.announced {
            Some(Ctl::Digest { sas, flows, .. }) => u64::from(sas) + u64::from(flows),
            _ => 0,
        };
        let share = buckets.map_or(BUCKETS, fingerprint::count) as u64;
        u32::try_from(total * share / BUCKETS as u64).unwrap_or(u32::MAX)
    }

    // ----- each slot's bundle pass ---------------------------------------

    /// A snapshot to slot `(p, s)` begins: no grouped entry sent yet.
    pub fn snapshot_begins(&mut self, p: usize, s: usize) {
        if let Some(r) = self.slot(p, s) {
            *r = Regroup::None;
        }
    }

    /// Where slot `(p, s)`'s snapshot stands with bundles.
    pub fn regroup(&self, p: usize, s: usize) -> Regroup {
        self.regroup
            .get(p)
            .and_then(|x| x.get(s))
            .copied()
            .unwrap_or_default()
    }

    /// Slot `(p, s)`'s ADD pass sent a grouped entry.
    pub fn grouped_sent(&mut self, p: usize, s: usize) {
        if let Some(r) = self.slot(p, s) {
            *r = Regroup::Seen;
        }
    }

    /// Slot `(p, s)`'s pass over the SADB ended: whether a bundle pass
    /// follows (after the ADDs of grouped entries; never after the bundle
    /// pass itself).
    pub fn sadb_pass_ended(&mut self, p: usize, s: usize) -> bool {
        let Some(r) = self.slot(p, s) else {
            return false;
        };
        *r = match *r {
            Regroup::Seen => Regroup::Pass,
            _ => Regroup::None,
        };
        *r == Regroup::Pass
    }

    fn slot(&mut self, p: usize, s: usize) -> Option<&mut Regroup> {
        self.regroup.get_mut(p)?.get_mut(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn digests_are_periodic_for_a_v2_master_only() {
        let mut f = MasterFeed::new();
        f.schedule_digests(false, at(0), MIN);
        assert_eq!(f.digest_at(), None);
        assert!(!f.digest_due(at(1000), MIN));
        f.schedule_digests(true, at(0), MIN);
        assert_eq!(f.digest_at(), Some(at(60)));
        assert!(!f.digest_due(at(59), MIN));
        assert!(f.digest_due(at(61), MIN));
        assert_eq!(f.digest_at(), Some(at(121)));
        f.stop_digests();
        assert!(!f.digest_due(at(1000), MIN));
    }

    #[test]
    fn a_resume_at_our_head_or_a_busy_node_brings_the_digest_forward() {
        let mut f = MasterFeed::new();
        f.schedule_digests(true, at(0), MIN);
        f.digest_now(at(3));
        assert!(f.digest_due(at(3), MIN));
        f.digest_busy(at(3));
        assert_eq!(f.digest_at(), Some(at(4)));
    }

    #[test]
    fn a_partial_digest_is_followed_soon_and_counts_what_a_snapshot_holds() {
        let mut f = MasterFeed::new();
        assert_eq!(f.expect(None), 0, "no digest yet");
        f.schedule_digests(true, at(0), MIN);
        let pos = Position { epoch: 1, seq: 2 };
        f.announce(at(10), pos, 300, 212, [1; 32], [2; 32], false);
        assert_eq!(f.digest_at(), Some(at(60)));
        f.announce(at(10), pos, 300, 212, [1; 32], [2; 32], true);
        assert_eq!(f.digest_at(), Some(at(15)));
        assert!(matches!(
            f.announced(),
            Some(Ctl::Digest {
                partial: true,
                sas: 300,
                ..
            })
        ));
        assert_eq!(f.expect(None), 512);
        let mut half = [0; BUCKETS / 8];
        for b in 0..BUCKETS / 2 {
            fingerprint::add(&mut half, b);
        }
        assert_eq!(f.expect(Some(&half)), 256);
        f.stop_digests();
        f.announce(at(20), pos, 1, 1, [1; 32], [2; 32], true);
        assert_eq!(f.digest_at(), None, "no master, no digest");
    }

    #[test]
    fn a_bundle_pass_follows_a_sadb_pass_that_sent_a_grouped_entry() {
        let mut f = MasterFeed::new();
        f.snapshot_begins(1, 0);
        assert!(!f.sadb_pass_ended(1, 0), "nothing grouped: on to the SPD");
        f.snapshot_begins(1, 1);
        f.grouped_sent(1, 1);
        assert_eq!(f.regroup(1, 1), Regroup::Seen);
        assert_eq!(f.regroup(1, 0), Regroup::None, "per slot");
        assert!(f.sadb_pass_ended(1, 1));
        assert_eq!(f.regroup(1, 1), Regroup::Pass);
        assert!(!f.sadb_pass_ended(1, 1), "once");
        f.grouped_sent(1, 1);
        f.snapshot_begins(1, 1);
        assert_eq!(f.regroup(1, 1), Regroup::None, "a new snapshot starts over");
        assert_eq!(f.regroup(MAX_PEERS, 0), Regroup::None);
        assert!(!f.sadb_pass_ended(MAX_PEERS, 0));
    }
}
