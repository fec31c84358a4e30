//! Why a v2 frame or handshake step was refused.

use super::frame::FrameType;
use super::hello::ArchTag;
use crate::dialect::KernelDialect;

/// Why a v2 frame or handshake step was refused.
///
/// Every error on received data means the connection must be closed: the
/// session state is not advanced by a refused frame, but a peer (or a path)
/// that produces one cannot be trusted to stay in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Error {
    /// The frame does not start with the v2 magic.
    NotV2,
    /// The frame starts like an OpenBSD (legacy) frame: the peer speaks the
    /// legacy protocol, not v2.
    LegacyPeer,
    /// The magic is right but the protocol version is one we do not speak.
    Version(u8),
    /// The frame type byte is not one v2 defines.
    UnknownKind(u8),
    /// A frame length outside what its type allows, or a buffer that does
    /// not hold exactly the frame its header announces.
    BadLength(usize),
    /// A well-formed frame of a type not allowed at this point of the
    /// protocol (e.g. data before the key confirmation).
    UnexpectedFrame(FrameType),
    /// A HELLO field holds an invalid value (run state, arch tag, reserved).
    Malformed,
    /// The peer's PF_KEY payloads use another byte order or pointer width
    /// (reference D-33): its kernel structures would be misread.
    ArchMismatch {
        /// Our tag.
        local: ArchTag,
        /// The peer's tag.
        peer: ArchTag,
    },
    /// The peer sends another kernel's records (its HELLO's dialect byte):
    /// a cluster must run one kind of kernel.
    DialectMismatch {
        /// Our dialect.
        local: KernelDialect,
        /// The peer's.
        peer: KernelDialect,
    },
    /// The shared key is shorter than [`MIN_SHARED_KEY`](super::MIN_SHARED_KEY) bytes.
    ShortKey(usize),
    /// The crypto engine refused the 256-bit AES key.
    Aes,
    /// The peer's key confirmation failed: it holds another shared key.
    KeyMismatch,
    /// A sealed frame failed authentication (forged, corrupted, or from
    /// another session).
    MacMismatch,
    /// A frame sealed by us came back (reflection), or the peer's HELLO
    /// carries our own nonce.
    Reflected,
    /// An authentic frame with a sequence number already seen (replay).
    Replay {
        /// The sequence number in the frame.
        got: u64,
        /// The one we expected.
        expected: u64,
    },
    /// An authentic frame with a sequence number beyond the next expected
    /// one (a frame was dropped or reordered).
    Gap {
        /// The sequence number in the frame.
        got: u64,
        /// The one we expected.
        expected: u64,
    },
    /// A payload longer than [`MAX_PAYLOAD`](super::MAX_PAYLOAD).
    TooLong(usize),
    /// The output buffer cannot hold the frame.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
    },
    /// A handshake step called out of order: `seal` before `confirm`, `open`
    /// before `check_confirm`, or either confirmation step twice.
    HandshakeOrder,
    /// The 64-bit sequence space of this direction is used up; reconnect.
    SeqExhausted,
}

impl core::fmt::Display for V2Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            V2Error::NotV2 => f.write_str("not a v2 frame (bad magic)"),
            V2Error::LegacyPeer => f.write_str("peer speaks the legacy OpenBSD protocol, not v2"),
            V2Error::Version(v) => write!(f, "unsupported v2 protocol version {v}"),
            V2Error::UnknownKind(t) => write!(f, "unknown v2 frame type {t}"),
            V2Error::BadLength(n) => write!(f, "v2 frame length {n} out of range"),
            V2Error::UnexpectedFrame(t) => write!(f, "unexpected v2 {} frame", t.name()),
            V2Error::Malformed => f.write_str("malformed v2 HELLO"),
            V2Error::ArchMismatch { local, peer } => {
                write!(
                    f,
                    "peer PF_KEY architecture {peer} differs from ours ({local})"
                )
            }
            V2Error::DialectMismatch { local, peer } => write!(
                f,
                "peer runs another kernel: it sends {peer} records, we send {local} records (a cluster runs one kind of kernel)"
            ),
            V2Error::ShortKey(n) => write!(f, "shared key of {n} bytes is too short for v2"),
            V2Error::Aes => f.write_str("crypto engine refused the AES-256 key"),
            V2Error::KeyMismatch => f.write_str("key confirmation failed (shared keys differ?)"),
            V2Error::MacMismatch => f.write_str("v2 frame failed authentication"),
            V2Error::Reflected => f.write_str("our own v2 frame or nonce came back (reflection)"),
            V2Error::Replay { got, expected } => {
                write!(f, "replayed v2 frame: sequence {got}, expected {expected}")
            }
            V2Error::Gap { got, expected } => {
                write!(
                    f,
                    "v2 frame out of order: sequence {got}, expected {expected}"
                )
            }
            V2Error::TooLong(n) => write!(f, "v2 payload of {n} bytes is too long"),
            V2Error::BufferTooSmall { need } => {
                write!(f, "buffer too small for v2 frame ({need} bytes)")
            }
            V2Error::HandshakeOrder => f.write_str("v2 handshake step out of order"),
            V2Error::SeqExhausted => f.write_str("v2 sequence numbers exhausted"),
        }
    }
}

impl core::error::Error for V2Error {}
