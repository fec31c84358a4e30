//! The PF_KEY world as the runtime drives it (`runtime.rs`): its hosts'
//! parts, its kernel behind each node's PF_KEY socket, its IKE daemons,
//! and the oracles watching what the nodes do.

use std::net::IpAddr;
use std::time::Duration;

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

    fn driven(&mut self, i: usize, state: RunState, settled: Result<Option<Instant>, Livelock>) {
        let now = self.now;
        for master_sent in std::mem::take(&mut self.applied) {
            self.oracle.applied(i, state, master_sent, now);
        }
        let unsure = std::mem::take(&mut self.unsure);
        if state == RunState::Master {
            for (nc, k) in unsure {
                if let Some(e) = self.sent.get_mut(&nc).and_then(|log| log.get_mut(k)) {
                    e.1 = true;
                }
            }
        }
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
        if active {
            // A node asks IKE to go active as it becomes master: what it
            // writes from now on is a master's (the safety oracle), even
            // if an input later in this pass takes it back to slave.
            h.last_master = Some(now);
        }
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
            IoEvent::Sent { conn, bytes } => self.sent(i, conn, bytes),
            IoEvent::Consumed {
                conn,
                from,
                to,
                applied,
            } if applied > 0 => {
                let sender_end = self.hosts[i]
                    .sockets
                    .net_of(conn)
                    .map(|nc| NetConn(nc.0 ^ 1));
                let master_sent = sender_end.map(|se| self.master_bytes_in(se, from, to));
                self.applied.push(master_sent);
            }
            IoEvent::Demote { raised: true } => {
                self.hosts[i].demote_since = Some(now);
                self.trace.event(now, i, "carp demote +1 (until in sync)");
            }
            IoEvent::Demote { raised: false } => {
                self.hosts[i].demote_since = None;
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

    /// Node `i` wrote `bytes` on `nc`: no frame may go to an address
    /// that is not a configured peer, and the bytes are logged with
    /// whether the node was master (the safety oracle).
    fn sent(&mut self, i: usize, nc: NetConn, bytes: usize) {
        let now = self.now;
        if let Some(p) = self.net.peer_addr(nc) {
            if !self.is_host(p) {
                let what = format!("frame sent to unconfigured address {p}");
                self.oracle.fail(now, Some(i), what);
            }
        }
        if bytes == 0 {
            return;
        }
        // Bytes leave the node's buffer some time after they were queued:
        // count them as a master's if it was master within the last two
        // seconds (more than any buffer here takes to drain; `last_master`
        // is noted after every call into the node).
        let master = self.hosts[i]
            .last_master
            .is_some_and(|t| now.since(t) <= Duration::from_secs(2));
        let total = self.sent_total.entry(nc).or_default();
        *total += bytes as u64;
        let log = self.sent.entry(nc).or_default();
        if !master {
            self.unsure.push((nc, log.len()));
        }
        log.push((*total, master));
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
