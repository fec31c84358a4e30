//! A small deterministic world for 2–5 `Node`s: direct in-memory byte links,
//! one simulated PF_KEY kernel per node ([`sasyncd_sim::kernel::Kernel`],
//! which validates writes like OpenBSD's: the pid must be the writer's,
//! extension sets must fit the message type...), promiscuous copies read
//! with `read_promisc`, dumps fed record by record with pause/resume, carp
//! link state set by the test, a demotion counter and IKE results.
//!
//! Scripted peers that are not `Node`s (an "OpenBSD sasyncd" written with
//! the codecs) plug in as external connection ends ([`World::ext_connect`],
//! [`World::ext_listen`]).
//!
//! Every call into a `Node` goes through [`in_core!`](crate::in_core), so
//! the zero-allocation test can count what the core allocates.
//!
//! The platform contract is followed strictly, so a node that breaks it
//! stalls here: bytes a node did not take are offered again only after its
//! `Event::Readable`; `handle_sent` may report partial writes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::dialect::KernelDialect;
use sasyncd_core::node::{
    ConnId, DumpId, FixedMarks, IkeMode, Node, NodeError, NodeStats, PeerView, Reconfigured,
    Settings,
};
use sasyncd_core::pfkey::set_pid_seq;
use sasyncd_core::platform::drive;
use sasyncd_core::state::RunState;
use sasyncd_core::time::Instant;
use sasyncd_sim::errno::Errno;
use sasyncd_sim::kernel::Kernel;
use sasyncd_sim::rng::Rng;
use sasyncd_sim::world::SimRandom;

use crate::in_core;

mod io;

/// The node type the harness runs: 4 peers, `RING` bytes of delta ring,
/// room for `MARKS` snapshot marks (a fixed store: the zero-allocation test
/// counts every heap use inside the node).
pub type HNode<const RING: usize, const MARKS: usize> =
    Node<SoftCrypto, SimRandom, 4, RING, FixedMarks<MARKS>, { 16 * 1024 }>;

/// The shared key every generated config uses (the §16 example key).
pub const KEY: &str = "sasyncd-test-key";

/// The pid the IKE daemon writes with on every host.
pub const IKE_PID: u32 = 9000;

/// Address of node `i`.
pub fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8))
}

/// A config for node `i` of `n`, peering with all others, plus `extra`.
pub fn config(i: usize, n: usize, extra: &str) -> Vec<u8> {
    let mut s = String::new();
    for j in (0..n).filter(|&j| j != i) {
        s += &format!("peer {}\n", addr(j));
    }
    // A statement may appear once: `extra` replaces the key or interface.
    if !extra.contains("sharedkey ") {
        s += &format!("sharedkey {KEY}\n");
    }
    if !extra.contains("interface ") {
        s += "interface carp0\n";
    }
    s += &format!("{extra}\n");
    s.into_bytes()
}

/// carp link states (`LINK_STATE_*`).
pub const BACKUP: u8 = 2;
/// carp MASTER.
pub const MASTER: u8 = 4;

/// One gateway: the sasyncd process (when running) and its kernel.
pub struct Host<const RING: usize, const MARKS: usize> {
    /// The process, when running.
    pub node: Option<Box<HNode<RING, MARKS>>>,
    /// The kernel (survives a crash of the process).
    pub kernel: Kernel,
    /// Our address.
    pub addr: IpAddr,
    /// sasyncd's pid.
    pub pid: u32,
    /// Config text.
    pub config: Vec<u8>,
    /// Carp demotion counter of the group (the boot scripts demoted it).
    pub demoted: i32,
    /// The last mode the IKE daemon was told.
    pub ike: Option<IkeMode>,
    /// Whether IKE requests succeed.
    pub ike_ok: bool,
    /// The carp interface's link state.
    pub link_state: u8,
    /// The kernel takes no writes from sasyncd (backpressure).
    pub stall: bool,
    /// Every PF_KEY message sasyncd wrote to the kernel, as written.
    pub written: Vec<Vec<u8>>,
    /// Writes the kernel refused, with the errno.
    pub refused: Vec<(Vec<u8>, Errno)>,
    /// Every address the process asked to connect to, in order.
    pub dialled: Vec<IpAddr>,
    /// How often the process asked to re-read the carp interface.
    pub rechecks: usize,
    /// The kernel dialect the node is started with (its v2 HELLO says
    /// it); takes effect at the next [`World::start`].
    pub dialect: KernelDialect,
    seed: u64,
    inbox: BTreeMap<ConnId, Vec<u8>>,
    /// Connects and short writes whose outcome the node hears next round.
    connected: Vec<(ConnId, bool)>,
    writable: BTreeSet<ConnId>,
    dumps: BTreeMap<DumpId, (Vec<Vec<u8>>, usize)>,
    promisc_seq: u32,
}

