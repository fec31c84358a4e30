//! Session behaviour under attack and misuse, and property tests over the
//! whole v2 stream.

use super::kat::{hello_i, hello_r, SHARED};
use super::*;
use crate::crypto::SoftCrypto;
use proptest::prelude::*;
use std::vec::Vec;

type S = Session<SoftCrypto>;

/// An initiator and a responder with the KAT HELLOs, not yet confirmed.
fn fresh() -> (S, S) {
    let (hi, hr) = (hello_i(), hello_r());
    let i = Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi, &hr).unwrap();
    let r = Session::new(SoftCrypto, &SHARED, Side::Responder, &hr, &hi).unwrap();
    (i, r)
}

fn confirm_both(i: &mut S, r: &mut S) {
    let mut buf = [0u8; CONFIRM_LEN];
    i.confirm(&mut buf).unwrap();
    r.check_confirm(&mut buf).unwrap();
    r.confirm(&mut buf).unwrap();
    i.check_confirm(&mut buf).unwrap();
}

/// A confirmed pair.
fn pair() -> (S, S) {
    let (mut i, mut r) = fresh();
    confirm_both(&mut i, &mut r);
    (i, r)
}

fn seal(s: &mut S, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME];
    let n = s.seal(kind, payload, &mut buf).unwrap();
    buf[..n].to_vec()
}

fn open(s: &mut S, frame: &[u8]) -> Result<(Kind, Vec<u8>), V2Error> {
    let mut f = frame.to_vec();
    s.open(&mut f).map(|(k, p)| (k, p.to_vec()))
}

#[test]
fn round_trip_both_directions() {
    let (mut i, mut r) = pair();
    for n in 0..5u8 {
        let p = [n; 33];
        let f = seal(&mut i, Kind::Pfkey, &p);
        assert_eq!(open(&mut r, &f), Ok((Kind::Pfkey, p.to_vec())));
        let f = seal(&mut r, Kind::Ctl, &p[..12]);
        assert_eq!(open(&mut i, &f), Ok((Kind::Ctl, p[..12].to_vec())));
    }
    assert_eq!((i.next_tx_seq(), i.next_rx_seq()), (6, 6));
    assert_eq!(
        open(&mut r, &seal(&mut i, Kind::Ctl, &[])),
        Ok((Kind::Ctl, Vec::new()))
    );
}

#[test]
fn wrong_shared_key_fails_at_confirm() {
    let (hi, hr) = (hello_i(), hello_r());
    let mut i = Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi, &hr).unwrap();
    let mut r = Session::new(SoftCrypto, &[7u8; 32], Side::Responder, &hr, &hi).unwrap();
    let mut buf = [0u8; CONFIRM_LEN];
    i.confirm(&mut buf).unwrap();
    assert_eq!(r.check_confirm(&mut buf.clone()), Err(V2Error::KeyMismatch));
    r.confirm(&mut buf).unwrap();
    assert_eq!(i.check_confirm(&mut buf), Err(V2Error::KeyMismatch));
}

#[test]
fn both_sides_claiming_the_same_role_fail_at_confirm() {
    let (hi, hr) = (hello_i(), hello_r());
    let mut a = Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi, &hr).unwrap();
    let mut b = Session::new(SoftCrypto, &SHARED, Side::Initiator, &hr, &hi).unwrap();
    let mut buf = [0u8; CONFIRM_LEN];
    a.confirm(&mut buf).unwrap();
    assert_eq!(b.check_confirm(&mut buf), Err(V2Error::KeyMismatch));
}

#[test]
fn hello_checks_at_session_start() {
    let (hi, mut hr) = (hello_i(), hello_r());
    hr.arch = ArchTag {
        order: ByteOrder::Big,
        pointer_bytes: 8,
    };
    let e = Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi, &hr).unwrap_err();
    assert_eq!(
        e,
        V2Error::ArchMismatch {
            local: hi.arch,
            peer: hr.arch
        }
    );
    assert_eq!(
        std::format!("{e}"),
        "peer PF_KEY architecture big-endian/64-bit differs from ours (little-endian/64-bit)"
    );
    hr = hello_r();
    hr.arch.pointer_bytes = 4;
    assert!(matches!(
        Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi, &hr),
        Err(V2Error::ArchMismatch { .. })
    ));
    // Another kernel's records: refused whichever side we are, and said.
    hr = hello_r();
    hr.dialect = crate::dialect::KernelDialect::LinuxXfrm;
    for side in [Side::Initiator, Side::Responder] {
        let e = Session::new(SoftCrypto, &SHARED, side, &hi, &hr).unwrap_err();
        assert_eq!(
            std::format!("{e}"),
            "peer runs another kernel: it sends Linux XFRM records, we send OpenBSD PF_KEY records (a cluster runs one kind of kernel)"
        );
    }
    let mut hi2 = hi;
    hi2.dialect = crate::dialect::KernelDialect::LinuxXfrm;
    assert!(Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi2, &hr).is_ok());
    // Our own HELLO reflected back.
    assert_eq!(
        Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi, &hi).unwrap_err(),
        V2Error::Reflected
    );
    assert_eq!(
        Session::new(SoftCrypto, &SHARED[..15], Side::Initiator, &hi, &hello_r()).unwrap_err(),
        V2Error::ShortKey(15)
    );
}

