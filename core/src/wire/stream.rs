//! Reassembly of length-prefixed frames from a TCP byte stream.
//!
//! TCP splits and joins writes arbitrarily (reference D-13: the original
//! loses sync on a short read). [`Deframer`] accepts bytes in any chunking
//! and yields whole frames. The frame length is checked from the header
//! *before* any of the body is buffered, so a hostile length never makes us
//! hold more than `N` bytes; such an error is sticky, because the stream has
//! no way to find the next frame boundary again and must be closed.

use core::marker::PhantomData;

/// How a frame format announces its length.
pub trait Framing {
    /// Why a header is unacceptable.
    type Error: Copy;
    /// Bytes needed before the total length is known.
    const HEADER_LEN: usize;
    /// Total frame length, header included, or why the header is refused.
    fn frame_len(header: &[u8]) -> Result<usize, Self::Error>;
    /// The error for a length the format allows but this buffer cannot hold
    /// (or one shorter than the header).
    fn bad_len(len: usize) -> Self::Error;
}

/// Incremental frame reassembler with a fixed `N`-byte buffer.
pub struct Deframer<F: Framing, const N: usize> {
    buf: [u8; N],
    state: DeframeState<F>,
}

/// Where a [`Deframer`] is, without its buffer: for a caller that keeps
/// the buffer elsewhere (the node keeps one per connection and switches
/// the framing in place when the protocol changes).
pub struct DeframeState<F: Framing> {
    have: usize,
    /// Total length of the frame being assembled, once the header is in.
    need: Option<usize>,
    /// A complete frame sits in `buf[..have]` and is dropped on the next call.
    full: bool,
    failed: Option<F::Error>,
    _f: PhantomData<F>,
}

impl<F: Framing, const N: usize> core::fmt::Debug for Deframer<F, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.state.fmt(f)
    }
}

impl<F: Framing> core::fmt::Debug for DeframeState<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Deframer")
            .field("have", &self.have)
            .field("need", &self.need)
            .field("failed", &self.failed.is_some())
            .finish()
    }
}

impl<F: Framing, const N: usize> Default for Deframer<F, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Framing, const N: usize> Deframer<F, N> {
    /// An empty reassembler.
    pub const fn new() -> Self {
        Deframer {
            buf: [0; N],
            state: DeframeState::new(),
        }
    }

    /// Takes bytes from the front of `input` and returns the next complete
    /// frame, or `Ok(None)` once `input` is used up without completing one.
    /// The returned frame is mutable so it can be decrypted in place; it is
    /// discarded by the next call. After an error every call returns the same
    /// error: the connection must be closed.
    pub fn next_frame<'a>(
        &'a mut self,
        input: &mut &[u8],
    ) -> Result<Option<&'a mut [u8]>, F::Error> {
        self.state.next_frame(&mut self.buf, input)
    }

    /// Bytes of an incomplete frame held right now (0 between frames).
    pub fn pending(&self) -> usize {
        self.state.pending()
    }
}

impl<F: Framing> Default for DeframeState<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Framing> DeframeState<F> {
    /// Between frames, nothing held.
    pub const fn new() -> Self {
        DeframeState {
            have: 0,
            need: None,
            full: false,
            failed: None,
            _f: PhantomData,
        }
    }

    /// [`Deframer::next_frame`] with the buffer passed in: always the same
    /// buffer for one stream; its length bounds a frame.
    pub fn next_frame<'a>(
        &mut self,
        buf: &'a mut [u8],
        input: &mut &[u8],
    ) -> Result<Option<&'a mut [u8]>, F::Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.full {
            self.full = false;
            self.have = 0;
            self.need = None;
        }
        loop {
            let target = self.need.unwrap_or(F::HEADER_LEN);
            let take = (target - self.have).min(input.len());
            buf[self.have..self.have + take].copy_from_slice(&input[..take]);
            self.have += take;
            *input = &input[take..];
            if self.have < target {
                return Ok(None);
            }
            match self.need {
                None => match F::frame_len(&buf[..F::HEADER_LEN]) {
                    Ok(len) if len >= F::HEADER_LEN && len <= buf.len() => self.need = Some(len),
                    Ok(len) => {
                        let e = F::bad_len(len);
                        self.failed = Some(e);
                        return Err(e);
                    }
                    Err(e) => {
                        self.failed = Some(e);
                        return Err(e);
                    }
                },
                Some(len) => {
                    self.full = true;
                    return Ok(Some(&mut buf[..len]));
                }
            }
            // The header said the frame is exactly the header: loop once more
            // to return it without waiting for input.
        }
    }

    /// Bytes of an incomplete frame held right now (0 between frames).
    pub fn pending(&self) -> usize {
        if self.full {
            0
        } else {
            self.have
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy format: one length byte (total length), then the body.
    #[derive(Debug)]
    struct Toy;
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum ToyErr {
        Zero,
        Bad(usize),
    }
    impl Framing for Toy {
        type Error = ToyErr;
        const HEADER_LEN: usize = 1;
        fn frame_len(h: &[u8]) -> Result<usize, ToyErr> {
            match h[0] {
                0 => Err(ToyErr::Zero),
                n => Ok(n as usize),
            }
        }
        fn bad_len(len: usize) -> ToyErr {
            ToyErr::Bad(len)
        }
    }

    fn collect(
        d: &mut Deframer<Toy, 8>,
        mut input: &[u8],
        out: &mut std::vec::Vec<std::vec::Vec<u8>>,
    ) -> Result<(), ToyErr> {
        while let Some(f) = d.next_frame(&mut input)? {
            out.push(f.to_vec());
        }
        assert!(input.is_empty());
        Ok(())
    }

    #[test]
    fn any_chunking_gives_same_frames() {
        let stream = [3u8, 1, 2, 1, 4, 9, 9, 9];
        for split in 0..=stream.len() {
            let mut d = Deframer::<Toy, 8>::new();
            let mut out = std::vec::Vec::new();
            collect(&mut d, &stream[..split], &mut out).unwrap();
            collect(&mut d, &stream[split..], &mut out).unwrap();
            assert_eq!(
                out,
                [&[3u8, 1, 2][..], &[1], &[4, 9, 9, 9]],
                "split {split}"
            );
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn length_checked_before_buffering_and_sticky() {
        let mut d = Deframer::<Toy, 8>::new();
        let mut input: &[u8] = &[200, 1, 2, 3];
        assert_eq!(d.next_frame(&mut input).unwrap_err(), ToyErr::Bad(200));
        assert_eq!(input, &[1, 2, 3]);
        assert_eq!(d.next_frame(&mut &[1u8][..]).unwrap_err(), ToyErr::Bad(200));
        let mut d = Deframer::<Toy, 8>::new();
        assert_eq!(d.next_frame(&mut &[0u8][..]).unwrap_err(), ToyErr::Zero);
    }

    #[test]
    fn partial_frame_is_pending() {
        let mut d = Deframer::<Toy, 8>::new();
        let mut input: &[u8] = &[5, 1, 2];
        assert!(d.next_frame(&mut input).unwrap().is_none());
        assert_eq!(d.pending(), 3);
    }
}
