use super::*;
use crate::crypto::SoftCrypto;
use proptest::prelude::*;
use std::vec::Vec;

const KEY: &[u8; 16] = b"sasyncd-test-key";
const IV: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];

fn hex(s: &str) -> Vec<u8> {
    let s: std::string::String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Reference §16.1: CTL_STATE MASTER, 4 bytes of padding.
fn frame_a() -> Vec<u8> {
    hex("00 00 00 3c 00 00 00 00 00 00 00 04 b0 e0 f9 84
         74 db 56 27 ea d9 a1 2c f2 0c 33 d6 3a e5 05 66
         a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af
         8c 29 68 6c 74 c4 c1 bb 43 25 fd 25 4d ca 30 7f")
}
const PLAIN_A: [u8; 12] = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0];

/// Reference §16.2: a 16-byte SADB_FLUSH, no padding.
fn frame_b() -> Vec<u8> {
    hex("00 00 00 3c 00 00 00 01 00 00 00 00 97 a6 7b 79
         a7 99 d0 76 45 e9 ba 22 f6 37 b1 ec bc 76 25 a3
         a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af
         e6 b1 0d 48 84 56 0b 26 8e 4f 6e 8b 63 56 a0 a3")
}
const PLAIN_B: [u8; 16] = [2, 9, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0x39, 0x30, 0, 0];

fn codec() -> LegacyCodec<SoftCrypto> {
    LegacyCodec::new(SoftCrypto, KEY).unwrap()
}

fn enc(c: &LegacyCodec<SoftCrypto>, ty: MsgType, pt: &[u8], iv: [u8; 16]) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    let n = c.encode(ty, pt, iv, &mut out).unwrap();
    out[..n].to_vec()
}

#[test]
fn known_answer_frame_a() {
    assert_eq!(enc(&codec(), MsgType::Ctl, &PLAIN_A, IV), frame_a());
    let mut f = frame_a();
    assert_eq!(codec().decode(&mut f), Ok((MsgType::Ctl, &PLAIN_A[..])));
    // The decrypted padding is the original's descending 04 03 02 01.
    assert_eq!(f[60..], [4, 3, 2, 1]);
}

#[test]
fn known_answer_frame_b() {
    assert_eq!(enc(&codec(), MsgType::PfkeyData, &PLAIN_B, IV), frame_b());
    let mut f = frame_b();
    assert_eq!(
        codec().decode(&mut f),
        Ok((MsgType::PfkeyData, &PLAIN_B[..]))
    );
}

#[test]
fn round_trip_all_key_sizes_and_many_lengths() {
    let lengths = (1..=100).chain([255, 256, 257, 1000, 4079, 4080, 4081, 4095, 4096]);
    let lengths: Vec<usize> = lengths.collect();
    for key_len in [16usize, 24, 32] {
        let key: Vec<u8> = (0..key_len as u8).collect();
        let c = LegacyCodec::new(SoftCrypto, &key).unwrap();
        for &n in &lengths {
            let pt: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            let iv = [n as u8; 16];
            let mut f = enc(&c, MsgType::PfkeyData, &pt, iv);
            assert_eq!(f.len(), LegacyCodec::<SoftCrypto>::frame_len(n).unwrap());
            assert_eq!((f.len() - HEADER_LEN) % 16, 0);
            assert_eq!(Legacy::frame_len(&f[..4]), Ok(f.len()));
            let pad = f[11] as usize;
            assert_eq!(pad, (16 - n % 16) % 16, "len {n}");
            let (ty, got) = c.decode(&mut f).unwrap();
            assert_eq!(
                (ty, got),
                (MsgType::PfkeyData, &pt[..]),
                "key {key_len} len {n}"
            );
        }
    }
}

#[test]
fn key_sizes_give_different_ciphers() {
    assert_eq!(
        LegacyCodec::new(SoftCrypto, &[0u8; 20]).unwrap_err(),
        BadKeyLength(20)
    );
    let a = enc(&codec(), MsgType::Ctl, &PLAIN_A, IV);
    let c24 = LegacyCodec::new(SoftCrypto, &[7u8; 24]).unwrap();
    let c32 = LegacyCodec::new(SoftCrypto, &[7u8; 32]).unwrap();
    let b = enc(&c24, MsgType::Ctl, &PLAIN_A, IV);
    let c = enc(&c32, MsgType::Ctl, &PLAIN_A, IV);
    assert_eq!(a[..48], b[..48]);
    assert_ne!(a[48..], b[48..]);
    assert_ne!(b[48..], c[48..]);
}

#[test]
fn encode_refuses_what_the_original_would_reject() {
    let c = codec();
    let mut out = std::vec![0u8; MAX_FRAME + 64];
    let big = std::vec![0u8; MAX_PLAINTEXT + 1];
    assert_eq!(
        c.encode(MsgType::PfkeyData, &big, IV, &mut out),
        Err(LegacyError::TooLong)
    );
    assert_eq!(
        c.encode(MsgType::PfkeyData, &[], IV, &mut out),
        Err(LegacyError::Empty)
    );
    // The largest accepted plaintext gives exactly the largest frame.
    assert_eq!(
        c.encode(MsgType::PfkeyData, &big[..MAX_PLAINTEXT], IV, &mut out),
        Ok(MAX_FRAME)
    );
    // A 1-byte plaintext pads to 16, within MIN_CIPHER.
    assert_eq!(c.encode(MsgType::Ctl, &[1], IV, &mut out), Ok(64));
}

#[test]
fn encode_buffer_too_small() {
    let c = codec();
    let mut out = [0u8; 64];
    for n in 0..64 {
        assert_eq!(
            c.encode(MsgType::Ctl, &PLAIN_A, IV, &mut out[..n]),
            Err(LegacyError::BufferTooSmall)
        );
    }
}

fn set_len(f: &mut [u8], blob_len: u32) {
    f[..4].copy_from_slice(&blob_len.to_be_bytes());
}

#[test]
fn length_out_of_range() {
    for blob_len in [0u32, 43, 44, 55, 44 + 4097, u32::MAX] {
        assert_eq!(
            Legacy::frame_len(&blob_len.to_be_bytes()),
            Err(LegacyError::LengthOutOfRange),
            "{blob_len}"
        );
    }
    assert_eq!(Legacy::frame_len(&56u32.to_be_bytes()), Ok(60));
    assert_eq!(Legacy::frame_len(&4140u32.to_be_bytes()), Ok(MAX_FRAME));
    assert_eq!(
        Legacy::frame_len(&[0, 0]),
        Err(LegacyError::LengthOutOfRange)
    );
    // decode: the length word must describe exactly the frame it is in.
    let mut f = frame_a();
    set_len(&mut f, 76);
    assert_eq!(codec().decode(&mut f), Err(LegacyError::LengthOutOfRange));
    let mut f = frame_a();
    assert_eq!(
        codec().decode(&mut f[..63]),
        Err(LegacyError::LengthOutOfRange)
    );
    assert_eq!(codec().decode(&mut []), Err(LegacyError::LengthOutOfRange));
}

#[test]
fn not_block_aligned() {
    let mut f = frame_a();
    f.extend_from_slice(&[0; 4]);
    set_len(&mut f, 64);
    assert_eq!(codec().decode(&mut f), Err(LegacyError::NotBlockAligned));
    // The original's minimum, 12 bytes of ciphertext, is never aligned.
    let mut f = frame_a();
    f.truncate(60);
    set_len(&mut f, 56);
    assert_eq!(codec().decode(&mut f), Err(LegacyError::NotBlockAligned));
}

#[test]
fn unknown_type() {
    for t in [2u32, 5, 0x100, u32::MAX] {
        let mut f = frame_a();
        f[4..8].copy_from_slice(&t.to_be_bytes());
        assert_eq!(codec().decode(&mut f), Err(LegacyError::UnknownType(t)));
    }
}

#[test]
fn bad_padding() {
    // 16 and up, including the "negative" values that crash the original (D-3).
    for p in [16u32, 17, 0x7fff_ffff, 0x8000_0000, u32::MAX] {
        let mut f = frame_a();
        f[8..12].copy_from_slice(&p.to_be_bytes());
        assert_eq!(codec().decode(&mut f), Err(LegacyError::BadPadding(p)));
        // Nothing was decrypted.
        assert_eq!(f[48..], frame_a()[48..]);
    }
    // Any padding length below 16 is structurally fine; a wrong one makes
    // the hash differ.
    let mut f = frame_a();
    f[11] = 3;
    assert_eq!(codec().decode(&mut f), Err(LegacyError::HashMismatch));
}

#[test]
fn hash_mismatch() {
    let wrong = LegacyCodec::new(SoftCrypto, b"sasyncd-test-kez").unwrap();
    assert_eq!(wrong.decode(&mut frame_a()), Err(LegacyError::HashMismatch));
    for at in [12usize, 31, 32, 47, 48, 63] {
        let mut f = frame_b();
        f[at] ^= 1;
        assert_eq!(
            codec().decode(&mut f),
            Err(LegacyError::HashMismatch),
            "{at}"
        );
    }
}

#[test]
fn pad_bytes_are_not_checked() {
    // The original never looks at them: flip the IV bit that lands in the
    // last pad byte; the frame still decodes.
    let mut f = frame_a();
    f[47] ^= 0x10;
    assert_eq!(codec().decode(&mut f), Ok((MsgType::Ctl, &PLAIN_A[..])));
}

#[test]
fn errors_display_one_line() {
    for e in [
        LegacyError::LengthOutOfRange,
        LegacyError::NotBlockAligned,
        LegacyError::UnknownType(7),
        LegacyError::BadPadding(99),
        LegacyError::HashMismatch,
        LegacyError::TooLong,
        LegacyError::Empty,
        LegacyError::BufferTooSmall,
    ] {
        let s = std::format!("{e}");
        assert!(!s.is_empty() && !s.contains('\n'));
    }
}

/// Feeds `chunks` to a fresh deframer; returns the frames, decoded.
fn deframe(chunks: &[&[u8]]) -> Result<Vec<(MsgType, Vec<u8>)>, LegacyError> {
    let c = codec();
    let mut d = LegacyDeframer::new();
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        while let Some(f) = d.next_frame(&mut input)? {
            let (ty, pt) = c.decode(f)?;
            out.push((ty, pt.to_vec()));
        }
        assert!(input.is_empty());
    }
    assert_eq!(d.pending(), 0);
    Ok(out)
}

