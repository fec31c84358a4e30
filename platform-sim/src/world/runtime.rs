//! The one runtime of the simulated worlds, whatever their kernel: the
//! clock and event loop ([`run_until`]), one pass over a host's sasyncd
//! (the shared driver over [`HostIo`]), and the [`Platform`] a node is
//! driven through. What a node does to its sockets, carp and dumps is
//! carried out here, the same for both worlds; a world (the PF_KEY
//! swarm's [`World`](super::World), the XFRM swarm's
//! [`XfrmWorld`](crate::xfrm_world::XfrmWorld)) supplies its hosts, its
//! kernel, its workload and faults, and its oracles, through [`Cluster`].

use std::net::IpAddr;
use std::time::Duration;

use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::dialect::Dialect;
use sasyncd_core::node::{
    ConnId as NodeConn, DemoteEffect, DumpId, IkeMode, IkeRequest, Node, Received, Rejected, Table,
};
use sasyncd_core::platform::{DumpRead, Input, Livelock, PfkeyWrite, Platform, SendError};
use sasyncd_core::state::RunState;
use sasyncd_core::time::Instant;

use crate::carp::{Carp, LinkEvent};
use crate::marks::VecMarks;
use crate::net::{ConnId as NetConn, Net, NetEvent};

use super::demotion::Demotion;
use super::provenance::Provenance;
use super::sockets::{Pending, Sockets};
use super::SimRandom;

/// A simulated node of dialect `D`.
pub type SimNodeOf<D> = Node<'static, SoftCrypto, SimRandom, VecMarks, D>;

/// The parts of host `i` a node's requests act on.
pub struct HostParts<'a> {
    /// Its sasyncd's sockets.
    pub sockets: &'a mut Sockets,
    /// The carp demotion its sasyncd holds.
    pub demotion: &'a mut Demotion,
    /// The network.
    pub net: &'a mut Net,
    /// carp.
    pub carp: &'a mut Carp,
}

/// What a node did that a world's oracles may want to see.
#[derive(Debug)]
pub enum IoEvent {
    /// It refused a connection it was offered, from `peer`.
    Refused {
        /// Who called.
        peer: IpAddr,
    },
    /// It wrote on `conn` (the network may have taken nothing: full).
    Sent {
        /// The network's connection.
        conn: NetConn,
    },
    /// It wrote on a connection the host's sockets do not know.
    SendUnmapped {
        /// The node's connection.
        conn: NodeConn,
        /// How many bytes.
        bytes: usize,
    },
    /// Bytes arrived on a connection the node does not know.
    BytesUnmapped {
        /// The network's connection.
        conn: NetConn,
        /// How many.
        bytes: usize,
    },
    /// carp's demote counter moved for it: `raised` (+1) or released (-1).
    Demote {
        /// Raised, not released.
        raised: bool,
    },
}

/// A simulated world, as the runtime drives it: hosts with sasyncd
/// processes over one clock, carp and network, plus what the world
/// decides itself (the kernel behind each node's kernel socket, the
/// workload, faults, oracles).
pub trait Cluster {
    /// The kernel interface its nodes speak.
    type Dialect: Dialect;

    /// Simulated time.
    fn now(&self) -> Instant;
    /// Time advances (or is nudged past a busy loop).
    fn set_now(&mut self, now: Instant);
    /// How many hosts.
    fn hosts(&self) -> usize;
    /// carp.
    fn carp(&mut self) -> &mut Carp;
    /// The network.
    fn net(&mut self) -> &mut Net;
    /// The parts of host `i` a node's requests act on.
    fn parts(&mut self, i: usize) -> HostParts<'_>;
    /// Host `i`'s sasyncd, when running.
    fn node(&self, i: usize) -> Option<&SimNodeOf<Self::Dialect>>;
    /// Where host `i`'s sasyncd lives (taken out while it is driven).
    fn node_slot(&mut self, i: usize) -> &mut Option<Box<SimNodeOf<Self::Dialect>>>;
    /// Who wrote the bytes each node applies (the safety oracle).
    fn provenance(&mut self) -> &mut Provenance;

