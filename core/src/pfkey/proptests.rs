//! Property tests: nothing in this module panics on arbitrary input, and
//! what it builds is always a well-formed message the kernel would size-accept.

use core::net::{IpAddr, Ipv4Addr};
use proptest::prelude::*;
use std::vec::Vec;

use super::consts::*;
use super::testutil::{fix_len, TestMsg};
use super::*;
use crate::state::FlushMode;

/// A header of any type followed by extensions of random type, length and
/// content — mostly well framed, so the deeper code is reached.
fn structured() -> impl Strategy<Value = Vec<u8>> {
    let ext = (
        0u16..=42,
        0u16..=6,
        prop::collection::vec(any::<u8>(), 0..48),
        any::<bool>(),
    );
    (
        0u8..=18,
        0u8..=10,
        prop::collection::vec(ext, 0..10),
        any::<bool>(),
    )
        .prop_map(|(t, satype, exts, lie)| {
            let mut b = std::vec![2, t, 0, satype, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            for (ty, units, body, sockaddr_like) in exts {
                let start = b.len();
                b.extend_from_slice(&units.to_ne_bytes());
                b.extend_from_slice(&ty.to_ne_bytes());
                if sockaddr_like {
                    // An address extension's reserved word, then a plausible sockaddr head.
                    b.extend_from_slice(&[0, 0, 0, 0, 16, AF_INET]);
                }
                b.extend_from_slice(&body);
                let want = start + usize::from(units.max(1)) * 8;
                b.resize(want.max(b.len()).div_ceil(8) * 8, 0);
                if !lie {
                    b.truncate(want);
                }
            }
            fix_len(&mut b);
            b
        })
}

/// Well-formed entries of each kind, to be mutated.
fn seeds() -> [Vec<u8>; 3] {
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let b: IpAddr = "2001:db8::1".parse().unwrap();
    let sa = TestMsg::new(SADB_DUMP, SADB_SATYPE_ESP)
        .sa(7, SADB_SASTATE_MATURE, 3, 12)
        .lifetime(SADB_EXT_LIFETIME_CURRENT, 0, 1, 2, 3)
        .addr(SADB_EXT_ADDRESS_SRC, a, 0)
        .addr(SADB_EXT_ADDRESS_DST, a, 0)
        .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
        .key(SADB_EXT_KEY_ENCRYPT, 128, &[2; 16])
        .ext(SADB_X_EXT_MTU, &[0; 4])
        .rdomain(1, 0)
        .build();
    let flow = TestMsg::new(SADB_X_SPDDUMP, SADB_SATYPE_ESP)
        .addr(SADB_EXT_ADDRESS_DST, b, 0)
        .flow(SADB_X_FLOW_TYPE_USE, IPSP_DIRECTION_IN, 17, b, b)
        .build();
    let mut wrapped = TestMsg::new(SADB_X_PROMISC, 0).seq(9).build();
    wrapped.extend_from_slice(&sa);
    wrapped[16 + 1] = SADB_UPDATE;
    fix_len(&mut wrapped);
    [sa, flow, wrapped]
}

/// A seed with random bytes overwritten and perhaps truncated.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0usize..3,
        prop::collection::vec((any::<u16>(), any::<u8>()), 0..6),
        any::<Option<u16>>(),
    )
        .prop_map(|(i, edits, cut)| {
            let mut b = seeds()[i].clone();
            for (at, v) in edits {
                let at = usize::from(at) % b.len();
                b[at] = v;
            }
            if let Some(c) = cut {
                b.truncate(usize::from(c) % (b.len() + 1));
            }
            b
        })
}

fn exercise(bytes: &[u8]) {
    let peers = [
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        "2001:db8::1".parse().unwrap(),
    ];
    let _ = unwrap_promisc(bytes);
    let _ = promisc_writer_pid(bytes);
    for rec in records(bytes).flatten() {
        let _ = rec.pid();
    }
    let mut out = [0u8; PFKEY_MSG_MAXSZ];
    for f in [dump_to_add, spd_dump_to_addflow] {
        if let Ok(n) = f(bytes, &mut out) {
            let m = Msg::parse(&out[..n]).expect("rewrite output parses");
            assert!(m.check_extensions().is_ok());
            assert!(n <= PFKEY_MSG_MAXSZ);
        }
    }
    let mut copy = bytes.to_vec();
    update_to_add(&mut copy);
    set_pid_seq(&mut copy, 1, 2);
    let Ok(msg) = Msg::parse(bytes) else { return };
    for e in msg.extensions().flatten() {
        let _ = SaExt::new(e).map(|s| (s.spi(), s.state(), s.flags()));
        let _ = LifetimeExt::new(e).map(|l| l.usetime());
        let _ = AddressExt::new(e).and_then(|a| a.sockaddr());
        let _ = KeyExt::new(e).map(|k| k.key().len());
        let _ = ProtocolExt::new(e).map(|p| p.direction());
        let _ = RdomainExt::new(e).map(|r| r.dom2());
        let _ = SockAddr::parse(e.body());
    }
    for flushmode in [FlushMode::Startup, FlushMode::Never, FlushMode::Sync] {
        for skipslave in [false, true] {
            let _ = filter(
                &msg,
                &FilterPolicy {
                    flushmode,
                    skipslave,
                },
                &peers,
            );
        }
    }
    let _ = (sa_key(&msg), flow_key(&msg));
    for f in [build_delete, build_delflow] {
        if let Ok(n) = f(&msg, 1, 2, &mut out) {
            assert!(Msg::parse(&out[..n]).unwrap().check_extensions().is_ok());
        }
    }
    if let Ok(n) = canonical_digest_input(&msg, &mut out) {
        let c = out[..n].to_vec();
        let mut again = [0u8; PFKEY_MSG_MAXSZ];
        let n2 = canonical_digest_input(&Msg::parse(&c).unwrap(), &mut again).unwrap();
        assert_eq!(&again[..n2], &c[..], "canonical form is a fixed point");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn seeds_are_well_formed(_x in 0u8..1) {
        let [sa, flow, wrapped] = seeds();
        let mut out = [0u8; PFKEY_MSG_MAXSZ];
        prop_assert!(dump_to_add(&sa, &mut out).is_ok());
        prop_assert!(spd_dump_to_addflow(&flow, &mut out).is_ok());
        let inner = unwrap_promisc(&wrapped).unwrap();
        let m = Msg::parse(inner).unwrap();
        prop_assert_eq!(filter(&m, &FilterPolicy::default(), &[]), Verdict::Sync);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_entries_never_panic(b in mutated()) {
        exercise(&b);
        if let Some(inner) = unwrap_promisc(&b) {
            exercise(inner);
        }
    }

    #[test]
    fn structured_messages_never_panic(b in structured()) {
        exercise(&b);
        // The same message wrapped as a promiscuous copy, and as a dump.
        let mut w = std::vec![2, SADB_X_PROMISC, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0];
        w.extend_from_slice(&b);
        fix_len(&mut w);
        if let Some(inner) = unwrap_promisc(&w) {
            prop_assert_eq!(inner, &b[..]);
            exercise(inner);
        }
        let mut dump = b.clone();
        dump.extend_from_slice(&b);
        exercise(&dump);
    }
}
