//! The configured peers: who may connect, which session is current, what
//! each peer announced, and per-peer counters.
//!
//! Rules kept here:
//!
//! * Only configured addresses may connect; anything else gets an
//!   [`UnknownPeer`] error (IPv4-mapped IPv6 sources match their IPv4 form).
//! * A peer has at most one current session. A second session from the same
//!   direction replaces the old one cleanly: the node closes it (the
//!   original leaked it, D-11).
//! * Simultaneous connects (each side dialled the other) must settle on the
//!   *same* TCP connection on both sides, or each side would close the one
//!   the other kept. Rule: **keep the connection initiated by the node with
//!   the lower node id** (the ids come from the v2 HELLOs). Without ids
//!   (legacy protocol) the newest session wins, except in a crossed start,
//!   which the node settles itself (see `Node::legacy_crossed`): it sends
//!   on its own connection, the one the original reads, and reads both.
//! * A peer's announced run state belongs to its session: it is cleared
//!   when the session ends (D-32), and announcements from a replaced
//!   session are ignored.

use core::net::IpAddr;

use crate::config::MAX_PEERS;
use crate::state::RunState;
use crate::time::Instant;

use super::storage::ManagedSlice;

pub use super::peer_stats::{ErrorCounts, ErrorKind, LastError, PeerStats};

/// A node's identity from its v2 HELLO.
pub type NodeId = [u8; 16];

/// Index of a peer in the table (stable until the configuration is
/// reloaded: see [`PeerTable::reconfigure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerIndex(pub usize);

/// Identifies one established session (chosen by the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub u32);

/// Identifies one outbound connection attempt (chosen by the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptId(pub u32);

/// Connection status of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnStatus {
    /// No session and no attempt.
    Disconnected,
    /// We are dialling it.
    Connecting(AttemptId),
    /// A session is up.
    Connected(SessionId),
}

/// One configured peer.
#[derive(Debug, Clone)]
pub struct Peer {
    addr: IpAddr,
    port: u16,
    status: ConnStatus,
    /// Whether the current session is one we initiated.
    outbound: bool,
    state: Option<RunState>,
    /// Counters.
    pub stats: PeerStats,
    /// Budget of log lines unauthenticated connections from its address
    /// may cause.
    pub noise: super::log_limit::LogLimit,
}

impl Default for Peer {
    /// An unused entry (storage for a peer the table may hold).
    fn default() -> Self {
        Peer::fresh(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0)
    }
}

impl Peer {
    /// A newly configured peer: disconnected, nothing heard, no counts.
    fn fresh(addr: IpAddr, port: u16) -> Peer {
        Peer {
            addr,
            port,
            status: ConnStatus::Disconnected,
            outbound: false,
            state: None,
            stats: PeerStats::default(),
            noise: Default::default(),
        }
    }

    /// Configured address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    /// Port to dial.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Connection status.
    pub fn status(&self) -> ConnStatus {
        self.status
    }
    /// The run state it announced in its current session, if any.
    pub fn state(&self) -> Option<RunState> {
        self.state
    }
}

/// Why a peer could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// The table already holds `P` peers.
    Full,
    /// That address is already configured.
    Duplicate(IpAddr),
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TableError::Full => f.write_str("too many peers"),
            TableError::Duplicate(a) => write!(f, "peer {a} configured twice"),
        }
    }
}

impl core::error::Error for TableError {}

/// A connection came from an address that is not a configured peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownPeer(pub IpAddr);

impl core::fmt::Display for UnknownPeer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "connection from unconfigured address {} refused", self.0)
    }
}

impl core::error::Error for UnknownPeer {}

/// Node ids of both ends, for the simultaneous-connect tie-break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiebreak {
    /// Our node id.
    pub local: NodeId,
    /// The peer's node id.
    pub peer: NodeId,
}

/// What to do with a session that just came up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionDecision {
    /// Use it; close `replaces` if set.
    Accept {
        /// The session it replaces, to be closed.
        replaces: Option<SessionId>,
    },
    /// Close the new session; `keeps` stays current.
    Reject {
        /// The session that stays.
        keeps: SessionId,
    },
}

/// The configured peers, in the platform's storage (one entry per peer
/// the node can hold).
#[derive(Debug)]
pub struct PeerTable<'a> {
    buf: ManagedSlice<'a, Peer>,
    len: usize,
}

impl<'a> PeerTable<'a> {
    /// An empty table over `buf`.
    pub fn new(buf: impl Into<ManagedSlice<'a, Peer>>) -> Self {
        PeerTable {
            buf: buf.into(),
            len: 0,
        }
    }

