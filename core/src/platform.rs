//! The platform contract: what a platform does for a [`Node`], and the one
//! driver every platform moves a node's outputs with.
//!
//! # Driving a Node
//!
//! A platform (the OpenBSD daemon, the simulator, the test harness, a
//! firmware port) owns the node and the world around it: sockets, the
//! PF_KEY socket, the carp interface, the IKE daemon, the clock. It builds
//! the node with [`Node::new`] over storage of its own
//! ([`NodeStorage`](crate::node::NodeStorage): statics on firmware,
//! `tests/firmware`; the heap on a host), implements
//! [`Platform`] and runs one loop:
//!
//! 1. **Inputs.** Whatever happened is handed to the node with its
//!    `handle_*` method, with the current time: [`Node::handle_link_state`]
//!    (carp changed), [`Node::handle_pfkey`] (a message read from the PF_KEY
//!    socket), [`Node::handle_accept`] (a TCP connection came in; refused
//!    ones are closed by the platform), [`Node::handle_connected`] /
//!    [`Node::handle_connect_failed`] (a connect the node asked for ended),
//!    [`Node::handle_closed`] (the peer or the network closed it),
//!    [`Node::handle_writable`] (a connection whose last write was short can
//!    take bytes again), [`Node::handle_ike_result`],
//!    [`Node::handle_demote_result`], [`Node::handle_dump_end`] for a dump
//!    that failed, [`Node::handle_shutdown`], and [`Node::reconfigure`] for
//!    a reloaded configuration (what it reports as changed but cannot apply
//!    itself, the listen address and the demotion group, is the
//!    platform's to act on or log). Bytes read from a
//!    connection are not handed over directly: the platform keeps them in
//!    its receive buffer ([`Platform::received`]) and the driver offers them.
//! 2. **Outputs.** [`drive`] moves everything the node wants done into the
//!    platform until nothing changes, in this order, repeated while any
//!    step made progress:
//!    1. events ([`Node::poll_event`]): connect, close, promiscuous mode,
//!       IKE mode, demotion, dump start/cancel, carp re-read;
//!    2. PF_KEY writes ([`Node::poll_pfkey`]) until the socket would block;
//!    3. received bytes, offered per connection ([`Node::handle_recv`]);
//!       what the node does not take stays in the platform's buffer;
//!    4. dump records for every dump the node wants ([`Node::poll_dump`]);
//!    5. bytes to send ([`Node::poll_transmit`]) until every connection is
//!       empty or blocked.
//! 3. **Time.** The platform calls [`Node::handle_timeout`] when
//!    [`Node::poll_timeout`] is due, then [`drive`] again, and sleeps (or
//!    polls its descriptors) until the next deadline or input.
//!
//! # Who owns which buffer
//!
//! * Send buffers belong to the node ([`Node::poll_transmit`] lends them);
//!   [`Platform::send`] writes what the socket takes *now* and says how
//!   much. A short write blocks that connection until the platform reports
//!   [`Node::handle_writable`]: the node then fills the buffer again, and
//!   the master's snapshot pauses rather than queueing without bound.
//! * Receive buffers belong to the platform. The node takes what it can
//!   ([`Received::consumed`]) and pauses while its kernel queue is full or a
//!   sweep holds the stream; the platform stops reading a socket whose
//!   buffer is full, so backpressure reaches the master through TCP.
//! * The PF_KEY queue belongs to the node; a write that would block is
//!   retried at the next [`drive`]; a refused one is reported with its errno
//!   and dropped (the node counts and logs it).
//! * Dump records belong to the platform, which takes a point-in-time copy
//!   at [`Platform::dump_start`] and lends one record at a time
//!   ([`Platform::dump_next`]). A platform whose records arrive later (the
//!   daemon's privileged process) answers [`DumpRead::Pending`] and calls
//!   [`drive`] when they are there.
//!
//! # What each result means if ignored
//!
//! Ignoring [`Received::consumed`] loses or repeats peer bytes (a broken
//! stream: the session is closed as corrupt). Ignoring [`DumpFlow::Pause`]
//! overruns a full send buffer (records are skipped). Not reporting a short
//! write as short, or never calling [`Node::handle_writable`], stalls that
//! connection until keepalives declare it dead. Not reporting a connect's
//! end is survived: the node gives up on it after
//! `Settings::connect_timeout`. A PF_KEY write reported as written when it
//! was refused hides a kernel error from the counters. Not calling
//! [`drive`] after an input leaves its consequences queued in the node.
//!
//! Time comes from [`Platform::now`]; randomness was given to the node
//! when it was built ([`crate::random::Random`]).

