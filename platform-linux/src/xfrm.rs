//! XFRM netlink: message and attribute numbers, struct layouts, and
//! checked views of the state and policy records the kernel sends.
//!
//! Layouts are those of `include/uapi/linux/xfrm.h` on a 64-bit Linux
//! (the `u64` lifetime fields make the structs 8-aligned); every offset is
//! named here once, and the unit tests build records field by field the
//! way the kernel lays them out. Addresses, ports and SPIs are in network
//! byte order; everything else in host order.

use std::net::IpAddr;

use crate::nl::{u16_at, u32_at, u64_at, Attrs, Msg, NlError};

/// `NETLINK_XFRM`, the netlink protocol of IPsec states and policies.
pub const NETLINK_XFRM: i32 = 6;

/// Message types (`XFRM_MSG_*`).
pub mod msg {
    /// A state was added (event), or add one (request), or a dump record.
    pub const NEWSA: u16 = 0x10;
    /// A state was deleted, or delete one.
    pub const DELSA: u16 = 0x11;
    /// Get one state, or dump them all.
    pub const GETSA: u16 = 0x12;
    /// A policy was added, or add one, or a dump record.
    pub const NEWPOLICY: u16 = 0x13;
    /// A policy was deleted, or delete one.
    pub const DELPOLICY: u16 = 0x14;
    /// Get one policy, or dump them all.
    pub const GETPOLICY: u16 = 0x15;
    /// The kernel wants a state negotiated (keying daemons only).
    pub const ACQUIRE: u16 = 0x17;
    /// A state's soft or hard lifetime ran out.
    pub const EXPIRE: u16 = 0x18;
    /// A policy was replaced, or add-or-replace one.
    pub const UPDPOLICY: u16 = 0x19;
    /// A state was replaced, or replace one.
    pub const UPDSA: u16 = 0x1a;
    /// A policy's lifetime ran out.
    pub const POLEXPIRE: u16 = 0x1b;
    /// States were flushed, or flush them.
    pub const FLUSHSA: u16 = 0x1c;
    /// Policies were flushed, or flush them.
    pub const FLUSHPOLICY: u16 = 0x1d;
    /// Replay and lifetime counters of a state (async events), or set
    /// them (with `NLM_F_REPLACE`).
    pub const NEWAE: u16 = 0x1e;
    /// Read a state's replay and lifetime counters (answered by a `NEWAE`).
    pub const GETAE: u16 = 0x1f;
}

/// Attribute types (`XFRMA_*`).
pub mod attr {
    /// Authentication algorithm (`xfrm_algo`).
    pub const ALG_AUTH: u16 = 1;
    /// Encryption algorithm (`xfrm_algo`).
    pub const ALG_CRYPT: u16 = 2;
    /// Compression algorithm (`xfrm_algo`).
    pub const ALG_COMP: u16 = 3;
    /// UDP encapsulation (`xfrm_encap_tmpl`).
    pub const ENCAP: u16 = 4;
    /// A policy's templates (`xfrm_user_tmpl[]`).
    pub const TMPL: u16 = 5;
    /// The whole state inside a delete event or an expire.
    pub const SA: u16 = 6;
    /// The whole policy inside a delete event.
    pub const POLICY: u16 = 7;
    /// Security context.
    pub const SEC_CTX: u16 = 8;
    /// Current lifetime counters (`xfrm_lifetime_cur`); on an add, the
    /// state starts from them.
    pub const LTIME_VAL: u16 = 9;
    /// Replay state (`xfrm_replay_state`).
    pub const REPLAY_VAL: u16 = 10;
    /// Sequence-number distance between two replay events of a state.
    pub const REPLAY_THRESH: u16 = 11;
    /// Longest time between two replay events of a state that changed
    /// (in jiffies when written: `xfrm_update_ae_params` stores it as is).
    pub const ETIMER_THRESH: u16 = 12;
    /// Care-of address.
    pub const COADDR: u16 = 14;
    /// Last use time of a state (local to one kernel).
    pub const LASTUSED: u16 = 15;
    /// Policy type (main or sub).
    pub const POLICY_TYPE: u16 = 16;
    /// AEAD algorithm (`xfrm_algo_aead`).
    pub const ALG_AEAD: u16 = 18;
    /// Authentication algorithm with truncation length.
    pub const ALG_AUTH_TRUNC: u16 = 20;
    /// Mark value and mask (`xfrm_mark`): part of a state's and a policy's
    /// identity.
    pub const MARK: u16 = 21;
    /// TFC padding.
    pub const TFCPAD: u16 = 22;
    /// Extended sequence number replay state.
    pub const REPLAY_ESN_VAL: u16 = 23;
    /// State extra flags.
    pub const SA_EXTRA_FLAGS: u16 = 24;
    /// Padding for 64-bit attributes.
    pub const PAD: u16 = 27;
    /// Hardware offload device (an ifindex: local to one machine).
    pub const OFFLOAD_DEV: u16 = 28;
    /// Output mark value.
    pub const SET_MARK: u16 = 29;
    /// Output mark mask.
    pub const SET_MARK_MASK: u16 = 30;
    /// XFRM interface id: part of a state's and a policy's identity.
    pub const IF_ID: u16 = 31;
}

