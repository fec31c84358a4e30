//! The role keepalived gives this node, read from the kernel: whether the
//! virtual address VRRP moves is on the tracked interface.
//!
//! keepalived has no carp interface whose link state says MASTER or
//! BACKUP; what it does on a transition is add or remove the virtual
//! addresses. The kernel announces both on rtnetlink (`RTM_NEWADDR`,
//! `RTM_DELADDR`, to the `RTMGRP_IPV4_IFADDR`/`RTMGRP_IPV6_IFADDR`
//! groups), whoever made them, so the address is the state, read the same
//! way whether keepalived, a notify script or an operator moved it. This
//! is the Linux counterpart of the routing socket's `RTM_IFINFO` for a
//! carp interface on OpenBSD, and reports the same link-state bytes
//! ([`Presence::link_state`]).
//!
//! The watch follows the interface by index and learns a new index from
//! `RTM_NEWLINK` (an interface deleted and created again, as a VLAN or a
//! bond can be); whenever it may have missed something (the index
//! changed, the socket overflowed: `ENOBUFS`) it asks for the state to be
//! read again ([`AddrWatch::take_recheck`], then [`current`]).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{bind, recv, send, MsgFlags, NetlinkAddr};

use crate::nl::{self, messages, Builder, Msg, NLM_F_DUMP, NLM_F_REQUEST};

/// `NETLINK_ROUTE`.
const NETLINK_ROUTE: i32 = 0;

/// rtnetlink message types (`RTM_*`).
pub mod rtm {
    /// An interface appeared or changed.
    pub const NEWLINK: u16 = 16;
    /// An interface disappeared.
    pub const DELLINK: u16 = 17;
    /// An address was added.
    pub const NEWADDR: u16 = 20;
    /// An address was removed.
    pub const DELADDR: u16 = 21;
    /// Dump the addresses.
    pub const GETADDR: u16 = 22;
}

/// Multicast groups (`RTMGRP_*`, the legacy bind(2) bits).
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// `sizeof(struct ifaddrmsg)`: family, prefix length, flags, scope, index.
const IFADDRMSG_LEN: usize = 8;
/// `sizeof(struct ifinfomsg)`: family, type, index, flags, change.
const IFINFOMSG_LEN: usize = 16;
/// `IFA_ADDRESS`: the address (the peer's on a point-to-point link).
const IFA_ADDRESS: u16 = 1;
/// `IFA_LOCAL`: the local address (set on point-to-point links).
const IFA_LOCAL: u16 = 2;
/// `IFLA_IFNAME`: the interface's name, NUL-terminated.
const IFLA_IFNAME: u16 = 3;

/// What the tracked address says about this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The interface does not exist (yet): nothing is known.
    NoInterface,
    /// The interface exists without the address: keepalived is BACKUP
    /// (or FAULT).
    Absent,
    /// The address is on the interface: keepalived is MASTER.
    Present,
}

impl Presence {
    /// The link-state byte a carp interface would report in the same
    /// role (`LINK_STATE_UNKNOWN` 0, `LINK_STATE_DOWN` 2, `LINK_STATE_UP`
    /// 4), which the core maps to INIT, SLAVE and MASTER.
    pub const fn link_state(self) -> u8 {
        match self {
            Presence::NoInterface => 0,
            Presence::Absent => 2,
            Presence::Present => 4,
        }
    }
}

fn route_socket(groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked and
    // owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
    Ok(fd)
}

/// The index of interface `name` (`None`: no such interface).
pub fn index_of(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// The interface index and address of an `RTM_NEWADDR`/`RTM_DELADDR`,
/// if it names `addr`.
fn addr_event(m: &Msg<'_>, addr: IpAddr) -> Option<u32> {
    let (fixed, attrs) = m.split(IFADDRMSG_LEN).ok()?;
    let family = fixed[0];
    let index = nl::u32_at(fixed, 4);
    let want: &[u8] = match addr {
        IpAddr::V4(a) if i32::from(family) == libc::AF_INET => &a.octets()[..],
        IpAddr::V6(a) if i32::from(family) == libc::AF_INET6 => &a.octets()[..],
        _ => return None,
    };
    attrs
        .flatten()
        .any(|a| matches!(a.kind, IFA_ADDRESS | IFA_LOCAL) && a.data == want)
        .then_some(index)
}

/// The index and name of an `RTM_NEWLINK`/`RTM_DELLINK`.
fn link_event<'a>(m: &Msg<'a>) -> Option<(u32, &'a [u8])> {
    let (fixed, attrs) = m.split(IFINFOMSG_LEN).ok()?;
    let index = nl::u32_at(fixed, 4);
    let name = attrs.find(IFLA_IFNAME)?.data;
    let name = name.split(|&b| b == 0).next().unwrap_or(name);
    Some((index, name))
}

