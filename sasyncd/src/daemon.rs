//! Start-up, in the original's order with its gaps closed (reference §3.2):
//! check everything (`-n` stops here, so it never approves what start-up
//! refuses), open what needs root, detach, split into the privileged and
//! the network process, drop privileges in the network process.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::sys::signal::Signal;
use nix::unistd::{fork, ForkResult};
use sasyncd_core::config::{Config, ListenOn};
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::{Node, Settings};

use crate::conffile;
use crate::control::Control;
use crate::dev::{DevHost, DevLinkWatch, DevPfkey};
use crate::logger::{self, Destination};
use crate::net::io::{Clock, NetIo};
use crate::net::{sockets, DaemonNode, Exit, Net};
use crate::privproc::{Priv, PrivExit};
use crate::privsep::{NetChannel, PrivChannel};
use crate::sys::{self, OsRandom, Signals};

/// The unprivileged user on OpenBSD (the original's).
pub const DEFAULT_USER: &str = "_isakmpd";

/// The control socket's default path.
pub const DEFAULT_CONTROL: &str = "/var/run/sasyncd.sock";

/// What the command line asks for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file.
    pub config: PathBuf,
    /// `-d`: stay in the foreground, log to stderr.
    pub foreground: bool,
    /// `-n`: check and exit.
    pub check_only: bool,
    /// `-v` count.
    pub verbosity: u8,
    /// Development mode: the devhost playing the gateway.
    pub dev_host: Option<PathBuf>,
    /// The control socket.
    pub control: PathBuf,
    /// The group that may use the control socket (`None`: the daemon's).
    pub control_group: Option<String>,
    /// The unprivileged user of the network process.
    pub user: String,
    /// Where the network process is chrooted (default: the user's home).
    pub chroot: Option<PathBuf>,
}

/// A startup failure: one line for the operator.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn err(msg: impl Into<String>) -> StartError {
    StartError(msg.into())
}

/// Reads, checks and resolves the configuration and builds a node from it
/// (throwaway): everything `-n` promises start-up will accept.
pub fn check(path: &Path) -> Result<Config, StartError> {
    let mut cfg = conffile::load(path).map_err(|e| err(e.to_string()))?;
    conffile::resolve_peers(&mut cfg).map_err(|e| err(format!("{}: {e}", path.display())))?;
    // The very node type the daemon runs, so that its capacity (peers)
    // and key rules are the ones checked.
    let node: Result<DaemonNode, _> = Node::new(
        &cfg,
        Settings::new([0; 16], 0, 0),
        SoftCrypto,
        OsRandom,
        sasyncd_core::time::Instant::ZERO,
    );
    if let Err(e) = node {
        return Err(err(format!("{}: {e}", path.display())));
    }
    Ok(cfg)
}

/// A stable identity for this node: the host's name and where it listens
/// (two development-mode daemons on one host differ by address).
fn node_id(cfg: &Config) -> [u8; 16] {
    use std::hash::{Hash, Hasher};
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let listen = match &cfg.listen.on {
        ListenOn::Any => String::new(),
        ListenOn::Addr(a) => a.to_string(),
        ListenOn::Interface(i) => i.to_string(),
    };
    let mut id = [0u8; 16];
    for (k, half) in id.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (k, &host, &listen, cfg.listen.port).hash(&mut h);
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    id
}

