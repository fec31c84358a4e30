//! Telling isakmpd and iked to go active or passive (reference §12.4, §13.7–13.9).
//!
//! isakmpd reads one-line commands from a FIFO; iked takes an imsg on its
//! control socket. Unlike the original (D-22), the FIFO is opened
//! non-blocking, so a stale FIFO with no reader fails at once with a clear
//! error instead of hanging the privileged process; the node retries.
//! Unlike the original, iked is told even when isakmpd could not be.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use sasyncd_core::config::Control;

/// isakmpd's command FIFO.
pub const ISAKMPD_FIFO: &str = "/var/run/isakmpd.fifo";
/// iked's control socket.
pub const IKED_SOCKET: &str = "/var/run/iked.sock";
/// iked's imsg type for "become active".
pub const IMSG_CTL_ACTIVE: u32 = 9;
/// iked's imsg type for "become passive".
pub const IMSG_CTL_PASSIVE: u32 = 10;
/// `IMSG_HEADER_SIZE`.
pub const IMSG_HEADER_SIZE: usize = 16;

/// What the IKE daemon should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeMode {
    /// Initiate and answer negotiations (we are carp MASTER).
    Active,
    /// Stay quiet (we are not MASTER).
    Passive,
}

impl IkeMode {
    /// The mode for "active" (`true`) or "passive".
    pub const fn from_active(active: bool) -> IkeMode {
        if active {
            IkeMode::Active
        } else {
            IkeMode::Passive
        }
    }
}

/// Why an IKE daemon could not be told.
#[derive(Debug)]
pub enum IkeError {
    /// Nobody reads isakmpd's FIFO (`ENXIO`): isakmpd is not running.
    NoReader(PathBuf),
    /// isakmpd's FIFO path is something else.
    NotFifo(PathBuf),
    /// isakmpd's FIFO could not be opened or written.
    Isakmpd(PathBuf, io::Error),
    /// iked's control socket could not be reached or written.
    Iked(PathBuf, io::Error),
}

impl fmt::Display for IkeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IkeError::NoReader(p) => write!(
                f,
                "isakmpd: nobody reads {} (is isakmpd running?)",
                p.display()
            ),
            IkeError::NotFifo(p) => write!(f, "isakmpd: {} is not a FIFO", p.display()),
            IkeError::Isakmpd(p, e) => write!(f, "isakmpd: {}: {e}", p.display()),
            IkeError::Iked(p, e) => write!(f, "iked: {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for IkeError {}

/// The line isakmpd's FIFO reader understands.
pub fn isakmpd_line(mode: IkeMode) -> &'static [u8] {
    match mode {
        IkeMode::Active => b"M active\n",
        IkeMode::Passive => b"M passive\n",
    }
}

/// The 16-byte imsg header (no payload) iked expects, host byte order.
/// The old (u16 len, u16 flags) and new (u32 len) layouts give the same
/// bytes for a descriptor-less message on a little-endian host.
pub fn iked_imsg(mode: IkeMode, pid: u32) -> [u8; IMSG_HEADER_SIZE] {
    let ty = match mode {
        IkeMode::Active => IMSG_CTL_ACTIVE,
        IkeMode::Passive => IMSG_CTL_PASSIVE,
    };
    let mut m = [0u8; IMSG_HEADER_SIZE];
    m[0..4].copy_from_slice(&ty.to_ne_bytes());
    m[4..8].copy_from_slice(&(IMSG_HEADER_SIZE as u32).to_ne_bytes());
    // peer id 0 at 8..12
    m[12..16].copy_from_slice(&pid.to_ne_bytes());
    m
}

/// Writes the command to isakmpd's FIFO at `path`. Fails at once with
/// [`IkeError::NoReader`] when nobody reads the FIFO, and never blocks: a
/// FIFO whose buffer is full fails too.
pub fn tell_isakmpd(path: &Path, mode: IkeMode) -> Result<(), IkeError> {
    let err = |e: io::Error| {
        if e.raw_os_error() == Some(libc::ENXIO) {
            IkeError::NoReader(path.to_path_buf())
        } else {
            IkeError::Isakmpd(path.to_path_buf(), e)
        }
    };
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(err)?;
    if !f.metadata().map_err(err)?.file_type().is_fifo() {
        return Err(IkeError::NotFifo(path.to_path_buf()));
    }
    f.write_all(isakmpd_line(mode)).map_err(err)
}

/// Sends the imsg to iked's control socket at `path`; iked sends no reply.
pub fn tell_iked(path: &Path, mode: IkeMode, pid: u32) -> Result<(), IkeError> {
    let err = |e: io::Error| IkeError::Iked(path.to_path_buf(), e);
    let mut s = UnixStream::connect(path).map_err(err)?;
    s.write_all(&iked_imsg(mode, pid)).map_err(err)?;
    s.flush().map_err(err)
}

