//! Receiving: deframing, the v2 handshake, and what each message means.

use super::outseq::SeqTable;
use crate::crypto::Crypto;
use crate::ctl::{Ctl, CtlError, CtlType};
use crate::dialect::{Dialect, Op, IDENTITY_MAX};
use crate::random::Random;
use crate::state::{Position, RunState};
use crate::time::Instant;
use crate::wire::legacy::LegacyError;
use crate::wire::v2::{Hello, Kind, V2Error, MAX_FRAME};

use super::event::{ConnId, Received};
use super::machine::Node;
use super::marks::MarkStore;
use super::peer_stats::ErrorKind;
use super::peer_table::{PeerIndex, SessionId, Tiebreak};
use super::wipe::wipe;

/// Records a slave lets pass before it acknowledges them at once.
const ACK_RECORDS: u64 = 256;
/// Longest a slave leaves its position unacknowledged.
const ACK_DELAY: core::time::Duration = core::time::Duration::from_millis(50);

/// What one step of reading produced.
pub(super) enum Step {
    /// The input is used up.
    NeedMore,
    /// The peer's HELLO arrived and our CONFIRM is queued.
    Hello,
    /// The peer's CONFIRM checked out: the session is authenticated.
    Confirmed(Hello),
    /// A message of `len` bytes is in the buffer.
    Msg(Kind, usize),
    /// A frame was bad but the stream is intact (legacy per-frame errors).
    Dropped(&'static str, ErrorKind),
    /// The connection must be closed.
    Fatal(Fatal),
}

/// Why a connection is closed.
pub(super) enum Fatal {
    Legacy(crate::wire::legacy::LegacyError),
    /// A v2 frame (its magic) where a legacy frame was expected.
    V2Peer,
    V2(V2Error),
    Queue,
}

impl Fatal {
    /// What an operator should make of it.
    fn cause(&self) -> (ErrorKind, &'static str) {
        match self {
            Fatal::Legacy(LegacyError::TooLong) => (ErrorKind::Oversize, "frame too long"),
            Fatal::Legacy(_) => (ErrorKind::Malformed, "bad frame length"),
            Fatal::V2Peer => (ErrorKind::Protocol, super::peer_stats::PEER_SPEAKS_V2),
            Fatal::V2(e) => v2_cause(e),
            Fatal::Queue => (ErrorKind::Io, "cannot queue handshake reply"),
        }
    }
}

/// The cause of a v2 error that ends a connection.
fn v2_cause(e: &V2Error) -> (ErrorKind, &'static str) {
    match e {
        V2Error::KeyMismatch => (ErrorKind::WrongKey, "key confirmation failed"),
        V2Error::ShortKey(_) => (ErrorKind::WrongKey, "shared key too short for v2"),
        V2Error::MacMismatch => (ErrorKind::Auth, "frame failed authentication"),
        V2Error::Reflected => (ErrorKind::Auth, "our own frame came back"),
        V2Error::Replay { .. } => (ErrorKind::Replay, "replayed frame"),
        V2Error::Gap { .. } => (ErrorKind::Replay, "frame out of sequence"),
        V2Error::SeqExhausted => (ErrorKind::Replay, "sequence numbers exhausted"),
        V2Error::TooLong(_) => (ErrorKind::Oversize, "payload too long"),
        V2Error::BadLength(n) if *n > MAX_FRAME => (ErrorKind::Oversize, "frame too long"),
        V2Error::BadLength(_) => (ErrorKind::Malformed, "bad frame length"),
        V2Error::NotV2 => (ErrorKind::Malformed, "not a v2 frame"),
        V2Error::UnknownKind(_) => (ErrorKind::Malformed, "unknown frame type"),
        V2Error::Malformed => (ErrorKind::Malformed, "malformed HELLO"),
        V2Error::LegacyPeer => (ErrorKind::Protocol, super::peer_stats::PEER_SPEAKS_LEGACY),
        V2Error::Version(_) => (ErrorKind::Protocol, "unsupported protocol version"),
        V2Error::UnexpectedFrame(_) | V2Error::HandshakeOrder => {
            (ErrorKind::Protocol, "frame out of handshake order")
        }
        V2Error::ArchMismatch { .. } => (ErrorKind::Protocol, "other PF_KEY architecture"),
        V2Error::DialectMismatch { .. } => (ErrorKind::Protocol, "other kernel dialect"),
        V2Error::Aes | V2Error::BufferTooSmall { .. } => {
            (ErrorKind::Io, "local failure sealing or opening a frame")
        }
    }
}

impl core::fmt::Display for Fatal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Fatal::Legacy(e) => write!(f, "{e}"),
            Fatal::V2Peer => f.write_str(
                "the peer speaks the v2 protocol; this node has \"protocol legacy\" (give both the same protocol)",
            ),
            Fatal::V2(V2Error::LegacyPeer) => f.write_str(
                "the peer speaks the legacy protocol; this node speaks v2 (give both the same protocol)",
            ),
            Fatal::V2(V2Error::KeyMismatch) => {
                f.write_str("key confirmation failed: the peer has a different shared key, or the handshake was altered or replayed")
            }
            Fatal::V2(e) => write!(f, "{e}"),
            Fatal::Queue => f.write_str("cannot queue handshake reply"),
        }
    }
}