/// One end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Node(usize, ConnId),
    Ext(usize),
}

/// A connection end driven by the test itself (a scripted peer).
#[derive(Debug, Default)]
pub struct ExtEnd {
    /// Bytes the node sent that the test has not taken yet.
    pub rx: Vec<u8>,
    /// The connection is still open.
    pub open: bool,
    /// The address it has (as the node sees it).
    pub addr: Option<IpAddr>,
}

/// An adversary on the links: may change the bytes node `from` sends.
pub type Tamper = Box<dyn FnMut(usize, &mut Vec<u8>)>;

/// The world with the default (small) node capacities: a ring that a few
/// dozen SAs overflow.
pub type TestWorld = World;

/// The world.
pub struct World<const RING: usize = 8192, const MARKS: usize = 4096> {
    /// Simulated time.
    pub now: Instant,
    /// The gateways.
    pub nodes: Vec<Host<RING, MARKS>>,
    /// Transform applied to bytes in flight, by sender node index.
    pub tamper: Option<Tamper>,
    /// Deliver bytes in random chunks, and accept random partial writes.
    pub chunking: bool,
    /// At most this many bytes wait unread on a link (like a TCP window):
    /// a node's writes beyond it are short, so that one round moves a
    /// bounded amount (a snapshot can be caught mid-way).
    pub window: Option<usize>,
    /// Anti-entropy period for nodes started from now on.
    pub digest_interval: Duration,
    /// Scripted peers' ends.
    pub ext: Vec<ExtEnd>,
    ext_listen: Vec<IpAddr>,
    links: Vec<(End, End)>,
    rng: Rng,
    ike_seq: u32,
    spi: u32,
}

impl<const RING: usize, const MARKS: usize> World<RING, MARKS> {
    /// Nodes with these configs, started at t = 1 s with link state BACKUP.
    pub fn new(configs: Vec<Vec<u8>>) -> Self {
        Self::with_digest_interval(configs, Duration::from_secs(60))
    }

    /// [`new`](Self::new), with masters sending anti-entropy digests every
    /// `digest_interval`.
    pub fn with_digest_interval(configs: Vec<Vec<u8>>, digest_interval: Duration) -> Self {
        let mut w = World {
            now: Instant::from_millis(1000),
            nodes: Vec::new(),
            tamper: None,
            chunking: false,
            window: None,
            digest_interval,
            ext: Vec::new(),
            ext_listen: Vec::new(),
            links: Vec::new(),
            rng: Rng::new(0x5eed),
            ike_seq: 0,
            spi: 0x1000,
        };
        for (i, config) in configs.into_iter().enumerate() {
            w.nodes.push(Host {
                node: None,
                kernel: Kernel::new(Rng::new(i as u64 + 1)),
                addr: addr(i),
                pid: 100 + i as u32,
                config,
                demoted: 1,
                ike: None,
                ike_ok: true,
                link_state: BACKUP,
                stall: false,
                written: Vec::new(),
                refused: Vec::new(),
                dialled: Vec::new(),
                rechecks: 0,
                dialect: KernelDialect::OpenBsd,
                seed: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
                inbox: BTreeMap::new(),
                connected: Vec::new(),
                writable: BTreeSet::new(),
                dumps: BTreeMap::new(),
                promisc_seq: 0,
            });
            w.start(i);
        }
        w
    }

