//! Records one kernel reported, rewritten as requests another kernel
//! accepts: what a slave writes for a master's dump record or event.
//!
//! A dump record and a `NEWSA`/`NEWPOLICY` event are already in the form
//! of an add request; what changes is the header (a request that wants an
//! acknowledgement), the attributes that only mean something on the
//! machine that sent them, which are dropped (`XFRMA_LASTUSED`,
//! `XFRMA_OFFLOAD_DEV`: an ifindex, and padding), and the current lifetime
//! counters, which the kernel ignores in the fixed struct of an add but
//! takes from an `XFRMA_LTIME_VAL`: the copy starts with the bytes,
//! packets and add time the original had, so its byte and time lifetimes
//! run out when the original's would, and `ip -s xfrm state` shows the
//! same on both. Attributes this crate does not know (a newer kernel's)
//! are copied unchanged; an older kernel ignores those it does not know.
//! Deletes name the object by its identity ([`SaKey`](super::SaKey),
//! [`PolicyKey`](super::PolicyKey)), not by the sender's policy index,
//! which need not be the receiver's.
//!
//! Every function writes one message into the caller's `out` and returns
//! its length; a buffer too small is [`NlError::NoRoom`], with the size
//! needed. A request is never longer than the record it comes from plus
//! [`GROWTH`] bytes.

use super::consts::{
    attr, msg, sa_off, AEVENT_ID_LEN, LIFETIME_CUR_LEN, SELECTOR_LEN, USERPOLICY_ID_LEN,
    USERSA_ID_LEN,
};
use super::identity::Mark;
use super::nl::{NlError, Writer, NLM_F_ACK, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST};
use super::view::{PolicyView, SaView};

/// The most a rewrite adds to the record it reads: the `XFRMA_LTIME_VAL`
/// of a state add (every other request is shorter than its record, or of
/// fixed size below this plus a header).
pub const GROWTH: usize = 4 + LIFETIME_CUR_LEN + 64;

/// Attributes that describe the sending machine, not the object.
const LOCAL_ONLY: [u16; 6] = [
    attr::LASTUSED,
    attr::OFFLOAD_DEV,
    attr::PAD,
    attr::LTIME_VAL,
    attr::SA,
    attr::POLICY,
];

/// Request flags: every write wants its acknowledgement, so that a refusal
/// is seen and counted.
const REQ: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// An add (`update` false: `NEWSA`, refused if the state exists) or a
/// replace (`UPDSA`, refused if it does not) of the state in `sa`.
pub fn state_write(sa: &SaView<'_>, update: bool, out: &mut [u8]) -> Result<usize, NlError> {
    let kind = if update { msg::UPDSA } else { msg::NEWSA };
    let mut w = Writer::new(out, kind, REQ);
    w.raw(sa.info);
    for a in sa.attrs.clone() {
        let a = a?;
        if !LOCAL_ONLY.contains(&a.kind) {
            w.attr(a.kind, a.data);
        }
    }
    w.attr(attr::LTIME_VAL, curlft(sa));
    w.finish()
}

fn curlft<'a>(sa: &SaView<'a>) -> &'a [u8] {
    &sa.info[sa_off::CURLFT..sa_off::CURLFT + LIFETIME_CUR_LEN]
}

/// The `xfrm_aevent_id` naming the state `sa`, with `flags`.
pub fn aevent_id(sa: &SaView<'_>, flags: u32) -> [u8; AEVENT_ID_LEN] {
    let mut id = [0u8; AEVENT_ID_LEN];
    id[..16].copy_from_slice(&sa.info[sa_off::DADDR..sa_off::DADDR + 16]);
    id[16..20].copy_from_slice(&sa.info[sa_off::SPI..sa_off::SPI + 4]);
    id[20..22].copy_from_slice(&sa.family().to_ne_bytes());
    id[22] = sa.proto();
    id[24..40].copy_from_slice(&sa.info[sa_off::SADDR..sa_off::SADDR + 16]);
    id[40..44].copy_from_slice(&flags.to_ne_bytes());
    id[44..48].copy_from_slice(&sa.reqid().to_ne_bytes());
    id
}

/// Sets the counters of the existing state `sa` names to those `sa`
/// carries: current lifetime (bytes, packets, add and use time) and
/// replay state (`XFRM_MSG_NEWAE`, which needs `NLM_F_REPLACE`). An
/// update (`UPDSA`) changes lifetimes and encapsulation but leaves the
/// counters; this follows it, so that an updated copy equals the
/// original as an added one does.
pub fn state_counters(sa: &SaView<'_>, out: &mut [u8]) -> Result<usize, NlError> {
    let mut w = Writer::new(out, msg::NEWAE, REQ | NLM_F_REPLACE);
    w.raw(&aevent_id(sa, 0)).attr(attr::LTIME_VAL, curlft(sa));
    for a in sa.attrs.clone().flatten() {
        if matches!(a.kind, attr::REPLAY_VAL | attr::REPLAY_ESN_VAL | attr::MARK) {
            w.attr(a.kind, a.data);
        }
    }
    w.finish()
}

