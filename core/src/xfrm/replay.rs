//! Outbound sequence numbers in XFRM records: read from the kernel's
//! replay events (`XFRM_MSG_NEWAE` on `XFRMNLGRP_AEVENTS`) and dump
//! records, and the `NEWAE` request that moves one forward when a backup
//! takes over (what the node carries and jumps, `wire/README.md`
//! CTL_OUTSEQ).
//!
//! A state's replay state is one of two attributes (Linux 6.1
//! `include/uapi/linux/xfrm.h`): `XFRMA_REPLAY_VAL`, `struct
//! xfrm_replay_state` (`oseq`, `seq`, `bitmap`, u32 each), or with
//! extended sequence numbers `XFRMA_REPLAY_ESN_VAL`, `struct
//! xfrm_replay_state_esn` (`bmp_len`, `oseq`, `seq`, `oseq_hi`, `seq_hi`,
//! `replay_window`, then `bmp_len` words of bitmap). A `NEWAE` replaces
//! the whole of it (`xfrm_update_ae_params`), and an ESN one must keep the
//! state's `bmp_len` (`xfrm_replay_verify_len`): so the jump copies the
//! attribute the dump record carries and changes the outbound number only.

use super::consts::{attr, msg, AEVENT_ID_LEN};
use super::identity::{Mark, SaKey};
use super::nl::{
    u16_at, u32_at, Attrs, Msg, NlError, Writer, NLM_F_ACK, NLM_F_REPLACE, NLM_F_REQUEST,
};
use super::rewrite::aevent_id;
use super::view::SaView;

/// `sizeof(struct xfrm_replay_state)`.
pub const REPLAY_LEN: usize = 12;
/// `sizeof(struct xfrm_replay_state_esn)` without its bitmap.
pub const REPLAY_ESN_LEN: usize = 24;
/// The largest ESN replay state: `XFRMA_REPLAY_ESN_MAX` (4096) bits of
/// bitmap.
pub const REPLAY_ESN_MAX: usize = REPLAY_ESN_LEN + 4096 / 8;

/// A state's sequence numbers, either form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// The last outbound sequence number used (64 bits with ESN).
    pub oseq: u64,
    /// The highest inbound sequence number accepted.
    pub seq: u64,
    /// Extended sequence numbers.
    pub esn: bool,
}

/// The replay state among `attrs`, if one of the right size is there.
pub fn counters(attrs: &Attrs<'_>) -> Option<Counters> {
    if let Some(a) = attrs.find(attr::REPLAY_ESN_VAL) {
        let d = a.data;
        if d.len() < REPLAY_ESN_LEN {
            return None;
        }
        return Some(Counters {
            oseq: (u64::from(u32_at(d, 12)) << 32) | u64::from(u32_at(d, 4)),
            seq: (u64::from(u32_at(d, 16)) << 32) | u64::from(u32_at(d, 8)),
            esn: true,
        });
    }
    let d = attrs.find(attr::REPLAY_VAL)?.data;
    if d.len() < REPLAY_LEN {
        return None;
    }
    Some(Counters {
        oseq: u64::from(u32_at(d, 0)),
        seq: u64::from(u32_at(d, 4)),
        esn: false,
    })
}

/// A replay event (`NEWAE`, `build_aevent`'s layout: `xfrm_aevent_id`,
/// then the replay state, lifetime, thresholds, mark): the state it names
/// and its counters. `None` for other messages and unreadable ones.
pub fn event(bytes: &[u8]) -> Option<(SaKey, Counters)> {
    let m = Msg::new(bytes).ok()?;
    if m.kind() != msg::NEWAE {
        return None;
    }
    let (id, attrs) = m.split(AEVENT_ID_LEN).ok()?;
    let c = counters(&attrs)?;
    let mut daddr = [0u8; 16];
    daddr.copy_from_slice(&id[..16]);
    let key = SaKey {
        family: u16_at(id, 20),
        daddr,
        spi: u32_at(id, 16),
        proto: id[22],
        mark: Mark::from_attrs(&attrs),
    };
    Some((key, c))
}

/// Why no jump can be written for a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JumpError {
    /// Unreadable, or no room in the output.
    Nl(NlError),
    /// A 32-bit state would pass 2^32 - 1: it needs a new key (the kernel
    /// refuses to send on it, `xfrm_replay_overflow`).
    Exhausted(u64),
}

