//! Naming the two processes so `ps` and rc.d can tell them apart.

use super::SysError;

/// Names this process.
///
/// * OpenBSD: `setproctitle("%s", title)`, shown by ps as `sasyncd: TITLE`.
///   The privileged parent uses `[priv]`, which the rc.d script's `pexp`
///   (`sasyncd: \[priv\]`) matches, as for the original.
/// * Linux: the 15-byte task name (`prctl(PR_SET_NAME)`, shown by `ps -o
///   comm`, `top`, `pgrep`): `sasyncd-` and the title's ASCII letters and
///   digits, so `[priv]` gives `sasyncd-priv` and `net` `sasyncd-net`.
///   Linux has no setproctitle; rewriting argv in place is not worth its
///   hazards here.
/// * Elsewhere: nothing.
pub fn set_process_title(title: &str) -> Result<(), SysError> {
    set(title)
}

#[cfg(target_os = "openbsd")]
fn set(title: &str) -> Result<(), SysError> {
    let title = std::ffi::CString::new(title).map_err(|_| SysError::Call {
        call: "setproctitle",
        errno: nix::errno::Errno::EINVAL,
    })?;
    // SAFETY: both arguments are valid NUL-terminated strings that outlive
    // the call (setproctitle copies the formatted title), and the format is
    // a fixed "%s" consuming exactly the one string argument given.
    unsafe { libc::setproctitle(c"%s".as_ptr(), title.as_ptr()) };
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set(title: &str) -> Result<(), SysError> {
    let name = linux_name(title);
    let name = std::ffi::CString::new(name).map_err(|_| SysError::Call {
        call: "prctl",
        errno: nix::errno::Errno::EINVAL,
    })?;
    nix::sys::prctl::set_name(&name).map_err(SysError::call("prctl"))
}

#[cfg(not(any(target_os = "openbsd", target_os = "linux", target_os = "android")))]
fn set(_title: &str) -> Result<(), SysError> {
    Ok(())
}

/// `sasyncd-` plus the title's ASCII alphanumerics, at most 15 bytes (the
/// kernel's limit).
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android", test)),
    allow(dead_code)
)]
fn linux_name(title: &str) -> String {
    let mut name = String::from("sasyncd-");
    name.extend(title.chars().filter(char::is_ascii_alphanumeric));
    name.truncate(15);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_names() {
        assert_eq!(linux_name("[priv]"), "sasyncd-priv");
        assert_eq!(linux_name("net"), "sasyncd-net");
        assert_eq!(linux_name("network engine"), "sasyncd-network");
        assert_eq!(linux_name("ünï"), "sasyncd-n");
    }

    /// Sets the name of a thread of our own (PR_SET_NAME names the calling
    /// thread) and reads it back from /proc.
    #[cfg(target_os = "linux")]
    #[test]
    fn sets_the_task_name() {
        std::thread::spawn(|| {
            set_process_title("[priv]").unwrap();
            let tid = nix::unistd::gettid();
            let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap();
            assert_eq!(comm, "sasyncd-priv\n");
            assert!(set_process_title("a\0b").is_ok(), "NUL is filtered out");
        })
        .join()
        .unwrap();
    }
}
