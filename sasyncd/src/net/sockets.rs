//! TCP sockets for peers: listeners for `listen on`, and nonblocking
//! outbound connects from our configured address (peers tell each other
//! apart by source address), with TCP_NODELAY.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, getsockopt, listen, setsockopt, socket, sockopt, AddressFamily, Backlog,
    SockFlag, SockType, SockaddrStorage,
};
use sasyncd_core::config::{Family, Listen, ListenOn};

fn family(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn stream_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    Ok(socket(
        family(addr),
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

/// A nonblocking listener on `addr`. An IPv6 listener takes IPv6 only, so
/// the IPv4 and IPv6 wildcards can both be bound to the same port.
pub fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let fd = stream_socket(&addr)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    listen(&fd, Backlog::new(64)?)?;
    Ok(TcpListener::from(fd))
}

/// The addresses `listen on` asks for: the literal, every address of the
/// interface (of the family asked for), or the IPv4 and IPv6 wildcards.
pub fn listen_addrs(listen: &Listen) -> io::Result<Vec<SocketAddr>> {
    let port = listen.port;
    let want = |ip: &IpAddr| match listen.family {
        Some(Family::Inet) => ip.is_ipv4(),
        Some(Family::Inet6) => ip.is_ipv6(),
        None => true,
    };
    let addrs: Vec<SocketAddr> = match &listen.on {
        ListenOn::Any => vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        ],
        ListenOn::Addr(ip) => vec![SocketAddr::new(*ip, port)],
        ListenOn::Interface(name) => {
            let mut v = Vec::new();
            for a in nix::ifaddrs::getifaddrs()? {
                if a.interface_name != name.as_str() {
                    continue;
                }
                let ip = a.address.as_ref().and_then(|s| {
                    s.as_sockaddr_in()
                        .map(|x| IpAddr::V4(x.ip()))
                        .or_else(|| s.as_sockaddr_in6().map(|x| IpAddr::V6(x.ip())))
                });
                // Link-local IPv6 needs a scope a peer cannot name.
                if let Some(ip) = ip.filter(|ip| want(ip) && !is_link_local(ip)) {
                    v.push(SocketAddr::new(ip, port));
                }
            }
            if v.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("interface {name} has no usable address"),
                ));
            }
            v
        }
    };
    Ok(addrs)
}

fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// Listeners for every address `listen on` names. The IPv6 wildcard is
/// skipped (with a note) on a host without IPv6, as long as IPv4 works.
pub fn listeners(listen: &Listen) -> io::Result<Vec<(SocketAddr, TcpListener)>> {
    let mut out = Vec::new();
    let wildcard = matches!(listen.on, ListenOn::Any);
    for addr in listen_addrs(listen)? {
        match listen_on(addr) {
            Ok(l) => out.push((addr, l)),
            Err(e) if wildcard && addr.is_ipv6() && e.raw_os_error().is_some() => {
                log::info!("not listening on {addr}: {e}");
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr}: {e}"),
                ))
            }
        }
    }
    Ok(out)
}

/// The address outbound connections come from: the one we listen on, if
/// `listen on` names one address (peers match us by it).
pub fn source_addr(listen: &Listen) -> Option<IpAddr> {
    match listen.on {
        ListenOn::Addr(ip) => Some(ip),
        _ => None,
    }
}

/// Starts a nonblocking connect to `to` from `from` (port chosen by the
/// kernel). The stream becomes writable when the connect ends; then
/// [`connect_result`] says how.
pub fn start_connect(to: SocketAddr, from: Option<IpAddr>) -> io::Result<TcpStream> {
    let fd = stream_socket(&to)?;
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    if let Some(ip) = from.filter(|ip| ip.is_ipv4() == to.is_ipv4()) {
        bind(
            fd.as_raw_fd(),
            &SockaddrStorage::from(SocketAddr::new(ip, 0)),
        )?;
    }
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(to)) {
        Ok(()) | Err(Errno::EINPROGRESS) | Err(Errno::EINTR) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}

/// How a nonblocking connect ended (call once the socket is writable).
pub fn connect_result(s: &TcpStream) -> io::Result<()> {
    match getsockopt(s, sockopt::SocketError)? {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// An accepted connection, made nonblocking and with TCP_NODELAY.
pub fn accepted(s: TcpStream) -> io::Result<TcpStream> {
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn connect_from_a_chosen_address_and_accept() {
        let l = listen_on("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = l.local_addr().unwrap();
        let from: IpAddr = "127.0.0.7".parse().unwrap();
        let mut c = start_connect(to, Some(from)).unwrap();
        let (s, peer) = loop {
            match l.accept() {
                Ok(x) => break x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(peer.ip(), from, "the peer sees our configured address");
        let mut s = accepted(s).unwrap();
        // The connect has ended once the socket is writable.
        let pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&c),
            nix::poll::PollFlags::POLLOUT,
        )];
        let mut pfd = pfd;
        nix::poll::poll(&mut pfd, 1000u16).unwrap();
        connect_result(&c).unwrap();
        c.write_all(b"hi").unwrap();
        let mut b = [0u8; 2];
        s.set_nonblocking(false).unwrap();
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi");
    }

    #[test]
    fn a_refused_connect_is_reported() {
        // A port nobody listens on.
        let l = listen_on("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = l.local_addr().unwrap();
        drop(l);
        let c = start_connect(to, None).unwrap();
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&c),
            nix::poll::PollFlags::POLLOUT,
        )];
        nix::poll::poll(&mut pfd, 1000u16).unwrap();
        let e = connect_result(&c).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn wildcards_of_both_families_share_a_port() {
        let v4 = listen_on("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = v4.local_addr().unwrap().port();
        if let Ok(v6) = listen_on(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)) {
            assert_eq!(v6.local_addr().unwrap().port(), port);
        }
    }
}
