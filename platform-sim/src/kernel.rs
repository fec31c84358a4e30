//! One node's kernel as sasyncd sees it through PF_KEY: the SADB and the
//! SPD with OpenBSD semantics (reference §13.2), promiscuous copies with
//! bounded listener queues (D-14), and sysctl dumps (§13.3).
//!
//! The rules are OpenBSD's, read from sys/net/pfkeyv2.c rev. 1.272
//! (`pfkeyv2_dosend()`, `pfkeyv2_get()`), pfkeyv2_parsemessage.c rev. 1.64
//! (the allowed/required tables in and out) and pfkeyv2_convert.c rev.
//! 1.84 (`export_flow()`).
//!
//! Simulated: request validation (header, pid, per-type allowed and
//! required extensions, SA states); promiscuous copies of every valid
//! request (made before the request is carried out, so a refused DELETE is
//! still copied); X_RDOMAIN naming a missing routing table (`EINVAL`);
//! GETSPI; ADD (`EEXIST`, MATURE only, all-or-none flow extensions,
//! X_UDPENCAP on ESP only); UPDATE completing a larval SA or changing a
//! mature one (no keys or identities; ADDRESS_SRC/ADDRESS_PROXY move it);
//! DELETE/GET (`ESRCH`); FLUSH; X_ADDFLOW/X_DELFLOW (direction and type
//! checks, static flows only changed by static requests); X_GRPSPIS
//! (bundles, cycles refused) and the outbound path through a bundle
//! ([`Kernel::outbound_path`]); the reply check after a successful
//! request (an extension its answer may not carry: `EPERM`, after the
//! change was made); the dump formats in OpenBSD's export order with
//! kernel-owned usage counters that differ between kernels (SPD records
//! without the static flag, X_RDOMAIN only when the SA switches domains);
//! kernel-raised expirations (silent to promiscuous listeners); path-MTU
//! updates (X_MTU in dumps).
//!
//! Not simulated: the kernel's unicast and broadcast replies (the result of
//! [`Kernel::write`] says what the reply would: success, an SPI, a GET
//! record, or the errno), ACQUIRE/REGISTER machinery, soft/hard lifetime
//! timers (use [`Kernel::expire_sa`]), packet processing beyond the
//! outbound path (see [`Kernel::traffic`]), socket routing domains (every
//! request is taken as written in domain 0's socket).

mod promisc;
#[cfg(test)]
mod rules_tests;
mod sadb;
mod spd;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::net::IpAddr;

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{
    build_delete, build_delflow, canonical_digest_input, dump_to_add, filter, flow_key, records,
    sa_key, set_pid_seq, spd_dump_to_addflow, AddressExt, FilterPolicy, FlowKey, LifetimeExt, Msg,
    ProtocolExt, RdomainExt, SaExt, SaKey, Verdict,
};
use sasyncd_core::time::Instant;

use crate::errno::Errno;
use crate::pfmsg;
use crate::rng::Rng;
use promisc::Listeners;
use sadb::SaEntry;
use spd::FlowEntry;

pub use promisc::wrap as promisc_wrap;

/// The pid the operator's tools (`ipsecctl`) write with in the manual-edit API.
pub const OPERATOR_PID: u32 = 77;

/// The keys the kernel takes out of an ADD or UPDATE before answering it.
const KEYS: ExtSet = ExtSet::of(&[SADB_EXT_KEY_AUTH, SADB_EXT_KEY_ENCRYPT]);

/// The checks ADD and UPDATE make first: either all flow extensions or
/// none, and X_UDPENCAP only on ESP (`EINVAL`).
fn check_flow_and_encap(msg: &Msg<'_>) -> Result<(), Errno> {
    let n = msg
        .extensions()
        .map_while(Result::ok)
        .filter(|e| X_FLOW_SET.contains(e.ext_type()))
        .count();
    if n != 0 && n != 6 {
        return Err(Errno::EINVAL);
    }
    if msg.find(SADB_X_EXT_UDPENCAP).is_some() && msg.satype() != SADB_SATYPE_ESP {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// What a successful write produced (the content of the kernel's reply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOk {
    /// GETSPI: the SPI reserved.
    pub spi: Option<u32>,
    /// GET: the SA, in dump-record layout with type GET.
    pub record: Option<Vec<u8>>,
}

/// Counters for oracles and debugging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Requests that passed validation.
    pub valid_writes: u64,
    /// Writes refused, by errno (validation or operation).
    pub refused: BTreeMap<Errno, u64>,
}

