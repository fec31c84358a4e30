//! Turning kernel output into requests a slave's kernel accepts
//! (reference §11.2 step 6, §11.5, D-30).

use super::build::rebuild;
use super::consts::*;
use super::{Msg, PfkeyError};

/// The extensions a snapshot ADD keeps: those the kernel both imports on
/// ADD and may send back in its answer to one. After a successful ADD,
/// OpenBSD answers the writer with the request and first checks every
/// extension still in it against the ADD answer's allowed set
/// (`sadb_exts_allowed_out`, sys/net/pfkeyv2_parsemessage.c rev. 1.64,
/// checked in pfkeyv2.c rev. 1.272): X_LIFETIME_LASTUSE, X_REPLAY and
/// X_COUNTER are accepted on the way in but not out, so the SA would be
/// installed and write(2) would still fail with EPERM. ADD imports none of
/// the three (they describe the master's traffic), so nothing is lost.
/// Everything else a dump record may carry (X_MTU, X_SA2, X_DST2,
/// X_SATYPE2, …) would make the slave's kernel refuse the whole ADD (D-30).
pub const SNAPSHOT_ADD_KEEP: ExtSet = ADD_ALLOWED.minus(ExtSet::of(&[
    SADB_X_EXT_COUNTER,
    SADB_X_EXT_REPLAY,
    SADB_X_EXT_LIFETIME_LASTUSE,
]));

/// Turns an UPDATE into an ADD in place, as the original does: the slaves
/// never saw the larval SA the UPDATE completes. Other messages, and buffers
/// too short to hold a type byte, are left alone.
///
/// This changes only the type; an UPDATE that carries ADDRESS_PROXY (allowed
/// on UPDATE, refused on ADD) needs [`dump_to_add`], which drops it.
pub fn update_to_add(buf: &mut [u8]) {
    if let Some(t) = buf.get_mut(1) {
        if *t == SADB_UPDATE {
            *t = SADB_ADD;
        }
    }
}

/// Writes to `out` an ADD built from an SADB dump record (or an ADD/UPDATE),
/// keeping only [`SNAPSHOT_ADD_KEEP`] extensions in their original order,
/// with errno and reserved cleared and seq/pid kept. Returns its length.
pub fn dump_to_add(record: &[u8], out: &mut [u8]) -> Result<usize, PfkeyError> {
    let msg = Msg::parse(record)?;
    match msg.msg_type() {
        SADB_DUMP | SADB_ADD | SADB_UPDATE => rebuild(
            &msg,
            SADB_ADD,
            SNAPSHOT_ADD_KEEP,
            ADD_REQUIRED,
            false,
            msg.seq(),
            msg.pid(),
            out,
        ),
        t => Err(PfkeyError::WrongType(t)),
    }
}

/// The extensions an UPDATE of a mature SA keeps for a slave: what such an
/// UPDATE changes (lifetimes, addresses with ADDRESS_PROXY as the new
/// destination, X_UDPENCAP, X_TAG, X_TAP, X_IFACE) and names it by. Keys
/// and identities are refused on a mature SA (`EINVAL`); X_COUNTER and
/// X_REPLAY are accepted on UPDATE but not allowed in its answer (`EPERM`,
/// pfkeyv2.c rev. 1.272); LIFETIME_CURRENT holds the master's counters.
pub const UPDATE_MOVE_KEEP: ExtSet = ExtSet::of(&[
    SADB_EXT_SA,
    SADB_EXT_LIFETIME_HARD,
    SADB_EXT_LIFETIME_SOFT,
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_EXT_ADDRESS_PROXY,
    SADB_X_EXT_UDPENCAP,
    SADB_X_EXT_TAG,
    SADB_X_EXT_TAP,
    SADB_X_EXT_IFACE,
    SADB_X_EXT_RDOMAIN,
]);

/// What UPDATE requires.
const UPDATE_REQUIRED: ExtSet =
    ExtSet::of(&[SADB_EXT_SA, SADB_EXT_ADDRESS_SRC, SADB_EXT_ADDRESS_DST]);

/// Whether an UPDATE completes a larval SA (GETSPI then UPDATE), which a
/// slave never saw and must ADD, rather than changing a mature one. Only
/// a larval SA takes keys, and an IPcomp SA (none of its own) changes
/// address only with ADDRESS_PROXY.
pub fn completes_larval(msg: &Msg<'_>) -> bool {
    msg.find(SADB_EXT_KEY_AUTH).is_some()
        || msg.find(SADB_EXT_KEY_ENCRYPT).is_some()
        || (msg.satype() == SADB_X_SATYPE_IPCOMP && msg.find(SADB_EXT_ADDRESS_PROXY).is_none())
}

