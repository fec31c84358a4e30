//! 64-bit keyed fingerprints (SipHash-2-4) of entries: what the slave's
//! snapshot marks and the anti-entropy buckets are built from. One SipHash
//! of an entry's identity and one of its content replace the SHA-256 runs
//! the Bloom-filter marks needed (four per entry); they are not meant to
//! resist someone who knows the key, which the marks draw afresh for every
//! snapshot and the buckets fix for the whole cluster.

/// A SipHash-2-4 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Key(pub u64, pub u64);

impl Key {
    /// A key from 16 bytes.
    pub fn from_bytes(b: [u8; 16]) -> Key {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&b[..8]);
        hi.copy_from_slice(&b[8..]);
        Key(u64::from_le_bytes(lo), u64::from_le_bytes(hi))
    }
}

/// The fixed key every node uses to put an entry in a bucket (they must
/// agree) and to sum a bucket's content.
pub const BUCKET_KEY: Key = Key(0x7361_7379_6e63_6462, 0x7563_6b65_7473_2031);
/// The fixed key for a bucket's content sums.
pub const CONTENT_KEY: Key = Key(0x7361_7379_6e63_6463, 0x6f6e_7465_6e74_2031);

/// The bucket of an entry, from its identity bytes.
pub fn bucket(identity: &[u8]) -> usize {
    (siphash(BUCKET_KEY, &[identity]) >> 56) as usize
}

pub use crate::ctl::{BucketSet, BUCKETS};

/// Whether bucket `b` is in `set`.
pub fn has(set: &BucketSet, b: usize) -> bool {
    set[b / 8] & (1 << (b % 8)) != 0
}

/// Adds bucket `b` to `set`.
pub fn add(set: &mut BucketSet, b: usize) {
    set[b / 8] |= 1 << (b % 8);
}

/// Every bucket.
pub const ALL: BucketSet = [0xff; BUCKETS / 8];

/// Number of buckets in `set`.
pub fn count(set: &BucketSet) -> usize {
    set.iter().map(|b| b.count_ones() as usize).sum()
}

/// Per-bucket sums of the tables at a position: what a master's digest
/// announces, and what a slave compares them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BucketSums {
    pos: crate::state::Position,
    sums: [u64; BUCKETS],
    /// Buckets that changed while the tables were read.
    unknown: BucketSet,
}

impl BucketSums {
    pub const EMPTY: BucketSums = BucketSums {
        pos: crate::state::Position::NONE,
        sums: [0; BUCKETS],
        unknown: [0; BUCKETS / 8],
    };

    /// Empty sums at `pos`, in place (they are 2 KiB).
    pub fn reset(&mut self, pos: crate::state::Position) {
        self.pos = pos;
        self.sums.fill(0);
        self.unknown.fill(0);
    }

    /// The position the sums are of.
    pub fn pos(&self) -> crate::state::Position {
        self.pos
    }

    /// Adds an entry's content fingerprint `h` to bucket `b`.
    pub fn add(&mut self, b: usize, h: u64) {
        if let Some(x) = self.sums.get_mut(b) {
            *x = x.wrapping_add(h);
        }
    }

    /// Bucket `b`'s sum.
    pub fn sum(&self, b: usize) -> u64 {
        self.sums.get(b).copied().unwrap_or(0)
    }

    /// The sums of buckets `first..first + n`.
    pub fn range(&self, first: usize, n: usize) -> &[u64] {
        self.sums.get(first..first + n).unwrap_or(&[])
    }

    /// These buckets changed while the tables were read.
    pub fn set_unknown(&mut self, set: BucketSet) {
        self.unknown = set;
    }

    /// Whether bucket `b` changed while the tables were read.
    pub fn is_unknown(&self, b: usize) -> bool {
        b < BUCKETS && has(&self.unknown, b)
    }
}

#[inline]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-2-4 of the concatenation of `parts` under `key`.
pub fn siphash(key: Key, parts: &[&[u8]]) -> u64 {
    let mut v = [
        key.0 ^ 0x736f_6d65_7073_6575,
        key.1 ^ 0x646f_7261_6e64_6f6d,
        key.0 ^ 0x6c79_6765_6e65_7261,
        key.1 ^ 0x7465_6462_7974_6573,
    ];
    let mut total: usize = 0;
    let mut tail = [0u8; 8];
    let mut tail_len = 0;
    let compress = |v: &mut [u64; 4], m: u64| {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    };
    for part in parts {
        total = total.wrapping_add(part.len());
        let mut p: &[u8] = part;
        if tail_len > 0 {
            let take = (8 - tail_len).min(p.len());
            tail[tail_len..tail_len + take].copy_from_slice(&p[..take]);
            tail_len += take;
            p = &p[take..];
            if tail_len < 8 {
                continue;
            }
            compress(&mut v, u64::from_le_bytes(tail));
        }
        let mut chunks = p.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            compress(&mut v, u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        tail_len = rest.len();
    }
    let mut last = [0u8; 8];
    last[..tail_len].copy_from_slice(&tail[..tail_len]);
    last[7] = total as u8;
    compress(&mut v, u64::from_le_bytes(last));
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference implementation's test vectors: key 00..0f, input
    /// 00, 01, .. of length 0..8 and 15, 16 (from the SipHash paper's
    /// vectors.h, SipHash-2-4 64-bit output).
    #[test]
    fn known_answers() {
        let key = Key::from_bytes(core::array::from_fn(|i| i as u8));
        let input: [u8; 64] = core::array::from_fn(|i| i as u8);
        let want: [(usize, u64); 6] = [
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (2, 0x0d6c_8009_d9a9_4f5a),
            (7, 0xab02_00f5_8b01_d137),
            (8, 0x93f5_f579_9a93_2462),
            (15, 0xa129_ca61_49be_45e5),
        ];
        for (len, h) in want {
            assert_eq!(siphash(key, &[&input[..len]]), h, "length {len}");
        }
    }

    #[test]
    fn parts_hash_like_their_concatenation() {
        let key = Key(1, 2);
        let data: [u8; 40] = core::array::from_fn(|i| (i * 7) as u8);
        let whole = siphash(key, &[&data]);
        for cut in 0..=40 {
            for cut2 in cut..=40 {
                assert_eq!(
                    siphash(key, &[&data[..cut], &data[cut..cut2], &data[cut2..]]),
                    whole,
                    "cuts {cut} {cut2}"
                );
            }
        }
    }

    #[test]
    fn bucket_sets() {
        let mut s = [0u8; BUCKETS / 8];
        add(&mut s, 3);
        add(&mut s, 255);
        assert!(has(&s, 3) && has(&s, 255) && !has(&s, 4));
        assert_eq!(count(&s), 2);
        assert_eq!(count(&ALL), BUCKETS);
        assert!(bucket(b"some identity") < BUCKETS);
    }

    #[test]
    fn bucket_sums_add_up_per_bucket_and_reset_in_place() {
        let pos = crate::state::Position { epoch: 3, seq: 4 };
        let mut s = BucketSums::EMPTY;
        s.reset(pos);
        s.add(7, u64::MAX);
        s.add(7, 2);
        s.add(BUCKETS, 1);
        assert_eq!((s.pos(), s.sum(7), s.sum(8)), (pos, 1, 0));
        assert_eq!(s.range(6, 2), &[0, 1]);
        let mut u = [0; BUCKETS / 8];
        add(&mut u, 9);
        s.set_unknown(u);
        assert!(s.is_unknown(9) && !s.is_unknown(7) && !s.is_unknown(BUCKETS));
        s.reset(crate::state::Position::NONE);
        assert_eq!(s, BucketSums::EMPTY);
    }
}
