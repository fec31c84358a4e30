//! What can be wrong with a message on the privsep channel.

use std::fmt;

use super::msg::type_name;

/// A malformed message, or one that cannot be sent. Either side treats a
/// malformed message as fatal: the other process is broken or subverted,
/// and the only safe reaction is to close the channel and exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// The input ends inside a message (a short buffer, or the channel
    /// closed mid-message).
    Truncated,
    /// Bytes follow the message (this many).
    Trailing(usize),
    /// The header announces a payload longer than
    /// [`MAX_PAYLOAD`](super::MAX_PAYLOAD) (this many bytes).
    Oversized(u32),
    /// The header's reserved field is not zero.
    Reserved(u16),
    /// A type this direction does not have.
    UnknownType(u16),
    /// The payload length does not fit the type: wrong for a fixed-size
    /// message, or a variable field that is empty, too long or (for dump
    /// records) not a multiple of 4 bytes.
    BadLength {
        /// The message type.
        ty: u16,
        /// The payload length.
        len: usize,
    },
    /// A flag or table byte outside its values.
    BadValue {
        /// The message type.
        ty: u16,
        /// The byte.
        value: u8,
    },
    /// A text field that is not UTF-8.
    NotUtf8 {
        /// The message type.
        ty: u16,
    },
    /// The send queue would exceed [`MAX_QUEUED`](super::MAX_QUEUED): the
    /// other process is not reading.
    QueueFull,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProtoError::Truncated => f.write_str("truncated message"),
            ProtoError::Trailing(n) => write!(f, "{n} bytes after the message"),
            ProtoError::Oversized(n) => write!(
                f,
                "message payload of {n} bytes exceeds the limit of {}",
                super::MAX_PAYLOAD
            ),
            ProtoError::Reserved(v) => write!(f, "reserved header field is {v:#06x}, not 0"),
            ProtoError::UnknownType(t) => write!(f, "unknown message type {t:#06x}"),
            ProtoError::BadLength { ty, len } => {
                write!(
                    f,
                    "{} message with a bad length ({len} bytes)",
                    type_name(ty)
                )
            }
            ProtoError::BadValue { ty, value } => {
                write!(f, "{} message with a bad value {value}", type_name(ty))
            }
            ProtoError::NotUtf8 { ty } => {
                write!(f, "{} message with text that is not UTF-8", type_name(ty))
            }
            ProtoError::QueueFull => f.write_str("send queue full"),
        }
    }
}

impl std::error::Error for ProtoError {}
