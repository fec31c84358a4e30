//! What the `libc` crate lacks for OpenBSD: the structures and numbers the
//! daemon exchanges with the kernel, declared once, with a compile-time
//! check of every size and offset the code relies on.
//!
//! Layouts are those of LP64 OpenBSD (amd64, arm64), taken from the header
//! revisions named on each item (numbers checked against the project's
//! reference, `openbsd-sasyncd.md` §13). The byte-level code of this crate
//! reads messages at the offsets these declarations give, so a layout
//! mistake fails the build rather than misreading the kernel. Where a C
//! union is involved, only the member the daemon uses is declared, padded
//! to the union's size, so that no Rust union (and no `unsafe` read) is
//! needed.

use core::ffi::c_int;
use core::mem::{align_of, offset_of, size_of};

use crate::ioctl::{ioc, IOC_IN, IOC_INOUT};

#[cfg(all(target_os = "openbsd", not(target_pointer_width = "64")))]
compile_error!("the OpenBSD layouts in platform-openbsd are declared and checked for LP64 only");

// ----- sys/sys/socket.h 1.108, sys/sys/sysctl.h ---------------------------

/// `CTL_NET`: the first sysctl level of network MIBs (`sys/sys/sysctl.h`).
pub const CTL_NET: c_int = 4;
/// `PF_KEY` (= `AF_KEY`) (`sys/sys/socket.h` 1.108).
pub const PF_KEY: c_int = 30;
/// `PF_ROUTE` (= `AF_ROUTE`) (`sys/sys/socket.h` 1.108).
pub const AF_ROUTE: c_int = 17;
/// `SOCK_RAW` (`sys/sys/socket.h` 1.108).
pub const SOCK_RAW: c_int = 3;
/// `NET_KEY_SADB_DUMP`: `net.key.sadb_dump` (`sys/sys/socket.h` 1.108).
pub const NET_KEY_SADB_DUMP: c_int = 1;
/// `NET_KEY_SPD_DUMP`: `net.key.spd_dump` (`sys/sys/socket.h` 1.108).
pub const NET_KEY_SPD_DUMP: c_int = 2;

// ----- sys/net/pfkeyv2.h 1.95 ---------------------------------------------

/// `PF_KEY_V2`: the socket protocol, the message version and a MIB level
/// (`sys/net/pfkeyv2.h` 1.95).
pub const PF_KEY_V2: c_int = 2;

/// `struct sadb_msg`: the header of every PF_KEY message
/// (`sys/net/pfkeyv2.h` 1.95).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SadbMsg {
    /// `PF_KEY_V2`.
    pub sadb_msg_version: u8,
    /// `SADB_*` message type.
    pub sadb_msg_type: u8,
    /// Set by the kernel in a failed reply.
    pub sadb_msg_errno: u8,
    /// `SADB_SATYPE_*`.
    pub sadb_msg_satype: u8,
    /// Whole message length in 8-byte units.
    pub sadb_msg_len: u16,
    /// Must be 0.
    pub sadb_msg_reserved: u16,
    /// Sequence number.
    pub sadb_msg_seq: u32,
    /// The writer's pid.
    pub sadb_msg_pid: u32,
}

/// `struct sadb_ext`: the header of every extension
/// (`sys/net/pfkeyv2.h` 1.95).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SadbExt {
    /// Extension length in 8-byte units.
    pub sadb_ext_len: u16,
    /// `SADB_EXT_*`.
    pub sadb_ext_type: u16,
}

/// `struct sadb_sa` (`sys/net/pfkeyv2.h` 1.95).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SadbSa {
    /// Length in 8-byte units (2).
    pub sadb_sa_len: u16,
    /// `SADB_EXT_SA`.
    pub sadb_sa_exttype: u16,
    /// SPI, network byte order.
    pub sadb_sa_spi: u32,
    /// Replay window.
    pub sadb_sa_replay: u8,
    /// `SADB_SASTATE_*`.
    pub sadb_sa_state: u8,
    /// Authentication algorithm.
    pub sadb_sa_auth: u8,
    /// Encryption algorithm.
    pub sadb_sa_encrypt: u8,
    /// `SADB_SAFLAGS_*`.
    pub sadb_sa_flags: u32,
}

