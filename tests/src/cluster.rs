//! Real daemon processes for the end-to-end tests: each gateway is a
//! `sasyncd-devhost` (its kernel, carp interface and IKE daemon) and a
//! `sasyncd` process in development mode on its own 127.x.y.z address (or
//! in a network namespace of its own, see [`Options::netns`]).
//! Everything a cluster starts is killed when it drops, also when a test
//! fails (and so is what [`run`] starts); each test's addresses, ports and
//! files are its own, so tests run in parallel. A failed test leaves its
//! directory (configurations, logs) in the temporary directory.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use sasyncd_sim::devhost;

/// The key every generated configuration uses.
pub const KEY: &str = "e2e-shared-key!!";

/// How long a test waits for a condition before failing.
pub const WAIT: Duration = Duration::from_secs(20);

static BUILT: Once = Once::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Where the workspace's binaries are (the profile the tests run in).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf()
}

/// Builds the daemon and the devhost (a no-op when they are fresh), once
/// per test binary, so `cargo test -p sasyncd-tests` alone runs current
/// binaries.
pub fn build_bins() {
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let dir = bin_dir();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut c = Command::new(cargo);
        c.args(["build", "--bins", "-p", "sasyncd", "-p", "sasyncd-sim"]);
        if release {
            c.arg("--release");
        }
        let st = c.status().expect("run cargo build");
        assert!(st.success(), "building the binaries failed");
    });
}

/// The path of one of the workspace's binaries.
pub fn bin(name: &str) -> PathBuf {
    build_bins();
    bin_dir().join(name)
}

/// Whether the tests run as root (privilege separation, chroot).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// What a gateway's configuration says beyond its peers, and where it runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Extra configuration lines.
    pub extra: String,
    /// The shared key.
    pub key: String,
    /// `-v` count.
    pub verbosity: u8,
    /// The gateways it names as peers (default: every other one).
    pub peers: Option<Vec<usize>>,
    /// Its address (default: the test's own 127.A.B.(i+1)).
    pub addr: Option<Ipv4Addr>,
    /// The network namespace its devhost and daemon run in (`ip netns
    /// exec`; see [`crate::netns`]); default: the test's own.
    pub netns: Option<String>,
    /// More arguments for its daemon's command line.
    pub args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra: String::new(),
            key: KEY.to_string(),
            verbosity: 1,
            peers: None,
            addr: None,
            netns: None,
            args: Vec::new(),
        }
    }
}

/// One gateway: its devhost, and its daemon when running.
#[derive(Debug)]
pub struct Gateway {
    /// Its address.
    pub addr: Ipv4Addr,
    /// The devhost's socket.
    pub host: PathBuf,
    /// The configuration file.
    pub conf: PathBuf,
    /// The daemon's control socket.
    pub control: PathBuf,
    /// What the daemon wrote to stderr (all its runs).
    pub log: PathBuf,
    /// What its configuration was generated from.
    pub opts: Options,
    devhost: Child,
    daemon: Option<Child>,
}

/// A cluster of gateways on loopback.
#[derive(Debug)]
pub struct Cluster {
    /// The test's directory.
    pub dir: PathBuf,
    /// The gateways.
    pub gw: Vec<Gateway>,
    /// The port every daemon listens on.
    pub port: u16,
    /// An empty directory to chroot the network processes into.
    pub jail: PathBuf,
}

/// A test's own addresses: 127.A.B.x, never shared by two tests.
fn subnet() -> (u8, u8) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    (20 + (pid % 200) as u8, 1 + n as u8)
}

