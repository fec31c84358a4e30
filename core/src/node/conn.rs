//! One TCP connection to a peer: its handshake phase, framing in both
//! directions, and what the master is feeding it.

use crate::crypto::Crypto;
use crate::ctl::{Ctl, MAX_LEN as CTL_MAX};
use crate::random::Random;
use crate::state::Position;
use crate::time::Instant;
use crate::wire::legacy::{
    Legacy, LegacyCodec, LegacyError, MsgType, MAX_FRAME as LEGACY_MAX_FRAME,
};
use crate::wire::stream::DeframeState;
use crate::wire::v2::{
    Hello, Kind, Session, Side, V2Error, CONFIRM_LEN, HELLO_LEN, MAX_FRAME as V2_MAX_FRAME,
    SEALED_OVERHEAD, V2,
};

use super::event::{ConnId, DumpId, Table};
use super::peer_stats::ErrorKind;
use super::peer_table::PeerIndex;
use super::recv::{Fatal, Step};
use super::ring::Cursor;
use super::storage::ManagedSlice;
use super::storage::{StorageError, RX_BYTES};
use super::txbuf::TxBuf;
use super::wipe::wipe;
use crate::ctl::BucketSet;
use core::time::Duration;

/// Default outgoing buffer per connection: room for a few maximal frames.
pub const TX_BYTES: usize = 16 * 1024;
/// The smallest outgoing buffer that lets a feed make progress: one
/// maximal frame plus the room kept for control messages.
pub const MIN_TX_BYTES: usize = MAX_FRAME + CTL_RESERVE;
/// Space the feed leaves free for control messages, so that a state change
/// can always be announced even while a snapshot fills the buffer.
pub(super) const CTL_RESERVE: usize = 1024;
/// Largest frame any protocol sends (legacy: 48 + 4096; v2: 48 + 4096).
pub(super) const MAX_FRAME: usize = 4144;

/// Receive side: the frame being reassembled, and how the protocol cuts
/// frames. The buffer stays in place whatever the protocol (a reload may
/// change it): only the small state is replaced.
struct Rx<'a> {
    buf: ManagedSlice<'a, u8>,
    mode: RxMode,
}

/// How frames are cut, per protocol.
enum RxMode {
    Legacy(DeframeState<Legacy>),
    V2(DeframeState<V2>),
}

/// The receive buffer: the longest frame of either protocol.
pub(super) const RX_FRAME: usize = if LEGACY_MAX_FRAME > V2_MAX_FRAME {
    LEGACY_MAX_FRAME
} else {
    V2_MAX_FRAME
};

impl Rx<'_> {
    /// Ready for a new connection. The buffer needs no wiping here: a
    /// slot's is wiped when its connection closes ([`ConnSlot::close`]).
    fn reset(&mut self, legacy: bool) {
        self.mode = if legacy {
            RxMode::Legacy(DeframeState::new())
        } else {
            RxMode::V2(DeframeState::new())
        };
    }
}

/// Where a connection is in its life.
enum Phase<C: Crypto> {
    /// We asked the platform to connect.
    Connecting,
    /// Legacy protocol: frames flow from the start.
    Legacy,
    /// v2: our HELLO is sent; waiting for the peer's.
    Hello(Hello),
    /// v2: both HELLOs seen, our CONFIRM sent; `open` once the peer's
    /// CONFIRM checked (authenticated). One variant for both, so that
    /// opening does not move the session (a kilobyte) between variants.
    Keyed {
        session: Session<C>,
        peer: Hello,
        open: bool,
    },
}

/// What the master is sending this peer besides control messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feed {
    /// Nothing (we are not master, or the peer is not a slave).
    Idle,
    /// A full snapshot streams from a kernel dump; afterwards the deltas
    /// after `start` follow from the ring.
    Snapshot {
        dump: DumpId,
        table: Table,
        start: Position,
        /// The dump is paused waiting for buffer room.
        paused: bool,
        /// `Some`: a repair sends only the entries of these buckets.
        buckets: Option<BucketSet>,
    },
    /// Ring records after the cursor are sent as buffer room allows.
    Stream { cursor: Cursor },
}

/// What a v2 frame did to a connection's handshake or session.
enum V2Step {
    /// A message of `len` bytes is in the caller's buffer.
    Msg(Kind, usize),
    /// The peer's HELLO arrived and our CONFIRM is queued.
    Hello,
    /// The peer's CONFIRM checked out: the session is authenticated.
    Confirmed(Hello),
    /// The connection must be closed.
    Fatal(V2Error),
    /// Our CONFIRM could not be queued.
    Queue,
}

impl<C: Crypto + Clone> Phase<C> {
    /// One v2 frame: the peer's HELLO keys the session, its CONFIRM
    /// opens it, and then frames are opened into `buf`. `tx` takes our
    /// CONFIRM; `outbound` says which side of the handshake we are.
    fn handle_v2_frame(
        &mut self,
        tx: &mut TxBuf<'_>,
        outbound: bool,
        crypto: &C,
        key: &[u8],
        frame: &mut [u8],
        buf: &mut [u8],
    ) -> V2Step {
        match self {
            // The hot path first: nothing moves.
            Phase::Keyed {
                session,
                open: true,
                ..
            } => match session.open(frame) {
                Ok((kind, pt)) => {
                    let n = pt.len().min(buf.len());
                    buf[..n].copy_from_slice(&pt[..n]);
                    V2Step::Msg(kind, n)
                }
                Err(e) => V2Step::Fatal(e),
            },
            Phase::Keyed {
                session,
                peer,
                open,
            } => match session.check_confirm(frame) {
                Ok(()) => {
                    *open = true;
                    V2Step::Confirmed(*peer)
                }
                Err(e) => V2Step::Fatal(e),
            },
            Phase::Hello(local) => {
                let local = *local;
                key_session((tx, self, outbound), crypto, key, local, frame)
            }
            _ => V2Step::Fatal(V2Error::HandshakeOrder),
        }
    }
}

