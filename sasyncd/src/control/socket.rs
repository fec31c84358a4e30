//! The control socket and its clients, served from the network process's
//! poll loop without ever blocking it: every socket is non-blocking, a
//! client's buffered request is bounded by [`MAX_REQUEST`], a client is
//! dropped (or, if it waits for an answer, told so) after
//! [`CLIENT_TIMEOUT`], and clients beyond [`MAX_CLIENTS`] are told that the
//! daemon is busy. So a hostile or broken client costs a bounded amount of
//! memory and time and cannot disturb the daemon.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::proto::{encode_error, request_line, Request, RequestError, MAX_REQUEST};

/// Most clients served at once; one more is told the daemon is busy.
pub const MAX_CLIENTS: usize = 16;

/// Of [`MAX_CLIENTS`], how many only root may take: idle clients of the
/// control group cannot lock root out.
pub const ROOT_SLOTS: usize = 2;

/// How long a client may take from connecting to reading the whole reply
/// (a reload answer included).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most unread bytes drained from a client before closing it (so that the
/// close does not reset a client that sent more than one line).
const DRAIN: usize = 64 * 1024;

/// A client, as the poll loop names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// Where a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its request line is arriving.
    Reading,
    /// Its request is being worked on elsewhere (a reload).
    Held,
    /// Its reply is being written.
    Writing,
}

#[derive(Debug)]
struct Client {
    id: ClientId,
    stream: UnixStream,
    request: Vec<u8>,
    phase: Phase,
    reply: Vec<u8>,
    written: usize,
    deadline: Instant,
    /// The client runs as root or as the user who started the daemon (its
    /// credentials, from the kernel): it may change things; anyone else
    /// (a member of the control group) may only look.
    root: bool,
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
    next: u64,
    /// Who started the daemon (root, or the user of a development-mode
    /// daemon): its clients, and root's, may change things.
    owner: u32,
}

