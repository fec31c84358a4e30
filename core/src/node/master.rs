//! The master's side: forwarding kernel changes through the delta ring,
//! and feeding each slave (snapshot, then the ring) as its buffer drains.

use super::outseq::SeqTable;
use crate::crypto::Crypto;
use crate::ctl::{BucketSet, Ctl, BUCKETS, BUCKETS_PER_CHUNK};
use crate::dialect::{Classified, Dialect, Op, Request, IDENTITY_MAX};
use crate::random::Random;
use crate::state::{FlushMode, Position, RunState};
use crate::time::Instant;
use crate::wire::v2::MAX_PAYLOAD;

use super::conn::{Feed, CTL_RESERVE};
use super::digest::MultisetDigest;
use super::event::{ConnId, DumpFlow, DumpOp, Event, Table};
use super::feed::Regroup;
use super::fingerprint;
use super::fingerprint::BucketSums;
use super::jobs::{Job, JobKind};
use super::machine::Node;
use super::marks::MarkStore;
use super::peer_stats::ErrorKind;
use super::peer_table::PeerIndex;
use super::wipe::wipe;

/// How long after a legacy session comes up the master starts feeding it
/// (the original's `pfkey_snap` timer).
const LEGACY_FEED_DELAY: core::time::Duration = core::time::Duration::from_secs(2);

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect> Node<'a, C, R, M, D> {
    /// A message read from the PF_KEY socket (promiscuous copies of other
    /// processes' requests, and the kernel's replies).
    pub fn handle_pfkey(&mut self, now: Instant, msg: &[u8]) {
        if D::CARRIES_SEQ {
            if let Some((sa, seq)) = self.dialect.outbound_seq(msg) {
                if self.role.state() == RunState::Master {
                    self.carry_seq(sa, seq);
                }
                return;
            }
        }
        let scope = Self::scope(self.policy, &self.peer_addrs, &self.settings);
        let change = match self.dialect.classify(msg, &scope) {
            Classified::Reply => {
                self.kernel_reply(now, msg);
                return;
            }
            _ if self.role.state() != RunState::Master => return,
            Classified::Malformed(e) => {
                log::warn!("malformed promiscuous PF_KEY copy ignored: {e}");
                return;
            }
            Classified::Own => return, // our own write coming back
            Classified::Skip(why) => {
                log::debug!("not forwarding {why}");
                return;
            }
            Classified::Sync(change) => change,
        };
        let buf = &mut self.scratch.msg;
        #[cfg(feature = "planted-bugs")]
        let rewritten = if self.bugs.update_always_add
            && self
                .dialect
                .request(change)
                .is_some_and(|r| r.op == Op::Update)
        {
            self.dialect.dump_to_request(Table::Sadb, change, buf)
        } else {
            self.dialect.forward(change, buf)
        };
        #[cfg(not(feature = "planted-bugs"))]
        let rewritten = self.dialect.forward(change, buf);
        let n = match rewritten {
            Ok(n) => n,
            Err(e) => {
                wipe(&mut buf[..]);
                log::warn!("cannot rewrite UPDATE for the slaves: {e}");
                return;
            }
        };
        let pushed = self.ring.push(&buf[..n]);
        // The ring holds the one copy now.
        wipe(&mut buf[..n]);
        match pushed {
            Ok(_) => self.counters.forwarded += 1,
            Err(e) => {
                log::error!("cannot record a kernel change: {e}");
                return;
            }
        }
        for &id in &self.open_conns() {
            self.pump(now, id);
        }
        self.flush_parts();
    }

    /// Sends an SA's outbound sequence number to every v2 peer that does
    /// not claim MASTER (`CTL_OUTSEQ`), fed yet or not: a slave that has
    /// just stepped down resumes its stream without a snapshot, and must
    /// not miss the numbers its successor sends meanwhile. Not queued
    /// behind a full buffer: the next event carries a later number, the
    /// snapshot a slave is given holds the number of its dump, and every
    /// digest round sends every outbound SA's number again (a slave that
    /// resumed without a snapshot may have missed some: the round after a
    /// resume comes at once).
    pub(super) fn carry_seq(&mut self, sa: D::SaKey, seq: u64) {
        let mut id = [0u8; IDENTITY_MAX];
        let n = self
            .dialect
            .identity_bytes(&crate::dialect::Identity::Sa(sa), &mut id);
        // Kept by the master too: if it steps down and a master that
        // missed these numbers (restarted, cut off) overwrites its copy of
        // the SA, its next takeover still jumps past what it sent itself.
        self.carried.note(&id[..n], seq);
        let ctl = Ctl::OutSeq {
            seq,
            len: n as u8,
            id,
        };
        let mut sent = false;
        let mut skipped = 0u32;
        for p in 0..self.conns.peers() {
            for s in 0..2 {
                let master = self
                    .conns
                    .slot(p, s)
                    .is_some_and(|c| self.peer_state_of(c.id()) == Some(RunState::Master));
                let Some(c) = self.conns.slot_mut(p, s) else {
                    continue;
                };
                if !c.open_v2() || master {
                    continue;
                }
                if !c.feed_has_room() {
                    skipped += 1;
                    continue;
                }
                if c.send_ctl(&self.codec, &mut self.rng, &ctl).is_ok() {
                    sent = true;
                    self.count_out(p);
                }
            }
        }
        if skipped > 0 {
            log::debug!("outbound sequence {seq} not carried to {skipped} busy slaves");
        }
        if sent {
            self.flush_parts();
        }
    }

    /// A non-promiscuous message: log the kernel's complaints about our
    /// writes, and count them against the master whose data they were.
    fn kernel_reply(&mut self, now: Instant, msg: &[u8]) {
        if let Some((r, errno)) = self.dialect.refusal(msg, self.settings.pid) {
            self.kernel_refused(now, r, errno);
        }
    }

    /// The kernel refused one of our writes (its reply, or the write's
    /// error). Some refusals are expected and only counted: a DELETE of
    /// what is gone already, an UPDATE of what is not (yet) here, and a
    /// snapshot's ADD of an SA we hold (the sweep repairs one whose content
    /// differs). The rest are warnings.
    pub(super) fn kernel_refused(&mut self, now: Instant, req: Request, errno: u32) {
        const EEXIST: u32 = 17;
        const ESRCH: u32 = 3;
        if req.op == Op::Delete {
            return;
        }
        // A flow's X_DELFLOW met a snapshot taken after the deletion; a
        // repair's X_GRPSPIS named an SA a later repair batch brings.
        let missing = errno == ESRCH || (req.op == Op::DeletePolicy && errno == D::MISSING_POLICY);
        if matches!(req.op, Op::DeletePolicy | Op::Group) && missing {
            log::debug!("pfkey {} of what we do not hold (ESRCH)", req.name);
            return;
        }
        // An UPDATE (a MOBIKE move) of an SA we lack: a snapshot that
        // already had it moved, or a repair still on its way. The moved
        // SA's new identity may lie in a bucket that repair does not ask
        // for, so a repair is owed until the master's next digest finds
        // what differs (we report ourselves repairing meanwhile).
        if req.op == Op::Update && errno == ESRCH {
            log::debug!("pfkey UPDATE of an SA we do not hold (ESRCH)");
            if !self.legacy {
                self.slave.owe_repair();
            }
            return;
        }
        if req.op == Op::Add && errno == EEXIST {
            self.counters.kernel_exists += 1;
            log::debug!("pfkey ADD of an SA we hold already (EEXIST)");
            return;
        }
        self.counters.kernel_errors += 1;
        if let Some(p) = self.data_source() {
            self.peer_error(now, p, ErrorKind::Kernel, "our kernel refused its data");
        }
        log::warn!("pfkey error ({}): errno {errno}", req.name);
    }

    /// Starts feeding a slave if we are master, it is open, and it announced
    /// a non-master state. `resume` overrides the HELLO's resume position.
    pub(super) fn maybe_start_feed(
        &mut self,
        now: Instant,
        conn: ConnId,
        resume: Option<Position>,
    ) {
        if self.role.state() != RunState::Master {
            return;
        }
        let Some(c) = self.conn(conn) else { return };
        if !c.is_open() || !c.up() || c.feed() != Feed::Idle {
            return;
        }
        match self.peer_state_of(conn) {
            Some(s) if s != RunState::Master => {}
            _ => return,
        }
        if self.legacy {
            // As the original, feed a new session after 2 s: a crossed
            // start has settled by then, so no data goes out on the
            // connection that is dropped or only read.
            let due = self
                .conn(conn)
                .map_or(now, |c| c.opened().add(LEGACY_FEED_DELAY));
            if now < due {
                if let Some(c) = self.conn_mut(conn) {
                    c.delay_feed(due);
                }
                return;
            }
        }
        let resume = resume.or_else(|| {
            self.conn(conn)
                .and_then(|c| c.peer_hello())
                .map(|h| h.resume)
        });
        if !self.legacy {
            if let Some(pos) = resume {
                let cursor = (pos != Position::NONE)
                    .then(|| self.ring.cursor(pos).ok())
                    .flatten();
                if let Some(cursor) = cursor {
                    if let Some(c) = self.conn_mut(conn) {
                        c.stream_from(cursor);
                    }
                    self.send_ctl_or_close(now, conn, &Ctl::Resume(pos));
                    self.counters.ring_resumes += 1;
                    self.pump(now, conn);
                    return;
                }
                if pos != Position::NONE {
                    // In sync with another master (a failover), or too far
                    // behind our ring: resume from now, and let the next
                    // digest (soon) repair what differs bucket by bucket.
                    self.resume_and_repair(now, conn);
                    return;
                }
            }
        }
        self.start_snapshot(now, conn);
    }

    /// Resumes a slave that was in sync with another stream from our head
    /// and brings the next digest forward, so that it is repaired by bucket
    /// instead of taking a full snapshot.
    fn resume_and_repair(&mut self, now: Instant, conn: ConnId) {
        if self.resume_at_head(now, conn) {
            self.pump(now, conn);
        }
    }

    /// [`resume_and_repair`](Self::resume_and_repair) without the pump
    /// (for `pump` itself, which goes on: no recursion). False if a
    /// snapshot was started instead.
    fn resume_at_head(&mut self, now: Instant, conn: ConnId) -> bool {
        let head = self.ring.position();
        let Ok(cursor) = self.ring.cursor(head) else {
            self.start_snapshot(now, conn);
            return false;
        };
        if let Some(c) = self.conn_mut(conn) {
            c.stream_from(cursor);
        }
        self.send_ctl_or_close(now, conn, &Ctl::Resume(head));
        self.counters.resumes_with_repair += 1;
        if let Some((p, _)) = self.slot_of(conn) {
            log::info!(
                "peer {}: resuming from our position; the next digest repairs what differs",
                self.peer_addrs[p]
            );
        }
        self.feed.digest_now(now);
        true
    }

    /// Legacy sessions whose feed delay is over start their feed.
    pub(super) fn legacy_feeds_due(&mut self, now: Instant) {
        let mut due: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        for c in self.conns.iter_mut() {
            if c.take_feed_due(now) {
                let _ = due.push(c.id());
            }
        }
        for &id in &due {
            self.maybe_start_feed(now, id, None);
        }
    }

    /// A v2 slave asked to resume after `pos` (or for a full snapshot).
    #[inline(never)]
    pub(super) fn restart_feed(&mut self, now: Instant, conn: ConnId, pos: Position) {
        if let Some(dump) = self.conn_mut(conn).and_then(|c| c.stop_feed()) {
            self.events_cancel_dump(dump);
        }
        self.counters.resyncs += 1;
        self.maybe_start_feed(now, conn, Some(pos));
    }

    fn events_cancel_dump(&mut self, dump: super::event::DumpId) {
        self.push_event(Event::Dump {
            dump,
            op: DumpOp::Cancel,
        });
    }

    /// Begins a full snapshot to `conn`.
    pub(super) fn start_snapshot(&mut self, now: Instant, conn: ConnId) {
        self.snapshot_from(now, conn, self.ring.position(), None);
    }

    /// A v2 slave asks for the entries of some buckets again (its digest
    /// check found them different): a snapshot of those buckets, inserted
    /// in its stream where it is now; the stream goes on after it.
    #[inline(never)]
    pub(super) fn start_repair(&mut self, now: Instant, conn: ConnId, buckets: BucketSet) {
        let Some(Feed::Stream { cursor }) = self.conn(conn).map(|c| c.feed()) else {
            // A snapshot is under way already; the next digest tells.
            return;
        };
        let all = fingerprint::count(&buckets) == BUCKETS;
        if all {
            if let Some(c) = self.conn_mut(conn) {
                c.drop_feed();
            }
            self.start_snapshot(now, conn);
        } else {
            self.counters.repairs += 1;
            self.snapshot_from(now, conn, cursor.position(), Some(buckets));
        }
    }

    /// A snapshot to `conn` of every entry, or of those in `buckets`, after
    /// which its stream continues after `start`.
    fn snapshot_from(
        &mut self,
        now: Instant,
        conn: ConnId,
        start: Position,
        buckets: Option<BucketSet>,
    ) {
        let dump = self.alloc_dump_id();
        let legacy = self.legacy;
        if legacy && self.flushmode == FlushMode::Startup {
            let mut f = [0u8; 64];
            let seq = self.pfkey_seq.next();
            if let Ok(n) = self.dialect.flush_request(self.settings.pid, seq, &mut f) {
                let res = match self.conn_mut_split(conn) {
                    Some((c, codec, rng)) => c.send_pfkey(codec, rng, &f[..n]),
                    None => return,
                };
                if res.is_err() {
                    self.conn_error(now, conn, ErrorKind::Io, "cannot queue FLUSH");
                    self.close_conn(now, conn, Some("cannot queue FLUSH"), true);
                    return;
                }
                if let Some((p, _)) = self.slot_of(conn) {
                    self.count_out(p);
                }
            }
        } else if !legacy {
            self.send_ctl_or_close(
                now,
                conn,
                &Ctl::SnapBegin {
                    pos: start,
                    sweep: true,
                    expect: self.feed.expect(buckets.as_ref()),
                    buckets,
                },
            );
        }
        let Some((p, s)) = self.slot_of(conn) else {
            return;
        };
        self.feed.snapshot_begins(p, s);
        if let Some(c) = self.conn_mut(conn) {
            c.begin_snapshot(dump, start, buckets);
        }
        if let Some(x) = self.peer_stats_mut(p) {
            x.snapshot_send_started(now, buckets.is_some());
        }
        match buckets {
            None => {
                self.counters.snapshots_started += 1;
                log::info!("peer {}: sending a full snapshot", self.peer_addrs[p]);
            }
            Some(b) => log::info!(
                "peer {}: sending the entries of {} buckets again",
                self.peer_addrs[p],
                fingerprint::count(&b)
            ),
        }
        self.push_event(Event::Dump {
            dump,
            op: DumpOp::Start(Table::Sadb),
        });
    }

    /// Stops every feed (we are no longer master).
    pub(super) fn stop_feeds(&mut self) {
        let mut cancel: heapless::Vec<(super::event::DumpId, PeerIndex), 64> = heapless::Vec::new();
        for c in self.conns.iter_mut() {
            if let Some(dump) = c.stop_feed() {
                let _ = cancel.push((dump, c.peer()));
            }
        }
        for &(d, p) in &cancel {
            if let Some(x) = self.peer_stats_mut(p.0) {
                x.sending_snapshot_since = None;
            }
            self.events_cancel_dump(d);
        }
    }

    /// A connection with its codec and random source, borrowed apart.
    pub(super) fn conn_mut_split(
        &mut self,
        id: ConnId,
    ) -> Option<(
        &mut super::conn::Conn<'a, C>,
        &crate::wire::legacy::LegacyCodec<C>,
        &mut R,
    )> {
        let (p, s) = self.slot_of(id)?;
        let c = self.conns.slot_mut(p, s)?;
        Some((c, &self.codec, &mut self.rng))
    }

    /// Fills `conn`'s send buffer from its feed as far as room allows.
    pub(super) fn pump(&mut self, now: Instant, conn: ConnId) {
        let Some((p, s)) = self.slot_of(conn) else {
            return;
        };
        let mut sent = 0u64;
        loop {
            let Some(c) = self.conns.slot_mut(p, s) else {
                return;
            };
            if !c.is_open() || !c.up() {
                return;
            }
            match c.feed() {
                Feed::Idle => break,
                Feed::Snapshot { .. } => {
                    c.unpause_snapshot_if_room();
                    break;
                }
                Feed::Stream { cursor } => {
                    let after = cursor.position();
                    if c.digest_due_at(after) {
                        // The digest and its bucket sums, together.
                        let chunks = BUCKETS / BUCKETS_PER_CHUNK;
                        let need = (chunks + 1) * (crate::ctl::MAX_LEN + 48) + CTL_RESERVE;
                        if c.room() < need {
                            break;
                        }
                        c.digest_taken();
                        let Some(d) = self.feed.announced().filter(|_| self.sums.pos() == after)
                        else {
                            continue;
                        };
                        let ok = queue_digest(c, &self.codec, &mut self.rng, d, &self.sums, after);
                        if !ok {
                            self.close_conn(now, conn, Some("send buffer full"), true);
                            return;
                        }
                        continue;
                    }
                    if !c.feed_has_room() {
                        break;
                    }
                    // As many records as fit one frame (v2; one each in the
                    // legacy protocol), read from the cursor in constant time.
                    let batch = &mut self.scratch.out[..MAX_PAYLOAD];
                    let mut len = 0;
                    let mut cur = cursor;
                    let mut records = 0u64;
                    let mut fell_behind = None;
                    loop {
                        match self.ring.next(cur) {
                            Ok(Some((next, bytes))) => {
                                #[cfg(feature = "planted-bugs")]
                                let bytes: &[u8] =
                                    if self.bugs.drop_delta && next.position().seq == 5 {
                                        &[]
                                    } else {
                                        bytes
                                    };
                                if len > 0 && len + bytes.len() > MAX_PAYLOAD {
                                    break;
                                }
                                if bytes.len() <= MAX_PAYLOAD {
                                    batch[len..len + bytes.len()].copy_from_slice(bytes);
                                    len += bytes.len();
                                }
                                cur = next;
                                records += 1;
                                if self.legacy {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                fell_behind = Some(e);
                                break;
                            }
                        }
                    }
                    if let (Some(e), 0) = (fell_behind, records) {
                        c.drop_feed();
                        if self.legacy {
                            log::info!(
                                "peer {}: fell behind the delta ring ({e}); full snapshot",
                                self.peer_addrs[p]
                            );
                            self.start_snapshot(now, conn);
                        } else {
                            // What it missed is repaired by bucket: a full
                            // snapshot of a large SADB to a slow slave would
                            // fall behind again.
                            log::info!(
                                "peer {}: fell behind the delta ring ({e})",
                                self.peer_addrs[p]
                            );
                            if self.resume_at_head(now, conn) {
                                continue;
                            }
                        }
                        break;
                    }
                    if records == 0 {
                        break;
                    }
                    let res = if len == 0 {
                        Ok(0)
                    } else if self.legacy {
                        c.send_pfkey(&self.codec, &mut self.rng, &batch[..len])
                    } else {
                        c.send_pfkeys(&self.codec, &mut self.rng, &batch[..len])
                    };
                    wipe(&mut batch[..len]);
                    if let Err(e) = res {
                        log::warn!(
                            "peer {}: cannot send deltas up to {}: {e}",
                            self.peer_addrs[p],
                            cur.position().seq
                        );
                        self.close_conn(now, conn, None, true);
                        return;
                    }
                    c.stream_from(cur);
                    sent += u64::from(len > 0);
                }
            }
        }
        if sent > 0 {
            if let Some(x) = self.table.get_mut(PeerIndex(p)) {
                x.stats.frames_out = x.stats.frames_out.saturating_add(sent);
            }
        }
    }

    /// One dump record for the snapshot of `conn`; what it converted is
    /// wiped after it (the caller's, [`handle_dump_entry`](Node::handle_dump_entry)).
    pub(super) fn snapshot_entry(&mut self, conn: ConnId, table: Table, record: &[u8]) -> DumpFlow {
        let Some((p, s)) = self.slot_of(conn) else {
            return DumpFlow::Pause;
        };
        let pass = if table == Table::Sadb {
            self.feed.regroup(p, s)
        } else {
            Regroup::None
        };
        let group = match table {
            Table::Sadb => self.dialect.group_of(record),
            Table::Spd => None,
        };
        let grouped = group.is_some();
        if pass == Regroup::Pass && (!grouped || self.regroup_unsafe(conn, record)) {
            return DumpFlow::More;
        }
        let buf = &mut self.scratch.msg;
        let conv = match table {
            Table::Sadb if pass == Regroup::Pass => {
                // group_of() said the record starts a bundle.
                match self.dialect.group_request(record, buf) {
                    Some(n) => Ok(n),
                    None => return DumpFlow::More,
                }
            }
            #[cfg(feature = "planted-bugs")]
            _ if self.bugs.snapshot_keeps_counters => self
                .dialect
                .dump_to_request_with_counters(table, record, buf),
            _ => self.dialect.dump_to_request(table, record, buf),
        };
        let n = match conv {
            Ok(n) => n,
            Err(e) => {
                log::warn!("skipping a dump record the slave could not use: {e}");
                return DumpFlow::More;
            }
        };
        let scope = Self::scope(self.policy, &self.peer_addrs, &self.settings);
        if !self.dialect.syncs(&buf[..n], &scope) {
            return DumpFlow::More;
        }
        #[cfg(feature = "planted-bugs")]
        let grouped = grouped && !self.bugs.no_regroup;
        if grouped && pass == Regroup::None {
            self.feed.grouped_sent(p, s);
        }
        let Some(c) = self.conns.slot_mut(p, s) else {
            return DumpFlow::Pause;
        };
        if let Feed::Snapshot {
            buckets: Some(set), ..
        } = c.feed()
        {
            // A repair: only the buckets the slave asked for. A bundle is
            // re-grouped when either SA's bucket is asked for (the digest
            // counts it in both): a slave repairing in batches may get the
            // other SA only in a later batch, whose bundle pass then groups
            // them (the first X_GRPSPIS failing with ESRCH).
            let mut key = [0u8; IDENTITY_MAX];
            let inside = self
                .dialect
                .key(&buf[..n], &mut key)
                .is_some_and(|k| fingerprint::has(&set, fingerprint::bucket(&key[..k])));
            let next_inside = pass == Regroup::Pass
                && group
                    .flatten()
                    .map(|k| super::jobs::sa_bucket(&self.dialect, k))
                    .is_some_and(|b| fingerprint::has(&set, b));
            if !inside && !next_inside {
                return DumpFlow::More;
            }
        }
        if c.send_pfkey(&self.codec, &mut self.rng, &buf[..n]).is_err() {
            // feed_has_room was true before this record, so only a
            // pathological record ends here; skip it rather than stall.
            log::warn!(
                "peer {}: snapshot record did not fit; skipped",
                self.peer_addrs[p]
            );
            return DumpFlow::More;
        }
        self.count_out(p);
        let Some(c) = self.conns.slot_mut(p, s) else {
            return DumpFlow::Pause;
        };
        if c.feed_has_room() {
            DumpFlow::More
        } else {
            c.pause_snapshot();
            DumpFlow::Pause
        }
    }

    /// Whether the bundle pass must leave a grouped `record` alone: either
    /// SA of the bundle was added or moved after the snapshot began, so the
    /// slave may get it only from the deltas that follow the snapshot (and
    /// with them the X_GRPSPIS that made the bundle).
    fn regroup_unsafe(&self, conn: ConnId, record: &[u8]) -> bool {
        let Some(Feed::Snapshot { start, .. }) = self.conn(conn).map(|c| c.feed()) else {
            return true;
        };
        let Ok(replay) = self.ring.replay_after(start) else {
            return true;
        };
        self.dialect.group_touched(record, replay.map(|(_, d)| d))
    }

    /// The current table of `conn`'s snapshot is exhausted.
    pub(super) fn snapshot_table_end(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conn(conn) else { return };
        let Feed::Snapshot { table, start, .. } = c.feed() else {
            return;
        };
        match table {
            Table::Sadb => {
                // After the ADDs of grouped entries, the SADB once more for
                // their X_GRPSPIS; then the SPD.
                let bundles = self
                    .slot_of(conn)
                    .is_some_and(|(p, s)| self.feed.sadb_pass_ended(p, s));
                let next = if bundles { Table::Sadb } else { Table::Spd };
                let dump = self.alloc_dump_id();
                if let Some(c) = self.conn_mut(conn) {
                    c.next_snapshot_table(dump, next);
                }
                self.push_event(Event::Dump {
                    dump,
                    op: DumpOp::Start(next),
                });
            }
            Table::Spd => {
                let end = if self.legacy {
                    Ctl::EndSnap
                } else {
                    Ctl::SnapEnd { pos: start }
                };
                self.send_ctl_or_close(now, conn, &end);
                let cursor = match self.ring.cursor(start) {
                    Ok(cursor) => Some(cursor),
                    // The deltas since the snapshot began were evicted
                    // while it streamed (a large SADB, a busy master). A v2
                    // slave resumes at our head and the digest repairs the
                    // buckets those deltas touched; another full snapshot
                    // would only meet the same fate.
                    Err(e) if !self.legacy => {
                        log::info!("deltas since the snapshot began are gone ({e}); the digest repairs them");
                        None
                    }
                    Err(e) => {
                        log::info!("deltas since the snapshot began are gone ({e}); full snapshot");
                        if let Some(c) = self.conn_mut(conn) {
                            c.drop_feed();
                        }
                        self.start_snapshot(now, conn);
                        return;
                    }
                };
                if let Some((p, _)) = self.slot_of(conn) {
                    if let Some(x) = self.peer_stats_mut(p) {
                        x.snapshot_send_ended(now, true);
                    }
                }
                self.counters.snapshots_done += 1;
                let Some(cursor) = cursor else {
                    self.resume_and_repair(now, conn);
                    return;
                };
                if let Some(c) = self.conn_mut(conn) {
                    c.stream_from(cursor);
                }
                self.pump(now, conn);
            }
        }
    }

    /// The kernel dropped change messages on their way to us (a Linux
    /// watch's `ENOBUFS`; OpenBSD's PF_KEY drops them unsaid): our slaves
    /// may miss what was lost. A v2 master takes its digest now instead
    /// of at the next interval, so that its slaves find the buckets that
    /// differ and have them repaired; legacy has no digest.
    pub fn handle_events_lost(&mut self, now: Instant) {
        if self.role.state() != RunState::Master {
            return;
        }
        if self.legacy {
            log::warn!(
                "kernel change messages were lost: legacy slaves keep the difference until their next snapshot"
            );
            return;
        }
        log::info!("kernel change messages were lost: digesting now so that slaves repair what they missed");
        self.feed.digest_now(now);
    }

    /// Starts a periodic digest when due (v2 masters with streaming slaves).
    pub(super) fn digest_due(&mut self, now: Instant) {
        if self.role.state() != RunState::Master || self.legacy {
            return;
        }
        if !self.feed.digest_due(now, self.settings.digest_interval) {
            return;
        }
        let streaming = self.conns.iter().any(|c| c.streams_v2());
        if !streaming {
            return;
        }
        if !matches!(self.job, Job::None) {
            // Busy reading a dump for something else: soon, not a whole
            // interval later.
            self.feed.digest_busy(now);
            return;
        }
        let start = self.ring.position();
        self.sums.reset(start);
        self.start_job(JobKind::Announce {
            start,
            sa: MultisetDigest::new(),
            flow: MultisetDigest::new(),
        });
    }

    /// A master digest is complete: queue it for every streaming v2 slave,
    /// to be sent with the bucket sums when its stream reaches the digest's
    /// position. Buckets that changed while the tables were read (the
    /// deltas since `start`) are marked unknown and, if any did, the
    /// whole-table digests do not apply: the slaves still compare the rest.
    pub(super) fn announce_digest(
        &mut self,
        now: Instant,
        start: Position,
        sa: &MultisetDigest,
        flow: &MultisetDigest,
    ) {
        let partial = self.ring.position() != start;
        if partial {
            let mut unknown = [0u8; BUCKETS / 8];
            match self.ring.cursor(start) {
                Ok(mut cur) => {
                    while let Ok(Some((next, msg))) = self.ring.next(cur) {
                        let mut key = [0u8; IDENTITY_MAX];
                        match self.dialect.key(msg, &mut key) {
                            Some(k) => {
                                fingerprint::add(&mut unknown, fingerprint::bucket(&key[..k]))
                            }
                            // A FLUSH or anything without an identity: all of it.
                            None => unknown = fingerprint::ALL,
                        }
                        cur = next;
                    }
                }
                Err(_) => unknown = fingerprint::ALL,
            }
            self.sums.set_unknown(unknown);
        }
        // A partial one is followed soon: a slave resuming after a
        // failover waits for a whole one.
        let (sa_digest, sas) = sa.finish();
        let (flow_digest, flows) = flow.finish();
        self.feed
            .announce(now, start, sas, flows, sa_digest, flow_digest, partial);
        let mut ids: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        for c in self.conns.iter_mut() {
            if c.announce_digest(start) {
                let _ = ids.push(c.id());
            }
        }
        self.counters.digests_sent += 1;
        for &id in &ids {
            self.pump(now, id);
        }
    }
}