/// A delete of the state `sa` names, by its identity (address, SPI,
/// protocol, family, mark).
pub fn state_delete(sa: &SaView<'_>, out: &mut [u8]) -> Result<usize, NlError> {
    let mut id = [0u8; USERSA_ID_LEN];
    id[..16].copy_from_slice(&sa.info[sa_off::DADDR..sa_off::DADDR + 16]);
    id[16..20].copy_from_slice(&sa.info[sa_off::SPI..sa_off::SPI + 4]);
    id[20..22].copy_from_slice(&sa.family().to_ne_bytes());
    id[22] = sa.proto();
    let mut w = Writer::new(out, msg::DELSA, REQ);
    w.raw(&id);
    let mark = sa.mark();
    if mark != Mark::default() {
        w.attr(attr::MARK, &mark.to_bytes());
    }
    w.finish()
}

/// An add (`NEWPOLICY`) or add-or-replace (`UPDPOLICY`) of the policy in
/// `p`, keeping its index (the kernel takes the index if it is free, so
/// `ip xfrm policy` shows the same on both).
pub fn policy_write(p: &PolicyView<'_>, update: bool, out: &mut [u8]) -> Result<usize, NlError> {
    let kind = if update {
        msg::UPDPOLICY
    } else {
        msg::NEWPOLICY
    };
    let mut w = Writer::new(out, kind, REQ);
    w.raw(p.info);
    for a in p.attrs.clone() {
        let a = a?;
        if !LOCAL_ONLY.contains(&a.kind) {
            w.attr(a.kind, a.data);
        }
    }
    w.finish()
}

/// A delete of the policy `p` names, by selector, direction, mark,
/// interface id, type and security context.
pub fn policy_delete(p: &PolicyView<'_>, out: &mut [u8]) -> Result<usize, NlError> {
    let mut id = [0u8; USERPOLICY_ID_LEN];
    id[..SELECTOR_LEN].copy_from_slice(&p.info[..SELECTOR_LEN]);
    // Index 0: find it by selector.
    id[60] = p.dir();
    let mut w = Writer::new(out, msg::DELPOLICY, REQ);
    w.raw(&id);
    for a in p.attrs.clone() {
        let a = a?;
        if matches!(
            a.kind,
            attr::MARK | attr::IF_ID | attr::SEC_CTX | attr::POLICY_TYPE
        ) {
            w.attr(a.kind, a.data);
        }
    }
    w.finish()
}

/// Flush the states of IPsec protocol `proto` (0: all).
pub fn flush_states(proto: u8, out: &mut [u8]) -> Result<usize, NlError> {
    let mut w = Writer::new(out, msg::FLUSHSA, REQ);
    w.raw(&[proto]);
    w.finish()
}

/// Flush the (main) policies.
pub fn flush_policies(out: &mut [u8]) -> Result<usize, NlError> {
    Writer::new(out, msg::FLUSHPOLICY, REQ).finish()
}

