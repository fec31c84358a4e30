//! The slave's sync: where a slave stands in its master's stream, whom it
//! follows, and what it still owes itself.
//!
//! A slave follows one master at a time (mixing two masters' streams would
//! sweep one's entries away with the other's snapshot). It applies that
//! master's snapshot, then its deltas, and acknowledges its position; a
//! resume from another position (another master's epoch, a snapshot cut
//! short, an UPDATE of an SA we lack) leaves a repair owed, which the next
//! digest finds by bucket. While a repair is on its way, digests are not
//! checked (they would find the same differences). This part holds those
//! rules; the node sends the messages they call for.

use core::time::Duration;

use crate::config::MAX_PEERS;
use crate::ctl::{BucketSet, BUCKETS, BUCKETS_PER_CHUNK};
use crate::state::Position;
use crate::time::Instant;

use super::event::ConnId;
use super::fingerprint::{self, BucketSums};
use super::peer_table::PeerIndex;
use super::repair::{AfterSweep, RepairPlan};

/// How long a v2 slave waits for its master to answer `Resync`.
pub(super) const REASK: Duration = Duration::from_secs(5);
/// How long a repair asked for may take before digests are checked again
/// (a master that never answered is not waited for forever).
pub(super) const REPAIR_PATIENCE: Duration = Duration::from_secs(30);

/// A slave's view of the snapshot it is receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Incoming {
    pub conn: ConnId,
    pub pos: Position,
    pub sweep: bool,
    /// `Some`: a repair of these buckets only.
    pub buckets: Option<BucketSet>,
}

/// The master a slave takes its stream from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Follow {
    pub conn: ConnId,
    /// Its SnapBegin or Resume arrived: its data may be applied.
    pub synced: bool,
    /// When we last asked it for our stream (`Resync`), or (legacy) last
    /// announced our state to it.
    pub asked: Option<Instant>,
}

/// A slave comparing the master's bucket sums at `pos` with its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Compare {
    /// The master whose digest this is: only its chunks count.
    conn: ConnId,
    pos: Position,
    /// The whole-table digests agreed.
    whole_ok: bool,
    /// The master's digest was partial.
    partial: bool,
    /// Buckets found to differ so far.
    differ: BucketSet,
    /// Chunks compared so far.
    chunks: u8,
}

/// What a digest's last chunk of bucket sums concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DigestVerdict {
    /// Our tables are the master's.
    Matched,
    /// No bucket sum differs, but the master's digest was partial: nothing
    /// can be concluded.
    Inconclusive,
    /// `buckets` are to be repaired: `n` differed by their sums (all of
    /// them when only the whole-table digests differed: the sums
    /// collided). `after_resume`: expected after a resume across streams,
    /// not a sign of loss.
    Differ {
        buckets: BucketSet,
        n: usize,
        after_resume: bool,
    },
}

/// The slave's sync (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlaveSync {
    /// The last master position written to our kernel queue.
    applied: Position,
    incoming: Option<Incoming>,
    following: Option<Follow>,
    /// When each peer last became a MASTER claimant, as we heard it: a
    /// slave attaches to the newest claim (an older one may be a master
    /// that died behind a half-open connection).
    claims: [Option<Instant>; MAX_PEERS],
    /// Legacy: the peer (index) whose master data we applied last.
    legacy_source: Option<usize>,
    /// Comparing the master's bucket sums with ours.
    compare: Option<Compare>,
    /// The stream resumed from another position; the first digest check
    /// repairs what differs (not a sign of loss).
    resumed_across: bool,
    /// Resumed from another stream and no digest compared yet.
    awaiting_digest: bool,
    /// When we asked for a repair that has not arrived yet.
    repair_asked: Option<Instant>,
    /// What it still owes itself after snapshots and sweeps, in batches
    /// that fit the mark storage.
    repair: RepairPlan,
}

impl SlaveSync {
    pub const fn new() -> Self {
        SlaveSync {
            applied: Position::NONE,
            incoming: None,
            following: None,
            claims: [None; MAX_PEERS],
            legacy_source: None,
            compare: None,
            resumed_across: false,
            awaiting_digest: false,
            repair_asked: None,
            repair: RepairPlan::new(),
        }
    }

    // ----- what it knows ---------------------------------------------------

