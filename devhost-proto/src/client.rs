//! The client side of the devhost protocol (std only), for the daemon's
//! platform layer in development mode and for tests: one function or type
//! per role. Blocking calls time out after [`TIMEOUT`] so a wedged devhost
//! shows up as an error rather than a hang.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use sasyncd_core::node::Table;

use crate::frame::{frame, read_frame, FrameBuf};
use crate::proto::{parse_reply, HostRequest, ProtoError, Role, MAX_REPLY};

/// How long a blocking call waits for the devhost's answer.
pub const TIMEOUT: Duration = Duration::from_secs(30);

fn invalid(e: ProtoError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Connects to `path` and says hello as `role`; the devhost's refusal is
/// a `ConnectionRefused` error carrying its message.
fn handshake(path: &Path, role: Role) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(&frame(&role.encode()))?;
    let p = read_frame(&mut s, MAX_REPLY)?;
    if let Err(msg) = parse_reply(&p).map_err(invalid)? {
        return Err(io::Error::new(io::ErrorKind::ConnectionRefused, msg));
    }
    Ok(s)
}

/// Opens a PF_KEY socket for the process `pid` (the pid its messages
/// carry). The stream is blocking, without timeouts; from here on it
/// carries raw PF_KEY messages both ways (cut them with
/// [`PfkeyFramer`](crate::PfkeyFramer)).
pub fn connect_pfkey(path: &Path, pid: u32) -> io::Result<UnixStream> {
    let s = handshake(path, Role::Pfkey { pid })?;
    s.set_read_timeout(None)?;
    Ok(s)
}

/// The privileged process's channel: dumps, demotion, IKE control and the
/// carp link state, one blocking request at a time.
#[derive(Debug)]
pub struct HostClient {
    stream: UnixStream,
}

impl HostClient {
    /// Connects as the host role.
    pub fn connect(path: &Path) -> io::Result<HostClient> {
        Ok(HostClient {
            stream: handshake(path, Role::Host)?,
        })
    }

    /// Sends `req`; its result bytes, or the devhost's refusal. The result
    /// is the reply's own buffer, its status byte taken off in place (a
    /// dump of a million SAs is not copied again, and its keys are left in
    /// no freed copy).
    fn call(&mut self, req: HostRequest) -> io::Result<Result<Vec<u8>, String>> {
        self.stream.write_all(&frame(&req.encode()))?;
        let mut p = read_frame(&mut self.stream, MAX_REPLY)?;
        if let Err(msg) = parse_reply(&p).map_err(invalid)? {
            return Ok(Err(msg));
        }
        p.drain(..1);
        // The shift left a copy of the last byte past the end.
        zeroize::Zeroize::zeroize(p.spare_capacity_mut());
        Ok(Ok(p))
    }

    /// A result that must succeed and have `n` bytes.
    fn call_exact<const N: usize>(&mut self, req: HostRequest) -> io::Result<[u8; N]> {
        let r = self.call(req)?.map_err(io::Error::other)?;
        r.try_into().map_err(|v: Vec<u8>| {
            invalid(ProtoError::BadLength {
                got: v.len(),
                want: N,
            })
        })
    }

    /// The sysctl dump of `table`.
    pub fn dump(&mut self, table: Table) -> io::Result<Vec<u8>> {
        self.call(HostRequest::Dump(table))?
            .map_err(io::Error::other)
    }

    /// Adds `delta` to the carp group's demotion counter: the new counter,
    /// or why the devhost refused (the result would leave 0..=255).
    pub fn demote(&mut self, delta: i32) -> io::Result<Result<i32, String>> {
        match self.call(HostRequest::Demote(delta))? {
            Err(msg) => Ok(Err(msg)),
            Ok(v) => {
                let b: [u8; 4] = v.as_slice().try_into().map_err(|_| {
                    invalid(ProtoError::BadLength {
                        got: v.len(),
                        want: 4,
                    })
                })?;
                Ok(Ok(i32::from_be_bytes(b)))
            }
        }
    }

    /// The demotion counter.
    pub fn get_demote(&mut self) -> io::Result<i32> {
        self.call_exact(HostRequest::GetDemote)
            .map(i32::from_be_bytes)
    }

    /// Tells the IKE daemon to be active or passive; whether it accepted.
    pub fn ike(&mut self, active: bool) -> io::Result<bool> {
        Ok(self.call(HostRequest::Ike(active))?.is_ok())
    }

    /// The carp interface's `LINK_STATE_*`.
    pub fn link_state(&mut self) -> io::Result<u8> {
        self.call_exact::<1>(HostRequest::LinkState).map(|b| b[0])
    }

    /// Whether a pfsync interface is up.
    pub fn pfsync_up(&mut self) -> io::Result<bool> {
        self.call_exact::<1>(HostRequest::Pfsync).map(|b| b[0] != 0)
    }
}

/// A watcher of the carp interface's link state (the routing socket's
/// stand-in). Poll its descriptor for input, then call
/// [`CarpWatch::read_states`].
#[derive(Debug)]
pub struct CarpWatch {
    stream: UnixStream,
    buf: FrameBuf,
    eof: bool,
}

/// Connects as a carp watcher. The current link state is the first one
/// [`CarpWatch::read_states`] returns.
pub fn connect_carp(path: &Path) -> io::Result<CarpWatch> {
    let stream = handshake(path, Role::Carp)?;
    stream.set_nonblocking(true)?;
    Ok(CarpWatch {
        stream,
        buf: FrameBuf::new(1),
        eof: false,
    })
}

impl CarpWatch {
    /// The link states received since the last call, oldest first (empty
    /// when nothing came). The end of the stream is an `UnexpectedEof`
    /// error, reported once the states before it have been returned.
    pub fn read_states(&mut self) -> io::Result<Vec<u8>> {
        let mut states = Vec::new();
        while !self.eof {
            match self.buf.read_from(&mut self.stream) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            while let Some(f) = self.buf.next_frame() {
                match f.map_err(invalid)?[..] {
                    [s] => states.push(s),
                    ref other => {
                        return Err(invalid(ProtoError::BadLength {
                            got: other.len(),
                            want: 1,
                        }))
                    }
                }
            }
        }
        if self.eof && states.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the devhost closed the carp watch",
            ));
        }
        Ok(states)
    }
}

impl AsFd for CarpWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl AsRawFd for CarpWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

/// Sends one ctl command: `Ok` with what follows the reply's `ok` (and
/// one space or newline), or `Err` with what follows `error: `.
pub fn ctl(path: &Path, command: &str) -> io::Result<Result<String, String>> {
    let mut s = handshake(path, Role::Ctl)?;
    s.write_all(&frame(command.as_bytes()))?;
    let p = read_frame(&mut s, MAX_REPLY)?;
    let text = String::from_utf8(p).map_err(|_| invalid(ProtoError::NotUtf8))?;
    if let Some(msg) = text.strip_prefix("error: ") {
        return Ok(Err(msg.to_string()));
    }
    match text.strip_prefix("ok") {
        Some("") => Ok(Ok(String::new())),
        Some(rest) if rest.starts_with([' ', '\n']) => Ok(Ok(rest[1..].to_string())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("ctl reply is neither ok nor error: {text:?}"),
        )),
    }
}
