//! Detaching from the terminal, as daemon(3) does.

use std::os::fd::{AsRawFd, IntoRawFd};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, dup2_stderr, dup2_stdin, dup2_stdout, fork, setsid, ForkResult};

use super::SysError;

/// Forks; the parent exits 0 at once, the child becomes a session leader
/// with no controlling terminal, works in `/` (so no file system is kept
/// busy) and has stdin, stdout and stderr on `/dev/null`. Returns in the
/// child.
///
/// The standard descriptors are redirected, not closed, so a descriptor
/// opened later never lands on 0, 1 or 2, where a stray write to stderr
/// would corrupt it. Other descriptors (listeners, the syslog connection)
/// are kept. Call it while the process has one thread (at start, before
/// the privsep fork).
pub fn daemonize() -> Result<(), SysError> {
    // SAFETY: the daemon calls this at start, while it has a single thread,
    // so the child cannot inherit a lock held by another thread. The parent
    // only calls _exit.
    match unsafe { fork() }.map_err(SysError::call("fork"))? {
        ForkResult::Parent { .. } => {
            // SAFETY: _exit(2) ends the process without running atexit
            // handlers or flushing stdio buffers the child also holds (as
            // daemon(3) does); it takes a plain integer.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => {}
    }
    setsid().map_err(SysError::call("setsid"))?;
    chdir("/").map_err(SysError::call("chdir"))?;
    let null = open("/dev/null", OFlag::O_RDWR, Mode::empty()).map_err(SysError::call("open"))?;
    dup2_stdin(&null).map_err(SysError::call("dup2"))?;
    dup2_stdout(&null).map_err(SysError::call("dup2"))?;
    dup2_stderr(&null).map_err(SysError::call("dup2"))?;
    if null.as_raw_fd() <= 2 {
        // It already is one of the standard descriptors (they were closed
        // before): keep it open rather than close it on drop.
        let _ = null.into_raw_fd();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};

    use nix::sys::stat::fstat;
    use nix::sys::wait::WaitStatus;
    use nix::unistd::{getpgrp, getpid, getppid, getsid};

    use crate::testutil::in_child;

    /// A forked helper daemonizes; its parent must exit 0 at once and the
    /// daemon reports its session, directory and standard descriptors.
    #[test]
    fn detaches() {
        let (status, report) = in_child(|out| {
            let helper = getpid();
            if let Err(e) = daemonize() {
                writeln!(out, "error {e}").unwrap();
                return;
            }
            // Now in the daemon: the helper has exited (or is exiting).
            let me = getpid();
            let sid = getsid(None).unwrap();
            writeln!(out, "pid differs {}", me != helper).unwrap();
            writeln!(out, "session leader {}", sid == me).unwrap();
            writeln!(out, "group leader {}", getpgrp() == me).unwrap();
            let cwd = std::env::current_dir().unwrap();
            writeln!(out, "cwd {}", cwd.display()).unwrap();
            let null = std::fs::metadata("/dev/null").unwrap();
            for fd in 0..3 {
                // SAFETY: 0..3 are open (on /dev/null) for the daemon's
                // whole life; the borrow ends within this statement.
                let st = fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).unwrap();
                let same = st.st_rdev as u64 == null.rdev() && st.st_ino as u64 == null.ino();
                writeln!(out, "fd {fd} /dev/null {same}").unwrap();
            }
            // The helper exits right after the fork; wait (bounded) to see
            // the daemon re-parented.
            let start = Instant::now();
            while getppid() == helper && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
            writeln!(out, "orphaned {}", getppid() != helper).unwrap();
        });
        // The helper process itself ended in daemonize(), with status 0.
        assert!(
            matches!(status, WaitStatus::Exited(_, 0)),
            "{status:?} {report}"
        );
        assert_eq!(
            report,
            "pid differs true\nsession leader true\ngroup leader true\ncwd /\n\
             fd 0 /dev/null true\nfd 1 /dev/null true\nfd 2 /dev/null true\norphaned true\n"
        );
    }
}
