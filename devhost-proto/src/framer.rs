//! Whole PF_KEY messages out of a byte stream. A real PF_KEY socket hands
//! out one message per read; the devhost's stand-in is a stream, so each
//! side cuts it at the `sadb_msg_len` of every 16-byte header. The buffer
//! is bounded: a header announcing more than the maximum is an error
//! before its body is read.
//!
//! The bytes are SA keys as often as not: what is taken, skipped or moved
//! is wiped in the buffer at once, and the buffer when it drops, so no
//! stale copy outlives the message it was part of.

use std::io::{self, Read};

use zeroize::Zeroize;

use sasyncd_core::pfkey::consts::{CHUNK, HDR_LEN, PFKEY_SOCKBUF, PF_KEY_V2};

/// The largest message a PF_KEY socket can receive: its receive buffer.
/// (A promiscuous copy of a maximal request, 16 + 4096 bytes, fits.)
pub const MAX_RECEIVED: usize = PFKEY_SOCKBUF;

/// Why the stream did not yield a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfkeyFrameError {
    /// A header with another version or a length under 16 bytes. The
    /// header (and, if its length was usable, the rest of the message) was
    /// consumed, so the stream can go on.
    BadHeader([u8; HDR_LEN]),
    /// A header announcing this many bytes, over the maximum. Nothing was
    /// consumed: the stream cannot be resynchronised.
    TooLong(usize),
}

impl core::fmt::Display for PfkeyFrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PfkeyFrameError::BadHeader(h) => {
                write!(f, "bad PF_KEY header (version {}, length {})", h[0], {
                    usize::from(u16::from_ne_bytes([h[4], h[5]])) * CHUNK
                })
            }
            PfkeyFrameError::TooLong(n) => write!(f, "PF_KEY message of {n} bytes is too long"),
        }
    }
}

impl std::error::Error for PfkeyFrameError {}

/// Cuts a nonblocking PF_KEY byte stream into messages.
///
/// Use: when the socket is readable, call [`PfkeyFramer::read_from`]
/// until it reports `WouldBlock`, taking every message with
/// [`PfkeyFramer::next_message`] after each read (draining them first is
/// what guarantees the next read has room).
#[derive(Debug, Clone)]
pub struct PfkeyFramer {
    /// `2 * max` bytes once anything was read (allocated and zeroed once,
    /// not per read); bytes `start..end` are unread.
    buf: Vec<u8>,
    /// Messages before this offset were taken (taking one does not move
    /// the rest: the buffer is compacted when a read needs the room).
    start: usize,
    end: usize,
    max: usize,
}

impl Default for PfkeyFramer {
    /// A framer for the daemon's side: messages up to [`MAX_RECEIVED`].
    fn default() -> PfkeyFramer {
        PfkeyFramer::new(MAX_RECEIVED)
    }
}

impl PfkeyFramer {
    /// A framer accepting messages of at most `max` bytes (at least one
    /// header); it buffers at most `2 * max` bytes.
    pub fn new(max: usize) -> PfkeyFramer {
        PfkeyFramer {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max: max.max(HDR_LEN),
        }
    }

    fn capacity(&self) -> usize {
        2 * self.max
    }

    /// Room for `n` more bytes at the end, moving the unread ones to the
    /// front if that makes it; whether there is.
    fn make_room(&mut self, n: usize) -> bool {
        if self.buf.is_empty() {
            self.buf = vec![0; self.capacity()];
        }
        if self.end + n > self.buf.len() && self.start > 0 {
            let old_end = self.end;
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            // The moved bytes' old copy, past the new end.
            self.buf[self.end..old_end].zeroize();
        }
        self.end + n <= self.buf.len()
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads once from `r` into the free space. `Ok(0)` is end of stream.
    /// With no free space (messages not drained) it fails with
    /// `ErrorKind::OutOfMemory` instead of reading.
    pub fn read_from<R: Read>(&mut self, r: &mut R) -> io::Result<usize> {
        // Read as much as fits; compact first when the tail is short of a
        // message's worth.
        self.make_room(self.max.min(self.capacity() - (self.end - self.start)));
        if self.end == self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "PF_KEY framer full: take its messages first",
            ));
        }
        let n = r.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Appends bytes received some other way; false (and nothing taken)
    /// if they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if !self.make_room(bytes.len()) {
            return false;
        }
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        true
    }

    /// Whether [`PfkeyFramer::next_message`] would return something.
    pub fn ready(&self) -> bool {
        match self.header() {
            None => false,
            Some(h) => {
                let n = msg_len(&h);
                n > self.max || n < HDR_LEN || self.unread().len() >= n
            }
        }
    }

    fn header(&self) -> Option<[u8; HDR_LEN]> {
        let mut h = [0u8; HDR_LEN];
        h.copy_from_slice(self.unread().get(..HDR_LEN)?);
        Some(h)
    }

    /// The next whole message, or why the stream has none to give.
    pub fn next_message(&mut self) -> Option<Result<Vec<u8>, PfkeyFrameError>> {
        let h = self.header()?;
        let n = msg_len(&h);
        if n > self.max {
            return Some(Err(PfkeyFrameError::TooLong(n)));
        }
        if n < HDR_LEN {
            self.take(HDR_LEN);
            return Some(Err(PfkeyFrameError::BadHeader(h)));
        }
        if self.unread().len() < n {
            return None;
        }
        let msg = self.unread()[..n].to_vec();
        self.take(n);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if h[0] != PF_KEY_V2 {
            return Some(Err(PfkeyFrameError::BadHeader(h)));
        }
        Some(Ok(msg))
    }

    /// Bytes held (at most one partial message once drained).
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Consumes the next `n` unread bytes, wiping them.
    fn take(&mut self, n: usize) {
        self.buf[self.start..self.start + n].zeroize();
        self.start += n;
    }
}

