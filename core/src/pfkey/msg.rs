//! The `sadb_msg` header view (reference §13.1).
//!
//! Multi-byte header fields are in host byte order: PF_KEY payloads only
//! travel between peers of the same architecture (D-33).

use super::consts::{CHUNK, HDR_LEN, PF_KEY_V2};
use super::ext::{Ext, Extensions};
use super::PfkeyError;

/// Reads a host-order u16 at `off`, if in bounds.
pub(crate) fn rd_u16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// Reads a host-order u32 at `off`, if in bounds.
pub(crate) fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_ne_bytes(a))
}

/// Reads a host-order u64 at `off`, if in bounds.
pub(crate) fn rd_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_ne_bytes(a))
}

/// Writes `v` at `off` if in bounds; returns whether it did.
pub(crate) fn wr(b: &mut [u8], off: usize, v: &[u8]) -> bool {
    match off.checked_add(v.len()).and_then(|end| b.get_mut(off..end)) {
        Some(d) => {
            d.copy_from_slice(v);
            true
        }
        None => false,
    }
}

/// A checked view of one complete PF_KEY message.
///
/// Construction checks only the header (at least 16 bytes, version 2,
/// `len * 8` equal to the buffer length); extensions are checked lazily by
/// [`Msg::extensions`], so a view can be built over anything the kernel or a
/// peer hands us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    buf: &'a [u8],
}

impl<'a> Msg<'a> {
    /// Checks the header of `buf` and wraps it.
    pub fn parse(buf: &'a [u8]) -> Result<Msg<'a>, PfkeyError> {
        let hdr = buf.get(..HDR_LEN).ok_or(PfkeyError::Short)?;
        if hdr[0] != PF_KEY_V2 {
            return Err(PfkeyError::BadVersion(hdr[0]));
        }
        let len = usize::from(u16::from_ne_bytes([hdr[4], hdr[5]])) * CHUNK;
        if len != buf.len() {
            return Err(PfkeyError::BadLength);
        }
        Ok(Msg { buf })
    }

    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// Header byte `i` (always present: the header was checked).
    fn byte(&self, i: usize) -> u8 {
        self.buf.get(i).copied().unwrap_or(0)
    }
    /// `sadb_msg_version` (always 2 in a parsed message).
    pub fn version(&self) -> u8 {
        self.byte(0)
    }
    /// `sadb_msg_type`, one of the `SADB_*` message types.
    pub fn msg_type(&self) -> u8 {
        self.byte(1)
    }
    /// `sadb_msg_errno`: non-zero in the kernel's failed replies.
    pub fn errno(&self) -> u8 {
        self.byte(2)
    }
    /// `sadb_msg_satype`.
    pub fn satype(&self) -> u8 {
        self.byte(3)
    }
    /// The message length in bytes (`sadb_msg_len * 8`).
    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }
    /// `sadb_msg_reserved`.
    pub fn reserved(&self) -> u16 {
        rd_u16(self.buf, 6).unwrap_or(0)
    }
    /// `sadb_msg_seq`.
    pub fn seq(&self) -> u32 {
        rd_u32(self.buf, 8).unwrap_or(0)
    }
    /// `sadb_msg_pid`.
    pub fn pid(&self) -> u32 {
        rd_u32(self.buf, 12).unwrap_or(0)
    }
    /// The extensions, in message order.
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions::new(self.buf.get(HDR_LEN..).unwrap_or(&[]))
    }
    /// The first extension of type `ext_type`, stopping at the first malformed
    /// or zero-length extension (like the original's walk).
    pub fn find(&self, ext_type: u16) -> Option<Ext<'a>> {
        self.extensions()
            .map_while(Result::ok)
            .find(|e| e.ext_type() == ext_type)
    }
    /// Walks all extensions; the first framing error, if any.
    pub fn check_extensions(&self) -> Result<(), PfkeyError> {
        self.extensions().try_for_each(|e| e.map(|_| ()))
    }
}

/// Overwrites the pid and seq of a message in place, as a slave does before
/// writing a received message to its kernel (which rejects a foreign pid).
/// Does nothing to a buffer shorter than a header.
pub fn set_pid_seq(buf: &mut [u8], pid: u32, seq: u32) {
    if buf.len() >= HDR_LEN {
        wr(buf, 8, &seq.to_ne_bytes());
        wr(buf, 12, &pid.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::consts::*;
    use super::super::testutil::TestMsg;
    use super::*;

    #[test]
    fn header_fields_every_type() {
        for t in 0..=SADB_MAX {
            let b = TestMsg::new(t, SADB_SATYPE_ESP).seq(7).pid(4242).build();
            let m = Msg::parse(&b).unwrap();
            assert_eq!(m.version(), 2);
            assert_eq!(m.msg_type(), t);
            assert_eq!(m.errno(), 0);
            assert_eq!(m.satype(), SADB_SATYPE_ESP);
            assert_eq!(m.len_bytes(), 16);
            assert_eq!(m.reserved(), 0);
            assert_eq!(m.seq(), 7);
            assert_eq!(m.pid(), 4242);
            assert_eq!(m.extensions().count(), 0);
            assert!(m.check_extensions().is_ok());
        }
    }

    #[test]
    fn header_errors() {
        let b = TestMsg::new(SADB_ADD, 2).build();
        assert_eq!(Msg::parse(&b[..15]), Err(PfkeyError::Short));
        let mut v = b.clone();
        v[0] = 1;
        assert_eq!(Msg::parse(&v), Err(PfkeyError::BadVersion(1)));
        let mut v = b.clone();
        v.extend_from_slice(&[0; 8]);
        assert_eq!(Msg::parse(&v), Err(PfkeyError::BadLength));
        let mut v = b.clone();
        v[4] = 0;
        v[5] = 0;
        assert_eq!(Msg::parse(&v), Err(PfkeyError::BadLength));
    }

    #[test]
    fn pid_seq_rewrite() {
        let mut b = TestMsg::new(SADB_ADD, 2).seq(1).pid(2).build();
        set_pid_seq(&mut b, 4242, 9);
        let m = Msg::parse(&b).unwrap();
        assert_eq!((m.pid(), m.seq()), (4242, 9));
        let mut short = [0u8; 15];
        set_pid_seq(&mut short, 1, 1);
        assert_eq!(short, [0; 15]);
    }
}
