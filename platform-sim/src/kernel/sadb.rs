//! One SADB entry as the simulated kernel keeps it, and its sysctl dump
//! record (reference §13.3).
//!
//! The entry keeps the extensions it was created from (those the kernel
//! exports) byte for byte, so a dump record re-creates the request; the
//! usage counters (LIFETIME_CURRENT, X_LIFETIME_LASTUSE, X_REPLAY,
//! X_COUNTER) are the kernel's own and differ between kernels.

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{ExtRepr, Extensions, LifetimeExt, Msg, RdomainExt, Repr, SaKey};

use sasyncd_core::time::Instant;

use crate::pfmsg;

/// Extensions an entry keeps from the request that created it (the SA
/// extension and the kernel-owned counters are kept separately).
const STORED: ExtSet = ADD_ALLOWED.minus(ExtSet::of(&[
    SADB_EXT_SA,
    SADB_EXT_LIFETIME_CURRENT,
    SADB_X_EXT_LIFETIME_LASTUSE,
    SADB_X_EXT_COUNTER,
    SADB_X_EXT_REPLAY,
]));

/// The order in which a dump record carries the stored extensions, as
/// OpenBSD's `pfkeyv2_get()` exports them (sys/net/pfkeyv2.c rev. 1.272):
/// the lifetimes, then LASTUSE (kernel-owned), the addresses, identities,
/// keys and flow, then the group (X_SA2, X_DST2, X_SATYPE2), X_UDPENCAP,
/// X_REPLAY and X_MTU, then X_RDOMAIN, X_TAG, X_TAP, X_IFACE, and last
/// X_COUNTER.
const RECORD_ORDER: [u16; 12] = [
    SADB_EXT_LIFETIME_SOFT,
    SADB_EXT_LIFETIME_HARD,
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_EXT_IDENTITY_SRC,
    SADB_EXT_IDENTITY_DST,
    SADB_EXT_KEY_AUTH,
    SADB_EXT_KEY_ENCRYPT,
    SADB_X_EXT_FLOW_TYPE,
    SADB_X_EXT_PROTOCOL,
    SADB_X_EXT_SRC_FLOW,
    SADB_X_EXT_SRC_MASK,
];
const RECORD_ORDER_2: [u16; 2] = [SADB_X_EXT_DST_FLOW, SADB_X_EXT_DST_MASK];
const RECORD_ORDER_3: [u16; 1] = [SADB_X_EXT_UDPENCAP];
const RECORD_TAIL: [u16; 4] = [
    SADB_X_EXT_RDOMAIN,
    SADB_X_EXT_TAG,
    SADB_X_EXT_TAP,
    SADB_X_EXT_IFACE,
];

/// The extensions in `by_type` (indexed by type) in record order, and
/// where the lifetimes, the flow and X_UDPENCAP end.
fn pack(by_type: &[&[u8]; 64]) -> (Vec<u8>, [usize; 3]) {
    let mut out = Vec::with_capacity(by_type.iter().map(|e| e.len()).sum());
    let mut put = |types: &[u16]| {
        for &t in types {
            out.extend_from_slice(by_type[usize::from(t) % 64]);
        }
        out.len()
    };
    let c0 = put(&RECORD_ORDER[..2]);
    put(&RECORD_ORDER[2..]);
    let c1 = put(&RECORD_ORDER_2);
    let c2 = put(&RECORD_ORDER_3);
    put(&RECORD_TAIL);
    (out, [c0, c1, c2])
}

/// `ext` with its type field set to `t` (PROXY stored as DST, SA as SA2).
pub(crate) fn retyped(ext: &[u8], t: u16) -> Vec<u8> {
    let mut v = ext.to_vec();
    if let Some(b) = v.get_mut(2..4) {
        b.copy_from_slice(&t.to_ne_bytes());
    }
    v
}

/// One security association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SaEntry {
    pub satype: u8,
    /// The SA extension as written (its state byte is the entry's state).
    pub sa: Vec<u8>,
    /// The stored extensions back to back in record order, so that a dump
    /// record is a few copies (a million SAs are dumped in one go).
    stored: Vec<u8>,
    /// Where the kernel's own extensions go between them: the end of the
    /// lifetimes (LASTUSE follows), of the flow (the group follows) and of
    /// X_UDPENCAP (REPLAY and MTU follow).
    cuts: [usize; 3],
    /// LIFETIME_CURRENT: allocations, bytes, add time (s), use time (s).
    pub cur_alloc: u32,
    pub cur_bytes: u64,
    pub addtime: u64,
    pub usetime: u64,
    /// Replay counter (X_REPLAY).
    pub replay: u64,
    /// Packet statistics (X_COUNTER).
    pub counter: [u64; 8],
    /// The SA the outbound path applies next (X_GRPSPIS made this SA the
    /// first of a bundle); exported as X_SA2, X_DST2, X_SATYPE2.
    pub onext: Option<SaKey>,
    /// The SA whose `onext` this one is.
    pub inext: Option<SaKey>,
    /// Path MTU; exported as X_MTU when non-zero.
    pub mtu: u32,
    /// When the entry got its current identity and keys (ADD, or the
    /// UPDATE that made a larval SA mature), and when its synchronised
    /// content last changed (for the failover oracle).
    pub born: Instant,
    pub changed: Instant,
}