/// Multicast groups (`XFRMNLGRP_*`), as bind(2) bits.
pub mod group {
    /// State expiries.
    pub const EXPIRE: u32 = 1 << (2 - 1);
    /// State adds, updates, deletes and flushes.
    pub const SA: u32 = 1 << (3 - 1);
    /// Policy adds, updates, deletes and flushes.
    pub const POLICY: u32 = 1 << (4 - 1);
    /// Replay-state events (`XFRMNLGRP_AEVENTS`): a state's sequence
    /// numbers moved by its threshold, or its timer ran with a change.
    pub const AEVENTS: u32 = 1 << (5 - 1);
}

/// `IPPROTO_ESP`.
pub const IPPROTO_ESP: u8 = 50;
/// `IPPROTO_AH`.
pub const IPPROTO_AH: u8 = 51;
/// `IPPROTO_COMP`.
pub const IPPROTO_COMP: u8 = 108;

/// `sizeof(struct xfrm_selector)`.
pub const SELECTOR_LEN: usize = 56;
/// `sizeof(struct xfrm_usersa_info)`.
pub const USERSA_INFO_LEN: usize = 224;
/// `sizeof(struct xfrm_usersa_id)`.
pub const USERSA_ID_LEN: usize = 24;
/// `sizeof(struct xfrm_userpolicy_info)`.
pub const USERPOLICY_INFO_LEN: usize = 168;
/// `sizeof(struct xfrm_userpolicy_id)`.
pub const USERPOLICY_ID_LEN: usize = 64;
/// `sizeof(struct xfrm_user_expire)`.
pub const USER_EXPIRE_LEN: usize = 232;
/// `sizeof(struct xfrm_aevent_id)`: the state's id, its source address,
/// flags and reqid.
pub const AEVENT_ID_LEN: usize = 48;
/// `sizeof(struct xfrm_lifetime_cur)`.
pub const LIFETIME_CUR_LEN: usize = 32;

/// Offsets inside `xfrm_usersa_info`.
pub mod sa_off {
    /// `sel` (an `xfrm_selector`).
    pub const SEL: usize = 0;
    /// `id.daddr`.
    pub const DADDR: usize = 56;
    /// `id.spi` (network order).
    pub const SPI: usize = 72;
    /// `id.proto`.
    pub const PROTO: usize = 76;
    /// `saddr`.
    pub const SADDR: usize = 80;
    /// `lft` (an `xfrm_lifetime_cfg`).
    pub const LFT: usize = 96;
    /// `curlft` (an `xfrm_lifetime_cur`).
    pub const CURLFT: usize = 160;
    /// `stats` (an `xfrm_stats`).
    pub const STATS: usize = 192;
    /// `seq`.
    pub const SEQ: usize = 204;
    /// `reqid`.
    pub const REQID: usize = 208;
    /// `family`.
    pub const FAMILY: usize = 212;
    /// `mode`.
    pub const MODE: usize = 214;
    /// `replay_window`.
    pub const REPLAY_WINDOW: usize = 215;
    /// `flags`.
    pub const FLAGS: usize = 216;
}

