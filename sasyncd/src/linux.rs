//! The daemon's kernel traits on a Linux gateway whose failover is
//! keepalived's VRRP, over `sasyncd-linux`: the network process's role
//! watch ([`LinuxLinkWatch`]: the virtual address on an interface, through
//! rtnetlink) and the privileged process's [`LinuxHost`] (XFRM dumps,
//! demotion through keepalived's `track_file`, the role read again).
//!
//! Chosen by start-up on Linux without `--dev-host` (`daemon::backend`),
//! with the network process's XFRM socket ([`LinuxXfrm`]) and the node of
//! the XFRM dialect; two daemons are tested in the real-kernel guest
//! (`tests/linux_guest.rs`), the watch and track file against a real
//! keepalived (`tests/keepalived.rs`).
//!
//! IKE active/passive: nothing to tell on Linux. strongSwan's charon has
//! no passive mode (isakmpd's `M passive`, iked's `CTL_PASSIVE`); what a
//! backup must not do (hold connections whose trap policies would collide
//! with the ones sasyncd copies in, initiate from an address it lacks) is
//! done by keepalived's `notify_master`/`notify_backup` scripts starting
//! and stopping charon (or `swanctl --load-all` / `--terminate`), at the
//! very moment VRRP moves the address, which sasyncd only learns after.
//! [`Host::ike`] therefore succeeds without doing anything, and says so
//! once in the log; README ("Running on Linux") shows the scripts.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use sasyncd_core::config::Config;
use sasyncd_core::node::Table;
use sasyncd_linux::addr::{self, AddrWatch, Presence};
use sasyncd_linux::nl::NLM_F_ACK;
use sasyncd_linux::socket::XfrmSocket;
use sasyncd_linux::trackfile::TrackFile;
use sasyncd_linux::xfrm;

use nix::errno::Errno;
use sasyncd_core::platform::PfkeyWrite;
use zeroize::Zeroize;

use crate::kernel::{Framing, Host, LinkWatch, PfkeySocket};
use crate::secret::SecretBytes;

/// The network process's kernel socket on Linux: one XFRM netlink socket
/// that writes the node's requests and, while the node is master, watches
/// the SA and policy groups. One socket for both, so that the kernel's
/// copy of our own write names this socket's port (the node's writer id)
/// and its acknowledgement arrives on the same descriptor the loop polls.
///
/// Every netlink message read is one input (a datagram can carry several).
/// A watch that fell behind (`ENOBUFS`: the kernel dropped events) is
/// reported by [`take_lost`](PfkeySocket::take_lost): a slave may now miss
/// changes, as after a PF_KEY overflow.
#[derive(Debug)]
pub struct LinuxXfrm {
    sock: XfrmSocket,
    /// Requests are copied here to set their header (they hold keys).
    scratch: Vec<u8>,
    watching: bool,
    lost: bool,
}

/// The groups a master watches: adds, updates, deletes and flushes of
/// states and policies, and states' expiries (a hard expiry deletes).
pub const WATCH_GROUPS: u32 =
    xfrm::group::SA | xfrm::group::POLICY | xfrm::group::EXPIRE | xfrm::group::AEVENTS;

impl LinuxXfrm {
    /// Opens the socket (root: `CAP_NET_ADMIN`, which the network process
    /// keeps, see `sys::drop_privileges_keeping_net_admin`). Fails with
    /// `EPROTONOSUPPORT` on a kernel without XFRM netlink (`xfrm_user`).
    pub fn open() -> io::Result<LinuxXfrm> {
        Ok(LinuxXfrm {
            sock: XfrmSocket::open(0)?,
            scratch: Vec::new(),
            watching: false,
            lost: false,
        })
    }

