//! Process hardening at start-up: no descriptor inherited from whoever
//! started us crosses the privilege drop, and the privileged process never
//! writes its memory (configuration, dumps of SA keys) to a core file.

/// Closes every descriptor above stderr. Called first thing, before the
/// daemon opens anything of its own: a descriptor the caller left open
/// (say `9</etc/shadow`) would otherwise reach the chrooted network process.
pub fn close_inherited_fds() {
    #[cfg(target_os = "openbsd")]
    // SAFETY: closefrom(2) takes a plain integer; nothing of ours is open
    // yet, so no live object's descriptor is closed under it.
    unsafe {
        libc::closefrom(3);
    }
    #[cfg(not(target_os = "openbsd"))]
    {
        #[cfg(target_os = "linux")]
        // SAFETY: close_range(2) takes plain integers; as above.
        if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } == 0 {
            return;
        }
        // SAFETY: sysconf takes a constant and returns an integer.
        let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
        let max = if max < 0 { 1024 } else { max.min(1 << 20) };
        for fd in 3..max as libc::c_int {
            // SAFETY: as above; EBADF for descriptors not open is harmless.
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// Keeps this process out of core files: its memory may hold SA keys
/// (kernel dumps) and, briefly, a re-read configuration's shared key.
pub fn no_core_dumps() -> std::io::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass by reference.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Zeroes the stack below the caller's frame: what start-up left there
/// (copies of the configuration, its shared key among them) is not kept
/// by the privileged process, which never needs it.
#[inline(never)]
pub fn wipe_stack() {
    let mut below = [0u8; 4 << 20];
    zeroize::Zeroize::zeroize(&mut below[..]);
    std::hint::black_box(&below);
}
