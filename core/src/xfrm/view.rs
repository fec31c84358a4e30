//! Checked views of the state and policy records the kernel sends (dump
//! records, events, expiries) and of the requests built from them.

use core::net::IpAddr;

use super::consts::*;
use super::identity::{Mark, PolicyKey, SaKey};
use super::nl::{u16_at, u32_at, u64_at, Attrs, Msg, NlError};

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

/// The XFRM interface id among `attrs` (0: none).
pub fn if_id(attrs: &Attrs<'_>) -> u32 {
    attrs.find(attr::IF_ID).and_then(|a| a.u32()).unwrap_or(0)
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
mod tests {
    use super::*;
    use crate::xfrm::nl::Builder;
    use crate::xfrm::testutil::*;
    use core::net::Ipv4Addr;

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
        let cut = Builder::new(msg::NEWSA, 0).raw(&b[16..16 + 100]).finish();
        let m = Msg::new(&cut).unwrap();
        assert!(SaView::from_new(&m).is_err());
        assert!(SaView::from_del(&m).is_err());
        assert!(PolicyView::from_del(&m).is_err());
        assert!(SaView::from_expire(&m).is_err());
    }
}