/// Offsets inside `xfrm_userpolicy_info`.
pub mod pol_off {
    /// `sel`.
    pub const SEL: usize = 0;
    /// `lft`.
    pub const LFT: usize = 56;
    /// `curlft`.
    pub const CURLFT: usize = 120;
    /// `priority`.
    pub const PRIORITY: usize = 152;
    /// `index`.
    pub const INDEX: usize = 156;
    /// `dir`.
    pub const DIR: usize = 160;
    /// `action`.
    pub const ACTION: usize = 161;
    /// `flags`.
    pub const FLAGS: usize = 162;
}

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// An `xfrm_address_t` of `family` at `at`, if the family is known.
pub fn addr_at(b: &[u8], at: usize, family: u16) -> Option<IpAddr> {
    match family {
        AF_INET => {
            let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
            Some(IpAddr::from(o))
        }
        AF_INET6 => {
            let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
            Some(IpAddr::from(o))
        }
        _ => None,
    }
}

/// A mark (value and mask); `(0, 0)` when the object has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Mark {
    /// The value.
    pub v: u32,
    /// The mask.
    pub m: u32,
}

impl Mark {
    fn from_attrs(attrs: &Attrs<'_>) -> Mark {
        match attrs.find(attr::MARK) {
            Some(a) if a.data.len() >= 8 => Mark {
                v: u32_at(a.data, 0),
                m: u32_at(a.data, 4),
            },
            _ => Mark::default(),
        }
    }

    /// The attribute's data.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.v.to_ne_bytes());
        b[4..].copy_from_slice(&self.m.to_ne_bytes());
        b
    }
}

fn if_id(attrs: &Attrs<'_>) -> u32 {
    attrs.find(attr::IF_ID).and_then(|a| a.u32()).unwrap_or(0)
}

/// What identifies a state in a kernel: two states with the same key
/// cannot both exist, and a delete names one by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaKey {
    /// Address family.
    pub family: u16,
    /// Destination address, as the kernel stores it (16 bytes).
    pub daddr: [u8; 16],
    /// SPI (network order, as stored).
    pub spi: u32,
    /// IPsec protocol.
    pub proto: u8,
    /// Mark.
    pub mark: Mark,
}

/// What identifies a policy: its selector, direction, mark and interface
/// id (the kernel refuses a second policy with the same, and deletes by
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    /// The selector bytes.
    pub sel: [u8; SELECTOR_LEN],
    /// Direction (in, out, fwd).
    pub dir: u8,
    /// Mark.
    pub mark: Mark,
    /// XFRM interface id.
    pub if_id: u32,
}

/// A state as the kernel reports it: a `NEWSA`/`UPDSA` record (dump or
/// event), the state inside a `DELSA` event, or an `EXPIRE`.
#[derive(Debug, Clone)]
pub struct SaView<'a> {
    /// The `xfrm_usersa_info`.
    pub info: &'a [u8],
    /// The attributes (algorithms, encapsulation, mark, ...).
    pub attrs: Attrs<'a>,
}

