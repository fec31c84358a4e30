//! Kernel table dumps through sysctl (reference §12.3, §13.3):
//! `net.key.sadb_dump` and `net.key.spd_dump`, read by the privileged
//! process. The size is probed first, a buffer of twice that is offered
//! (the tables may grow in between), and the read is retried when the
//! kernel still finds it too small (`ENOMEM`). Every buffer that may have
//! held keys, including the ones given up on, is wiped when dropped.

use core::ffi::c_int;
use core::fmt;

use nix::errno::Errno;
use sasyncd_core::node::Table;
use zeroize::Zeroizing;

use crate::ffi::{CTL_NET, NET_KEY_SADB_DUMP, NET_KEY_SPD_DUMP, PF_KEY, PF_KEY_V2};

/// Attempts before giving up on a table that keeps outgrowing the buffer.
pub const MAX_TRIES: u32 = 8;

/// The MIB of a whole-table dump: `net.key.<table>.0`, the last level
/// (satype 0) meaning every SA type.
pub const fn dump_mib(table: Table) -> [c_int; 5] {
    let which = match table {
        Table::Sadb => NET_KEY_SADB_DUMP,
        Table::Spd => NET_KEY_SPD_DUMP,
    };
    [CTL_NET, PF_KEY, PF_KEY_V2, which, 0]
}

/// Why a dump could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpError {
    /// sysctl failed with this errno.
    Sysctl(Errno),
    /// The table outgrew the buffer [`MAX_TRIES`] times in a row.
    KeptGrowing,
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::Sysctl(e) => write!(f, "sysctl: {}", e.desc()),
            DumpError::KeptGrowing => {
                write!(f, "the table outgrew the buffer {MAX_TRIES} times in a row")
            }
        }
    }
}

impl std::error::Error for DumpError {}

/// Reads a sized table through `call`, which behaves as sysctl(2) does for
/// reading: given no buffer it returns the size needed; given a buffer it
/// fills it and returns the bytes written, or fails with `ENOMEM` if the
/// buffer is too small. An empty table is an empty buffer.
pub fn read_sized<F>(mut call: F) -> Result<Zeroizing<Vec<u8>>, DumpError>
where
    F: FnMut(Option<&mut [u8]>) -> Result<usize, Errno>,
{
    for _ in 0..MAX_TRIES {
        let size = call(None).map_err(DumpError::Sysctl)?;
        if size == 0 {
            return Ok(Zeroizing::new(Vec::new()));
        }
        let mut buf = Zeroizing::new(vec![0u8; size.saturating_mul(2)]);
        match call(Some(&mut buf[..])) {
            Ok(n) => {
                // Shortening keeps the allocation, which is wiped whole.
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::ENOMEM) => continue,
            Err(e) => return Err(DumpError::Sysctl(e)),
        }
    }
    Err(DumpError::KeptGrowing)
}

/// Takes a point-in-time copy of `table`.
#[cfg(target_os = "openbsd")]
pub fn dump(table: Table) -> Result<Zeroizing<Vec<u8>>, DumpError> {
    let mib = dump_mib(table);
    read_sized(|buf| crate::sys::sysctl_read(&mib, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mibs_match_the_reference() {
        assert_eq!(dump_mib(Table::Sadb), [4, 30, 2, 1, 0]);
        assert_eq!(dump_mib(Table::Spd), [4, 30, 2, 2, 0]);
    }

    /// A kernel table whose size at the i-th probe is `sizes[i]` (the last
    /// one from then on), and which grows by `grow` bytes between a probe
    /// and the read that follows it.
    struct FakeTable {
        sizes: Vec<usize>,
        grow: usize,
        last: usize,
        probes: usize,
        reads: usize,
        offered: Vec<usize>,
    }

    impl FakeTable {
        fn call(&mut self, buf: Option<&mut [u8]>) -> Result<usize, Errno> {
            match buf {
                None => {
                    self.last = self.sizes[self.probes.min(self.sizes.len() - 1)];
                    self.probes += 1;
                    Ok(self.last)
                }
                Some(b) => {
                    self.reads += 1;
                    self.offered.push(b.len());
                    let need = self.last + self.grow;
                    if b.len() < need {
                        return Err(Errno::ENOMEM);
                    }
                    b[..need].fill(0xaa);
                    Ok(need)
                }
            }
        }
    }

    fn table(sizes: &[usize], grow: usize) -> FakeTable {
        FakeTable {
            sizes: sizes.to_vec(),
            grow,
            last: 0,
            probes: 0,
            reads: 0,
            offered: Vec::new(),
        }
    }

    #[test]
    fn probes_then_reads_with_headroom() {
        let mut t = table(&[100], 40);
        let b = read_sized(|buf| t.call(buf)).unwrap();
        assert_eq!(b.len(), 140);
        assert!(b.iter().all(|&x| x == 0xaa));
        assert_eq!((t.probes, t.reads), (1, 1));
        assert_eq!(t.offered, vec![200]);
    }

    #[test]
    fn retries_when_the_table_outgrew_the_buffer() {
        // Grows by more than the headroom once, then settles.
        let mut t = table(&[100, 300], 150);
        let b = read_sized(|buf| t.call(buf)).unwrap();
        assert_eq!(b.len(), 450);
        assert_eq!((t.probes, t.reads), (2, 2));
        assert_eq!(t.offered, vec![200, 600]);
    }

    #[test]
    fn gives_up_on_a_table_that_keeps_growing() {
        let mut t = table(&[8], 1 << 20);
        assert_eq!(read_sized(|buf| t.call(buf)), Err(DumpError::KeptGrowing));
        assert_eq!(t.reads, MAX_TRIES as usize);
    }

    #[test]
    fn an_empty_table_is_empty() {
        let mut t = table(&[0], 0);
        assert!(read_sized(|buf| t.call(buf)).unwrap().is_empty());
        assert_eq!(t.reads, 0);
    }

    #[test]
    fn other_errors_end_it() {
        assert_eq!(
            read_sized(|_| Err(Errno::EPERM)),
            Err(DumpError::Sysctl(Errno::EPERM))
        );
        let mut probes = 0;
        let r = read_sized(|buf| match buf {
            None => {
                probes += 1;
                Ok(64)
            }
            Some(_) => Err(Errno::EINVAL),
        });
        assert_eq!(r, Err(DumpError::Sysctl(Errno::EINVAL)));
        assert_eq!(probes, 1);
        assert_eq!(
            DumpError::Sysctl(Errno::EPERM).to_string(),
            "sysctl: Operation not permitted"
        );
    }
}
