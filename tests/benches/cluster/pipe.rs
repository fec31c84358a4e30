//! A lean in-memory world for the benchmark: a few hosts, each a `Node` on
//! its own simulated kernel, joined by byte pipes with a TCP-like window.
//!
//! Unlike the test harness (`sasyncd_tests::harness`) nothing here keeps
//! history or maps by `BTreeMap`: inboxes are one `Vec<u8>` per connection
//! with a read offset, dumps are the kernel's dump buffer walked in place.
//!
//! Every call into a node is timed with the monotonic clock and booked to
//! that node's `core_ns`; the driver's calls back into the platform are
//! timed too and taken out again, so `core_ns` is the node's own time
//! (minus one clock read per callback, see [`clock_overhead_ns`]).
//!
//! On a shared machine the thread is preempted now and then, which the
//! monotonic clock counts. With [`World::cpu_split`] each driver run is
//! also measured with the thread's CPU clock (too slow to read per
//! callback: ~1 µs a read in a VM), and the node's share of that CPU time
//! is taken in proportion to its share of the run's monotonic time.

use std::net::IpAddr;
use std::time::{Duration, Instant as Clock};

use nix::time::{clock_gettime, ClockId};
use sasyncd_core::config::Config;
use sasyncd_core::node::{
    ConnId, DemoteEffect, DumpId, IkeRequest, NodeStats, PeerView, Received, Settings, Table,
};
use sasyncd_core::platform::{drive, DumpRead, PfkeyWrite, Platform, SendError};
use sasyncd_core::time::Instant;
use sasyncd_sim::kernel::Kernel;
use sasyncd_sim::rng::Rng;

use super::node::{build_node, BenchNode};

/// carp `LINK_STATE_*` values.
pub const BACKUP: u8 = 2;
/// carp MASTER.
pub const MASTER: u8 = 4;

/// What a host hears about at its next service (outcomes the platform
/// learned while another node was being driven).
#[derive(Debug, Clone, Copy)]
enum Pending {
    Connected(ConnId, bool),
    Writable(ConnId),
    Closed(ConnId),
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

/// One dump the platform holds: the kernel's dump bytes and where we are.
#[derive(Debug)]
struct Dump {
    id: DumpId,
    bytes: Vec<u8>,
    at: usize,
}

/// One gateway: its sasyncd node (when running) and its kernel.
pub struct Host {
    /// The process, when running.
    pub node: Option<Box<BenchNode>>,
    /// The kernel.
    pub kernel: Kernel,
    /// Our address.
    pub addr: IpAddr,
    /// sasyncd's pid.
    pub pid: u32,
    /// carp link state reported to the node.
    pub link_state: u8,
    /// Parsed configuration text.
    pub config: Vec<u8>,
    /// Node time in calls into the node (ns), platform callbacks excluded.
    pub core_ns: f64,
    /// Platform time inside this node's driver (ns): kernel, pipes.
    pub platform_ns: f64,
    inbox: Vec<(ConnId, RxBuf)>,
    dumps: Vec<Dump>,
    pending: Vec<Pending>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("addr", &self.addr)
            .field("running", &self.node.is_some())
            .field("sas", &self.kernel.sa_count())
            .field("flows", &self.kernel.flow_count())
            .finish()
    }
}

/// Both ends of a connection, and whether each end's last write was short.
#[derive(Debug, Clone, Copy)]
struct Link {
    ends: [(usize, ConnId); 2],
    blocked: [bool; 2],
}

/// Bytes and socket writes from one host to another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes written.
    pub bytes: u64,
    /// `send` calls that wrote something.
    pub writes: u64,
}

/// The world: hosts, links, simulated time, traffic counters.
#[derive(Debug)]
pub struct World {
    /// Simulated time (what the nodes see).
    pub now: Instant,
    /// The gateways.
    pub hosts: Vec<Host>,
    /// At most this many bytes wait unread on one direction of a link
    /// (like a socket buffer): writes beyond it are short.
    pub window: usize,
    /// `traffic[from][to]`.
    pub traffic: Vec<Vec<Traffic>>,
    /// One clock read, subtracted once per timed platform callback.
    pub clock_ns: f64,
    /// Book driver runs by thread CPU time (see the module documentation).
    pub cpu_split: bool,
    /// One read of the thread CPU clock.
    pub cpu_clock_ns: f64,
    links: Vec<Link>,
}

/// This thread's CPU time in ns.
pub fn thread_cpu_ns() -> f64 {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    t.tv_sec() as f64 * 1e9 + t.tv_nsec() as f64
}

