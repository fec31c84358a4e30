//! Frame cryptography behind traits, so that firmware can plug in hardware
//! AES and SHA engines while the wire code stays the same.
//!
//! The wire formats need exactly four primitives: AES (as a keyed block
//! cipher; CBC and CTR are built on top here unless an engine overrides
//! them), SHA-1 (the legacy frame's plaintext hash), SHA-256 and
//! HMAC-SHA-256 (the v2 MAC and key derivation). [`SoftCrypto`] implements
//! them with RustCrypto's `aes`, `sha1`, `sha2` and `hmac`.
//!
//! Key material held here is wiped on drop: the soft AES schedules and HMAC
//! states come from crates built with their `zeroize` feature, and
//! [`SecretKey`] zeroizes its bytes.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// AES block size in bytes.
pub const BLOCK: usize = 16;

/// The AES key was not 16, 24 or 32 bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadKeyLength(pub usize);

impl core::fmt::Display for BadKeyLength {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AES key must be 16, 24 or 32 bytes, not {}", self.0)
    }
}

impl core::error::Error for BadKeyLength {}

/// A keyed AES instance (the key schedule is prepared once, used per frame).
pub trait AesKey {
    /// Encrypts one block in place.
    fn encrypt_block(&self, block: &mut [u8; BLOCK]);
    /// Decrypts one block in place.
    fn decrypt_block(&self, block: &mut [u8; BLOCK]);

    /// AES-CBC encryption in place. `buf.len()` must be a multiple of 16;
    /// callers in this crate guarantee it (a trailing partial block is left
    /// untouched rather than panicking).
    fn cbc_encrypt(&self, iv: &[u8; BLOCK], buf: &mut [u8]) {
        let mut prev = *iv;
        for chunk in buf.chunks_exact_mut(BLOCK) {
            let mut block = [0u8; BLOCK];
            for i in 0..BLOCK {
                block[i] = chunk[i] ^ prev[i];
            }
            self.encrypt_block(&mut block);
            chunk.copy_from_slice(&block);
            prev = block;
        }
    }

    /// AES-CBC decryption in place (same length rule as [`cbc_encrypt`](Self::cbc_encrypt)).
    fn cbc_decrypt(&self, iv: &[u8; BLOCK], buf: &mut [u8]) {
        let mut prev = *iv;
        for chunk in buf.chunks_exact_mut(BLOCK) {
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(chunk);
            let saved = block;
            self.decrypt_block(&mut block);
            for i in 0..BLOCK {
                chunk[i] = block[i] ^ prev[i];
            }
            prev = saved;
        }
    }

    /// AES-CTR keystream XOR in place: counter blocks are `nonce` with its
    /// last 8 bytes taken as a big-endian counter starting at the given
    /// value and incremented per block. Any length is fine.
    fn ctr_apply(&self, nonce: &[u8; BLOCK], buf: &mut [u8]) {
        let mut counter = u64::from_be_bytes([
            nonce[8], nonce[9], nonce[10], nonce[11], nonce[12], nonce[13], nonce[14], nonce[15],
        ]);
        for chunk in buf.chunks_mut(BLOCK) {
            let mut ks = *nonce;
            ks[8..].copy_from_slice(&counter.to_be_bytes());
            self.encrypt_block(&mut ks);
            for (b, k) in chunk.iter_mut().zip(ks.iter()) {
                *b ^= k;
            }
            counter = counter.wrapping_add(1);
        }
    }
}

/// A keyed HMAC-SHA-256 instance; cloning it is how a fresh MAC starts.
pub trait HmacKey {
    /// HMAC-SHA-256 over the concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32];
}

/// The primitives the wire formats need.
pub trait Crypto {
    /// A prepared AES key schedule.
    type Aes: AesKey;
    /// A prepared HMAC-SHA-256 key.
    type Hmac: HmacKey;
    /// Prepares an AES key of 16, 24 or 32 bytes.
    fn aes(&self, key: &[u8]) -> Result<Self::Aes, BadKeyLength>;
    /// Prepares an HMAC-SHA-256 key (any length).
    fn hmac(&self, key: &[u8]) -> Self::Hmac;
    /// SHA-1 over the concatenation of `parts`.
    fn sha1(&self, parts: &[&[u8]]) -> [u8; 20];
    /// SHA-256 over the concatenation of `parts`.
    fn sha256(&self, parts: &[&[u8]]) -> [u8; 32];
}

/// Software implementation of [`Crypto`] with RustCrypto.
#[derive(Debug, Clone, Copy, Default)]
pub struct SoftCrypto;

/// A software AES key schedule of any of the three sizes.
#[derive(Clone)]
pub enum SoftAes {
    /// AES-128.
    Aes128(aes::Aes128),
    /// AES-192.
    Aes192(aes::Aes192),
    /// AES-256.
    Aes256(aes::Aes256),
}

impl core::fmt::Debug for SoftAes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let bits = match self {
            SoftAes::Aes128(_) => 128,
            SoftAes::Aes192(_) => 192,
            SoftAes::Aes256(_) => 256,
        };
        write!(f, "SoftAes({bits})")
    }
}