    /// The last master position written to our kernel queue.
    pub fn applied(&self) -> Position {
        self.applied
    }

    /// The snapshot (or repair) being received.
    pub fn incoming(&self) -> Option<Incoming> {
        self.incoming
    }

    /// A snapshot (or repair) is being received.
    pub fn receiving(&self) -> bool {
        self.incoming.is_some()
    }

    /// `conn`'s snapshot (or repair) is being received.
    pub fn receiving_from(&self, conn: ConnId) -> bool {
        self.incoming.is_some_and(|i| i.conn == conn)
    }

    /// The master we follow.
    pub fn following(&self) -> Option<Follow> {
        self.following
    }

    /// Whether we follow `conn`.
    pub fn follows(&self, conn: ConnId) -> bool {
        self.following.is_some_and(|f| f.conn == conn)
    }

    /// Whether we follow `conn` and its stream began: its data may be
    /// applied.
    pub fn synced_with(&self, conn: ConnId) -> bool {
        self.following.is_some_and(|f| f.conn == conn && f.synced)
    }

    /// When peer `p` last became a MASTER claimant.
    pub fn claim(&self, p: usize) -> Option<Instant> {
        self.claims.get(p).copied().flatten()
    }

    /// Legacy: the peer whose master data we applied last.
    pub fn legacy_source(&self) -> Option<usize> {
        self.legacy_source
    }

    /// Whether the stream resumed from another position (differences
    /// found are repairs, not loss).
    pub fn resumed_across(&self) -> bool {
        self.resumed_across
    }

    /// Whether a repair is owed, asked for or queued.
    pub fn repairing(&self) -> bool {
        self.awaiting_digest || self.repair_asked.is_some() || self.repair.queued() > 0
    }

    /// The repair plan, for the sweep's bookkeeping.
    pub fn repair_plan(&mut self) -> &mut RepairPlan {
        &mut self.repair
    }

    /// When the master we asked for our stream is to be asked again.
    pub fn reask_at(&self) -> Option<Instant> {
        match self.following {
            Some(Follow {
                synced: false,
                asked: Some(at),
                ..
            }) => Some(at.add(REASK)),
            _ => None,
        }
    }

    /// The master to ask again: it has not answered our `Resync` for
    /// [`REASK`] (the request may have crossed its own change of state).
    pub fn reask_due(&self, now: Instant) -> Option<ConnId> {
        self.following
            .filter(|f| !f.synced && f.asked.is_some_and(|t| now.since(t) >= REASK))
            .map(|f| f.conn)
    }

    // ----- our own role and configuration ----------------------------------

    /// We stopped being master: we resume from `resume` (our own ring's
    /// head, which no other master's ring holds, or none for legacy).
    pub fn left_master(&mut self, resume: Position) {
        self.applied = resume;
    }

    /// We became master: what was half-received is dropped.
    pub fn became_master(&mut self) {
        self.incoming = None;
    }

    /// We follow no one (our run state changed; we attach again if slave).
    pub fn unfollow(&mut self) {
        self.following = None;
    }

    /// Shutting down: no stream is taken any more.
    pub fn shut_down(&mut self) {
        self.following = None;
        self.incoming = None;
    }

    /// The peer protocol changed: a legacy stream has no positions, so
    /// only a full snapshot tells a v2 master what we hold.
    pub fn protocol_changed(&mut self) {
        self.applied = Position::NONE;
        self.legacy_source = None;
    }

    /// The peer table was rebuilt: `from[j]` is new index `j`'s old one.
    pub fn peers_moved(&mut self, from: &[Option<PeerIndex>]) {
        let old = self.legacy_source.take();
        for (j, o) in from.iter().enumerate() {
            if o.is_some_and(|o| Some(o.0) == old) {
                self.legacy_source = Some(j);
            }
        }
    }

    // ----- peers and their streams -----------------------------------------

    /// Peer `p` announced its state: `master` now, `was_master` before.
    /// A claim's age is when it became a claimant.
    pub fn peer_announced(&mut self, p: usize, now: Instant, master: bool, was_master: bool) {
        let Some(c) = self.claims.get_mut(p) else {
            return;
        };
        if !master {
            *c = None;
        } else if !was_master {
            *c = Some(now);
        }
    }