#[test]
fn replay_is_refused() {
    let (mut i, mut r) = pair();
    let f = seal(&mut i, Kind::Pfkey, b"add sa");
    assert!(open(&mut r, &f).is_ok());
    assert_eq!(
        open(&mut r, &f),
        Err(V2Error::Replay {
            got: 1,
            expected: 2
        })
    );
    // The replay did not disturb the stream.
    let g = seal(&mut i, Kind::Ctl, b"next");
    assert!(open(&mut r, &g).is_ok());
}

#[test]
fn reorder_and_skip_are_refused() {
    let (mut i, mut r) = pair();
    let f1 = seal(&mut i, Kind::Ctl, b"one");
    let f2 = seal(&mut i, Kind::Ctl, b"two");
    assert_eq!(
        open(&mut r, &f2),
        Err(V2Error::Gap {
            got: 2,
            expected: 1
        })
    );
    assert_eq!(open(&mut r, &f1), Ok((Kind::Ctl, b"one".to_vec())));
    assert_eq!(open(&mut r, &f2), Ok((Kind::Ctl, b"two".to_vec())));
}

#[test]
fn reflection_is_refused() {
    let (mut i, mut r) = fresh();
    let mut c = [0u8; CONFIRM_LEN];
    i.confirm(&mut c).unwrap();
    assert_eq!(i.check_confirm(&mut c.clone()), Err(V2Error::Reflected));
    r.check_confirm(&mut c).unwrap();
    r.confirm(&mut c).unwrap();
    i.check_confirm(&mut c).unwrap();
    let f = seal(&mut i, Kind::Pfkey, b"delete sa");
    assert_eq!(open(&mut i, &f), Err(V2Error::Reflected));
    assert!(open(&mut r, &f).is_ok());
}

#[test]
fn cross_session_frames_are_refused() {
    let (mut i, mut r) = pair();
    let (mut hi2, mut hr2) = (hello_i(), hello_r());
    hi2.nonce[0] ^= 1;
    hr2.nonce[31] ^= 1;
    let second = || {
        (
            Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi2, &hr2).unwrap(),
            Session::new(SoftCrypto, &SHARED, Side::Responder, &hr2, &hi2).unwrap(),
        )
    };
    // A CONFIRM recorded from the first session does not confirm the second.
    let (mut i1, _) = fresh();
    let mut c = [0u8; CONFIRM_LEN];
    i1.confirm(&mut c).unwrap();
    let (_, mut r2) = second();
    assert_eq!(r2.check_confirm(&mut c), Err(V2Error::KeyMismatch));
    // A data frame of the first session, with the very sequence number the
    // second one expects next.
    let (mut i2, mut r2) = second();
    confirm_both(&mut i2, &mut r2);
    let old = seal(&mut i, Kind::Pfkey, b"flush");
    assert_eq!(open(&mut r2, &old), Err(V2Error::MacMismatch));
    assert!(open(&mut r, &old).is_ok());
}

#[test]
fn every_bit_flip_is_refused() {
    let (mut i, mut r) = pair();
    let f = seal(&mut i, Kind::Pfkey, &[0x5a; 40]);
    for byte in 0..f.len() {
        for bit in 0..8 {
            let mut g = f.clone();
            g[byte] ^= 1 << bit;
            let e = open(&mut r, &g).unwrap_err();
            if byte >= HEADER_LEN {
                assert_eq!(e, V2Error::MacMismatch, "byte {byte} bit {bit}");
            } else {
                assert!(
                    matches!(
                        e,
                        V2Error::NotV2
                            | V2Error::Version(_)
                            | V2Error::UnknownKind(_)
                            | V2Error::UnexpectedFrame(_)
                            | V2Error::BadLength(_)
                            | V2Error::MacMismatch
                    ),
                    "byte {byte} bit {bit}: {e:?}"
                );
            }
        }
    }
    assert_eq!(open(&mut r, &f), Ok((Kind::Pfkey, [0x5a; 40].to_vec())));
}

