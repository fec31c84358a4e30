//! Extension iteration and typed extension views (reference §13.1).
//!
//! Every extension starts with (u16 length in 8-byte units, u16 type). The
//! walk stops at a zero length, as the original's does; an extension that
//! runs past the message end is an error and ends the walk.

use super::consts::*;
use super::msg::{rd_u16, rd_u32, rd_u64};
use super::sockaddr::SockAddr;
use super::PfkeyError;

/// One extension: its type and its bytes (header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ext<'a> {
    ext_type: u16,
    bytes: &'a [u8],
}

impl<'a> Ext<'a> {
    /// The extension type (`SADB_EXT_*` / `SADB_X_EXT_*`).
    pub fn ext_type(&self) -> u16 {
        self.ext_type
    }
    /// The whole extension, header included; a multiple of 8 bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The bytes after the common 4-byte header.
    pub fn body(&self) -> &'a [u8] {
        self.bytes.get(EXT_HDR_LEN..).unwrap_or(&[])
    }
    /// Checks that this extension has one of `types` and at least `min` bytes.
    fn shape(&self, types: &[u16], min: usize) -> Result<&'a [u8], PfkeyError> {
        if !types.contains(&self.ext_type) {
            return Err(PfkeyError::WrongExtType(self.ext_type));
        }
        if self.bytes.len() < min {
            return Err(PfkeyError::ExtTooShort(self.ext_type));
        }
        Ok(self.bytes)
    }
}

/// Iterator over the extensions of a message; see [`super::Msg::extensions`].
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    rest: &'a [u8],
}

impl<'a> Extensions<'a> {
    /// Walks `body`, the bytes after the message header.
    pub fn new(body: &'a [u8]) -> Extensions<'a> {
        Extensions { rest: body }
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Result<Ext<'a>, PfkeyError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (Some(len), Some(ext_type)) = (rd_u16(self.rest, 0), rd_u16(self.rest, 2)) else {
            self.rest = &[];
            return Some(Err(PfkeyError::ExtTruncated));
        };
        if len == 0 {
            self.rest = &[];
            return None;
        }
        let n = usize::from(len) * CHUNK;
        match (self.rest.get(..n), self.rest.get(n..)) {
            (Some(bytes), Some(rest)) => {
                self.rest = rest;
                Some(Ok(Ext { ext_type, bytes }))
            }
            _ => {
                self.rest = &[];
                Some(Err(PfkeyError::ExtTruncated))
            }
        }
    }
}

/// `sadb_sa` (SA, X_SA2): SPI, state, algorithms, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaExt<'a>(&'a [u8]);

