//! Byte buffers that may hold key material: the shared key in the
//! configuration text, SA keys in PF_KEY dump records.

use std::fmt;

use zeroize::Zeroize;

/// Bytes that are wiped when dropped and that `Debug` shows only as a
/// length, so a log line or a panic message never carries a key.
///
/// Comparison (for tests and the fuzz target) is not constant-time: these
/// buffers are never compared to authenticate anything.
#[derive(PartialEq, Eq, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    /// A copy of `bytes` in a buffer of exactly that size.
    pub fn from_slice(bytes: &[u8]) -> SecretBytes {
        let mut v = Vec::with_capacity(bytes.len());
        v.extend_from_slice(bytes);
        SecretBytes(v)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The buffer, for appending. Growing it past its capacity reallocates
    /// and leaves the old copy unwiped: reserve first, or use
    /// [`reserve_wiping`].
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> SecretBytes {
        SecretBytes::from_slice(&self.0)
    }
}

impl std::ops::Deref for SecretBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

/// Makes room for `extra` more bytes in `v` without leaving an unwiped copy
/// of its contents behind: when it must grow, the contents move to a new
/// buffer and the old one is wiped before it is freed.
pub fn reserve_wiping(v: &mut Vec<u8>, extra: usize) {
    if v.capacity() - v.len() >= extra {
        return;
    }
    let want = v
        .len()
        .saturating_add(extra)
        .max(v.capacity().saturating_mul(2))
        .max(4096);
    let mut grown = Vec::with_capacity(want);
    grown.extend_from_slice(v);
    v.zeroize();
    *v = grown;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_bytes() {
        let s = SecretBytes::from_slice(b"sasyncd-test-key");
        let shown = format!("{s:?} {:?}", Some(&s));
        assert_eq!(shown, "SecretBytes(16 bytes) Some(SecretBytes(16 bytes))");
        assert!(!shown.contains("sasyncd") && !shown.contains("115"));
        assert_eq!(s.clone(), s);
        assert_eq!(s.as_bytes(), b"sasyncd-test-key");
    }

    #[test]
    fn growth_keeps_contents() {
        let mut v = b"abc".to_vec();
        v.shrink_to_fit();
        reserve_wiping(&mut v, 10_000);
        assert_eq!(v, b"abc");
        assert!(v.capacity() >= 10_003);
        let cap = v.capacity();
        reserve_wiping(&mut v, 10);
        assert_eq!(v.capacity(), cap, "no growth when there is room");
    }
}
