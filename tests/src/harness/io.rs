//! The harness as a [`Platform`]: what node `i` asks of the world, carried
//! out on in-memory links, the simulated kernel and the host's carp and IKE
//! stand-ins. Every method that may touch the heap steps outside the
//! zero-allocation probe, so that the test counts the core's heap use, not
//! the harness's.

use std::net::IpAddr;

use sasyncd_core::node::{ConnId, DemoteEffect, DumpId, IkeRequest, Received, Table};
use sasyncd_core::pfkey::{build_promisc, records};
use sasyncd_core::platform::{DumpRead, PfkeyWrite, Platform, SendError};
use sasyncd_core::time::Instant;

use super::{End, ExtEnd, World};
use crate::probe;

/// Node `i`'s view of the world while the driver runs it.
pub(super) struct Io<'a, const RING: usize, const MARKS: usize> {
    pub w: &'a mut World<RING, MARKS>,
    pub i: usize,
    /// Something happened.
    pub moved: bool,
}

impl<const RING: usize, const MARKS: usize> Platform for Io<'_, RING, MARKS> {
    fn now(&mut self) -> Instant {
        self.w.now
    }

    fn connect(&mut self, conn: ConnId, addr: IpAddr, _port: u16) {
        let _outside = probe::outside();
        self.moved = true;
        let (w, i) = (&mut *self.w, self.i);
        let now = w.now;
        let from = w.nodes[i].addr;
        w.nodes[i].dialled.push(addr);
        let ok = if w.ext_listen.contains(&addr) {
            w.ext.push(ExtEnd {
                rx: Vec::new(),
                open: true,
                addr: Some(addr),
            });
            w.links
                .push((End::Node(i, conn), End::Ext(w.ext.len() - 1)));
            true
        } else {
            let target = w.nodes.iter().position(|h| h.addr == addr);
            let accepted = match target {
                Some(j) if j != i && w.nodes[j].node.is_some() => {
                    crate::in_core!(w.node(j).handle_accept(now, from))
                        .ok()
                        .map(|cj| (j, cj))
                }
                _ => None,
            };
            if let Some((j, cj)) = accepted {
                w.links.push((End::Node(i, conn), End::Node(j, cj)));
            }
            accepted.is_some()
        };
        w.nodes[i].connected.push((conn, ok));
    }

    fn close(&mut self, conn: ConnId) {
        let _outside = probe::outside();
        self.moved = true;
        let (w, i) = (&mut *self.w, self.i);
        w.nodes[i].inbox.remove(&conn);
        w.nodes[i].writable.remove(&conn);
        let me = End::Node(i, conn);
        if let Some(p) = w.peer_of(me) {
            w.links.retain(|&(a, b)| a != me && b != me);
            w.closed(p);
        }
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<usize, SendError> {
        let _outside = probe::outside();
        let (w, i) = (&mut *self.w, self.i);
        let Some(peer) = w.peer_of(End::Node(i, conn)) else {
            return Err(SendError::Closed);
        };
        let mut sent = bytes.len();
        if w.chunking {
            sent = 1 + w.rng.below(sent as u64) as usize;
        }
        if let (Some(win), End::Node(j, cj)) = (w.window, peer) {
            let queued = w.nodes[j].inbox.get(&cj).map_or(0, Vec::len);
            sent = sent.min(win.saturating_sub(queued));
        }
        let mut out = bytes[..sent].to_vec();
        if let Some(t) = w.tamper.as_mut() {
            t(i, &mut out);
        }
        match peer {
            End::Node(j, cj) => w.nodes[j]
                .inbox
                .entry(cj)
                .or_default()
                .extend_from_slice(&out),
            End::Ext(x) => w.ext[x].rx.extend_from_slice(&out),
        }
        if sent < bytes.len() {
            // A short write: the link drains at once, so the node
            // hears it is writable again next round.
            w.nodes[i].writable.insert(conn);
        }
        self.moved |= sent > 0;
        Ok(sent)
    }

    fn received(&mut self, conn: ConnId) -> &[u8] {
        let h = &mut self.w.nodes[self.i];
        let len = h.inbox.get(&conn).map_or(0, Vec::len);
        let offer = if self.w.chunking && len > 0 {
            1 + self.w.rng.below(len as u64) as usize
        } else {
            len
        };
        let h = &self.w.nodes[self.i];
        h.inbox.get(&conn).map_or(&[][..], |b| &b[..offer])
    }

    fn consumed(&mut self, conn: ConnId, r: Received) {
        let _outside = probe::outside();
        self.moved = true;
        if let Some(q) = self.w.nodes[self.i].inbox.get_mut(&conn) {
            q.drain(..r.consumed.min(q.len()));
        }
    }

    fn pfkey_write(&mut self, msg: &[u8]) -> PfkeyWrite {
        let _outside = probe::outside();
        let h = &mut self.w.nodes[self.i];
        if h.stall {
            return PfkeyWrite::WouldBlock;
        }
        self.moved = true;
        let res = h.kernel.write(msg, h.pid);
        h.written.push(msg.to_vec());
        match res {
            Ok(_) => PfkeyWrite::Written,
            Err(e) => {
                h.refused.push((msg.to_vec(), e));
                PfkeyWrite::Failed(e.0.unsigned_abs())
            }
        }
    }

    fn set_promisc(&mut self, on: bool) {
        let _outside = probe::outside();
        // sasyncd writes the 16-byte X_PROMISC request (§11.1).
        let h = &mut self.w.nodes[self.i];
        h.promisc_seq += 1;
        let mut m = [0u8; 16];
        build_promisc(on, h.promisc_seq, h.pid, &mut m).expect("X_PROMISC");
        h.kernel.write(&m, h.pid).expect("kernel refused X_PROMISC");
    }

    fn dump_start(&mut self, dump: DumpId, table: Table) {
        let _outside = probe::outside();
        let h = &mut self.w.nodes[self.i];
        let buf = match table {
            Table::Sadb => h.kernel.sadb_dump(0),
            Table::Spd => h.kernel.spd_dump(),
        };
        let recs = records(&buf)
            .map(|r| r.expect("dump record").bytes().to_vec())
            .collect();
        h.dumps.insert(dump, (recs, 0));
    }

    fn dump_next(&mut self, dump: DumpId) -> DumpRead<'_> {
        let dumps = &mut self.w.nodes[self.i].dumps;
        let at = match dumps.get(&dump) {
            None => return DumpRead::End { ok: false },
            Some((recs, at)) if *at >= recs.len() => {
                let _outside = probe::outside();
                dumps.remove(&dump);
                return DumpRead::End { ok: true };
            }
            Some((_, at)) => *at,
        };
        match dumps.get_mut(&dump) {
            Some((recs, pos)) => {
                *pos = at + 1;
                DumpRead::Record(&recs[at])
            }
            None => DumpRead::End { ok: false },
        }
    }

    fn dump_cancel(&mut self, dump: DumpId) {
        let _outside = probe::outside();
        self.w.nodes[self.i].dumps.remove(&dump);
    }

    fn demote(&mut self, effect: DemoteEffect) -> Option<bool> {
        let h = &mut self.w.nodes[self.i];
        match effect {
            DemoteEffect::Raise => {
                let ok = h.demoted > 0;
                if ok {
                    h.demoted += 1;
                }
                Some(ok)
            }
            DemoteEffect::Release => {
                h.demoted -= 1;
                None
            }
        }
    }

    fn ike(&mut self, request: IkeRequest) -> Option<bool> {
        let h = &mut self.w.nodes[self.i];
        if h.ike_ok {
            h.ike = Some(request.mode);
        }
        Some(h.ike_ok)
    }

    fn recheck_carp(&mut self) -> Option<u8> {
        self.w.nodes[self.i].rechecks += 1;
        Some(self.w.nodes[self.i].link_state)
    }
}
