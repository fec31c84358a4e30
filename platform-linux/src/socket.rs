//! An XFRM netlink socket: requests with their acknowledgement, full dumps,
//! and the stream of change events.
//!
//! One socket per job: requests and dumps on a socket that joins no
//! multicast group (so replies are never interleaved with events), the
//! watch on another. A socket belongs to the network namespace it was
//! opened in, whatever the thread does later ([`XfrmSocket::open_in`]), so
//! one process can read one kernel view and write another.
//!
//! Every datagram is sized with `MSG_PEEK | MSG_TRUNC` before it is read,
//! so a record of any size is read whole; buffers that held keys are wiped.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{bind, getsockname, recv, send, setsockopt, sockopt, MsgFlags, NetlinkAddr};
use nix::sys::time::TimeVal;
use zeroize::Zeroize;

use crate::nl::{self, messages, Msg, NLMSG_DONE, NLMSG_ERROR};
use crate::rewrite::dump_request;

/// How long a request waits for its acknowledgement before giving up: a
/// kernel answers at once, so this only bounds a bug.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// Receive buffer asked for a watch socket: events come in bursts (a
/// keying daemon bringing up thousands of tunnels) and a full buffer loses
/// them.
const WATCH_RCVBUF: usize = 8 << 20;

/// The smallest receive buffer: the kernel caps a dump datagram at 32 KiB.
const RECV_MIN: usize = 32 << 10;

/// Why a request failed.
#[derive(Debug)]
pub enum RequestError {
    /// The kernel refused it with this errno.
    Refused(Errno),
    /// The socket failed (or no answer came).
    Io(io::Error),
    /// The answer was not netlink.
    Malformed(nl::NlError),
}

impl core::fmt::Display for RequestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RequestError::Refused(e) => {
                write!(f, "refused by the kernel: {} ({})", e.desc(), *e as i32)
            }
            RequestError::Io(e) => write!(f, "socket: {e}"),
            RequestError::Malformed(e) => write!(f, "malformed answer: {e}"),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<io::Error> for RequestError {
    fn from(e: io::Error) -> Self {
        RequestError::Io(e)
    }
}

impl From<Errno> for RequestError {
    fn from(e: Errno) -> Self {
        RequestError::Io(e.into())
    }
}

/// A `NETLINK_XFRM` socket.
#[derive(Debug)]
pub struct XfrmSocket {
    fd: OwnedFd,
    port: u32,
    seq: u32,
    buf: Vec<u8>,
    /// The receive timeout set on the socket.
    wait: Option<Duration>,
}

impl XfrmSocket {
    /// Opens a socket in the calling thread's network namespace, joined to
    /// the multicast `groups` ([`crate::xfrm::group`] bits; 0 for a socket
    /// that only makes requests). Needs `CAP_NET_ADMIN` for requests that
    /// change or dump the tables, and for joining the groups.
    pub fn open(groups: u32) -> io::Result<XfrmSocket> {
        // SAFETY: socket(2) with constant arguments; the result is checked
        // and owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                crate::xfrm::NETLINK_XFRM,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
        let port = getsockname::<NetlinkAddr>(fd.as_raw_fd())?.pid();
        let sock = XfrmSocket {
            fd,
            port,
            seq: 0,
            buf: Vec::new(),
            wait: None,
        };
        if groups != 0 {
            sock.set_receive_buffer(WATCH_RCVBUF)?;
        }
        Ok(sock)
    }