impl Cluster {
    /// `n` gateways, each peering with all others, carp BACKUP, the carp
    /// group demoted once (as boot scripts leave it); daemons not started.
    pub fn new(n: usize, opts: &[Options]) -> Cluster {
        let (a, b) = subnet();
        let dir = std::env::temp_dir().join(format!("sasyncd-e2e-{a}-{b}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test directory");
        let jail = dir.join("empty");
        std::fs::create_dir_all(&jail).expect("chroot directory");
        let port = 7000 + b as u16;
        let mut c = Cluster {
            dir,
            gw: Vec::new(),
            port,
            jail,
        };
        for i in 0..n {
            let o = opts.get(i).cloned().unwrap_or_default();
            let addr = o.addr.unwrap_or(Ipv4Addr::new(127, a, b, 1 + i as u8));
            let host = c.dir.join(format!("host{i}.sock"));
            let devhost = in_netns(o.netns.as_deref(), &bin("sasyncd-devhost"))
                .arg(&host)
                .args(["--carp", "backup", "--demote", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start a devhost");
            c.gw.push(Gateway {
                addr,
                host,
                conf: c.dir.join(format!("gw{i}.conf")),
                control: c.dir.join(format!("ctl{i}.sock")),
                log: c.dir.join(format!("gw{i}.log")),
                opts: o,
                devhost,
                daemon: None,
            });
        }
        for i in 0..n {
            let peers = c.gw[i]
                .opts
                .peers
                .clone()
                .unwrap_or_else(|| (0..n).filter(|&j| j != i).collect());
            write_private(&c.gw[i].conf, &c.config_text(i, &peers));
        }
        for g in &c.gw {
            wait_for(
                || UnixStream::connect(&g.host).is_ok(),
                "a devhost to listen",
            );
        }
        c
    }

    /// Gateway `i`'s configuration naming these gateways as its peers (and
    /// its options' key and extra lines).
    pub fn config_text(&self, i: usize, peers: &[usize]) -> String {
        let g = &self.gw[i];
        let mut text = String::new();
        for &j in peers {
            text += &format!("peer {}\n", self.gw[j].addr);
        }
        text += &format!(
            "listen on {} port {}\ninterface carp0\nsharedkey \"{}\"\ncontrol all\n{}\n",
            g.addr, self.port, g.opts.key, g.opts.extra
        );
        text
    }

    /// Replaces gateway `i`'s configuration file (mode 0600, ours).
    pub fn write_conf(&self, i: usize, text: &str) {
        write_private(&self.gw[i].conf, text);
    }

    /// The daemon's command line for gateway `i` (without spawning it).
    pub fn command(&self, i: usize, verbosity: u8) -> Command {
        let g = &self.gw[i];
        let mut c = in_netns(g.opts.netns.as_deref(), &bin("sasyncd"));
        c.arg("-d");
        if verbosity > 0 {
            c.arg(format!("-{}", "v".repeat(verbosity as usize)));
        }
        c.arg("-c").arg(&g.conf);
        c.arg("--dev-host").arg(&g.host);
        c.arg("--control").arg(&g.control);
        if is_root() {
            c.args(["--user", "nobody"]);
            c.arg("--chroot").arg(&self.jail);
        }
        c.args(&g.opts.args);
        c
    }

    /// Starts gateway `i`'s daemon (at its options' `-v` count) and waits
    /// for its control socket.
    pub fn start(&mut self, i: usize) {
        self.start_with(i, self.gw[i].opts.verbosity);
    }

    /// [`start`](Self::start) with this `-v` count.
    pub fn start_with(&mut self, i: usize, verbosity: u8) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.gw[i].log)
            .expect("log file");
        let child = self
            .command(i, verbosity)
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start sasyncd");
        self.gw[i].daemon = Some(child);
        let until = Instant::now() + WAIT;
        loop {
            if UnixStream::connect(&self.gw[i].control).is_ok() {
                return;
            }
            let exited = self.gw[i]
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            let why = match exited {
                Some(st) => format!("sasyncd {i} exited ({st}) before answering"),
                None if Instant::now() >= until => {
                    format!("timed out waiting for sasyncd {i} to answer on its control socket")
                }
                None => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            panic!("{why}; its log:\n{}", self.log(i));
        }
    }

    /// Where gateway `i`'s daemon listens for peers.
    pub fn endpoint(&self, i: usize) -> std::net::SocketAddrV4 {
        std::net::SocketAddrV4::new(self.gw[i].addr, self.port)
    }

    /// The daemon's main (privileged) process id.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.gw[i].daemon.as_ref().map(Child::id)
    }

    /// The daemon's network process: the privileged process's child.
    pub fn net_pid(&self, i: usize) -> Option<u32> {
        let pid = self.pid(i)?;
        let mut found = None;
        wait_for(
            || {
                found = children(pid).first().copied();
                found.is_some()
            },
            &format!("sasyncd {i} to fork its network process"),
        );
        found
    }

    /// Whether gateway `i`'s daemon is still running (not exited, not
    /// reaped).
    pub fn running(&mut self, i: usize) -> bool {
        match self.gw[i].daemon.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends a signal to gateway `i`'s privileged process.
    pub fn signal(&self, i: usize, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid(i) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }

    /// Kills every process of gateway `i`'s daemon at once (`kill -9`).
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.gw[i].daemon.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }

    /// Waits for gateway `i`'s daemon to exit; its status.
    pub fn wait_exit(&mut self, i: usize) -> std::process::ExitStatus {
        let mut c = self.gw[i].daemon.take().expect("a running daemon");
        let until = Instant::now() + WAIT;
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < until, "sasyncd {i} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A devhost command on gateway `i` (see `sasyncd-devhost --help`);
    /// panics on an error reply.
    pub fn host(&self, i: usize, cmd: &str) -> String {
        match devhost::ctl(&self.gw[i].host, cmd) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => panic!("devhost {i}: {cmd}: {e}"),
            Err(e) => panic!("devhost {i}: {cmd}: {e}"),
        }
    }

    /// Gateway `i`'s synchronised tables, digested (equal digests: equal
    /// tables).
    pub fn digest(&self, i: usize) -> String {
        self.host(i, "digest")
    }

    /// Counts (`sas`, `flows`) in gateway `i`'s kernel.
    pub fn counts(&self, i: usize) -> (usize, usize) {
        let s = self.host(i, "show counts");
        let get = |k: &str| {
            s.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (get("sas="), get("flows="))
    }

    /// A devhost status value (`show status`, `key=value` lines).
    pub fn host_status(&self, i: usize, key: &str) -> String {
        let s = self.host(i, "show status");
        s.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
            .to_string()
    }

    /// Sets gateway `i`'s carp state (`master` or `backup`).
    pub fn carp(&self, i: usize, state: &str) {
        self.host(i, &format!("carp {state}"));
    }

    /// Runs `sasyncctl -s <gateway i's socket> ARGS`: its output when it
    /// exits 0, else what it wrote to stderr.
    pub fn ctl(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let out = Command::new(bin("sasyncctl"))
            .arg("-s")
            .arg(&self.gw[i].control)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run sasyncctl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `sasyncctl -j ARGS` on gateway `i`, parsed (`null` if the daemon
    /// did not answer).
    pub fn ctl_json(&self, i: usize, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        match self.ctl(i, &a) {
            Ok(out) => serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("sasyncctl -j {args:?}: {e}: {out}")),
            Err(_) => serde_json::Value::Null,
        }
    }

    /// The daemon's `show` report (`sasyncctl -j show`).
    pub fn show_json(&self, i: usize) -> serde_json::Value {
        self.ctl_json(i, &["show"])
    }

    /// The node part of the daemon's `show` report, flattened (see
    /// [`flatten`]): `state`, `demotion_held`, `following.addr`, ...
    /// Empty if the daemon did not answer.
    pub fn show(&self, i: usize) -> BTreeMap<String, String> {
        flatten(&self.show_json(i)["node"])
    }

    /// A counter of the daemon's `show stats` (0 if it did not answer).
    pub fn counter(&self, i: usize, name: &str) -> u64 {
        self.ctl_json(i, &["show", "stats"])["counters"][name]
            .as_u64()
            .unwrap_or(0)
    }

    /// The master gateway `i` follows and whether its stream started.
    pub fn following(&self, i: usize) -> Option<(String, bool)> {
        let f = &self.show_json(i)["node"]["following"];
        Some((f["addr"].as_str()?.to_string(), f["streaming"].as_bool()?))
    }

    /// What gateway `i`'s daemon logged so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.gw[i].log).unwrap_or_default()
    }

    /// Waits until gateway `i`'s log has a line containing every one of
    /// `words`; returns that line.
    pub fn wait_log(&self, i: usize, words: &[&str]) -> String {
        let mut line = String::new();
        self.wait(
            &format!("gateway {i} to log a line with {words:?}"),
            |c| match c
                .log(i)
                .lines()
                .find(|l| words.iter().all(|w| l.contains(w)))
            {
                Some(l) => {
                    line = l.to_string();
                    true
                }
                None => false,
            },
        );
        line
    }

    /// The lines of gateway `i`'s log containing `word`.
    pub fn log_lines(&self, i: usize, word: &str) -> Vec<String> {
        self.log(i)
            .lines()
            .filter(|l| l.contains(word))
            .map(String::from)
            .collect()
    }

    /// The peer at `addr` as `show peer` reports it, flattened (see
    /// [`flatten`]): `connected`, `state`, `errors.auth`, ...
    pub fn peer_view(&self, i: usize, addr: Ipv4Addr) -> BTreeMap<String, String> {
        flatten(&self.ctl_json(i, &["show", "peer", &addr.to_string()])["peer"])
    }

    /// One count of gateway `i`'s view of the peer at `addr` (a key of
    /// [`peer_view`](Self::peer_view): `bytes_out`, `frames_out`, ...; 0
    /// if it has none).
    pub fn peer_count(&self, i: usize, addr: Ipv4Addr, key: &str) -> u64 {
        self.peer_view(i, addr)
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// One error count (`auth`, `replay`, `wrong_key`, `oversize`,
    /// `malformed`, `protocol`, `kernel`, `io`) of gateway `i`'s view of
    /// the peer at `addr`.
    pub fn peer_errors(&self, i: usize, addr: Ipv4Addr, kind: &str) -> u64 {
        self.peer_count(i, addr, &format!("errors.{kind}"))
    }

    /// Waits until `cond` holds; panics with `what` and every log if not.
    pub fn wait(&self, what: &str, cond: impl FnMut(&Cluster) -> bool) {
        self.wait_up_to(WAIT, what, cond);
    }

    /// [`wait`](Self::wait), for up to `limit` (what a daemon does on a
    /// timer of its own, such as the master's digest every 60 s).
    pub fn wait_up_to(&self, limit: Duration, what: &str, mut cond: impl FnMut(&Cluster) -> bool) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs: String = (0..self.gw.len())
            .map(|i| format!("\n--- gateway {i} log:\n{}", self.log(i)))
            .collect();
        panic!("timed out waiting for {what}{logs}");
    }

    /// Waits until gateway `b`'s tables equal gateway `a`'s.
    pub fn wait_synced(&self, a: usize, b: usize) {
        self.wait(&format!("gateway {b} to equal gateway {a}"), |c| {
            c.digest(a) == c.digest(b)
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.gw.len() {
            self.kill9(i);
            let d = &mut self.gw[i].devhost;
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(d.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = d.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes a file only its owner may read (as sasyncd wants its config).
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The command line of `bin`, run in network namespace `ns` if given.
pub fn in_netns(ns: Option<&str>, bin: &Path) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// The children of process `pid` (`/proc/PID/task/*/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|w| w.parse::<u32>().ok()));
        }
    }
    out
}

/// Whether process `pid` is gone: no such process, or a zombie nobody
/// reaped yet (it has exited).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|st| st.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Waits until process `pid` is [`gone`].
pub fn wait_gone(pid: u32, what: &str) {
    wait_for(|| gone(pid), what);
}

/// How a command that ran to its end ended.
#[derive(Debug)]
pub struct Ran {
    /// Its exit status.
    pub status: std::process::ExitStatus,
    /// What it wrote to stderr.
    pub stderr: String,
}

/// Runs `cmd` to its end (at most [`WAIT`]: then it is killed and the
/// test fails), its stdout discarded.
pub fn run(cmd: &mut Command) -> Ran {
    let mut g = ChildGuard(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start a command"),
    );
    let mut err = g.0.stderr.take().expect("stderr pipe");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let until = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = g.0.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < until,
            "{cmd:?} did not exit within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever it left behind would hold the pipe open.
    drop(g);
    let stderr = reader.join().unwrap_or_default();
    Ran { status, stderr }
}

/// Kills its process group (and reaps the process) when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // The whole group: also what the process forked (a process group
        // id is not reused while any member lives).
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

/// A JSON object's values as text by dotted key: scalars as their JSON
/// text (strings unquoted, `null` as `none`), nested objects as
/// `key.inner`; arrays are left out.
pub fn flatten(v: &serde_json::Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        use serde_json::Value;
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, out);
                }
            }
            Value::Array(_) => {}
            Value::Null => {
                out.insert(prefix.to_string(), "none".to_string());
            }
            Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    if v.is_object() {
        walk("", v, &mut out);
    }
    out
}

/// One raw request line on a daemon's control socket: the reply's bytes,
/// framing and all, as the daemon wrote them.
pub fn control(path: &Path, request: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{request}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let until = Instant::now() + WAIT;
    while Instant::now() < until {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}
