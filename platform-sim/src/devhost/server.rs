//! The devhost server: one thread, one poll(2) loop over the listening
//! socket and every client (all nonblocking), so no client can hold up
//! another. Real monotonic time drives the kernel's clock and the IKE
//! workload.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno as NixErrno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use sasyncd_core::time::Instant;

use super::conn::{Conn, Phase, OUT_HIGH_WATER};
use super::ctl::{execute, render, Clients};
use super::framer::PfkeyFrameError;
use super::gateway::{link_state_name, Gateway, GatewayConfig};
use super::proto::{err_reply, ok_reply, HostRequest, Role, MAX_REPLY, STATUS_OK};
use super::reply::header_with_errno;
use crate::errno::Errno;

/// Longest wait in poll, so a stop request is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// Reads from one client per poll round at most.
const READS_PER_ROUND: usize = 16;
/// Most clients at once; more are turned away.
pub const MAX_CLIENTS: usize = 64;
/// Promiscuous copies move from the kernel's queue to a client only while
/// its unsent output is below this (the socket's buffer, as it were), so
/// the kernel's own queue limit still decides what a slow reader loses.
const PROMISC_MOVE_BELOW: usize = sasyncd_core::pfkey::consts::PFKEY_SOCKBUF;

/// A devhost serving one simulated gateway on a unix socket.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    conns: Vec<Conn>,
    gw: Gateway,
    clock: std::time::Instant,
    next_id: u64,
}

