//! BSD sockaddrs inside PF_KEY address extensions (reference §13.6).
//!
//! Each starts with a length byte and a family byte; port and address are
//! in network order. Only the two families IPsec uses are understood.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::consts::{AF_INET, AF_INET6, SOCKADDR_IN6_LEN, SOCKADDR_IN_LEN};
use super::PfkeyError;

/// An IPv4 or IPv6 socket address from an address extension.
///
/// The IPv6 scope id and flow info are not kept: the kernel's SA and flow
/// identity do not depend on them and peers are configured without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockAddr {
    /// The address.
    pub ip: IpAddr,
    /// The port (0 when unused).
    pub port: u16,
}

impl SockAddr {
    /// Parses the sockaddr at the start of `space` (the bytes after the
    /// 8-byte `sadb_address` header, padding included).
    ///
    /// `sa_len` must be exactly the size of the family's structure and must
    /// fit in `space`; the kernel refuses anything else.
    pub fn parse(space: &[u8]) -> Result<SockAddr, PfkeyError> {
        let (&sa_len, &family) = match (space.first(), space.get(1)) {
            (Some(l), Some(f)) => (l, f),
            _ => return Err(PfkeyError::BadSockaddr),
        };
        let want = match family {
            AF_INET => SOCKADDR_IN_LEN,
            AF_INET6 => SOCKADDR_IN6_LEN,
            other => return Err(PfkeyError::UnknownFamily(other)),
        };
        if sa_len != want {
            return Err(PfkeyError::BadSockaddr);
        }
        let sa = space
            .get(..usize::from(sa_len))
            .ok_or(PfkeyError::BadSockaddr)?;
        let port = u16::from_be_bytes([sa[2], sa[3]]);
        let ip = if family == AF_INET {
            let mut a = [0u8; 4];
            a.copy_from_slice(&sa[4..8]);
            IpAddr::V4(Ipv4Addr::from(a))
        } else {
            let mut a = [0u8; 16];
            a.copy_from_slice(&sa[8..24]);
            IpAddr::V6(Ipv6Addr::from(a))
        };
        Ok(SockAddr { ip, port })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::sockaddr_bytes;
    use super::*;

    #[test]
    fn inet_and_inet6() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let b = sockaddr_bytes(v4, 4500);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..4], &[16, 2, 0x11, 0x94]);
        assert_eq!(SockAddr::parse(&b), Ok(SockAddr { ip: v4, port: 4500 }));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let b = sockaddr_bytes(v6, 0);
        assert_eq!(b.len(), 28);
        assert_eq!(SockAddr::parse(&b), Ok(SockAddr { ip: v6, port: 0 }));
    }

    #[test]
    fn bad_sa_len() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut b = sockaddr_bytes(v4, 0);
        for bad in [0u8, 2, 15, 17, 255] {
            b[0] = bad;
            assert_eq!(SockAddr::parse(&b), Err(PfkeyError::BadSockaddr), "{bad}");
        }
        let b = sockaddr_bytes(v4, 0);
        assert_eq!(SockAddr::parse(&b[..15]), Err(PfkeyError::BadSockaddr));
        let v6: IpAddr = "::1".parse().unwrap();
        let b = sockaddr_bytes(v6, 0);
        assert_eq!(SockAddr::parse(&b[..27]), Err(PfkeyError::BadSockaddr));
        let mut b6 = b.clone();
        b6[0] = 16;
        assert_eq!(SockAddr::parse(&b6), Err(PfkeyError::BadSockaddr));
        assert_eq!(SockAddr::parse(&[]), Err(PfkeyError::BadSockaddr));
        assert_eq!(SockAddr::parse(&[16]), Err(PfkeyError::BadSockaddr));
    }

    #[test]
    fn unknown_family() {
        // Linux's AF_INET6 (10) is not OpenBSD's.
        let mut b = sockaddr_bytes("::1".parse().unwrap(), 0);
        b[1] = 10;
        assert_eq!(SockAddr::parse(&b), Err(PfkeyError::UnknownFamily(10)));
    }
}
