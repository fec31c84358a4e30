//! Failover tracking on Linux against a real keepalived: two gateways as
//! network namespaces joined by a veth pair, each running keepalived's
//! VRRP for one virtual address. The daemon's role watch
//! (`LinuxLinkWatch`) must report MASTER where keepalived put the address
//! and follow it when it moves; a demotion written by the daemon's host
//! (`LinuxHost::demote`, keepalived's `track_file` with a negative weight)
//! must make keepalived hand the address to the other gateway, and the
//! release must bring it back.
//!
//! Needs root (namespaces, keepalived) and keepalived; skipped with a
//! message otherwise (a failure with `SASYNCD_TESTS_NO_SKIP=1`).
#![cfg(target_os = "linux")]

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use sasyncd::kernel::{Host, LinkWatch};
use sasyncd::linux::{LinuxHost, LinuxLinkWatch};
use sasyncd_core::config::Config;

fn skip(why: &str) {
    assert!(
        std::env::var_os("SASYNCD_TESTS_NO_SKIP").is_none(),
        "keepalived test skipped, but SASYNCD_TESTS_NO_SKIP is set: {why}"
    );
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED keepalived: {why}");
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        Netns(name)
    }

    /// Runs `f` on a thread inside the namespace (sockets opened there stay
    /// in it).
    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = fs::File::open(&path).unwrap();
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A keepalived, stopped on drop.
struct Keepalived {
    child: Child,
    log: PathBuf,
}

