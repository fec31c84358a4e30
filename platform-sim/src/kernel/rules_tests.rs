//! One table-driven test per message type: the rules the simulated kernel
//! takes from OpenBSD (sys/net/pfkeyv2.c rev. 1.272, tables of
//! pfkeyv2_parsemessage.c rev. 1.64). Each case is a kernel prepared by
//! earlier writes, one request, the result, and what the kernel then holds.

use std::net::IpAddr;

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::records;

use super::*;
use crate::pfmsg::*;

const PID: u32 = 1000;
const A: &str = "10.0.0.1";
const B: &str = "192.0.2.1";
const C: &str = "192.0.2.7";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn k_of(satype: u8, spi: u32, dst: &str) -> SaKey {
    SaKey {
        satype,
        spi,
        dst: ip(dst),
        rdomain: 0,
    }
}

fn esp(spi: u32, dst: &str) -> SaKey {
    k_of(SADB_SATYPE_ESP, spi, dst)
}

fn sa(spi: u32) -> ExtRepr<'static> {
    sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 3, 12, 0)
}

fn src() -> ExtRepr<'static> {
    addr_ext(SADB_EXT_ADDRESS_SRC, ip(A), 0)
}

fn dst() -> ExtRepr<'static> {
    addr_ext(SADB_EXT_ADDRESS_DST, ip(B), 0)
}

fn keys() -> [ExtRepr<'static>; 2] {
    [
        key_ext(SADB_EXT_KEY_AUTH, &[1; 20]),
        key_ext(SADB_EXT_KEY_ENCRYPT, &[2; 16]),
    ]
}

