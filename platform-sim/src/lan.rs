//! A few gateways on one LAN, in memory: each a simulated kernel
//! ([`Kernel`]: PF_KEY validated as OpenBSD's, promiscuous copies, dumps)
//! with carp, demotion and IKE stand-ins, joined by direct byte links with
//! an optional TCP-like window. The in-memory world of the scenario tests
//! (`sasyncd_tests::harness`) and of the scale benchmark
//! (`tests/benches/cluster`); the swarm's world ([`crate::world`]) adds
//! latency, loss, partitions and carp elections on top of the same kernel.
//!
//! The LAN is the platform only: the nodes belong to the caller, which
//! runs gateway `i`'s node with `drive(node, &mut lan.io(i, meter))`
//! ([`sasyncd_core::platform::drive`]). What happens to a gateway while
//! another runs (a connection accepted or closed by the other end, a
//! blocked link drained) waits in its input queue
//! ([`Platform::poll_input`]) until its own node runs.
//!
//! A [`Meter`] is told when the driver calls out of the node into the
//! LAN, so a caller can tell the node's time or heap use from the LAN's.

use std::collections::VecDeque;
use std::net::IpAddr;

use sasyncd_core::node::{
    ConnId, DemoteEffect, DumpId, IkeMode, IkeRequest, Received, Rejected, Table,
};
use sasyncd_core::pfkey::build_promisc;
use sasyncd_core::platform::{DumpRead, Input, PfkeyWrite, Platform, SendError};
use sasyncd_core::time::Instant;

use crate::errno::Errno;
use crate::kernel::Kernel;
use crate::rng::Rng;

/// carp `LINK_STATE_*`: BACKUP.
pub const BACKUP: u8 = 2;
/// carp MASTER.
pub const MASTER: u8 = 4;

/// An adversary on the links: may change the bytes gateway `from` sends.
pub type Tamper = Box<dyn FnMut(usize, &mut Vec<u8>)>;

/// Told when the driver calls out of the node into the LAN and back.
pub trait Meter {
    /// A platform call begins.
    fn enter(&mut self) {}
    /// It ends.
    fn leave(&mut self) {}
}

/// No metering.
impl Meter for () {}

/// One end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// A gateway's sasyncd, with its connection id.
    Host(usize, ConnId),
    /// A scripted peer's end ([`Lan::ext`]).
    Ext(usize),
}

/// Both ends of a connection, and whether each end's last write was short
/// because the other's window was full.
#[derive(Debug, Clone, Copy)]
struct Link {
    ends: [End; 2],
    blocked: [bool; 2],
}

/// What a gateway's sasyncd hears about when its node next runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Link(u8),
    Accept { from: End, peer: IpAddr },
    Connected(ConnId),
    ConnectFailed(ConnId),
    Closed(ConnId),
    Writable(ConnId),
    Shutdown,
}

impl Pending {
    fn conn(self) -> Option<ConnId> {
        match self {
            Pending::Connected(c)
            | Pending::ConnectFailed(c)
            | Pending::Closed(c)
            | Pending::Writable(c) => Some(c),
            _ => None,
        }
    }
}

/// A connection's receive buffer: bytes from `start` on are unread.
#[derive(Debug, Default)]
struct RxBuf {
    buf: Vec<u8>,
    start: usize,
}

