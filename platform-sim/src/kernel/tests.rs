//! Kernel semantics per message type, promiscuous copies, dumps.

use std::net::IpAddr;

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{dump_to_add, records, sa_key, spd_dump_to_addflow, unwrap_promisc};

use super::*;
use crate::pfmsg::*;

const PID: u32 = 1000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn kernel() -> Kernel {
    Kernel::new(Rng::new(1))
}

fn add_msg(spi: u32, pid: u32) -> Vec<u8> {
    message(
        SADB_ADD,
        SADB_SATYPE_ESP,
        1,
        pid,
        &[
            sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 3, 12, 0),
            lifetime_ext(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0),
            addr_ext(SADB_EXT_ADDRESS_SRC, ip("10.0.0.1"), 0),
            addr_ext(SADB_EXT_ADDRESS_DST, ip("192.0.2.1"), 0),
            key_ext(SADB_EXT_KEY_AUTH, &[1; 20]),
            key_ext(SADB_EXT_KEY_ENCRYPT, &[2; 16]),
        ],
    )
}

fn key(spi: u32) -> SaKey {
    SaKey {
        satype: SADB_SATYPE_ESP,
        spi,
        dst: ip("192.0.2.1"),
        rdomain: 0,
    }
}

fn flow_msg(t: u8, ftype: u8, src: &str) -> Vec<u8> {
    let s = ip(src);
    let d = ip("192.0.2.0");
    let mut exts = vec![addr_ext(SADB_EXT_ADDRESS_DST, ip("192.0.2.1"), 0)];
    if t == SADB_X_DELFLOW {
        exts.clear();
    }
    exts.extend(flow_exts(
        ftype,
        IPSP_DIRECTION_OUT,
        0,
        (s, host_mask(s)),
        (d, host_mask(d)),
    ));
    message(t, SADB_SATYPE_ESP, 1, PID, &exts)
}

#[test]
fn add_get_delete() {
    let mut k = kernel();
    assert_eq!(k.write(&add_msg(0x1000, PID), PID), Ok(WriteOk::default()));
    assert_eq!(k.write(&add_msg(0x1000, PID), PID), Err(Errno::EEXIST));
    assert_eq!(k.sa_state(&key(0x1000)), Some(SADB_SASTATE_MATURE));
    let a = Msg::parse(&add_msg(0x1000, PID)).unwrap().bytes().to_vec();
    let mut out = [0u8; 4096];
    let n = build_delete(&Msg::parse(&a).unwrap(), 2, PID, &mut out).unwrap();
    let mut get = out[..n].to_vec();
    get[1] = SADB_GET;
    let rec = k.write(&get, PID).unwrap().record.unwrap();
    let m = Msg::parse(&rec).unwrap();
    assert_eq!(m.msg_type(), SADB_GET);
    assert_eq!(sa_key(&m), Some(key(0x1000)));
    assert!(m.find(SADB_EXT_KEY_ENCRYPT).is_some());
    assert_eq!(k.write(&out[..n], PID), Ok(WriteOk::default()));
    assert_eq!(k.write(&out[..n], PID), Err(Errno::ESRCH));
    assert_eq!(k.write(&get, PID), Err(Errno::ESRCH));
    assert_eq!(k.sa_count(), 0);
    assert_eq!(k.stats().refused[&Errno::ESRCH], 2);
}

#[test]
fn header_validation() {
    let mut k = kernel();
    let good = add_msg(0x1000, PID);
    assert_eq!(k.write(&good, PID + 1), Err(Errno::EINVAL), "foreign pid");
    let mut b = good.clone();
    b[6] = 1;
    assert_eq!(k.write(&b, PID), Err(Errno::EINVAL), "reserved");
    let mut b = good.clone();
    b[0] = 1;
    assert_eq!(k.write(&b, PID), Err(Errno::EINVAL), "version");
    let mut b = good.clone();
    b[2] = 5;
    assert_eq!(k.write(&b, PID), Err(Errno::EINVAL), "errno");
    assert_eq!(
        k.write(&good[..good.len() - 8], PID),
        Err(Errno::EINVAL),
        "length"
    );
    assert_eq!(k.write(&good[..8], PID), Err(Errno::EINVAL), "short");
    let mut b = good.clone();
    b[1] = 17;
    assert_eq!(k.write(&b, PID), Err(Errno::EINVAL), "type");
    let mut b = good.clone();
    b[3] = SADB_SATYPE_RSVP;
    assert_eq!(k.write(&b, PID), Err(Errno::EINVAL), "satype");
    let big = message(SADB_ADD, 2, 1, PID, &[ext(SADB_X_EXT_TAG, &[b'x'; 4100])]);
    assert_eq!(k.write(&big, PID), Err(Errno::EMSGSIZE));
    assert_eq!(k.stats().valid_writes, 0);
}

