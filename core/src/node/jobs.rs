//! Work the node does over a whole kernel dump: the master's snapshots are
//! per connection (see `master`), the rest is here — the slave's sweep
//! after a full snapshot, the slave's digest check, and the master's
//! periodic digest. One such job runs at a time.

use super::outseq::SeqTable;
use crate::crypto::Crypto;
use crate::ctl::Ctl;
use crate::dialect::{Dialect, Identity, IDENTITY_MAX};
use crate::random::Random;
use crate::state::Position;
use crate::time::Instant;

use super::conn::Feed;
use super::digest::MultisetDigest;
use super::event::{ConnId, DumpFlow, DumpId, DumpOp, Event, Table};
use super::fingerprint::{self, siphash, BucketSet, BUCKETS, CONTENT_KEY};
use super::machine::Node;
use super::marks::{MarkStore, MarkVerdict};
use super::repair::AfterSweep;
use super::slave::DigestVerdict;

/// Bytes past a dump record's length that the working buffers are wiped
/// to after it (see [`Node::handle_dump_entry`]).
const WIPE_MARGIN: usize = 64;

/// The mark content of a bundle a snapshot grouped (its identity is the
/// X_GRPSPIS in canonical form, pid and seq zero).
pub(super) const GROUPED: &[u8] = b"grouped";

/// What a dump job is for.
// `Check` holds the master's digest (a `Ctl`, large for its `Buckets`
// variant); there is one job at a time, inside the node.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(super) enum JobKind {
    /// Slave: delete what the snapshot from `conn` did not contain (in
    /// `buckets`, or everywhere), then continue its stream at `pos`.
    Sweep {
        conn: ConnId,
        pos: Position,
        buckets: Option<BucketSet>,
    },
    /// Slave: compare our tables with the master's digest at `pos`.
    Check {
        conn: ConnId,
        want: Ctl,
        sa: MultisetDigest,
        flow: MultisetDigest,
    },
    /// Master: compute the digest to announce at `start`.
    Announce {
        start: Position,
        sa: MultisetDigest,
        flow: MultisetDigest,
    },
    /// New master: move every outbound SA's sequence number past the last
    /// one carried (the SADB only); `moved` so far.
    SeqJump { moved: u32, exhausted: u32 },
}

/// The dump job in progress.
#[derive(Debug, Clone)]
pub(super) enum Job {
    None,
    /// Waiting for our PF_KEY queue to drain, so the dump sees every write.
    Drain(JobKind),
    /// Reading a dump.
    Dump {
        kind: JobKind,
        dump: DumpId,
        table: Table,
        paused: bool,
    },
}

impl Job {
    fn kind(&self) -> Option<&JobKind> {
        match self {
            Job::None => None,
            Job::Drain(k) | Job::Dump { kind: k, .. } => Some(k),
        }
    }

    /// Whether the job needs `conn`'s stream held still.
    pub fn holds(&self, conn: ConnId) -> bool {
        match self.kind() {
            Some(JobKind::Sweep { conn: c, .. }) | Some(JobKind::Check { conn: c, .. }) => {
                *c == conn
            }
            _ => false,
        }
    }

    /// What the job is, for statistics.
    pub fn name(&self) -> Option<&'static str> {
        self.kind().map(job_name)
    }

    /// Whether a sweep is pending or running.
    pub fn is_sweep(&self) -> bool {
        matches!(self.kind(), Some(JobKind::Sweep { .. }))
    }
}

/// The bucket of an SA (the next SA of a bundle, which no record names
/// as its own).
pub(super) fn sa_bucket<D: Dialect>(d: &D, k: D::SaKey) -> usize {
    let mut key = [0u8; IDENTITY_MAX];
    let n = d.identity_bytes(&Identity::Sa(k), &mut key);
    fingerprint::bucket(&key[..n])
}