    /// The configured peers.
    fn peers(&self) -> &[Peer] {
        &self.buf[..self.len]
    }

    fn peers_mut(&mut self) -> &mut [Peer] {
        &mut self.buf[..self.len]
    }

    /// Adds a configured peer.
    pub fn add(&mut self, addr: IpAddr, port: u16) -> Result<PeerIndex, TableError> {
        let addr = addr.to_canonical();
        if self.lookup(addr).is_some() {
            return Err(TableError::Duplicate(addr));
        }
        let slot = self.buf.get_mut(self.len).ok_or(TableError::Full)?;
        *slot = Peer::fresh(addr, port);
        self.len += 1;
        Ok(PeerIndex(self.len - 1))
    }

    /// The configured peer with this address and port: the same peer
    /// across a configuration reload.
    pub fn find(&self, addr: IpAddr, port: u16) -> Option<PeerIndex> {
        self.lookup(addr)
            .filter(|i| self.peers().get(i.0).is_some_and(|p| p.port == port))
    }

    /// A reloaded configuration: the table becomes `wanted`, in that order.
    /// A peer whose address and port are unchanged keeps its session,
    /// announced state and counters; the others start afresh. Returns, for
    /// each new index, the old index its peer came from. On error nothing
    /// changes.
    pub fn reconfigure(
        &mut self,
        wanted: &[(IpAddr, u16)],
    ) -> Result<heapless::Vec<Option<PeerIndex>, MAX_PEERS>, TableError> {
        if wanted.len() > self.buf.len() || wanted.len() > MAX_PEERS {
            return Err(TableError::Full);
        }
        let mut from = heapless::Vec::new();
        for (j, &(addr, port)) in wanted.iter().enumerate() {
            let addr = addr.to_canonical();
            if wanted[..j].iter().any(|&(a, _)| a.to_canonical() == addr) {
                return Err(TableError::Duplicate(addr));
            }
            from.push(self.find(addr, port))
                .map_err(|_| TableError::Full)?;
        }
        // Kept peers move to their new index by swaps (the storage holds
        // no spare entry); `pos` is where an old entry is now, `at` which
        // old entry a place holds.
        let mut at: [usize; MAX_PEERS] = core::array::from_fn(|i| i);
        let mut pos: [usize; MAX_PEERS] = core::array::from_fn(|i| i);
        for (j, old) in from.iter().enumerate() {
            let Some(o) = *old else { continue };
            let s = pos[o.0];
            if s != j {
                self.buf.swap(s, j);
                let (a, b) = (at[s], at[j]);
                at.swap(s, j);
                pos[a] = j;
                pos[b] = s;
            }
        }
        for (j, old) in from.iter().enumerate() {
            if old.is_none() {
                self.buf[j] = Peer::fresh(wanted[j].0.to_canonical(), wanted[j].1);
            }
        }
        self.len = wanted.len();
        Ok(from)
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers().len()
    }

    /// Whether no peer is configured.
    pub fn is_empty(&self) -> bool {
        self.peers().is_empty()
    }

    /// The peer at `idx`.
    pub fn get(&self, idx: PeerIndex) -> Option<&Peer> {
        self.peers().get(idx.0)
    }

    /// The peer at `idx`, mutably (for its counters).
    pub fn get_mut(&mut self, idx: PeerIndex) -> Option<&mut Peer> {
        self.peers_mut().get_mut(idx.0)
    }