impl<'a> SaView<'a> {
    /// The state of a `NEWSA`/`UPDSA` message.
    pub fn from_new(m: &Msg<'a>) -> Result<SaView<'a>, NlError> {
        let (info, attrs) = m.split(USERSA_INFO_LEN)?;
        Ok(SaView { info, attrs })
    }

    /// The state of a `DELSA` event (carried in its `XFRMA_SA`; the mark
    /// and other attributes follow at the top level).
    pub fn from_del(m: &Msg<'a>) -> Result<SaView<'a>, NlError> {
        let (_, attrs) = m.split(USERSA_ID_LEN)?;
        let info = attrs
            .find(attr::SA)
            .map(|a| a.data)
            .filter(|d| d.len() >= USERSA_INFO_LEN)
            .ok_or(NlError::ShortPayload {
                kind: m.kind(),
                need: USERSA_INFO_LEN,
                got: 0,
            })?;
        Ok(SaView { info, attrs })
    }

    /// The state of an `EXPIRE` and whether it is the hard one.
    pub fn from_expire(m: &Msg<'a>) -> Result<(SaView<'a>, bool), NlError> {
        let (fixed, attrs) = m.split(USER_EXPIRE_LEN)?;
        Ok((
            SaView {
                info: &fixed[..USERSA_INFO_LEN],
                attrs,
            },
            fixed[USERSA_INFO_LEN] != 0,
        ))
    }

    /// Address family.
    pub fn family(&self) -> u16 {
        u16_at(self.info, sa_off::FAMILY)
    }
    /// SPI in host order.
    pub fn spi(&self) -> u32 {
        u32::from_be(u32_at(self.info, sa_off::SPI))
    }
    /// IPsec protocol.
    pub fn proto(&self) -> u8 {
        self.info[sa_off::PROTO]
    }
    /// Destination address.
    pub fn daddr(&self) -> Option<IpAddr> {
        addr_at(self.info, sa_off::DADDR, self.family())
    }
    /// Source address.
    pub fn saddr(&self) -> Option<IpAddr> {
        addr_at(self.info, sa_off::SADDR, self.family())
    }
    /// Request id (ties the state to its policies' templates).
    pub fn reqid(&self) -> u32 {
        u32_at(self.info, sa_off::REQID)
    }
    /// Mode (0 transport, 1 tunnel, ...).
    pub fn mode(&self) -> u8 {
        self.info[sa_off::MODE]
    }
    /// Current byte and packet counters.
    pub fn cur_bytes_packets(&self) -> (u64, u64) {
        (
            u64_at(self.info, sa_off::CURLFT),
            u64_at(self.info, sa_off::CURLFT + 8),
        )
    }
    /// The mark.
    pub fn mark(&self) -> Mark {
        Mark::from_attrs(&self.attrs)
    }
    /// The XFRM interface id (0: none).
    pub fn if_id(&self) -> u32 {
        if_id(&self.attrs)
    }
    /// Whether the state has keys and can be written into another kernel:
    /// a larval state (an SPI reserved by a keying daemon mid-negotiation)
    /// has no algorithm yet, and the kernel refuses to add one without.
    pub fn is_complete(&self) -> bool {
        let has = |k| self.attrs.find(k).is_some();
        match self.proto() {
            IPPROTO_ESP => has(attr::ALG_CRYPT) || has(attr::ALG_AEAD),
            IPPROTO_AH => has(attr::ALG_AUTH) || has(attr::ALG_AUTH_TRUNC),
            IPPROTO_COMP => has(attr::ALG_COMP),
            _ => true,
        }
    }
    /// The state's identity.
    pub fn key(&self) -> SaKey {
        let mut daddr = [0u8; 16];
        daddr.copy_from_slice(&self.info[sa_off::DADDR..sa_off::DADDR + 16]);
        SaKey {
            family: self.family(),
            daddr,
            spi: u32_at(self.info, sa_off::SPI),
            proto: self.proto(),
            mark: self.mark(),
        }
    }
}

/// A policy as the kernel reports it: a `NEWPOLICY`/`UPDPOLICY` record or
/// the policy inside a `DELPOLICY` event.
#[derive(Debug, Clone)]
pub struct PolicyView<'a> {
    /// The `xfrm_userpolicy_info`.
    pub info: &'a [u8],
    /// The attributes (templates, mark, interface id, ...).
    pub attrs: Attrs<'a>,
}

impl<'a> PolicyView<'a> {
    /// The policy of a `NEWPOLICY`/`UPDPOLICY` message.
    pub fn from_new(m: &Msg<'a>) -> Result<PolicyView<'a>, NlError> {
        let (info, attrs) = m.split(USERPOLICY_INFO_LEN)?;
        Ok(PolicyView { info, attrs })
    }

    /// The policy of a `DELPOLICY` event (in its `XFRMA_POLICY`).
    pub fn from_del(m: &Msg<'a>) -> Result<PolicyView<'a>, NlError> {
        let (_, attrs) = m.split(USERPOLICY_ID_LEN)?;
        let info = attrs
            .find(attr::POLICY)
            .map(|a| a.data)
            .filter(|d| d.len() >= USERPOLICY_INFO_LEN)
            .ok_or(NlError::ShortPayload {
                kind: m.kind(),
                need: USERPOLICY_INFO_LEN,
                got: 0,
            })?;
        Ok(PolicyView { info, attrs })
    }

    /// The selector's address family.
    pub fn family(&self) -> u16 {
        u16_at(self.info, pol_off::SEL + 40)
    }
    /// Direction: 0 in, 1 out, 2 fwd.
    pub fn dir(&self) -> u8 {
        self.info[pol_off::DIR]
    }
    /// Index (the kernel's handle; also encodes the direction).
    pub fn index(&self) -> u32 {
        u32_at(self.info, pol_off::INDEX)
    }
    /// Priority.
    pub fn priority(&self) -> u32 {
        u32_at(self.info, pol_off::PRIORITY)
    }
    /// Whether the policy is a per-socket one (dir 3+: never synced, it
    /// belongs to a process on this machine).
    pub fn is_socket_policy(&self) -> bool {
        self.dir() >= 3
    }
    /// The mark.
    pub fn mark(&self) -> Mark {
        Mark::from_attrs(&self.attrs)
    }
    /// The policy's identity.
    pub fn key(&self) -> PolicyKey {
        let mut sel = [0u8; SELECTOR_LEN];
        sel.copy_from_slice(&self.info[..SELECTOR_LEN]);
        PolicyKey {
            sel,
            dir: self.dir(),
            mark: self.mark(),
            if_id: if_id(&self.attrs),
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Records laid out as the kernel writes them, for the unit tests.
    use super::*;
    use crate::nl::Builder;

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
        info[sa_off::CURLFT + 16..sa_off::CURLFT + 24]
            .copy_from_slice(&1_700_000_000u64.to_ne_bytes());
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
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::nl::Builder;
    use std::net::Ipv4Addr;

    #[test]
    fn reads_a_state_record() {
        let b = newsa(msg::NEWSA, 0x1234);
        let m = Msg::new(&b).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        assert_eq!(sa.family(), AF_INET);
        assert_eq!(sa.spi(), 0x1234);
        assert_eq!(sa.proto(), IPPROTO_ESP);
        assert_eq!(sa.daddr(), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))));
        assert_eq!(sa.saddr(), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
        assert_eq!(sa.reqid(), 7);
        assert_eq!(sa.mode(), 1);
        assert_eq!(sa.cur_bytes_packets(), (3000, 20));
        assert_eq!(sa.mark(), Mark { v: 5, m: 0xff });
        assert!(sa.is_complete());
    }

    #[test]
    fn a_delete_event_names_the_same_state() {
        let new = newsa(msg::NEWSA, 0x99);
        let del = delsa(0x99);
        let (mn, md) = (Msg::new(&new).unwrap(), Msg::new(&del).unwrap());
        let a = SaView::from_new(&mn).unwrap().key();
        let b = SaView::from_del(&md).unwrap().key();
        assert_eq!(a, b);
        // A different mark is a different state.
        let other = Builder::new(msg::NEWSA, 0)
            .raw(SaView::from_new(&mn).unwrap().info)
            .attr(attr::ALG_CRYPT, &[0; 68])
            .finish();
        let mo = Msg::new(&other).unwrap();
        assert_ne!(SaView::from_new(&mo).unwrap().key(), a);
    }

    #[test]
    fn a_larval_state_is_not_complete() {
        let b = newsa(msg::NEWSA, 1);
        let m = Msg::new(&b).unwrap();
        let larval = Builder::new(msg::NEWSA, 0)
            .raw(SaView::from_new(&m).unwrap().info)
            .finish();
        let ml = Msg::new(&larval).unwrap();
        assert!(!SaView::from_new(&ml).unwrap().is_complete());
    }

    #[test]
    fn reads_a_policy_and_its_delete_event() {
        let b = newpolicy(msg::NEWPOLICY);
        let m = Msg::new(&b).unwrap();
        let p = PolicyView::from_new(&m).unwrap();
        assert_eq!(p.family(), AF_INET);
        assert_eq!(p.dir(), 1);
        assert_eq!(p.index(), 0x801);
        assert_eq!(p.priority(), 100);
        assert!(!p.is_socket_policy());
        let d = delpolicy();
        let md = Msg::new(&d).unwrap();
        let k = PolicyView::from_del(&md).unwrap().key();
        assert_eq!(k, p.key());
        assert_eq!(k.if_id, 9);
    }

    #[test]
    fn short_records_are_errors() {
        let b = newsa(msg::NEWSA, 1);
        let cut = crate::nl::Builder::new(msg::NEWSA, 0)
            .raw(&b[16..16 + 100])
            .finish();
        let m = Msg::new(&cut).unwrap();
        assert!(SaView::from_new(&m).is_err());
        assert!(SaView::from_del(&m).is_err());
        assert!(PolicyView::from_del(&m).is_err());
        assert!(SaView::from_expire(&m).is_err());
    }
}