impl RxBuf {
    fn unread(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= 64 * 1024 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// One dump the LAN holds for a node: the kernel's dump and where it is.
#[derive(Debug)]
struct Dump {
    id: DumpId,
    bytes: Vec<u8>,
    at: usize,
}

/// A connection end driven by the caller itself (a scripted peer).
#[derive(Debug, Default)]
pub struct ExtEnd {
    /// Bytes the node sent that the caller has not taken yet.
    pub rx: Vec<u8>,
    /// The connection is open.
    pub open: bool,
    /// The address it has (as the node sees it).
    pub addr: Option<IpAddr>,
}

/// Bytes and socket writes from one gateway to another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes written.
    pub bytes: u64,
    /// `send` calls that wrote something.
    pub writes: u64,
}

/// One gateway: its kernel and stand-ins, and its sasyncd's sockets.
#[derive(Debug)]
pub struct Gateway {
    /// The kernel (survives a crash of the process).
    pub kernel: Kernel,
    /// Our address.
    pub addr: IpAddr,
    /// sasyncd's pid.
    pub pid: u32,
    /// The carp interface's link state.
    pub link_state: u8,
    /// carp demotion counter of the group (the boot scripts demoted it).
    pub demoted: i32,
    /// The last mode the IKE daemon was told.
    pub ike: Option<IkeMode>,
    /// Whether IKE requests succeed.
    pub ike_ok: bool,
    /// The kernel takes no writes from sasyncd (backpressure).
    pub stall: bool,
    /// Keep every PF_KEY message sasyncd writes in `written`/`refused`.
    pub record: bool,
    /// Every PF_KEY message sasyncd wrote to the kernel, as written.
    pub written: Vec<Vec<u8>>,
    /// Writes the kernel refused, with the errno.
    pub refused: Vec<(Vec<u8>, Errno)>,
    /// Every address sasyncd asked to connect to, in order.
    pub dialled: Vec<IpAddr>,
    /// How often sasyncd asked to re-read the carp interface.
    pub rechecks: usize,
    /// sasyncd runs (accepts connections).
    pub running: bool,
    inbox: Vec<(ConnId, RxBuf)>,
    dumps: Vec<Dump>,
    inputs: VecDeque<Pending>,
    msg: Vec<u8>,
    accepting: Option<End>,
    promisc_seq: u32,
}

impl Gateway {
    /// A gateway at `addr` whose sasyncd has `pid`, over `kernel`; carp
    /// BACKUP, demoted once, IKE answering, not running.
    pub fn new(addr: IpAddr, pid: u32, kernel: Kernel) -> Gateway {
        Gateway {
            kernel,
            addr,
            pid,
            link_state: BACKUP,
            demoted: 1,
            ike: None,
            ike_ok: true,
            stall: false,
            record: true,
            written: Vec::new(),
            refused: Vec::new(),
            dialled: Vec::new(),
            rechecks: 0,
            running: false,
            inbox: Vec::new(),
            dumps: Vec::new(),
            inputs: VecDeque::new(),
            msg: Vec::new(),
            accepting: None,
            promisc_seq: 0,
        }
    }

    fn rx(&mut self, conn: ConnId) -> &mut RxBuf {
        let at = match self.inbox.iter().position(|(c, _)| *c == conn) {
            Some(p) => p,
            None => {
                self.inbox.push((conn, RxBuf::default()));
                self.inbox.len() - 1
            }
        };
        &mut self.inbox[at].1
    }

    fn unread(&self, conn: ConnId) -> usize {
        self.inbox
            .iter()
            .find(|(c, _)| *c == conn)
            .map_or(0, |(_, r)| r.unread().len())
    }

    fn forget(&mut self, conn: ConnId) {
        self.inbox.retain(|(c, _)| *c != conn);
        self.inputs.retain(|p| p.conn() != Some(conn));
    }
}

/// The LAN.
pub struct Lan {
    /// Simulated time (what the nodes see).
    pub now: Instant,
    /// The gateways.
    pub hosts: Vec<Gateway>,
    /// At most this many bytes wait unread on one direction of a link
    /// between gateways (like a socket buffer): writes beyond it are
    /// short, and the writer hears it is writable when the reader reads.
    pub window: Option<usize>,
    /// Deliver bytes in random chunks and take random partial writes (a
    /// short write that the window did not cause drains at once).
    pub chunking: bool,
    /// Transform applied to bytes in flight, by sending gateway.
    pub tamper: Option<Tamper>,
    /// Scripted peers' ends.
    pub ext: Vec<ExtEnd>,
    /// `traffic[from][to]` between gateways.
    pub traffic: Vec<Vec<Traffic>>,
    ext_listen: Vec<IpAddr>,
    links: Vec<Link>,
    rng: Rng,
}

impl std::fmt::Debug for Lan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lan")
            .field("now", &self.now)
            .field("hosts", &self.hosts.len())
            .field("links", &self.links.len())
            .finish()
    }
}

