//! Start-up, in the original's order with its gaps closed (reference §3.2):
//! check everything (`-n` stops here, so it never approves what start-up
//! refuses), open what needs root, detach, split into the privileged and
//! the network process, drop privileges in the network process.
//!
//! The kernel interfaces are OpenBSD's own on OpenBSD, Linux's (XFRM
//! netlink, keepalived's virtual address and track file) on Linux, and a
//! devhost's when `--dev-host` is given ([`backend`]). On a real kernel
//! the processes are then confined: the network process pledges (OpenBSD)
//! or installs its seccomp filter (Linux) once its sockets are open and
//! its privileges dropped; on OpenBSD the privileged process unveils only
//! the paths it opens.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::sys::signal::Signal;
use nix::unistd::{fork, ForkResult};
use sasyncd_core::config::{Config, ListenOn};
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::dialect::{Dialect, OpenBsd};
use sasyncd_core::node::VecMarks;
use sasyncd_core::node::{Node, NodeStorage, Settings};
use sasyncd_core::xfrm::dialect::Xfrm;

use crate::conffile;
use crate::control::Control;
use crate::dev::{DevHost, DevLinkWatch, DevPfkey};
use crate::kernel::{Host, LinkWatch, PfkeySocket};
use crate::logger::{self, Destination};
use crate::net::io::{Clock, NetIo};
use crate::net::{sockets, DaemonNode, Exit, Net};
use crate::privproc::{Priv, PrivExit};
use crate::privsep::{NetChannel, PrivChannel};
use crate::sys::{self, OsRandom, Signals};

/// The unprivileged user of the network process: its own, so that no
/// other daemon's processes (isakmpd's `_isakmpd`, `nobody`) may signal or
/// trace it. The port creates it.
pub const DEFAULT_USER: &str = "_sasyncd";

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
///
/// Boxed, so that moving it on does not leave copies of the shared key on
/// the stack (the privileged process inherits the stack and wipes what is
/// below its frame, not the frames above).
pub fn check(path: &Path) -> Result<Box<Config>, StartError> {
    let text = conffile::read_checked(path, &conffile::Owners::current())
        .map_err(|e| err(e.to_string()))?;
    let cfg = check_text(path, text.as_bytes());
    // What checking left below this frame (copies of the shared key) would
    // sit under the frames start-up pushes next, which the privileged
    // process keeps after the fork.
    crate::sys::wipe_stack();
    cfg
}

/// Every check start-up makes on the text of `path`, in one place: `-n`,
/// start-up and each reload (in the privileged process, which can resolve
/// names) run exactly this. Errors are `FILE:LINE: message`.
pub fn check_text(path: &Path, text: &[u8]) -> Result<Box<Config>, StartError> {
    let name = path.display().to_string();
    let mut cfg =
        Box::new(Config::parse(text).map_err(|e| err(e.display_with(&name).to_string()))?);
    let own = check_listen(path, &cfg)?;
    conffile::resolve_peers(&mut cfg, &own).map_err(|e| err(e.display_with(path)))?;
    // The very node type the daemon runs, so that its capacity (peers)
    // and key rules are the ones checked; nothing is built (storage built
    // to be dropped would carry stack garbage, key copies among it, into
    // the heap of the privileged process).
    let node =
        DaemonNode::<OpenBsd>::check_config(&cfg, &SoftCrypto, sasyncd_core::config::MAX_PEERS);
    if let Err(e) = node {
        return Err(err(format!("{name}: {e}")));
    }
    Ok(cfg)
}

