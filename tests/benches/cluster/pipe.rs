//! The benchmark's world: the simulator's in-memory LAN
//! ([`sasyncd_sim::lan`]: gateways with simulated kernels joined by byte
//! links with a TCP-like window) with the benchmark's nodes, each run
//! through core's runtime ([`drive`]) and timed.
//!
//! Every call into a node is timed with the monotonic clock and booked to
//! that node's `core_ns`; the driver's calls back into the LAN are timed
//! too ([`Stopwatch`]) and taken out again, so `core_ns` is the node's own
//! time (minus one clock read per callback, see [`clock_overhead_ns`]).
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
use sasyncd_core::node::{NodeStats, PeerView, Settings};
use sasyncd_core::platform::drive;
use sasyncd_core::time::Instant;
use sasyncd_sim::kernel::Kernel;
use sasyncd_sim::lan::{Gateway, Lan, Meter};
use sasyncd_sim::rng::Rng;

use super::node::{build_node, BenchNode};

pub use sasyncd_sim::lan::{BACKUP, MASTER};

/// One gateway's sasyncd: its node (when running), its configuration and
/// the time spent in it.
pub struct Proc {
    /// The process, when running.
    pub node: Option<Box<BenchNode>>,
    /// Configuration text.
    pub config: Vec<u8>,
    /// Node time in calls into the node (ns), platform callbacks excluded.
    pub core_ns: f64,
    /// Platform time inside this node's driver (ns): kernel, links.
    pub platform_ns: f64,
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("running", &self.node.is_some())
            .field("core_ns", &self.core_ns)
            .finish()
    }
}

/// The world: the LAN, the nodes, what timing costs.
#[derive(Debug)]
pub struct World {
    /// The gateways, links, clock and traffic counters.
    pub lan: Lan,
    /// The sasyncd processes, by gateway.
    pub nodes: Vec<Proc>,
    /// One clock read, subtracted once per timed platform callback.
    pub clock_ns: f64,
    /// Book driver runs by thread CPU time (see the module documentation).
    pub cpu_split: bool,
    /// One read of the thread CPU clock.
    pub cpu_clock_ns: f64,
}

/// Times the driver's calls into the LAN.
#[derive(Debug, Default)]
struct Stopwatch {
    started: Option<Clock>,
    ns: f64,
    calls: u64,
}

impl Meter for Stopwatch {
    fn enter(&mut self) {
        self.started = Some(Clock::now());
    }
    fn leave(&mut self) {
        if let Some(t) = self.started.take() {
            self.ns += ns(t.elapsed());
            self.calls += 1;
        }
    }
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

/// Times one call into a node and books it as core time.
macro_rules! core_call {
    ($proc:expr, $e:expr) => {{
        let t = Clock::now();
        let r = $e;
        $proc.core_ns += ns(t.elapsed());
        r
    }};
}

impl World {
    /// Hosts with these addresses and configs, kernels empty, nodes not
    /// started; simulated time starts at 1 s.
    pub fn new(hosts: &[(IpAddr, Vec<u8>)], seed: u64) -> World {
        let gateways = hosts
            .iter()
            .enumerate()
            .map(|(i, (addr, _))| {
                let kernel = Kernel::new(Rng::new(seed ^ ((i as u64 + 1) * 0x9e37_79b9)));
                let mut g = Gateway::new(*addr, 100 + i as u32, kernel);
                // A million writes are not worth keeping.
                g.record = false;
                g
            })
            .collect();
        let mut lan = Lan::new(gateways, seed);
        lan.window = Some(256 * 1024);
        World {
            lan,
            nodes: hosts
                .iter()
                .map(|(_, config)| Proc {
                    node: None,
                    config: config.clone(),
                    core_ns: 0.0,
                    platform_ns: 0.0,
                })
                .collect(),
            clock_ns: clock_overhead_ns(),
            cpu_split: false,
            cpu_clock_ns: cpu_clock_overhead_ns(),
        }
    }