#[test]
fn truncated_frames_are_refused() {
    let (mut i, mut r) = pair();
    let f = seal(&mut i, Kind::Ctl, &[1; 12]);
    for n in 0..f.len() {
        assert_eq!(
            open(&mut r, &f[..n]),
            Err(V2Error::BadLength(n)),
            "length {n}"
        );
    }
    let mut long = f.clone();
    long.push(0);
    assert_eq!(open(&mut r, &long), Err(V2Error::BadLength(f.len() + 1)));
    assert!(open(&mut r, &f).is_ok());
}

#[test]
fn payload_and_buffer_sizes() {
    let (mut i, mut r) = pair();
    let mut buf = [0u8; MAX_FRAME + 1];
    assert_eq!(
        i.seal(Kind::Pfkey, &[0; MAX_PAYLOAD + 1], &mut buf),
        Err(V2Error::TooLong(MAX_PAYLOAD + 1))
    );
    assert_eq!(
        i.seal(Kind::Pfkey, &[0; 10], &mut buf[..57]),
        Err(V2Error::BufferTooSmall { need: 58 })
    );
    assert_eq!(i.next_tx_seq(), 1, "refused seals use no sequence number");
    let n = i.seal(Kind::Pfkey, &[9; MAX_PAYLOAD], &mut buf).unwrap();
    assert_eq!(n, MAX_FRAME);
    assert_eq!(
        r.open(&mut buf[..n]).unwrap(),
        (Kind::Pfkey, &[9u8; MAX_PAYLOAD][..])
    );
}

#[test]
fn handshake_order_is_enforced() {
    let (mut i, mut r) = fresh();
    let mut buf = [0u8; 128];
    assert_eq!(
        i.seal(Kind::Ctl, b"x", &mut buf),
        Err(V2Error::HandshakeOrder)
    );
    assert_eq!(
        r.open(&mut buf[..CONFIRM_LEN]),
        Err(V2Error::HandshakeOrder)
    );
    let n = i.confirm(&mut buf).unwrap();
    assert_eq!(i.confirm(&mut buf), Err(V2Error::HandshakeOrder));
    r.check_confirm(&mut buf[..n]).unwrap();
    assert_eq!(r.check_confirm(&mut buf[..n]), Err(V2Error::HandshakeOrder));
    // Data where the CONFIRM must come, and the other way round.
    let (mut i, mut r) = fresh();
    let mut c = [0u8; CONFIRM_LEN];
    i.confirm(&mut c).unwrap();
    let n = i.seal(Kind::Ctl, b"early", &mut buf).unwrap();
    assert_eq!(
        r.check_confirm(&mut buf[..n]),
        Err(V2Error::UnexpectedFrame(FrameType::Ctl))
    );
    let (_, mut r) = pair();
    assert_eq!(
        r.open(&mut c),
        Err(V2Error::UnexpectedFrame(FrameType::Confirm))
    );
    let mut h = [0u8; HELLO_LEN];
    hello_i().encode(&mut h).unwrap();
    assert_eq!(
        r.open(&mut h),
        Err(V2Error::UnexpectedFrame(FrameType::Hello))
    );
}

/// The first bytes a legacy node sends: a 64-byte CTL_STATE frame.
fn legacy_frame() -> [u8; 64] {
    let mut f = [0u8; 64];
    f[3] = 60; // blob_len
    f[11] = 4; // padlen
    f
}

#[test]
fn legacy_peer_is_named() {
    assert_eq!(Hello::decode(&legacy_frame()), Err(V2Error::LegacyPeer));
    assert_eq!(Hello::decode(b"garbage!"), Err(V2Error::NotV2));
    let (mut i, _) = fresh();
    let mut c = [0u8; CONFIRM_LEN];
    i.confirm(&mut c).unwrap();
    assert_eq!(
        Hello::decode(&c),
        Err(V2Error::UnexpectedFrame(FrameType::Confirm))
    );
    let mut d = V2Deframer::new();
    let lf = legacy_frame();
    assert_eq!(d.next_frame(&mut &lf[..]).unwrap_err(), V2Error::LegacyPeer);
    let (_, mut r) = pair();
    assert_eq!(r.open(&mut legacy_frame()), Err(V2Error::LegacyPeer));
}

