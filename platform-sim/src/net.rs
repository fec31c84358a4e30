//! The network between the nodes: TCP-like reliable, in-order byte streams
//! between addresses (10.0.0.x), with the timing and failures sasyncd's
//! peer code must survive.
//!
//! Simulated: connection set-up after one round trip (refused if nobody
//! listens on the target, timing out if the target is crashed, unowned or
//! unreachable); per-direction latency with jitter (order kept) and a
//! bandwidth limit; a bounded send buffer per direction counting bytes
//! until they are delivered, so writers see short writes and a `Writable`
//! event later; delivery in random segment sizes (≤ MSS) and reads split
//! into random chunks; FIN and RST; a crashed host answers nothing and,
//! once back, answers stale segments with RST; partitions stall delivery
//! (retransmitted every RTO) and a sender with data stuck longer than
//! `give_up` drops the connection (the peer may stay half-open); random and
//! injected resets; delivery only to the address's current owner (an
//! address moved to another node answers with RST); an adversary hook
//! ([`Tamper`]) on data segments, byte injection, and recording.
//!
//! Not simulated: packets, windows, congestion control, half-close (a FIN
//! closes the receiving end too), ports (one service per address), IPv6.

mod tamper;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use sasyncd_core::time::Instant;

use crate::errno::Errno;
use crate::links::Links;
use crate::rng::Rng;
pub use tamper::{RandomTamper, SegmentInfo, Tamper};

/// A host on the network (index shared with carp and [`Links`]).
pub type NodeId = usize;

/// One end of a connection (what a socket descriptor is to the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The connection both ends share.
    pub fn conn(self) -> u64 {
        self.0 / 2
    }
    /// 0 for the end that connected, 1 for the one that accepted.
    pub fn side(self) -> usize {
        (self.0 % 2) as usize
    }
    fn of(conn: u64, side: usize) -> ConnId {
        ConnId(conn * 2 + side as u64)
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed (FIN).
    Eof,
    /// RST received or injected (`ECONNRESET`).
    Reset,
    /// Data could not be delivered for too long (`ETIMEDOUT`).
    TimedOut,
}

/// What happened on a connection end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEventKind {
    /// An outgoing connection is established.
    Connected,
    /// An outgoing connection failed (`ECONNREFUSED`, `ETIMEDOUT`).
    ConnectFailed(Errno),
    /// A listening node got a new connection from `peer` to its `local`.
    Accepted {
        /// The remote address.
        peer: IpAddr,
        /// The local address it connected to.
        local: IpAddr,
    },
    /// Bytes to read.
    Data(Vec<u8>),
    /// Send-buffer space is free again after a short write.
    Writable,
    /// The connection is gone.
    Closed(CloseReason),
}

/// An event for `node` about its connection end `conn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetEvent {
    /// The node.
    pub node: NodeId,
    /// Its connection end.
    pub conn: ConnId,
    /// What happened.
    pub kind: NetEventKind,
}

/// Timing and buffer parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetConfig {
    /// One-way latency.
    pub latency: Duration,
    /// Extra random latency, up to this much (order is kept).
    pub jitter: Duration,
    /// Bytes per second per direction.
    pub bandwidth: u64,
    /// Send buffer per direction, in bytes.
    pub sndbuf: usize,
    /// Largest segment.
    pub mss: usize,
    /// How long a connect waits for an answer.
    pub connect_timeout: Duration,
    /// Retransmission interval while a segment cannot be delivered.
    pub rto: Duration,
    /// How long a sender keeps retransmitting before dropping the connection.
    pub give_up: Duration,
    /// Probability that delivering a data segment resets the connection.
    pub reset_chance: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(3),
            bandwidth: 10_000_000,
            sndbuf: 16 * 1024,
            mss: 1460,
            connect_timeout: Duration::from_secs(10),
            rto: Duration::from_millis(500),
            give_up: Duration::from_secs(15),
            reset_chance: 0.0,
        }
    }
}

/// A data segment recorded on delivery (see [`Net::set_recording`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Delivery time.
    pub at: Instant,
    /// The receiving end.
    pub conn: ConnId,
    /// The bytes as delivered (after tampering).
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndState {
    SynSent,
    /// The accepting end before the SYN arrived.
    Pending,
    Established,
    Closed,
}

#[derive(Debug, Clone)]
struct End {
    node: NodeId,
    incarnation: u32,
    local: IpAddr,
    remote: IpAddr,
    state: EndState,
    buffered: usize,
    want_writable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Syn,
    SynAck,
    Data { bytes: Vec<u8>, counted: usize },
    Fin,
    Rst,
}

