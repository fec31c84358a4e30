//! The `Node`: one sasyncd instance's decisions, driven by its platform.
//!
//! Inputs are `handle_*` calls with the current time; outputs are drained
//! with `poll_event`, `poll_transmit`, `poll_pfkey` and `poll_timeout`. The
//! node never blocks, never allocates and never reads a clock.

use core::net::IpAddr;

use crate::config::{Config, Protocol};
use crate::crypto::{Crypto, SecretKey};
use crate::ctl::Ctl;
use crate::pfkey::FilterPolicy;
use crate::random::Random;
use crate::state::{FlushMode, Position, RunState};
use crate::time::Instant;
use crate::wire::legacy::LegacyCodec;
use crate::wire::v2::{ArchTag, Hello, HELLO_LEN};

use super::backoff::Backoff;
use super::carp::{RoleTracker, StateChange};
use super::conn::{Conn, Feed, Phase};
use super::demote::{DemoteEffect, Demotion};
use super::event::{ConnId, DumpId, DumpOp, Event, NodeError, Rejected, Settings};
use super::ike::{Control, IkeControl};
use super::jobs::Job;
use super::marks::SnapshotMarks;
use super::peer_table::{AttemptId, ConnStatus, PeerIndex, PeerTable, SessionDecision, SessionId};
use super::pfkeyq::PfkeyQueue;
use super::ring::DeltaRing;
use super::stats::Counters;

/// Bytes of PF_KEY messages waiting for the local kernel.
pub const PFKEY_QUEUE_BYTES: usize = 16 * 1024;
/// How long a v2 slave waits for its master to answer `Resync`.
const REASK: core::time::Duration = core::time::Duration::from_secs(5);
/// Events waiting for the platform. Generous: every connection can have a
/// few outstanding and the node-level ones are few.
const EVENTS: usize = 256;

/// Known bugs the simulator can plant to prove its oracles bite
/// (feature `planted-bugs`; all off by default).
#[cfg(feature = "planted-bugs")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// A sweeping snapshot's SnapEnd does not sweep.
    pub skip_sweep: bool,
    /// PF_KEY data is applied whoever sends it.
    pub apply_from_non_master: bool,
    /// The start-up demotion is never released.
    pub keep_demote: bool,
    /// The master silently skips one delta per epoch (the fifth).
    pub drop_delta: bool,
}

/// A slave's view of the snapshot it is receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Incoming {
    pub conn: ConnId,
    pub pos: Position,
    pub sweep: bool,
}

/// The master a v2 slave takes its stream from. A slave follows one
/// master at a time: when two peers claim MASTER (a partition healing),
/// mixing their streams would sweep away one master's entries with the
/// other's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Follow {
    pub conn: ConnId,
    /// Its SnapBegin or Resume arrived: its data may be applied.
    pub synced: bool,
    /// When we last asked it for our stream (`Resync`).
    pub asked: Option<Instant>,
}

/// One sasyncd instance. `P` peers, a `RING`-byte delta ring, `MARKS` bytes
/// of snapshot marks for the slave's sweep, `TX` bytes of send buffer per
/// connection (at least [`MIN_TX_BYTES`](super::MIN_TX_BYTES); two
/// connections per peer).
pub struct Node<
    C: Crypto + Clone,
    R: Random,
    const P: usize,
    const RING: usize,
    const MARKS: usize,
    const TX: usize,
> {
    pub(super) settings: Settings,
    pub(super) crypto: C,
    pub(super) rng: R,
    pub(super) codec: LegacyCodec<C>,
    pub(super) key: SecretKey<32>,
    pub(super) legacy: bool,
    pub(super) flushmode: FlushMode,
    pub(super) policy: FilterPolicy,
    pub(super) peer_addrs: heapless::Vec<IpAddr, P>,
    pub(super) table: PeerTable<P>,
    pub(super) backoff: [Backoff; P],
    pub(super) conns: [[Option<Conn<C, TX>>; 2]; P],
    pub(super) role: RoleTracker,
    pub(super) demote: Demotion,
    pub(super) ike: IkeControl,
    pub(super) ring: DeltaRing<RING>,
    pub(super) marks: SnapshotMarks<MARKS>,
    pub(super) pfkeyq: PfkeyQueue<PFKEY_QUEUE_BYTES>,
    pub(super) events: heapless::Deque<Event, EVENTS>,
    pub(super) next_conn: u32,
    pub(super) next_dump: u32,
    pub(super) pfkey_seq: u32,
    /// Slave: the last master position written to our kernel queue.
    pub(super) applied: Position,
    pub(super) incoming: Option<Incoming>,
    pub(super) following: Option<Follow>,
    /// The current sweep deleted entries whose content differed.
    pub(super) stale_found: bool,
    /// A sweep already asked for the snapshot again (once is enough).
    pub(super) stale_retried: bool,
    pub(super) job: Job,
    pub(super) next_digest: Option<Instant>,
    pub(super) split_brain: bool,
    pub(super) counters: Counters,
    pub(super) rr: usize,
    /// Planted bugs (test builds only).
    #[cfg(feature = "planted-bugs")]
    pub bugs: PlantedBugs,
}