/// Checks that `listen on` names an interface with a usable address or an
/// address of this host (bound on a spare port to find out, as start-up
/// will bind it), and returns the addresses that are this host's own for
/// the peer check: the ones listened on, or every interface's address
/// when listening on the wildcard.
fn check_listen(path: &Path, cfg: &Config) -> Result<Vec<IpAddr>, StartError> {
    let word = match &cfg.listen.on {
        ListenOn::Any => String::from("*"),
        ListenOn::Addr(a) => a.to_string(),
        ListenOn::Interface(i) => i.to_string(),
    };
    let at = |msg: String| {
        let line = cfg.lines.listen;
        err(format!(
            "{}:{line}: listen on {word}: {msg}",
            path.display()
        ))
    };
    let addrs = sockets::listen_addrs(&cfg.listen).map_err(|e| at(e.to_string()))?;
    let mut own = Vec::new();
    for ip in addrs.iter().map(SocketAddr::ip) {
        if ip.is_unspecified() {
            continue;
        }
        if let Err(e) = std::net::UdpSocket::bind((ip, 0)) {
            if e.kind() == std::io::ErrorKind::AddrNotAvailable {
                return Err(at(format!("{ip} is not an address of this host")));
            }
        }
        own.push(ip);
    }
    if own.is_empty() {
        own = nix::ifaddrs::getifaddrs()
            .map_err(|e| err(format!("getifaddrs: {e}")))?
            .filter_map(|a| {
                let s = a.address?;
                s.as_sockaddr_in()
                    .map(|x| IpAddr::V4(x.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|x| IpAddr::V6(x.ip())))
            })
            .collect();
    }
    Ok(own)
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
    sys::close_inherited_fds();
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

/// Where the kernel interfaces come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A devhost plays the gateway (`--dev-host PATH`), on any system.
    Dev(PathBuf),
    /// The running OpenBSD kernel and IKE daemons.
    OpenBsd,
    /// The running Linux kernel (XFRM netlink) and keepalived.
    Linux,
    /// None of these: no devhost given, and a kernel we have no
    /// interfaces for.
    Unavailable,
}

/// The kernel this build runs on, as far as the backends go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// OpenBSD.
    OpenBsd,
    /// Linux.
    Linux,
    /// Anything else.
    Other,
}

/// This build's kernel.
pub const THIS_OS: Os = if cfg!(target_os = "openbsd") {
    Os::OpenBsd
} else if cfg!(target_os = "linux") {
    Os::Linux
} else {
    Os::Other
};

/// Chooses the kernel interfaces: a devhost whenever one is given, else
/// the kernel's own on OpenBSD and Linux, and nothing elsewhere.
pub fn backend(dev_host: Option<&Path>, os: Os) -> Backend {
    match (dev_host, os) {
        (Some(p), _) => Backend::Dev(p.to_path_buf()),
        (None, Os::OpenBsd) => Backend::OpenBsd,
        (None, Os::Linux) => Backend::Linux,
        (None, Os::Other) => Backend::Unavailable,
    }
}

/// The network process's kernel interfaces: opened in the child (a
/// devhost registers the child's pid), or opened before the fork as the
/// original does (the kernel's sockets need root, and errors then reach
/// the terminal).
enum NetKernel {
    Dev(PathBuf),
    #[cfg(target_os = "openbsd")]
    OpenBsd(crate::openbsd::ObsdPfkey, crate::openbsd::ObsdLinkWatch),
    #[cfg(target_os = "linux")]
    Linux(crate::linux::LinuxXfrm, crate::linux::LinuxLinkWatch),
}

/// How the processes are confined once running (on a real kernel).
struct Confine {
    /// The privileged process's unveil list (OpenBSD).
    unveils: Option<Vec<sasyncd_openbsd::confine::Unveil>>,
    /// Whether the network process confines itself: pledge on OpenBSD,
    /// the seccomp filter on Linux.
    pledge: bool,
}

fn start(mut opts: Options, cfg: Box<Config>, root: bool) -> Result<ExitCode, StartError> {
    // Detaching changes to "/": keep the paths SIGHUP and exit use valid.
    opts.config = absolute(&opts.config)?;
    opts.control = absolute(&opts.control)?;
    match backend(opts.dev_host.as_deref(), THIS_OS) {
        Backend::Dev(dev) => {
            let dev = absolute(&dev)?;
            // Everything that can fail for a reason the operator must see
            // is tried before detaching, so the error reaches the terminal.
            let host = DevHost::open(&dev)
                .map_err(|e| err(format!("{}: no devhost answers: {e}", dev.display())))?;
            let confine = Confine {
                unveils: None,
                pledge: false,
            };
            launch(opts, cfg, root, host, NetKernel::Dev(dev), confine)
        }
        Backend::Linux => start_linux(opts, cfg, root),
        Backend::OpenBsd | Backend::Unavailable => start_kernel(opts, cfg, root),
    }
}

