//! A small deterministic world for 2–5 `Node`s: the simulator's in-memory
//! LAN ([`sasyncd_sim::lan`]: direct byte links, one simulated PF_KEY
//! kernel per gateway, carp link state set by the test, a demotion counter
//! and IKE results), with the nodes and their configurations, run through
//! core's one runtime ([`drive`]).
//!
//! Scripted peers that are not `Node`s (an "OpenBSD sasyncd" written with
//! the codecs) plug in as external connection ends ([`World::ext_connect`],
//! [`World::ext_listen`]).
//!
//! Every call into a `Node` goes through [`in_core!`](crate::in_core), and
//! the driver's calls back into the LAN step outside it ([`Probe`]), so the
//! zero-allocation test counts what the core allocates.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::dialect::{Dialect, OpenBsd};
use sasyncd_core::node::{
    FixedMarks, Node, NodeError, NodeStats, NodeStorage, PeerView, Reconfigured, Settings, EVENTS,
    PFKEY_QUEUE_BYTES,
};
use sasyncd_core::pfkey::set_pid_seq;
use sasyncd_core::platform::drive;
use sasyncd_core::state::RunState;
use sasyncd_core::time::Instant;
use sasyncd_sim::errno::Errno;
use sasyncd_sim::kernel::Kernel;
use sasyncd_sim::lan::{Gateway, Lan, Meter};
use sasyncd_sim::rng::Rng;
use sasyncd_sim::world::SimRandom;

use crate::{in_core, probe};

/// The node type the harness runs: room for `MARKS` snapshot marks (a
/// fixed store: the zero-allocation test counts every heap use inside the
/// node), over [`storage`], speaking kernel dialect `D`.
pub type HNode<const MARKS: usize, D = OpenBsd> =
    Node<'static, SoftCrypto, SimRandom, FixedMarks<MARKS>, D>;

/// The harness node's storage: 4 peers, `ring` bytes of delta ring, 16 KiB
/// send buffers, the default PF_KEY and event queues. Built outside the
/// node's calls (the zero-allocation test counts what happens inside).
pub fn storage(ring: usize) -> NodeStorage<'static, SoftCrypto> {
    NodeStorage::on_heap(4, ring, 16 * 1024, PFKEY_QUEUE_BYTES, EVENTS)
}

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

pub use sasyncd_sim::lan::{BACKUP, MASTER};

/// One gateway's sasyncd process (when running) and its configuration;
/// the gateway itself is `World::lan.hosts[i]`.
pub struct Proc<const MARKS: usize, D: Dialect = OpenBsd> {
    /// The process, when running.
    pub node: Option<Box<HNode<MARKS, D>>>,
    /// Config text.
    pub config: Vec<u8>,
    seed: u64,
}

/// An adversary on the links: may change the bytes node `from` sends.
pub type Tamper = sasyncd_sim::lan::Tamper;

/// The world with the default (small) node capacities: a ring that a few
/// dozen SAs overflow.
pub type TestWorld = World;

/// The world. Its nodes speak kernel dialect `D` (their v2 HELLO says
/// so); the simulated kernels are OpenBSD's, so another dialect's nodes
/// only shake hands over empty tables.
pub struct World<const RING: usize = 8192, const MARKS: usize = 4096, D: Dialect = OpenBsd> {
    /// The gateways, their links and the clock.
    pub lan: Lan,
    /// The sasyncd processes, by gateway.
    pub nodes: Vec<Proc<MARKS, D>>,
    /// Anti-entropy period for nodes started from now on.
    pub digest_interval: Duration,
    ike_seq: u32,
    spi: u32,
}

/// The driver's calls out of a node are the harness's, not the core's.
#[derive(Debug, Default)]
pub struct Probe(Option<probe::Outside>);

impl Meter for Probe {
    fn enter(&mut self) {
        self.0 = Some(probe::outside());
    }
    fn leave(&mut self) {
        self.0 = None;
    }
}

impl<const RING: usize, const MARKS: usize, D: Dialect + Default> World<RING, MARKS, D> {
    /// Nodes with these configs, started at t = 1 s with link state BACKUP.
    pub fn new(configs: Vec<Vec<u8>>) -> Self {
        Self::with_digest_interval(configs, Duration::from_secs(60))
    }

