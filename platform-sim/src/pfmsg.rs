//! Building PF_KEY messages as owned byte vectors (reference §13.1), for
//! the simulated kernel's dumps and the IKE workload's requests.
//!
//! The core's views ([`sasyncd_core::pfkey::Msg`] and friends) parse what
//! this writes; the layouts are the kernel's, in host byte order.

use std::net::IpAddr;

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::Extensions;

/// The BSD sockaddr for `ip`/`port` (16 bytes for IPv4, 28 for IPv6).
pub fn sockaddr(ip: IpAddr, port: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(28);
    match ip {
        IpAddr::V4(a) => {
            v.extend_from_slice(&[SOCKADDR_IN_LEN, AF_INET]);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend_from_slice(&a.octets());
            v.extend_from_slice(&[0; 8]);
        }
        IpAddr::V6(a) => {
            v.extend_from_slice(&[SOCKADDR_IN6_LEN, AF_INET6]);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend_from_slice(&[0; 4]);
            v.extend_from_slice(&a.octets());
            v.extend_from_slice(&[0; 4]);
        }
    }
    v
}

/// The extensions in `exts` whose type is in `keep`, indexed by type
/// (empty where absent), to be laid out in some order.
pub fn exts_by_type<'a>(exts: Extensions<'a>, keep: ExtSet) -> [&'a [u8]; 64] {
    let mut by_type: [&[u8]; 64] = [&[]; 64];
    for e in exts.map_while(Result::ok) {
        if keep.contains(e.ext_type()) {
            by_type[usize::from(e.ext_type()) % 64] = e.bytes();
        }
    }
    by_type
}

/// One extension (header included, padded to 8 bytes) with `payload`
/// after the 4-byte common header.
pub fn ext(ty: u16, payload: &[u8]) -> Vec<u8> {
    let n = (EXT_HDR_LEN + payload.len()).div_ceil(CHUNK) * CHUNK;
    let mut v = Vec::with_capacity(n);
    v.extend_from_slice(&((n / CHUNK) as u16).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(payload);
    v.resize(n, 0);
    v
}

/// An SA (or X_SA2) extension.
pub fn sa_ext(ty: u16, spi: u32, state: u8, auth: u8, enc: u8, flags: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&spi.to_be_bytes());
    p.extend_from_slice(&[64, state, auth, enc]);
    p.extend_from_slice(&flags.to_ne_bytes());
    ext(ty, &p)
}

/// A `sadb_lifetime` extension.
pub fn lifetime_ext(ty: u16, alloc: u32, bytes: u64, add: u64, used: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&alloc.to_ne_bytes());
    p.extend_from_slice(&bytes.to_ne_bytes());
    p.extend_from_slice(&add.to_ne_bytes());
    p.extend_from_slice(&used.to_ne_bytes());
    ext(ty, &p)
}

/// A `sadb_address` extension.
pub fn addr_ext(ty: u16, ip: IpAddr, port: u16) -> Vec<u8> {
    let mut p = vec![0u8; 4];
    p.extend_from_slice(&sockaddr(ip, port));
    ext(ty, &p)
}

/// A `sadb_key` extension carrying `key` (bits = 8 × its length).
pub fn key_ext(ty: u16, key: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + key.len());
    p.extend_from_slice(&((key.len() * 8) as u16).to_ne_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(key);
    ext(ty, &p)
}

/// A `sadb_protocol`-shaped extension (X_PROTOCOL, X_FLOW_TYPE, X_SATYPE2).
pub fn proto_ext(ty: u16, proto: u8, dir: u8) -> Vec<u8> {
    ext(ty, &[proto, dir, 0, 0])
}

/// A `sadb_spirange` extension.
pub fn spirange_ext(min: u32, max: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&min.to_ne_bytes());
    p.extend_from_slice(&max.to_ne_bytes());
    p.extend_from_slice(&0u32.to_ne_bytes());
    ext(SADB_EXT_SPIRANGE, &p)
}

/// A `sadb_x_rdomain` extension.
pub fn rdomain_ext(dom1: u16, dom2: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(4);
    p.extend_from_slice(&dom1.to_ne_bytes());
    p.extend_from_slice(&dom2.to_ne_bytes());
    ext(SADB_X_EXT_RDOMAIN, &p)
}

/// The host mask of `ip`'s family (/32 or /128).
pub fn host_mask(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4([255; 4].into()),
        IpAddr::V6(_) => IpAddr::V6([0xff; 16].into()),
    }
}