/// `struct sadb_address`, followed by a sockaddr padded to 8 bytes
/// (`sys/net/pfkeyv2.h` 1.95).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SadbAddress {
    /// Length in 8-byte units, sockaddr included.
    pub sadb_address_len: u16,
    /// `SADB_EXT_ADDRESS_*` or a flow address type.
    pub sadb_address_exttype: u16,
    /// Must be 0.
    pub sadb_address_reserved: u32,
}

/// `struct sadb_key`, followed by the key bits padded to 8 bytes
/// (`sys/net/pfkeyv2.h` 1.95).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SadbKey {
    /// Length in 8-byte units, key included.
    pub sadb_key_len: u16,
    /// `SADB_EXT_KEY_AUTH` or `SADB_EXT_KEY_ENCRYPT`.
    pub sadb_key_exttype: u16,
    /// Key length in bits.
    pub sadb_key_bits: u16,
    /// Must be 0.
    pub sadb_key_reserved: u16,
}

const _: () = {
    assert!(size_of::<SadbMsg>() == 16);
    assert!(offset_of!(SadbMsg, sadb_msg_type) == 1);
    assert!(offset_of!(SadbMsg, sadb_msg_errno) == 2);
    assert!(offset_of!(SadbMsg, sadb_msg_len) == 4);
    assert!(offset_of!(SadbMsg, sadb_msg_seq) == 8);
    assert!(offset_of!(SadbMsg, sadb_msg_pid) == 12);
    assert!(size_of::<SadbMsg>() == sasyncd_core::pfkey::consts::HDR_LEN);
    assert!(size_of::<SadbExt>() == 4);
    assert!(size_of::<SadbExt>() == sasyncd_core::pfkey::consts::EXT_HDR_LEN);
    assert!(size_of::<SadbSa>() == 16);
    assert!(offset_of!(SadbSa, sadb_sa_spi) == 4);
    assert!(offset_of!(SadbSa, sadb_sa_state) == 9);
    assert!(offset_of!(SadbSa, sadb_sa_flags) == 12);
    assert!(size_of::<SadbAddress>() == 8);
    assert!(size_of::<SadbKey>() == 8);
    assert!(offset_of!(SadbKey, sadb_key_bits) == 4);
    assert!(PF_KEY_V2 as u8 == sasyncd_core::pfkey::consts::PF_KEY_V2);
};

// ----- sys/net/route.h 1.218 ----------------------------------------------

/// `RTM_VERSION` (`sys/net/route.h` 1.218).
pub const RTM_VERSION: u8 = 5;
/// `RTM_IFINFO`: an interface's state changed (`sys/net/route.h` 1.218).
pub const RTM_IFINFO: u8 = 0x0e;
/// `RTM_IFANNOUNCE`: an interface arrived or departed
/// (`sys/net/route.h` 1.218).
pub const RTM_IFANNOUNCE: u8 = 0x0f;
/// `RTM_DESYNC`: the socket's buffer overflowed, messages were lost
/// (`sys/net/route.h` 1.218).
pub const RTM_DESYNC: u8 = 0x10;
/// `RTM_MAXSIZE`: the largest routing message (`sys/net/route.h` 1.218).
pub const RTM_MAXSIZE: usize = 2048;
/// `ROUTE_MSGFILTER`: socket option (level `AF_ROUTE`) taking a `u32`
/// mask of `1 << RTM_*` (`sys/net/route.h` 1.218).
pub const ROUTE_MSGFILTER: c_int = 1;

