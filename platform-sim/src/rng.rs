//! The simulation's only source of randomness: a seeded xoshiro256**
//! generator (seeded through splitmix64), written here so that no crate
//! update can change a run.
//!
//! Simulated: nothing — this is a plain PRNG. Not cryptographic: keys and
//! nonces drawn from it are only as secret as the seed, which is the point
//! (a failing run can be replayed from its seed).

use core::ops::Range;

/// A deterministic pseudo-random number generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of splitmix64, used to expand a seed into the xoshiro state.
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Rng { s }
    }

    /// The next 64 random bits.
    pub fn u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// The next 32 random bits.
    pub fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    /// Uniform in `0..n`; 0 when `n` is 0. Unbiased (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Uniform in `r`; `r.start` when the range is empty.
    pub fn range(&mut self, r: Range<u64>) -> u64 {
        r.start + self.below(r.end.saturating_sub(r.start))
    }

    /// Uniform index into a collection of `len` items (`len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits give a uniform float in [0, 1).
        let x = (self.u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// An independent generator for a sub-component, so that adding draws
    /// in one component does not shift every other component's stream.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..100 {
            assert_eq!(a.u64(), b.u64());
        }
        assert_ne!(Rng::new(1).u64(), Rng::new(2).u64());
    }

    #[test]
    fn known_first_value() {
        // Pins the algorithm: a change here changes every recorded run.
        let mut r = Rng::new(0);
        let first = r.u64();
        let mut again = Rng::new(0);
        assert_eq!(first, again.u64());
        assert_eq!(first, 0x99ec_5f36_cb75_f2b4);
    }

    #[test]
    fn bounds() {
        let mut r = Rng::new(7);
        assert_eq!(r.below(0), 0);
        assert_eq!(r.range(5..5), 5);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = r.below(10);
            seen[v as usize] = true;
            let w = r.range(100..110);
            assert!((100..110).contains(&w));
        }
        assert!(seen.iter().all(|&s| s));
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2000..3000).contains(&hits), "{hits}");
    }

    #[test]
    fn fill_and_fork() {
        let mut r = Rng::new(3);
        let mut buf = [0u8; 13];
        r.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
        let mut f1 = r.clone().fork();
        let mut f2 = r.fork();
        assert_eq!(f1.u64(), f2.u64());
        assert_ne!(f2.u64(), r.u64());
    }
}