#[test]
fn extension_validation() {
    let mut k = kernel();
    let sa = sa_ext(SADB_EXT_SA, 0x2000, SADB_SASTATE_MATURE, 3, 0, 0);
    let dst = addr_ext(SADB_EXT_ADDRESS_DST, ip("192.0.2.1"), 0);
    let add = |exts: &[ExtRepr<'_>]| message(SADB_ADD, SADB_SATYPE_AH, 1, PID, exts);
    // Not allowed on ADD: X_MTU, X_SA2 (D-30), ADDRESS_PROXY.
    for bad in [
        ext(SADB_X_EXT_MTU, &1400u32.to_ne_bytes()),
        sa_ext(SADB_X_EXT_SA2, 1, 1, 0, 0, 0),
        addr_ext(SADB_EXT_ADDRESS_PROXY, ip("10.0.0.9"), 0),
    ] {
        assert_eq!(k.write(&add(&[sa, dst, bad]), PID), Err(Errno::EINVAL));
    }
    // Duplicate, missing required, unknown type, zero length.
    assert_eq!(k.write(&add(&[sa, dst, dst]), PID), Err(Errno::EINVAL));
    assert_eq!(
        k.write(&add(std::slice::from_ref(&sa)), PID),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        k.write(&add(&[sa, dst, ext(41, &[0; 4])]), PID),
        Err(Errno::EINVAL)
    );
    let mut z = add(&[sa, dst]);
    z.extend_from_slice(&[0; 8]);
    let units = (z.len() / 8) as u16;
    z[4..6].copy_from_slice(&units.to_ne_bytes());
    assert_eq!(k.write(&z, PID), Err(Errno::EINVAL));
    // Larval state refused on ADD; bad sockaddr refused.
    let larval = sa_ext(SADB_EXT_SA, 0x2000, SADB_SASTATE_LARVAL, 3, 0, 0);
    assert_eq!(k.write(&add(&[larval, dst]), PID), Err(Errno::EINVAL));
    // A sockaddr whose sa_len no family has.
    let mut bad_bytes = exts_bytes(&[dst]);
    bad_bytes[8] = 3;
    let bad_dst = ExtRepr::Raw(&bad_bytes);
    assert_eq!(k.write(&add(&[sa, bad_dst]), PID), Err(Errno::EINVAL));
    assert_eq!(k.write(&add(&[sa, dst]), PID), Ok(WriteOk::default()));
    // FLUSH takes no extensions.
    let f = message(SADB_FLUSH, 0, 1, PID, &[ext(SADB_X_EXT_TAG, &[0; 4])]);
    assert_eq!(k.write(&f, PID), Err(Errno::EINVAL));
    assert_eq!(k.sa_count(), 1);
}

fn getspi(k: &mut Kernel, min: u32, max: u32) -> Result<WriteOk, Errno> {
    let m = message(
        SADB_GETSPI,
        SADB_SATYPE_ESP,
        1,
        PID,
        &[
            addr_ext(SADB_EXT_ADDRESS_SRC, ip("10.0.0.1"), 0),
            addr_ext(SADB_EXT_ADDRESS_DST, ip("192.0.2.1"), 0),
            spirange_ext(min, max),
        ],
    );
    k.write(&m, PID)
}

#[test]
fn getspi_then_update() {
    let mut k = kernel();
    let spi = getspi(&mut k, 0x100, 0xffff_ffff).unwrap().spi.unwrap();
    assert!(spi >= 0x100);
    assert_eq!(k.sa_state(&key(spi)), Some(SADB_SASTATE_LARVAL));
    // The dump shows it larval, without keys; the core refuses to forward it.
    let dump = k.sadb_dump(0);
    let rec = records(&dump).next().unwrap().unwrap();
    assert!(rec.find(SADB_EXT_KEY_ENCRYPT).is_none());
    let mut upd = add_msg(spi, PID);
    upd[1] = SADB_UPDATE;
    assert_eq!(k.write(&upd, PID), Ok(WriteOk::default()));
    assert_eq!(k.sa_state(&key(spi)), Some(SADB_SASTATE_MATURE));
    // Keys cannot change on a mature SA; lifetimes can.
    assert_eq!(k.write(&upd, PID), Err(Errno::EINVAL));
    let upd2 = message(
        SADB_UPDATE,
        SADB_SATYPE_ESP,
        2,
        PID,
        &[
            sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 3, 12, 0),
            lifetime_ext(SADB_EXT_LIFETIME_HARD, 0, 0, 99, 0),
            addr_ext(SADB_EXT_ADDRESS_SRC, ip("10.0.0.1"), 0),
            addr_ext(SADB_EXT_ADDRESS_DST, ip("192.0.2.1"), 0),
        ],
    );
    assert_eq!(k.write(&upd2, PID), Ok(WriteOk::default()));
    // UPDATE of an absent SA.
    let mut other = upd.clone();
    other[1] = SADB_UPDATE;
    assert_eq!(
        k.write(&add_msg(7777, PID)[..], PID),
        Ok(WriteOk::default())
    );
    let mut absent = add_msg(8888, PID);
    absent[1] = SADB_UPDATE;
    assert_eq!(k.write(&absent, PID), Err(Errno::ESRCH));
    // A single-SPI range that is taken.
    assert_eq!(getspi(&mut k, spi, spi), Err(Errno::EEXIST));
    assert_eq!(getspi(&mut k, 0x2000, 0x1000), Err(Errno::EINVAL));
}

