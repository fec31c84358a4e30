//! The network process as a [`Platform`]: peer sockets, the PF_KEY socket,
//! and the requests only the privileged process can carry out (dumps, carp
//! demotion, IKE control, re-reading the carp interface), sent over the
//! privilege-separation channel; their answers come back as node inputs in
//! the loop ([`super::Net`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Instant as WallInstant;

use sasyncd_core::node::{
    ConnId, DemoteEffect, DumpId, IkeMode, IkeRequest, Received, Rejected, Table,
};
use sasyncd_core::platform::{DumpRead, Input, PfkeyWrite, Platform, SendError};
use sasyncd_core::time::Instant;

use super::conns::PeerConn;
use super::dumps::{Dumps, Want};
use super::sockets;
use crate::kernel::PfkeySocket;
use crate::privsep::{NetChannel, ToPriv};
use crate::secret::SecretBytes;

/// The node's clock: milliseconds since the process started, monotonic.
#[derive(Debug, Clone, Copy)]
pub struct Clock(WallInstant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock(WallInstant::now())
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }

    /// The wall-clock instant `t` stands for.
    pub fn wall(&self, t: Instant) -> WallInstant {
        self.0 + std::time::Duration::from_millis(t.as_millis())
    }
}

/// What the loop read (or a platform call found) for the node, waiting
/// for the driver to take it ([`Platform::poll_input`]).
#[derive(Debug)]
pub enum Pending {
    /// A message read from the PF_KEY socket (keys inside: zeroed on drop).
    Pfkey(SecretBytes),
    /// carp's link state.
    LinkState(u8),
    /// The privileged process could not read the carp interface.
    CarpUnreadable,
    /// A peer connection came in.
    Accept(TcpStream, IpAddr),
    /// A connect finished.
    Connected(ConnId),
    /// A connect failed (at once, or later).
    ConnectFailed(ConnId),
    /// A connection ended.
    Closed(ConnId),
    /// A blocked connection can take bytes again.
    Writable(ConnId),
    /// The privileged process's answer to an IKE request.
    IkeResult(u32, bool),
    /// The privileged process's answer to a demotion.
    DemoteResult(bool),
    /// Shut down in order.
    Shutdown,
}

/// Everything the node's platform calls touch.
pub struct NetIo {
    pub clock: Clock,
    /// Our pid: PF_KEY messages we write carry it.
    pub pid: u32,
    /// Where outbound connections come from.
    pub source: Option<IpAddr>,
    pub conns: BTreeMap<ConnId, PeerConn>,
    pub pfkey: Box<dyn PfkeySocket>,
    pub chan: NetChannel,
    pub dumps: Dumps,
    /// Inputs for the node, oldest first.
    pub inputs: VecDeque<Pending>,
    /// The PF_KEY message handed over last.
    msg: Option<SecretBytes>,
    /// The connection of the `Accept` handed over last.
    accepting: Option<(TcpStream, IpAddr)>,
    /// The privileged process is gone: nothing we ask of it will be done.
    pub priv_gone: bool,
    promisc_seq: u32,
}

impl std::fmt::Debug for NetIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetIo")
            .field("pid", &self.pid)
            .field("conns", &self.conns.len())
            .finish()
    }
}

impl NetIo {
    /// The platform side of the network process.
    pub fn new(
        clock: Clock,
        pid: u32,
        source: Option<IpAddr>,
        pfkey: Box<dyn PfkeySocket>,
        chan: NetChannel,
    ) -> NetIo {
        let framing = pfkey.framing();
        NetIo {
            clock,
            pid,
            source,
            conns: BTreeMap::new(),
            pfkey,
            chan,
            dumps: Dumps::new(framing),
            priv_gone: false,
            inputs: VecDeque::new(),
            msg: None,
            accepting: None,
            promisc_seq: 0,
        }
    }

    /// Queues a request for the privileged process; the channel refuses
    /// only when it is hopelessly backed up, which the loop notices.
    pub fn to_priv(&mut self, msg: ToPriv) {
        if let Err(e) = self.chan.queue(&msg) {
            log::error!("cannot queue a request for the privileged process: {e}");
        }
    }
}

impl Platform for NetIo {
    fn now(&mut self) -> Instant {
        self.clock.now()
    }

