//! Interface ioctl request numbers (reference §13.5), computed from the
//! BSD `_IOC` encoding rather than written as magic numbers.

/// `IOC_OUT`: the kernel copies data out.
pub const IOC_OUT: u32 = 0x4000_0000;
/// `IOC_IN`: the kernel copies data in.
pub const IOC_IN: u32 = 0x8000_0000;
/// Both directions.
pub const IOC_INOUT: u32 = IOC_IN | IOC_OUT;

/// `_IOC(dir, group, num, len)`.
pub const fn ioc(dir: u32, group: u8, num: u8, len: usize) -> u32 {
    dir | (((len as u32) & 0x1fff) << 16) | ((group as u32) << 8) | num as u32
}

/// `sizeof(struct ifreq)` on amd64.
pub const IFREQ_LEN: usize = 32;
/// `sizeof(struct ifgroupreq)` on amd64.
pub const IFGROUPREQ_LEN: usize = 40;
/// Offset of `ifg_carp_demoted` within `struct ifgroupreq`.
pub const IFGR_DEMOTED_OFF: usize = 24;
/// `sizeof(struct if_data)` on amd64.
pub const IF_DATA_LEN: usize = 144;
/// Offset of `ifi_link_state` within `struct if_data`.
pub const IFI_LINK_STATE_OFF: usize = 3;

/// Read an interface's `if_data` (link state).
pub const SIOCGIFDATA: u32 = ioc(IOC_INOUT, b'i', 27, IFREQ_LEN);
/// Read an interface group's attributes (carp demote counter).
pub const SIOCGIFGATTR: u32 = ioc(IOC_INOUT, b'i', 139, IFGROUPREQ_LEN);
/// Add a delta to an interface group's carp demote counter.
pub const SIOCSIFGATTR: u32 = ioc(IOC_IN, b'i', 140, IFGROUPREQ_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_reference() {
        assert_eq!(SIOCGIFDATA, 0xC020_691B);
        assert_eq!(SIOCGIFGATTR, 0xC028_698B);
        assert_eq!(SIOCSIFGATTR, 0x8028_698C);
        assert_eq!(ioc(IOC_INOUT, b'i', 246, IFREQ_LEN), 0xC020_69F6);
    }
}