    /// `conn`'s peer says it is no longer master: we stop following it.
    pub fn master_stepped_down(&mut self, conn: ConnId) {
        if self.follows(conn) {
            self.following = None;
        }
    }

    /// Starts following `conn`'s stream (its SnapBegin or Resume arrived).
    /// A new master owes us nothing another asked or queued.
    pub fn follow(&mut self, conn: ConnId) {
        if !self.follows(conn) {
            self.repair_asked = None;
            self.repair.drop_queue();
        }
        self.following = Some(Follow {
            conn,
            synced: true,
            asked: None,
        });
    }

    /// We ask `conn`'s master for our stream (`Resync`). A digest compared
    /// until now speaks for the stream we leave, and a repair asked on
    /// another connection will not come: our tables still differ where it
    /// would have repaired them, so a repair stays owed until a digest
    /// finds where.
    pub fn asking(&mut self, conn: ConnId, now: Instant) {
        self.compare = None;
        if !self.follows(conn) {
            let owed = self.repair_asked.is_some() | self.repair.abandon();
            self.repair_asked = None;
            self.awaiting_digest |= owed;
        }
        self.following = Some(Follow {
            conn,
            synced: false,
            asked: Some(now),
        });
    }

    /// The operator asked `conn`'s master for a full snapshot.
    pub fn resync_asked(&mut self, conn: ConnId, now: Instant) {
        self.following = Some(Follow {
            conn,
            synced: false,
            asked: Some(now),
        });
    }

    /// We leave `conn`'s stream for another master's: what was
    /// half-received from it is dropped.
    pub fn leave(&mut self, conn: ConnId) {
        if self.receiving_from(conn) {
            self.incoming = None;
        }
        self.following = None;
    }

    /// A connection's session moved to another connection of its peer
    /// (crossed connections): we follow the same master on the new one.
    pub fn conn_moved(&mut self, from: ConnId, to: ConnId) {
        if let Some(f) = self.following.as_mut().filter(|f| f.conn == from) {
            f.conn = to;
        }
    }

    /// `conn` is gone: its snapshot is dropped. Whether it was the master
    /// we followed (another is to be found).
    pub fn conn_gone(&mut self, conn: ConnId) -> bool {
        if self.receiving_from(conn) {
            self.incoming = None;
        }
        let followed = self.follows(conn);
        if followed {
            self.following = None;
        }
        followed
    }

    // ----- legacy ------------------------------------------------------------

    /// Legacy: we follow `conn`'s master, by our own choice.
    pub fn legacy_follow(&mut self, conn: ConnId) {
        self.following = Some(Follow {
            conn,
            synced: true,
            asked: None,
        });
    }

    /// Legacy: our tables mix two masters' data; we follow no one until a
    /// reconnect brings a full snapshot.
    pub fn legacy_drop_master(&mut self) {
        self.following = None;
        self.legacy_source = None;
    }

    /// Legacy: we applied data from peer `p`.
    pub fn legacy_applied(&mut self, p: Option<usize>) {
        self.legacy_source = p;
    }

    /// Legacy: whether to announce our state to the master we follow (it
    /// may be dead behind a half-open connection): at most once per
    /// [`REASK`].
    pub fn legacy_prod(&mut self, now: Instant) -> bool {
        match self.following.as_mut() {
            Some(f) if f.asked.is_none_or(|t| now.since(t) >= REASK) => {
                f.asked = Some(now);
                true
            }
            _ => false,
        }
    }

    // ----- snapshots, deltas, resumes ---------------------------------------

    /// A snapshot (`buckets: None`) or repair from `conn` begins. Until
    /// its end, a full snapshot leaves us nowhere; it supersedes any repair
    /// still queued or owed.
    pub fn snapshot_begins(
        &mut self,
        conn: ConnId,
        pos: Position,
        sweep: bool,
        buckets: Option<BucketSet>,
    ) {
        if buckets.is_none() {
            self.applied = Position::NONE;
            self.repair.drop_queue();
            self.awaiting_digest = false;
        }
        self.incoming = Some(Incoming {
            conn,
            pos,
            sweep,
            buckets,
        });
    }

    /// `conn`'s snapshot (or sweep) ended at `pos`: we are there.
    pub fn reached(&mut self, conn: ConnId, pos: Position) {
        if self.receiving_from(conn) {
            self.incoming = None;
        }
        self.applied = pos;
    }

