//! The non-blocking framed channel over the socketpair.

use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use zeroize::Zeroize;

use super::deframer::Deframer;
use super::msg::{encode_dump_records, Message, HEADER_LEN, MAX_FRAME};
use super::{ProtoError, ToNet, ToPriv};
use crate::secret::reserve_wiping;

/// Most bytes queued for sending: four maximal messages. The protocol
/// keeps far fewer in flight (a dump batch is sent only when asked for);
/// reaching this means the other process stopped reading.
pub const MAX_QUEUED: usize = 4 * MAX_FRAME;

/// What [`Channel::read_ready`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// The channel is open; take messages with [`Channel::next_msg`].
    Open,
    /// The other process closed its end (it exited). Messages already
    /// received can still be taken.
    Eof,
}

/// One end of the privsep socketpair: receives `In`, sends `Out`.
///
/// Made for a poll(2) loop: poll [`fd`](Channel::fd) for reading always and
/// for writing while [`wants_write`](Channel::wants_write); on POLLIN call
/// [`read_ready`](Channel::read_ready) and then
/// [`next_msg`](Channel::next_msg) until it returns `None`; on POLLOUT call
/// [`flush`](Channel::flush). Neither call blocks.
pub struct Channel<In, Out> {
    stream: UnixStream,
    rx: Deframer<In>,
    tx: Vec<u8>,
    /// Bytes at the front of `tx` already written.
    sent: usize,
    _out: PhantomData<fn(Out)>,
}

/// The privileged process's end: receives requests, sends results.
pub type PrivChannel = Channel<ToPriv, ToNet>;

/// The network process's end: sends requests, receives results.
pub type NetChannel = Channel<ToNet, ToPriv>;

impl<In, Out> std::fmt::Debug for Channel<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("stream", &self.stream)
            .field("rx", &self.rx)
            .field("queued", &(self.tx.len() - self.sent))
            .finish()
    }
}

impl<In: Message, Out: Message> Channel<In, Out> {
    /// Takes one end of the socketpair and makes it non-blocking.
    pub fn new(stream: UnixStream) -> io::Result<Channel<In, Out>> {
        stream.set_nonblocking(true)?;
        Ok(Channel {
            stream,
            rx: Deframer::new(),
            tx: Vec::new(),
            sent: 0,
            _out: PhantomData,
        })
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Reads what the socket has, up to the receive buffer's room.
    pub fn read_ready(&mut self) -> io::Result<ReadStatus> {
        if self.rx.is_eof() {
            return Ok(ReadStatus::Eof);
        }
        loop {
            let spare = self.rx.spare();
            if spare.is_empty() {
                // A whole message is waiting to be taken.
                return Ok(ReadStatus::Open);
            }
            match self.stream.read(spare) {
                Ok(0) => {
                    self.rx.set_eof();
                    return Ok(ReadStatus::Eof);
                }
                Ok(n) => self.rx.filled(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadStatus::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next whole message received, if any. An error is final (see
    /// [`ProtoError`]); so is a message cut short by the end of the stream.
    pub fn next_msg(&mut self) -> Result<Option<In>, ProtoError> {
        self.rx.next_msg()
    }

    /// Queues a message for sending; [`flush`](Channel::flush) writes it.
    pub fn queue(&mut self, msg: &Out) -> Result<(), ProtoError> {
        self.queue_encoded(msg.encoded_len(), |tx| msg.encode(tx))
    }

    /// Queues the `len` bytes `encode` appends.
    fn queue_encoded(
        &mut self,
        len: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtoError>,
    ) -> Result<(), ProtoError> {
        if self.queued() + len > MAX_QUEUED {
            return Err(ProtoError::QueueFull);
        }
        if self.sent > 0 {
            // Move the unsent rest to the front, wiping what was sent.
            let rest = self.tx.len() - self.sent;
            self.tx.copy_within(self.sent.., 0);
            if let Some(stale) = self.tx.get_mut(rest..) {
                stale.zeroize();
            }
            self.tx.truncate(rest);
            self.sent = 0;
        }
        reserve_wiping(&mut self.tx, len);
        encode(&mut self.tx)
    }

    /// Writes queued bytes until done or the socket is full. `Ok(true)`:
    /// everything queued has been written.
    pub fn flush(&mut self) -> io::Result<bool> {
        while let Some(pending) = self.tx.get(self.sent..).filter(|p| !p.is_empty()) {
            match self.stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        // Sent in full: wipe the copy (it may hold dump records or the
        // configuration) and keep the allocation for the next message.
        self.tx.zeroize();
        self.sent = 0;
        Ok(true)
    }

    /// Whether bytes are waiting to be written (poll for POLLOUT).
    pub fn wants_write(&self) -> bool {
        self.queued() > 0
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.tx.len() - self.sent
    }
}

impl PrivChannel {
    /// Queues [`ToNet::DumpRecords`] for records borrowed from the dump's
    /// copy, without a buffer of their own.
    pub fn queue_dump_records(&mut self, dump: u32, records: &[u8]) -> Result<(), ProtoError> {
        self.queue_encoded(HEADER_LEN + 4 + records.len(), |tx| {
            encode_dump_records(tx, dump, records)
        })
    }
}

impl<In, Out> Drop for Channel<In, Out> {
    fn drop(&mut self) {
        self.tx.zeroize();
    }
}