impl Drop for PfkeyFramer {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

fn msg_len(h: &[u8; HDR_LEN]) -> usize {
    usize::from(u16::from_ne_bytes([h[4], h[5]])) * CHUNK
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasyncd_core::pfkey::consts::*;

    /// Just enough PF_KEY to frame, from the core's builder: the header
    /// and opaque extensions (the framer reads nothing past `sadb_msg_len`).
    mod pfmsg {
        use sasyncd_core::pfkey::{ExtRepr, Repr};

        pub fn ext(ext_type: u16, body: &[u8]) -> ExtRepr<'_> {
            ExtRepr::Opaque { ext_type, body }
        }

        pub fn message(ty: u8, satype: u8, seq: u32, pid: u32, exts: &[ExtRepr<'_>]) -> Vec<u8> {
            let repr = Repr::new(ty, satype, seq, pid, exts);
            let mut v = vec![0u8; repr.buffer_len()];
            let n = repr.emit(&mut v).unwrap();
            v.truncate(n);
            v
        }
    }

    fn msgs() -> Vec<Vec<u8>> {
        vec![
            pfmsg::message(SADB_X_PROMISC, 1, 1, 42, &[]),
            pfmsg::message(
                SADB_DELETE,
                SADB_SATYPE_ESP,
                2,
                42,
                &[
                    pfmsg::ext(SADB_EXT_SA, &[0x12, 0x34, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0]),
                    pfmsg::ext(SADB_EXT_ADDRESS_DST, &[0; 20]),
                ],
            ),
        ]
    }

    #[test]
    fn splits_a_stream_read_in_odd_chunks() {
        let stream: Vec<u8> = msgs().concat().repeat(3);
        for chunk in [1, 7, 16, 33, 1000] {
            let mut f = PfkeyFramer::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                let mut r = piece;
                while !r.is_empty() {
                    f.read_from(&mut r).unwrap();
                }
                while let Some(m) = f.next_message() {
                    got.push(m.unwrap());
                }
            }
            let want: Vec<Vec<u8>> = (0..3).flat_map(|_| msgs()).collect();
            assert_eq!(got, want, "chunk {chunk}");
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn bad_headers_are_skipped_and_the_stream_goes_on() {
        let good = msgs().remove(0);
        let mut zero_len = good.clone();
        zero_len[4] = 0;
        let mut wrong_version = msgs().remove(1);
        wrong_version[0] = 1;
        let mut f = PfkeyFramer::default();
        for part in [&zero_len, &wrong_version, &good] {
            assert!(f.push(part));
        }
        assert!(f.ready());
        assert!(matches!(f.next_message(), Some(Err(PfkeyFrameError::BadHeader(h))) if h[4] == 0));
        assert!(matches!(f.next_message(), Some(Err(PfkeyFrameError::BadHeader(h))) if h[0] == 1));
        assert_eq!(f.next_message(), Some(Ok(good)));
        assert_eq!(f.next_message(), None);
        assert!(!f.ready());
    }

    #[test]
    fn too_long_is_reported_before_the_body_is_read() {
        let mut f = PfkeyFramer::new(PFKEY_MSG_MAXSZ);
        let mut h = pfmsg::message(SADB_ADD, 2, 1, 42, &[]);
        h[4..6].copy_from_slice(&((PFKEY_MSG_MAXSZ / 8 + 1) as u16).to_ne_bytes());
        assert!(f.push(&h));
        assert!(f.ready());
        let want = PfkeyFrameError::TooLong(PFKEY_MSG_MAXSZ + 8);
        assert_eq!(f.next_message(), Some(Err(want)));
        // Nothing consumed: the same error again.
        assert_eq!(f.next_message(), Some(Err(want)));
    }

    #[test]
    fn bounded() {
        let mut f = PfkeyFramer::new(64);
        assert!(!f.push(&[0; 129]));
        assert!(f.push(&[0; 128]));
        let e = f.read_from(&mut &[1u8; 8][..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        // A partial maximal message leaves room for the rest.
        let mut f = PfkeyFramer::new(64);
        let mut m = pfmsg::message(SADB_FLUSH, 0, 1, 42, &[pfmsg::ext(1, &[0; 44])]);
        assert_eq!(m.len(), 64);
        let tail = m.split_off(10);
        assert!(f.push(&m));
        let mut r = &tail[..];
        f.read_from(&mut r).unwrap();
        assert!(r.is_empty());
        assert_eq!(f.next_message().unwrap().unwrap().len(), 64);
    }

    /// Taking a message leaves the rest in place; the buffer is compacted
    /// when a read or push needs the room at its end. Over many
    /// messages, reads of every size and a small buffer, nothing is lost,
    /// repeated or reordered.
    #[test]
    fn compaction_keeps_the_stream_whole() {
        let one = pfmsg::message(SADB_FLUSH, 0, 1, 42, &[pfmsg::ext(1, &[7; 20])]);
        let two = msgs().remove(1);
        let want: Vec<Vec<u8>> = (0..300)
            .map(|k| if k % 3 == 0 { two.clone() } else { one.clone() })
            .collect();
        let stream = want.concat();
        for chunk in [5, 24, 57, 100, 128] {
            let mut f = PfkeyFramer::new(64);
            let mut got = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let mut piece = &rest[..chunk.min(rest.len())];
                let before = piece.len();
                match f.read_from(&mut piece) {
                    Ok(_) => rest = &rest[before - piece.len()..],
                    Err(e) => panic!("chunk {chunk}: {e}"),
                }
                while let Some(m) = f.next_message() {
                    got.push(m.unwrap());
                }
            }
            assert_eq!(got, want, "chunk {chunk}");
            assert_eq!(f.buffered(), 0);
        }
    }
}