/// Reads whether `addr` is on interface `ifname` now, from a dump of the
/// kernel's addresses (in the caller's network namespace).
pub fn current(ifname: &str, addr: IpAddr) -> io::Result<Presence> {
    let Some(index) = index_of(ifname) else {
        return Ok(Presence::NoInterface);
    };
    let fd = route_socket(0)?;
    let family = match addr {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    } as u8;
    let mut req = Builder::new(rtm::GETADDR, NLM_F_REQUEST | NLM_F_DUMP)
        .raw(&[family, 0, 0, 0, 0, 0, 0, 0])
        .finish();
    nl::set_seq_pid(&mut req, 1, 0);
    send(fd.as_raw_fd(), &req, MsgFlags::empty())?;
    let mut found = false;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                // Non-blocking: the kernel answers a dump at once, but
                // the answer's datagrams may still be on their way.
                let mut pfd = [nix::poll::PollFd::new(
                    fd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(5000u16))?;
                if pfd[0].revents().is_none_or(|r| r.is_empty()) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no answer to an address dump",
                    ));
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for m in messages(&buf[..n]) {
            let m = m.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            match m.kind() {
                nl::NLMSG_DONE => return Ok(presence(found)),
                nl::NLMSG_ERROR => {
                    let e = m.error().unwrap_or(libc::EIO);
                    return Err(io::Error::from_raw_os_error(e));
                }
                rtm::NEWADDR if addr_event(&m, addr) == Some(index) => found = true,
                _ => {}
            }
        }
    }
}

const fn presence(found: bool) -> Presence {
    if found {
        Presence::Present
    } else {
        Presence::Absent
    }
}

/// Watches an interface's addresses for one address: a non-blocking
/// rtnetlink socket joined to the address and link groups (no privilege
/// needed).
#[derive(Debug)]
pub struct AddrWatch {
    fd: OwnedFd,
    ifname: String,
    addr: IpAddr,
    index: Option<u32>,
    recheck: bool,
    buf: Vec<u8>,
}

impl AddrWatch {
    /// Opens the watch (in the caller's network namespace) for `addr` on
    /// `ifname`.
    pub fn open(ifname: &str, addr: IpAddr) -> io::Result<AddrWatch> {
        let groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
        Ok(AddrWatch {
            fd: route_socket(groups)?,
            ifname: ifname.to_string(),
            addr,
            index: index_of(ifname),
            recheck: false,
            buf: vec![0u8; 64 << 10],
        })
    }

    /// Tracks another interface or address (a reloaded configuration);
    /// the state must then be read again.
    pub fn set_target(&mut self, ifname: &str, addr: IpAddr) {
        if ifname != self.ifname || addr != self.addr {
            self.ifname = ifname.to_string();
            self.addr = addr;
            self.index = index_of(ifname);
            self.recheck = true;
        }
    }

    /// The tracked interface and address.
    pub fn target(&self) -> (&str, IpAddr) {
        (&self.ifname, self.addr)
    }

    /// Whether the state must be read again with [`current`]: the
    /// interface was created again, or events were lost. Asking clears it.
    pub fn take_recheck(&mut self) -> bool {
        std::mem::take(&mut self.recheck)
    }

    /// Reads every pending event; returns the presences they announce,
    /// oldest first.
    pub fn read(&mut self) -> io::Result<Vec<Presence>> {
        let mut out = Vec::new();
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(out),
                // The kernel dropped events: what we know may be stale.
                Err(Errno::ENOBUFS) => {
                    self.recheck = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Ok(out);
            }
            let buf = std::mem::take(&mut self.buf);
            for m in messages(&buf[..n]) {
                match m {
                    Ok(m) => self.event(&m, &mut out),
                    Err(e) => {
                        log::warn!("malformed rtnetlink message ignored: {e}");
                        break;
                    }
                }
            }
            self.buf = buf;
        }
    }

    fn event(&mut self, m: &Msg<'_>, out: &mut Vec<Presence>) {
        match m.kind() {
            rtm::NEWADDR | rtm::DELADDR
                if self.index.is_some() && addr_event(m, self.addr) == self.index =>
            {
                out.push(presence(m.kind() == rtm::NEWADDR));
            }
            rtm::NEWLINK => {
                let Some((index, name)) = link_event(m) else {
                    return;
                };
                if name == self.ifname.as_bytes() && self.index != Some(index) {
                    self.index = Some(index);
                    self.recheck = true;
                }
            }
            rtm::DELLINK => {
                let Some((index, _)) = link_event(m) else {
                    return;
                };
                if self.index == Some(index) {
                    self.index = None;
                    out.push(Presence::NoInterface);
                }
            }
            _ => {}
        }
    }
}

