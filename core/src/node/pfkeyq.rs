//! The queue of PF_KEY messages waiting to be written to the local kernel.
//!
//! Fixed-size and FIFO; when it is full the node stops reading frames from
//! the master (backpressure reaches TCP) rather than dropping anything.
//!
//! The messages carry SA keys: a popped message, the stale copy a
//! compaction leaves past the live bytes, and the whole buffer when the
//! queue is dropped are wiped, so that only queued messages are ever
//! held.

/// Longest PF_KEY message the kernel accepts (`PFKEY_MSG_MAXSZ`).
pub const MAX_MSG: usize = 4096;

use super::storage::ManagedSlice;
use super::wipe::wipe;

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
        len <= MAX_MSG && self.free() >= len + 2
    }

    /// Bytes free now (each message takes its length and 2 more).
    pub fn free(&self) -> usize {
        self.buf.len() - (self.end - self.start)
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
            let old_end = self.end;
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            // The moved bytes' old places past the new end.
            wipe(&mut self.buf[self.end..old_end]);
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

    /// Removes the oldest message and wipes it.
    pub fn pop(&mut self) {
        if let Some(m) = self.front() {
            let n = m.len() + 2;
            wipe(&mut self.buf[self.start..self.start + n]);
            self.start += n;
            self.count -= 1;
            if self.count == 0 {
                self.start = 0;
                self.end = 0;
            }
        }
    }
}

impl Drop for PfkeyQueue<'_> {
    /// What is still queued goes with the node (the platform's buffer is
    /// left zeroed, whoever frees it).
    fn drop(&mut self) {
        wipe(&mut self.buf[self.start..self.end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The room a slave keeps before reading a frame takes the frame's
    /// every record: 256 of the smallest, grown by the dialect and padded,
    /// or one maximal one.
    #[test]
    fn a_whole_frame_fits_the_room_kept_for_it() {
        let payload = crate::wire::v2::MAX_PAYLOAD;
        for growth in [1, 2] {
            let mut buf = std::vec![0u8; crate::node::frame_room(growth)];
            let mut q = PfkeyQueue::new(&mut buf[..]);
            let grown = std::vec![0u8; 16 * growth + 3 * (growth - 1)];
            for i in 0..payload / 16 {
                assert!(q.push_with(&grown, |_| {}), "growth {growth}, record {i}");
            }
            let mut buf = std::vec![0u8; crate::node::frame_room(growth)];
            let mut q = PfkeyQueue::new(&mut buf[..]);
            assert!(q.push_with(&[0; MAX_MSG], |_| {}));
        }
    }

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

    /// Where `key` occurs in `buf`.
    fn holds(buf: &[u8], key: &[u8]) -> bool {
        buf.windows(key.len()).any(|w| w == key)
    }

    /// A popped message leaves no copy: neither where it was, nor (after
    /// a compaction) where the live messages were before they moved, nor
    /// anywhere once the queue is dropped.
    #[test]
    fn keys_do_not_survive_pop_compaction_or_drop() {
        let mut buf = [0; 40];
        let mut q = PfkeyQueue::new(&mut buf);
        assert!(q.push_with(b"KEY-ONE.", |_| {}));
        assert!(q.push_with(b"KEY-TWO.", |_| {}));
        assert!(q.push_with(b"KEY-3...", |_| {}));
        q.pop();
        assert!(!holds(&q.buf, b"KEY-ONE."), "popped message wiped");
        q.pop();
        // 20 bytes live at 20..30; a push of 10 more needs the room at the
        // front: compaction moves the live message to 0..10.
        assert!(q.push_with(b"KEY-FOUR", |_| {}));
        assert!(q.push_with(b"KEY-FIVE", |_| {}));
        assert_eq!(q.front(), Some(&b"KEY-3..."[..]));
        let copies = q.buf.windows(8).filter(|w| w == b"KEY-3...").count();
        assert_eq!(copies, 1, "the moved message's old place is wiped");
        assert!(!holds(&q.buf, b"KEY-TWO."));
        q.pop();
        q.pop();
        assert!(!holds(&q.buf, b"KEY-3...") && !holds(&q.buf, b"KEY-FOUR"));
        drop(q);
        assert!(!holds(&buf, b"KEY-FIVE"), "dropped queue wiped");
        assert!(buf.iter().all(|&b| b == 0));
    }
}