    /// [`new`](Self::new), with masters sending anti-entropy digests every
    /// `digest_interval`.
    pub fn with_digest_interval(configs: Vec<Vec<u8>>, digest_interval: Duration) -> Self {
        let gateways = (0..configs.len())
            .map(|i| Gateway::new(addr(i), 100 + i as u32, Kernel::new(Rng::new(i as u64 + 1))))
            .collect();
        let mut w = World {
            lan: Lan::new(gateways, 0x5eed),
            nodes: configs
                .into_iter()
                .enumerate()
                .map(|(i, config)| Proc {
                    node: None,
                    config,
                    seed: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
                })
                .collect(),
            digest_interval,
            ike_seq: 0,
            spi: 0x1000,
        };
        for i in 0..w.nodes.len() {
            w.start(i);
        }
        w
    }

    /// The time.
    pub fn now(&self) -> Instant {
        self.lan.now
    }

    /// Starts (or restarts) node `i`'s process with a new boot epoch.
    pub fn start(&mut self, i: usize) {
        let now = self.lan.now;
        let n = &mut self.nodes[i];
        let cfg = Config::parse(&n.config).expect("config");
        let mut id = [0u8; 16];
        id[0] = i as u8 + 1;
        n.seed = n.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut settings = Settings::new(id, n.seed, 100 + i as u32);
        settings.digest_interval = self.digest_interval;
        let rng = SimRandom(Rng::new(n.seed));
        let storage = storage(RING);
        let node = in_core!(Node::new(
            &cfg,
            settings,
            SoftCrypto,
            rng,
            FixedMarks::new(),
            storage,
            now
        ))
        .expect("node");
        n.node = Some(Box::new(node));
        self.lan.start(i, cfg.locked.is_none());
    }

    /// Node `i` reloads `config` (SIGHUP); the running process keeps
    /// everything the new config does not change. The config text is kept
    /// only if the node took it, so a later [`start`](Self::start) uses
    /// what the node runs with.
    pub fn reconfigure(&mut self, i: usize, config: Vec<u8>) -> Result<Reconfigured, NodeError> {
        let now = self.lan.now;
        let cfg = Config::parse(&config).expect("config");
        let r = in_core!(self.node(i).reconfigure(now, &cfg));
        if r.is_ok() {
            self.nodes[i].config = config;
        }
        r
    }

    /// The process of node `i` (panics if it is down).
    pub fn node(&mut self, i: usize) -> &mut HNode<MARKS, D> {
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
        let h = &self.lan.hosts[i];
        h.kernel.is_promisc(h.pid)
    }

    /// Whether the kernels of `a` and `b` hold the same SAs and flows.
    pub fn synced(&self, a: usize, b: usize) -> bool {
        let r = self.lan.hosts[a]
            .kernel
            .entries_equal_after_filter(&self.lan.hosts[b].kernel, &|_| true);
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
        self.nodes[i].node = None;
        self.lan.crash(i);
    }

    /// The host vanishes: its process and links are gone, but its peers
    /// are not told (no reset reaches them); what they send is lost.
    pub fn vanish(&mut self, i: usize) {
        self.nodes[i].node = None;
        self.lan.vanish(i);
    }

    /// Breaks every link between nodes `a` and `b` (like a TCP reset).
    pub fn cut(&mut self, a: usize, b: usize) {
        self.lan.cut(a, b);
    }

    /// Sets node `i`'s carp link state and reports it.
    pub fn set_link(&mut self, i: usize, state: u8) {
        self.lan.set_link(i, state);
    }

    /// The IKE daemon on node `i` writes `msg` (its pid and seq set here);
    /// the kernel's answer is returned. The node runs at once, so that it
    /// reads the promiscuous copy before the socket's queue can fill.
    pub fn try_ike_write(
        &mut self,
        i: usize,
        msg: &[u8],
    ) -> Result<sasyncd_sim::kernel::WriteOk, Errno> {
        let mut m = msg.to_vec();
        self.ike_seq += 1;
        set_pid_seq(&mut m, IKE_PID, self.ike_seq);
        let now = self.lan.now;
        let k = &mut self.lan.hosts[i].kernel;
        k.set_now(now);
        let r = k.write(&m, IKE_PID);
        service(&mut self.lan, &mut self.nodes[i], i);
        r
    }

