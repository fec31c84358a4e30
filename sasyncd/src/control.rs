//! The control socket: a unix stream socket the network process serves,
//! created before privileges are dropped. A client sends one request line
//! and reads the reply until the daemon closes the connection. Requests:
//!
//! * `show`: the node's state and one block per peer, `key value` lines
//!   (stable names, for people and scripts alike);
//! * `log verbose|brief`: change the log verbosity at run time.
//!
//! A malformed or unknown request gets `error: ...` and changes nothing.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use sasyncd_core::node::{NodeStats, PeerView};
use sasyncd_core::time::Instant;

/// Longest request line.
const MAX_REQUEST: usize = 256;
/// Most clients served at once; more wait in the listen queue.
const MAX_CLIENTS: usize = 16;

/// A connected client: its request so far, then the reply being written.
#[derive(Debug)]
struct Client {
    stream: UnixStream,
    request: Vec<u8>,
    reply: Option<(Vec<u8>, usize)>,
}

/// The control socket and its clients.
/// The socket file is not removed when this drops: the network process is
/// chrooted away from it and the privileged process (which also holds a
/// copy after the fork) removes it when the daemon exits.
#[derive(Debug)]
pub struct Control {
    path: PathBuf,
    listener: UnixListener,
    clients: Vec<Client>,
}

/// What a request asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The state report.
    Show,
    /// Log verbosity: true for verbose.
    Log(bool),
}

/// A snapshot of what `show` reports.
#[derive(Debug)]
pub struct Status<'a> {
    pub now: Instant,
    pub node: NodeStats,
    pub peers: &'a [PeerView],
}

impl Control {
    /// Creates the socket at `path` (mode 0660). Refuses to start when
    /// another daemon answers there; a stale socket file is replaced.
    pub fn bind(path: &Path) -> io::Result<Control> {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{}: another sasyncd answers there", path.display()),
            ));
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket_like() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: exists and is not a socket", path.display()),
                ))
            }
            Err(_) => {}
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        listener.set_nonblocking(true)?;
        Ok(Control {
            path: path.to_path_buf(),
            listener,
            clients: Vec::new(),
        })
    }

    /// The listening socket, to poll for input.
    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Each client's socket and whether it waits to write.
    pub fn client_fds(&self) -> impl Iterator<Item = (BorrowedFd<'_>, bool)> {
        self.clients
            .iter()
            .map(|c| (c.stream.as_fd(), c.reply.is_some()))
    }

    /// Accepts waiting clients.
    pub fn accept(&mut self) {
        while self.clients.len() < MAX_CLIENTS {
            match self.listener.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            stream: s,
                            request: Vec::new(),
                            reply: None,
                        });
                    }
                }
                Err(_) => break,
            }
        }
    }

    /// Reads client `i`'s request; a complete one is answered with
    /// `answer`. Returns whether the client is still there.
    pub fn serve(
        &mut self,
        i: usize,
        answer: &mut dyn FnMut(Result<Request, String>) -> String,
    ) -> bool {
        let Some(c) = self.clients.get_mut(i) else {
            return false;
        };
        if c.reply.is_none() {
            let mut buf = [0u8; MAX_REQUEST];
            match c.stream.read(&mut buf) {
                Ok(0) => return self.drop_client(i),
                Ok(n) => c.request.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
                Err(_) => return self.drop_client(i),
            }
            let line = match c.request.iter().position(|&b| b == b'\n') {
                Some(end) => Some(parse(&c.request[..end])),
                None if c.request.len() >= MAX_REQUEST => Some(Err("request too long".to_string())),
                None => None,
            };
            let Some(req) = line else { return true };
            c.reply = Some((answer(req).into_bytes(), 0));
        }
        self.write_reply(i)
    }

    /// Writes what client `i` waits for; closes it once all is written.
    pub fn write_reply(&mut self, i: usize) -> bool {
        let Some(c) = self.clients.get_mut(i) else {
            return false;
        };
        let Some((reply, at)) = c.reply.as_mut() else {
            return true;
        };
        while *at < reply.len() {
            match c.stream.write(&reply[*at..]) {
                Ok(0) => return self.drop_client(i),
                Ok(n) => *at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.drop_client(i),
            }
        }
        self.drop_client(i)
    }

    fn drop_client(&mut self, i: usize) -> bool {
        self.clients.remove(i);
        false
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket()
    }
}

