//! The privileged process `[priv]`: keeps root for what only root may do
//! (kernel dumps, the carp group's demotion, IKE daemon control, reading
//! the configuration file on SIGHUP) and does it when the network process
//! asks over the channel. It forwards no signals: SIGTERM/SIGINT become a
//! `Shutdown` message, SIGHUP a new configuration. When the network process
//! dies, for whatever reason, it releases the demotion it holds.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use sasyncd_core::config::Config;

use crate::conffile::{self, Owners};
use crate::kernel::Host;
use crate::privsep::{PrivChannel, ReadStatus, ToNet, ToPriv, BATCH_BYTES};
use crate::secret::SecretBytes;
use crate::sys::Signals;

/// How long the network process may take to shut down once asked.
const CHILD_GRACE: Duration = Duration::from_secs(5);

/// How the privileged process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivExit {
    /// Orderly: we asked the network process to stop and it did.
    Shutdown,
    /// The network process ended on its own (crash or failure).
    ChildDied,
}

/// The privileged process.
pub struct Priv<H: Host> {
    host: H,
    chan: PrivChannel,
    child: Pid,
    signals: Signals,
    config_path: PathBuf,
    /// Dumps being streamed: the copy and how far it was sent.
    dumps: BTreeMap<u32, (SecretBytes, usize)>,
    /// Re-read configurations sent to the network process and not yet
    /// answered, oldest first (it answers each in order); the host follows
    /// one once the network process has applied it.
    pending: VecDeque<Config>,
    /// Demotions we raised and have not released.
    held: u32,
    stopping: Option<Instant>,
    child_done: bool,
    /// pfsync as last found, and when it is to be looked at again.
    pfsync: Option<bool>,
    pfsync_due: Instant,
}

/// How often the privileged process looks whether pfsync is up.
const PFSYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl<H: Host> std::fmt::Debug for Priv<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Priv")
            .field("child", &self.child)
            .field("held", &self.held)
            .finish()
    }
}

impl<H: Host> Priv<H> {
    /// The privileged side of a freshly forked daemon.
    pub fn new(
        host: H,
        chan: PrivChannel,
        child: Pid,
        signals: Signals,
        config_path: PathBuf,
    ) -> Priv<H> {
        Priv {
            host,
            chan,
            child,
            signals,
            config_path,
            dumps: BTreeMap::new(),
            pending: VecDeque::new(),
            held: 0,
            stopping: None,
            child_done: false,
            pfsync: None,
            pfsync_due: Instant::now(),
        }
    }

    /// Serves the network process until it ends.
    pub fn run(mut self) -> PrivExit {
        while !self.child_done {
            let mut fds = [
                PollFd::new(self.signals.fd(), PollFlags::POLLIN),
                PollFd::new(
                    self.chan.fd(),
                    if self.chan.wants_write() {
                        PollFlags::POLLIN | PollFlags::POLLOUT
                    } else {
                        PollFlags::POLLIN
                    },
                ),
            ];
            match poll(&mut fds, PollTimeout::from(1000u16)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => log::error!("poll: {e}"),
            }
            let chan_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
            self.signals();
            if chan_ready {
                self.read_net();
            }
            if let Err(e) = self.chan.flush() {
                log::debug!("channel to the network process: {e}");
            }
            self.reap(false);
            if Instant::now() >= self.pfsync_due {
                self.check_pfsync();
            }
            if let Some(at) = self.stopping {
                if !self.child_done && Instant::now() >= at {
                    log::warn!("the network process did not stop in time; killing it");
                    let _ = kill(self.child, Signal::SIGKILL);
                    self.reap(true);
                }
            }
        }
        self.release_all();
        if self.stopping.is_some() {
            PrivExit::Shutdown
        } else {
            PrivExit::ChildDied
        }
    }

    fn signals(&mut self) {
        for s in self.signals.drain() {
            match s {
                Signal::SIGTERM | Signal::SIGINT if self.stopping.is_none() => {
                    log::info!("received {}; shutting down", s.as_str());
                    self.stopping = Some(Instant::now() + CHILD_GRACE);
                    self.send(&ToNet::Shutdown);
                }
                Signal::SIGHUP => self.reload(),
                Signal::SIGCHLD => self.reap(false),
                _ => {}
            }
        }
    }