fn msg(t: u8, satype: u8, exts: &[ExtRepr<'_>]) -> Vec<u8> {
    message(t, satype, 1, PID, exts)
}

fn add(spi: u32) -> Vec<u8> {
    let [a, e] = keys();
    msg(SADB_ADD, SADB_SATYPE_ESP, &[sa(spi), src(), dst(), a, e])
}

fn flow(t: u8, ftype: u8, dir: u8, flags: u8) -> Vec<u8> {
    let s = ip("172.16.0.0");
    let d = ip("10.20.0.0");
    let m = ip("255.255.255.0");
    let mut exts = flow_exts(ftype, dir, 0, (s, m), (d, m)).to_vec();
    if let Some(ExtRepr::Protocol { flags: f, .. }) = exts.first_mut() {
        *f = flags;
    }
    if t == SADB_X_ADDFLOW {
        exts.insert(0, dst());
    }
    msg(t, SADB_SATYPE_ESP, &exts)
}

/// One case: setup writes (must succeed), the request, its result, a check.
struct Case {
    what: &'static str,
    setup: Vec<Vec<u8>>,
    request: Vec<u8>,
    result: Result<(), Errno>,
    then: fn(&Kernel) -> bool,
}

fn run(cases: Vec<Case>) {
    for c in cases {
        let mut k = Kernel::new(Rng::new(3));
        for (i, s) in c.setup.iter().enumerate() {
            assert!(k.write(s, PID).is_ok(), "{}: setup write {i}", c.what);
        }
        let r = k.write(&c.request, PID).map(|_| ());
        assert_eq!(r, c.result, "{}", c.what);
        assert!((c.then)(&k), "{}: state afterwards", c.what);
    }
}

fn any(_: &Kernel) -> bool {
    true
}

#[test]
fn add_rules() {
    let [a, e] = keys();
    run(vec![
        Case {
            what: "a new SA",
            setup: vec![],
            request: add(0x1000),
            result: Ok(()),
            then: |k| k.has_mature_sa(&esp(0x1000, B)),
        },
        Case {
            what: "an SA present: EEXIST",
            setup: vec![add(0x1000)],
            request: add(0x1000),
            result: Err(Errno::EEXIST),
            then: |k| k.sa_count() == 1,
        },
        Case {
            what: "X_REPLAY: installed, then EPERM by the reply check",
            setup: vec![],
            request: msg(
                SADB_ADD,
                SADB_SATYPE_ESP,
                &[sa(0x1001), dst(), a, ext(SADB_X_EXT_REPLAY, &[0; 12])],
            ),
            result: Err(Errno::EPERM),
            then: |k| k.has_mature_sa(&esp(0x1001, B)),
        },
        Case {
            what: "X_LIFETIME_LASTUSE: EPERM after the change",
            setup: vec![],
            request: msg(
                SADB_ADD,
                SADB_SATYPE_ESP,
                &[
                    sa(0x1002),
                    dst(),
                    lifetime_ext(SADB_X_EXT_LIFETIME_LASTUSE, 0, 0, 0, 5),
                ],
            ),
            result: Err(Errno::EPERM),
            then: |k| k.has_mature_sa(&esp(0x1002, B)),
        },
        Case {
            what: "X_COUNTER: EPERM after the change",
            setup: vec![],
            request: msg(
                SADB_ADD,
                SADB_SATYPE_ESP,
                &[sa(0x1003), dst(), ext(SADB_X_EXT_COUNTER, &[0; 68])],
            ),
            result: Err(Errno::EPERM),
            then: |k| k.sa_count() == 1,
        },
        Case {
            what: "keys are taken out of the answer: no EPERM",
            setup: vec![],
            request: msg(SADB_ADD, SADB_SATYPE_ESP, &[sa(0x1004), dst(), a, e]),
            result: Ok(()),
            then: any,
        },
        Case {
            what: "part of a flow: EINVAL",
            setup: vec![],
            request: msg(
                SADB_ADD,
                SADB_SATYPE_ESP,
                &[sa(0x1005), dst(), proto_ext(SADB_X_EXT_FLOW_TYPE, 1, 1)],
            ),
            result: Err(Errno::EINVAL),
            then: |k| k.sa_count() == 0,
        },
        Case {
            what: "X_UDPENCAP on AH: EINVAL",
            setup: vec![],
            request: msg(
                SADB_ADD,
                SADB_SATYPE_AH,
                &[
                    sa(0x1006),
                    dst(),
                    ext(SADB_X_EXT_UDPENCAP, &[0x11, 0x94, 0, 0]),
                ],
            ),
            result: Err(Errno::EINVAL),
            then: |k| k.sa_count() == 0,
        },
        Case {
            what: "X_RDOMAIN naming a missing table: EINVAL",
            setup: vec![],
            request: msg(
                SADB_ADD,
                SADB_SATYPE_ESP,
                &[sa(0x1007), dst(), rdomain_ext(0, 3)],
            ),
            result: Err(Errno::EINVAL),
            then: |k| k.sa_count() == 0,
        },
        Case {
            what: "a DEAD SA: EINVAL at the parser",
            setup: vec![],
            request: msg(
                SADB_ADD,
                SADB_SATYPE_ESP,
                &[
                    sa_ext(SADB_EXT_SA, 0x1008, SADB_SASTATE_DEAD, 0, 0, 0),
                    dst(),
                ],
            ),
            result: Err(Errno::EINVAL),
            then: |k| k.sa_count() == 0,
        },
    ]);
}

#[test]
fn update_rules() {
    let getspi = msg(
        SADB_GETSPI,
        SADB_SATYPE_ESP,
        &[src(), dst(), spirange_ext(0x4000, 0x4000)],
    );
    let [a, e] = keys();
    let complete = msg(
        SADB_UPDATE,
        SADB_SATYPE_ESP,
        &[sa(0x4000), src(), dst(), a, e],
    );
    let moved = msg(
        SADB_UPDATE,
        SADB_SATYPE_ESP,
        &[
            sa(0x1000),
            src(),
            dst(),
            addr_ext(SADB_EXT_ADDRESS_PROXY, ip(C), 0),
            ext(SADB_X_EXT_UDPENCAP, &[0x11, 0x95, 0, 0]),
        ],
    );
    run(vec![
        Case {
            what: "a larval SA is completed, keys and all",
            setup: vec![getspi.clone()],
            request: complete,
            result: Ok(()),
            then: |k| k.has_mature_sa(&esp(0x4000, B)),
        },
        Case {
            what: "an absent SA: ESRCH",
            setup: vec![],
            request: moved.clone(),
            result: Err(Errno::ESRCH),
            then: |k| k.sa_count() == 0,
        },
        Case {
            what: "a mature SA may not take keys",
            setup: vec![add(0x1000)],
            request: msg(SADB_UPDATE, SADB_SATYPE_ESP, &[sa(0x1000), src(), dst(), a]),
            result: Err(Errno::EINVAL),
            then: |k| k.has_mature_sa(&esp(0x1000, B)),
        },
        Case {
            what: "a mature SA may not take identities",
            setup: vec![add(0x1000)],
            request: msg(
                SADB_UPDATE,
                SADB_SATYPE_ESP,
                &[
                    sa(0x1000),
                    src(),
                    dst(),
                    ext(SADB_EXT_IDENTITY_SRC, &[0; 12]),
                ],
            ),
            result: Err(Errno::EINVAL),
            then: any,
        },
        Case {
            what: "ADDRESS_PROXY moves a mature SA (MOBIKE), X_UDPENCAP changes",
            setup: vec![add(0x1000)],
            request: moved,
            result: Ok(()),
            then: |k| {
                let rec = k.sadb_dump(0);
                let r = records(&rec).next().unwrap().unwrap();
                !k.has_mature_sa(&esp(0x1000, B))
                    && k.has_mature_sa(&esp(0x1000, C))
                    && r.find(SADB_X_EXT_UDPENCAP).unwrap().body()[..2] == [0x11, 0x95]
                    && r.find(SADB_EXT_KEY_AUTH).is_some()
            },
        },
        Case {
            what: "X_REPLAY: accepted in, not in the answer (EPERM)",
            setup: vec![add(0x1000)],
            request: msg(
                SADB_UPDATE,
                SADB_SATYPE_ESP,
                &[sa(0x1000), src(), dst(), ext(SADB_X_EXT_REPLAY, &[0; 12])],
            ),
            result: Err(Errno::EPERM),
            then: any,
        },
        Case {
            what: "X_LIFETIME_LASTUSE is not allowed on UPDATE",
            setup: vec![add(0x1000)],
            request: msg(
                SADB_UPDATE,
                SADB_SATYPE_ESP,
                &[
                    sa(0x1000),
                    src(),
                    dst(),
                    lifetime_ext(SADB_X_EXT_LIFETIME_LASTUSE, 0, 0, 0, 5),
                ],
            ),
            result: Err(Errno::EINVAL),
            then: any,
        },
        Case {
            what: "ADDRESS_SRC is required",
            setup: vec![add(0x1000)],
            request: msg(SADB_UPDATE, SADB_SATYPE_ESP, &[sa(0x1000), dst()]),
            result: Err(Errno::EINVAL),
            then: any,
        },
    ]);
}

#[test]
fn getspi_rules() {
    run(vec![
        Case {
            what: "reserves a larval SA",
            setup: vec![],
            request: msg(
                SADB_GETSPI,
                SADB_SATYPE_ESP,
                &[src(), dst(), spirange_ext(0x500, 0x500)],
            ),
            result: Ok(()),
            then: |k| k.sa_state(&esp(0x500, B)) == Some(SADB_SASTATE_LARVAL),
        },
        Case {
            what: "no X_RDOMAIN on GETSPI",
            setup: vec![],
            request: msg(
                SADB_GETSPI,
                SADB_SATYPE_ESP,
                &[src(), dst(), spirange_ext(0x500, 0x500), rdomain_ext(0, 0)],
            ),
            result: Err(Errno::EINVAL),
            then: |k| k.sa_count() == 0,
        },
        Case {
            what: "SPIRANGE is required",
            setup: vec![],
            request: msg(SADB_GETSPI, SADB_SATYPE_ESP, &[src(), dst()]),
            result: Err(Errno::EINVAL),
            then: any,
        },
    ]);
}

#[test]
fn delete_and_get_rules() {
    let del = msg(SADB_DELETE, SADB_SATYPE_ESP, &[sa(0x1000), src(), dst()]);
    let mut get = del.clone();
    get[1] = SADB_GET;
    run(vec![
        Case {
            what: "DELETE of a present SA",
            setup: vec![add(0x1000)],
            request: del.clone(),
            result: Ok(()),
            then: |k| k.sa_count() == 0,
        },
        Case {
            what: "DELETE of an absent SA: ESRCH",
            setup: vec![],
            request: del,
            result: Err(Errno::ESRCH),
            then: any,
        },
        Case {
            what: "GET of a present SA",
            setup: vec![add(0x1000)],
            request: get.clone(),
            result: Ok(()),
            then: any,
        },
        Case {
            what: "GET of a bundle's first SA: its group is not allowed in a GET answer",
            setup: vec![
                add(0x1000),
                msg(SADB_ADD, SADB_SATYPE_AH, &[sa(0x2000), dst()]),
                msg(
                    SADB_X_GRPSPIS,
                    SADB_SATYPE_ESP,
                    &[
                        sa(0x1000),
                        dst(),
                        sa_ext(SADB_X_EXT_SA2, 0x2000, 1, 0, 0, 0),
                        addr_ext(SADB_X_EXT_DST2, ip(B), 0),
                        proto_ext(SADB_X_EXT_SATYPE2, SADB_SATYPE_AH, 0),
                    ],
                ),
            ],
            request: get.clone(),
            result: Err(Errno::EPERM),
            then: any,
        },
        Case {
            what: "GET of an absent SA: ESRCH",
            setup: vec![],
            request: get,
            result: Err(Errno::ESRCH),
            then: any,
        },
    ]);
}

fn grpspis(first: (u8, u32), next: (u8, u32)) -> Vec<u8> {
    msg(
        SADB_X_GRPSPIS,
        first.0,
        &[
            sa_ext(SADB_EXT_SA, first.1, 1, 0, 0, 0),
            dst(),
            sa_ext(SADB_X_EXT_SA2, next.1, 1, 0, 0, 0),
            addr_ext(SADB_X_EXT_DST2, ip(B), 0),
            proto_ext(SADB_X_EXT_SATYPE2, next.0, 0),
        ],
    )
}

#[test]
fn grpspis_rules() {
    let ipcomp = msg(
        SADB_ADD,
        SADB_X_SATYPE_IPCOMP,
        &[sa_ext(SADB_EXT_SA, 0x300, 1, 0, 2, 0), dst()],
    );
    let ah = msg(SADB_ADD, SADB_SATYPE_AH, &[sa(0x2000), dst()]);
    let ic = (SADB_X_SATYPE_IPCOMP, 0x300);
    let e = (SADB_SATYPE_ESP, 0x1000);
    run(vec![
        Case {
            what: "IPcomp then ESP: the outbound path applies both",
            setup: vec![add(0x1000), ipcomp.clone()],
            request: grpspis(ic, e),
            result: Ok(()),
            then: |k| {
                let first = k_of(SADB_X_SATYPE_IPCOMP, 0x300, B);
                let d = k.sadb_dump(0);
                let grouped = records(&d)
                    .map(|r| r.unwrap())
                    .filter(|r| r.find(SADB_X_EXT_SA2).is_some())
                    .count();
                k.outbound_path(&first)
                    == vec![
                        (SADB_X_SATYPE_IPCOMP, 0x300, ip(B)),
                        (SADB_SATYPE_ESP, 0x1000, ip(B)),
                    ]
                    && grouped == 1
                    && k.bundles().len() == 1
            },
        },
        Case {
            what: "the next SA missing: ESRCH",
            setup: vec![ipcomp.clone()],
            request: grpspis(ic, e),
            result: Err(Errno::ESRCH),
            then: |k| k.bundles().is_empty(),
        },
        Case {
            what: "a cycle: ESRCH",
            setup: vec![
                add(0x1000),
                ah.clone(),
                grpspis((SADB_SATYPE_AH, 0x2000), e),
            ],
            request: grpspis(e, (SADB_SATYPE_AH, 0x2000)),
            result: Err(Errno::ESRCH),
            then: |k| k.bundles().len() == 1,
        },
        Case {
            what: "deleting the next SA breaks the bundle",
            setup: vec![
                add(0x1000),
                ah.clone(),
                grpspis((SADB_SATYPE_AH, 0x2000), e),
            ],
            request: msg(SADB_DELETE, SADB_SATYPE_ESP, &[sa(0x1000), dst()]),
            result: Ok(()),
            then: |k| {
                k.bundles().is_empty()
                    && k.outbound_path(&k_of(SADB_SATYPE_AH, 0x2000, B)).len() == 1
            },
        },
        Case {
            what: "SATYPE2 is required",
            setup: vec![add(0x1000), ah],
            request: msg(
                SADB_X_GRPSPIS,
                SADB_SATYPE_AH,
                &[
                    sa(0x2000),
                    dst(),
                    sa_ext(SADB_X_EXT_SA2, 0x1000, 1, 0, 0, 0),
                ],
            ),
            result: Err(Errno::EINVAL),
            then: any,
        },
    ]);
}

#[test]
fn flow_rules() {
    let add_req = flow(
        SADB_X_ADDFLOW,
        SADB_X_FLOW_TYPE_REQUIRE,
        IPSP_DIRECTION_OUT,
        0,
    );
    let add_static = flow(
        SADB_X_ADDFLOW,
        SADB_X_FLOW_TYPE_REQUIRE,
        IPSP_DIRECTION_OUT,
        1,
    );
    let del = flow(
        SADB_X_DELFLOW,
        SADB_X_FLOW_TYPE_REQUIRE,
        IPSP_DIRECTION_OUT,
        0,
    );
    let del_static = flow(
        SADB_X_DELFLOW,
        SADB_X_FLOW_TYPE_REQUIRE,
        IPSP_DIRECTION_OUT,
        1,
    );
    run(vec![
        Case {
            what: "X_ADDFLOW",
            setup: vec![],
            request: add_req.clone(),
            result: Ok(()),
            then: |k| k.flow_count() == 1,
        },
        Case {
            what: "a bad direction: EINVAL",
            setup: vec![],
            request: flow(SADB_X_ADDFLOW, SADB_X_FLOW_TYPE_REQUIRE, 3, 0),
            result: Err(Errno::EINVAL),
            then: |k| k.flow_count() == 0,
        },
        Case {
            what: "an unknown type: EINVAL",
            setup: vec![],
            request: flow(SADB_X_ADDFLOW, 9, IPSP_DIRECTION_IN, 0),
            result: Err(Errno::EINVAL),
            then: |k| k.flow_count() == 0,
        },
        Case {
            what: "X_DELFLOW of a missing flow: ESRCH",
            setup: vec![],
            request: del.clone(),
            result: Err(Errno::ESRCH),
            then: any,
        },
        Case {
            what: "a static flow ignores a non-static X_DELFLOW (success)",
            setup: vec![add_static.clone()],
            request: del,
            result: Ok(()),
            then: |k| k.flow_count() == 1,
        },
        Case {
            what: "a static X_DELFLOW removes it",
            setup: vec![add_static.clone()],
            request: del_static,
            result: Ok(()),
            then: |k| k.flow_count() == 0,
        },
        Case {
            what: "the SPD dump carries no static flag",
            setup: vec![],
            request: add_static,
            result: Ok(()),
            then: |k| {
                let d = k.spd_dump();
                let r = records(&d).next().unwrap().unwrap();
                r.find(SADB_X_EXT_FLOW_TYPE).unwrap().bytes()[6] == 0
            },
        },
    ]);
}

#[test]
fn other_types() {
    run(vec![
        Case {
            what: "FLUSH of one type keeps the others",
            setup: vec![
                add(0x1000),
                msg(SADB_ADD, SADB_SATYPE_AH, &[sa(0x2000), dst()]),
            ],
            request: msg(SADB_FLUSH, SADB_SATYPE_AH, &[]),
            result: Ok(()),
            then: |k| k.sa_count() == 1,
        },
        Case {
            what: "EXPIRE written by a process",
            setup: vec![],
            request: msg(SADB_EXPIRE, SADB_SATYPE_ESP, &[sa(0x1000), src(), dst()]),
            result: Ok(()),
            then: any,
        },
        Case {
            what: "REGISTER takes no extensions",
            setup: vec![],
            request: msg(SADB_REGISTER, SADB_SATYPE_ESP, &[dst()]),
            result: Err(Errno::EINVAL),
            then: any,
        },
        Case {
            what: "REGISTER",
            setup: vec![],
            request: msg(SADB_REGISTER, SADB_SATYPE_ESP, &[]),
            result: Ok(()),
            then: any,
        },
        Case {
            what: "X_ASKPOLICY without a pending ACQUIRE: ESRCH",
            setup: vec![],
            request: msg(SADB_X_ASKPOLICY, 0, &[ext(SADB_X_EXT_POLICY, &[0; 4])]),
            result: Err(Errno::ESRCH),
            then: any,
        },
        Case {
            what: "DUMP",
            setup: vec![add(0x1000)],
            request: msg(SADB_DUMP, 0, &[]),
            result: Ok(()),
            then: any,
        },
    ]);
}

/// Dump records in the order OpenBSD's pfkeyv2_get() exports them.
#[test]
fn dump_record_order() {
    let mut k = Kernel::new(Rng::new(3));
    k.add_rtable(1);
    let [a, e] = keys();
    let m = msg(
        SADB_ADD,
        SADB_SATYPE_ESP,
        &[
            sa(0x1000),
            lifetime_ext(SADB_EXT_LIFETIME_HARD, 0, 0, 60, 0),
            src(),
            dst(),
            a,
            e,
            ext(SADB_X_EXT_TAG, b"\x08\0\0\0ike-tag\0"),
            rdomain_ext(0, 1),
            ext(SADB_X_EXT_UDPENCAP, &[0x11, 0x94, 0, 0]),
        ],
    );
    k.write(&m, PID).unwrap();
    k.write(&msg(SADB_ADD, SADB_SATYPE_AH, &[sa(0x2000), dst()]), PID)
        .unwrap();
    k.write(
        &grpspis((SADB_SATYPE_ESP, 0x1000), (SADB_SATYPE_AH, 0x2000)),
        PID,
    )
    .unwrap();
    k.set_mtu(&esp(0x1000, B), 1400);
    let d = k.sadb_dump(SADB_SATYPE_ESP);
    let r = records(&d).next().unwrap().unwrap();
    let order: Vec<u16> = r.extensions().map(|e| e.unwrap().ext_type()).collect();
    assert_eq!(
        order,
        [1, 2, 3, 5, 6, 8, 9, 23, 24, 35, 31, 39, 38, 37, 33, 36],
        "SA, lifetimes, addresses, keys, group, UDPENCAP, REPLAY, MTU, RDOMAIN, TAG, COUNTER"
    );
    // X_RDOMAIN is exported only when the SA switches domains.
    let mut k = Kernel::new(Rng::new(3));
    k.add_rtable(1);
    k.write(
        &msg(
            SADB_ADD,
            SADB_SATYPE_ESP,
            &[sa(0x1000), dst(), rdomain_ext(1, 1)],
        ),
        PID,
    )
    .unwrap();
    let d = k.sadb_dump(0);
    assert!(records(&d)
        .next()
        .unwrap()
        .unwrap()
        .find(SADB_X_EXT_RDOMAIN)
        .is_none());
}