/// Why the control socket could not be set up.
#[derive(Debug)]
pub enum BindError {
    /// Another daemon answers on the socket.
    InUse,
    /// Something that is not a socket is at the path.
    NotASocket,
    /// No such group.
    UnknownGroup(String),
    /// A system call failed.
    Io(io::Error),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::InUse => f.write_str("another sasyncd answers there"),
            BindError::NotASocket => f.write_str("exists and is not a socket"),
            BindError::UnknownGroup(g) => write!(f, "no such group: {g}"),
            BindError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BindError {}

impl From<io::Error> for BindError {
    fn from(e: io::Error) -> Self {
        BindError::Io(e)
    }
}

impl Control {
    /// Creates the socket at `path`, mode 0660, owned by the caller and by
    /// `group` (default: the caller's group, so only root may use it).
    /// Refuses to start when another daemon answers there; a stale socket
    /// file is replaced.
    pub fn bind(path: &Path, group: Option<&str>) -> Result<Control, BindError> {
        let gid = match group {
            Some(g) => Some(
                nix::unistd::Group::from_name(g)
                    .map_err(|e| BindError::Io(e.into()))?
                    .ok_or_else(|| BindError::UnknownGroup(g.to_string()))?
                    .gid,
            ),
            None => None,
        };
        if UnixStream::connect(path).is_ok() {
            return Err(BindError::InUse);
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if is_socket(&m.file_type()) => std::fs::remove_file(path)?,
            Ok(_) => return Err(BindError::NotASocket),
            Err(_) => {}
        }
        let listener = bind_private(path)?;
        // Group first, then its access: never open to another group.
        if let Some(gid) = gid {
            nix::unistd::chown(path, None, Some(gid)).map_err(|e| BindError::Io(e.into()))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        listener.set_nonblocking(true)?;
        Ok(Control {
            path: path.to_path_buf(),
            listener,
            clients: Vec::new(),
            next: 0,
            owner: nix::unistd::geteuid().as_raw(),
        })
    }

    /// The listening socket, to poll for input.
    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// The clients to poll: each one's socket and whether it waits to
    /// write (else to read). Held clients are not polled.
    pub fn client_fds(&self) -> impl Iterator<Item = (ClientId, BorrowedFd<'_>, bool)> {
        self.clients
            .iter()
            .filter(|c| c.phase != Phase::Held)
            .map(|c| (c.id, c.stream.as_fd(), c.phase == Phase::Writing))
    }

    /// Accepts waiting clients; tells those beyond [`MAX_CLIENTS`] that we
    /// are busy and closes them.
    pub fn accept(&mut self, now: Instant) {
        loop {
            let s = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if s.set_nonblocking(true).is_err() {
                continue;
            }
            let root = peer_uid(&s).is_some_and(|u| u == 0 || u == self.owner);
            let others = self.clients.iter().filter(|c| !c.root).count();
            if self.clients.len() >= MAX_CLIENTS || (!root && others >= MAX_CLIENTS - ROOT_SLOTS) {
                // A fresh socket's buffer takes a short line at once.
                let _ = (&s).write(&encode_error("busy: too many control clients"));
                continue;
            }
            self.next += 1;
            self.clients.push(Client {
                id: ClientId(self.next),
                stream: s,
                request: Vec::new(),
                phase: Phase::Reading,
                reply: Vec::new(),
                written: 0,
                deadline: now + CLIENT_TIMEOUT,
                root,
            });
        }
    }

    fn find(&mut self, id: ClientId) -> Option<&mut Client> {
        self.clients.iter_mut().find(|c| c.id == id)
    }

    /// Reads what client `id` sent; returns its request once the line is
    /// complete (or why it is refused; the caller replies either way).
    /// `None`: nothing complete yet, or the client left.
    pub fn read(&mut self, id: ClientId) -> Option<Result<Request, RequestError>> {
        let c = self.find(id)?;
        if c.phase != Phase::Reading {
            return None;
        }
        let mut buf = [0u8; MAX_REQUEST];
        let room = MAX_REQUEST - c.request.len().min(MAX_REQUEST);
        let eof = match c.stream.read(&mut buf[..room.max(1)]) {
            Ok(0) => true,
            Ok(n) => {
                c.request.extend_from_slice(&buf[..n]);
                false
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return None
            }
            Err(_) => {
                self.remove(id);
                return None;
            }
        };
        let root = c.root;
        let got = match request_line(&c.request) {
            Ok(Some(line)) => Some(Request::parse(line).and_then(|r| match r.mutates() {
                Some(cmd) if !root => Err(RequestError::RootOnly(cmd)),
                _ => Ok(r),
            })),
            Ok(None) if eof && c.request.is_empty() => {
                // Connected and left without a word.
                self.remove(id);
                return None;
            }
            Ok(None) if eof => Some(Err(RequestError::Incomplete)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        };
        if got.is_some() {
            c.request.clear();
            c.request.shrink_to_fit();
        }
        got
    }

    /// Puts client `id` on hold: its answer comes later, through
    /// [`answer_held`](Self::answer_held).
    pub fn hold(&mut self, id: ClientId) {
        if let Some(c) = self.find(id) {
            c.phase = Phase::Held;
        }
    }

    /// Whether any client is on hold.
    pub fn any_held(&self) -> bool {
        self.clients.iter().any(|c| c.phase == Phase::Held)
    }

    /// Gives every client on hold this reply; how many there were.
    pub fn answer_held(&mut self, reply: &[u8]) -> usize {
        let held: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|c| c.phase == Phase::Held)
            .map(|c| c.id)
            .collect();
        for &id in &held {
            self.reply(id, reply.to_vec());
        }
        held.len()
    }

    /// Sends client `id` this reply (then closes it).
    pub fn reply(&mut self, id: ClientId, reply: Vec<u8>) {
        if let Some(c) = self.find(id) {
            c.phase = Phase::Writing;
            c.reply = reply;
            c.written = 0;
            self.write(id);
        }
    }

    /// Writes what client `id` waits for; closes it once all is written.
    pub fn write(&mut self, id: ClientId) {
        let Some(c) = self.find(id) else { return };
        if c.phase != Phase::Writing {
            return;
        }
        while c.written < c.reply.len() {
            match c.stream.write(&c.reply[c.written..]) {
                Ok(0) => break,
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // Done (or the client is gone): read what it sent beyond its
        // request, so closing does not reset the connection under a reply
        // it has yet to read.
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < DRAIN {
            match c.stream.read(&mut sink) {
                Ok(n) if n > 0 => drained += n,
                _ => break,
            }
        }
        self.remove(id);
    }

    /// Ends clients whose time is up: one on hold is told so, others are
    /// closed.
    pub fn expire(&mut self, now: Instant) {
        let late: Vec<(ClientId, Phase)> = self
            .clients
            .iter()
            .filter(|c| c.deadline <= now)
            .map(|c| (c.id, c.phase))
            .collect();
        for (id, phase) in late {
            if phase == Phase::Held {
                // One more chance to write the bad news.
                if let Some(c) = self.find(id) {
                    c.deadline = now + Duration::from_secs(1);
                }
                self.reply(id, encode_error("no answer in time"));
            } else {
                self.remove(id);
            }
        }
    }

    /// The earliest client deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    fn remove(&mut self, id: ClientId) {
        self.clients.retain(|c| c.id != id);
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

/// Binds the socket under umask 0177, as bgpd and iked do: it exists
/// with mode 0600 from the start, so nobody but root can connect in the
/// moment before its group and mode are set, whatever umask we were
/// started with.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::from_bits_truncate(0o177));
    let r = UnixListener::bind(path);
    umask(old);
    r
}

/// The user id of the process at the other end (the kernel's word).
fn peer_uid(s: &UnixStream) -> Option<u32> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        getsockopt(s, PeerCredentials).ok().map(|c| c.uid())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        nix::unistd::getpeereid(s).ok().map(|(uid, _)| uid.as_raw())
    }
}

fn is_socket(t: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    t.is_socket()
}

#[cfg(test)]
mod tests {
    use super::super::proto::{decode_reply, encode_ok, Reply};
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sasyncd-ctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Serves every client until it is answered (`answer` decides), as
    /// the poll loop would.
    fn serve(c: &mut Control, answer: &dyn Fn(Result<Request, RequestError>) -> Vec<u8>) {
        let now = Instant::now();
        c.accept(now);
        let ids: Vec<ClientId> = c.clients.iter().map(|x| x.id).collect();
        for id in ids {
            // As poll would report it readable again (more bytes, EOF).
            for _ in 0..10 {
                if let Some(r) = c.read(id) {
                    c.reply(id, answer(r));
                    break;
                }
            }
        }
    }