    /// Sets the socket's receive buffer: what a watch can fall behind by
    /// before events are lost (`ENOBUFS`). Beyond `net.core.rmem_max` it
    /// needs `CAP_NET_ADMIN`; without, the limit is taken.
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        if setsockopt(&self.fd, sockopt::RcvBufForce, &bytes).is_err() {
            setsockopt(&self.fd, sockopt::RcvBuf, &bytes)?;
        }
        Ok(())
    }

    /// A socket over `fd`: any datagram socket in the kernel's place (a
    /// test's socket pair whose other end plays the kernel, as
    /// `PfkeySock::from_fd` on OpenBSD); `port` is what
    /// [`port`](Self::port) reports.
    pub fn from_fd(fd: OwnedFd, port: u32) -> XfrmSocket {
        XfrmSocket {
            fd,
            port,
            seq: 0,
            buf: Vec::new(),
            wait: None,
        }
    }

    /// Opens a socket in the network namespace at `netns` (a file such as
    /// `/run/netns/NAME` or `/proc/PID/ns/net`); the calling thread is back
    /// in its own namespace when this returns. Needs `CAP_SYS_ADMIN`.
    pub fn open_in(netns: &Path, groups: u32) -> io::Result<XfrmSocket> {
        let own = std::fs::File::open("/proc/thread-self/ns/net")?;
        let target = std::fs::File::open(netns)?;
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET)?;
        let sock = XfrmSocket::open(groups);
        // Failing to return would leave this thread in the wrong kernel
        // view for everything it does next: that is not survivable.
        if let Err(e) = setns(own.as_fd(), CloneFlags::CLONE_NEWNET) {
            panic!("cannot return to the own network namespace: {e}");
        }
        sock
    }

    /// The socket's netlink port id: events caused by its requests carry it
    /// (a watcher skips its own writes by it).
    pub fn port(&self) -> u32 {
        self.port
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send_msg(&mut self, msg: &mut [u8]) -> Result<u32, RequestError> {
        let seq = self.next_seq();
        nl::set_seq_pid(msg, seq, self.port);
        loop {
            match send(self.fd.as_raw_fd(), msg, MsgFlags::empty()) {
                Ok(_) => return Ok(seq),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn set_wait(&mut self, w: Duration) -> io::Result<()> {
        if self.wait == Some(w) {
            return Ok(());
        }
        let tv = TimeVal::from(libc::timeval {
            tv_sec: w.as_secs() as libc::time_t,
            tv_usec: w.subsec_micros() as libc::suseconds_t,
        });
        setsockopt(&self.fd, sockopt::ReceiveTimeout, &tv)?;
        self.wait = Some(w);
        Ok(())
    }

    /// Receives one datagram into the socket's buffer, waiting at most
    /// `wait` (`None`: don't wait); whether one came. The buffer is at
    /// least [`RECV_MIN`]: the kernel sizes a dump's datagrams by the
    /// reader's buffer, and larger ones mean fewer system calls.
    fn recv_datagram(&mut self, wait: Option<Duration>) -> io::Result<bool> {
        let flags = match wait {
            Some(w) => {
                self.set_wait(w)?;
                MsgFlags::empty()
            }
            None => MsgFlags::MSG_DONTWAIT,
        };
        self.buf.zeroize();
        self.buf.resize(RECV_MIN, 0);
        let len = loop {
            match recv(
                self.fd.as_raw_fd(),
                &mut self.buf,
                flags | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
            ) {
                Ok(n) => break n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        };
        // Growing would copy what the peek read (keys) to a new block and
        // free the old one unwiped: wipe it first, the read fills it again.
        if len > self.buf.capacity() {
            self.buf.zeroize();
        }
        self.buf.resize(len.max(RECV_MIN), 0);
        let got = loop {
            match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => break n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        self.buf.truncate(got);
        Ok(true)
    }

    /// Sends one request without waiting: its acknowledgement (or the
    /// kernel's refusal) arrives later among whatever else the socket
    /// reads, naming the request's sequence number, which is kept as the
    /// writer set it (one is given here if it is 0). The header's port is
    /// set to this socket's: the kernel copies it into the change event
    /// it announces, by which a watcher tells its own writes. The daemon's
    /// network process writes this way, so that its one loop never blocks
    /// on the kernel. `EAGAIN` means the socket cannot take it now.
    pub fn send_request(&mut self, msg: &mut [u8]) -> Result<(), Errno> {
        let seq = match Msg::new(msg) {
            Ok(m) if m.seq() != 0 => m.seq(),
            _ => self.next_seq(),
        };
        nl::set_seq_pid(msg, seq, self.port);
        loop {
            match send(self.fd.as_raw_fd(), msg, MsgFlags::MSG_DONTWAIT) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Joins (`join` true) or leaves the multicast `groups`
    /// ([`crate::xfrm::group`] bits) on an open socket: a watch switched on
    /// and off as the node becomes master or slave. Joining needs
    /// `CAP_NET_ADMIN` in the calling process (XFRM does not let others
    /// receive), whoever opened the socket.
    pub fn set_groups(&mut self, groups: u32, join: bool) -> io::Result<()> {
        let opt = if join {
            libc::NETLINK_ADD_MEMBERSHIP
        } else {
            libc::NETLINK_DROP_MEMBERSHIP
        };
        for bit in 0..32u32 {
            if groups & (1 << bit) == 0 {
                continue;
            }
            let group: libc::c_int = bit as libc::c_int + 1;
            // SAFETY: setsockopt(2) on our descriptor with a pointer to a
            // live c_int and its size.
            let r = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_NETLINK,
                    opt,
                    (&group as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if join {
            self.set_receive_buffer(WATCH_RCVBUF)?;
        }
        Ok(())
    }

    /// Hands every message of every datagram waiting now to `each`, without
    /// waiting. `Err` with `ENOBUFS`: events were lost (see
    /// [`events`](Self::events)); the messages read before are handed over
    /// all the same.
    pub fn read_ready(&mut self, each: impl FnMut(Msg<'_>)) -> io::Result<usize> {
        self.read_datagrams(None, each)
    }

    /// Sends one request (its sequence and port are set here) and waits
    /// for its acknowledgement.
    pub fn request(&mut self, msg: &mut [u8]) -> Result<(), RequestError> {
        let seq = self.send_msg(msg)?;
        loop {
            if !self.recv_datagram(Some(ACK_WAIT))? {
                return Err(RequestError::Io(io::ErrorKind::TimedOut.into()));
            }
            for m in messages(&self.buf) {
                let m = m.map_err(RequestError::Malformed)?;
                if m.seq() != seq {
                    continue;
                }
                match m.error() {
                    Some(0) => return Ok(()),
                    Some(e) => return Err(RequestError::Refused(Errno::from_raw(e))),
                    None => {}
                }
            }
        }
    }

    /// Sends one request that the kernel answers with a message (`GETSA`,
    /// `GETAE`, `GETPOLICY` of one object) and returns that message.
    pub fn query(&mut self, msg: &mut [u8]) -> Result<Vec<u8>, RequestError> {
        let r = self.query_one(msg);
        // The last datagram read holds the answer (a state's keys).
        self.buf.zeroize();
        r
    }

    fn query_one(&mut self, msg: &mut [u8]) -> Result<Vec<u8>, RequestError> {
        let seq = self.send_msg(msg)?;
        loop {
            if !self.recv_datagram(Some(ACK_WAIT))? {
                return Err(RequestError::Io(io::ErrorKind::TimedOut.into()));
            }
            for m in messages(&self.buf) {
                let m = m.map_err(RequestError::Malformed)?;
                if m.seq() != seq {
                    continue;
                }
                match m.error() {
                    Some(0) => continue,
                    Some(e) => return Err(RequestError::Refused(Errno::from_raw(e))),
                    None => return Ok(m.bytes().to_vec()),
                }
            }
        }
    }

    /// Takes a full dump of the states (`kind` [`crate::xfrm::msg::GETSA`])
    /// or policies ([`crate::xfrm::msg::GETPOLICY`]), handing each record
    /// (one whole netlink message) to `each` in the kernel's order.
    pub fn dump(&mut self, kind: u16, each: impl FnMut(Msg<'_>)) -> Result<usize, RequestError> {
        let r = self.dump_records(kind, each);
        // The last datagram read may hold records (keys) besides the end.
        self.buf.zeroize();
        r
    }

    fn dump_records(
        &mut self,
        kind: u16,
        mut each: impl FnMut(Msg<'_>),
    ) -> Result<usize, RequestError> {
        let mut req = [0u8; nl::HDR_LEN];
        let n = dump_request(kind, &mut req).map_err(RequestError::Malformed)?;
        let seq = self.send_msg(&mut req[..n])?;
        let mut n = 0;
        loop {
            if !self.recv_datagram(Some(ACK_WAIT))? {
                return Err(RequestError::Io(io::ErrorKind::TimedOut.into()));
            }
            for m in messages(&self.buf) {
                let m = m.map_err(RequestError::Malformed)?;
                if m.seq() != seq {
                    continue;
                }
                match m.kind() {
                    NLMSG_DONE => return Ok(n),
                    NLMSG_ERROR => {
                        let e = m.error().unwrap_or(libc::EIO);
                        return Err(RequestError::Refused(Errno::from_raw(e)));
                    }
                    _ => {
                        n += 1;
                        each(m);
                    }
                }
            }
        }
    }

    /// Waits up to `wait` for events and hands every message of every
    /// datagram waiting to `each`. `Err` with `ENOBUFS` means events were
    /// lost (the receive buffer overran): the watcher must take a full
    /// dump again. A malformed datagram is dropped with a log line.
    pub fn events(&mut self, wait: Duration, each: impl FnMut(Msg<'_>)) -> io::Result<usize> {
        self.read_datagrams(Some(wait), each)
    }

    fn read_datagrams(
        &mut self,
        wait: Option<Duration>,
        mut each: impl FnMut(Msg<'_>),
    ) -> io::Result<usize> {
        let mut n = 0;
        let mut first = wait;
        loop {
            if !self.recv_datagram(first.take())? {
                return Ok(n);
            }
            for m in messages(&self.buf) {
                match m {
                    Ok(m) => {
                        n += 1;
                        each(m);
                    }
                    Err(e) => {
                        log::warn!("XFRM: dropped a malformed event datagram: {e}");
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for XfrmSocket {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl AsFd for XfrmSocket {
    /// The descriptor, for poll(2): a watch is read when it is readable.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
