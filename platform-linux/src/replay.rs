//! Outbound sequence numbers: watched on the master, carried, and moved
//! past the last one carried when a backup takes over.
//!
//! An outbound state copied to a backup starts at the sequence number it
//! had when copied. After a takeover the remote peer's anti-replay window
//! drops every packet whose number it has already passed: without help
//! the new master's traffic on that SA is lost until its counter catches
//! up with the old master's, in practice for good. So the master carries
//! each outbound state's last sequence number ([`OutboundSeqs`]), and the
//! new master moves every outbound state past it by a margin before it
//! sends ([`takeover`]), with `XFRM_MSG_NEWAE` (the counters setter).
//!
//! # Events with thresholds, not a periodic read
//!
//! The kernel reports a state's replay state on the `XFRMNLGRP_AEVENTS`
//! group (`xfrm_replay_notify`, Linux 6.1 `net/xfrm/xfrm_replay.c`) when
//! either sequence number moved by the state's replay threshold since the
//! last report (`XFRMA_REPLAY_THRESH`), or when its event timer
//! (`XFRMA_ETIMER_THRESH`) runs and something changed; and only while a
//! socket listens on the group (`xfrm_aevent_is_on`). States take the
//! thresholds of the `net.core.xfrm_aevent_rseqth` (2) and
//! `xfrm_aevent_etime` (10: one second) sysctls when added; a watcher
//! sets its own per state with [`thresholds`].
//!
//! The two ways to learn the numbers, measured in the guest (test
//! `replay_events_cost_vs_periodic_read`, see BENCHMARKS.md):
//!
//! * **Events**: cost follows traffic, not the number of states (an idle
//!   state costs nothing), and the lag of the carried number behind the
//!   real one is bounded *in packets* by the threshold, whatever the
//!   rate, plus what the timer lets through for a trickle. The margin at
//!   takeover only has to cover the threshold and the packets sent in
//!   the last moments of the old master.
//! * **A periodic read** (a `GETSA` dump carries every state's replay
//!   state; `GETAE` reads one): its cost follows the number of states
//!   and the rate of polling, idle or not, and its lag in packets is the
//!   SA's rate times the period: unbounded for a fast SA, so no fixed
//!   margin covers it.
//!
//! Measured in the guest (Linux 6.1 under QEMU TCG): an event costs the
//! watcher about 39 µs of CPU and 116 bytes; a dump of 1000 states 17.6 ms
//! and 556 kB. At 100 packets/s per SA a dump a second is cheaper than
//! events at threshold 64, but its lag grows with the rate; an event's
//! lag does not. The threshold trades the one for the other: raising it
//! cuts the events in proportion and asks a larger margin.
//!
//! So this crate watches events, with a threshold of [`DEFAULT_THRESHOLD`]
//! packets and an event timer the caller sets (in jiffies: the failover
//! bench uses 25, 100 ms at Debian's HZ of 250), and a takeover margin of
//! at least twice the threshold plus what the old master can send in its
//! last moments (the bench uses 4096). A full dump at connect time (the snapshot) seeds
//! the numbers; events then keep them.
//!
//! The daemon's node sets its own thresholds, from its margin
//! (`sasyncd_core::xfrm::replay::event_threshold`: half of it, and a long
//! event timer, since at the kernel's one-second timer every SA that sends
//! reports every second whatever the threshold; BENCHMARKS.md, issue 21).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::nl::{u32_at, Builder, Msg, NlError, NLM_F_ACK, NLM_F_REPLACE, NLM_F_REQUEST};
use crate::socket::XfrmSocket;
use crate::xfrm::{attr, msg, Mark, SaKey, SaView, AEVENT_ID_LEN};

// The replay state's layout, reading and the aevent id are the core's
// (`sasyncd_core::xfrm::replay`), shared with the node's takeover jump.
pub use sasyncd_core::xfrm::replay::{counters, Counters, REPLAY_ESN_LEN, REPLAY_LEN};
use sasyncd_core::xfrm::rewrite::aevent_id;

/// The replay threshold this crate sets on the states it watches: an
/// event every 64 packets of a state at most. At 100 000 packets/s on
/// one SA that is ~1 600 events/s; the kernel's default (2) would be
/// 50 000.
pub const DEFAULT_THRESHOLD: u32 = 64;