#[test]
fn flush_and_flows() {
    let mut k = kernel();
    k.write(&add_msg(0x1000, PID), PID).unwrap();
    let mut ah = add_msg(0x1001, PID);
    ah[3] = SADB_SATYPE_AH;
    k.write(&ah, PID).unwrap();
    assert_eq!(
        k.write(&flow_msg(SADB_X_ADDFLOW, 3, "10.1.0.0"), PID),
        Ok(WriteOk::default())
    );
    // Same selectors, other type: replaces.
    k.write(&flow_msg(SADB_X_ADDFLOW, 1, "10.1.0.0"), PID)
        .unwrap();
    k.write(&flow_msg(SADB_X_ADDFLOW, 3, "10.2.0.0"), PID)
        .unwrap();
    assert_eq!(k.flow_count(), 2);
    assert_eq!(
        k.write(&flow_msg(SADB_X_ADDFLOW, 9, "10.3.0.0"), PID),
        Err(Errno::EINVAL)
    );
    // DELFLOW refuses address extensions, and ESRCH when absent.
    let mut with_addr = flow_msg(SADB_X_ADDFLOW, 3, "10.1.0.0");
    with_addr[1] = SADB_X_DELFLOW;
    assert_eq!(k.write(&with_addr, PID), Err(Errno::EINVAL));
    assert_eq!(
        k.write(&flow_msg(SADB_X_DELFLOW, 3, "10.1.0.0"), PID),
        Ok(WriteOk::default())
    );
    assert_eq!(
        k.write(&flow_msg(SADB_X_DELFLOW, 3, "10.1.0.0"), PID),
        Err(Errno::ESRCH)
    );
    // FLUSH of one type keeps the rest and the flows.
    k.write(&message(SADB_FLUSH, SADB_SATYPE_AH, 1, PID, &[]), PID)
        .unwrap();
    assert_eq!((k.sa_count(), k.flow_count()), (1, 1));
    k.write(&message(SADB_FLUSH, 0, 1, PID, &[]), PID).unwrap();
    assert_eq!((k.sa_count(), k.flow_count()), (0, 0));
    assert_eq!(
        k.write(&message(SADB_FLUSH, 10, 1, PID, &[]), PID),
        Err(Errno::EINVAL)
    );
}

