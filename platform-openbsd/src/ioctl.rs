//! The BSD ioctl request encoding (`sys/sys/ioccom.h` 1.6), so that the
//! request numbers in [`crate::ffi`] are computed from their definitions
//! and the sizes of the declared structures rather than written as magic
//! numbers.

/// `IOC_OUT`: the kernel copies data out.
pub const IOC_OUT: u32 = 0x4000_0000;
/// `IOC_IN`: the kernel copies data in.
pub const IOC_IN: u32 = 0x8000_0000;
/// Both directions.
pub const IOC_INOUT: u32 = IOC_IN | IOC_OUT;
/// `IOCPARM_MASK`: the parameter length field is 13 bits wide.
const IOCPARM_MASK: u32 = 0x1fff;

/// `_IOC(dir, group, num, len)`.
pub const fn ioc(dir: u32, group: u8, num: u8, len: usize) -> u32 {
    dir | (((len as u32) & IOCPARM_MASK) << 16) | ((group as u32) << 8) | num as u32
}

/// `sizeof(struct ifreq)` on LP64 (reference §13.5).
pub const IFREQ_LEN: usize = 32;
/// `sizeof(struct ifgroupreq)` on LP64 (reference §13.5).
pub const IFGROUPREQ_LEN: usize = 40;
/// Offset of `ifg_carp_demoted` within `struct ifgroupreq`.
pub const IFGR_DEMOTED_OFF: usize = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_the_reference() {
        // The three the daemon uses, and the historic SIOCGVH (§13.5).
        assert_eq!(ioc(IOC_INOUT, b'i', 27, IFREQ_LEN), 0xC020_691B);
        assert_eq!(ioc(IOC_INOUT, b'i', 139, IFGROUPREQ_LEN), 0xC028_698B);
        assert_eq!(ioc(IOC_IN, b'i', 140, IFGROUPREQ_LEN), 0x8028_698C);
        assert_eq!(ioc(IOC_INOUT, b'i', 246, IFREQ_LEN), 0xC020_69F6);
    }
}