/// Which IKE daemons to tell, and where they listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeTargets {
    /// `control isakmpd|iked|all|none`.
    pub control: Control,
    /// isakmpd's FIFO.
    pub fifo: PathBuf,
    /// iked's control socket.
    pub socket: PathBuf,
}

impl IkeTargets {
    /// The daemons `control` names, at their standard paths.
    pub fn new(control: Control) -> IkeTargets {
        IkeTargets {
            control,
            fifo: PathBuf::from(ISAKMPD_FIFO),
            socket: PathBuf::from(IKED_SOCKET),
        }
    }

    /// Tells every controlled daemon; `pid` goes in iked's imsg. Each is
    /// tried even if another failed; the errors are returned together.
    pub fn tell(&self, mode: IkeMode, pid: u32) -> Result<(), IkeErrors> {
        let mut errors = Vec::new();
        if self.control.isakmpd {
            if let Err(e) = tell_isakmpd(&self.fifo, mode) {
                errors.push(e);
            }
        }
        if self.control.iked {
            if let Err(e) = tell_iked(&self.socket, mode, pid) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(IkeErrors(errors))
        }
    }
}

/// The daemons that could not be told, and why.
#[derive(Debug)]
pub struct IkeErrors(pub Vec<IkeError>);

impl fmt::Display for IkeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for IkeErrors {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    #[test]
    fn fifo_lines_match_reference() {
        assert_eq!(
            isakmpd_line(IkeMode::Active),
            b"\x4d\x20\x61\x63\x74\x69\x76\x65\x0a"
        );
        assert_eq!(isakmpd_line(IkeMode::Passive).len(), 10);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn imsg_bytes_match_reference() {
        let want = [9, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x92, 0x10, 0, 0];
        assert_eq!(iked_imsg(IkeMode::Active, 4242), want);
        let mut p = want;
        p[0] = 10;
        assert_eq!(iked_imsg(IkeMode::Passive, 4242), p);
    }

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sasyncd-ike-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mkfifo(path: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn fifo_without_reader_fails_at_once() {
        let d = tmpdir("noreader");
        let fifo = d.join("isakmpd.fifo");
        mkfifo(&fifo);
        let err = tell_isakmpd(&fifo, IkeMode::Active).unwrap_err();
        assert!(
            matches!(err, IkeError::NoReader(ref p) if *p == fifo),
            "{err}"
        );
        assert!(err.to_string().contains("is isakmpd running?"));
    }

    #[test]
    fn fifo_with_reader_gets_the_line() {
        let d = tmpdir("reader");
        let fifo = d.join("isakmpd.fifo");
        mkfifo(&fifo);
        // A reader that opens read-write (as isakmpd does) never blocks.
        let mut reader = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        tell_isakmpd(&fifo, IkeMode::Passive).unwrap();
        let mut buf = [0u8; 10];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"M passive\n");
    }

    #[test]
    fn regular_file_is_refused() {
        let d = tmpdir("regular");
        let f = d.join("isakmpd.fifo");
        std::fs::write(&f, b"").unwrap();
        assert!(matches!(
            tell_isakmpd(&f, IkeMode::Active),
            Err(IkeError::NotFifo(_))
        ));
    }

    #[test]
    fn iked_socket_gets_the_imsg() {
        let d = tmpdir("iked");
        let sock = d.join("iked.sock");
        let l = UnixListener::bind(&sock).unwrap();
        tell_iked(&sock, IkeMode::Active, 77).unwrap();
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 16];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(buf, iked_imsg(IkeMode::Active, 77));
    }

    #[test]
    fn targets_follow_the_control_statement() {
        let d = tmpdir("targets");
        let fifo = d.join("isakmpd.fifo");
        mkfifo(&fifo);
        let sock = d.join("iked.sock");
        let l = UnixListener::bind(&sock).unwrap();
        let targets = |isakmpd, iked| IkeTargets {
            control: Control { isakmpd, iked },
            fifo: fifo.clone(),
            socket: sock.clone(),
        };
        // none: nothing is touched, nothing fails.
        targets(false, false).tell(IkeMode::Active, 1).unwrap();
        // iked only: the missing isakmpd reader does not matter.
        targets(false, true).tell(IkeMode::Active, 1).unwrap();
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 16];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(buf, iked_imsg(IkeMode::Active, 1));
        // all: isakmpd fails (no reader), iked is told all the same.
        let e = targets(true, true).tell(IkeMode::Passive, 2).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(matches!(e.0[0], IkeError::NoReader(_)));
        let (mut c, _) = l.accept().unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(buf, iked_imsg(IkeMode::Passive, 2));
        // iked gone too: both reported.
        drop(l);
        std::fs::remove_file(&sock).unwrap();
        let e = targets(true, true).tell(IkeMode::Active, 3).unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert!(e.to_string().contains("; iked: "), "{e}");
        assert_eq!(
            IkeTargets::new(Control::default()).fifo,
            Path::new(ISAKMPD_FIFO)
        );
    }
}