/// The peer's HELLO arrived on a connection (its send buffer, phase and
/// direction; ours was `local`): derive the session
/// keys, queue our CONFIRM, and wait for the peer's. Kept out of
/// `handle_recv` (never inlined): building a session takes a few
/// kilobytes of stack, needed once per connection, not per frame.
#[inline(never)]
fn key_session<C: Crypto + Clone>(
    (tx, phase, outbound): (&mut TxBuf<'_>, &mut Phase<C>, bool),
    crypto: &C,
    key: &[u8],
    local: Hello,
    frame: &[u8],
) -> V2Step {
    let peer = match Hello::decode(frame) {
        Ok(h) => h,
        Err(e) => return V2Step::Fatal(e),
    };
    let side = if outbound {
        Side::Initiator
    } else {
        Side::Responder
    };
    // The session is built into the phase, then sends its CONFIRM from
    // there (no copy of it through the stack).
    *phase = Phase::Keyed {
        session: match Session::new(crypto.clone(), key, side, &local, &peer) {
            Ok(x) => x,
            Err(e) => return V2Step::Fatal(e),
        },
        peer,
        open: false,
    };
    let Phase::Keyed { session, .. } = phase else {
        return V2Step::Queue;
    };
    let queued = tx.append_with(CONFIRM_LEN, |out| session.confirm(out));
    if !matches!(queued, Some(Ok(_))) {
        return V2Step::Queue;
    }
    V2Step::Hello
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendError {
    /// The peer is not reading: the buffer is full.
    NoRoom,
    /// The session cannot send yet (handshake not complete).
    NotOpen,
    /// Legacy encoding refused the payload.
    Legacy(LegacyError),
    /// v2 sealing refused the payload.
    V2(V2Error),
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::NoRoom => f.write_str("send buffer full: peer is not reading"),
            SendError::NotOpen => f.write_str("session not open"),
            SendError::Legacy(e) => write!(f, "{e}"),
            SendError::V2(e) => write!(f, "{e}"),
        }
    }
}

/// A connection's place in the node. Its memory stays where it is for the
/// node's life (a connection is kilobytes: firmware cannot build one on
/// the stack and move it in); `live` says whether it holds a connection.
/// The `Option`-like methods keep the node's code as it was with
/// `Option<Conn>`.
pub struct ConnSlot<'a, C: Crypto> {
    pub(super) live: bool,
    pub(super) conn: Conn<'a, C>,
}

impl<'a, C: Crypto> ConnSlot<'a, C> {
    /// An unused slot over the platform's send buffer (at least
    /// [`MIN_TX_BYTES`]) and receive buffer (at least
    /// [`RX_BYTES`](super::RX_BYTES)).
    pub fn new(tx: impl Into<ManagedSlice<'a, u8>>, rx: impl Into<ManagedSlice<'a, u8>>) -> Self {
        let (tx, rx) = (tx.into(), rx.into());
        ConnSlot {
            live: false,
            conn: Conn {
                id: ConnId(0),
                peer: PeerIndex(0),
                outbound: false,
                opened: Instant::ZERO,
                phase: Phase::Connecting,
                rx: Rx {
                    buf: rx,
                    mode: RxMode::V2(DeframeState::new()),
                },
                tx: TxBuf::new(tx),
                up: false,
                feed: Feed::Idle,
                pending_digest: None,
                paused: false,
                acked: Position::NONE,
                acked_at: Instant::ZERO,
                refused: false,
                alias: false,
                refused_logged: false,
                feed_at: None,
                blocked: false,
                last_rx: Instant::ZERO,
                last_tx: Instant::ZERO,
                bad_frames: 0,
            },
        }
    }

    /// The connection, if the slot holds one.
    pub(super) fn as_ref(&self) -> Option<&Conn<'a, C>> {
        self.live.then_some(&self.conn)
    }

    /// The connection, if the slot holds one.
    pub(super) fn as_mut(&mut self) -> Option<&mut Conn<'a, C>> {
        if self.live {
            Some(&mut self.conn)
        } else {
            None
        }
    }

    /// A new connection in this (unused) slot, in phase `Connecting`.
    pub(super) fn open(
        &mut self,
        id: ConnId,
        peer: PeerIndex,
        outbound: bool,
        legacy: bool,
        now: Instant,
    ) -> &mut Conn<'a, C> {
        debug_assert!(!self.live, "opening a connection over a live one");
        self.conn.reset(id, peer, outbound, legacy, now);
        self.live = true;
        &mut self.conn
    }

    /// The slot no longer holds a connection. Its session keys (dropping
    /// the session) and the last frame it decrypted (PF_KEY messages carry
    /// SA keys) are wiped now, not when the slot is reused.
    pub(super) fn close(&mut self) {
        self.live = false;
        self.conn.phase = Phase::Connecting;
        zeroize::Zeroize::zeroize(&mut self.conn.rx.buf[..]);
    }
}

impl<C: Crypto> core::fmt::Debug for ConnSlot<'_, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConnSlot")
            .field("tx", &self.conn.tx.capacity())
            .field("rx", &self.conn.rx.buf.len())
            .finish()
    }
}

