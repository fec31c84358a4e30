//! Signals as readable bytes, so a poll(2) loop can wait for them with its
//! sockets (the self-pipe trick; portable to OpenBSD, unlike signalfd).
//!
//! The handler only sets a per-signal flag and writes one byte to a
//! non-blocking pipe: both are async-signal-safe, and a full pipe loses a
//! wake-up byte but never a signal, since the flags are what [`Signals::drain`]
//! reports.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{pipe2, read};

use super::SysError;

/// Highest signal number handled, plus one (signals are 1..=31 on OpenBSD
/// and 1..=64 on Linux; the daemon uses only the classic ones).
const NSIG: usize = 65;

/// Write end of the pipe, for the handler; -1 when none is installed.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// One flag per signal number: caught and not yet drained.
static CAUGHT: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];
/// Whether a [`Signals`] exists in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signo: libc::c_int) {
    // Only async-signal-safe work here: atomics and write(2). errno is
    // saved and restored, since the handler may interrupt code between a
    // failing call and its reading of errno.
    let saved = Errno::last_raw();
    if let Some(flag) = usize::try_from(signo).ok().and_then(|i| CAUGHT.get(i)) {
        flag.store(true, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: `fd` is the pipe's write end, which `Signals` keeps open
        // until after it has reset WAKE_FD to -1 and the handlers to their
        // defaults; the buffer is one valid byte. A failure (EAGAIN: the
        // pipe is full, so a wake-up is already pending) needs no handling.
        let _ = nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, &[1u8]);
    }
    Errno::set_raw(saved);
}

/// Installed handlers for a set of signals and the pipe they wake.
///
/// Create it in each process after the privsep fork: a child that inherits
/// one shares the parent's pipe, so drop the inherited value (which
/// restores the default actions) and install anew. One per process.
#[derive(Debug)]
pub struct Signals {
    read: OwnedFd,
    /// Kept open for the handler, which writes through its raw number.
    _write: OwnedFd,
    signals: Vec<Signal>,
}

impl Signals {
    /// Catches `signals` (e.g. SIGTERM, SIGINT, SIGHUP, SIGCHLD). Handlers
    /// use `SA_RESTART`, so only poll(2) and friends see `EINTR`.
    pub fn install(signals: &[Signal]) -> Result<Signals, SysError> {
        if INSTALLED.swap(true, Ordering::SeqCst) {
            return Err(SysError::SignalsInstalled);
        }
        let (read, write) = match pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(errno) => {
                INSTALLED.store(false, Ordering::SeqCst);
                return Err(SysError::Call {
                    call: "pipe",
                    errno,
                });
            }
        };
        let me = Signals {
            read,
            _write: write,
            signals: Vec::new(),
        };
        for flag in &CAUGHT {
            flag.store(false, Ordering::SeqCst);
        }
        WAKE_FD.store(me._write.as_raw_fd(), Ordering::SeqCst);
        let mut me = me;
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for &sig in signals {
            // SAFETY: the handler only touches atomics and calls write(2),
            // which are async-signal-safe, and restores errno.
            unsafe { sigaction(sig, &action) }.map_err(SysError::call("sigaction"))?;
            // Recorded as installed so that Drop resets it even if a later
            // one fails.
            me.signals.push(sig);
        }
        Ok(me)
    }

    /// The descriptor to poll for reading.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The signals caught since the last call, in signal-number order, each
    /// once however often it came. Empties the pipe.
    pub fn drain(&self) -> Vec<Signal> {
        let mut buf = [0u8; 64];
        loop {
            match read(&self.read, &mut buf) {
                Ok(n) if n == buf.len() => continue,
                Err(Errno::EINTR) => continue,
                _ => break,
            }
        }
        let mut out = Vec::new();
        for (signo, flag) in CAUGHT.iter().enumerate() {
            if flag.swap(false, Ordering::SeqCst) {
                let sig = i32::try_from(signo).ok().map(Signal::try_from);
                if let Some(Ok(sig)) = sig {
                    out.push(sig);
                }
            }
        }
        out
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        for &sig in &self.signals {
            // SAFETY: restoring the default action installs no code.
            let _ = unsafe { sigaction(sig, &default) };
        }
        // The handlers are gone, so nothing writes to the pipe after this.
        WAKE_FD.store(-1, Ordering::SeqCst);
        INSTALLED.store(false, Ordering::SeqCst);
    }
}

