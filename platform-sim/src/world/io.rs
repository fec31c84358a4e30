//! Carrying out what a node asks (events, bytes, PF_KEY writes, dumps)
//! and feeding it what the network delivers.

use std::net::IpAddr;
use std::time::Duration;

use sasyncd_core::node::{
    ConnId as NodeConn, DemoteEffect, DumpFlow, DumpId, DumpOp, Event, IkeMode, Table,
};

use crate::net::{ConnId as NetConn, NetEventKind};

use super::World;

impl World {
    pub(super) fn transmit(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        let mut zero = 0;
        let known: Vec<IpAddr> = self.hosts.iter().map(|x| x.addr).collect();
        // Bytes leave the node's buffer some time after they were queued:
        // count them as a master's if it was master within the last two
        // seconds (more than any buffer here takes to drain; `last_master`
        // is noted after every call into the node).
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

    pub(super) fn offer(&mut self, i: usize, c: NodeConn) -> bool {
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
    pub(super) fn master_bytes_in(&mut self, end: NetConn, from: u64, to: u64) -> Option<bool> {
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

    pub(super) fn on_event(&mut self, i: usize, e: Event) {
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

    pub(super) fn feed(&mut self, i: usize, dump: DumpId) {
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

    pub(super) fn on_net(&mut self, node: usize, nc: NetConn, kind: NetEventKind) {
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
}