/// Writes to `out` what a slave writes for a master's message `msg`, the
/// one rewrite our master applies to what it forwards and a slave of a
/// legacy (C) master applies on receipt: dump records and ADDs become
/// [`dump_to_add`] ADDs, an UPDATE that [completes a larval
/// SA](completes_larval) too, any other UPDATE stays one with
/// [`UPDATE_MOVE_KEEP`] (a MOBIKE or NAT-T move reaches the slave), SPD
/// records become [`spd_dump_to_addflow`] X_ADDFLOWs; the rest is copied.
/// Returns its length.
pub fn for_slave(msg: &[u8], out: &mut [u8]) -> Result<usize, PfkeyError> {
    let m = Msg::parse(msg)?;
    match m.msg_type() {
        SADB_DUMP | SADB_ADD => dump_to_add(msg, out),
        SADB_UPDATE if completes_larval(&m) => dump_to_add(msg, out),
        SADB_UPDATE => rebuild(
            &m,
            SADB_UPDATE,
            UPDATE_MOVE_KEEP,
            UPDATE_REQUIRED,
            false,
            m.seq(),
            m.pid(),
            out,
        ),
        SADB_X_SPDDUMP | SADB_X_ADDFLOW => spd_dump_to_addflow(msg, out),
        _ => {
            let b = m.bytes();
            let dst = out.get_mut(..b.len()).ok_or(PfkeyError::BufferTooSmall)?;
            dst.copy_from_slice(b);
            Ok(b.len())
        }
    }
}

/// The planted bug of [`dump_to_add`]: the keep set before issue 19, with
/// X_REPLAY and X_LIFETIME_LASTUSE, which OpenBSD answers with EPERM.
#[cfg(feature = "planted-bugs")]
pub fn dump_to_add_with_counters(record: &[u8], out: &mut [u8]) -> Result<usize, PfkeyError> {
    let msg = Msg::parse(record)?;
    let keep = ADD_ALLOWED.minus(ExtSet::of(&[SADB_X_EXT_COUNTER]));
    rebuild(
        &msg,
        SADB_ADD,
        keep,
        ADD_REQUIRED,
        false,
        msg.seq(),
        msg.pid(),
        out,
    )
}

/// The extensions of an SA bundle's X_GRPSPIS taken from a dump record.
const GROUP_KEEP: ExtSet = ExtSet::of(&[
    SADB_EXT_SA,
    SADB_EXT_ADDRESS_DST,
    SADB_X_EXT_SA2,
    SADB_X_EXT_DST2,
    SADB_X_EXT_SATYPE2,
]);

/// Whether a dump record is the first SA of a bundle (it carries the next
/// SA's X_SA2, X_DST2 and X_SATYPE2).
pub fn is_grouped(record: &Msg<'_>) -> bool {
    record.find(SADB_X_EXT_SA2).is_some()
        && record.find(SADB_X_EXT_DST2).is_some()
        && record.find(SADB_X_EXT_SATYPE2).is_some()
}

/// Writes to `out` the X_GRPSPIS that re-creates the bundle a dump record
/// names with its own X_SA2, X_DST2 and X_SATYPE2 (which ADD refuses, so a
/// snapshot's ADD loses the grouping and the outbound path would skip the
/// next SA: IPcomp without its ESP, AH without its ESP). An X_RDOMAIN of
/// the record (dom1 != dom2) becomes (dom1, dom1): the dump does not say
/// the second SA's domain, taken to be the first's. Returns its length.
pub fn build_group(
    record: &Msg<'_>,
    seq: u32,
    pid: u32,
    out: &mut [u8],
) -> Result<usize, PfkeyError> {
    match record.msg_type() {
        SADB_DUMP | SADB_ADD | SADB_UPDATE | SADB_X_GRPSPIS => {}
        t => return Err(PfkeyError::WrongType(t)),
    }
    let required = GROUP_KEEP;
    let n = rebuild(
        record,
        SADB_X_GRPSPIS,
        GROUP_KEEP,
        required,
        false,
        seq,
        pid,
        out,
    )?;
    let Some(r) = record
        .find(SADB_X_EXT_RDOMAIN)
        .and_then(|e| super::RdomainExt::new(e).ok())
    else {
        return Ok(n);
    };
    let mut ext = [0u8; 8];
    ext[0..2].copy_from_slice(&1u16.to_ne_bytes());
    ext[2..4].copy_from_slice(&SADB_X_EXT_RDOMAIN.to_ne_bytes());
    ext[4..6].copy_from_slice(&r.dom1().to_ne_bytes());
    ext[6..8].copy_from_slice(&r.dom1().to_ne_bytes());
    let end = n + ext.len();
    if end > PFKEY_MSG_MAXSZ {
        return Err(PfkeyError::TooLong);
    }
    out.get_mut(n..end)
        .ok_or(PfkeyError::BufferTooSmall)?
        .copy_from_slice(&ext);
    let units = u16::try_from(end / CHUNK).map_err(|_| PfkeyError::TooLong)?;
    out[4..6].copy_from_slice(&units.to_ne_bytes());
    Ok(end)
}

