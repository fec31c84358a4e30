//! Telling isakmpd and iked to go active or passive (reference §12.4, §13.7–13.9).
//!
//! isakmpd reads one-line commands from a FIFO; iked takes an imsg on its
//! control socket. Unlike the original (D-22), the FIFO is opened
//! non-blocking, so a stale FIFO with no reader fails at once with a clear
//! error instead of hanging the privileged process.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// isakmpd's command FIFO.
pub const ISAKMPD_FIFO: &str = "/var/run/isakmpd.fifo";
/// iked's control socket.
pub const IKED_SOCKET: &str = "/var/run/iked.sock";
/// iked's imsg type for "become active".
pub const IMSG_CTL_ACTIVE: u32 = 9;
/// iked's imsg type for "become passive".
pub const IMSG_CTL_PASSIVE: u32 = 10;

/// What the IKE daemon should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeMode {
    /// Initiate and answer negotiations (we are carp MASTER).
    Active,
    /// Stay quiet (we are not MASTER).
    Passive,
}

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
pub fn iked_imsg(mode: IkeMode, pid: u32) -> [u8; 16] {
    let ty = match mode {
        IkeMode::Active => IMSG_CTL_ACTIVE,
        IkeMode::Passive => IMSG_CTL_PASSIVE,
    };
    let mut m = [0u8; 16];
    m[0..4].copy_from_slice(&ty.to_ne_bytes());
    m[4..8].copy_from_slice(&16u32.to_ne_bytes());
    // peer id 0 at 8..12
    m[12..16].copy_from_slice(&pid.to_ne_bytes());
    m
}

/// Writes the command to isakmpd's FIFO at `path`. Fails with
/// `ENXIO` at once when nobody reads the FIFO (isakmpd not running).
pub fn tell_isakmpd(path: &Path, mode: IkeMode) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(nonblock_flag())
        .open(path)?;
    if !f.metadata()?.file_type().is_fifo() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a FIFO", path.display()),
        ));
    }
    f.write_all(isakmpd_line(mode))
}

/// Sends the imsg to iked's control socket at `path`; iked sends no reply.
pub fn tell_iked(path: &Path, mode: IkeMode, pid: u32) -> io::Result<()> {
    let mut s = UnixStream::connect(path)?;
    s.write_all(&iked_imsg(mode, pid))?;
    s.flush()
}

fn nonblock_flag() -> i32 {
    // O_NONBLOCK: 0x4 on OpenBSD, 0o4000 on Linux; the other targets this
    // crate builds on (tests) are Linux.
    if cfg!(target_os = "openbsd") {
        0x0004
    } else {
        0o4000
    }
}

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
        assert_eq!(err.raw_os_error(), Some(6 /* ENXIO on Linux and OpenBSD */));
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
        assert!(tell_isakmpd(&f, IkeMode::Active).is_err());
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
}