impl Server {
    /// Listens on `path` for the gateway `cfg` describes. A stale socket
    /// file (nobody listening) is replaced; a live one is an error.
    pub fn bind(path: &Path, cfg: &GatewayConfig) -> io::Result<Server> {
        if let Ok(meta) = fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another process serves {}", path.display()),
                ));
            }
            fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            path: path.to_path_buf(),
            conns: Vec::new(),
            gw: Gateway::new(cfg),
            clock: std::time::Instant::now(),
            next_id: 1,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        log::info!(
            "serving {} (carp {}, demote {})",
            self.path.display(),
            link_state_name(self.gw.link_state()),
            self.gw.demote_counter()
        );
        while !stop.load(Ordering::Relaxed) {
            self.step()?;
        }
        Ok(())
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.clock.elapsed().as_millis() as u64)
    }

    /// One round: due work, then one poll and the I/O it allows.
    fn step(&mut self) -> io::Result<()> {
        let now = self.now();
        self.gw.set_now(now);
        if self.gw.poll_timeout().is_some_and(|t| t <= now) {
            self.gw.handle_timeout();
        }
        for i in 0..self.conns.len() {
            self.process(i);
        }
        self.drain_promisc(None);
        for c in &mut self.conns {
            c.flush();
        }
        self.reap();

        let wait = self
            .gw
            .poll_timeout()
            .map_or(MAX_WAIT, |t| t.since(now).min(MAX_WAIT));
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
        let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        for c in &self.conns {
            let mut ev = PollFlags::empty();
            if c.wants_read() {
                ev |= PollFlags::POLLIN;
            }
            if c.pending_out() > 0 {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.stream.as_fd(), ev));
        }
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(NixErrno::EINTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let ready = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        for (i, ev) in revents.iter().skip(1).enumerate() {
            if ev.intersects(ready) {
                self.read(i);
            }
            if ev.contains(PollFlags::POLLOUT) {
                self.conns[i].flush();
            }
        }
        if revents[0].contains(PollFlags::POLLIN) {
            self.accept();
        }
        Ok(())
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.conns.len() >= MAX_CLIENTS {
                        log::warn!("turning a client away: {MAX_CLIENTS} connected");
                        continue;
                    }
                    if let Err(e) = stream.set_nonblocking(true) {
                        log::warn!("accept: {e}");
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    log::debug!("client #{id} connected");
                    self.conns.push(Conn::new(stream, id));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("accept: {e}");
                    break;
                }
            }
        }
    }

    /// Reads what connection `i` has, handling complete requests as they
    /// come in; a bounded number of reads, so one busy client cannot
    /// starve the others.
    fn read(&mut self, i: usize) {
        for _ in 0..READS_PER_ROUND {
            let n = self.conns[i].read_some();
            if n > 0 && matches!(self.conns[i].phase, Phase::Carp) {
                self.conns[i].fail("a carp watcher sent data", None);
            }
            self.process(i);
            if n == 0 {
                break;
            }
        }
        self.conns[i].flush();
    }

    /// Handles the complete requests of connection `i` while its output
    /// is below the high-water mark.
    fn process(&mut self, i: usize) {
        while !self.conns[i].dead && self.conns[i].pending_out() < OUT_HIGH_WATER {
            let handled = match self.conns[i].phase {
                Phase::Hello(_) => self.hello(i),
                Phase::Pfkey { .. } => self.pfkey(i),
                Phase::Host(_) => self.host(i),
                Phase::Ctl(_) => self.ctl(i),
                Phase::Carp => false,
            };
            if !handled {
                break;
            }
        }
    }

    /// The next frame of a framed connection, failing it on a bad one.
    fn next_frame(&mut self, i: usize) -> Option<Vec<u8>> {
        let c = &mut self.conns[i];
        let r = match &mut c.phase {
            Phase::Hello(f) | Phase::Host(f) | Phase::Ctl(f) => f.next_frame()?,
            _ => return None,
        };
        match r {
            Ok(p) => Some(p),
            Err(e) => {
                let msg = e.to_string();
                c.fail(&msg, Some(&err_reply(&msg)));
                None
            }
        }
    }

    fn hello(&mut self, i: usize) -> bool {
        let Some(p) = self.next_frame(i) else {
            return false;
        };
        let role = match Role::decode(&p) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("bad hello: {e}");
                self.conns[i].fail(&msg, Some(&err_reply(&msg)));
                return false;
            }
        };
        if let Role::Pfkey { pid } = role {
            if let Err(msg) = self.gw.pfkey_open(pid) {
                self.conns[i].fail(&msg, Some(&err_reply(&msg)));
                return false;
            }
        }
        let c = &mut self.conns[i];
        c.start(role);
        c.queue_frame(&ok_reply(&[]));
        match role {
            Role::Pfkey { pid } => log::info!("client #{}: PF_KEY socket of pid {pid}", c.id),
            // One per CLI command: not worth a line by default.
            Role::Ctl => log::debug!("client #{}: ctl", c.id),
            r => log::info!("client #{}: {}", c.id, r.name()),
        }
        if role == Role::Carp {
            c.queue_frame(&[self.gw.link_state()]);
        }
        true
    }

    fn pfkey(&mut self, i: usize) -> bool {
        let c = &mut self.conns[i];
        let Phase::Pfkey { pid, framer } = &mut c.phase else {
            return false;
        };
        let pid = *pid;
        let Some(r) = framer.next_message() else {
            return false;
        };
        match r {
            Ok(msg) => {
                let reply = self.gw.pfkey_write(&msg, pid);
                // The kernel queues the copies before it answers.
                self.drain_promisc(Some(i));
                self.conns[i].queue(&reply);
            }
            Err(PfkeyFrameError::BadHeader(h)) => {
                log::debug!("client #{} (pfkey): bad header", c.id);
                c.queue(&header_with_errno(&h, Errno::EINVAL));
            }
            Err(e @ PfkeyFrameError::TooLong(_)) => {
                c.fail(&e.to_string(), None);
                return false;
            }
        }
        true
    }

    fn host(&mut self, i: usize) -> bool {
        let Some(p) = self.next_frame(i) else {
            return false;
        };
        let reply = match HostRequest::decode(&p) {
            Err(e) => err_reply(&e.to_string()),
            Ok(HostRequest::Dump(t)) => {
                let gw = &self.gw;
                let queued = self.conns[i].queue_frame_with(MAX_REPLY, |out| {
                    out.push(STATUS_OK);
                    gw.dump_into(t, out);
                });
                match queued {
                    Ok(()) => return true,
                    Err(n) => err_reply(&format!("dump of {} bytes is too large", n - 1)),
                }
            }
            Ok(HostRequest::Demote(delta)) => match self.gw.demote(delta) {
                Ok(n) => {
                    log::info!("demotion counter {delta:+}: now {n}");
                    ok_reply(&n.to_be_bytes())
                }
                Err(e) => err_reply(&e),
            },
            Ok(HostRequest::GetDemote) => ok_reply(&self.gw.demote_counter().to_be_bytes()),
            Ok(HostRequest::Ike(active)) => match self.gw.set_ike(active) {
                Ok(()) => {
                    log::info!("IKE daemon {}", if active { "active" } else { "passive" });
                    ok_reply(&[])
                }
                Err(e) => err_reply(&e),
            },
            Ok(HostRequest::LinkState) => ok_reply(&[self.gw.link_state()]),
            Ok(HostRequest::Pfsync) => ok_reply(&[u8::from(self.gw.pfsync_up())]),
        };
        self.conns[i].queue_frame(&reply);
        true
    }

    fn ctl(&mut self, i: usize) -> bool {
        let Some(p) = self.next_frame(i) else {
            return false;
        };
        let before = self.gw.link_state();
        let text = match String::from_utf8(p) {
            Ok(line) => {
                let clients = self.clients();
                let r = execute(&mut self.gw, &clients, &line);
                if let Err(e) = &r {
                    log::debug!("ctl '{line}': {e}");
                }
                render(&r)
            }
            Err(_) => "error: command is not UTF-8".to_string(),
        };
        let text = if text.len() > MAX_REPLY {
            format!("error: reply of {} bytes is too large", text.len())
        } else {
            text
        };
        self.conns[i].queue_frame(text.as_bytes());
        let after = self.gw.link_state();
        if after != before {
            log::info!("carp {} (link state {after})", link_state_name(after));
            for c in self
                .conns
                .iter_mut()
                .filter(|c| matches!(c.phase, Phase::Carp))
            {
                c.queue_frame(&[after]);
                c.flush();
            }
        }
        // Edits write to the kernel: hand their copies out.
        self.drain_promisc(None);
        true
    }

    /// Moves promiscuous copies from the kernel's queues to the pfkey
    /// clients and on to their sockets: all of them for `writer` (its
    /// reply must follow them), for the others while their output is below
    /// [`PROMISC_MOVE_BELOW`]. Writing at once means a copy is on its way
    /// before the request that caused it is answered.
    fn drain_promisc(&mut self, writer: Option<usize>) {
        for (j, c) in self.conns.iter_mut().enumerate() {
            let Some(pid) = c.pfkey_pid() else { continue };
            let limit = if writer == Some(j) {
                usize::MAX
            } else {
                PROMISC_MOVE_BELOW
            };
            while c.pending_out() < limit {
                match self.gw.take_promisc(pid) {
                    Some(m) => c.queue(&m),
                    None => break,
                }
            }
            if writer != Some(j) {
                c.flush();
            }
        }
    }

    fn clients(&self) -> Clients {
        let mut n = Clients::default();
        for c in self.conns.iter().filter(|c| c.connected()) {
            match c.phase {
                Phase::Pfkey { .. } => n.pfkey += 1,
                Phase::Host(_) => n.host += 1,
                Phase::Carp => n.carp += 1,
                Phase::Ctl(_) => n.ctl += 1,
                Phase::Hello(_) => {}
            }
        }
        n
    }

    /// Closes finished connections.
    fn reap(&mut self) {
        let gw = &mut self.gw;
        self.conns.retain(|c| {
            if !c.finished() {
                return true;
            }
            if let Some(pid) = c.pfkey_pid() {
                gw.pfkey_close(pid);
            }
            match c.phase {
                Phase::Ctl(_) | Phase::Hello(_) => {
                    log::debug!("client #{} ({}) closed", c.id, c.role())
                }
                _ => log::info!("client #{} ({}) closed", c.id, c.role()),
            }
            false
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