#[test]
fn errors_display_one_line() {
    let all = [
        V2Error::NotV2,
        V2Error::LegacyPeer,
        V2Error::Version(3),
        V2Error::UnknownKind(9),
        V2Error::BadLength(5),
        V2Error::UnexpectedFrame(FrameType::Confirm),
        V2Error::Malformed,
        V2Error::ShortKey(3),
        V2Error::Aes,
        V2Error::KeyMismatch,
        V2Error::MacMismatch,
        V2Error::Reflected,
        V2Error::Replay {
            got: 1,
            expected: 2,
        },
        V2Error::Gap {
            got: 3,
            expected: 2,
        },
        V2Error::TooLong(5000),
        V2Error::BufferTooSmall { need: 80 },
        V2Error::HandshakeOrder,
        V2Error::SeqExhausted,
    ];
    for e in all {
        let s = std::format!("{e}");
        assert!(!s.is_empty() && !s.contains('\n'), "{e:?}");
    }
}

/// A whole initiator → responder stream: HELLO, CONFIRM, then data frames.
fn stream_of(payloads: &[(bool, Vec<u8>)]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (mut i, _) = fresh();
    let mut frames = Vec::new();
    let mut h = [0u8; HELLO_LEN];
    hello_i().encode(&mut h).unwrap();
    frames.push(h.to_vec());
    let mut c = [0u8; CONFIRM_LEN];
    i.confirm(&mut c).unwrap();
    frames.push(c.to_vec());
    for (pfkey, p) in payloads {
        frames.push(seal(
            &mut i,
            if *pfkey { Kind::Pfkey } else { Kind::Ctl },
            p,
        ));
    }
    (frames.concat(), frames)
}

fn payloads() -> impl Strategy<Value = Vec<(bool, Vec<u8>)>> {
    prop::collection::vec(
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)),
        0..6,
    )
}

proptest! {
    #[test]
    fn open_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= HEADER_LEN {
            // Make the header plausible so the MAC path runs too.
            let len = (bytes.len() as u16).to_be_bytes();
            bytes[..HEADER_LEN].copy_from_slice(&[b'S', b'A', b'S', b'Y', 2, 3, len[0], len[1]]);
        }
        let (mut i, mut r) = fresh();
        prop_assert!(r.check_confirm(&mut bytes.clone()).is_err());
        confirm_both(&mut i, &mut r);
        prop_assert!(r.open(&mut bytes).is_err());
    }

    #[test]
    fn seal_then_open_is_identity(payload in prop::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD), pfkey in any::<bool>(), to_initiator in any::<bool>()) {
        let (mut i, mut r) = pair();
        let kind = if pfkey { Kind::Pfkey } else { Kind::Ctl };
        let (tx, rx) = if to_initiator { (&mut r, &mut i) } else { (&mut i, &mut r) };
        let f = seal(tx, kind, &payload);
        prop_assert_eq!(f.len(), SEALED_OVERHEAD + payload.len());
        prop_assert_eq!(open(rx, &f), Ok((kind, payload)));
    }

    #[test]
    fn deframer_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut d = V2Deframer::new();
        let mut input = &bytes[..];
        while let Ok(Some(_)) = d.next_frame(&mut input) {}
    }

    #[test]
    fn deframer_any_chunking_same_frames(ps in payloads(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let (stream, frames) = stream_of(&ps);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut d = V2Deframer::new();
        let mut got = Vec::new();
        for w in cuts.windows(2) {
            let mut input = &stream[w[0]..w[1]];
            while let Some(f) = d.next_frame(&mut input).unwrap() {
                got.push(f.to_vec());
            }
            prop_assert!(input.is_empty());
        }
        prop_assert_eq!(d.pending(), 0);
        prop_assert_eq!(&got, &frames);
        // And the responder accepts the reassembled stream.
        let (_, mut r) = fresh();
        prop_assert_eq!(Hello::decode(&got[0]), Ok(hello_i()));
        r.check_confirm(&mut got[1]).unwrap();
        for (f, (_, p)) in got[2..].iter_mut().zip(&ps) {
            prop_assert_eq!(r.open(f).map(|(_, q)| q.to_vec()), Ok(p.clone()));
        }
    }
}
