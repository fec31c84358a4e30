//! The reply a pfkey client gets for each message it writes.
//!
//! The real kernel answers a failed request to the writer alone with the
//! request's header and `sadb_msg_errno` set, and broadcasts a successful
//! one (reference §13.2). The devhost answers every request to its writer
//! only (broadcasts are not modelled, as in the simulated kernel; sasyncd
//! only looks at replies for its error log, §11.2):
//!
//! * failure: the 16-byte header of the request, `sadb_msg_len` 2, errno
//!   set (the low byte of the OpenBSD errno); a header the stream could
//!   not take (wrong version, length under 16 bytes) is echoed the same
//!   way with version 2;
//! * GETSPI: the header (errno 0) and an SA extension with the reserved
//!   SPI in LARVAL state;
//! * GET: the SA as the kernel exports it, with the request's seq and pid;
//! * anything else: the 16-byte header, `sadb_msg_len` 2, errno 0.

use sasyncd_core::pfkey::consts::{CHUNK, HDR_LEN, PF_KEY_V2, SADB_EXT_SA, SADB_SASTATE_LARVAL};
use sasyncd_core::pfkey::set_pid_seq;

use crate::errno::Errno;
use crate::kernel::WriteOk;
use crate::pfmsg;

/// The reply to `request` (at least a header long) given the kernel's
/// verdict.
pub fn reply(request: &[u8], verdict: &Result<WriteOk, Errno>) -> Vec<u8> {
    let mut h = [0u8; HDR_LEN];
    let n = request.len().min(HDR_LEN);
    h[..n].copy_from_slice(&request[..n]);
    match verdict {
        Err(e) => header_with_errno(&h, *e),
        Ok(WriteOk {
            record: Some(rec), ..
        }) => {
            let mut r = rec.clone();
            let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
            let pid = u32::from_ne_bytes([h[12], h[13], h[14], h[15]]);
            set_pid_seq(&mut r, pid, seq);
            r
        }
        Ok(WriteOk { spi: Some(spi), .. }) => {
            let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
            let pid = u32::from_ne_bytes([h[12], h[13], h[14], h[15]]);
            let sa = [pfmsg::sa_ext(
                SADB_EXT_SA,
                *spi,
                SADB_SASTATE_LARVAL,
                0,
                0,
                0,
            )];
            pfmsg::message(h[1], h[3], seq, pid, &sa)
        }
        Ok(_) => header_with_errno(&h, Errno(0)),
    }
}

/// `header` alone (`sadb_msg_len` 2) with `sadb_msg_errno` = `e`, and
/// version 2 whatever the request's was, so the reader's framing holds.
pub fn header_with_errno(header: &[u8; HDR_LEN], e: Errno) -> Vec<u8> {
    let mut r = header.to_vec();
    r[0] = PF_KEY_V2;
    r[2] = e.0 as u8;
    r[4..6].copy_from_slice(&((HDR_LEN / CHUNK) as u16).to_ne_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasyncd_core::pfkey::consts::*;
    use sasyncd_core::pfkey::{Msg, SaExt};

    fn req() -> Vec<u8> {
        pfmsg::message(
            SADB_DELETE,
            SADB_SATYPE_ESP,
            7,
            4242,
            &[pfmsg::sa_ext(SADB_EXT_SA, 1, 1, 0, 0, 0)],
        )
    }

    #[test]
    fn failure_echoes_the_header_with_errno() {
        let r = reply(&req(), &Err(Errno::ESRCH));
        let m = Msg::parse(&r).unwrap();
        assert_eq!(r.len(), 16);
        assert_eq!((m.msg_type(), m.errno(), m.seq(), m.pid()), (4, 3, 7, 4242));
        assert_eq!(m.satype(), SADB_SATYPE_ESP);
    }

    #[test]
    fn success_echoes_the_header() {
        let r = reply(&req(), &Ok(WriteOk::default()));
        let mut want = req()[..16].to_vec();
        want[4..6].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(r, want);
        assert_eq!(Msg::parse(&r).unwrap().errno(), 0);
    }

    #[test]
    fn getspi_and_get_carry_their_results() {
        let ok = WriteOk {
            spi: Some(0xabcd),
            record: None,
        };
        let r = reply(&req(), &Ok(ok));
        let m = Msg::parse(&r).unwrap();
        let sa = SaExt::new(m.find(SADB_EXT_SA).unwrap()).unwrap();
        assert_eq!((sa.spi(), sa.state()), (0xabcd, SADB_SASTATE_LARVAL));
        let rec = pfmsg::message(SADB_GET, 2, 0, 0, &[pfmsg::sa_ext(1, 9, 1, 0, 0, 0)]);
        let ok = WriteOk {
            spi: None,
            record: Some(rec),
        };
        let m2 = reply(&req(), &Ok(ok));
        let m = Msg::parse(&m2).unwrap();
        assert_eq!((m.msg_type(), m.seq(), m.pid()), (SADB_GET, 7, 4242));
    }
}
