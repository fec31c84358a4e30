//! The v2 key schedule: per-connection, per-direction keys from the shared
//! key, both nonces and the whole HELLO transcript.
//!
//! HKDF (RFC 5869) with HMAC-SHA-256, one output block per key:
//!
//! ```text
//! TH   = SHA-256("sasyncd v2 transcript" || HELLO_I || HELLO_R)
//! PRK  = HMAC(key = nonce_I || nonce_R, shared_key)            extract
//! K(l) = HMAC(key = PRK, "sasyncd v2 " || l || TH || 0x01)      expand, 32 bytes
//! ```
//!
//! with `l` one of `i2r enc`, `i2r mac`, `r2i enc`, `r2i mac`. Separate keys
//! per direction mean a frame can never be reflected back to its sender,
//! and that the 64-bit sequence number is a unique CTR nonce under each
//! encryption key. Fresh nonces make every connection's keys new, so a
//! frame from another session never authenticates.

use super::frame::HELLO_LEN;
use crate::crypto::{Crypto, HmacKey};
use zeroize::Zeroizing;

/// Domain separation for the transcript hash.
const TRANSCRIPT_LABEL: &[u8] = b"sasyncd v2 transcript";
/// Prefix of every expand label.
const EXPAND_PREFIX: &[u8] = b"sasyncd v2 ";
/// Domain separation for the key-confirmation value.
const CONFIRM_LABEL: &[u8] = b"sasyncd v2 confirm";

/// The two keys of one direction, wiped on drop.
pub(super) struct DirectionKeys {
    /// AES-256 key (CTR mode).
    pub enc: Zeroizing<[u8; 32]>,
    /// HMAC-SHA-256 key.
    pub mac: Zeroizing<[u8; 32]>,
}

/// Everything the session derives from the handshake.
pub(super) struct KeySchedule {
    /// Hash of both HELLOs, bound into every key and the confirmation.
    pub transcript: [u8; 32],
    /// Initiator → responder.
    pub i2r: DirectionKeys,
    /// Responder → initiator.
    pub r2i: DirectionKeys,
}

/// Derives the key schedule. `initiator` and `responder` are the exact
/// HELLO frames, and the nonces are the ones they carry.
pub(super) fn derive<C: Crypto>(
    crypto: &C,
    shared_key: &[u8],
    initiator: &[u8; HELLO_LEN],
    responder: &[u8; HELLO_LEN],
    nonce_i: &[u8; 32],
    nonce_r: &[u8; 32],
) -> KeySchedule {
    let transcript = crypto.sha256(&[TRANSCRIPT_LABEL, initiator, responder]);
    let mut salt = Zeroizing::new([0u8; 64]);
    salt[..32].copy_from_slice(nonce_i);
    salt[32..].copy_from_slice(nonce_r);
    let prk = Zeroizing::new(crypto.hmac(&salt[..]).mac(&[shared_key]));
    let prk = crypto.hmac(&prk[..]);
    let expand = |label: &[u8]| Zeroizing::new(prk.mac(&[EXPAND_PREFIX, label, &transcript, &[1]]));
    KeySchedule {
        transcript,
        i2r: DirectionKeys {
            enc: expand(b"i2r enc"),
            mac: expand(b"i2r mac"),
        },
        r2i: DirectionKeys {
            enc: expand(b"r2i enc"),
            mac: expand(b"r2i mac"),
        },
    }
}

/// The value a CONFIRM frame carries: the transcript MACed under the
/// sender's direction MAC key. Its input starts with `s` (0x73), a frame
/// tag's with the magic `S` (0x53), so the two can never collide.
pub(super) fn confirm_value<H: HmacKey>(mac: &H, transcript: &[u8; 32]) -> [u8; 32] {
    mac.mac(&[CONFIRM_LABEL, transcript])
}