/// Queues the digest and its bucket sums, in chunks, to one slave; false
/// if any could not be. Its own frame (never inlined into `pump`): the
/// control messages are half a kilobyte each, needed once a digest round.
#[inline(never)]
fn queue_digest<C: Crypto + Clone, R: Random>(
    c: &mut super::conn::Conn<'_, C>,
    codec: &crate::wire::legacy::LegacyCodec<C>,
    rng: &mut R,
    digest: &Ctl,
    sums: &BucketSums,
    after: Position,
) -> bool {
    let mut ok = c.send_ctl(codec, rng, digest).is_ok();
    let mut chunk = Ctl::Buckets {
        pos: after,
        first: 0,
        sums: [0; BUCKETS_PER_CHUNK],
        unknown: 0,
    };
    for k in 0..BUCKETS / BUCKETS_PER_CHUNK {
        let start = k * BUCKETS_PER_CHUNK;
        if let Ctl::Buckets {
            first,
            sums: part,
            unknown,
            ..
        } = &mut chunk
        {
            *first = start as u32;
            part.copy_from_slice(sums.range(start, BUCKETS_PER_CHUNK));
            *unknown = 0;
            for i in 0..BUCKETS_PER_CHUNK {
                if sums.is_unknown(start + i) {
                    *unknown |= 1 << i;
                }
            }
        }
        ok &= c.send_ctl(codec, rng, &chunk).is_ok();
    }
    ok
}
