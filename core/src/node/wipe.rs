//! Wiping bytes that held PF_KEY messages (SA keys) once they are no
//! longer needed: a popped or evicted record, the tail a compaction
//! leaves behind, a decrypted frame, a working buffer after the call.
//!
//! A plain `fill(0)` followed by [`core::hint::black_box`] of the slice.
//! On reuse the stores cannot be dropped anyway: the buffer stays reachable
//! through the node and is read again later. The one place an optimiser
//! may drop them is just before the memory is freed (dead stores); the
//! black box is an opaque read of the whole slice after the fill, so the
//! zeros must be in memory when it runs. `zeroize`'s volatile writes
//! (core forbids `unsafe` of its own) would do the same one byte at a
//! time; this runs at memset speed on every frame and record, which the
//! hot paths need. The guarantee rests on the compiler's treatment of
//! `black_box` (an opaque inline-assembly use under LLVM); the node's
//! buffers are checked by `tests/tests/node_wipe.rs`.

/// Zeroes `buf` so that the zeros reach memory (see the module's text).
#[inline]
pub(crate) fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    core::hint::black_box(&*buf);
}