impl Lan {
    /// These gateways, no links; time starts at 1 s; `seed` drives the
    /// random chunking.
    pub fn new(hosts: Vec<Gateway>, seed: u64) -> Lan {
        let n = hosts.len();
        Lan {
            now: Instant::from_millis(1000),
            hosts,
            window: None,
            chunking: false,
            tamper: None,
            ext: Vec::new(),
            traffic: vec![vec![Traffic::default(); n]; n],
            ext_listen: Vec::new(),
            links: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    /// Gateway `i`'s platform while the caller drives its node.
    pub fn io<M: Meter>(&mut self, i: usize, meter: M) -> Io<'_, M> {
        let now = self.now;
        self.hosts[i].kernel.set_now(now);
        Io {
            lan: self,
            i,
            meter,
            moved: false,
        }
    }

    /// Gateway `i`'s sasyncd starts; with `carp`, it reads the carp
    /// interface's state first thing.
    pub fn start(&mut self, i: usize, carp: bool) {
        let h = &mut self.hosts[i];
        h.running = true;
        if carp {
            h.inputs.push_back(Pending::Link(h.link_state));
        }
    }

    /// Gateway `i`'s sasyncd is told to shut down in order.
    pub fn shutdown(&mut self, i: usize) {
        self.hosts[i].inputs.push_back(Pending::Shutdown);
    }

    /// Sets gateway `i`'s carp link state and reports it to its sasyncd.
    pub fn set_link(&mut self, i: usize, state: u8) {
        let h = &mut self.hosts[i];
        h.link_state = state;
        if h.running {
            h.inputs.push_back(Pending::Link(state));
        }
    }

    /// One round: `run(lan, i)` for every gateway in turn (the caller
    /// drives gateway `i`'s node over [`io`](Self::io)); whether any of
    /// them moved.
    pub fn round(&mut self, mut run: impl FnMut(&mut Lan, usize) -> bool) -> bool {
        let mut moved = false;
        for i in 0..self.hosts.len() {
            moved |= run(self, i);
        }
        moved
    }

    /// Rounds until one moves nothing, without advancing time; panics
    /// after `max` rounds (a node and the LAN that never settle).
    pub fn settle(&mut self, max: u64, mut run: impl FnMut(&mut Lan, usize) -> bool) {
        for _ in 0..max {
            if !self.round(&mut run) {
                return;
            }
        }
        panic!("the LAN did not settle in {max} rounds");
    }

    /// Whether gateway `i` has inputs waiting for its node.
    pub fn has_input(&self, i: usize) -> bool {
        !self.hosts[i].inputs.is_empty()
    }

    /// Gateway `i`'s sasyncd crashes: its kernel stays, the other ends of
    /// its connections see them reset.
    pub fn crash(&mut self, i: usize) {
        self.process_gone(i);
        let mut gone = Vec::new();
        self.links.retain(|l| {
            let mine = l
                .ends
                .iter()
                .position(|e| matches!(e, End::Host(j, _) if *j == i));
            if let Some(k) = mine {
                gone.push(l.ends[1 - k]);
            }
            mine.is_none()
        });
        for e in gone {
            self.closed(e);
        }
    }

    /// Gateway `i` vanishes: its process and links are gone, but no reset
    /// reaches the other ends; what they send is lost.
    pub fn vanish(&mut self, i: usize) {
        self.process_gone(i);
        let mine = |e: &End| matches!(e, End::Host(j, _) if *j == i);
        self.links.retain(|l| !l.ends.iter().any(mine));
    }

    fn process_gone(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        h.running = false;
        h.inbox.clear();
        h.dumps.clear();
        h.inputs.clear();
        h.accepting = None;
        // The PF_KEY socket closes with the process.
        h.kernel.set_promisc(h.pid, false);
        while h.kernel.read_promisc(h.pid).is_some() {}
        // Connects it made that were not accepted yet fail.
        for g in &mut self.hosts {
            g.inputs
                .retain(|p| !matches!(p, Pending::Accept { from: End::Host(j, _), .. } if *j == i));
        }
    }

    /// Breaks every link between gateways `a` and `b` (like a TCP reset).
    pub fn cut(&mut self, a: usize, b: usize) {
        let between = |l: &Link| match l.ends {
            [End::Host(i, _), End::Host(j, _)] => (i, j) == (a, b) || (i, j) == (b, a),
            _ => false,
        };
        let mut gone = Vec::new();
        self.links.retain(|l| {
            if between(l) {
                gone.extend(l.ends);
                false
            } else {
                true
            }
        });
        for e in gone {
            self.closed(e);
        }
    }

    /// Tells an end that its connection is gone.
    fn closed(&mut self, e: End) {
        match e {
            End::Host(j, c) => {
                let h = &mut self.hosts[j];
                h.forget(c);
                if h.running {
                    h.inputs.push_back(Pending::Closed(c));
                }
            }
            End::Ext(x) => self.ext[x].open = false,
        }
    }

    fn link_of(&self, e: End) -> Option<(usize, usize)> {
        self.links
            .iter()
            .enumerate()
            .find_map(|(k, l)| l.ends.iter().position(|&x| x == e).map(|side| (k, side)))
    }

    // ----- scripted peers ------------------------------------------------

    /// A scripted peer at `from` connects to gateway `i`: its end's id. It
    /// is open once `i`'s node has run and accepted it.
    pub fn ext_connect(&mut self, i: usize, from: IpAddr) -> usize {
        self.ext.push(ExtEnd {
            rx: Vec::new(),
            open: false,
            addr: Some(from),
        });
        let x = self.ext.len() - 1;
        self.hosts[i].inputs.push_back(Pending::Accept {
            from: End::Ext(x),
            peer: from,
        });
        x
    }

    /// Connections sasyncd opens to `addr` are accepted by a scripted peer
    /// (the new ends appear in [`ext`](Self::ext)); without this they fail.
    pub fn ext_listen(&mut self, addr: IpAddr) {
        self.ext_listen.push(addr);
    }

    /// The scripted peer writes `bytes` on its end `x`.
    pub fn ext_send(&mut self, x: usize, bytes: &[u8]) {
        if let Some((k, side)) = self.link_of(End::Ext(x)) {
            if let End::Host(j, c) = self.links[k].ends[1 - side] {
                self.hosts[j].rx(c).buf.extend_from_slice(bytes);
            }
        }
    }

    /// Takes what sasyncd sent to the scripted peer's end `x`.
    pub fn ext_take(&mut self, x: usize) -> Vec<u8> {
        std::mem::take(&mut self.ext[x].rx)
    }
}

/// Gateway `i`'s side of the LAN while its node runs.
#[derive(Debug)]
pub struct Io<'a, M: Meter = ()> {
    lan: &'a mut Lan,
    i: usize,
    /// Told of every call out of the node.
    pub meter: M,
    /// Something happened: an input taken, bytes moved, a connection
    /// opened or closed, a kernel write.
    pub moved: bool,
}