use core::net::IpAddr;

use crate::crypto::Crypto;
use crate::node::marks::MarkStore;
use crate::node::{
    ConnId, DemoteEffect, DumpFlow, DumpId, DumpOp, Event, IkeRequest, Node, Received, Table,
};
use crate::random::Random;
use crate::time::Instant;

/// Result of a PF_KEY write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfkeyWrite {
    /// The kernel took it.
    Written,
    /// The socket cannot take it now; offer it again at the next [`drive`].
    WouldBlock,
    /// The kernel refused it with this errno.
    Failed(u32),
}

/// One step of reading a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpRead<'a> {
    /// The next record, in the kernel's dump format.
    Record(&'a [u8]),
    /// No more records; `ok` is false if the dump could not be taken.
    End {
        /// Whether the dump was complete.
        ok: bool,
    },
    /// More records will come; [`drive`] again when they are there.
    Pending,
}

/// Why a write to a connection failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is gone (reset, closed, or unknown to the platform).
    Closed,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::Closed => f.write_str("connection closed"),
        }
    }
}

impl core::error::Error for SendError {}

/// What a platform does for a node (see the module documentation for the
/// order in which [`drive`] calls these and who owns which buffer).
pub trait Platform {
    /// The current time (monotonic).
    fn now(&mut self) -> Instant;

    /// Open a TCP connection to `addr`:`port` from our configured address;
    /// report its end with [`Node::handle_connected`] or
    /// [`Node::handle_connect_failed`].
    fn connect(&mut self, conn: ConnId, addr: IpAddr, port: u16);
    /// Close a connection; the node has already forgotten it. Bytes it
    /// received and did not consume are dropped.
    fn close(&mut self, conn: ConnId);
    /// Write as much of `bytes` as the connection takes now; `Ok(n)` with
    /// `n < bytes.len()` (also 0) means it is full until writable again.
    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<usize, SendError>;
    /// Bytes received on `conn` that the node has not consumed yet.
    fn received(&mut self, conn: ConnId) -> &[u8];
    /// The node took the first `r.consumed` bytes of [`received`](Self::received).
    fn consumed(&mut self, conn: ConnId, r: Received);

    /// Write one message to the PF_KEY socket.
    fn pfkey_write(&mut self, msg: &[u8]) -> PfkeyWrite;
    /// Turn PF_KEY promiscuous mode on or off.
    fn set_promisc(&mut self, on: bool);
    /// Take a point-in-time copy of a kernel table.
    fn dump_start(&mut self, dump: DumpId, table: Table);
    /// The next record of a dump.
    fn dump_next(&mut self, dump: DumpId) -> DumpRead<'_>;
    /// Drop a dump.
    fn dump_cancel(&mut self, dump: DumpId);

    /// Change our carp group demotion. For a `Raise`, the result if known
    /// now; otherwise report it later with [`Node::handle_demote_result`].
    fn demote(&mut self, effect: DemoteEffect) -> Option<bool>;
    /// Tell the IKE daemon(s) to go active or passive: the result if known
    /// now, otherwise later with [`Node::handle_ike_result`].
    fn ike(&mut self, request: IkeRequest) -> Option<bool>;
    /// Read the carp interface's link state again: the state if known now,
    /// otherwise later with [`Node::handle_link_state`].
    fn recheck_carp(&mut self) -> Option<u8>;
}

/// [`drive`] kept finding work after this many passes: a node and a
/// platform that keep feeding each other without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Livelock;

impl core::fmt::Display for Livelock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the node and its platform did not settle (livelock)")
    }
}

impl core::error::Error for Livelock {}

/// Passes after which [`drive`] gives up. Each pass moves at least one
/// thing; a snapshot of a million SAs through a socket that takes it all
/// needs a few thousand passes, not a million.
const MAX_PASSES: usize = 1_000_000;

