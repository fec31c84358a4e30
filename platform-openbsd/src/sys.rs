//! The system calls neither `nix` nor the standard library wraps for
//! OpenBSD: opening PF_KEY and routing sockets, the routing socket's
//! message filter, sysctl reads, the interface ioctls, pledge and unveil.
//! Each is a thin, checked wrapper over the declarations in [`crate::ffi`];
//! this module is the only place in the crate with `unsafe` (outside test
//! code, which has none either).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use core::ffi::{c_int, c_uint, c_void};
use nix::errno::Errno;

use crate::ffi::{
    IfGroupReq, IfReqData, AF_ROUTE, PF_KEY, PF_KEY_V2, ROUTE_MSGFILTER, SIOCGIFDATA, SIOCGIFGATTR,
    SIOCSIFGATTR, SOCK_RAW,
};

/// Wraps a descriptor a successful `socket(2)` returned.
fn owned(fd: c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is open, and nothing
    // else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `socket(PF_KEY, SOCK_RAW, PF_KEY_V2)`, close-on-exec.
pub fn pfkey_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and returns a new descriptor
    // or -1; no memory is shared with the kernel.
    owned(unsafe { libc::socket(PF_KEY, SOCK_RAW | libc::SOCK_CLOEXEC, PF_KEY_V2) })
}

/// `socket(AF_ROUTE, SOCK_RAW, 0)`, close-on-exec, with `ROUTE_MSGFILTER`
/// set to `filter`. A filter the kernel refuses is logged only: the reader
/// ignores what it does not want anyway.
pub fn route_socket(filter: u32) -> io::Result<OwnedFd> {
    // SAFETY: as for `pfkey_socket`.
    let fd = owned(unsafe { libc::socket(AF_ROUTE, SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: the option value is a live u32 and its exact size is passed;
    // the kernel only reads it during the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            AF_ROUTE,
            ROUTE_MSGFILTER,
            (&filter as *const u32).cast::<c_void>(),
            core::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if r != 0 {
        log::warn!(
            "routing socket: cannot set the message filter: {}",
            io::Error::last_os_error()
        );
    }
    Ok(fd)
}

/// Reads the sysctl `mib`: with no buffer, the size needed; with one, the
/// bytes written into it (`ENOMEM` if it is too small).
pub fn sysctl_read(mib: &[c_int], buf: Option<&mut [u8]>) -> Result<usize, Errno> {
    let (ptr, mut len) = match buf {
        Some(b) => (b.as_mut_ptr().cast::<c_void>(), b.len()),
        None => (core::ptr::null_mut(), 0),
    };
    // SAFETY: `mib` is a live array of `mib.len()` ints; `ptr` is null
    // (size probe) or points to `len` writable bytes the kernel writes at
    // most `len` of; `len` is a live size_t the kernel updates; no new
    // value is passed (null, 0).
    let r = unsafe {
        libc::sysctl(
            mib.as_ptr(),
            mib.len() as c_uint,
            ptr,
            &mut len,
            core::ptr::null_mut(),
            0,
        )
    };
    if r == -1 {
        Err(Errno::last())
    } else {
        Ok(len)
    }
}

nix::ioctl_readwrite_bad!(ioctl_gifdata, SIOCGIFDATA, IfReqData);
nix::ioctl_readwrite_bad!(ioctl_gifgattr, SIOCGIFGATTR, IfGroupReq);
nix::ioctl_write_ptr_bad!(ioctl_sifgattr, SIOCSIFGATTR, IfGroupReq);

/// `SIOCGIFDATA`: fills the `if_data` that `req.ifr_data` points to.
pub fn get_if_data(
    fd: &OwnedFd,
    req: &mut IfReqData,
    data: &mut crate::ffi::IfData,
) -> Result<(), Errno> {
    req.ifr_data = data;
    // SAFETY: `req` is a live, correctly sized `struct ifreq` (asserted in
    // `ffi`) whose name is NUL-terminated and whose data pointer points to
    // `data`, a live, exclusively borrowed `if_data` of the size the
    // kernel copies out; both outlive the call.
    let r = unsafe { ioctl_gifdata(fd.as_raw_fd(), req) };
    req.ifr_data = core::ptr::null_mut();
    r.map(drop)
}

/// `SIOCGIFGATTR`: reads the group's attributes into `req`.
pub fn get_group_attr(fd: &OwnedFd, req: &mut IfGroupReq) -> Result<(), Errno> {
    // SAFETY: `req` is a live, correctly sized `struct ifgroupreq`
    // (asserted in `ffi`) with a NUL-terminated group name; the kernel
    // reads and writes only within it during the call.
    unsafe { ioctl_gifgattr(fd.as_raw_fd(), req) }.map(drop)
}

/// `SIOCSIFGATTR`: adds `req.ifg_carp_demoted` to the group's counter.
pub fn set_group_attr(fd: &OwnedFd, req: &IfGroupReq) -> Result<(), Errno> {
    // SAFETY: as for `get_group_attr`; the kernel only reads `req`.
    unsafe { ioctl_sifgattr(fd.as_raw_fd(), req) }.map(drop)
}

/// `pledge(promises, NULL)`.
pub fn pledge(promises: &CStr) -> Result<(), Errno> {
    // SAFETY: `promises` is NUL-terminated and outlives the call; a null
    // execpromises leaves them unchanged.
    let r = unsafe { libc::pledge(promises.as_ptr(), core::ptr::null()) };
    if r == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `unveil(path, permissions)`.
pub fn unveil(path: &Path, permissions: &CStr) -> Result<(), Errno> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let r = unsafe { libc::unveil(path.as_ptr(), permissions.as_ptr()) };
    if r == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `unveil(NULL, NULL)`: no more paths may be unveiled.
pub fn unveil_lock() -> Result<(), Errno> {
    // SAFETY: two null pointers are the documented way to lock unveil.
    let r = unsafe { libc::unveil(core::ptr::null(), core::ptr::null()) };
    if r == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}
