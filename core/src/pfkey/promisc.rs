//! Unwrapping the kernel's promiscuous copies (reference §11.2, §13.2).
//!
//! A copy is a 16-byte X_PROMISC header whose seq is the writer's pid (0 for
//! the kernel's own unicast replies), followed by the request as written.

use super::consts::{CHUNK, HDR_LEN, PF_KEY_V2, SADB_X_PROMISC};
use super::msg::{rd_u16, rd_u32};

/// The outer header, if `buf` is a consistent X_PROMISC wrapper carrying at
/// least an inner header.
fn outer_ok(buf: &[u8]) -> bool {
    let outer_len = rd_u16(buf, 4).map(|l| usize::from(l) * CHUNK);
    buf.len() >= 2 * HDR_LEN
        && buf.first() == Some(&PF_KEY_V2)
        && buf.get(1) == Some(&SADB_X_PROMISC)
        && outer_len == Some(buf.len())
}

/// The inner request of a promiscuous copy, or `None` if `buf` is not one:
/// not an X_PROMISC message, shorter than 32 bytes (the 16-byte echo of our
/// own mode switch), or with outer and inner lengths that disagree.
pub fn unwrap_promisc(buf: &[u8]) -> Option<&[u8]> {
    if !outer_ok(buf) {
        return None;
    }
    let inner = buf.get(HDR_LEN..)?;
    let inner_len = usize::from(rd_u16(inner, 4)?) * CHUNK;
    (inner_len == inner.len()).then_some(inner)
}

/// The pid of the process whose request `buf` is a promiscuous copy of
/// (the outer seq; 0 for copies of kernel replies), or `None` if `buf` is
/// not a promiscuous copy.
pub fn promisc_writer_pid(buf: &[u8]) -> Option<u32> {
    unwrap_promisc(buf)?;
    rd_u32(buf, 8)
}

#[cfg(test)]
mod tests {
    use super::super::consts::*;
    use super::super::testutil::*;
    use super::*;
    use std::vec::Vec;

    fn wrap(inner: &[u8], writer: u32) -> Vec<u8> {
        let mut v = TestMsg::new(SADB_X_PROMISC, 0).seq(writer).build();
        v.extend_from_slice(inner);
        fix_len(&mut v);
        v
    }

    #[test]
    fn unwraps_copy() {
        let inner = TestMsg::new(SADB_ADD, 2).pid(55).sa(1, 1, 0, 0).build();
        let w = wrap(&inner, 55);
        assert_eq!(unwrap_promisc(&w), Some(&inner[..]));
        assert_eq!(promisc_writer_pid(&w), Some(55));
        let w0 = wrap(&inner, 0);
        assert_eq!(promisc_writer_pid(&w0), Some(0));
    }

    #[test]
    fn copy_of_a_maximal_request() {
        let inner = TestMsg::new(SADB_ADD, 2)
            .sa(1, 1, 0, 0)
            .ext(SADB_X_EXT_TAG, &[b't'; PFKEY_MSG_MAXSZ - 16 - 16 - 4])
            .build();
        assert_eq!(inner.len(), PFKEY_MSG_MAXSZ);
        let w = wrap(&inner, 7);
        assert_eq!(w.len(), HDR_LEN + PFKEY_MSG_MAXSZ);
        assert!(super::super::Msg::parse(&w).is_ok());
        assert_eq!(unwrap_promisc(&w), Some(&inner[..]));
    }

    #[test]
    fn refuses_non_copies() {
        // Our own 16-byte mode switch echoed back.
        let echo = TestMsg::new(SADB_X_PROMISC, 1).build();
        assert_eq!(unwrap_promisc(&echo), None);
        assert_eq!(promisc_writer_pid(&echo), None);
        // Not X_PROMISC.
        let inner = TestMsg::new(SADB_ADD, 2).build();
        let mut w = wrap(&inner, 1);
        w[1] = SADB_ADD;
        assert_eq!(unwrap_promisc(&w), None);
        // Bad outer version.
        let mut w = wrap(&inner, 1);
        w[0] = 1;
        assert_eq!(unwrap_promisc(&w), None);
        // Outer length disagreeing with the buffer.
        let mut w = wrap(&inner, 1);
        w.extend_from_slice(&[0; 8]);
        assert_eq!(unwrap_promisc(&w), None);
        // Inner length disagreeing with what follows.
        let mut inner2 = TestMsg::new(SADB_ADD, 2).sa(1, 1, 0, 0).build();
        inner2[4] = 2;
        assert_eq!(unwrap_promisc(&wrap(&inner2, 1)), None);
        assert_eq!(unwrap_promisc(&[]), None);
        assert_eq!(unwrap_promisc(&[2, 11]), None);
    }
}
