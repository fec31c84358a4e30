//! An order-independent digest of a set of entries (SAs or flows), for
//! anti-entropy: master and slave each digest their kernel tables and
//! compare, without agreeing on an order or buffering anything.
//!
//! Each entry's canonical bytes (see `pfkey::canonical_digest_input`) are
//! hashed with SHA-256 and the hashes are added as 256-bit big-endian
//! integers modulo 2^256, next to a count. Addition is commutative, so the
//! order does not matter, and unlike XOR a duplicated entry does not cancel
//! itself out. Because it is a group, an entry can also be taken out again
//! ([`MultisetDigest::remove`]), so a digest can be kept up to date
//! incrementally.

use crate::crypto::Crypto;

/// Prefix hashed before every entry, so these hashes are never confused
/// with SHA-256 values used elsewhere in the protocol.
const DOMAIN: &[u8] = b"sasyncd multiset digest v1\0";

/// Running digest of a multiset of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MultisetDigest {
    /// The sum, as four big-endian 64-bit limbs (most significant first).
    sum: [u64; 4],
    count: u32,
}

impl MultisetDigest {
    /// The digest of the empty set.
    pub const fn new() -> MultisetDigest {
        MultisetDigest {
            sum: [0; 4],
            count: 0,
        }
    }

    /// Adds one entry, given as its canonical bytes.
    pub fn add<C: Crypto>(&mut self, crypto: &C, canonical: &[u8]) {
        let h = limbs(&crypto.sha256(&[DOMAIN, canonical]));
        let mut carry = false;
        for i in (0..4).rev() {
            let (s, c1) = self.sum[i].overflowing_add(h[i]);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            self.sum[i] = s;
            carry = c1 || c2;
        }
        self.count = self.count.wrapping_add(1);
    }

    /// Takes one entry out again (the inverse of [`add`](Self::add)).
    pub fn remove<C: Crypto>(&mut self, crypto: &C, canonical: &[u8]) {
        let h = limbs(&crypto.sha256(&[DOMAIN, canonical]));
        let mut borrow = false;
        for i in (0..4).rev() {
            let (s, b1) = self.sum[i].overflowing_sub(h[i]);
            let (s, b2) = s.overflowing_sub(u64::from(borrow));
            self.sum[i] = s;
            borrow = b1 || b2;
        }
        self.count = self.count.wrapping_sub(1);
    }

    /// Number of entries added (modulo 2^32).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The 32-byte digest and the entry count.
    pub fn finish(&self) -> ([u8; 32], u32) {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.sum) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        (out, self.count)
    }
}

fn limbs(h: &[u8; 32]) -> [u64; 4] {
    let mut l = [0u64; 4];
    for (limb, chunk) in l.iter_mut().zip(h.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(b);
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SoftCrypto;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn digest(entries: &[Vec<u8>]) -> ([u8; 32], u32) {
        let mut d = MultisetDigest::new();
        for e in entries {
            d.add(&SoftCrypto, e);
        }
        d.finish()
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(MultisetDigest::new().finish(), ([0; 32], 0));
    }

    #[test]
    fn single_entry_is_its_domain_separated_hash() {
        let (d, n) = digest(&[b"sa".to_vec()]);
        assert_eq!(n, 1);
        assert_eq!(d, SoftCrypto.sha256(&[DOMAIN, b"sa"]));
    }

    #[test]
    fn carries_across_limbs() {
        // Adding the same entry twice is doubling: check against a
        // byte-wise big-endian doubling of the hash.
        let h = SoftCrypto.sha256(&[DOMAIN, b"x"]);
        let mut want = [0u8; 32];
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let v = u16::from(h[i]) * 2 + carry;
            want[i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(digest(&[b"x".to_vec(), b"x".to_vec()]), (want, 2));
    }

    #[test]
    fn duplicates_do_not_cancel() {
        let one = digest(&[b"a".to_vec()]);
        let two = digest(&[b"a".to_vec(), b"a".to_vec()]);
        assert_ne!(two.0, [0; 32]);
        assert_ne!(two.0, one.0);
        assert_eq!(two.1, 2);
        // {a, a, b} differs from {b} even though XOR would make them equal.
        let aab = digest(&[b"a".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_ne!(aab.0, digest(&[b"b".to_vec()]).0);
    }

    #[test]
    fn one_changed_byte_changes_the_digest() {
        let a = digest(&[b"entry one".to_vec(), b"entry two".to_vec()]);
        let b = digest(&[b"entry one".to_vec(), b"entry twO".to_vec()]);
        assert_ne!(a.0, b.0);
        assert_eq!(a.1, b.1);
    }

    #[test]
    fn remove_undoes_add() {
        let mut d = MultisetDigest::new();
        d.add(&SoftCrypto, b"keep");
        let before = d.finish();
        d.add(&SoftCrypto, b"gone");
        d.remove(&SoftCrypto, b"gone");
        assert_eq!(d.finish(), before);
        d.remove(&SoftCrypto, b"keep");
        assert_eq!(d.finish(), ([0; 32], 0));
    }

    proptest! {
        #[test]
        fn permutation_invariant(
            entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20),
            seed in any::<u64>(),
        ) {
            let mut shuffled = entries.clone();
            // Deterministic Fisher-Yates driven by the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(digest(&entries), digest(&shuffled));
        }
    }
}
