//! The simulator as a [`Platform`]: carrying out what a node asks (bytes,
//! PF_KEY writes, dumps, carp, IKE) through the shared driver, with the
//! oracles watching, and feeding it what the network delivers.

use std::net::IpAddr;
use std::time::Duration;

use sasyncd_core::node::Rejected;
use sasyncd_core::node::{
    ConnId as NodeConn, DemoteEffect, DumpId, IkeMode, IkeRequest, Received, Table,
};
use sasyncd_core::platform::{DumpRead, Input, PfkeyWrite, Platform, SendError};
use sasyncd_core::time::Instant;

use crate::net::{ConnId as NetConn, NetEventKind};

use super::sockets::Pending;
use super::World;

/// Node `i`'s view of the world while the driver runs it.
pub(super) struct SimIo<'a> {
    pub w: &'a mut World,
    pub i: usize,
    /// What the node applied, by whether its sender was master: checked
    /// against the node's run state once the driver returns (the safety
    /// oracle).
    pub applied: Vec<Option<Option<bool>>>,
    /// Writes made while the node was not known to be master: entries of
    /// `World::sent`, which count as a master's if the node is master
    /// once the driver returns (it may have become master on an input of
    /// this run).
    pub unsure: Vec<(NetConn, usize)>,
    /// Something happened.
    pub moved: bool,
    /// The PF_KEY message handed over last.
    pub msg: Vec<u8>,
}

impl Platform for SimIo<'_> {
    fn now(&mut self) -> Instant {
        self.w.now
    }

    fn poll_input(&mut self) -> Option<Input<'_>> {
        let (w, i) = (&mut *self.w, self.i);
        let (now, trace) = (w.now, &mut w.trace);
        w.hosts[i]
            .sockets
            .poll_input(&mut self.msg, &mut self.moved, |nc, n| {
                if std::env::var_os("SASYNCD_SIM_DEBUG").is_some() {
                    trace.event(now, i, format!("{n} bytes on unmapped {nc:?}"));
                }
            })
    }

    fn accepted(&mut self, conn: Result<NodeConn, Rejected>) {
        let (w, i) = (&mut *self.w, self.i);
        if let Some((nc, peer)) = w.hosts[i].sockets.accepted(conn) {
            w.oracle.rejected_strangers += u64::from(!w.hosts.iter().any(|h| h.addr == peer));
            w.net.close(nc, w.now);
        }
    }

    fn connect(&mut self, conn: NodeConn, addr: IpAddr, _port: u16) {
        self.moved = true;
        let (w, i) = (&mut *self.w, self.i);
        w.hosts[i].sockets.connect(&mut w.net, i, conn, addr, w.now);
    }

    fn close(&mut self, conn: NodeConn) {
        self.moved = true;
        let (w, i) = (&mut *self.w, self.i);
        w.hosts[i].sockets.close(&mut w.net, conn, w.now);
    }

    fn send(&mut self, conn: NodeConn, bytes: &[u8]) -> Result<usize, SendError> {
        let (w, i) = (&mut *self.w, self.i);
        let now = w.now;
        let Some(nc) = w.hosts[i].sockets.net_of(conn) else {
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
            let log = w.sent.entry(nc).or_default();
            if !master {
                self.unsure.push((nc, log.len()));
            }
            log.push((*total, master));
        }
        Ok(sent)
    }

    fn received(&mut self, conn: NodeConn) -> &[u8] {
        self.w.hosts[self.i].sockets.received(conn)
    }

    fn consumed(&mut self, conn: NodeConn, r: Received) {
        self.moved = true;
        let (w, i) = (&mut *self.w, self.i);
        let (from, to) = w.hosts[i].sockets.consume(conn, r.consumed);
        if r.applied > 0 {
            let sender_end = w.hosts[i].sockets.net_of(conn).map(|nc| NetConn(nc.0 ^ 1));
            let master_sent = sender_end.map(|se| w.master_bytes_in(se, from, to));
            self.applied.push(master_sent);
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
        if active {
            // A node asks IKE to go active as it becomes master: what it
            // writes from now on is a master's (the safety oracle), even
            // if an input later in this run takes it back to slave.
            h.last_master = Some(now);
        }
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
        if spoofed && self.impostor_net(node, nc, &kind) {
            return;
        }
        self.hosts[node]
            .sockets
            .inputs
            .push_back(Pending::Net(nc, kind));
    }
}
