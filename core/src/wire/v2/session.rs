//! A v2 session: sealing and opening frames after the HELLO exchange.
//!
//! Sealed frames are encrypt-then-MAC: AES-256-CTR with the frame's 64-bit
//! sequence number as the nonce, then HMAC-SHA-256 over header, sequence
//! number and ciphertext. On receipt the tag is checked in constant time
//! before anything is decrypted, and the sequence number must be exactly
//! the next one expected, so a replayed, dropped, reordered, reflected or
//! foreign frame is refused, each with its own error.
//!
//! Order of use on each side: exchange HELLOs, [`Session::new`], send
//! [`Session::confirm`], pass the peer's first sealed frame to
//! [`Session::check_confirm`], then [`Session::seal`] / [`Session::open`].

use subtle::ConstantTimeEq;

use super::error::V2Error;
use super::frame::{
    write_header, FrameType, Kind, HEADER_LEN, MAX_PAYLOAD, SEALED_OVERHEAD, SEQ_LEN, TAG_LEN,
};
use super::hello::Hello;
use super::kdf::{confirm_value, derive, DirectionKeys};
use crate::crypto::{AesKey, Crypto, HmacKey, BLOCK};

/// The shortest shared key v2 accepts (the config allows 16, 24 or 32).
pub const MIN_SHARED_KEY: usize = 16;

/// Which end of the TCP connection we are; picks the direction keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// We opened the connection.
    Initiator,
    /// We accepted it.
    Responder,
}

/// Keys and the expected confirmation value of one direction.
struct Direction<C: Crypto> {
    aes: C::Aes,
    mac: C::Hmac,
    confirm: [u8; 32],
}

impl<C: Crypto> Direction<C> {
    fn new(crypto: &C, keys: &DirectionKeys, transcript: &[u8; 32]) -> Result<Self, V2Error> {
        let aes = crypto.aes(&keys.enc[..]).map_err(|_| V2Error::Aes)?;
        let mac = crypto.hmac(&keys.mac[..]);
        let confirm = confirm_value(&mac, transcript);
        Ok(Direction { aes, mac, confirm })
    }

    /// Tag over header, sequence number and ciphertext.
    fn tag(&self, authed: &[u8]) -> [u8; 32] {
        self.mac.mac(&[authed])
    }
}

/// The CTR counter block of frame `seq`: the sequence number, then a block
/// counter from 0. A payload is at most 256 blocks, so counter blocks never
/// repeat under a direction's key.
fn ctr_nonce(seq: u64) -> [u8; BLOCK] {
    let mut n = [0u8; BLOCK];
    n[..8].copy_from_slice(&seq.to_be_bytes());
    n
}

/// One v2 connection after the HELLO exchange. Key material lives in the
/// crypto engine's key types, which wipe it on drop.
pub struct Session<C: Crypto> {
    tx: Direction<C>,
    rx: Direction<C>,
    /// Sequence number of the next frame we seal (0 = CONFIRM not sent).
    tx_seq: u64,
    /// Sequence number the next frame we open must carry (0 = CONFIRM not seen).
    rx_seq: u64,
}

impl<C: Crypto> core::fmt::Debug for Session<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("tx_seq", &self.tx_seq)
            .field("rx_seq", &self.rx_seq)
            .finish()
    }
}

impl<C: Crypto> Session<C> {
    /// Derives the session keys from the shared key and both HELLOs.
    /// Refuses a peer whose PF_KEY payloads have another shape
    /// ([`V2Error::ArchMismatch`]) or another kernel's records
    /// ([`V2Error::DialectMismatch`]), and a peer HELLO carrying our own nonce
    /// ([`V2Error::Reflected`]).
    pub fn new(
        crypto: C,
        shared_key: &[u8],
        side: Side,
        local: &Hello,
        peer: &Hello,
    ) -> Result<Self, V2Error> {
        if shared_key.len() < MIN_SHARED_KEY {
            return Err(V2Error::ShortKey(shared_key.len()));
        }
        if local.arch != peer.arch {
            return Err(V2Error::ArchMismatch {
                local: local.arch,
                peer: peer.arch,
            });
        }
        if local.dialect != peer.dialect {
            return Err(V2Error::DialectMismatch {
                local: local.dialect,
                peer: peer.dialect,
            });
        }
        if bool::from(local.nonce.ct_eq(&peer.nonce)) {
            return Err(V2Error::Reflected);
        }
        let (init, resp) = match side {
            Side::Initiator => (local, peer),
            Side::Responder => (peer, local),
        };
        let ks = derive(
            &crypto,
            shared_key,
            &init.to_bytes(),
            &resp.to_bytes(),
            &init.nonce,
            &resp.nonce,
        );
        let (tx, rx) = match side {
            Side::Initiator => (&ks.i2r, &ks.r2i),
            Side::Responder => (&ks.r2i, &ks.i2r),
        };
        // Each direction built where it goes (a direction is most of a
        // kilobyte: no intermediate copies on a small stack).
        Ok(Session {
            tx: Direction::new(&crypto, tx, &ks.transcript)?,
            rx: Direction::new(&crypto, rx, &ks.transcript)?,
            tx_seq: 0,
            rx_seq: 0,
        })
    }

    /// Writes our CONFIRM frame (sequence 0, carrying the transcript MACed
    /// under our direction key); must be the first sealed frame we send.
    pub fn confirm(&mut self, out: &mut [u8]) -> Result<usize, V2Error> {
        if self.tx_seq != 0 {
            return Err(V2Error::HandshakeOrder);
        }
        let value = self.tx.confirm;
        self.seal_frame(FrameType::Confirm, &value, out)
    }

