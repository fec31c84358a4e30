//! A tiny deterministic world for the node's unit tests: nodes joined by
//! in-memory links, each with a toy kernel. The full simulator lives in
//! `platform-sim`; this one only has to be obviously right.

use core::net::{IpAddr, Ipv4Addr};
use std::collections::BTreeMap;
use std::vec::Vec;

use crate::config::Config;
use crate::crypto::SoftCrypto;
use crate::pfkey::consts::*;
use crate::pfkey::Msg;
use crate::random::Random;
use crate::time::Instant;

use super::super::demote::DemoteEffect;
use super::super::{ConnId, DumpFlow, DumpId, DumpOp, Event, Node, Settings, Table};

/// xorshift64*: deterministic, good enough for tests.
pub struct TestRng(pub u64);

impl Random for TestRng {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

pub type TestNode = Node<SoftCrypto, TestRng, 4, 8192, 4096>;

/// Entries keyed by identity; values are the message as written.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct ToyKernel {
    pub sas: BTreeMap<Vec<u8>, Vec<u8>>,
    pub flows: BTreeMap<Vec<u8>, Vec<u8>>,
    pub errors: u32,
}

fn ident(m: &Msg<'_>) -> Vec<u8> {
    let mut b = [0u8; super::super::IDENTITY_MAX];
    let n = super::super::identity(m, &mut b).expect("identity");
    b[..n].to_vec()
}

impl ToyKernel {
    pub fn write(&mut self, msg: &[u8]) {
        let m = Msg::parse(msg).expect("kernel got a malformed message");
        match m.msg_type() {
            SADB_ADD => {
                let k = ident(&m);
                match self.sas.entry(k) {
                    std::collections::btree_map::Entry::Occupied(_) => self.errors += 1, // EEXIST
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(msg.to_vec());
                    }
                }
            }
            SADB_DELETE => {
                if self.sas.remove(&ident(&m)).is_none() {
                    self.errors += 1;
                }
            }
            SADB_X_ADDFLOW => {
                self.flows.insert(ident(&m), msg.to_vec());
            }
            SADB_X_DELFLOW => {
                if self.flows.remove(&ident(&m)).is_none() {
                    self.errors += 1;
                }
            }
            SADB_FLUSH => {
                self.sas.clear();
                self.flows.clear();
            }
            t => panic!("toy kernel: unexpected type {t}"),
        }
    }

    pub fn dump(&self, t: Table) -> Vec<Vec<u8>> {
        let (src, ty) = match t {
            Table::Sadb => (&self.sas, SADB_DUMP),
            Table::Spd => (&self.flows, SADB_X_SPDDUMP),
        };
        src.values()
            .map(|m| {
                let mut r = m.clone();
                r[1] = ty;
                r[8..16].fill(0);
                r
            })
            .collect()
    }

    /// Entries, ignoring pid/seq.
    pub fn content(&self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let strip = |m: &Vec<u8>| {
            let mut r = m.clone();
            r[8..16].fill(0);
            r
        };
        (
            self.sas.values().map(strip).collect(),
            self.flows.values().map(strip).collect(),
        )
    }
}

pub struct WNode {
    pub node: Option<std::boxed::Box<TestNode>>,
    pub kernel: ToyKernel,
    pub addr: IpAddr,
    pub inbox: BTreeMap<ConnId, Vec<u8>>,
    pub dumps: BTreeMap<DumpId, (Vec<Vec<u8>>, usize)>,
    pub promisc: bool,
    pub demoted: i32,
    pub ike: Option<super::super::ike::IkeMode>,
    pub link_state: u8,
    /// The kernel takes no writes (to test backpressure).
    pub stall: bool,
    pub pid: u32,
    pub seed: u64,
    pub config: Vec<u8>,
}

struct Link {
    a: (usize, ConnId),
    b: (usize, ConnId),
}

pub struct World {
    pub now: Instant,
    pub nodes: Vec<WNode>,
    links: Vec<Link>,
    /// Transform applied to bytes in flight (adversary), by sender index.
    pub tamper: Option<fn(usize, &mut Vec<u8>)>,
    ike_pid: u32,
    spi: u32,
}

pub fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8))
}

pub const KEY: &str = "sasyncd-test-key";

/// A config for node `i` of `n`.
pub fn config(i: usize, n: usize, extra: &str) -> Vec<u8> {
    let mut s = std::string::String::new();
    for j in 0..n {
        if j != i {
            s += &std::format!("peer {}\n", addr(j));
        }
    }
    s += &std::format!("sharedkey {KEY}\ninterface carp0\n{extra}\n");
    s.into_bytes()
}