    /// [`try_ike_write`](Self::try_ike_write) that must succeed.
    pub fn ike_write(&mut self, i: usize, msg: &[u8]) {
        if let Err(e) = self.try_ike_write(i, msg) {
            panic!("node {i}: the kernel refused the IKE daemon's write: {e:?}");
        }
    }

    /// Runs until nothing moves, without advancing time.
    pub fn settle(&mut self) {
        let World { lan, nodes, .. } = self;
        lan.settle(100_000, |lan, i| service(lan, &mut nodes[i], i));
    }

    /// Runs for `ms` of simulated time, the nodes' timers firing when due.
    pub fn run_for(&mut self, ms: u64) {
        let end = self.lan.now.as_millis() + ms;
        loop {
            self.settle();
            let next = self
                .nodes
                .iter()
                .filter_map(|p| p.node.as_ref().and_then(|n| in_core!(n.poll_timeout())))
                .min()
                .map_or(end, |t| t.as_millis());
            if next > end {
                self.lan.now = Instant::from_millis(end);
                self.settle();
                return;
            }
            self.lan.now = Instant::from_millis(next.max(self.lan.now.as_millis() + 1).min(end));
            if self.lan.now.as_millis() >= end {
                self.settle();
                return;
            }
        }
    }

    /// Advances time by `ms`, without running the nodes (their timers fire
    /// at the next [`step`](Self::step); for tests that step through a
    /// transfer).
    pub fn tick(&mut self, ms: u64) {
        self.lan.now = Instant::from_millis(self.lan.now.as_millis() + ms);
    }

    /// One round over every node; whether anything moved.
    pub fn step(&mut self) -> bool {
        let World { lan, nodes, .. } = self;
        lan.round(|lan, i| service(lan, &mut nodes[i], i))
    }

    // ----- scripted peers ------------------------------------------------

    /// A scripted peer at `from` connects to node `i`; the id of its end, or
    /// `None` if the node refused it.
    pub fn ext_connect(&mut self, i: usize, from: IpAddr) -> Option<usize> {
        let x = self.lan.ext_connect(i, from);
        service(&mut self.lan, &mut self.nodes[i], i);
        self.lan.ext[x].open.then_some(x)
    }

    /// Connections nodes open to `addr` are accepted by a scripted peer
    /// (the new ends appear in `lan.ext`); without this they fail.
    pub fn ext_listen(&mut self, addr: IpAddr) {
        self.lan.ext_listen(addr);
    }

    /// The scripted peer writes `bytes` on its end `x`.
    pub fn ext_send(&mut self, x: usize, bytes: &[u8]) {
        self.lan.ext_send(x, bytes);
    }

    /// Takes what the node sent to the scripted peer's end `x`.
    pub fn ext_take(&mut self, x: usize) -> Vec<u8> {
        self.lan.ext_take(x)
    }
}

/// Runs gateway `i`'s process `p` once through the shared runtime;
/// whether anything moved.
fn service<const MARKS: usize, D: Dialect>(
    lan: &mut Lan,
    p: &mut Proc<MARKS, D>,
    i: usize,
) -> bool {
    let Some(node) = p.node.as_mut() else {
        return false;
    };
    let due = in_core!(node.poll_timeout()).is_some_and(|t| t <= lan.now);
    let mut io = lan.io(i, Probe::default());
    in_core!(drive(&mut **node, &mut io)).expect("the node and the harness settle");
    io.moved || due
}

impl<const MARKS: usize, D: Dialect> std::fmt::Debug for Proc<MARKS, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("running", &self.node.is_some())
            .finish()
    }
}

impl<const RING: usize, const MARKS: usize, D: Dialect> std::fmt::Debug for World<RING, MARKS, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("lan", &self.lan)
            .field("nodes", &self.nodes)
            .finish()
    }
}
