//! One client connection of the server: its socket, what its hello made
//! it, its partial input and its unsent output. Input is read only while
//! the output is below a high-water mark, so a client that does not read
//! its replies stalls itself instead of growing the server's memory.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use super::frame::{frame, FrameBuf, LEN_BYTES};
use super::framer::PfkeyFramer;
use super::proto::{Role, MAX_REQUEST};

/// Output above which a connection's input is not read.
pub const OUT_HIGH_WATER: usize = 64 * 1024;

/// Largest hello payload (magic, role, pid).
const MAX_HELLO: usize = 16;

/// What a connection is, with the input buffer its protocol needs.
#[derive(Debug)]
pub enum Phase {
    /// Waiting for the hello frame.
    Hello(FrameBuf),
    /// A PF_KEY socket.
    Pfkey {
        /// The writer's pid.
        pid: u32,
        /// Its input, cut into messages.
        framer: PfkeyFramer,
    },
    /// The privileged process's channel.
    Host(FrameBuf),
    /// A link-state watcher (sends nothing).
    Carp,
    /// A control client.
    Ctl(FrameBuf),
}

/// One client.
#[derive(Debug)]
pub struct Conn {
    /// The socket (nonblocking).
    pub stream: UnixStream,
    /// A number for log lines.
    pub id: u64,
    /// Its role and input.
    pub phase: Phase,
    out: Vec<u8>,
    sent: usize,
    /// The client closed its sending side: no more input.
    pub eof: bool,
    /// Writing failed (the client stopped reading for good): output is
    /// discarded, but input already sent is still carried out.
    write_closed: bool,
    /// To be closed now.
    pub dead: bool,
}

impl Conn {
    /// A new connection awaiting its hello.
    pub fn new(stream: UnixStream, id: u64) -> Conn {
        Conn {
            stream,
            id,
            phase: Phase::Hello(FrameBuf::new(MAX_HELLO)),
            out: Vec::new(),
            sent: 0,
            eof: false,
            write_closed: false,
            dead: false,
        }
    }

    /// Enters the protocol of `role` (after an accepted hello).
    pub fn start(&mut self, role: Role) {
        self.phase = match role {
            Role::Pfkey { pid } => Phase::Pfkey {
                pid,
                framer: PfkeyFramer::new(sasyncd_core::pfkey::PFKEY_MSG_MAXSZ),
            },
            Role::Host => Phase::Host(FrameBuf::new(MAX_REQUEST)),
            Role::Carp => Phase::Carp,
            Role::Ctl => Phase::Ctl(FrameBuf::new(MAX_REQUEST)),
        };
    }

    /// The role name for log lines.
    pub fn role(&self) -> &'static str {
        match self.phase {
            Phase::Hello(_) => "hello",
            Phase::Pfkey { .. } => "pfkey",
            Phase::Host(_) => "host",
            Phase::Carp => "carp",
            Phase::Ctl(_) => "ctl",
        }
    }

    /// The pid of a pfkey connection.
    pub fn pfkey_pid(&self) -> Option<u32> {
        match self.phase {
            Phase::Pfkey { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Queues raw bytes.
    pub fn queue(&mut self, bytes: &[u8]) {
        if !self.write_closed {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Queues one frame.
    pub fn queue_frame(&mut self, payload: &[u8]) {
        self.queue(&frame(payload));
    }

    /// Queues one frame whose payload `fill` appends in place (a dump of a
    /// million SAs is not copied into a frame of its own). A payload longer
    /// than `max` is taken back: its length is the error.
    pub fn queue_frame_with(
        &mut self,
        max: usize,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), usize> {
        if self.write_closed {
            return Ok(());
        }
        let start = self.out.len();
        self.out.extend_from_slice(&[0; LEN_BYTES]);
        fill(&mut self.out);
        let len = self.out.len() - start - LEN_BYTES;
        if len > max {
            self.out.truncate(start);
            return Err(len);
        }
        self.out[start..start + LEN_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }

    /// Bytes not yet written.
    pub fn pending_out(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Writes what the socket takes now. After a write error nothing more
    /// is sent (the client is gone or stopped reading for good).
    pub fn flush(&mut self) {
        while self.pending_out() > 0 && !self.dead {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => self.close_writing("wrote 0 bytes"),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.close_writing(&e.to_string()),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > OUT_HIGH_WATER && self.sent >= self.out.len() / 2 {
            // Compacting only once half is sent keeps a large reply (a dump)
            // from being moved down after every partial write.
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    fn close_writing(&mut self, why: &str) {
        log::debug!("client #{} ({}): write: {why}", self.id, self.role());
        self.write_closed = true;
        self.out.clear();
        self.sent = 0;
    }

    /// Whether the client is still there (for counting clients).
    pub fn connected(&self) -> bool {
        !(self.dead || self.eof || self.write_closed)
    }

    /// Whether a complete request is waiting in the input buffer.
    pub fn input_ready(&self) -> bool {
        match &self.phase {
            Phase::Hello(f) | Phase::Host(f) | Phase::Ctl(f) => f.ready(),
            Phase::Pfkey { framer, .. } => framer.ready(),
            Phase::Carp => false,
        }
    }

    /// Whether to poll for input: open, not backlogged, and with room.
    pub fn wants_read(&self) -> bool {
        !self.dead && !self.eof && self.pending_out() < OUT_HIGH_WATER && !self.input_ready()
    }

    /// Reads once into the input buffer. Returns the bytes read; sets
    /// `eof` at end of stream and `dead` on a read error.
    pub fn read_some(&mut self) -> usize {
        if !self.wants_read() {
            return 0;
        }
        let r = match &mut self.phase {
            Phase::Hello(f) | Phase::Host(f) | Phase::Ctl(f) => f.read_from(&mut self.stream),
            Phase::Pfkey { framer, .. } => framer.read_from(&mut self.stream),
            // A watcher has nothing to say: one byte tells it broke the rule.
            Phase::Carp => self.stream.read(&mut [0u8; 1]),
        };
        match r {
            Ok(0) => {
                self.eof = true;
                0
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(e) => {
                log::debug!("client #{} ({}): read: {e}", self.id, self.role());
                self.dead = true;
                0
            }
        }
    }

    /// Whether the connection is finished: dead, or closed by the client
    /// with nothing left to answer or send.
    pub fn finished(&self) -> bool {
        self.dead || (self.eof && !self.input_ready() && self.pending_out() == 0)
    }

    /// Logs why the client is dropped, sends `reply` (if any) as a last
    /// attempt, and marks the connection dead.
    pub fn fail(&mut self, why: &str, reply: Option<&[u8]>) {
        log::warn!("client #{} ({}): disconnected: {why}", self.id, self.role());
        if let Some(r) = reply {
            self.queue_frame(r);
        }
        self.flush();
        self.dead = true;
    }
}