impl World {
    pub fn new(configs: Vec<Vec<u8>>) -> World {
        let mut w = World {
            now: Instant::from_millis(1000),
            nodes: Vec::new(),
            links: Vec::new(),
            tamper: None,
            ike_pid: 9000,
            spi: 0x1000,
        };
        for (i, cfg) in configs.into_iter().enumerate() {
            w.nodes.push(WNode {
                node: None,
                kernel: ToyKernel::default(),
                addr: addr(i),
                inbox: BTreeMap::new(),
                dumps: BTreeMap::new(),
                promisc: false,
                demoted: 1, // the boot scripts demoted the group
                ike: None,
                link_state: 2,
                stall: false,
                pid: 100 + i as u32,
                seed: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
                config: cfg,
            });
            w.start(i);
        }
        w
    }

    pub fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let cfg = Config::parse(&n.config).expect("config");
        let mut id = [0u8; 16];
        id[0] = i as u8 + 1;
        n.seed = n.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let settings = Settings::new(id, n.seed, n.pid);
        let node =
            Node::new(&cfg, settings, SoftCrypto, TestRng(n.seed | 1), self.now).expect("node");
        n.node = Some(std::boxed::Box::new(node));
        let ls = n.link_state;
        if cfg.locked.is_none() {
            let now = self.now;
            self.node(i).handle_link_state(now, ls);
        }
    }

    /// Crash: the process is gone, its kernel stays.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].node = None;
        self.nodes[i].inbox.clear();
        self.nodes[i].dumps.clear();
        self.nodes[i].promisc = false;
        let gone: Vec<(usize, ConnId)> = self
            .links
            .iter()
            .filter_map(|l| {
                if l.a.0 == i {
                    Some(l.b)
                } else if l.b.0 == i {
                    Some(l.a)
                } else {
                    None
                }
            })
            .collect();
        self.links.retain(|l| l.a.0 != i && l.b.0 != i);
        for (j, c) in gone {
            if self.nodes[j].node.is_some() {
                let now = self.now;
                self.node(j).handle_closed(now, c);
            }
        }
    }

    /// The host vanishes: its process and links are gone, but its peers are
    /// not told (no reset reaches them); what they send is lost.
    pub fn vanish(&mut self, i: usize) {
        self.nodes[i].node = None;
        self.nodes[i].inbox.clear();
        self.nodes[i].dumps.clear();
        self.nodes[i].promisc = false;
        self.links.retain(|l| l.a.0 != i && l.b.0 != i);
    }

    /// Breaks every link between `a` and `b` (like a TCP reset).
    pub fn cut(&mut self, a: usize, b: usize) {
        let gone: Vec<Link> = self
            .links
            .extract_if(.., |l| {
                (l.a.0 == a && l.b.0 == b) || (l.a.0 == b && l.b.0 == a)
            })
            .collect();
        let now = self.now;
        for l in gone {
            for (i, c) in [l.a, l.b] {
                self.nodes[i].inbox.remove(&c);
                if self.nodes[i].node.is_some() {
                    self.node(i).handle_closed(now, c);
                }
            }
        }
    }

    pub fn node(&mut self, i: usize) -> &mut TestNode {
        self.nodes[i].node.as_mut().expect("node is down")
    }

    pub fn set_link(&mut self, i: usize, state: u8) {
        self.nodes[i].link_state = state;
        let now = self.now;
        if self.nodes[i].node.is_some() {
            self.node(i).handle_link_state(now, state);
        }
    }

    /// The IKE daemon on node `i` writes `msg` (pid set here).
    pub fn ike_write(&mut self, i: usize, msg: &[u8]) {
        let mut m = msg.to_vec();
        m[12..16].copy_from_slice(&self.ike_pid.to_ne_bytes());
        self.nodes[i].kernel.write(&m);
        if self.nodes[i].promisc && self.nodes[i].node.is_some() {
            let mut copy = std::vec![0u8; 16];
            copy[0] = 2;
            copy[1] = SADB_X_PROMISC;
            copy[4..6].copy_from_slice(&((2 + m.len() / 8) as u16).to_ne_bytes());
            copy[8..12].copy_from_slice(&self.ike_pid.to_ne_bytes());
            copy.extend_from_slice(&m);
            let now = self.now;
            self.node(i).handle_pfkey(now, &copy);
        }
    }

    pub fn next_spi(&mut self) -> u32 {
        self.spi += 1;
        self.spi
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
                .filter_map(|n| n.node.as_ref().and_then(|x| x.poll_timeout()))
                .min()
                .map(|t| t.as_millis().max(self.now.as_millis()))
                .unwrap_or(end);
            if next > end {
                self.now = Instant::from_millis(end);
                self.settle();
                return;
            }
            self.now = Instant::from_millis(next.max(self.now.as_millis() + 1).min(end));
            let now = self.now;
            for i in 0..self.nodes.len() {
                if self.nodes[i].node.is_some() {
                    self.node(i).handle_timeout(now);
                }
            }
            if self.now.as_millis() >= end {
                self.settle();
                return;
            }
        }
    }

    /// One round over every node; whether anything moved.
    pub fn step(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_none() {
                continue;
            }
            while let Some(e) = self.node(i).poll_event() {
                moved = true;
                self.on_event(i, e);
                if self.nodes[i].node.is_none() {
                    break;
                }
            }
            if self.nodes[i].node.is_none() {
                continue;
            }
            while let Some((c, bytes)) = self.node(i).poll_transmit(now) {
                let mut bytes = bytes.to_vec();
                let n = bytes.len();
                moved = true;
                if let Some(t) = self.tamper {
                    t(i, &mut bytes);
                }
                if let Some((j, cj)) = self.peer_of(i, c) {
                    self.nodes[j]
                        .inbox
                        .entry(cj)
                        .or_default()
                        .extend_from_slice(&bytes);
                }
                self.node(i).handle_sent(now, c, n);
            }
            while let Some(m) = self.nodes[i]
                .node
                .as_ref()
                .filter(|_| !self.nodes[i].stall)
                .and_then(|x| x.poll_pfkey().map(|m| m.to_vec()))
            {
                moved = true;
                self.nodes[i].kernel.write(&m);
                self.node(i).handle_pfkey_written(now);
            }
            let conns: Vec<ConnId> = self.nodes[i].inbox.keys().copied().collect();
            for c in conns {
                let data = self.nodes[i].inbox.get(&c).cloned().unwrap_or_default();
                if data.is_empty() {
                    continue;
                }
                let n = self.node(i).handle_recv(now, c, &data);
                if n > 0 {
                    moved = true;
                    if let Some(q) = self.nodes[i].inbox.get_mut(&c) {
                        q.drain(..n.min(q.len()));
                    }
                }
            }
        }
        moved
    }

    fn peer_of(&self, i: usize, c: ConnId) -> Option<(usize, ConnId)> {
        self.links.iter().find_map(|l| {
            if l.a == (i, c) {
                Some(l.b)
            } else if l.b == (i, c) {
                Some(l.a)
            } else {
                None
            }
        })
    }

    fn on_event(&mut self, i: usize, e: Event) {
        let now = self.now;
        match e {
            Event::Connect { conn, addr, .. } => {
                let j = self.nodes.iter().position(|n| n.addr == addr);
                match j {
                    Some(j) if self.nodes[j].node.is_some() => {
                        let from = self.nodes[i].addr;
                        match self.node(j).handle_accept(now, from) {
                            Ok(cj) => {
                                self.links.push(Link {
                                    a: (i, conn),
                                    b: (j, cj),
                                });
                                self.node(i).handle_connected(now, conn);
                            }
                            Err(_) => self.node(i).handle_connect_failed(now, conn),
                        }
                    }
                    _ => self.node(i).handle_connect_failed(now, conn),
                }
            }
            Event::Close { conn } => {
                self.nodes[i].inbox.remove(&conn);
                if let Some((j, cj)) = self.peer_of(i, conn) {
                    self.links.retain(|l| l.a != (i, conn) && l.b != (i, conn));
                    self.nodes[j].inbox.remove(&cj);
                    if self.nodes[j].node.is_some() {
                        self.node(j).handle_closed(now, cj);
                    }
                }
            }
            Event::Readable { .. } => {}
            Event::Promisc(on) => self.nodes[i].promisc = on,
            Event::Ike(r) => {
                self.nodes[i].ike = Some(r.mode);
                self.node(i).handle_ike_result(now, r.id, true);
            }
            Event::Demote(DemoteEffect::Raise) => {
                let ok = self.nodes[i].demoted > 0;
                if ok {
                    self.nodes[i].demoted += 1;
                }
                self.node(i).handle_demote_result(now, ok);
            }
            Event::Demote(DemoteEffect::Release) => self.nodes[i].demoted -= 1,
            Event::Dump { dump, op } => match op {
                DumpOp::Start(t) => {
                    let recs = self.nodes[i].kernel.dump(t);
                    self.nodes[i].dumps.insert(dump, (recs, 0));
                    self.feed(i, dump);
                }
                DumpOp::Resume => self.feed(i, dump),
                DumpOp::Cancel => {
                    self.nodes[i].dumps.remove(&dump);
                }
            },
            Event::RecheckCarp => {
                let ls = self.nodes[i].link_state;
                self.node(i).handle_link_state(now, ls);
            }
        }
    }

    fn feed(&mut self, i: usize, dump: DumpId) {
        let now = self.now;
        loop {
            let Some((recs, at)) = self.nodes[i].dumps.get(&dump).cloned() else {
                return;
            };
            if at >= recs.len() {
                self.nodes[i].dumps.remove(&dump);
                self.node(i).handle_dump_end(now, dump, true);
                return;
            }
            self.nodes[i].dumps.get_mut(&dump).unwrap().1 += 1;
            if self.node(i).handle_dump_entry(now, dump, &recs[at]) == DumpFlow::Pause {
                return;
            }
        }
    }
}