/// Bad legacy frames in a row that end an authenticated connection (an
/// unauthenticated one ends at the first).
const MAX_BAD_FRAMES: u8 = 4;

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect> Node<'a, C, R, M, D> {
    /// Bytes arrived on a connection. Says how many were taken; the
    /// platform keeps the rest and offers them again later (the node pauses
    /// reading while its kernel queue is full or a sweep runs, so
    /// backpressure reaches the master through TCP).
    ///
    /// The steps it calls are never inlined into it (`#[inline(never)]`):
    /// each has its own temporaries, and merged into one frame they would
    /// all be on the stack for every frame received (firmware stacks are
    /// small).
    pub fn handle_recv(&mut self, now: Instant, conn: ConnId, data: &[u8]) -> Received {
        if self.shutting_down {
            // Nothing more is done with what peers send; let it drain.
            return Received {
                consumed: data.len(),
                applied: 0,
            };
        }
        let applied_before = self.counters.applied;
        let peer = self.slot_of(conn).map(|(p, _)| p);
        let mut input = data;

        loop {
            let Some((p, s)) = self.slot_of(conn) else {
                // Closed while reading: the rest is moot.
                input = &[];
                break;
            };
            if self.must_pause(conn) {
                if let Some(c) = self.conns.slot_mut(p, s) {
                    c.pause_reading();
                }
                break;
            }
            let step = self.read_step(p, s, &mut input);
            if !matches!(step, Step::NeedMore | Step::Fatal(_)) {
                self.count_in(p);
            }
            match step {
                Step::NeedMore => break,
                // Their HELLO in, our CONFIRM out.
                Step::Hello => self.count_out(p),
                Step::Confirmed(peer) => self.on_confirmed(now, conn, peer),
                Step::Msg(kind, len) => {
                    // Liveness counts whole, authentic frames only: a
                    // corrupted length can stall the deframer while bytes
                    // keep trickling in.
                    if let Some(c) = self.conns.slot_mut(p, s) {
                        c.frame_arrived(now);
                    }
                    if self.legacy && !self.legacy_vouched(now, conn) {
                        wipe(&mut self.scratch.out[..len]);
                        input = &[];
                        break;
                    }
                    if let Some(x) = self.peer_stats_mut(p) {
                        x.other_protocol = None;
                    }
                    let session = self.session_of(conn);
                    match kind {
                        Kind::Ctl => self.on_ctl_bytes(now, session, len),
                        Kind::Pfkey if self.legacy => self.on_pfkey_data(now, session, 0..len),
                        Kind::Pfkey => self.on_pfkey_batch(now, session, len),
                    }
                    wipe(&mut self.scratch.out[..len]);
                }
                Step::Dropped(why, kind) => {
                    self.conn_error(now, conn, kind, why);
                    let vouched = self.vouched(conn);
                    if vouched || self.may_log_noise(now, p) {
                        log::warn!("peer {}: dropped a frame: {}", self.peer_addrs[p], why);
                    }
                    // Legacy drops a bad frame and reads on; a few in a
                    // row (the first, unauthenticated) end the connection.
                    let bad = self.conns.slot_mut(p, s).map_or(0, |c| c.bad_frame());
                    if !vouched || bad >= MAX_BAD_FRAMES {
                        self.counters.rejected_frames += 1;
                        self.close_conn(
                            now,
                            conn,
                            Some("closing connection: too many bad frames"),
                            true,
                        );
                        input = &[];
                        break;
                    }
                }
                Step::Fatal(e) => {
                    let (kind, why) = e.cause();
                    // A protocol mismatch repeats at every reconnect: said
                    // once (a warning), then at debug while it lasts.
                    let mismatch = matches!(
                        e,
                        Fatal::V2Peer
                            | Fatal::V2(V2Error::LegacyPeer | V2Error::DialectMismatch { .. })
                    );
                    let mut again = false;
                    if let Some(x) = self.peer_stats_mut(p).filter(|_| mismatch) {
                        again = x.other_protocol == Some(why);
                        x.other_protocol = Some(why);
                    }
                    let vouched = self.vouched(conn);
                    self.conn_error(now, conn, kind, why);
                    self.counters.rejected_frames += 1;
                    if again {
                        log::debug!("peer {}: closing connection: {}", self.peer_addrs[p], e);
                    } else if vouched || self.may_log_noise(now, p) {
                        log::warn!("peer {}: closing connection: {}", self.peer_addrs[p], e);
                    }
                    self.close_conn(now, conn, None, true);
                    input = &[];
                    break;
                }
            }
        }
        self.after_recv(now, conn);
        self.flush_parts();
        let consumed = data.len() - input.len();
        if let Some(x) = peer.and_then(|p| self.peer_stats_mut(p)) {
            x.bytes_in = x.bytes_in.saturating_add(consumed as u64);
        }
        Received {
            consumed,
            applied: (self.counters.applied - applied_before) as usize,
        }
    }

    /// One frame arrived from peer `p`.
    fn count_in(&mut self, p: usize) {
        if let Some(x) = self.peer_stats_mut(p) {
            x.frames_in = x.frames_in.saturating_add(1);
        }
    }

    /// Reads at most one frame from `input` and decodes it; a message's
    /// payload goes to `scratch.out` (not the stack: it is 4 KiB).
    fn read_step(&mut self, p: usize, s: usize, input: &mut &[u8]) -> Step {
        let Some(c) = self.conns.slot_mut(p, s) else {
            return Step::NeedMore;
        };
        c.read_frame(
            &self.codec,
            &self.crypto,
            self.key.as_bytes(),
            input,
            &mut self.scratch.out,
        )
    }

    /// The v2 handshake completed: register the session and learn the
    /// peer's state and resume position from its HELLO.
    #[inline(never)]
    fn on_confirmed(&mut self, now: Instant, conn: ConnId, peer: Hello) {
        // A peer that restarted has a new boot epoch: its old session is
        // dead even if TCP has not noticed yet, so the new one wins.
        if let Some((p, _)) = self.slot_of(conn) {
            let old = match self.table.get(PeerIndex(p)).map(|x| x.status()) {
                Some(super::peer_table::ConnStatus::Connected(sid)) if sid.0 != conn.0 => {
                    Some(ConnId(sid.0))
                }
                _ => None,
            };
            let stale = old
                .and_then(|o| self.conn(o))
                .and_then(|c| c.peer_hello())
                .is_some_and(|h| h.boot_epoch != peer.boot_epoch);
            if let (Some(o), true) = (old, stale) {
                self.close_conn(
                    now,
                    o,
                    Some("peer restarted; dropping its old session"),
                    true,
                );
            }
        }
        let ids = Tiebreak {
            local: self.settings.node_id,
            peer: peer.node_id,
        };
        self.session_up(now, conn, Some(ids));
        if !self.conn(conn).is_some_and(|c| c.up()) {
            return;
        }
        self.send_ctl_or_close(now, conn, &Ctl::State(self.role.state()));
        self.peer_announced(now, conn, peer.run_state, false);
    }

    /// A control message of `len` bytes in `scratch.out`.
    #[inline(never)]
    fn on_ctl_bytes(&mut self, now: Instant, conn: ConnId, len: usize) {
        match Ctl::decode(&self.scratch.out[..len]) {
            Ok(ctl) => self.on_ctl(now, conn, &ctl),
            Err(e) => self.bad_ctl(now, conn, e),
        }
    }

    /// A control message that did not decode.
    #[inline(never)]
    fn bad_ctl(&mut self, now: Instant, conn: ConnId, e: CtlError) {
        self.conn_error(now, conn, ErrorKind::Malformed, "bad control message");
        log::warn!("bad control message: {e}");
        if e == CtlError::Truncated && self.legacy {
            self.send_ctl_or_close(now, conn, &Ctl::Error(CtlType::Unknown));
        }
    }

    /// A control message from a peer. By reference, and its bucket sums
    /// borrowed, not copied: a `Ctl` is over 500 bytes.
    #[inline(never)]
    fn on_ctl(&mut self, now: Instant, conn: ConnId, ctl: &Ctl) {
        let from_master = self.peer_state_of(conn) == Some(RunState::Master);
        let we_master = self.role.state() == RunState::Master;
        match *ctl {
            Ctl::State(s) => self.peer_announced(now, conn, s, self.legacy),
            Ctl::Ack {
                about: CtlType::State,
                state,
            } => self.peer_announced(now, conn, state, false),
            Ctl::Ack { .. } => {}
            Ctl::Error(CtlType::State) => {
                log::info!("a peer disputes our state; re-reading the carp interface");
                self.role.handle_state_error();
            }
            Ctl::Error(_) => {}
            Ctl::EndSnap => {
                if from_master
                    && !we_master
                    && self.slave.following().is_none_or(|f| f.conn == conn)
                {
                    self.snapshot_complete(now, conn, true);
                }
            }
            Ctl::AckSeq(pos) => {
                let head = self.ring.position();
                let p = self.slot_of(conn).map(|x| x.0);
                if let Some(x) = p.and_then(|p| self.peer_stats_mut(p)) {
                    x.acked_by = pos;
                    x.lag = super::stats::lag(head, pos);
                    if pos == head {
                        x.last_sync = Some(now);
                    }
                }
            }
            Ctl::Resync(pos) => {
                if we_master {
                    log::info!("peer asks to resync after {}:{}", pos.epoch, pos.seq);
                    self.restart_feed(now, conn, pos);
                }
            }
            Ctl::SnapBegin {
                pos,
                sweep,
                expect,
                buckets,
            } => {
                if from_master && !we_master && !self.legacy && !self.may_follow(conn) {
                    self.counters.refused_data += 1;
                    log::warn!(
                        "two peers claim MASTER; ignoring the snapshot of the one we do not follow"
                    );
                } else if from_master && !we_master {
                    if !self.legacy {
                        self.slave.follow(conn);
                    }
                    if let Some((p, _)) = self.slot_of(conn) {
                        if let Some(x) = self.peer_stats_mut(p) {
                            x.snapshot_receive_started(now, buckets.is_some());
                        }
                    }
                    self.slave.snapshot_begins(conn, pos, sweep, buckets);
                    let mut salt = [0u8; 16];
                    self.rng.fill(&mut salt);
                    self.marks.reset(salt, expect as usize);
                }
            }
            Ctl::SnapEnd { pos } => {
                let incoming = self.slave.incoming().filter(|i| i.conn == conn);
                if let Some(i) = incoming.filter(|_| from_master && !we_master) {
                    let (sweep, buckets) = (i.sweep, i.buckets);
                    #[cfg(feature = "planted-bugs")]
                    let sweep = sweep && !self.bugs.skip_sweep;
                    if sweep {
                        self.start_sweep(now, conn, pos, buckets);
                    } else {
                        self.slave.reached(conn, pos);
                        self.snapshot_complete(now, conn, true);
                    }
                }
            }
            Ctl::Resume(pos) => {
                if from_master && !we_master && self.may_follow(conn) {
                    // Not where we asked to resume, or a snapshot cut short
                    // (the master answered an ask made before its
                    // beginning reached us): the first digest repairs what
                    // differs (seed 389565788).
                    self.slave.resumed(conn, pos);
                    self.snapshot_complete(now, conn, false);
                }
            }
            Ctl::Digest {
                pos,
                sas,
                flows,
                sa_digest,
                flow_digest,
                partial,
            } => {
                if from_master && !we_master {
                    self.start_check(now, conn, pos, sas, flows, sa_digest, flow_digest, partial);
                }
            }
            Ctl::Buckets {
                pos,
                first,
                ref sums,
                unknown,
            } => {
                if from_master && !we_master {
                    self.compare_buckets(now, conn, pos, first as usize, sums, unknown);
                }
            }
            Ctl::OutSeq { seq, len, ref id } => {
                // Any master's (two in a split brain): the larger wins.
                if from_master && !we_master {
                    self.carried.note(&id[..usize::from(len)], seq);
                }
            }
            Ctl::Repair { pos, buckets } => {
                if we_master {
                    log::info!(
                        "peer asks for {} buckets again (its tables differed at {}:{})",
                        super::fingerprint::count(&buckets),
                        pos.epoch,
                        pos.seq
                    );
                    self.start_repair(now, conn, buckets);
                }
            }
        }
    }

    /// A peer told us its run state (STATE, ACK, or its v2 HELLO). A legacy
    /// slave is fed as soon as its state is known; a v2 slave asks for its
    /// stream with `Resync` once it knows who is master.
    #[inline(never)]
    pub(super) fn peer_announced(
        &mut self,
        now: Instant,
        conn: ConnId,
        s: RunState,
        reply_ack: bool,
    ) {
        let Some((p, _)) = self.slot_of(conn) else {
            return;
        };
        let ours = self.role.state();
        let before = self.peer_state_of(conn);
        if before != Some(s) {
            log::debug!("peer {}: announces {}", self.peer_addrs[p], s);
        }
        self.table
            .handle_peer_state(PeerIndex(p), SessionId(conn.0), s);
        self.slave.peer_announced(
            p,
            now,
            s == RunState::Master,
            before == Some(RunState::Master),
        );
        if !self.legacy && before.is_some() && before != Some(s) {
            // Tell a peer whose state changed what we are: a node that was
            // master a moment ago forgot who else is.
            self.send_ctl_or_close(now, conn, &Ctl::State(ours));
        }
        #[cfg(feature = "planted-bugs")]
        let keep = self.bugs.keep_split_loser;
        #[cfg(not(feature = "planted-bugs"))]
        let keep = false;
        if s != RunState::Master && !keep {
            self.slave.master_stepped_down(conn);
        }
        if !self.legacy
            && s == RunState::Master
            && before != Some(RunState::Master)
            && ours != RunState::Master
        {
            self.switch_to(now, conn);
        }
        if self.legacy
            && s == RunState::Master
            && before != Some(RunState::Master)
            && ours != RunState::Master
        {
            // Legacy snapshots are not announced: the new master's comes
            // now, ending with EndSnap.
            if let Some(x) = self.peer_stats_mut(p) {
                x.snapshot_receive_started(now, false);
            }
            // A legacy slave follows the latest peer to claim MASTER: the one
            // it followed may be dead behind a half-open connection (legacy
            // sessions have no keepalive), and carp elected the new one.
            self.legacy_switch_to(now, conn);
            if self.slot_of(conn).is_none() {
                return; // hung up to get a full snapshot
            }
        }
        if ours == RunState::Master && s == RunState::Master && self.legacy {
            // The original refuses a second master this way (reference §10.3).
            self.send_ctl_or_close(now, conn, &Ctl::Error(CtlType::State));
        } else if reply_ack {
            self.send_ctl_or_close(
                now,
                conn,
                &Ctl::Ack {
                    about: CtlType::State,
                    state: ours,
                },
            );
        }
        self.check_split_brain(true);
        self.demote.handle_peer_states(self.table.states(), now);
        if ours == RunState::Master {
            if self.legacy {
                self.maybe_start_feed(now, conn, None);
            }
        } else {
            self.attach(now);
        }
    }

    /// PF_KEY data from a peer: applied only from the master, only when we
    /// are not master (reference §8.6).
    /// A PF_KEY message from a peer, at `at` in `scratch.out`.
    #[inline(never)]
    fn on_pfkey_data(&mut self, now: Instant, conn: ConnId, at: core::ops::Range<usize>) {
        let from_master = self.peer_state_of(conn) == Some(RunState::Master);
        let ours = self.role.state();
        #[cfg(feature = "planted-bugs")]
        let (from_master, ours) = if self.bugs.apply_from_non_master {
            (true, RunState::Slave)
        } else {
            (from_master, ours)
        };
        let followed = if self.legacy && from_master && ours != RunState::Master {
            match self.legacy_follow(now, conn) {
                Some(ok) => ok,
                None => return, // the connection was closed to get a snapshot
            }
        } else {
            self.legacy || self.slave.synced_with(conn)
        };
        #[cfg(feature = "planted-bugs")]
        let followed = followed || self.bugs.apply_from_non_master;
        if !from_master || ours == RunState::Master || !followed {
            self.conn_error(
                now,
                conn,
                ErrorKind::Protocol,
                "data from a peer that is not our master",
            );
            self.counters.refused_data += 1;
            // Once per connection: a master that feeds us while we follow
            // another sends a whole stream, not one message.
            let first = self.conn_mut(conn).is_some_and(|c| c.first_refusal());
            if let (true, Some((p, _))) = (first, self.slot_of(conn)) {
                log::info!(
                    "peer {}: PF_KEY data refused: the peer is not the master we follow (or we are master); further refusals on this connection are counted only",
                    self.peer_addrs[p]
                );
            }
            if self.legacy {
                let reply = if ours == RunState::Master {
                    Ctl::State(ours)
                } else {
                    Ctl::Error(CtlType::Reserved)
                };
                self.send_ctl_or_close(now, conn, &reply);
            }
            return;
        }
        if self.legacy {
            let p = self.slot_of(conn).map(|(p, _)| p);
            self.slave.legacy_applied(p);
        }
        let snapshot = self.slave.receiving_from(conn);
        let scratch = &mut *self.scratch;
        let msg = &scratch.out[at];
        let len = msg.len();
        if snapshot {
            let mut key = [0u8; IDENTITY_MAX];
            let canon = &mut scratch.canon;
            if self.dialect.request(msg).is_some_and(|r| r.op == Op::Group) {
                // A bundle the master's snapshot grouped: remembered
                // by its canonical form, so that the sweep can tell a
                // grouping of ours the master does not have.
                if let Some(c) = canon.get_mut(..len) {
                    c.copy_from_slice(msg);
                    self.dialect.stamp(c, 0, 0);
                    self.marks.insert(c, super::jobs::GROUPED);
                    wipe(c);
                }
            } else {
                let id = self.dialect.key(msg, &mut key);
                let content = self.dialect.digest_input(msg, canon);
                // The canonical form holds the keys (the digest covers
                // them); a failed one may have written any part.
                let written = content.as_ref().map_or(canon.len(), |&c| c);
                if let (Some(n), Ok(c)) = (id, content) {
                    self.marks.insert(&key[..n], &canon[..c]);
                }
                wipe(&mut canon[..written]);
            }
        } else if !self.legacy {
            self.slave.delta_applied();
        }
        if D::CARRIES_SEQ {
            if let Some((sa, n)) = self.dialect.record_seq(msg) {
                let mut id = [0u8; IDENTITY_MAX];
                let k = self
                    .dialect
                    .identity_bytes(&crate::dialect::Identity::Sa(sa), &mut id);
                self.carried.note(&id[..k], n);
            }
        }
        let pid = self.settings.pid;
        let seq = self.pfkey_seq.next();
        // A legacy master may be the original, which sends its dump
        // records and UPDATEs as they are: rewritten here as our master
        // rewrites them before sending (a no-op on what ours sent).
        // A change a slave may lack the entry of goes out with its add
        // first, in one write (the dialect's `add_first`: Linux's UPDSA
        // completing an SPI the keying daemon reserved).
        #[cfg(feature = "planted-bugs")]
        let add_first = !self.bugs.no_add_first;
        #[cfg(not(feature = "planted-bugs"))]
        let add_first = true;
        let mut paired = false;
        let msg = if self.legacy {
            match self.dialect.to_request(msg, &mut scratch.msg) {
                Ok(n) => &scratch.msg[..n],
                Err(e) => {
                    wipe(&mut scratch.msg[..]);
                    log::warn!("PF_KEY message from the master unusable, dropped: {e}");
                    return;
                }
            }
        } else {
            let pair = add_first
                .then(|| self.dialect.add_first(msg, &mut scratch.msg))
                .flatten()
                .filter(|&n| n <= super::pfkeyq::MAX_MSG);
            match pair {
                Some(n) => {
                    paired = true;
                    &scratch.msg[..n]
                }
                None => msg,
            }
        };
        let rewritten = msg.len();
        let dialect = &self.dialect;
        let queued = self.pfkeyq.push_with(msg, |m| dialect.stamp(m, pid, seq));
        if self.legacy || paired {
            // The rewritten copy; the frame's (`scratch.out`) is wiped by
            // the reader.
            wipe(&mut scratch.msg[..rewritten]);
        }
        if queued {
            self.counters.applied += 1;
        } else {
            // must_pause keeps room for every record of a frame as
            // written (`frame_room`), so only an oversized one ends here.
            self.conn_error(now, conn, ErrorKind::Oversize, "PF_KEY message too large");
            log::warn!(
                "PF_KEY message of {} bytes does not fit the kernel queue; dropped",
                len
            );
        }
    }

    /// A v2 PF_KEY frame: one or more whole messages, each as long as its
    /// header says. A length that does not fit ends the frame (the rest
    /// cannot be cut apart) with one log line.
    /// A v2 PF_KEY frame of `end` bytes in `scratch.out`.
    #[inline(never)]
    fn on_pfkey_batch(&mut self, now: Instant, conn: ConnId, end: usize) {
        let mut at = 0;
        while at < end {
            let len = self.dialect.record_len(&self.scratch.out[at..end]);
            let Some(len) = len.filter(|&l| l <= end - at) else {
                self.conn_error(
                    now,
                    conn,
                    ErrorKind::Malformed,
                    "bad PF_KEY length in a frame",
                );
                if let Some((p, _)) = self.slot_of(conn) {
                    log::warn!(
                        "peer {}: PF_KEY frame with a bad message length; rest of the frame dropped",
                        self.peer_addrs[p]
                    );
                }
                return;
            };
            self.on_pfkey_data(now, conn, at..at + len);
            at += len;
            if self.slot_of(conn).is_none() {
                return;
            }
        }
    }

    /// Whether reading `conn` must wait: a whole frame's records must fit
    /// the PF_KEY queue as written ([`super::frame_room`]), and a job may
    /// hold the connection.
    pub(super) fn must_pause(&self, conn: ConnId) -> bool {
        self.pfkeyq.free() < super::frame_room(D::WRITE_GROWTH) || self.job.holds(conn)
    }

    /// After reading: acknowledge progress (v2 slaves).
    fn after_recv(&mut self, now: Instant, conn: ConnId) {
        self.ack(now, conn, false);
    }

    /// Acknowledges our position to the master we follow, at a bounded
    /// rate: when [`ACK_RECORDS`] records are unacknowledged or
    /// [`ACK_DELAY`] passed since the last ack (`force`: the ack timer).
    pub(super) fn ack(&mut self, now: Instant, conn: ConnId, force: bool) {
        let applied = self.slave.applied();
        if self.legacy || self.slave.receiving() || applied == Position::NONE {
            return;
        }
        let p = self.slot_of(conn).map(|(p, _)| p);
        if self.slave.synced_with(conn) {
            if let Some(x) = p.and_then(|p| self.peer_stats_mut(p)) {
                x.applied = applied;
            }
        }
        let due = self.conn(conn).is_some_and(|c| {
            c.is_open()
                && c.up()
                && c.acked() != applied
                && (force
                    || c.acked().epoch != applied.epoch
                    || applied.seq.saturating_sub(c.acked().seq) >= ACK_RECORDS
                    || now.since(c.acked_at()) >= ACK_DELAY)
        }) && self.peer_state_of(conn) == Some(RunState::Master);
        if due {
            if let Some(c) = self.conn_mut(conn) {
                c.ack_sent(applied, now);
            }
            if let Some(x) = p.and_then(|p| self.peer_stats_mut(p)) {
                x.acked_to = applied;
            }
            self.send_ctl_or_close(now, conn, &Ctl::AckSeq(applied));
        }
    }

    /// When an unacknowledged position must be acknowledged.
    pub(super) fn ack_deadline(&self) -> Option<Instant> {
        // The same conditions as `ack`, or a due ack that cannot be sent
        // would keep the timer firing.
        let f = self.slave.following()?;
        let c = self.conn(f.conn)?;
        let pending = !self.legacy
            && !self.slave.receiving()
            && self.slave.applied() != Position::NONE
            && c.is_open()
            && c.up()
            && c.acked() != self.slave.applied()
            && self.peer_state_of(f.conn) == Some(RunState::Master);
        pending.then(|| c.acked_at().add(ACK_DELAY))
    }

    /// Unpauses connections that may read again.
    pub(super) fn wake_readers(&mut self) {
        let mut woke: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        for c in self.conns.iter() {
            if c.paused() && !self.must_pause(c.id()) {
                let _ = woke.push(c.id());
            }
        }
        for &id in &woke {
            if let Some(c) = self.conn_mut(id) {
                c.resume_reading();
            }
        }
    }

    /// A full snapshot (`full`) or a resume from the master is complete.
    #[inline(never)]
    pub(super) fn snapshot_complete(&mut self, now: Instant, conn: ConnId, full: bool) {
        let Some((p, _)) = self.slot_of(conn) else {
            return;
        };
        let (legacy, applied) = (self.legacy, self.slave.applied());
        if let Some(x) = self.peer_stats_mut(p) {
            if full {
                x.snapshot_receive_ended(now, true);
            }
            if !legacy {
                x.applied = applied;
            }
            x.last_sync = Some(now);
        }
        self.demote
            .handle_snapshot_complete(Some(RunState::Master), now);
        if self.slave.resumed_across() {
            log::info!(
                "master {} resumed us at another position; repairing what differs at its digest",
                self.peer_addrs[p]
            );
        } else {
            log::info!("in sync with master {}", self.peer_addrs[p]);
        }
    }

    pub(super) fn peer_state_of(&self, conn: ConnId) -> Option<RunState> {
        let (p, _) = self.slot_of(conn)?;
        let c = self
            .conns
            .slot(p, 0)
            .filter(|c| c.id() == conn)
            .or(self.conns.slot(p, 1))?;
        if !c.up() {
            return None;
        }
        let peer = self.table.get(PeerIndex(p))?;
        match peer.status() {
            super::peer_table::ConnStatus::Connected(sid) if sid.0 == conn.0 => peer.state(),
            _ => None,
        }
    }
}