    /// The world's own next deadline (its script, its workload).
    fn deadline(&self) -> Option<Instant>;
    /// The world's own sources that are due, by name (to diagnose a busy
    /// loop).
    fn due(&self) -> Vec<String>;
    /// Time reached a deadline: the world acts (faults, workload, carp's
    /// and the network's timers, oracles).
    fn fire(&mut self);
    /// carp reported a link-state change; the runtime hands it to the
    /// host's sasyncd afterwards.
    fn carp_changed(&mut self, e: &LinkEvent);
    /// The network reported something to host `e.node`.
    fn on_net(&mut self, e: NetEvent);
    /// Queue what waits on host `i`'s kernel socket for its running
    /// sasyncd (discard it if none listens); whether anything was.
    fn read_kernel(&mut self, i: usize) -> bool;
    /// The driver returned from host `i`'s node, now in `state`.
    fn driven(&mut self, i: usize, state: RunState, settled: Result<Option<Instant>, Livelock>);
    /// An oracle failed, at host `node` or world-wide.
    fn fail(&mut self, node: Option<usize>, what: String);

    /// Host `i`'s node writes `msg` on its kernel socket.
    fn kernel_write(&mut self, i: usize, msg: &[u8]) -> PfkeyWrite;
    /// Host `i`'s node (un)subscribes its kernel socket to every change.
    fn kernel_watch(&mut self, i: usize, on: bool);
    /// Host `i`'s kernel table `table`, record by record.
    fn kernel_dump(&mut self, i: usize, table: Table) -> Vec<Vec<u8>>;
    /// Host `i`'s node asks its IKE daemon to go active or passive.
    fn ike(&mut self, i: usize, request: IkeRequest) -> Option<bool>;
    /// What host `i`'s node did, for the oracles.
    fn observe(&mut self, i: usize, e: IoEvent);
}

/// [`Cluster`]'s accessors, for a world whose fields carry the names
/// both worlds give them: `now`, `carp`, `net`, `provenance`, and `hosts`
/// whose elements hold `node`, `sockets` and `demotion`. Written once here
/// rather than in each world.
macro_rules! cluster_parts {
    ($dialect:ty) => {
        type Dialect = $dialect;

        fn now(&self) -> sasyncd_core::time::Instant {
            self.now
        }

        fn set_now(&mut self, now: sasyncd_core::time::Instant) {
            self.now = now;
        }

        fn hosts(&self) -> usize {
            self.hosts.len()
        }

        fn carp(&mut self) -> &mut $crate::carp::Carp {
            &mut self.carp
        }

        fn net(&mut self) -> &mut $crate::net::Net {
            &mut self.net
        }

        fn parts(&mut self, i: usize) -> $crate::world::runtime::HostParts<'_> {
            let h = &mut self.hosts[i];
            $crate::world::runtime::HostParts {
                sockets: &mut h.sockets,
                demotion: &mut h.demotion,
                net: &mut self.net,
                carp: &mut self.carp,
            }
        }

        fn node(&self, i: usize) -> Option<&$crate::world::runtime::SimNodeOf<$dialect>> {
            self.hosts[i].node.as_deref()
        }

        fn node_slot(
            &mut self,
            i: usize,
        ) -> &mut Option<Box<$crate::world::runtime::SimNodeOf<$dialect>>> {
            &mut self.hosts[i].node
        }

        fn provenance(&mut self) -> &mut $crate::world::provenance::Provenance {
            &mut self.provenance
        }
    };
}
pub(crate) use cluster_parts;

/// Advances `w` to `end`: everything that needs no time, then the next
/// deadline, until `end`.
pub fn run_until<W: Cluster>(w: &mut W, end: Instant) {
    let mut same = 0u32;
    loop {
        drain(w);
        let next = next_deadline(w).unwrap_or(end);
        if next > end {
            w.set_now(end);
            drain(w);
            return;
        }
        if next <= w.now() {
            same += 1;
            if same > 1000 {
                let who = due(w).join(", ");
                w.fail(
                    None,
                    format!("a timer keeps firing without progress (busy loop): {who}"),
                );
                let now = w.now();
                w.set_now(now.add(Duration::from_millis(1)));
                same = 0;
            }
        } else {
            same = 0;
            w.set_now(next);
        }
        w.fire();
        for i in 0..w.hosts() {
            let now = w.now();
            if w.parts(i).demotion.overdue(now) {
                let what = "held the carp demotion for more than 60 s".to_string();
                w.fail(Some(i), what);
            }
        }
    }
}