/// Runs the daemon; returns how the process should exit.
pub fn run(opts: Options) -> ExitCode {
    if let Err(e) = logger::init(Destination::Stderr, opts.verbosity) {
        eprintln!("sasyncd: {e}");
        return ExitCode::from(1);
    }
    let root = nix::unistd::geteuid().is_root();
    if !root && opts.dev_host.is_none() && !opts.check_only {
        log::error!("This daemon needs to be run as root.");
        return ExitCode::from(1);
    }
    let cfg = match check(&opts.config) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    if opts.check_only {
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    match start(opts, cfg, root) {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

fn start(opts: Options, cfg: Config, root: bool) -> Result<ExitCode, StartError> {
    let Some(dev) = opts.dev_host.clone() else {
        return Err(err(
            "the OpenBSD kernel interfaces are not built yet: run in development mode with --dev-host PATH (see README)",
        ));
    };
    // Everything that can fail for a reason the operator must see is tried
    // before detaching, so the error reaches the terminal.
    let host = DevHost::open(&dev)
        .map_err(|e| err(format!("{}: no devhost answers: {e}", dev.display())))?;
    let user = if root {
        Some(sys::lookup_user(&opts.user).map_err(|e| err(e.to_string()))?)
    } else {
        log::warn!("not running as root: no chroot and no privilege drop (development only)");
        None
    };
    let listeners = sockets::listeners(&cfg.listen).map_err(|e| err(e.to_string()))?;
    // Accepting needs no access to the file: the network process serves
    // it after dropping root; only the group decides who may connect.
    let control = Control::bind(&opts.control, opts.control_group.as_deref())
        .map_err(|e| err(format!("control socket {}: {e}", opts.control.display())))?;
    if !opts.foreground {
        sys::daemonize().map_err(|e| err(e.to_string()))?;
        logger::set_destination(Destination::Syslog);
    }
    sys::ignore_sigpipe().map_err(|e| err(e.to_string()))?;
    let (priv_end, net_end) = UnixStream::pair().map_err(|e| err(format!("socketpair: {e}")))?;
    // SAFETY: single-threaded so far (no thread was started), so the child
    // may run any code after fork.
    match unsafe { fork() }.map_err(|e| err(format!("fork: {e}")))? {
        ForkResult::Child => {
            drop(priv_end);
            drop(host);
            logger::set_process("net");
            let _ = sys::set_process_title("net");
            let jail = opts.chroot.clone();
            let code = match network(&cfg, &dev, net_end, listeners, control, user.as_ref(), jail) {
                Ok(Exit::Shutdown) => 0,
                Ok(Exit::Failed(_)) => 1,
                Err(e) => {
                    log::error!("{e}");
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop(net_end);
            drop(listeners);
            drop(control);
            logger::set_process("priv");
            let _ = sys::set_process_title("[priv]");
            let signals = Signals::install(&[
                Signal::SIGTERM,
                Signal::SIGINT,
                Signal::SIGHUP,
                Signal::SIGCHLD,
            ])
            .map_err(|e| err(e.to_string()))?;
            let chan = PrivChannel::new(priv_end).map_err(|e| err(e.to_string()))?;
            let exit = Priv::new(host, chan, child, signals, opts.config.clone()).run();
            let _ = std::fs::remove_file(&opts.control);
            Ok(match exit {
                PrivExit::Shutdown => {
                    log::info!("exiting");
                    ExitCode::SUCCESS
                }
                PrivExit::ChildDied => ExitCode::from(1),
            })
        }
    }
}

/// The network process: opens its kernel descriptors while still root,
/// drops privileges, builds the node and runs the loop.
fn network(
    cfg: &Config,
    dev: &Path,
    chan: UnixStream,
    listeners: Vec<(SocketAddr, TcpListener)>,
    control: Control,
    user: Option<&sys::Unpriv>,
    jail: Option<PathBuf>,
) -> Result<Exit, StartError> {
    let signals = Signals::install(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP])
        .map_err(|e| err(e.to_string()))?;
    let pid = std::process::id();
    let pfkey = DevPfkey::open(dev, pid).map_err(|e| err(format!("PF_KEY socket: {e}")))?;
    let link = DevLinkWatch::open(dev).map_err(|e| err(format!("carp watch: {e}")))?;
    if let Some(u) = user {
        let dir = jail.unwrap_or_else(|| u.home.clone());
        sys::drop_privileges(u, Some(&dir)).map_err(|e| err(e.to_string()))?;
        log::info!("running as {} in {}", u.name, dir.display());
    }
    let clock = Clock::start();
    let mut boot = [0u8; 8];
    sasyncd_core::random::Random::fill(&mut OsRandom, &mut boot);
    let settings = Settings::new(node_id(cfg), u64::from_ne_bytes(boot), pid);
    let node: Box<DaemonNode> = Box::new(
        Node::new(cfg, settings, SoftCrypto, OsRandom, clock.now())
            .map_err(|e| err(e.to_string()))?,
    );
    let source: Option<IpAddr> = sockets::source_addr(&cfg.listen);
    let chan = NetChannel::new(chan).map_err(|e| err(e.to_string()))?;
    let io = NetIo::new(clock, pid, source, Box::new(pfkey), chan);
    Ok(Net::new(node, io, Box::new(link), listeners, Some(control), signals).run())
}