    /// All peers with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (PeerIndex, &Peer)> + '_ {
        self.peers()
            .iter()
            .enumerate()
            .map(|(i, p)| (PeerIndex(i), p))
    }

    /// The announced state of every peer (for the demotion rule).
    pub fn states(&self) -> impl Iterator<Item = Option<RunState>> + '_ {
        self.peers().iter().map(|p| p.state)
    }

    /// The peer that currently announces itself MASTER, if any.
    pub fn master(&self) -> Option<PeerIndex> {
        self.iter()
            .find(|(_, p)| p.state == Some(RunState::Master))
            .map(|(i, _)| i)
    }

    /// The configured peer with this address.
    pub fn lookup(&self, addr: IpAddr) -> Option<PeerIndex> {
        let addr = addr.to_canonical();
        self.iter().find(|(_, p)| p.addr == addr).map(|(i, _)| i)
    }

    /// An inbound TCP connection from `addr`: accepted only from a
    /// configured peer.
    pub fn check_inbound(&self, addr: IpAddr) -> Result<PeerIndex, UnknownPeer> {
        self.lookup(addr).ok_or(UnknownPeer(addr))
    }

    /// We start dialling a disconnected peer. `false` (and no change) if it
    /// is not disconnected.
    pub fn handle_connecting(&mut self, idx: PeerIndex, attempt: AttemptId) -> bool {
        match self.peers_mut().get_mut(idx.0) {
            Some(p) if p.status == ConnStatus::Disconnected => {
                p.status = ConnStatus::Connecting(attempt);
                true
            }
            _ => false,
        }
    }

    /// An outbound attempt failed before a session came up. `true` if it
    /// was the current attempt (the node then schedules a backoff).
    pub fn handle_connect_failed(&mut self, idx: PeerIndex, attempt: AttemptId) -> bool {
        match self.peers_mut().get_mut(idx.0) {
            Some(p) if p.status == ConnStatus::Connecting(attempt) => {
                p.status = ConnStatus::Disconnected;
                true
            }
            _ => false,
        }
    }

    /// A session with the peer completed its handshake. `outbound`: we
    /// opened the TCP connection. Returns `None` for an unknown index.
    pub fn handle_session_up(
        &mut self,
        idx: PeerIndex,
        session: SessionId,
        outbound: bool,
        ids: Option<Tiebreak>,
        now: Instant,
    ) -> Option<SessionDecision> {
        let p = self.peers_mut().get_mut(idx.0)?;
        let replaces = match p.status {
            ConnStatus::Connected(old) => Some(old),
            _ => None,
        };
        if let Some(old) = replaces {
            if !keep_new(p.outbound, outbound, ids) {
                return Some(SessionDecision::Reject { keeps: old });
            }
        }
        let settling = replaces.is_some() && p.outbound != outbound;
        p.status = ConnStatus::Connected(session);
        p.outbound = outbound;
        p.state = None;
        p.stats.session_up(now, settling);
        Some(SessionDecision::Accept { replaces })
    }

    /// Legacy crossed start: the current session moves to `session` (of
    /// direction `outbound`) on a second connection with the same peer
    /// process, so what the peer announced stays. `false` if the peer had
    /// no current session.
    pub fn handle_session_moved(
        &mut self,
        idx: PeerIndex,
        session: SessionId,
        outbound: bool,
    ) -> bool {
        match self.peers_mut().get_mut(idx.0) {
            Some(p) if matches!(p.status, ConnStatus::Connected(_)) => {
                p.status = ConnStatus::Connected(session);
                p.outbound = outbound;
                true
            }
            _ => false,
        }
    }

    /// A session ended. `true` if it was the current one: the peer is then
    /// disconnected and its announced state forgotten (D-32). The end of a
    /// replaced or rejected session changes nothing.
    pub fn handle_session_down(&mut self, idx: PeerIndex, session: SessionId) -> bool {
        match self.peers_mut().get_mut(idx.0) {
            Some(p) if p.status == ConnStatus::Connected(session) => {
                p.status = ConnStatus::Disconnected;
                p.state = None;
                p.stats.up_since = None;
                true
            }
            _ => false,
        }
    }

    /// Forgets every peer's claim to be MASTER (we just became master:
    /// those claims are older than carp's verdict; a peer that really is
    /// master says so again with its next announcement).
    pub fn forget_master_claims(&mut self) {
        for p in self.peers_mut().iter_mut() {
            if p.state == Some(RunState::Master) {
                p.state = None;
            }
        }
    }

    /// The peer announced `state` on `session`. Ignored (`false`) unless
    /// that is its current session.
    pub fn handle_peer_state(
        &mut self,
        idx: PeerIndex,
        session: SessionId,
        state: RunState,
    ) -> bool {
        match self.peers_mut().get_mut(idx.0) {
            Some(p) if p.status == ConnStatus::Connected(session) => {
                p.state = Some(state);
                true
            }
            _ => false,
        }
    }
}