#[test]
fn expire_written_is_accepted_and_inert() {
    let mut k = kernel();
    k.write(&add_msg(0x1000, PID), PID).unwrap();
    let exp = message(
        SADB_EXPIRE,
        SADB_SATYPE_ESP,
        1,
        PID,
        &[
            sa_ext(SADB_EXT_SA, 0x1000, SADB_SASTATE_DYING, 3, 12, 0),
            addr_ext(SADB_EXT_ADDRESS_SRC, ip("10.0.0.1"), 0),
            addr_ext(SADB_EXT_ADDRESS_DST, ip("192.0.2.1"), 0),
        ],
    );
    assert_eq!(k.write(&exp, PID), Ok(WriteOk::default()));
    assert_eq!(k.sa_count(), 1);
    assert!(k.expire_sa(&key(0x1000)));
    assert!(!k.expire_sa(&key(0x1000)));
}

#[test]
fn promisc_copies_exact_bytes() {
    let mut k = kernel();
    let sasyncd = 4242;
    // Switching on by writing the 16-byte X_PROMISC; not copied to itself.
    let mut on = [0u8; 16];
    sasyncd_core::pfkey::build_promisc(true, 1, sasyncd, &mut on).unwrap();
    k.write(&on, sasyncd).unwrap();
    assert!(k.is_promisc(sasyncd));
    assert_eq!(k.read_promisc(sasyncd), None);
    let add = add_msg(0x1000, PID);
    k.write(&add, PID).unwrap();
    // A refused (but valid) request is copied too; an invalid one is not.
    k.write(&add, PID).unwrap_err();
    k.write(&add, PID + 1).unwrap_err();
    let c = k.read_promisc(sasyncd).unwrap();
    assert_eq!(c.len(), 16 + add.len());
    let mut hdr = vec![2u8, SADB_X_PROMISC, 0, 0];
    hdr.extend_from_slice(&((c.len() / 8) as u16).to_ne_bytes());
    hdr.extend_from_slice(&[0, 0]);
    hdr.extend_from_slice(&PID.to_ne_bytes());
    hdr.extend_from_slice(&[0; 4]);
    assert_eq!(&c[..16], &hdr[..]);
    assert_eq!(unwrap_promisc(&c), Some(&add[..]));
    assert_eq!(k.read_promisc(sasyncd).unwrap(), c);
    assert_eq!(k.read_promisc(sasyncd), None);
    assert_eq!(k.read_promisc(9999), None);
    // Non-promiscuous sockets get nothing.
    k.set_promisc(sasyncd, false);
    k.write(&message(SADB_FLUSH, 0, 1, PID, &[]), PID).unwrap();
    assert_eq!(k.read_promisc(sasyncd), None);
}

#[test]
fn promisc_queue_drops_when_full() {
    let mut k = kernel();
    k.set_promisc(1, true);
    k.set_promisc(2, true);
    k.set_rcvbuf(1000);
    let add = add_msg(0x1000, PID);
    let copy_len = add.len() + 16;
    let mut spi = 0x1000;
    for _ in 0..20 {
        k.write(&add_msg(spi, PID), PID).unwrap();
        spi += 1;
        // Listener 2 drains, listener 1 does not.
        while k.read_promisc(2).is_some() {}
    }
    let fit = 1000 / copy_len;
    assert_eq!(k.promisc_drops(1), (20 - fit) as u64);
    assert_eq!(k.promisc_queued(1), fit * copy_len);
    assert_eq!(k.promisc_drops(2), 0);
    // Reading frees space again.
    k.read_promisc(1).unwrap();
    k.write(&add_msg(spi, PID), PID).unwrap();
    assert_eq!(k.promisc_drops(1), (20 - fit) as u64);
}