#[derive(Debug, Clone)]
struct Pkt {
    at: Instant,
    kind: Kind,
    stall_since: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Conn {
    ends: [End; 2],
    /// `q[d]`: packets travelling from end `d` to end `1 - d`.
    q: [VecDeque<Pkt>; 2],
    link_free_us: [u64; 2],
    last_arrive: [Instant; 2],
    connect_deadline: Instant,
}

#[derive(Debug, Clone)]
struct Host {
    addr: IpAddr,
    alive: bool,
    listening: bool,
    incarnation: u32,
}

/// The simulated network.
#[derive(Debug)]
pub struct Net {
    cfg: NetConfig,
    hosts: Vec<Host>,
    owners: BTreeMap<IpAddr, NodeId>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    events: VecDeque<NetEvent>,
    rng: Rng,
    tamper: Option<Box<dyn Tamper>>,
    recording: bool,
    recorded: Vec<Recorded>,
}

mod deliver;
#[cfg(test)]
mod tests;

impl Net {
    /// A network of hosts with the given addresses (host `i` owns
    /// `addrs[i]`), all alive and not listening.
    pub fn new(addrs: &[IpAddr], cfg: NetConfig, rng: Rng) -> Net {
        let mut n = Net {
            cfg,
            hosts: Vec::new(),
            owners: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            events: VecDeque::new(),
            rng,
            tamper: None,
            recording: false,
            recorded: Vec::new(),
        };
        for &a in addrs {
            n.add_host(a);
        }
        n
    }

    /// Adds a host owning `addr` — e.g. a stranger with an address no
    /// node's configuration knows — and returns its id.
    pub fn add_host(&mut self, addr: IpAddr) -> NodeId {
        self.hosts.push(Host {
            addr,
            alive: true,
            listening: false,
            incarnation: 0,
        });
        let id = self.hosts.len() - 1;
        self.owners.insert(addr, id);
        id
    }

    /// The host's own address.
    pub fn addr(&self, node: NodeId) -> IpAddr {
        self.hosts[node].addr
    }

    /// Moves `addr` to `owner` (or nowhere); existing connections to the
    /// old owner are answered with RST by the new one.
    pub fn set_owner(&mut self, addr: IpAddr, owner: Option<NodeId>) {
        match owner {
            Some(o) => self.owners.insert(addr, o),
            None => self.owners.remove(&addr),
        };
    }

    /// Whether `node` accepts connections.
    pub fn listen(&mut self, node: NodeId, on: bool) {
        self.hosts[node].listening = on;
    }

    /// The host crashes: its connections vanish without a FIN or RST.
    pub fn crash(&mut self, node: NodeId) {
        let h = &mut self.hosts[node];
        h.alive = false;
        h.listening = false;
        h.incarnation += 1;
        for c in self.conns.values_mut() {
            for e in c.ends.iter_mut().filter(|e| e.node == node) {
                e.state = EndState::Closed;
            }
        }
    }

    /// The host is back (not listening until told).
    pub fn restart(&mut self, node: NodeId) {
        self.hosts[node].alive = true;
    }

    /// Installs (or removes) the adversary.
    pub fn set_tamper(&mut self, t: Option<Box<dyn Tamper>>) {
        self.tamper = t;
    }

    /// Whether delivered data segments are recorded.
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    /// The recorded data segments.
    pub fn recorded(&self) -> &[Recorded] {
        &self.recorded
    }

    fn end(&self, id: ConnId) -> Option<&End> {
        self.conns.get(&id.conn()).map(|c| &c.ends[id.side()])
    }

    /// Whether the end is connected.
    pub fn is_established(&self, id: ConnId) -> bool {
        self.end(id)
            .is_some_and(|e| e.state == EndState::Established)
    }

    /// The remote address of a connection end.
    pub fn peer_addr(&self, id: ConnId) -> Option<IpAddr> {
        self.end(id).map(|e| e.remote)
    }

    /// Bytes sent on this end and not yet delivered.
    pub fn buffered(&self, id: ConnId) -> usize {
        self.end(id).map_or(0, |e| e.buffered)
    }

    /// Number of connections the network still tracks.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Opens a connection from `from` to whoever owns `to`; the outcome
    /// arrives as `Connected` or `ConnectFailed`.
    pub fn connect(&mut self, from: NodeId, to: IpAddr, now: Instant) -> ConnId {
        let src = self.hosts[from].addr;
        self.connect_as(from, src, to, now)
    }

