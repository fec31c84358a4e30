//! Work the node does over a whole kernel dump: the master's snapshots are
//! per connection (see `master`), the rest is here — the slave's sweep
//! after a full snapshot, the slave's digest check, and the master's
//! periodic digest. One such job runs at a time.

use core::net::IpAddr;

use crate::crypto::Crypto;
use crate::ctl::Ctl;
use crate::pfkey::{
    build_delete, build_delflow, canonical_digest_input, dump_to_add, filter, flow_key, sa_key,
    spd_dump_to_addflow, Msg, SockAddr, Verdict,
};
use crate::random::Random;
use crate::state::Position;
use crate::time::Instant;

use super::conn::Feed;
use super::digest::MultisetDigest;
use super::event::{ConnId, DumpFlow, DumpId, DumpOp, Event, Table};
use super::machine::Node;

/// Longest identity encoding (see [`identity`]).
pub const IDENTITY_MAX: usize = 96;

/// What a dump job is for.
#[derive(Debug, Clone)]
pub(super) enum JobKind {
    /// Slave: delete what the snapshot from `conn` did not contain, then
    /// continue its stream at `pos`.
    Sweep { conn: ConnId, pos: Position },
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

/// Writes the identity of an SA or flow (what the kernel knows it by) to
/// `out`: the bytes the snapshot marks are keyed on.
pub fn identity(msg: &Msg<'_>, out: &mut [u8; IDENTITY_MAX]) -> Option<usize> {
    fn ip(out: &mut [u8], at: &mut usize, a: IpAddr) {
        let b = match a {
            IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
            IpAddr::V6(v) => v.octets(),
        };
        out[*at] = u8::from(a.is_ipv6());
        out[*at + 1..*at + 17].copy_from_slice(&b);
        *at += 17;
    }
    fn sa(out: &mut [u8], at: &mut usize, s: SockAddr) {
        ip(out, at, s.ip);
        out[*at..*at + 2].copy_from_slice(&s.port.to_be_bytes());
        *at += 2;
    }
    let mut at = 0;
    if let Some(k) = sa_key(msg) {
        out[0] = 1;
        out[1] = k.satype;
        out[2..6].copy_from_slice(&k.spi.to_be_bytes());
        out[6..8].copy_from_slice(&k.rdomain.to_be_bytes());
        at = 8;
        ip(out, &mut at, k.dst);
        return Some(at);
    }
    let k = flow_key(msg)?;
    out[0] = 2;
    out[1] = k.direction;
    out[2] = k.proto;
    out[3..5].copy_from_slice(&k.rdomain.to_be_bytes());
    at += 5;
    for s in [k.src, k.src_mask, k.dst, k.dst_mask] {
        sa(out, &mut at, s);
    }
    Some(at)
}

impl<
        C: Crypto + Clone,
        R: Random,
        const P: usize,
        const RING: usize,
        const MARKS: usize,
        const TX: usize,
    > Node<C, R, P, RING, MARKS, TX>
{
    /// A dump whose records the node wants now, other than those in `skip`
    /// (the caller has none of theirs at hand yet). Feed it with
    /// [`handle_dump_entry`](Self::handle_dump_entry) until that returns
    /// [`DumpFlow::Pause`] or the records run out
    /// ([`handle_dump_end`](Self::handle_dump_end)). A paused dump is named
    /// again once its consumer has room.
    pub fn poll_dump(&self, skip: &[DumpId]) -> Option<DumpId> {
        let feeds = self
            .conns
            .iter()
            .flatten()
            .flatten()
            .filter_map(|c| match c.feed {
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
        let mut buf = [0u8; crate::pfkey::PFKEY_MSG_MAXSZ];
        let conv = match table {
            Table::Sadb => dump_to_add(record, &mut buf),
            Table::Spd => spd_dump_to_addflow(record, &mut buf),
        };
        let Ok(n) = conv else { return DumpFlow::More };
        let Ok(m) = Msg::parse(&buf[..n]) else {
            return DumpFlow::More;
        };
        if filter(&m, &self.policy, &self.peer_addrs) != Verdict::Sync {
            return DumpFlow::More;
        }
        let pid = self.settings.pid;
        let mut canon = [0u8; crate::pfkey::PFKEY_MSG_MAXSZ];
        let mut delete = [0u8; crate::pfkey::PFKEY_MSG_MAXSZ];
        match &mut self.job {
            Job::Dump {
                kind: JobKind::Sweep { .. },
                ..
            } => {
                let mut key = [0u8; IDENTITY_MAX];
                let Some(k) = identity(&m, &mut key) else {
                    return DumpFlow::More;
                };
                if self.marks.contains(&self.crypto, &[b"I", &key[..k]]) {
                    // The snapshot had it; keep it unless its content differs
                    // (then the snapshot's ADD was refused with EEXIST).
                    let same = match canonical_digest_input(&m, &mut canon) {
                        Ok(c) => self.marks.contains(&self.crypto, &[b"C", &canon[..c]]),
                        Err(_) => true,
                    };
                    if same {
                        return DumpFlow::More;
                    }
                    self.stale_found = true;
                }
                self.pfkey_seq = self.pfkey_seq.wrapping_add(1);
                let seq = self.pfkey_seq;
                let built = match table {
                    Table::Sadb => build_delete(&m, seq, pid, &mut delete),
                    Table::Spd => build_delflow(&m, seq, pid, &mut delete),
                };
                if let Ok(d) = built {
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
                if let Ok(c) = canonical_digest_input(&m, &mut canon) {
                    match table {
                        Table::Sadb => sa.add(&self.crypto, &canon[..c]),
                        Table::Spd => flow.add(&self.crypto, &canon[..c]),
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
                JobKind::Sweep { conn, pos } => self.finish_sweep(now, conn, pos),
                JobKind::Check {
                    conn,
                    want,
                    sa,
                    flow,
                } => self.finish_check(now, conn, want, &sa, &flow),
                JobKind::Announce { start, sa, flow } => {
                    self.announce_digest(now, start, &sa, &flow)
                }
            }
        }
        self.wake_readers();
        self.flush_parts();
    }

    /// The connection whose snapshot reads `dump`, and which table.
    fn snapshot_owner(&self, dump: DumpId) -> Option<(ConnId, Table)> {
        self.conns
            .iter()
            .flatten()
            .flatten()
            .find_map(|c| match c.feed {
                Feed::Snapshot { dump: d, table, .. } if d == dump => Some((c.id, table)),
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

    /// SnapEnd of a sweeping snapshot: hold the stream, drain, then sweep.
    pub(super) fn start_sweep(&mut self, now: Instant, conn: ConnId, pos: Position) {
        self.job_cancel();
        self.job = Job::Drain(JobKind::Sweep { conn, pos });
        self.after_queue_drained(now);
    }

    /// A master digest arrived: check it if we are exactly at its position.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_check(
        &mut self,
        now: Instant,
        conn: ConnId,
        pos: Position,
        sas: u32,
        flows: u32,
        sa_digest: [u8; 32],
        flow_digest: [u8; 32],
    ) {
        if pos != self.applied || self.incoming.is_some() || !matches!(self.job, Job::None) {
            log::debug!(
                "digest at {}:{} skipped (we are at {}:{})",
                pos.epoch,
                pos.seq,
                self.applied.epoch,
                self.applied.seq
            );
            return;
        }
        let want = Ctl::Digest {
            pos,
            sas,
            flows,
            sa_digest,
            flow_digest,
        };
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

    fn finish_sweep(&mut self, now: Instant, conn: ConnId, pos: Position) {
        if self.incoming.is_some_and(|i| i.conn == conn) {
            self.incoming = None;
        }
        self.applied = pos;
        self.counters.sweeps += 1;
        let stale = core::mem::take(&mut self.stale_found);
        if stale && !self.stale_retried {
            // Entries whose content differed were deleted; the snapshot's
            // ADDs of them were refused while they existed. Once more.
            self.stale_retried = true;
            log::info!("entries differed from the master's; asking for the snapshot again");
            self.send_ctl_or_close(now, conn, &Ctl::Resync(Position::NONE));
            return;
        }
        self.stale_retried = false;
        self.snapshot_complete(now, conn, true);
    }

    fn finish_check(
        &mut self,
        now: Instant,
        conn: ConnId,
        want: Ctl,
        sa: &MultisetDigest,
        flow: &MultisetDigest,
    ) {
        let Ctl::Digest {
            sas,
            flows,
            sa_digest,
            flow_digest,
            ..
        } = want
        else {
            return;
        };
        let (sd, sn) = sa.finish();
        let (fd, fn_) = flow.finish();
        if sd == sa_digest && fd == flow_digest && sn == sas && fn_ == flows {
            self.counters.digests_matched += 1;
            return;
        }
        self.counters.digest_mismatches += 1;
        log::warn!(
            "our tables differ from the master's ({sn} SAs / {fn_} flows here, {sas} / {flows} there); asking for a resync"
        );
        self.send_ctl_or_close(now, conn, &Ctl::Resync(Position::NONE));
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
    }
}