/// A dump request for every state (`GETSA`) or every policy (`GETPOLICY`).
pub fn dump_request(kind: u16, out: &mut [u8]) -> Result<usize, NlError> {
    Writer::new(out, kind, NLM_F_REQUEST | NLM_F_DUMP).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xfrm::consts::{IPPROTO_ESP, USERPOLICY_INFO_LEN, USERSA_INFO_LEN};
    use crate::xfrm::nl::{Msg, HDR_LEN};
    use crate::xfrm::testutil::*;
    use std::vec::Vec;

    fn run(f: impl FnOnce(&mut [u8]) -> Result<usize, NlError>) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let n = f(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn a_state_record_becomes_an_add_with_its_counters() {
        let rec = newsa(msg::NEWSA, 0x42);
        let m = Msg::new(&rec).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        let req = run(|b| state_write(&sa, false, b));
        assert!(req.len() <= rec.len() + GROWTH);
        let r = Msg::new(&req).unwrap();
        assert_eq!(r.kind(), msg::NEWSA);
        assert_eq!(r.flags(), NLM_F_REQUEST | NLM_F_ACK);
        let out = SaView::from_new(&r).unwrap();
        assert_eq!(out.info, &rec[HDR_LEN..HDR_LEN + USERSA_INFO_LEN]);
        let kinds: Vec<u16> = out.attrs.clone().map(|a| a.unwrap().kind).collect();
        assert_eq!(
            kinds,
            [
                attr::ALG_AUTH_TRUNC,
                attr::ALG_CRYPT,
                attr::MARK,
                attr::LTIME_VAL
            ]
        );
        let lt = out.attrs.find(attr::LTIME_VAL).unwrap();
        assert_eq!(lt.data.len(), LIFETIME_CUR_LEN);
        assert_eq!(u64::from_ne_bytes(lt.data[..8].try_into().unwrap()), 3000);
        assert_eq!(u64::from_ne_bytes(lt.data[8..16].try_into().unwrap()), 20);
        assert_eq!(out.key(), sa.key());
        let upd = run(|b| state_write(&sa, true, b));
        assert_eq!(Msg::new(&upd).unwrap().kind(), msg::UPDSA);
        // Too small a buffer: refused with the size needed, nothing framed.
        let mut small = [0u8; 64];
        assert_eq!(
            state_write(&sa, false, &mut small),
            Err(NlError::NoRoom { need: req.len() })
        );
    }

    #[test]
    fn counters_are_set_by_identity_with_replace() {
        let rec = newsa(msg::NEWSA, 0x42);
        let m = Msg::new(&rec).unwrap();
        let req = run(|b| state_counters(&SaView::from_new(&m).unwrap(), b));
        let r = Msg::new(&req).unwrap();
        assert_eq!(r.kind(), msg::NEWAE);
        assert_eq!(r.flags(), NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE);
        let (id, attrs) = r.split(AEVENT_ID_LEN).unwrap();
        assert_eq!(&id[..4], &[192, 0, 2, 2]);
        assert_eq!(&id[16..20], &0x42u32.to_be_bytes());
        assert_eq!(id[22], IPPROTO_ESP);
        assert_eq!(&id[24..28], &[192, 0, 2, 1]);
        assert_eq!(u32::from_ne_bytes(id[44..48].try_into().unwrap()), 7);
        let kinds: Vec<u16> = attrs.map(|a| a.unwrap().kind).collect();
        assert_eq!(kinds, [attr::LTIME_VAL, attr::MARK]);
    }

    #[test]
    fn a_delete_event_becomes_a_delete_by_identity() {
        let ev = delsa(0x42);
        let m = Msg::new(&ev).unwrap();
        let req = run(|b| state_delete(&SaView::from_del(&m).unwrap(), b));
        let r = Msg::new(&req).unwrap();
        assert_eq!(r.kind(), msg::DELSA);
        let (id, attrs) = r.split(USERSA_ID_LEN).unwrap();
        assert_eq!(&id[..4], &[192, 0, 2, 2]);
        assert_eq!(&id[16..20], &0x42u32.to_be_bytes());
        assert_eq!(
            u16::from_ne_bytes([id[20], id[21]]),
            crate::xfrm::consts::AF_INET
        );
        assert_eq!(id[22], IPPROTO_ESP);
        assert_eq!(
            attrs.find(attr::MARK).unwrap().data,
            &Mark { v: 5, m: 0xff }.to_bytes()
        );
    }

    #[test]
    fn a_policy_record_becomes_an_add_and_its_event_a_delete() {
        let rec = newpolicy(msg::NEWPOLICY);
        let m = Msg::new(&rec).unwrap();
        let pv = PolicyView::from_new(&m).unwrap();
        let req = run(|b| policy_write(&pv, false, b));
        let r = Msg::new(&req).unwrap();
        assert_eq!(r.kind(), msg::NEWPOLICY);
        let p = PolicyView::from_new(&r).unwrap();
        assert_eq!(p.info, &rec[HDR_LEN..HDR_LEN + USERPOLICY_INFO_LEN]);
        assert_eq!(p.key(), pv.key());

        let ev = delpolicy();
        let md = Msg::new(&ev).unwrap();
        let del = run(|b| policy_delete(&PolicyView::from_del(&md).unwrap(), b));
        let d = Msg::new(&del).unwrap();
        assert_eq!(d.kind(), msg::DELPOLICY);
        let (id, attrs) = d.split(USERPOLICY_ID_LEN).unwrap();
        assert_eq!(&id[..SELECTOR_LEN], &rec[HDR_LEN..HDR_LEN + SELECTOR_LEN]);
        assert_eq!(u32::from_ne_bytes(id[56..60].try_into().unwrap()), 0);
        assert_eq!(id[60], 1);
        let kinds: Vec<u16> = attrs.map(|a| a.unwrap().kind).collect();
        assert_eq!(kinds, [attr::MARK, attr::IF_ID]);
    }

    #[test]
    fn flushes_and_dumps_are_requests() {
        let f = run(|b| flush_states(0, b));
        let m = Msg::new(&f).unwrap();
        assert_eq!((m.kind(), m.payload()), (msg::FLUSHSA, &[0, 0, 0, 0][..]));
        let f = run(flush_policies);
        assert_eq!(Msg::new(&f).unwrap().kind(), msg::FLUSHPOLICY);
        let d = run(|b| dump_request(msg::GETSA, b));
        let m = Msg::new(&d).unwrap();
        assert_eq!(m.flags(), NLM_F_REQUEST | NLM_F_DUMP);
        assert!(m.payload().is_empty());
    }
}