/// The replay-event threshold a node gives the states it carries numbers
/// for, in packets, for a takeover margin of `margin`: half of it. The
/// number a slave holds lags the real one by less than the threshold
/// (`xfrm_replay_notify` reports each time a number moved by it), and the
/// other half covers what the SA sends while the last report crosses to
/// the slave. The kernel's default, 2 (`net.core.xfrm_aevent_rseqth`),
/// costs an event per 2 packets of every SA (BENCHMARKS.md, issue 21).
pub fn event_threshold(margin: u64) -> u32 {
    u32::try_from((margin / 2).max(1)).unwrap_or(u32::MAX)
}

/// The replay-event timer a node gives the same states, in jiffies (the
/// unit `XFRMA_ETIMER_THRESH` is taken in by `xfrm_update_ae_params`;
/// the kernel's HZ is 100 to 1000, so 1 to 10 minutes). The timer only
/// adds events: an SA with traffic reports whenever it ran with a change,
/// which at the default (`xfrm_aevent_etime`, 1 s) is an event a second
/// for every SA that sends less than the threshold a second. Never 0: a
/// state whose timer ran without a change reports every packet until the
/// timer is armed again (`XFRM_TIME_DEFER`), and 0 never arms it.
pub const EVENT_TIMER: u32 = 60_000;
const _: () = assert!(EVENT_TIMER > 0);

/// Writes to `out` the `NEWAE` that sets the replay-event thresholds of
/// the state the `NEWSA`/`UPDSA` record `record` describes
/// ([`event_threshold`] of `margin`, [`EVENT_TIMER`]) and nothing else:
/// the replay state is not replaced, so packets sent meanwhile are not
/// lost from it. `Ok(None)` for other records and incomplete states.
pub fn thresholds(record: &[u8], margin: u64, out: &mut [u8]) -> Result<Option<usize>, NlError> {
    let m = Msg::new(record)?;
    if !matches!(m.kind(), msg::NEWSA | msg::UPDSA) {
        return Ok(None);
    }
    let sa = SaView::from_new(&m)?;
    if !sa.is_complete() {
        return Ok(None);
    }
    let mut w = Writer::new(out, msg::NEWAE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE);
    w.raw(&aevent_id(&sa, 0));
    put_thresholds(&mut w, margin);
    let mark = sa.mark();
    if mark != Mark::default() {
        w.attr(attr::MARK, &mark.to_bytes());
    }
    w.finish().map(Some)
}

fn put_thresholds(w: &mut Writer<'_>, margin: u64) {
    w.attr(attr::REPLAY_THRESH, &event_threshold(margin).to_ne_bytes())
        .attr(attr::ETIMER_THRESH, &EVENT_TIMER.to_ne_bytes());
}

/// Whether a jump moves the state whose counters are `c`, given the
/// number carried for it: a number carried, or one of its own, marks an
/// outbound state; a state that has received nothing may be an outbound
/// one that has sent fewer packets than the event threshold. A state
/// that has received packets and sent none is inbound: its replay window
/// is left alone (a `NEWAE` would overwrite it).
pub fn moves(c: &Counters, carried: Option<u64>) -> bool {
    c.oseq > 0 || carried.is_some() || c.seq == 0
}