/// The synchronised content of a kernel: mature SAs and flows in canonical
/// form (see [`canonical_digest_input`]), keyed by identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Canonical {
    /// Mature SAs.
    pub sas: BTreeMap<SaKey, Vec<u8>>,
    /// Flows.
    pub flows: BTreeMap<FlowKey, Vec<u8>>,
}

impl Canonical {
    /// Human-readable differences from `other` (empty when equal).
    pub fn diff(&self, other: &Canonical) -> Vec<String> {
        let mut out = Vec::new();
        diff_maps(&self.sas, &other.sas, "SA", &mut out);
        diff_maps(&self.flows, &other.flows, "flow", &mut out);
        out
    }
}

fn diff_maps<K: Ord + std::fmt::Debug>(
    a: &BTreeMap<K, Vec<u8>>,
    b: &BTreeMap<K, Vec<u8>>,
    what: &str,
    out: &mut Vec<String>,
) {
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("{what} {k:?} only on the left")),
            Some(w) if w != v => out.push(format!("{what} {k:?} differs")),
            Some(_) => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(k)) {
        out.push(format!("{what} {k:?} only on the right"));
    }
}

/// What a kernel held since a point in time (see [`Kernel::held_since`]).
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// Entries unchanged since then, in canonical form.
    pub content: Canonical,
    /// SAs that existed then but whose content changed since.
    pub present_sas: Vec<SaKey>,
}

impl Held {
    /// What `other` lacks of this (empty when it holds everything).
    pub fn missing_from(&self, other: &Canonical) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.content.sas {
            match other.sas.get(k) {
                None => out.push(format!("SA {k:?} missing")),
                Some(w) if w != v => out.push(format!("SA {k:?} differs")),
                Some(_) => {}
            }
        }
        for k in self
            .present_sas
            .iter()
            .filter(|k| !other.sas.contains_key(k))
        {
            out.push(format!("SA {k:?} missing"));
        }
        for (k, v) in &self.content.flows {
            match other.flows.get(k) {
                None => out.push(format!("flow {k:?} missing")),
                Some(w) if w != v => out.push(format!("flow {k:?} differs")),
                Some(_) => {}
            }
        }
        out
    }
}

/// A filter for [`Kernel::canonical`] keeping what a master running the
/// core's filter with `policy` and `peers` forwards to its slaves.
pub fn synced_by(policy: FilterPolicy, peers: Vec<IpAddr>) -> impl Fn(&Msg<'_>) -> bool {
    move |rec| {
        let mut buf = [0u8; PFKEY_MSG_MAXSZ];
        let n = match rec.msg_type() {
            SADB_X_SPDDUMP => spd_dump_to_addflow(rec.bytes(), &mut buf),
            _ => dump_to_add(rec.bytes(), &mut buf),
        };
        let Ok(n) = n else { return false };
        Msg::parse(&buf[..n]).is_ok_and(|m| filter(&m, &policy, &peers) == Verdict::Sync)
    }
}

/// One node's simulated kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    sadb: BTreeMap<SaKey, SaEntry>,
    spd: BTreeMap<FlowKey, FlowEntry>,
    listeners: Listeners,
    rng: Rng,
    now: Instant,
    /// Seconds added to simulated time for LIFETIME_CURRENT add times, so
    /// that kernels disagree about them as real ones do.
    clock_offset: u64,
    stats: KernelStats,
    /// Routing tables that exist (X_RDOMAIN must name existing ones).
    rtables: std::collections::BTreeSet<u16>,
}

fn rdomain_of(msg: &Msg<'_>) -> u16 {
    msg.find(SADB_X_EXT_RDOMAIN)
        .and_then(|e| RdomainExt::new(e).ok())
        .map_or(0, |r| r.dom1())
}

fn addr_of(msg: &Msg<'_>, t: u16) -> Option<IpAddr> {
    Some(AddressExt::new(msg.find(t)?).ok()?.sockaddr().ok()?.ip)
}

impl Kernel {
    /// An empty kernel drawing SPIs, clock offset and traffic from `rng`.
    pub fn new(mut rng: Rng) -> Kernel {
        let clock_offset = 1_700_000_000 + rng.below(100_000);
        Kernel {
            sadb: BTreeMap::new(),
            spd: BTreeMap::new(),
            listeners: Listeners {
                by_pid: BTreeMap::new(),
                rcvbuf: PFKEY_SOCKBUF,
            },
            rng,
            now: Instant::ZERO,
            clock_offset,
            stats: KernelStats::default(),
            rtables: [0].into_iter().collect(),
        }
    }