impl<M: Meter> Io<'_, M> {
    /// Runs a platform call, telling the meter.
    fn call<T>(&mut self, f: impl FnOnce(&mut Lan, usize) -> T) -> T {
        self.meter.enter();
        let r = f(self.lan, self.i);
        self.meter.leave();
        r
    }
}

impl<M: Meter> Platform for Io<'_, M> {
    fn now(&mut self) -> Instant {
        self.lan.now
    }

    fn poll_input(&mut self) -> Option<Input<'_>> {
        /// What comes next: promiscuous copies first, as a socket read.
        enum Next {
            Msg,
            Other(Pending),
            Nothing,
        }
        self.meter.enter();
        let h = &mut self.lan.hosts[self.i];
        let next = if let Some(m) = h.kernel.read_promisc(h.pid) {
            h.msg = m;
            Next::Msg
        } else if let Some(p) = h.inputs.pop_front() {
            Next::Other(p)
        } else {
            Next::Nothing
        };
        self.meter.leave();
        self.moved |= !matches!(next, Next::Nothing);
        let h = &mut self.lan.hosts[self.i];
        Some(match next {
            Next::Nothing => return None,
            Next::Msg => Input::Pfkey(&h.msg),
            Next::Other(Pending::Link(s)) => Input::LinkState(s),
            Next::Other(Pending::Accept { from, peer }) => {
                h.accepting = Some(from);
                Input::Accept { peer }
            }
            Next::Other(Pending::Connected(c)) => Input::Connected(c),
            Next::Other(Pending::ConnectFailed(c)) => Input::ConnectFailed(c),
            Next::Other(Pending::Closed(c)) => Input::Closed(c),
            Next::Other(Pending::Writable(c)) => Input::Writable(c),
            Next::Other(Pending::Shutdown) => Input::Shutdown,
        })
    }

    fn accepted(&mut self, conn: Result<ConnId, Rejected>) {
        self.call(|lan, i| {
            let Some(from) = lan.hosts[i].accepting.take() else {
                return;
            };
            match (conn, from) {
                (Ok(c), _) => {
                    lan.links.push(Link {
                        ends: [from, End::Host(i, c)],
                        blocked: [false; 2],
                    });
                    match from {
                        End::Host(j, cj) => lan.hosts[j].inputs.push_back(Pending::Connected(cj)),
                        End::Ext(x) => lan.ext[x].open = true,
                    }
                }
                (Err(_), End::Host(j, cj)) => {
                    lan.hosts[j].inputs.push_back(Pending::ConnectFailed(cj));
                }
                (Err(_), End::Ext(_)) => {}
            }
        });
    }

    fn connect(&mut self, conn: ConnId, addr: IpAddr, _port: u16) {
        self.moved = true;
        self.call(|lan, i| {
            lan.hosts[i].dialled.push(addr);
            if lan.ext_listen.contains(&addr) {
                lan.ext.push(ExtEnd {
                    rx: Vec::new(),
                    open: true,
                    addr: Some(addr),
                });
                let x = lan.ext.len() - 1;
                lan.links.push(Link {
                    ends: [End::Host(i, conn), End::Ext(x)],
                    blocked: [false; 2],
                });
                lan.hosts[i].inputs.push_back(Pending::Connected(conn));
                return;
            }
            let peer = lan.hosts[i].addr;
            match lan.hosts.iter().position(|h| h.addr == addr) {
                Some(j) if j != i && lan.hosts[j].running => {
                    lan.hosts[j].inputs.push_back(Pending::Accept {
                        from: End::Host(i, conn),
                        peer,
                    });
                }
                _ => lan.hosts[i].inputs.push_back(Pending::ConnectFailed(conn)),
            }
        });
    }

    fn close(&mut self, conn: ConnId) {
        self.moved = true;
        self.call(|lan, i| {
            let me = End::Host(i, conn);
            lan.hosts[i].forget(conn);
            match lan.link_of(me) {
                Some((k, side)) => {
                    let other = lan.links[k].ends[1 - side];
                    lan.links.swap_remove(k);
                    lan.closed(other);
                }
                // Not accepted yet: the other gateway will not hear of it.
                None => {
                    for h in &mut lan.hosts {
                        h.inputs
                            .retain(|p| !matches!(p, Pending::Accept { from, .. } if *from == me));
                    }
                }
            }
        });
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<usize, SendError> {
        let r = self.call(|lan, i| {
            let (k, side) = lan.link_of(End::Host(i, conn)).ok_or(SendError::Closed)?;
            let other = lan.links[k].ends[1 - side];
            let mut n = bytes.len();
            if lan.chunking && n > 0 {
                n = 1 + lan.rng.below(n as u64) as usize;
            }
            let mut full = false;
            if let (Some(win), End::Host(j, cj)) = (lan.window, other) {
                let room = win.saturating_sub(lan.hosts[j].unread(cj));
                if n >= room {
                    full = n > room || room == 0;
                    n = room;
                }
            }
            let mut tampered;
            let mut out = &bytes[..n];
            if let Some(t) = lan.tamper.as_mut() {
                tampered = out.to_vec();
                t(i, &mut tampered);
                out = &tampered;
            }
            match other {
                End::Host(j, cj) => {
                    lan.hosts[j].rx(cj).buf.extend_from_slice(out);
                    if n > 0 {
                        let t = &mut lan.traffic[i][j];
                        t.bytes += n as u64;
                        t.writes += 1;
                    }
                }
                End::Ext(x) => lan.ext[x].rx.extend_from_slice(out),
            }
            if n < bytes.len() {
                if full {
                    // Writable again when the reader makes room.
                    lan.links[k].blocked[side] = true;
                } else {
                    // A short write the window did not cause drains at once.
                    lan.hosts[i].inputs.push_back(Pending::Writable(conn));
                }
            }
            Ok(n)
        });
        self.moved |= matches!(r, Ok(n) if n > 0);
        r
    }

    fn received(&mut self, conn: ConnId) -> &[u8] {
        // Not metered: a slice borrow (metering it would cost more).
        let chunking = self.lan.chunking;
        let h = &self.lan.hosts[self.i];
        let Some(rx) = h.inbox.iter().position(|(c, _)| *c == conn) else {
            return &[];
        };
        let len = h.inbox[rx].1.unread().len();
        let offer = if chunking && len > 0 {
            1 + self.lan.rng.below(len as u64) as usize
        } else {
            len
        };
        &self.lan.hosts[self.i].inbox[rx].1.unread()[..offer]
    }

    fn consumed(&mut self, conn: ConnId, r: Received) {
        self.moved = true;
        self.call(|lan, i| {
            if let Some((_, rx)) = lan.hosts[i].inbox.iter_mut().find(|(c, _)| *c == conn) {
                rx.consume(r.consumed);
            }
            if let Some((k, side)) = lan.link_of(End::Host(i, conn)) {
                let other = 1 - side;
                if lan.links[k].blocked[other] {
                    lan.links[k].blocked[other] = false;
                    if let End::Host(j, cj) = lan.links[k].ends[other] {
                        lan.hosts[j].inputs.push_back(Pending::Writable(cj));
                    }
                }
            }
        });
    }

    fn pfkey_write(&mut self, msg: &[u8]) -> PfkeyWrite {
        let r = self.call(|lan, i| {
            let h = &mut lan.hosts[i];
            if h.stall {
                return PfkeyWrite::WouldBlock;
            }
            let res = h.kernel.write(msg, h.pid);
            if h.record {
                h.written.push(msg.to_vec());
            }
            match res {
                Ok(_) => PfkeyWrite::Written,
                Err(e) => {
                    if h.record {
                        h.refused.push((msg.to_vec(), e));
                    }
                    PfkeyWrite::Failed(e.0.unsigned_abs())
                }
            }
        });
        self.moved |= r != PfkeyWrite::WouldBlock;
        r
    }

    fn set_promisc(&mut self, on: bool) {
        self.call(|lan, i| {
            // sasyncd writes the 16-byte X_PROMISC request (§11.1).
            let h = &mut lan.hosts[i];
            h.promisc_seq += 1;
            let mut m = [0u8; 16];
            build_promisc(on, h.promisc_seq, h.pid, &mut m).expect("X_PROMISC");
            h.kernel.write(&m, h.pid).expect("kernel refused X_PROMISC");
        });
    }

    fn dump_start(&mut self, dump: DumpId, table: Table) {
        self.moved = true;
        self.call(|lan, i| {
            let h = &mut lan.hosts[i];
            let bytes = match table {
                Table::Sadb => h.kernel.sadb_dump(0),
                Table::Spd => h.kernel.spd_dump(),
            };
            h.dumps.push(Dump {
                id: dump,
                bytes,
                at: 0,
            });
        });
    }

    fn dump_next(&mut self, dump: DumpId) -> DumpRead<'_> {
        self.meter.enter();
        let dumps = &mut self.lan.hosts[self.i].dumps;
        let step = match dumps.iter().position(|d| d.id == dump) {
            None => Err(false),
            Some(k) => {
                let d = &mut dumps[k];
                // sadb_msg_len: the record's length in 8-byte units.
                let len = d
                    .bytes
                    .get(d.at + 4..d.at + 6)
                    .map_or(0, |b| usize::from(u16::from_ne_bytes([b[0], b[1]])) * 8);
                if len == 0 || d.at + len > d.bytes.len() {
                    dumps.swap_remove(k);
                    Err(true)
                } else {
                    d.at += len;
                    Ok((k, d.at - len, d.at))
                }
            }
        };
        self.meter.leave();
        match step {
            Err(ok) => DumpRead::End { ok },
            Ok((k, from, to)) => DumpRead::Record(&self.lan.hosts[self.i].dumps[k].bytes[from..to]),
        }
    }

    fn dump_cancel(&mut self, dump: DumpId) {
        self.call(|lan, i| lan.hosts[i].dumps.retain(|d| d.id != dump));
    }

    fn demote(&mut self, effect: DemoteEffect) -> Option<bool> {
        let h = &mut self.lan.hosts[self.i];
        match effect {
            DemoteEffect::Raise => {
                let ok = h.demoted > 0;
                if ok {
                    h.demoted += 1;
                }
                Some(ok)
            }
            DemoteEffect::Release => {
                h.demoted -= 1;
                None
            }
        }
    }

    fn ike(&mut self, request: IkeRequest) -> Option<bool> {
        let h = &mut self.lan.hosts[self.i];
        if h.ike_ok {
            h.ike = Some(request.mode);
        }
        Some(h.ike_ok)
    }

    fn recheck_carp(&mut self) -> Option<u8> {
        let h = &mut self.lan.hosts[self.i];
        h.rechecks += 1;
        Some(h.link_state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan(window: Option<usize>) -> Lan {
        let g = |i: u8| {
            Gateway::new(
                IpAddr::from([10, 0, 0, i]),
                100 + u32::from(i),
                Kernel::new(Rng::new(u64::from(i))),
            )
        };
        let mut lan = Lan::new(vec![g(1), g(2)], 7);
        lan.window = window;
        lan.start(0, false);
        lan.start(1, false);
        lan
    }

    /// Every input waiting for gateway `i`, the accepts answered with
    /// `answer`.
    fn inputs(lan: &mut Lan, i: usize, answer: Result<ConnId, Rejected>) -> Vec<String> {
        let mut io = lan.io(i, ());
        let mut v = Vec::new();
        while let Some(input) = io.poll_input() {
            let accept = matches!(input, Input::Accept { .. });
            v.push(format!("{input:?}"));
            if accept {
                io.accepted(answer);
            }
        }
        v
    }

    #[test]
    fn a_connection_is_accepted_when_the_other_node_runs() {
        let mut lan = lan(None);
        lan.io(0, ())
            .connect(ConnId(5), IpAddr::from([10, 0, 0, 2]), 500);
        assert!(inputs(&mut lan, 0, Ok(ConnId(0))).is_empty(), "not yet");
        assert_eq!(
            inputs(&mut lan, 1, Ok(ConnId(9))),
            ["Accept { peer: 10.0.0.1 }"]
        );
        assert_eq!(inputs(&mut lan, 0, Ok(ConnId(0))), ["Connected(ConnId(5))"]);
        assert_eq!(lan.io(0, ()).send(ConnId(5), b"hello"), Ok(5));
        assert_eq!(lan.io(1, ()).received(ConnId(9)), b"hello");
        // A refused one fails at the dialer.
        lan.io(0, ())
            .connect(ConnId(6), IpAddr::from([10, 0, 0, 2]), 500);
        inputs(&mut lan, 1, Err(Rejected::ShuttingDown));
        assert_eq!(
            inputs(&mut lan, 0, Ok(ConnId(0))),
            ["ConnectFailed(ConnId(6))"]
        );
    }

    #[test]
    fn a_connect_closed_before_it_is_accepted_never_arrives() {
        let mut lan = lan(None);
        let mut io = lan.io(0, ());
        io.connect(ConnId(5), IpAddr::from([10, 0, 0, 2]), 500);
        io.close(ConnId(5));
        assert!(inputs(&mut lan, 1, Ok(ConnId(9))).is_empty());
        // Nobody at the address, or not running: fails at once.
        lan.io(0, ())
            .connect(ConnId(6), IpAddr::from([10, 0, 0, 3]), 500);
        assert_eq!(
            inputs(&mut lan, 0, Ok(ConnId(0))),
            ["ConnectFailed(ConnId(6))"]
        );
    }

    #[test]
    fn a_full_window_blocks_the_writer_until_the_reader_reads() {
        let mut lan = lan(Some(4));
        lan.io(0, ())
            .connect(ConnId(5), IpAddr::from([10, 0, 0, 2]), 500);
        inputs(&mut lan, 1, Ok(ConnId(9)));
        inputs(&mut lan, 0, Ok(ConnId(0)));
        assert_eq!(lan.io(0, ()).send(ConnId(5), b"abcdef"), Ok(4));
        assert_eq!(lan.io(0, ()).send(ConnId(5), b"ef"), Ok(0));
        assert!(inputs(&mut lan, 0, Ok(ConnId(0))).is_empty(), "blocked");
        lan.io(1, ()).consumed(
            ConnId(9),
            Received {
                consumed: 3,
                applied: 0,
            },
        );
        assert_eq!(inputs(&mut lan, 0, Ok(ConnId(0))), ["Writable(ConnId(5))"]);
        assert_eq!(lan.traffic[0][1].bytes, 4);
    }

    #[test]
    fn a_crash_resets_the_other_end_and_keeps_the_kernel() {
        let mut lan = lan(None);
        lan.io(0, ())
            .connect(ConnId(5), IpAddr::from([10, 0, 0, 2]), 500);
        inputs(&mut lan, 1, Ok(ConnId(9)));
        inputs(&mut lan, 0, Ok(ConnId(0)));
        lan.set_link(1, MASTER);
        lan.crash(1);
        assert!(!lan.has_input(1), "the process's inputs go with it");
        assert_eq!(inputs(&mut lan, 0, Ok(ConnId(0))), ["Closed(ConnId(5))"]);
        assert_eq!(lan.io(0, ()).send(ConnId(5), b"x"), Err(SendError::Closed));
        lan.start(1, true);
        assert_eq!(inputs(&mut lan, 1, Ok(ConnId(0))), ["LinkState(4)"]);
    }
}
