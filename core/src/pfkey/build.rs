//! Messages sasyncd writes itself, and the shared "copy a message keeping
//! only these extensions" routine the rewrites use.

use super::consts::*;
use super::msg::wr;
use super::repr::write_header;
use super::{Msg, PfkeyError};

/// The lowest type in `set`, for error reports.
fn lowest(set: ExtSet) -> u16 {
    set.0.trailing_zeros() as u16
}

/// Writes a new message of type `msg_type` (satype taken from `msg`) that
/// carries the first occurrence of each extension of `msg` whose type is in
/// `keep`, in message order, or in ascending type order when `sorted`.
/// Fails if a type in `required` is absent, if `msg`'s extensions are
/// malformed, or if the result would exceed `PFKEY_MSG_MAXSZ`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rebuild(
    msg: &Msg<'_>,
    msg_type: u8,
    keep: ExtSet,
    required: ExtSet,
    sorted: bool,
    seq: u32,
    pid: u32,
    out: &mut [u8],
) -> Result<usize, PfkeyError> {
    msg.check_extensions()?;
    let mut seen = ExtSet::EMPTY;
    let mut pos = HDR_LEN;
    let mut put = |pos: &mut usize, bytes: &[u8]| -> Result<(), PfkeyError> {
        let end = pos.checked_add(bytes.len()).ok_or(PfkeyError::TooLong)?;
        if end > PFKEY_MSG_MAXSZ {
            return Err(PfkeyError::TooLong);
        }
        if !wr(out, *pos, bytes) {
            return Err(PfkeyError::BufferTooSmall);
        }
        *pos = end;
        Ok(())
    };
    if sorted {
        // One walk notes where each kept type first occurs (offset 0 is the
        // header: absent), then the extensions go out in type order. A
        // `find` per type walked the message 40 times, on every entry a
        // slave marks or sweeps.
        let mut first = [0u32; 64];
        let mut at = HDR_LEN;
        for e in msg.extensions().map_while(Result::ok) {
            let t = e.ext_type();
            if keep.contains(t) && !seen.contains(t) {
                first[usize::from(t)] = u32::try_from(at).map_err(|_| PfkeyError::TooLong)?;
                seen = seen.with(t);
            }
            at += e.bytes().len();
        }
        let mut left = seen.0;
        while left != 0 {
            let t = left.trailing_zeros() as usize;
            left &= left - 1;
            let from = first[t] as usize;
            let units = msg
                .bytes()
                .get(from..from + 2)
                .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]));
            let bytes = msg
                .bytes()
                .get(from..from + usize::from(units) * CHUNK)
                .ok_or(PfkeyError::ExtTruncated)?;
            put(&mut pos, bytes)?;
        }
    } else {
        for e in msg.extensions().map_while(Result::ok) {
            let t = e.ext_type();
            if keep.contains(t) && !seen.contains(t) {
                put(&mut pos, e.bytes())?;
                seen = seen.with(t);
            }
        }
    }
    let missing = required.minus(seen);
    if missing != ExtSet::EMPTY {
        return Err(PfkeyError::Missing(lowest(missing)));
    }
    write_header(out, msg_type, 0, msg.satype(), pos, seq, pid)?;
    Ok(pos)
}

/// Writes the 16-byte X_PROMISC request that switches this socket's
/// promiscuous mode on (satype 1) or off (satype 0) (reference §11.1).
pub fn build_promisc(
    enable: bool,
    seq: u32,
    pid: u32,
    out: &mut [u8],
) -> Result<usize, PfkeyError> {
    // Header only: straight to the header writer, so a node (which sends
    // only these two) does not carry the extension encoder.
    write_header(out, SADB_X_PROMISC, 0, u8::from(enable), HDR_LEN, seq, pid)?;
    Ok(HDR_LEN)
}

/// Writes a 16-byte FLUSH request; satype 0 flushes all SAs and all flows.
pub fn build_flush(satype: u8, seq: u32, pid: u32, out: &mut [u8]) -> Result<usize, PfkeyError> {
    write_header(out, SADB_FLUSH, 0, satype, HDR_LEN, seq, pid)?;
    Ok(HDR_LEN)
}