/// `struct rt_metrics` (`sys/net/route.h` 1.218).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtMetrics {
    /// Packets sent.
    pub rmx_pksent: u64,
    /// Expiry time.
    pub rmx_expire: i64,
    /// Locked metrics.
    pub rmx_locks: u32,
    /// MTU.
    pub rmx_mtu: u32,
    /// Refcount.
    pub rmx_refcnt: u32,
    /// Hop count.
    pub rmx_hopcount: u32,
    /// Receive pipe.
    pub rmx_recvpipe: u32,
    /// Send pipe.
    pub rmx_sendpipe: u32,
    /// Slow-start threshold.
    pub rmx_ssthresh: u32,
    /// Round-trip time.
    pub rmx_rtt: u32,
    /// Round-trip time variance.
    pub rmx_rttvar: u32,
    /// Padding.
    pub rmx_pad: u32,
}

/// `struct rt_msghdr`: the header every routing message starts with
/// (`sys/net/route.h` 1.218). Only `msglen`, `version` and `type` are read
/// from a message of unknown type.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtMsghdr {
    /// Length of the whole message.
    pub rtm_msglen: u16,
    /// `RTM_VERSION`.
    pub rtm_version: u8,
    /// `RTM_*`.
    pub rtm_type: u8,
    /// Length of the header.
    pub rtm_hdrlen: u16,
    /// Interface index.
    pub rtm_index: u16,
    /// Routing table.
    pub rtm_tableid: u16,
    /// Route priority.
    pub rtm_priority: u8,
    /// MPLS flags.
    pub rtm_mpls: u8,
    /// Which sockaddrs follow.
    pub rtm_addrs: i32,
    /// Flags.
    pub rtm_flags: i32,
    /// Which flags are meant.
    pub rtm_fmask: i32,
    /// Sender's pid.
    pub rtm_pid: i32,
    /// Sequence number.
    pub rtm_seq: i32,
    /// Why it failed.
    pub rtm_errno: i32,
    /// Which metrics are set.
    pub rtm_inits: u32,
    /// The metrics.
    pub rtm_rmx: RtMetrics,
}

/// `struct if_data` (`sys/net/if.h` 1.221). Declared down to the link
/// state, the only field read; the rest is kept as bytes of the right
/// size and alignment.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfData {
    /// `IFT_*`.
    pub ifi_type: u8,
    /// Media address length.
    pub ifi_addrlen: u8,
    /// Media header length.
    pub ifi_hdrlen: u8,
    /// `LINK_STATE_*`.
    pub ifi_link_state: u8,
    /// MTU, metric, rdomain, baudrate, counters, capabilities, last change.
    pub rest: [u8; 140],
}

impl Default for IfData {
    fn default() -> IfData {
        IfData {
            ifi_type: 0,
            ifi_addrlen: 0,
            ifi_hdrlen: 0,
            ifi_link_state: 0,
            rest: [0; 140],
        }
    }
}

/// `struct if_msghdr`: an `RTM_IFINFO` message (`sys/net/if.h` 1.221).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfMsghdr {
    /// Length of the whole message.
    pub ifm_msglen: u16,
    /// `RTM_VERSION`.
    pub ifm_version: u8,
    /// `RTM_IFINFO`.
    pub ifm_type: u8,
    /// Length of the header.
    pub ifm_hdrlen: u16,
    /// Interface index.
    pub ifm_index: u16,
    /// Routing table.
    pub ifm_tableid: u16,
    /// Padding.
    pub ifm_pad1: u8,
    /// Padding.
    pub ifm_pad2: u8,
    /// Which sockaddrs follow.
    pub ifm_addrs: i32,
    /// `if_flags`.
    pub ifm_flags: i32,
    /// `if_xflags`.
    pub ifm_xflags: i32,
    /// The interface's data, link state included.
    pub ifm_data: IfData,
}