    /// Advances the kernel's clock (used for LIFETIME_CURRENT times).
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    fn now_secs(&self) -> u64 {
        self.clock_offset + self.now.as_millis() / 1000
    }

    /// A process with pid `writer_pid` writes `msg` to its PF_KEY socket.
    pub fn write(&mut self, msg: &[u8], writer_pid: u32) -> Result<WriteOk, Errno> {
        let r = self.write_inner(msg, writer_pid);
        if let Err(e) = r {
            *self.stats.refused.entry(e).or_default() += 1;
        }
        r
    }

    fn write_inner(&mut self, buf: &[u8], writer_pid: u32) -> Result<WriteOk, Errno> {
        let msg = validate::validate(buf, writer_pid)?;
        self.stats.valid_writes += 1;
        self.listeners.copy(buf, writer_pid);
        let t = msg.msg_type();
        if t == SADB_X_PROMISC {
            if buf.len() == HDR_LEN {
                self.set_promisc(writer_pid, msg.satype() != 0);
            }
            return Ok(WriteOk::default());
        }
        // X_RDOMAIN names the SA's domain and the one it switches to; both
        // routing tables must exist.
        if let Some(r) = msg
            .find(SADB_X_EXT_RDOMAIN)
            .and_then(|e| RdomainExt::new(e).ok())
        {
            if !self.rtables.contains(&r.dom1()) || !self.rtables.contains(&r.dom2()) {
                return Err(Errno::EINVAL);
            }
        }
        // What the answer carries: the request, minus what the kernel
        // takes out (keys after ADD/UPDATE, SPIRANGE after GETSPI, which
        // gains the SA), or a GET's record.
        let mut seen = validate::ext_set(&msg);
        let ok = match t {
            SADB_GETSPI => {
                let r = self.getspi(&msg)?;
                seen = seen
                    .minus(ExtSet::of(&[SADB_EXT_SPIRANGE]))
                    .with(SADB_EXT_SA);
                r
            }
            SADB_UPDATE => {
                self.update(&msg)?;
                seen = seen.minus(KEYS);
                WriteOk::default()
            }
            SADB_ADD => {
                self.add(&msg)?;
                seen = seen.minus(KEYS);
                WriteOk::default()
            }
            SADB_DELETE => {
                let key = sa_key(&msg).ok_or(Errno::EINVAL)?;
                if !self.sadb.contains_key(&key) {
                    return Err(Errno::ESRCH);
                }
                self.remove_sa(&key);
                WriteOk::default()
            }
            SADB_GET => {
                let key = sa_key(&msg).ok_or(Errno::EINVAL)?;
                let e = self.sadb.get(&key).ok_or(Errno::ESRCH)?;
                let rec = e.record(SADB_GET, self.next_of(e));
                seen = Msg::parse(&rec).map_or(seen, |m| validate::ext_set(&m));
                WriteOk {
                    spi: None,
                    record: Some(rec),
                }
            }
            SADB_FLUSH => {
                match msg.satype() {
                    SADB_SATYPE_UNSPEC => {
                        self.sadb.clear();
                        self.spd.clear();
                    }
                    t if validate::satype_supported(t) => {
                        self.sadb.retain(|_, e| e.satype != t);
                        self.relink();
                    }
                    _ => return Err(Errno::EINVAL),
                }
                WriteOk::default()
            }
            SADB_X_ADDFLOW | SADB_X_DELFLOW => {
                self.flow(&msg)?;
                WriteOk::default()
            }
            SADB_X_GRPSPIS => {
                self.grpspis(&msg)?;
                WriteOk::default()
            }
            // No ACQUIRE is pending in the simulation.
            SADB_X_ASKPOLICY => return Err(Errno::ESRCH),
            SADB_REGISTER => {
                seen = ExtSet::of(&[
                    SADB_EXT_SUPPORTED_AUTH,
                    SADB_EXT_SUPPORTED_ENCRYPT,
                    SADB_X_EXT_SUPPORTED_COMP,
                ]);
                WriteOk::default()
            }
            // The records of a DUMP are the answer; nothing is checked.
            SADB_DUMP => return Ok(WriteOk::default()),
            // EXPIRE and ACQUIRE written by a process, X_SPDDUMP: accepted
            // (and copied), nothing else modelled.
            _ => WriteOk::default(),
        };
        validate::check_reply(t, seen)?;
        Ok(ok)
    }

    /// The entry `e` is grouped with, if any.
    fn next_of(&self, e: &SaEntry) -> Option<&SaEntry> {
        e.onext.and_then(|k| self.sadb.get(&k))
    }

