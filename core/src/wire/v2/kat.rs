//! Known-answer tests. The expected values were computed independently of
//! this code, from the README's description, with Python's `hmac`,
//! `hashlib` and the `cryptography` package (HKDF-Expand and AES-CTR there):
//! see `kat.py` beside this file.

use super::hello::{ArchTag, ByteOrder, Hello};
use super::kdf::derive;
use super::session::{Session, Side};
use super::{Kind, HELLO_LEN};
use crate::crypto::SoftCrypto;
use crate::dialect::KernelDialect;
use crate::state::{Position, RunState};

pub(super) fn hex(s: &str) -> std::vec::Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn seq_bytes<const N: usize>(start: u8) -> [u8; N] {
    core::array::from_fn(|i| start + i as u8)
}

pub(super) const SHARED: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];

pub(super) fn hello_i() -> Hello {
    Hello {
        node_id: seq_bytes(0x10),
        boot_epoch: 1,
        nonce: seq_bytes(0x40),
        run_state: RunState::Master,
        resume: Position { epoch: 3, seq: 42 },
        arch: ArchTag {
            order: ByteOrder::Little,
            pointer_bytes: 8,
        },
        dialect: KernelDialect::OpenBsd,
    }
}

pub(super) fn hello_r() -> Hello {
    Hello {
        node_id: seq_bytes(0x20),
        boot_epoch: 0x1122_3344_5566_7788,
        nonce: seq_bytes(0x60),
        run_state: RunState::Slave,
        resume: Position::NONE,
        arch: ArchTag {
            order: ByteOrder::Little,
            pointer_bytes: 8,
        },
        dialect: KernelDialect::OpenBsd,
    }
}

const HELLO_I: &str = "5341535902010054101112131415161718191a1b1c1d1e1f0000000000000001\
                       404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f\
                       0000000000000003000000000000002a02010800";
const HELLO_R: &str = "5341535902010054202122232425262728292a2b2c2d2e2f1122334455667788\
                       606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f\
                       0000000000000000000000000000000001010800";

const CONFIRM_I: &str = "53415359020200500000000000000000\
                         34a48cdfdb85aeae6ae6679b2f368a702a104cb56a3d64b0d8d216a618a21414\
                         0329a98004a69fa0fa7edeb6039610d267b9f1a10d62dbc899487fb5a9833f91";
const CONFIRM_R: &str = "53415359020200500000000000000000\
                         0ac37c6abad95bb06452881483adc5405e43a3d8865703ddd3f06ba4ec6c2b09\
                         6bdf9b8be5b65c592822cea4fde19b3eff1a52f3c5766a01f4bac19fe77d1185";
/// CTL_STATE(MASTER), initiator → responder, sequence 1.
const CTL_I_1: &str = "534153590203003c0000000000000001\
                       6af4812f2bc5ff70b5f2f6c6\
                       db4146cb556105062abfddab65ae288e7f5e16afbc521697917e41182159d7ce";
/// 20 bytes 0x80..0x93 (two CTR blocks), responder → initiator, sequence 1.
const PFKEY_R_1: &str = "53415359020400440000000000000001\
                         7579d6515a4129e28ddd343f39b3d34725300e8c\
                         ebb2ba48d8a2dea6eb4badd294b34caa264b4fac480e645e14f3ea0770c93b1e";

#[test]
fn hello_encodings() {
    let mut buf = [0u8; HELLO_LEN];
    hello_i().encode(&mut buf).unwrap();
    assert_eq!(buf.to_vec(), hex(HELLO_I));
    hello_r().encode(&mut buf).unwrap();
    assert_eq!(buf.to_vec(), hex(HELLO_R));
}

#[test]
fn derived_keys() {
    let (hi, hr) = (hello_i(), hello_r());
    let ks = derive(
        &SoftCrypto,
        &SHARED,
        &hi.to_bytes(),
        &hr.to_bytes(),
        &hi.nonce,
        &hr.nonce,
    );
    assert_eq!(
        ks.transcript.to_vec(),
        hex("8b06984b491a10d7e9c8d2913ad7594eb196caaffb70f5239a675754b8ca15b3")
    );
    assert_eq!(
        ks.i2r.enc.to_vec(),
        hex("ccf1b7c15a27fa137f8abb1eea19e763d52ed99716fe16eb02b1c1f16efbd40f")
    );
    assert_eq!(
        ks.i2r.mac.to_vec(),
        hex("f6a270a59a60c4f0566e3625475a457056f346277031b3c147033908418e0728")
    );
    assert_eq!(
        ks.r2i.enc.to_vec(),
        hex("80169747c992c22c82793f1762d0ff645f6bc02149c1c9e603ab5e74393c8bc9")
    );
    assert_eq!(
        ks.r2i.mac.to_vec(),
        hex("0a8963275553fed256f552186100e4310806f872a906314bd46138f827f9b03f")
    );
}

#[test]
fn sealed_frames_both_directions() {
    let (hi, hr) = (hello_i(), hello_r());
    let mut i = Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi, &hr).unwrap();
    let mut r = Session::new(SoftCrypto, &SHARED, Side::Responder, &hr, &hi).unwrap();
    let mut buf = [0u8; 128];

    let n = i.confirm(&mut buf).unwrap();
    assert_eq!(buf[..n].to_vec(), hex(CONFIRM_I));
    r.check_confirm(&mut buf[..n]).unwrap();
    let n = r.confirm(&mut buf).unwrap();
    assert_eq!(buf[..n].to_vec(), hex(CONFIRM_R));
    i.check_confirm(&mut buf[..n]).unwrap();

    let ctl = hex("000000010000000200000000");
    let n = i.seal(Kind::Ctl, &ctl, &mut buf).unwrap();
    assert_eq!(buf[..n].to_vec(), hex(CTL_I_1));
    assert_eq!(r.open(&mut buf[..n]).unwrap(), (Kind::Ctl, &ctl[..]));

    let pfkey: [u8; 20] = seq_bytes(0x80);
    let n = r.seal(Kind::Pfkey, &pfkey, &mut buf).unwrap();
    assert_eq!(buf[..n].to_vec(), hex(PFKEY_R_1));
    assert_eq!(i.open(&mut buf[..n]).unwrap(), (Kind::Pfkey, &pfkey[..]));
}