fn next_deadline<W: Cluster>(w: &mut W) -> Option<Instant> {
    let mut t = w.deadline();
    let mut earlier = |d: Option<Instant>| {
        if let Some(d) = d {
            t = Some(t.map_or(d, |t| t.min(d)));
        }
    };
    earlier(w.carp().poll_timeout());
    earlier(w.net().poll_timeout());
    for i in 0..w.hosts() {
        earlier(w.node(i).and_then(|n| n.poll_timeout()));
    }
    t
}

/// Which parts have a deadline that is due.
fn due<W: Cluster>(w: &mut W) -> Vec<String> {
    let now = w.now();
    let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
    let mut v = Vec::new();
    if due(w.carp().poll_timeout()) {
        v.push("carp".to_string());
    }
    if due(w.net().poll_timeout()) {
        v.push("net".to_string());
    }
    for i in 0..w.hosts() {
        if due(w.node(i).and_then(|n| n.poll_timeout())) {
            v.push(format!("node n{i}"));
        }
    }
    v.extend(w.due());
    v
}

/// Processes everything that needs no time to pass: carp's and the
/// network's reports, queued for the hosts in the world's order, and a
/// pass over every host, until nothing moves.
fn drain<W: Cluster>(w: &mut W) {
    for _ in 0..100_000 {
        let mut moved = false;
        while let Some(e) = w.carp().poll_event() {
            moved = true;
            w.carp_changed(&e);
            if w.node(e.node).is_some() {
                let inputs = &mut w.parts(e.node).sockets.inputs;
                inputs.push_back(Pending::Link(e.link_state));
            }
        }
        while let Some(e) = w.net().poll_event() {
            moved = true;
            w.on_net(e);
        }
        for i in 0..w.hosts() {
            moved |= service(w, i);
        }
        if !moved {
            return;
        }
    }
    w.fail(None, "world did not settle (livelock)".into());
}

/// One pass over host `i`: what waits on its kernel socket, then the
/// shared driver over what carp and the network reported and those
/// messages (what the node's own writes add waits for the next pass).
/// Whether anything happened.
pub fn service<W: Cluster>(w: &mut W, i: usize) -> bool {
    let mut moved = w.read_kernel(i);
    let Some(mut node) = w.node_slot(i).take() else {
        return moved;
    };
    let mut io = HostIo {
        w: &mut *w,
        i,
        moved: false,
        msg: Vec::new(),
    };
    let settled = sasyncd_core::platform::drive(&mut *node, &mut io);
    moved |= io.moved;
    let state = node.run_state();
    *w.node_slot(i) = Some(node);
    let now = w.now();
    for what in w.provenance().pass_done(i, state, now) {
        w.fail(Some(i), what.to_string());
    }
    w.driven(i, state, settled);
    moved
}

/// Host `i`'s sasyncd is told to stop, and runs once more to do it.
pub fn shut_down<W: Cluster>(w: &mut W, i: usize) {
    w.parts(i).sockets.inputs.push_back(Pending::Shutdown);
    service(w, i);
}

/// Host `i`'s sasyncd is gone: its node dropped, its kernel socket
/// closed, its sockets forgotten. After an orderly stop its connections
/// are closed; in a `crash` they vanish with the host (the network forgets
/// them) and carp forgets the demotions it held.
pub fn gone<W: Cluster>(w: &mut W, i: usize, crash: bool) {
    let now = w.now();
    *w.node_slot(i) = None;
    w.kernel_watch(i, false);
    let p = w.parts(i);
    let conns = p.sockets.clear();
    if crash {
        p.demotion.forget();
        p.carp.crash(i);
        p.net.crash(i);
    } else {
        for nc in conns {
            p.net.close(nc, now);
        }
    }
}

/// Node `i`'s view of its world while the driver runs it.
struct HostIo<'a, W> {
    w: &'a mut W,
    i: usize,
    /// Something happened.
    moved: bool,
    /// The kernel message handed over last.
    msg: Vec<u8>,
}

