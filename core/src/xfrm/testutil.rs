//! Records laid out as the kernel writes them, field by field: the unit
//! tests' (here and in the Linux platform) and the simulator's samples.

use alloc::vec;
use alloc::vec::Vec;

use super::consts::*;
use super::identity::Mark;
use super::nl::{Builder, Msg};
use super::view::{PolicyView, SaView};

/// A `NEWSA` record: ESP tunnel 192.0.2.1 -> 192.0.2.2, `spi`,
/// reqid 7, mark 5/0xff, CBC(AES) and HMAC(SHA256) keys, 3000 bytes
/// used.
pub fn newsa(kind: u16, spi: u32) -> Vec<u8> {
    let mut info = [0u8; USERSA_INFO_LEN];
    info[sa_off::SEL + 40..sa_off::SEL + 42].copy_from_slice(&AF_INET.to_ne_bytes());
    info[sa_off::DADDR..sa_off::DADDR + 4].copy_from_slice(&[192, 0, 2, 2]);
    info[sa_off::SPI..sa_off::SPI + 4].copy_from_slice(&spi.to_be_bytes());
    info[sa_off::PROTO] = IPPROTO_ESP;
    info[sa_off::SADDR..sa_off::SADDR + 4].copy_from_slice(&[192, 0, 2, 1]);
    info[sa_off::LFT..sa_off::LFT + 8].copy_from_slice(&u64::MAX.to_ne_bytes());
    info[sa_off::CURLFT..sa_off::CURLFT + 8].copy_from_slice(&3000u64.to_ne_bytes());
    info[sa_off::CURLFT + 8..sa_off::CURLFT + 16].copy_from_slice(&20u64.to_ne_bytes());
    info[sa_off::CURLFT + 16..sa_off::CURLFT + 24].copy_from_slice(&1_700_000_000u64.to_ne_bytes());
    info[sa_off::REQID..sa_off::REQID + 4].copy_from_slice(&7u32.to_ne_bytes());
    info[sa_off::FAMILY..sa_off::FAMILY + 2].copy_from_slice(&AF_INET.to_ne_bytes());
    info[sa_off::MODE] = 1;
    info[sa_off::REPLAY_WINDOW] = 32;
    let mut crypt = vec![0u8; 64 + 4];
    crypt[..8].copy_from_slice(b"cbc(aes)");
    crypt[64..68].copy_from_slice(&128u32.to_ne_bytes());
    crypt.extend_from_slice(&[0x11; 16]);
    let mut auth = vec![0u8; 64 + 8];
    auth[..12].copy_from_slice(b"hmac(sha256)");
    auth[64..68].copy_from_slice(&256u32.to_ne_bytes());
    auth[68..72].copy_from_slice(&128u32.to_ne_bytes());
    auth.extend_from_slice(&[0x22; 32]);
    Builder::new(kind, 0)
        .raw(&info)
        .attr(attr::ALG_AUTH_TRUNC, &auth)
        .attr(attr::ALG_CRYPT, &crypt)
        .attr(attr::LASTUSED, &[0; 8])
        .attr(attr::MARK, &Mark { v: 5, m: 0xff }.to_bytes())
        .attr(attr::OFFLOAD_DEV, &[0; 8])
        .finish()
}

/// A `DELSA` event for the state [`newsa`] builds.
pub fn delsa(spi: u32) -> Vec<u8> {
    let full = newsa(msg::NEWSA, spi);
    let m = Msg::new(&full).unwrap();
    let sa = SaView::from_new(&m).unwrap();
    let mut id = [0u8; USERSA_ID_LEN];
    id[..16].copy_from_slice(&sa.info[sa_off::DADDR..sa_off::DADDR + 16]);
    id[16..20].copy_from_slice(&spi.to_be_bytes());
    id[20..22].copy_from_slice(&AF_INET.to_ne_bytes());
    id[22] = IPPROTO_ESP;
    Builder::new(msg::DELSA, 0)
        .raw(&id)
        .attr(attr::SA, sa.info)
        .attr(attr::MARK, &Mark { v: 5, m: 0xff }.to_bytes())
        .finish()
}

/// A `NEWPOLICY` record: out, 10.1.0.0/24 -> 10.2.0.0/24, index 0x801
/// (an out policy's), priority 100, mark 5/0xff, if_id 9, one ESP
/// tunnel template.
pub fn newpolicy(kind: u16) -> Vec<u8> {
    let mut info = [0u8; USERPOLICY_INFO_LEN];
    info[..4].copy_from_slice(&[10, 2, 0, 0]);
    info[16..20].copy_from_slice(&[10, 1, 0, 0]);
    info[40..42].copy_from_slice(&AF_INET.to_ne_bytes());
    info[42] = 24;
    info[43] = 24;
    info[pol_off::PRIORITY..pol_off::PRIORITY + 4].copy_from_slice(&100u32.to_ne_bytes());
    info[pol_off::INDEX..pol_off::INDEX + 4].copy_from_slice(&0x801u32.to_ne_bytes());
    info[pol_off::DIR] = 1;
    Builder::new(kind, 0)
        .raw(&info)
        .attr(attr::TMPL, &[0x33; 64])
        .attr(attr::MARK, &Mark { v: 5, m: 0xff }.to_bytes())
        .attr(attr::IF_ID, &9u32.to_ne_bytes())
        .finish()
}

/// A `DELPOLICY` event for the policy [`newpolicy`] builds.
pub fn delpolicy() -> Vec<u8> {
    let full = newpolicy(msg::NEWPOLICY);
    let m = Msg::new(&full).unwrap();
    let p = PolicyView::from_new(&m).unwrap();
    let mut id = [0u8; USERPOLICY_ID_LEN];
    id[..SELECTOR_LEN].copy_from_slice(&p.info[..SELECTOR_LEN]);
    id[56..60].copy_from_slice(&0x801u32.to_ne_bytes());
    id[60] = 1;
    Builder::new(msg::DELPOLICY, 0)
        .raw(&id)
        .attr(attr::POLICY, p.info)
        .attr(attr::TMPL, &[0x33; 64])
        .attr(attr::MARK, &Mark { v: 5, m: 0xff }.to_bytes())
        .attr(attr::IF_ID, &9u32.to_ne_bytes())
        .finish()
}