fn two_frames() -> (Vec<u8>, Vec<(MsgType, Vec<u8>)>) {
    let stream = [frame_a(), frame_b()].concat();
    let want = std::vec![
        (MsgType::Ctl, PLAIN_A.to_vec()),
        (MsgType::PfkeyData, PLAIN_B.to_vec())
    ];
    (stream, want)
}

#[test]
fn deframe_every_split_point() {
    let (s, want) = two_frames();
    for i in 0..=s.len() {
        assert_eq!(deframe(&[&s[..i], &s[i..]]), Ok(want.clone()), "split {i}");
    }
}

#[test]
fn deframe_every_pair_of_split_points() {
    let (s, want) = two_frames();
    for i in 0..=s.len() {
        for j in i..=s.len() {
            let got = deframe(&[&s[..i], &s[i..j], &s[j..]]);
            assert_eq!(got, Ok(want.clone()), "splits {i} {j}");
        }
    }
}

#[test]
fn deframe_refuses_length_before_body() {
    let mut d = LegacyDeframer::new();
    let mut input: &[u8] = &[0, 0, 0x10, 0x2d, 9, 9, 9];
    assert_eq!(
        d.next_frame(&mut input).unwrap_err(),
        LegacyError::LengthOutOfRange
    );
    assert_eq!(input, &[9, 9, 9]);
    assert_eq!(
        d.next_frame(&mut input).unwrap_err(),
        LegacyError::LengthOutOfRange
    );
}

