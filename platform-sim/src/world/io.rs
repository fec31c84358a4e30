//! The PF_KEY world as the runtime drives it (`runtime.rs`): its hosts'
//! parts, its kernel behind each node's PF_KEY socket, its IKE daemons,
//! and the oracles watching what the nodes do.

use std::net::IpAddr;

use sasyncd_core::dialect::OpenBsd;
use sasyncd_core::node::{IkeMode, IkeRequest, Table};
use sasyncd_core::platform::{Livelock, PfkeyWrite};
use sasyncd_core::state::RunState;
use sasyncd_core::time::Instant;

use crate::carp::LinkEvent;
use crate::net::{ConnId as NetConn, NetEvent, NetEventKind};

use super::runtime::{self, Cluster, IoEvent};
use super::sockets::Pending;
use super::World;

impl Cluster for World {
    runtime::cluster_parts!(OpenBsd);

    fn deadline(&self) -> Option<Instant> {
        let mut t: Vec<Instant> = Vec::new();
        t.extend(self.script.first().map(|(t, _)| *t));
        t.extend(self.boot_ends.iter().map(|(t, _)| *t));
        if self.workload {
            for h in self.hosts.iter().filter(|h| h.up) {
                t.extend(h.ike.poll_timeout());
            }
        }
        t.into_iter().min()
    }

    fn due(&self) -> Vec<String> {
        let now = self.now;
        let mut v = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if self.workload && h.up && h.ike.poll_timeout().is_some_and(|t| t <= now) {
                v.push(format!("ike n{i}"));
            }
        }
        v
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
                    let moves = h.ike.take_moves();
                    if h.kernel.stats().valid_writes != before {
                        self.oracle.kernel_changed(i, now);
                    }
                    for (old, new) in moves {
                        self.oracle.moved(i, old, new, now);
                    }
                }
            }
        }
        // The nodes' timers fire when the drain drives them.
        self.with_oracle(|o, w| o.tick(w));
        if let Some(mut t) = self.takeovers.take() {
            t.tick(self);
            self.takeovers = Some(t);
        }
    }

    fn carp_changed(&mut self, e: &LinkEvent) {
        let now = self.now;
        let state = if e.link_state == crate::carp::LINK_STATE_UP {
            "MASTER"
        } else {
            "BACKUP"
        };
        self.trace.event(now, e.node, format!("carp link {state}"));
        self.oracle.carp_changed(e.node, e.link_state, now);
        if let Some(t) = self.takeovers.as_mut() {
            t.carp_changed(e.node, e.link_state, now);
        }
    }

    fn on_net(&mut self, e: NetEvent) {
        self.net_event(e.node, e.conn, e.kind);
    }

    /// The promiscuous copies waiting on the node's PF_KEY socket.
    fn read_kernel(&mut self, i: usize) -> bool {
        let h = &mut self.hosts[i];
        if h.node.is_none() {
            return false;
        }
        let mut moved = false;
        while let Some(m) = h.kernel.read_promisc(h.pid) {
            moved = true;
            h.sockets.inputs.push_back(Pending::Kernel(m));
        }
        moved
    }

    fn driven(&mut self, i: usize, _: RunState, settled: Result<Option<Instant>, Livelock>) {
        let now = self.now;
        if let Err(e) = settled {
            self.oracle.fail(now, Some(i), e.to_string());
        }
        self.collect_logs(i);
    }

    fn fail(&mut self, node: Option<usize>, what: String) {
        self.oracle.fail(self.now, node, what);
    }

    fn kernel_write(&mut self, i: usize, msg: &[u8]) -> PfkeyWrite {
        let h = &mut self.hosts[i];
        match h.kernel.write(msg, h.pid) {
            Ok(_) => PfkeyWrite::Written,
            Err(e) => {
                let t = msg.get(1).copied().unwrap_or(0);
                self.oracle.kernel_refused(i, t, e, self.now);
                PfkeyWrite::Failed(e.0.unsigned_abs())
            }
        }
    }

    fn kernel_watch(&mut self, i: usize, on: bool) {
        let h = &mut self.hosts[i];
        h.kernel.set_promisc(h.pid, on);
    }

    fn kernel_dump(&mut self, i: usize, table: Table) -> Vec<Vec<u8>> {
        let h = &mut self.hosts[i];
        let buf = match table {
            Table::Sadb => h.kernel.sadb_dump(0),
            Table::Spd => h.kernel.spd_dump(),
        };
        // The dump reply, message by message (`sadb_msg_len` in 8-byte
        // units at offset 4).
        let mut records = Vec::new();
        let mut at = 0;
        while let Some(b) = buf.get(at + 4..at + 6) {
            let len = u16::from_ne_bytes([b[0], b[1]]) as usize * 8;
            if len == 0 || at + len > buf.len() {
                break;
            }
            records.push(buf[at..at + len].to_vec());
            at += len;
        }
        records
    }

    fn ike(&mut self, i: usize, request: IkeRequest) -> Option<bool> {
        let now = self.now;
        let h = &mut self.hosts[i];
        let active = request.mode == IkeMode::Active;
        h.ike.set_active(active, now, &h.kernel);
        let what = if active {
            "isakmpd: M active"
        } else {
            "isakmpd: M passive"
        };
        self.trace.event(now, i, what);
        Some(true)
    }

    fn observe(&mut self, i: usize, e: IoEvent) {
        let now = self.now;
        let debug = || std::env::var_os("SASYNCD_SIM_DEBUG").is_some();
        match e {
            IoEvent::Refused { peer } => {
                self.oracle.rejected_strangers += u64::from(!self.is_host(peer));
            }
            IoEvent::BytesUnmapped { conn, bytes } if debug() => {
                let line = format!("{bytes} bytes on unmapped {conn:?}");
                self.trace.event(now, i, line);
            }
            IoEvent::SendUnmapped { conn, bytes } if debug() => {
                let line = format!("{bytes} bytes for unmapped {conn:?}");
                self.trace.event(now, i, line);
            }
            IoEvent::Sent { conn } => self.check_peer(i, conn),
            IoEvent::Demote { raised: true } => {
                self.trace.event(now, i, "carp demote +1 (until in sync)");
            }
            IoEvent::Demote { raised: false } => {
                self.trace.event(now, i, "carp demote -1");
            }
            _ => {}
        }
    }
}

impl World {
    fn is_host(&self, addr: IpAddr) -> bool {
        self.hosts.iter().any(|h| h.addr == addr)
    }

    /// Node `i` wrote on `nc`: no frame may go to an address that is not
    /// a configured peer.
    fn check_peer(&mut self, i: usize, nc: NetConn) {
        if let Some(p) = self.net.peer_addr(nc) {
            if !self.is_host(p) {
                let what = format!("frame sent to unconfigured address {p}");
                self.oracle.fail(self.now, Some(i), what);
            }
        }
    }

    fn net_event(&mut self, node: usize, nc: NetConn, kind: NetEventKind) {
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
        if Some(node) == self.impostor {
            return self.impostor_event(nc, kind);
        }
        let spoofed = self.is_impostor(nc);
        if node >= self.hosts.len() || self.hosts[node].node.is_none() {
            if let NetEventKind::Accepted { peer, .. } = kind {
                // No sasyncd listening: the connection is refused.
                self.oracle.rejected_strangers +=
                    u64::from(!self.hosts.iter().any(|h| h.addr == peer));
                self.net.close(nc, now);
            }
            return;
        }
        if spoofed && self.impostor_net(node, nc, &kind) {
            return;
        }
        self.hosts[node]
            .sockets
            .inputs
            .push_back(Pending::Net(nc, kind));
    }
}
