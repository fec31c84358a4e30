//! Routing-socket messages that matter for carp tracking (reference §7.4,
//! §13.4): interface state changes (`RTM_IFINFO`), interface arrivals and
//! departures (`RTM_IFANNOUNCE`) and lost messages (`RTM_DESYNC`).
//!
//! Unlike the original (D-34), a message shorter than its structure is
//! ignored rather than copied past its end, and an announcement is not
//! ignored: see [`crate::carp::LinkTracker`].

use core::mem::{offset_of, size_of};

use crate::ffi::{
    IfAnnounceMsghdr, IfData, IfMsghdr, IFAN_ARRIVAL, IFAN_DEPARTURE, IFNAMSIZ, RTM_DESYNC,
    RTM_IFANNOUNCE, RTM_IFINFO, RTM_VERSION,
};

/// The `ROUTE_MSGFILTER` mask accepting the given message types.
pub const fn route_filter(types: &[u8]) -> u32 {
    let mut mask = 0u32;
    let mut i = 0;
    while i < types.len() {
        mask |= 1 << types[i];
        i += 1;
    }
    mask
}

/// What the carp watch asks the kernel for: state changes, arrivals and
/// departures. (`RTM_DESYNC` is delivered whatever the filter says; it is
/// in the mask to say that it is expected.)
pub const CARP_FILTER: u32 = route_filter(&[RTM_IFINFO, RTM_IFANNOUNCE, RTM_DESYNC]);

/// Whether an interface arrived or departed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// `IFAN_ARRIVAL`: created (or attached).
    Arrival,
    /// `IFAN_DEPARTURE`: destroyed (or detached).
    Departure,
}

/// A routing message, as far as carp tracking cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMsg {
    /// `RTM_IFINFO`: interface `index` now has this link state.
    IfInfo {
        /// Interface index.
        index: u16,
        /// `LINK_STATE_*`.
        link_state: u8,
    },
    /// `RTM_IFANNOUNCE`.
    IfAnnounce {
        /// Interface index.
        index: u16,
        /// Arrival or departure.
        what: Announce,
        /// Interface name, NUL-padded.
        name: [u8; IFNAMSIZ],
    },
    /// `RTM_DESYNC`: the kernel dropped messages for this socket.
    Desync,
    /// Some other message type.
    Other(u8),
}

fn rd_u16(msg: &[u8], off: usize) -> Option<u16> {
    let b = msg.get(off..off + 2)?;
    Some(u16::from_ne_bytes([b[0], b[1]]))
}

/// Parses one message read from the routing socket. `None`: not a message
/// of this routing-socket version, or shorter than its type's structure
/// (by its length field or by the bytes read).
pub fn parse(msg: &[u8]) -> Option<RouteMsg> {
    let msglen = usize::from(rd_u16(msg, 0)?);
    let version = *msg.get(2)?;
    let ty = *msg.get(3)?;
    if version != RTM_VERSION || msglen > msg.len() {
        return None;
    }
    let msg = &msg[..msglen];
    match ty {
        RTM_IFINFO => {
            if msg.len() < size_of::<IfMsghdr>() {
                return None;
            }
            let state_off = offset_of!(IfMsghdr, ifm_data) + offset_of!(IfData, ifi_link_state);
            Some(RouteMsg::IfInfo {
                index: rd_u16(msg, offset_of!(IfMsghdr, ifm_index))?,
                link_state: *msg.get(state_off)?,
            })
        }
        RTM_IFANNOUNCE => {
            if msg.len() < size_of::<IfAnnounceMsghdr>() {
                return None;
            }
            let what = match rd_u16(msg, offset_of!(IfAnnounceMsghdr, ifan_what))? {
                IFAN_ARRIVAL => Announce::Arrival,
                IFAN_DEPARTURE => Announce::Departure,
                _ => return Some(RouteMsg::Other(ty)),
            };
            let off = offset_of!(IfAnnounceMsghdr, ifan_name);
            let mut name = [0u8; IFNAMSIZ];
            name.copy_from_slice(msg.get(off..off + IFNAMSIZ)?);
            Some(RouteMsg::IfAnnounce {
                index: rd_u16(msg, offset_of!(IfAnnounceMsghdr, ifan_index))?,
                what,
                name,
            })
        }
        RTM_DESYNC => Some(RouteMsg::Desync),
        other => Some(RouteMsg::Other(other)),
    }
}

