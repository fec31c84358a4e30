//! Peer connections: a nonblocking TCP stream, what was read and not yet
//! taken by the node, and whether the last write was short.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};

/// Most bytes read ahead of the node: beyond this the socket is not read,
/// so a slave that cannot keep up slows its master through TCP.
pub const RX_MAX: usize = 256 * 1024;

/// What reading a connection found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes were added (or none were waiting).
    Open,
    /// The peer closed it.
    Eof,
}

/// One peer connection.
#[derive(Debug)]
pub struct PeerConn {
    pub stream: TcpStream,
    /// The peer's address (a socket whose connect failed has none to ask).
    pub addr: IpAddr,
    /// An outbound connect has not ended yet.
    pub connecting: bool,
    /// Received, not yet consumed by the node.
    pub rx: Vec<u8>,
    /// The last write was short: wait until writable.
    pub blocked: bool,
}

impl PeerConn {
    /// A connection with `addr` (`connecting` for an outbound one in
    /// progress).
    pub fn new(stream: TcpStream, addr: IpAddr, connecting: bool) -> PeerConn {
        PeerConn {
            stream,
            addr,
            connecting,
            rx: Vec::new(),
            blocked: false,
        }
    }

    /// Whether to poll for input: not while connecting or when full.
    pub fn wants_read(&self) -> bool {
        !self.connecting && self.rx.len() < RX_MAX
    }

    /// Whether to poll for output: the connect's end, or room after a
    /// short write.
    pub fn wants_write(&self) -> bool {
        self.connecting || self.blocked
    }

    /// Reads what is there, up to [`RX_MAX`] buffered.
    pub fn read(&mut self) -> io::Result<ReadOutcome> {
        let mut buf = [0u8; 16 * 1024];
        while self.rx.len() < RX_MAX {
            let room = (RX_MAX - self.rx.len()).min(buf.len());
            match self.stream.read(&mut buf[..room]) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ReadOutcome::Open)
    }

    /// Writes what the socket takes now.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        loop {
            match self.stream.write(bytes) {
                Ok(n) => {
                    self.blocked = n < bytes.len();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    return Ok(0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The node took the first `n` bytes.
    pub fn consume(&mut self, n: usize) {
        self.rx.drain(..n.min(self.rx.len()));
    }
}
