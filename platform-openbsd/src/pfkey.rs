//! The network process's PF_KEY socket (reference §11.1–11.4, §13.2).
//!
//! The kernel hands a PF_KEY socket one whole message per read. Each is
//! framed by its header's length, peeked first, so that a message of any
//! size is read whole and a record whose length disagrees with its header
//! is dropped rather than handed on. Promiscuous copies are handed on as
//! read: the node unwraps them and skips its own writes
//! (`sasyncd_core::pfkey::unwrap_promisc`). Promiscuous mode itself is
//! switched by the node with an `X_PROMISC` written like any message; no
//! `SADB_REGISTER` is sent, as in the original: copies reach a promiscuous
//! socket without it, and registration would only add `ACQUIRE`s, which
//! sasyncd never forwards.
//!
//! Writes go to the kernel at once, which validates them there and then:
//! a refusal comes back as the write's errno ([`PfkeyWrite::Failed`]),
//! which the node counts; replies with an errno come back as messages.
//!
//! Everything but opening the socket works on any datagram socket, so it
//! is tested on any Unix with a socket pair.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{recv, MsgFlags};
use sasyncd_core::pfkey::consts::{CHUNK, HDR_LEN, PF_KEY_V2};
use sasyncd_core::pfkey::msg_type_name;
use sasyncd_core::platform::PfkeyWrite;
use zeroize::Zeroize;

