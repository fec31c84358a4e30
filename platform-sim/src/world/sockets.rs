//! A host's sockets as its sasyncd sees them, whatever its kernel: what
//! waits for the node to take it, its connections mapped to the
//! network's, the bytes received on each, and the kernel dumps it is
//! reading. Both worlds (PF_KEY and XFRM) keep one per host, so the
//! node's view of the network is the same code for both.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use sasyncd_core::node::{ConnId as NodeConn, DumpId, Rejected};
use sasyncd_core::platform::{DumpRead, Input};
use sasyncd_core::time::Instant;

use crate::net::{ConnId as NetConn, Net, NetEventKind};

/// Something that happened to a host's sasyncd, waiting for the node to
/// take it: carp and the network report in the world's order, the kernel
/// socket's messages are read when the node is driven.
#[derive(Debug)]
pub enum Pending {
    /// carp's link state (at start, or changed).
    Link(u8),
    /// What the network did to one of its connections.
    Net(NetConn, NetEventKind),
    /// A message read from its kernel socket (a PF_KEY promiscuous copy,
    /// an XFRM event).
    Kernel(Vec<u8>),
    /// An orderly stop.
    Shutdown,
}

/// One host's sockets.
#[derive(Debug, Default)]
pub struct Sockets {
    /// What the node has not taken yet, oldest first (its
    /// [`Platform::poll_input`](sasyncd_core::platform::Platform::poll_input)).
    pub inputs: VecDeque<Pending>,
    /// The network connection of the `Accept` input just handed over.
    accepting: Option<(NetConn, IpAddr)>,
    to_net: BTreeMap<NodeConn, NetConn>,
    from_net: BTreeMap<NetConn, NodeConn>,
    rx: BTreeMap<NodeConn, Vec<u8>>,
    /// Stream bytes the node consumed per connection (for the safety oracle).
    consumed: BTreeMap<NodeConn, u64>,
    /// Dumps in progress: the records, and how many were read.
    dumps: BTreeMap<DumpId, (Vec<Vec<u8>>, usize)>,
}

impl Sockets {
    /// The node's connection `conn` is the network's `nc`.
    pub fn map(&mut self, conn: NodeConn, nc: NetConn) {
        self.to_net.insert(conn, nc);
        self.from_net.insert(nc, conn);
    }

    /// The network connection of the node's `conn`.
    pub fn net_of(&self, conn: NodeConn) -> Option<NetConn> {
        self.to_net.get(&conn).copied()
    }

    /// The node's connection on the network's `nc`.
    pub fn conn_of(&self, nc: NetConn) -> Option<NodeConn> {
        self.from_net.get(&nc).copied()
    }

    /// The network connections the node knows.
    pub fn net_conns(&self) -> Vec<NetConn> {
        self.from_net.keys().copied().collect()
    }

    /// The node answered the `Accept` just handed over: `Some` (the
    /// network's connection and the peer) when it refused it, for the
    /// caller to close.
    pub fn accepted(&mut self, conn: Result<NodeConn, Rejected>) -> Option<(NetConn, IpAddr)> {
        let (nc, peer) = self.accepting.take()?;
        match conn {
            Ok(c) => {
                self.map(c, nc);
                None
            }
            Err(_) => Some((nc, peer)),
        }
    }

    /// Host `node`'s sasyncd dials `addr` on its connection `conn`.
    pub fn connect(
        &mut self,
        net: &mut Net,
        node: usize,
        conn: NodeConn,
        addr: IpAddr,
        now: Instant,
    ) {
        let nc = net.connect(node, addr, now);
        self.map(conn, nc);
    }

    /// The node closed `conn`.
    pub fn close(&mut self, net: &mut Net, conn: NodeConn, now: Instant) {
        self.rx.remove(&conn);
        self.consumed.remove(&conn);
        if let Some(nc) = self.to_net.remove(&conn) {
            self.from_net.remove(&nc);
            net.close(nc, now);
        }
    }

    /// The network closed `nc` under the node: its connection, if mapped.
    pub fn closed(&mut self, nc: NetConn) -> Option<NodeConn> {
        let c = self.from_net.remove(&nc)?;
        self.to_net.remove(&c);
        self.rx.remove(&c);
        self.consumed.remove(&c);
        Some(c)
    }

    /// Bytes arrived on the node's `conn`.
    pub fn receive(&mut self, conn: NodeConn, bytes: &[u8]) {
        self.rx.entry(conn).or_default().extend_from_slice(bytes);
    }

    /// The bytes received on `conn` that the node has not consumed.
    pub fn received(&self, conn: NodeConn) -> &[u8] {
        self.rx.get(&conn).map_or(&[][..], Vec::as_slice)
    }

    /// The received bytes of `conn`, to hand to the node directly.
    pub fn received_mut(&mut self, conn: NodeConn) -> Option<&mut Vec<u8>> {
        self.rx.get_mut(&conn)
    }