/// The cost of one [`thread_cpu_ns`] (median of a few runs).
pub fn cpu_clock_overhead_ns() -> f64 {
    let mut v: Vec<f64> = (0..9)
        .map(|_| {
            let n = 2_000u32;
            let t = Clock::now();
            for _ in 0..n {
                std::hint::black_box(thread_cpu_ns());
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The cost of one `std::time::Instant::now()` (median of a few runs).
pub fn clock_overhead_ns() -> f64 {
    let mut v: Vec<f64> = (0..9)
        .map(|_| {
            let n = 200_000u32;
            let t = Clock::now();
            for _ in 0..n {
                std::hint::black_box(Clock::now());
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

/// Times one call into host `i`'s node and books it as core time.
macro_rules! core_call {
    ($host:expr, $e:expr) => {{
        let t = Clock::now();
        let r = $e;
        $host.core_ns += ns(t.elapsed());
        r
    }};
}

impl World {
    /// Hosts with these addresses and configs, kernels empty, nodes not
    /// started; simulated time starts at 1 s.
    pub fn new(hosts: &[(IpAddr, Vec<u8>)], seed: u64) -> World {
        let n = hosts.len();
        World {
            now: Instant::from_millis(1000),
            hosts: hosts
                .iter()
                .enumerate()
                .map(|(i, (addr, config))| Host {
                    node: None,
                    kernel: Kernel::new(Rng::new(seed ^ ((i as u64 + 1) * 0x9e37_79b9))),
                    addr: *addr,
                    pid: 100 + i as u32,
                    link_state: BACKUP,
                    config: config.clone(),
                    core_ns: 0.0,
                    platform_ns: 0.0,
                    inbox: Vec::new(),
                    dumps: Vec::new(),
                    pending: Vec::new(),
                })
                .collect(),
            window: 256 * 1024,
            traffic: vec![vec![Traffic::default(); n]; n],
            clock_ns: clock_overhead_ns(),
            cpu_split: false,
            cpu_clock_ns: cpu_clock_overhead_ns(),
            links: Vec::new(),
        }
    }

    /// Starts host `i`'s node with `settings` (pid is the host's).
    pub fn start(&mut self, i: usize, mut settings: Settings, seed: u64) {
        let now = self.now;
        let h = &mut self.hosts[i];
        let cfg = Config::parse(&h.config).expect("config");
        settings.pid = h.pid;
        let node = core_call!(h, build_node(&cfg, settings, seed, now));
        h.node = Some(node);
        if cfg.locked.is_none() {
            let ls = h.link_state;
            let n = h.node.as_mut().expect("started");
            core_call!(h, n.handle_link_state(now, ls));
        }
    }

    /// Sets host `i`'s carp link state and tells its node.
    pub fn set_link(&mut self, i: usize, state: u8) {
        let now = self.now;
        let h = &mut self.hosts[i];
        h.link_state = state;
        if let Some(n) = h.node.as_mut() {
            core_call!(h, n.handle_link_state(now, state));
        }
    }

    /// Host `i`'s process dies: its links reset, its kernel stays.
    pub fn crash(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        h.node = None;
        h.inbox.clear();
        h.dumps.clear();
        h.pending.clear();
        h.kernel.set_promisc(h.pid, false);
        while h.kernel.read_promisc(h.pid).is_some() {}
        let mut gone = Vec::new();
        self.links.retain(|l| {
            let mine = l.ends.iter().position(|e| e.0 == i);
            if let Some(k) = mine {
                gone.push(l.ends[1 - k]);
            }
            mine.is_none()
        });
        for (j, c) in gone {
            self.hosts[j].inbox.retain(|(id, _)| *id != c);
            self.hosts[j].pending.push(Pending::Closed(c));
        }
    }

    /// Node `i` (panics if it is down).
    pub fn node(&mut self, i: usize) -> &mut BenchNode {
        self.hosts[i].node.as_mut().expect("node is down")
    }

    /// Node `i`'s statistics (not timed).
    pub fn stats(&mut self, i: usize) -> NodeStats {
        self.node(i).stats()
    }

    /// Node `i`'s view of the peer at `addr` (not timed).
    pub fn peer(&mut self, i: usize, addr: IpAddr) -> Option<PeerView> {
        self.node(i).peers().find(|p| p.addr == addr)
    }

    /// Core time of all nodes so far (ns).
    pub fn core_ns(&self) -> f64 {
        self.hosts.iter().map(|h| h.core_ns).sum()
    }

    /// Bytes moved between all hosts so far.
    pub fn bytes(&self) -> u64 {
        self.traffic.iter().flatten().map(|t| t.bytes).sum()
    }

    /// Runs until nothing moves, without advancing time.
    pub fn settle(&mut self) {
        for _ in 0..100_000_000u64 {
            if !self.step() {
                return;
            }
        }
        panic!("the world did not settle");
    }

    /// Settles, then advances simulated time from deadline to deadline
    /// (firing the nodes' timers) until `done` holds or `max_ms` of
    /// simulated time have passed. Whether `done` held.
    pub fn run_until(&mut self, max_ms: u64, mut done: impl FnMut(&mut World) -> bool) -> bool {
        let end = self.now.as_millis() + max_ms;
        loop {
            self.settle();
            if done(self) {
                return true;
            }
            let next = self
                .hosts
                .iter_mut()
                .filter_map(|h| {
                    let n = h.node.as_ref()?;
                    core_call!(h, n.poll_timeout())
                })
                .min();
            let Some(next) = next else { return false };
            if next.as_millis() > end {
                return false;
            }
            self.tick_to(Instant::from_millis(
                next.as_millis().max(self.now.as_millis() + 1),
            ));
        }
    }

    /// Sets the time to `t` and fires every node's timers.
    pub fn tick_to(&mut self, t: Instant) {
        self.now = t;
        for h in &mut self.hosts {
            if let Some(n) = h.node.as_mut() {
                core_call!(h, n.handle_timeout(t));
            }
        }
    }

    /// One round over every host; whether anything moved.
    pub fn step(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.hosts.len() {
            moved |= self.service(i);
        }
        moved
    }

    /// Hands host `i` what happened (promiscuous copies, connects, writable
    /// and closed connections), then runs the shared driver.
    fn service(&mut self, i: usize) -> bool {
        let now = self.now;
        let h = &mut self.hosts[i];
        let Some(mut node) = h.node.take() else {
            return false;
        };
        let mut moved = false;
        h.kernel.set_now(now);
        while let Some(m) = h.kernel.read_promisc(h.pid) {
            moved = true;
            core_call!(h, node.handle_pfkey(now, &m));
        }
        for p in std::mem::take(&mut h.pending) {
            moved = true;
            match p {
                Pending::Connected(c, true) => core_call!(h, node.handle_connected(now, c)),
                Pending::Connected(c, false) => core_call!(h, node.handle_connect_failed(now, c)),
                Pending::Writable(c) => core_call!(h, node.handle_writable(now, c)),
                Pending::Closed(c) => core_call!(h, node.handle_closed(now, c)),
            }
        }
        let mut io = Io {
            w: self,
            i,
            moved: false,
            platform_ns: 0.0,
            calls: 0,
        };
        let split = io.w.cpu_split;
        let cpu0 = if split { thread_cpu_ns() } else { 0.0 };
        let t = Clock::now();
        drive(&mut *node, &mut io).expect("the node and the pipe settle");
        let total = ns(t.elapsed());
        let cpu = if split {
            (thread_cpu_ns() - cpu0 - io.w.cpu_clock_ns).max(0.0)
        } else {
            0.0
        };
        let (pns, calls) = (io.platform_ns, io.calls);
        moved |= io.moved;
        let core_wall = (total - pns - calls as f64 * self.clock_ns).max(0.0);
        let core = if split && total > 0.0 {
            cpu * core_wall / total
        } else {
            core_wall
        };
        let h = &mut self.hosts[i];
        h.core_ns += core;
        h.platform_ns += pns;
        h.node = Some(node);
        moved
    }

    fn link_of(&self, i: usize, c: ConnId) -> Option<(usize, usize)> {
        self.links.iter().enumerate().find_map(|(k, l)| {
            l.ends
                .iter()
                .position(|&e| e == (i, c))
                .map(|side| (k, side))
        })
    }
}

/// Host `i`'s view of the world while the driver runs it.
struct Io<'a> {
    w: &'a mut World,
    i: usize,
    moved: bool,
    platform_ns: f64,
    calls: u64,
}

impl Io<'_> {
    fn timed<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let t = Clock::now();
        let r = f(self);
        self.platform_ns += ns(t.elapsed());
        self.calls += 1;
        r
    }
}

impl Platform for Io<'_> {
    fn now(&mut self) -> Instant {
        self.w.now
    }

    fn connect(&mut self, conn: ConnId, addr: IpAddr, _port: u16) {
        self.timed(|io| {
            io.moved = true;
            let (w, i) = (&mut *io.w, io.i);
            let now = w.now;
            let from = w.hosts[i].addr;
            let target = w.hosts.iter().position(|h| h.addr == addr);
            let accepted = match target {
                Some(j) if j != i && w.hosts[j].node.is_some() => {
                    let h = &mut w.hosts[j];
                    let n = h.node.as_mut().expect("running");
                    core_call!(h, n.handle_accept(now, from))
                        .ok()
                        .map(|c| (j, c))
                }
                _ => None,
            };
            if let Some((j, cj)) = accepted {
                w.links.push(Link {
                    ends: [(i, conn), (j, cj)],
                    blocked: [false; 2],
                });
            }
            w.hosts[i]
                .pending
                .push(Pending::Connected(conn, accepted.is_some()));
        });
    }

    fn close(&mut self, conn: ConnId) {
        self.timed(|io| {
            io.moved = true;
            let (w, i) = (&mut *io.w, io.i);
            w.hosts[i].inbox.retain(|(c, _)| *c != conn);
            if let Some((k, side)) = w.link_of(i, conn) {
                let (j, cj) = w.links[k].ends[1 - side];
                w.links.swap_remove(k);
                w.hosts[j].inbox.retain(|(c, _)| *c != cj);
                w.hosts[j].pending.push(Pending::Closed(cj));
            }
        });
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<usize, SendError> {
        self.timed(|io| {
            let (w, i) = (&mut *io.w, io.i);
            let Some((k, side)) = w.link_of(i, conn) else {
                return Err(SendError::Closed);
            };
            let (j, cj) = w.links[k].ends[1 - side];
            let inbox = &mut w.hosts[j].inbox;
            let at = match inbox.iter().position(|(c, _)| *c == cj) {
                Some(p) => p,
                None => {
                    inbox.push((cj, RxBuf::default()));
                    inbox.len() - 1
                }
            };
            let rx = &mut inbox[at].1;
            let room = w.window.saturating_sub(rx.unread().len());
            let n = bytes.len().min(room);
            rx.buf.extend_from_slice(&bytes[..n]);
            w.links[k].blocked[side] = n < bytes.len();
            if n > 0 {
                let t = &mut w.traffic[i][j];
                t.bytes += n as u64;
                t.writes += 1;
                io.moved = true;
            }
            Ok(n)
        })
    }

    fn received(&mut self, conn: ConnId) -> &[u8] {
        // Not timed: a slice borrow (and timing it would cost more).
        let inbox = &self.w.hosts[self.i].inbox;
        match inbox.iter().find(|(c, _)| *c == conn) {
            Some((_, rx)) => rx.unread(),
            None => &[],
        }
    }

    fn consumed(&mut self, conn: ConnId, r: Received) {
        self.timed(|io| {
            io.moved = true;
            let (w, i) = (&mut *io.w, io.i);
            if let Some((_, rx)) = w.hosts[i].inbox.iter_mut().find(|(c, _)| *c == conn) {
                rx.consume(r.consumed);
            }
            if let Some((k, side)) = w.link_of(i, conn) {
                let other = 1 - side;
                if w.links[k].blocked[other] {
                    w.links[k].blocked[other] = false;
                    let (j, cj) = w.links[k].ends[other];
                    w.hosts[j].pending.push(Pending::Writable(cj));
                }
            }
        });
    }

    fn pfkey_write(&mut self, msg: &[u8]) -> PfkeyWrite {
        self.timed(|io| {
            io.moved = true;
            let h = &mut io.w.hosts[io.i];
            match h.kernel.write(msg, h.pid) {
                Ok(_) => PfkeyWrite::Written,
                Err(e) => PfkeyWrite::Failed(e.0.unsigned_abs()),
            }
        })
    }

    fn set_promisc(&mut self, on: bool) {
        self.timed(|io| {
            let h = &mut io.w.hosts[io.i];
            h.kernel.set_promisc(h.pid, on);
        });
    }

    fn dump_start(&mut self, dump: DumpId, table: Table) {
        self.timed(|io| {
            io.moved = true;
            let h = &mut io.w.hosts[io.i];
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
        let t = Clock::now();
        self.calls += 1;
        let dumps = &mut self.w.hosts[self.i].dumps;
        let Some(k) = dumps.iter().position(|d| d.id == dump) else {
            self.platform_ns += ns(t.elapsed());
            return DumpRead::End { ok: false };
        };
        let d = &mut dumps[k];
        if d.at + 8 > d.bytes.len() {
            dumps.swap_remove(k);
            self.platform_ns += ns(t.elapsed());
            return DumpRead::End { ok: true };
        }
        // sadb_msg_len: the record's length in 8-byte units.
        let len = usize::from(u16::from_ne_bytes([d.bytes[d.at + 4], d.bytes[d.at + 5]])) * 8;
        let (from, to) = (d.at, (d.at + len).min(d.bytes.len()));
        d.at = to;
        self.platform_ns += ns(t.elapsed());
        DumpRead::Record(&self.w.hosts[self.i].dumps[k].bytes[from..to])
    }

    fn dump_cancel(&mut self, dump: DumpId) {
        self.timed(|io| {
            io.w.hosts[io.i].dumps.retain(|d| d.id != dump);
        });
    }

    fn demote(&mut self, effect: DemoteEffect) -> Option<bool> {
        match effect {
            DemoteEffect::Raise => Some(true),
            DemoteEffect::Release => None,
        }
    }

    fn ike(&mut self, _request: IkeRequest) -> Option<bool> {
        Some(true)
    }

    fn recheck_carp(&mut self) -> Option<u8> {
        Some(self.w.hosts[self.i].link_state)
    }
}
