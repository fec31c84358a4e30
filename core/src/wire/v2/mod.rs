#![doc = include_str!("../README.md")]
//!
//! # This module
//!
//! [`Hello`] is the clear handshake, [`Session`] derives the keys from it
//! and seals / opens frames, [`V2`] frames the byte stream for
//! [`Deframer`](crate::wire::stream::Deframer) (see [`V2Deframer`]).

mod error;
mod frame;
mod hello;
mod kdf;
mod session;

#[cfg(test)]
mod kat;
#[cfg(test)]
mod tests;

pub use error::V2Error;
pub use frame::{
    FrameType, Kind, CONFIRM_LEN, CONFIRM_PAYLOAD, HEADER_LEN, HELLO_LEN, MAGIC, MAX_FRAME,
    MAX_PAYLOAD, SEALED_OVERHEAD, SEQ_LEN, TAG_LEN, V2, VERSION,
};
pub use hello::{ArchTag, ByteOrder, Hello};
pub use session::{Session, Side, MIN_SHARED_KEY};

/// A deframer sized for the largest v2 frame.
pub type V2Deframer = crate::wire::stream::Deframer<V2, MAX_FRAME>;