impl<W: Cluster> Platform for HostIo<'_, W> {
    fn now(&mut self) -> Instant {
        self.w.now()
    }

    fn poll_input(&mut self) -> Option<Input<'_>> {
        let mut unmapped = Vec::new();
        let sockets = self.w.parts(self.i).sockets;
        let input = sockets.poll_input(&mut self.msg, &mut self.moved, |conn, bytes| {
            unmapped.push(IoEvent::BytesUnmapped { conn, bytes })
        });
        for e in unmapped {
            self.w.observe(self.i, e);
        }
        input
    }

    fn accepted(&mut self, conn: Result<NodeConn, Rejected>) {
        let now = self.w.now();
        let p = self.w.parts(self.i);
        if let Some((nc, peer)) = p.sockets.accepted(conn) {
            p.net.close(nc, now);
            self.w.observe(self.i, IoEvent::Refused { peer });
        }
    }

    fn connect(&mut self, conn: NodeConn, addr: IpAddr, _port: u16) {
        self.moved = true;
        let now = self.w.now();
        let p = self.w.parts(self.i);
        p.sockets.connect(p.net, self.i, conn, addr, now);
    }

    fn close(&mut self, conn: NodeConn) {
        self.moved = true;
        let now = self.w.now();
        let p = self.w.parts(self.i);
        p.sockets.close(p.net, conn, now);
    }

    fn send(&mut self, conn: NodeConn, bytes: &[u8]) -> Result<usize, SendError> {
        let now = self.w.now();
        let p = self.w.parts(self.i);
        let Some(nc) = p.sockets.net_of(conn) else {
            let e = IoEvent::SendUnmapped {
                conn,
                bytes: bytes.len(),
            };
            self.w.observe(self.i, e);
            return Err(SendError::Closed);
        };
        let sent = p.net.send(nc, bytes, now);
        self.moved |= sent > 0;
        self.w.provenance().sent(self.i, nc, sent, now);
        self.w.observe(self.i, IoEvent::Sent { conn: nc });
        Ok(sent)
    }

    fn received(&mut self, conn: NodeConn) -> &[u8] {
        let sockets = self.w.parts(self.i).sockets;
        sockets.received(conn)
    }

    fn consumed(&mut self, conn: NodeConn, r: Received) {
        self.moved = true;
        let sockets = self.w.parts(self.i).sockets;
        let (from, to) = sockets.consume(conn, r.consumed);
        if r.applied > 0 {
            let nc = sockets.net_of(conn);
            self.w.provenance().applied(nc, from, to);
        }
    }

    fn pfkey_write(&mut self, msg: &[u8]) -> PfkeyWrite {
        self.moved = true;
        self.w.kernel_write(self.i, msg)
    }

    fn set_promisc(&mut self, on: bool) {
        self.w.kernel_watch(self.i, on);
    }

    fn dump_start(&mut self, dump: DumpId, table: Table) {
        let records = self.w.kernel_dump(self.i, table);
        self.w.parts(self.i).sockets.dump_start(dump, records);
    }

    fn dump_next(&mut self, dump: DumpId) -> DumpRead<'_> {
        let sockets = self.w.parts(self.i).sockets;
        sockets.dump_next(dump)
    }

    fn dump_cancel(&mut self, dump: DumpId) {
        self.w.parts(self.i).sockets.dump_cancel(dump);
    }

    /// carp's demote counter, held per host: a release with none held is
    /// an oracle failure.
    fn demote(&mut self, effect: DemoteEffect) -> Option<bool> {
        self.moved = true;
        let (now, i) = (self.w.now(), self.i);
        let p = self.w.parts(i);
        match effect {
            DemoteEffect::Raise => {
                let ok = p.carp.demote_count(i) > 0 && p.carp.demote(i, 1, now).is_ok();
                if ok {
                    p.demotion.raise(now);
                    self.w.observe(i, IoEvent::Demote { raised: true });
                }
                Some(ok)
            }
            DemoteEffect::Release => {
                if !p.demotion.release() {
                    let what = "demotion released more often than raised".to_string();
                    self.w.fail(Some(i), what);
                } else {
                    let _ = p.carp.demote(i, -1, now);
                    self.w.observe(i, IoEvent::Demote { raised: false });
                }
                None
            }
        }
    }

    fn ike(&mut self, request: IkeRequest) -> Option<bool> {
        self.moved = true;
        if request.mode == IkeMode::Active {
            // A node asks IKE to go active as it becomes master: what it
            // writes from now on is a master's, even if an input later in
            // this pass takes it back to slave.
            let now = self.w.now();
            self.w.provenance().master_seen(self.i, now);
        }
        self.w.ike(self.i, request)
    }

    fn recheck_carp(&mut self) -> Option<u8> {
        let i = self.i;
        Some(self.w.carp().link_state(i))
    }
}