    fn poll_input(&mut self) -> Option<Input<'_>> {
        Some(match self.inputs.pop_front()? {
            Pending::Pfkey(m) => return Some(Input::Pfkey(self.msg.insert(m))),
            Pending::LinkState(s) => Input::LinkState(s),
            Pending::CarpUnreadable => Input::CarpUnreadable,
            Pending::Accept(s, peer) => {
                self.accepting = Some((s, peer));
                Input::Accept { peer }
            }
            Pending::Connected(c) => Input::Connected(c),
            Pending::ConnectFailed(c) => Input::ConnectFailed(c),
            Pending::Closed(c) => Input::Closed(c),
            Pending::Writable(c) => Input::Writable(c),
            Pending::IkeResult(id, ok) => Input::IkeResult { id, ok },
            Pending::DemoteResult(ok) => Input::DemoteResult(ok),
            Pending::Shutdown => Input::Shutdown,
        })
    }

    fn accepted(&mut self, conn: Result<ConnId, Rejected>) {
        // Refused: the node logged why; dropping the stream closes it.
        let (Some((s, peer)), Ok(conn)) = (self.accepting.take(), conn) else {
            return;
        };
        match sockets::accepted(s) {
            Ok(s) => {
                self.conns.insert(conn, PeerConn::new(s, peer, false));
            }
            Err(e) => {
                log::warn!("peer {peer}: cannot set up the connection: {e}");
                self.inputs.push_back(Pending::Closed(conn));
            }
        }
    }

    fn connect(&mut self, conn: ConnId, addr: IpAddr, port: u16) {
        let to = SocketAddr::new(addr, port);
        match sockets::start_connect(to, self.source) {
            Ok(s) => {
                self.conns.insert(conn, PeerConn::new(s, addr, true));
            }
            Err(e) => {
                log::info!("peer {addr}: cannot connect: {e}");
                self.inputs.push_back(Pending::ConnectFailed(conn));
            }
        }
    }

    fn close(&mut self, conn: ConnId) {
        // Dropping the stream closes it; unread bytes go with it.
        self.conns.remove(&conn);
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<usize, SendError> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Err(SendError::Closed);
        };
        match c.write(bytes) {
            Ok(n) => Ok(n),
            Err(e) => {
                log::debug!("write to a peer failed: {e}");
                self.conns.remove(&conn);
                Err(SendError::Closed)
            }
        }
    }

    fn received(&mut self, conn: ConnId) -> &[u8] {
        self.conns.get(&conn).map_or(&[][..], |c| &c.rx[..])
    }

    fn consumed(&mut self, conn: ConnId, r: Received) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.consume(r.consumed);
        }
    }

    fn pfkey_write(&mut self, msg: &[u8]) -> PfkeyWrite {
        self.pfkey.write_message(msg)
    }

    fn set_promisc(&mut self, on: bool) {
        // OpenBSD's way is the original's: a 16-byte X_PROMISC on our own
        // socket (§11.1); Linux joins or leaves the XFRM groups.
        self.promisc_seq = self.promisc_seq.wrapping_add(1);
        self.pfkey.set_promisc(on, self.promisc_seq, self.pid);
    }

    fn dump_start(&mut self, dump: DumpId, table: Table) {
        self.dumps.start(dump);
        self.to_priv(ToPriv::DumpStart {
            dump: dump.0,
            table,
        });
    }

    fn dump_next(&mut self, dump: DumpId) -> DumpRead<'_> {
        let (read, want) = self.dumps.next(dump);
        if want == Want::More {
            if let Err(e) = self.chan.queue(&ToPriv::DumpMore { dump: dump.0 }) {
                log::error!("cannot ask for the next dump batch: {e}");
            }
        }
        read
    }

    fn dump_cancel(&mut self, dump: DumpId) {
        if self.dumps.cancel(dump) {
            self.to_priv(ToPriv::DumpCancel { dump: dump.0 });
        }
    }

    fn demote(&mut self, effect: DemoteEffect) -> Option<bool> {
        if self.priv_gone {
            // Only root may touch the counter: our demotion outlives us.
            if effect == DemoteEffect::Release {
                log::error!(
                    "the privileged process is gone: our carp demotion cannot be released; the carp group stays demoted until an operator lowers the counter (see sasyncd(8))"
                );
            }
            return None;
        }
        self.to_priv(ToPriv::Demote {
            raise: effect == DemoteEffect::Raise,
        });
        None
    }

    fn ike(&mut self, request: IkeRequest) -> Option<bool> {
        self.to_priv(ToPriv::Ike {
            id: request.id,
            active: request.mode == IkeMode::Active,
        });
        None
    }

    fn recheck_carp(&mut self) -> Option<u8> {
        self.to_priv(ToPriv::LinkState);
        None
    }
}