impl Keepalived {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Gateway {
    ns: Netns,
    ifname: String,
    dir: PathBuf,
}

impl Gateway {
    fn keepalived(&self, conf: &str) -> Keepalived {
        let conf_path = self.dir.join("keepalived.conf");
        fs::write(&conf_path, conf).unwrap();
        let log = self.dir.join("keepalived.log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns.0, "keepalived"])
            .args(["--dont-fork", "--log-console", "--log-detail", "--vrrp"])
            .arg("--use-file")
            .arg(&conf_path)
            .arg("--pid")
            .arg(self.dir.join("keepalived.pid"))
            .arg("--vrrp_pid")
            .arg(self.dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Keepalived { child, log }
    }
}

fn keepalived_conf(g: &Gateway, me: &str, peer: &str, prio: u8, vrid: u32, vip: IpAddr) -> String {
    let tag = std::process::id();
    format!(
        "global_defs {{\n  router_id sasyncd_{tag}\n}}\n\
         track_file sasyncd_{tag} {{\n  file \"{demote}\"\n  weight -100\n}}\n\
         vrrp_instance VI_{tag} {{\n  state BACKUP\n  interface {ifname}\n  virtual_router_id {vrid}\n  \
         priority {prio}\n  advert_int 1\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  \
         virtual_ipaddress {{\n    {vip}/32 dev {ifname}\n  }}\n  track_file {{\n    sasyncd_{tag}\n  }}\n}}\n",
        demote = g.dir.join("demote").display(),
        ifname = g.ifname,
    )
}

/// Waits until the watch's last report is `want` (a link-state byte).
fn wait_for(
    w: &mut LinuxLinkWatch,
    want: u8,
    within: Duration,
    what: &str,
    logs: &dyn Fn() -> String,
) {
    let end = Instant::now() + within;
    let mut last = None;
    while Instant::now() < end {
        let mut pfd = [nix::poll::PollFd::new(
            w.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16));
        if let Some(&s) = w.read_states().unwrap().last() {
            last = Some(s);
        }
        if last == Some(want) {
            return;
        }
    }
    panic!(
        "{what}: the watch reported {last:?}, not {want}\n{}",
        logs()
    );
}

fn config(g: &Gateway, vip: IpAddr) -> Box<Config> {
    let text = format!(
        "interface {} address {vip}\ndemote file \"{}\"\nsharedkey sasyncd-test-key\n",
        g.ifname,
        g.dir.join("demote").display()
    );
    Box::new(Config::parse(text.as_bytes()).unwrap())
}

#[test]
fn keepalived_moves_the_address_and_honours_our_demotion() {
    if !nix::unistd::geteuid().is_root() {
        return skip("needs root (network namespaces, keepalived)");
    }
    let found = Command::new("keepalived").arg("--version").output();
    if found.is_err() {
        return skip("keepalived is not installed (Debian package keepalived)");
    }
    let pid = std::process::id();
    let base = std::env::temp_dir().join(format!("sasyncd-keepalived-{pid}"));
    let _ = fs::remove_dir_all(&base);
    let gw = |tag: &str| {
        let dir = base.join(tag);
        fs::create_dir_all(&dir).unwrap();
        for d in [&base, &dir] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Gateway {
            ns: Netns::new(format!("sasyncd-ka{tag}-{pid}")),
            ifname: format!("kv{tag}{}", pid % 10_000_000),
            dir,
        }
    };
    let (a, b) = (gw("a"), gw("b"));
    run(&[
        "ip", "link", "add", &a.ifname, "netns", &a.ns.0, "type", "veth", "peer", "name",
        &b.ifname, "netns", &b.ns.0,
    ]);
    let net = 16 + pid % 200;
    let (addr_a, addr_b) = (format!("10.{net}.77.1"), format!("10.{net}.77.2"));
    let vip: IpAddr = format!("10.{net}.77.100").parse().unwrap();
    for (g, addr) in [(&a, &addr_a), (&b, &addr_b)] {
        run(&["ip", "-n", &g.ns.0, "link", "set", "lo", "up"]);
        run(&[
            "ip",
            "-n",
            &g.ns.0,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            &g.ifname,
        ]);
        run(&["ip", "-n", &g.ns.0, "link", "set", &g.ifname, "up"]);
    }

    // The daemon's side, opened in each gateway before keepalived runs.
    let mut host_a = a.ns.enter(|| LinuxHost::open(&config(&a, vip)).unwrap());
    let mut host_b = b.ns.enter(|| LinuxHost::open(&config(&b, vip)).unwrap());
    assert_eq!(host_a.demote_counter().unwrap(), 0, "no track file yet");
    // keepalived reads the file from the start: it must exist.
    host_a.demote(0).unwrap();
    host_b.demote(0).unwrap();
    assert_eq!(fs::read_to_string(a.dir.join("demote")).unwrap(), "0\n");
    let mut watch_a = a.ns.enter(|| LinuxLinkWatch::open(&a.ifname, vip).unwrap());
    let mut watch_b = b.ns.enter(|| LinuxLinkWatch::open(&b.ifname, vip).unwrap());
    assert_eq!(
        a.ns.enter(|| host_a.link_state().unwrap()),
        2,
        "BACKUP before keepalived"
    );

    let vrid = 1 + pid % 250;
    let ka_a = a.keepalived(&keepalived_conf(&a, &addr_a, &addr_b, 150, vrid, vip));
    let ka_b = b.keepalived(&keepalived_conf(&b, &addr_b, &addr_a, 100, vrid, vip));
    let logs = || {
        format!(
            "--- keepalived a:\n{}\n--- keepalived b:\n{}",
            ka_a.log(),
            ka_b.log()
        )
    };
    let wait = Duration::from_secs(30);

    // The higher priority wins: the address is on A, which the watch says.
    wait_for(&mut watch_a, 4, wait, "A becomes MASTER", &logs);
    assert_eq!(a.ns.enter(|| host_a.link_state().unwrap()), 4);
    assert_eq!(b.ns.enter(|| host_b.link_state().unwrap()), 2);

    // Our demotion (what the daemon raises until its initial sync):
    // keepalived lowers A below B, and B takes the address.
    host_a.demote(1).unwrap();
    assert_eq!(host_a.demote_counter().unwrap(), 1);
    wait_for(
        &mut watch_b,
        4,
        wait,
        "B takes over from the demoted A",
        &logs,
    );
    wait_for(&mut watch_a, 2, wait, "A gives the address up", &logs);
    assert!(
        ka_a.log().contains("Entering BACKUP STATE"),
        "keepalived A says it left MASTER:\n{}",
        logs()
    );

    // Released (the initial sync is done): A is preferred again.
    host_a.demote(-1).unwrap();
    assert_eq!(fs::read_to_string(a.dir.join("demote")).unwrap(), "0\n");
    wait_for(&mut watch_a, 4, wait, "A takes the address back", &logs);
    wait_for(&mut watch_b, 2, wait, "B gives it back", &logs);
    assert!(!watch_a.take_recheck() && !watch_b.take_recheck());

    drop((ka_a, ka_b));
    let _ = fs::remove_dir_all(&base);
}

/// Where the track file lives must be ours: a world-writable directory
/// is refused before keepalived could be fooled by a planted file.
#[test]
fn a_demote_file_in_a_shared_directory_is_refused() {
    let dir = std::env::temp_dir().join(format!("sasyncd-ka-shared-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let text = format!(
        "mode master\ndemote file \"{}\"\nsharedkey sasyncd-test-key\n",
        Path::new(&dir).join("demote").display()
    );
    let cfg = Config::parse(text.as_bytes()).unwrap();
    let e = LinuxHost::open(&cfg).unwrap_err();
    assert!(e.to_string().contains("writable by group or others"), "{e}");
    fs::remove_dir_all(&dir).unwrap();
}

/// The privileged process's dumps on Linux are the XFRM dialect's records:
/// a policy written with `ip xfrm` comes back as one `NEWPOLICY` record.
#[test]
fn the_host_dumps_xfrm_records() {
    if !nix::unistd::geteuid().is_root() {
        return skip("needs root (a network namespace, XFRM)");
    }
    let ns = Netns::new(format!("sasyncd-kadump-{}", std::process::id()));
    run(&[
        "ip",
        "-n",
        &ns.0,
        "xfrm",
        "policy",
        "add",
        "src",
        "10.1.0.0/24",
        "dst",
        "10.2.0.0/24",
        "dir",
        "out",
        "priority",
        "100",
        "tmpl",
        "src",
        "192.0.2.1",
        "dst",
        "192.0.2.2",
        "proto",
        "esp",
        "reqid",
        "7",
        "mode",
        "tunnel",
    ]);
    let cfg = Config::parse(b"mode master\nsharedkey sasyncd-test-key\n").unwrap();
    let (spd, sadb) = ns.enter(|| {
        let mut h = LinuxHost::open(&cfg).unwrap();
        h.open_xfrm().unwrap();
        (
            h.dump(sasyncd_core::node::Table::Spd).unwrap(),
            h.dump(sasyncd_core::node::Table::Sadb).unwrap(),
        )
    });
    let kinds: Vec<u16> = sasyncd_linux::nl::messages(&spd)
        .map(|m| m.unwrap().kind())
        .collect();
    assert_eq!(kinds, [sasyncd_linux::xfrm::msg::NEWPOLICY]);
    let m = sasyncd_linux::nl::Msg::new(&spd).unwrap();
    let p = sasyncd_linux::xfrm::PolicyView::from_new(&m).unwrap();
    assert_eq!((p.dir(), p.priority()), (1, 100));
    assert!(sadb.is_empty(), "no states in a fresh namespace");
}
