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
    Hello, Kind, Session, V2Error, MAX_FRAME as V2_MAX_FRAME, SEALED_OVERHEAD, V2,
};

use super::event::{ConnId, DumpId, Table};
use super::peer_table::PeerIndex;
use super::ring::Cursor;
use super::storage::ManagedSlice;
use super::txbuf::TxBuf;
use crate::ctl::BucketSet;

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
pub(super) struct Rx<'a> {
    pub buf: ManagedSlice<'a, u8>,
    pub mode: RxMode,
}

/// How frames are cut, per protocol.
pub(super) enum RxMode {
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
pub(super) enum Phase<C: Crypto> {
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
                peer_acked: Position::NONE,
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
    pub(super) id: ConnId,
    pub(super) peer: PeerIndex,
    pub(super) outbound: bool,
    pub(super) opened: Instant,
    pub(super) phase: Phase<C>,
    pub(super) rx: Rx<'a>,
    pub(super) tx: TxBuf<'a>,
    /// The session is registered in the peer table.
    pub(super) up: bool,
    pub(super) feed: Feed,
    /// The position of the announced digest to send (with its bucket
    /// sums) when the stream reaches it.
    pub(super) pending_digest: Option<Position>,
    /// Slave side: reading is paused (kernel queue full, sweep, digest).
    pub(super) paused: bool,
    /// Slave side: the last position acknowledged to the master, and when.
    pub(super) acked: Position,
    pub(super) acked_at: Instant,
    /// Master side: the last position the slave acknowledged.
    pub(super) peer_acked: Position,
    /// Legacy slave: we refused this master's data (we followed another).
    pub(super) refused: bool,
    /// Legacy crossed start: a second connection with the peer that we
    /// only read (what arrives on it counts as the peer's current
    /// session's); nothing is sent on it.
    pub(super) alias: bool,
    /// We logged a refusal of this peer's PF_KEY data (once is enough).
    pub(super) refused_logged: bool,
    /// Legacy master: when the snapshot timer of this session fires.
    pub(super) feed_at: Option<Instant>,
    /// The platform's last write was short: nothing more is offered until
    /// `handle_writable`.
    pub(super) blocked: bool,
    /// When bytes last arrived / were last written (v2 keepalive).
    pub(super) last_rx: Instant,
    pub(super) last_tx: Instant,
    /// Legacy: bad frames since the last authentic one.
    pub(super) bad_frames: u8,
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
            peer_acked,
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
        *peer_acked = Position::NONE;
        *refused = false;
        *alias = false;
        *refused_logged = false;
        *feed_at = None;
        *blocked = false;
        *last_rx = now;
        *last_tx = now;
        *bad_frames = 0;
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
}
