//! The privileged process `[priv]`: keeps root for what only root may do
//! (kernel dumps, the carp group's demotion, IKE daemon control, reading
//! the configuration file on SIGHUP) and does it when the network process
//! asks over the channel. It forwards no signals: SIGTERM/SIGINT become a
//! `Shutdown` message, SIGHUP a new configuration. When the network process
//! dies, for whatever reason, it releases the demotion it holds.
//!
//! The network process faces the network, so every request from it is
//! treated as hostile: what `[priv]` keeps for it is bounded (one dump per
//! peer and one for the node's own jobs, one pending reload, one demotion
//! per life), and a request a sound network process never sends ends it
//! (and so the daemon) with one log line instead of being served.

use std::collections::BTreeMap;
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
    /// Most dumps in flight: the node streams at most one per peer (a
    /// snapshot) and one of its own (a sweep or check), each table after
    /// the other. The most peers any configuration had, plus one.
    max_dumps: usize,
    /// The re-read configuration sent to the network process and not yet
    /// answered (its shared key wiped: `[priv]` never needs it); the host
    /// follows it once the network process has applied it.
    pending: Option<Config>,
    /// A reload was asked for while one was pending: re-read once it is
    /// answered (requests in between coalesce).
    reload_again: bool,
    /// Demotions we raised and have not released.
    held: u32,
    /// A raise was asked for in this life (the node asks once).
    raise_asked: bool,
    /// The network process broke the protocol and was killed.
    violated: bool,
    /// A reload read the file: wipe the stack it used.
    wipe: bool,
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

/// A panic unwinding through [`Priv::run`] still releases our demotion.
impl<H: Host> Drop for Priv<H> {
    fn drop(&mut self) {
        self.release_all();
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
        peers: usize,
    ) -> Priv<H> {
        Priv {
            host,
            chan,
            child,
            signals,
            config_path,
            dumps: BTreeMap::new(),
            max_dumps: peers + 1,
            pending: None,
            reload_again: false,
            held: 0,
            raise_asked: false,
            violated: false,
            wipe: false,
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
            if std::mem::take(&mut self.wipe) {
                // A reload parsed the file (shared key included) in frames
                // below this one.
                crate::sys::wipe_stack();
            }
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
            // We killed it for a violation and said why.
            Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)) if self.violated => {
                self.child_done = true;
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
        while !self.violated {
            match self.chan.next_msg() {
                Ok(Some(m)) => self.handle(m),
                Ok(None) => break,
                Err(e) => {
                    // A network process that sends garbage is not trusted
                    // with anything more.
                    self.violation(&format!("sent a bad message: {e}"));
                }
            }
        }
    }

    /// The network process did what a sound one never does: it is killed
    /// at once (it may ignore SIGTERM), nothing more it sent is served,
    /// and the daemon ends. One log line says why.
    fn violation(&mut self, what: &str) {
        if self.violated {
            return;
        }
        log::error!("the network process {what}; killing it");
        self.violated = true;
        self.dumps.clear();
        let _ = kill(self.child, Signal::SIGKILL);
    }

    /// Queues a message; a full queue means the network process stopped
    /// reading while asking for more, which is a violation, never a
    /// silently dropped message.
    fn send(&mut self, msg: &ToNet) {
        if let Err(e) = self.chan.queue(msg) {
            self.violation(&format!("stopped reading its channel ({e})"));
        }
    }