/// Why a message read from the socket was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than a `sadb_msg` header.
    Short(usize),
    /// Not PF_KEY version 2.
    BadVersion(u8),
    /// The header's length is shorter than the header.
    BadLength(usize),
    /// The header's length disagrees with the bytes the kernel delivered.
    Truncated {
        /// Bytes the header announces.
        want: usize,
        /// Bytes the record had.
        got: usize,
    },
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::Short(n) => write!(f, "{n}-byte record, shorter than a header"),
            FrameError::BadVersion(v) => write!(f, "PF_KEY version {v}"),
            FrameError::BadLength(n) => write!(f, "header length {n} bytes"),
            FrameError::Truncated { want, got } => {
                write!(f, "header says {want} bytes, record has {got}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// The length in bytes of the message whose first bytes are `head`.
pub fn frame_len(head: &[u8]) -> Result<usize, FrameError> {
    if head.len() < HDR_LEN {
        return Err(FrameError::Short(head.len()));
    }
    if head[0] != PF_KEY_V2 {
        return Err(FrameError::BadVersion(head[0]));
    }
    let len = usize::from(u16::from_ne_bytes([head[4], head[5]])) * CHUNK;
    if len < HDR_LEN {
        return Err(FrameError::BadLength(len));
    }
    Ok(len)
}

/// A PF_KEY socket (or, for tests, any datagram socket), nonblocking.
#[derive(Debug)]
pub struct PfkeySock {
    fd: OwnedFd,
    /// The last write would have blocked: wait for writability.
    blocked: bool,
}

impl PfkeySock {
    /// Opens `socket(PF_KEY, SOCK_RAW, PF_KEY_V2)`, nonblocking and
    /// close-on-exec. Needs root; pledge forbids it later, so this happens
    /// at start-up.
    #[cfg(target_os = "openbsd")]
    pub fn open() -> io::Result<PfkeySock> {
        PfkeySock::from_fd(crate::sys::pfkey_socket()?)
    }

    /// Wraps a datagram socket, making it nonblocking.
    pub fn from_fd(fd: OwnedFd) -> io::Result<PfkeySock> {
        let flags = OFlag::from_bits_retain(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(PfkeySock { fd, blocked: false })
    }

    /// Reads every whole message waiting and appends each to `out`;
    /// malformed records are dropped (and logged). Errors other than "no
    /// more for now" end the reading.
    pub fn read_messages(&mut self, out: &mut Vec<Vec<u8>>) -> io::Result<()> {
        loop {
            let mut head = [0u8; HDR_LEN];
            let n = match recv(self.fd.as_raw_fd(), &mut head, MsgFlags::MSG_PEEK) {
                // The kernel never sends an empty record: the socket ended.
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let len = match frame_len(&head[..n]) {
                Ok(len) => len,
                Err(e) => {
                    log::warn!("PF_KEY: dropped a malformed record: {e}");
                    self.discard()?;
                    continue;
                }
            };
            // One byte more than announced, to notice a longer record.
            let mut buf = vec![0u8; len + 1];
            let got = loop {
                match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                    Ok(got) => break got,
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            };
            if got != len {
                buf.zeroize();
                log::warn!(
                    "PF_KEY: dropped a malformed record: {}",
                    FrameError::Truncated { want: len, got }
                );
                continue;
            }
            buf.truncate(len);
            out.push(buf);
        }
    }

    /// Consumes the next record without looking at it.
    fn discard(&mut self) -> io::Result<()> {
        let mut b = [0u8; HDR_LEN];
        loop {
            match recv(self.fd.as_raw_fd(), &mut b, MsgFlags::empty()) {
                Ok(_) | Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes one message: the kernel takes it, refuses it (its errno is
    /// logged and returned), or the socket cannot take it now (interrupted
    /// writes are retried; a full socket is [`PfkeyWrite::WouldBlock`], to
    /// be offered again when [`wants_write`](Self::wants_write) is answered).
    pub fn write(&mut self, msg: &[u8]) -> PfkeyWrite {
        loop {
            match nix::unistd::write(&self.fd, msg) {
                Ok(n) if n == msg.len() => {
                    self.blocked = false;
                    return PfkeyWrite::Written;
                }
                Ok(n) => {
                    // PF_KEY writes are atomic; a short one is a refusal.
                    self.blocked = false;
                    log::warn!(
                        "PF_KEY write of {} took {n} of {} bytes",
                        type_name(msg),
                        msg.len()
                    );
                    return PfkeyWrite::Failed(Errno::EIO as u32);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    self.blocked = true;
                    return PfkeyWrite::WouldBlock;
                }
                Err(e) => {
                    self.blocked = false;
                    log::warn!(
                        "PF_KEY write of {} refused by the kernel: {} ({})",
                        type_name(msg),
                        e.desc(),
                        e as i32
                    );
                    return PfkeyWrite::Failed(e as u32);
                }
            }
        }
    }

    /// Whether the last write found the socket full.
    pub fn wants_write(&self) -> bool {
        self.blocked
    }
}

fn type_name(msg: &[u8]) -> &'static str {
    msg.get(1).map_or("(empty)", |&t| msg_type_name(t))
}

impl AsFd for PfkeySock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasyncd_core::pfkey::{build_flush, build_promisc};
    use std::os::unix::net::UnixDatagram;

    fn pair() -> (PfkeySock, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        (PfkeySock::from_fd(OwnedFd::from(a)).unwrap(), b)
    }

    fn flush(seq: u32) -> Vec<u8> {
        let mut m = [0u8; 16];
        build_flush(0, seq, 4242, &mut m).unwrap();
        m.to_vec()
    }

    /// A promiscuous copy as the kernel wraps a request (§13.2).
    fn promisc_copy(inner: &[u8], writer: u32) -> Vec<u8> {
        let mut outer = [0u8; 16];
        build_promisc(false, writer, 0, &mut outer).unwrap();
        let mut v = outer.to_vec();
        let units = ((16 + inner.len()) / 8) as u16;
        v[4..6].copy_from_slice(&units.to_ne_bytes());
        v.extend_from_slice(inner);
        v
    }

    #[test]
    fn frames() {
        let f = flush(1);
        assert_eq!(frame_len(&f), Ok(16));
        assert_eq!(frame_len(&f[..8]), Err(FrameError::Short(8)));
        let mut v = f.clone();
        v[0] = 1;
        assert_eq!(frame_len(&v), Err(FrameError::BadVersion(1)));
        let mut z = f.clone();
        z[4] = 0;
        assert_eq!(frame_len(&z), Err(FrameError::BadLength(0)));
        assert_eq!(frame_len(&promisc_copy(&f, 7)), Ok(32));
    }

    #[test]
    fn reads_whole_messages_and_drops_malformed_ones() {
        let (mut s, k) = pair();
        let copy = promisc_copy(&flush(3), 77);
        k.send(&flush(1)).unwrap();
        k.send(&[2, 9, 0]).unwrap(); // shorter than a header
        let mut long = flush(2);
        long.extend_from_slice(&[0; 8]); // longer than its header says
        k.send(&long).unwrap();
        let mut short = copy.clone();
        short.truncate(24); // shorter than its header says
        k.send(&short).unwrap();
        let mut bad = flush(4);
        bad[0] = 3;
        k.send(&bad).unwrap();
        k.send(&copy).unwrap();
        let mut out = Vec::new();
        s.read_messages(&mut out).unwrap();
        assert_eq!(out, vec![flush(1), copy]);
        // Nothing more: no error, nothing added.
        s.read_messages(&mut out).unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn reads_a_message_larger_than_the_kernel_accepts_from_writers() {
        let (mut s, k) = pair();
        let inner_len = sasyncd_core::pfkey::PFKEY_MSG_MAXSZ;
        let mut inner = vec![0u8; inner_len];
        inner[..16].copy_from_slice(&flush(9));
        inner[4..6].copy_from_slice(&((inner_len / 8) as u16).to_ne_bytes());
        let copy = promisc_copy(&inner, 5);
        k.send(&copy).unwrap();
        let mut out = Vec::new();
        s.read_messages(&mut out).unwrap();
        assert_eq!(out, vec![copy]);
    }

    #[test]
    fn writes_go_out_whole() {
        let (mut s, k) = pair();
        assert_eq!(s.write(&flush(1)), PfkeyWrite::Written);
        let mut b = [0u8; 64];
        let n = k.recv(&mut b).unwrap();
        assert_eq!(&b[..n], &flush(1)[..]);
        assert!(!s.wants_write());
    }

    #[test]
    fn a_full_socket_would_block_then_recovers() {
        let (mut s, k) = pair();
        let m = flush(1);
        let mut sent = 0;
        loop {
            match s.write(&m) {
                PfkeyWrite::Written => sent += 1,
                PfkeyWrite::WouldBlock => break,
                PfkeyWrite::Failed(e) => panic!("errno {e}"),
            }
            assert!(sent < 1_000_000, "the socket never filled");
        }
        assert!(s.wants_write());
        let mut b = [0u8; 64];
        k.recv(&mut b).unwrap();
        assert_eq!(s.write(&m), PfkeyWrite::Written);
        assert!(!s.wants_write());
    }

    #[test]
    fn a_refused_write_reports_the_errno() {
        let (mut s, k) = pair();
        drop(k);
        match s.write(&flush(1)) {
            PfkeyWrite::Failed(e) => assert_ne!(e, 0),
            other => panic!("{other:?}"),
        }
        assert!(!s.wants_write());
    }

    #[test]
    fn the_end_of_the_socket_is_an_error() {
        // A PF_KEY socket has no end-of-file; a read of nothing is how one
        // would show (a socket pair shows it with an empty datagram).
        let (mut s, k) = pair();
        k.send(&flush(1)).unwrap();
        k.send(&[]).unwrap();
        let mut out = Vec::new();
        let e = s.read_messages(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, vec![flush(1)]);
    }
}
