//! Shorthand for the core's PF_KEY builder ([`Repr`], the one encoder of
//! the kernel layouts) where std code wants owned messages: the simulated
//! kernel's dumps, the IKE workload's requests, devhost, test utilities
//! and benches. The simulated IKE daemon writes SAs with a replay window
//! of 64, as isakmpd does.

use std::net::IpAddr;

use sasyncd_core::pfkey::consts::*;
pub use sasyncd_core::pfkey::{host_mask, ExtRepr, Repr};
use sasyncd_core::pfkey::{Extensions, SockAddr};

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

/// An extension of any type given as its body after the 4-byte common
/// header (for shapes the kernel must refuse, and types without fields).
pub fn ext(ext_type: u16, body: &[u8]) -> ExtRepr<'_> {
    ExtRepr::Opaque { ext_type, body }
}

/// An SA (or X_SA2) extension with a replay window of 64.
pub fn sa_ext(ty: u16, spi: u32, state: u8, auth: u8, enc: u8, flags: u32) -> ExtRepr<'static> {
    ExtRepr::Sa {
        ext_type: ty,
        spi,
        replay: 64,
        state,
        auth,
        encrypt: enc,
        flags,
    }
}

/// A `sadb_lifetime` extension.
pub fn lifetime_ext(ty: u16, alloc: u32, bytes: u64, add: u64, used: u64) -> ExtRepr<'static> {
    ExtRepr::Lifetime {
        ext_type: ty,
        allocations: alloc,
        bytes,
        addtime: add,
        usetime: used,
    }
}

/// A `sadb_address` extension.
pub fn addr_ext(ty: u16, ip: IpAddr, port: u16) -> ExtRepr<'static> {
    ExtRepr::Address {
        ext_type: ty,
        addr: SockAddr { ip, port },
    }
}

/// A `sadb_key` extension carrying `key` (bits = 8 × its length).
pub fn key_ext(ty: u16, key: &[u8]) -> ExtRepr<'_> {
    ExtRepr::key(ty, key)
}

/// A `sadb_protocol`-shaped extension (X_PROTOCOL, X_FLOW_TYPE, X_SATYPE2).
pub fn proto_ext(ty: u16, proto: u8, dir: u8) -> ExtRepr<'static> {
    ExtRepr::protocol(ty, proto, dir)
}

/// A `sadb_spirange` extension.
pub fn spirange_ext(min: u32, max: u32) -> ExtRepr<'static> {
    ExtRepr::SpiRange { min, max }
}

/// A `sadb_x_rdomain` extension.
pub fn rdomain_ext(dom1: u16, dom2: u16) -> ExtRepr<'static> {
    ExtRepr::Rdomain { dom1, dom2 }
}

/// The flow extensions of an SPD entry: type and direction, transport
/// protocol, and source/destination networks with their masks.
pub fn flow_exts(
    ftype: u8,
    dir: u8,
    proto: u8,
    src: (IpAddr, IpAddr),
    dst: (IpAddr, IpAddr),
) -> [ExtRepr<'static>; 6] {
    ExtRepr::flow(ftype, dir, proto, src, dst)
}

/// Appends `repr` to `out` (a dump of many records goes into one buffer).
/// A message the header cannot describe (over 512 KiB) is not appended.
pub fn emit_into(out: &mut Vec<u8>, repr: &Repr<'_>) {
    let at = out.len();
    out.resize(at + repr.buffer_len(), 0);
    match repr.emit(&mut out[at..]) {
        Ok(n) => out.truncate(at + n),
        Err(_) => out.truncate(at),
    }
}

/// A complete message: header (errno and reserved 0) plus `exts` in order.
pub fn message(msg_type: u8, satype: u8, seq: u32, pid: u32, exts: &[ExtRepr<'_>]) -> Vec<u8> {
    let mut v = Vec::new();
    emit_into(&mut v, &Repr::new(msg_type, satype, seq, pid, exts));
    v
}

/// The extensions `exts` back to back, encoded (for keeping a request's
/// extensions to send again later as [`ExtRepr::Raw`]).
pub fn exts_bytes(exts: &[ExtRepr<'_>]) -> Vec<u8> {
    let mut v = message(0, 0, 0, 0, exts);
    v.drain(..HDR_LEN);
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
