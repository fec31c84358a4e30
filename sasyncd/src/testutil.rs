//! Helpers shared by the unit tests: scratch directories, a root check and
//! running code in a forked child.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult};

/// Whether the tests run as root (some need chown, chroot, setuid).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Says on the terminal (the harness captures `eprintln!`) that the
/// running test is skipped and why; where every test must run (CI as root
/// sets `SASYNCD_TESTS_NO_SKIP=1`) the skip fails the test instead.
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    assert!(
        std::env::var_os("SASYNCD_TESTS_NO_SKIP").is_none(),
        "{test} skipped, but SASYNCD_TESTS_NO_SKIP is set: {why}"
    );
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// A fresh directory under the temp directory, removed on drop. Mode 0700
/// and a name with our pid and a counter, so parallel tests do not meet.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/sasyncd-test-<pid>-<n>-<what>`.
    pub fn new(what: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("sasyncd-test-{}-{n}-{what}", std::process::id()));
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` in a forked child that reports through a pipe, for steps that
/// change the whole process (chroot, setuid, setsid). Returns how the
/// child ended and everything written to the pipe (by it or by any
/// process it left holding the pipe). A panic in the child is exit 101.
pub fn in_child(f: impl FnOnce(&mut File)) -> (WaitStatus, String) {
    let (r, w) = pipe().unwrap();
    // SAFETY: the child runs only `f` and then _exit(2)s; it never returns
    // into the test harness. glibc keeps malloc usable after fork, which
    // the children's small reports rely on.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(r);
            let mut out = File::from(w);
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut out)))
            {
                Ok(()) => 0,
                Err(_) => 101,
            };
            let _ = out.flush();
            // SAFETY: ends the child without running the harness's exit
            // code; takes a plain integer.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut text = String::new();
            File::from(r).read_to_string(&mut text).unwrap();
            (waitpid(child, None).unwrap(), text)
        }
    }
}
