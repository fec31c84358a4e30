//! The platform contract: what a platform does for a [`Node`], and the one
//! runtime every platform runs a node with.
//!
//! # Running a Node
//!
//! A platform (the OpenBSD daemon, the simulator, the in-memory world of
//! the tests and benches, a firmware port) owns the node and the world
//! around it: sockets, the PF_KEY socket, the carp interface, the IKE
//! daemon, the clock. It builds the node with [`Node::new`] over storage
//! of its own ([`NodeStorage`](crate::node::NodeStorage): statics on
//! firmware, `tests/firmware`; the heap on a host), implements
//! [`Platform`] and runs one loop, as smoltcp's `poll`/`poll_at`:
//!
//! ```text
//! loop {
//!     let next = drive(&mut node, &mut platform)?;   // timers, inputs, outputs
//!     platform waits for input or until `next`        // poll(2), a simulated clock
//! }
//! ```
//!
//! [`drive`] is the whole runtime. Each call:
//!
//! 1. **Time.** Reads [`Platform::now`] once and, if the node's deadline
//!    ([`Node::poll_timeout`]) is due, calls [`Node::handle_timeout`]. The
//!    timer fires before the inputs of this call: its deadline passed
//!    before the platform noticed them. It fires once a call: a deadline
//!    the node sets to "now" while handling inputs is returned, not
//!    chased, so the platform sees it and calls `drive` again.
//! 2. **Inputs.** Takes everything that happened from
//!    [`Platform::poll_input`] until it answers `None`, each handed to the
//!    node's `handle_*` method ([`Input`] lists them: a PF_KEY message, a
//!    carp link state, a TCP connection accepted, connected, failed,
//!    closed or writable again, an IKE or demotion result, a shutdown).
//!    The node's answer to an [`Input::Accept`] goes back through
//!    [`Platform::accepted`]. Bytes read from a connection are not inputs:
//!    the platform keeps them in its receive buffer
//!    ([`Platform::received`]) and the driver offers them (step 3).
//! 3. **Outputs.** Moves everything the node wants done into the platform,
//!    in this order:
//!    1. events ([`Node::poll_event`]): connect, close, promiscuous mode,
//!       IKE mode, demotion, dump start/cancel, carp re-read;
//!    2. PF_KEY writes ([`Node::poll_pfkey`]) until the socket would block;
//!    3. received bytes, offered per connection ([`Node::handle_recv`]);
//!       what the node does not take stays in the platform's buffer;
//!    4. dump records for every dump the node wants ([`Node::poll_dump`]);
//!    5. bytes to send ([`Node::poll_transmit`]) until every connection is
//!       empty or blocked.
//!
//!    Steps 2 and 3 repeat while anything moved, so an input a platform
//!    call produced (a connect that failed at once, a peer that answered
//!    in memory) is handed over in the same call.
//! 4. **Next deadline.** Returns [`Node::poll_timeout`]: the platform calls
//!    `drive` again by then, or at its next input, whichever is first.
//!
//! Operator requests that answer the operator
//! ([`Node::reconfigure`]: what it reports as changed but cannot apply
//! itself, the listen address and the demotion group, is the platform's to
//! act on or log; [`Node::request_resync`]; the status queries) are called
//! directly, each followed by [`drive`].
//!
//! # Who owns which buffer
//!
//! * Send buffers belong to the node ([`Node::poll_transmit`] lends them);
//!   [`Platform::send`] writes what the socket takes *now* and says how
//!   much. A short write blocks that connection until the platform hands
//!   over [`Input::Writable`]: the node then fills the buffer again, and
//!   the master's snapshot pauses rather than queueing without bound.
//! * Receive buffers belong to the platform. The node takes what it can
//!   ([`Received::consumed`]) and pauses while its kernel queue is full or a
//!   sweep holds the stream; the platform stops reading a socket whose
//!   buffer is full, so backpressure reaches the master through TCP.
//! * Pending inputs belong to the platform, in the order they happened; a
//!   borrowed [`Input::Pfkey`] message needs to live only until the next
//!   call of [`Platform::poll_input`].
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
//! write as short, or never handing over [`Input::Writable`], stalls that
//! connection until keepalives declare it dead. Not reporting a connect's
//! end is survived: the node gives up on it after
//! `Settings::connect_timeout`. A PF_KEY write reported as written when it
//! was refused hides a kernel error from the counters. Ignoring the
//! deadline [`drive`] returns stops retries, keepalives, digests and the
//! demotion's time limit. Ignoring [`Platform::accepted`] leaves the
//! platform holding a connection the node refused (or losing one it took).
//!
//! Time comes from [`Platform::now`]; randomness was given to the node
//! when it was built ([`crate::random::Random`]).

use core::net::IpAddr;