proptest! {
    #[test]
    fn decoder_never_panics(
        len_word in prop::option::of(56u32..=120),
        tail in prop::collection::vec(any::<u8>(), 0..300),
        split in any::<prop::sample::Index>(),
    ) {
        // Often start with a plausible length so the body reaches decode.
        let mut bytes = len_word.map(|l| l.to_be_bytes().to_vec()).unwrap_or_default();
        bytes.extend_from_slice(&tail);
        let c = codec();
        let mut d = LegacyDeframer::new();
        let at = split.index(bytes.len() + 1);
        for part in [&bytes[..at], &bytes[at..]] {
            let mut input = part;
            while let Ok(Some(f)) = d.next_frame(&mut input) {
                let _ = c.decode(f);
            }
        }
        let mut raw = bytes.clone();
        let _ = c.decode(&mut raw);
    }

    #[test]
    fn decode_never_panics_on_plausible_headers(
        cipher_blocks in 1usize..8,
        ty in 0u32..3,
        padlen in prop_oneof![0u32..20, any::<u32>()],
        rest in prop::collection::vec(any::<u8>(), 160),
    ) {
        let n = HEADER_LEN + cipher_blocks * 16;
        let mut f = rest[..n - 12].to_vec();
        f.splice(0..0, [((n - 4) as u32).to_be_bytes(), ty.to_be_bytes(), padlen.to_be_bytes()].concat());
        let _ = codec().decode(&mut f);
    }

    #[test]
    fn round_trip(
        key_len in prop::sample::select(std::vec![16usize, 24, 32]),
        key_seed in any::<u8>(),
        pt in prop::collection::vec(any::<u8>(), 1..=MAX_PLAINTEXT),
        iv in any::<[u8; 16]>(),
        pfkey in any::<bool>(),
    ) {
        let key: Vec<u8> = (0..key_len).map(|i| key_seed ^ i as u8).collect();
        let c = LegacyCodec::new(SoftCrypto, &key).unwrap();
        let ty = if pfkey { MsgType::PfkeyData } else { MsgType::Ctl };
        let mut f = enc(&c, ty, &pt, iv);
        let cipher = f.len() - HEADER_LEN;
        prop_assert!((MIN_CIPHER..=MAX_CIPHER).contains(&cipher));
        prop_assert_eq!(c.decode(&mut f), Ok((ty, &pt[..])));
    }

    #[test]
    fn any_chunking_gives_same_frames(
        lens in prop::collection::vec(1usize..300, 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let c = codec();
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (i, &n) in lens.iter().enumerate() {
            let pt: Vec<u8> = (0..n).map(|j| (i + j) as u8).collect();
            let ty = if i % 2 == 0 { MsgType::Ctl } else { MsgType::PfkeyData };
            stream.extend(enc(&c, ty, &pt, [i as u8; 16]));
            want.push((ty, pt));
        }
        let mut points: Vec<usize> = cuts.iter().map(|x| x.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
        prop_assert_eq!(deframe(&chunks), Ok(want));
    }
}
