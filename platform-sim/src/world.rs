//! The simulated cluster: `core::node::Node`s wired to simulated kernels,
//! carp, network and IKE daemons, all driven by one clock and one seed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::{min_events, NodeStorage, PFKEY_QUEUE_BYTES};
use sasyncd_core::random::Random;
use sasyncd_core::time::Instant;

use crate::carp::Carp;
use crate::ike::{Ike, IkeConfig};
use crate::kernel::Kernel;
use crate::links::Links;
use crate::logcap;
use crate::net::{Net, RandomTamper, SegmentInfo, Tamper};
use crate::oracle::Oracle;
use crate::rng::Rng;
use crate::scenario::{Action, Scenario};
use crate::takeover::Takeovers;
use crate::trace::Trace;

pub(crate) mod demotion;
mod faults;
mod impostors;
mod io;
mod preload;
pub(crate) mod provenance;
pub(crate) mod runtime;
pub(crate) mod sockets;

use runtime::SimNodeOf;
use sockets::Sockets;

/// The node type the simulator runs, over [`sim_storage`] and marks in a
/// vector.
pub type SimNode = SimNodeOf<sasyncd_core::dialect::OpenBsd>;

/// The simulator's node storage: 8 peers, 64 KiB ring, 16 KiB send
/// buffers, and the smallest event queue core allows (the final oracle
/// fails a run in which it overflowed).
pub fn sim_storage() -> NodeStorage<'static, SoftCrypto> {
    NodeStorage::on_heap(8, 64 * 1024, 16 * 1024, PFKEY_QUEUE_BYTES, min_events(8))
}

/// The node's randomness, from the world's seeded generator.
#[derive(Debug)]
pub struct SimRandom(pub Rng);

impl Random for SimRandom {
    fn fill(&mut self, out: &mut [u8]) {
        self.0.fill(out);
    }
}

/// One gateway.
pub struct Host {
    /// Its own address.
    pub addr: IpAddr,
    /// sasyncd's pid.
    pub pid: u32,
    /// The sasyncd process, when running.
    pub node: Option<Box<SimNode>>,
    /// Its kernel (survives a process crash; a host crash may wipe it).
    pub kernel: Kernel,
    /// Its IKE daemon.
    pub ike: Ike,
    /// The host is up.
    pub up: bool,
    /// Its sasyncd's sockets: inputs waiting, connections, received
    /// bytes, dumps.
    sockets: Sockets,
    /// The carp demotion its sasyncd holds.
    pub demotion: demotion::Demotion,
    /// sasyncd runs with the wrong shared key.
    pub wrong_key: bool,
    boots: u64,
}

/// The whole simulated world.
pub struct World {
    /// What runs.
    pub sc: Scenario,
    /// Simulated time.
    pub now: Instant,
    rng: Rng,
    /// The gateways.
    pub hosts: Vec<Host>,
    /// carp.
    pub carp: Carp,
    /// The network.
    pub net: Net,
    /// Who reaches whom.
    pub links: Links,
    /// The timeline.
    pub trace: Trace,
    /// The checks.
    pub oracle: Oracle,
    /// Takeover measurements (stories only: they cost a table comparison
    /// per event).
    pub takeovers: Option<Takeovers>,
    workload: bool,
    script: Vec<(Instant, Action)>,
    boot_ends: Vec<(Instant, usize)>,
    stranger: Option<usize>,
    log_nodes: bool,
    /// Who wrote the bytes each node applies (the safety oracle).
    provenance: provenance::Provenance,
    altered: std::rc::Rc<std::cell::Cell<u64>>,
    stranger_connected: bool,
    /// The impostors' host, once one connected.
    impostor: Option<usize>,
    /// Impostor connections (by the network's connection number), and
    /// whether each sends junk.
    impostor_conns: BTreeMap<u64, bool>,
}

/// The random adversary, counting what it altered.
#[derive(Debug)]
struct CountingTamper {
    inner: RandomTamper,
    altered: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Tamper for CountingTamper {
    fn data(&mut self, seg: &SegmentInfo, bytes: &mut Vec<u8>, rng: &mut Rng) {
        let before = self.inner.altered;
        self.inner.data(seg, bytes, rng);
        if self.inner.altered != before {
            self.altered.set(self.altered.get() + 1);
        }
    }
}

/// The carp address all gateways share.
pub const VIP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 100));

fn host_addr(i: usize) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1 + i as u8))
}