impl<'r, 'a, C: Crypto> IntoIterator for &'r ConnSlot<'a, C> {
    type Item = &'r Conn<'a, C>;
    type IntoIter = core::option::IntoIter<&'r Conn<'a, C>>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_ref().into_iter()
    }
}

impl<'r, 'a, C: Crypto> IntoIterator for &'r mut ConnSlot<'a, C> {
    type Item = &'r mut Conn<'a, C>;
    type IntoIter = core::option::IntoIter<&'r mut Conn<'a, C>>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_mut().into_iter()
    }
}

/// A connection and everything that belongs to it alone.
#[allow(missing_debug_implementations)] // holds session keys
pub struct Conn<'a, C: Crypto> {
    id: ConnId,
    peer: PeerIndex,
    outbound: bool,
    opened: Instant,
    phase: Phase<C>,
    rx: Rx<'a>,
    tx: TxBuf<'a>,
    /// The session is registered in the peer table.
    up: bool,
    feed: Feed,
    /// The position of the announced digest to send (with its bucket
    /// sums) when the stream reaches it.
    pending_digest: Option<Position>,
    /// Slave side: reading is paused (kernel queue full, sweep, digest).
    paused: bool,
    /// Slave side: the last position acknowledged to the master, and when.
    acked: Position,
    acked_at: Instant,
    /// Legacy slave: we refused this master's data (we followed another).
    refused: bool,
    /// Legacy crossed start: a second connection with the peer that we
    /// only read (what arrives on it counts as the peer's current
    /// session's); nothing is sent on it.
    alias: bool,
    /// We logged a refusal of this peer's PF_KEY data (once is enough).
    refused_logged: bool,
    /// Legacy master: when the snapshot timer of this session fires.
    feed_at: Option<Instant>,
    /// The platform's last write was short: nothing more is offered until
    /// `handle_writable`.
    blocked: bool,
    /// When bytes last arrived / were last written (v2 keepalive).
    last_rx: Instant,
    last_tx: Instant,
    /// Legacy: bad frames since the last authentic one.
    bad_frames: u8,
}