    /// Checks the peer's CONFIRM frame (decrypted in place). Any failure
    /// to authenticate it means the peer derived other keys: almost always
    /// another shared key, reported as [`V2Error::KeyMismatch`].
    pub fn check_confirm(&mut self, frame: &mut [u8]) -> Result<(), V2Error> {
        if self.rx_seq != 0 {
            return Err(V2Error::HandshakeOrder);
        }
        let (_, payload) = match self.open_frame(frame, FrameType::Confirm) {
            Err(V2Error::MacMismatch) => return Err(V2Error::KeyMismatch),
            r => r?,
        };
        if !bool::from(payload.ct_eq(&self.rx.confirm[..])) {
            return Err(V2Error::KeyMismatch);
        }
        self.rx_seq = 1;
        Ok(())
    }

    /// Seals `payload` as the next frame into `out`; returns the frame length.
    pub fn seal(&mut self, kind: Kind, payload: &[u8], out: &mut [u8]) -> Result<usize, V2Error> {
        if self.tx_seq == 0 {
            return Err(V2Error::HandshakeOrder);
        }
        self.seal_frame(kind.frame_type(), payload, out)
    }

    /// Authenticates, checks the sequence of, and decrypts in place the
    /// next frame from the peer; returns what it carries.
    pub fn open<'a>(&mut self, frame: &'a mut [u8]) -> Result<(Kind, &'a [u8]), V2Error> {
        if self.rx_seq == 0 {
            return Err(V2Error::HandshakeOrder);
        }
        let (kind, payload) = self.open_frame(frame, FrameType::Ctl)?;
        self.rx_seq = self.rx_seq.checked_add(1).ok_or(V2Error::SeqExhausted)?;
        Ok((kind, payload))
    }

    /// The sequence number the next sealed frame will carry.
    pub fn next_tx_seq(&self) -> u64 {
        self.tx_seq
    }

    /// The sequence number the next opened frame must carry.
    pub fn next_rx_seq(&self) -> u64 {
        self.rx_seq
    }

    fn seal_frame(
        &mut self,
        ty: FrameType,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, V2Error> {
        if payload.len() > MAX_PAYLOAD {
            return Err(V2Error::TooLong(payload.len()));
        }
        let len = SEALED_OVERHEAD + payload.len();
        let frame = out
            .get_mut(..len)
            .ok_or(V2Error::BufferTooSmall { need: len })?;
        let seq = self.tx_seq;
        let next = seq.checked_add(1).ok_or(V2Error::SeqExhausted)?;
        let (authed, tag) = split_sealed(frame)?;
        write_header(authed, ty, len);
        let (head, body) = split_head(authed)?;
        head[HEADER_LEN..].copy_from_slice(&seq.to_be_bytes());
        body.copy_from_slice(payload);
        self.tx.aes.ctr_apply(&ctr_nonce(seq), body);
        tag.copy_from_slice(&self.tx.tag(authed));
        self.tx_seq = next;
        Ok(len)
    }

    /// Opens a sealed frame of type `want` (`Ctl` stands for either data
    /// kind) without advancing `rx_seq`.
    fn open_frame<'a>(
        &self,
        frame: &'a mut [u8],
        want: FrameType,
    ) -> Result<(Kind, &'a [u8]), V2Error> {
        let ty = FrameType::of(frame)?;
        let kind = match (ty, want) {
            (FrameType::Confirm, FrameType::Confirm) => Kind::Ctl,
            (FrameType::Ctl, FrameType::Ctl) => Kind::Ctl,
            (FrameType::Pfkey, FrameType::Ctl) => Kind::Pfkey,
            _ => return Err(V2Error::UnexpectedFrame(ty)),
        };
        let (authed, tag) = split_sealed(frame)?;
        let expected = self.rx.tag(authed);
        if !bool::from(expected[..].ct_eq(tag)) {
            let ours = self.tx.tag(authed);
            return Err(if bool::from(ours[..].ct_eq(tag)) {
                V2Error::Reflected
            } else {
                V2Error::MacMismatch
            });
        }
        let (head, body) = split_head(authed)?;
        let seq = u64::from_be_bytes(head[HEADER_LEN..].try_into().unwrap_or_default());
        if seq < self.rx_seq {
            return Err(V2Error::Replay {
                got: seq,
                expected: self.rx_seq,
            });
        }
        if seq > self.rx_seq {
            return Err(V2Error::Gap {
                got: seq,
                expected: self.rx_seq,
            });
        }
        self.rx.aes.ctr_apply(&ctr_nonce(seq), body);
        Ok((kind, body))
    }
}

/// Splits a sealed frame into the authenticated part and the tag. The
/// callers have sized or checked the frame already; the error arm only
/// keeps this panic-free.
fn split_sealed(frame: &mut [u8]) -> Result<(&mut [u8], &mut [u8]), V2Error> {
    let len = frame.len();
    len.checked_sub(TAG_LEN)
        .filter(|&at| at >= HEADER_LEN + SEQ_LEN)
        .and_then(|at| frame.split_at_mut_checked(at))
        .ok_or(V2Error::BadLength(len))
}

/// Splits the authenticated part into header + sequence number (as a
/// fixed-size array, so indexing it cannot fail) and the body.
fn split_head(authed: &mut [u8]) -> Result<(&mut [u8; HEADER_LEN + SEQ_LEN], &mut [u8]), V2Error> {
    let len = authed.len();
    authed
        .split_first_chunk_mut::<{ HEADER_LEN + SEQ_LEN }>()
        .ok_or(V2Error::BadLength(len))
}
