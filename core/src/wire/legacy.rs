//! The OpenBSD-compatible frame (reference §9), byte for byte.
//!
//! ```text
//! 0      4        8       12      32   48
//! | len  | type   | padlen | SHA-1 | IV | AES-CBC(plaintext ‖ p, p-1, .., 1) |
//! ```
//!
//! All integers are big-endian; `len` is the frame length minus 4. The
//! plaintext is padded only when it is not block-aligned, with the
//! *descending* bytes `p, p-1, .., 1` (not PKCS#7), and the hash is an
//! unkeyed SHA-1 of the unpadded plaintext, sent in clear. That is no MAC
//! and there is no replay protection (reference D-1, D-2): this format only
//! exists to talk to an unmodified OpenBSD sasyncd.
//!
//! Unlike the original we check everything taken from the wire before
//! using it: the padding length (D-3), block alignment, and the hash in
//! constant time. And we never emit a frame the original would refuse
//! (D-29): the ciphertext is always 12..=4096 bytes.

use subtle::ConstantTimeEq;

use super::stream::{Deframer, Framing};
use crate::crypto::{AesKey, BadKeyLength, Crypto, BLOCK};

/// Bytes before the ciphertext: length, type, padlen, SHA-1, IV.
pub const HEADER_LEN: usize = 48;
/// Smallest ciphertext the original accepts (`MSG_MINLEN`).
pub const MIN_CIPHER: usize = 12;
/// Largest ciphertext the original accepts (`MSG_MAXLEN`).
pub const MAX_CIPHER: usize = 4096;
/// Largest frame on the wire.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_CIPHER;
/// Largest plaintext [`LegacyCodec::encode`] accepts (4096 is block-aligned,
/// so it needs no padding and its ciphertext is exactly [`MAX_CIPHER`]).
pub const MAX_PLAINTEXT: usize = MAX_CIPHER;

/// The length word counts everything after itself.
const LEN_WORD: usize = 4;
const TYPE_AT: usize = 4;
const PADLEN_AT: usize = 8;
const HASH_AT: usize = 12;
const IV_AT: usize = 32;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MsgType {
    /// `MSG_SYNCCTL`: a control message (see [`crate::ctl`]).
    Ctl = 0,
    /// `MSG_PFKEYDATA`: a raw PF_KEY message.
    PfkeyData = 1,
}

impl MsgType {
    /// The wire value.
    pub const fn to_u32(self) -> u32 {
        self as u32
    }
    /// Parses a wire value; `None` for anything but 0 and 1.
    pub const fn from_u32(v: u32) -> Option<MsgType> {
        match v {
            0 => Some(MsgType::Ctl),
            1 => Some(MsgType::PfkeyData),
            _ => None,
        }
    }
}

/// Why a legacy frame was refused (decoding) or not built (encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyError {
    /// The length word does not give a ciphertext of 12..=4096 bytes, or
    /// does not match the frame handed to `decode`. From the deframer this
    /// is fatal: the stream has lost its frame boundaries.
    LengthOutOfRange,
    /// The ciphertext length is not a multiple of the AES block size.
    NotBlockAligned,
    /// The type word is neither 0 nor 1.
    UnknownType(u32),
    /// The padding length is 16 or more, or larger than the ciphertext
    /// (the original trusts it and reads out of bounds: D-3).
    BadPadding(u32),
    /// SHA-1 of the decrypted plaintext differs from the frame's: most
    /// likely a different shared key.
    HashMismatch,
    /// The plaintext is longer than [`MAX_PLAINTEXT`].
    TooLong,
    /// An empty plaintext would give an empty ciphertext, under
    /// [`MIN_CIPHER`].
    Empty,
    /// The output buffer cannot hold the frame.
    BufferTooSmall,
}

impl core::fmt::Display for LegacyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LegacyError::LengthOutOfRange => f.write_str("frame length out of range"),
            LegacyError::NotBlockAligned => f.write_str("ciphertext length not a multiple of 16"),
            LegacyError::UnknownType(t) => write!(f, "unknown message type {t}"),
            LegacyError::BadPadding(p) => write!(f, "invalid padding length {p}"),
            LegacyError::HashMismatch => f.write_str("bad message hash (typo in shared key?)"),
            LegacyError::TooLong => f.write_str("message too long for a legacy frame"),
            LegacyError::Empty => f.write_str("empty message cannot be framed"),
            LegacyError::BufferTooSmall => f.write_str("buffer too small for frame"),
        }
    }
}

impl core::error::Error for LegacyError {}

/// [`Framing`] for legacy frames: the 4-byte length word alone decides the
/// frame length, so an out-of-range length is refused before anything
/// else is buffered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Legacy;

impl Framing for Legacy {
    type Error = LegacyError;
    const HEADER_LEN: usize = LEN_WORD;

    fn frame_len(header: &[u8]) -> Result<usize, LegacyError> {
        let blob_len = be32(header, 0).ok_or(LegacyError::LengthOutOfRange)?;
        let cipher = usize::try_from(blob_len)
            .ok()
            .and_then(|l| l.checked_sub(HEADER_LEN - LEN_WORD))
            .filter(|c| (MIN_CIPHER..=MAX_CIPHER).contains(c))
            .ok_or(LegacyError::LengthOutOfRange)?;
        Ok(HEADER_LEN + cipher)
    }

    fn bad_len(_len: usize) -> LegacyError {
        LegacyError::LengthOutOfRange
    }
}

