//! A fixed-size outgoing byte buffer for one peer connection.
//!
//! The node encodes whole frames into it; the platform drains any prefix it
//! managed to write (partial writes are normal: reference D-13, D-15). A
//! frame is only ever appended whole, so the stream is never corrupted.

/// Outgoing bytes of one connection, `N` bytes at most.
#[derive(Clone)]
pub struct TxBuf<const N: usize> {
    buf: [u8; N],
    start: usize,
    end: usize,
}

impl<const N: usize> core::fmt::Debug for TxBuf<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TxBuf({} of {} bytes queued)", self.len(), N)
    }
}

impl<const N: usize> Default for TxBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TxBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        TxBuf {
            buf: [0; N],
            start: 0,
            end: 0,
        }
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes that can still be appended.
    pub fn room(&self) -> usize {
        N - self.len()
    }

    /// The bytes to write next.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The platform wrote `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops everything (the connection is gone).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Lets `encode` write one frame into the free space of at most `max`
    /// bytes; `encode` returns the frame's length or an error, in which
    /// case nothing is appended. `None` means there is not `max` bytes of room.
    pub fn append_with<E>(
        &mut self,
        max: usize,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Option<Result<usize, E>> {
        if self.room() < max {
            return None;
        }
        if N - self.end < max {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let slot = &mut self.buf[self.end..self.end + max];
        Some(encode(slot).map(|n| {
            let n = n.min(max);
            self.end += n;
            n
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_and_compaction() {
        let mut t = TxBuf::<16>::new();
        let r: Result<usize, ()> = t
            .append_with(8, |b| {
                b[..6].copy_from_slice(b"abcdef");
                Ok(6)
            })
            .unwrap();
        assert_eq!(r, Ok(6));
        t.consume(4);
        assert_eq!(t.pending(), b"ef");
        // 14 bytes of room but only 10 at the tail: compacts first.
        let r: Result<usize, ()> = t
            .append_with(12, |b| {
                b[..12].copy_from_slice(b"ghijklmnopqr");
                Ok(12)
            })
            .unwrap();
        assert_eq!(r, Ok(12));
        assert_eq!(t.pending(), b"efghijklmnopqr");
        assert!(t.append_with::<()>(3, |_| Ok(3)).is_none());
        t.consume(100);
        assert!(t.is_empty());
        assert_eq!(t.room(), 16);
    }

    #[test]
    fn failed_encode_appends_nothing() {
        let mut t = TxBuf::<8>::new();
        assert_eq!(t.append_with(8, |_| Err::<usize, u8>(1)), Some(Err(1)));
        assert!(t.is_empty());
    }
}
