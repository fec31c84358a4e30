//! Detaching from the terminal, as daemon(3) does.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, dup2_stderr, dup2_stdin, dup2_stdout, fork, setsid, ForkResult};

use super::SysError;

/// The line the daemon writes on the start-up report when it is up.
pub const READY: &str = "ready";

/// Forks; the parent waits on a pipe until the daemon reports (see below)
/// and exits with its verdict, so that a daemon that failed after
/// detaching is not taken for one that started. The child becomes a
/// session leader with no controlling terminal, works in `/` (so no file
/// system is kept busy) and has stdin and stdout on `/dev/null`, and stderr
/// too unless `keep_stderr` (the fallback when syslog cannot be reached).
/// Returns, in the child, the write end of the start-up report.
///
/// The report is lines: error lines the daemon logs while starting, and
/// [`READY`] once it is up. The parent prints the error lines on its
/// stderr; it exits 0 if `ready` came and no error did, 1 otherwise (also
/// when every write end closed without a word: a daemon killed while
/// starting). Every process holding the write end must close it (or exit)
/// for the parent to finish.
///
/// The standard descriptors are redirected, not closed, so a descriptor
/// opened later never lands on 0, 1 or 2, where a stray write to stderr
/// would corrupt it. Other descriptors (listeners, the syslog connection)
/// are kept. Call it while the process has one thread (at start, before
/// the privsep fork).
pub fn daemonize(keep_stderr: bool) -> Result<OwnedFd, SysError> {
    let (read_end, write_end) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(SysError::call("pipe"))?;
    // SAFETY: the daemon calls this at start, while it has a single thread,
    // so the child cannot inherit a lock held by another thread. The parent
    // only reads the pipe, writes stderr and calls _exit.
    match unsafe { fork() }.map_err(SysError::call("fork"))? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            let code = wait_for_report(std::fs::File::from(read_end));
            // SAFETY: _exit(2) ends the process without running atexit
            // handlers or flushing stdio buffers the child also holds (as
            // daemon(3) does); it takes a plain integer.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Child => drop(read_end),
    }
    setsid().map_err(SysError::call("setsid"))?;
    chdir("/").map_err(SysError::call("chdir"))?;
    let null = open("/dev/null", OFlag::O_RDWR, Mode::empty()).map_err(SysError::call("open"))?;
    dup2_stdin(&null).map_err(SysError::call("dup2"))?;
    dup2_stdout(&null).map_err(SysError::call("dup2"))?;
    if !keep_stderr {
        dup2_stderr(&null).map_err(SysError::call("dup2"))?;
    }
    if null.as_raw_fd() <= 2 {
        // It already is one of the standard descriptors (they were closed
        // before): keep it open rather than close it on drop.
        let _ = null.into_raw_fd();
    }
    Ok(write_end)
}

/// The parent's side of the report: relays error lines to stderr and
/// returns the exit status.
fn wait_for_report(pipe: std::fs::File) -> i32 {
    let mut ready = false;
    let mut failed = false;
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        if line == READY {
            ready = true;
        } else {
            failed = true;
            let _ = writeln!(std::io::stderr(), "sasyncd: {line}");
        }
    }
    if ready && !failed {
        return 0;
    }
    if !failed {
        let _ = writeln!(
            std::io::stderr(),
            "sasyncd: the daemon ended while starting, without a reason (see syslog)"
        );
    }
    1
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

    /// A forked helper daemonizes; its parent must exit 0 once the daemon
    /// reports it is up, and the daemon reports its session, directory and
    /// standard descriptors.
    #[test]
    fn detaches() {
        let (status, report) = in_child(|out| {
            let helper = getpid();
            let pipe = match daemonize(false) {
                Ok(r) => r,
                Err(e) => {
                    writeln!(out, "error {e}").unwrap();
                    return;
                }
            };
            // Up: the helper may exit (0) now.
            std::fs::File::from(pipe)
                .write_all(format!("{READY}\n").as_bytes())
                .unwrap();
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
            // The helper exits once told; wait (bounded) to see the daemon
            // re-parented.
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

    /// A daemon that fails while starting makes the waiting parent exit 1
    /// (its error lines are relayed to stderr); one that ends without a
    /// word too.
    #[test]
    fn a_failure_after_detaching_is_the_parent_s_exit_status() {
        for words in [
            "net: error: chroot /nowhere: No such file or directory\n",
            "",
        ] {
            let (status, _) = in_child(|_| {
                let report = daemonize(false).unwrap();
                let _ = std::fs::File::from(report).write_all(words.as_bytes());
                // SAFETY: ends the daemon at once, like a crash would.
                unsafe { libc::_exit(0) }
            });
            assert!(
                matches!(status, WaitStatus::Exited(_, 1)),
                "{words:?}: {status:?}"
            );
        }
    }
}
