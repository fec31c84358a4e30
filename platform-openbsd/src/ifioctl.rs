//! The interface ioctls the privileged process issues (reference §7.6,
//! §13.5): a carp interface's link state (`SIOCGIFDATA`) and the carp
//! demotion counter of an interface group (`SIOCGIFGATTR` to read it,
//! `SIOCSIFGATTR` to add a delta to it). The requests are built and checked
//! here on any host; the calls themselves exist on OpenBSD only.

use core::fmt;

use nix::errno::Errno;

use crate::ffi::{IfGroupReq, IfReqData};
use crate::ifname::{ifname, NameError};

/// The kernel's bounds on a group's demotion counter (`if_setgroupattribs`).
pub const DEMOTE_MAX: i32 = 255;

/// Why an interface request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfError {
    /// The name cannot be given to the kernel.
    Name(NameError),
    /// The ioctl (named) failed with this errno.
    Ioctl(&'static str, Errno),
    /// Adding the delta would leave the counter outside 0..=255; the
    /// kernel would refuse it too.
    OutOfRange {
        /// The counter now.
        counter: i32,
        /// The delta asked for.
        delta: i32,
    },
}

impl fmt::Display for IfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfError::Name(e) => e.fmt(f),
            IfError::Ioctl(call, Errno::ENXIO) => write!(f, "{call}: no such interface"),
            IfError::Ioctl(call, Errno::ENOENT) => write!(f, "{call}: no such interface group"),
            IfError::Ioctl(call, e) => write!(f, "{call}: {}", e.desc()),
            IfError::OutOfRange { counter, delta } => write!(
                f,
                "demotion counter {counter} cannot change by {delta} (0..={DEMOTE_MAX})"
            ),
        }
    }
}

impl std::error::Error for IfError {}

impl From<NameError> for IfError {
    fn from(e: NameError) -> IfError {
        IfError::Name(e)
    }
}

/// A `SIOCGIFDATA` request for interface `name` (its data pointer is set
/// at the call).
pub fn if_data_req(name: &str) -> Result<IfReqData, NameError> {
    Ok(IfReqData {
        ifr_name: ifname(name)?,
        ifr_data: core::ptr::null_mut(),
        pad: [0; 8],
    })
}

/// A `SIOCGIFGATTR`/`SIOCSIFGATTR` request for group `group`, carrying
/// `delta` (0 for a read).
pub fn group_req(group: &str, delta: i32) -> Result<IfGroupReq, NameError> {
    Ok(IfGroupReq {
        ifgr_name: ifname(group)?,
        ifg_carp_demoted: delta,
        ..IfGroupReq::default()
    })
}

/// Checks a delta against the counter, as the kernel will.
pub fn check_delta(counter: i32, delta: i32) -> Result<(), IfError> {
    match counter.checked_add(delta) {
        Some(n) if (0..=DEMOTE_MAX).contains(&n) => Ok(()),
        _ => Err(IfError::OutOfRange { counter, delta }),
    }
}

/// The socket the interface ioctls are issued on (any AF_INET datagram
/// socket will do).
#[cfg(target_os = "openbsd")]
#[derive(Debug)]
pub struct IfSock(std::os::fd::OwnedFd);

#[cfg(target_os = "openbsd")]
impl IfSock {
    /// Opens it.
    pub fn open() -> std::io::Result<IfSock> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        Ok(IfSock(fd))
    }

    /// Interface `name`'s link state (`LINK_STATE_*`).
    pub fn link_state(&self, name: &str) -> Result<u8, IfError> {
        let mut req = if_data_req(name)?;
        let mut data = crate::ffi::IfData::default();
        crate::sys::get_if_data(&self.0, &mut req, &mut data)
            .map_err(|e| IfError::Ioctl("SIOCGIFDATA", e))?;
        Ok(data.ifi_link_state)
    }

    /// Group `group`'s carp demotion counter.
    pub fn demote_counter(&self, group: &str) -> Result<i32, IfError> {
        let mut req = group_req(group, 0)?;
        crate::sys::get_group_attr(&self.0, &mut req)
            .map_err(|e| IfError::Ioctl("SIOCGIFGATTR", e))?;
        Ok(req.ifg_carp_demoted)
    }

    /// Adds `delta` to group `group`'s carp demotion counter. The counter
    /// is read first, so that a change the kernel would refuse is reported
    /// as such.
    pub fn demote(&self, group: &str, delta: i32) -> Result<(), IfError> {
        check_delta(self.demote_counter(group)?, delta)?;
        let req = group_req(group, delta)?;
        crate::sys::set_group_attr(&self.0, &req).map_err(|e| IfError::Ioctl("SIOCSIFGATTR", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_name_and_delta() {
        let r = group_req("carp", -1).unwrap();
        assert_eq!(&r.ifgr_name[..5], b"carp\0");
        assert_eq!(r.ifg_carp_demoted, -1);
        assert_eq!((r.ifgr_len, r.pad, r.pad2), (0, 0, [0; 12]));
        let d = if_data_req("carp0").unwrap();
        assert_eq!(&d.ifr_name[..6], b"carp0\0");
        assert!(d.ifr_data.is_null());
        assert!(matches!(
            group_req("a-group-name-too-long", 1),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn deltas_are_checked_as_the_kernel_does() {
        assert_eq!(check_delta(0, 1), Ok(()));
        assert_eq!(check_delta(1, -1), Ok(()));
        assert_eq!(check_delta(254, 1), Ok(()));
        assert_eq!(
            check_delta(0, -1),
            Err(IfError::OutOfRange {
                counter: 0,
                delta: -1
            })
        );
        assert!(check_delta(255, 1).is_err());
        assert!(check_delta(i32::MAX, 1).is_err());
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            IfError::Ioctl("SIOCGIFGATTR", Errno::ENOENT).to_string(),
            "SIOCGIFGATTR: no such interface group"
        );
        assert_eq!(
            IfError::Ioctl("SIOCGIFDATA", Errno::ENXIO).to_string(),
            "SIOCGIFDATA: no such interface"
        );
        assert_eq!(
            IfError::OutOfRange {
                counter: 0,
                delta: -1
            }
            .to_string(),
            "demotion counter 0 cannot change by -1 (0..=255)"
        );
    }
}
