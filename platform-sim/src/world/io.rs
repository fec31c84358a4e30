//! The simulator as a [`Platform`]: carrying out what a node asks (bytes,
//! PF_KEY writes, dumps, carp, IKE) through the shared driver, with the
//! oracles watching, and feeding it what the network delivers.

use std::net::IpAddr;
use std::time::Duration;

use sasyncd_core::node::{
    ConnId as NodeConn, DemoteEffect, DumpId, IkeMode, IkeRequest, Received, Table,
};
use sasyncd_core::platform::{DumpRead, PfkeyWrite, Platform, SendError};
use sasyncd_core::state::RunState;
use sasyncd_core::time::Instant;

use crate::net::{ConnId as NetConn, NetEventKind};

use super::World;

/// Node `i`'s view of the world while the driver runs it.
pub(super) struct SimIo<'a> {
    pub w: &'a mut World,
    pub i: usize,
    /// The node's run state when the driver started (for the safety oracle).
    pub state: RunState,
    /// Something happened.
    pub moved: bool,
}

impl Platform for SimIo<'_> {
    fn now(&mut self) -> Instant {
        self.w.now
    }

    fn connect(&mut self, conn: NodeConn, addr: IpAddr, _port: u16) {
        self.moved = true;
        let now = self.w.now;
        let nc = self.w.net.connect(self.i, addr, now);
        let h = &mut self.w.hosts[self.i];
        h.to_net.insert(conn, nc);
        h.from_net.insert(nc, conn);
    }

    fn close(&mut self, conn: NodeConn) {
        self.moved = true;
        let now = self.w.now;
        let h = &mut self.w.hosts[self.i];
        h.rx.remove(&conn);
        h.consumed.remove(&conn);
        if let Some(nc) = h.to_net.remove(&conn) {
            h.from_net.remove(&nc);
            self.w.net.close(nc, now);
        }
    }

    fn send(&mut self, conn: NodeConn, bytes: &[u8]) -> Result<usize, SendError> {
        let (w, i) = (&mut *self.w, self.i);
        let now = w.now;
        let Some(&nc) = w.hosts[i].to_net.get(&conn) else {
            if std::env::var_os("SASYNCD_SIM_DEBUG").is_some() {
                w.trace.event(
                    now,
                    i,
                    format!("{} bytes for unmapped {conn:?}", bytes.len()),
                );
            }
            return Err(SendError::Closed);
        };
        if let Some(p) = w.net.peer_addr(nc) {
            if !w.hosts.iter().any(|h| h.addr == p) {
                w.oracle.fail(
                    now,
                    Some(i),
                    format!("frame sent to unconfigured address {p}"),
                );
            }
        }
        // Bytes leave the node's buffer some time after they were queued:
        // count them as a master's if it was master within the last two
        // seconds (more than any buffer here takes to drain; `last_master`
        // is noted after every call into the node).
        let master = w.hosts[i]
            .last_master
            .is_some_and(|t| now.since(t) <= Duration::from_secs(2));
        let sent = w.net.send(nc, bytes, now);
        if sent > 0 {
            self.moved = true;
            let total = w.sent_total.entry(nc).or_default();
            *total += sent as u64;
            w.sent.entry(nc).or_default().push((*total, master));
        }
        Ok(sent)
    }

    fn received(&mut self, conn: NodeConn) -> &[u8] {
        self.w.hosts[self.i]
            .rx
            .get(&conn)
            .map_or(&[][..], Vec::as_slice)
    }

    fn consumed(&mut self, conn: NodeConn, r: Received) {
        self.moved = true;
        let (w, i) = (&mut *self.w, self.i);
        if let Some(q) = w.hosts[i].rx.get_mut(&conn) {
            q.drain(..r.consumed.min(q.len()));
        }
        let from = *w.hosts[i].consumed.get(&conn).unwrap_or(&0);
        let to = from + r.consumed as u64;
        w.hosts[i].consumed.insert(conn, to);
        if r.applied > 0 {
            let sender_end = w.hosts[i].to_net.get(&conn).map(|nc| NetConn(nc.0 ^ 1));
            let master_sent = sender_end.map(|se| w.master_bytes_in(se, from, to));
            let now = w.now;
            w.oracle.applied(i, self.state, master_sent, now);
        }
    }

    fn pfkey_write(&mut self, msg: &[u8]) -> PfkeyWrite {
        self.moved = true;
        let h = &mut self.w.hosts[self.i];
        match h.kernel.write(msg, h.pid) {
            Ok(_) => PfkeyWrite::Written,
            Err(e) => {
                let (i, now) = (self.i, self.w.now);
                let t = msg.get(1).copied().unwrap_or(0);
                self.w.oracle.kernel_refused(i, t, e, now);
                PfkeyWrite::Failed(e.0.unsigned_abs())
            }
        }
    }

    fn set_promisc(&mut self, on: bool) {
        let h = &mut self.w.hosts[self.i];
        h.kernel.set_promisc(h.pid, on);
    }

    fn dump_start(&mut self, dump: DumpId, table: Table) {
        let h = &mut self.w.hosts[self.i];
        let buf = match table {
            Table::Sadb => h.kernel.sadb_dump(0),
            Table::Spd => h.kernel.spd_dump(),
        };
        h.dumps.insert(dump, (buf, 0));
    }

    fn dump_next(&mut self, dump: DumpId) -> DumpRead<'_> {
        let dumps = &mut self.w.hosts[self.i].dumps;
        let (at, rec_len) = match dumps.get(&dump) {
            None => return DumpRead::End { ok: false },
            Some((buf, at)) => {
                let len = buf
                    .get(*at + 4..*at + 6)
                    .map(|b| u16::from_ne_bytes([b[0], b[1]]) as usize * 8)
                    .unwrap_or(0);
                if len == 0 || *at + len > buf.len() {
                    dumps.remove(&dump);
                    return DumpRead::End { ok: true };
                }
                (*at, len)
            }
        };
        match dumps.get_mut(&dump) {
            Some((buf, pos)) => {
                *pos = at + rec_len;
                DumpRead::Record(&buf[at..at + rec_len])
            }
            None => DumpRead::End { ok: false },
        }
    }

    fn dump_cancel(&mut self, dump: DumpId) {
        self.w.hosts[self.i].dumps.remove(&dump);
    }

    fn demote(&mut self, effect: DemoteEffect) -> Option<bool> {
        self.moved = true;
        let (w, i) = (&mut *self.w, self.i);
        let now = w.now;
        match effect {
            DemoteEffect::Raise => {
                let ok = w.carp.demote_count(i) > 0 && w.carp.demote(i, 1, now).is_ok();
                if ok {
                    w.hosts[i].demote_held += 1;
                    w.hosts[i].demote_since = Some(now);
                    w.trace.event(now, i, "carp demote +1 (until in sync)");
                }
                Some(ok)
            }
            DemoteEffect::Release => {
                if w.hosts[i].demote_held == 0 {
                    w.oracle.fail(
                        now,
                        Some(i),
                        "demotion released more often than raised".into(),
                    );
                } else {
                    w.hosts[i].demote_held -= 1;
                    w.hosts[i].demote_since = None;
                    let _ = w.carp.demote(i, -1, now);
                    w.trace.event(now, i, "carp demote -1");
                }
                None
            }
        }
    }

    fn ike(&mut self, request: IkeRequest) -> Option<bool> {
        self.moved = true;
        let (w, i) = (&mut *self.w, self.i);
        let now = w.now;
        let h = &mut w.hosts[i];
        let active = request.mode == IkeMode::Active;
        h.ike.set_active(active, now, &h.kernel);
        w.trace.event(
            now,
            i,
            if active {
                "isakmpd: M active"
            } else {
                "isakmpd: M passive"
            },
        );
        Some(true)
    }

    fn recheck_carp(&mut self) -> Option<u8> {
        Some(self.w.carp.link_state(self.i))
    }
}