    /// The node consumed `n` received bytes of `conn`: the stream offsets
    /// `[from, to)` they covered.
    pub fn consume(&mut self, conn: NodeConn, n: usize) -> (u64, u64) {
        if let Some(q) = self.rx.get_mut(&conn) {
            q.drain(..n.min(q.len()));
        }
        let from = *self.consumed.get(&conn).unwrap_or(&0);
        let to = from + n as u64;
        self.consumed.insert(conn, to);
        (from, to)
    }

    /// The node starts reading a dump of `records`.
    pub fn dump_start(&mut self, dump: DumpId, records: Vec<Vec<u8>>) {
        self.dumps.insert(dump, (records, 0));
    }

    /// The next record of `dump`, or its end (`ok: false`: no such dump).
    pub fn dump_next(&mut self, dump: DumpId) -> DumpRead<'_> {
        let at = match self.dumps.get_mut(&dump) {
            None => return DumpRead::End { ok: false },
            Some((records, at)) if *at < records.len() => {
                *at += 1;
                *at - 1
            }
            Some(_) => {
                self.dumps.remove(&dump);
                return DumpRead::End { ok: true };
            }
        };
        match self.dumps.get(&dump) {
            Some((records, _)) => DumpRead::Record(&records[at]),
            None => DumpRead::End { ok: false },
        }
    }

    /// The node stops reading `dump`.
    pub fn dump_cancel(&mut self, dump: DumpId) {
        self.dumps.remove(&dump);
    }

    /// sasyncd is gone: everything is forgotten; the network connections
    /// it had, for the caller to close (or to leave, if the host crashed).
    pub fn clear(&mut self) -> Vec<NetConn> {
        self.inputs.clear();
        self.dumps.clear();
        self.accepting = None;
        self.from_net.clear();
        self.rx.clear();
        self.consumed.clear();
        std::mem::take(&mut self.to_net).into_values().collect()
    }

    /// The node's next input (its `Platform::poll_input`); a kernel
    /// message is handed over in `msg`. `unmapped` hears of bytes for a
    /// connection the node does not know. Whether anything was taken is
    /// `took` (bytes are taken without being an input).
    pub fn poll_input<'m>(
        &mut self,
        msg: &'m mut Vec<u8>,
        took: &mut bool,
        mut unmapped: impl FnMut(NetConn, usize),
    ) -> Option<Input<'m>> {
        loop {
            let p = self.inputs.pop_front()?;
            *took = true;
            return Some(match p {
                Pending::Link(ls) => Input::LinkState(ls),
                Pending::Shutdown => Input::Shutdown,
                Pending::Kernel(m) => {
                    *msg = m;
                    Input::Pfkey(msg)
                }
                Pending::Net(nc, kind) => {
                    if let NetEventKind::Data(bytes) = &kind {
                        if self.conn_of(nc).is_none() {
                            unmapped(nc, bytes.len());
                        }
                    }
                    match self.net_input(nc, kind) {
                        Some(input) => input,
                        None => continue,
                    }
                }
            });
        }
    }

    /// What a network event on `nc` is to the node when it takes it: its
    /// input, or `None` for bytes (kept in its receive buffer) and for
    /// connections it does not know.
    fn net_input(&mut self, nc: NetConn, kind: NetEventKind) -> Option<Input<'static>> {
        match kind {
            NetEventKind::Connected => self.conn_of(nc).map(Input::Connected),
            NetEventKind::ConnectFailed(_) => {
                let c = self.from_net.remove(&nc)?;
                self.to_net.remove(&c);
                Some(Input::ConnectFailed(c))
            }
            NetEventKind::Accepted { peer, .. } => {
                self.accepting = Some((nc, peer));
                Some(Input::Accept { peer })
            }
            NetEventKind::Data(bytes) => {
                if let Some(c) = self.conn_of(nc) {
                    self.receive(c, &bytes);
                }
                None
            }
            NetEventKind::Writable => self.conn_of(nc).map(Input::Writable),
            NetEventKind::Closed(_) => self.closed(nc).map(Input::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(r: DumpRead<'_>) -> Option<Vec<u8>> {
        match r {
            DumpRead::Record(b) => Some(b.to_vec()),
            _ => None,
        }
    }

    /// A dump is lent record by record, ends well once, and is unknown
    /// afterwards, after a cancel and after sasyncd is gone.
    #[test]
    fn dumps_are_read_in_order_and_forgotten() {
        let mut s = Sockets::default();
        let (a, b) = (DumpId(1), DumpId(2));
        s.dump_start(a, vec![vec![1], vec![2, 2]]);
        s.dump_start(b, vec![vec![9]]);
        assert_eq!(record(s.dump_next(a)), Some(vec![1]));
        assert_eq!(record(s.dump_next(b)), Some(vec![9]));
        assert_eq!(record(s.dump_next(a)), Some(vec![2, 2]));
        assert!(matches!(s.dump_next(a), DumpRead::End { ok: true }));
        assert!(matches!(s.dump_next(a), DumpRead::End { ok: false }));
        s.dump_cancel(b);
        assert!(matches!(s.dump_next(b), DumpRead::End { ok: false }));
        s.dump_start(a, vec![vec![3]]);
        s.clear();
        assert!(matches!(s.dump_next(a), DumpRead::End { ok: false }));
    }
}
