//! Parsing the routing-socket messages that carry carp link-state changes
//! (reference §7.4, §13.4; amd64 layout).
//!
//! Unlike the original (D-34), a short message is ignored rather than copied
//! past its end.

/// `RTM_VERSION`.
pub const RTM_VERSION: u8 = 5;
/// `RTM_IFINFO`: interface state changed.
pub const RTM_IFINFO: u8 = 0x0e;
/// `RTM_IFANNOUNCE`: an interface arrived or departed.
pub const RTM_IFANNOUNCE: u8 = 0x0f;
/// `ROUTE_MSGFILTER` socket option (level `AF_ROUTE`).
pub const ROUTE_MSGFILTER: i32 = 1;
/// `AF_ROUTE`.
pub const AF_ROUTE: i32 = 17;
/// Size of `struct if_msghdr` on amd64.
pub const IF_MSGHDR_LEN: usize = 168;
/// Offset of `ifm_index` (u16, host order).
const INDEX_OFF: usize = 6;
/// Offset of `ifm_data.ifi_link_state`.
const LINK_STATE_OFF: usize = 24 + 3;

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

/// An interface's new link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfInfo {
    /// Interface index.
    pub index: u16,
    /// `LINK_STATE_*` value.
    pub link_state: u8,
}

/// Parses an `RTM_IFINFO` message; anything else (or anything short) is `None`.
pub fn parse_ifinfo(msg: &[u8]) -> Option<IfInfo> {
    if msg.len() < IF_MSGHDR_LEN || msg[2] != RTM_VERSION || msg[3] != RTM_IFINFO {
        return None;
    }
    let msglen = u16::from_ne_bytes([msg[0], msg[1]]) as usize;
    if msglen < IF_MSGHDR_LEN {
        return None;
    }
    Some(IfInfo {
        index: u16::from_ne_bytes([msg[INDEX_OFF], msg[INDEX_OFF + 1]]),
        link_state: msg[LINK_STATE_OFF],
    })
}

/// Whether the message announces an interface arrival or departure, after
/// which the carp interface's index must be looked up again (D-34).
pub fn is_ifannounce(msg: &[u8]) -> bool {
    msg.len() >= 4 && msg[2] == RTM_VERSION && msg[3] == RTM_IFANNOUNCE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifinfo(index: u16, state: u8) -> [u8; IF_MSGHDR_LEN] {
        let mut m = [0u8; IF_MSGHDR_LEN];
        m[0..2].copy_from_slice(&(IF_MSGHDR_LEN as u16).to_ne_bytes());
        m[2] = RTM_VERSION;
        m[3] = RTM_IFINFO;
        m[6..8].copy_from_slice(&index.to_ne_bytes());
        m[27] = state;
        m
    }

    #[test]
    fn filter_mask_for_ifinfo() {
        assert_eq!(route_filter(&[RTM_IFINFO]), 0x4000);
    }

    #[test]
    fn parses_ifinfo() {
        assert_eq!(
            parse_ifinfo(&ifinfo(7, 4)),
            Some(IfInfo {
                index: 7,
                link_state: 4
            })
        );
    }

    #[test]
    fn ignores_short_wrong_version_or_type() {
        let m = ifinfo(7, 4);
        assert_eq!(parse_ifinfo(&m[..100]), None);
        let mut v = m;
        v[2] = 4;
        assert_eq!(parse_ifinfo(&v), None);
        let mut t = m;
        t[3] = 0x0c;
        assert_eq!(parse_ifinfo(&t), None);
        let mut l = m;
        l[0..2].copy_from_slice(&96u16.to_ne_bytes());
        assert_eq!(parse_ifinfo(&l), None);
        let mut a = m;
        a[3] = RTM_IFANNOUNCE;
        assert!(is_ifannounce(&a) && !is_ifannounce(&m));
    }
}