/// `struct if_announcemsghdr`: an `RTM_IFANNOUNCE` message
/// (`sys/net/if.h` 1.221).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfAnnounceMsghdr {
    /// Length of the whole message.
    pub ifan_msglen: u16,
    /// `RTM_VERSION`.
    pub ifan_version: u8,
    /// `RTM_IFANNOUNCE`.
    pub ifan_type: u8,
    /// Length of the header.
    pub ifan_hdrlen: u16,
    /// Index of the interface that arrived or departed.
    pub ifan_index: u16,
    /// `IFAN_ARRIVAL` or `IFAN_DEPARTURE`.
    pub ifan_what: u16,
    /// Its name, NUL-padded.
    pub ifan_name: [u8; IFNAMSIZ],
}

/// `IFAN_ARRIVAL` (`sys/net/if.h` 1.221).
pub const IFAN_ARRIVAL: u16 = 0;
/// `IFAN_DEPARTURE` (`sys/net/if.h` 1.221).
pub const IFAN_DEPARTURE: u16 = 1;

const _: () = {
    assert!(size_of::<RtMetrics>() == 56);
    assert!(size_of::<RtMsghdr>() == 96);
    assert!(offset_of!(RtMsghdr, rtm_version) == 2);
    assert!(offset_of!(RtMsghdr, rtm_type) == 3);
    assert!(offset_of!(RtMsghdr, rtm_index) == 6);
    assert!(offset_of!(RtMsghdr, rtm_rmx) == 40);
    assert!(size_of::<IfData>() == 144);
    assert!(align_of::<IfData>() == 8);
    assert!(offset_of!(IfData, ifi_link_state) == 3);
    assert!(size_of::<IfMsghdr>() == 168);
    assert!(offset_of!(IfMsghdr, ifm_version) == 2);
    assert!(offset_of!(IfMsghdr, ifm_type) == 3);
    assert!(offset_of!(IfMsghdr, ifm_index) == 6);
    assert!(offset_of!(IfMsghdr, ifm_data) == 24);
    assert!(size_of::<IfAnnounceMsghdr>() == 26);
    assert!(offset_of!(IfAnnounceMsghdr, ifan_index) == 6);
    assert!(offset_of!(IfAnnounceMsghdr, ifan_what) == 8);
    assert!(offset_of!(IfAnnounceMsghdr, ifan_name) == 10);
};

// ----- sys/net/if.h 1.221 -------------------------------------------------

/// `IFNAMSIZ`: interface and group names, NUL included
/// (`sys/net/if.h` 1.221).
pub const IFNAMSIZ: usize = 16;
/// `IFF_UP` (`sys/net/if.h` 1.221).
pub const IFF_UP: i32 = 0x1;
/// `LINK_STATE_UNKNOWN` (`sys/net/if.h` 1.221).
pub const LINK_STATE_UNKNOWN: u8 = 0;
/// `LINK_STATE_DOWN`: a carp backup (`sys/net/if.h` 1.221).
pub const LINK_STATE_DOWN: u8 = 2;
/// `LINK_STATE_UP`: a carp master (`sys/net/if.h` 1.221).
pub const LINK_STATE_UP: u8 = 4;

/// `struct ifreq` as `SIOCGIFDATA` uses it: the name, and in the union a
/// pointer to the caller's `if_data` (`sys/net/if.h` 1.221).
#[repr(C)]
#[derive(Debug)]
pub struct IfReqData {
    /// Interface name, NUL-padded.
    pub ifr_name: [u8; IFNAMSIZ],
    /// `ifr_data`: where the kernel copies the interface's `if_data`.
    pub ifr_data: *mut IfData,
    /// The rest of the 16-byte union.
    pub pad: [u8; 8],
}

