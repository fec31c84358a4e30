//! Impostors: connections to a node from the address of one of its peers
//! (spoofed), which know no key. Anyone on the sync network can open them
//! (issue 22), so the node must give them nothing of the real peer's:
//! not its session, not our own dial, not its backoff, not its last
//! error, in either protocol. Every call into a node that an impostor's
//! connection causes (the accept, its bytes, its close) is wrapped: the
//! real peer's state before and after goes to
//! [`Oracle::impostor_call`](crate::oracle::Oracle::impostor_call).
//!
//! Bursts come from a random stream of their own, so that a scenario
//! without impostors runs as it always did.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sasyncd_core::node::ConnId as NodeConn;
use sasyncd_core::time::Instant;

use crate::net::{ConnId as NetConn, NetEventKind};
use crate::oracle::impostor::Seen;
use crate::rng::Rng;
use crate::scenario::{Action, Scenario};

use super::{host_addr, World};

/// The impostors' own address (packets come back to it; the node sees the
/// spoofed one).
const IMPOSTOR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 66, 0, 2));

impl World {
    /// Bursts of impostor connections for `sc` (if it has impostors):
    /// a few at random moments against random nodes, and, after half of
    /// the scripted crashes and stops, some from the address of the peer
    /// that just went down (its sessions are gone and our dials to it fail
    /// and back off: what the impostor must not disturb).
    pub(super) fn impostor_script(sc: &Scenario, script: &mut Vec<(Instant, Action)>) {
        if !sc.impostors || sc.nodes < 2 {
            return;
        }
        let mut r = Rng::new(sc.seed ^ 0x1b05_7e55_0000_0022);
        let n = sc.nodes;
        let active = sc.active.as_millis() as u64;
        let other = |r: &mut Rng, i: usize| (i + 1 + r.index(n - 1)) % n;
        // (start, victim, impersonated peer, most milliseconds between two)
        let mut bursts: Vec<(Instant, usize, usize, u64)> = Vec::new();
        for _ in 0..2 + r.index(4) {
            let t = Instant::from_millis(10_000 + r.below(active.saturating_sub(10_000).max(1)));
            let node = r.index(n);
            bursts.push((t, node, other(&mut r, node), 400));
        }
        for (t, a) in script.iter() {
            if let Action::Crash { node: j, .. } | Action::Stop { node: j } = *a {
                if r.chance(0.5) {
                    let at = t.add(Duration::from_millis(500 + r.below(4_500)));
                    bursts.push((at, other(&mut r, j), j, 3_000));
                }
            }
        }
        for (t, node, peer, gap) in bursts {
            let mut at = t;
            for _ in 0..2 + r.index(7) {
                at = at.add(Duration::from_millis(r.below(gap + 1)));
                let junk = r.chance(0.5);
                script.push((at, Action::Impostor { node, peer, junk }));
            }
        }
    }

    /// An impostor connects to `node` as `peer`.
    pub(super) fn impostor_connect(&mut self, node: usize, peer: usize, junk: bool) {
        let now = self.now;
        let s = match self.impostor {
            Some(s) => s,
            None => {
                let s = self.net.add_host(IMPOSTOR);
                self.impostor = Some(s);
                s
            }
        };
        let nc = self
            .net
            .connect_as(s, host_addr(peer), host_addr(node), now);
        self.impostor_conns.insert(nc.conn(), junk);
        self.oracle.impostor_attempts += 1;
    }

    /// Whether `nc` is an end of an impostor's connection.
    pub(super) fn is_impostor(&self, nc: NetConn) -> bool {
        self.impostor_conns.contains_key(&nc.conn())
    }

    /// What happens on the impostor's own end: once connected, a junk
    /// sender says something no key made (a legacy-looking length and
    /// noise); a silent one holds the connection.
    pub(super) fn impostor_event(&mut self, nc: NetConn, kind: NetEventKind) {
        if kind != NetEventKind::Connected || self.impostor_conns.get(&nc.conn()) != Some(&true) {
            return;
        }
        let now = self.now;
        let mut junk = vec![0u8, 0, 0, 60];
        junk.extend((0..60).map(|_| self.rng.u32() as u8));
        self.net.send(nc, &junk, now);
    }