/// Writes a DELETE for the SA described by `entry` (an ADD, UPDATE or SADB
/// dump record): its SA, ADDRESS_DST, and ADDRESS_SRC / X_RDOMAIN if present
/// — exactly what the kernel allows on DELETE.
pub fn build_delete(
    entry: &Msg<'_>,
    seq: u32,
    pid: u32,
    out: &mut [u8],
) -> Result<usize, PfkeyError> {
    rebuild(
        entry,
        SADB_DELETE,
        DELETE_ALLOWED,
        ADD_REQUIRED,
        false,
        seq,
        pid,
        out,
    )
}

/// Writes an X_DELFLOW for the flow described by `entry` (an X_ADDFLOW or
/// SPD dump record): its X_FLOW set and X_RDOMAIN if present — the kernel
/// refuses address and identity extensions on DELFLOW. The flow type
/// carries [`SADB_X_POLICYFLAGS_POLICY`]: OpenBSD silently ignores a non-static
/// request for a static flow (ipsecctl's; pfkeyv2.c rev. 1.272), and an
/// SPD dump does not say which flows are static.
pub fn build_delflow(
    entry: &Msg<'_>,
    seq: u32,
    pid: u32,
    out: &mut [u8],
) -> Result<usize, PfkeyError> {
    let n = rebuild(
        entry,
        SADB_X_DELFLOW,
        DELFLOW_ALLOWED,
        FLOW_REQUIRED,
        false,
        seq,
        pid,
        out,
    )?;
    let mut at = HDR_LEN;
    while at + EXT_HDR_LEN <= n {
        let len = usize::from(u16::from_ne_bytes([out[at], out[at + 1]])) * CHUNK;
        let t = u16::from_ne_bytes([out[at + 2], out[at + 3]]);
        if len == 0 {
            break;
        }
        if t == SADB_X_EXT_FLOW_TYPE && len >= 8 {
            out[at + 6] |= SADB_X_POLICYFLAGS_POLICY;
        }
        at += len;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use core::net::{IpAddr, Ipv4Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn promisc_bytes() {
        let mut out = [0u8; 16];
        assert_eq!(build_promisc(true, 1, 4242, &mut out), Ok(16));
        #[cfg(target_endian = "little")]
        assert_eq!(
            out,
            [2, 0x0b, 0, 1, 2, 0, 0, 0, 1, 0, 0, 0, 0x92, 0x10, 0, 0]
        );
        let m = Msg::parse(&out).unwrap();
        assert_eq!(
            (m.msg_type(), m.satype(), m.seq(), m.pid()),
            (11, 1, 1, 4242)
        );
        build_promisc(false, 2, 4242, &mut out).unwrap();
        assert_eq!(Msg::parse(&out).unwrap().satype(), 0);
        assert_eq!(
            build_promisc(true, 1, 1, &mut [0u8; 15]),
            Err(PfkeyError::BufferTooSmall)
        );
    }

    #[test]
    fn flush_bytes() {
        let mut out = [0xffu8; 20];
        assert_eq!(build_flush(0, 1, 12345, &mut out), Ok(16));
        #[cfg(target_endian = "little")]
        assert_eq!(
            out[..16],
            [2, 9, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0x39, 0x30, 0, 0]
        );
        let m = Msg::parse(&out[..16]).unwrap();
        assert_eq!(
            (m.msg_type(), m.satype(), m.seq(), m.pid()),
            (9, 0, 1, 12345)
        );
        build_flush(SADB_SATYPE_ESP, 1, 1, &mut out).unwrap();
        assert_eq!(out[3], 2);
    }

    #[test]
    fn delete_from_add() {
        let add = TestMsg::new(SADB_ADD, SADB_SATYPE_ESP)
            .seq(5)
            .pid(77)
            .sa(0x1000, SADB_SASTATE_MATURE, 3, 12)
            .lifetime(SADB_EXT_LIFETIME_CURRENT, 0, 1, 2, 3)
            .addr(SADB_EXT_ADDRESS_SRC, A, 0)
            .addr(SADB_EXT_ADDRESS_DST, B, 0)
            .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
            .key(SADB_EXT_KEY_ENCRYPT, 128, &[2; 16])
            .rdomain(1, 1)
            .build();
        let mut out = [0u8; 4096];
        let n = build_delete(&Msg::parse(&add).unwrap(), 9, 4242, &mut out).unwrap();
        let m = Msg::parse(&out[..n]).unwrap();
        assert_eq!(
            (m.msg_type(), m.satype(), m.seq(), m.pid()),
            (SADB_DELETE, 2, 9, 4242)
        );
        assert_eq!(ext_types(&out[..n]), [1, 5, 6, 37]);
        assert_eq!(n, 16 + 16 + 24 + 24 + 8);
        // Without SRC and RDOMAIN it still works; without DST it does not.
        let bare = TestMsg::new(SADB_DUMP, 1)
            .sa(1, 1, 2, 0)
            .addr(6, B, 0)
            .build();
        let n = build_delete(&Msg::parse(&bare).unwrap(), 1, 1, &mut out).unwrap();
        assert_eq!(ext_types(&out[..n]), [1, 6]);
        let nodst = TestMsg::new(SADB_ADD, 1).sa(1, 1, 2, 0).build();
        assert_eq!(
            build_delete(&Msg::parse(&nodst).unwrap(), 1, 1, &mut out),
            Err(PfkeyError::Missing(SADB_EXT_ADDRESS_DST))
        );
        assert_eq!(
            build_delete(&Msg::parse(&add).unwrap(), 1, 1, &mut out[..40]),
            Err(PfkeyError::BufferTooSmall)
        );
    }

    #[test]
    fn delflow_from_spd_record() {
        let rec = TestMsg::new(SADB_X_SPDDUMP, SADB_SATYPE_ESP)
            .addr(SADB_EXT_ADDRESS_DST, B, 0)
            .flow(SADB_X_FLOW_TYPE_REQUIRE, IPSP_DIRECTION_OUT, 6, A, B)
            .ext(SADB_EXT_IDENTITY_DST, &[0; 12])
            .rdomain(2, 2)
            .build();
        let mut out = [0u8; 512];
        let n = build_delflow(&Msg::parse(&rec).unwrap(), 3, 4242, &mut out).unwrap();
        let m = Msg::parse(&out[..n]).unwrap();
        assert_eq!(m.msg_type(), SADB_X_DELFLOW);
        assert_eq!(ext_types(&out[..n]), [20, 19, 21, 17, 22, 18, 37]);
        // Static, so that the kernel does not ignore it for a static flow.
        let ft = super::super::ProtocolExt::new(m.find(SADB_X_EXT_FLOW_TYPE).unwrap()).unwrap();
        assert_eq!(ft.flags(), SADB_X_POLICYFLAGS_POLICY);
        let partial = TestMsg::new(SADB_X_SPDDUMP, 2)
            .proto(SADB_X_EXT_FLOW_TYPE, 3, 2)
            .build();
        assert_eq!(
            build_delflow(&Msg::parse(&partial).unwrap(), 1, 1, &mut out),
            Err(PfkeyError::Missing(SADB_X_EXT_SRC_MASK))
        );
    }

    #[test]
    fn rebuild_refuses_malformed_and_oversized() {
        let mut b = TestMsg::new(SADB_ADD, 2).sa(1, 1, 0, 0).build();
        b.extend_from_slice(&[9, 0, 6, 0, 0, 0, 0, 0]);
        fix_len(&mut b);
        let mut out = [0u8; 8192];
        assert_eq!(
            build_delete(&Msg::parse(&b).unwrap(), 1, 1, &mut out),
            Err(PfkeyError::ExtTruncated)
        );
        let big = TestMsg::new(SADB_ADD, 2)
            .sa(1, 1, 0, 0)
            .addr(6, B, 0)
            .ext(SADB_X_EXT_TAG, &[b'x'; 4100])
            .build();
        let keep = ADD_ALLOWED;
        assert_eq!(
            rebuild(
                &Msg::parse(&big).unwrap(),
                SADB_ADD,
                keep,
                ADD_REQUIRED,
                false,
                0,
                0,
                &mut out
            ),
            Err(PfkeyError::TooLong)
        );
    }
}
