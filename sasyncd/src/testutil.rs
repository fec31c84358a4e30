//! Helpers shared by the unit tests: scratch directories and a root check.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether the tests run as root (some need chown, chroot, setuid).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
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
