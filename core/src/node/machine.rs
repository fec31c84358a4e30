//! The `Node`: one sasyncd instance's decisions, driven by its platform.
//!
//! Inputs are `handle_*` calls with the current time; outputs are drained
//! with `poll_event`, `poll_transmit`, `poll_pfkey` and `poll_timeout`. The
//! node never blocks, never allocates and never reads a clock.

use core::net::IpAddr;

use crate::config::{Config, IfName, Listen, Protocol, MAX_PEERS};
use crate::crypto::{Crypto, SecretKey};
use crate::ctl::Ctl;
use crate::dialect::{Dialect, OpenBsd, Scope};
use crate::pfkey::FilterPolicy;
use crate::random::Random;
use crate::state::{FlushMode, Position, RunState};
use crate::time::Instant;
use crate::wire::legacy::LegacyCodec;

use super::carp::{RoleTracker, StateChange};
use super::conn::Conn;
use super::demote::{DemoteEffect, Demotion};
use super::event::{ConnId, DumpId, Event, NodeError, Settings};
use super::feed::MasterFeed;
use super::fingerprint::BucketSums;
use super::ike::{Control, IkeControl};
use super::jobs::Job;
use super::marks::{MarkStore, SnapshotMarks};
use super::peer_stats::{ErrorKind, PeerStats};
use super::peer_table::{ConnStatus, PeerIndex, PeerTable};
use super::pfkeyq::PfkeyQueue;
use super::ring::DeltaRing;
use super::scratch::Scratch;
use super::slave::SlaveSync;
use super::slots::ConnSlots;
use super::stats::Counters;
use super::storage::{EventQueue, Managed, NodeStorage, StorageError};

/// Default bytes of PF_KEY messages waiting for the local kernel.
pub const PFKEY_QUEUE_BYTES: usize = 16 * 1024;
/// The smallest PF_KEY queue (for a dialect that writes records as they
/// come): the room a slave keeps before it reads a frame.
pub const MIN_PFKEY_QUEUE_BYTES: usize = frame_room(1);

/// The PF_KEY queue room a slave keeps free before it reads a frame, for
/// a dialect that writes a record as up to `growth` times its length
/// ([`Dialect::WRITE_GROWTH`](crate::dialect::Dialect::WRITE_GROWTH)):
/// every record one frame can carry, as written, with the queue's 2-byte
/// length each. A v2 frame carries at most `MAX_PAYLOAD` bytes of
/// records, each at least a 16-byte header (`sadb_msg`, `nlmsghdr`:
/// `record_len` refuses shorter), so at most 256 of them; a grown record
/// may be padded by 3 bytes to its alignment. A legacy frame carries one
/// record, which this covers too. Less room than this, and the last
/// records of a full frame would find the queue full and be lost.
pub const fn frame_room(growth: usize) -> usize {
    const MIN_RECORD: usize = 16;
    let payload = crate::wire::v2::MAX_PAYLOAD;
    let records = payload / MIN_RECORD;
    payload * growth + records * (2 + 3 * (growth - 1))
}

/// Default capacity of the event queue. Generous: every connection can
/// have a few outstanding and the node-level ones are few.
pub const EVENTS: usize = 256;