fn absolute(p: &Path) -> Result<PathBuf, StartError> {
    std::path::absolute(p).map_err(|e| err(format!("{}: {e}", p.display())))
}

/// The OpenBSD kernel: what the original opens before forking is opened
/// here too, and checked, so that a missing carp interface or PF_KEY
/// support stops start-up with a message on the terminal.
#[cfg(target_os = "openbsd")]
fn start_kernel(opts: Options, cfg: Box<Config>, root: bool) -> Result<ExitCode, StartError> {
    use crate::kernel::Host;
    use crate::openbsd::{ObsdHost, ObsdLinkWatch, ObsdPfkey};

    let mut host = ObsdHost::open(&cfg).map_err(|e| err(format!("interface socket: {e}")))?;
    if let Some(ifname) = host.interface().map(str::to_string) {
        host.link_state().map_err(|e| {
            err(format!(
                "cannot read the carp interface: {e}; fix the interface or lock the role with \"mode master\" or \"mode slave\""
            ))
        })?;
        log::debug!("tracking carp interface {ifname}");
    }
    if let Err(e) = host.demote_counter() {
        log::warn!("carp demotion group: {e}; start-up demotion is not possible");
    }
    let pfkey = ObsdPfkey::open().map_err(|e| err(format!("PF_KEY socket: {e}")))?;
    let link =
        ObsdLinkWatch::open(host.interface()).map_err(|e| err(format!("routing socket: {e}")))?;
    let confine = Confine {
        unveils: Some(sasyncd_openbsd::confine::priv_unveils(
            &opts.config,
            &opts.control,
            host.ike_targets(),
        )),
        pledge: true,
    };
    launch(
        opts,
        cfg,
        root,
        host,
        NetKernel::OpenBsd(pfkey, link),
        confine,
    )
}

/// Neither OpenBSD nor Linux: only development mode has kernel interfaces.
#[cfg(not(target_os = "openbsd"))]
fn start_kernel(_opts: Options, _cfg: Box<Config>, _root: bool) -> Result<ExitCode, StartError> {
    Err(err(
        "this system has no kernel interfaces for sasyncd (they are OpenBSD's and Linux's): run in development mode with --dev-host PATH (see README)",
    ))
}

/// Linux: XFRM netlink for the tables, keepalived's virtual address for
/// the role and its track file for demotion (`sasyncd::linux`). What can
/// be wrong with the host or the configuration is found here, before
/// detaching, each with one line on the terminal.
#[cfg(target_os = "linux")]
fn start_linux(opts: Options, cfg: Box<Config>, root: bool) -> Result<ExitCode, StartError> {
    use crate::linux::{LinuxHost, LinuxLinkWatch, LinuxXfrm};

    let conf = opts.config.display().to_string();
    let mut host = LinuxHost::open(&cfg).map_err(|e| err(format!("{conf}: {e}")))?;
    host.open_xfrm().map_err(xfrm_error)?;
    let pfkey = LinuxXfrm::open().map_err(xfrm_error)?;
    let track = host.track().map(|(i, a)| (i.to_string(), a));
    let link = match track {
        Some((ifname, addr)) => {
            let state = host
                .link_state()
                .map_err(|e| err(format!("cannot read interface {ifname}: {e}")))?;
            log::debug!("tracking address {addr} on {ifname} (link state {state})");
            LinuxLinkWatch::open(&ifname, addr)
                .map_err(|e| err(format!("rtnetlink address watch: {e}")))?
        }
        // A locked role follows no address: a watch that ignores what it
        // reads keeps the loop's shape (a reload may name one).
        None => {
            let mut w = LinuxLinkWatch::open("lo", IpAddr::from([127, 0, 0, 1]))
                .map_err(|e| err(format!("rtnetlink address watch: {e}")))?;
            w.set_interface(None);
            w
        }
    };
    if cfg.demote_file.is_none() && cfg.locked.is_none() {
        log::warn!(
            "no demote file: keepalived cannot be told to keep this gateway backup during its initial sync (see sasyncd.conf(5))"
        );
    }
    let confine = Confine {
        unveils: None,
        pledge: true,
    };
    launch(
        opts,
        cfg,
        root,
        host,
        NetKernel::Linux(pfkey, link),
        confine,
    )
}

