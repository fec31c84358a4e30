//! v2 frames: deframing under any chunking, HELLO decoding, and key
//! confirmation / opening on a fixed established session pair; plus a seal
//! → tamper → open round trip of the input itself.
//!
//! Input: one byte that seeds the chunking (and the tampering), then the
//! byte stream. Seeds in `fuzz/seeds/v2_frame` hold frames sealed by the
//! fixed initiator, which open on the fixed responder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sasyncd_core::ctl::Ctl;
use sasyncd_core::wire::v2::{
    FrameType, Hello, Kind, V2Error, HELLO_LEN, MAX_FRAME, MAX_PAYLOAD, SEALED_OVERHEAD, V2,
};

#[path = "common.rs"]
mod common;
use common::v2::{established, fresh};
use common::{deframe, Chunker};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };

    let whole = deframe::<V2, MAX_FRAME>(stream, None);
    let chunked = deframe::<V2, MAX_FRAME>(stream, Some(Chunker::new(seed)));
    assert_eq!(whole, chunked);

    // `unconfirmed` has not seen the initiator's CONFIRM; `est` has, and
    // expects sequence 1 next.
    let (_, mut unconfirmed) = fresh();
    let (_, mut est) = established();
    for frame in &whole.frames {
        // The deframer only yields frames whose header it accepted.
        let ty = FrameType::of(frame).expect("deframed frame has a valid header");

        match Hello::decode(frame) {
            Ok(h) => {
                // Strict decoding: the bytes are canonical.
                let mut out = [0u8; HELLO_LEN];
                assert_eq!(h.encode(&mut out), Ok(HELLO_LEN));
                assert_eq!(&out[..], &frame[..]);
            }
            // A deframed HELLO has the right length: only a field can be wrong.
            Err(e) if ty == FrameType::Hello => assert_eq!(e, V2Error::Malformed),
            Err(_) => {}
        }

        let mut f = frame.clone();
        match unconfirmed.check_confirm(&mut f) {
            Ok(()) => assert_eq!(unconfirmed.next_rx_seq(), 1),
            Err(_) => assert!(unconfirmed.next_rx_seq() <= 1),
        }

        let before = est.next_rx_seq();
        let mut f = frame.clone();
        match est.open(&mut f) {
            Ok((kind, payload)) => {
                assert!(matches!(ty, FrameType::Ctl | FrameType::Pfkey));
                assert_eq!(kind.frame_type(), ty);
                assert_eq!(payload.len(), frame.len() - SEALED_OVERHEAD);
                assert!(payload.len() <= MAX_PAYLOAD);
                if kind == Kind::Ctl {
                    let _ = Ctl::decode(payload);
                }
                assert_eq!(est.next_rx_seq(), before + 1);
            }
            Err(_) => assert_eq!(est.next_rx_seq(), before, "refused frame moved rx_seq"),
        }
    }

    round_trip(seed, &stream[..stream.len().min(MAX_PAYLOAD)]);
});

/// Seal the input, check that every single-byte change, a replay and a
/// reflection are refused without moving the session, and that the
/// original opens to the same payload.
fn round_trip(seed: u8, payload: &[u8]) {
    let (mut i, mut r) = established();
    let kind = if seed & 1 == 0 {
        Kind::Ctl
    } else {
        Kind::Pfkey
    };
    let mut out = vec![0u8; MAX_FRAME];
    let n = i.seal(kind, payload, &mut out).expect("seal");
    assert_eq!(n, SEALED_OVERHEAD + payload.len());
    let frame = out[..n].to_vec();

    let d = deframe::<V2, MAX_FRAME>(&frame, Some(Chunker::new(seed)));
    assert_eq!((d.frames.len(), d.error, d.pending), (1, None, 0));
    assert_eq!(d.frames[0], frame);

    let at = usize::from(seed).wrapping_mul(31) % n;
    let mut bad = frame.clone();
    bad[at] ^= seed | 1;
    assert!(r.open(&mut bad).is_err(), "tampered byte {at} accepted");
    assert_eq!(r.next_rx_seq(), 1);

    // The initiator does not open its own frame.
    assert_eq!(i.open(&mut frame.clone()).err(), Some(V2Error::Reflected));

    let mut f = frame.clone();
    assert_eq!(r.open(&mut f), Ok((kind, payload)));
    assert_eq!(
        r.open(&mut frame.clone()).err(),
        Some(V2Error::Replay {
            got: 1,
            expected: 2
        })
    );
}