impl<
        C: Crypto + Clone,
        R: Random,
        const P: usize,
        const RING: usize,
        const MARKS: usize,
        const TX: usize,
    > core::fmt::Debug for Node<C, R, P, RING, MARKS, TX>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("state", &self.role.state())
            .field("peers", &self.table.len())
            .field("applied", &self.applied)
            .finish()
    }
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
    /// Checked when a node type is built: a smaller send buffer could never
    /// hold a maximal frame next to the control reserve.
    const TX_FITS: () = assert!(
        TX >= super::conn::MIN_TX_BYTES,
        "TX must be at least MIN_TX_BYTES"
    );

    /// Builds a node from its configuration. Raises the start-up carp
    /// demotion request at once; a locked node announces its role at once,
    /// a tracking one waits for the first `handle_link_state`.
    pub fn new(
        config: &Config,
        settings: Settings,
        crypto: C,
        mut rng: R,
        now: Instant,
    ) -> Result<Self, NodeError> {
        let () = Self::TX_FITS;
        let codec = LegacyCodec::new(crypto.clone(), config.sharedkey.as_bytes())
            .map_err(|_| NodeError::BadKey)?;
        let key = SecretKey::new(config.sharedkey.as_bytes()).ok_or(NodeError::BadKey)?;
        let mut table = PeerTable::new();
        let mut peer_addrs = heapless::Vec::new();
        for p in &config.peers {
            let addr = p.addr.ok_or(NodeError::PeerNotAddress)?;
            table
                .add(addr, p.port_or(config.listen.port))
                .map_err(|_| NodeError::TooManyPeers)?;
            peer_addrs
                .push(addr.to_canonical())
                .map_err(|_| NodeError::TooManyPeers)?;
        }
        let role = match config.locked {
            Some(s) => RoleTracker::locked(s),
            None => RoleTracker::tracking(),
        };
        let control = Control {
            isakmpd: config.control.isakmpd,
            iked: config.control.iked,
        };
        let mut demote = Demotion::new();
        demote.start(now);
        let salt = {
            let mut s = [0u8; 16];
            rng.fill(&mut s);
            s
        };
        let mut node = Node {
            settings,
            crypto,
            rng,
            codec,
            key,
            legacy: config.protocol == Protocol::Legacy,
            flushmode: config.flushmode,
            policy: FilterPolicy {
                flushmode: config.flushmode,
                skipslave: config.skipslave,
            },
            peer_addrs,
            table,
            backoff: core::array::from_fn(|_| Backoff::new()),
            conns: core::array::from_fn(|_| [None, None]),
            role,
            demote,
            ike: IkeControl::new(control),
            ring: DeltaRing::new(0),
            marks: SnapshotMarks::new(salt),
            pfkeyq: PfkeyQueue::new(),
            events: heapless::Deque::new(),
            next_conn: 1,
            next_dump: 1,
            pfkey_seq: 0,
            applied: Position::NONE,
            incoming: None,
            following: None,
            stale_found: false,
            stale_retried: false,
            job: Job::None,
            next_digest: None,
            split_brain: false,
            counters: Counters::default(),
            rr: 0,
            #[cfg(feature = "planted-bugs")]
            bugs: PlantedBugs::default(),
        };
        if let Some(s) = config.locked {
            node.enter_state(
                now,
                StateChange {
                    from: RunState::Init,
                    to: s,
                },
            );
        } else {
            node.ike.handle_run_state(RunState::Init);
        }
        node.demote.handle_peer_states(node.table.states(), now);
        node.flush_parts();
        node.dial_due(now);
        Ok(node)
    }

    /// Our run state.
    pub fn run_state(&self) -> RunState {
        self.role.state()
    }

    // ----- inputs: carp, IKE, demotion, shutdown -------------------------

    /// The carp interface's link state (`LINK_STATE_*`): at start-up, from
    /// the routing socket, or after `Event::RecheckCarp`.
    pub fn handle_link_state(&mut self, now: Instant, link_state: u8) {
        if let Some(change) = self.role.handle_link_state(link_state) {
            self.enter_state(now, change);
        }
        self.flush_parts();
    }

    /// The carp interface could not be read: state FAIL.
    pub fn handle_carp_unreadable(&mut self, now: Instant) {
        if let Some(change) = self.role.handle_read_failure() {
            self.enter_state(now, change);
        }
        self.flush_parts();
    }

    /// Outcome of an `Event::Ike` request.
    pub fn handle_ike_result(&mut self, now: Instant, id: u32, ok: bool) {
        if !ok {
            log::warn!("could not tell the IKE daemon to change mode; retrying");
        }
        self.ike.handle_result(id, ok, now);
        self.flush_parts();
    }

    /// Outcome of an `Event::Demote(Raise)`: `false` also when the group was
    /// not demoted to begin with (then there is nothing of ours to release).
    pub fn handle_demote_result(&mut self, now: Instant, ok: bool) {
        self.demote.handle_raise_result(ok, now);
        self.flush_parts();
    }

    /// Orderly shutdown: release our demotion, close every connection.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.demote.handle_shutdown(now);
        for p in 0..P {
            for s in 0..2 {
                if let Some(id) = self.conns[p][s].as_ref().map(|c| c.id) {
                    self.close_conn(now, id, None, true);
                }
            }
        }
        self.job_cancel();
        self.flush_parts();
    }

    /// Time passed: retries, reconnects, demotion deadline, digests.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.demote.handle_timeout(now);
        self.ike.handle_timeout(now);
        self.expire_handshakes(now);
        self.keepalives(now);
        self.reask(now);
        self.dial_due(now);
        self.digest_due(now);
        self.flush_parts();
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = earliest(self.demote.poll_timeout(), self.ike.poll_timeout());
        for (i, p) in self.table.iter() {
            if p.status() == ConnStatus::Disconnected && self.conn_count(i.0) == 0 {
                t = earliest(
                    t,
                    Some(self.backoff[i.0].poll_timeout().unwrap_or(Instant::ZERO)),
                );
            }
        }
        for slots in &self.conns {
            for c in slots.iter().flatten() {
                if matches!(c.phase, Phase::Hello(_) | Phase::Confirm(..)) {
                    t = earliest(t, Some(c.opened.add(self.settings.handshake_timeout)));
                }
                if matches!(c.phase, Phase::Open(..)) {
                    if c.tx.is_empty() {
                        t = earliest(t, Some(c.last_tx.add(self.settings.keepalive)));
                    }
                    t = earliest(t, Some(c.last_rx.add(self.settings.dead_after)));
                }
            }
        }
        if self.role.state() == RunState::Master {
            t = earliest(t, self.next_digest);
        }
        if let Some(Follow {
            synced: false,
            asked: Some(at),
            ..
        }) = self.following
        {
            t = earliest(t, Some(at.add(REASK)));
        }
        t
    }

    // ----- outputs ---------------------------------------------------------

    /// The next thing the platform must do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.flush_parts();
        self.events.pop_front()
    }

    /// Bytes to write to a connection. Report what was written with
    /// `handle_sent`; the rest is offered again.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(ConnId, &[u8])> {
        let n = P * 2;
        let mut found = None;
        for k in 0..n {
            let i = (self.rr + k) % n;
            let (p, s) = (i / 2, i % 2);
            let Some(id) = self.conns[p][s].as_ref().map(|c| c.id) else {
                continue;
            };
            self.pump(now, id);
            if self.conns[p][s].as_ref().is_some_and(|c| !c.tx.is_empty()) {
                found = Some((p, s));
                self.rr = (i + 1) % n;
                break;
            }
        }
        let (p, s) = found?;
        let c = self.conns[p][s].as_ref()?;
        Some((c.id, c.tx.pending()))
    }

    /// The platform wrote `n` bytes of what `poll_transmit` offered.
    pub fn handle_sent(&mut self, now: Instant, conn: ConnId, n: usize) {
        if let Some(c) = self.conn_mut(conn) {
            c.tx.consume(n);
            if n > 0 {
                c.last_tx = now;
            }
            let peer = c.peer;
            if let Some(p) = self.table.get_mut(peer) {
                p.stats.bytes_out = p.stats.bytes_out.saturating_add(n as u64);
            }
        }
        self.pump(now, conn);
        self.flush_parts();
    }

    /// The oldest PF_KEY message to write to the local kernel.
    pub fn poll_pfkey(&self) -> Option<&[u8]> {
        self.pfkeyq.front()
    }

    /// The message `poll_pfkey` offered was written (the kernel's answer, if
    /// an error, arrives through `handle_pfkey` like any PF_KEY message).
    pub fn handle_pfkey_written(&mut self, now: Instant) {
        self.pfkeyq.pop();
        self.counters.pfkey_written += 1;
        self.after_queue_drained(now);
        self.flush_parts();
    }

    // ----- connections -----------------------------------------------------

    /// The outbound connection `conn` (from `Event::Connect`) is up.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        let legacy = self.legacy;
        let Some(c) = self.conn_mut(conn) else { return };
        if !matches!(c.phase, Phase::Connecting) {
            return;
        }
        c.opened = now;
        if legacy {
            c.phase = Phase::Legacy;
            self.session_up(now, conn, None);
        } else {
            self.send_hello(now, conn);
        }
        self.flush_parts();
    }

    /// The outbound connection `conn` could not be made.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnId) {
        if let Some((p, s)) = self.slot_of(conn) {
            self.conns[p][s] = None;
            self.table
                .handle_connect_failed(PeerIndex(p), AttemptId(conn.0));
            let r = self.rng.next_u32();
            let at = self.backoff[p].handle_failure(now, r);
            log::info!(
                "peer {}: not reachable; retrying in {} ms",
                self.peer_addrs[p],
                at.as_millis().saturating_sub(now.as_millis())
            );
        }
        self.flush_parts();
    }

    /// The platform accepted a TCP connection from `remote`. Refused (and to
    /// be closed by the platform) unless it is a configured peer.
    pub fn handle_accept(&mut self, now: Instant, remote: IpAddr) -> Result<ConnId, Rejected> {
        let idx = match self.table.check_inbound(remote) {
            Ok(i) => i,
            Err(_) => {
                self.counters.rejected_unknown += 1;
                log::warn!("connection from {remote} refused: not a configured peer");
                return Err(Rejected::UnknownPeer(remote));
            }
        };
        let p = idx.0;
        let s = match (self.conns[p][0].as_ref(), self.conns[p][1].as_ref()) {
            (None, _) => 0,
            (_, None) => 1,
            (Some(a), Some(b)) => {
                // Both slots busy: drop the one that is not the current
                // session (or the older one), as the peer evidently restarted.
                let a_goes = if a.up != b.up {
                    b.up
                } else {
                    a.opened <= b.opened
                };
                let victim = if a_goes { 0 } else { 1 };
                let vid = self.conns[p][victim].as_ref().map(|c| c.id);
                if let Some(vid) = vid {
                    self.close_conn(now, vid, None, true);
                }
                victim
            }
        };
        let id = self.alloc_conn_id();
        let mut c = Conn::new(id, idx, false, self.legacy, now);
        if self.legacy {
            c.phase = Phase::Legacy;
        }
        self.conns[p][s] = Some(c);
        log::info!("peer {}: connected (inbound)", self.peer_addrs[p]);
        if self.legacy {
            self.session_up(now, id, None);
        } else {
            self.send_hello(now, id);
        }
        self.flush_parts();
        Ok(id)
    }

    /// The platform saw the connection close or fail.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        self.close_conn(now, conn, Some("connection closed"), false);
        self.flush_parts();
    }

    // ----- internals -------------------------------------------------------

    pub(super) fn alloc_conn_id(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn = self.next_conn.wrapping_add(1).max(1);
        id
    }

    pub(super) fn alloc_dump_id(&mut self) -> DumpId {
        let id = DumpId(self.next_dump);
        self.next_dump = self.next_dump.wrapping_add(1).max(1);
        id
    }

    pub(super) fn slot_of(&self, id: ConnId) -> Option<(usize, usize)> {
        for (p, slots) in self.conns.iter().enumerate() {
            for (s, c) in slots.iter().enumerate() {
                if c.as_ref().is_some_and(|c| c.id == id) {
                    return Some((p, s));
                }
            }
        }
        None
    }

    pub(super) fn conn(&self, id: ConnId) -> Option<&Conn<C, TX>> {
        let (p, s) = self.slot_of(id)?;
        self.conns[p][s].as_ref()
    }

    pub(super) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn<C, TX>> {
        let (p, s) = self.slot_of(id)?;
        self.conns[p][s].as_mut()
    }

    fn conn_count(&self, p: usize) -> usize {
        self.conns[p].iter().filter(|c| c.is_some()).count()
    }

    /// Ids of every connection that is open (legacy, or v2 authenticated).
    pub(super) fn open_conns(&self) -> heapless::Vec<ConnId, 64> {
        let mut v = heapless::Vec::new();
        for c in self.conns.iter().flatten().flatten() {
            if c.is_open() && c.up {
                let _ = v.push(c.id);
            }
        }
        v
    }

    pub(super) fn push_event(&mut self, e: Event) {
        if self.events.push_back(e).is_err() {
            // Cannot happen with the sizing above; never drop silently.
            self.counters.events_overflow += 1;
            log::error!("event queue full; dropping {e:?}");
        }
    }

    /// Moves what the parts want done into the event queue.
    pub(super) fn flush_parts(&mut self) {
        while let Some(e) = self.demote.poll_effect() {
            #[cfg(feature = "planted-bugs")]
            if self.bugs.keep_demote && e == DemoteEffect::Release {
                continue;
            }
            if e == DemoteEffect::Release {
                log::info!("releasing our carp demotion");
            }
            self.push_event(Event::Demote(e));
        }
        while let Some(r) = self.ike.poll_request() {
            self.push_event(Event::Ike(r));
        }
        if self.role.poll_recheck() {
            self.push_event(Event::RecheckCarp);
        }
    }

    /// Applies a run-state change (reference §7.5, fixes D-12, D-35).
    pub(super) fn enter_state(&mut self, now: Instant, change: StateChange) {
        log::info!("switching state to {}", change.to);
        if let Some(on) = change.promiscuous() {
            self.push_event(Event::Promisc(on));
        }
        self.ike.handle_run_state(change.to);
        if change.from == RunState::Master {
            // Our own IKE daemon wrote to our kernel while we were master:
            // no master's delta stream describes it any more.
            self.applied = Position::NONE;
            self.stop_feeds();
            self.job_cancel();
            self.next_digest = None;
        }
        if change.to == RunState::Master {
            let mut epoch = self.rng.next_u64();
            if epoch == 0 {
                epoch = 1;
            }
            self.ring.new_epoch(epoch);
            self.table.forget_master_claims();
            self.incoming = None;
            self.job_cancel();
            // Anti-entropy is a v2 feature.
            self.next_digest = (!self.legacy).then(|| now.add(self.settings.digest_interval));
        }
        self.check_split_brain(true);
        self.following = None;
        for id in self.open_conns() {
            self.send_ctl_or_close(now, id, &Ctl::State(change.to));
        }
        if change.to != RunState::Master {
            self.attach(now);
        }
        // Reconnect everyone now (the original does this on every change).
        for b in self.backoff.iter_mut() {
            b.handle_success();
        }
        if change.to == RunState::Master && self.legacy {
            // v2 slaves ask for their stream (`Resync`) when they learn we
            // are master; legacy slaves do not, so we start it (D-12).
            for id in self.open_conns() {
                self.maybe_start_feed(now, id, None);
            }
        }
        self.dial_due(now);
    }

    /// Dials every peer that has no connection and whose backoff allows.
    pub(super) fn dial_due(&mut self, now: Instant) {
        for p in 0..self.table.len() {
            let idx = PeerIndex(p);
            let disconnected = self
                .table
                .get(idx)
                .is_some_and(|x| x.status() == ConnStatus::Disconnected);
            if !disconnected || self.conn_count(p) > 0 || !self.backoff[p].may_attempt(now) {
                continue;
            }
            let id = self.alloc_conn_id();
            if !self.table.handle_connecting(idx, AttemptId(id.0)) {
                continue;
            }
            self.conns[p][0] = Some(Conn::new(id, idx, true, self.legacy, now));
            let (addr, port) = match self.table.get(idx) {
                Some(x) => (x.addr(), x.port()),
                None => continue,
            };
            self.push_event(Event::Connect {
                conn: id,
                addr,
                port,
            });
        }
    }

    /// A master that has not answered our `Resync` for a while is asked
    /// again (the request may have crossed its own change of state).
    fn reask(&mut self, now: Instant) {
        if let Some(f) = self.following {
            if !f.synced && f.asked.is_some_and(|t| now.since(t) >= REASK) {
                self.ask(now, f.conn);
            }
        }
    }

    /// v2 sessions: send a keepalive when quiet, close when the peer is.
    fn keepalives(&mut self, now: Instant) {
        let mut quiet: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        let mut dead: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        for c in self.conns.iter().flatten().flatten() {
            if !matches!(c.phase, Phase::Open(..)) {
                continue;
            }
            if now.since(c.last_rx) >= self.settings.dead_after {
                let _ = dead.push(c.id);
            } else if now.since(c.last_tx) >= self.settings.keepalive && c.tx.is_empty() {
                let _ = quiet.push(c.id);
            }
        }
        for id in dead {
            self.close_conn(now, id, Some("peer silent; session presumed dead"), true);
        }
        let state = self.role.state();
        for id in quiet {
            if let Some(c) = self.conn_mut(id) {
                c.last_tx = now;
            }
            self.send_ctl_or_close(now, id, &Ctl::State(state));
        }
    }

    fn expire_handshakes(&mut self, now: Instant) {
        let limit = self.settings.handshake_timeout;
        let mut late: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        for c in self.conns.iter().flatten().flatten() {
            if matches!(c.phase, Phase::Hello(_) | Phase::Confirm(..))
                && now.since(c.opened) >= limit
            {
                let _ = late.push(c.id);
            }
        }
        for id in late {
            self.close_conn(now, id, Some("handshake timed out"), true);
        }
    }

    /// Sends our v2 HELLO on a fresh connection.
    fn send_hello(&mut self, now: Instant, id: ConnId) {
        let mut nonce = [0u8; 32];
        self.rng.fill(&mut nonce);
        let hello = Hello {
            node_id: self.settings.node_id,
            boot_epoch: self.settings.boot_epoch,
            nonce,
            run_state: self.role.state(),
            resume: self.resume_position(),
            arch: ArchTag::host(),
        };
        let Some(c) = self.conn_mut(id) else { return };
        let ok = matches!(
            c.tx.append_with(HELLO_LEN, |out| hello.encode(out)),
            Some(Ok(_))
        );
        c.phase = Phase::Hello(hello);
        if !ok {
            self.close_conn(now, id, Some("cannot queue HELLO"), true);
        }
    }

    /// Where a slave asks to resume: its applied position, unless a
    /// snapshot or sweep is unfinished (then only a full snapshot will do).
    pub(super) fn resume_position(&self) -> Position {
        if self.incoming.is_some() || self.job.is_sweep() {
            Position::NONE
        } else {
            self.applied
        }
    }

    /// A session completed its handshake (legacy: at connect/accept).
    pub(super) fn session_up(
        &mut self,
        now: Instant,
        id: ConnId,
        ids: Option<super::peer_table::Tiebreak>,
    ) {
        let Some((p, s)) = self.slot_of(id) else {
            return;
        };
        let outbound = self.conns[p][s].as_ref().is_some_and(|c| c.outbound);
        match self
            .table
            .handle_session_up(PeerIndex(p), SessionId(id.0), outbound, ids, now)
        {
            Some(SessionDecision::Accept { replaces }) => {
                if let Some(c) = self.conns[p][s].as_mut() {
                    c.up = true;
                }
                self.backoff[p].handle_success();
                if let Some(old) = replaces {
                    if old.0 != id.0 {
                        self.close_conn(
                            now,
                            ConnId(old.0),
                            Some("replaced by a newer connection"),
                            true,
                        );
                    }
                }
                log::info!("peer {}: session up", self.peer_addrs[p]);
                if self.legacy && outbound {
                    // The connector announces its state first (reference §10.4).
                    self.send_ctl_or_close(now, id, &Ctl::State(self.role.state()));
                }
            }
            Some(SessionDecision::Reject { .. }) => {
                self.close_conn(
                    now,
                    id,
                    Some("duplicate connection (simultaneous connect)"),
                    true,
                );
            }
            None => {}
        }
    }

    /// Forgets a connection. `reason` is logged; `tell` asks the platform
    /// to close it (not needed when the platform reported the close).
    pub(super) fn close_conn(
        &mut self,
        now: Instant,
        id: ConnId,
        reason: Option<&str>,
        tell: bool,
    ) {
        let Some((p, s)) = self.slot_of(id) else {
            return;
        };
        let Some(c) = self.conns[p][s].take() else {
            return;
        };
        if let Some(r) = reason {
            log::info!("peer {}: {}", self.peer_addrs[p], r);
        }
        if let Feed::Snapshot { dump, .. } = c.feed {
            self.push_event(Event::Dump {
                dump,
                op: DumpOp::Cancel,
            });
        }
        if tell {
            self.push_event(Event::Close { conn: id });
        }
        let idx = PeerIndex(p);
        if matches!(c.phase, Phase::Connecting) {
            self.table.handle_connect_failed(idx, AttemptId(id.0));
        }
        // A handshake that never completed leaves an outbound attempt
        // registered as Connecting: clear it too.
        if !c.up && c.outbound {
            self.table.handle_connect_failed(idx, AttemptId(id.0));
        }
        let was_current = c.up && self.table.handle_session_down(idx, SessionId(id.0));
        if self.incoming.is_some_and(|i| i.conn == id) {
            self.incoming = None;
        }
        self.job_conn_gone(id);
        if self.following.is_some_and(|f| f.conn == id) {
            self.following = None;
            self.attach(now);
        }
        if was_current || !c.up {
            // Reconnect after a short pause (a flapping link must not spin).
            self.backoff[p].handle_success();
            let r = self.rng.next_u32();
            self.backoff[p].handle_failure(now, r);
        }
        self.check_split_brain(false);
        self.demote.handle_peer_states(self.table.states(), now);
    }

    /// Queues a control message, closing the connection if it cannot be.
    pub(super) fn send_ctl_or_close(&mut self, now: Instant, id: ConnId, ctl: &Ctl) {
        let Some((p, s)) = self.slot_of(id) else {
            return;
        };
        let res = match self.conns[p][s].as_mut() {
            Some(c) => c.send_ctl(&self.codec, &mut self.rng, ctl),
            None => return,
        };
        match res {
            Ok(n) => self.count_out(p, n),
            Err(e) => {
                if let Some(x) = self.table.get_mut(PeerIndex(p)) {
                    x.stats.errors.bump(super::peer_stats::ErrorKind::Io);
                }
                log::warn!(
                    "peer {}: cannot send {}: {}",
                    self.peer_addrs[p],
                    ctl.ctl_type().name(),
                    e
                );
                self.close_conn(now, id, None, true);
            }
        }
    }

    pub(super) fn count_out(&mut self, p: usize, _bytes: usize) {
        if let Some(x) = self.table.get_mut(PeerIndex(p)) {
            x.stats.frames_out = x.stats.frames_out.saturating_add(1);
        }
    }

    /// Split brain: we are master and a peer says it is too. Logged once
    /// per episode; neither side applies the other's data. An episode ends
    /// when we stop being master or the peer says it is not master; a lost
    /// connection (`may_end` false) does not end it, so reconnecting does
    /// not log it again.
    pub(super) fn check_split_brain(&mut self, may_end: bool) {
        let now_split = self.role.state() == RunState::Master && self.table.master().is_some();
        if !now_split && !may_end && self.role.state() == RunState::Master {
            return;
        }
        if now_split && !self.split_brain {
            self.counters.split_brain_episodes += 1;
            if let Some(i) = self.table.master() {
                log::error!(
                    "split brain: peer {} claims MASTER while we are MASTER; neither applies the other's data",
                    self.peer_addrs[i.0]
                );
            }
        }
        self.split_brain = now_split;
    }
}

pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