impl SaEntry {
    /// An entry from a validated GETSPI (larval), ADD or UPDATE.
    pub fn from_request(msg: &Msg<'_>, sa: Vec<u8>, now_secs: u64, now: Instant) -> SaEntry {
        let mut by_type = pfmsg::exts_by_type(msg.extensions(), STORED);
        // The kernel keeps the domains; it exports X_RDOMAIN only when the
        // SA switches domains (dom1 != dom2).
        let rd = usize::from(SADB_X_EXT_RDOMAIN);
        if Extensions::new(by_type[rd])
            .next()
            .and_then(Result::ok)
            .and_then(|e| RdomainExt::new(e).ok())
            .is_some_and(|r| r.dom1() == r.dom2())
        {
            by_type[rd] = &[];
        }
        let (stored, cuts) = pack(&by_type);
        let (cur_alloc, cur_bytes) = msg
            .find(SADB_EXT_LIFETIME_CURRENT)
            .and_then(|e| LifetimeExt::new(e).ok())
            .map(|l| (l.allocations(), l.bytes()))
            .unwrap_or((0, 0));
        SaEntry {
            satype: msg.satype(),
            sa,
            stored,
            cuts,
            cur_alloc,
            cur_bytes,
            addtime: now_secs,
            usetime: 0,
            replay: 0,
            counter: [0; 8],
            onext: None,
            inext: None,
            mtu: 0,
            born: now,
            changed: now,
        }
    }

    /// Replaces (or adds) the stored extension `ext` of its type (an
    /// UPDATE's new lifetimes).
    pub fn set_stored(&mut self, ext: &[u8]) {
        let mut by_type = pfmsg::exts_by_type(Extensions::new(&self.stored), STORED);
        if let Some(e) = Extensions::new(ext).next().and_then(Result::ok) {
            if STORED.contains(e.ext_type()) {
                by_type[usize::from(e.ext_type()) % 64] = e.bytes();
            }
        }
        let (stored, cuts) = pack(&by_type);
        self.stored = stored;
        self.cuts = cuts;
    }

    /// The SA state (`SADB_SASTATE_*`).
    pub fn state(&self) -> u8 {
        self.sa.get(9).copied().unwrap_or(0)
    }

    /// The entry as a message of `msg_type` (DUMP for the sysctl dump, GET
    /// for a GET reply), with every extension the kernel exports; `next`
    /// is the entry of [`onext`](Self::onext), if grouped.
    pub fn record(&self, msg_type: u8, next: Option<&SaEntry>) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.record_into(msg_type, next, &mut out);
        out
    }

    /// The stored extension of type `t`, if any.
    pub fn stored_ext(&self, t: u16) -> Option<&[u8]> {
        Extensions::new(&self.stored)
            .map_while(Result::ok)
            .find(|e| e.ext_type() == t)
            .map(|e| e.bytes())
    }

    /// [`record`](Self::record) appended to `out`: a dump of a million SAs
    /// is written straight into one buffer.
    pub fn record_into(&self, msg_type: u8, next: Option<&SaEntry>, out: &mut Vec<u8>) {
        let [c0, c1, c2] = self.cuts;
        let (sa2, dst2) = match next {
            Some(n) => (
                retyped(&n.sa, SADB_X_EXT_SA2),
                n.stored_ext(SADB_EXT_ADDRESS_DST)
                    .map(|d| retyped(d, SADB_X_EXT_DST2))
                    .unwrap_or_default(),
            ),
            None => Default::default(),
        };
        let mut exts = [ExtRepr::Raw(&[]); 13];
        let mut n = 0;
        let mut push = |e| {
            // An empty stretch of stored extensions is nothing to copy.
            if e != ExtRepr::Raw(&[]) {
                exts[n] = e;
                n += 1;
            }
        };
        push(ExtRepr::Raw(&self.sa));
        push(ExtRepr::Lifetime {
            ext_type: SADB_EXT_LIFETIME_CURRENT,
            allocations: self.cur_alloc,
            bytes: self.cur_bytes,
            addtime: self.addtime,
            usetime: self.usetime,
        });
        push(ExtRepr::Raw(&self.stored[..c0]));
        if self.usetime != 0 {
            push(ExtRepr::Lifetime {
                ext_type: SADB_X_EXT_LIFETIME_LASTUSE,
                allocations: 0,
                bytes: 0,
                addtime: 0,
                usetime: self.usetime,
            });
        }
        push(ExtRepr::Raw(&self.stored[c0..c1]));
        if let Some(nx) = next {
            push(ExtRepr::Raw(&sa2));
            push(ExtRepr::Raw(&dst2));
            push(ExtRepr::protocol(SADB_X_EXT_SATYPE2, nx.satype, 0));
        }
        push(ExtRepr::Raw(&self.stored[c1..c2]));
        push(ExtRepr::Replay { count: self.replay });
        if self.mtu != 0 {
            push(ExtRepr::Mtu { mtu: self.mtu });
        }
        push(ExtRepr::Raw(&self.stored[c2..]));
        push(ExtRepr::Counter {
            counters: self.counter,
        });
        pfmsg::emit_into(out, &Repr::new(msg_type, self.satype, 0, 0, &exts[..n]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored extension without a place in the record would be kept and
    /// never dumped.
    #[test]
    fn every_stored_type_has_one_place_in_the_record() {
        let order: Vec<u16> = [
            &RECORD_ORDER[..],
            &RECORD_ORDER_2,
            &RECORD_ORDER_3,
            &RECORD_TAIL,
        ]
        .concat();
        for t in 0..64u16 {
            let places = order.iter().filter(|&&o| o == t).count();
            assert_eq!(places, usize::from(STORED.contains(t)), "type {t}");
        }
    }
}