    /// Starts (or restarts) node `i`'s process with a new boot epoch.
    pub fn start(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let cfg = Config::parse(&n.config).expect("config");
        let mut id = [0u8; 16];
        id[0] = i as u8 + 1;
        n.seed = n.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut settings = Settings::new(id, n.seed, n.pid);
        settings.digest_interval = self.digest_interval;
        settings.dialect = n.dialect;
        let rng = SimRandom(Rng::new(n.seed));
        let node = in_core!(Node::new(
            &cfg,
            settings,
            SoftCrypto,
            rng,
            FixedMarks::new(),
            now
        ))
        .expect("node");
        n.node = Some(Box::new(node));
        if cfg.locked.is_none() {
            let ls = n.link_state;
            in_core!(self.node(i).handle_link_state(now, ls));
        }
    }

    /// Node `i` reloads `config` (SIGHUP); the running process keeps
    /// everything the new config does not change. The config text is kept
    /// only if the node took it, so a later [`start`](Self::start) uses
    /// what the node runs with.
    pub fn reconfigure(&mut self, i: usize, config: Vec<u8>) -> Result<Reconfigured, NodeError> {
        let now = self.now;
        let cfg = Config::parse(&config).expect("config");
        let r = in_core!(self.node(i).reconfigure(now, &cfg));
        if r.is_ok() {
            self.nodes[i].config = config;
        }
        r
    }

    /// The process of node `i` (panics if it is down).
    pub fn node(&mut self, i: usize) -> &mut HNode<RING, MARKS> {
        self.nodes[i].node.as_mut().expect("node is down")
    }

    /// Node `i`'s statistics.
    pub fn stats(&mut self, i: usize) -> NodeStats {
        in_core!(self.node(i).stats())
    }

    /// Node `i`'s view of its peers.
    pub fn peers(&mut self, i: usize) -> Vec<PeerView> {
        let mut v = Vec::with_capacity(8);
        let node = self.node(i);
        in_core!(v.extend(node.peers()));
        v
    }

    /// Node `i`'s run state.
    pub fn run_state(&mut self, i: usize) -> RunState {
        in_core!(self.node(i).run_state())
    }

    /// Whether node `i`'s sasyncd socket is promiscuous in its kernel.
    pub fn promisc(&self, i: usize) -> bool {
        self.nodes[i].kernel.is_promisc(self.nodes[i].pid)
    }

    /// Whether the kernels of `a` and `b` hold the same SAs and flows.
    pub fn synced(&self, a: usize, b: usize) -> bool {
        let r = self.nodes[a]
            .kernel
            .entries_equal_after_filter(&self.nodes[b].kernel, &|_| true);
        if let Err(d) = &r {
            eprintln!("kernels {a} and {b} differ: {d:?}");
        }
        r.is_ok()
    }

    /// A fresh SPI.
    pub fn next_spi(&mut self) -> u32 {
        self.spi += 1;
        self.spi
    }

    /// The process of node `i` crashes: its kernel stays, its peers see
    /// its connections reset.
    pub fn crash(&mut self, i: usize) {
        self.process_gone(i);
        let mut gone = Vec::new();
        self.links.retain(|&(a, b)| {
            let mine = |e: End| matches!(e, End::Node(j, _) if j == i);
            if mine(a) {
                gone.push(b);
            } else if mine(b) {
                gone.push(a);
            }
            !(mine(a) || mine(b))
        });
        for e in gone {
            self.closed(e);
        }
    }

    /// The host vanishes: its process and links are gone, but its peers
    /// are not told (no reset reaches them); what they send is lost.
    pub fn vanish(&mut self, i: usize) {
        self.process_gone(i);
        let mine = |e: End| matches!(e, End::Node(j, _) if j == i);
        self.links.retain(|&(a, b)| !(mine(a) || mine(b)));
    }