/// Flags of `xfrm_aevent_id` (`XFRM_AE_*`): what an event reports, or
/// what a `GETAE` asks for.
pub mod ae {
    /// Report the replay threshold.
    pub const RTHR: u32 = 1;
    /// Report the replay value.
    pub const RVAL: u32 = 2;
    /// Report the lifetime value.
    pub const LVAL: u32 = 4;
    /// Report the event timer.
    pub const ETHR: u32 = 8;
    /// The event says: replay threshold crossed.
    pub const CR: u32 = 16;
    /// The event says: the timer ran.
    pub const CE: u32 = 32;
    /// The event says: someone set the counters.
    pub const CU: u32 = 64;
}

/// A replay-state event (or a `GETAE` answer): which state, and its
/// counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aevent {
    /// The state.
    pub key: SaKey,
    /// Its source address (16 bytes, as stored).
    pub saddr: [u8; 16],
    /// Its request id.
    pub reqid: u32,
    /// `XFRM_AE_*` flags: why it came.
    pub flags: u32,
    /// Its counters.
    pub counters: Counters,
}

impl Aevent {
    /// Reads a `NEWAE` message; `None` for another type.
    pub fn parse(m: &Msg<'_>) -> Result<Option<Aevent>, NlError> {
        if m.kind() != msg::NEWAE {
            return Ok(None);
        }
        let (id, attrs) = m.split(AEVENT_ID_LEN)?;
        let Some(counters) = counters(&attrs) else {
            return Err(NlError::ShortPayload {
                kind: m.kind(),
                need: REPLAY_LEN,
                got: 0,
            });
        };
        let mark = match attrs.find(attr::MARK) {
            Some(a) if a.data.len() >= 8 => Mark {
                v: u32_at(a.data, 0),
                m: u32_at(a.data, 4),
            },
            _ => Mark::default(),
        };
        let mut daddr = [0u8; 16];
        daddr.copy_from_slice(&id[..16]);
        let mut saddr = [0u8; 16];
        saddr.copy_from_slice(&id[24..40]);
        Ok(Some(Aevent {
            key: SaKey {
                family: crate::nl::u16_at(id, 20),
                daddr,
                spi: u32_at(id, 16),
                proto: id[22],
                mark,
            },
            saddr,
            reqid: u32_at(id, 44),
            flags: u32_at(id, 40),
            counters,
        }))
    }
}

fn with_mark(b: Builder, sa: &SaView<'_>) -> Builder {
    let mark = sa.mark();
    if mark == Mark::default() {
        b
    } else {
        b.attr(attr::MARK, &mark.to_bytes())
    }
}

/// A `GETAE` request for the state `sa` names: the kernel answers with a
/// `NEWAE` holding its counters and thresholds.
pub fn get_ae(sa: &SaView<'_>) -> Vec<u8> {
    let b = Builder::new(msg::GETAE, NLM_F_REQUEST)
        .raw(&aevent_id(sa, ae::RVAL | ae::LVAL | ae::RTHR | ae::ETHR));
    with_mark(b, sa).finish()
}

/// Sets the event thresholds of the state `sa` names: an event when a
/// sequence number moved by `packets`, and when `jiffies` passed with a
/// change (0 leaves the timer as it is).
pub fn thresholds(sa: &SaView<'_>, packets: u32, jiffies: u32) -> Vec<u8> {
    let mut b = Builder::new(msg::NEWAE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE)
        .raw(&aevent_id(sa, 0))
        .attr(attr::REPLAY_THRESH, &packets.to_ne_bytes());
    if jiffies != 0 {
        b = b.attr(attr::ETIMER_THRESH, &jiffies.to_ne_bytes());
    }
    with_mark(b, sa).finish()
}

/// Why an outbound sequence number cannot be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqError {
    /// The record has no replay state.
    NoReplayState,
    /// The number does not fit: a 32-bit state past 2^32 - 1 (it has to
    /// be renegotiated; the kernel would refuse to send on it anyway).
    Exhausted(u64),
}