    /// ADD: a new mature SA.
    fn add(&mut self, msg: &Msg<'_>) -> Result<(), Errno> {
        check_flow_and_encap(msg)?;
        let key = sa_key(msg).ok_or(Errno::EINVAL)?;
        if self.sadb.contains_key(&key) {
            return Err(Errno::EEXIST);
        }
        let sa = msg.find(SADB_EXT_SA).ok_or(Errno::EINVAL)?;
        if SaExt::new(sa).map_err(|_| Errno::EINVAL)?.state() != SADB_SASTATE_MATURE {
            return Err(Errno::EINVAL);
        }
        let entry = SaEntry::from_request(msg, sa.bytes().to_vec(), self.now_secs(), self.now);
        self.sadb.insert(key, entry);
        Ok(())
    }

    /// Removes an SA and the links of the bundle it was part of.
    fn remove_sa(&mut self, key: &SaKey) -> Option<SaEntry> {
        let e = self.sadb.remove(key)?;
        if let Some(p) = e.inext.and_then(|k| self.sadb.get_mut(&k)) {
            p.onext = None;
        }
        if let Some(n) = e.onext.and_then(|k| self.sadb.get_mut(&k)) {
            n.inext = None;
        }
        Some(e)
    }

    /// Drops links to SAs that are gone (after a FLUSH of one type).
    fn relink(&mut self) {
        let keys: std::collections::BTreeSet<SaKey> = self.sadb.keys().copied().collect();
        for e in self.sadb.values_mut() {
            e.onext = e.onext.filter(|k| keys.contains(k));
            e.inext = e.inext.filter(|k| keys.contains(k));
        }
    }

    /// Routing tables X_RDOMAIN may name (table 0 always exists).
    pub fn add_rtable(&mut self, id: u16) {
        self.rtables.insert(id);
    }

    /// The transforms the outbound path applies to a packet sent on the SA
    /// `key`: the SA, then each grouped SA in turn (X_GRPSPIS), as
    /// (SA type, SPI, destination). Empty when there is no such SA.
    pub fn outbound_path(&self, key: &SaKey) -> Vec<(u8, u32, IpAddr)> {
        let mut out = Vec::new();
        let mut at = self.sadb.get(key).map(|e| (*key, e));
        while let Some((k, e)) = at {
            out.push((k.satype, k.spi, k.dst));
            if out.len() > self.sadb.len() {
                break;
            }
            at = e.onext.and_then(|n| self.sadb.get(&n).map(|ne| (n, ne)));
        }
        out
    }

    /// The bundles: every SA grouped with a next one, and that next SA.
    pub fn bundles(&self) -> Vec<(SaKey, SaKey)> {
        self.sadb
            .iter()
            .filter_map(|(k, e)| e.onext.map(|n| (*k, n)))
            .collect()
    }

