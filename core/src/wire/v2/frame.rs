//! The 8-byte header every v2 frame starts with, the frame sizes, and the
//! [`Framing`] that lets [`Deframer`](crate::wire::stream::Deframer) cut v2
//! frames out of a TCP stream.
//!
//! The header is checked completely (magic, version, type, and a length
//! that fits the type) before any of the body is buffered, so a peer cannot
//! make us hold more than one legal frame, and a legacy peer is recognised
//! from its first eight bytes.

use super::error::V2Error;
use crate::wire::stream::Framing;

/// First four bytes of every v2 frame. A legacy frame starts with a
/// big-endian length below 2^16, i.e. with a zero byte, so the two can never
/// be confused.
pub const MAGIC: [u8; 4] = *b"SASY";
/// The protocol version in every header.
pub const VERSION: u8 = 2;
/// Magic, version, type, length.
pub const HEADER_LEN: usize = 8;
/// The sequence number after the header of a sealed frame.
pub const SEQ_LEN: usize = 8;
/// The HMAC-SHA-256 tag at the end of a sealed frame.
pub const TAG_LEN: usize = 32;
/// Bytes a sealed frame adds to its payload.
pub const SEALED_OVERHEAD: usize = HEADER_LEN + SEQ_LEN + TAG_LEN;
/// The largest payload (a `Ctl` encoding or one PF_KEY message) one frame carries.
pub const MAX_PAYLOAD: usize = 4096;
/// The largest frame on the wire.
pub const MAX_FRAME: usize = SEALED_OVERHEAD + MAX_PAYLOAD;
/// The length of a HELLO frame (header included).
pub const HELLO_LEN: usize = HEADER_LEN + 76;
/// The confirmation value a CONFIRM frame carries.
pub const CONFIRM_PAYLOAD: usize = 32;
/// The length of a CONFIRM frame.
pub const CONFIRM_LEN: usize = SEALED_OVERHEAD + CONFIRM_PAYLOAD;

/// Range of the first big-endian word of a legacy frame (`blob_len` = 44 +
/// ciphertext of 12..=4096 bytes, reference §9.2), used only to name the
/// error when a legacy peer talks to us.
const LEGACY_BLOB_LEN: core::ops::RangeInclusive<u32> = 56..=4140;

/// What a v2 frame is; the header's type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// The clear handshake frame each side sends first.
    Hello = 1,
    /// The sealed key confirmation, each side's first sealed frame.
    Confirm = 2,
    /// A sealed control message.
    Ctl = 3,
    /// A sealed PF_KEY message.
    Pfkey = 4,
}

impl FrameType {
    /// Parses the type byte.
    pub const fn from_u8(v: u8) -> Option<FrameType> {
        match v {
            1 => Some(FrameType::Hello),
            2 => Some(FrameType::Confirm),
            3 => Some(FrameType::Ctl),
            4 => Some(FrameType::Pfkey),
            _ => None,
        }
    }

    /// Upper-case name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::Confirm => "CONFIRM",
            FrameType::Ctl => "CTL",
            FrameType::Pfkey => "PFKEY",
        }
    }

    /// The allowed total lengths of a frame of this type.
    const fn len_range(self) -> (usize, usize) {
        match self {
            FrameType::Hello => (HELLO_LEN, HELLO_LEN),
            FrameType::Confirm => (CONFIRM_LEN, CONFIRM_LEN),
            FrameType::Ctl | FrameType::Pfkey => (SEALED_OVERHEAD, MAX_FRAME),
        }
    }

    /// The type of a whole frame, after checking its header and that the
    /// buffer is exactly as long as the header says. Lets the caller pick
    /// between [`Hello::decode`](super::Hello::decode) and the session.
    pub fn of(frame: &[u8]) -> Result<FrameType, V2Error> {
        let (ty, len) = parse_header(frame)?;
        if len != frame.len() {
            return Err(V2Error::BadLength(frame.len()));
        }
        Ok(ty)
    }
}

/// What a sealed payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A `Ctl` encoding.
    Ctl,
    /// A raw PF_KEY message (host byte order, see `ArchTag`).
    Pfkey,
}

impl Kind {
    /// The frame type that carries this kind.
    pub const fn frame_type(self) -> FrameType {
        match self {
            Kind::Ctl => FrameType::Ctl,
            Kind::Pfkey => FrameType::Pfkey,
        }
    }
}