/// Whether a new session replaces the current one.
fn keep_new(old_outbound: bool, new_outbound: bool, ids: Option<Tiebreak>) -> bool {
    if old_outbound == new_outbound {
        // Same direction: the peer (or we) reconnected; the old one is stale.
        return true;
    }
    match ids {
        // Legacy peers send no ids: newest wins.
        None => true,
        // Same id: we are talking to ourselves or a clone; keep what we have.
        Some(t) if t.local == t.peer => false,
        // Keep the connection initiated by the lower node id.
        Some(t) => {
            let new_initiator = if new_outbound { t.local } else { t.peer };
            new_initiator == t.local.min(t.peer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    const NOW: Instant = Instant::ZERO;

    fn test_table(n: usize) -> PeerTable<'static> {
        PeerTable::new(std::vec![Peer::default(); n].leak())
    }

    fn table() -> (PeerTable<'static>, PeerIndex) {
        let mut t = test_table(4);
        let i = t.add(A, 500).unwrap();
        t.add(B, 500).unwrap();
        (t, i)
    }

    #[test]
    fn add_rejects_duplicates_and_overflow() {
        let mut t = test_table(2);
        t.add(A, 500).unwrap();
        assert_eq!(t.add(A, 501), Err(TableError::Duplicate(A)));
        t.add(B, 500).unwrap();
        let c = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(t.add(c, 500), Err(TableError::Full));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn only_configured_addresses_may_connect() {
        let (t, i) = table();
        assert_eq!(t.check_inbound(A), Ok(i));
        let stranger = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let err = t.check_inbound(stranger).unwrap_err();
        assert_eq!(err, UnknownPeer(stranger));
        assert_eq!(
            std::format!("{err}"),
            "connection from unconfigured address 198.51.100.7 refused"
        );
        // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(t.check_inbound(mapped), Ok(i));
    }

    #[test]
    fn attempts_track_only_the_current_one() {
        let (mut t, i) = table();
        assert!(t.handle_connecting(i, AttemptId(1)));
        assert!(!t.handle_connecting(i, AttemptId(2)), "already dialling");
        assert!(!t.handle_connect_failed(i, AttemptId(2)));
        assert!(t.handle_connect_failed(i, AttemptId(1)));
        assert_eq!(t.get(i).unwrap().status(), ConnStatus::Disconnected);
    }

    #[test]
    fn second_inbound_session_replaces_the_first() {
        let (mut t, i) = table();
        let d = t.handle_session_up(i, SessionId(1), false, None, NOW);
        assert_eq!(d, Some(SessionDecision::Accept { replaces: None }));
        assert!(t.handle_peer_state(i, SessionId(1), RunState::Master));
        let d = t.handle_session_up(i, SessionId(2), false, None, NOW);
        assert_eq!(
            d,
            Some(SessionDecision::Accept {
                replaces: Some(SessionId(1))
            })
        );
        let p = t.get(i).unwrap();
        assert_eq!(p.status(), ConnStatus::Connected(SessionId(2)));
        assert_eq!(p.state(), None, "the new session announces afresh");
        // The replaced session closing later must not disturb the new one,
        // and announcements arriving on it are ignored.
        assert!(!t.handle_peer_state(i, SessionId(1), RunState::Master));
        assert!(!t.handle_session_down(i, SessionId(1)));
        assert_eq!(
            t.get(i).unwrap().status(),
            ConnStatus::Connected(SessionId(2))
        );
    }

    #[test]
    fn state_is_cleared_when_the_session_ends() {
        let (mut t, i) = table();
        t.handle_session_up(i, SessionId(1), true, None, Instant::from_millis(5));
        assert_eq!(
            t.get(i).unwrap().stats.up_since,
            Some(Instant::from_millis(5))
        );
        t.handle_peer_state(i, SessionId(1), RunState::Master);
        assert_eq!(t.master(), Some(i));
        assert!(t.handle_session_down(i, SessionId(1)));
        let p = t.get(i).unwrap();
        assert_eq!(p.state(), None);
        assert_eq!(p.stats.up_since, None);
        assert_eq!(t.master(), None);
        assert!(t.states().all(|s| s.is_none()));
    }

    /// Simulates both ends of a simultaneous connect: connection X is
    /// initiated by node `x`, Y by node `y`; each end sees both sessions
    /// come up in some order. Both ends must keep the same connection.
    fn settle(x_first_at_x: bool, x_first_at_y: bool) -> (bool, bool) {
        let (idx, idy) = ([1u8; 16], [2u8; 16]);
        // At node x: connection X is outbound, Y inbound.
        let mut tx = test_table(1);
        let px = tx.add(B, 500).unwrap();
        let ids_x = Some(Tiebreak {
            local: idx,
            peer: idy,
        });
        let order_x = if x_first_at_x {
            [true, false]
        } else {
            [false, true]
        };
        let mut kept_x = None;
        for is_x in order_x {
            let sid = SessionId(if is_x { 10 } else { 20 });
            if let Some(SessionDecision::Accept { .. }) =
                tx.handle_session_up(px, sid, is_x, ids_x, NOW)
            {
                kept_x = Some(is_x);
            }
        }
        // At node y: connection X is inbound, Y outbound.
        let mut ty = test_table(1);
        let py = ty.add(A, 500).unwrap();
        let ids_y = Some(Tiebreak {
            local: idy,
            peer: idx,
        });
        let order_y = if x_first_at_y {
            [true, false]
        } else {
            [false, true]
        };
        let mut kept_y = None;
        for is_x in order_y {
            let sid = SessionId(if is_x { 10 } else { 20 });
            if let Some(SessionDecision::Accept { .. }) =
                ty.handle_session_up(py, sid, !is_x, ids_y, NOW)
            {
                kept_y = Some(is_x);
            }
        }
        (kept_x.unwrap(), kept_y.unwrap())
    }

    #[test]
    fn simultaneous_connects_settle_on_the_lower_ids_connection() {
        for a in [false, true] {
            for b in [false, true] {
                // Node x has the lower id: both keep connection X.
                assert_eq!(settle(a, b), (true, true), "orders {a} {b}");
            }
        }
    }

    #[test]
    fn tiebreak_rejects_the_higher_ids_connection() {
        let (mut t, i) = table();
        let ids = Some(Tiebreak {
            local: [9; 16],
            peer: [1; 16],
        });
        // Peer (lower id) dialled us: keep it against our own outbound.
        t.handle_session_up(i, SessionId(1), false, ids, NOW);
        let d = t.handle_session_up(i, SessionId(2), true, ids, NOW);
        assert_eq!(
            d,
            Some(SessionDecision::Reject {
                keeps: SessionId(1)
            })
        );
        // Same id on both ends: keep what we have.
        let same = Some(Tiebreak {
            local: [1; 16],
            peer: [1; 16],
        });
        let d = t.handle_session_up(i, SessionId(3), true, same, NOW);
        assert_eq!(
            d,
            Some(SessionDecision::Reject {
                keeps: SessionId(1)
            })
        );
        // Without ids the newest wins.
        let d = t.handle_session_up(i, SessionId(4), true, None, NOW);
        assert_eq!(
            d,
            Some(SessionDecision::Accept {
                replaces: Some(SessionId(1))
            })
        );
        assert_eq!(
            t.handle_session_up(PeerIndex(9), SessionId(5), true, None, NOW),
            None
        );
    }

    #[test]
    fn reconfigure_keeps_unchanged_peers_with_their_sessions() {
        let (mut t, a) = table();
        let c = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
        t.handle_session_up(a, SessionId(1), true, None, NOW);
        t.handle_peer_state(a, SessionId(1), RunState::Master);
        t.get_mut(a).unwrap().stats.frames_in = 7;
        // B goes, C comes, A moves to the second place.
        let from = t.reconfigure(&[(c, 500), (A, 500)]).unwrap();
        assert_eq!(&from[..], &[None, Some(a)]);
        assert_eq!(t.len(), 2);
        let kept = t.get(PeerIndex(1)).unwrap();
        assert_eq!(kept.addr(), A);
        assert_eq!(kept.status(), ConnStatus::Connected(SessionId(1)));
        assert_eq!(kept.state(), Some(RunState::Master));
        assert_eq!(kept.stats.frames_in, 7);
        let added = t.get(PeerIndex(0)).unwrap();
        assert_eq!(added.status(), ConnStatus::Disconnected);
        assert_eq!(added.stats, PeerStats::default());
        assert_eq!(t.lookup(B), None);
    }

    #[test]
    fn reconfigure_with_another_port_is_another_peer() {
        let (mut t, a) = table();
        t.handle_session_up(a, SessionId(1), true, None, NOW);
        let from = t.reconfigure(&[(A, 501)]).unwrap();
        assert_eq!(&from[..], &[None]);
        assert_eq!(
            t.get(PeerIndex(0)).unwrap().status(),
            ConnStatus::Disconnected
        );
        assert_eq!(t.get(PeerIndex(0)).unwrap().port(), 501);
    }

    #[test]
    fn failed_reconfigure_changes_nothing() {
        let (mut t, a) = table();
        t.handle_session_up(a, SessionId(1), true, None, NOW);
        let c = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
        let d = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4));
        let e = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5));
        let many = [(A, 500), (B, 500), (c, 500), (d, 500), (e, 500)];
        assert_eq!(t.reconfigure(&many), Err(TableError::Full));
        assert_eq!(
            t.reconfigure(&[(A, 500), (A, 500)]),
            Err(TableError::Duplicate(A))
        );
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.get(a).unwrap().status(),
            ConnStatus::Connected(SessionId(1))
        );
    }
}
