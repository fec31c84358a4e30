//! The client side: one request, one reply (what `sasyncctl` does).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::proto::{Reply, ReplyError, ReplyReader, Request};
use super::socket::CLIENT_TIMEOUT;

/// How long a client waits for the daemon: a little longer than the daemon
/// gives it, so the daemon's own "no answer in time" arrives first.
pub const WAIT: Duration = Duration::from_secs(CLIENT_TIMEOUT.as_secs() + 5);

/// Why a request got no reply.
#[derive(Debug)]
pub enum ClientError {
    /// The socket could not be reached, written or read.
    Io(io::Error),
    /// The reply broke the protocol.
    Reply(ReplyError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Reply(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Connects to `path`.
pub fn connect(path: &Path) -> Result<UnixStream, ClientError> {
    let s = UnixStream::connect(path).map_err(ClientError::Io)?;
    s.set_read_timeout(Some(WAIT)).map_err(ClientError::Io)?;
    s.set_write_timeout(Some(WAIT)).map_err(ClientError::Io)?;
    Ok(s)
}

/// Sends `req` on a connected socket and reads the whole reply.
///
/// A daemon that refuses a client at once (all its slots taken) writes
/// why and closes without reading; a request written after that close
/// fails (`EPIPE`), but the refusal is already here to be read: it is the
/// answer, not the write error.
pub fn exchange(mut s: UnixStream, req: &Request) -> Result<Reply, ClientError> {
    if let Err(e) = s.write_all(req.encode().as_bytes()) {
        return match read_reply(&mut s) {
            Ok(reply) => Ok(reply),
            Err(_) => Err(ClientError::Io(e)),
        };
    }
    read_reply(&mut s)
}

/// Reads one whole reply.
fn read_reply(s: &mut UnixStream) -> Result<Reply, ClientError> {
    let mut r = ReplyReader::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ClientError::Io(e)),
        };
        if n == 0 {
            break;
        }
        if r.push(&buf[..n]).map_err(ClientError::Reply)? {
            break;
        }
    }
    r.finish().map_err(ClientError::Reply)
}

/// [`connect`] and [`exchange`].
pub fn ask(path: &Path, req: &Request) -> Result<Reply, ClientError> {
    exchange(connect(path)?, req)
}
