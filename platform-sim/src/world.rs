//! The simulated cluster: `core::node::Node`s wired to simulated kernels,
//! carp, network and IKE daemons, all driven by one clock and one seed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::{
    ConnId as NodeConn, DemoteEffect, DumpFlow, DumpId, DumpOp, Event, IkeMode, Node, Settings,
    Table,
};
use sasyncd_core::random::Random;
use sasyncd_core::state::RunState;
use sasyncd_core::time::Instant;

use crate::carp::Carp;
use crate::ike::{Ike, IkeConfig};
use crate::kernel::Kernel;
use crate::links::Links;
use crate::net::{ConnId as NetConn, Net, NetEventKind, RandomTamper, SegmentInfo, Tamper};
use crate::oracle::Oracle;
use crate::rng::Rng;
use crate::scenario::{Action, Scenario};
use crate::trace::Trace;
use crate::{logcap, pfmsg};

/// The node type the simulator runs: 8 peers, 64 KiB ring, 16 KiB marks.
pub type SimNode = Node<SoftCrypto, SimRandom, 8, { 64 * 1024 }, { 16 * 1024 }, { 16 * 1024 }>;

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
    to_net: BTreeMap<NodeConn, NetConn>,
    from_net: BTreeMap<NetConn, NodeConn>,
    rx: BTreeMap<NodeConn, Vec<u8>>,
    /// Stream bytes the node consumed per connection (for the safety oracle).
    consumed: BTreeMap<NodeConn, u64>,
    dumps: BTreeMap<DumpId, (Vec<u8>, usize)>,
    /// Demotions the node raised and has not released.
    pub demote_held: u32,
    /// When the current demotion was raised.
    pub demote_since: Option<Instant>,
    /// When sasyncd was last seen in state MASTER.
    last_master: Option<Instant>,
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
    workload: bool,
    script: Vec<(Instant, Action)>,
    boot_ends: Vec<(Instant, usize)>,
    stranger: Option<usize>,
    log_nodes: bool,
    /// Bytes each sending connection end wrote, with whether its host was
    /// master at the time: (end offset, master).
    sent: BTreeMap<NetConn, Vec<(u64, bool)>>,
    sent_total: BTreeMap<NetConn, u64>,
    altered: std::rc::Rc<std::cell::Cell<u64>>,
    stranger_connected: bool,
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
                    to_net: BTreeMap::new(),
                    from_net: BTreeMap::new(),
                    rx: BTreeMap::new(),
                    consumed: BTreeMap::new(),
                    dumps: BTreeMap::new(),
                    demote_held: 0,
                    demote_since: None,
                    last_master: None,
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
            now: Instant::ZERO,
            rng,
            hosts,
            workload: true,
            script,
            boot_ends: Vec::new(),
            stranger: None,
            log_nodes,
            sent: BTreeMap::new(),
            sent_total: BTreeMap::new(),
            altered,
            stranger_connected: false,
            sc,
        };
        logcap::capture(log_nodes);
        for i in 0..w.hosts.len() {
            w.boot(i);
        }
        w
    }

    fn ike_config(sc: &Scenario, i: usize) -> IkeConfig {
        let mut c = IkeConfig::for_node(i, VIP);
        c.mean_interval = sc.ike_interval;
        c.max_pairs = 30;
        c
    }

    fn random_faults(sc: &Scenario, rng: &mut Rng, script: &mut Vec<(Instant, Action)>) {
        let minutes = sc.active.as_secs_f64() / 60.0;
        let count = (sc.faults_per_min * minutes).round() as usize;
        let n = sc.nodes;
        for _ in 0..count {
            // Leave the first 10 s for start-up.
            let at = 10_000 + rng.below(sc.active.as_millis().saturating_sub(10_000).max(1) as u64);
            let t = Instant::from_millis(at);
            let node = rng.index(n);
            // The legacy protocol has no way to notice that a healed split
            // brain left slaves with the other master's snapshot (no digests,
            // no resync request), so legacy runs get no partitions.
            let kinds: &[u8] = if sc.legacy {
                &[0, 2, 6]
            } else {
                &[0, 1, 2, 3, 4, 5, 6, 7]
            };
            let action = match kinds[rng.index(kinds.len())] {
                0 => {
                    script.push((
                        t.add(Duration::from_millis(2_000 + rng.below(20_000))),
                        Action::Restart { node },
                    ));
                    Action::Crash {
                        node,
                        wipe: rng.chance(0.3),
                    }
                }
                1 => {
                    let cut = 1 + rng.index(n - 1);
                    let mut order: Vec<usize> = (0..n).collect();
                    for k in (1..n).rev() {
                        order.swap(k, rng.index(k + 1));
                    }
                    script.push((
                        t.add(Duration::from_millis(1_000 + rng.below(30_000))),
                        Action::Heal,
                    ));
                    Action::Partition(vec![order[..cut].to_vec(), order[cut..].to_vec()])
                }
                2 => Action::ResetConns { node },
                3 => Action::ManualDelete { node },
                4 => Action::ManualAdd { node },
                5 => Action::Stranger { node },
                6 => {
                    script.push((
                        t.add(Duration::from_millis(1_000 + rng.below(20_000))),
                        Action::Restart { node },
                    ));
                    Action::Stop { node }
                }
                _ => {
                    script.push((
                        t.add(Duration::from_millis(5_000 + rng.below(20_000))),
                        Action::Rekey { node, wrong: false },
                    ));
                    Action::Rekey { node, wrong: true }
                }
            };
            script.push((t, action));
        }
    }

    fn config_text(&self, i: usize) -> String {
        let mut s = String::new();
        for j in 0..self.sc.nodes {
            if j != i {
                s += &format!("peer {}\n", host_addr(j));
            }
        }
        // Each misconfigured node has a key of its own: two of them must
        // not be able to talk to each other either.
        s += &if self.hosts[i].wrong_key {
            format!("sharedkey \"wrong-key-node{i:02}\"\n")
        } else {
            "sharedkey \"sasyncd-sim-key!\"\n".to_string()
        };
        s += "interface carp0\ncontrol isakmpd\n";
        s += if self.sc.legacy {
            "protocol legacy\n"
        } else {
            "protocol v2\n"
        };
        s
    }

    /// Starts (or restarts) host `i`: the boot scripts demote the carp
    /// group, carp starts as backup, sasyncd starts, and the boot finishes
    /// (undemoting) two seconds later.
    fn boot(&mut self, i: usize) {
        let now = self.now;
        self.hosts[i].up = true;
        self.hosts[i].boots += 1;
        let _ = self.carp.demote(i, 1, now);
        self.boot_ends.push((now.add(Duration::from_secs(2)), i));
        self.carp.start(i, now);
        self.net.restart(i);
        self.net.listen(i, true);
        self.start_sasyncd(i);
        self.trace.event(now, i, "boot");
    }

    fn start_sasyncd(&mut self, i: usize) {
        let now = self.now;
        let cfg = match Config::parse(self.config_text(i).as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("simulator config: {}", e.display_with("sim.conf")),
        };
        let mut id = [0u8; 16];
        id[0] = i as u8 + 1;
        let mut settings = Settings::new(id, self.rng.u64(), self.hosts[i].pid);
        settings.digest_interval = self.sc.digest_interval;
        let node = Node::new(&cfg, settings, SoftCrypto, SimRandom(self.rng.fork()), now);
        let mut node = match node {
            Ok(n) => Box::new(n),
            Err(e) => panic!("simulator node: {e}"),
        };
        #[cfg(feature = "planted-bugs")]
        {
            let b = self.sc.bugs;
            node.bugs = sasyncd_core::node::PlantedBugs {
                skip_sweep: b.skip_sweep,
                apply_from_non_master: b.apply_from_non_master,
                keep_demote: b.keep_demote,
                drop_delta: b.drop_delta,
            };
        }
        node.handle_link_state(now, self.carp.link_state(i));
        self.hosts[i].node = Some(node);
        self.collect_logs(i);
    }

    /// Clean shutdown of sasyncd alone: it releases its demotion and
    /// closes its connections; carp, the kernel and the IKE daemon stay.
    fn stop_sasyncd(&mut self, i: usize) {
        let now = self.now;
        let Some(mut n) = self.hosts[i].node.take() else {
            return;
        };
        n.handle_shutdown(now);
        self.hosts[i].node = Some(n);
        self.service(i);
        let s = self.node_stats(i);
        if let Some(s) = s {
            self.oracle.rejected_by_crashed +=
                s.counters.rejected_frames + s.counters.rejected_unknown;
            if self.hosts[i].wrong_key && s.counters.applied > 0 {
                self.oracle.fail(
                    now,
                    Some(i),
                    "a node with the wrong key applied data".into(),
                );
            }
        }
        if self.hosts[i].demote_held > 0 {
            self.oracle.fail(
                now,
                Some(i),
                "shut down without releasing its demotion".into(),
            );
        }
        let h = &mut self.hosts[i];
        h.node = None;
        h.rx.clear();
        h.consumed.clear();
        h.dumps.clear();
        h.kernel.set_promisc(h.pid, false);
        for (_, nc) in std::mem::take(&mut h.to_net) {
            self.net.close(nc, now);
        }
        self.hosts[i].from_net.clear();
        self.trace.event(now, i, "sasyncd stopped");
    }

    fn crash(&mut self, i: usize, wipe: bool) {
        let now = self.now;
        if !self.hosts[i].up {
            return;
        }
        if let Some(s) = self.node_stats(i) {
            self.oracle.rejected_by_crashed +=
                s.counters.rejected_frames + s.counters.rejected_unknown;
        }
        let was_master = self.carp.link_state(i) == crate::carp::LINK_STATE_UP;
        if was_master {
            self.with_oracle(|o, w| o.master_crashed(i, w));
        }
        let h = &mut self.hosts[i];
        h.up = false;
        h.node = None;
        h.to_net.clear();
        h.from_net.clear();
        h.rx.clear();
        h.consumed.clear();
        h.dumps.clear();
        h.demote_held = 0;
        h.demote_since = None;
        h.ike.set_active(false, now, &h.kernel);
        h.kernel.set_promisc(h.pid, false);
        if wipe {
            let mut fresh = Kernel::new(self.rng.fork());
            if self.sc.lossy_promisc {
                fresh.set_rcvbuf(1024);
            }
            h.kernel = fresh;
        }
        self.carp.crash(i);
        self.net.crash(i);
        self.boot_ends.retain(|(_, n)| *n != i);
        self.trace.event(
            now,
            i,
            if wipe {
                "host crashed (kernel lost)"
            } else {
                "host crashed"
            },
        );
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
        self.net.set_tamper(None);
        self.workload = false;
        self.script.clear();
        for i in 0..self.hosts.len() {
            if !self.hosts[i].up {
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
        let mut same = 0u32;
        loop {
            self.drain();
            let next = self.next_deadline().unwrap_or(end);
            if next > end {
                self.now = end;
                self.drain();
                return;
            }
            if next <= self.now {
                same += 1;
                if same > 1000 {
                    let now = self.now;
                    let who = self.due_sources();
                    self.oracle.fail(
                        now,
                        None,
                        format!("a timer keeps firing without progress (busy loop): {who}"),
                    );
                    self.now = self.now.add(Duration::from_millis(1));
                    same = 0;
                }
            } else {
                same = 0;
                self.now = next;
            }
            self.fire();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut t: Vec<Instant> = Vec::new();
        t.extend(self.carp.poll_timeout());
        t.extend(self.net.poll_timeout());
        t.extend(self.script.first().map(|(t, _)| *t));
        t.extend(self.boot_ends.iter().map(|(t, _)| *t));
        for h in &self.hosts {
            if let Some(n) = &h.node {
                t.extend(n.poll_timeout());
            }
            if self.workload && h.up {
                t.extend(h.ike.poll_timeout());
            }
        }
        t.extend(self.oracle.poll_timeout());
        t.into_iter().min()
    }

    /// Which parts have a deadline that is due (for diagnosing busy loops).
    fn due_sources(&self) -> String {
        let now = self.now;
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let mut v = Vec::new();
        if due(self.carp.poll_timeout()) {
            v.push("carp".to_string());
        }
        if due(self.net.poll_timeout()) {
            v.push("net".to_string());
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if due(h.node.as_ref().and_then(|n| n.poll_timeout())) {
                v.push(format!("node n{i}"));
            }
            if self.workload && h.up && due(h.ike.poll_timeout()) {
                v.push(format!("ike n{i}"));
            }
        }
        v.join(", ")
    }

    fn fire(&mut self) {
        let now = self.now;
        while self.script.first().is_some_and(|(t, _)| *t <= now) {
            let (_, a) = self.script.remove(0);
            self.act(a);
        }
        let due: Vec<usize> = self
            .boot_ends
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, i)| *i)
            .collect();
        self.boot_ends.retain(|(t, _)| *t > now);
        for i in due {
            let _ = self.carp.demote(i, -1, now);
        }
        self.carp.handle_timeout(now, &self.links);
        self.net.handle_timeout(now, &self.links);
        if self.workload {
            for i in 0..self.hosts.len() {
                let h = &mut self.hosts[i];
                if h.up {
                    let before = h.kernel.stats().valid_writes;
                    h.ike.handle_timeout(now, &mut h.kernel);
                    if h.kernel.stats().valid_writes != before {
                        self.oracle.kernel_changed(i, now);
                    }
                }
            }
        }
        for i in 0..self.hosts.len() {
            if let Some(n) = self.hosts[i].node.as_mut() {
                n.handle_timeout(now);
            }
            self.collect_logs(i);
        }
        self.with_oracle(|o, w| o.tick(w));
    }

    fn act(&mut self, a: Action) {
        let now = self.now;
        self.trace.global(now, format!("fault: {a:?}"));
        match a {
            Action::Crash { node, wipe } => self.crash(node, wipe),
            Action::Restart { node } => {
                if !self.hosts[node].up {
                    self.boot(node);
                } else if self.hosts[node].node.is_none() {
                    self.start_sasyncd(node);
                }
            }
            Action::Stop { node } => self.stop_sasyncd(node),
            Action::Rekey { node, wrong } => {
                if self.hosts[node].up {
                    self.stop_sasyncd(node);
                    self.hosts[node].wrong_key = wrong;
                    self.start_sasyncd(node);
                    self.trace.event(
                        now,
                        node,
                        if wrong {
                            "sasyncd restarted with a wrong key"
                        } else {
                            "sasyncd restarted with the right key"
                        },
                    );
                }
            }
            Action::Partition(groups) => {
                let g: Vec<&[usize]> = groups.iter().map(|v| v.as_slice()).collect();
                self.links.partition(&g);
                self.oracle.disturbed(now);
            }
            Action::Heal => self.links.heal(),
            Action::ResetConns { node } => {
                let conns: Vec<NetConn> = self.hosts[node].from_net.keys().copied().collect();
                for c in conns {
                    self.net.reset(c);
                }
                self.oracle.disturbed(now);
            }
            Action::ManualDelete { node } => {
                let keys = self.hosts[node].kernel.sa_keys();
                if !keys.is_empty() {
                    let k = keys[self.rng.index(keys.len())];
                    let _ = self.hosts[node].kernel.manual_delete_sa(&k);
                    self.oracle.manual_edit(node, now);
                }
            }
            Action::ManualAdd { node } => {
                let spi = 0x7000_0000 | self.rng.u32() & 0xffff;
                let msg = stray_sa(spi);
                if self.hosts[node].kernel.manual_write(&msg).is_ok() {
                    self.oracle.manual_edit(node, now);
                }
            }
            Action::Workload(on) => self.workload = on,
            Action::Stranger { node } => {
                let s = match self.stranger {
                    Some(s) => s,
                    None => {
                        let s = self
                            .net
                            .add_host(IpAddr::V4(std::net::Ipv4Addr::new(10, 66, 0, 1)));
                        self.stranger = Some(s);
                        s
                    }
                };
                self.net.connect(s, host_addr(node), now);
                self.oracle.stranger_attempts += 1;
            }
        }
    }

    /// Processes everything that needs no time to pass.
    fn drain(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(e) = self.carp.poll_event() {
                moved = true;
                let now = self.now;
                self.trace.event(
                    now,
                    e.node,
                    format!(
                        "carp link {}",
                        if e.link_state == crate::carp::LINK_STATE_UP {
                            "MASTER"
                        } else {
                            "BACKUP"
                        }
                    ),
                );
                self.oracle.carp_changed(e.node, e.link_state, now);
                if let Some(n) = self.hosts[e.node].node.as_mut() {
                    n.handle_link_state(now, e.link_state);
                }
                self.collect_logs(e.node);
            }
            while let Some(e) = self.net.poll_event() {
                moved = true;
                self.on_net(e.node, e.conn, e.kind);
            }
            for i in 0..self.hosts.len() {
                moved |= self.service(i);
            }
            if !moved {
                return;
            }
        }
        self.oracle
            .fail(self.now, None, "world did not settle (livelock)".into());
    }

    /// One pass over host `i`'s node outputs. Whether anything happened.
    fn service(&mut self, i: usize) -> bool {
        if self.hosts[i].node.is_none() {
            return false;
        }
        let now = self.now;
        let mut moved = false;
        // Promiscuous copies of what others wrote.
        let pid = self.hosts[i].pid;
        while let Some(m) = self.hosts[i].kernel.read_promisc(pid) {
            moved = true;
            if let Some(n) = self.hosts[i].node.as_mut() {
                n.handle_pfkey(now, &m);
            }
        }
        while let Some(e) = self.hosts[i].node.as_mut().and_then(|n| n.poll_event()) {
            moved = true;
            self.on_event(i, e);
            if self.hosts[i].node.is_none() {
                return true;
            }
        }
        moved |= self.transmit(i);
        // PF_KEY writes into our kernel.
        loop {
            let h = &mut self.hosts[i];
            let Some(n) = h.node.as_mut() else { break };
            let Some(msg) = n.poll_pfkey().map(|m| m.to_vec()) else {
                break;
            };
            moved = true;
            let res = h.kernel.write(&msg, h.pid);
            n.handle_pfkey_written(now);
            if let Err(e) = res {
                self.oracle.kernel_refused(i, &msg, e);
                let mut reply = msg[..16.min(msg.len())].to_vec();
                if reply.len() == 16 {
                    reply[2] = e.0 as u8;
                    reply[4..6].copy_from_slice(&2u16.to_ne_bytes());
                    if let Some(n) = self.hosts[i].node.as_mut() {
                        n.handle_pfkey(now, &reply);
                    }
                }
            }
        }
        // Offer buffered input.
        let conns: Vec<NodeConn> = self.hosts[i]
            .rx
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(c, _)| *c)
            .collect();
        for c in conns {
            moved |= self.offer(i, c);
        }
        self.collect_logs(i);
        moved
    }

    fn transmit(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        let mut zero = 0;
        let known: Vec<IpAddr> = self.hosts.iter().map(|x| x.addr).collect();
        // Bytes leave the node's buffer some time after they were queued:
        // count them as a master's if it was master within the last two
        // seconds (more than any buffer here takes to drain).
        if self.hosts[i]
            .node
            .as_ref()
            .is_some_and(|n| n.run_state() == RunState::Master)
        {
            self.hosts[i].last_master = Some(now);
        }
        let master = self.hosts[i]
            .last_master
            .is_some_and(|t| now.since(t) <= Duration::from_secs(2));
        loop {
            let h = &mut self.hosts[i];
            let Some(n) = h.node.as_mut() else { break };
            let Some((c, bytes)) = n.poll_transmit(now) else {
                break;
            };
            let Some(&nc) = h.to_net.get(&c) else {
                // Not connected in the network (yet, or any more).
                let len = bytes.len();
                if std::env::var_os("SASYNCD_SIM_DEBUG").is_some() {
                    self.trace
                        .event(now, i, format!("{len} bytes for unmapped {c:?}"));
                }
                n.handle_sent(now, c, len);
                continue;
            };
            let peer = self.net.peer_addr(nc);
            if let Some(p) = peer {
                if !known.contains(&p) {
                    self.oracle.fail(
                        now,
                        Some(i),
                        format!("frame sent to unconfigured address {p}"),
                    );
                }
            }
            let sent = self.net.send(nc, bytes, now);
            n.handle_sent(now, c, sent);
            if sent > 0 {
                moved = true;
                let total = self.sent_total.entry(nc).or_default();
                *total += sent as u64;
                self.sent.entry(nc).or_default().push((*total, master));
                zero = 0;
            } else {
                zero += 1;
                if zero > 16 {
                    break;
                }
            }
        }
        moved
    }

    fn offer(&mut self, i: usize, c: NodeConn) -> bool {
        let now = self.now;
        let Some(data) = self.hosts[i].rx.get(&c).cloned() else {
            return false;
        };
        let Some(n) = self.hosts[i].node.as_mut() else {
            return false;
        };
        let applied_before = n.stats().counters.applied;
        let took = n.handle_recv(now, c, &data);
        let applied_after = n.stats().counters.applied;
        let state = n.run_state();
        if let Some(q) = self.hosts[i].rx.get_mut(&c) {
            q.drain(..took.min(q.len()));
        }
        let from = *self.hosts[i].consumed.get(&c).unwrap_or(&0);
        let to = from + took as u64;
        self.hosts[i].consumed.insert(c, to);
        if applied_after > applied_before {
            let sender_end = self.hosts[i].to_net.get(&c).map(|nc| NetConn(nc.0 ^ 1));
            let master_sent = sender_end.map(|se| self.master_bytes_in(se, from, to));
            self.oracle.applied(i, state, master_sent, now);
        }
        took > 0
    }

    /// Whether any byte in `[from, to)` of the stream written by `end` was
    /// written while its host was master. `None` when unknown (tampering
    /// changes lengths; the stranger is not a host).
    fn master_bytes_in(&mut self, end: NetConn, from: u64, to: u64) -> Option<bool> {
        if self.sc.tamper > 0.0 {
            return None;
        }
        let log = self.sent.get_mut(&end)?;
        let mut start = 0u64;
        let mut any = false;
        for &(e, m) in log.iter() {
            if e > from && start < to && m {
                any = true;
            }
            start = e;
        }
        // Forget what is consumed.
        let keep_from = log.iter().position(|&(e, _)| e > from).unwrap_or(log.len());
        if keep_from > 1 {
            log.drain(..keep_from - 1);
        }
        Some(any)
    }

    fn on_event(&mut self, i: usize, e: Event) {
        let now = self.now;
        match e {
            Event::Connect { conn, addr, .. } => {
                let nc = self.net.connect(i, addr, now);
                let h = &mut self.hosts[i];
                h.to_net.insert(conn, nc);
                h.from_net.insert(nc, conn);
            }
            Event::Close { conn } => {
                let h = &mut self.hosts[i];
                h.rx.remove(&conn);
                h.consumed.remove(&conn);
                if let Some(nc) = h.to_net.remove(&conn) {
                    h.from_net.remove(&nc);
                    self.net.close(nc, now);
                }
            }
            Event::Readable { conn } => {
                self.offer(i, conn);
            }
            Event::Promisc(on) => {
                let h = &mut self.hosts[i];
                h.kernel.set_promisc(h.pid, on);
            }
            Event::Ike(r) => {
                let h = &mut self.hosts[i];
                let active = r.mode == IkeMode::Active;
                h.ike.set_active(active, now, &h.kernel);
                self.trace.event(
                    now,
                    i,
                    if active {
                        "isakmpd: M active"
                    } else {
                        "isakmpd: M passive"
                    },
                );
                if let Some(n) = self.hosts[i].node.as_mut() {
                    n.handle_ike_result(now, r.id, true);
                }
            }
            Event::Demote(DemoteEffect::Raise) => {
                let ok = self.carp.demote_count(i) > 0 && self.carp.demote(i, 1, now).is_ok();
                if ok {
                    self.hosts[i].demote_held += 1;
                    self.hosts[i].demote_since = Some(now);
                    self.trace.event(now, i, "carp demote +1 (until in sync)");
                }
                if let Some(n) = self.hosts[i].node.as_mut() {
                    n.handle_demote_result(now, ok);
                }
            }
            Event::Demote(DemoteEffect::Release) => {
                if self.hosts[i].demote_held == 0 {
                    self.oracle.fail(
                        now,
                        Some(i),
                        "demotion released more often than raised".into(),
                    );
                } else {
                    self.hosts[i].demote_held -= 1;
                    self.hosts[i].demote_since = None;
                    let _ = self.carp.demote(i, -1, now);
                    self.trace.event(now, i, "carp demote -1");
                }
            }
            Event::Dump { dump, op } => match op {
                DumpOp::Start(t) => {
                    let buf = match t {
                        Table::Sadb => self.hosts[i].kernel.sadb_dump(0),
                        Table::Spd => self.hosts[i].kernel.spd_dump(),
                    };
                    self.hosts[i].dumps.insert(dump, (buf, 0));
                    self.feed(i, dump);
                }
                DumpOp::Resume => self.feed(i, dump),
                DumpOp::Cancel => {
                    self.hosts[i].dumps.remove(&dump);
                }
            },
            Event::RecheckCarp => {
                let ls = self.carp.link_state(i);
                if let Some(n) = self.hosts[i].node.as_mut() {
                    n.handle_link_state(now, ls);
                }
            }
        }
    }

    fn feed(&mut self, i: usize, dump: DumpId) {
        let now = self.now;
        loop {
            let h = &mut self.hosts[i];
            let Some(n) = h.node.as_mut() else { return };
            let Some((buf, at)) = h.dumps.get_mut(&dump) else {
                return;
            };
            let rec_len = buf
                .get(*at + 4..*at + 6)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]) as usize * 8)
                .unwrap_or(0);
            if rec_len == 0 || *at + rec_len > buf.len() {
                h.dumps.remove(&dump);
                n.handle_dump_end(now, dump, true);
                return;
            }
            let rec = buf[*at..*at + rec_len].to_vec();
            *at += rec_len;
            if n.handle_dump_entry(now, dump, &rec) == DumpFlow::Pause {
                return;
            }
        }
    }

    fn on_net(&mut self, node: usize, nc: NetConn, kind: NetEventKind) {
        let now = self.now;
        if Some(node) == self.stranger {
            if kind == NetEventKind::Connected {
                self.stranger_connected = true;
                // A stranger talks: a legacy-looking header and junk.
                let mut junk = vec![0u8, 0, 0, 60];
                junk.extend((0..60).map(|_| self.rng.u32() as u8));
                self.net.send(nc, &junk, now);
            }
            return;
        }
        if node >= self.hosts.len() || self.hosts[node].node.is_none() {
            if let NetEventKind::Accepted { peer, .. } = kind {
                // No sasyncd listening: the connection is refused.
                self.oracle.rejected_strangers +=
                    u64::from(!self.hosts.iter().any(|h| h.addr == peer));
                self.net.close(nc, now);
            }
            return;
        }
        match kind {
            NetEventKind::Connected => {
                if let Some(&c) = self.hosts[node].from_net.get(&nc) {
                    if let Some(n) = self.hosts[node].node.as_mut() {
                        n.handle_connected(now, c);
                    }
                }
            }
            NetEventKind::ConnectFailed(_) => {
                if let Some(c) = self.hosts[node].from_net.remove(&nc) {
                    self.hosts[node].to_net.remove(&c);
                    if let Some(n) = self.hosts[node].node.as_mut() {
                        n.handle_connect_failed(now, c);
                    }
                }
            }
            NetEventKind::Accepted { peer, .. } => {
                let r = self.hosts[node]
                    .node
                    .as_mut()
                    .map(|n| n.handle_accept(now, peer));
                match r {
                    Some(Ok(c)) => {
                        self.hosts[node].to_net.insert(c, nc);
                        self.hosts[node].from_net.insert(nc, c);
                    }
                    _ => {
                        self.oracle.rejected_strangers +=
                            u64::from(!self.hosts.iter().any(|h| h.addr == peer));
                        self.net.close(nc, now);
                    }
                }
            }
            NetEventKind::Data(bytes) => {
                if let Some(&c) = self.hosts[node].from_net.get(&nc) {
                    self.hosts[node]
                        .rx
                        .entry(c)
                        .or_default()
                        .extend_from_slice(&bytes);
                    self.offer(node, c);
                } else if std::env::var_os("SASYNCD_SIM_DEBUG").is_some() {
                    self.trace.event(
                        now,
                        node,
                        format!("{} bytes on unmapped {nc:?}", bytes.len()),
                    );
                }
            }
            NetEventKind::Writable => {}
            NetEventKind::Closed(_) => {
                if let Some(c) = self.hosts[node].from_net.remove(&nc) {
                    let h = &mut self.hosts[node];
                    h.to_net.remove(&c);
                    h.rx.remove(&c);
                    h.consumed.remove(&c);
                    if let Some(n) = h.node.as_mut() {
                        n.handle_closed(now, c);
                    }
                }
            }
        }
        self.collect_logs(node);
    }

    /// After every call into node `i`: note whether it is master (for the
    /// safety oracle) and move what it logged onto the timeline.
    fn collect_logs(&mut self, i: usize) {
        let now = self.now;
        if self.hosts[i]
            .node
            .as_ref()
            .is_some_and(|n| n.run_state() == RunState::Master)
        {
            self.hosts[i].last_master = Some(now);
        }
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

/// An SA no IKE daemon negotiated: what an operator might add by hand.
fn stray_sa(spi: u32) -> Vec<u8> {
    use sasyncd_core::pfkey::consts::*;
    let dst = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 200));
    pfmsg::message(
        SADB_ADD,
        SADB_SATYPE_ESP,
        0,
        crate::kernel::OPERATOR_PID,
        &[
            pfmsg::sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 3, 12, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_SRC, VIP, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_DST, dst, 0),
            pfmsg::key_ext(SADB_EXT_KEY_AUTH, &[0x11; 20]),
            pfmsg::key_ext(SADB_EXT_KEY_ENCRYPT, &[0x22; 16]),
        ],
    )
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