    fn process_gone(&mut self, i: usize) {
        let h = &mut self.nodes[i];
        h.node = None;
        h.inbox.clear();
        h.connected.clear();
        h.writable.clear();
        h.dumps.clear();
        // The PF_KEY socket closes with the process.
        h.kernel.set_promisc(h.pid, false);
        while h.kernel.read_promisc(h.pid).is_some() {}
    }

    /// Breaks every link between nodes `a` and `b` (like a TCP reset).
    pub fn cut(&mut self, a: usize, b: usize) {
        let between = |x: End, y: End| matches!((x, y), (End::Node(i, _), End::Node(j, _)) if (i, j) == (a, b) || (i, j) == (b, a));
        let mut gone = Vec::new();
        self.links.retain(|&(x, y)| {
            if between(x, y) {
                gone.push(x);
                gone.push(y);
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
        let now = self.now;
        match e {
            End::Node(j, c) => {
                self.nodes[j].inbox.remove(&c);
                self.nodes[j].writable.remove(&c);
                if let Some(n) = self.nodes[j].node.as_mut() {
                    in_core!(n.handle_closed(now, c));
                }
            }
            End::Ext(x) => self.ext[x].open = false,
        }
    }

    /// Sets node `i`'s carp link state and reports it.
    pub fn set_link(&mut self, i: usize, state: u8) {
        self.nodes[i].link_state = state;
        let now = self.now;
        if let Some(n) = self.nodes[i].node.as_mut() {
            in_core!(n.handle_link_state(now, state));
        }
    }

    /// The IKE daemon on node `i` writes `msg` (its pid and seq set here);
    /// the kernel's answer is returned. Promiscuous copies are read at once.
    pub fn try_ike_write(
        &mut self,
        i: usize,
        msg: &[u8],
    ) -> Result<sasyncd_sim::kernel::WriteOk, Errno> {
        let mut m = msg.to_vec();
        self.ike_seq += 1;
        set_pid_seq(&mut m, IKE_PID, self.ike_seq);
        self.nodes[i].kernel.set_now(self.now);
        let r = self.nodes[i].kernel.write(&m, IKE_PID);
        self.read_promisc(i);
        r
    }

    /// [`try_ike_write`](Self::try_ike_write) that must succeed.
    pub fn ike_write(&mut self, i: usize, msg: &[u8]) {
        if let Err(e) = self.try_ike_write(i, msg) {
            panic!("node {i}: the kernel refused the IKE daemon's write: {e:?}");
        }
    }

    /// Feeds node `i` the promiscuous copies waiting on its socket.
    fn read_promisc(&mut self, i: usize) -> bool {
        let now = self.now;
        let h = &mut self.nodes[i];
        let Some(n) = h.node.as_mut() else {
            return false;
        };
        let mut moved = false;
        while let Some(m) = h.kernel.read_promisc(h.pid) {
            moved = true;
            in_core!(n.handle_pfkey(now, &m));
        }
        moved
    }

    /// Runs until nothing moves, without advancing time.
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("world did not settle");
    }

    /// Runs for `ms` of simulated time, firing timers.
    pub fn run_for(&mut self, ms: u64) {
        let end = self.now.as_millis() + ms;
        loop {
            self.settle();
            let next = self
                .nodes
                .iter()
                .filter_map(|h| h.node.as_ref().and_then(|n| in_core!(n.poll_timeout())))
                .min()
                .map_or(end, |t| t.as_millis());
            if next > end {
                self.now = Instant::from_millis(end);
                self.settle();
                return;
            }
            self.now = Instant::from_millis(next.max(self.now.as_millis() + 1).min(end));
            let now = self.now;
            for h in self.nodes.iter_mut() {
                if let Some(n) = h.node.as_mut() {
                    in_core!(n.handle_timeout(now));
                }
            }
            if now.as_millis() >= end {
                self.settle();
                return;
            }
        }
    }

    /// Advances time by `ms` and fires the nodes' timers, without settling
    /// (for tests that step through a transfer).
    pub fn tick(&mut self, ms: u64) {
        self.now = Instant::from_millis(self.now.as_millis() + ms);
        let now = self.now;
        for h in self.nodes.iter_mut() {
            if let Some(n) = h.node.as_mut() {
                in_core!(n.handle_timeout(now));
            }
        }
    }

    /// One round over every node; whether anything moved.
    pub fn step(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_none() {
                continue;
            }
            self.nodes[i].kernel.set_now(self.now);
            moved |= self.read_promisc(i);
            moved |= self.service(i);
        }
        moved
    }

    /// Hands node `i` what happened since the last round (connects that
    /// ended, connections writable again), then runs the shared driver.
    fn service(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        let h = &mut self.nodes[i];
        let Some(n) = h.node.as_mut() else {
            return false;
        };
        for (c, ok) in std::mem::take(&mut h.connected) {
            moved = true;
            if ok {
                in_core!(n.handle_connected(now, c));
            } else {
                in_core!(n.handle_connect_failed(now, c));
            }
        }
        for c in std::mem::take(&mut h.writable) {
            moved = true;
            in_core!(n.handle_writable(now, c));
        }
        let Some(mut node) = self.nodes[i].node.take() else {
            return moved;
        };
        let mut io = io::Io {
            w: self,
            i,
            moved: false,
        };
        in_core!(drive(&mut *node, &mut io)).expect("the node and the harness settle");
        moved |= io.moved;
        self.nodes[i].node = Some(node);
        moved
    }

    fn peer_of(&self, e: End) -> Option<End> {
        self.links.iter().find_map(|&(a, b)| {
            if a == e {
                Some(b)
            } else if b == e {
                Some(a)
            } else {
                None
            }
        })
    }

    // ----- scripted peers ------------------------------------------------

    /// A scripted peer at `from` connects to node `i`; the id of its end, or
    /// `None` if the node refused it.
    pub fn ext_connect(&mut self, i: usize, from: IpAddr) -> Option<usize> {
        let now = self.now;
        let c = in_core!(self.node(i).handle_accept(now, from)).ok()?;
        self.ext.push(ExtEnd {
            rx: Vec::new(),
            open: true,
            addr: Some(from),
        });
        let x = self.ext.len() - 1;
        self.links.push((End::Node(i, c), End::Ext(x)));
        Some(x)
    }

    /// Connections nodes open to `addr` are accepted by a scripted peer
    /// (the new ends appear in [`ext`](Self::ext)); without this they fail.
    pub fn ext_listen(&mut self, addr: IpAddr) {
        self.ext_listen.push(addr);
    }

    /// The scripted peer writes `bytes` on its end `x`.
    pub fn ext_send(&mut self, x: usize, bytes: &[u8]) {
        if let Some(End::Node(j, c)) = self.peer_of(End::Ext(x)) {
            self.nodes[j]
                .inbox
                .entry(c)
                .or_default()
                .extend_from_slice(bytes);
        }
    }

    /// Takes what the node sent to the scripted peer's end `x`.
    pub fn ext_take(&mut self, x: usize) -> Vec<u8> {
        std::mem::take(&mut self.ext[x].rx)
    }
}

impl<const RING: usize, const MARKS: usize> std::fmt::Debug for Host<RING, MARKS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("addr", &self.addr)
            .field("running", &self.node.is_some())
            .field("sas", &self.kernel.sa_count())
            .field("flows", &self.kernel.flow_count())
            .field("demoted", &self.demoted)
            .finish()
    }
}

impl<const RING: usize, const MARKS: usize> std::fmt::Debug for World<RING, MARKS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("nodes", &self.nodes)
            .field("links", &self.links.len())
            .finish()
    }
}