    /// One delta of the stream was applied.
    pub fn delta_applied(&mut self) {
        self.applied.seq = self.applied.seq.saturating_add(1);
    }

    /// `conn`'s master resumes us at `pos`. Not where we asked (another
    /// master's stream, or one that moved past what its ring holds), or a
    /// snapshot cut short (we asked before its beginning reached us; our
    /// tables hold part of it and nothing was swept): a repair is owed.
    pub fn resumed(&mut self, conn: ConnId, pos: Position) {
        let cut_short = self.incoming.is_some();
        if cut_short || (self.applied != Position::NONE && self.applied != pos) {
            self.owe_repair();
        }
        self.follow(conn);
        self.incoming = None;
        self.applied = pos;
    }

    /// Our tables differ from the master's somewhere we cannot tell: the
    /// next digest finds where (and it is a repair, not loss).
    pub fn owe_repair(&mut self) {
        self.resumed_across = true;
        self.awaiting_digest = true;
    }

    /// A sweep of `conn`'s snapshot (or repair) at `pos` ended, with
    /// `inserted` marks of a store of `limit`. A retry of stale entries is
    /// asked for at once (`now`); what it and the overflow's batches find
    /// is known debt, not loss.
    pub fn sweep_ended(
        &mut self,
        conn: ConnId,
        pos: Position,
        buckets: Option<BucketSet>,
        inserted: usize,
        limit: usize,
        now: Instant,
    ) -> AfterSweep {
        self.reached(conn, pos);
        let after = self.repair.sweep_ended(buckets, inserted, limit);
        match after {
            AfterSweep::RetryStale(_) => {
                self.resumed_across = true;
                self.repair_asked = Some(now);
            }
            AfterSweep::Done { overflowed } => {
                self.repair_asked = None;
                if overflowed {
                    self.resumed_across = true;
                }
            }
        }
        after
    }

    /// The next batch of queued buckets that fits a mark store of `limit`,
    /// asked for at `now`; `None` when none is queued.
    pub fn next_repair_batch(
        &mut self,
        limit: Option<usize>,
        now: Instant,
    ) -> Option<(BucketSet, usize)> {
        let batch = self.repair.next_batch(limit)?;
        self.repair_asked = Some(now);
        Some(batch)
    }

    /// A repair was asked for at `now`.
    pub fn repair_requested(&mut self, now: Instant) {
        self.repair_asked = Some(now);
    }

    // ----- digests -----------------------------------------------------------

    /// A master digest arrived: whether to check it. A repair asked for
    /// and not yet here would be found again; one the master never
    /// answered is forgotten after [`REPAIR_PATIENCE`].
    pub fn digest_arrives(&mut self, now: Instant) -> bool {
        self.compare = None;
        if self
            .repair_asked
            .is_some_and(|t| now.since(t) < REPAIR_PATIENCE)
        {
            return false;
        }
        self.repair_asked = None;
        true
    }

    /// Our own tables are digested against `conn`'s digest at `pos`:
    /// `whole_ok` whether the whole-table digests agreed, `partial` whether
    /// the master's was partial, `entries` how many it counted. The bucket
    /// sums are compared as its chunks arrive.
    pub fn tables_digested(
        &mut self,
        conn: ConnId,
        pos: Position,
        whole_ok: bool,
        partial: bool,
        entries: u32,
    ) {
        self.repair.master_entries(entries);
        self.compare = Some(Compare {
            conn,
            pos,
            whole_ok,
            partial,
            differ: [0; BUCKETS / 8],
            chunks: 0,
        });
    }