    fn ask(path: &Path, bytes: &[u8]) -> UnixStream {
        let mut s = UnixStream::connect(path).unwrap();
        s.write_all(bytes).unwrap();
        s
    }

    fn answer(r: Result<Request, RequestError>) -> Vec<u8> {
        match r {
            Ok(req) => encode_ok(&format!("{req:?}")).unwrap(),
            Err(e) => encode_error(&e.to_string()),
        }
    }

    fn reply_of(mut s: UnixStream) -> Reply {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        decode_reply(&out).unwrap()
    }

    #[test]
    fn a_second_daemon_is_refused_and_a_stale_socket_replaced() {
        let dir = dir("bind");
        let path = dir.join("ctl.sock");
        let a = Control::bind(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        assert!(matches!(Control::bind(&path, None), Err(BindError::InUse)));
        // A socket file nobody answers on (the daemon crashed) is replaced.
        let stale = UnixListener::bind(dir.join("stale.sock")).unwrap();
        drop(stale);
        Control::bind(&dir.join("stale.sock"), None).unwrap();
        // A regular file is not ours to remove.
        std::fs::write(dir.join("file"), b"x").unwrap();
        assert!(matches!(
            Control::bind(&dir.join("file"), None),
            Err(BindError::NotASocket)
        ));
        assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"x");
        let e = Control::bind(&dir.join("g.sock"), Some("no-such-group-here")).unwrap_err();
        assert_eq!(e.to_string(), "no such group: no-such-group-here");
        drop(a);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_socket_is_born_private_whatever_the_umask() {
        // umask is the process's: change it in a child only.
        let (status, out) = crate::testutil::in_child(|out| {
            let dir = dir("umask");
            let path = dir.join("ctl.sock");
            nix::sys::stat::umask(nix::sys::stat::Mode::empty());
            let _l = bind_private(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            let _ = std::fs::remove_dir_all(&dir);
            write!(out, "{mode:o}").unwrap();
        });
        assert_eq!(out, "600", "{status:?}");
    }

    #[test]
    fn the_group_is_set() {
        let dir = dir("group");
        let path = dir.join("ctl.sock");
        let me = nix::unistd::getegid();
        let name = nix::unistd::Group::from_gid(me).unwrap().unwrap().name;
        let _c = Control::bind(&path, Some(&name)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&path).unwrap().gid(), me.as_raw());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn requests_get_replies_and_garbage_errors() {
        let dir = dir("serve");
        let path = dir.join("ctl.sock");
        let mut c = Control::bind(&path, None).unwrap();
        let good = ask(&path, b"show stats json\n");
        let bad = ask(&path, b"reboot\n");
        let binary = ask(&path, &[0xff, 0, 1, b'\n']);
        let long = ask(&path, &[b'a'; 1000]);
        let two = ask(&path, b"reload\nshow\nmore and more\n");
        let half = ask(&path, b"show pe");
        half.shutdown(std::net::Shutdown::Write).unwrap();
        serve(&mut c, &answer);
        // Each was answered and closed, once.
        assert_eq!(c.clients(), 0);
        assert_eq!(
            reply_of(good),
            Reply::Ok(vec![
                "Show { report: Stats, format: Json, all: false }".into()
            ])
        );
        assert_eq!(
            reply_of(bad),
            Reply::Error("unknown command: reboot".into())
        );
        assert_eq!(
            reply_of(binary),
            Reply::Error("request is not printable text".into())
        );
        assert_eq!(
            reply_of(long),
            Reply::Error("request longer than 255 bytes".into())
        );
        assert_eq!(reply_of(two), Reply::Ok(vec!["Reload".into()]));
        assert_eq!(
            reply_of(half),
            Reply::Error("incomplete request (no end of line)".into())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_request_may_come_a_byte_at_a_time() {
        let dir = dir("bytes");
        let path = dir.join("ctl.sock");
        let mut c = Control::bind(&path, None).unwrap();
        let mut s = UnixStream::connect(&path).unwrap();
        c.accept(Instant::now());
        let id = c.clients[0].id;
        for b in b"log brief" {
            s.write_all(&[*b]).unwrap();
            assert_eq!(c.read(id), None);
        }
        s.write_all(b"\n").unwrap();
        assert_eq!(c.read(id), Some(Ok(Request::Log(false))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn busy_held_and_late_clients() {
        let dir = dir("limits");
        let path = dir.join("ctl.sock");
        let mut c = Control::bind(&path, None).unwrap();
        let now = Instant::now();
        let mut quiet = Vec::new();
        for _ in 0..MAX_CLIENTS {
            quiet.push(UnixStream::connect(&path).unwrap());
        }
        c.accept(now);
        assert_eq!(c.clients(), MAX_CLIENTS);
        // One more is told, and nothing is kept for it.
        let extra = UnixStream::connect(&path).unwrap();
        c.accept(now);
        assert_eq!(c.clients(), MAX_CLIENTS);
        assert_eq!(
            reply_of(extra),
            Reply::Error("busy: too many control clients".into())
        );
        // A held client is answered later; silent ones time out.
        let held = c.clients[0].id;
        quiet[0].write_all(b"reload\n").unwrap();
        assert_eq!(c.read(held), Some(Ok(Request::Reload)));
        c.hold(held);
        assert!(c.any_held());
        assert_eq!(c.client_fds().count(), MAX_CLIENTS - 1);
        assert_eq!(c.next_deadline(), Some(now + CLIENT_TIMEOUT));
        c.expire(now + CLIENT_TIMEOUT);
        assert_eq!(c.clients(), 0, "the held one was told and closed");
        let first = quiet.remove(0);
        assert_eq!(reply_of(first), Reply::Error("no answer in time".into()));
        // The others just see the end.
        let mut out = Vec::new();
        let mut s = quiet.remove(0);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
        // An answer for held clients reaches them all.
        let a = ask(&path, b"reload\n");
        let b = ask(&path, b"reload\n");
        c.accept(now);
        let ids: Vec<ClientId> = c.clients.iter().map(|x| x.id).collect();
        for id in ids {
            assert_eq!(c.read(id), Some(Ok(Request::Reload)));
            c.hold(id);
        }
        assert_eq!(c.answer_held(&encode_ok("reloaded").unwrap()), 2);
        assert_eq!(reply_of(a), Reply::Ok(vec!["reloaded".into()]));
        assert_eq!(reply_of(b), Reply::Ok(vec!["reloaded".into()]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
