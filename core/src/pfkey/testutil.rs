//! Test-only builder of PF_KEY messages, independent of the code under test.

use core::net::IpAddr;
use std::vec::Vec;

use super::consts::*;
use super::ext::Ext;
use super::Msg;

/// A BSD sockaddr for `ip`/`port` (16 or 28 bytes).
pub fn sockaddr_bytes(ip: IpAddr, port: u16) -> Vec<u8> {
    let mut v = Vec::new();
    match ip {
        IpAddr::V4(a) => {
            v.extend_from_slice(&[16, AF_INET]);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend_from_slice(&a.octets());
            v.extend_from_slice(&[0; 8]);
        }
        IpAddr::V6(a) => {
            v.extend_from_slice(&[28, AF_INET6]);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend_from_slice(&[0; 4]);
            v.extend_from_slice(&a.octets());
            v.extend_from_slice(&[0; 4]);
        }
    }
    v
}

/// Sets the header length field from the buffer length.
pub fn fix_len(b: &mut [u8]) {
    let units = (b.len() / 8) as u16;
    b[4..6].copy_from_slice(&units.to_ne_bytes());
}

/// A message under construction.
pub struct TestMsg {
    buf: Vec<u8>,
}

impl TestMsg {
    pub fn new(msg_type: u8, satype: u8) -> TestMsg {
        let mut buf = std::vec![0u8; 16];
        buf[0] = 2;
        buf[1] = msg_type;
        buf[3] = satype;
        TestMsg { buf }
    }
    pub fn seq(mut self, seq: u32) -> Self {
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self
    }
    pub fn pid(mut self, pid: u32) -> Self {
        self.buf[12..16].copy_from_slice(&pid.to_ne_bytes());
        self
    }
    pub fn errno(mut self, e: u8) -> Self {
        self.buf[2] = e;
        self
    }
    /// An extension with `payload` after the 4-byte header, zero-padded.
    pub fn ext(mut self, ty: u16, payload: &[u8]) -> Self {
        let n = (4 + payload.len()).div_ceil(8) * 8;
        self.buf.extend_from_slice(&((n / 8) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(self.buf.len() + n - 4 - payload.len(), 0);
        self
    }
    pub fn sa(self, spi: u32, state: u8, auth: u8, enc: u8) -> Self {
        let mut p = Vec::new();
        p.extend_from_slice(&spi.to_be_bytes());
        p.extend_from_slice(&[0, state, auth, enc]);
        p.extend_from_slice(&0u32.to_ne_bytes());
        self.ext(SADB_EXT_SA, &p)
    }
    pub fn lifetime(self, ty: u16, alloc: u32, bytes: u64, add: u64, used: u64) -> Self {
        let mut p = Vec::new();
        p.extend_from_slice(&alloc.to_ne_bytes());
        p.extend_from_slice(&bytes.to_ne_bytes());
        p.extend_from_slice(&add.to_ne_bytes());
        p.extend_from_slice(&used.to_ne_bytes());
        self.ext(ty, &p)
    }
    pub fn addr(self, ty: u16, ip: IpAddr, port: u16) -> Self {
        let mut p = std::vec![0u8; 4];
        p.extend_from_slice(&sockaddr_bytes(ip, port));
        self.ext(ty, &p)
    }
    pub fn key(self, ty: u16, bits: u16, key: &[u8]) -> Self {
        let mut p = Vec::new();
        p.extend_from_slice(&bits.to_ne_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(key);
        self.ext(ty, &p)
    }
    pub fn proto(self, ty: u16, proto: u8, dir: u8) -> Self {
        self.ext(ty, &[proto, dir, 0, 0])
    }
    pub fn rdomain(self, d1: u16, d2: u16) -> Self {
        let mut p = Vec::new();
        p.extend_from_slice(&d1.to_ne_bytes());
        p.extend_from_slice(&d2.to_ne_bytes());
        self.ext(SADB_X_EXT_RDOMAIN, &p)
    }
    /// A complete flow: type, direction, protocol, src/dst with /32 or /128 masks.
    pub fn flow(self, ftype: u8, dir: u8, proto: u8, src: IpAddr, dst: IpAddr) -> Self {
        let mask = |ip: IpAddr| match ip {
            IpAddr::V4(_) => IpAddr::V4([255; 4].into()),
            IpAddr::V6(_) => IpAddr::V6([0xff; 16].into()),
        };
        self.proto(SADB_X_EXT_FLOW_TYPE, ftype, dir)
            .proto(SADB_X_EXT_PROTOCOL, proto, 0)
            .addr(SADB_X_EXT_SRC_FLOW, src, 0)
            .addr(SADB_X_EXT_SRC_MASK, mask(src), 0)
            .addr(SADB_X_EXT_DST_FLOW, dst, 0)
            .addr(SADB_X_EXT_DST_MASK, mask(dst), 0)
    }
    pub fn build(mut self) -> Vec<u8> {
        fix_len(&mut self.buf);
        self.buf
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