impl core::fmt::Display for SeqError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SeqError::NoReplayState => write!(f, "the state has no replay state"),
            SeqError::Exhausted(n) => {
                write!(f, "sequence number {n} does not fit a 32-bit state")
            }
        }
    }
}

impl std::error::Error for SeqError {}

/// A `NEWAE` that sets the outbound sequence number of the state `sa` to
/// `oseq`, keeping the rest of its replay state as `sa` reports it (its
/// inbound number and window, which the request replaces too). `sa` must
/// be fresh (a dump record or a `GETSA` answer): the kernel replaces the
/// whole replay state.
pub fn set_oseq(sa: &SaView<'_>, oseq: u64) -> Result<Vec<u8>, SeqError> {
    let b =
        Builder::new(msg::NEWAE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE).raw(&aevent_id(sa, 0));
    let b = if let Some(a) = sa.attrs.find(attr::REPLAY_ESN_VAL) {
        if a.data.len() < REPLAY_ESN_LEN {
            return Err(SeqError::NoReplayState);
        }
        let mut r = a.data.to_vec();
        r[4..8].copy_from_slice(&(oseq as u32).to_ne_bytes());
        r[12..16].copy_from_slice(&((oseq >> 32) as u32).to_ne_bytes());
        b.attr(attr::REPLAY_ESN_VAL, &r)
    } else if let Some(a) = sa.attrs.find(attr::REPLAY_VAL) {
        if a.data.len() < REPLAY_LEN {
            return Err(SeqError::NoReplayState);
        }
        let low = u32::try_from(oseq).map_err(|_| SeqError::Exhausted(oseq))?;
        let mut r = a.data[..REPLAY_LEN].to_vec();
        r[..4].copy_from_slice(&low.to_ne_bytes());
        b.attr(attr::REPLAY_VAL, &r)
    } else {
        return Err(SeqError::NoReplayState);
    };
    Ok(with_mark(b, sa).finish())
}

/// The last outbound sequence number seen of each state: what a master
/// carries to its slaves, and a new master jumps past.
#[derive(Debug, Clone, Default)]
pub struct OutboundSeqs {
    last: BTreeMap<SaKey, u64>,
}

impl OutboundSeqs {
    /// An empty table.
    pub fn new() -> OutboundSeqs {
        OutboundSeqs::default()
    }

    /// Records `oseq` for `key`; a number lower than one already seen is
    /// kept out (events of one state can be reordered with a dump).
    pub fn note(&mut self, key: SaKey, oseq: u64) {
        let e = self.last.entry(key).or_insert(oseq);
        *e = (*e).max(oseq);
    }

    /// Records what a state record (dump, add event) or a replay event
    /// says; forgets a deleted state. Whether it changed anything.
    pub fn handle_message(&mut self, m: &Msg<'_>) -> bool {
        match m.kind() {
            msg::NEWAE => match Aevent::parse(m) {
                Ok(Some(ev)) => {
                    self.note(ev.key, ev.counters.oseq);
                    true
                }
                _ => false,
            },
            msg::NEWSA | msg::UPDSA => match SaView::from_new(m) {
                Ok(sa) => match counters(&sa.attrs) {
                    Some(c) => {
                        self.note(sa.key(), c.oseq);
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            },
            msg::DELSA => match SaView::from_del(m) {
                Ok(sa) => self.last.remove(&sa.key()).is_some(),
                Err(_) => false,
            },
            _ => false,
        }
    }

    /// The last outbound number seen of `key`.
    pub fn last(&self, key: &SaKey) -> Option<u64> {
        self.last.get(key).copied()
    }

    /// How many states are tracked.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no state is tracked.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Every state and its number.
    pub fn iter(&self) -> impl Iterator<Item = (&SaKey, &u64)> {
        self.last.iter()
    }
}

/// Whether the state `sa` sends from one of `local` (an outbound state of
/// this gateway): the test [`takeover`] is usually given.
pub fn sends_from(sa: &SaView<'_>, local: &[IpAddr]) -> bool {
    sa.saddr().is_some_and(|a| local.contains(&a))
}

/// What [`takeover`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TakeoverStats {
    /// Outbound states moved forward.
    pub moved: usize,
    /// States left alone (not outbound, larval, no replay state).
    pub skipped: usize,
    /// 32-bit states the jump would overflow: left as they are (they need
    /// a new key; the peer will drop their packets).
    pub exhausted: usize,
}

/// Why a takeover stopped.
#[derive(Debug)]
pub enum TakeoverError {
    /// The kernel refused a request, or the socket failed.
    Request(crate::socket::RequestError),
    /// A dump record was malformed.
    Malformed(NlError),
}

impl core::fmt::Display for TakeoverError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TakeoverError::Request(e) => write!(f, "{e}"),
            TakeoverError::Malformed(e) => write!(f, "malformed record: {e}"),
        }
    }
}

