//! Test shorthand over the core's builder ([`Repr`]): messages grown one
//! extension at a time, including deliberately odd ones. The builder's own
//! tests check it against bytes written out by hand.

use core::net::IpAddr;
use std::vec::Vec;

use super::consts::*;
use super::ext::Ext;
use super::repr::{host_mask, ExtRepr, Repr};
use super::Msg;

/// A BSD sockaddr for `ip`/`port` (16 or 28 bytes).
pub fn sockaddr_bytes(ip: IpAddr, port: u16) -> Vec<u8> {
    let e = ExtRepr::address(SADB_EXT_ADDRESS_DST, ip, port);
    let mut v = std::vec![0u8; e.buffer_len()];
    e.emit(&mut v).unwrap();
    let len = usize::from(v[8]);
    v[8..8 + len].to_vec()
}

/// Sets the header length field from the buffer length.
pub fn fix_len(b: &mut [u8]) {
    let units = (b.len() / 8) as u16;
    b[4..6].copy_from_slice(&units.to_ne_bytes());
}

/// A message under construction: the header's fields and the extensions
/// emitted so far.
pub struct TestMsg {
    repr: Repr<'static>,
    body: Vec<u8>,
}

impl TestMsg {
    pub fn new(msg_type: u8, satype: u8) -> TestMsg {
        TestMsg {
            repr: Repr::new(msg_type, satype, 0, 0, &[]),
            body: Vec::new(),
        }
    }
    pub fn seq(mut self, seq: u32) -> Self {
        self.repr.seq = seq;
        self
    }
    pub fn pid(mut self, pid: u32) -> Self {
        self.repr.pid = pid;
        self
    }
    pub fn errno(mut self, e: u8) -> Self {
        self.repr.errno = e;
        self
    }
    /// Appends `e`.
    pub fn with(mut self, e: ExtRepr<'_>) -> Self {
        let at = self.body.len();
        self.body.resize(at + e.buffer_len(), 0);
        e.emit(&mut self.body[at..]).unwrap();
        self
    }
    /// An extension with `payload` after the 4-byte header, zero-padded.
    pub fn ext(self, ty: u16, payload: &[u8]) -> Self {
        self.with(ExtRepr::Opaque {
            ext_type: ty,
            body: payload,
        })
    }
    pub fn sa(self, spi: u32, state: u8, auth: u8, enc: u8) -> Self {
        self.with(ExtRepr::Sa {
            ext_type: SADB_EXT_SA,
            spi,
            replay: 0,
            state,
            auth,
            encrypt: enc,
            flags: 0,
        })
    }
    pub fn lifetime(self, ty: u16, alloc: u32, bytes: u64, add: u64, used: u64) -> Self {
        self.with(ExtRepr::Lifetime {
            ext_type: ty,
            allocations: alloc,
            bytes,
            addtime: add,
            usetime: used,
        })
    }
    pub fn addr(self, ty: u16, ip: IpAddr, port: u16) -> Self {
        self.with(ExtRepr::address(ty, ip, port))
    }
    pub fn key(self, ty: u16, bits: u16, key: &[u8]) -> Self {
        self.with(ExtRepr::Key {
            ext_type: ty,
            bits,
            key,
        })
    }
    pub fn proto(self, ty: u16, proto: u8, dir: u8) -> Self {
        self.with(ExtRepr::protocol(ty, proto, dir))
    }
    pub fn rdomain(self, d1: u16, d2: u16) -> Self {
        self.with(ExtRepr::Rdomain { dom1: d1, dom2: d2 })
    }
    /// A complete flow: type, direction, protocol, src/dst with /32 or /128 masks.
    pub fn flow(self, ftype: u8, dir: u8, proto: u8, src: IpAddr, dst: IpAddr) -> Self {
        ExtRepr::flow(
            ftype,
            dir,
            proto,
            (src, host_mask(src)),
            (dst, host_mask(dst)),
        )
        .into_iter()
        .fold(self, TestMsg::with)
    }
    pub fn build(self) -> Vec<u8> {
        let body = [ExtRepr::Raw(&self.body)];
        let exts = if self.body.is_empty() {
            &[][..]
        } else {
            &body[..]
        };
        let repr = Repr { exts, ..self.repr };
        let mut v = std::vec![0u8; repr.buffer_len()];
        repr.emit(&mut v).unwrap();
        v
    }
    /// The first extension of a built message.
    pub fn first(b: &[u8]) -> Ext<'_> {
        Msg::parse(b).unwrap().extensions().next().unwrap().unwrap()
    }
}

/// Extension types of a message, in order.
pub fn ext_types(b: &[u8]) -> Vec<u16> {
    Msg::parse(b)
        .unwrap()
        .extensions()
        .map(|e| e.unwrap().ext_type())
        .collect()
}