#[cfg(test)]
pub(crate) mod testmsg {
    //! Recorded routing messages, built as the kernel lays them out.
    use super::*;

    /// An `RTM_IFINFO` for interface `index` in `state`.
    pub fn ifinfo(index: u16, state: u8) -> Vec<u8> {
        let mut m = vec![0u8; size_of::<IfMsghdr>()];
        m[0..2].copy_from_slice(&(size_of::<IfMsghdr>() as u16).to_ne_bytes());
        m[2] = RTM_VERSION;
        m[3] = RTM_IFINFO;
        m[4..6].copy_from_slice(&(size_of::<IfMsghdr>() as u16).to_ne_bytes());
        m[6..8].copy_from_slice(&index.to_ne_bytes());
        m[27] = state;
        m
    }

    /// An `RTM_IFANNOUNCE` of `name` at `index`.
    pub fn announce(index: u16, name: &str, what: u16) -> Vec<u8> {
        let len = size_of::<IfAnnounceMsghdr>();
        let mut m = vec![0u8; len];
        m[0..2].copy_from_slice(&(len as u16).to_ne_bytes());
        m[2] = RTM_VERSION;
        m[3] = RTM_IFANNOUNCE;
        m[4..6].copy_from_slice(&(len as u16).to_ne_bytes());
        m[6..8].copy_from_slice(&index.to_ne_bytes());
        m[8..10].copy_from_slice(&what.to_ne_bytes());
        m[10..10 + name.len()].copy_from_slice(name.as_bytes());
        m
    }

    /// An `RTM_DESYNC` (a bare `rt_msghdr`).
    pub fn desync() -> Vec<u8> {
        let len = size_of::<crate::ffi::RtMsghdr>();
        let mut m = vec![0u8; len];
        m[0..2].copy_from_slice(&(len as u16).to_ne_bytes());
        m[2] = RTM_VERSION;
        m[3] = RTM_DESYNC;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::testmsg::*;
    use super::*;
    use crate::ifname::{from_field, ifname};

    #[test]
    fn filter_masks() {
        assert_eq!(route_filter(&[RTM_IFINFO]), 0x4000);
        assert_eq!(CARP_FILTER, 0x0001_c000);
    }

    #[test]
    fn parses_ifinfo() {
        assert_eq!(
            parse(&ifinfo(7, 4)),
            Some(RouteMsg::IfInfo {
                index: 7,
                link_state: 4
            })
        );
    }

    #[test]
    fn parses_announcements_and_desync() {
        let m = parse(&announce(9, "carp1", IFAN_ARRIVAL)).unwrap();
        let RouteMsg::IfAnnounce { index, what, name } = m else {
            panic!("{m:?}");
        };
        assert_eq!((index, what), (9, Announce::Arrival));
        assert_eq!(name, ifname("carp1").unwrap());
        assert_eq!(from_field(&name), Some("carp1"));
        assert!(matches!(
            parse(&announce(9, "carp1", IFAN_DEPARTURE)),
            Some(RouteMsg::IfAnnounce {
                what: Announce::Departure,
                ..
            })
        ));
        assert_eq!(
            parse(&announce(9, "carp1", 7)),
            Some(RouteMsg::Other(RTM_IFANNOUNCE))
        );
        assert_eq!(parse(&desync()), Some(RouteMsg::Desync));
    }

    #[test]
    fn ignores_short_or_foreign_messages() {
        let m = ifinfo(7, 4);
        // Fewer bytes read than the structure.
        assert_eq!(parse(&m[..100]), None);
        // A length field shorter than the structure.
        let mut l = m.clone();
        l[0..2].copy_from_slice(&96u16.to_ne_bytes());
        assert_eq!(parse(&l), None);
        // A length field longer than what was read.
        let mut l = m.clone();
        l[0..2].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(parse(&l), None);
        // Another routing-socket version.
        let mut v = m.clone();
        v[2] = 4;
        assert_eq!(parse(&v), None);
        // Another type.
        let mut t = m.clone();
        t[3] = 0x0c;
        assert_eq!(parse(&t), Some(RouteMsg::Other(0x0c)));
        let a = announce(3, "carp0", IFAN_ARRIVAL);
        assert_eq!(parse(&a[..20]), None);
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[4, 0, 5]), None);
    }
}