    /// Starts host `i`'s node with `settings` (pid is the host's).
    pub fn start(&mut self, i: usize, mut settings: Settings, seed: u64) {
        let now = self.lan.now;
        let p = &mut self.nodes[i];
        let cfg = Config::parse(&p.config).expect("config");
        settings.pid = self.lan.hosts[i].pid;
        let node = core_call!(p, build_node(&cfg, settings, seed, now));
        p.node = Some(node);
        self.lan.start(i, cfg.locked.is_none());
    }

    /// Sets host `i`'s carp link state and tells its node.
    pub fn set_link(&mut self, i: usize, state: u8) {
        self.lan.set_link(i, state);
    }

    /// Host `i`'s process dies: its links reset, its kernel stays.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].node = None;
        self.lan.crash(i);
    }

    /// Node `i` (panics if it is down).
    pub fn node(&mut self, i: usize) -> &mut BenchNode {
        self.nodes[i].node.as_mut().expect("node is down")
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
        self.nodes.iter().map(|p| p.core_ns).sum()
    }

    /// Bytes moved between all hosts so far.
    pub fn bytes(&self) -> u64 {
        self.lan.traffic.iter().flatten().map(|t| t.bytes).sum()
    }

    /// Runs until nothing moves, without advancing time.
    pub fn settle(&mut self) {
        let clocks = self.clocks();
        let World { lan, nodes, .. } = self;
        lan.settle(100_000_000, |lan, i| service(lan, &mut nodes[i], i, clocks));
    }

    /// Settles, then advances simulated time from deadline to deadline
    /// (the nodes' timers fire as they run) until `done` holds or `max_ms`
    /// of simulated time have passed. Whether `done` held.
    pub fn run_until(&mut self, max_ms: u64, mut done: impl FnMut(&mut World) -> bool) -> bool {
        let end = self.lan.now.as_millis() + max_ms;
        loop {
            self.settle();
            if done(self) {
                return true;
            }
            let next = self
                .nodes
                .iter_mut()
                .filter_map(|p| {
                    let n = p.node.as_ref()?;
                    core_call!(p, n.poll_timeout())
                })
                .min();
            let Some(next) = next else { return false };
            if next.as_millis() > end {
                return false;
            }
            self.lan.now = Instant::from_millis(next.as_millis().max(self.lan.now.as_millis() + 1));
        }
    }

    fn clocks(&self) -> Clocks {
        Clocks {
            clock_ns: self.clock_ns,
            cpu_split: self.cpu_split,
            cpu_clock_ns: self.cpu_clock_ns,
        }
    }
}

/// What timing a driver run costs, and how to book it.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    clock_ns: f64,
    cpu_split: bool,
    cpu_clock_ns: f64,
}

/// Runs gateway `i`'s process `p` once through the shared runtime, timed;
/// whether anything moved.
fn service(lan: &mut Lan, p: &mut Proc, i: usize, c: Clocks) -> bool {
    let Some(node) = p.node.as_mut() else {
        return false;
    };
    let due = node.poll_timeout().is_some_and(|t| t <= lan.now);
    let cpu0 = if c.cpu_split { thread_cpu_ns() } else { 0.0 };
    let t = Clock::now();
    let mut io = lan.io(i, Stopwatch::default());
    drive(&mut **node, &mut io).expect("the node and the LAN settle");
    let total = ns(t.elapsed());
    let (moved, pns, calls) = (io.moved, io.meter.ns, io.meter.calls);
    let cpu = if c.cpu_split {
        (thread_cpu_ns() - cpu0 - c.cpu_clock_ns).max(0.0)
    } else {
        0.0
    };
    let core_wall = (total - pns - calls as f64 * c.clock_ns).max(0.0);
    p.core_ns += if c.cpu_split && total > 0.0 {
        cpu * core_wall / total
    } else {
        core_wall
    };
    p.platform_ns += pns;
    moved || due
}