    /// One chunk of `conn`'s bucket sums at `pos` (`theirs`, from bucket
    /// `first`; `unknown`: those it could not tell) against `ours`. `None`
    /// until the last chunk, or when the chunk is stale: chunks of a digest
    /// begun before we switched masters could end the repair owed to a
    /// resume across streams, and the new master's first digest would then
    /// count its differences as loss.
    pub fn bucket_sums(
        &mut self,
        conn: ConnId,
        pos: Position,
        first: usize,
        theirs: &[u64],
        unknown: u64,
        ours: &BucketSums,
    ) -> Option<DigestVerdict> {
        let followed = self.follows(conn);
        let mut cmp = self
            .compare
            .filter(|c| followed && c.conn == conn && c.pos == pos && ours.pos() == pos)?;
        for (i, &t) in theirs.iter().enumerate() {
            let b = first + i;
            if b < BUCKETS && unknown & (1 << i) == 0 && t != ours.sum(b) {
                fingerprint::add(&mut cmp.differ, b);
            }
        }
        cmp.chunks += 1;
        if usize::from(cmp.chunks) * BUCKETS_PER_CHUNK < BUCKETS {
            self.compare = Some(cmp);
            return None;
        }
        self.compare = None;
        self.awaiting_digest = false;
        // Differences count as repairs after a resume until one check
        // finds none (a repair cut short by another switch of masters
        // leaves them for the next digest).
        let after_resume = self.resumed_across;
        let mut differ = cmp.differ;
        let n = fingerprint::count(&differ);
        if n == 0 {
            if cmp.whole_ok {
                self.resumed_across = false;
                return Some(DigestVerdict::Matched);
            }
            if cmp.partial {
                return Some(DigestVerdict::Inconclusive);
            }
            // The whole-table digests differ but no bucket sum does: the
            // sums collided; only everything is sure to repair it.
            differ = fingerprint::ALL;
        }
        // A new repair round gets its own retry of entries whose content
        // differed (a retry cut short by a switch of masters left the flag
        // set, and the next round's differing entries were deleted and
        // never asked for again).
        self.repair.new_round();
        Some(DigestVerdict::Differ {
            buckets: differ,
            n,
            after_resume,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);

    fn at(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    fn pos(epoch: u64, seq: u64) -> Position {
        Position { epoch, seq }
    }

    fn set(buckets: &[usize]) -> BucketSet {
        let mut s = [0; BUCKETS / 8];
        for &b in buckets {
            fingerprint::add(&mut s, b);
        }
        s
    }

    /// Feeds a whole digest's chunks; `differ`: buckets whose sums differ.
    fn digest(
        s: &mut SlaveSync,
        conn: ConnId,
        p: Position,
        whole_ok: bool,
        differ: &[usize],
    ) -> Option<DigestVerdict> {
        let mut ours = BucketSums::EMPTY;
        ours.reset(p);
        s.tables_digested(conn, p, whole_ok, false, 10);
        let mut verdict = None;
        for first in (0..BUCKETS).step_by(BUCKETS_PER_CHUNK) {
            let mut theirs = [0u64; BUCKETS_PER_CHUNK];
            for &b in differ.iter().filter(|&&b| (first..first + 64).contains(&b)) {
                theirs[b - first] = 1;
            }
            assert_eq!(verdict, None, "only the last chunk concludes");
            verdict = s.bucket_sums(conn, p, first, &theirs, 0, &ours);
        }
        verdict
    }

    #[test]
    fn a_resume_where_we_asked_owes_nothing() {
        let mut s = SlaveSync::new();
        s.follow(A);
        s.snapshot_begins(A, pos(7, 0), true, None);
        s.reached(A, pos(7, 3));
        s.delta_applied();
        assert_eq!(s.applied(), pos(7, 4));
        s.resumed(A, pos(7, 4));
        assert!(!s.repairing() && !s.resumed_across());
        assert!(s.synced_with(A));
    }

    #[test]
    fn a_resume_across_epochs_or_a_snapshot_cut_short_owes_a_repair() {
        let mut s = SlaveSync::new();
        s.left_master(pos(3, 9));
        s.resumed(B, pos(8, 2));
        assert!(s.repairing() && s.resumed_across());
        assert_eq!(
            (s.applied(), s.following().map(|f| f.conn)),
            (pos(8, 2), Some(B))
        );

        let mut s = SlaveSync::new();
        s.follow(A);
        s.snapshot_begins(A, pos(7, 0), true, None);
        s.resumed(A, pos(7, 0));
        assert!(s.repairing(), "part of a snapshot, nothing swept");
        assert!(!s.receiving());
    }

    #[test]
    fn a_full_snapshot_supersedes_what_was_owed_and_a_repair_keeps_our_place() {
        let mut s = SlaveSync::new();
        s.reached(A, pos(4, 4));
        s.owe_repair();
        s.snapshot_begins(A, pos(4, 9), false, Some(set(&[1])));
        assert_eq!(s.applied(), pos(4, 4), "a repair keeps our position");
        assert!(s.repairing());
        s.snapshot_begins(A, pos(4, 9), true, None);
        assert_eq!(s.applied(), Position::NONE);
        assert!(!s.repairing());
        assert!(s.receiving_from(A) && !s.receiving_from(B));
        assert!(!s.conn_gone(A), "not followed");
        assert!(!s.receiving());
    }

    #[test]
    fn following_another_master_forgets_the_repair_asked_of_the_first() {
        let mut s = SlaveSync::new();
        s.follow(A);
        s.repair_requested(at(1));
        s.follow(A);
        assert!(s.repairing(), "the same master still owes it");
        s.follow(B);
        assert!(!s.repairing());
    }

    #[test]
    fn asking_another_master_keeps_the_repair_owed() {
        let mut s = SlaveSync::new();
        s.follow(A);
        s.repair_requested(at(1));
        s.asking(B, at(2));
        assert!(s.repairing(), "our tables still differ");
        assert!(!s.synced_with(B) && s.follows(B));
        assert_eq!(s.reask_at(), Some(at(2).add(REASK)));
        assert_eq!(s.reask_due(at(3)), None);
        assert_eq!(s.reask_due(at(7)), Some(B));
        s.follow(B);
        assert_eq!(s.reask_at(), None);
        // A digest clears it only once compared.
        assert!(s.digest_arrives(at(8)));
        assert!(s.repairing());
        assert_eq!(
            digest(&mut s, B, Position::NONE, true, &[]),
            Some(DigestVerdict::Matched)
        );
        assert!(!s.repairing());
    }

    #[test]
    fn digests_wait_for_a_repair_on_its_way_but_not_forever() {
        let mut s = SlaveSync::new();
        s.follow(A);
        s.repair_requested(at(10));
        assert!(!s.digest_arrives(at(20)));
        assert!(s.digest_arrives(at(10).add(REPAIR_PATIENCE)));
        assert!(!s.repairing());
    }

    #[test]
    fn differences_after_a_resume_are_repairs_until_a_digest_matches() {
        let mut s = SlaveSync::new();
        s.follow(A);
        s.owe_repair();
        let p = pos(5, 5);
        assert_eq!(
            digest(&mut s, A, p, false, &[3, 200]),
            Some(DigestVerdict::Differ {
                buckets: set(&[3, 200]),
                n: 2,
                after_resume: true
            })
        );
        assert!(s.resumed_across(), "until one check finds none");
        assert_eq!(
            digest(&mut s, A, p, true, &[]),
            Some(DigestVerdict::Matched)
        );
        assert!(!s.resumed_across());
        assert!(matches!(
            digest(&mut s, A, p, true, &[9]),
            Some(DigestVerdict::Differ {
                after_resume: false,
                ..
            })
        ));
    }

    #[test]
    fn colliding_sums_repair_everything_and_a_partial_digest_concludes_nothing() {
        let mut s = SlaveSync::new();
        s.follow(A);
        let p = pos(5, 5);
        assert_eq!(
            digest(&mut s, A, p, false, &[]),
            Some(DigestVerdict::Differ {
                buckets: fingerprint::ALL,
                n: 0,
                after_resume: false
            })
        );
        let mut ours = BucketSums::EMPTY;
        ours.reset(p);
        s.tables_digested(A, p, false, true, 0);
        let mut v = None;
        for first in (0..BUCKETS).step_by(BUCKETS_PER_CHUNK) {
            v = s.bucket_sums(A, p, first, &[0; BUCKETS_PER_CHUNK], 0, &ours);
        }
        assert_eq!(v, Some(DigestVerdict::Inconclusive));
    }

    #[test]
    fn chunks_of_another_master_or_position_are_ignored() {
        let mut s = SlaveSync::new();
        s.follow(A);
        let p = pos(5, 5);
        let mut ours = BucketSums::EMPTY;
        ours.reset(p);
        s.tables_digested(A, p, true, false, 0);
        let chunk = [0; BUCKETS_PER_CHUNK];
        assert_eq!(s.bucket_sums(B, p, 0, &chunk, 0, &ours), None);
        assert_eq!(s.bucket_sums(A, pos(5, 6), 0, &chunk, 0, &ours), None);
        // Switching masters drops the comparison.
        s.asking(B, at(1));
        s.follow(B);
        for first in (0..BUCKETS).step_by(BUCKETS_PER_CHUNK) {
            assert_eq!(s.bucket_sums(A, p, first, &chunk, 0, &ours), None);
            assert_eq!(s.bucket_sums(B, p, first, &chunk, 0, &ours), None);
        }
        // Unknown buckets do not differ.
        s.tables_digested(B, p, true, false, 0);
        let mut v = None;
        for first in (0..BUCKETS).step_by(BUCKETS_PER_CHUNK) {
            v = s.bucket_sums(B, p, first, &[1; BUCKETS_PER_CHUNK], u64::MAX, &ours);
        }
        assert_eq!(v, Some(DigestVerdict::Matched));
    }

    #[test]
    fn a_sweep_with_stale_entries_asks_again_and_owes_a_repair() {
        let mut s = SlaveSync::new();
        s.follow(A);
        s.snapshot_begins(A, pos(2, 0), true, None);
        s.repair_plan().stale_entry(4);
        let after = s.sweep_ended(A, pos(2, 8), None, 10, 100, at(1));
        assert_eq!(after, AfterSweep::RetryStale(set(&[4])));
        assert_eq!(s.applied(), pos(2, 8));
        assert!(!s.receiving() && s.resumed_across() && s.repairing());
        let after = s.sweep_ended(A, pos(2, 9), Some(set(&[4])), 1, 100, at(2));
        assert_eq!(after, AfterSweep::Done { overflowed: false });
        assert!(!s.repairing());
    }

    #[test]
    fn an_overflowed_sweep_is_repaired_in_batches() {
        let mut s = SlaveSync::new();
        s.follow(A);
        s.repair_plan().sweep_starts(true, 50, true);
        s.repair_plan().master_entries(2560);
        let after = s.sweep_ended(A, pos(2, 8), None, 50, 50, at(1));
        assert_eq!(after, AfterSweep::Done { overflowed: true });
        assert!(s.resumed_across());
        let (_, n) = s.next_repair_batch(Some(50), at(2)).unwrap();
        assert_eq!(n, 5);
        assert!(!s.digest_arrives(at(3)), "the batch is on its way");
    }

    #[test]
    fn the_newest_claim_is_when_a_peer_became_master() {
        let mut s = SlaveSync::new();
        s.peer_announced(0, at(1), true, false);
        s.peer_announced(0, at(2), true, true);
        assert_eq!(s.claim(0), Some(at(1)));
        s.peer_announced(0, at(3), false, true);
        assert_eq!(s.claim(0), None);
        s.peer_announced(MAX_PEERS, at(3), true, false);
        assert_eq!(s.claim(MAX_PEERS), None);
    }

    #[test]
    fn the_followed_master_moves_with_its_session_and_goes_with_it() {
        let mut s = SlaveSync::new();
        s.follow(A);
        s.conn_moved(B, A);
        s.conn_moved(A, B);
        assert!(s.synced_with(B));
        s.master_stepped_down(A);
        assert!(s.follows(B));
        assert!(s.conn_gone(B));
        assert_eq!(s.following(), None);
        s.follow(A);
        s.snapshot_begins(A, pos(1, 0), false, None);
        s.leave(A);
        assert!(!s.receiving() && s.following().is_none());
    }

    #[test]
    fn a_legacy_slave_remembers_its_source_across_a_reload() {
        let mut s = SlaveSync::new();
        s.legacy_applied(Some(2));
        s.peers_moved(&[Some(PeerIndex(2)), None, Some(PeerIndex(0))]);
        assert_eq!(s.legacy_source(), Some(0));
        s.peers_moved(&[None, Some(PeerIndex(1))]);
        assert_eq!(s.legacy_source(), None, "the peer was removed");
        s.legacy_applied(Some(1));
        s.protocol_changed();
        assert_eq!(s.legacy_source(), None);
        s.legacy_follow(A);
        assert!(s.legacy_prod(at(1)));
        assert!(!s.legacy_prod(at(2)));
        assert!(s.legacy_prod(at(1).add(REASK)));
        s.legacy_drop_master();
        assert!(!s.legacy_prod(at(20)), "no one to prod");
    }
}