/// `struct ifgroupreq` as `SIOCGIFGATTR`/`SIOCSIFGATTR` use it: the group
/// name, and in the union the `struct ifg_attrib` whose only field is the
/// carp demotion counter (`sys/net/if.h` 1.221).
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfGroupReq {
    /// Group name, NUL-padded.
    pub ifgr_name: [u8; IFNAMSIZ],
    /// `ifgr_len` (unused by the attribute requests).
    pub ifgr_len: u32,
    /// Alignment padding before the union.
    pub pad: u32,
    /// `ifgr_attrib.ifg_carp_demoted`: the counter (get), or the delta to
    /// add to it (set).
    pub ifg_carp_demoted: i32,
    /// The rest of the 16-byte union.
    pub pad2: [u8; 12],
}

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<IfReqData>() == crate::ioctl::IFREQ_LEN);
    assert!(offset_of!(IfReqData, ifr_data) == 16);
};

const _: () = {
    assert!(size_of::<IfGroupReq>() == crate::ioctl::IFGROUPREQ_LEN);
    assert!(offset_of!(IfGroupReq, ifgr_len) == 16);
    assert!(offset_of!(IfGroupReq, ifg_carp_demoted) == crate::ioctl::IFGR_DEMOTED_OFF);
};

// ----- sys/sys/sockio.h 1.84, encoded per sys/sys/ioccom.h 1.6 -----------

/// `SIOCGIFDATA`: `_IOWR('i', 27, struct ifreq)` (`sys/sys/sockio.h` 1.84).
pub const SIOCGIFDATA: u32 = ioc(IOC_INOUT, b'i', 27, size_of::<IfReqData>());
/// `SIOCGIFGATTR`: `_IOWR('i', 139, struct ifgroupreq)`
/// (`sys/sys/sockio.h` 1.84).
pub const SIOCGIFGATTR: u32 = ioc(IOC_INOUT, b'i', 139, size_of::<IfGroupReq>());
/// `SIOCSIFGATTR`: `_IOW('i', 140, struct ifgroupreq)`
/// (`sys/sys/sockio.h` 1.84).
pub const SIOCSIFGATTR: u32 = ioc(IOC_IN, b'i', 140, size_of::<IfGroupReq>());

// ----- cross-checks against what libc does declare -------------------------

#[cfg(target_os = "openbsd")]
const _: () = {
    assert!(CTL_NET == libc::CTL_NET);
    assert!(PF_KEY == libc::PF_KEY);
    assert!(AF_ROUTE == libc::AF_ROUTE);
    assert!(SOCK_RAW == libc::SOCK_RAW);
    assert!(RTM_VERSION as c_int == libc::RTM_VERSION);
    assert!(RTM_IFINFO as c_int == libc::RTM_IFINFO);
    assert!(RTM_IFANNOUNCE as c_int == libc::RTM_IFANNOUNCE);
    assert!(RTM_DESYNC as c_int == libc::RTM_DESYNC);
    assert!(IFNAMSIZ == libc::IFNAMSIZ);
    assert!(IFF_UP == libc::IFF_UP);
    assert!(LINK_STATE_DOWN as c_int == libc::LINK_STATE_DOWN);
    assert!(LINK_STATE_UP as c_int == libc::LINK_STATE_UP);
    assert!(size_of::<IfData>() == size_of::<libc::if_data>());
    assert!(offset_of!(libc::if_data, ifi_link_state) == offset_of!(IfData, ifi_link_state));
    assert!(size_of::<IfMsghdr>() == size_of::<libc::if_msghdr>());
    assert!(offset_of!(libc::if_msghdr, ifm_index) == offset_of!(IfMsghdr, ifm_index));
    assert!(offset_of!(libc::if_msghdr, ifm_data) == offset_of!(IfMsghdr, ifm_data));
    assert!(size_of::<IfReqData>() == size_of::<libc::ifreq>());
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_reference() {
        assert_eq!(SIOCGIFDATA, 0xC020_691B);
        assert_eq!(SIOCGIFGATTR, 0xC028_698B);
        assert_eq!(SIOCSIFGATTR, 0x8028_698C);
    }

    #[test]
    fn route_filter_bits() {
        assert_eq!(1u32 << RTM_IFINFO, 0x4000);
        assert_eq!(1u32 << RTM_IFANNOUNCE, 0x8000);
    }
}