/// Writes to `out` an X_ADDFLOW built from an SPD dump record (or an
/// X_ADDFLOW), keeping only the extensions the kernel allows on X_ADDFLOW.
/// Returns its length.
pub fn spd_dump_to_addflow(record: &[u8], out: &mut [u8]) -> Result<usize, PfkeyError> {
    let msg = Msg::parse(record)?;
    match msg.msg_type() {
        SADB_X_SPDDUMP | SADB_X_ADDFLOW => rebuild(
            &msg,
            SADB_X_ADDFLOW,
            ADDFLOW_ALLOWED,
            FLOW_REQUIRED,
            false,
            msg.seq(),
            msg.pid(),
            out,
        ),
        t => Err(PfkeyError::WrongType(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use core::net::{IpAddr, Ipv4Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn update_becomes_add_in_place() {
        let mut b = TestMsg::new(SADB_UPDATE, 2).sa(1, 1, 0, 0).build();
        let before = b.clone();
        update_to_add(&mut b);
        assert_eq!(b[1], SADB_ADD);
        assert_eq!(b[2..], before[2..]);
        for t in (0..=SADB_MAX).filter(|&t| t != SADB_UPDATE) {
            let mut b = TestMsg::new(t, 2).build();
            update_to_add(&mut b);
            assert_eq!(b[1], t);
        }
        update_to_add(&mut []);
        let mut one = [2u8];
        update_to_add(&mut one);
    }

    fn full_dump_record() -> std::vec::Vec<u8> {
        TestMsg::new(SADB_DUMP, SADB_SATYPE_ESP)
            .sa(0xabcd, SADB_SASTATE_MATURE, 3, 12)
            .lifetime(SADB_EXT_LIFETIME_CURRENT, 0, 100, 1_700_000_000, 0)
            .lifetime(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0)
            .lifetime(SADB_X_EXT_LIFETIME_LASTUSE, 0, 0, 0, 5)
            .addr(SADB_EXT_ADDRESS_SRC, A, 0)
            .addr(SADB_EXT_ADDRESS_DST, B, 0)
            .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
            .key(SADB_EXT_KEY_ENCRYPT, 128, &[2; 16])
            .ext(SADB_X_EXT_SA2, &[0; 12])
            .addr(SADB_X_EXT_DST2, B, 0)
            .proto(SADB_X_EXT_SATYPE2, SADB_SATYPE_AH, 0)
            .ext(SADB_X_EXT_UDPENCAP, &[0x11, 0x94, 0, 0])
            .ext(SADB_X_EXT_REPLAY, &[0; 12])
            .ext(SADB_X_EXT_MTU, &1400u32.to_ne_bytes())
            .rdomain(0, 1)
            .ext(SADB_X_EXT_COUNTER, &[7; 68])
            .build()
    }

    #[test]
    fn dump_record_to_add() {
        let rec = full_dump_record();
        let mut out = [0u8; 4096];
        let n = dump_to_add(&rec, &mut out).unwrap();
        let m = Msg::parse(&out[..n]).unwrap();
        assert_eq!(m.msg_type(), SADB_ADD);
        assert_eq!(m.satype(), SADB_SATYPE_ESP);
        assert_eq!(m.len_bytes(), n);
        assert!(m.check_extensions().is_ok());
        assert_eq!(ext_types(&out[..n]), [1, 2, 3, 5, 6, 8, 9, 31, 37]);
        for t in [
            SADB_X_EXT_REPLAY,
            SADB_X_EXT_LIFETIME_LASTUSE,
            SADB_X_EXT_MTU,
            SADB_X_EXT_SA2,
            SADB_X_EXT_DST2,
            SADB_X_EXT_SATYPE2,
            SADB_X_EXT_COUNTER,
        ] {
            assert!(m.find(t).is_none(), "{t}");
        }
        // Kept extensions are byte-identical.
        let orig = Msg::parse(&rec).unwrap();
        for e in m.extensions() {
            let e = e.unwrap();
            assert_eq!(orig.find(e.ext_type()).unwrap().bytes(), e.bytes());
        }
    }

    #[test]
    fn dump_to_add_errors() {
        let mut out = [0u8; 4096];
        let flow = TestMsg::new(SADB_X_SPDDUMP, 2).build();
        assert_eq!(dump_to_add(&flow, &mut out), Err(PfkeyError::WrongType(16)));
        let no_sa = TestMsg::new(SADB_DUMP, 2).addr(6, B, 0).build();
        assert_eq!(dump_to_add(&no_sa, &mut out), Err(PfkeyError::Missing(1)));
        assert_eq!(dump_to_add(&[0; 8], &mut out), Err(PfkeyError::Short));
        let rec = full_dump_record();
        assert_eq!(
            dump_to_add(&rec, &mut out[..100]),
            Err(PfkeyError::BufferTooSmall)
        );
    }

    #[test]
    fn update_with_proxy_to_add() {
        let upd = TestMsg::new(SADB_UPDATE, SADB_SATYPE_AH)
            .seq(3)
            .pid(99)
            .sa(5, SADB_SASTATE_MATURE, 3, 0)
            .addr(SADB_EXT_ADDRESS_SRC, A, 0)
            .addr(SADB_EXT_ADDRESS_DST, B, 0)
            .addr(SADB_EXT_ADDRESS_PROXY, A, 0)
            .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
            .build();
        let mut out = [0u8; 512];
        let n = dump_to_add(&upd, &mut out).unwrap();
        let m = Msg::parse(&out[..n]).unwrap();
        assert_eq!((m.msg_type(), m.seq(), m.pid()), (SADB_ADD, 3, 99));
        assert_eq!(ext_types(&out[..n]), [1, 5, 6, 8]);
    }

    #[test]
    fn dump_record_to_group() {
        let rec = full_dump_record();
        let m = Msg::parse(&rec).unwrap();
        assert!(is_grouped(&m));
        let mut out = [0u8; 1024];
        let n = build_group(&m, 7, 42, &mut out).unwrap();
        let g = Msg::parse(&out[..n]).unwrap();
        assert_eq!((g.msg_type(), g.seq(), g.pid()), (SADB_X_GRPSPIS, 7, 42));
        assert_eq!(g.satype(), SADB_SATYPE_ESP);
        assert!(g.check_extensions().is_ok());
        assert_eq!(ext_types(&out[..n]), [1, 6, 23, 24, 35, 37]);
        let rd = super::super::RdomainExt::new(g.find(SADB_X_EXT_RDOMAIN).unwrap()).unwrap();
        assert_eq!((rd.dom1(), rd.dom2()), (0, 0));
        for t in [
            SADB_EXT_SA,
            SADB_X_EXT_SA2,
            SADB_X_EXT_DST2,
            SADB_X_EXT_SATYPE2,
        ] {
            assert_eq!(g.find(t).unwrap().bytes(), m.find(t).unwrap().bytes());
        }
        // An ungrouped record has no bundle to re-create.
        let mut plain = [0u8; 1024];
        let p = dump_to_add(&rec, &mut plain).unwrap();
        let pm = Msg::parse(&plain[..p]).unwrap();
        assert!(!is_grouped(&pm));
        assert_eq!(
            build_group(&pm, 1, 1, &mut out),
            Err(PfkeyError::Missing(SADB_X_EXT_SA2))
        );
        assert!(build_group(&m, 1, 1, &mut out[..40]).is_err());
    }

    #[test]
    fn for_slave_keeps_moves_as_updates() {
        let mut out = [0u8; 1024];
        // A MOBIKE move: no keys, the new destination in ADDRESS_PROXY.
        let mv = TestMsg::new(SADB_UPDATE, SADB_SATYPE_ESP)
            .seq(4)
            .pid(99)
            .sa(5, SADB_SASTATE_MATURE, 3, 12)
            .lifetime(SADB_EXT_LIFETIME_CURRENT, 0, 100, 1_700_000_000, 0)
            .addr(SADB_EXT_ADDRESS_SRC, A, 0)
            .addr(SADB_EXT_ADDRESS_DST, B, 0)
            .addr(SADB_EXT_ADDRESS_PROXY, A, 0)
            .ext(SADB_X_EXT_UDPENCAP, &[0x11, 0x95, 0, 0])
            .ext(SADB_X_EXT_REPLAY, &[0; 12])
            .ext(SADB_X_EXT_COUNTER, &[7; 68])
            .build();
        let n = for_slave(&mv, &mut out).unwrap();
        let m = Msg::parse(&out[..n]).unwrap();
        assert_eq!((m.msg_type(), m.seq(), m.pid()), (SADB_UPDATE, 4, 99));
        assert_eq!(ext_types(&out[..n]), [1, 5, 6, 7, 31]);
        // A larval completion (keys) becomes an ADD.
        let done = TestMsg::new(SADB_UPDATE, SADB_SATYPE_ESP)
            .sa(6, SADB_SASTATE_MATURE, 3, 12)
            .addr(SADB_EXT_ADDRESS_SRC, A, 0)
            .addr(SADB_EXT_ADDRESS_DST, B, 0)
            .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
            .build();
        let n = for_slave(&done, &mut out).unwrap();
        assert_eq!(out[1], SADB_ADD);
        assert_eq!(ext_types(&out[..n]), [1, 5, 6, 8]);
        // So does an IPcomp completion, which has no keys.
        let ipcomp = TestMsg::new(SADB_UPDATE, SADB_X_SATYPE_IPCOMP)
            .sa(0x4321, SADB_SASTATE_MATURE, 0, 2)
            .addr(SADB_EXT_ADDRESS_SRC, A, 0)
            .addr(SADB_EXT_ADDRESS_DST, B, 0)
            .build();
        for_slave(&ipcomp, &mut out).unwrap();
        assert_eq!(out[1], SADB_ADD);
        // Dump records as for the snapshot; DELETE copied as is.
        let n = for_slave(&full_dump_record(), &mut out).unwrap();
        assert_eq!(ext_types(&out[..n]), [1, 2, 3, 5, 6, 8, 9, 31, 37]);
        let del = TestMsg::new(SADB_DELETE, 2)
            .sa(1, 1, 0, 0)
            .addr(6, B, 0)
            .build();
        let n = for_slave(&del, &mut out).unwrap();
        assert_eq!(&out[..n], &del[..]);
        let spd = TestMsg::new(SADB_X_SPDDUMP, SADB_SATYPE_ESP)
            .flow(SADB_X_FLOW_TYPE_REQUIRE, IPSP_DIRECTION_IN, 0, B, A)
            .ext(SADB_X_EXT_POLICY, &[0; 4])
            .build();
        let n = for_slave(&spd, &mut out).unwrap();
        assert_eq!(out[1], SADB_X_ADDFLOW);
        assert!(Msg::parse(&out[..n])
            .unwrap()
            .find(SADB_X_EXT_POLICY)
            .is_none());
        assert!(for_slave(&del, &mut out[..8]).is_err());
    }

    #[test]
    fn spd_record_to_addflow() {
        let rec = TestMsg::new(SADB_X_SPDDUMP, SADB_SATYPE_ESP)
            .addr(SADB_EXT_ADDRESS_SRC, A, 0)
            .addr(SADB_EXT_ADDRESS_DST, B, 0)
            .flow(SADB_X_FLOW_TYPE_REQUIRE, IPSP_DIRECTION_IN, 0, B, A)
            .ext(SADB_EXT_IDENTITY_SRC, &[0; 12])
            .ext(SADB_X_EXT_POLICY, &[0; 4])
            .rdomain(0, 0)
            .build();
        let mut out = [0u8; 1024];
        let n = spd_dump_to_addflow(&rec, &mut out).unwrap();
        let m = Msg::parse(&out[..n]).unwrap();
        assert_eq!(m.msg_type(), SADB_X_ADDFLOW);
        assert_eq!(ext_types(&out[..n]), [5, 6, 20, 19, 21, 17, 22, 18, 10, 37]);
        let sa = TestMsg::new(SADB_DUMP, 2).build();
        assert_eq!(
            spd_dump_to_addflow(&sa, &mut out),
            Err(PfkeyError::WrongType(10))
        );
        let noflow = TestMsg::new(SADB_X_SPDDUMP, 2).addr(5, A, 0).build();
        assert_eq!(
            spd_dump_to_addflow(&noflow, &mut out),
            Err(PfkeyError::Missing(SADB_X_EXT_SRC_MASK))
        );
    }
}
