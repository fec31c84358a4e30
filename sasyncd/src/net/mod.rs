//! The network process: one poll(2) loop driving the node through the
//! platform contract. It holds the peer sockets, the PF_KEY socket, the
//! carp watch, the control socket and its end of the privilege-separation
//! channel; everything only root may do it asks of the privileged process.

pub mod conns;
pub mod dumps;
pub mod io;
pub mod sockets;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::dialect::{Dialect, OpenBsd};
#[cfg(doc)]
use sasyncd_core::node::NodeStorage;
use sasyncd_core::node::VecMarks;
use sasyncd_core::node::{ConnId, DumpId, Node};
use sasyncd_core::platform::drive;

use crate::control::{self, ClientId, Control, Request, Status};
use crate::kernel::LinkWatch;
use crate::privsep::{ReadStatus, ToNet, ToPriv};
use crate::sys::OsRandom;
use conns::ReadOutcome;
use io::{NetIo, Pending};

/// The node the daemon runs, over [`NodeStorage::default_on_heap`] (8
/// peers, 128 KiB delta ring) with snapshot marks in a vector as big as the
/// SADB needs.
pub type DaemonNode<D = OpenBsd> = Node<'static, SoftCrypto, OsRandom, VecMarks, D>;

/// How long an orderly shutdown waits for queued bytes to be written.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Why the loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// An orderly shutdown (the privileged process asked: the network
    /// process ignores the stop and reload signals, see `sys::ignore`).
    Shutdown,
    /// Something the process cannot run without failed.
    Failed(String),
}

/// What the loop polls, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Chan,
    Pfkey,
    Link,
    Listener(usize),
    Control,
    ControlClient(ClientId),
    Conn(ConnId),
}

/// The network process, over the node of its kernel's dialect.
pub struct Net<D: Dialect = OpenBsd> {
    pub node: Box<DaemonNode<D>>,
    pub io: NetIo,
    pub link: Box<dyn LinkWatch>,
    pub listeners: Vec<(SocketAddr, TcpListener)>,
    pub control: Option<Control>,
    shutdown_at: Option<std::time::Instant>,
    failed: Option<String>,
    /// Whether pfsync is up, as the privileged process last found.
    pfsync: Option<bool>,
    /// The peers' addresses of the configuration about to arrive
    /// ([`ToNet::PeerAddrs`]).
    peer_addrs: Vec<std::net::IpAddr>,
    /// The node's next deadline, as the driver last returned it.
    deadline: Option<sasyncd_core::time::Instant>,
}

impl<D: Dialect> std::fmt::Debug for Net<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").field("io", &self.io).finish()
    }
}

impl<D: Dialect> Net<D> {
    /// The network process, ready to run.
    pub fn new(
        node: Box<DaemonNode<D>>,
        io: NetIo,
        link: Box<dyn LinkWatch>,
        listeners: Vec<(SocketAddr, TcpListener)>,
        control: Option<Control>,
    ) -> Net<D> {
        Net {
            node,
            io,
            link,
            listeners,
            control,
            shutdown_at: None,
            failed: None,
            pfsync: None,
            peer_addrs: Vec::new(),
            deadline: None,
        }
    }

    /// Runs until shut down or until something it needs fails.
    pub fn run(mut self) -> Exit {
        // The carp interface's state, as the privileged process reads it
        // (development mode's watch also reports it at once).
        self.io.to_priv(ToPriv::LinkState);
        for (addr, _) in &self.listeners {
            log::info!("listening on {addr}");
        }
        self.drive();
        loop {
            self.step();
            if let Some(at) = self.shutdown_at {
                if self.node.is_shut_down() || std::time::Instant::now() >= at {
                    break;
                }
            }
        }
        self.flush_channel();
        match self.failed {
            Some(why) => Exit::Failed(why),
            None => Exit::Shutdown,
        }
    }

    /// One round: wait for input or the next deadline, queue what
    /// happened for the node, drive it (its timer fires there when due),
    /// write what is queued.
    fn step(&mut self) {
        let ready = self.wait();
        for (tok, ev) in ready {
            self.ready(tok, ev);
        }
        if let Some(c) = self.control.as_mut() {
            c.expire(std::time::Instant::now());
        }
        self.drive();
        if let Err(e) = self.io.pfkey.flush() {
            self.fail(format!("PF_KEY socket: {e}"));
        }
        if let Err(e) = self.io.chan.flush() {
            self.fail(format!("privileged process channel: {e}"));
        }
    }