impl<C: Crypto> Conn<'_, C> {
    /// Makes this a new connection, field by field (every field is named:
    /// one added to `Conn` does not compile until it is reset here).
    fn reset(&mut self, id: ConnId, peer: PeerIndex, outbound: bool, legacy: bool, now: Instant) {
        let Conn {
            id: c_id,
            peer: c_peer,
            outbound: c_outbound,
            opened,
            phase,
            rx,
            tx,
            up,
            feed,
            pending_digest,
            paused,
            acked,
            acked_at,
            refused,
            alias,
            refused_logged,
            feed_at,
            blocked,
            last_rx,
            last_tx,
            bad_frames,
        } = self;
        *c_id = id;
        *c_peer = peer;
        *c_outbound = outbound;
        *opened = now;
        *phase = Phase::Connecting;
        rx.reset(legacy);
        tx.clear();
        *up = false;
        *feed = Feed::Idle;
        *pending_digest = None;
        *paused = false;
        *acked = Position::NONE;
        *acked_at = now;
        *refused = false;
        *alias = false;
        *refused_logged = false;
        *feed_at = None;
        *blocked = false;
        *last_rx = now;
        *last_tx = now;
        *bad_frames = 0;
    }

    /// This connection's id.
    pub(super) fn id(&self) -> ConnId {
        self.id
    }

    /// The peer this connection belongs to.
    pub(super) fn peer(&self) -> PeerIndex {
        self.peer
    }

    /// The peer table was rebuilt (a reload): the connection now belongs
    /// to the peer at index `peer`.
    pub(super) fn moved_to(&mut self, peer: PeerIndex) {
        self.peer = peer;
    }

    /// We dialled it.
    pub(super) fn outbound(&self) -> bool {
        self.outbound
    }

    /// When it opened (for an outbound one: when the connect completed).
    pub(super) fn opened(&self) -> Instant {
        self.opened
    }

    /// The outbound connect completed at `now`: handshake deadlines (and
    /// the legacy feed delay) count from here. A legacy connection is
    /// open at once; a v2 one sends its HELLO next.
    pub(super) fn connected(&mut self, now: Instant, legacy: bool) {
        self.opened = now;
        if legacy {
            self.phase = Phase::Legacy;
        }
    }

    /// An accepted legacy connection: frames flow from the start (it is
    /// registered only once one is authentic).
    pub(super) fn accepted_legacy(&mut self) {
        self.phase = Phase::Legacy;
    }

    /// Queues our v2 HELLO; the connection waits for the peer's either
    /// way. Returns whether it was queued (if not, the caller closes).
    pub(super) fn send_hello(&mut self, hello: Hello) -> bool {
        let ok = matches!(
            self.tx.append_with(HELLO_LEN, |out| hello.encode(out)),
            Some(Ok(_))
        );
        self.hello_sent(hello);
        ok
    }

    /// Our v2 HELLO is queued (or failed to be; the caller closes then).
    fn hello_sent(&mut self, hello: Hello) {
        self.phase = Phase::Hello(hello);
    }

    /// The platform has not reported the end of our connect yet.
    pub(super) fn connecting(&self) -> bool {
        matches!(self.phase, Phase::Connecting)
    }

    /// A v2 handshake is under way (HELLO sent, or keyed but unconfirmed).
    pub(super) fn handshaking(&self) -> bool {
        matches!(
            self.phase,
            Phase::Hello(_) | Phase::Keyed { open: false, .. }
        )
    }

    /// How long this connection may take to open, and what to log when
    /// it does not: a connect, a v2 handshake, or a legacy connection
    /// from a peer's address that never delivered an authentic frame.
    /// `None` once it is open.
    pub(super) fn open_limit(
        &self,
        connect: Duration,
        handshake: Duration,
    ) -> Option<(Duration, &'static str)> {
        match self.phase {
            Phase::Connecting => Some((connect, "connect timed out")),
            Phase::Hello(_) | Phase::Keyed { open: false, .. } => {
                Some((handshake, "handshake timed out"))
            }
            Phase::Legacy if !self.outbound && !self.up && !self.alias => {
                Some((handshake, "handshake timed out"))
            }
            _ => None,
        }
    }

    /// Nothing waits in the send buffer.
    pub(super) fn all_sent(&self) -> bool {
        self.tx.is_empty()
    }

    /// The bytes waiting in the send buffer.
    pub(super) fn unsent(&self) -> &[u8] {
        self.tx.pending()
    }

    /// Free room in the send buffer.
    pub(super) fn room(&self) -> usize {
        self.tx.room()
    }

    /// Whether the caller's buffers are large enough for any frame.
    pub(super) fn check_buffers(&self) -> Result<(), StorageError> {
        if self.tx.capacity() < MIN_TX_BYTES {
            return Err(StorageError::SendBuffer);
        }
        if self.rx.buf.len() < RX_BYTES {
            return Err(StorageError::ReceiveBuffer);
        }
        Ok(())
    }

    /// Reads at most one frame from `input` and opens it: a message's
    /// payload goes to `buf` (the receive buffer's copy is wiped).
    #[inline(never)]
    pub(super) fn read_frame(
        &mut self,
        codec: &LegacyCodec<C>,
        crypto: &C,
        key: &[u8],
        input: &mut &[u8],
        buf: &mut [u8],
    ) -> Step
    where
        C: Clone,
    {
        let Rx { buf: rxbuf, mode } = &mut self.rx;
        match mode {
            RxMode::Legacy(d) => {
                let frame = match d.next_frame(&mut rxbuf[..LEGACY_MAX_FRAME], input) {
                    Ok(Some(f)) => f,
                    Ok(None) => return Step::NeedMore,
                    Err(e) => {
                        // A v2 HELLO read as a legacy header is a length
                        // out of range: say what the peer is instead.
                        if rxbuf.starts_with(&crate::wire::v2::MAGIC) {
                            return Step::Fatal(Fatal::V2Peer);
                        }
                        return Step::Fatal(Fatal::Legacy(e));
                    }
                };
                let flen = frame.len();
                match codec.decode(frame) {
                    Ok((ty, pt)) => {
                        let n = pt.len().min(buf.len());
                        buf[..n].copy_from_slice(&pt[..n]);
                        // The plaintext's one copy is `buf`, wiped after use.
                        wipe(&mut rxbuf[..flen]);
                        let kind = match ty {
                            MsgType::Ctl => Kind::Ctl,
                            MsgType::PfkeyData => Kind::Pfkey,
                        };
                        Step::Msg(kind, n)
                    }
                    Err(LegacyError::HashMismatch) => {
                        Step::Dropped("bad message (typo in shared key?)", ErrorKind::Auth)
                    }
                    Err(LegacyError::TooLong) => {
                        Step::Dropped("legacy message too long", ErrorKind::Oversize)
                    }
                    Err(_) => Step::Dropped("malformed legacy frame", ErrorKind::Malformed),
                }
            }
            RxMode::V2(d) => {
                let frame = match d.next_frame(&mut rxbuf[..MAX_FRAME], input) {
                    Ok(Some(f)) => f,
                    Ok(None) => return Step::NeedMore,
                    Err(e) => return Step::Fatal(Fatal::V2(e)),
                };
                let flen = frame.len();
                match self.phase.handle_v2_frame(
                    &mut self.tx,
                    self.outbound,
                    crypto,
                    key,
                    frame,
                    buf,
                ) {
                    V2Step::Msg(kind, n) => {
                        wipe(&mut rxbuf[..flen]);
                        Step::Msg(kind, n)
                    }
                    V2Step::Hello => Step::Hello,
                    V2Step::Confirmed(peer) => Step::Confirmed(peer),
                    V2Step::Fatal(e) => Step::Fatal(Fatal::V2(e)),
                    V2Step::Queue => Step::Fatal(Fatal::Queue),
                }
            }
        }
    }

    /// The session is registered in the peer table.
    pub(super) fn up(&self) -> bool {
        self.up
    }

    /// The peer table accepted this session as the peer's current one.
    pub(super) fn session_up(&mut self) {
        self.up = true;
    }

    /// Legacy crossed start: a second connection that we only read.
    pub(super) fn alias(&self) -> bool {
        self.alias
    }

    /// Legacy crossed start: this connection is only read from now on.
    pub(super) fn become_alias(&mut self) {
        self.alias = true;
    }

    /// Legacy crossed start: this was the peer's session, and another one
    /// takes its place; it is only read from now on, and feeds nothing.
    /// Returns the dump of a snapshot it was being fed, to cancel.
    pub(super) fn demote_to_alias(&mut self) -> Option<DumpId> {
        self.alias = true;
        self.up = false;
        self.stop_feed()
    }

    /// Legacy slave: we refused this master's data.
    pub(super) fn refused(&self) -> bool {
        self.refused
    }

    /// Legacy slave: we follow another master, so this one's data is
    /// refused (and the connection is dropped if it becomes ours).
    pub(super) fn refuse(&mut self) {
        self.refused = true;
    }

    /// Whether a refusal of this peer's PF_KEY data is the first on this
    /// connection (and so is logged); later ones are only counted.
    pub(super) fn first_refusal(&mut self) -> bool {
        !core::mem::replace(&mut self.refused_logged, true)
    }

    /// Slave side: reading is paused.
    pub(super) fn paused(&self) -> bool {
        self.paused
    }

    /// Slave side: stop reading (kernel queue full, sweep, digest).
    pub(super) fn pause_reading(&mut self) {
        self.paused = true;
    }

    /// Slave side: read again.
    pub(super) fn resume_reading(&mut self) {
        self.paused = false;
    }

    /// Slave side: the last position acknowledged to the master.
    pub(super) fn acked(&self) -> Position {
        self.acked
    }

    /// Slave side: when the last acknowledgement was sent.
    pub(super) fn acked_at(&self) -> Instant {
        self.acked_at
    }

    /// Slave side: we acknowledge `pos` to the master at `now`.
    pub(super) fn ack_sent(&mut self, pos: Position, now: Instant) {
        self.acked = pos;
        self.acked_at = now;
    }

    /// When an authentic frame last arrived.
    pub(super) fn last_rx(&self) -> Instant {
        self.last_rx
    }

    /// When bytes were last written (or a keepalive queued).
    pub(super) fn last_tx(&self) -> Instant {
        self.last_tx
    }

    /// A whole, authentic frame arrived: the peer is alive, and the run
    /// of bad frames is over.
    pub(super) fn frame_arrived(&mut self, now: Instant) {
        self.last_rx = now;
        self.bad_frames = 0;
    }

    /// A frame was dropped: returns how many in a row since the last
    /// authentic one.
    pub(super) fn bad_frame(&mut self) -> u8 {
        self.bad_frames = self.bad_frames.saturating_add(1);
        self.bad_frames
    }

    /// A keepalive is being queued at `now`: the connection is not quiet.
    pub(super) fn keepalive_queued(&mut self, now: Instant) {
        self.last_tx = now;
    }

    /// The platform's last write was short: nothing more is offered until
    /// [`writable`](Self::writable).
    pub(super) fn blocked(&self) -> bool {
        self.blocked
    }

    /// The platform wrote `n` of the offered bytes at `now`. Returns
    /// whether the send buffer is now empty.
    pub(super) fn wrote(&mut self, n: usize, now: Instant) -> bool {
        let offered = self.tx.len();
        self.tx.consume(n);
        self.blocked = n < offered;
        if n > 0 {
            self.last_tx = now;
        }
        self.tx.is_empty()
    }

    /// The platform can take bytes again.
    pub(super) fn writable(&mut self) {
        self.blocked = false;
    }

    /// What the master is feeding this peer.
    pub(super) fn feed(&self) -> Feed {
        self.feed
    }

    /// Legacy master: when this session's feed is due to start.
    pub(super) fn feed_at(&self) -> Option<Instant> {
        self.feed_at
    }

    /// Legacy master: the feed starts at `due` (a crossed start settles
    /// first).
    pub(super) fn delay_feed(&mut self, due: Instant) {
        self.feed_at = Some(due);
    }

    /// Legacy master: whether the delayed feed is due at `now` (then it
    /// is no longer delayed).
    pub(super) fn take_feed_due(&mut self, now: Instant) -> bool {
        let due = self.feed_at.is_some_and(|t| t <= now);
        if due {
            self.feed_at = None;
        }
        due
    }

    /// Ring records after `cursor` are sent next (a resume, the end of a
    /// snapshot, or records sent up to it).
    pub(super) fn stream_from(&mut self, cursor: Cursor) {
        self.feed = Feed::Stream { cursor };
    }

    /// A snapshot begins (from dump `dump`, the SADB first); the stream
    /// continues after `start`. A digest queued for the old stream is
    /// moot: the snapshot brings the slave to a new position.
    pub(super) fn begin_snapshot(
        &mut self,
        dump: DumpId,
        start: Position,
        buckets: Option<BucketSet>,
    ) {
        self.feed = Feed::Snapshot {
            dump,
            table: Table::Sadb,
            start,
            paused: false,
            buckets,
        };
        self.pending_digest = None;
    }

    /// The snapshot goes on with `table`, read by dump `dump`.
    pub(super) fn next_snapshot_table(&mut self, dump: DumpId, table: Table) {
        if let Feed::Snapshot { start, buckets, .. } = self.feed {
            self.feed = Feed::Snapshot {
                dump,
                table,
                start,
                paused: false,
                buckets,
            };
        }
    }

    /// The snapshot's dump waits for buffer room.
    pub(super) fn pause_snapshot(&mut self) {
        if let Feed::Snapshot { paused, .. } = &mut self.feed {
            *paused = true;
        }
    }

    /// A paused snapshot may go on if the buffer has room for a frame
    /// besides the control reserve.
    pub(super) fn unpause_snapshot_if_room(&mut self) {
        let room = self.feed_has_room();
        if let Feed::Snapshot { paused, .. } = &mut self.feed {
            if *paused && room {
                *paused = false;
            }
        }
    }

    /// The feed ends here and another starts at once (a full snapshot or
    /// a resume, which set what is pending themselves).
    pub(super) fn drop_feed(&mut self) {
        self.feed = Feed::Idle;
    }

    /// The feed stops (we are no longer master, the slave restarts, or
    /// the session is no longer the peer's): nothing is pending. Returns
    /// the dump of a snapshot under way, to cancel.
    pub(super) fn stop_feed(&mut self) -> Option<DumpId> {
        let dump = match self.feed {
            Feed::Snapshot { dump, .. } => Some(dump),
            _ => None,
        };
        self.feed = Feed::Idle;
        self.pending_digest = None;
        dump
    }

    /// A digest taken at `start` is announced: a streaming v2 slave gets
    /// it when its stream reaches `start`. Returns whether it will.
    pub(super) fn announce_digest(&mut self, start: Position) -> bool {
        let streaming = self.streams_v2();
        if streaming {
            self.pending_digest = Some(start);
        }
        streaming
    }

    /// An authenticated v2 session (keepalives, liveness, the feed).
    pub(super) fn open_v2(&self) -> bool {
        matches!(self.phase, Phase::Keyed { open: true, .. })
    }

    /// An authenticated v2 session that is fed ring records (digests go
    /// only to such).
    pub(super) fn streams_v2(&self) -> bool {
        self.open_v2() && matches!(self.feed, Feed::Stream { .. })
    }

    /// Whether the stream reached the announced digest's position.
    pub(super) fn digest_due_at(&self, after: Position) -> bool {
        self.pending_digest == Some(after)
    }

    /// The announced digest is sent (or found stale): none is pending.
    pub(super) fn digest_taken(&mut self) {
        self.pending_digest = None;
    }

    /// Whether authenticated (or legacy) messages can flow.
    pub(super) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Legacy | Phase::Keyed { open: true, .. })
    }

    /// The peer's HELLO, once known.
    pub(super) fn peer_hello(&self) -> Option<&Hello> {
        match &self.phase {
            Phase::Keyed { peer, .. } => Some(peer),
            _ => None,
        }
    }

    /// Whether the feed may add a frame now (keeps the control reserve).
    pub(super) fn feed_has_room(&self) -> bool {
        self.tx.room() >= MAX_FRAME + CTL_RESERVE
    }

    /// Queues a control message.
    pub(super) fn send_ctl<R: Random>(
        &mut self,
        codec: &LegacyCodec<C>,
        rng: &mut R,
        ctl: &Ctl,
    ) -> Result<usize, SendError> {
        let mut buf = [0u8; CTL_MAX];
        let n = ctl.encode(&mut buf).map_err(|_| SendError::NoRoom)?;
        self.send(codec, rng, Kind::Ctl, &buf[..n])
    }

    /// Queues a v2 frame carrying several whole PF_KEY messages (the
    /// receiver cuts them apart by their length fields).
    pub(super) fn send_pfkeys<R: Random>(
        &mut self,
        codec: &LegacyCodec<C>,
        rng: &mut R,
        msgs: &[u8],
    ) -> Result<usize, SendError> {
        self.send(codec, rng, Kind::Pfkey, msgs)
    }

    /// Queues a PF_KEY message.
    pub(super) fn send_pfkey<R: Random>(
        &mut self,
        codec: &LegacyCodec<C>,
        rng: &mut R,
        msg: &[u8],
    ) -> Result<usize, SendError> {
        self.send(codec, rng, Kind::Pfkey, msg)
    }

    fn send<R: Random>(
        &mut self,
        codec: &LegacyCodec<C>,
        rng: &mut R,
        kind: Kind,
        payload: &[u8],
    ) -> Result<usize, SendError> {
        match &mut self.phase {
            Phase::Legacy => {
                let max = LegacyCodec::<C>::frame_len(payload.len()).map_err(SendError::Legacy)?;
                let ty = match kind {
                    Kind::Ctl => MsgType::Ctl,
                    Kind::Pfkey => MsgType::PfkeyData,
                };
                let mut iv = [0u8; 16];
                rng.fill(&mut iv);
                self.tx
                    .append_with(max, |out| codec.encode(ty, payload, iv, out))
                    .ok_or(SendError::NoRoom)?
                    .map_err(SendError::Legacy)
            }
            Phase::Keyed {
                session,
                open: true,
                ..
            } => {
                let max = payload.len() + SEALED_OVERHEAD;
                self.tx
                    .append_with(max, |out| session.seal(kind, payload, out))
                    .ok_or(SendError::NoRoom)?
                    .map_err(SendError::V2)
            }
            _ => Err(SendError::NotOpen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SoftCrypto;

    /// A new slot is unused; closing one wipes what its connection
    /// decrypted, and reopening starts from nothing, whatever the last
    /// connection left.
    #[test]
    fn a_closed_slot_keeps_no_plaintext_and_reopens_clean() {
        let (mut tx, mut rx) = ([0u8; MIN_TX_BYTES], [0u8; RX_FRAME]);
        let mut s = ConnSlot::<SoftCrypto>::new(&mut tx, &mut rx);
        assert!(s.as_ref().is_none());
        let now = Instant::from_millis(5);
        let c = s.open(ConnId(7), PeerIndex(0), true, false, now);
        assert_eq!((c.id, c.outbound, c.opened), (ConnId(7), true, now));
        // What a session leaves behind: a decrypted frame, queued bytes,
        // flags.
        c.rx.buf[..4].copy_from_slice(b"KEYS");
        assert!(c
            .tx
            .append_with(3, |out| {
                out[..3].copy_from_slice(b"abc");
                Ok::<usize, ()>(3)
            })
            .is_some());
        c.up = true;
        c.refused = true;
        c.feed_at = Some(now);
        s.close();
        assert!(s.as_ref().is_none());
        assert!(s.conn.rx.buf.iter().all(|&b| b == 0), "plaintext wiped");
        assert!(matches!(s.conn.phase, Phase::Connecting));
        let later = Instant::from_millis(9);
        let c = s.open(ConnId(8), PeerIndex(0), false, true, later);
        assert_eq!(
            (c.id, c.outbound, c.up, c.refused),
            (ConnId(8), false, false, false)
        );
        assert!(c.tx.is_empty() && c.feed_at.is_none());
        assert!(
            matches!(c.rx.mode, RxMode::Legacy(_)),
            "the protocol follows the reload"
        );
        assert_eq!((c.last_rx, c.last_tx, c.acked_at), (later, later, later));
    }

    fn hello(nonce: u8) -> Hello {
        Hello {
            node_id: [nonce; 16],
            boot_epoch: 1,
            nonce: [nonce; 32],
            run_state: crate::state::RunState::Slave,
            resume: Position::NONE,
            arch: crate::wire::v2::ArchTag::host(),
            dialect: crate::dialect::KernelDialect::OpenBsd,
        }
    }

    /// A cursor at the head of a ring with one record: what a stream
    /// reads from.
    fn cursor() -> Cursor {
        let mut buf = [0u8; 256];
        let mut ring = super::super::ring::DeltaRing::new(&mut buf[..], 1);
        ring.push(b"record").unwrap();
        ring.cursor(ring.position()).unwrap()
    }

    fn pos(seq: u64) -> Position {
        Position { epoch: 1, seq }
    }

    /// A snapshot starts unpaused and drops a digest queued for the old
    /// stream; its dump pauses without room and goes on only with room
    /// for a frame and the control reserve; the next table keeps where
    /// the stream resumes and which buckets are sent; stopping the feed
    /// hands back the dump to cancel and leaves nothing pending.
    #[test]
    fn a_snapshot_feed_pauses_for_room_and_stops_clean() {
        let (mut tx, mut rx) = ([0u8; MIN_TX_BYTES + 64], [0u8; RX_FRAME]);
        let mut s = ConnSlot::<SoftCrypto>::new(&mut tx, &mut rx);
        let c = s.open(ConnId(1), PeerIndex(0), true, true, Instant::ZERO);
        c.accepted_legacy();
        c.pending_digest = Some(pos(3));
        let buckets: Option<BucketSet> = Some([0x0f; crate::ctl::BUCKETS / 8]);
        c.begin_snapshot(DumpId(4), pos(9), buckets);
        assert!(!c.digest_due_at(pos(3)), "a snapshot drops the old digest");
        let Feed::Snapshot {
            dump,
            table,
            start,
            paused,
            ..
        } = c.feed()
        else {
            panic!("no snapshot");
        };
        assert_eq!(
            (dump, table, start, paused),
            (DumpId(4), Table::Sadb, pos(9), false)
        );
        c.pause_snapshot();
        // Fill the buffer past the feed's threshold: still paused.
        let fill = c.tx.room() - (MAX_FRAME + CTL_RESERVE) + 1;
        assert!(c.tx.append_with(fill, |_| Ok::<usize, ()>(fill)).is_some());
        c.unpause_snapshot_if_room();
        assert!(matches!(c.feed(), Feed::Snapshot { paused: true, .. }));
        assert!(!c.wrote(1, Instant::from_millis(1)), "bytes remain");
        c.unpause_snapshot_if_room();
        assert!(matches!(c.feed(), Feed::Snapshot { paused: false, .. }));
        c.pause_snapshot();
        c.next_snapshot_table(DumpId(5), Table::Spd);
        assert_eq!(
            c.feed(),
            Feed::Snapshot {
                dump: DumpId(5),
                table: Table::Spd,
                start: pos(9),
                paused: false,
                buckets,
            }
        );
        assert_eq!(c.stop_feed(), Some(DumpId(5)));
        assert_eq!(c.feed(), Feed::Idle);
        assert_eq!(c.stop_feed(), None, "nothing left to cancel");
    }

    /// A digest is queued only for an authenticated v2 session that
    /// streams (not a legacy one, not during a snapshot), is due when the
    /// stream reaches its position, and is sent once.
    #[test]
    fn a_digest_waits_for_its_position_on_v2_streams_only() {
        let (mut tx, mut rx) = ([0u8; MIN_TX_BYTES], [0u8; RX_FRAME]);
        let mut s = ConnSlot::<SoftCrypto>::new(&mut tx, &mut rx);
        let c = s.open(ConnId(1), PeerIndex(0), true, true, Instant::ZERO);
        c.accepted_legacy();
        c.stream_from(cursor());
        assert!(!c.announce_digest(pos(2)), "legacy has no digest");
        let (local, peer) = (hello(1), hello(2));
        let session = Session::new(
            SoftCrypto,
            &[7; 32],
            crate::wire::v2::Side::Initiator,
            &local,
            &peer,
        )
        .unwrap();
        c.phase = Phase::Keyed {
            session,
            peer,
            open: true,
        };
        c.begin_snapshot(DumpId(1), pos(1), None);
        assert!(!c.announce_digest(pos(2)), "not during a snapshot");
        c.stream_from(cursor());
        assert!(c.streams_v2());
        assert!(c.announce_digest(pos(2)));
        assert!(!c.digest_due_at(pos(1)) && c.digest_due_at(pos(2)));
        c.digest_taken();
        assert!(!c.digest_due_at(pos(2)));
        c.announce_digest(pos(3));
        c.stop_feed();
        assert!(!c.digest_due_at(pos(3)), "a stopped feed sends no digest");
    }

    /// The legacy feed delay fires once; a crossed start demotes the
    /// current session to a read-only alias that feeds nothing; refusals
    /// are logged once per connection; bad frames count until an
    /// authentic one; a short write blocks until writable.
    #[test]
    fn session_flags_follow_their_rules() {
        let (mut tx, mut rx) = ([0u8; MIN_TX_BYTES], [0u8; RX_FRAME]);
        let mut s = ConnSlot::<SoftCrypto>::new(&mut tx, &mut rx);
        let c = s.open(ConnId(1), PeerIndex(0), true, true, Instant::ZERO);
        let t = Instant::from_millis(2000);
        c.connected(t, true);
        assert!(c.is_open() && c.opened() == t);
        c.delay_feed(t);
        assert!(!c.take_feed_due(Instant::from_millis(1999)));
        assert!(c.take_feed_due(t) && c.feed_at().is_none());
        assert!(!c.take_feed_due(t), "fires once");

        c.session_up();
        c.begin_snapshot(DumpId(3), pos(1), None);
        assert_eq!(c.demote_to_alias(), Some(DumpId(3)));
        assert!(c.alias() && !c.up() && c.feed() == Feed::Idle);

        assert!(c.first_refusal() && !c.first_refusal());

        assert_eq!((c.bad_frame(), c.bad_frame()), (1, 2));
        c.frame_arrived(t);
        assert_eq!((c.bad_frame(), c.last_rx()), (1, t));

        c.ack_sent(pos(5), t);
        assert_eq!((c.acked(), c.acked_at()), (pos(5), t));

        assert!(c.tx.append_with(4, |_| Ok::<usize, ()>(4)).is_some());
        assert!(!c.wrote(1, t) && c.blocked(), "short write");
        c.writable();
        assert!(!c.blocked());
        let later = Instant::from_millis(3000);
        assert!(c.wrote(3, later) && !c.blocked() && c.last_tx() == later);
    }

    /// Takes what a connection queued (one frame in these tests).
    fn sent(c: &mut Conn<'_, SoftCrypto>, out: &mut [u8]) -> usize {
        let n = c.tx.len();
        out[..n].copy_from_slice(c.tx.pending());
        c.tx.consume(n);
        n
    }

    /// The v2 handshake through the phase: each side's HELLO keys the
    /// other's session and queues its CONFIRM; a CONFIRM opens it; then
    /// sealed frames open into the caller's buffer. A frame before our
    /// HELLO, or a second CONFIRM once open, ends the connection.
    #[test]
    fn the_v2_handshake_keys_then_opens_the_session() {
        let (mut tx_a, mut rx_a) = ([0u8; MIN_TX_BYTES], [0u8; RX_FRAME]);
        let (mut tx_b, mut rx_b) = ([0u8; MIN_TX_BYTES], [0u8; RX_FRAME]);
        let mut sa = ConnSlot::<SoftCrypto>::new(&mut tx_a, &mut rx_a);
        let mut sb = ConnSlot::<SoftCrypto>::new(&mut tx_b, &mut rx_b);
        let a = sa.open(ConnId(1), PeerIndex(0), true, false, Instant::ZERO);
        let b = sb.open(ConnId(2), PeerIndex(0), false, false, Instant::ZERO);
        let key = [9u8; 32];
        let (mut frame, mut buf) = ([0u8; MAX_FRAME], [0u8; MAX_FRAME]);
        let mut hb = [0u8; MAX_FRAME];
        let n = hello(2).encode(&mut hb).unwrap();
        assert!(matches!(
            a.phase
                .handle_v2_frame(&mut a.tx, true, &SoftCrypto, &key, &mut hb[..n], &mut buf),
            V2Step::Fatal(V2Error::HandshakeOrder)
        ));
        a.hello_sent(hello(1));
        b.hello_sent(hello(2));
        let mut ha = [0u8; MAX_FRAME];
        let m = hello(1).encode(&mut ha).unwrap();
        for (c, h, outbound) in [
            (&mut *a, &mut hb[..n], true),
            (&mut *b, &mut ha[..m], false),
        ] {
            let step = c
                .phase
                .handle_v2_frame(&mut c.tx, outbound, &SoftCrypto, &key, h, &mut buf);
            assert!(matches!(step, V2Step::Hello));
            assert!(!c.is_open() && c.peer_hello().is_some());
        }
        let k = sent(a, &mut frame);
        let mut confirm_a = frame;
        let step = b.phase.handle_v2_frame(
            &mut b.tx,
            false,
            &SoftCrypto,
            &key,
            &mut frame[..k],
            &mut buf,
        );
        assert!(matches!(step, V2Step::Confirmed(h) if h == hello(1)));
        assert!(b.is_open());
        let k2 = sent(b, &mut frame);
        let step = a.phase.handle_v2_frame(
            &mut a.tx,
            true,
            &SoftCrypto,
            &key,
            &mut frame[..k2],
            &mut buf,
        );
        assert!(matches!(step, V2Step::Confirmed(h) if h == hello(2)));
        let Phase::Keyed { session, .. } = &mut a.phase else {
            panic!("not keyed");
        };
        let s = session.seal(Kind::Pfkey, b"sadb", &mut frame).unwrap();
        let step = b.phase.handle_v2_frame(
            &mut b.tx,
            false,
            &SoftCrypto,
            &key,
            &mut frame[..s],
            &mut buf,
        );
        assert!(matches!(step, V2Step::Msg(Kind::Pfkey, 4)));
        assert_eq!(&buf[..4], b"sadb");
        let step = b.phase.handle_v2_frame(
            &mut b.tx,
            false,
            &SoftCrypto,
            &key,
            &mut confirm_a[..k],
            &mut buf,
        );
        assert!(matches!(step, V2Step::Fatal(_)), "a replayed CONFIRM");
    }
}