    /// Notices the network process's end (`block`: wait for it).
    fn reap(&mut self, block: bool) {
        if self.child_done {
            return;
        }
        let flags = if block {
            None
        } else {
            Some(WaitPidFlag::WNOHANG)
        };
        match waitpid(self.child, flags) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(WaitStatus::Exited(_, code)) => {
                self.child_done = true;
                if self.stopping.is_none() || code != 0 {
                    log::error!("the network process exited with status {code}");
                }
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                self.child_done = true;
                log::error!("the network process was killed by {}", sig.as_str());
            }
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => self.child_done = true,
            Err(e) => log::error!("waitpid: {e}"),
        }
    }

    fn read_net(&mut self) {
        match self.chan.read_ready() {
            Ok(ReadStatus::Open) => {}
            Ok(ReadStatus::Eof) => {
                // The network process is gone (or going); reap it.
                self.reap(true);
            }
            Err(e) => log::error!("channel from the network process: {e}"),
        }
        loop {
            match self.chan.next_msg() {
                Ok(Some(m)) => self.handle(m),
                Ok(None) => break,
                Err(e) => {
                    // A network process that sends garbage is not trusted
                    // with anything more.
                    log::error!("bad message from the network process: {e}; stopping it");
                    let _ = kill(self.child, Signal::SIGTERM);
                    self.stopping.get_or_insert(Instant::now() + CHILD_GRACE);
                    break;
                }
            }
        }
    }

    fn send(&mut self, msg: &ToNet) {
        if let Err(e) = self.chan.queue(msg) {
            log::error!("cannot queue a message for the network process: {e}");
        }
    }

    fn handle(&mut self, msg: ToPriv) {
        match msg {
            ToPriv::DumpStart { dump, table } => match self.host.dump(table) {
                Ok(buf) => {
                    self.dumps.insert(dump, (buf, 0));
                    self.send_batch(dump);
                }
                Err(e) => {
                    log::warn!("kernel dump failed: {e}");
                    self.send(&ToNet::DumpEnd { dump, ok: false });
                }
            },
            ToPriv::DumpMore { dump } => self.send_batch(dump),
            ToPriv::DumpCancel { dump } => {
                self.dumps.remove(&dump);
            }
            ToPriv::Demote { raise: true } => {
                let ok = self.raise();
                self.send(&ToNet::DemoteResult { ok });
            }
            ToPriv::Demote { raise: false } => self.release(),
            ToPriv::Ike { id, active } => {
                let ok = match self.host.ike(active) {
                    Ok(()) => true,
                    Err(e) => {
                        log::warn!(
                            "could not tell the IKE daemon to go {}: {e}",
                            if active { "active" } else { "passive" }
                        );
                        false
                    }
                };
                self.send(&ToNet::IkeResult { id, ok });
            }
            ToPriv::LinkState => match self.host.link_state() {
                Ok(state) => self.send(&ToNet::LinkState { state }),
                Err(e) => {
                    log::warn!("cannot read the carp interface: {e}");
                    self.send(&ToNet::CarpUnreadable);
                }
            },
            ToPriv::Reload => self.reload(),
            ToPriv::Reloaded { ok: true, message } => {
                if let Some(cfg) = self.pending.pop_front() {
                    self.host.reconfigure(&cfg);
                }
                log::info!("configuration reloaded: {message}");
                self.check_pfsync();
            }
            ToPriv::Reloaded { ok: false, message } => {
                self.pending.pop_front();
                log::error!("new configuration not applied, keeping the running one: {message}")
            }
        }
    }

    /// Looks whether a pfsync interface is up and tells the network process
    /// (for the status report) when that changed. Start-up already warned
    /// about the first answer; later ones are logged when they change.
    fn check_pfsync(&mut self) {
        self.pfsync_due = Instant::now() + PFSYNC_EVERY;
        let Some(up) = self.host.pfsync_up() else {
            return;
        };
        if self.pfsync == Some(up) {
            return;
        }
        match (self.pfsync, up) {
            (Some(true), false) => log::warn!(
                "no pfsync interface is up: replay-protected SAs will fail after a failover (see sasyncd(8))"
            ),
            (Some(false), true) => log::info!("a pfsync interface is up again"),
            _ => {}
        }
        self.pfsync = Some(up);
        self.send(&ToNet::Pfsync { up });
    }

    /// Sends the next batch of whole records (and the end after the last).
    fn send_batch(&mut self, dump: u32) {
        let Some((buf, at)) = self.dumps.get_mut(&dump) else {
            return;
        };
        let b = buf.as_bytes();
        let mut end = *at;
        while end + 8 <= b.len() {
            let len = u16::from_ne_bytes([b[end + 4], b[end + 5]]) as usize * 8;
            if len == 0 || end + len > b.len() {
                log::warn!("kernel dump has a malformed record; cut there");
                end = b.len();
                break;
            }
            if end > *at && end + len - *at > BATCH_BYTES {
                break;
            }
            end += len;
        }
        let batch = &b[*at..end.min(b.len())];
        let done = end >= b.len();
        if !batch.is_empty() {
            if let Err(e) = self.chan.queue_dump_records(dump, batch) {
                log::error!("cannot queue a message for the network process: {e}");
            }
        }
        *at = end;
        if done {
            self.dumps.remove(&dump);
            self.send(&ToNet::DumpEnd { dump, ok: true });
        }
    }

    /// Raises our demotion if the group is demoted already (the boot
    /// scripts do that; a running cluster is not demoted by a restart).
    fn raise(&mut self) -> bool {
        match self.host.demote_counter() {
            Ok(0) => false,
            Ok(_) => match self.host.demote(1) {
                Ok(()) => {
                    self.held += 1;
                    log::info!("carp group demoted until we are in sync");
                    true
                }
                Err(e) => {
                    log::warn!("cannot demote the carp group: {e}");
                    false
                }
            },
            Err(e) => {
                log::warn!("cannot read the carp group's demotion counter: {e}");
                false
            }
        }
    }

    fn release(&mut self) {
        if self.held == 0 {
            log::debug!("asked to release a demotion we do not hold");
            return;
        }
        match self.host.demote(-1) {
            Ok(()) => {
                self.held -= 1;
                log::info!("carp group demotion released");
            }
            Err(e) => log::error!("cannot release our carp demotion: {e}"),
        }
    }

    /// Whatever ended the network process, our demotion does not outlive it.
    fn release_all(&mut self) {
        while self.held > 0 {
            let before = self.held;
            self.release();
            if self.held == before {
                break;
            }
        }
    }

    /// Re-reads the configuration file with every start-up check; sends it
    /// to the network process, or keeps the running one and tells the
    /// network process why (whoever asked for the reload is told).
    fn reload(&mut self) {
        let path = self.config_path.display().to_string();
        let text = match conffile::read_checked(&self.config_path, &Owners::current()) {
            Ok(t) => t,
            Err(e) => {
                log::error!("{e}; keeping the running configuration");
                self.send(&ToNet::reload_refused(&e.to_string()));
                return;
            }
        };
        // Every start-up check, names resolved here as at start-up (the
        // network process has no resolver in its chroot).
        let cfg = match crate::daemon::check_text(&self.config_path, text.as_bytes()) {
            Ok(cfg) => cfg,
            Err(e) => {
                let why = e.to_string();
                log::error!("{why}; keeping the running configuration");
                self.send(&ToNet::reload_refused(&why));
                return;
            }
        };
        let addrs = cfg.peers.iter().filter_map(|p| p.addr).collect();
        self.pending.push_back(cfg);
        log::debug!("{path}: re-read; applying it");
        self.send(&ToNet::PeerAddrs { addrs });
        self.send(&ToNet::Config { text });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{in_child, TempDir};
    use std::io::{self, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;

    /// A host that records what reloads it was told to follow.
    #[derive(Default)]
    struct FollowingHost {
        interfaces: Vec<Option<String>>,
    }

    impl Host for FollowingHost {
        fn dump(&mut self, _: sasyncd_core::node::Table) -> io::Result<SecretBytes> {
            Ok(SecretBytes::default())
        }
        fn demote_counter(&mut self) -> io::Result<i32> {
            Ok(0)
        }
        fn demote(&mut self, _: i32) -> io::Result<()> {
            Ok(())
        }
        fn ike(&mut self, _: bool) -> io::Result<()> {
            Ok(())
        }
        fn link_state(&mut self) -> io::Result<u8> {
            Ok(2)
        }
        fn reconfigure(&mut self, cfg: &Config) {
            self.interfaces
                .push(cfg.interface.as_ref().map(|i| i.to_string()));
        }
    }

    fn conf(iface: &str) -> String {
        format!("interface {iface}\npeer 192.0.2.1\nsharedkey 0x00112233445566778899aabbccddeeff\n")
    }

    #[test]
    fn the_host_follows_a_reload_once_the_network_process_applied_it() {
        // Signals are process-wide: build the Priv in a child.
        let (status, out) = in_child(|out| {
            let dir = TempDir::new("privproc-follow");
            let path = dir.path().join("sasyncd.conf");
            let write = |text: &str| {
                std::fs::write(&path, text).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            };
            let (ours, _net) = UnixStream::pair().unwrap();
            let chan = PrivChannel::new(ours).unwrap();
            let signals = Signals::install(&[]).unwrap();
            let mut p = Priv::new(
                FollowingHost::default(),
                chan,
                Pid::from_raw(1),
                signals,
                path.clone(),
            );
            write(&conf("carp1"));
            p.reload();
            write(&conf("carp2"));
            p.reload();
            // The first is refused, the second applied: only it is followed.
            p.handle(ToPriv::reloaded(false, "no"));
            assert!(p.host.interfaces.is_empty());
            p.handle(ToPriv::reloaded(true, "yes"));
            assert_eq!(p.host.interfaces, vec![Some("carp2".to_string())]);
            // An answer with nothing pending changes nothing.
            p.handle(ToPriv::reloaded(true, "again"));
            assert_eq!(p.host.interfaces.len(), 1);
            // A file that does not parse is not sent, so not pending.
            write("interface\n");
            p.reload();
            p.handle(ToPriv::reloaded(true, "stray"));
            assert_eq!(p.host.interfaces.len(), 1);
            write!(out, "ok").unwrap();
        });
        assert_eq!(out, "ok", "{status:?}");
    }
}