impl AsFd for AddrWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr_msg(kind: u16, family: u8, index: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut fixed = [0u8; IFADDRMSG_LEN];
        fixed[0] = family;
        fixed[1] = 24;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut b = Builder::new(kind, 0).raw(&fixed);
        for (k, d) in attrs {
            b = b.attr(*k, d);
        }
        b.finish()
    }

    fn link_msg(kind: u16, index: u32, name: &str) -> Vec<u8> {
        let mut fixed = [0u8; IFINFOMSG_LEN];
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        Builder::new(kind, 0)
            .raw(&fixed)
            .attr(IFLA_IFNAME, &n)
            .finish()
    }

    const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn watch(index: Option<u32>) -> AddrWatch {
        let mut w = AddrWatch::open("lo", VIP).unwrap();
        w.ifname = "veth-test".into();
        w.index = index;
        w
    }

    fn feed(w: &mut AddrWatch, msg: &[u8]) -> Vec<Presence> {
        let mut out = Vec::new();
        w.event(&Msg::new(msg).unwrap(), &mut out);
        out
    }

    #[test]
    fn the_address_on_the_interface_is_the_state() {
        let mut w = watch(Some(7));
        let v4 = libc::AF_INET as u8;
        let vip = [192u8, 0, 2, 1];
        let other = [192u8, 0, 2, 9];
        assert_eq!(
            feed(
                &mut w,
                &addr_msg(
                    rtm::NEWADDR,
                    v4,
                    7,
                    &[(IFA_LOCAL, &vip), (IFA_ADDRESS, &vip)]
                )
            ),
            [Presence::Present]
        );
        assert_eq!(
            feed(
                &mut w,
                &addr_msg(rtm::DELADDR, v4, 7, &[(IFA_ADDRESS, &vip)])
            ),
            [Presence::Absent]
        );
        // Another address, another interface, another family: not ours.
        assert!(feed(
            &mut w,
            &addr_msg(rtm::NEWADDR, v4, 7, &[(IFA_ADDRESS, &other)])
        )
        .is_empty());
        assert!(feed(
            &mut w,
            &addr_msg(rtm::NEWADDR, v4, 8, &[(IFA_ADDRESS, &vip)])
        )
        .is_empty());
        let v6 = libc::AF_INET6 as u8;
        assert!(feed(
            &mut w,
            &addr_msg(rtm::NEWADDR, v6, 7, &[(IFA_ADDRESS, &vip)])
        )
        .is_empty());
        // A truncated message is ignored, not a panic.
        let mut short = addr_msg(rtm::NEWADDR, v4, 7, &[]);
        short.truncate(nl::HDR_LEN + 4);
        let len = short.len() as u32;
        short[0..4].copy_from_slice(&len.to_ne_bytes());
        assert!(feed(&mut w, &short).is_empty());
        assert!(!w.take_recheck());
    }

    #[test]
    fn an_interface_created_again_is_followed_and_rechecked() {
        let mut w = watch(Some(7));
        assert_eq!(
            feed(&mut w, &link_msg(rtm::DELLINK, 7, "veth-test")),
            [Presence::NoInterface]
        );
        let vip = [192u8, 0, 2, 1];
        let v4 = libc::AF_INET as u8;
        assert!(feed(
            &mut w,
            &addr_msg(rtm::NEWADDR, v4, 7, &[(IFA_ADDRESS, &vip)])
        )
        .is_empty());
        assert!(feed(&mut w, &link_msg(rtm::NEWLINK, 12, "veth-test")).is_empty());
        assert!(w.take_recheck());
        assert!(!w.take_recheck(), "asking clears it");
        assert_eq!(
            feed(
                &mut w,
                &addr_msg(rtm::NEWADDR, v4, 12, &[(IFA_ADDRESS, &vip)])
            ),
            [Presence::Present]
        );
        // Another interface's changes, or ours unchanged: nothing.
        assert!(feed(&mut w, &link_msg(rtm::NEWLINK, 3, "eth0")).is_empty());
        assert!(feed(&mut w, &link_msg(rtm::NEWLINK, 12, "veth-test")).is_empty());
        assert!(!w.take_recheck());
        w.set_target("veth-test", "2001:db8::1".parse().unwrap());
        assert!(w.take_recheck());
    }

    #[test]
    fn the_loopback_address_is_present_on_lo() {
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        assert_eq!(current("lo", lo).unwrap(), Presence::Present);
        assert_eq!(current("lo", VIP).unwrap(), Presence::Absent);
        assert_eq!(current("no-such-if0", lo).unwrap(), Presence::NoInterface);
        assert_eq!(
            [Presence::NoInterface, Presence::Absent, Presence::Present].map(Presence::link_state),
            [0, 2, 4]
        );
    }
}
