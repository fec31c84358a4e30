//! PF_KEY requests as an IKE daemon writes them, built in fixed buffers
//! (kernel layouts, host byte order): mature ESP SAs with HMAC-SHA2-256 and
//! AES keys, hard and soft lifetimes, both endpoints (224 bytes, the shape
//! the cluster benchmark uses), their DELETEs, and host-to-host "require"
//! flows.

use core::net::Ipv4Addr;

use sasyncd_core::pfkey::consts::*;

/// The pid the IKE daemon writes with.
pub const IKE_PID: u32 = 9000;

/// The gateway's own (carp) address, one end of every SA and flow.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Largest message built here.
pub const MSG_MAX: usize = 256;

/// A message under construction (and then a finished one).
#[derive(Debug, Clone)]
pub struct MsgBuf {
    buf: [u8; MSG_MAX],
    len: usize,
}

impl MsgBuf {
    /// A header of `msg_type`/`satype` written by `pid` with `seq`.
    pub fn new(msg_type: u8, satype: u8, seq: u32, pid: u32) -> MsgBuf {
        let mut m = MsgBuf {
            buf: [0; MSG_MAX],
            len: HDR_LEN,
        };
        m.buf[0] = PF_KEY_V2;
        m.buf[1] = msg_type;
        m.buf[3] = satype;
        m.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        m.buf[12..16].copy_from_slice(&pid.to_ne_bytes());
        m.fix_len();
        m
    }

    fn fix_len(&mut self) {
        let units = (self.len / CHUNK) as u16;
        self.buf[4..6].copy_from_slice(&units.to_ne_bytes());
    }

    /// Appends one extension: its 4-byte header, `payload`, zero padding
    /// to 8 bytes.
    fn ext(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let n = (EXT_HDR_LEN + payload.len()).div_ceil(CHUNK) * CHUNK;
        let at = self.len;
        assert!(at + n <= MSG_MAX, "message too long for MsgBuf");
        self.buf[at..at + 2].copy_from_slice(&((n / CHUNK) as u16).to_ne_bytes());
        self.buf[at + 2..at + 4].copy_from_slice(&ty.to_ne_bytes());
        self.buf[at + 4..at + 4 + payload.len()].copy_from_slice(payload);
        self.buf[at + 4 + payload.len()..at + n].fill(0);
        self.len += n;
        self.fix_len();
        self
    }

    fn sa(&mut self, spi: u32, state: u8, auth: u8, enc: u8) -> &mut Self {
        let mut p = [0u8; 12];
        p[0..4].copy_from_slice(&spi.to_be_bytes());
        p[4..8].copy_from_slice(&[64, state, auth, enc]);
        self.ext(SADB_EXT_SA, &p)
    }

    fn lifetime(&mut self, ty: u16, add_secs: u64) -> &mut Self {
        let mut p = [0u8; 28];
        p[12..20].copy_from_slice(&add_secs.to_ne_bytes());
        self.ext(ty, &p)
    }

    fn addr(&mut self, ty: u16, ip: Ipv4Addr) -> &mut Self {
        // sadb_address (proto, prefixlen, reserved) + sockaddr_in.
        let mut p = [0u8; 4 + 16];
        p[4] = SOCKADDR_IN_LEN;
        p[5] = AF_INET;
        p[8..12].copy_from_slice(&ip.octets());
        self.ext(ty, &p)
    }

    fn key(&mut self, ty: u16, key: &[u8; 32]) -> &mut Self {
        let mut p = [0u8; 4 + 32];
        p[0..2].copy_from_slice(&(256u16).to_ne_bytes());
        p[4..].copy_from_slice(key);
        self.ext(ty, &p)
    }

    fn proto(&mut self, ty: u16, proto: u8, dir: u8) -> &mut Self {
        self.ext(ty, &[proto, dir, 0, 0])
    }

    /// The message.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
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
    let mut m = MsgBuf::new(SADB_ADD, SADB_SATYPE_ESP, i + 1, IKE_PID);
    m.sa(spi(i), SADB_SASTATE_MATURE, 5, 12)
        .lifetime(SADB_EXT_LIFETIME_HARD, 1200)
        .lifetime(SADB_EXT_LIFETIME_SOFT, 1080)
        .addr(SADB_EXT_ADDRESS_SRC, src)
        .addr(SADB_EXT_ADDRESS_DST, dst)
        .key(SADB_EXT_KEY_AUTH, &key_bytes(i, 1))
        .key(SADB_EXT_KEY_ENCRYPT, &key_bytes(i, 2));
    m
}

/// The DELETE of SA `i` as isakmpd writes it.
pub fn sa_delete(i: u32) -> MsgBuf {
    let (src, dst) = ends(i);
    let mut m = MsgBuf::new(SADB_DELETE, SADB_SATYPE_ESP, i + 1, IKE_PID);
    m.sa(spi(i), SADB_SASTATE_MATURE, 0, 0)
        .addr(SADB_EXT_ADDRESS_SRC, src)
        .addr(SADB_EXT_ADDRESS_DST, dst);
    m
}

fn flow(msg_type: u8, p: u32) -> MsgBuf {
    let mut m = MsgBuf::new(msg_type, SADB_SATYPE_ESP, p + 1, IKE_PID);
    let mask = Ipv4Addr::new(255, 255, 255, 255);
    m.proto(
        SADB_X_EXT_FLOW_TYPE,
        SADB_X_FLOW_TYPE_REQUIRE,
        IPSP_DIRECTION_OUT,
    )
    .proto(SADB_X_EXT_PROTOCOL, 0, 0)
    .addr(SADB_X_EXT_SRC_FLOW, LOCAL)
    .addr(SADB_X_EXT_SRC_MASK, mask)
    .addr(SADB_X_EXT_DST_FLOW, remote(p))
    .addr(SADB_X_EXT_DST_MASK, mask);
    m
}

/// The X_ADDFLOW of flow `p`: outbound, require, gateway to peer `p`.
pub fn flow_add(p: u32) -> MsgBuf {
    flow(SADB_X_ADDFLOW, p)
}

/// The X_DELFLOW of flow `p`.
pub fn flow_delete(p: u32) -> MsgBuf {
    flow(SADB_X_DELFLOW, p)
}