    /// [`Net::connect`] with a spoofed source address `src`: the other end
    /// sees `src`, while what it sends still reaches `from` (an impostor
    /// on the path, or one that guessed the sequence numbers). Only the
    /// accepting end's view is spoofed; packets route by `from`'s own
    /// address.
    pub fn connect_as(&mut self, from: NodeId, src: IpAddr, to: IpAddr, now: Instant) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        let h = &self.hosts[from];
        let end = |node, local, remote, state| End {
            node,
            incarnation: h.incarnation,
            local,
            remote,
            state,
            buffered: 0,
            want_writable: false,
        };
        let mut c = Conn {
            ends: [
                end(from, h.addr, to, EndState::SynSent),
                end(usize::MAX, to, src, EndState::Pending),
            ],
            q: [VecDeque::new(), VecDeque::new()],
            link_free_us: [0; 2],
            last_arrive: [Instant::ZERO; 2],
            connect_deadline: now + self.cfg.connect_timeout,
        };
        if h.alive {
            self.push(&mut c, 0, Kind::Syn, now);
        }
        self.conns.insert(id, c);
        ConnId::of(id, 0)
    }

    /// Queues a packet on direction `d` of `c`, after the link is free.
    fn push(&mut self, c: &mut Conn, d: usize, kind: Kind, now: Instant) {
        let len = match &kind {
            Kind::Data { bytes, .. } => bytes.len() as u64,
            _ => 0,
        };
        let now_us = now.as_millis() * 1000;
        let start = c.link_free_us[d].max(now_us);
        c.link_free_us[d] = start + len * 1_000_000 / self.cfg.bandwidth.max(1);
        let jitter = self.rng.below(self.cfg.jitter.as_millis() as u64 + 1);
        let sent = Instant::from_millis(c.link_free_us[d].div_ceil(1000));
        let at = (sent + self.cfg.latency + Duration::from_millis(jitter)).max(c.last_arrive[d]);
        c.last_arrive[d] = at;
        c.q[d].push_back(Pkt {
            at,
            kind,
            stall_since: None,
        });
    }

    /// Sends as much of `bytes` as the send buffer takes; returns how many.
    /// A short count means a `Writable` event will follow.
    pub fn send(&mut self, id: ConnId, bytes: &[u8], now: Instant) -> usize {
        let Some(mut c) = self.conns.remove(&id.conn()) else {
            return 0;
        };
        let d = id.side();
        let mut n = 0;
        if c.ends[d].state == EndState::Established {
            n = bytes.len().min(self.cfg.sndbuf - c.ends[d].buffered);
            c.ends[d].buffered += n;
            c.ends[d].want_writable |= n < bytes.len();
            let mut rest = &bytes[..n];
            while !rest.is_empty() {
                let seg = (self.rng.range(1..self.cfg.mss as u64 + 1) as usize).min(rest.len());
                let (a, b) = rest.split_at(seg);
                let kind = Kind::Data {
                    bytes: a.to_vec(),
                    counted: seg,
                };
                self.push(&mut c, d, kind, now);
                rest = b;
            }
        }
        self.conns.insert(id.conn(), c);
        n
    }

    /// Adds `bytes` to the stream arriving at `to`, after what is already
    /// in flight (the adversary's injection or replay).
    pub fn inject(&mut self, to: ConnId, bytes: Vec<u8>, now: Instant) {
        if let Some(mut c) = self.conns.remove(&to.conn()) {
            let kind = Kind::Data { bytes, counted: 0 };
            self.push(&mut c, 1 - to.side(), kind, now);
            self.conns.insert(to.conn(), c);
        }
    }

    /// Closes this end; the peer reads EOF after the data in flight.
    pub fn close(&mut self, id: ConnId, now: Instant) {
        let Some(mut c) = self.conns.remove(&id.conn()) else {
            return;
        };
        let d = id.side();
        if c.ends[d].state == EndState::Established {
            self.push(&mut c, d, Kind::Fin, now);
        }
        c.ends[d].state = EndState::Closed;
        self.conns.insert(id.conn(), c);
    }

    /// A middlebox resets the connection: both live ends see `Closed(Reset)`
    /// now and everything in flight is lost.
    pub fn reset(&mut self, id: ConnId) {
        if let Some(mut c) = self.conns.remove(&id.conn()) {
            self.reset_conn(&mut c, id.conn());
            self.conns.insert(id.conn(), c);
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<NetEvent> {
        self.events.pop_front()
    }

    /// When [`Net::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .flat_map(|c| c.q.iter().filter_map(|q| q.front().map(|p| p.at)))
            .min()
    }
}