use crate::crypto::Crypto;
use crate::dialect::Dialect;
use crate::node::marks::MarkStore;
use crate::node::{
    ConnId, DemoteEffect, DumpFlow, DumpId, DumpOp, Event, IkeRequest, Node, Received, Rejected,
    Table,
};
use crate::random::Random;
use crate::time::Instant;

/// Something that happened, which a platform hands its node through
/// [`Platform::poll_input`] (in the order it happened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A message read from the PF_KEY socket.
    Pfkey(&'a [u8]),
    /// The carp interface's link state (`LINK_STATE_*`): it changed, or was
    /// read again ([`Platform::recheck_carp`] answering later).
    LinkState(u8),
    /// The carp interface could not be read.
    CarpUnreadable,
    /// A TCP connection from `peer` came in; the node's answer goes to
    /// [`Platform::accepted`] (a refused one is the platform's to close).
    Accept {
        /// The remote address.
        peer: IpAddr,
    },
    /// A connect the node asked for ([`Platform::connect`]) succeeded.
    Connected(ConnId),
    /// A connect the node asked for failed.
    ConnectFailed(ConnId),
    /// The peer or the network closed the connection.
    Closed(ConnId),
    /// A connection whose last write was short can take bytes again.
    Writable(ConnId),
    /// The IKE daemon answered a request ([`Platform::ike`] answering
    /// later).
    IkeResult {
        /// The request's id ([`IkeRequest::id`]).
        id: u32,
        /// Whether it was carried out.
        ok: bool,
    },
    /// Whether raising the demotion worked ([`Platform::demote`] answering
    /// later).
    DemoteResult(bool),
    /// Shut down in order: release the demotion, flush, close.
    Shutdown,
}

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

    /// The next thing that happened, oldest first; `None` when there is
    /// nothing (more) now. The message of an [`Input::Pfkey`] needs to
    /// stay valid only until the next call.
    fn poll_input(&mut self) -> Option<Input<'_>>;
    /// The node's answer to the [`Input::Accept`] just handed over: the
    /// connection's id, or why it refused it (close it then).
    fn accepted(&mut self, conn: Result<ConnId, Rejected>);

    /// Open a TCP connection to `addr`:`port` from our configured address;
    /// report its end with [`Input::Connected`] or [`Input::ConnectFailed`].
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
    /// now; otherwise report it later with [`Input::DemoteResult`].
    fn demote(&mut self, effect: DemoteEffect) -> Option<bool>;
    /// Tell the IKE daemon(s) to go active or passive: the result if known
    /// now, otherwise later with [`Input::IkeResult`].
    fn ike(&mut self, request: IkeRequest) -> Option<bool>;
    /// Read the carp interface's link state again: the state if known now,
    /// otherwise later with [`Input::LinkState`] (or
    /// [`Input::CarpUnreadable`]).
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

/// Runs a node on its platform: fires its timer if due, hands it every
/// pending input, moves its outputs into the platform until nothing
/// changes, and returns when to call again at the latest (see the module
/// documentation). Call it after every input, and by the deadline it
/// returns.
pub fn drive<C, R, M: MarkStore, D: Dialect, Pl>(
    node: &mut Node<'_, C, R, M, D>,
    platform: &mut Pl,
) -> Result<Option<Instant>, Livelock>
where
    C: Crypto + Clone,
    R: Random,
    Pl: Platform + ?Sized,
{
    let now = platform.now();
    if node.poll_timeout().is_some_and(|t| t <= now) {
        node.handle_timeout(now);
    }
    for _ in 0..MAX_PASSES {
        let mut progress = false;
        while let Some(input) = platform.poll_input() {
            progress = true;
            match input {
                Input::Pfkey(msg) => node.handle_pfkey(now, msg),
                Input::LinkState(ls) => node.handle_link_state(now, ls),
                Input::CarpUnreadable => node.handle_carp_unreadable(now),
                Input::Accept { peer } => {
                    let r = node.handle_accept(now, peer);
                    platform.accepted(r);
                }
                Input::Connected(c) => node.handle_connected(now, c),
                Input::ConnectFailed(c) => node.handle_connect_failed(now, c),
                Input::Closed(c) => node.handle_closed(now, c),
                Input::Writable(c) => node.handle_writable(now, c),
                Input::IkeResult { id, ok } => node.handle_ike_result(now, id, ok),
                Input::DemoteResult(ok) => node.handle_demote_result(now, ok),
                Input::Shutdown => node.handle_shutdown(now),
            }
        }
        progress |= events(node, platform, now);
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
            return Ok(node.poll_timeout());
        }
    }
    Err(Livelock)
}

/// Carries out every event the node has queued; whether there was one.
fn events<C, R, M: MarkStore, D: Dialect, Pl>(
    node: &mut Node<'_, C, R, M, D>,
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

fn dispatch<C, R, M: MarkStore, D: Dialect, Pl>(
    node: &mut Node<'_, C, R, M, D>,
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