    fn getspi(&mut self, msg: &Msg<'_>) -> Result<WriteOk, Errno> {
        let dst = addr_of(msg, SADB_EXT_ADDRESS_DST).ok_or(Errno::EINVAL)?;
        let range = msg.find(SADB_EXT_SPIRANGE).ok_or(Errno::EINVAL)?;
        let body = range.body();
        let rd = |o: usize| {
            body.get(o..o + 4)
                .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (min, max) = (rd(0).max(256), rd(4));
        if min > max {
            return Err(Errno::EINVAL);
        }
        let mut key = SaKey {
            satype: msg.satype(),
            spi: min,
            dst,
            rdomain: rdomain_of(msg),
        };
        let mut found = false;
        for _ in 0..64 {
            key.spi = self.rng.range(u64::from(min)..u64::from(max) + 1) as u32;
            if !self.sadb.contains_key(&key) {
                found = true;
                break;
            }
        }
        if !found {
            return Err(Errno::EEXIST);
        }
        let sa = pfmsg::exts_bytes(&[pfmsg::sa_ext(
            SADB_EXT_SA,
            key.spi,
            SADB_SASTATE_LARVAL,
            0,
            0,
            0,
        )]);
        let entry = SaEntry::from_request(msg, sa, self.now_secs(), self.now);
        self.sadb.insert(key, entry);
        Ok(WriteOk {
            spi: Some(key.spi),
            record: None,
        })
    }

    /// UPDATE: completes a larval SA (a new entry, keys and all), or
    /// changes a mature one: lifetimes, X_UDPENCAP, X_TAG, X_TAP, X_IFACE,
    /// and its addresses (ADDRESS_SRC becomes the source, ADDRESS_PROXY
    /// the destination: how iked moves an SA for MOBIKE and NAT-T). A
    /// mature SA's keys and identities cannot change (`EINVAL`).
    fn update(&mut self, msg: &Msg<'_>) -> Result<(), Errno> {
        check_flow_and_encap(msg)?;
        let key = sa_key(msg).ok_or(Errno::EINVAL)?;
        let now = self.now_secs();
        let state = self.sadb.get(&key).ok_or(Errno::ESRCH)?.state();
        let sa = msg.find(SADB_EXT_SA).ok_or(Errno::EINVAL)?;
        if state == SADB_SASTATE_LARVAL {
            // The larval entry is deleted and a new one put in its place.
            self.remove_sa(&key);
            let entry = SaEntry::from_request(msg, sa.bytes().to_vec(), now, self.now);
            self.sadb.insert(key, entry);
            return Ok(());
        }
        if [
            SADB_EXT_KEY_AUTH,
            SADB_EXT_KEY_ENCRYPT,
            SADB_EXT_IDENTITY_SRC,
            SADB_EXT_IDENTITY_DST,
            SADB_EXT_SENSITIVITY,
        ]
        .iter()
        .any(|&t| msg.find(t).is_some())
        {
            return Err(Errno::EINVAL);
        }
        let Some(e) = self.sadb.get_mut(&key) else {
            return Err(Errno::ESRCH);
        };
        if let Some(c) = msg
            .find(SADB_EXT_LIFETIME_CURRENT)
            .and_then(|x| LifetimeExt::new(x).ok())
        {
            e.cur_alloc = c.allocations();
            e.cur_bytes = c.bytes();
        }
        for t in [
            SADB_EXT_LIFETIME_SOFT,
            SADB_EXT_LIFETIME_HARD,
            SADB_X_EXT_UDPENCAP,
            SADB_X_EXT_TAG,
            SADB_X_EXT_TAP,
            SADB_X_EXT_IFACE,
            SADB_EXT_ADDRESS_SRC,
        ] {
            if let Some(x) = msg.find(t) {
                e.set_stored(x.bytes());
            }
        }
        e.changed = self.now;
        let Some(proxy) = msg.find(SADB_EXT_ADDRESS_PROXY) else {
            return Ok(());
        };
        let new_dst = addr_of(msg, SADB_EXT_ADDRESS_PROXY).ok_or(Errno::EINVAL)?;
        e.set_stored(&sadb::retyped(proxy.bytes(), SADB_EXT_ADDRESS_DST));
        let moved = SaKey {
            dst: new_dst,
            ..key
        };
        if moved != key {
            let Some(mut entry) = self.sadb.remove(&key) else {
                return Ok(());
            };
            // A new identity: the failover oracle expects it on the slaves
            // only a round trip from now.
            entry.born = self.now;
            if let Some(p) = entry.inext.and_then(|k| self.sadb.get_mut(&k)) {
                p.onext = Some(moved);
            }
            if let Some(n) = entry.onext.and_then(|k| self.sadb.get_mut(&k)) {
                n.inext = Some(moved);
            }
            if let Some(old) = self.sadb.insert(moved, entry) {
                // The move replaced an SA of that identity: unlink it.
                for k in [old.inext, old.onext].into_iter().flatten() {
                    if let Some(x) = self.sadb.get_mut(&k) {
                        if x.onext == Some(moved) && k != moved {
                            x.onext = None;
                        }
                        if x.inext == Some(moved) && k != moved {
                            x.inext = None;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// X_GRPSPIS: the second SA (in the second domain of X_RDOMAIN, if
    /// any) becomes the one the outbound path applies after the first.
    /// `ESRCH` when either is missing or the group would make a cycle.
    fn grpspis(&mut self, msg: &Msg<'_>) -> Result<(), Errno> {
        let k1 = sa_key(msg).ok_or(Errno::EINVAL)?;
        let sa2 = msg.find(SADB_X_EXT_SA2).ok_or(Errno::EINVAL)?;
        let st2 = msg.find(SADB_X_EXT_SATYPE2).ok_or(Errno::EINVAL)?;
        let dom2 = msg
            .find(SADB_X_EXT_RDOMAIN)
            .and_then(|e| RdomainExt::new(e).ok())
            .map_or(k1.rdomain, |r| r.dom2());
        let k2 = SaKey {
            satype: ProtocolExt::new(st2).map_err(|_| Errno::EINVAL)?.proto(),
            spi: SaExt::new(sa2).map_err(|_| Errno::EINVAL)?.spi(),
            dst: addr_of(msg, SADB_X_EXT_DST2).ok_or(Errno::EINVAL)?,
            rdomain: dom2,
        };
        if !self.sadb.contains_key(&k1) || !self.sadb.contains_key(&k2) {
            return Err(Errno::ESRCH);
        }
        // A cycle: the first SA is already on the second's path.
        let mut at = Some(k2);
        let mut steps = 0;
        while let Some(k) = at {
            if k == k1 {
                return Err(Errno::ESRCH);
            }
            steps += 1;
            if steps > self.sadb.len() {
                break;
            }
            at = self.sadb.get(&k).and_then(|e| e.onext);
        }
        // Old links of either end are cut first.
        let old_next = self.sadb.get(&k1).and_then(|e| e.onext);
        if let Some(n) = old_next.and_then(|k| self.sadb.get_mut(&k)) {
            if n.inext == Some(k1) {
                n.inext = None;
            }
        }
        let old_prev = self.sadb.get(&k2).and_then(|e| e.inext);
        if let Some(p) = old_prev.and_then(|k| self.sadb.get_mut(&k)) {
            if p.onext == Some(k2) {
                p.onext = None;
            }
        }
        let now = self.now;
        if let Some(e) = self.sadb.get_mut(&k1) {
            e.onext = Some(k2);
            e.changed = now;
        }
        if let Some(e) = self.sadb.get_mut(&k2) {
            e.inext = Some(k1);
        }
        Ok(())
    }

    /// X_ADDFLOW / X_DELFLOW. The direction must be in or out and the type
    /// known (`EINVAL`). A static flow (ipsecctl's, flag
    /// [`SADB_X_POLICYFLAGS_POLICY`]) is changed or deleted only by a request that
    /// is itself static; any other is a silent success that changes
    /// nothing. Replacing an entry clears its flags. Deleting a missing
    /// flow is `ESRCH`.
    fn flow(&mut self, msg: &Msg<'_>) -> Result<(), Errno> {
        let ft = msg
            .find(SADB_X_EXT_FLOW_TYPE)
            .and_then(|e| ProtocolExt::new(e).ok())
            .ok_or(Errno::EINVAL)?;
        if !matches!(ft.direction(), IPSP_DIRECTION_IN | IPSP_DIRECTION_OUT) {
            return Err(Errno::EINVAL);
        }
        let key = flow_key(msg).ok_or(Errno::EINVAL)?;
        let is_static = ft.flags() & SADB_X_POLICYFLAGS_POLICY != 0;
        if self.spd.get(&key).is_some_and(|e| e.is_static) && !is_static {
            return Ok(());
        }
        if msg.msg_type() == SADB_X_DELFLOW {
            return self.spd.remove(&key).map(|_| ()).ok_or(Errno::ESRCH);
        }
        if !(1..=SADB_X_FLOW_TYPE_DONTACQ).contains(&ft.proto()) {
            self.spd.remove(&key);
            return Err(Errno::EINVAL);
        }
        let replaced = self.spd.contains_key(&key);
        let mut entry = FlowEntry::from_request(msg, self.now);
        entry.is_static = is_static && !replaced;
        self.spd.insert(key, entry);
        Ok(())
    }

    /// Switches the promiscuous flag of `pid`'s PF_KEY socket (what a
    /// 16-byte X_PROMISC write does), creating the socket if needed.
    pub fn set_promisc(&mut self, pid: u32, on: bool) {
        self.listeners.by_pid.entry(pid).or_default().promisc = on;
    }

    /// Whether `pid`'s socket is promiscuous.
    pub fn is_promisc(&self, pid: u32) -> bool {
        self.listeners.by_pid.get(&pid).is_some_and(|l| l.promisc)
    }

    /// Sets every socket's receive-queue limit in bytes (default 8192,
    /// `PFKEYRCVQ`); copies that do not fit are dropped.
    pub fn set_rcvbuf(&mut self, bytes: usize) {
        self.listeners.rcvbuf = bytes;
    }

    /// The next promiscuous copy queued for `pid`'s socket.
    pub fn read_promisc(&mut self, pid: u32) -> Option<Vec<u8>> {
        self.listeners.read(pid)
    }

    /// Bytes waiting in `pid`'s receive queue.
    pub fn promisc_queued(&self, pid: u32) -> usize {
        self.listeners
            .by_pid
            .get(&pid)
            .map_or(0, |l| l.queued_bytes)
    }

    /// Copies dropped because `pid`'s queue was full.
    pub fn promisc_drops(&self, pid: u32) -> u64 {
        self.listeners.by_pid.get(&pid).map_or(0, |l| l.drops)
    }

    /// The `net.key.sadb_dump` sysctl: SADB records of `satype` (0 = all).
    pub fn sadb_dump(&self, satype: u8) -> Vec<u8> {
        let mut out = Vec::new();
        self.sadb_dump_into(satype, &mut out);
        out
    }

    /// [`sadb_dump`](Self::sadb_dump) appended to `out` (a devhost writes
    /// it straight into its reply).
    pub fn sadb_dump_into(&self, satype: u8, out: &mut Vec<u8>) {
        out.reserve(self.sadb.len() * 352);
        for e in self
            .sadb
            .values()
            .filter(|e| satype == 0 || e.satype == satype)
        {
            e.record_into(SADB_DUMP, self.next_of(e), out);
        }
    }

    /// The `net.key.spd_dump` sysctl: all flows.
    pub fn spd_dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.spd_dump_into(&mut out);
        out
    }

    /// [`spd_dump`](Self::spd_dump) appended to `out`.
    pub fn spd_dump_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.spd.len() * 200);
        for e in self.spd.values() {
            e.record_into(out);
        }
    }

    /// Number of SAs (larval included).
    pub fn sa_count(&self) -> usize {
        self.sadb.len()
    }

    /// Number of flows.
    pub fn flow_count(&self) -> usize {
        self.spd.len()
    }

    /// The identities of all SAs, in key order.
    pub fn sa_keys(&self) -> Vec<SaKey> {
        self.sadb.keys().copied().collect()
    }

    /// The identities of all flows, in key order.
    pub fn flow_keys(&self) -> Vec<FlowKey> {
        self.spd.keys().copied().collect()
    }

    /// The state of an SA, if present.
    pub fn sa_state(&self, key: &SaKey) -> Option<u8> {
        self.sadb.get(key).map(SaEntry::state)
    }

    /// Whether a flow is present.
    pub fn has_flow(&self, key: &FlowKey) -> bool {
        self.spd.contains_key(key)
    }

    /// Validation and refusal counters.
    pub fn stats(&self) -> &KernelStats {
        &self.stats
    }

    /// Packets flow: mature SAs' usage counters grow by random amounts, so
    /// kernels' LIFETIME_CURRENT, LASTUSE, X_REPLAY and X_COUNTER disagree.
    pub fn traffic(&mut self) {
        let now = self.now_secs();
        for e in self.sadb.values_mut() {
            if e.state() != SADB_SASTATE_MATURE || !self.rng.chance(0.3) {
                continue;
            }
            let packets = self.rng.range(1..100);
            let bytes = packets * self.rng.range(64..1500);
            let dir = self.rng.index(2);
            e.cur_bytes += bytes;
            e.replay += packets;
            e.usetime = now;
            e.counter[dir] += packets;
            e.counter[2 + dir] += bytes;
        }
    }

    /// The kernel's hard-lifetime timer removes an SA. Unlike a DELETE
    /// written by a process, promiscuous listeners see nothing.
    pub fn expire_sa(&mut self, key: &SaKey) -> bool {
        self.remove_sa(key).is_some()
    }

    /// Path-MTU discovery sets an SA's MTU; dumps then carry X_MTU, which a
    /// slave's kernel refuses on ADD (D-30).
    pub fn set_mtu(&mut self, key: &SaKey, mtu: u32) -> bool {
        self.sadb.get_mut(key).map(|e| e.mtu = mtu).is_some()
    }

    /// The operator writes `msg` with `ipsecctl` (pid [`OPERATOR_PID`];
    /// the message's pid is overwritten). Promiscuous listeners see it.
    pub fn manual_write(&mut self, msg: &[u8]) -> Result<WriteOk, Errno> {
        let mut m = msg.to_vec();
        set_pid_seq(&mut m, OPERATOR_PID, 1);
        self.write(&m, OPERATOR_PID)
    }

    /// The operator deletes an SA by hand (a DELETE from [`OPERATOR_PID`]).
    pub fn manual_delete_sa(&mut self, key: &SaKey) -> Result<(), Errno> {
        let e = self.sadb.get(key).ok_or(Errno::ESRCH)?;
        let rec = e.record(SADB_DUMP, self.next_of(e));
        let mut out = vec![0u8; PFKEY_MSG_MAXSZ];
        let msg = Msg::parse(&rec).map_err(|_| Errno::EINVAL)?;
        let n = build_delete(&msg, 1, OPERATOR_PID, &mut out).map_err(|_| Errno::EINVAL)?;
        self.write(&out[..n], OPERATOR_PID).map(|_| ())
    }

    /// The operator deletes a flow by hand (an X_DELFLOW from [`OPERATOR_PID`]).
    pub fn manual_delete_flow(&mut self, key: &FlowKey) -> Result<(), Errno> {
        let rec = self.spd.get(key).ok_or(Errno::ESRCH)?.record();
        let mut out = vec![0u8; PFKEY_MSG_MAXSZ];
        let msg = Msg::parse(&rec).map_err(|_| Errno::EINVAL)?;
        let n = build_delflow(&msg, 1, OPERATOR_PID, &mut out).map_err(|_| Errno::EINVAL)?;
        self.write(&out[..n], OPERATOR_PID).map(|_| ())
    }

    /// The mature SAs and the flows whose dump records `keep` accepts, in
    /// canonical form (larval SAs are never synchronised).
    pub fn canonical(&self, keep: &dyn Fn(&Msg<'_>) -> bool) -> Canonical {
        let mut c = Canonical::default();
        let mut buf = vec![0u8; PFKEY_MSG_MAXSZ];
        for (k, e) in &self.sadb {
            let rec = e.record(SADB_DUMP, self.next_of(e));
            let Ok(m) = Msg::parse(&rec) else { continue };
            if e.state() == SADB_SASTATE_MATURE && keep(&m) {
                if let Ok(n) = canonical_digest_input(&m, &mut buf) {
                    c.sas.insert(*k, buf[..n].to_vec());
                }
            }
        }
        for rec in records(&self.spd_dump()).map_while(Result::ok) {
            if let (Some(k), true) = (flow_key(&rec), keep(&rec)) {
                if let Ok(n) = canonical_digest_input(&rec, &mut buf) {
                    c.flows.insert(k, buf[..n].to_vec());
                }
            }
        }
        c
    }

    /// What this kernel has held since `cutoff` (by its clock, see
    /// [`set_now`](Self::set_now)): the synchronised entries whose content
    /// has not changed since, and the identities of those that existed
    /// then but changed later. A slave of this kernel's node must hold all
    /// of them once `cutoff` is a round trip old (the failover oracle).
    pub fn held_since(&self, keep: &dyn Fn(&Msg<'_>) -> bool, cutoff: Instant) -> Held {
        let all = self.canonical(keep);
        let mut held = Held::default();
        for (k, v) in all.sas {
            match self.sadb.get(&k) {
                Some(e) if e.changed <= cutoff => {
                    held.content.sas.insert(k, v);
                }
                Some(e) if e.born <= cutoff => {
                    held.present_sas.push(k);
                }
                _ => {}
            }
        }
        for (k, v) in all.flows {
            if self.spd.get(&k).is_some_and(|e| e.changed <= cutoff) {
                held.content.flows.insert(k, v);
            }
        }
        held
    }

    /// The mature SAs that have existed since `cutoff` (cheap: no filter,
    /// no canonical form; for measurements).
    pub fn mature_sas_since(&self, cutoff: Instant) -> impl Iterator<Item = &SaKey> + '_ {
        self.sadb
            .iter()
            .filter(move |(_, e)| e.state() == SADB_SASTATE_MATURE && e.born <= cutoff)
            .map(|(k, _)| k)
    }

    /// Whether the SA's synchronised content changed after `t`.
    pub fn changed_since(&self, key: &SaKey, t: Instant) -> bool {
        self.sadb.get(key).is_some_and(|e| e.changed > t)
    }

    /// One SA in canonical form (see [`canonical`](Self::canonical)), if
    /// present.
    pub fn canonical_sa(&self, key: &SaKey) -> Option<Vec<u8>> {
        let e = self.sadb.get(key)?;
        let rec = e.record(SADB_DUMP, self.next_of(e));
        let m = Msg::parse(&rec).ok()?;
        let mut buf = vec![0u8; PFKEY_MSG_MAXSZ];
        let n = canonical_digest_input(&m, &mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// Whether a mature SA with this identity is present.
    pub fn has_mature_sa(&self, key: &SaKey) -> bool {
        self.sadb
            .get(key)
            .is_some_and(|e| e.state() == SADB_SASTATE_MATURE)
    }

    /// Whether both kernels hold the same synchronised entries, keeping
    /// only records `keep` accepts on both sides; the differences if not.
    pub fn entries_equal_after_filter(
        &self,
        other: &Kernel,
        keep: &dyn Fn(&Msg<'_>) -> bool,
    ) -> Result<(), Vec<String>> {
        let d = self.canonical(keep).diff(&other.canonical(keep));
        if d.is_empty() {
            Ok(())
        } else {
            Err(d)
        }
    }
}
