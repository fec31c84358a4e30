//! A fixed-size outgoing byte buffer for one peer connection.
//!
//! The node encodes whole frames into it; the platform drains any prefix it
//! managed to write (partial writes are normal: reference D-13, D-15). A
//! frame is only ever appended whole, so the stream is never corrupted.

use super::storage::ManagedSlice;
use super::wipe::wipe;

/// Outgoing bytes of one connection, in the platform's buffer.
pub struct TxBuf<'a> {
    buf: ManagedSlice<'a, u8>,
    start: usize,
    end: usize,
}

impl core::fmt::Debug for TxBuf<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "TxBuf({} of {} bytes queued)",
            self.len(),
            self.buf.len()
        )
    }
}

impl<'a> TxBuf<'a> {
    /// An empty buffer.
    pub fn new(buf: impl Into<ManagedSlice<'a, u8>>) -> Self {
        TxBuf {
            buf: buf.into(),
            start: 0,
            end: 0,
        }
    }

    /// Bytes waiting to be written.
    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes that can still be appended.
    pub fn room(&self) -> usize {
        self.buf.len() - self.len()
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
        if self.buf.len() - self.end < max {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let slot = &mut self.buf[self.end..self.end + max];
        let res = encode(slot);
        if res.is_err() {
            // A codec seals in place: a failure may leave plaintext behind.
            wipe(slot);
        }
        Some(res.map(|n| {
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
        let mut buf = [0; 16];
        let mut t = TxBuf::new(&mut buf);
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
        let mut buf = [0; 8];
        let mut t = TxBuf::new(&mut buf);
        assert_eq!(t.append_with(8, |_| Err::<usize, u8>(1)), Some(Err(1)));
        assert!(t.is_empty());
    }

    /// An encoder that fails after copying its plaintext in (a seal that
    /// copies, then finds the frame too long) leaves none of it behind.
    #[test]
    fn failed_encode_leaves_no_plaintext() {
        let mut buf = [0; 16];
        let mut t = TxBuf::new(&mut buf);
        let r = t.append_with(12, |out| {
            out[..8].copy_from_slice(b"SA-KEY!!");
            Err::<usize, ()>(())
        });
        assert_eq!(r, Some(Err(())));
        assert!(t.is_empty());
        drop(t);
        assert!(buf.iter().all(|&b| b == 0));
    }
}