/// A master kernel with a bit of everything, including dump-only extensions.
fn busy_master() -> Kernel {
    let mut k = Kernel::new(Rng::new(5));
    k.set_now(Instant::from_millis(10_000));
    for spi in 0x1000..0x1010 {
        k.write(&add_msg(spi, PID), PID).unwrap();
    }
    getspi(&mut k, 0x100, 0xffff).unwrap();
    k.write(&flow_msg(SADB_X_ADDFLOW, 3, "10.1.0.0"), PID)
        .unwrap();
    k.write(&flow_msg(SADB_X_ADDFLOW, 4, "10.2.0.0"), PID)
        .unwrap();
    assert!(k.set_mtu(&key(0x1003), 1400));
    let grp = message(
        SADB_X_GRPSPIS,
        SADB_SATYPE_ESP,
        1,
        PID,
        &[
            sa_ext(SADB_EXT_SA, 0x1004, SADB_SASTATE_MATURE, 3, 12, 0),
            addr_ext(SADB_EXT_ADDRESS_DST, ip("192.0.2.1"), 0),
            sa_ext(SADB_X_EXT_SA2, 0x1005, SADB_SASTATE_MATURE, 3, 12, 0),
            addr_ext(SADB_X_EXT_DST2, ip("192.0.2.1"), 0),
            proto_ext(SADB_X_EXT_SATYPE2, SADB_SATYPE_ESP, 0),
        ],
    );
    k.write(&grp, PID).unwrap();
    for _ in 0..5 {
        k.traffic();
    }
    k
}

#[test]
fn dump_to_add_round_trips() {
    let master = busy_master();
    let dump = master.sadb_dump(0);
    let recs: Vec<_> = records(&dump).map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 17);
    assert!(recs.iter().all(|r| r.msg_type() == SADB_DUMP));
    assert!(recs.iter().any(|r| r.find(SADB_X_EXT_MTU).is_some()));
    assert!(recs.iter().any(|r| r.find(SADB_X_EXT_SA2).is_some()));
    assert!(recs.iter().all(|r| r.find(SADB_X_EXT_COUNTER).is_some()));
    // Written as-is (type set to ADD) a record with X_MTU is refused (D-30).
    let mut slave = Kernel::new(Rng::new(6));
    slave.set_now(Instant::from_millis(99_000));
    let with_mtu = recs
        .iter()
        .find(|r| r.find(SADB_X_EXT_MTU).is_some())
        .unwrap();
    let mut raw = with_mtu.bytes().to_vec();
    raw[1] = SADB_ADD;
    set_pid_seq(&mut raw, 500, 1);
    assert_eq!(slave.write(&raw, 500), Err(Errno::EINVAL));
    let mut out = [0u8; 4096];
    let mut larval = 0;
    for r in &recs {
        let n = dump_to_add(r.bytes(), &mut out).unwrap();
        set_pid_seq(&mut out[..n], 500, 1);
        match slave.write(&out[..n], 500) {
            Ok(_) => {}
            Err(Errno::EINVAL) => larval += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(larval, 1);
    for r in records(&master.spd_dump()).map(|r| r.unwrap()) {
        assert_eq!(r.msg_type(), SADB_X_SPDDUMP);
        let n = spd_dump_to_addflow(r.bytes(), &mut out).unwrap();
        set_pid_seq(&mut out[..n], 500, 1);
        slave.write(&out[..n], 500).unwrap();
    }
    slave.traffic();
    let all = |_: &Msg<'_>| true;
    assert_eq!(master.entries_equal_after_filter(&slave, &all), Ok(()));
    // Counters differ, the canonical form does not care.
    assert_ne!(master.sadb_dump(0), slave.sadb_dump(0));
    // An operator edit on the slave shows up.
    slave.manual_delete_sa(&key(0x1002)).unwrap();
    let d = master.entries_equal_after_filter(&slave, &all).unwrap_err();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].contains("only on the left"));
    slave.manual_write(&add_msg(0x1002, 1)).unwrap();
    assert_eq!(master.entries_equal_after_filter(&slave, &all), Ok(()));
    let fk = slave.flow_keys()[0];
    slave.manual_delete_flow(&fk).unwrap();
    assert!(master.entries_equal_after_filter(&slave, &all).is_err());
    assert_eq!(slave.manual_delete_flow(&fk), Err(Errno::ESRCH));
}

#[test]
fn synced_by_applies_skipslave() {
    let master = busy_master();
    let policy = FilterPolicy {
        skipslave: true,
        ..FilterPolicy::default()
    };
    let all = master.canonical(&|_| true);
    let none = master.canonical(&synced_by(policy, vec![ip("192.0.2.1")]));
    assert_eq!(all.sas.len(), 16);
    assert_eq!(none.sas.len(), 0);
    let some = master.canonical(&synced_by(policy, vec![ip("10.9.9.9")]));
    assert_eq!(some, all);
}
