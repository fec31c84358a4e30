use super::super::rewrite::{dump_to_add, update_to_add};
use super::super::testutil::*;
use super::*;
use core::net::Ipv4Addr;
use std::vec::Vec;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

fn canon(b: &[u8]) -> Vec<u8> {
    let mut out = [0u8; 4096];
    let n = canonical_digest_input(&Msg::parse(b).unwrap(), &mut out).unwrap();
    out[..n].to_vec()
}

/// The master's dump record of an SA, with everything that varies.
fn master_record() -> Vec<u8> {
    TestMsg::new(SADB_DUMP, SADB_SATYPE_ESP)
        .sa(0xbeef, SADB_SASTATE_MATURE, 3, 12)
        .lifetime(
            SADB_EXT_LIFETIME_CURRENT,
            0,
            123_456,
            1_700_000_000,
            1_700_000_100,
        )
        .lifetime(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0)
        .lifetime(SADB_X_EXT_LIFETIME_LASTUSE, 0, 0, 0, 1_700_000_100)
        .addr(SADB_EXT_ADDRESS_SRC, A, 0)
        .addr(SADB_EXT_ADDRESS_DST, B, 0)
        .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
        .key(SADB_EXT_KEY_ENCRYPT, 128, &[2; 16])
        .ext(SADB_X_EXT_REPLAY, &[9; 12])
        .ext(SADB_X_EXT_MTU, &1400u32.to_ne_bytes())
        .ext(SADB_X_EXT_COUNTER, &[7; 68])
        .build()
}

#[test]
fn sa_entry_canonical_form_is_shared() {
    let rec = master_record();
    // The live request that created it, in another order, with pid/seq.
    let upd = TestMsg::new(SADB_UPDATE, SADB_SATYPE_ESP)
        .seq(17)
        .pid(4242)
        .addr(SADB_EXT_ADDRESS_DST, B, 0)
        .addr(SADB_EXT_ADDRESS_SRC, A, 0)
        .sa(0xbeef, SADB_SASTATE_MATURE, 3, 12)
        .key(SADB_EXT_KEY_ENCRYPT, 128, &[2; 16])
        .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
        .lifetime(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0)
        .build();
    let mut add = upd.clone();
    update_to_add(&mut add);
    // The slave's own dump of the copy: other counters, no MTU.
    let slave = TestMsg::new(SADB_DUMP, SADB_SATYPE_ESP)
        .sa(0xbeef, SADB_SASTATE_MATURE, 3, 12)
        .lifetime(SADB_EXT_LIFETIME_CURRENT, 0, 0, 1_700_000_050, 0)
        .lifetime(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0)
        .addr(SADB_EXT_ADDRESS_SRC, A, 0)
        .addr(SADB_EXT_ADDRESS_DST, B, 0)
        .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
        .key(SADB_EXT_KEY_ENCRYPT, 128, &[2; 16])
        .ext(SADB_X_EXT_REPLAY, &[0; 12])
        .ext(SADB_X_EXT_COUNTER, &[0; 68])
        .build();
    let mut snap = [0u8; 4096];
    let n = dump_to_add(&rec, &mut snap).unwrap();
    let c = canon(&rec);
    assert_eq!(canon(&upd), c);
    assert_eq!(canon(&add), c);
    assert_eq!(canon(&slave), c);
    assert_eq!(canon(&snap[..n]), c);
    let m = Msg::parse(&c).unwrap();
    assert_eq!(
        (m.msg_type(), m.seq(), m.pid(), m.errno()),
        (SADB_ADD, 0, 0, 0)
    );
    assert_eq!(ext_types(&c), [1, 3, 5, 6, 8, 9]);
    // A different key gives different bytes.
    let other = TestMsg::new(SADB_ADD, SADB_SATYPE_ESP)
        .sa(0xbeef, SADB_SASTATE_MATURE, 3, 12)
        .addr(SADB_EXT_ADDRESS_SRC, A, 0)
        .addr(SADB_EXT_ADDRESS_DST, B, 0)
        .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
        .key(SADB_EXT_KEY_ENCRYPT, 128, &[3; 16])
        .lifetime(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0)
        .build();
    assert_ne!(canon(&other), c);
}