impl std::error::Error for TakeoverError {}

/// Moves the outbound sequence number of every state of `sock`'s kernel
/// that `outbound` accepts to `margin` past the larger of its own and the
/// last one `carried` holds for it: the first packet the new master sends
/// on it is then one the peer has not seen, if the old master sent fewer
/// than `margin` packets after the last number carried.
pub fn takeover(
    sock: &mut XfrmSocket,
    carried: &OutboundSeqs,
    margin: u64,
    outbound: impl Fn(&SaView<'_>) -> bool,
) -> Result<TakeoverStats, TakeoverError> {
    let mut recs: Vec<Vec<u8>> = Vec::new();
    sock.dump(msg::GETSA, |m| recs.push(m.bytes().to_vec()))
        .map_err(TakeoverError::Request)?;
    let mut st = TakeoverStats::default();
    let mut result = Ok(());
    for rec in &recs {
        let m = Msg::new(rec).map_err(TakeoverError::Malformed)?;
        let sa = SaView::from_new(&m).map_err(TakeoverError::Malformed)?;
        let Some(c) = counters(&sa.attrs).filter(|_| sa.is_complete() && outbound(&sa)) else {
            st.skipped += 1;
            continue;
        };
        let base = c.oseq.max(carried.last(&sa.key()).unwrap_or(0));
        match set_oseq(&sa, base.saturating_add(margin)) {
            Ok(mut req) => {
                if let Err(e) = sock.request(&mut req) {
                    result = Err(TakeoverError::Request(e));
                    break;
                }
                st.moved += 1;
            }
            Err(SeqError::Exhausted(n)) => {
                log::warn!(
                    "takeover: SA spi 0x{:08x}: sequence number {n} past 32 bits, left as is",
                    sa.spi()
                );
                st.exhausted += 1;
            }
            Err(SeqError::NoReplayState) => st.skipped += 1,
        }
    }
    for r in &mut recs {
        zeroize::Zeroize::zeroize(r);
    }
    result.map(|()| st)
}

/// Asks for replay events of every complete state in `sock`'s kernel at
/// `packets` and `jiffies` thresholds; how many states were set.
pub fn set_all_thresholds(
    sock: &mut XfrmSocket,
    packets: u32,
    jiffies: u32,
) -> Result<usize, TakeoverError> {
    let mut recs: Vec<Vec<u8>> = Vec::new();
    sock.dump(msg::GETSA, |m| recs.push(m.bytes().to_vec()))
        .map_err(TakeoverError::Request)?;
    let mut n = 0;
    for rec in &recs {
        let m = Msg::new(rec).map_err(TakeoverError::Malformed)?;
        let sa = SaView::from_new(&m).map_err(TakeoverError::Malformed)?;
        if sa.is_complete() {
            sock.request(&mut thresholds(&sa, packets, jiffies))
                .map_err(TakeoverError::Request)?;
            n += 1;
        }
    }
    for r in &mut recs {
        zeroize::Zeroize::zeroize(r);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nl::HDR_LEN;
    use crate::xfrm::testutil::newsa;
    use crate::xfrm::IPPROTO_ESP;

    fn with_replay(spi: u32, replay: (u16, &[u8])) -> Vec<u8> {
        let base = newsa(msg::NEWSA, spi);
        let m = Msg::new(&base).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        let mut b = Builder::new(msg::NEWSA, 0).raw(sa.info);
        for a in sa.attrs.clone().flatten() {
            b = b.attr(a.kind, a.data);
        }
        b.attr(replay.0, replay.1).finish()
    }

    fn legacy(oseq: u32, seq: u32, bitmap: u32) -> Vec<u8> {
        [oseq, seq, bitmap]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect()
    }

    fn esn(oseq: u64, seq: u64, window: u32) -> Vec<u8> {
        let bmp_len = window / 32;
        let mut v: Vec<u8> = [
            bmp_len,
            oseq as u32,
            seq as u32,
            (oseq >> 32) as u32,
            (seq >> 32) as u32,
            window,
        ]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
        v.extend(std::iter::repeat_n(0xa5, bmp_len as usize * 4));
        v
    }

    #[test]
    fn reads_both_replay_forms() {
        let r = with_replay(1, (attr::REPLAY_VAL, &legacy(50, 7, 0xff)));
        let m = Msg::new(&r).unwrap();
        let c = counters(&SaView::from_new(&m).unwrap().attrs).unwrap();
        assert_eq!((c.oseq, c.seq, c.esn), (50, 7, false));
        let r = with_replay(2, (attr::REPLAY_ESN_VAL, &esn(0x1_0000_0005, 3, 128)));
        let m = Msg::new(&r).unwrap();
        let c = counters(&SaView::from_new(&m).unwrap().attrs).unwrap();
        assert_eq!((c.oseq, c.seq, c.esn), (0x1_0000_0005, 3, true));
        // Too short is none, not a panic.
        let r = with_replay(3, (attr::REPLAY_VAL, &[0; 8]));
        let m = Msg::new(&r).unwrap();
        assert_eq!(counters(&SaView::from_new(&m).unwrap().attrs), None);
    }

    #[test]
    fn sets_oseq_keeping_the_inbound_state() {
        let r = with_replay(0x42, (attr::REPLAY_VAL, &legacy(50, 7, 0xff)));
        let m = Msg::new(&r).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        let req = set_oseq(&sa, 1050).unwrap();
        let q = Msg::new(&req).unwrap();
        assert_eq!(q.kind(), msg::NEWAE);
        assert_eq!(q.flags(), NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE);
        let (id, attrs) = q.split(AEVENT_ID_LEN).unwrap();
        assert_eq!(&id[..4], &[192, 0, 2, 2]);
        assert_eq!(&id[16..20], &0x42u32.to_be_bytes());
        assert_eq!(id[22], IPPROTO_ESP);
        assert_eq!(&id[24..28], &[192, 0, 2, 1]);
        assert_eq!(u32_at(id, 44), 7);
        assert_eq!(
            attrs.find(attr::REPLAY_VAL).unwrap().data,
            &legacy(1050, 7, 0xff)[..]
        );
        assert_eq!(
            attrs.find(attr::MARK).unwrap().data,
            &Mark { v: 5, m: 0xff }.to_bytes()
        );
        assert_eq!(
            set_oseq(&sa, 1 << 32).unwrap_err(),
            SeqError::Exhausted(1 << 32)
        );
    }

    #[test]
    fn sets_an_esn_oseq_across_the_32_bit_boundary() {
        let before = esn(0xffff_fff0, 9, 128);
        let r = with_replay(0x43, (attr::REPLAY_ESN_VAL, &before));
        let m = Msg::new(&r).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        let req = set_oseq(&sa, 0xffff_fff0 + 0x100).unwrap();
        let q = Msg::new(&req).unwrap();
        let (_, attrs) = q.split(AEVENT_ID_LEN).unwrap();
        let d = attrs.find(attr::REPLAY_ESN_VAL).unwrap().data;
        assert_eq!(d.len(), before.len(), "the bitmap is kept whole");
        assert_eq!(d, &esn(0x1_0000_00f0, 9, 128)[..]);
        assert!(attrs.find(attr::REPLAY_VAL).is_none());
    }

    #[test]
    fn no_replay_state_is_an_error() {
        let r = newsa(msg::NEWSA, 1);
        let m = Msg::new(&r).unwrap();
        assert_eq!(
            set_oseq(&SaView::from_new(&m).unwrap(), 5).unwrap_err(),
            SeqError::NoReplayState
        );
    }

    /// A `NEWAE` event as `build_aevent` lays it out.
    fn event(spi: u32, replay: (u16, &[u8]), flags: u32) -> Vec<u8> {
        let r = newsa(msg::NEWSA, spi);
        let m = Msg::new(&r).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        Builder::new(msg::NEWAE, 0)
            .raw(&aevent_id(&sa, flags))
            .attr(replay.0, replay.1)
            .attr(attr::LTIME_VAL, &[0; 32])
            .attr(attr::REPLAY_THRESH, &64u32.to_ne_bytes())
            .attr(attr::MARK, &Mark { v: 5, m: 0xff }.to_bytes())
            .finish()
    }

    #[test]
    fn events_are_read_and_tracked_monotonically() {
        let ev = event(0x42, (attr::REPLAY_VAL, &legacy(128, 0, 0)), ae::CR);
        let m = Msg::new(&ev).unwrap();
        let a = Aevent::parse(&m).unwrap().unwrap();
        let rec = newsa(msg::NEWSA, 0x42);
        let key = SaView::from_new(&Msg::new(&rec).unwrap()).unwrap().key();
        assert_eq!(a.key, key, "the event names the state by its identity");
        assert_eq!((a.flags, a.reqid, a.counters.oseq), (ae::CR, 7, 128));
        let mut t = OutboundSeqs::new();
        assert!(t.handle_message(&m));
        let older = event(0x42, (attr::REPLAY_VAL, &legacy(64, 0, 0)), ae::CE);
        t.handle_message(&Msg::new(&older).unwrap());
        assert_eq!(t.last(&key), Some(128), "an older number does not win");
        let e = event(0x42, (attr::REPLAY_ESN_VAL, &esn(1 << 33, 0, 64)), ae::CR);
        t.handle_message(&Msg::new(&e).unwrap());
        assert_eq!(t.last(&key), Some(1 << 33));
        // A delete forgets it.
        let del = crate::xfrm::testutil::delsa(0x42);
        assert!(t.handle_message(&Msg::new(&del).unwrap()));
        assert!(t.is_empty());
        // Other messages are not replay events; a short one is an error.
        assert_eq!(Aevent::parse(&Msg::new(&rec).unwrap()).unwrap(), None);
        let short = Builder::new(msg::NEWAE, 0).raw(&[0; 20]).finish();
        assert!(Aevent::parse(&Msg::new(&short).unwrap()).is_err());
        let bare = Builder::new(msg::NEWAE, 0)
            .raw(&[0; AEVENT_ID_LEN])
            .finish();
        assert!(Aevent::parse(&Msg::new(&bare).unwrap()).is_err());
    }

    #[test]
    fn get_and_threshold_requests() {
        let rec = newsa(msg::NEWSA, 0x42);
        let m = Msg::new(&rec).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        let g = get_ae(&sa);
        let q = Msg::new(&g).unwrap();
        assert_eq!((q.kind(), q.flags()), (msg::GETAE, NLM_F_REQUEST));
        assert_eq!(q.payload().len(), AEVENT_ID_LEN + 12, "id and mark");
        let t = thresholds(&sa, 64, 250);
        let q = Msg::new(&t).unwrap();
        assert_eq!(q.kind(), msg::NEWAE);
        assert_ne!(q.flags() & NLM_F_REPLACE, 0);
        let (_, attrs) = q.split(AEVENT_ID_LEN).unwrap();
        assert_eq!(attrs.find(attr::REPLAY_THRESH).unwrap().u32(), Some(64));
        assert_eq!(attrs.find(attr::ETIMER_THRESH).unwrap().u32(), Some(250));
        let q2 = thresholds(&sa, 8, 0);
        let (_, attrs) = Msg::new(&q2).unwrap().split(AEVENT_ID_LEN).unwrap();
        assert!(attrs.find(attr::ETIMER_THRESH).is_none());
        // Header, id, two u32 attributes, the mark.
        assert_eq!(
            Msg::new(&t).unwrap().bytes().len(),
            HDR_LEN + AEVENT_ID_LEN + 8 + 8 + 12
        );
    }

    #[test]
    fn sends_from_tells_outbound() {
        let rec = newsa(msg::NEWSA, 0x42);
        let m = Msg::new(&rec).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        assert!(sends_from(&sa, &["192.0.2.1".parse().unwrap()]));
        assert!(!sends_from(&sa, &["192.0.2.2".parse().unwrap()]));
    }
}