/// The smallest event queue for `peers` peers: four events for each of
/// their two connections and sixteen of the node's own.
pub const fn min_events(peers: usize) -> usize {
    8 * peers + 16
}

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
    /// A v2 slave keeps following its master when another peer newly
    /// claims MASTER (until the old session dies).
    pub follow_dead_master: bool,
    /// The event queue holds two events: an `EV` below `min_events`.
    pub short_event_queue: bool,
    /// Snapshot ADDs keep X_REPLAY and X_LIFETIME_LASTUSE (EPERM on
    /// OpenBSD).
    pub snapshot_keeps_counters: bool,
    /// Every forwarded UPDATE becomes an ADD (MOBIKE moves are lost).
    pub update_always_add: bool,
    /// Snapshots and repairs do not re-group bundles.
    pub no_regroup: bool,
    /// A v2 slave keeps following a master that stepped down (a split
    /// brain's loser) instead of attaching to the one left.
    pub keep_split_loser: bool,
    /// An inbound connection may evict any connection of its peer (an
    /// authenticated session, our own dial), as before issue 22.
    pub inbound_evicts_any: bool,
    /// A failed inbound handshake restarts the outbound backoff, as
    /// before issue 22 (anyone from the peer's address pushes our next
    /// dial back).
    pub inbound_failure_backs_off: bool,
    /// A legacy alias (the peer's side of a crossed start) may be evicted
    /// by an inbound connection like a pending one, as before the probe.
    pub alias_evictable: bool,
    /// A legacy node refused a connection from a peer's address without
    /// probing its own session to that peer.
    pub no_alias_probe: bool,
    /// A repair's sweep keeps a grouping of the slave's that the master
    /// does not have (before seed 223026619's fix).
    pub keep_foreign_groups: bool,
    /// A node that becomes master does not move its outbound sequence
    /// numbers past those carried (the remote drops its packets).
    pub no_seq_jump: bool,
    /// A master leaves the SAs its keying daemon adds at the kernel's
    /// replay-event thresholds (an event every 2 packets).
    pub no_seq_thresholds: bool,
    /// A slave writes the master's change without the add the dialect
    /// puts first (Linux: the UPDSA completing a larval state the slave
    /// never got is refused).
    pub no_add_first: bool,
}

/// The sequence numbers of the PF_KEY requests we write (a slave's
/// applied messages, a sweep's deletes, a legacy snapshot's FLUSH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PfkeySeq(u32);

impl PfkeySeq {
    /// The next request's number.
    pub fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
}