    /// The real peer at `addr` as node `i` sees it, with our own dials
    /// that are live (`None`: sasyncd is not running there).
    pub(super) fn seen(&self, i: usize, addr: IpAddr) -> Option<Seen> {
        let h = &self.hosts[i];
        let node = h.node.as_ref()?;
        let p = node.peers().find(|p| p.addr == addr)?;
        let dials = (0..node.connection_slots())
            .filter_map(|s| node.connection_in_slot(s))
            .filter(|&c| h.sockets.net_of(c).is_some_and(|nc| nc.side() == 0))
            .collect();
        Some(Seen {
            connected: p.connected,
            sessions: p.stats.sessions,
            next_dial: p.next_dial,
            last_error: p.stats.last_error,
            dials,
        })
    }

    /// Compares the real peer's state after a call an impostor caused.
    pub(super) fn impostor_after(
        &mut self,
        i: usize,
        addr: IpAddr,
        before: Option<Seen>,
        what: &str,
    ) {
        let (Some(b), Some(a)) = (before, self.seen(i, addr)) else {
            return;
        };
        let now = self.now;
        self.oracle.impostor_call(now, i, addr, what, &b, &a);
    }

    /// An event on an impostor's connection, handed to node `i` at once
    /// and alone, so that the real peer's state before and after is what
    /// that one call changed (the shared driver takes every input of a
    /// pass together, and fires due timers, which would blur it). Outputs
    /// it causes wait for the node's next pass. Whether it was handled
    /// here (the rest go through the driver as usual).
    pub(super) fn impostor_net(&mut self, i: usize, nc: NetConn, kind: &NetEventKind) -> bool {
        let now = self.now;
        match *kind {
            NetEventKind::Accepted { peer, .. } => {
                let before = self.seen(i, peer);
                let r = self.hosts[i]
                    .node
                    .as_mut()
                    .map(|n| n.handle_accept(now, peer));
                self.impostor_after(i, peer, before, "accepting its connection");
                match r {
                    Some(Ok(c)) => self.hosts[i].sockets.map(c, nc),
                    _ => {
                        self.oracle.rejected_strangers +=
                            u64::from(!self.hosts.iter().any(|h| h.addr == peer));
                        self.net.close(nc, now);
                    }
                }
                true
            }
            NetEventKind::Data(ref bytes) => {
                let Some(c) = self.hosts[i].sockets.conn_of(nc) else {
                    return false;
                };
                self.hosts[i].sockets.receive(c, bytes);
                if let Some(addr) = self.net.peer_addr(nc) {
                    self.impostor_recv(i, c, addr);
                }
                true
            }
            NetEventKind::Closed(_) => {
                let Some(c) = self.hosts[i].sockets.closed(nc) else {
                    return false;
                };
                let addr = self.net.peer_addr(nc);
                let before = addr.and_then(|a| self.seen(i, a));
                if let Some(n) = self.hosts[i].node.as_mut() {
                    n.handle_closed(now, c);
                }
                if let Some(a) = addr {
                    self.impostor_after(i, a, before, "its close");
                }
                true
            }
            _ => false,
        }
    }

    /// Hands node `i` what an impostor sent on its connection `c` now
    /// (not later with everything else), so the comparison sees only it.
    pub(super) fn impostor_recv(&mut self, i: usize, c: NodeConn, addr: IpAddr) {
        let now = self.now;
        let before = self.seen(i, addr);
        let h = &mut self.hosts[i];
        let (Some(n), Some(data)) = (h.node.as_mut(), h.sockets.received_mut(c)) else {
            return;
        };
        let r = n.handle_recv(now, c, data);
        h.sockets.consume(c, r.consumed);
        if r.applied > 0 {
            self.oracle.fail(
                now,
                Some(i),
                format!("applied PF_KEY data an impostor sent from {addr}"),
            );
        }
        self.impostor_after(i, addr, before, "an impostor's bytes");
    }
}