/// Writes a header; `out` must be at least [`HEADER_LEN`] long (callers
/// size it first; a short buffer is left untouched).
pub(super) fn write_header(out: &mut [u8], ty: FrameType, len: usize) {
    let len = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    if let Some(h) = out.get_mut(..HEADER_LEN) {
        h.copy_from_slice(&[
            MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, ty as u8, len[0], len[1],
        ]);
    }
}

/// Checks a header (the first [`HEADER_LEN`] bytes of `h`) and returns the
/// frame type and total length.
pub(super) fn parse_header(h: &[u8]) -> Result<(FrameType, usize), V2Error> {
    let h: [u8; HEADER_LEN] = match h.get(..HEADER_LEN).and_then(|h| h.try_into().ok()) {
        Some(h) => h,
        None => return Err(V2Error::BadLength(h.len())),
    };
    if h[..4] != MAGIC {
        let first = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        return Err(if LEGACY_BLOB_LEN.contains(&first) {
            V2Error::LegacyPeer
        } else {
            V2Error::NotV2
        });
    }
    if h[4] != VERSION {
        return Err(V2Error::Version(h[4]));
    }
    let ty = FrameType::from_u8(h[5]).ok_or(V2Error::UnknownKind(h[5]))?;
    let len = usize::from(u16::from_be_bytes([h[6], h[7]]));
    let (min, max) = ty.len_range();
    if len < min || len > max {
        return Err(V2Error::BadLength(len));
    }
    Ok((ty, len))
}

/// The v2 stream format, for `Deframer<V2, MAX_FRAME>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct V2;

impl Framing for V2 {
    type Error = V2Error;
    const HEADER_LEN: usize = HEADER_LEN;

    fn frame_len(header: &[u8]) -> Result<usize, V2Error> {
        parse_header(header).map(|(_, len)| len)
    }

    fn bad_len(len: usize) -> V2Error {
        V2Error::BadLength(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::stream::Deframer;

    #[test]
    fn header_round_trip_and_checks() {
        let mut h = [0u8; HEADER_LEN];
        write_header(&mut h, FrameType::Ctl, 60);
        assert_eq!(h, [0x53, 0x41, 0x53, 0x59, 2, 3, 0, 60]);
        assert_eq!(parse_header(&h), Ok((FrameType::Ctl, 60)));
        let mut v = h;
        v[4] = 3;
        assert_eq!(parse_header(&v), Err(V2Error::Version(3)));
        v = h;
        v[5] = 9;
        assert_eq!(parse_header(&v), Err(V2Error::UnknownKind(9)));
        v = h;
        v[7] = 47;
        assert_eq!(parse_header(&v), Err(V2Error::BadLength(47)));
        write_header(&mut v, FrameType::Hello, HELLO_LEN + 1);
        assert_eq!(parse_header(&v), Err(V2Error::BadLength(HELLO_LEN + 1)));
        assert_eq!(parse_header(&h[..7]), Err(V2Error::BadLength(7)));
    }

    #[test]
    fn legacy_frame_is_named() {
        // A legacy 64-byte frame: blob_len 60, msgtype 0, padlen 4.
        let legacy = [0u8, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 4];
        assert_eq!(parse_header(&legacy), Err(V2Error::LegacyPeer));
        // Largest legacy frame.
        assert_eq!(
            parse_header(&[0, 0, 0x10, 0x2c, 0, 0, 0, 1]),
            Err(V2Error::LegacyPeer)
        );
        assert_eq!(parse_header(b"GET / HTTP/1.0"), Err(V2Error::NotV2));
        assert_eq!(parse_header(&[0u8; 8]), Err(V2Error::NotV2));
    }

    #[test]
    fn deframer_refuses_before_buffering() {
        let mut d = Deframer::<V2, MAX_FRAME>::new();
        let mut h = [0u8; HEADER_LEN];
        write_header(&mut h, FrameType::Pfkey, MAX_FRAME + 1);
        let mut input: &[u8] = &h;
        assert_eq!(
            d.next_frame(&mut input).unwrap_err(),
            V2Error::BadLength(MAX_FRAME + 1)
        );
        assert_eq!(d.pending(), HEADER_LEN);
    }

    #[test]
    fn frame_type_of_whole_frame() {
        let mut f = [0u8; SEALED_OVERHEAD];
        write_header(&mut f, FrameType::Ctl, SEALED_OVERHEAD);
        assert_eq!(FrameType::of(&f), Ok(FrameType::Ctl));
        assert_eq!(
            FrameType::of(&f[..SEALED_OVERHEAD - 1]),
            Err(V2Error::BadLength(SEALED_OVERHEAD - 1))
        );
    }
}
