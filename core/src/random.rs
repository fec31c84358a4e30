//! Randomness comes from outside: the platform's CSPRNG (`arc4random` on
//! OpenBSD), the simulator's seeded PRNG, or a firmware TRNG.

/// A source of random bytes. Implementations for real deployments must be
/// cryptographically secure: IVs, session nonces and epochs come from here.
pub trait Random {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]);

    /// A random `u32`.
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_le_bytes(b)
    }

    /// A random `u64`.
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

impl<R: Random + ?Sized> Random for &mut R {
    fn fill(&mut self, out: &mut [u8]) {
        (**self).fill(out)
    }
}
