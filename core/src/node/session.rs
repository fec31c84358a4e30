//! Connections and sessions: dialling with backoff, accepting, the v2
//! HELLO, session registration and replacement, keepalives, closing.

use core::net::IpAddr;

use crate::crypto::Crypto;
use crate::ctl::Ctl;
use crate::dialect::Dialect;
use crate::random::Random;
use crate::time::Instant;
use crate::wire::v2::{ArchTag, Hello};

use super::conn::Feed;
use super::event::{ConnId, DumpOp, Event, Rejected};
use super::log_limit::Verdict;
use super::machine::Node;
use super::marks::MarkStore;
use super::peer_stats::ErrorKind;
use super::peer_table::{AttemptId, ConnStatus, PeerIndex, SessionDecision, SessionId};

/// How soon after our connection to a legacy peer came up a connection
/// from it counts as a crossed start rather than a redial: the original
/// dials its peers one by one at start-up, each connect bounded by a 5 s
/// alarm, and accepts ours only after that.
const CROSS_WINDOW: core::time::Duration = core::time::Duration::from_secs(10);

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect> Node<'a, C, R, M, D> {
    /// The outbound connection `conn` (from `Event::Connect`) is up.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        let legacy = self.legacy;
        let Some(c) = self.conn_mut(conn) else { return };
        if !c.connecting() {
            return;
        }
        c.connected(now, legacy);
        if legacy {
            self.session_up(now, conn, None);
        } else {
            self.send_hello(now, conn);
        }
        self.flush_parts();
    }

    /// The outbound connection `conn` could not be made.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnId) {
        if let Some((p, s)) = self.slot_of(conn) {
            self.conns.close(p, s);
            self.table
                .handle_connect_failed(PeerIndex(p), AttemptId(conn.0));
            self.peer_error(now, p, ErrorKind::Io, "connect failed");
            self.note_down(now, p);
            let r = self.rng.next_u32();
            let at = self.conns.backoff_mut(p).handle_failure(now, r);
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
        if self.shutting_down {
            return Err(Rejected::ShuttingDown);
        }
        let idx = match self.table.check_inbound(remote) {
            Ok(i) => i,
            Err(_) => {
                self.counters.rejected_unknown += 1;
                // Anyone can cause this line: debug only, as bgpd does.
                log::debug!("connection from {remote} refused: not a configured peer");
                return Err(Rejected::UnknownPeer(remote));
            }
        };
        let p = idx.0;
        // Anyone can connect from a peer's address: a new connection takes
        // a free slot or the oldest pending inbound handshake, never an
        // authenticated session or our own dial. A legacy alias (the
        // peer's side of a crossed start, only read) may go too: a
        // restarted legacy peer must find room while our dead session
        // lingers (legacy has no keepalive).
        let s = match (self.conns.slot(p, 0), self.conns.slot(p, 1)) {
            (None, _) => 0,
            (_, None) => 1,
            (Some(a), Some(b)) => {
                let pending = |c: &super::conn::Conn<'a, C>| !c.outbound() && !c.up();
                #[cfg(feature = "planted-bugs")]
                let pending =
                    |c: &super::conn::Conn<'a, C>| pending(c) || self.bugs.inbound_evicts_any;
                let victim = match (pending(a), pending(b)) {
                    (true, true) => Some(if a.opened() <= b.opened() { 0 } else { 1 }),
                    (true, false) => Some(0),
                    (false, true) => Some(1),
                    (false, false) => None,
                };
                let Some(victim) = victim else {
                    if self.may_log_noise(now, p) {
                        log::info!(
                            "peer {}: connection refused: a session and our own connection hold its slots",
                            self.peer_addrs[p]
                        );
                    }
                    return Err(Rejected::Busy(remote));
                };
                if let Some(vid) = self.conns.slot(p, victim).map(|c| c.id()) {
                    self.close_conn(now, vid, None, true);
                }
                victim
            }
        };
        let id = self.alloc_conn_id();
        let c = self.conns.open(p, s, id, false, self.legacy, now);
        if self.legacy {
            // Registered as the peer's session only once it delivered an
            // authentic frame (legacy has no handshake): an unauthenticated
            // connection must not replace the live one.
            c.accepted_legacy();
        }
        if self.may_log_noise(now, p) {
            log::info!("peer {}: connected (inbound)", self.peer_addrs[p]);
        }
        if !self.legacy {
            self.send_hello(now, id);
        }
        self.flush_parts();
        Ok(id)
    }

    /// Whether what happens on `conn` can be laid at its peer's door: our
    /// own dial, or a session that authenticated (legacy: delivered an
    /// authentic frame). Anything else may be anyone using the peer's
    /// address, and is not recorded against the peer.
    pub(super) fn vouched(&self, conn: ConnId) -> bool {
        self.conn(conn)
            .is_some_and(|c| c.outbound() || c.up() || c.alias() || c.open_v2())
    }

    /// Whether a line an unauthenticated connection from peer `p`'s address
    /// caused may be logged now (see [`super::log_limit`]); says how many
    /// were suppressed before it.
    pub(super) fn may_log_noise(&mut self, now: Instant, p: usize) -> bool {
        let Some(x) = self.table.get_mut(PeerIndex(p)) else {
            return false;
        };
        match x.noise.allow(now) {
            Verdict::Suppress => false,
            Verdict::Log(0) => true,
            Verdict::Log(n) => {
                log::warn!(
                    "peer {}: {n} more lines about unauthenticated connections from its address suppressed",
                    self.peer_addrs[p]
                );
                true
            }
        }
    }

    /// A legacy connection from a peer delivered its first authentic
    /// frame: only now does it become (or join) the peer's session. False
    /// if it was closed instead.
    pub(super) fn legacy_vouched(&mut self, now: Instant, conn: ConnId) -> bool {
        let pending = self
            .conn(conn)
            .is_some_and(|c| !c.outbound() && !c.up() && !c.alias());
        if pending {
            self.session_up(now, conn, None);
        }
        self.conn(conn).is_some()
    }

    /// The platform saw the connection close or fail.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        // A peer that refuses our key hangs up during the handshake: say so.
        let why = if self.conn(conn).is_some_and(|c| c.handshaking()) {
            "closed during the handshake"
        } else {
            "connection closed"
        };
        self.conn_error(now, conn, ErrorKind::Io, why);
        self.close_conn(now, conn, Some("connection closed"), false);
        self.flush_parts();
    }

    /// Dials every peer that has no connection and whose backoff allows.
    pub(super) fn dial_due(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        for p in 0..self.table.len() {
            let idx = PeerIndex(p);
            let disconnected = self
                .table
                .get(idx)
                .is_some_and(|x| x.status() == ConnStatus::Disconnected);
            // Pending inbound handshakes (anyone may open them from the
            // peer's address) do not hold our dial back: it takes a free
            // slot or the oldest of them.
            let held = self
                .conns
                .of_peer(p)
                .any(|c| c.outbound() || c.up() || c.alias());
            if !disconnected || held || !self.conns.backoff_mut(p).may_attempt(now) {
                continue;
            }
            let s = match (self.conns.slot(p, 0), self.conns.slot(p, 1)) {
                (None, _) => 0,
                (_, None) => 1,
                (Some(a), Some(b)) => {
                    let victim = if a.opened() <= b.opened() { 0 } else { 1 };
                    if let Some(vid) = [a.id(), b.id()].get(victim).copied() {
                        self.close_conn(now, vid, None, true);
                    }
                    victim
                }
            };
            let id = self.alloc_conn_id();
            if !self.table.handle_connecting(idx, AttemptId(id.0)) {
                continue;
            }
            self.conns.open(p, s, id, true, self.legacy, now);
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
    pub(super) fn reask(&mut self, now: Instant) {
        if let Some(conn) = self.slave.reask_due(now) {
            self.ask(now, conn);
        }
    }

    /// v2 sessions: send a keepalive when quiet, close when the peer is.
    pub(super) fn keepalives(&mut self, now: Instant) {
        let mut quiet: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        let mut dead: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        for c in self.conns.iter() {
            if !c.open_v2() {
                continue;
            }
            if now.since(c.last_rx()) >= self.settings.dead_after {
                let _ = dead.push(c.id());
            } else if now.since(c.last_tx()) >= self.settings.keepalive && c.all_sent() {
                let _ = quiet.push(c.id());
            }
        }
        for &id in &dead {
            self.conn_error(now, id, ErrorKind::Io, "peer silent");
            self.close_conn(now, id, Some("peer silent; session presumed dead"), true);
        }
        let state = self.role.state();
        for &id in &quiet {
            if let Some(c) = self.conn_mut(id) {
                c.keepalive_queued(now);
            }
            self.send_ctl_or_close(now, id, &Ctl::State(state));
        }
    }

    /// Ends connects and handshakes that take too long. The connect
    /// deadline is the node's own: a platform that never reports the end
    /// of a connect (a reset that closed it silently) must not leave the
    /// peer unreachable for good.
    pub(super) fn expire_handshakes(&mut self, now: Instant) {
        let mut late: heapless::Vec<(ConnId, &'static str), 64> = heapless::Vec::new();
        for c in self.conns.iter() {
            let limits = (
                self.settings.connect_timeout,
                self.settings.handshake_timeout,
            );
            let Some((limit, why)) = c.open_limit(limits.0, limits.1) else {
                continue;
            };
            if now.since(c.opened()) >= limit {
                let _ = late.push((c.id(), why));
            }
        }
        for &(id, why) in &late {
            self.conn_error(now, id, ErrorKind::Io, why);
            self.close_conn(now, id, Some(why), true);
        }
    }

    /// Sends our v2 HELLO on a fresh connection.
    pub(super) fn send_hello(&mut self, now: Instant, id: ConnId) {
        let mut nonce = [0u8; 32];
        self.rng.fill(&mut nonce);
        let hello = Hello {
            node_id: self.settings.node_id,
            boot_epoch: self.settings.boot_epoch,
            nonce,
            run_state: self.role.state(),
            resume: self.resume_position(),
            arch: ArchTag::host(),
            dialect: D::ID,
        };
        let Some((p, s)) = self.slot_of(id) else {
            return;
        };
        let Some(c) = self.conns.slot_mut(p, s) else {
            return;
        };
        if c.send_hello(hello) {
            self.count_out(p);
        } else {
            self.peer_error(now, p, ErrorKind::Io, "cannot queue HELLO");
            self.close_conn(now, id, Some("cannot queue HELLO"), true);
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
        let outbound = self.conns.slot(p, s).is_some_and(|c| c.outbound());
        if self.legacy && self.legacy_crossed(now, p, id, outbound) {
            return;
        }
        match self
            .table
            .handle_session_up(PeerIndex(p), SessionId(id.0), outbound, ids, now)
        {
            Some(SessionDecision::Accept { replaces }) => {
                if let Some(c) = self.conns.slot_mut(p, s) {
                    c.session_up();
                }
                self.conns.backoff_mut(p).handle_success();
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

    /// Legacy crossed start: both sides dialled at once (within
    /// [`CROSS_WINDOW`]), so a peer has a session in each direction. The original reads only the connection
    /// it accepted last, which is ours, and never reads its own outbound
    /// one again (D-11); it also sends on whichever it holds at the time.
    /// So we send on our outbound connection and keep reading both: with
    /// the original and with ourselves at the other end, every message gets
    /// through both ways. `true` if the session was settled here.
    fn legacy_crossed(&mut self, now: Instant, p: usize, id: ConnId, outbound: bool) -> bool {
        let Some(ConnStatus::Connected(cur)) = self.table.get(PeerIndex(p)).map(|x| x.status())
        else {
            return false;
        };
        let cur = ConnId(cur.0);
        let cur_outbound = match self.conn(cur) {
            Some(c) if c.up() && c.outbound() != outbound => c.outbound(),
            _ => return false,
        };
        let addr = self.peer_addrs[p];
        let young = self
            .table
            .get(PeerIndex(p))
            .and_then(|x| x.stats.up_since)
            .is_some_and(|t| now.since(t) < CROSS_WINDOW);
        if cur_outbound && !young {
            // Not a crossed start: the peer dialled again because it lost
            // our connection (it restarted); its new one replaces ours.
            return false;
        }
        if cur_outbound {
            // Ours is already current: the new inbound one is only read.
            if let Some(c) = self.conn_mut(id) {
                c.become_alias();
            }
            log::info!("peer {addr}: crossed connections; sending on ours, reading both");
            return true;
        }
        // Ours arrives second: it becomes current, theirs is only read,
        // unless we already fed the peer data on theirs (the legacy feed
        // waits 2 s, as the original's snapshot timer does, so only a
        // crossing that late gets here): what is in flight on it could
        // arrive after what we send on ours, so it is closed.
        if self.conn(cur).is_some_and(|c| c.feed() != Feed::Idle) {
            self.close_conn(
                now,
                cur,
                Some("crossed connections; closing theirs, which already carried our data"),
                true,
            );
            return false;
        }
        if let Some(dump) = self.conn_mut(cur).and_then(|c| c.demote_to_alias()) {
            self.push_event(Event::Dump {
                dump,
                op: DumpOp::Cancel,
            });
        }
        if let Some(c) = self.conn_mut(id) {
            c.session_up();
        }
        self.table
            .handle_session_moved(PeerIndex(p), SessionId(id.0), true);
        self.slave.conn_moved(cur, id);
        self.conns.backoff_mut(p).handle_success();
        log::info!("peer {addr}: crossed connections; sending on ours, reading both");
        // The connector announces its state first (reference §10.4); a
        // master feeds the peer on the connection it reads.
        self.send_ctl_or_close(now, id, &Ctl::State(self.role.state()));
        self.maybe_start_feed(now, id, None);
        true
    }

    /// The connection a message read on `conn` belongs to: a legacy alias
    /// speaks for its peer's current session.
    pub(super) fn session_of(&self, conn: ConnId) -> ConnId {
        let Some((p, s)) = self.slot_of(conn) else {
            return conn;
        };
        if !self.conns.slot(p, s).is_some_and(|c| c.alias()) {
            return conn;
        }
        match self.table.get(PeerIndex(p)).map(|x| x.status()) {
            Some(ConnStatus::Connected(cur)) => ConnId(cur.0),
            _ => conn,
        }
    }

    /// Forgets a connection. `reason` is logged; `tell` asks the platform
    /// to close it (not needed when the platform reported the close).
    ///
    /// Never recursive (firmware stacks are small): closing the connection
    /// of the master we follow makes us ask the next one, which can fail
    /// and end that connection too; those are closed by this loop.
    pub(super) fn close_conn(
        &mut self,
        now: Instant,
        id: ConnId,
        reason: Option<&str>,
        tell: bool,
    ) {
        let mut next = Some((id, reason, tell));
        while let Some((id, reason, tell)) = next.take() {
            if self.forget_conn(now, id, reason, tell) {
                next = self.attach_step(now).map(|(c, why)| (c, why, true));
            }
        }
    }

    /// [`close_conn`](Self::close_conn) for one connection; whether it was
    /// the one we followed (a new master is to be found).
    fn forget_conn(&mut self, now: Instant, id: ConnId, reason: Option<&str>, tell: bool) -> bool {
        let Some((p, gone)) = self.release(now, id, reason, tell) else {
            return false;
        };
        if gone.alias {
            // Only read, never current: the session is unaffected.
            return false;
        }
        let idx = PeerIndex(p);
        let was_current = gone.up && self.table.handle_session_down(idx, SessionId(id.0));
        if was_current && self.legacy {
            // The peer's replaced connection goes too: the original never
            // reads it again, so only a fresh dial is sure to be read.
            let alias = self.conns.of_peer(p).find(|x| x.alias()).map(|x| x.id());
            if let Some(a) = alias {
                self.release(now, a, None, true);
            }
        }
        let followed = self.slave.conn_gone(id);
        if was_current {
            if let Some(x) = self.peer_stats_mut(p) {
                x.snapshot_receive_ended(now, false);
            }
        }
        self.job_conn_gone(id);
        let backs_off = was_current || (!gone.up && gone.outbound);
        #[cfg(feature = "planted-bugs")]
        let backs_off = backs_off || (!gone.up && self.bugs.inbound_failure_backs_off);
        if backs_off {
            // Reconnect after a short pause (a flapping link must not spin).
            // A failed inbound handshake is not ours: anyone may cause
            // one, and it must not push our next dial back.
            self.conns.backoff_mut(p).handle_success();
            let r = self.rng.next_u32();
            self.conns.backoff_mut(p).handle_failure(now, r);
        }
        self.check_split_brain(false);
        self.demote.handle_peer_states(self.table.states(), now);
        followed
    }

    /// Drops a connection's state in place (a connection is kilobytes:
    /// it is not moved out), cancels its snapshot, tells the platform and
    /// the peer table. Returns its peer and what the rest of the close
    /// needs to know.
    fn release(
        &mut self,
        now: Instant,
        id: ConnId,
        reason: Option<&str>,
        tell: bool,
    ) -> Option<(usize, Gone)> {
        let (p, s) = self.slot_of(id)?;
        let c = self.conns.slot(p, s)?;
        let gone = Gone {
            feed: c.feed(),
            connecting: c.connecting(),
            up: c.up(),
            outbound: c.outbound(),
            alias: c.alias(),
        };
        let vouched = self.vouched(id);
        self.conns.close(p, s);
        if let Some(r) = reason {
            if vouched || self.may_log_noise(now, p) {
                log::info!("peer {}: {}", self.peer_addrs[p], r);
            }
        }
        if let Feed::Snapshot { dump, .. } = gone.feed {
            if let Some(x) = self.peer_stats_mut(p) {
                x.snapshot_send_ended(now, false);
            }
            self.push_event(Event::Dump {
                dump,
                op: DumpOp::Cancel,
            });
        }
        self.note_down(now, p);
        if tell {
            self.push_event(Event::Close { conn: id });
        }
        let idx = PeerIndex(p);
        if gone.connecting {
            self.table.handle_connect_failed(idx, AttemptId(id.0));
        }
        // A handshake that never completed leaves an outbound attempt
        // registered as Connecting: clear it too.
        if !gone.up && gone.outbound {
            self.table.handle_connect_failed(idx, AttemptId(id.0));
        }
        Some((p, gone))
    }

    /// Peer `p` lost its last connection: remember since when it is down.
    fn note_down(&mut self, now: Instant, p: usize) {
        if self.conn_count(p) == 0 {
            if let Some(x) = self.peer_stats_mut(p) {
                x.down_since = Some(now);
            }
        }
    }

    /// Queues a control message, closing the connection if it cannot be.
    pub(super) fn send_ctl_or_close(&mut self, now: Instant, id: ConnId, ctl: &Ctl) {
        if !self.try_send_ctl(now, id, ctl) {
            self.close_conn(now, id, None, true);
        }
    }

    /// Queues a control message; false if it could not be (counted and
    /// logged: the caller closes the connection). A connection that is
    /// gone is not a failure.
    pub(super) fn try_send_ctl(&mut self, now: Instant, id: ConnId, ctl: &Ctl) -> bool {
        let Some((p, s)) = self.slot_of(id) else {
            return true;
        };
        let res = match self.conns.slot_mut(p, s) {
            Some(c) => c.send_ctl(&self.codec, &mut self.rng, ctl),
            None => return true,
        };
        match res {
            Ok(_) => {
                self.count_out(p);
                true
            }
            Err(e) => {
                self.peer_error(now, p, ErrorKind::Io, "cannot queue a message");
                log::warn!(
                    "peer {}: cannot send {}: {}",
                    self.peer_addrs[p],
                    ctl.ctl_type().name(),
                    e
                );
                false
            }
        }
    }
}

/// What [`Node::close_conn`] needs of a connection it dropped.
#[derive(Debug, Clone, Copy)]
struct Gone {
    feed: Feed,
    connecting: bool,
    up: bool,
    outbound: bool,
    alias: bool,
}