    /// Sends one write, without asking for an acknowledgement of any of
    /// its messages (a slave's copy of an update carries the add first,
    /// the dialect's `add_first`).
    fn send(&mut self, msg: &[u8]) -> PfkeyWrite {
        self.scratch.zeroize();
        self.scratch.clear();
        self.scratch.extend_from_slice(msg);
        // No acknowledgement of success: the kernel answers a refusal
        // whatever the flag, and a slave applying a snapshot of 10 000
        // SAs would otherwise get 10 000 answers that say nothing and
        // overrun the socket's buffer (seen in the guest).
        let mut at = 0;
        while let Some(h) = self.scratch.get_mut(at..at + 8) {
            let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let flags = u16::from_ne_bytes([h[6], h[7]]) & !NLM_F_ACK;
            h[6..8].copy_from_slice(&flags.to_ne_bytes());
            if len < 16 {
                break;
            }
            at += (len + 3) & !3;
        }
        let r = self.sock.send_request(&mut self.scratch);
        self.scratch.zeroize();
        match r {
            Ok(()) => PfkeyWrite::Written,
            Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) => PfkeyWrite::WouldBlock,
            Err(e) => PfkeyWrite::Failed(e as u32),
        }
    }

    /// Over a socket opened elsewhere (a test's pair standing for the
    /// kernel, see `XfrmSocket::from_fd`).
    pub fn from_socket(sock: XfrmSocket) -> LinuxXfrm {
        LinuxXfrm {
            sock,
            scratch: Vec::new(),
            watching: false,
            lost: false,
        }
    }
}

impl AsFd for LinuxXfrm {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl PfkeySocket for LinuxXfrm {
    fn read_messages(&mut self, out: &mut Vec<SecretBytes>) -> io::Result<()> {
        let r = self
            .sock
            .read_ready(|m| out.push(SecretBytes::new(m.bytes().to_vec())));
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                if self.watching {
                    log::warn!(
                        "XFRM watch: the kernel dropped change events (receive buffer full)"
                    );
                    self.lost = true;
                } else {
                    log::warn!(
                        "XFRM socket: the kernel dropped its answers to our requests (receive buffer full); refusals may go unseen"
                    );
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn write_message(&mut self, msg: &[u8]) -> PfkeyWrite {
        self.send(msg)
    }

    fn wants_write(&self) -> bool {
        false
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn set_promisc(&mut self, on: bool, _seq: u32, _pid: u32) {
        if on == self.watching {
            return;
        }
        match self.sock.set_groups(WATCH_GROUPS, on) {
            Ok(()) => {
                self.watching = on;
                log::debug!("XFRM watch {}", if on { "on" } else { "off" });
            }
            Err(e) => log::error!(
                "cannot switch the XFRM watch {}: {e}",
                if on { "on" } else { "off" }
            ),
        }
    }

    fn writer_id(&self, _pid: u32) -> u32 {
        self.sock.port()
    }

    fn take_lost(&mut self) -> bool {
        std::mem::take(&mut self.lost)
    }

    fn framing(&self) -> Framing {
        Framing::Netlink
    }
}

/// The role, from the virtual address on the tracked interface.
#[derive(Debug)]
pub struct LinuxLinkWatch {
    watch: AddrWatch,
    /// `false` once a reload locked the role: events are then ignored.
    tracking: bool,
}

impl LinuxLinkWatch {
    /// Watches `addr` on `interface` (no privilege needed; open it before
    /// confinement all the same, as the routing socket on OpenBSD).
    pub fn open(interface: &str, addr: IpAddr) -> io::Result<LinuxLinkWatch> {
        Ok(LinuxLinkWatch {
            watch: AddrWatch::open(interface, addr)?,
            tracking: true,
        })
    }
}

impl AsFd for LinuxLinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.watch.as_fd()
    }
}

impl LinkWatch for LinuxLinkWatch {
    fn read_states(&mut self) -> io::Result<Vec<u8>> {
        let got = self.watch.read()?;
        if !self.tracking {
            return Ok(Vec::new());
        }
        Ok(got.into_iter().map(Presence::link_state).collect())
    }

    fn set_interface(&mut self, name: Option<&str>) {
        match name {
            Some(n) => {
                let addr = self.watch.target().1;
                self.watch.set_target(n, addr);
                self.tracking = true;
            }
            None => self.tracking = false,
        }
    }