/// Writes to `out` the `NEWAE` that sets the outbound sequence number of
/// the state in the dump record `record` to `margin` past the larger of
/// its own and `carried`, keeping the rest of its replay state; `Ok(None)`
/// if the record is no complete state with a replay state, or
/// [`moves`] says it stays.
pub fn jump(
    record: &[u8],
    carried: Option<u64>,
    margin: u64,
    out: &mut [u8],
) -> Result<Option<usize>, JumpError> {
    let m = Msg::new(record).map_err(JumpError::Nl)?;
    if !matches!(m.kind(), msg::NEWSA | msg::UPDSA) {
        return Ok(None);
    }
    let sa = SaView::from_new(&m).map_err(JumpError::Nl)?;
    let Some(c) = counters(&sa.attrs) else {
        return Ok(None);
    };
    if !sa.is_complete() || !moves(&c, carried) {
        return Ok(None);
    }
    let to = c.oseq.max(carried.unwrap_or(0)).saturating_add(margin);
    let mut replay = [0u8; REPLAY_ESN_MAX];
    let (kind, len) = if c.esn {
        let d = sa
            .attrs
            .find(attr::REPLAY_ESN_VAL)
            .map(|a| a.data)
            .unwrap_or(&[]);
        let r = replay
            .get_mut(..d.len())
            .ok_or(JumpError::Nl(NlError::NoRoom { need: d.len() }))?;
        r.copy_from_slice(d);
        r[4..8].copy_from_slice(&(to as u32).to_ne_bytes());
        r[12..16].copy_from_slice(&((to >> 32) as u32).to_ne_bytes());
        (attr::REPLAY_ESN_VAL, d.len())
    } else {
        let low = u32::try_from(to).map_err(|_| JumpError::Exhausted(to))?;
        let d = sa
            .attrs
            .find(attr::REPLAY_VAL)
            .map(|a| a.data)
            .unwrap_or(&[]);
        replay[..REPLAY_LEN].copy_from_slice(&d[..REPLAY_LEN]);
        replay[..4].copy_from_slice(&low.to_ne_bytes());
        (attr::REPLAY_VAL, REPLAY_LEN)
    };
    let mut w = Writer::new(out, msg::NEWAE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE);
    w.raw(&aevent_id(&sa, 0)).attr(kind, &replay[..len]);
    // The state becomes ours to carry from: our thresholds with it.
    put_thresholds(&mut w, margin);
    let mark = sa.mark();
    if mark != Mark::default() {
        w.attr(attr::MARK, &mark.to_bytes());
    }
    w.finish().map(Some).map_err(JumpError::Nl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xfrm::nl::Builder;
    use crate::xfrm::testutil::newsa;
    use std::vec::Vec;

    /// A state record with `replay` as its replay state (and the mark the
    /// test records carry).
    fn with_replay(spi: u32, kind: u16, replay: &[u8]) -> Vec<u8> {
        let base = newsa(msg::NEWSA, spi);
        let m = Msg::new(&base).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        let mut b = Builder::new(msg::NEWSA, 0).raw(sa.info);
        for a in sa.attrs.clone().flatten() {
            if !matches!(a.kind, attr::REPLAY_VAL | attr::REPLAY_ESN_VAL) {
                b = b.attr(a.kind, a.data);
            }
        }
        b.attr(kind, replay).finish()
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    fn jumped(rec: &[u8], carried: Option<u64>, margin: u64) -> Option<Vec<u8>> {
        let mut out = [0u8; 1024];
        jump(rec, carried, margin, &mut out)
            .unwrap()
            .map(|n| out[..n].to_vec())
    }

    #[test]
    fn a_32_bit_state_jumps_past_the_carried_number() {
        let rec = with_replay(0x42, attr::REPLAY_VAL, &words(&[50, 0, 0]));
        let req = jumped(&rec, Some(900), 100).unwrap();
        let m = Msg::new(&req).unwrap();
        assert_eq!(m.kind(), msg::NEWAE);
        assert_eq!(m.flags(), NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE);
        let (id, attrs) = m.split(AEVENT_ID_LEN).unwrap();
        assert_eq!(&id[16..20], &0x42u32.to_be_bytes());
        let c = counters(&attrs).unwrap();
        assert_eq!((c.oseq, c.seq, c.esn), (1000, 0, false));
        assert!(attrs.find(attr::MARK).is_some(), "the mark finds the state");
        // Its own number when it is the larger.
        let req = jumped(&rec, Some(10), 100).unwrap();
        let (_, attrs) = Msg::new(&req).unwrap().split(AEVENT_ID_LEN).unwrap();
        assert_eq!(counters(&attrs).unwrap().oseq, 150);
        // Past 2^32 - 1: refused, not wrapped.
        let mut out = [0u8; 512];
        assert_eq!(
            jump(&rec, Some(u64::from(u32::MAX)), 1, &mut out),
            Err(JumpError::Exhausted(1 << 32))
        );
    }

    fn u32_attr(attrs: &Attrs<'_>, kind: u16) -> Option<u32> {
        attrs.find(kind).map(|a| u32_at(a.data, 0))
    }

    #[test]
    fn thresholds_follow_the_margin_and_leave_the_replay_state() {
        assert_eq!(event_threshold(4096), 2048);
        assert_eq!(event_threshold(1), 1, "never 0: that reports every packet");
        assert_eq!(event_threshold(u64::MAX), u32::MAX);
        let rec = with_replay(0x47, attr::REPLAY_VAL, &words(&[50, 7, 1]));
        let mut out = [0u8; 512];
        let n = thresholds(&rec, 4096, &mut out).unwrap().unwrap();
        let m = Msg::new(&out[..n]).unwrap();
        assert_eq!(m.kind(), msg::NEWAE);
        assert_eq!(m.flags(), NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE);
        let (id, attrs) = m.split(AEVENT_ID_LEN).unwrap();
        assert_eq!(&id[16..20], &0x47u32.to_be_bytes());
        assert_eq!(u32_attr(&attrs, attr::REPLAY_THRESH), Some(2048));
        assert_eq!(u32_attr(&attrs, attr::ETIMER_THRESH), Some(EVENT_TIMER));
        assert_eq!(counters(&attrs), None, "the replay state is not replaced");
        assert!(attrs.find(attr::MARK).is_some(), "the mark finds the state");
        // Not a state, or not a complete one: nothing.
        let ev = Builder::new(msg::NEWAE, 0)
            .raw(&[0; AEVENT_ID_LEN])
            .finish();
        assert_eq!(thresholds(&ev, 4096, &mut out), Ok(None));
        let sa = newsa(msg::NEWSA, 0x48);
        let v = SaView::from_new(&Msg::new(&sa).unwrap())
            .unwrap()
            .info
            .to_vec();
        let larval = Builder::new(msg::NEWSA, 0).raw(&v).finish();
        assert_eq!(thresholds(&larval, 4096, &mut out), Ok(None));
        // A jump sets them too: the new master carries from its states.
        let req = jumped(&rec, Some(900), 100).unwrap();
        let (_, attrs) = Msg::new(&req).unwrap().split(AEVENT_ID_LEN).unwrap();
        assert_eq!(u32_attr(&attrs, attr::REPLAY_THRESH), Some(50));
        assert_eq!(u32_attr(&attrs, attr::ETIMER_THRESH), Some(EVENT_TIMER));
    }

    #[test]
    fn an_esn_state_keeps_its_window_and_crosses_32_bits() {
        let mut esn = words(&[2, 0xffff_fff0, 0, 0, 0, 64]);
        esn.extend_from_slice(&[0xa5; 8]);
        let rec = with_replay(0x43, attr::REPLAY_ESN_VAL, &esn);
        let req = jumped(&rec, None, 0x100).unwrap();
        let (_, attrs) = Msg::new(&req).unwrap().split(AEVENT_ID_LEN).unwrap();
        let d = attrs.find(attr::REPLAY_ESN_VAL).unwrap().data;
        assert_eq!(d.len(), esn.len(), "bmp_len and bitmap kept");
        assert_eq!(&d[24..], &[0xa5; 8]);
        let c = counters(&attrs).unwrap();
        assert_eq!((c.oseq, c.esn), (0x1_0000_00f0, true));
        assert_eq!(u32_at(d, 20), 64, "window kept");
    }

    #[test]
    fn inbound_states_stay_and_events_are_read() {
        // Received packets, sent none, nothing carried: inbound.
        let inbound = with_replay(0x44, attr::REPLAY_VAL, &words(&[0, 77, 1]));
        assert_eq!(jumped(&inbound, None, 100), None);
        // Unless a number was carried for it.
        assert!(jumped(&inbound, Some(5), 100).is_some());
        // Nothing sent or received: may be outbound below the threshold.
        let fresh = with_replay(0x45, attr::REPLAY_VAL, &words(&[0, 0, 0]));
        assert!(jumped(&fresh, None, 100).is_some());
        // A larval state (no algorithm) has nothing to move.
        let sa = newsa(msg::NEWSA, 0x46);
        let m = Msg::new(&sa).unwrap();
        let v = SaView::from_new(&m).unwrap();
        let mut b = Builder::new(msg::NEWSA, 0).raw(v.info);
        b = b.attr(attr::REPLAY_VAL, &words(&[3, 0, 0]));
        assert_eq!(jumped(&b.finish(), None, 100), None);

        // A replay event as build_aevent lays it out.
        let key = v.key();
        let ev = Builder::new(msg::NEWAE, 0)
            .raw(&aevent_id(&v, 16))
            .attr(attr::REPLAY_VAL, &words(&[128, 0, 0]))
            .attr(attr::MARK, &v.mark().to_bytes())
            .finish();
        let (k, c) = event(&ev).unwrap();
        assert_eq!((k, c.oseq), (key, 128));
        assert_eq!(event(&sa), None, "not an event");
        assert_eq!(event(&ev[..HDR]), None, "short");
    }

    const HDR: usize = crate::xfrm::nl::HDR_LEN + 10;
}
