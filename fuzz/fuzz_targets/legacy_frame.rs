//! Legacy frames: deframing under any chunking, then decoding with a fixed
//! key; and an encode → deframe → decode round trip of the input itself.
//!
//! Input: one byte that seeds the chunking (and the IV of the round trip),
//! then the byte stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::wire::legacy::{
    Legacy, LegacyCodec, LegacyError, MsgType, HEADER_LEN, MAX_FRAME, MAX_PLAINTEXT,
};

#[path = "common.rs"]
mod common;
use common::{deframe, Chunker};

/// The shared key of the reference's worked examples (§16).
const KEY: &[u8] = b"sasyncd-test-key";

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let codec = LegacyCodec::new(SoftCrypto, KEY).expect("16-byte key");

    // The chunking must not matter.
    let whole = deframe::<Legacy, MAX_FRAME>(stream, None);
    let chunked = deframe::<Legacy, MAX_FRAME>(stream, Some(Chunker::new(seed)));
    assert_eq!(whole, chunked);

    for frame in &whole.frames {
        let mut buf = frame.clone();
        match codec.decode(&mut buf) {
            Ok((ty, text)) => check_canonical(&codec, frame, ty, text),
            // The deframer already checked the length word.
            Err(e) => assert_ne!(e, LegacyError::LengthOutOfRange),
        }
    }

    // Encode the stream's bytes as a plaintext and read them back.
    let text = &stream[..stream.len().min(MAX_PLAINTEXT)];
    let ty = if seed & 1 == 0 {
        MsgType::Ctl
    } else {
        MsgType::PfkeyData
    };
    let iv = [seed; 16];
    let mut out = vec![0u8; MAX_FRAME];
    match codec.encode(ty, text, iv, &mut out) {
        Ok(n) => {
            assert_eq!(Ok(n), LegacyCodec::<SoftCrypto>::frame_len(text.len()));
            assert_eq!(n % 16, 0);
            let frames = deframe::<Legacy, MAX_FRAME>(&out[..n], Some(Chunker::new(seed)));
            assert_eq!(frames.error, None);
            assert_eq!(frames.frames.len(), 1);
            let mut f = frames.frames[0].clone();
            assert_eq!(codec.decode(&mut f), Ok((ty, text)));
        }
        Err(e) => assert!(text.is_empty() && e == LegacyError::Empty),
    }
    // Too small an output buffer is refused, never overrun.
    if let Ok(n) = LegacyCodec::<SoftCrypto>::frame_len(text.len()) {
        assert_eq!(
            codec.encode(ty, text, iv, &mut out[..n - 1]),
            Err(LegacyError::BufferTooSmall)
        );
    }
});

/// An accepted frame is what `encode` makes of its plaintext, except for the
/// pad bytes (which the original never checks and the hash does not cover):
/// the header is identical, and so is the ciphertext up to the last block.
fn check_canonical(codec: &LegacyCodec<SoftCrypto>, frame: &[u8], ty: MsgType, text: &[u8]) {
    assert!(!text.is_empty() && text.len() <= MAX_PLAINTEXT);
    let iv: [u8; 16] = frame[32..48].try_into().unwrap();
    let mut out = vec![0u8; MAX_FRAME];
    let n = codec.encode(ty, text, iv, &mut out).expect("re-encode");
    assert_eq!(n, frame.len());
    assert_eq!(out[..HEADER_LEN], frame[..HEADER_LEN]);
    let padded = !text.len().is_multiple_of(16);
    let same_upto = if padded { n - 16 } else { n };
    assert_eq!(out[..same_upto], frame[..same_upto]);
}