/// The canonical form of the request that groups the bundle `record`
/// starts (writer id and sequence zero): what a slave's marks and both
/// sides' digests know a bundle by.
pub(super) fn group_form<D: Dialect>(d: &D, record: &[u8], out: &mut [u8]) -> Option<usize> {
    let n = d.group_request(record, out)?;
    d.stamp(&mut out[..n], 0, 0);
    Some(n)
}

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect> Node<'a, C, R, M, D> {
    /// A dump whose records the node wants now, other than those in `skip`
    /// (the caller has none of theirs at hand yet). Feed it with
    /// [`handle_dump_entry`](Self::handle_dump_entry) until that returns
    /// [`DumpFlow::Pause`] or the records run out
    /// ([`handle_dump_end`](Self::handle_dump_end)). A paused dump is named
    /// again once its consumer has room.
    pub fn poll_dump(&self, skip: &[DumpId]) -> Option<DumpId> {
        let feeds = self.conns.iter().filter_map(|c| match c.feed() {
            Feed::Snapshot {
                dump,
                paused: false,
                ..
            } => Some(dump),
            _ => None,
        });
        let job = match self.job {
            Job::Dump {
                dump,
                paused: false,
                ..
            } => Some(dump),
            _ => None,
        };
        feeds.chain(job).find(|d| !skip.contains(d))
    }

    /// One record of a dump the node asked for. Returns whether to go on.
    pub fn handle_dump_entry(&mut self, _now: Instant, dump: DumpId, record: &[u8]) -> DumpFlow {
        let flow = self.dump_entry(dump, record);
        // The record's conversions (an ADD, its canonical form, a DELETE,
        // an X_GRPSPIS) hold its keys. Each keeps a subset of the record's
        // extensions (`pfkey::build::rebuild`), an X_GRPSPIS adds one of 8
        // bytes, and a failed one stops short of that: what they wrote
        // lies within the record's length and a margin. Whole buffers
        // would cost three 4 KiB memsets per entry of a snapshot.
        self.scratch.wipe_first(record.len() + WIPE_MARGIN);
        self.flush_parts();
        flow
    }

    fn dump_entry(&mut self, dump: DumpId, record: &[u8]) -> DumpFlow {
        if let Some((conn, table)) = self.snapshot_owner(dump) {
            return self.snapshot_entry(conn, table, record);
        }
        let table = match &self.job {
            Job::Dump { dump: d, table, .. } if *d == dump => *table,
            _ => {
                self.push_event(Event::Dump {
                    dump,
                    op: DumpOp::Cancel,
                });
                return DumpFlow::Pause;
            }
        };
        if matches!(
            self.job,
            Job::Dump {
                kind: JobKind::SeqJump { .. },
                ..
            }
        ) {
            return self.seq_jump_entry(record);
        }
        if D::CARRIES_SEQ
            && table == Table::Sadb
            && matches!(
                self.job,
                Job::Dump {
                    kind: JobKind::Announce { .. },
                    ..
                }
            )
        {
            // A digest round refreshes the slaves' outbound numbers.
            if let Some((sa, n)) = self.dialect.record_seq(record) {
                self.carry_seq(sa, n);
            }
        }
        let super::scratch::Scratch {
            msg: buf,
            canon,
            out: delete,
        } = &mut *self.scratch;
        let Ok(n) = self.dialect.dump_to_request(table, record, buf) else {
            return DumpFlow::More;
        };
        let entry = &buf[..n];
        let scope = Self::scope(self.policy, &self.peer_addrs, &self.settings);
        if !self.dialect.syncs(entry, &scope) {
            return DumpFlow::More;
        }
        let pid = self.settings.pid;
        let dialect = &self.dialect;
        match &mut self.job {
            Job::Dump {
                kind: JobKind::Sweep { buckets, .. },
                ..
            } => {
                let mut key = [0u8; IDENTITY_MAX];
                let Some(k) = dialect.key(entry, &mut key) else {
                    return DumpFlow::More;
                };
                if buckets
                    .is_some_and(|set| !fingerprint::has(&set, fingerprint::bucket(&key[..k])))
                {
                    // A repair covers only its buckets.
                    return DumpFlow::More;
                }
                // Computed only if the snapshot had this identity. The
                // scratch is moved out of the closure so that the slice it
                // returns outlives the call.
                let content = move || {
                    let canon = { canon };
                    let c = dialect.digest_input(entry, canon).ok()?;
                    canon.get(..c)
                };
                match self.marks.check_with(&key[..k], content) {
                    MarkVerdict::Keep if table == Table::Sadb => {
                        // A grouping of ours that the master's snapshot
                        // did not send (its bundle pass sends every
                        // grouping it holds, of the buckets asked for):
                        // ADD cannot undo a grouping, so the SA goes and
                        // is asked for again (seed 223026619: a slave kept
                        // bundles a master lost when it took over
                        // mid-snapshot). A grouping the master skipped
                        // because the stream brings it is asked for again
                        // too, and then sent.
                        let foreign = dialect.group_of(record).is_some()
                            && group_form(dialect, record, delete).is_some_and(|g| {
                                self.marks.check(&delete[..g], GROUPED) == MarkVerdict::Stale
                            });
                        #[cfg(feature = "planted-bugs")]
                        let foreign = foreign && !self.bugs.keep_foreign_groups;
                        if !foreign {
                            return DumpFlow::More;
                        }
                        self.slave
                            .repair_plan()
                            .stale_entry(fingerprint::bucket(&key[..k]))
                    }
                    MarkVerdict::Keep | MarkVerdict::Unknown => return DumpFlow::More,
                    MarkVerdict::Stale => {}
                    // The snapshot's ADD of it was refused (EEXIST): delete
                    // it and ask for it again.
                    MarkVerdict::Differs => self
                        .slave
                        .repair_plan()
                        .stale_entry(fingerprint::bucket(&key[..k])),
                }
                let seq = self.pfkey_seq.next();
                if let Ok(d) = dialect.delete_request(entry, pid, seq, delete) {
                    if self.pfkeyq.push_with(&delete[..d], |_| {}) {
                        self.counters.swept += 1;
                    }
                }
                if self.pfkeyq.has_room_for_any() {
                    DumpFlow::More
                } else {
                    if let Job::Dump { paused, .. } = &mut self.job {
                        *paused = true;
                    }
                    DumpFlow::Pause
                }
            }
            Job::Dump {
                kind: JobKind::Check { sa, flow, .. } | JobKind::Announce { sa, flow, .. },
                ..
            } => {
                if let Ok(c) = dialect.digest_input(entry, canon) {
                    match table {
                        Table::Sadb => sa.add(&self.crypto, &canon[..c]),
                        Table::Spd => flow.add(&self.crypto, &canon[..c]),
                    }
                    let mut key = [0u8; IDENTITY_MAX];
                    if let Some(k) = dialect.key(entry, &mut key) {
                        let b = fingerprint::bucket(&key[..k]);
                        let h = siphash(CONTENT_KEY, &[&canon[..c]]);
                        self.sums.add(b, h);
                        // The bundle an SA starts counts too, in its bucket:
                        // a slave that lost the grouping differs there, and
                        // the repair's bundle pass re-groups it.
                        // It counts in the next SA's bucket too: a repair
                        // re-groups only when it covers both (see
                        // `snapshot_entry`), and a slave that differs in
                        // the grouping differs in both.
                        let group = match table {
                            Table::Sadb => dialect.group_of(record),
                            Table::Spd => None,
                        };
                        let nb = group.flatten().map(|k| sa_bucket(dialect, k));
                        let g = group.and_then(|_| group_form(dialect, record, canon));
                        if let (Some(g), Some(nb)) = (g, nb) {
                            sa.add(&self.crypto, &canon[..g]);
                            let h = siphash(CONTENT_KEY, &[&canon[..g]]);
                            self.sums.add(b, h);
                            self.sums.add(nb, h);
                        }
                    }
                }
                DumpFlow::More
            }
            _ => DumpFlow::More,
        }
    }

    /// The dump has no more records (or could not be taken: then `ok` is
    /// false and the work it served is abandoned).
    pub fn handle_dump_end(&mut self, now: Instant, dump: DumpId, ok: bool) {
        if let Some((conn, _)) = self.snapshot_owner(dump) {
            if ok {
                self.snapshot_table_end(now, conn);
            } else {
                self.close_conn(
                    now,
                    conn,
                    Some("kernel dump failed; snapshot abandoned"),
                    true,
                );
            }
            self.flush_parts();
            return;
        }
        let (table, matches) = match &self.job {
            Job::Dump { dump: d, table, .. } => (*table, *d == dump),
            _ => (Table::Sadb, false),
        };
        if !matches {
            return;
        }
        if !ok {
            log::warn!(
                "kernel dump failed; abandoning {:?}",
                self.job.kind().map(job_name)
            );
            self.job = Job::None;
            self.wake_readers();
            self.flush_parts();
            return;
        }
        if let Job::Dump {
            kind: JobKind::SeqJump { moved, exhausted },
            ..
        } = self.job
        {
            self.job = Job::None;
            self.finish_seq_jump(moved, exhausted);
            self.wake_readers();
            self.flush_parts();
            return;
        }
        if table == Table::Sadb {
            let next = self.alloc_dump_id();
            if let Job::Dump {
                dump,
                table,
                paused,
                ..
            } = &mut self.job
            {
                *dump = next;
                *table = Table::Spd;
                *paused = false;
            }
            self.push_event(Event::Dump {
                dump: next,
                op: DumpOp::Start(Table::Spd),
            });
            self.flush_parts();
            return;
        }
        let job = core::mem::replace(&mut self.job, Job::None);
        if let Job::Dump { kind, .. } = job {
            match kind {
                JobKind::Sweep { conn, pos, buckets } => self.finish_sweep(now, conn, pos, buckets),
                JobKind::Check {
                    conn,
                    want,
                    sa,
                    flow,
                } => self.finish_check(now, conn, want, &sa, &flow),
                JobKind::Announce { start, sa, flow } => {
                    self.announce_digest(now, start, &sa, &flow)
                }
                JobKind::SeqJump { moved, exhausted } => self.finish_seq_jump(moved, exhausted),
            }
        }
        self.wake_readers();
        self.flush_parts();
    }

    /// The connection whose snapshot reads `dump`, and which table.
    fn snapshot_owner(&self, dump: DumpId) -> Option<(ConnId, Table)> {
        self.conns.iter().find_map(|c| match c.feed() {
            Feed::Snapshot { dump: d, table, .. } if d == dump => Some((c.id(), table)),
            _ => None,
        })
    }

    /// Starts a job's first dump (the SADB; the SPD follows).
    pub(super) fn start_job(&mut self, kind: JobKind) {
        let dump = self.alloc_dump_id();
        self.job = Job::Dump {
            kind,
            dump,
            table: Table::Sadb,
            paused: false,
        };
        self.push_event(Event::Dump {
            dump,
            op: DumpOp::Start(Table::Sadb),
        });
    }

    /// SnapEnd of a sweeping snapshot: hold the stream, drain, then sweep
    /// (`buckets`: only those of a repair).
    #[inline(never)]
    pub(super) fn start_sweep(
        &mut self,
        now: Instant,
        conn: ConnId,
        pos: Position,
        buckets: Option<BucketSet>,
    ) {
        self.job_cancel();
        self.slave.repair_plan().sweep_starts(
            buckets.is_none(),
            self.marks.inserted(),
            self.marks.overflowed(),
        );
        log::debug!(
            "snapshot of {} entries received; sweeping what it did not hold",
            self.marks.inserted()
        );
        if self.marks.overflowed() {
            self.counters.sweeps_skipped += 1;
            let (got, limit) = (
                self.marks.inserted(),
                self.marks.limit().unwrap_or(usize::MAX),
            );
            match buckets.map(|b| fingerprint::count(&b)) {
                None => log::warn!(
                    "snapshot of {got} entries overflowed the mark storage ({limit} marks): nothing swept; repairing bucket by bucket"
                ),
                Some(1) => log::warn!(
                    "one bucket holds {got} entries, more than the mark storage's {limit} marks: its stale entries cannot be swept"
                ),
                Some(n) => log::info!(
                    "repair of {n} buckets brought {got} entries, more than the mark storage's {limit} marks; asking again in smaller batches"
                ),
            }
        }
        self.job = Job::Drain(JobKind::Sweep { conn, pos, buckets });
        self.after_queue_drained(now);
    }

    /// A master digest arrived: check it if we are exactly at its position.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn start_check(
        &mut self,
        now: Instant,
        conn: ConnId,
        pos: Position,
        sas: u32,
        flows: u32,
        sa_digest: [u8; 32],
        flow_digest: [u8; 32],
        partial: bool,
    ) {
        // A repair asked for and not yet here would be found again; one
        // the master never answered is forgotten after a while.
        if !self.slave.digest_arrives(now) {
            log::debug!(
                "digest at {}:{} skipped: a repair is on its way",
                pos.epoch,
                pos.seq
            );
            return;
        }
        // Only the master we follow speaks for our position: in a split
        // brain the other one digests its own tables, and a match with
        // those would pass for a match with ours.
        let followed = self.slave.follows(conn);
        let applied = self.slave.applied();
        if !followed || pos != applied || self.slave.receiving() || !matches!(self.job, Job::None) {
            log::debug!(
                "digest at {}:{} skipped (we are at {}:{})",
                pos.epoch,
                pos.seq,
                applied.epoch,
                applied.seq
            );
            return;
        }
        let want = Ctl::Digest {
            pos,
            sas,
            flows,
            sa_digest,
            flow_digest,
            partial,
        };
        self.sums.reset(pos);
        self.job = Job::Drain(JobKind::Check {
            conn,
            want,
            sa: MultisetDigest::new(),
            flow: MultisetDigest::new(),
        });
        self.after_queue_drained(now);
    }

    /// Progress once the kernel queue shrank: start a drained job's dump,
    /// resume a paused one, and let paused readers go on.
    pub(super) fn after_queue_drained(&mut self, _now: Instant) {
        match &mut self.job {
            Job::Drain(_) if self.pfkeyq.is_empty() => {
                if let Job::Drain(kind) = core::mem::replace(&mut self.job, Job::None) {
                    self.start_job(kind);
                }
            }
            Job::Dump { paused, .. } if *paused && self.pfkeyq.has_room_for_any() => {
                *paused = false;
            }
            _ => {}
        }
        self.wake_readers();
    }

    fn finish_sweep(
        &mut self,
        now: Instant,
        conn: ConnId,
        pos: Position,
        buckets: Option<BucketSet>,
    ) {
        self.counters.sweeps += 1;
        let limit = self.marks.limit().unwrap_or(usize::MAX);
        let inserted = self.marks.inserted();
        match self
            .slave
            .sweep_ended(conn, pos, buckets, inserted, limit, now)
        {
            AfterSweep::RetryStale(stale) => {
                // Entries whose content differed were deleted; the
                // snapshot's ADDs of them were refused while they existed.
                // Once more, for their buckets. Known differences: if this
                // retry is cut short (another master claims us), the next
                // digest's differences are repairs, not a lost delta.
                log::info!(
                    "entries differed from the master's in {} buckets; asking for them again",
                    fingerprint::count(&stale)
                );
                self.send_ctl_or_close(
                    now,
                    conn,
                    &Ctl::Repair {
                        pos,
                        buckets: stale,
                    },
                );
                return;
            }
            // The marks overflowed (the platform's store is small): the
            // sweep deleted nothing, and is redone in batches of buckets
            // that fit, one repair after the other. What the batches find
            // is the overflow's debt, not loss.
            AfterSweep::Done { .. } => {}
        }
        if self.next_repair_batch(now, conn, pos) {
            return;
        }
        let completes_snapshot = self
            .slave
            .repair_plan()
            .completes_snapshot(buckets.is_none());
        if completes_snapshot {
            self.snapshot_complete(now, conn, true);
        }
        match buckets {
            None => {}
            Some(b) => {
                self.counters.repairs_done += 1;
                if let Some((p, _)) = self.slot_of(conn) {
                    if let Some(x) = self.peer_stats_mut(p).filter(|_| !completes_snapshot) {
                        x.snapshot_receive_ended(now, true);
                    }
                    log::info!(
                        "{} buckets repaired from master {}",
                        fingerprint::count(&b),
                        self.peer_addrs[p]
                    );
                }
            }
        }
    }

    /// Asks for the next batch of queued buckets that fits the mark storage;
    /// `false` when the queue is empty.
    fn next_repair_batch(&mut self, now: Instant, conn: ConnId, pos: Position) -> bool {
        let limit = self.marks.limit();
        let Some((set, taken)) = self.slave.next_repair_batch(limit, now) else {
            return false;
        };
        log::info!(
            "asking for {taken} buckets ({} more to go) that fit our mark storage",
            self.slave.repair_plan().queued()
        );
        self.send_ctl_or_close(now, conn, &Ctl::Repair { pos, buckets: set });
        true
    }

    /// Our own tables are digested: compare the whole-table digests now,
    /// the bucket sums as the master's chunks arrive.
    fn finish_check(
        &mut self,
        _now: Instant,
        conn: ConnId,
        want: Ctl,
        sa: &MultisetDigest,
        flow: &MultisetDigest,
    ) {
        let Ctl::Digest {
            pos,
            sas,
            flows,
            sa_digest,
            flow_digest,
            partial,
        } = want
        else {
            return;
        };
        let (sd, sn) = sa.finish();
        let (fd, fn_) = flow.finish();
        let whole_ok = sd == sa_digest && fd == flow_digest && sn == sas && fn_ == flows;
        self.slave
            .tables_digested(conn, pos, whole_ok, partial, sas.saturating_add(flows));
    }

    /// One chunk of the master's bucket sums at `pos`; after the last, ask
    /// for the buckets that differ.
    #[inline(never)]
    pub(super) fn compare_buckets(
        &mut self,
        now: Instant,
        conn: ConnId,
        pos: Position,
        first: usize,
        sums: &[u64],
        unknown: u64,
    ) {
        let verdict = self
            .slave
            .bucket_sums(conn, pos, first, sums, unknown, &self.sums);
        let (mut differ, n, after_resume) = match verdict {
            None | Some(DigestVerdict::Inconclusive) => return,
            Some(DigestVerdict::Matched) => {
                self.counters.digests_matched += 1;
                return;
            }
            Some(DigestVerdict::Differ {
                buckets,
                n,
                after_resume,
            }) => (buckets, n, after_resume),
        };
        if after_resume {
            self.counters.resume_repairs += 1;
            log::info!(
                "after resuming with a new master our tables differ in {n} of {BUCKETS} buckets; asking for them"
            );
        } else {
            self.counters.digest_mismatches += 1;
            log::warn!(
                "our tables differ from the master's in {n} of {BUCKETS} buckets; asking for them again"
            );
        }
        if self.marks.limit().is_none() && fingerprint::count(&differ) > BUCKETS / 2 {
            // Little in common: one full snapshot is cheaper than many repairs.
            differ = fingerprint::ALL;
        }
        if self.marks.limit().is_some() {
            // Storage for a few marks only: repair in batches that fit.
            self.slave.repair_plan().queue(differ);
            self.next_repair_batch(now, conn, pos);
            return;
        }
        self.slave.repair_requested(now);
        self.send_ctl_or_close(
            now,
            conn,
            &Ctl::Repair {
                pos,
                buckets: differ,
            },
        );
    }

    /// We became master: read the SADB and move every outbound SA's
    /// sequence number past the last one carried (a dialect that carries
    /// none reads nothing).
    pub(super) fn start_seq_jump(&mut self) {
        #[cfg(feature = "planted-bugs")]
        if self.bugs.no_seq_jump {
            return;
        }
        if D::CARRIES_SEQ {
            self.start_job(JobKind::SeqJump {
                moved: 0,
                exhausted: 0,
            });
        }
    }

    /// One SADB record of the takeover's dump: its jump, queued.
    fn seq_jump_entry(&mut self, record: &[u8]) -> DumpFlow {
        let mut key = [0u8; IDENTITY_MAX];
        let carried = self
            .dialect
            .key(record, &mut key)
            .and_then(|k| self.carried.get(&key[..k]));
        let (pid, seq) = (self.settings.pid, self.pfkey_seq.next());
        let buf = &mut self.scratch.msg;
        let res = self
            .dialect
            .seq_jump(record, carried, self.replay_margin, pid, seq, buf);
        let Job::Dump {
            kind: JobKind::SeqJump { moved, exhausted },
            paused,
            ..
        } = &mut self.job
        else {
            return DumpFlow::More;
        };
        match res {
            Ok(Some(n)) => {
                if self.pfkeyq.push_with(&buf[..n], |_| {}) {
                    *moved += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                *exhausted += 1;
                log::warn!("cannot move an outbound SA's sequence number: {e}");
            }
        }
        if self.pfkeyq.has_room_for_any() {
            DumpFlow::More
        } else {
            *paused = true;
            DumpFlow::Pause
        }
    }

    fn finish_seq_jump(&mut self, moved: u32, exhausted: u32) {
        log::info!(
            "moved {moved} outbound SAs' sequence numbers {} past the last carried ({} carried{})",
            self.replay_margin,
            self.carried.len(),
            if exhausted > 0 {
                ", some could not be moved"
            } else {
                ""
            }
        );
        self.carried.clear();
    }

    /// Abandons the current job (cancelling its dump).
    pub(super) fn job_cancel(&mut self) {
        if let Job::Dump { dump, .. } = self.job {
            self.push_event(Event::Dump {
                dump,
                op: DumpOp::Cancel,
            });
        }
        self.job = Job::None;
    }

    /// `conn` closed: a job that served it is abandoned.
    pub(super) fn job_conn_gone(&mut self, conn: ConnId) {
        if self.job.holds(conn) {
            self.job_cancel();
        }
    }
}

fn job_name(k: &JobKind) -> &'static str {
    match k {
        JobKind::Sweep { .. } => "sweep",
        JobKind::Check { .. } => "digest check",
        JobKind::Announce { .. } => "digest",
        JobKind::SeqJump { .. } => "sequence jump",
    }
}