    fn take_recheck(&mut self) -> bool {
        self.watch.take_recheck() && self.tracking
    }
}

/// What the privileged process does on Linux.
#[derive(Debug)]
pub struct LinuxHost {
    /// The interface and virtual address tracked; `None` when the role is
    /// locked.
    track: Option<(String, IpAddr)>,
    demote: Option<TrackFile>,
    xfrm: Option<XfrmSocket>,
    ike_told: bool,
}

/// Why a configuration cannot run on Linux.
fn unfit(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

fn track_of(cfg: &Config) -> io::Result<Option<(String, IpAddr)>> {
    if cfg.locked.is_some() {
        return Ok(None);
    }
    match (&cfg.interface, cfg.address) {
        (Some(i), Some(a)) => Ok(Some((i.to_string(), a))),
        (Some(_), None) => Err(unfit(
            "on Linux the role follows keepalived's virtual address: write \"interface NAME address ADDR\"",
        )),
        (None, _) => Err(unfit("no interface to track")),
    }
}

impl LinuxHost {
    /// The host for `cfg`: the tracked address, the track file (checked
    /// and read now: a value left there is reported). The XFRM socket for
    /// dumps is opened by [`open_xfrm`](Self::open_xfrm).
    pub fn open(cfg: &Config) -> io::Result<LinuxHost> {
        let track = track_of(cfg)?;
        let demote = match &cfg.demote_file {
            Some(p) => {
                let t = TrackFile::open(Path::new(p.as_str()))?;
                if t.value() != 0 {
                    log::info!(
                        "demote file {} holds {} from before start: released with our own demotion once in sync",
                        p,
                        t.value()
                    );
                }
                Some(t)
            }
            None => None,
        };
        Ok(LinuxHost {
            track,
            demote,
            xfrm: None,
            ike_told: false,
        })
    }

    /// Opens the XFRM socket the dumps are read from (root).
    pub fn open_xfrm(&mut self) -> io::Result<()> {
        self.xfrm = Some(XfrmSocket::open(0)?);
        Ok(())
    }

    /// The tracked interface and address, if the role is not locked.
    pub fn track(&self) -> Option<(&str, IpAddr)> {
        self.track.as_ref().map(|(i, a)| (i.as_str(), *a))
    }
}

impl Host for LinuxHost {
    /// The XFRM dialect's table: every record of a `GETSA` (SADB) or
    /// `GETPOLICY` (SPD) dump, one whole netlink message after another.
    fn dump(&mut self, table: Table) -> io::Result<SecretBytes> {
        let sock = self
            .xfrm
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no XFRM socket"))?;
        let kind = match table {
            Table::Sadb => xfrm::msg::GETSA,
            Table::Spd => xfrm::msg::GETPOLICY,
        };
        let mut out = SecretBytes::new(Vec::new());
        sock.dump(kind, |m| {
            // Grown by copying and wiping the old buffer: records hold keys.
            let v = out.as_mut_vec();
            crate::secret::reserve_wiping(v, m.bytes().len());
            v.extend_from_slice(m.bytes());
        })
        .map_err(io::Error::other)?;
        Ok(out)
    }

    fn demote_counter(&mut self) -> io::Result<i32> {
        self.demote
            .as_ref()
            .map(TrackFile::value)
            .ok_or_else(no_demote_file)
    }

    fn demote(&mut self, delta: i32) -> io::Result<()> {
        let t = self.demote.as_mut().ok_or_else(no_demote_file)?;
        t.add(delta)
    }

    fn ike(&mut self, active: bool) -> io::Result<()> {
        if !self.ike_told {
            self.ike_told = true;
            log::info!(
                "IKE daemon not told to go {}: on Linux keepalived's notify scripts start and stop it",
                if active { "active" } else { "passive" }
            );
        }
        Ok(())
    }

    fn link_state(&mut self) -> io::Result<u8> {
        let Some((i, a)) = &self.track else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no address is tracked (mode master|slave)",
            ));
        };
        addr::current(i, *a).map(Presence::link_state)
    }

    fn framing(&self) -> Framing {
        Framing::Netlink
    }

