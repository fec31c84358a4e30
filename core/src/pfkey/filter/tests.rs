use super::super::testutil::*;
use super::*;
use core::net::{Ipv4Addr, Ipv6Addr};
use std::vec::Vec;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const PEER4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));

fn peer6() -> IpAddr {
    "2001:db8::9".parse().unwrap()
}

const MODES: [FlushMode; 3] = [FlushMode::Startup, FlushMode::Never, FlushMode::Sync];

/// A plausible, well-formed message of type `t` (a mature ESP SA where one
/// applies), with the given SA endpoints.
fn sample(t: u8, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let m = TestMsg::new(t, SADB_SATYPE_ESP);
    match t {
        SADB_FLUSH => m.build(),
        SADB_X_ADDFLOW => m
            .addr(SADB_EXT_ADDRESS_DST, dst, 0)
            .flow(SADB_X_FLOW_TYPE_REQUIRE, IPSP_DIRECTION_OUT, 0, src, dst)
            .build(),
        SADB_X_DELFLOW => m
            .flow(SADB_X_FLOW_TYPE_REQUIRE, IPSP_DIRECTION_OUT, 0, src, dst)
            .build(),
        _ => m
            .sa(0x100, SADB_SASTATE_MATURE, 3, 12)
            .addr(SADB_EXT_ADDRESS_SRC, src, 0)
            .addr(SADB_EXT_ADDRESS_DST, dst, 0)
            .key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
            .key(SADB_EXT_KEY_ENCRYPT, 128, &[2; 16])
            .build(),
    }
}

fn run(b: &[u8], policy: FilterPolicy, peers: &[IpAddr]) -> Verdict {
    filter(&Msg::parse(b).unwrap(), &policy, peers)
}

#[test]
fn verdict_for_every_type_and_flushmode() {
    for t in 0..=SADB_MAX + 2 {
        for flushmode in MODES {
            for skipslave in [false, true] {
                let policy = FilterPolicy {
                    flushmode,
                    skipslave,
                };
                let v = run(&sample(t, A, B), policy, &[PEER4]);
                let want = match t {
                    SADB_FLUSH if flushmode == FlushMode::Never => {
                        Verdict::Skip(SkipReason::FlushNever)
                    }
                    SADB_ADD | SADB_UPDATE | SADB_DELETE | SADB_EXPIRE | SADB_FLUSH
                    | SADB_X_ADDFLOW | SADB_X_DELFLOW | SADB_X_GRPSPIS => Verdict::Sync,
                    _ => Verdict::Skip(SkipReason::NotForwarded(t)),
                };
                assert_eq!(v, want, "type {t} {flushmode:?} skipslave {skipslave}");
            }
        }
    }
}

#[test]
fn never_forwarded_types() {
    let policy = FilterPolicy::default();
    for t in [
        SADB_RESERVED,
        SADB_GETSPI,
        SADB_GET,
        SADB_ACQUIRE,
        SADB_REGISTER,
        SADB_DUMP,
        SADB_X_PROMISC,
        SADB_X_ASKPOLICY,
        SADB_X_SPDDUMP,
    ] {
        assert_eq!(
            run(&sample(t, A, B), policy, &[]),
            Verdict::Skip(SkipReason::NotForwarded(t))
        );
    }
}

fn sa_msg(t: u8, satype: u8, state: u8, keys: bool) -> Vec<u8> {
    let mut m = TestMsg::new(t, satype)
        .sa(0x200, state, 0, 0)
        .addr(SADB_EXT_ADDRESS_SRC, A, 0)
        .addr(SADB_EXT_ADDRESS_DST, B, 0);
    if keys {
        m = match satype {
            SADB_SATYPE_ESP => {
                m.key(SADB_EXT_KEY_AUTH, 160, &[1; 20])
                    .key(SADB_EXT_KEY_ENCRYPT, 128, &[2; 16])
            }
            SADB_X_SATYPE_IPCOMP => m,
            _ => m.key(SADB_EXT_KEY_AUTH, 128, &[1; 16]),
        };
    }
    m.build()
}

#[test]
fn larval_versus_mature_for_every_sa_type() {
    let p = FilterPolicy::default();
    for t in [SADB_ADD, SADB_UPDATE] {
        for satype in [
            SADB_SATYPE_ESP,
            SADB_SATYPE_AH,
            SADB_X_SATYPE_IPCOMP,
            SADB_X_SATYPE_TCPSIGNATURE,
        ] {
            // Mature: synchronised whether or not there is an encryption key.
            assert_eq!(
                run(&sa_msg(t, satype, 1, true), p, &[]),
                Verdict::Sync,
                "{t} {satype}"
            );
            // Larval: skipped even if keys are present.
            assert_eq!(
                run(&sa_msg(t, satype, 0, true), p, &[]),
                Verdict::Skip(SkipReason::Larval)
            );
            assert_eq!(
                run(&sa_msg(t, satype, 0, false), p, &[]),
                Verdict::Skip(SkipReason::Larval)
            );
            for s in [SADB_SASTATE_DYING, SADB_SASTATE_DEAD] {
                assert_eq!(
                    run(&sa_msg(t, satype, s, true), p, &[]),
                    Verdict::Skip(SkipReason::NotMature(s))
                );
            }
        }
    }
}

#[test]
fn add_without_sa() {
    let p = FilterPolicy::default();
    let b = TestMsg::new(SADB_ADD, 2).addr(6, B, 0).build();
    assert_eq!(run(&b, p, &[]), Verdict::Skip(SkipReason::NoSa));
    let b = TestMsg::new(SADB_UPDATE, 2)
        .ext(SADB_EXT_SA, &[0; 4])
        .build();
    assert_eq!(run(&b, p, &[]), Verdict::Skip(SkipReason::NoSa));
}