impl World {
    /// Builds the world for a scenario. `log_nodes` puts what the nodes
    /// log on the timeline (slower; for stories and replays).
    pub fn new(sc: Scenario, log_nodes: bool) -> World {
        let mut rng = Rng::new(sc.seed);
        let addrs: Vec<IpAddr> = (0..sc.nodes).map(host_addr).collect();
        let mut net = Net::new(&addrs, sc.net, rng.fork());
        let altered = std::rc::Rc::new(std::cell::Cell::new(0));
        if sc.tamper > 0.0 {
            net.set_tamper(Some(Box::new(CountingTamper {
                inner: RandomTamper {
                    flip: sc.tamper,
                    truncate: sc.tamper / 2.0,
                    inject: sc.tamper / 2.0,
                    replay: sc.tamper,
                    ..RandomTamper::default()
                },
                altered: altered.clone(),
            })));
        }
        let advskews: Vec<u8> = (0..sc.nodes).map(|i| (i * 20) as u8).collect();
        let hosts = (0..sc.nodes)
            .map(|i| {
                let mut kernel = Kernel::new(rng.fork());
                kernel.add_rtable(crate::ike::RDOMAIN);
                if sc.lossy_promisc {
                    kernel.set_rcvbuf(1024);
                }
                Host {
                    addr: addrs[i],
                    pid: 4000 + i as u32,
                    node: None,
                    kernel,
                    ike: Ike::new(Self::ike_config(&sc, i), rng.fork()),
                    up: false,
                    sockets: Sockets::default(),
                    demotion: Default::default(),
                    wrong_key: false,
                    boots: 0,
                }
            })
            .collect();
        let mut script: Vec<(Instant, Action)> = sc
            .script
            .iter()
            .map(|(d, a)| (Instant::ZERO.add(*d), a.clone()))
            .collect();
        Self::random_faults(&sc, &mut rng, &mut script);
        Self::impostor_script(&sc, &mut script);
        script.sort_by_key(|(t, _)| *t);
        let oracle = Oracle::new(&sc);
        let mut w = World {
            carp: Carp::new(&advskews),
            net,
            links: Links::new(),
            trace: Trace::new()
                .keep_lines(log_nodes)
                .echo(log_nodes && std::env::var_os("SASYNCD_SIM_ECHO").is_some()),
            oracle,
            takeovers: log_nodes.then(Takeovers::default),
            now: Instant::ZERO,
            rng,
            hosts,
            workload: true,
            script,
            boot_ends: Vec::new(),
            stranger: None,
            log_nodes,
            provenance: provenance::Provenance::new(sc.tamper > 0.0),
            altered,
            stranger_connected: false,
            impostor: None,
            impostor_conns: BTreeMap::new(),
            sc,
        };
        logcap::capture(log_nodes);
        w.preload();
        for i in 0..w.hosts.len() {
            w.boot(i);
        }
        w
    }

    fn ike_config(sc: &Scenario, i: usize) -> IkeConfig {
        let mut c = IkeConfig::for_node(i, VIP);
        c.mean_interval = sc.ike_interval;
        c.max_pairs = sc.ike_pairs;
        c
    }

    /// Runs the scenario: the active phase with workload and faults, then
    /// the network heals, crashed hosts come back, the workload pauses,
    /// and after the settle time every slave must equal the master.
    pub fn run(&mut self) {
        let active_end = Instant::ZERO.add(self.sc.active);
        self.run_until(active_end);
        let now = self.now;
        self.trace
            .global(now, "heal, restart, pause workload; checking convergence");
        self.links.heal();
        self.oracle.healed(now);
        self.net.set_tamper(None);
        self.workload = false;
        self.script.clear();
        for i in 0..self.hosts.len() {
            if !self.hosts[i].up {
                // A host that crashed while misconfigured comes back fixed.
                self.hosts[i].wrong_key = false;
                self.boot(i);
            } else if self.hosts[i].wrong_key {
                self.act(Action::Rekey {
                    node: i,
                    wrong: false,
                });
            } else if self.hosts[i].node.is_none() {
                self.start_sasyncd(i);
            }
        }
        self.oracle.quiet_from = Some(now);
        let end = now.add(self.sc.settle);
        self.run_until(end);
        self.with_oracle(|o, w| o.final_check(w));
        let now = self.now;
        let verdict = if self.oracle.failures.is_empty() {
            "converged".to_string()
        } else {
            format!("{} failures", self.oracle.failures.len())
        };
        self.trace.global(now, verdict);
    }

    /// Advances the world to `end`.
    pub fn run_until(&mut self, end: Instant) {
        runtime::run_until(self, end);
    }

    /// After every call into node `i`: move what it logged onto the
    /// timeline.
    fn collect_logs(&mut self, i: usize) {
        if !self.log_nodes {
            return;
        }
        let now = self.now;
        let max = if std::env::var_os("SASYNCD_SIM_DEBUG").is_some() {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        for (level, line) in logcap::take() {
            if level <= max {
                self.trace.event(now, i, line);
            }
        }
    }

    fn with_oracle(&mut self, f: impl FnOnce(&mut Oracle, &World)) {
        let mut o = std::mem::take(&mut self.oracle);
        f(&mut o, self);
        self.oracle = o;
    }

    /// Segments the adversary altered.
    pub fn net_altered(&self) -> u64 {
        self.altered.get()
    }

    /// Whether a stranger's connection was ever established.
    pub fn stranger_connected(&self) -> bool {
        self.stranger_connected
    }

    /// Node `i`'s statistics, if it runs.
    pub fn node_stats(&self, i: usize) -> Option<sasyncd_core::node::NodeStats> {
        self.hosts[i].node.as_ref().map(|n| n.stats())
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("addr", &self.addr)
            .field("up", &self.up)
            .field("sas", &self.kernel.sa_count())
            .field("flows", &self.kernel.flow_count())
            .finish()
    }
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("scenario", &self.sc.name)
            .field("now", &self.now)
            .field("hosts", &self.hosts)
            .finish()
    }
}