    fn reconfigure(&mut self, cfg: &Config) {
        match track_of(cfg) {
            Ok(t) => self.track = t,
            Err(e) => log::warn!("tracked address stays as it was: {e}"),
        }
        let now = cfg.demote_file.as_deref();
        let was = self.demote.as_ref().map(|t| t.path());
        if now.map(Path::new) != was {
            log::warn!("demote file stays as it was until restart");
        }
    }
}

/// Confines the network process once its sockets are open and its
/// privileges dropped: the seccomp filter of `sasyncd_linux::confine`
/// (no exec, no file opens, no ptrace, mounts, namespaces or kernel code),
/// the counterpart of its pledge on OpenBSD.
pub fn confine_net() -> Result<(), String> {
    sasyncd_linux::confine::confine_net().map_err(|e| format!("seccomp: {e}"))?;
    log::debug!("network process confined (seccomp)");
    Ok(())
}

fn no_demote_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "no demote file is configured (demote file PATH)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Box<Config> {
        Box::new(Config::parse(format!("{text}\nsharedkey sasyncd-test-key\n").as_bytes()).unwrap())
    }

    #[test]
    fn a_configuration_must_name_the_virtual_address() {
        let e = LinuxHost::open(&cfg("interface eth0")).unwrap_err();
        assert!(e.to_string().contains("interface NAME address ADDR"), "{e}");
        let h = LinuxHost::open(&cfg("interface lo address 127.0.0.1")).unwrap();
        assert_eq!(h.track(), Some(("lo", "127.0.0.1".parse().unwrap())));
        let mut h = LinuxHost::open(&cfg("mode master")).unwrap();
        assert_eq!(h.track(), None);
        assert_eq!(h.link_state().unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(
            h.demote_counter().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(h.ike(true).is_ok());
    }

    #[test]
    fn the_role_is_read_from_the_address() {
        let mut h = LinuxHost::open(&cfg("interface lo address 127.0.0.1")).unwrap();
        assert_eq!(h.link_state().unwrap(), 4);
        h.reconfigure(&cfg("interface lo address 192.0.2.77"));
        assert_eq!(h.link_state().unwrap(), 2);
        h.reconfigure(&cfg("interface nosuchif0 address 192.0.2.77"));
        assert_eq!(h.link_state().unwrap(), 0);
    }

    /// A process holding what the network process holds (a role watch,
    /// a listening socket, a peer connection) keeps working once confined,
    /// and can no longer open a file or run a program.
    #[test]
    fn a_confined_process_keeps_its_sockets_and_loses_the_rest() {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let (status, out) = crate::testutil::in_child(|out| {
            let mut watch = LinuxLinkWatch::open("lo", "127.0.0.1".parse().unwrap()).unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let at = listener.local_addr().unwrap();
            confine_net().unwrap();
            let e = std::fs::File::open("/etc/hostname").unwrap_err();
            writeln!(out, "open: {:?}", e.raw_os_error()).unwrap();
            let e = std::fs::File::create("/tmp/sasyncd-confined").unwrap_err();
            writeln!(out, "create: {:?}", e.raw_os_error()).unwrap();
            let ran = std::process::Command::new("/bin/true").status();
            writeln!(out, "exec: {:?}", ran.map_err(|e| e.raw_os_error())).unwrap();
            // What the network process does goes on: new connections,
            // bytes both ways, the watch.
            let mut c = TcpStream::connect(at).unwrap();
            let (mut s, _) = listener.accept().unwrap();
            c.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            assert!(watch.read_states().is_ok());
            writeln!(out, "net: {}", String::from_utf8_lossy(&b)).unwrap();
        });
        assert_eq!(
            out, "open: Some(1)\ncreate: Some(1)\nexec: Err(Some(1))\nnet: ping\n",
            "{status:?}"
        );
        assert!(
            matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
            "{status:?}"
        );
    }

    #[test]
    fn a_locked_role_ignores_the_watch() {
        let mut w = LinuxLinkWatch::open("lo", "192.0.2.78".parse().unwrap()).unwrap();
        assert!(w.read_states().unwrap().is_empty());
        w.set_interface(Some("nosuchif0"));
        assert!(w.take_recheck(), "another interface is read again");
        w.set_interface(None);
        assert!(!w.take_recheck());
    }
}
