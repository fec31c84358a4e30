use super::*;
use proptest::prelude::*;
use std::format;
use std::vec;
use std::vec::Vec;

fn hex(s: &str) -> Vec<u8> {
    let s: std::string::String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn enc(c: &Ctl) -> Vec<u8> {
    let mut buf = [0u8; MAX_LEN];
    let n = c.encode(&mut buf).unwrap();
    assert_eq!(n, c.encoded_len());
    buf[..n].to_vec()
}

const LEGACY_TYPES: [CtlType; 6] = [
    CtlType::Reserved,
    CtlType::State,
    CtlType::Error,
    CtlType::Ack,
    CtlType::EndSnap,
    CtlType::Unknown,
];
const STATES: [RunState; 4] = [
    RunState::Init,
    RunState::Slave,
    RunState::Master,
    RunState::Fail,
];

#[test]
fn legacy_type_numbers_and_names() {
    let names = [
        "RESERVED",
        "CTL_STATE",
        "CTL_ERROR",
        "CTL_ACK",
        "CTL_ENDSNAP",
        "CTL_UNKNOWN",
    ];
    for (i, t) in LEGACY_TYPES.iter().enumerate() {
        assert_eq!(t.to_u32(), i as u32);
        assert_eq!(CtlType::from_u32(i as u32), Some(*t));
        assert_eq!(t.name(), names[i]);
        assert!(t.is_legacy());
    }
    for v in 16..=24 {
        let t = CtlType::from_u32(v).unwrap();
        assert_eq!(t.to_u32(), v);
        assert!(!t.is_legacy());
    }
    for v in (6..16).chain([25, 255, u32::MAX]) {
        assert_eq!(CtlType::from_u32(v), None);
    }
}

#[test]
fn legacy_state_bytes() {
    assert_eq!(
        enc(&Ctl::State(RunState::Master)),
        hex("00000001 00000002 00000000")
    );
    for s in STATES {
        let mut want = hex("00000001 00000000 00000000");
        want[7] = s as u8;
        assert_eq!(enc(&Ctl::State(s)), want);
    }
}

#[test]
fn legacy_error_bytes_for_every_subject() {
    for t in LEGACY_TYPES {
        let mut want = hex("00000002 00000000 00000000");
        want[7] = t as u8;
        assert_eq!(enc(&Ctl::Error(t)), want);
        assert_eq!(Ctl::decode(&want), Ok(Ctl::Error(t)));
    }
    assert_eq!(
        enc(&Ctl::Error(CtlType::Unknown)),
        hex("00000002 00000005 00000000")
    );
}

#[test]
fn legacy_ack_bytes() {
    assert_eq!(
        enc(&Ctl::Ack {
            about: CtlType::State,
            state: RunState::Slave
        }),
        hex("00000003 00000001 00000001")
    );
    for about in LEGACY_TYPES {
        for state in STATES {
            let want = [0, 0, 0, 3, 0, 0, 0, about as u8, 0, 0, 0, state as u8];
            let c = Ctl::Ack { about, state };
            assert_eq!(enc(&c), want);
            assert_eq!(Ctl::decode(&want), Ok(c));
        }
    }
}

#[test]
fn legacy_endsnap_bytes() {
    assert_eq!(enc(&Ctl::EndSnap), hex("00000004 00000000 00000000"));
}

#[test]
fn v2_layouts() {
    let pos = Position {
        epoch: 0x0102030405060708,
        seq: 0x1112131415161718,
    };
    let p = "0102030405060708 1112131415161718";
    assert_eq!(enc(&Ctl::AckSeq(pos)), hex(&format!("00000010 {p}")));
    assert_eq!(enc(&Ctl::Resync(pos)), hex(&format!("00000011 {p}")));
    assert_eq!(
        enc(&Ctl::SnapBegin {
            pos,
            sweep: true,
            expect: 5,
            buckets: None
        }),
        hex(&format!("00000012 {p} 00000001 00000005"))
    );
    let mut set = [0u8; 32];
    set[0] = 0x81;
    assert_eq!(
        enc(&Ctl::SnapBegin {
            pos,
            sweep: false,
            expect: 0,
            buckets: Some(set)
        }),
        hex(&format!(
            "00000012 {p} 00000002 00000000 81{}",
            "00".repeat(31)
        ))
    );
    assert_eq!(
        enc(&Ctl::Repair { pos, buckets: set }),
        hex(&format!("00000017 {p} 81{}", "00".repeat(31)))
    );
    let mut sums = [0u64; 64];
    sums[0] = 0x0102;
    let b = enc(&Ctl::Buckets {
        pos,
        first: 192,
        sums,
        unknown: 1,
    });
    assert_eq!(b.len(), MAX_LEN);
    assert_eq!(
        b[..32],
        hex(&format!("00000016 {p} 000000c0 0000000000000102"))[..]
    );
    assert_eq!(b[MAX_LEN - 8..], hex("0000000000000001")[..]);
    assert_eq!(enc(&Ctl::SnapEnd { pos }), hex(&format!("00000013 {p}")));
    assert_eq!(enc(&Ctl::Resume(pos)), hex(&format!("00000015 {p}")));
    let d = enc(&Ctl::Digest {
        pos,
        sas: 7,
        flows: 9,
        sa_digest: [0xaa; 32],
        flow_digest: [0xbb; 32],
        partial: true,
    });
    assert_eq!(d.len(), 96);
    assert_eq!(d[..28], hex(&format!("00000014 {p} 00000007 00000009"))[..]);
    assert!(d[28..60].iter().all(|&b| b == 0xaa));
    assert!(d[60..92].iter().all(|&b| b == 0xbb));
    assert_eq!(d[92..], hex("00000001")[..]);
}

#[test]
fn legacy_decode_ignores_unused_words_and_tail() {
    // The original never reads data2 of STATE/ERROR nor anything past 12 bytes.
    let b = hex("00000001 00000001 deadbeef ffff");
    assert_eq!(Ctl::decode(&b), Ok(Ctl::State(RunState::Slave)));
    let b = hex("00000004 12345678 9abcdef0");
    assert_eq!(Ctl::decode(&b), Ok(Ctl::EndSnap));
}

#[test]
fn short_input_is_truncated_whatever_the_type() {
    for n in 0..LEGACY_LEN {
        assert_eq!(Ctl::decode(&[0xff; 11][..n]), Err(CtlError::Truncated));
        assert_eq!(
            Ctl::decode(&hex("00000001 00000001 000000")[..n]),
            Err(CtlError::Truncated)
        );
    }
    // A v2 message cut after 12 bytes.
    let full = enc(&Ctl::Digest {
        pos: Position::NONE,
        sas: 0,
        flows: 0,
        sa_digest: [0; 32],
        flow_digest: [0; 32],
        partial: false,
    });
    for n in LEGACY_LEN..full.len() {
        assert_eq!(Ctl::decode(&full[..n]), Err(CtlError::Truncated), "{n}");
    }
}

#[test]
fn decode_errors() {
    for t in [0u32, 5, 6, 15, 25, u32::MAX] {
        let mut b = [0u8; 24];
        b[..4].copy_from_slice(&t.to_be_bytes());
        assert_eq!(Ctl::decode(&b), Err(CtlError::UnknownType(t)));
    }
    assert_eq!(
        Ctl::decode(&hex("00000001 00000004 00000000")),
        Err(CtlError::BadState(4))
    );
    assert_eq!(
        Ctl::decode(&hex("00000003 00000001 ffffffff")),
        Err(CtlError::BadState(u32::MAX))
    );
    assert_eq!(
        Ctl::decode(&hex("00000002 00000006 00000000")),
        Err(CtlError::BadAbout(6))
    );
    assert_eq!(
        Ctl::decode(&hex("00000003 00000009 00000001")),
        Err(CtlError::BadAbout(9))
    );
    let mut b = enc(&Ctl::SnapBegin {
        pos: Position::NONE,
        sweep: true,
        expect: 0,
        buckets: None,
    });
    b[23] = 5;
    assert_eq!(Ctl::decode(&b), Err(CtlError::BadFlags(5)));
    let mut b = enc(&Ctl::Buckets {
        pos: Position::NONE,
        first: 0,
        sums: [0; 64],
        unknown: 0,
    });
    b[23] = 65;
    assert_eq!(Ctl::decode(&b), Err(CtlError::BadBucket(65)));
    b[23] = 0;
    b[22] = 1;
    assert_eq!(Ctl::decode(&b), Err(CtlError::BadBucket(256)));
    let mut b = enc(&Ctl::AckSeq(Position::NONE));
    b.push(0);
    assert_eq!(Ctl::decode(&b), Err(CtlError::Trailing));
}

#[test]
fn encode_buffer_too_small() {
    for c in [
        Ctl::EndSnap,
        Ctl::Resync(Position::NONE),
        Ctl::SnapBegin {
            pos: Position::NONE,
            sweep: false,
            expect: 1,
            buckets: Some([7; 32]),
        },
    ] {
        let mut buf = [0u8; MAX_LEN];
        for n in 0..c.encoded_len() {
            assert_eq!(c.encode(&mut buf[..n]), Err(CtlError::BufferTooSmall));
        }
        assert_eq!(c.encode(&mut buf), Ok(c.encoded_len()));
    }
}

#[test]
fn is_legacy() {
    assert!(Ctl::State(RunState::Init).is_legacy());
    assert!(Ctl::Error(CtlType::Reserved).is_legacy());
    assert!(Ctl::EndSnap.is_legacy());
    assert!(!Ctl::AckSeq(Position::NONE).is_legacy());
    assert!(!Ctl::SnapEnd {
        pos: Position::NONE
    }
    .is_legacy());
}

#[test]
fn display_is_one_line() {
    for e in [
        CtlError::Truncated,
        CtlError::UnknownType(9),
        CtlError::BadState(9),
        CtlError::BadAbout(9),
        CtlError::BadFlags(9),
        CtlError::Trailing,
        CtlError::BufferTooSmall,
    ] {
        let s = format!("{e}");
        assert!(!s.is_empty() && !s.contains('\n'));
    }
    assert_eq!(format!("{}", CtlType::EndSnap), "CTL_ENDSNAP");
}

fn any_type() -> impl Strategy<Value = CtlType> {
    prop::sample::select(
        [0u32, 1, 2, 3, 4, 5, 16, 17, 18, 19, 20]
            .iter()
            .map(|&v| CtlType::from_u32(v).unwrap())
            .collect::<Vec<_>>(),
    )
}

fn any_state() -> impl Strategy<Value = RunState> {
    prop::sample::select(STATES.to_vec())
}

fn any_pos() -> impl Strategy<Value = Position> {
    (any::<u64>(), any::<u64>()).prop_map(|(epoch, seq)| Position { epoch, seq })
}

fn any_ctl() -> impl Strategy<Value = Ctl> {
    prop_oneof![
        any_state().prop_map(Ctl::State),
        any_type().prop_map(Ctl::Error),
        (any_type(), any_state()).prop_map(|(about, state)| Ctl::Ack { about, state }),
        Just(Ctl::EndSnap),
        any_pos().prop_map(Ctl::AckSeq),
        any_pos().prop_map(Ctl::Resync),
        (
            any_pos(),
            any::<bool>(),
            any::<u32>(),
            proptest::option::of(any::<[u8; 32]>())
        )
            .prop_map(|(pos, sweep, expect, buckets)| Ctl::SnapBegin {
                pos,
                sweep,
                expect,
                buckets
            }),
        (any_pos(), any::<[u8; 32]>()).prop_map(|(pos, buckets)| Ctl::Repair { pos, buckets }),
        (any_pos(), 0u32..4, any::<[u64; 8]>(), any::<u64>()).prop_map(
            |(pos, k, some, unknown)| {
                let mut sums = [0u64; 64];
                sums[..8].copy_from_slice(&some);
                Ctl::Buckets {
                    pos,
                    first: k * 64,
                    sums,
                    unknown,
                }
            }
        ),
        (any::<u64>(), 1u8..=96, any::<[u8; 32]>()).prop_map(|(seq, len, some)| {
            let mut id = [0u8; 96];
            for (i, b) in id[..usize::from(len)].iter_mut().enumerate() {
                *b = some[i % 32];
            }
            Ctl::OutSeq { seq, len, id }
        }),
        any_pos().prop_map(|pos| Ctl::SnapEnd { pos }),
        any_pos().prop_map(Ctl::Resume),
        (
            any_pos(),
            any::<u32>(),
            any::<u32>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<bool>()
        )
            .prop_map(
                |(pos, sas, flows, sa_digest, flow_digest, partial)| Ctl::Digest {
                    pos,
                    sas,
                    flows,
                    sa_digest,
                    flow_digest,
                    partial
                }
            ),
    ]
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        let _ = Ctl::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_known_types(
        ty in any_type(),
        tail in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut b = ty.to_u32().to_be_bytes().to_vec();
        b.extend_from_slice(&tail);
        let _ = Ctl::decode(&b);
    }

    #[test]
    fn round_trip(c in any_ctl()) {
        let b = enc(&c);
        prop_assert_eq!(Ctl::decode(&b), Ok(c));
        prop_assert_eq!(c.is_legacy(), b.len() == LEGACY_LEN);
    }
}

#[test]
fn outseq_bytes_and_bounds() {
    let mut id = [0u8; 96];
    id[..3].copy_from_slice(&[1, 50, 0]);
    let m = Ctl::OutSeq {
        seq: 0x1_0000_0005,
        len: 3,
        id,
    };
    let b = enc(&m);
    assert_eq!(b, hex("00000018 00000001 00000005 00000003 013200"));
    assert_eq!(Ctl::decode(&b), Ok(m));
    assert_eq!(CtlType::OutSeq.name(), "CTL_OUTSEQ");
    // An identity longer than any dialect's, or empty, is refused.
    for n in [0u32, 97, u32::MAX] {
        let mut b = hex("00000018 00000000 00000001");
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&[0; 100]);
        assert_eq!(Ctl::decode(&b), Err(CtlError::BadIdentity(n)));
    }
    // Shorter than its length says, or longer.
    assert_eq!(Ctl::decode(&b[..b.len() - 1]), Err(CtlError::Truncated));
    let mut long = b.clone();
    long.push(0);
    assert_eq!(Ctl::decode(&long), Err(CtlError::Trailing));
    let bad = Ctl::OutSeq { seq: 1, len: 0, id };
    assert_eq!(bad.encode(&mut [0u8; 64]), Err(CtlError::BadIdentity(0)));
}