/// The flow extensions of an SPD entry: type and direction, transport
/// protocol, and source/destination networks with their masks.
pub fn flow_exts(
    ftype: u8,
    dir: u8,
    proto: u8,
    src: (IpAddr, IpAddr),
    dst: (IpAddr, IpAddr),
) -> Vec<Vec<u8>> {
    vec![
        proto_ext(SADB_X_EXT_FLOW_TYPE, ftype, dir),
        proto_ext(SADB_X_EXT_PROTOCOL, proto, 0),
        addr_ext(SADB_X_EXT_SRC_FLOW, src.0, 0),
        addr_ext(SADB_X_EXT_SRC_MASK, src.1, 0),
        addr_ext(SADB_X_EXT_DST_FLOW, dst.0, 0),
        addr_ext(SADB_X_EXT_DST_MASK, dst.1, 0),
    ]
}

/// Appends one extension to `out` (header, `payload`, zero padding to 8
/// bytes): [`ext`] without a vector of its own.
pub fn push_ext(out: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let n = (EXT_HDR_LEN + payload.len()).div_ceil(CHUNK) * CHUNK;
    out.extend_from_slice(&((n / CHUNK) as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len() + n - EXT_HDR_LEN - payload.len(), 0);
}

/// Appends a message header (length 0 for now) to `out` and returns where
/// the message starts, for [`finish_message`].
pub fn start_message(out: &mut Vec<u8>, msg_type: u8, satype: u8, seq: u32, pid: u32) -> usize {
    let start = out.len();
    out.extend_from_slice(&[PF_KEY_V2, msg_type, 0, satype, 0, 0, 0, 0]);
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&pid.to_ne_bytes());
    start
}

/// Writes the length of the message that starts at `start` and runs to
/// the end of `out`.
pub fn finish_message(out: &mut [u8], start: usize) {
    let units = ((out.len() - start) / CHUNK) as u16;
    out[start + 4..start + 6].copy_from_slice(&units.to_ne_bytes());
}

/// A complete message: header (errno and reserved 0) plus `exts` in order.
pub fn message(msg_type: u8, satype: u8, seq: u32, pid: u32, exts: &[Vec<u8>]) -> Vec<u8> {
    let parts: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
    message_of(msg_type, satype, seq, pid, &parts)
}

/// [`message`] from borrowed extensions (no copy of them before the
/// message's own).
pub fn message_of(msg_type: u8, satype: u8, seq: u32, pid: u32, exts: &[&[u8]]) -> Vec<u8> {
    let len: usize = HDR_LEN + exts.iter().map(|e| e.len()).sum::<usize>();
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&[PF_KEY_V2, msg_type, 0, satype]);
    v.extend_from_slice(&((len / CHUNK) as u16).to_ne_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&seq.to_ne_bytes());
    v.extend_from_slice(&pid.to_ne_bytes());
    for e in exts {
        v.extend_from_slice(e);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasyncd_core::pfkey::{AddressExt, KeyExt, Msg, ProtocolExt, SaExt};

    #[test]
    fn core_views_parse_what_we_build() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let mut exts = vec![
            sa_ext(SADB_EXT_SA, 0x1234, SADB_SASTATE_MATURE, 3, 12, 0),
            addr_ext(SADB_EXT_ADDRESS_DST, b, 500),
            key_ext(SADB_EXT_KEY_ENCRYPT, &[9; 16]),
            rdomain_ext(0, 0),
        ];
        exts.extend(flow_exts(3, 2, 6, (a, host_mask(a)), (a, host_mask(a))));
        let m = message(SADB_ADD, SADB_SATYPE_ESP, 7, 1001, &exts);
        let msg = Msg::parse(&m).unwrap();
        assert!(msg.check_extensions().is_ok());
        assert_eq!((msg.seq(), msg.pid(), msg.satype()), (7, 1001, 2));
        let sa = SaExt::new(msg.find(SADB_EXT_SA).unwrap()).unwrap();
        assert_eq!((sa.spi(), sa.state()), (0x1234, 1));
        let d = AddressExt::new(msg.find(SADB_EXT_ADDRESS_DST).unwrap()).unwrap();
        assert_eq!(d.sockaddr().unwrap().ip, b);
        let k = KeyExt::new(msg.find(SADB_EXT_KEY_ENCRYPT).unwrap()).unwrap();
        assert_eq!(k.key(), &[9; 16]);
        let ft = ProtocolExt::new(msg.find(SADB_X_EXT_FLOW_TYPE).unwrap()).unwrap();
        assert_eq!((ft.proto(), ft.direction()), (3, 2));
        assert!(sasyncd_core::pfkey::flow_key(&msg).is_some());
    }
}