/// Ignores SIGPIPE, so writing to a peer that closed its connection is an
/// `EPIPE` error to handle rather than the end of the process (the
/// original left the default action, reference D-20).
pub fn ignore_sigpipe() -> Result<(), SysError> {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring a signal installs no handler code.
    unsafe { sigaction(Signal::SIGPIPE, &ignore) }
        .map(drop)
        .map_err(SysError::call("sigaction"))
}

/// Ignores `signals`. The network process ignores the ones that would
/// stop or reload the daemon: any process of its unprivileged user may
/// signal it, while the operator signals the privileged process (the pid
/// rc.d and `-d` know), which tells it over the channel.
pub fn ignore(signals: &[Signal]) -> Result<(), SysError> {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for &s in signals {
        // SAFETY: ignoring a signal installs no handler code.
        unsafe { sigaction(s, &ignore) }.map_err(SysError::call("sigaction"))?;
    }
    Ok(())
}

/// The signals that stop or reload the daemon.
pub const STOP_RELOAD: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Holds `signals` pending instead of acting on them. The daemon holds the
/// stop and reload signals from before the control socket exists until
/// each process has its own disposition: a SIGTERM sent as soon as the
/// socket answers then ends the daemon in order, removing the socket,
/// instead of killing it with the default action and leaving the socket.
pub fn hold(signals: &[Signal]) -> Result<(), SysError> {
    mask(signals, nix::sys::signal::SigmaskHow::SIG_BLOCK)
}

/// Acts on `signals` again: one held meanwhile is delivered now, to the
/// handler or disposition installed since.
pub fn release(signals: &[Signal]) -> Result<(), SysError> {
    mask(signals, nix::sys::signal::SigmaskHow::SIG_UNBLOCK)
}

fn mask(signals: &[Signal], how: nix::sys::signal::SigmaskHow) -> Result<(), SysError> {
    let mut set = SigSet::empty();
    for &s in signals {
        set.add(s);
    }
    nix::sys::signal::sigprocmask(how, Some(&set), None).map_err(SysError::call("sigprocmask"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signal::{kill, raise};
    use nix::unistd::getpid;

    fn readable(s: &Signals, ms: u16) -> bool {
        let mut fds = [PollFd::new(s.fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(n) => return n > 0,
                Err(Errno::EINTR) => continue,
                Err(e) => panic!("poll: {e}"),
            }
        }
    }

    /// One test for the whole process-wide state, so tests do not race.
    #[test]
    fn self_pipe() {
        let s = Signals::install(&[Signal::SIGHUP, Signal::SIGUSR2]).unwrap();
        assert_eq!(
            Signals::install(&[Signal::SIGUSR1]).unwrap_err(),
            SysError::SignalsInstalled
        );
        assert!(!readable(&s, 0));
        assert!(s.drain().is_empty());

        kill(getpid(), Signal::SIGHUP).unwrap();
        assert!(readable(&s, 5000), "SIGHUP did not wake the pipe");
        assert_eq!(s.drain(), [Signal::SIGHUP]);
        assert!(!readable(&s, 0), "drain leaves the pipe empty");

        // Many signals: each reported once, in number order.
        for _ in 0..1000 {
            raise(Signal::SIGUSR2).unwrap();
        }
        raise(Signal::SIGHUP).unwrap();
        assert!(readable(&s, 5000));
        assert_eq!(s.drain(), [Signal::SIGHUP, Signal::SIGUSR2]);
        drop(s);

        // Installed again after the drop; the default actions were restored.
        let s = Signals::install(&[Signal::SIGUSR2]).unwrap();
        raise(Signal::SIGUSR2).unwrap();
        assert!(readable(&s, 5000));
        assert_eq!(s.drain(), [Signal::SIGUSR2]);
        // Held: raised but pending; released: delivered to the handler.
        hold(&[Signal::SIGUSR2]).unwrap();
        raise(Signal::SIGUSR2).unwrap();
        assert!(!readable(&s, 100), "a held signal waits");
        release(&[Signal::SIGUSR2]).unwrap();
        assert!(readable(&s, 5000), "released, the held signal is delivered");
        assert_eq!(s.drain(), [Signal::SIGUSR2]);
        drop(s);
        let old = current_action(Signal::SIGHUP);
        assert!(matches!(old, SigHandler::SigDfl), "{old:?}");
    }

    /// The action currently installed for `sig`, read by installing it
    /// again.
    fn current_action(sig: Signal) -> SigHandler {
        let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: installs the default action, which it already is.
        let old = unsafe { sigaction(sig, &dfl) }.unwrap();
        old.handler()
    }

    #[test]
    fn sigpipe_ignored() {
        ignore_sigpipe().unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(b);
        use std::io::Write;
        let err = (&a).write_all(b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
    }
}
