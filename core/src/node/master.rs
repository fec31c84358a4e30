//! The master's side: forwarding kernel changes through the delta ring,
//! and feeding each slave (snapshot, then the ring) as its buffer drains.

use crate::crypto::Crypto;
use crate::ctl::Ctl;
use crate::pfkey::consts::{SADB_ADD, SADB_DELETE, SADB_SATYPE_UNSPEC, SADB_UPDATE};
use crate::pfkey::{
    build_flush, dump_to_add, filter, msg_type_name, spd_dump_to_addflow, unwrap_promisc, Msg,
    Verdict,
};
use crate::random::Random;
use crate::state::{FlushMode, Position, RunState};
use crate::time::Instant;
use crate::wire::v2::MAX_PAYLOAD;

use super::conn::{Feed, Phase};
use super::digest::MultisetDigest;
use super::event::{ConnId, DumpFlow, DumpOp, Event, Table};
use super::jobs::{Job, JobKind};
use super::machine::Node;
use super::peer_stats::ErrorKind;
use super::peer_table::PeerIndex;

/// How long after a legacy session comes up the master starts feeding it
/// (the original's `pfkey_snap` timer).
const LEGACY_FEED_DELAY: core::time::Duration = core::time::Duration::from_secs(2);

impl<
        C: Crypto + Clone,
        R: Random,
        const P: usize,
        const RING: usize,
        const MARKS: usize,
        const TX: usize,
    > Node<C, R, P, RING, MARKS, TX>
{
    /// A message read from the PF_KEY socket (promiscuous copies of other
    /// processes' requests, and the kernel's replies).
    pub fn handle_pfkey(&mut self, now: Instant, msg: &[u8]) {
        let Some(inner) = unwrap_promisc(msg) else {
            self.kernel_reply(now, msg);
            return;
        };
        if self.role.state() != RunState::Master {
            return;
        }
        let m = match Msg::parse(inner) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("malformed promiscuous PF_KEY copy ignored: {e}");
                return;
            }
        };
        if m.pid() == self.settings.pid {
            return; // our own write coming back
        }
        if let Verdict::Skip(why) = filter(&m, &self.policy, &self.peer_addrs) {
            log::debug!("not forwarding {}: {}", msg_type_name(m.msg_type()), why);
            return;
        }
        let mut buf = [0u8; crate::pfkey::PFKEY_MSG_MAXSZ];
        let n = if m.msg_type() == SADB_UPDATE {
            // The slaves never saw the larval SA: an ADD, minus what ADD refuses.
            match dump_to_add(inner, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    log::warn!("cannot rewrite UPDATE as ADD: {e}");
                    return;
                }
            }
        } else {
            let n = inner.len().min(buf.len());
            buf[..n].copy_from_slice(&inner[..n]);
            n
        };
        match self.ring.push(&buf[..n]) {
            Ok(_) => self.counters.forwarded += 1,
            Err(e) => {
                log::error!("cannot record a kernel change: {e}");
                return;
            }
        }
        for id in self.open_conns() {
            self.pump(now, id);
        }
        self.flush_parts();
    }

    /// A non-promiscuous message: log the kernel's complaints about our
    /// writes, and count them against the master whose data they were.
    fn kernel_reply(&mut self, now: Instant, msg: &[u8]) {
        let Ok(m) = Msg::parse(msg) else { return };
        if m.pid() == self.settings.pid && m.errno() != 0 {
            self.kernel_refused(now, m.msg_type(), u32::from(m.errno()));
        }
    }

    /// The kernel refused one of our writes (its reply, or the write's
    /// error). Some refusals are expected and only counted: a DELETE of
    /// what is gone already, and a snapshot's ADD of an SA we hold (the
    /// sweep repairs one whose content differs). The rest are warnings.
    pub(super) fn kernel_refused(&mut self, now: Instant, msg_type: u8, errno: u32) {
        const EEXIST: u32 = 17;
        if msg_type == SADB_DELETE {
            return;
        }
        if msg_type == SADB_ADD && errno == EEXIST {
            self.counters.kernel_exists += 1;
            log::debug!("pfkey ADD of an SA we hold already (EEXIST)");
            return;
        }
        self.counters.kernel_errors += 1;
        if let Some(p) = self.data_source() {
            self.peer_error(now, p, ErrorKind::Kernel, "our kernel refused its data");
        }
        log::warn!("pfkey error ({}): errno {errno}", msg_type_name(msg_type));
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
        if !c.is_open() || !c.up || c.feed != Feed::Idle {
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
                .map_or(now, |c| c.opened.add(LEGACY_FEED_DELAY));
            if now < due {
                if let Some(c) = self.conn_mut(conn) {
                    c.feed_at = Some(due);
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
                        c.feed = Feed::Stream { cursor };
                    }
                    self.send_ctl_or_close(now, conn, &Ctl::Resume(pos));
                    self.counters.ring_resumes += 1;
                    self.pump(now, conn);
                    return;
                }
            }
        }
        self.start_snapshot(now, conn);
    }

    /// Legacy sessions whose feed delay is over start their feed.
    pub(super) fn legacy_feeds_due(&mut self, now: Instant) {
        let mut due: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        for c in self.conns.iter_mut().flatten().flatten() {
            if c.feed_at.is_some_and(|t| t <= now) {
                c.feed_at = None;
                let _ = due.push(c.id);
            }
        }
        for id in due {
            self.maybe_start_feed(now, id, None);
        }
    }

    /// A v2 slave asked to resume after `pos` (or for a full snapshot).
    pub(super) fn restart_feed(&mut self, now: Instant, conn: ConnId, pos: Position) {
        if let Some(c) = self.conn_mut(conn) {
            if let Feed::Snapshot { dump, .. } = c.feed {
                self.events_cancel_dump(dump);
            }
        }
        if let Some(c) = self.conn_mut(conn) {
            c.feed = Feed::Idle;
            c.pending_digest = None;
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
        let start = self.ring.position();
        let dump = self.alloc_dump_id();
        let legacy = self.legacy;
        if legacy && self.flushmode == FlushMode::Startup {
            let mut f = [0u8; 16];
            self.pfkey_seq = self.pfkey_seq.wrapping_add(1);
            if let Ok(n) = build_flush(
                SADB_SATYPE_UNSPEC,
                self.pfkey_seq,
                self.settings.pid,
                &mut f,
            ) {
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
                },
            );
        }
        let Some((p, _)) = self.slot_of(conn) else {
            return;
        };
        if let Some(c) = self.conn_mut(conn) {
            c.feed = Feed::Snapshot {
                dump,
                table: Table::Sadb,
                start,
                paused: false,
            };
            c.pending_digest = None;
        }
        if let Some(x) = self.peer_stats_mut(p) {
            x.snapshot_send_started(now);
        }
        self.counters.snapshots_started += 1;
        log::info!("peer {}: sending a full snapshot", self.peer_addrs[p]);
        self.push_event(Event::Dump {
            dump,
            op: DumpOp::Start(Table::Sadb),
        });
    }

    /// Stops every feed (we are no longer master).
    pub(super) fn stop_feeds(&mut self) {
        let mut cancel: heapless::Vec<(super::event::DumpId, PeerIndex), 64> = heapless::Vec::new();
        for c in self.conns.iter_mut().flatten().flatten() {
            if let Feed::Snapshot { dump, .. } = c.feed {
                let _ = cancel.push((dump, c.peer));
            }
            c.feed = Feed::Idle;
            c.pending_digest = None;
        }
        for (d, p) in cancel {
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
        &mut super::conn::Conn<C, TX>,
        &crate::wire::legacy::LegacyCodec<C>,
        &mut R,
    )> {
        let (p, s) = self.slot_of(id)?;
        let c = self.conns[p][s].as_mut()?;
        Some((c, &self.codec, &mut self.rng))
    }

    /// Fills `conn`'s send buffer from its feed as far as room allows.
    pub(super) fn pump(&mut self, now: Instant, conn: ConnId) {
        let Some((p, s)) = self.slot_of(conn) else {
            return;
        };
        let mut sent = 0u64;
        loop {
            let Some(c) = self.conns[p][s].as_mut() else {
                return;
            };
            if !c.is_open() || !c.up {
                return;
            }
            match c.feed {
                Feed::Idle => break,
                Feed::Snapshot {
                    dump,
                    table,
                    start,
                    paused,
                } => {
                    if paused && c.feed_has_room() {
                        c.feed = Feed::Snapshot {
                            dump,
                            table,
                            start,
                            paused: false,
                        };
                    }
                    break;
                }
                Feed::Stream { cursor } => {
                    let after = cursor.position();
                    if let Some(d) = c.pending_digest {
                        if let Ctl::Digest { pos, .. } = d {
                            if pos == after {
                                c.pending_digest = None;
                                if c.send_ctl(&self.codec, &mut self.rng, &d).is_err() {
                                    self.close_conn(now, conn, Some("send buffer full"), true);
                                    return;
                                }
                                continue;
                            }
                        }
                    }
                    if !c.feed_has_room() {
                        break;
                    }
                    // As many records as fit one frame (v2; one each in the
                    // legacy protocol), read from the cursor in constant time.
                    let mut batch = [0u8; MAX_PAYLOAD];
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
                        log::info!(
                            "peer {}: fell behind the delta ring ({e}); full snapshot",
                            self.peer_addrs[p]
                        );
                        c.feed = Feed::Idle;
                        self.start_snapshot(now, conn);
                        return;
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
                    if let Err(e) = res {
                        log::warn!(
                            "peer {}: cannot send deltas up to {}: {e}",
                            self.peer_addrs[p],
                            cur.position().seq
                        );
                        self.close_conn(now, conn, None, true);
                        return;
                    }
                    c.feed = Feed::Stream { cursor: cur };
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

    /// One dump record for the snapshot of `conn`.
    pub(super) fn snapshot_entry(&mut self, conn: ConnId, table: Table, record: &[u8]) -> DumpFlow {
        let mut buf = [0u8; crate::pfkey::PFKEY_MSG_MAXSZ];
        let conv = match table {
            Table::Sadb => dump_to_add(record, &mut buf),
            Table::Spd => spd_dump_to_addflow(record, &mut buf),
        };
        let Some((p, s)) = self.slot_of(conn) else {
            return DumpFlow::Pause;
        };
        let n = match conv {
            Ok(n) => n,
            Err(e) => {
                log::warn!("skipping a dump record the slave could not use: {e}");
                return DumpFlow::More;
            }
        };
        let verdict = match Msg::parse(&buf[..n]) {
            Ok(m) => filter(&m, &self.policy, &self.peer_addrs),
            Err(_) => return DumpFlow::More,
        };
        if verdict != Verdict::Sync {
            return DumpFlow::More;
        }
        let Some(c) = self.conns[p][s].as_mut() else {
            return DumpFlow::Pause;
        };
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
        let Some(c) = self.conns[p][s].as_mut() else {
            return DumpFlow::Pause;
        };
        if c.feed_has_room() {
            DumpFlow::More
        } else {
            if let Feed::Snapshot {
                dump, table, start, ..
            } = c.feed
            {
                c.feed = Feed::Snapshot {
                    dump,
                    table,
                    start,
                    paused: true,
                };
            }
            DumpFlow::Pause
        }
    }

    /// The current table of `conn`'s snapshot is exhausted.
    pub(super) fn snapshot_table_end(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conn(conn) else { return };
        let Feed::Snapshot { table, start, .. } = c.feed else {
            return;
        };
        match table {
            Table::Sadb => {
                let dump = self.alloc_dump_id();
                if let Some(c) = self.conn_mut(conn) {
                    c.feed = Feed::Snapshot {
                        dump,
                        table: Table::Spd,
                        start,
                        paused: false,
                    };
                }
                self.push_event(Event::Dump {
                    dump,
                    op: DumpOp::Start(Table::Spd),
                });
            }
            Table::Spd => {
                let end = if self.legacy {
                    Ctl::EndSnap
                } else {
                    Ctl::SnapEnd { pos: start }
                };
                self.send_ctl_or_close(now, conn, &end);
                match self.ring.cursor(start) {
                    Ok(cursor) => {
                        if let Some(c) = self.conn_mut(conn) {
                            c.feed = Feed::Stream { cursor };
                        }
                    }
                    Err(e) => {
                        // The deltas since the snapshot began were evicted
                        // while it streamed: another snapshot.
                        log::info!("deltas since the snapshot began are gone ({e}); full snapshot");
                        if let Some(c) = self.conn_mut(conn) {
                            c.feed = Feed::Idle;
                        }
                        self.start_snapshot(now, conn);
                        return;
                    }
                }
                if let Some((p, _)) = self.slot_of(conn) {
                    if let Some(x) = self.peer_stats_mut(p) {
                        x.snapshot_send_ended(now, true);
                    }
                }
                self.counters.snapshots_done += 1;
                self.pump(now, conn);
            }
        }
    }

    /// Starts a periodic digest when due (v2 masters with streaming slaves).
    pub(super) fn digest_due(&mut self, now: Instant) {
        if self.role.state() != RunState::Master || self.legacy {
            return;
        }
        let Some(at) = self.next_digest else { return };
        if now < at {
            return;
        }
        self.next_digest = Some(now.add(self.settings.digest_interval));
        let streaming =
            self.conns.iter().flatten().flatten().any(|c| {
                matches!(c.phase, Phase::Open(..)) && matches!(c.feed, Feed::Stream { .. })
            });
        if !streaming || !matches!(self.job, Job::None) {
            return;
        }
        self.start_job(JobKind::Announce {
            start: self.ring.position(),
            sa: MultisetDigest::new(),
            flow: MultisetDigest::new(),
        });
    }

    /// A master digest is complete: queue it for every streaming v2 slave,
    /// to be sent when its stream reaches the digest's position.
    pub(super) fn announce_digest(
        &mut self,
        now: Instant,
        start: Position,
        sa: &MultisetDigest,
        flow: &MultisetDigest,
    ) {
        if self.ring.position() != start {
            // The tables changed while we read them: skip this round.
            return;
        }
        let (sa_digest, sas) = sa.finish();
        let (flow_digest, flows) = flow.finish();
        let d = Ctl::Digest {
            pos: start,
            sas,
            flows,
            sa_digest,
            flow_digest,
        };
        let mut ids: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        for c in self.conns.iter_mut().flatten().flatten() {
            if matches!(c.phase, Phase::Open(..)) && matches!(c.feed, Feed::Stream { .. }) {
                c.pending_digest = Some(d);
                let _ = ids.push(c.id);
            }
        }
        self.counters.digests_sent += 1;
        for id in ids {
            self.pump(now, id);
        }
    }
}
