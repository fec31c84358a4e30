//! The set of entries a full snapshot contained, for the slave's sweep.
//!
//! A v2 resync does not flush first; after the snapshot the slave deletes
//! what the snapshot did not contain. Remembering a million keys exactly
//! would need a million-entry buffer, so the set is a Bloom filter of fixed
//! size: no false negatives (nothing the master has is ever deleted), and a
//! rare false positive only lets a stale entry survive one round. The hash
//! is salted per snapshot, so the same stale entry is not missed twice and
//! anti-entropy removes it on the next digest.
//!
//! Each entry is marked twice: by identity (what the kernel knows it by)
//! and by content (its canonical form). A local entry whose identity the
//! snapshot had but whose content differs was not replaced by the
//! snapshot's ADD (the kernel answers EEXIST): the sweep deletes it and
//! asks for the snapshot once more.

use crate::crypto::Crypto;

/// Number of bit positions probed per key.
const PROBES: usize = 4;

/// A salted Bloom filter of `BYTES` bytes.
#[derive(Clone)]
pub struct SnapshotMarks<const BYTES: usize> {
    bits: [u8; BYTES],
    salt: [u8; 16],
    count: u32,
}

impl<const BYTES: usize> core::fmt::Debug for SnapshotMarks<BYTES> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SnapshotMarks({} keys in {} bytes)", self.count, BYTES)
    }
}

impl<const BYTES: usize> SnapshotMarks<BYTES> {
    /// An empty set with the given salt (fresh randomness per snapshot).
    pub const fn new(salt: [u8; 16]) -> Self {
        SnapshotMarks {
            bits: [0; BYTES],
            salt,
            count: 0,
        }
    }

    /// Empties the set and changes the salt.
    pub fn reset(&mut self, salt: [u8; 16]) {
        self.bits = [0; BYTES];
        self.salt = salt;
        self.count = 0;
    }

    /// Keys inserted since the last reset.
    pub fn count(&self) -> u32 {
        self.count
    }

    fn positions<C: Crypto>(&self, crypto: &C, key: &[&[u8]]) -> [usize; PROBES] {
        let mut parts: [&[u8]; 4] = [&self.salt, &[], &[], &[]];
        for (p, k) in parts[1..].iter_mut().zip(key.iter()) {
            *p = k;
        }
        let h = crypto.sha256(&parts);
        let nbits = (BYTES as u64) * 8;
        let mut out = [0usize; PROBES];
        for (i, o) in out.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&h[i * 8..i * 8 + 8]);
            *o = (u64::from_le_bytes(w) % nbits.max(1)) as usize;
        }
        out
    }

    /// Records that the snapshot contained `key` (the concatenation of up
    /// to three parts).
    pub fn insert<C: Crypto>(&mut self, crypto: &C, key: &[&[u8]]) {
        if BYTES == 0 {
            return;
        }
        for p in self.positions(crypto, key) {
            self.bits[p / 8] |= 1 << (p % 8);
        }
        self.count = self.count.saturating_add(1);
    }

    /// Whether `key` may have been in the snapshot (never `false` for a key
    /// that was inserted). With no storage everything counts as contained,
    /// so nothing is ever swept wrongly.
    pub fn contains<C: Crypto>(&self, crypto: &C, key: &[&[u8]]) -> bool {
        if BYTES == 0 {
            return true;
        }
        self.positions(crypto, key)
            .iter()
            .all(|&p| self.bits[p / 8] & (1 << (p % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SoftCrypto;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let c = SoftCrypto;
        let mut m = SnapshotMarks::<4096>::new([7; 16]);
        for i in 0u32..1000 {
            m.insert(&c, &[&i.to_be_bytes()]);
        }
        assert_eq!(m.count(), 1000);
        for i in 0u32..1000 {
            assert!(m.contains(&c, &[&i.to_be_bytes()]));
        }
        let fp = (1000u32..11000)
            .filter(|i| m.contains(&c, &[&i.to_be_bytes()]))
            .count();
        assert!(fp < 100, "false positives: {fp} of 10000");
    }

    #[test]
    fn salt_changes_which_keys_collide() {
        let c = SoftCrypto;
        let mut a = SnapshotMarks::<64>::new([1; 16]);
        let mut b = SnapshotMarks::<64>::new([2; 16]);
        for i in 0u32..40 {
            a.insert(&c, &[&i.to_be_bytes()]);
            b.insert(&c, &[&i.to_be_bytes()]);
        }
        let fa: std::vec::Vec<u32> = (100u32..400)
            .filter(|i| a.contains(&c, &[&i.to_be_bytes()]))
            .collect();
        let fb: std::vec::Vec<u32> = (100u32..400)
            .filter(|i| b.contains(&c, &[&i.to_be_bytes()]))
            .collect();
        assert!(!fa.is_empty() && fa != fb);
        a.reset([3; 16]);
        assert_eq!(a.count(), 0);
        assert!(!a.contains(&c, &[&5u32.to_be_bytes()]));
    }

    #[test]
    fn zero_size_never_sweeps() {
        let m = SnapshotMarks::<0>::new([0; 16]);
        assert!(m.contains(&SoftCrypto, &[b"anything"]));
    }
}
