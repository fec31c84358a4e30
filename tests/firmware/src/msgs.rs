//! PF_KEY requests as an IKE daemon writes them, emitted by the core's
//! [`Repr`] into fixed buffers: mature ESP SAs with HMAC-SHA2-256 and AES
//! keys, hard and soft lifetimes, both endpoints (224 bytes, the shape the
//! cluster benchmark uses), their DELETEs, and host-to-host "require"
//! flows.

use core::net::{IpAddr, Ipv4Addr};

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{host_mask, ExtRepr, Repr};

/// The pid the IKE daemon writes with.
pub const IKE_PID: u32 = 9000;

/// The gateway's own (carp) address, one end of every SA and flow.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Largest message built here.
pub const MSG_MAX: usize = 256;

/// A finished message in a fixed buffer.
#[derive(Debug, Clone)]
pub struct MsgBuf {
    buf: [u8; MSG_MAX],
    len: usize,
}

impl MsgBuf {
    /// `msg_type`/`satype` with `exts`, written by the IKE daemon with
    /// `seq`. A message that does not fit comes out empty, which the
    /// kernel refuses (and the run then fails).
    fn new(msg_type: u8, satype: u8, seq: u32, exts: &[ExtRepr<'_>]) -> MsgBuf {
        let mut m = MsgBuf {
            buf: [0; MSG_MAX],
            len: 0,
        };
        m.len = Repr::new(msg_type, satype, seq, IKE_PID, exts)
            .emit(&mut m.buf)
            .unwrap_or(0);
        m
    }

    /// The message.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The SA extension isakmpd writes (replay window 64).
fn sa(spi: u32, state: u8, auth: u8, encrypt: u8) -> ExtRepr<'static> {
    ExtRepr::Sa {
        ext_type: SADB_EXT_SA,
        spi,
        replay: 64,
        state,
        auth,
        encrypt,
        flags: 0,
    }
}

/// The remote peer of SA pair / flow `p`: 10.0.1.0 onwards.
pub fn remote(p: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0100u32.wrapping_add(p))
}

/// A unique SPI for SA `i` (a bijection on 28 bits, above 0x1000_0000).
pub fn spi(i: u32) -> u32 {
    0x1000_0000 + (i.wrapping_mul(0x9e37_79b1) & 0x0fff_ffff)
}

/// Source and destination of SA `i`: even ones outbound, odd ones inbound.
fn ends(i: u32) -> (Ipv4Addr, Ipv4Addr) {
    let (l, r) = (LOCAL, remote(i / 2));
    if i % 2 == 0 {
        (l, r)
    } else {
        (r, l)
    }
}

/// Key bytes for SA `i` (deterministic, distinct per SA and key).
fn key_bytes(i: u32, which: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    let mut x = u64::from(i) << 8 | u64::from(which);
    for b in &mut k {
        // splitmix64 steps: the keys only need to differ.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        *b = (z ^ (z >> 31)) as u8;
    }
    k
}

/// The ADD of SA `i` as isakmpd writes it (224 bytes).
pub fn sa_add(i: u32) -> MsgBuf {
    let (src, dst) = ends(i);
    let (akey, ekey) = (key_bytes(i, 1), key_bytes(i, 2));
    let exts = [
        sa(spi(i), SADB_SASTATE_MATURE, 5, 12),
        ExtRepr::addtime(SADB_EXT_LIFETIME_HARD, 1200),
        ExtRepr::addtime(SADB_EXT_LIFETIME_SOFT, 1080),
        ExtRepr::address(SADB_EXT_ADDRESS_SRC, IpAddr::V4(src), 0),
        ExtRepr::address(SADB_EXT_ADDRESS_DST, IpAddr::V4(dst), 0),
        ExtRepr::key(SADB_EXT_KEY_AUTH, &akey),
        ExtRepr::key(SADB_EXT_KEY_ENCRYPT, &ekey),
    ];
    MsgBuf::new(SADB_ADD, SADB_SATYPE_ESP, i + 1, &exts)
}

/// The DELETE of SA `i` as isakmpd writes it.
pub fn sa_delete(i: u32) -> MsgBuf {
    let (src, dst) = ends(i);
    let exts = [
        sa(spi(i), SADB_SASTATE_MATURE, 0, 0),
        ExtRepr::address(SADB_EXT_ADDRESS_SRC, IpAddr::V4(src), 0),
        ExtRepr::address(SADB_EXT_ADDRESS_DST, IpAddr::V4(dst), 0),
    ];
    MsgBuf::new(SADB_DELETE, SADB_SATYPE_ESP, i + 1, &exts)
}

fn flow(msg_type: u8, p: u32) -> MsgBuf {
    let (l, r) = (IpAddr::V4(LOCAL), IpAddr::V4(remote(p)));
    let exts = ExtRepr::flow(
        SADB_X_FLOW_TYPE_REQUIRE,
        IPSP_DIRECTION_OUT,
        0,
        (l, host_mask(l)),
        (r, host_mask(r)),
    );
    MsgBuf::new(msg_type, SADB_SATYPE_ESP, p + 1, &exts)
}

/// The X_ADDFLOW of flow `p`: outbound, require, gateway to peer `p`.
pub fn flow_add(p: u32) -> MsgBuf {
    flow(SADB_X_ADDFLOW, p)
}

/// The X_DELFLOW of flow `p`.
pub fn flow_delete(p: u32) -> MsgBuf {
    flow(SADB_X_DELFLOW, p)
}