fn flow_record(t: u8, ftype: u8) -> Vec<u8> {
    TestMsg::new(t, SADB_SATYPE_ESP)
        .addr(SADB_EXT_ADDRESS_DST, B, 0)
        .flow(ftype, IPSP_DIRECTION_OUT, 6, A, B)
        .build()
}

#[test]
fn flow_entry_canonical_form_is_shared() {
    let rec = flow_record(SADB_X_SPDDUMP, SADB_X_FLOW_TYPE_REQUIRE);
    let add = TestMsg::new(SADB_X_ADDFLOW, SADB_SATYPE_ESP)
        .pid(4242)
        .seq(3)
        .flow(SADB_X_FLOW_TYPE_REQUIRE, IPSP_DIRECTION_OUT, 6, A, B)
        .addr(SADB_EXT_ADDRESS_DST, B, 0)
        .build();
    let c = canon(&rec);
    assert_eq!(canon(&add), c);
    assert_eq!(Msg::parse(&c).unwrap().msg_type(), SADB_X_ADDFLOW);
    assert_eq!(ext_types(&c), [6, 17, 18, 19, 20, 21, 22]);
    assert_ne!(canon(&flow_record(SADB_X_SPDDUMP, SADB_X_FLOW_TYPE_USE)), c);
}

#[test]
fn canonical_refuses_other_types() {
    let mut out = [0u8; 64];
    let del = TestMsg::new(SADB_DELETE, 2).build();
    assert_eq!(
        canonical_digest_input(&Msg::parse(&del).unwrap(), &mut out),
        Err(PfkeyError::WrongType(SADB_DELETE))
    );
}

#[test]
fn sa_keys() {
    let rec = master_record();
    let k = sa_key(&Msg::parse(&rec).unwrap()).unwrap();
    assert_eq!(
        k,
        SaKey {
            satype: 2,
            spi: 0xbeef,
            dst: B,
            rdomain: 0
        }
    );
    let del = TestMsg::new(SADB_DELETE, 2)
        .sa(0xbeef, 1, 0, 0)
        .addr(SADB_EXT_ADDRESS_DST, B, 0)
        .rdomain(5, 0)
        .build();
    let k2 = sa_key(&Msg::parse(&del).unwrap()).unwrap();
    assert_eq!(k2, SaKey { rdomain: 5, ..k });
    let nodst = TestMsg::new(SADB_ADD, 2).sa(1, 1, 0, 0).build();
    assert_eq!(sa_key(&Msg::parse(&nodst).unwrap()), None);
    let nosa = TestMsg::new(SADB_ADD, 2).addr(6, B, 0).build();
    assert_eq!(sa_key(&Msg::parse(&nosa).unwrap()), None);
}

#[test]
fn flow_keys() {
    let a = flow_record(SADB_X_SPDDUMP, SADB_X_FLOW_TYPE_REQUIRE);
    let b = flow_record(SADB_X_ADDFLOW, SADB_X_FLOW_TYPE_USE);
    let ka = flow_key(&Msg::parse(&a).unwrap()).unwrap();
    // The flow type is not part of the identity.
    assert_eq!(flow_key(&Msg::parse(&b).unwrap()), Some(ka));
    assert_eq!(
        (ka.direction, ka.proto, ka.rdomain),
        (IPSP_DIRECTION_OUT, 6, 0)
    );
    assert_eq!(ka.src.ip, A);
    assert_eq!(ka.dst.ip, B);
    assert_eq!(ka.dst_mask.ip, IpAddr::V4(Ipv4Addr::BROADCAST));
    let mut del = [0u8; 512];
    let n = super::super::build_delflow(&Msg::parse(&a).unwrap(), 1, 1, &mut del).unwrap();
    assert_eq!(flow_key(&Msg::parse(&del[..n]).unwrap()), Some(ka));
    let sa = TestMsg::new(SADB_ADD, 2).sa(1, 1, 0, 0).build();
    assert_eq!(flow_key(&Msg::parse(&sa).unwrap()), None);
}