impl<'a> SaExt<'a> {
    /// Size of `struct sadb_sa`.
    pub const LEN: usize = 16;
    /// Views `ext`, which must be an SA or X_SA2 extension of 16+ bytes.
    pub fn new(ext: Ext<'a>) -> Result<SaExt<'a>, PfkeyError> {
        ext.shape(&[SADB_EXT_SA, SADB_X_EXT_SA2], Self::LEN)
            .map(SaExt)
    }
    /// The SPI as a number (it travels in network order).
    pub fn spi(&self) -> u32 {
        rd_u32(self.0, 4).map(u32::from_be).unwrap_or(0)
    }
    /// Replay window size.
    pub fn replay(&self) -> u8 {
        self.0.get(8).copied().unwrap_or(0)
    }
    /// `SADB_SASTATE_*`.
    pub fn state(&self) -> u8 {
        self.0.get(9).copied().unwrap_or(0)
    }
    /// Authentication algorithm.
    pub fn auth(&self) -> u8 {
        self.0.get(10).copied().unwrap_or(0)
    }
    /// Encryption (or compression) algorithm.
    pub fn encrypt(&self) -> u8 {
        self.0.get(11).copied().unwrap_or(0)
    }
    /// SA flags.
    pub fn flags(&self) -> u32 {
        rd_u32(self.0, 12).unwrap_or(0)
    }
}

/// `sadb_lifetime` (LIFETIME_CURRENT/HARD/SOFT, X_LIFETIME_LASTUSE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeExt<'a>(&'a [u8]);

impl<'a> LifetimeExt<'a> {
    /// Size of `struct sadb_lifetime`.
    pub const LEN: usize = 32;
    /// Views `ext`, which must be a lifetime extension of 32+ bytes.
    pub fn new(ext: Ext<'a>) -> Result<LifetimeExt<'a>, PfkeyError> {
        ext.shape(
            &[
                SADB_EXT_LIFETIME_CURRENT,
                SADB_EXT_LIFETIME_HARD,
                SADB_EXT_LIFETIME_SOFT,
                SADB_X_EXT_LIFETIME_LASTUSE,
            ],
            Self::LEN,
        )
        .map(LifetimeExt)
    }
    /// Allocations.
    pub fn allocations(&self) -> u32 {
        rd_u32(self.0, 4).unwrap_or(0)
    }
    /// Bytes.
    pub fn bytes(&self) -> u64 {
        rd_u64(self.0, 8).unwrap_or(0)
    }
    /// Add time (an absolute time in CURRENT, a duration in HARD/SOFT).
    pub fn addtime(&self) -> u64 {
        rd_u64(self.0, 16).unwrap_or(0)
    }
    /// Use time.
    pub fn usetime(&self) -> u64 {
        rd_u64(self.0, 24).unwrap_or(0)
    }
}

/// `sadb_address`: an 8-byte header followed by a BSD sockaddr (SA and flow
/// addresses and masks, X_DST2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressExt<'a>(&'a [u8]);

impl<'a> AddressExt<'a> {
    /// Size of `struct sadb_address` (without the sockaddr).
    pub const LEN: usize = 8;
    /// Views `ext`, which must be an address-carrying extension.
    pub fn new(ext: Ext<'a>) -> Result<AddressExt<'a>, PfkeyError> {
        ext.shape(
            &[
                SADB_EXT_ADDRESS_SRC,
                SADB_EXT_ADDRESS_DST,
                SADB_EXT_ADDRESS_PROXY,
                SADB_X_EXT_SRC_MASK,
                SADB_X_EXT_DST_MASK,
                SADB_X_EXT_SRC_FLOW,
                SADB_X_EXT_DST_FLOW,
                SADB_X_EXT_DST2,
            ],
            Self::LEN,
        )
        .map(AddressExt)
    }
    /// The raw sockaddr space (sockaddr plus padding).
    pub fn sockaddr_bytes(&self) -> &'a [u8] {
        self.0.get(Self::LEN..).unwrap_or(&[])
    }
    /// The sockaddr, checked (see [`SockAddr::parse`]).
    pub fn sockaddr(&self) -> Result<SockAddr, PfkeyError> {
        SockAddr::parse(self.sockaddr_bytes())
    }
}

/// `sadb_key` (KEY_AUTH, KEY_ENCRYPT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyExt<'a>(&'a [u8]);

impl<'a> KeyExt<'a> {
    /// Size of `struct sadb_key` (without the key).
    pub const LEN: usize = 8;
    /// Views `ext`, which must be a key extension whose bits fit inside it.
    pub fn new(ext: Ext<'a>) -> Result<KeyExt<'a>, PfkeyError> {
        let b = ext.shape(&[SADB_EXT_KEY_AUTH, SADB_EXT_KEY_ENCRYPT], Self::LEN)?;
        let k = KeyExt(b);
        let n = k.key_len();
        if b.len() - Self::LEN < n {
            return Err(PfkeyError::BadKeyLength);
        }
        Ok(k)
    }
    /// Key length in bits.
    pub fn bits(&self) -> u16 {
        rd_u16(self.0, 4).unwrap_or(0)
    }
    fn key_len(&self) -> usize {
        usize::from(self.bits()).div_ceil(8)
    }
    /// The key bytes (without padding).
    pub fn key(&self) -> &'a [u8] {
        let end = Self::LEN.saturating_add(self.key_len());
        self.0.get(Self::LEN..end).unwrap_or(&[])
    }
}

/// `sadb_protocol` (X_PROTOCOL, X_FLOW_TYPE, X_SATYPE2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolExt<'a>(&'a [u8]);

impl<'a> ProtocolExt<'a> {
    /// Size of `struct sadb_protocol`.
    pub const LEN: usize = 8;
    /// Views `ext`, which must be a protocol-shaped extension.
    pub fn new(ext: Ext<'a>) -> Result<ProtocolExt<'a>, PfkeyError> {
        ext.shape(
            &[
                SADB_X_EXT_PROTOCOL,
                SADB_X_EXT_FLOW_TYPE,
                SADB_X_EXT_SATYPE2,
            ],
            Self::LEN,
        )
        .map(ProtocolExt)
    }
    /// Transport protocol (X_PROTOCOL), flow type (X_FLOW_TYPE) or SA type
    /// (X_SATYPE2).
    pub fn proto(&self) -> u8 {
        self.0.get(4).copied().unwrap_or(0)
    }
    /// Flow direction (`IPSP_DIRECTION_*`).
    pub fn direction(&self) -> u8 {
        self.0.get(5).copied().unwrap_or(0)
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.0.get(6).copied().unwrap_or(0)
    }
}

/// `sadb_x_rdomain`: the routing domain(s) of an SA or flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RdomainExt<'a>(&'a [u8]);

impl<'a> RdomainExt<'a> {
    /// Size of `struct sadb_x_rdomain`.
    pub const LEN: usize = 8;
    /// Views `ext`, which must be an X_RDOMAIN extension.
    pub fn new(ext: Ext<'a>) -> Result<RdomainExt<'a>, PfkeyError> {
        ext.shape(&[SADB_X_EXT_RDOMAIN], Self::LEN).map(RdomainExt)
    }
    /// The primary routing domain.
    pub fn dom1(&self) -> u16 {
        rd_u16(self.0, 4).unwrap_or(0)
    }
    /// The domain the SA switches to.
    pub fn dom2(&self) -> u16 {
        rd_u16(self.0, 6).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Msg;
    use super::*;
    use core::net::{IpAddr, Ipv4Addr};

    #[test]
    fn iterate_every_extension_type() {
        let mut t = TestMsg::new(SADB_ADD, SADB_SATYPE_ESP);
        for ty in 1..=SADB_EXT_MAX {
            // Varying payload sizes exercise the padding.
            let payload = std::vec![ty as u8; usize::from(ty % 13) + 4];
            t = t.ext(ty, &payload);
        }
        let b = t.build();
        let m = Msg::parse(&b).unwrap();
        let types: std::vec::Vec<u16> = m.extensions().map(|e| e.unwrap().ext_type()).collect();
        assert_eq!(types, (1..=SADB_EXT_MAX).collect::<std::vec::Vec<_>>());
        for ty in 1..=SADB_EXT_MAX {
            let e = m.find(ty).unwrap();
            assert_eq!(e.bytes().len() % 8, 0);
            assert_eq!(e.body()[0], ty as u8);
        }
        assert!(m.find(41).is_none());
    }

    #[test]
    fn zero_length_ends_walk() {
        let mut b = TestMsg::new(SADB_ADD, 2).ext(SADB_EXT_SA, &[0; 12]).build();
        // Append a zero-length extension and one after it.
        b.extend_from_slice(&[0, 0, 9, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[1, 0, 9, 0, 0, 0, 0, 0]);
        fix_len(&mut b);
        let m = Msg::parse(&b).unwrap();
        assert_eq!(m.extensions().count(), 1);
        assert!(m.find(SADB_EXT_KEY_ENCRYPT).is_none());
        assert!(m.check_extensions().is_ok());
    }

    #[test]
    fn truncated_extension_is_an_error() {
        let mut b = TestMsg::new(SADB_ADD, 2).ext(SADB_EXT_SA, &[0; 12]).build();
        b.extend_from_slice(&[3, 0, 9, 0, 0, 0, 0, 0]); // claims 24 bytes, has 8
        fix_len(&mut b);
        let m = Msg::parse(&b).unwrap();
        let v: std::vec::Vec<_> = m.extensions().collect();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_ok());
        assert_eq!(v[1], Err(PfkeyError::ExtTruncated));
        assert_eq!(m.check_extensions(), Err(PfkeyError::ExtTruncated));
        assert!(m.find(SADB_EXT_SA).is_some());
        assert!(m.find(SADB_EXT_KEY_ENCRYPT).is_none());
        // A lone half header.
        let mut it = Extensions::new(&[1, 0]);
        assert_eq!(it.next(), Some(Err(PfkeyError::ExtTruncated)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn typed_views() {
        let b = TestMsg::new(SADB_ADD, SADB_SATYPE_ESP)
            .sa(0x1234_5678, SADB_SASTATE_MATURE, 3, 12)
            .lifetime(SADB_EXT_LIFETIME_HARD, 1, 2, 3, 4)
            .addr(
                SADB_EXT_ADDRESS_DST,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                500,
            )
            .key(SADB_EXT_KEY_ENCRYPT, 128, &[7; 16])
            .proto(
                SADB_X_EXT_FLOW_TYPE,
                SADB_X_FLOW_TYPE_REQUIRE,
                IPSP_DIRECTION_OUT,
            )
            .rdomain(3, 4)
            .build();
        let m = Msg::parse(&b).unwrap();
        let sa = SaExt::new(m.find(SADB_EXT_SA).unwrap()).unwrap();
        assert_eq!(sa.spi(), 0x1234_5678);
        assert_eq!(
            m.find(SADB_EXT_SA).unwrap().bytes()[4..8],
            [0x12, 0x34, 0x56, 0x78]
        );
        assert_eq!((sa.state(), sa.auth(), sa.encrypt()), (1, 3, 12));
        assert_eq!((sa.replay(), sa.flags()), (0, 0));
        let lt = LifetimeExt::new(m.find(SADB_EXT_LIFETIME_HARD).unwrap()).unwrap();
        assert_eq!(
            (lt.allocations(), lt.bytes(), lt.addtime(), lt.usetime()),
            (1, 2, 3, 4)
        );
        let a = AddressExt::new(m.find(SADB_EXT_ADDRESS_DST).unwrap()).unwrap();
        let s = a.sockaddr().unwrap();
        assert_eq!(
            (s.ip, s.port),
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 500)
        );
        let k = KeyExt::new(m.find(SADB_EXT_KEY_ENCRYPT).unwrap()).unwrap();
        assert_eq!((k.bits(), k.key()), (128, &[7u8; 16][..]));
        let p = ProtocolExt::new(m.find(SADB_X_EXT_FLOW_TYPE).unwrap()).unwrap();
        assert_eq!((p.proto(), p.direction(), p.flags()), (3, 2, 0));
        let r = RdomainExt::new(m.find(SADB_X_EXT_RDOMAIN).unwrap()).unwrap();
        assert_eq!((r.dom1(), r.dom2()), (3, 4));
        // Wrong type and too short.
        let sa_ext = m.find(SADB_EXT_SA).unwrap();
        assert_eq!(KeyExt::new(sa_ext), Err(PfkeyError::WrongExtType(1)));
        let short = TestMsg::new(SADB_ADD, 2).ext(SADB_EXT_SA, &[0; 4]).build();
        let m = Msg::parse(&short).unwrap();
        assert_eq!(
            SaExt::new(m.find(SADB_EXT_SA).unwrap()),
            Err(PfkeyError::ExtTooShort(1))
        );
        assert_eq!(
            LifetimeExt::new(TestMsg::first(&TestMsg::new(3, 2).ext(2, &[0; 4]).build())),
            Err(PfkeyError::ExtTooShort(2))
        );
    }

    #[test]
    fn key_longer_than_extension() {
        // 256 bits claimed, 16 bytes present.
        let mut body = std::vec![0u8; 4];
        body[0..2].copy_from_slice(&256u16.to_ne_bytes());
        body.extend_from_slice(&[1; 16]);
        let b = TestMsg::new(SADB_ADD, 2)
            .ext(SADB_EXT_KEY_AUTH, &body)
            .build();
        let e = TestMsg::first(&b);
        assert_eq!(KeyExt::new(e), Err(PfkeyError::BadKeyLength));
    }
}