    /// Polls every descriptor that has something to say.
    fn wait(&mut self) -> Vec<(Token, PollFlags)> {
        let now = self.io.clock.now();
        let mut ms = self
            .deadline
            .map_or(60_000, |t| t.as_millis().saturating_sub(now.as_millis()))
            .min(60_000);
        // A control client's time running out.
        if let Some(t) = self.control.as_ref().and_then(Control::next_deadline) {
            let left = t.saturating_duration_since(std::time::Instant::now());
            ms = ms.min(left.as_millis() as u64 + 1);
        }
        if let Some(at) = self.shutdown_at {
            let left = at.saturating_duration_since(std::time::Instant::now());
            ms = ms.min(left.as_millis() as u64).min(100);
        }
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        let mut toks = Vec::new();
        macro_rules! add {
            ($fd:expr, $flags:expr, $tok:expr) => {{
                fds.push(PollFd::new($fd, $flags));
                toks.push($tok);
            }};
        }
        let chan_flags = if self.io.chan.wants_write() {
            PollFlags::POLLIN | PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        };
        add!(self.io.chan.fd(), chan_flags, Token::Chan);
        let pfkey_flags = if self.io.pfkey.wants_write() {
            PollFlags::POLLIN | PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        };
        add!(self.io.pfkey.as_fd(), pfkey_flags, Token::Pfkey);
        add!(self.link.as_fd(), PollFlags::POLLIN, Token::Link);
        for (i, (_, l)) in self.listeners.iter().enumerate() {
            add!(l.as_fd(), PollFlags::POLLIN, Token::Listener(i));
        }
        if let Some(c) = &self.control {
            add!(c.listener_fd(), PollFlags::POLLIN, Token::Control);
            for (id, fd, writing) in c.client_fds() {
                let f = if writing {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                };
                add!(fd, f, Token::ControlClient(id));
            }
        }
        for (id, c) in &self.io.conns {
            let mut f = PollFlags::empty();
            if c.wants_read() {
                f |= PollFlags::POLLIN;
            }
            if c.wants_write() {
                f |= PollFlags::POLLOUT;
            }
            if !f.is_empty() {
                add!(c.stream.as_fd(), f, Token::Conn(*id));
            }
        }
        let timeout = PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Vec::new(),
            Err(e) => {
                log::error!("poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
                return Vec::new();
            }
        }
        fds.iter()
            .zip(toks)
            .filter_map(|(fd, tok)| fd.revents().filter(|r| !r.is_empty()).map(|r| (tok, r)))
            .collect()
    }

    fn ready(&mut self, tok: Token, ev: PollFlags) {
        match tok {
            Token::Chan => self.read_priv(),
            Token::Pfkey => {
                let mut msgs = Vec::new();
                let r = self.io.pfkey.read_messages(&mut msgs);
                self.io.inputs.extend(msgs.into_iter().map(Pending::Pfkey));
                if self.io.pfkey.take_lost() {
                    let now = self.io.clock.now();
                    self.node.handle_events_lost(now);
                }
                if let Err(e) = r {
                    self.fail(format!("PF_KEY socket: {e}"));
                }
            }
            Token::Link => {
                match self.link.read_states() {
                    Ok(states) => {
                        self.io
                            .inputs
                            .extend(states.into_iter().map(Pending::LinkState));
                    }
                    Err(e) => self.fail(format!("carp link-state watch: {e}")),
                }
                // The watch lost track (interface re-created, messages
                // dropped): the privileged process reads the state.
                if self.link.take_recheck() {
                    self.io.to_priv(ToPriv::LinkState);
                }
            }
            Token::Listener(i) => self.accept(i),
            Token::Control => {
                if let Some(c) = self.control.as_mut() {
                    c.accept(std::time::Instant::now());
                }
            }
            Token::ControlClient(id) => self.serve_control(id),
            Token::Conn(id) => self.conn_ready(id, ev),
        }
    }