/// Parses one request line.
pub fn parse(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "request is not text".to_string())?;
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["show"] => Ok(Request::Show),
        ["log", "verbose"] => Ok(Request::Log(true)),
        ["log", "brief"] => Ok(Request::Log(false)),
        [] => Err("empty request".into()),
        _ => Err(format!("unknown request: {}", text.trim())),
    }
}

fn ms_ago(now: Instant, t: Instant) -> u64 {
    now.as_millis().saturating_sub(t.as_millis())
}

fn ike_name(m: Option<sasyncd_core::node::IkeMode>) -> &'static str {
    match m {
        Some(sasyncd_core::node::IkeMode::Active) => "active",
        Some(sasyncd_core::node::IkeMode::Passive) => "passive",
        None => "none",
    }
}

fn pos(p: sasyncd_core::state::Position) -> String {
    format!("{}:{}", p.epoch, p.seq)
}

/// The `show` report: `key value` lines, then one `peer ADDR` block each.
/// Times are in milliseconds before now (`*_ms_ago`) or from now (`*_in_ms`).
pub fn show(s: &Status<'_>) -> String {
    let n = &s.node;
    let mut o = String::new();
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(o, "{k} {v}");
    };
    line("state", &n.run_state);
    line("state_since_ms_ago", &ms_ago(s.now, n.run_state_since));
    line("locked", &n.locked);
    line(
        "carp_link_state",
        &n.link_state
            .map_or("unknown".to_string(), |l| l.to_string()),
    );
    line("demotion_held", &n.demote_held);
    if let Some(d) = n.demote_deadline {
        line(
            "demotion_release_in_ms",
            &d.as_millis().saturating_sub(s.now.as_millis()),
        );
    }
    line("ike_requested", &ike_name(n.ike_requested));
    line("ike_confirmed", &ike_name(n.ike_confirmed));
    line("split_brain", &n.split_brain);
    line("position", &pos(n.position));
    line(
        "ring",
        &format!(
            "{} of {} bytes, {} records",
            n.ring.bytes, n.ring.capacity, n.ring.records
        ),
    );
    line("syncing", &n.syncing);
    line("repairing", &n.repairing);
    match n.following {
        Some((a, synced)) => line(
            "following",
            &format!("{a} {}", if synced { "streaming" } else { "asked" }),
        ),
        None => line("following", &"none"),
    }
    line("pfkey_queued", &n.pfkey_queued);
    line("job", &n.job.unwrap_or("none"));
    let c = &n.counters;
    for (k, v) in [
        ("forwarded", c.forwarded),
        ("applied", c.applied),
        ("pfkey_written", c.pfkey_written),
        ("kernel_errors", c.kernel_errors),
        ("kernel_exists", c.kernel_exists),
        ("refused_data", c.refused_data),
        ("rejected_unknown", c.rejected_unknown),
        ("rejected_frames", c.rejected_frames),
        ("snapshots_started", c.snapshots_started),
        ("snapshots_done", c.snapshots_done),
        ("ring_resumes", c.ring_resumes),
        ("resyncs", c.resyncs),
        ("sweeps", c.sweeps),
        ("swept", c.swept),
        ("digests_sent", c.digests_sent),
        ("digests_matched", c.digests_matched),
        ("digest_mismatches", c.digest_mismatches),
        ("split_brain_episodes", c.split_brain_episodes),
    ] {
        let _ = writeln!(o, "counter {k} {v}");
    }
    for p in s.peers {
        let st = &p.stats;
        let _ = writeln!(o, "peer {}", p.addr);
        let _ = writeln!(o, "  port {}", p.port);
        let _ = writeln!(
            o,
            "  state {}",
            p.state.map_or("unknown".to_string(), |x| x.to_string())
        );
        let _ = writeln!(o, "  connected {}", p.connected);
        let _ = writeln!(o, "  session {}", p.phase);
        if let Some(t) = p.phase_since {
            let _ = writeln!(o, "  session_since_ms_ago {}", ms_ago(s.now, t));
        }
        if let Some(t) = st.up_since {
            let _ = writeln!(o, "  up_ms {}", ms_ago(s.now, t));
        }
        if let Some(t) = st.last_sync {
            let _ = writeln!(o, "  last_sync_ms_ago {}", ms_ago(s.now, t));
        }
        let _ = writeln!(o, "  sessions {}", st.sessions);
        let _ = writeln!(o, "  reconnects {}", st.reconnects);
        let _ = writeln!(o, "  frames_in {}", st.frames_in);
        let _ = writeln!(o, "  frames_out {}", st.frames_out);
        let _ = writeln!(o, "  bytes_in {}", st.bytes_in);
        let _ = writeln!(o, "  bytes_out {}", st.bytes_out);
        let _ = writeln!(o, "  applied {}", pos(st.applied));
        let _ = writeln!(o, "  acked_to {}", pos(st.acked_to));
        let _ = writeln!(o, "  acked_by {}", pos(st.acked_by));
        let _ = writeln!(o, "  lag {}", st.lag);
        let _ = writeln!(o, "  snapshots_sent {}", st.snapshots_sent);
        let _ = writeln!(o, "  snapshots_received {}", st.snapshots_received);
        if let Some(d) = st.last_snapshot_sent {
            let _ = writeln!(o, "  last_snapshot_sent_ms {}", d.as_millis());
        }
        if let Some(d) = st.last_snapshot_received {
            let _ = writeln!(o, "  last_snapshot_received_ms {}", d.as_millis());
        }
        let e = &st.errors;
        let _ = writeln!(
            o,
            "  errors auth={} replay={} wrong_key={} oversize={} malformed={} protocol={} kernel={} io={}",
            e.auth, e.replay, e.wrong_key, e.oversize, e.malformed, e.protocol, e.kernel, e.io
        );
        if let Some(le) = st.last_error {
            let _ = writeln!(
                o,
                "  last_error {:?} {} ({} ms ago)",
                le.kind,
                le.reason,
                ms_ago(s.now, le.at)
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_garbage_is_refused() {
        assert_eq!(parse(b"show"), Ok(Request::Show));
        assert_eq!(parse(b"  show  "), Ok(Request::Show));
        assert_eq!(parse(b"log verbose"), Ok(Request::Log(true)));
        assert_eq!(parse(b"log brief"), Ok(Request::Log(false)));
        assert!(parse(b"").unwrap_err().contains("empty"));
        assert!(parse(b"reboot now")
            .unwrap_err()
            .contains("unknown request"));
        assert!(parse(&[0xff, 0xfe]).unwrap_err().contains("not text"));
    }

    #[test]
    fn a_second_daemon_is_refused_and_a_stale_socket_replaced() {
        let dir = std::env::temp_dir().join(format!("sasyncd-ctl-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("ctl.sock");
        let _ = std::fs::remove_file(&path);
        let a = Control::bind(&path).unwrap();
        let e = Control::bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        // A socket file nobody answers on (the daemon crashed) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(dir.join("stale.sock")).unwrap();
        drop(stale);
        Control::bind(&dir.join("stale.sock")).unwrap();
        // A regular file is not ours to remove.
        std::fs::write(dir.join("file"), b"x").unwrap();
        assert!(Control::bind(&dir.join("file")).is_err());
        assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"x");
        drop(a);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
