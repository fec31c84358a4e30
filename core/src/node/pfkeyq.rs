//! The queue of PF_KEY messages waiting to be written to the local kernel.
//!
//! Fixed-size and FIFO; when it is full the node stops reading frames from
//! the master (backpressure reaches TCP) rather than dropping anything.

/// Longest PF_KEY message the kernel accepts (`PFKEY_MSG_MAXSZ`).
pub const MAX_MSG: usize = 4096;

use super::storage::ManagedSlice;

/// Length-prefixed PF_KEY messages in the platform's buffer.
pub struct PfkeyQueue<'a> {
    buf: ManagedSlice<'a, u8>,
    start: usize,
    end: usize,
    count: usize,
}

impl core::fmt::Debug for PfkeyQueue<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "PfkeyQueue({} messages, {} bytes)",
            self.count,
            self.end - self.start
        )
    }
}

impl<'a> PfkeyQueue<'a> {
    /// An empty queue.
    pub fn new(buf: impl Into<ManagedSlice<'a, u8>>) -> Self {
        PfkeyQueue {
            buf: buf.into(),
            start: 0,
            end: 0,
            count: 0,
        }
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether a message of `len` bytes fits now.
    pub fn fits(&self, len: usize) -> bool {
        len <= MAX_MSG && self.buf.len() - (self.end - self.start) >= len + 2
    }

    /// Whether any message up to [`MAX_MSG`] bytes fits now.
    pub fn has_room_for_any(&self) -> bool {
        self.fits(MAX_MSG)
    }

    /// Appends a message and lets `edit` adjust it in place (pid, seq).
    /// Returns `false` (nothing queued) if it does not fit.
    pub fn push_with(&mut self, msg: &[u8], edit: impl FnOnce(&mut [u8])) -> bool {
        if !self.fits(msg.len()) {
            return false;
        }
        if self.buf.len() - self.end < msg.len() + 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let len = msg.len() as u16;
        self.buf[self.end..self.end + 2].copy_from_slice(&len.to_ne_bytes());
        let body = &mut self.buf[self.end + 2..self.end + 2 + msg.len()];
        body.copy_from_slice(msg);
        edit(body);
        self.end += 2 + msg.len();
        self.count += 1;
        true
    }

    /// The oldest message.
    pub fn front(&self) -> Option<&[u8]> {
        if self.count == 0 {
            return None;
        }
        let len = u16::from_ne_bytes([self.buf[self.start], self.buf[self.start + 1]]) as usize;
        Some(&self.buf[self.start + 2..self.start + 2 + len])
    }

    /// Removes the oldest message.
    pub fn pop(&mut self) {
        if let Some(m) = self.front() {
            let n = m.len() + 2;
            self.start += n;
            self.count -= 1;
            if self.count == 0 {
                self.start = 0;
                self.end = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_with_edit_and_backpressure() {
        let mut buf = [0; 20];
        let mut q = PfkeyQueue::new(&mut buf);
        assert!(q.push_with(b"abcdefgh", |m| m[0] = b'X'));
        assert!(q.push_with(b"12345678", |_| {}));
        assert!(!q.push_with(b"toolong!", |_| {}));
        assert_eq!(q.front(), Some(&b"Xbcdefgh"[..]));
        q.pop();
        // Room is at the front now: compaction makes the next push fit.
        assert!(q.push_with(b"ijklmnop", |_| {}));
        assert_eq!(q.front(), Some(&b"12345678"[..]));
        q.pop();
        assert_eq!(q.front(), Some(&b"ijklmnop"[..]));
        q.pop();
        assert!(q.is_empty() && q.front().is_none());
        q.pop();
        assert!(!PfkeyQueue::new(&mut [0; 20]).has_room_for_any());
    }
}