/// One sasyncd instance, over storage its platform provides
/// ([`NodeStorage`]: the delta ring, send and receive buffers, PF_KEY and
/// event queues, peers and connection slots; their sizes are the node's
/// capacities) and `M`, the platform's storage for a snapshot's marks (the
/// slave's sweep, see [`marks`](super::marks)). The storage's minimums are
/// checked by [`new`](Self::new).
///
/// A platform drives it through the contract in [`crate::platform`]
/// (implement [`Platform`](crate::platform::Platform), whose
/// `poll_input` hands it its inputs; call [`drive`](crate::platform::drive)
/// after every input and by the deadline it returns); the design is in
/// `doc/ARCHITECTURE.md`.
///
/// `D` is the kernel's [`Dialect`]: every kernel record the node reads,
/// rewrites or writes goes through it (OpenBSD's PF_KEY by default), and
/// its v2 HELLO names it.
pub struct Node<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect = OpenBsd> {
    pub(super) settings: Settings,
    pub(super) dialect: D,
    pub(super) crypto: C,
    pub(super) rng: R,
    pub(super) codec: LegacyCodec<C>,
    pub(super) key: SecretKey<32>,
    pub(super) legacy: bool,
    pub(super) flushmode: FlushMode,
    pub(super) policy: FilterPolicy,
    pub(super) peer_addrs: heapless::Vec<IpAddr, MAX_PEERS>,
    pub(super) table: PeerTable<'a>,
    /// Two connection slots per peer, each peer's backoff, whose turn it
    /// is to send.
    pub(super) conns: ConnSlots<'a, C>,
    pub(super) role: RoleTracker,
    /// When the run state last changed (or the node started).
    pub(super) state_since: Instant,
    /// The carp interface, demotion group and listen address the node was
    /// configured with: only to tell a reload what changed.
    pub(super) interface: Option<IfName>,
    pub(super) group: IfName,
    pub(super) listen: Listen,
    pub(super) demote: Demotion,
    pub(super) ike: IkeControl,
    pub(super) ring: DeltaRing<'a>,
    pub(super) marks: SnapshotMarks<M>,
    pub(super) scratch: Managed<'a, Scratch>,
    pub(super) pfkeyq: PfkeyQueue<'a>,
    pub(super) events: EventQueue<'a>,
    pub(super) next_dump: u32,
    pub(super) pfkey_seq: PfkeySeq,
    pub(super) job: Job,
    /// Master: the digest schedule, the last digest announced, each
    /// slot's bundle pass.
    pub(super) feed: MasterFeed,
    /// Per-bucket sums of the last digest (master: what it announced;
    /// slave: its own tables at the master's digest position).
    pub(super) sums: BucketSums,
    /// Slave: where we stand in the master's stream, whom we follow, what
    /// we owe ourselves.
    pub(super) slave: SlaveSync,
    pub(super) split_brain: bool,
    /// `handle_shutdown` was called.
    pub(super) shutting_down: bool,
    pub(super) counters: Counters,
    /// Slave: the last outbound sequence number carried per SA.
    pub(super) carried: D::Seqs,
    /// How far past the last carried number a new master moves each
    /// outbound SA (`replay margin`).
    pub(super) replay_margin: u64,
    /// Planted bugs (test builds only).
    #[cfg(feature = "planted-bugs")]
    pub bugs: PlantedBugs,
}

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect> core::fmt::Debug
    for Node<'a, C, R, M, D>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("state", &self.role.state())
            .field("peers", &self.table.len())
            .field("applied", &self.slave.applied())
            .finish()
    }
}

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect + Default> Node<'a, C, R, M, D> {
    /// Builds a node from its configuration over the platform's
    /// `storage` (checked first: [`NodeError::Storage`] names a part below
    /// its minimum). Raises the start-up carp demotion request at once; a
    /// locked node announces its role at once, a tracking one waits for
    /// the first `handle_link_state`.
    ///
    /// The node is a few kilobytes without its storage; where the stack is
    /// small (firmware), [`new_in`](Self::new_in) builds it in its place.
    pub fn new(
        config: &Config,
        settings: Settings,
        crypto: C,
        rng: R,
        marks: M,
        storage: NodeStorage<'a, C>,
        now: Instant,
    ) -> Result<Self, NodeError> {
        let (codec, key) = Self::prepare(config, &crypto, &storage)?;
        let mut node = Self::assemble(
            config, settings, crypto, rng, marks, storage, codec, key, now,
        );
        node.start(config, now);
        Ok(node)
    }

    /// [`new`](Self::new), written into `slot` (a static on firmware) with
    /// no copy of the node on the way; on error `slot` is left as it was.
    #[allow(clippy::too_many_arguments)]
    pub fn new_in<'s>(
        slot: &'s mut Option<Self>,
        config: &Config,
        settings: Settings,
        crypto: C,
        rng: R,
        marks: M,
        storage: NodeStorage<'a, C>,
        now: Instant,
    ) -> Result<&'s mut Self, NodeError> {
        let (codec, key) = Self::prepare(config, &crypto, &storage)?;
        let node = slot.insert(Self::assemble(
            config, settings, crypto, rng, marks, storage, codec, key, now,
        ));
        node.start(config, now);
        Ok(node)
    }

    /// What [`new`](Self::new) would refuse in `config` for a node of
    /// `peers` peers (its storage aside), building nothing: a
    /// configuration check (`sasyncd -n`, a reload) needs no storage, and
    /// storage built only to be dropped would carry whatever the stack
    /// held (the shared key among it) into the heap.
    pub fn check_config(config: &Config, crypto: &C, peers: usize) -> Result<(), NodeError> {
        LegacyCodec::new(crypto.clone(), config.sharedkey.as_bytes())
            .map_err(|_| NodeError::BadKey)?;
        SecretKey::<32>::new(config.sharedkey.as_bytes()).ok_or(NodeError::BadKey)?;
        super::reconfigure::legacy_dialect::<D>(config)?;
        super::reconfigure::wanted_peers(config, peers)?;
        Ok(())
    }

    /// Everything that can refuse a node, checked before it is built.
    fn prepare(
        config: &Config,
        crypto: &C,
        storage: &NodeStorage<'a, C>,
    ) -> Result<(LegacyCodec<C>, SecretKey<32>), NodeError> {
        storage.check().map_err(NodeError::Storage)?;
        // A dialect that writes records grown needs more than the minimum.
        if storage.pfkey.len() < frame_room(D::WRITE_GROWTH) {
            return Err(NodeError::Storage(StorageError::PfkeyQueue));
        }
        Self::check_config(config, crypto, storage.conns.len())?;
        let codec = LegacyCodec::new(crypto.clone(), config.sharedkey.as_bytes())
            .map_err(|_| NodeError::BadKey)?;
        let key = SecretKey::new(config.sharedkey.as_bytes()).ok_or(NodeError::BadKey)?;
        Ok((codec, key))
    }

    /// The node [`prepare`](Self::prepare) vouched for (its peers fit and
    /// are distinct), not yet started.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        config: &Config,
        settings: Settings,
        crypto: C,
        rng: R,
        marks: M,
        storage: NodeStorage<'a, C>,
        codec: LegacyCodec<C>,
        key: SecretKey<32>,
        now: Instant,
    ) -> Self {
        let NodeStorage {
            ring,
            pfkey,
            events,
            peers,
            conns,
            scratch,
        } = storage;
        let mut table = PeerTable::new(peers);
        let mut peer_addrs = heapless::Vec::new();
        for &(addr, port) in
            &super::reconfigure::wanted_peers(config, conns.len()).unwrap_or_default()
        {
            if table.add(addr, port).is_ok() {
                let _ = peer_addrs.push(addr);
            }
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
        Node {
            settings,
            dialect: D::default(),
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
            conns: ConnSlots::new(conns),
            role,
            state_since: now,
            interface: config.interface.clone(),
            group: config.group.clone(),
            listen: config.listen.clone(),
            demote,
            ike: IkeControl::new(control),
            ring: DeltaRing::new(ring, 0),
            marks: SnapshotMarks::new(marks),
            scratch,
            pfkeyq: PfkeyQueue::new(pfkey),
            events: EventQueue::new(events),
            next_dump: 1,
            pfkey_seq: PfkeySeq(0),
            job: Job::None,
            feed: MasterFeed::new(),
            sums: BucketSums::EMPTY,
            slave: SlaveSync::new(),
            split_brain: false,
            shutting_down: false,
            counters: Counters::default(),
            carried: D::Seqs::default(),
            replay_margin: u64::from(config.replay_margin),
            #[cfg(feature = "planted-bugs")]
            bugs: PlantedBugs::default(),
        }
    }
}

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect> Node<'a, C, R, M, D> {
    /// What a freshly written node does first: a locked node enters its
    /// state, the demotion and IKE requests are queued, peers are dialled.
    pub(super) fn start(&mut self, config: &Config, now: Instant) {
        if let Some(s) = config.locked {
            self.enter_state(
                now,
                StateChange {
                    from: RunState::Init,
                    to: s,
                },
            );
        } else {
            self.ike.handle_run_state(RunState::Init);
        }
        self.demote.handle_peer_states(self.table.states(), now);
        self.flush_parts();
        self.dial_due(now);
    }

    /// How many connections the node can hold (two per peer).
    pub fn connection_slots(&self) -> usize {
        self.conns.peers() * 2
    }

    /// The connection in slot `slot` (`0..connection_slots()`), if any.
    pub fn connection_in_slot(&self, slot: usize) -> Option<ConnId> {
        self.conns.slot(slot / 2, slot % 2).map(|c| c.id())
    }

    /// Whether connection `conn` speaks for its peer: our own dial, or one
    /// that authenticated (legacy: delivered an authentic frame, or the
    /// peer's side of a crossed start). What no one else may close.
    pub fn connection_vouched(&self, conn: ConnId) -> bool {
        self.vouched(conn)
    }

    /// Our run state.
    pub fn run_state(&self) -> RunState {
        self.role.state()
    }

    // ----- inputs: carp, IKE, demotion, shutdown -------------------------

    /// The carp interface's link state (`LINK_STATE_*`): at start-up, from
    /// the routing socket, or after `Event::RecheckCarp`.
    pub fn handle_link_state(&mut self, now: Instant, link_state: u8) {
        if self.shutting_down {
            return;
        }
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

    /// Orderly shutdown: release our demotion, stop every feed and job,
    /// dial and accept no more, and close each connection once what is
    /// queued on it is written ([`is_shut_down`](Self::is_shut_down) says
    /// when all are). The kernel's SAs are left alone.
    pub fn handle_shutdown(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        log::info!("shutting down");
        self.shutting_down = true;
        self.demote.handle_shutdown(now);
        self.job_cancel();
        self.stop_feeds();
        self.slave.shut_down();
        for p in 0..self.conns.peers() {
            for s in 0..2 {
                let done = self
                    .conns
                    .slot(p, s)
                    .map(|c| (c.id(), !c.is_open() || c.all_sent()));
                if let Some((id, true)) = done {
                    self.close_conn(now, id, None, true);
                }
            }
        }
        self.flush_parts();
    }

    /// After [`handle_shutdown`](Self::handle_shutdown): every connection
    /// is closed, its queued bytes written, and what the master sent us is
    /// in our kernel. A platform that cannot wait
    /// (a peer that does not read) gives up after a grace period of its own.
    pub fn is_shut_down(&self) -> bool {
        self.shutting_down && self.pfkeyq.is_empty() && self.conns.is_empty()
    }

    /// Time passed: retries, reconnects, demotion deadline, digests.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.demote.handle_timeout(now);
        self.ike.handle_timeout(now);
        if self.shutting_down {
            self.flush_parts();
            return;
        }
        self.expire_handshakes(now);
        self.legacy_feeds_due(now);
        if let Some(f) = self
            .slave
            .following()
            .filter(|_| self.ack_deadline().is_some_and(|t| t <= now))
        {
            self.ack(now, f.conn, true);
        }
        self.keepalives(now);
        self.reask(now);
        self.dial_due(now);
        self.digest_due(now);
        self.flush_parts();
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = earliest(self.demote.poll_timeout(), self.ike.poll_timeout());
        if self.shutting_down {
            return t;
        }
        for (i, p) in self.table.iter() {
            // As `dial_due`: pending inbound handshakes do not hold a dial
            // back, so their peer's retry is due too.
            let held = self
                .conns
                .of_peer(i.0)
                .any(|c| c.outbound() || c.up() || c.alias());
            if p.status() == ConnStatus::Disconnected && !held {
                t = earliest(
                    t,
                    Some(
                        self.conns
                            .backoff(i.0)
                            .poll_timeout()
                            .unwrap_or(Instant::ZERO),
                    ),
                );
            }
        }
        {
            for c in self.conns.iter() {
                let limits = (
                    self.settings.connect_timeout,
                    self.settings.handshake_timeout,
                );
                if let Some((limit, _)) = c.open_limit(limits.0, limits.1) {
                    t = earliest(t, Some(c.opened().add(limit)));
                }
                t = earliest(t, c.feed_at());
                if c.open_v2() {
                    if c.all_sent() {
                        t = earliest(t, Some(c.last_tx().add(self.settings.keepalive)));
                    }
                    t = earliest(t, Some(c.last_rx().add(self.settings.dead_after)));
                }
            }
        }
        if self.role.state() == RunState::Master {
            t = earliest(t, self.feed.digest_at());
        }
        t = earliest(t, self.ack_deadline());
        t = earliest(t, self.slave.reask_at());
        t
    }

    // ----- outputs ---------------------------------------------------------

    /// The next thing the platform must do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.flush_parts();
        self.events.pop_front()
    }

    /// Bytes to write to some connection that is not blocked (round robin,
    /// so one busy peer cannot starve the others). Report what was written
    /// with `handle_sent`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(ConnId, &[u8])> {
        let mut found = None;
        for i in self.conns.in_turn() {
            let (p, s) = (i / 2, i % 2);
            let Some(id) = self.conns.slot(p, s).map(|c| c.id()) else {
                continue;
            };
            self.pump(now, id);
            if self
                .conns
                .slot(p, s)
                .is_some_and(|c| !c.all_sent() && !c.blocked())
            {
                found = Some((p, s));
                self.conns.sent(i);
                break;
            }
        }
        let (p, s) = found?;
        let c = self.conns.slot(p, s)?;
        Some((c.id(), c.unsent()))
    }

    /// Bytes to write to this connection (the platform found it writable).
    pub fn poll_transmit_conn(&mut self, now: Instant, conn: ConnId) -> Option<&[u8]> {
        self.pump(now, conn);
        let c = self.conn(conn)?;
        (!c.all_sent()).then(|| c.unsent())
    }

    /// The platform wrote the first `n` bytes of what was offered. Fewer
    /// than offered means the connection is full: it is offered nothing
    /// more until [`handle_writable`](Self::handle_writable).
    pub fn handle_sent(&mut self, now: Instant, conn: ConnId, n: usize) {
        let mut drained = false;
        if let Some(c) = self.conn_mut(conn) {
            drained = c.wrote(n, now);
            let peer = c.peer();
            if let Some(p) = self.table.get_mut(peer) {
                p.stats.bytes_out = p.stats.bytes_out.saturating_add(n as u64);
            }
        }
        if self.shutting_down && drained {
            self.close_conn(now, conn, None, true);
        } else {
            self.pump(now, conn);
        }
        self.flush_parts();
    }

    /// A connection whose last write was short can take bytes again.
    pub fn handle_writable(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conn_mut(conn) {
            c.writable();
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

    /// The kernel refused the message `poll_pfkey` offered (`errno` from the
    /// write): it is dropped and counted like a kernel error reply. A write
    /// that would merely block is not a failure: offer it again later.
    pub fn handle_pfkey_write_failed(&mut self, now: Instant, errno: u32) {
        if let Some(r) = self.pfkeyq.front().and_then(|b| self.dialect.request(b)) {
            self.kernel_refused(now, r, errno);
        }
        self.pfkeyq.pop();
        self.after_queue_drained(now);
        self.flush_parts();
    }

    // ----- internals -------------------------------------------------------

    /// What shapes the dialect's filter, from the node's fields (a
    /// function of fields, not of `self`, so that the scratch buffers can
    /// be borrowed beside it).
    pub(super) fn scope<'s>(
        policy: FilterPolicy,
        peers: &'s [IpAddr],
        settings: &Settings,
    ) -> Scope<'s> {
        Scope {
            policy,
            peers,
            own: settings.pid,
        }
    }

    pub(super) fn alloc_conn_id(&mut self) -> ConnId {
        self.conns.alloc_id()
    }

    pub(super) fn alloc_dump_id(&mut self) -> DumpId {
        let id = DumpId(self.next_dump);
        self.next_dump = self.next_dump.wrapping_add(1).max(1);
        id
    }

    pub(super) fn slot_of(&self, id: ConnId) -> Option<(usize, usize)> {
        self.conns.slot_of(id)
    }

    pub(super) fn conn(&self, id: ConnId) -> Option<&Conn<'a, C>> {
        self.conns.get(id)
    }

    pub(super) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn<'a, C>> {
        self.conns.get_mut(id)
    }

    pub(super) fn conn_count(&self, p: usize) -> usize {
        self.conns.count(p)
    }

    /// Ids of every connection that is open (legacy, or v2 authenticated).
    pub(super) fn open_conns(&self) -> heapless::Vec<ConnId, 64> {
        let mut v = heapless::Vec::new();
        for c in self.conns.iter() {
            if c.is_open() && c.up() {
                let _ = v.push(c.id());
            }
        }
        v
    }

    pub(super) fn push_event(&mut self, e: Event) {
        #[cfg(feature = "planted-bugs")]
        let full = self.bugs.short_event_queue && self.events.len() >= 2;
        #[cfg(not(feature = "planted-bugs"))]
        let full = false;
        if full || self.events.push_back(e).is_err() {
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
        self.state_since = now;
        if let Some(on) = change.promiscuous() {
            self.push_event(Event::Promisc(on));
        }
        self.ike.handle_run_state(change.to);
        if change.from == RunState::Master {
            // Our own IKE daemon wrote to our kernel while we were master:
            // no other master's delta stream describes it. We resume from
            // our own head, a position no other ring holds, so the next
            // master resumes us across streams and repairs by bucket what
            // differs (after a split brain or a preemption, little) rather
            // than sending every entry again: with a large table and mark
            // storage too small for it, that is two transfers of the table
            // (the snapshot, then its sweep in batches).
            self.slave.left_master(if self.legacy {
                Position::NONE
            } else {
                self.ring.position()
            });
            self.stop_feeds();
            self.job_cancel();
            self.feed.stop_digests();
        }
        if change.to == RunState::Master {
            let mut epoch = self.rng.next_u64();
            if epoch == 0 {
                epoch = 1;
            }
            self.ring.new_epoch(epoch);
            self.table.forget_master_claims();
            self.slave.became_master();
            self.job_cancel();
            self.start_seq_jump();
            // Anti-entropy is a v2 feature.
            let interval = self.settings.digest_interval;
            self.feed.schedule_digests(!self.legacy, now, interval);
        }
        self.check_split_brain(true);
        self.slave.unfollow();
        for &id in &self.open_conns() {
            self.send_ctl_or_close(now, id, &Ctl::State(change.to));
        }
        if change.to != RunState::Master {
            self.attach(now);
        }
        // Reconnect everyone now (the original does this on every change).
        self.conns.redial_all();
        if change.to == RunState::Master && self.legacy {
            // v2 slaves ask for their stream (`Resync`) when they learn we
            // are master; legacy slaves do not, so we start it (D-12).
            for &id in &self.open_conns() {
                self.maybe_start_feed(now, id, None);
            }
        }
        self.dial_due(now);
    }

    /// Where a slave asks to resume: its applied position, unless a
    /// snapshot or sweep is unfinished (then only a full snapshot will do).
    pub(super) fn resume_position(&self) -> Position {
        if self.slave.receiving() || self.job.is_sweep() {
            Position::NONE
        } else {
            self.slave.applied()
        }
    }

    pub(super) fn count_out(&mut self, p: usize) {
        if let Some(x) = self.peer_stats_mut(p) {
            x.frames_out = x.frames_out.saturating_add(1);
        }
    }

    /// Peer `p`'s counters.
    pub(super) fn peer_stats_mut(&mut self, p: usize) -> Option<&mut PeerStats> {
        self.table.get_mut(PeerIndex(p)).map(|x| &mut x.stats)
    }

    /// Counts an error with peer `p` and remembers it as its last one.
    pub(super) fn peer_error(
        &mut self,
        now: Instant,
        p: usize,
        kind: ErrorKind,
        reason: &'static str,
    ) {
        if let Some(x) = self.peer_stats_mut(p) {
            x.record_error(kind, reason, now);
        }
    }

    /// [`peer_error`](Self::peer_error) for the peer of a connection.
    pub(super) fn conn_error(
        &mut self,
        now: Instant,
        conn: ConnId,
        kind: ErrorKind,
        reason: &'static str,
    ) {
        let Some((p, _)) = self.slot_of(conn) else {
            return;
        };
        // Anyone may connect from the peer's address: while the peer has
        // an authenticated session, what fails on a connection it has not
        // authenticated is not recorded against it (its Last error stays
        // true). Without one, it is all there is to tell a wrong key by.
        let up = matches!(
            self.table.get(PeerIndex(p)).map(|x| x.status()),
            Some(super::peer_table::ConnStatus::Connected(_))
        );
        if up && !self.vouched(conn) {
            return;
        }
        self.peer_error(now, p, kind, reason);
    }

    /// The peer whose data our kernel queue holds: the master we follow.
    pub(super) fn data_source(&self) -> Option<usize> {
        if self.legacy {
            self.slave.legacy_source()
        } else {
            self.slave
                .following()
                .and_then(|f| self.slot_of(f.conn))
                .map(|(p, _)| p)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pfkey_sequence_numbers_count_up_and_wrap() {
        let mut s = PfkeySeq(u32::MAX - 1);
        assert_eq!((s.next(), s.next(), s.next()), (u32::MAX, 0, 1));
    }
}
