//! Two gateways in memory: each a kernel and the platform side of its node
//! (TCP-like byte pipes with a bounded window, connects, closes), run by
//! core's one runtime. The nodes themselves live elsewhere (static
//! memory); [`World::service`] takes one at a time.
//!
//! The same model as the simulator's LAN (`platform-sim/src/lan.rs`: what
//! happens to a gateway while the other runs waits in its input queue, a
//! connection is accepted when the accepting node runs, a short write is
//! writable again when the reader reads), written again here because that
//! one is `std` (its kernel is the simulator's, with heap tables) and this
//! program has no heap: fixed receive buffers, a `heapless` queue and the
//! small kernel of `kernel.rs`.

use core::net::{IpAddr, Ipv4Addr};

use sasyncd_core::node::{ConnId, DemoteEffect, DumpId, IkeRequest, Received, Rejected, Table};
use sasyncd_core::pfkey::consts::SADB_EXT_SA;
use sasyncd_core::pfkey::{Msg, SaExt};
use sasyncd_core::platform::{drive, DumpRead, Input, PfkeyWrite, Platform, SendError};
use sasyncd_core::time::Instant;

use crate::kernel::Kernel;
use crate::meter;
use crate::node::FwNode;

/// Gateways in the world.
pub const HOSTS: usize = 2;
/// At most this many bytes wait unread in one direction of a connection
/// (a socket buffer): writes beyond it are short.
pub const WINDOW: usize = 16 * 1024;
/// Connections a host can have open at once (two per peer).
const RX_SLOTS: usize = 4;
/// Kernel clock at simulated time zero (seconds since the epoch).
const EPOCH_SECS: u64 = 1_700_000_000;

/// One connection's receive buffer: bytes `start..end` are unread.
struct RxBuf {
    used: bool,
    conn: ConnId,
    start: usize,
    end: usize,
    buf: [u8; WINDOW],
}