#[cfg(not(target_os = "linux"))]
fn start_linux(_opts: Options, _cfg: Box<Config>, _root: bool) -> Result<ExitCode, StartError> {
    Err(err("the Linux backend exists on Linux only"))
}

/// An XFRM socket that cannot be opened or used, said for the operator.
#[cfg(target_os = "linux")]
fn xfrm_error(e: std::io::Error) -> StartError {
    match e.raw_os_error() {
        Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) => err(
            "XFRM netlink socket: this kernel has no XFRM netlink support (CONFIG_XFRM_USER: modprobe xfrm_user)",
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => err(format!(
            "XFRM netlink socket: {e}: the kernel's IPsec tables need root (CAP_NET_ADMIN)"
        )),
        _ => err(format!("XFRM netlink socket: {e}")),
    }
}

/// Opens what every mode needs, detaches and splits into the privileged
/// process (holding `host`) and the network process.
fn launch<H: Host>(
    opts: Options,
    cfg: Box<Config>,
    root: bool,
    mut host: H,
    net: NetKernel,
    confine: Confine,
) -> Result<ExitCode, StartError> {
    if cfg.protocol == sasyncd_core::config::Protocol::Legacy {
        log::warn!(
            "protocol legacy: frames have no MAC and no replay protection; anyone on the sync network can replay them (see sasyncd(8))"
        );
    }
    if host.pfsync_up() == Some(false) {
        log::warn!(
            "no pfsync interface is up: replay-protected SAs will fail after a failover (see sasyncd(8))"
        );
    }
    let user = if root {
        Some(sys::lookup_user(&opts.user).map_err(|e| err(e.to_string()))?)
    } else {
        log::warn!("not running as root: no chroot and no privilege drop (development only)");
        None
    };
    let listeners = sockets::listeners(&cfg.listen).map_err(|e| err(e.to_string()))?;
    // Held until each process has its own disposition (see `sys::hold`).
    sys::hold(&sys::STOP_RELOAD).map_err(|e| err(e.to_string()))?;
    // Accepting needs no access to the file: the network process serves
    // it after dropping root; only the group decides who may connect.
    let control = Control::bind(&opts.control, opts.control_group.as_deref())
        .map_err(|e| err(format!("control socket {}: {e}", opts.control.display())))?;
    if opts.foreground {
        logger::set_timestamps(true);
    } else {
        // Where logs go once detached: syslog, or stderr if syslog cannot
        // be reached (said now, while someone reads the terminal).
        let keep_stderr = match logger::syslog_reachable() {
            Ok(()) => false,
            Err(e) => {
                log::warn!("syslog cannot be reached (/dev/log: {e}): logging to stderr");
                true
            }
        };
        // The parent waits until both processes are up or one failed,
        // and exits with the reason on stderr.
        let report = sys::daemonize(keep_stderr).map_err(|e| err(e.to_string()))?;
        logger::set_report(report);
        if keep_stderr {
            logger::set_timestamps(true);
        } else {
            logger::set_destination(Destination::Syslog);
        }
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
            let code = match network(
                &cfg,
                net,
                net_end,
                listeners,
                control,
                user.as_ref(),
                jail,
                confine.pledge,
            ) {
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
            // [priv] never needs the shared key: its copy is wiped now.
            let peers = cfg.peers.len();
            drop(cfg);
            sys::wipe_stack();
            if let Err(e) = sys::no_core_dumps() {
                log::warn!("privileged process: cannot disable core dumps: {e}");
            }
            drop(net_end);
            drop(net);
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
            sys::release(&sys::STOP_RELOAD).map_err(|e| err(e.to_string()))?;
            if let Some(paths) = &confine.unveils {
                if let Err(e) = crate::openbsd::confine_priv(paths) {
                    // The network process stops when the channel closes.
                    return Err(err(format!("privileged process: {e}")));
                }
            }
            let chan = PrivChannel::new(priv_end).map_err(|e| err(e.to_string()))?;
            let privproc = Priv::new(host, chan, child, signals, opts.config.clone(), peers);
            // Up; the network process reports for both.
            logger::end_report();
            let exit = privproc.run();
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

/// The network process: takes (or opens, while still root) its kernel
/// descriptors, drops privileges, builds the node, pledges if asked, and
/// runs the loop.
#[allow(clippy::too_many_arguments)]
fn network(
    cfg: &Config,
    net: NetKernel,
    chan: UnixStream,
    listeners: Vec<(SocketAddr, TcpListener)>,
    control: Control,
    user: Option<&sys::Unpriv>,
    jail: Option<PathBuf>,
    pledge: bool,
) -> Result<Exit, StartError> {
    // Stopping and reloading are asked of the privileged process.
    sys::ignore(&sys::STOP_RELOAD).map_err(|e| err(e.to_string()))?;
    sys::release(&sys::STOP_RELOAD).map_err(|e| err(e.to_string()))?;
    let pid = std::process::id();
    // Linux: XFRM requests and group joins need CAP_NET_ADMIN in the
    // sending process too, so the network process keeps that one.
    let keep_net_admin = cfg!(target_os = "linux") && !matches!(net, NetKernel::Dev(_));
    // The records the kernel gives: XFRM netlink on Linux, PF_KEY else.
    let xfrm = keep_net_admin;
    let (pfkey, link): (Box<dyn PfkeySocket>, Box<dyn LinkWatch>) = match net {
        NetKernel::Dev(dev) => (
            Box::new(DevPfkey::open(&dev, pid).map_err(|e| err(format!("PF_KEY socket: {e}")))?),
            Box::new(DevLinkWatch::open(&dev).map_err(|e| err(format!("carp watch: {e}")))?),
        ),
        #[cfg(target_os = "openbsd")]
        NetKernel::OpenBsd(pfkey, link) => (Box::new(pfkey), Box::new(link)),
        #[cfg(target_os = "linux")]
        NetKernel::Linux(pfkey, link) => (Box::new(pfkey), Box::new(link)),
    };
    if let Some(u) = user {
        let dir = jail.unwrap_or_else(|| u.home.clone());
        #[cfg(target_os = "linux")]
        let dropped = if keep_net_admin {
            sys::drop_privileges_keeping_net_admin(u, Some(&dir))
        } else {
            sys::drop_privileges(u, Some(&dir))
        };
        #[cfg(not(target_os = "linux"))]
        let dropped = sys::drop_privileges(u, Some(&dir));
        dropped.map_err(|e| err(e.to_string()))?;
        if keep_net_admin {
            log::info!(
                "running as {} in {}, keeping CAP_NET_ADMIN for XFRM",
                u.name,
                dir.display()
            );
        } else {
            log::info!("running as {} in {}", u.name, dir.display());
        }
    }
    let clock = Clock::start();
    let mut boot = [0u8; 8];
    sasyncd_core::random::Random::fill(&mut OsRandom, &mut boot);
    // Our writes come back from the kernel naming us by this: the pid on
    // PF_KEY, the socket's port on XFRM netlink.
    let settings = Settings::new(node_id(cfg), u64::from_ne_bytes(boot), pfkey.writer_id(pid));
    let now = clock.now();
    let node = match xfrm {
        false => Kernel::OpenBsd(build_node::<OpenBsd>(cfg, settings, now)?),
        true => Kernel::Xfrm(build_node::<Xfrm>(cfg, settings, now)?),
    };
    let source: Option<IpAddr> = sockets::source_addr(&cfg.listen);
    let chan = NetChannel::new(chan).map_err(|e| err(e.to_string()))?;
    if pledge {
        #[cfg(target_os = "linux")]
        crate::linux::confine_net().map_err(|e| err(format!("network process: {e}")))?;
        #[cfg(not(target_os = "linux"))]
        crate::openbsd::confine_net().map_err(|e| err(format!("network process: {e}")))?;
    }
    let io = NetIo::new(clock, pid, source, pfkey, chan);
    let control = Some(control);
    Ok(match node {
        Kernel::OpenBsd(node) => {
            let net = Net::new(node, io, link, listeners, control);
            logger::report_ready();
            net.run()
        }
        Kernel::Xfrm(node) => {
            let net = Net::new(node, io, link, listeners, control);
            logger::report_ready();
            net.run()
        }
    })
}

/// The node of the kernel's dialect.
enum Kernel {
    OpenBsd(Box<DaemonNode<OpenBsd>>),
    Xfrm(Box<DaemonNode<Xfrm>>),
}

fn build_node<D: Dialect + Default>(
    cfg: &Config,
    settings: Settings,
    now: sasyncd_core::time::Instant,
) -> Result<Box<DaemonNode<D>>, StartError> {
    Ok(Box::new(
        Node::new(
            cfg,
            settings,
            SoftCrypto,
            OsRandom,
            VecMarks::new(),
            NodeStorage::default_on_heap(),
            now,
        )
        .map_err(|e| err(e.to_string()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_runs_its_own_backend_unless_a_devhost_is_given() {
        assert_eq!(backend(None, Os::OpenBsd), Backend::OpenBsd);
        assert_eq!(backend(None, Os::Linux), Backend::Linux);
        for os in [Os::OpenBsd, Os::Linux, Os::Other] {
            assert_eq!(
                backend(Some(Path::new("/tmp/dev.sock")), os),
                Backend::Dev(PathBuf::from("/tmp/dev.sock"))
            );
        }
        assert_eq!(backend(None, Os::Other), Backend::Unavailable);
    }

    #[test]
    fn this_build_knows_where_it_runs() {
        assert_eq!(THIS_OS == Os::OpenBsd, cfg!(target_os = "openbsd"));
        assert_eq!(
            backend(None, THIS_OS) == Backend::Linux,
            cfg!(target_os = "linux")
        );
    }

    #[cfg(not(target_os = "openbsd"))]
    fn opts() -> Options {
        Options {
            config: PathBuf::from("sasyncd.conf"),
            foreground: true,
            check_only: false,
            verbosity: 0,
            dev_host: None,
            control: PathBuf::from("/nonexistent/sasyncd.sock"),
            control_group: None,
            user: DEFAULT_USER.to_string(),
            chroot: None,
        }
    }

    /// On Linux the configuration must name keepalived's virtual address:
    /// refused before anything is opened, with the statement to write.
    #[cfg(target_os = "linux")]
    #[test]
    fn linux_start_up_asks_for_the_virtual_address() {
        let cfg = Config::parse(
            b"interface eth0\npeer 192.0.2.1\nsharedkey 0x00112233445566778899aabbccddeeff\n",
        )
        .unwrap();
        let e = start(opts(), Box::new(cfg), false).unwrap_err();
        assert!(
            e.to_string()
                .contains("sasyncd.conf: on Linux the role follows keepalived's virtual address"),
            "{e}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_xfrm_socket_error_says_what_to_do() {
        let e = xfrm_error(std::io::Error::from_raw_os_error(libc::EPROTONOSUPPORT));
        assert!(e.to_string().contains("modprobe xfrm_user"), "{e}");
        let e = xfrm_error(std::io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
    }

    #[cfg(not(any(target_os = "openbsd", target_os = "linux")))]
    #[test]
    fn elsewhere_without_a_devhost_start_up_refuses_with_a_hint() {
        let cfg = Config::parse(
            b"interface carp0\npeer 192.0.2.1\nsharedkey 0x00112233445566778899aabbccddeeff\n",
        )
        .unwrap();
        let e = start(opts(), Box::new(cfg), false).unwrap_err();
        assert!(e.to_string().contains("--dev-host"), "{e}");
    }
}