#[test]
fn errno_and_malformed() {
    let p = FilterPolicy::default();
    let b = TestMsg::new(SADB_DELETE, 2).errno(3).build();
    assert_eq!(run(&b, p, &[]), Verdict::Skip(SkipReason::Errno(3)));
    let mut b = sample(SADB_DELETE, A, B);
    b.extend_from_slice(&[4, 0, 6, 0, 0, 0, 0, 0]);
    fix_len(&mut b);
    assert_eq!(
        run(&b, p, &[]),
        Verdict::Skip(SkipReason::Malformed(PfkeyError::ExtTruncated))
    );
}

#[test]
fn skipslave_ipv4() {
    let on = FilterPolicy {
        flushmode: FlushMode::Startup,
        skipslave: true,
    };
    let off = FilterPolicy {
        skipslave: false,
        ..on
    };
    for t in [
        SADB_ADD,
        SADB_UPDATE,
        SADB_DELETE,
        SADB_EXPIRE,
        SADB_X_GRPSPIS,
    ] {
        let to_peer = sample(t, A, PEER4);
        let from_peer = sample(t, PEER4, B);
        assert_eq!(
            run(&to_peer, on, &[PEER4]),
            Verdict::Skip(SkipReason::Peer(PEER4))
        );
        // The first peer address in message order is reported.
        assert_eq!(
            run(&from_peer, on, &[B, PEER4]),
            Verdict::Skip(SkipReason::Peer(PEER4))
        );
        assert_eq!(run(&to_peer, off, &[PEER4]), Verdict::Sync);
        assert_eq!(run(&sample(t, A, B), on, &[PEER4]), Verdict::Sync);
        // Families never match across: 192.0.2.9 vs ::ffff:192.0.2.9.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped());
        assert_eq!(run(&to_peer, on, &[mapped]), Verdict::Sync);
    }
}

#[test]
fn skipslave_ipv6_whole_address() {
    let on = FilterPolicy {
        flushmode: FlushMode::Startup,
        skipslave: true,
    };
    let p6 = peer6();
    let local: IpAddr = "2001:db8::1".parse().unwrap();
    // Shares the first 4 bytes (2001:0db8) with the peer but is not the peer.
    let other: IpAddr = "2001:db8:ffff::9".parse().unwrap();
    assert!(match (p6, other) {
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets()[..4] == b.octets()[..4],
        _ => false,
    });
    for t in [SADB_ADD, SADB_DELETE, SADB_X_ADDFLOW, SADB_X_DELFLOW] {
        assert_eq!(
            run(&sample(t, local, other), on, &[p6]),
            Verdict::Sync,
            "{t}"
        );
        assert_eq!(
            run(&sample(t, local, p6), on, &[p6]),
            Verdict::Skip(SkipReason::Peer(p6)),
            "{t}"
        );
    }
    let unspecified = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    assert_eq!(
        run(&sample(SADB_ADD, local, other), on, &[unspecified]),
        Verdict::Sync
    );
}

#[test]
fn skipslave_flows() {
    let on = FilterPolicy {
        flushmode: FlushMode::Sync,
        skipslave: true,
    };
    // DELFLOW carries only flow addresses; they are checked (D-9).
    let del = sample(SADB_X_DELFLOW, A, PEER4);
    assert_eq!(
        run(&del, on, &[PEER4]),
        Verdict::Skip(SkipReason::Peer(PEER4))
    );
    let del = sample(SADB_X_DELFLOW, PEER4, B);
    assert_eq!(
        run(&del, on, &[PEER4]),
        Verdict::Skip(SkipReason::Peer(PEER4))
    );
    assert_eq!(
        run(&sample(SADB_X_DELFLOW, A, B), on, &[PEER4]),
        Verdict::Sync
    );
    // ADDFLOW: the SA endpoint or the flow addresses.
    let add = sample(SADB_X_ADDFLOW, A, PEER4);
    assert_eq!(
        run(&add, on, &[PEER4]),
        Verdict::Skip(SkipReason::Peer(PEER4))
    );
    // Masks are not addresses: an all-ones mask never matches a peer.
    let ones = IpAddr::V4(Ipv4Addr::new(255, 255, 255, 255));
    assert_eq!(
        run(&sample(SADB_X_DELFLOW, A, B), on, &[ones]),
        Verdict::Sync
    );
    // FLUSH carries no addresses.
    assert_eq!(run(&sample(SADB_FLUSH, A, B), on, &[PEER4]), Verdict::Sync);
}

#[test]
fn skipslave_bad_or_foreign_address() {
    let on = FilterPolicy {
        flushmode: FlushMode::Startup,
        skipslave: true,
    };
    let mut b = sample(SADB_DELETE, A, B);
    // ADDRESS_SRC is the second extension (SA is 16 bytes): its sa_len is at
    // 16 + 16 + 8. Claim a length running past the extension.
    b[40] = 200;
    assert_eq!(
        run(&b, on, &[PEER4]),
        Verdict::Skip(SkipReason::BadAddress(PfkeyError::BadSockaddr))
    );
    // Without skipslave the address is not looked at.
    assert_eq!(run(&b, FilterPolicy::default(), &[PEER4]), Verdict::Sync);
    // An unknown family cannot be a peer.
    let mut b = sample(SADB_DELETE, A, B);
    b[41] = 1;
    assert_eq!(run(&b, on, &[PEER4]), Verdict::Sync);
}

#[test]
fn reasons_display() {
    let r = SkipReason::NotForwarded(SADB_GETSPI);
    assert_eq!(std::format!("{r}"), "GETSPI is not forwarded");
    assert_eq!(
        std::format!("{}", SkipReason::Peer(PEER4)),
        "skipslave: involves peer 192.0.2.9"
    );
}