/// A deframer sized for the largest legacy frame.
pub type LegacyDeframer = Deframer<Legacy, MAX_FRAME>;

/// Encodes and decodes legacy frames under one shared key.
pub struct LegacyCodec<C: Crypto> {
    crypto: C,
    aes: C::Aes,
}

impl<C: Crypto> core::fmt::Debug for LegacyCodec<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LegacyCodec { .. }")
    }
}

impl<C: Crypto> LegacyCodec<C> {
    /// Prepares the key: it is used directly as the AES key, whose size
    /// (128, 192 or 256 bits) follows from its length, as in the original.
    pub fn new(crypto: C, shared_key: &[u8]) -> Result<Self, BadKeyLength> {
        let aes = crypto.aes(shared_key)?;
        Ok(LegacyCodec { crypto, aes })
    }

    /// Length of the frame that `plaintext_len` bytes become.
    pub const fn frame_len(plaintext_len: usize) -> Result<usize, LegacyError> {
        if plaintext_len == 0 {
            return Err(LegacyError::Empty);
        }
        if plaintext_len > MAX_PLAINTEXT {
            return Err(LegacyError::TooLong);
        }
        Ok(HEADER_LEN + plaintext_len + pad_len(plaintext_len))
    }

    /// Writes one frame to the front of `out` and returns its length. `iv`
    /// must be fresh random bytes for every frame (the caller owns the RNG).
    pub fn encode(
        &self,
        ty: MsgType,
        plaintext: &[u8],
        iv: [u8; BLOCK],
        out: &mut [u8],
    ) -> Result<usize, LegacyError> {
        let total = Self::frame_len(plaintext.len())?;
        let out = out.get_mut(..total).ok_or(LegacyError::BufferTooSmall)?;
        let (head, body) = out.split_at_mut(HEADER_LEN);
        let pad = pad_len(plaintext.len());
        // Cannot fail: `total` is at most MAX_FRAME.
        let blob_len = u32::try_from(total - LEN_WORD).map_err(|_| LegacyError::TooLong)?;
        let hash = self.crypto.sha1(&[plaintext]);
        let mut w = Writer { buf: head, at: 0 };
        w.put(&blob_len.to_be_bytes())?;
        w.put(&ty.to_u32().to_be_bytes())?;
        w.put(&(pad as u32).to_be_bytes())?;
        w.put(&hash)?;
        w.put(&iv)?;
        let (text, padding) = body.split_at_mut(plaintext.len());
        text.copy_from_slice(plaintext);
        // Descending p, p-1, .., 1; pad < 16, so the cast is lossless.
        for (b, v) in padding.iter_mut().zip((1..=pad as u8).rev()) {
            *b = v;
        }
        self.aes.cbc_encrypt(&iv, body);
        Ok(total)
    }

    /// Checks and decrypts one whole frame (as the deframer returns it) in
    /// place; returns its type and the unpadded plaintext inside `frame`.
    ///
    /// Every check that does not need the key comes first, so a frame
    /// injected by someone without it costs no AES work. A failure here
    /// leaves the stream in sync: the caller may drop the frame and go on.
    pub fn decode<'a>(&self, frame: &'a mut [u8]) -> Result<(MsgType, &'a [u8]), LegacyError> {
        let len = Legacy::frame_len(frame)?;
        if len != frame.len() {
            return Err(LegacyError::LengthOutOfRange);
        }
        let (head, body) = frame.split_at_mut(HEADER_LEN);
        if body.len() % BLOCK != 0 {
            return Err(LegacyError::NotBlockAligned);
        }
        let raw = be32(head, TYPE_AT).ok_or(LegacyError::LengthOutOfRange)?;
        let ty = MsgType::from_u32(raw).ok_or(LegacyError::UnknownType(raw))?;
        let padlen = be32(head, PADLEN_AT).ok_or(LegacyError::LengthOutOfRange)?;
        let text_len = Some(padlen as usize)
            .filter(|&p| p < BLOCK)
            .and_then(|p| body.len().checked_sub(p))
            .ok_or(LegacyError::BadPadding(padlen))?;
        let iv: [u8; BLOCK] = array(head, IV_AT).ok_or(LegacyError::LengthOutOfRange)?;
        let hash: [u8; 20] = array(head, HASH_AT).ok_or(LegacyError::LengthOutOfRange)?;
        self.aes.cbc_decrypt(&iv, body);
        let text = body
            .get(..text_len)
            .ok_or(LegacyError::BadPadding(padlen))?;
        // The pad bytes are not checked: the original never checks them
        // and the hash does not cover them.
        if !bool::from(self.crypto.sha1(&[text]).ct_eq(&hash)) {
            return Err(LegacyError::HashMismatch);
        }
        Ok((ty, text))
    }
}

/// Padding bytes the original appends to a plaintext of `len` bytes.
const fn pad_len(len: usize) -> usize {
    match len % BLOCK {
        0 => 0,
        r => BLOCK - r,
    }
}

fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    let src = buf.get(at..at.checked_add(N)?)?;
    let mut a = [0u8; N];
    a.copy_from_slice(src);
    Some(a)
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    array(buf, at).map(u32::from_be_bytes)
}

/// Sequential writer over the header.
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) -> Result<(), LegacyError> {
        let end = self
            .at
            .checked_add(b.len())
            .ok_or(LegacyError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.at..end)
            .ok_or(LegacyError::BufferTooSmall)?;
        dst.copy_from_slice(b);
        self.at = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