/// Blocks handed to the cipher at once: enough to keep AES-NI's pipeline
/// full (512 bytes).
#[cfg(not(target_pointer_width = "32"))]
const BATCH: usize = 32;
/// On 32-bit targets (firmware, no AES instructions: the software
/// backend works on two blocks at a time) a small batch keeps the stack
/// frame of a frame's encryption small.
#[cfg(target_pointer_width = "32")]
const BATCH: usize = 4;

impl SoftAes {
    fn encrypt_blocks(&self, blocks: &mut [aes::Block]) {
        match self {
            SoftAes::Aes128(c) => c.encrypt_blocks(blocks),
            SoftAes::Aes192(c) => c.encrypt_blocks(blocks),
            SoftAes::Aes256(c) => c.encrypt_blocks(blocks),
        }
    }
    fn decrypt_blocks(&self, blocks: &mut [aes::Block]) {
        match self {
            SoftAes::Aes128(c) => c.decrypt_blocks(blocks),
            SoftAes::Aes192(c) => c.decrypt_blocks(blocks),
            SoftAes::Aes256(c) => c.decrypt_blocks(blocks),
        }
    }
}

/// `dst ^= src` over whole 16-byte words (a byte loop costs more than AES).
fn xor_block(dst: &mut [u8], src: &[u8; BLOCK]) {
    if dst.len() == BLOCK {
        let mut a = [0u8; BLOCK];
        a.copy_from_slice(dst);
        let x = u128::from_ne_bytes(a) ^ u128::from_ne_bytes(*src);
        dst.copy_from_slice(&x.to_ne_bytes());
    } else {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d ^= s;
        }
    }
}

impl AesKey for SoftAes {
    /// Batched: the counter blocks of up to 32 blocks go through the
    /// cipher in one call.
    fn ctr_apply(&self, nonce: &[u8; BLOCK], buf: &mut [u8]) {
        let mut counter = u64::from_be_bytes([
            nonce[8], nonce[9], nonce[10], nonce[11], nonce[12], nonce[13], nonce[14], nonce[15],
        ]);
        let mut ks = [aes::Block::default(); BATCH];
        for chunk in buf.chunks_mut(BLOCK * BATCH) {
            let n = chunk.len().div_ceil(BLOCK);
            for k in ks.iter_mut().take(n) {
                k[..8].copy_from_slice(&nonce[..8]);
                k[8..].copy_from_slice(&counter.to_be_bytes());
                counter = counter.wrapping_add(1);
            }
            self.encrypt_blocks(&mut ks[..n]);
            for (d, k) in chunk.chunks_mut(BLOCK).zip(ks.iter()) {
                let mut kb = [0u8; BLOCK];
                kb.copy_from_slice(k);
                xor_block(d, &kb);
            }
        }
    }

    /// Batched: CBC decryption is parallel over blocks.
    fn cbc_decrypt(&self, iv: &[u8; BLOCK], buf: &mut [u8]) {
        let mut prev = *iv;
        let mut work = [aes::Block::default(); BATCH];
        for chunk in buf.chunks_mut(BLOCK * BATCH) {
            let n = chunk.len() / BLOCK;
            for (w, c) in work.iter_mut().zip(chunk.chunks_exact(BLOCK)) {
                w.copy_from_slice(c);
            }
            self.decrypt_blocks(&mut work[..n]);
            for (c, w) in chunk.chunks_exact_mut(BLOCK).zip(work.iter()) {
                let mut ct = [0u8; BLOCK];
                ct.copy_from_slice(c);
                let mut pt = [0u8; BLOCK];
                pt.copy_from_slice(w);
                xor_block(&mut pt, &prev);
                c.copy_from_slice(&pt);
                prev = ct;
            }
        }
    }

    fn encrypt_block(&self, block: &mut [u8; BLOCK]) {
        let b: &mut aes::Block = block.into();
        match self {
            SoftAes::Aes128(c) => c.encrypt_block(b),
            SoftAes::Aes192(c) => c.encrypt_block(b),
            SoftAes::Aes256(c) => c.encrypt_block(b),
        }
    }
    fn decrypt_block(&self, block: &mut [u8; BLOCK]) {
        let b: &mut aes::Block = block.into();
        match self {
            SoftAes::Aes128(c) => c.decrypt_block(b),
            SoftAes::Aes192(c) => c.decrypt_block(b),
            SoftAes::Aes256(c) => c.decrypt_block(b),
        }
    }
}

/// A software HMAC-SHA-256 key (the ipad/opad states are precomputed).
#[derive(Clone)]
pub struct SoftHmac(Hmac<Sha256>);

impl core::fmt::Debug for SoftHmac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SoftHmac(..)")
    }
}

impl HmacKey for SoftHmac {
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.0.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

impl Crypto for SoftCrypto {
    type Aes = SoftAes;
    type Hmac = SoftHmac;

