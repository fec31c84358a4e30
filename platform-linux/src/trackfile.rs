//! Demotion through keepalived's `track_file`: the Linux counterpart of a
//! carp group's demotion counter.
//!
//! keepalived reads the integer in a tracked file whenever the file
//! changes (inotify) and adds it, times the configured weight, to the
//! VRRP instance's priority; with a negative weight a non-zero value makes
//! the node lose elections, which is what a carp demotion does. The daemon
//! owns the file and keeps its demotion there:
//!
//! * **Atomic.** A value is written to a temporary file beside it and
//!   renamed over it, so keepalived never reads half a number.
//! * **Trusted.** The file is the node's priority: its directory must
//!   not be writable by anyone but its owner (root or us), and an existing
//!   file must be a regular file (not a symlink) that only we can write.
//! * **Restart.** A value the file holds at start (keepalived's
//!   `init_file` on a freshly booted node, or what a daemon that was
//!   killed left) is the start-up demotion, the counterpart of the boot
//!   scripts' carp demotion on OpenBSD: the daemon adds its own on top,
//!   and the release of its own takes that one too ([`TrackFile::add`]),
//!   so nothing is left raised once the node is in sync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file's mode: keepalived (root) reads it; only we write it.
const MODE: u32 = 0o644;

/// A demotion kept in a keepalived track file.
#[derive(Debug)]
pub struct TrackFile {
    path: PathBuf,
    value: i32,
    /// The value found at start, released with our own demotion.
    adopted: i32,
}

fn refuse(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}", path.display()),
    )
}

/// Whether a file or directory owned by `uid` can be trusted by a process
/// running as `me`: owned by root or by us, and writable by nobody else.
fn trusted(meta: &fs::Metadata, me: u32) -> Result<(), String> {
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!("owned by uid {}, not root or us", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

impl TrackFile {
    /// Opens the track file at `path` (absolute), checking its directory
    /// and, if it exists, the file, and reads the value it holds (0 if
    /// there is none yet).
    pub fn open(path: &Path) -> io::Result<TrackFile> {
        if !path.is_absolute() {
            return Err(refuse(path, "not an absolute path"));
        }
        let me = nix::unistd::geteuid().as_raw();
        let dir = path
            .parent()
            .ok_or_else(|| refuse(path, "has no directory"))?;
        let dmeta = fs::metadata(dir)?;
        if !dmeta.is_dir() {
            return Err(refuse(dir, "not a directory"));
        }
        trusted(&dmeta, me).map_err(|why| refuse(dir, why))?;
        let value = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
            Ok(meta) => {
                if !meta.file_type().is_file() {
                    return Err(refuse(path, "not a regular file"));
                }
                trusted(&meta, me).map_err(|why| refuse(path, why))?;
                read_value(path)?
            }
        };
        Ok(TrackFile {
            path: path.to_path_buf(),
            value,
            adopted: value.max(0),
        })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value the file holds (ours, and what was there at start).
    pub fn value(&self) -> i32 {
        self.value
    }

    /// The value found at start that a release takes away with ours.
    pub fn adopted(&self) -> i32 {
        self.adopted
    }

    /// Changes the value by `delta` and writes it. A release (`delta`
    /// negative) that brings it down to what was there at start writes 0:
    /// that demotion was the start-up one, held until we are in sync. The
    /// value never goes below 0.
    pub fn add(&mut self, delta: i32) -> io::Result<()> {
        let mut next = self.value.saturating_add(delta).max(0);
        let mut adopted = self.adopted;
        if delta < 0 && next <= adopted {
            next = 0;
            adopted = 0;
        }
        self.write(next)?;
        self.value = next;
        self.adopted = adopted;
        Ok(())
    }

    /// Writes `value` atomically: a temporary file beside the track file,
    /// synced, renamed over it.
    fn write(&self, value: i32) -> io::Result<()> {
        let name = self
            .path
            .file_name()
            .ok_or_else(|| refuse(&self.path, "has no file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".sasyncd-tmp");
        let tmp = self.path.with_file_name(tmp_name);
        // A temporary file left by a crash is ours to replace.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // The umask must not make it unreadable to keepalived.
        f.set_permissions(fs::Permissions::from_mode(MODE))?;
        let done = f
            .write_all(format!("{value}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| fs::rename(&tmp, &self.path));
        if done.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        done
    }
}

fn read_value(path: &Path) -> io::Result<i32> {
    let mut text = String::new();
    File::open(path)?
        .take(64)
        .read_to_string(&mut text)
        .map_err(|e| refuse(path, e))?;
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<i32>().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: holds {t:?}, not an integer", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sasyncd-track-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    fn content(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    #[test]
    fn raise_and_release_write_the_file() {
        let d = dir("raise");
        let p = d.join("demote");
        let mut t = TrackFile::open(&p).unwrap();
        assert_eq!((t.value(), t.adopted()), (0, 0));
        assert!(!p.exists(), "nothing is written before a change");
        t.add(1).unwrap();
        assert_eq!(content(&p), "1\n");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        t.add(1).unwrap();
        t.add(-1).unwrap();
        assert_eq!(content(&p), "1\n");
        t.add(-5).unwrap();
        assert_eq!(
            (t.value(), content(&p).as_str()),
            (0, "0\n"),
            "never below 0"
        );
        let left: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["demote"], "no temporary file is left");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_restart_reads_what_was_left_and_releases_it_with_its_own() {
        let d = dir("restart");
        let p = d.join("demote");
        let mut first = TrackFile::open(&p).unwrap();
        first.add(1).unwrap();
        // Killed while holding it.
        drop(first);
        let mut t = TrackFile::open(&p).unwrap();
        assert_eq!((t.value(), t.adopted()), (1, 1));
        t.add(1).unwrap();
        assert_eq!(content(&p), "2\n");
        t.add(-1).unwrap();
        assert_eq!(content(&p), "0\n", "the release takes the leftover too");
        assert_eq!(t.adopted(), 0);
        // keepalived's init_file writes "1" without a newline.
        fs::write(&p, "1").unwrap();
        assert_eq!(TrackFile::open(&p).unwrap().value(), 1);
        fs::write(&p, "").unwrap();
        assert_eq!(TrackFile::open(&p).unwrap().value(), 0);
        fs::write(&p, "one\n").unwrap();
        let e = TrackFile::open(&p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("not an integer"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn untrusted_places_are_refused() {
        assert!(TrackFile::open(Path::new("relative/demote")).is_err());
        // A world-writable directory (/tmp): anyone could plant the file.
        let d = dir("perm");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        let e = TrackFile::open(&d.join("demote")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        // A file others can write.
        let p = d.join("demote");
        fs::write(&p, "0\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(TrackFile::open(&p).is_err());
        // A symlink planted in its place.
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &p).unwrap();
        let e = TrackFile::open(&p).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // A directory in its place.
        fs::remove_file(&p).unwrap();
        fs::create_dir(&p).unwrap();
        assert!(TrackFile::open(&p).is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