    fn accept(&mut self, i: usize) {
        loop {
            let Some((_, l)) = self.listeners.get(i) else {
                return;
            };
            let (s, peer) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ECONNABORTED and friends: the next one may be fine.
                    log::debug!("accept: {e}");
                    return;
                }
            };
            // The node takes or refuses it (`NetIo::accepted`).
            self.io.inputs.push_back(Pending::Accept(s, peer.ip()));
        }
    }

    fn conn_ready(&mut self, id: ConnId, ev: PollFlags) {
        let Some(c) = self.io.conns.get_mut(&id) else {
            return;
        };
        if c.connecting {
            match sockets::connect_result(&c.stream) {
                Ok(()) => {
                    c.connecting = false;
                    self.io.inputs.push_back(Pending::Connected(id));
                }
                Err(e) => {
                    log::info!("peer {}: connect failed: {e}", c.addr);
                    self.io.conns.remove(&id);
                    self.io.inputs.push_back(Pending::ConnectFailed(id));
                }
            }
            return;
        }
        if ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match c.read() {
                Ok(ReadOutcome::Open) => {}
                Ok(ReadOutcome::Eof) | Err(_) => {
                    self.io.conns.remove(&id);
                    self.io.inputs.push_back(Pending::Closed(id));
                    return;
                }
            }
        }
        if ev.contains(PollFlags::POLLOUT) && c.blocked {
            c.blocked = false;
            self.io.inputs.push_back(Pending::Writable(id));
        }
    }

    /// A control client is ready: write its reply, or read its request
    /// and answer it (a reload is answered when its result comes back).
    fn serve_control(&mut self, id: ClientId) {
        let Some(c) = self.control.as_mut() else {
            return;
        };
        c.write(id);
        let Some(req) = c.read(id) else {
            return;
        };
        let reply = match req {
            Ok(req) => match self.control_request(req) {
                Some(r) => r,
                None => {
                    if let Some(c) = self.control.as_mut() {
                        c.hold(id);
                    }
                    return;
                }
            },
            Err(e) => {
                log::debug!("control socket: bad request: {e}");
                control::encode_error(&e.to_string())
            }
        };
        if let Some(c) = self.control.as_mut() {
            c.reply(id, reply);
        }
    }

    /// Carries out a control request; its reply, or `None` when the
    /// answer comes later (a reload).
    fn control_request(&mut self, req: Request) -> Option<Vec<u8>> {
        let now = self.io.clock.now();
        let ok = |text: &str| {
            control::encode_ok(text).unwrap_or_else(|e| control::encode_error(&e.to_string()))
        };
        Some(match req {
            Request::Show {
                report,
                format,
                all,
            } => {
                let wall_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let status = Status {
                    now,
                    wall_ms,
                    protocol: self.node.protocol(),
                    node: self.node.stats(),
                    peers: self.node.peers().collect(),
                    pfsync: self.pfsync,
                };
                control::show(&status, report, format, all)
            }
            Request::Resync(peer) => match self.node.request_resync(now, peer) {
                Ok(master) => ok(&format!("asked {master} for a full resync")),
                Err(e) => control::encode_error(&e.to_string()),
            },
            Request::Reload => {
                // Another reload already on its way answers this one too.
                if !self.control.as_ref().is_some_and(Control::any_held) {
                    log::info!("control socket: reload requested");
                    self.io.to_priv(ToPriv::Reload);
                }
                return None;
            }
            Request::Log(verbose) => {
                crate::logger::set_verbosity(if verbose { 2 } else { 0 });
                log::info!(
                    "control socket: logging {}",
                    if verbose { "verbose" } else { "brief" }
                );
                ok(&format!(
                    "logging {}",
                    if verbose { "verbose" } else { "brief" }
                ))
            }
        })
    }

    /// Tells the control clients waiting for a reload how it went.
    fn reload_answered(&mut self, reply: Result<String, String>) {
        if let Some(c) = self.control.as_mut() {
            let bytes = match reply {
                Ok(text) => control::encode_ok(&text)
                    .unwrap_or_else(|e| control::encode_error(&e.to_string())),
                Err(why) => control::encode_error(&why),
            };
            c.answer_held(&bytes);
        }
    }

    /// Messages from the privileged process.
    fn read_priv(&mut self) {
        match self.io.chan.read_ready() {
            Ok(ReadStatus::Open) => {}
            Ok(ReadStatus::Eof) => {
                self.io.priv_gone = true;
                self.fail("the privileged process exited".to_string());
            }
            Err(e) => {
                self.io.priv_gone = true;
                self.fail(format!("privileged process channel: {e}"));
            }
        }
        loop {
            let msg = match self.io.chan.next_msg() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    self.fail(format!("privileged process channel: {e}"));
                    break;
                }
            };
            match msg {
                ToNet::DumpRecords { dump, records } => {
                    self.io.dumps.records(DumpId(dump), records);
                }
                ToNet::DumpEnd { dump, ok } => self.io.dumps.end(DumpId(dump), ok),
                ToNet::DemoteResult { ok } => self.io.inputs.push_back(Pending::DemoteResult(ok)),
                ToNet::IkeResult { id, ok } => self.io.inputs.push_back(Pending::IkeResult(id, ok)),
                ToNet::LinkState { state } => self.io.inputs.push_back(Pending::LinkState(state)),
                ToNet::CarpUnreadable => self.io.inputs.push_back(Pending::CarpUnreadable),
                ToNet::Config { text } => self.reload(text.as_bytes()),
                // The privileged process logged why; whoever asked is told.
                ToNet::ReloadRefused { reason } => {
                    self.reload_answered(Err(format!("configuration not reloaded: {reason}")))
                }
                ToNet::Pfsync { up } => self.pfsync = Some(up),
                ToNet::PeerAddrs { addrs } => self.peer_addrs = addrs,
                ToNet::Shutdown => {
                    log::info!("the privileged process asks us to shut down");
                    self.begin_shutdown();
                }
            }
        }
    }

    /// A new configuration from the privileged process (it passed the file
    /// checks there): applied in place, or refused with the old one kept.
    fn reload(&mut self, text: &[u8]) {
        let now = self.io.clock.now();
        let result = Config::parse(text)
            .map_err(|e| e.to_string())
            .and_then(|mut cfg| {
                // The privileged process resolved the names (and checked
                // them) just before sending the file.
                let addrs = std::mem::take(&mut self.peer_addrs);
                if addrs.len() != cfg.peers.len() {
                    return Err("peer addresses missing from the privileged process".to_string());
                }
                for (peer, addr) in cfg.peers.iter_mut().zip(addrs) {
                    peer.addr = Some(addr);
                }
                let r = self
                    .node
                    .reconfigure(now, &cfg)
                    .map_err(|e| e.to_string())?;
                self.link.set_interface(cfg.interface.as_deref());
                Ok(r)
            });
        match result {
            // The privileged process logs the outcome: one line a reload.
            Ok(r) => {
                self.io.to_priv(ToPriv::reloaded(true, &r.to_string()));
                self.reload_answered(Ok(r.to_string()));
            }
            Err(e) => {
                self.io.to_priv(ToPriv::reloaded(false, &e));
                self.reload_answered(Err(format!(
                    "new configuration not applied, keeping the running one: {e}"
                )));
            }
        }
    }

    /// Runs the node: its timer if due, the queued inputs, its outputs;
    /// notes when it wants to run again.
    fn drive(&mut self) {
        match drive(&mut *self.node, &mut self.io) {
            Ok(next) => self.deadline = next,
            Err(e) => {
                log::error!("{e}");
                self.deadline = self.node.poll_timeout();
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown_at.is_some() {
            return;
        }
        self.io.inputs.push_back(Pending::Shutdown);
        self.listeners.clear();
        self.shutdown_at = Some(std::time::Instant::now() + SHUTDOWN_GRACE);
    }

    fn fail(&mut self, why: String) {
        if self.failed.is_none() {
            log::error!("{why}; shutting down");
            self.failed = Some(why);
        }
        self.begin_shutdown();
    }

    /// Writes what is queued for the privileged process (our demotion's
    /// release among it) before the process exits.
    fn flush_channel(&mut self) {
        let until = std::time::Instant::now() + Duration::from_secs(1);
        while self.io.chan.wants_write() && std::time::Instant::now() < until {
            match self.io.chan.flush() {
                Ok(true) => break,
                Ok(false) => {
                    let mut fds = [PollFd::new(self.io.chan.fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(100u16));
                }
                Err(_) => break,
            }
        }
    }
}