    fn aes(&self, key: &[u8]) -> Result<SoftAes, BadKeyLength> {
        let bad = |_| BadKeyLength(key.len());
        match key.len() {
            16 => aes::Aes128::new_from_slice(key)
                .map(SoftAes::Aes128)
                .map_err(bad),
            24 => aes::Aes192::new_from_slice(key)
                .map(SoftAes::Aes192)
                .map_err(bad),
            32 => aes::Aes256::new_from_slice(key)
                .map(SoftAes::Aes256)
                .map_err(bad),
            n => Err(BadKeyLength(n)),
        }
    }

    fn hmac(&self, key: &[u8]) -> SoftHmac {
        // HMAC accepts keys of any length; the error arm cannot be taken, but
        // an empty-key fallback keeps this panic-free regardless.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
            Ok(h) => SoftHmac(h),
            Err(_) => SoftHmac(<Hmac<Sha256> as KeyInit>::new(&Default::default())),
        }
    }

    fn sha1(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut h = Sha1::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }
}

/// Secret key bytes with a fixed capacity, wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> SecretKey<N> {
    /// No key (zero bytes).
    pub const fn empty() -> Self {
        SecretKey {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Copies `key`; `None` if it is longer than `N`.
    pub fn new(key: &[u8]) -> Option<Self> {
        if key.len() > N {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..key.len()].copy_from_slice(key);
        Some(SecretKey {
            bytes,
            len: key.len(),
        })
    }
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl<const N: usize> Drop for SecretKey<N> {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl<const N: usize> core::fmt::Debug for SecretKey<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretKey({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> std::vec::Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn aes128_fips197() {
        let k = SoftCrypto
            .aes(&hex("000102030405060708090a0b0c0d0e0f"))
            .unwrap();
        let mut b: [u8; 16] = hex("00112233445566778899aabbccddeeff").try_into().unwrap();
        k.encrypt_block(&mut b);
        assert_eq!(b.to_vec(), hex("69c4e0d86a7b0430d8cdb78070b4c55a"));
        k.decrypt_block(&mut b);
        assert_eq!(b.to_vec(), hex("00112233445566778899aabbccddeeff"));
    }

    #[test]
    fn cbc_sp800_38a_f21() {
        let k = SoftCrypto
            .aes(&hex("2b7e151628aed2a6abf7158809cf4f3c"))
            .unwrap();
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let pt = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let mut buf = pt.clone();
        k.cbc_encrypt(&iv, &mut buf);
        assert_eq!(
            buf,
            hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")
        );
        k.cbc_decrypt(&iv, &mut buf);
        assert_eq!(buf, pt);
    }

    #[test]
    fn ctr_sp800_38a_f51() {
        let k = SoftCrypto
            .aes(&hex("2b7e151628aed2a6abf7158809cf4f3c"))
            .unwrap();
        let nonce: [u8; 16] = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap();
        let mut buf = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        k.ctr_apply(&nonce, &mut buf);
        assert_eq!(
            buf,
            hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff")
        );
    }

    /// The batched implementations agree with the block-at-a-time trait
    /// defaults for every length, including partial tails and > one batch.
    #[test]
    fn batched_modes_match_the_defaults() {
        struct OneByOne<'a>(&'a SoftAes);
        impl AesKey for OneByOne<'_> {
            fn encrypt_block(&self, b: &mut [u8; BLOCK]) {
                self.0.encrypt_block(b)
            }
            fn decrypt_block(&self, b: &mut [u8; BLOCK]) {
                self.0.decrypt_block(b)
            }
        }
        for key in [16usize, 24, 32] {
            let k = SoftCrypto.aes(&[7u8; 32][..key]).unwrap();
            let nonce = [0xfe; 16];
            for len in [0usize, 1, 15, 16, 17, 511, 512, 513, 1000, 4096] {
                let data: std::vec::Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let (mut a, mut b) = (data.clone(), data.clone());
                k.ctr_apply(&nonce, &mut a);
                OneByOne(&k).ctr_apply(&nonce, &mut b);
                assert_eq!(a, b, "ctr key {key} len {len}");
                let aligned = len / BLOCK * BLOCK;
                let (mut c, mut d) = (data[..aligned].to_vec(), data[..aligned].to_vec());
                k.cbc_decrypt(&nonce, &mut c);
                OneByOne(&k).cbc_decrypt(&nonce, &mut d);
                assert_eq!(c, d, "cbc key {key} len {len}");
            }
        }
    }

    #[test]
    fn bad_key_lengths() {
        for n in [0usize, 1, 15, 17, 31, 33] {
            assert_eq!(
                SoftCrypto.aes(&[0u8; 40][..n]).unwrap_err(),
                BadKeyLength(n)
            );
        }
    }

    #[test]
    fn hmac_rfc4231_case2() {
        let m = SoftCrypto
            .hmac(b"Jefe")
            .mac(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            m.to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn sha1_and_sha256() {
        assert_eq!(
            SoftCrypto.sha1(&[b"a", b"bc"]).to_vec(),
            hex("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            SoftCrypto.sha256(&[b"abc"]).to_vec(),
            hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }
}