    fn handle(&mut self, msg: ToPriv) {
        if self.violated {
            return;
        }
        match msg {
            ToPriv::DumpStart { dump, table } => {
                // A reused name restarts that dump.
                self.dumps.remove(&dump);
                if self.dumps.len() >= self.max_dumps {
                    return self.violation(&format!(
                        "asked for more than {} kernel dumps at once",
                        self.max_dumps
                    ));
                }
                match self.host.dump(table) {
                    Ok(buf) => {
                        self.dumps.insert(dump, (buf, 0));
                        self.send_batch(dump);
                    }
                    Err(e) => {
                        log::warn!("kernel dump failed: {e}");
                        self.send(&ToNet::DumpEnd { dump, ok: false });
                    }
                }
            }
            ToPriv::DumpMore { dump } => self.send_batch(dump),
            ToPriv::DumpCancel { dump } => {
                self.dumps.remove(&dump);
            }
            ToPriv::Demote { raise: true } => {
                if std::mem::replace(&mut self.raise_asked, true) {
                    return self.violation("asked to raise the carp demotion twice");
                }
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
            ToPriv::Reloaded { ok, message } => {
                let Some(cfg) = self.pending.take() else {
                    return self.violation("answered a reload that was not sent");
                };
                if ok {
                    self.max_dumps = self.max_dumps.max(cfg.peers.len() + 1);
                    self.host.reconfigure(&cfg);
                    log::info!("configuration reloaded: {message}");
                    self.check_pfsync();
                } else {
                    log::error!(
                        "new configuration not applied, keeping the running one: {message}"
                    );
                }
                if std::mem::take(&mut self.reload_again) {
                    self.reload();
                }
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
        let framing = self.host.framing();
        while end + 8 <= b.len() {
            let len = framing.record_len(&b[end..]);
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
                // Asked for more before reading what was sent.
                return self.violation(&format!("stopped reading its channel ({e})"));
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
            Ok(n) => match self.host.demote(1) {
                Ok(()) => {
                    self.held += 1;
                    // What others hold shows here: the boot scripts', or
                    // that of a sasyncd whose [priv] was killed.
                    log::info!("carp group demoted until we are in sync (counter {n} before ours)");
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
                match self.host.demote_counter() {
                    Ok(n) => log::info!("carp group demotion released (counter now {n})"),
                    Err(_) => log::info!("carp group demotion released"),
                }
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
        if self.pending.is_some() {
            if !self.reload_again {
                log::info!("a reload is in progress; the file is read again once it is done");
            }
            self.reload_again = true;
            return;
        }
        self.wipe = true;
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
        let mut cfg = match crate::daemon::check_text(&self.config_path, text.as_bytes()) {
            Ok(cfg) => cfg,
            Err(e) => {
                let why = e.to_string();
                log::error!("{why}; keeping the running configuration");
                self.send(&ToNet::reload_refused(&why));
                return;
            }
        };
        // The network process gets the text; we keep no key.
        cfg.sharedkey = sasyncd_core::crypto::SecretKey::empty();
        let addrs = cfg.peers.iter().filter_map(|p| p.addr).collect();
        self.pending = Some(*cfg);
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
            // A stand-in network process, for the violation at the end.
            let mut sleeper = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap();
            let mut p = Priv::new(
                FollowingHost::default(),
                chan,
                Pid::from_raw(sleeper.id() as i32),
                signals,
                path.clone(),
                1,
            );
            write(&conf("carp1"));
            p.reload();
            assert!(p.pending.as_ref().unwrap().sharedkey.as_bytes().is_empty());
            write(&conf("carp2"));
            // Pending already: read again once answered, not queued.
            p.reload();
            p.reload();
            // The first is refused, which re-reads; the second is applied
            // and followed.
            p.handle(ToPriv::reloaded(false, "no"));
            assert!(p.host.interfaces.is_empty());
            p.handle(ToPriv::reloaded(true, "yes"));
            assert_eq!(p.host.interfaces, vec![Some("carp2".to_string())]);
            assert!(p.pending.is_none());
            // A file that does not parse is not sent, so not pending.
            write("interface\n");
            p.reload();
            assert!(p.pending.is_none());
            // An answer to nothing is a violation: the process is killed.
            p.handle(ToPriv::reloaded(true, "stray"));
            assert_eq!(p.host.interfaces.len(), 1);
            assert!(p.violated);
            let st = sleeper.wait().unwrap();
            assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
            write!(out, "ok").unwrap();
        });
        assert_eq!(out, "ok", "{status:?}");
    }

    /// What a host saw of the hostile network process.
    #[derive(Default)]
    struct Seen {
        dumps: usize,
        counter: i32,
        max_counter: i32,
    }

    /// A host with a 1 MiB SADB of 8-byte records (four batches) and a demotion counter
    /// that starts at 2 (the boot scripts demoted the group).
    struct CountingHost(std::rc::Rc<std::cell::RefCell<Seen>>);

    impl Host for CountingHost {
        fn dump(&mut self, _: sasyncd_core::node::Table) -> io::Result<SecretBytes> {
            self.0.borrow_mut().dumps += 1;
            let mut v = vec![0u8; 1024 * 1024];
            for r in v.chunks_mut(8) {
                r[4..6].copy_from_slice(&1u16.to_ne_bytes());
            }
            Ok(SecretBytes::new(v))
        }
        fn demote_counter(&mut self) -> io::Result<i32> {
            Ok(self.0.borrow().counter)
        }
        fn demote(&mut self, delta: i32) -> io::Result<()> {
            let mut s = self.0.borrow_mut();
            s.counter += delta;
            s.max_counter = s.max_counter.max(s.counter);
            Ok(())
        }
        fn ike(&mut self, _: bool) -> io::Result<()> {
            Ok(())
        }
        fn link_state(&mut self) -> io::Result<u8> {
            Ok(2)
        }
    }

    /// Runs a real `[priv]` against a real hostile network process: a
    /// forked child that sends `attack` (blocking) and then, if it is
    /// still alive after `linger`, reports what it received. Returns how
    /// `[priv]` ended, what the host saw and the child's report.
    fn hostile(
        attack: Vec<ToPriv>,
        read: bool,
        linger: Duration,
    ) -> (PrivExit, usize, i32, i32, String) {
        let (status, out) = in_child(move |out| {
            let dir = TempDir::new("privproc-hostile");
            let path = dir.path().join("sasyncd.conf");
            std::fs::write(&path, conf("carp0")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let (ours, theirs) = UnixStream::pair().unwrap();
            let (r, w) = nix::unistd::pipe().unwrap();
            // SAFETY: the child only writes to sockets and a pipe, then
            // _exit(2)s.
            let child = match unsafe { nix::unistd::fork() }.unwrap() {
                nix::unistd::ForkResult::Child => {
                    drop(ours);
                    drop(r);
                    let mut ch = crate::privsep::NetChannel::new(theirs).unwrap();
                    for m in &attack {
                        ch.queue(m).unwrap();
                        while !ch.flush().unwrap() {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    let until = Instant::now() + linger;
                    let mut configs = 0;
                    while Instant::now() < until {
                        if read {
                            let _ = ch.read_ready();
                            while let Ok(Some(m)) = ch.next_msg() {
                                if matches!(m, ToNet::Config { .. }) {
                                    configs += 1;
                                }
                            }
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let _ = write!(std::fs::File::from(w), "survived configs={configs}");
                    // SAFETY: ends the child at once.
                    unsafe { libc::_exit(0) }
                }
                nix::unistd::ForkResult::Parent { child } => child,
            };
            drop(theirs);
            drop(w);
            let signals = Signals::install(&[Signal::SIGCHLD]).unwrap();
            let seen = std::rc::Rc::new(std::cell::RefCell::new(Seen {
                counter: 2,
                max_counter: 2,
                ..Seen::default()
            }));
            let chan = PrivChannel::new(ours).unwrap();
            let p = Priv::new(CountingHost(seen.clone()), chan, child, signals, path, 1);
            let exit = p.run();
            let mut report = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut report).unwrap();
            let s = seen.borrow();
            write!(
                out,
                "{exit:?}|{}|{}|{}|{report}",
                s.dumps, s.max_counter, s.counter
            )
            .unwrap();
        });
        let f: Vec<&str> = out.split('|').collect();
        assert_eq!(f.len(), 5, "{status:?} {out}");
        let exit = if f[0] == "Shutdown" {
            PrivExit::Shutdown
        } else {
            PrivExit::ChildDied
        };
        (
            exit,
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
            f[4].to_string(),
        )
    }

    #[test]
    fn a_network_process_asking_for_600_dumps_is_killed_at_the_bound() {
        let attack = (0..600)
            .map(|dump| ToPriv::DumpStart {
                dump,
                table: sasyncd_core::node::Table::Sadb,
            })
            .collect();
        let (exit, dumps, ..) = hostile(attack, false, Duration::from_secs(3));
        let (exit2, _, _, _, report) = hostile(Vec::new(), false, Duration::ZERO);
        assert_eq!(exit2, PrivExit::ChildDied);
        assert!(report.starts_with("survived"), "{report}");
        // One peer: one snapshot and one job in flight, then the kill.
        assert_eq!(exit, PrivExit::ChildDied);
        assert_eq!(dumps, 2, "[priv] took {dumps} kernel dumps for the child");
    }

    #[test]
    fn a_restarted_dump_replaces_its_copy() {
        // The same name again and again is a restart, never a violation.
        let attack = (0..10)
            .map(|_| ToPriv::DumpStart {
                dump: 7,
                table: sasyncd_core::node::Table::Sadb,
            })
            .collect();
        let (exit, dumps, _, _, report) = hostile(attack, true, Duration::from_millis(500));
        assert_eq!(exit, PrivExit::ChildDied);
        assert_eq!(dumps, 10);
        assert!(report.starts_with("survived"), "{report}");
    }

    #[test]
    fn a_network_process_raising_the_demotion_100_times_raises_it_once() {
        let attack = (0..100).map(|_| ToPriv::Demote { raise: true }).collect();
        let (exit, _, max, end, report) = hostile(attack, false, Duration::from_secs(3));
        assert_eq!(exit, PrivExit::ChildDied);
        assert_eq!(max, 3, "the demotion counter went from 2 to {max}");
        assert_eq!(end, 2, "the demotion was not released");
        assert_eq!(report, "", "the network process was not stopped");
    }

    #[test]
    fn a_network_process_asking_for_50_reloads_gets_one_pending() {
        let attack = (0..50).map(|_| ToPriv::Reload).collect();
        let (exit, _, _, _, report) = hostile(attack, true, Duration::from_secs(1));
        assert_eq!(exit, PrivExit::ChildDied);
        assert_eq!(report, "survived configs=1");
    }

    #[test]
    fn a_network_process_that_asks_for_batches_without_reading_is_killed() {
        // The send queue fills (4 MiB): the batches are not dropped
        // silently, the process that stopped reading is stopped.
        let mut attack = vec![ToPriv::DumpStart {
            dump: 1,
            table: sasyncd_core::node::Table::Sadb,
        }];
        attack.extend((0..400).map(|_| ToPriv::DumpStart {
            dump: 1,
            table: sasyncd_core::node::Table::Sadb,
        }));
        let (exit, _, _, _, report) = hostile(attack, false, Duration::from_secs(3));
        assert_eq!(exit, PrivExit::ChildDied);
        assert_eq!(report, "", "the network process was not stopped");
    }
}
