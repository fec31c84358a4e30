//! Length-prefixed frames (hello, host, carp and ctl roles): a u32
//! big-endian payload length, then the payload. The reader is bounded so a
//! peer cannot make either side buffer more than one maximal frame.

use std::io::{self, Read};

use zeroize::Zeroize;

use crate::proto::ProtoError;

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;

/// `payload` as one frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(LEN_BYTES + payload.len());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Reassembles frames from a byte stream; holds at most one frame of at
/// most `max` payload bytes (plus its prefix).
#[derive(Debug, Clone)]
pub struct FrameBuf {
    buf: Vec<u8>,
    max: usize,
}

impl FrameBuf {
    /// A reader of frames whose payload is at most `max` bytes.
    pub fn new(max: usize) -> FrameBuf {
        FrameBuf {
            buf: Vec::new(),
            max,
        }
    }

    /// How many more bytes may be read before the next frame is complete
    /// (or its length prefix shows it is too long): reading no more than
    /// this keeps the buffer within one frame.
    pub fn wanted(&self) -> usize {
        match self.declared_len() {
            Some(n) if n > self.max => 0,
            Some(n) => (LEN_BYTES + n).saturating_sub(self.buf.len()),
            None => LEN_BYTES - self.buf.len(),
        }
    }

    fn declared_len(&self) -> Option<usize> {
        let b = self.buf.get(..LEN_BYTES)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// Reads at most [`FrameBuf::wanted`] bytes from `r` (one `read` call).
    /// `Ok(0)` is end of stream. With nothing wanted (a frame waits to be
    /// taken) it fails with `ErrorKind::OutOfMemory` instead of reading.
    pub fn read_from<R: Read>(&mut self, r: &mut R) -> io::Result<usize> {
        let want = self.wanted();
        if want == 0 {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "frame buffer full: take its frame first",
            ));
        }
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let res = r.read(&mut self.buf[old..]);
        let n = *res.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        res
    }

    /// Whether the next frame is complete (or known to be too long), so
    /// that [`FrameBuf::next_frame`] will return something.
    pub fn ready(&self) -> bool {
        self.declared_len()
            .is_some_and(|n| n > self.max || self.buf.len() >= LEN_BYTES + n)
    }

    /// The next complete frame's payload, if any. A frame longer than the
    /// bound is an error (the stream cannot be trusted after it).
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, ProtoError>> {
        let n = self.declared_len()?;
        if n > self.max {
            return Some(Err(ProtoError::FrameTooLong(n)));
        }
        if self.buf.len() < LEN_BYTES + n {
            return None;
        }
        let payload = self.buf[LEN_BYTES..LEN_BYTES + n].to_vec();
        self.buf.drain(..LEN_BYTES + n);
        Some(Ok(payload))
    }
}

/// Reads exactly one frame of at most `max` payload bytes from a blocking
/// reader, without reading past it (the bytes after a pfkey hello reply
/// are PF_KEY messages that belong to the caller).
pub fn read_frame<R: Read>(r: &mut R, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; LEN_BYTES];
    r.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            ProtoError::FrameTooLong(n),
        ));
    }
    // Grown as the bytes arrive (a length alone does not reserve memory),
    // by copying and wiping: a payload may be a dump full of SA keys, and
    // a reallocation would leave a copy behind. Wiped on error too.
    let mut payload: Vec<u8> = Vec::with_capacity(n.min(1 << 20));
    while payload.len() < n {
        if payload.len() == payload.capacity() {
            let want = payload.capacity().saturating_mul(2).clamp(4096, n);
            let mut grown = Vec::with_capacity(want);
            grown.extend_from_slice(&payload);
            payload.zeroize();
            payload = grown;
        }
        let old = payload.len();
        let room = (payload.capacity() - old).min(n - old);
        payload.resize(old + room, 0);
        match r.read(&mut payload[old..]) {
            Ok(0) => {
                payload.zeroize();
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Ok(got) => payload.truncate(old + got),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => payload.truncate(old),
            Err(e) => {
                payload.zeroize();
                return Err(e);
            }
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(fb: &mut FrameBuf, mut bytes: &[u8]) {
        while fb.wanted() > 0 && !bytes.is_empty() {
            fb.read_from(&mut bytes).unwrap();
        }
    }

    #[test]
    fn reassembles_frames_byte_by_byte_and_whole() {
        let mut stream = frame(b"hello");
        stream.extend(frame(b""));
        stream.extend(frame(&[7; 100]));
        let mut fb = FrameBuf::new(100);
        let mut got = Vec::new();
        for b in &stream {
            feed(&mut fb, std::slice::from_ref(b));
            while let Some(f) = fb.next_frame() {
                got.push(f.unwrap());
            }
        }
        assert_eq!(got, vec![b"hello".to_vec(), vec![], vec![7; 100]]);
        assert_eq!(fb.wanted(), LEN_BYTES);
    }

    #[test]
    fn never_reads_past_the_current_frame() {
        let mut stream = frame(b"ab");
        stream.extend(frame(b"cd"));
        let mut fb = FrameBuf::new(10);
        let mut r = &stream[..];
        fb.read_from(&mut r).unwrap();
        assert_eq!(fb.wanted(), 2);
        fb.read_from(&mut r).unwrap();
        assert!(fb.ready());
        assert_eq!(fb.wanted(), 0);
        let e = fb.read_from(&mut r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(r.len(), 6, "the second frame is still unread");
        assert_eq!(fb.next_frame().unwrap().unwrap(), b"ab");
    }

    #[test]
    fn too_long_is_an_error_once_the_prefix_is_in() {
        let mut fb = FrameBuf::new(8);
        feed(&mut fb, &frame(&[0; 9])[..LEN_BYTES]);
        assert!(fb.ready());
        assert_eq!(fb.wanted(), 0);
        assert_eq!(fb.next_frame(), Some(Err(ProtoError::FrameTooLong(9))));
        let mut fb = FrameBuf::new(8);
        feed(&mut fb, &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            fb.next_frame(),
            Some(Err(ProtoError::FrameTooLong(u32::MAX as usize)))
        );
    }

    #[test]
    fn read_frame_exact() {
        let mut stream = frame(b"xyz");
        stream.extend_from_slice(b"rest");
        let mut r = &stream[..];
        assert_eq!(read_frame(&mut r, 3).unwrap(), b"xyz");
        assert_eq!(r, b"rest");
        let big = frame(b"toolong");
        let e = read_frame(&mut &big[..], 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = read_frame(&mut &frame(b"xyz")[..5], 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