/// Dumps a node can want at once: one per connection and one job (a node
/// has at most 31 peers, two connections each).
const MAX_DUMPS: usize = 64;

/// Moves a node's outputs into the platform until nothing changes (see the
/// module documentation). Call it after every input and every timeout.
pub fn drive<C, R, M: MarkStore, Pl>(
    node: &mut Node<'_, C, R, M>,
    platform: &mut Pl,
) -> Result<(), Livelock>
where
    C: Crypto + Clone,
    R: Random,
    Pl: Platform + ?Sized,
{
    let now = platform.now();
    for _ in 0..MAX_PASSES {
        let mut progress = events(node, platform, now);
        while let Some(msg) = node.poll_pfkey() {
            match platform.pfkey_write(msg) {
                PfkeyWrite::Written => node.handle_pfkey_written(now),
                PfkeyWrite::Failed(errno) => node.handle_pfkey_write_failed(now, errno),
                PfkeyWrite::WouldBlock => break,
            }
            progress = true;
        }
        for slot in 0..node.connection_slots() {
            let Some(conn) = node.connection_in_slot(slot) else {
                continue;
            };
            let data = platform.received(conn);
            if data.is_empty() {
                continue;
            }
            let r = node.handle_recv(now, conn, data);
            if r.consumed > 0 {
                progress = true;
                platform.consumed(conn, r);
            }
        }
        let mut pending: heapless::Vec<DumpId, MAX_DUMPS> = heapless::Vec::new();
        loop {
            // A dump is started (an event) before its first record is
            // asked for; the end of one table starts the next.
            progress |= events(node, platform, now);
            let Some(dump) = node.poll_dump(&pending) else {
                break;
            };
            match platform.dump_next(dump) {
                DumpRead::Record(rec) => {
                    progress = true;
                    // A pause takes the dump out of `poll_dump` until its
                    // consumer has room again.
                    let _flow: DumpFlow = node.handle_dump_entry(now, dump, rec);
                }
                DumpRead::End { ok } => {
                    progress = true;
                    node.handle_dump_end(now, dump, ok);
                }
                DumpRead::Pending => {
                    if pending.push(dump).is_err() {
                        break;
                    }
                }
            }
        }
        while let Some((conn, bytes)) = node.poll_transmit(now) {
            match platform.send(conn, bytes) {
                Ok(n) => {
                    node.handle_sent(now, conn, n);
                    progress |= n > 0;
                }
                Err(SendError::Closed) => {
                    node.handle_closed(now, conn);
                    platform.close(conn);
                    progress = true;
                }
            }
        }
        if !progress {
            return Ok(());
        }
    }
    Err(Livelock)
}

/// Carries out every event the node has queued; whether there was one.
fn events<C, R, M: MarkStore, Pl>(
    node: &mut Node<'_, C, R, M>,
    platform: &mut Pl,
    now: Instant,
) -> bool
where
    C: Crypto + Clone,
    R: Random,
    Pl: Platform + ?Sized,
{
    let mut any = false;
    while let Some(e) = node.poll_event() {
        any = true;
        dispatch(node, platform, now, e);
    }
    any
}

fn dispatch<C, R, M: MarkStore, Pl>(
    node: &mut Node<'_, C, R, M>,
    platform: &mut Pl,
    now: Instant,
    e: Event,
) where
    C: Crypto + Clone,
    R: Random,
    Pl: Platform + ?Sized,
{
    match e {
        Event::Connect { conn, addr, port } => platform.connect(conn, addr, port),
        Event::Close { conn } => platform.close(conn),
        Event::Promisc(on) => platform.set_promisc(on),
        Event::Ike(r) => {
            if let Some(ok) = platform.ike(r) {
                node.handle_ike_result(now, r.id, ok);
            }
        }
        Event::Demote(effect) => {
            if let Some(ok) = platform.demote(effect) {
                if effect == DemoteEffect::Raise {
                    node.handle_demote_result(now, ok);
                }
            }
        }
        Event::Dump { dump, op } => match op {
            DumpOp::Start(table) => platform.dump_start(dump, table),
            DumpOp::Cancel => platform.dump_cancel(dump),
        },
        Event::RecheckCarp => {
            if let Some(ls) = platform.recheck_carp() {
                node.handle_link_state(now, ls);
            }
        }
    }
}