impl RxBuf {
    const fn new() -> RxBuf {
        RxBuf {
            used: false,
            conn: ConnId(0),
            start: 0,
            end: 0,
            buf: [0; WINDOW],
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Appends what fits in the window; how much did.
    fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(WINDOW - (self.end - self.start));
        if self.end + n > WINDOW {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf[self.end..self.end + n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

/// What a host's node hears about at its next service.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// Host `from` connects to us with its connection `conn`.
    Accept { from: usize, conn: ConnId },
    /// A connect we asked for ended.
    Connected(ConnId, bool),
    /// A connection whose last write was short can take bytes again.
    Writable(ConnId),
    /// The other end closed the connection.
    Closed(ConnId),
}

/// One gateway: its kernel, address, sasyncd's pid, receive buffers.
pub struct Host {
    /// The kernel.
    pub kernel: Kernel,
    /// Our address.
    pub addr: IpAddr,
    /// sasyncd's pid.
    pub pid: u32,
    rx: [RxBuf; RX_SLOTS],
    pending: heapless::Deque<Pending, 16>,
    /// The connection of the `Accept` handed over last: (host, its id).
    accepting: Option<(usize, ConnId)>,
}

impl Host {
    const fn new(addr: IpAddr, pid: u32) -> Host {
        Host {
            kernel: Kernel::new(0),
            addr,
            pid,
            rx: [RxBuf::new(), RxBuf::new(), RxBuf::new(), RxBuf::new()],
            pending: heapless::Deque::new(),
            accepting: None,
        }
    }

    fn rx(&mut self, conn: ConnId) -> Option<&mut RxBuf> {
        self.rx.iter_mut().find(|r| r.used && r.conn == conn)
    }

    fn rx_or_new(&mut self, conn: ConnId) -> &mut RxBuf {
        let at = match self.rx.iter().position(|r| r.used && r.conn == conn) {
            Some(at) => at,
            None => {
                let at = self
                    .rx
                    .iter()
                    .position(|r| !r.used)
                    .expect("a free receive buffer (two connections per peer)");
                let r = &mut self.rx[at];
                r.used = true;
                r.conn = conn;
                r.start = 0;
                r.end = 0;
                at
            }
        };
        &mut self.rx[at]
    }

    fn drop_rx(&mut self, conn: ConnId) {
        if let Some(r) = self.rx(conn) {
            r.used = false;
        }
    }

    fn notify(&mut self, p: Pending) {
        self.pending
            .push_back(p)
            .expect("room for pending connection events");
    }
}

/// Both ends of a connection, and whether each end's last write was short.
#[derive(Debug, Clone, Copy)]
struct Link {
    ends: [(usize, ConnId); 2],
    blocked: [bool; 2],
}

/// The world: simulated time, the hosts, the connections between them.
pub struct World {
    /// Simulated time (what the nodes see).
    pub now: Instant,
    /// The gateways.
    pub hosts: [Host; HOSTS],
    links: heapless::Vec<Link, 8>,
    /// Bytes each host wrote to its connections.
    pub sent: [u64; HOSTS],
    /// Test of the check: when `Some(n)`, host 1's `n`th PF_KEY write
    /// (counted from 0) is dropped but reported as written.
    pub drop_write: Option<u32>,
    writes: [u32; HOSTS],
    /// Test of the check: when `Some(spi)`, host 1's kernel takes every
    /// write of the SA with this SPI without carrying it out.
    pub lose_spi: Option<u32>,
    /// SysTick ticks spent in the platform's callbacks (kernels, pipes)
    /// while the driver ran a node, and in handing out promiscuous copies.
    pub platform_ticks: u64,
    /// SysTick ticks spent in the test's own checks (comparing kernels).
    pub check_ticks: u64,
}

impl World {
    /// An empty world, all zeros (so that a static of it is in .bss, not
    /// in the flash image): [`init`](Self::init) gives it its hosts.
    pub const fn new() -> World {
        const NO_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        World {
            now: Instant::ZERO,
            hosts: [Host::new(NO_ADDR, 0), Host::new(NO_ADDR, 0)],
            links: heapless::Vec::new(),
            sent: [0; HOSTS],
            drop_write: None,
            lose_spi: None,
            writes: [0; HOSTS],
            platform_ticks: 0,
            check_ticks: 0,
        }
    }

    /// Gives the hosts these addresses and pids; time starts at 1 s.
    pub fn init(&mut self, addrs: [IpAddr; HOSTS], pids: [u32; HOSTS]) {
        for (h, (addr, pid)) in self.hosts.iter_mut().zip(addrs.into_iter().zip(pids)) {
            h.addr = addr;
            h.pid = pid;
        }
        self.now = Instant::from_millis(1000);
    }

    /// Runs host `i`'s node through the shared runtime (its timer, what
    /// happened since its last service, its outputs); whether anything
    /// moved.
    pub fn service(&mut self, i: usize, node: &mut FwNode) -> bool {
        let now = self.now;
        self.hosts[i]
            .kernel
            .set_now_secs(EPOCH_SECS + now.as_millis() / 1000);
        let mut io = Io {
            w: self,
            i,
            moved: false,
            read: false,
        };
        drive(node, &mut io).expect("the node and its platform settle");
        if io.read {
            io.w.hosts[i].kernel.promisc_pop();
        }
        io.moved
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

/// The SPI of the SA a PF_KEY message names, if any.
fn spi_of(msg: &[u8]) -> Option<u32> {
    let m = Msg::parse(msg).ok()?;
    Some(SaExt::new(m.find(SADB_EXT_SA)?).ok()?.spi())
}

/// Host `i`'s view of the world while the driver runs its node.
struct Io<'a> {
    w: &'a mut World,
    i: usize,
    moved: bool,
    /// The oldest promiscuous copy was handed over: it goes at the next
    /// read.
    read: bool,
}

impl Io<'_> {
    /// Runs a platform callback, booking its time as the platform's.
    fn timed<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let t = meter::ticks();
        let r = f(self);
        self.w.platform_ticks += meter::ticks() - t;
        r
    }
}

impl Platform for Io<'_> {
    fn now(&mut self) -> Instant {
        self.w.now
    }

    fn poll_input(&mut self) -> Option<Input<'_>> {
        let t = meter::ticks();
        let h = &mut self.w.hosts[self.i];
        if core::mem::take(&mut self.read) {
            h.kernel.promisc_pop();
        }
        let has_copy = h.kernel.promisc_front().is_some();
        let p = if has_copy { None } else { h.pending.pop_front() };
        self.w.platform_ticks += meter::ticks() - t;
        self.moved |= has_copy || p.is_some();
        if has_copy {
            self.read = true;
            return self.w.hosts[self.i].kernel.promisc_front().map(Input::Pfkey);
        }
        Some(match p? {
            Pending::Accept { from, conn } => {
                self.w.hosts[self.i].accepting = Some((from, conn));
                Input::Accept {
                    peer: self.w.hosts[from].addr,
                }
            }
            Pending::Connected(c, true) => Input::Connected(c),
            Pending::Connected(c, false) => Input::ConnectFailed(c),
            Pending::Writable(c) => Input::Writable(c),
            Pending::Closed(c) => Input::Closed(c),
        })
    }

    fn accepted(&mut self, conn: Result<ConnId, Rejected>) {
        self.timed(|io| {
            let i = io.i;
            let Some((from, theirs)) = io.w.hosts[i].accepting.take() else {
                return;
            };
            if let Ok(mine) = conn {
                io.w.links
                    .push(Link {
                        ends: [(from, theirs), (i, mine)],
                        blocked: [false; 2],
                    })
                    .expect("room for a link");
            }
            io.w.hosts[from].notify(Pending::Connected(theirs, conn.is_ok()));
        })
    }

    fn connect(&mut self, conn: ConnId, addr: IpAddr, _port: u16) {
        self.timed(|io| {
            io.moved = true;
            let i = io.i;
            match (0..HOSTS).find(|&j| j != i && io.w.hosts[j].addr == addr) {
                Some(j) => io.w.hosts[j].notify(Pending::Accept { from: i, conn }),
                None => io.w.hosts[i].notify(Pending::Connected(conn, false)),
            }
        })
    }

    fn close(&mut self, conn: ConnId) {
        self.timed(|io| {
            io.moved = true;
            let i = io.i;
            io.w.hosts[i].drop_rx(conn);
            if let Some((k, side)) = io.w.link_of(i, conn) {
                let (j, cj) = io.w.links[k].ends[1 - side];
                io.w.links.swap_remove(k);
                io.w.hosts[j].drop_rx(cj);
                io.w.hosts[j].notify(Pending::Closed(cj));
                return;
            }
            // Not accepted yet: the other host will not hear of it.
            for h in io.w.hosts.iter_mut() {
                for _ in 0..h.pending.len() {
                    let p = h.pending.pop_front().expect("counted");
                    match p {
                        Pending::Accept { from, conn: c } if from == i && c == conn => {}
                        p => h.notify(p),
                    }
                }
            }
        })
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<usize, SendError> {
        self.timed(|io| {
            let i = io.i;
            let (k, side) = io.w.link_of(i, conn).ok_or(SendError::Closed)?;
            let (j, cj) = io.w.links[k].ends[1 - side];
            let n = io.w.hosts[j].rx_or_new(cj).push(bytes);
            io.w.links[k].blocked[side] = n < bytes.len();
            if n > 0 {
                io.w.sent[i] += n as u64;
                io.moved = true;
            }
            Ok(n)
        })
    }

    fn received(&mut self, conn: ConnId) -> &[u8] {
        match self.w.hosts[self.i].rx(conn) {
            Some(r) => r.unread(),
            None => &[],
        }
    }

    fn consumed(&mut self, conn: ConnId, r: Received) {
        self.timed(|io| {
            io.moved = true;
            let i = io.i;
            if let Some(rx) = io.w.hosts[i].rx(conn) {
                rx.consume(r.consumed);
            }
            if let Some((k, side)) = io.w.link_of(i, conn) {
                let other = 1 - side;
                if io.w.links[k].blocked[other] {
                    io.w.links[k].blocked[other] = false;
                    let (j, cj) = io.w.links[k].ends[other];
                    io.w.hosts[j].notify(Pending::Writable(cj));
                }
            }
        })
    }

    fn pfkey_write(&mut self, msg: &[u8]) -> PfkeyWrite {
        self.timed(|io| {
            io.moved = true;
            let i = io.i;
            let nth = io.w.writes[i];
            io.w.writes[i] += 1;
            if i == 1 && io.w.drop_write == Some(nth) {
                return PfkeyWrite::Written;
            }
            if i == 1 && io.w.lose_spi.is_some() && io.w.lose_spi == spi_of(msg) {
                return PfkeyWrite::Written;
            }
            let h = &mut io.w.hosts[i];
            match h.kernel.write(msg, h.pid) {
                Ok(()) => PfkeyWrite::Written,
                Err(errno) => PfkeyWrite::Failed(errno),
            }
        })
    }

    fn set_promisc(&mut self, on: bool) {
        self.timed(|io| {
            io.w.hosts[io.i].kernel.set_promisc(on);
        })
    }

    fn dump_start(&mut self, dump: DumpId, table: Table) {
        self.timed(|io| {
            io.moved = true;
            io.w.hosts[io.i].kernel.dump_start(dump, table);
        })
    }

    fn dump_next(&mut self, dump: DumpId) -> DumpRead<'_> {
        self.w.hosts[self.i].kernel.dump_next(dump)
    }

    fn dump_cancel(&mut self, dump: DumpId) {
        self.timed(|io| {
            io.w.hosts[io.i].kernel.dump_cancel(dump);
        })
    }

    fn demote(&mut self, effect: DemoteEffect) -> Option<bool> {
        // No carp here: raising the demotion "works", releasing is quiet.
        match effect {
            DemoteEffect::Raise => Some(true),
            DemoteEffect::Release => None,
        }
    }

    fn ike(&mut self, _request: IkeRequest) -> Option<bool> {
        Some(true)
    }

    fn recheck_carp(&mut self) -> Option<u8> {
        // Roles are locked by the configuration: no carp interface.
        None
    }
}
