//! The node's random source: the kernel's, through getentropy(2), which
//! needs no descriptor and so keeps working in a chroot.

use sasyncd_core::random::Random;

/// Random bytes from the kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, out: &mut [u8]) {
        // getentropy(2) serves at most 256 bytes per call.
        for chunk in out.chunks_mut(256) {
            // SAFETY: the pointer and length describe `chunk`, a valid,
            // writable buffer of at most 256 bytes, as getentropy requires.
            let rc = unsafe { libc::getentropy(chunk.as_mut_ptr().cast(), chunk.len()) };
            // It cannot fail for a valid buffer of at most 256 bytes; a
            // node without randomness must not run on guessable values.
            assert_eq!(rc, 0, "getentropy failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_long_buffers_with_different_bytes() {
        let mut a = [0u8; 600];
        let mut b = [0u8; 600];
        OsRandom.fill(&mut a);
        OsRandom.fill(&mut b);
        assert_ne!(a, b);
        assert!(
            a[300..].iter().any(|&x| x != 0),
            "past the first 256 bytes too"
        );
    }
}