impl World {
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
                let before = spoofed.then(|| self.seen(node, peer)).flatten();
                let r = self.hosts[node]
                    .node
                    .as_mut()
                    .map(|n| n.handle_accept(now, peer));
                self.impostor_after(node, peer, before, "accepting its connection");
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
                    if let Some(addr) = self.net.peer_addr(nc).filter(|_| spoofed) {
                        self.impostor_recv(node, c, addr);
                    }
                } else if std::env::var_os("SASYNCD_SIM_DEBUG").is_some() {
                    self.trace.event(
                        now,
                        node,
                        format!("{} bytes on unmapped {nc:?}", bytes.len()),
                    );
                }
            }
            NetEventKind::Writable => {
                if let Some(&c) = self.hosts[node].from_net.get(&nc) {
                    if let Some(n) = self.hosts[node].node.as_mut() {
                        n.handle_writable(now, c);
                    }
                }
            }
            NetEventKind::Closed(_) => {
                if let Some(c) = self.hosts[node].from_net.remove(&nc) {
                    let h = &mut self.hosts[node];
                    h.to_net.remove(&c);
                    h.rx.remove(&c);
                    h.consumed.remove(&c);
                    let addr = self.net.peer_addr(nc).filter(|_| spoofed);
                    let before = addr.and_then(|a| self.seen(node, a));
                    if let Some(n) = self.hosts[node].node.as_mut() {
                        n.handle_closed(now, c);
                    }
                    if let Some(a) = addr {
                        self.impostor_after(node, a, before, "its close");
                    }
                }
            }
        }
        self.collect_logs(node);
    }
}
