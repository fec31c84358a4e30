//! Cutting a byte stream into messages, without I/O (the channel feeds it
//! from the socket; the fuzz target feeds it chunks).

use std::marker::PhantomData;

use zeroize::Zeroize;

use super::msg::{frame_len, Message, MAX_FRAME};
use super::ProtoError;

/// A bounded receive buffer that yields whole messages of type `M`.
///
/// It holds at most one maximal message ([`MAX_FRAME`] bytes), allocated
/// once, so a peer cannot make it grow. Consumed bytes are wiped at once
/// and pending ones on drop: dump records and configuration text hold
/// keys. The first error is
/// sticky: after it, [`next_msg`](Deframer::next_msg) keeps returning it.
pub struct Deframer<M> {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    failed: Option<ProtoError>,
    _msg: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for Deframer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deframer")
            .field("buffered", &(self.end - self.start))
            .field("eof", &self.eof)
            .field("failed", &self.failed)
            .finish()
    }
}

impl<M: Message> Default for Deframer<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Message> Deframer<M> {
    /// An empty buffer of [`MAX_FRAME`] bytes.
    pub fn new() -> Deframer<M> {
        Deframer {
            buf: vec![0u8; MAX_FRAME].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            failed: None,
            _msg: PhantomData,
        }
    }

    /// Free space to read into (moving buffered bytes to the front first if
    /// that makes room). Empty only while a whole message is buffered:
    /// take messages with [`next_msg`](Deframer::next_msg) until `None`
    /// before reading again.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.end == self.buf.len() && self.start > 0 {
            let len = self.end - self.start;
            self.buf.copy_within(self.start..self.end, 0);
            if let Some(stale) = self.buf.get_mut(len..self.end) {
                stale.zeroize();
            }
            self.start = 0;
            self.end = len;
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// Records that `n` bytes were written at the start of
    /// [`spare`](Deframer::spare).
    pub fn filled(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.buf.len());
    }

    /// Copies as much of `bytes` as fits; returns how many were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let spare = self.spare();
        let n = spare.len().min(bytes.len());
        if let (Some(dst), Some(src)) = (spare.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.filled(n);
        n
    }

    /// Records that the stream ended: a partial message left is then an
    /// error rather than something to wait for.
    pub fn set_eof(&mut self) {
        self.eof = true;
    }

    /// Whether [`set_eof`](Deframer::set_eof) was called.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Bytes buffered and not yet taken as messages.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    pub fn next_msg(&mut self) -> Result<Option<M>, ProtoError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let pending = self.buf.get(self.start..self.end).unwrap_or_default();
        let result = match frame_len(pending) {
            Ok(Some(n)) => {
                let msg = M::decode(pending.get(..n).unwrap_or_default());
                let frame_end = self.start + n;
                if let Some(used) = self.buf.get_mut(self.start..frame_end) {
                    used.zeroize();
                }
                self.start = frame_end;
                if self.start == self.end {
                    self.start = 0;
                    self.end = 0;
                }
                msg.map(Some)
            }
            Ok(None) if self.eof && !pending.is_empty() => Err(ProtoError::Truncated),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    /// The whole buffer, for tests of the wiping.
    #[cfg(test)]
    pub(crate) fn raw(&self) -> &[u8] {
        &self.buf
    }
}

impl<M> Drop for Deframer<M> {
    /// Bytes outside `start..end` are already zero (consumed bytes and
    /// compaction leftovers are wiped as they go), so only the pending
    /// ones need wiping: no megabyte of writes per channel.
    fn drop(&mut self) {
        if let Some(pending) = self.buf.get_mut(self.start..self.end) {
            pending.zeroize();
        }
    }
}
