//! The IKE daemon's PF_KEY workload on one node (isakmpd/iked as seen by
//! the kernel): while active — only on the current master, following the
//! active/passive commands — it negotiates SA pairs (GETSPI then UPDATE
//! for the inbound SA, ADD for the outbound one, or direct ADDs), mostly
//! ESP, sometimes AH, IPcomp or TCP-MD5; bundles an outbound ESP SA behind
//! an IPcomp SA (iked's compression) or an AH SA (isakmpd's AH+ESP) with
//! X_GRPSPIS; moves a pair to the peer's new address as iked does for
//! MOBIKE and NAT-T (UPDATE with ADDRESS_PROXY and no keys, sometimes a new
//! X_UDPENCAP port); rekeys (a new pair, then DELETE
//! of the old one); lets SAs expire (the daemon deletes them, sometimes
//! writing an EXPIRE first); adds and deletes flows; and now and then
//! flushes everything. Every request is real PF_KEY bytes written into the
//! node's [`Kernel`] with the daemon's own pid.
//!
//! On becoming active the daemon adopts the SAs and flows it finds in the
//! kernel (those a previous master negotiated and sasyncd copied), so it
//! rekeys and deletes them in turn, as a real daemon taking over would
//! renegotiate them.
//!
//! Not simulated: IKE itself (no peer, no packets; keys are random bytes),
//! ACQUIREs, kernel-raised expirations (see [`Kernel::expire_sa`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{flow_key, records, sa_key, AddressExt, FlowKey, Msg, SaKey};
use sasyncd_core::time::Instant;

use crate::errno::Errno;
use crate::kernel::Kernel;
use crate::pfmsg::*;
use crate::rng::Rng;

/// `SADB_X_SAFLAGS_ESN`: extended sequence numbers.
const SAFLAGS_ESN: u32 = 0x400;

/// The routing domain some SAs hand their traffic to; every simulated
/// gateway has its table (see [`Kernel::add_rtable`]).
pub const RDOMAIN: u16 = 1;

/// Rates and identities of the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct IkeConfig {
    /// The daemon's pid (e.g. 1000 + node index).
    pub pid: u32,
    /// The gateway's address the SAs are bound to (the shared carp address).
    pub local: IpAddr,
    /// The remote IKE peers.
    pub remotes: Vec<IpAddr>,
    /// Mean time between workload actions.
    pub mean_interval: Duration,
    /// How long an SA pair lives before it is rekeyed or expires.
    pub lifetime: Duration,
    /// Longest time between GETSPI and UPDATE (the IKE exchange).
    pub negotiation: Duration,
    /// How long the old pair survives a rekey.
    pub rekey_overlap: Duration,
    /// Most pairs kept at once.
    pub max_pairs: usize,
    /// Probability per action of a FLUSH of everything.
    pub flush_chance: f64,
}

impl IkeConfig {
    /// Defaults for node `index`: pid 1000 + index, a few remotes.
    pub fn for_node(index: usize, local: IpAddr) -> IkeConfig {
        IkeConfig {
            pid: 1000 + index as u32,
            local,
            remotes: (1..=4).map(|i| IpAddr::V4([192, 0, 2, i].into())).collect(),
            mean_interval: Duration::from_secs(5),
            lifetime: Duration::from_secs(300),
            negotiation: Duration::from_secs(2),
            rekey_overlap: Duration::from_secs(10),
            max_pairs: 40,
            flush_chance: 0.002,
        }
    }
}

/// What the workload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IkeStats {
    /// Requests written.
    pub writes: u64,
    /// Requests the kernel refused, by errno.
    pub errors: BTreeMap<Errno, u64>,
    /// Pairs completed.
    pub pairs: u64,
    /// Rekeys started.
    pub rekeys: u64,
    /// Pairs deleted at the end of their life.
    pub expiries: u64,
    /// FLUSHes written.
    pub flushes: u64,
    /// Flows added.
    pub flows_added: u64,
    /// Flows deleted.
    pub flows_deleted: u64,
    /// Bundles made (X_GRPSPIS).
    pub bundles: u64,
    /// Pairs moved to a new peer address (MOBIKE / NAT-T).
    pub moves: u64,
}

/// One SA the daemon knows: enough to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sa {
    satype: u8,
    spi: u32,
    src: IpAddr,
    dst: IpAddr,
}

#[derive(Debug, Clone)]
struct Pair {
    sas: Vec<Sa>,
    dies: Instant,
}

#[derive(Debug, Clone)]
enum Op {
    /// Finish a negotiation: UPDATE the larval inbound SA, ADD the outbound,
    /// then the rest of a bundle (its first SA's ADD, the X_GRPSPIS).
    Complete {
        update: Vec<u8>,
        add: Vec<u8>,
        bundle: Vec<Vec<u8>>,
        pair: Pair,
    },
    /// Delete the SAs of a rekeyed pair.
    Delete(Vec<Sa>),
}

/// The IKE daemon of one node.
#[derive(Debug, Clone)]
pub struct Ike {
    cfg: IkeConfig,
    rng: Rng,
    active: bool,
    pairs: Vec<Pair>,
    /// Each flow's X_FLOW extensions, encoded (for its X_DELFLOW).
    flows: BTreeMap<FlowKey, Vec<u8>>,
    pending: Vec<(Instant, Op)>,
    next_action: Option<Instant>,
    seq: u32,
    stats: IkeStats,
    /// SAs moved since [`take_moves`](Ike::take_moves): their old and new
    /// identity.
    moved: Vec<(SaKey, SaKey)>,
}

impl Ike {
    /// A passive daemon.
    pub fn new(cfg: IkeConfig, rng: Rng) -> Ike {
        Ike {
            cfg,
            rng,
            active: false,
            pairs: Vec::new(),
            flows: BTreeMap::new(),
            pending: Vec::new(),
            next_action: None,
            seq: 0,
            stats: IkeStats::default(),
            moved: Vec::new(),
        }
    }

    /// The (old, new) identities of the SAs moved since the last call
    /// (MOBIKE).
    pub fn take_moves(&mut self) -> Vec<(SaKey, SaKey)> {
        std::mem::take(&mut self.moved)
    }

    /// Whether the daemon negotiates.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// What it did so far.
    pub fn stats(&self) -> &IkeStats {
        &self.stats
    }

    /// Number of SA pairs (or adopted single SAs) it manages.
    pub fn pair_count(&self) -> usize {
        self.pairs.len()
    }

    /// sasyncd's active/passive command. Becoming active adopts what the
    /// kernel holds; becoming passive abandons negotiations in progress
    /// (their larval SAs stay in the kernel).
    pub fn set_active(&mut self, active: bool, now: Instant, kernel: &Kernel) {
        if active == self.active {
            return;
        }
        self.active = active;
        self.pending.clear();
        if !active {
            self.next_action = None;
            return;
        }
        self.adopt(now, kernel);
        self.schedule(now);
    }

    fn adopt(&mut self, now: Instant, kernel: &Kernel) {
        self.pairs.clear();
        self.flows.clear();
        let life = self.cfg.lifetime.as_millis() as u64;
        for r in records(&kernel.sadb_dump(0)).map_while(Result::ok) {
            let (Some(k), Some(src)) = (sa_key(&r), addr(&r, SADB_EXT_ADDRESS_SRC)) else {
                continue;
            };
            let mature = kernel.sa_state(&k) == Some(SADB_SASTATE_MATURE);
            if mature && (src == self.cfg.local || k.dst == self.cfg.local) {
                let sa = Sa {
                    satype: k.satype,
                    spi: k.spi,
                    src,
                    dst: k.dst,
                };
                let dies = now + Duration::from_millis(self.rng.below(life));
                self.pairs.push(Pair {
                    sas: vec![sa],
                    dies,
                });
            }
        }
        for r in records(&kernel.spd_dump()).map_while(Result::ok) {
            // ipsecctl's static flows (their own address space: the dump
            // does not say) are not the daemon's to delete.
            let ipsecctl = |a: IpAddr| matches!(a, IpAddr::V4(v) if v.octets()[..2] == [172, 17]);
            if let Some(k) = flow_key(&r).filter(|k| !ipsecctl(k.src.ip) && !ipsecctl(k.dst.ip)) {
                let exts = r
                    .extensions()
                    .map_while(Result::ok)
                    .filter(|e| X_FLOW_SET.contains(e.ext_type()))
                    .flat_map(|e| e.bytes().iter().copied())
                    .collect();
                self.flows.insert(k, exts);
            }
        }
    }

    fn schedule(&mut self, now: Instant) {
        let mean = self.cfg.mean_interval.as_millis() as u64;
        self.next_action = Some(now + Duration::from_millis(self.rng.range(1..2 * mean + 1)));
    }

    /// When [`Ike::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let p = self.pending.iter().map(|(t, _)| *t).min();
        let e = self
            .pairs
            .iter()
            .map(|p| p.dies)
            .min()
            .filter(|_| self.active);
        [self.next_action, p, e].into_iter().flatten().min()
    }

    /// Does what is due at `now`, writing into `kernel`.
    pub fn handle_timeout(&mut self, now: Instant, kernel: &mut Kernel) {
        if !self.active {
            return;
        }
        kernel.set_now(now);
        // Finish negotiations and old-pair deletions that are due.
        let (due, later): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|(t, _)| *t <= now);
        self.pending = later;
        for (_, op) in due {
            match op {
                Op::Complete {
                    update,
                    add,
                    bundle,
                    pair,
                } => self.complete(kernel, update, add, bundle, pair),
                Op::Delete(sas) => self.delete_sas(kernel, &sas),
            }
        }
        // Pairs at the end of their life: rekey (mostly) or expire.
        while let Some(i) = self.pairs.iter().position(|p| p.dies <= now) {
            let old = self.pairs.remove(i);
            if self.rng.chance(0.7) {
                self.stats.rekeys += 1;
                self.negotiate(now, kernel);
                let at = now + self.cfg.rekey_overlap;
                self.pending.push((at, Op::Delete(old.sas)));
            } else {
                self.stats.expiries += 1;
                if self.rng.chance(0.2) {
                    self.write_expire(kernel, &old.sas[0]);
                }
                self.delete_sas(kernel, &old.sas);
            }
        }
        if self.next_action.is_some_and(|t| t <= now) {
            self.action(now, kernel);
            self.schedule(now);
        }
    }

    fn action(&mut self, now: Instant, kernel: &mut Kernel) {
        if self.rng.chance(self.cfg.flush_chance) {
            self.stats.flushes += 1;
            let m = self.msg(SADB_FLUSH, 0, &[]);
            self.write(kernel, m);
            self.pairs.clear();
            self.flows.clear();
            self.pending.clear();
            return;
        }
        match self.rng.below(10) {
            0..=4 if self.pairs.len() < self.cfg.max_pairs => self.negotiate(now, kernel),
            5..=6 => self.add_flow(kernel),
            7 => self.move_pair(kernel),
            8 if !self.flows.is_empty() => {
                let i = self.rng.index(self.flows.len());
                let Some(k) = self.flows.keys().nth(i).copied() else {
                    return;
                };
                if let Some(exts) = self.flows.remove(&k) {
                    self.stats.flows_deleted += 1;
                    let m = self.msg(SADB_X_DELFLOW, SADB_SATYPE_ESP, &[ExtRepr::Raw(&exts)]);
                    self.write(kernel, m);
                }
            }
            _ => {}
        }
    }

    fn msg(&mut self, t: u8, satype: u8, exts: &[ExtRepr<'_>]) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        message(t, satype, self.seq, self.cfg.pid, exts)
    }

    /// Writes `m`; whether the kernel took it.
    fn write(&mut self, kernel: &mut Kernel, m: Vec<u8>) -> bool {
        self.stats.writes += 1;
        match kernel.write(&m, self.cfg.pid) {
            Ok(_) => true,
            Err(e) => {
                *self.stats.errors.entry(e).or_default() += 1;
                false
            }
        }
    }

    fn delete_sas(&mut self, kernel: &mut Kernel, sas: &[Sa]) {
        for sa in sas {
            let exts = [
                sa_ext(SADB_EXT_SA, sa.spi, SADB_SASTATE_MATURE, 0, 0, 0),
                addr_ext(SADB_EXT_ADDRESS_SRC, sa.src, 0),
                addr_ext(SADB_EXT_ADDRESS_DST, sa.dst, 0),
            ];
            let m = self.msg(SADB_DELETE, sa.satype, &exts);
            self.write(kernel, m);
        }
    }

    fn write_expire(&mut self, kernel: &mut Kernel, sa: &Sa) {
        let exts = [
            sa_ext(SADB_EXT_SA, sa.spi, SADB_SASTATE_DYING, 0, 0, 0),
            addr_ext(SADB_EXT_ADDRESS_SRC, sa.src, 0),
            addr_ext(SADB_EXT_ADDRESS_DST, sa.dst, 0),
        ];
        let m = self.msg(SADB_EXPIRE, sa.satype, &exts);
        self.write(kernel, m);
    }

    /// The `msg_type` (ADD or UPDATE) of a mature SA of `satype` from
    /// `src` to `dst`.
    fn sa_msg(&mut self, msg_type: u8, satype: u8, spi: u32, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let r = &mut self.rng;
        let (auth, enc, akey, ekey) = match satype {
            SADB_SATYPE_ESP => (5, 12, 32, if r.chance(0.5) { 16 } else { 32 }),
            SADB_SATYPE_AH => (5, 0, 32, 0),
            SADB_X_SATYPE_IPCOMP => (0, 2, 0, 0),
            _ => (0, 0, 16, 0), // TCP-MD5: the password as the auth key
        };
        let udpencap = satype == SADB_SATYPE_ESP && r.chance(0.2);
        // Tunnel mode; ESP in UDP for NAT-T; extended sequence numbers
        // (iked's default for ESP with a modern transform).
        let esn = satype == SADB_SATYPE_ESP && r.chance(0.3);
        let flags = 0x004 | if udpencap { 0x200 } else { 0 } | if esn { SAFLAGS_ESN } else { 0 };
        let life = self.cfg.lifetime.as_secs();
        let mut v = vec![
            sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, auth, enc, flags),
            lifetime_ext(SADB_EXT_LIFETIME_HARD, 0, 0, life + 60, 0),
            lifetime_ext(SADB_EXT_LIFETIME_SOFT, 0, 0, life, 0),
            addr_ext(SADB_EXT_ADDRESS_SRC, src, 0),
            addr_ext(SADB_EXT_ADDRESS_DST, dst, 0),
        ];
        if r.chance(0.3) {
            v.push(ExtRepr::Identity {
                ext_type: SADB_EXT_IDENTITY_SRC,
                id_type: 3, // SADB_IDENTTYPE_FQDN
                id: 0,
                data: b"gw.example",
            });
        }
        let (mut abuf, mut ebuf) = ([0u8; 32], [0u8; 32]);
        if akey > 0 {
            r.fill(&mut abuf[..akey]);
            v.push(key_ext(SADB_EXT_KEY_AUTH, &abuf[..akey]));
        }
        if ekey > 0 {
            r.fill(&mut ebuf[..ekey]);
            v.push(key_ext(SADB_EXT_KEY_ENCRYPT, &ebuf[..ekey]));
        }
        if udpencap {
            v.push(ExtRepr::UdpEncap { port: 4500 });
        }
        if r.chance(0.1) {
            v.push(ExtRepr::Tag { tag: b"ike-tag" });
        }
        if r.chance(0.05) {
            // enc(4) interface unit 1 sees the traffic.
            v.push(ExtRepr::Tap { unit: 1 });
        }
        if satype == SADB_SATYPE_ESP && r.chance(0.1) {
            // The SA in routing domain 0, its traffic in domain 1.
            v.push(rdomain_ext(0, RDOMAIN));
        }
        self.msg(msg_type, satype, &v)
    }

    /// Starts (or, for direct ADDs, completes) a new pair with a random peer.
    fn negotiate(&mut self, now: Instant, kernel: &mut Kernel) {
        let satype = match self.rng.below(100) {
            0..=79 => SADB_SATYPE_ESP,
            80..=87 => SADB_SATYPE_AH,
            88..=93 => SADB_X_SATYPE_IPCOMP,
            _ => SADB_X_SATYPE_TCPSIGNATURE,
        };
        let remote = self.cfg.remotes[self.rng.index(self.cfg.remotes.len())];
        let local = self.cfg.local;
        let max = if satype == SADB_X_SATYPE_IPCOMP {
            0xffff
        } else {
            u32::MAX
        };
        let out_spi = self.rng.range(0x100..u64::from(max) + 1) as u32;
        let add_out = self.sa_msg(SADB_ADD, satype, out_spi, local, remote);
        let getspi = matches!(satype, SADB_SATYPE_ESP | SADB_SATYPE_AH) && self.rng.chance(0.7);
        let in_spi = if getspi {
            let exts = [
                addr_ext(SADB_EXT_ADDRESS_SRC, remote, 0),
                addr_ext(SADB_EXT_ADDRESS_DST, local, 0),
                spirange_ext(0x100, max),
            ];
            let m = self.msg(SADB_GETSPI, satype, &exts);
            self.stats.writes += 1;
            match kernel.write(&m, self.cfg.pid) {
                Ok(r) => r.spi,
                Err(e) => {
                    *self.stats.errors.entry(e).or_default() += 1;
                    return;
                }
            }
        } else {
            Some(self.rng.range(0x100..u64::from(max) + 1) as u32)
        };
        let Some(in_spi) = in_spi else { return };
        let t = if getspi { SADB_UPDATE } else { SADB_ADD };
        let first = self.sa_msg(t, satype, in_spi, remote, local);
        let life = self.cfg.lifetime.as_millis() as u64;
        let pair = Pair {
            sas: vec![
                Sa {
                    satype,
                    spi: in_spi,
                    src: remote,
                    dst: local,
                },
                Sa {
                    satype,
                    spi: out_spi,
                    src: local,
                    dst: remote,
                },
            ],
            dies: now + Duration::from_millis(life / 2 + self.rng.below(life / 2 + 1)),
        };
        let mut pair = pair;
        let mut bundle = Vec::new();
        if satype == SADB_SATYPE_ESP && self.rng.chance(0.15) {
            // The outbound ESP SA behind an IPcomp SA (compress, then
            // encrypt) or an AH SA: the first SA of the bundle is the one
            // X_GRPSPIS names, the ESP SA its next.
            let first = if self.rng.chance(0.5) {
                SADB_X_SATYPE_IPCOMP
            } else {
                SADB_SATYPE_AH
            };
            let max1 = if first == SADB_X_SATYPE_IPCOMP {
                0xffff
            } else {
                u32::MAX
            };
            let spi1 = self.rng.range(0x100..u64::from(max1) + 1) as u32;
            let add = self.sa_msg(SADB_ADD, first, spi1, local, remote);
            bundle.push(add);
            let grp = [
                sa_ext(SADB_EXT_SA, spi1, SADB_SASTATE_MATURE, 0, 0, 0),
                addr_ext(SADB_EXT_ADDRESS_DST, remote, 0),
                sa_ext(SADB_X_EXT_SA2, out_spi, SADB_SASTATE_MATURE, 0, 0, 0),
                addr_ext(SADB_X_EXT_DST2, remote, 0),
                proto_ext(SADB_X_EXT_SATYPE2, SADB_SATYPE_ESP, 0),
            ];
            bundle.push(self.msg(SADB_X_GRPSPIS, first, &grp));
            pair.sas.push(Sa {
                satype: first,
                spi: spi1,
                src: local,
                dst: remote,
            });
        }
        let op = Op::Complete {
            update: first,
            add: add_out,
            bundle,
            pair,
        };
        if getspi {
            let d = self.rng.below(self.cfg.negotiation.as_millis() as u64 + 1);
            self.pending.push((now + Duration::from_millis(d), op));
        } else if let Op::Complete {
            update,
            add,
            bundle,
            pair,
        } = op
        {
            self.complete(kernel, update, add, bundle, pair);
        }
    }

    /// Writes a negotiation's result; keeps the pair if its SAs went in.
    fn complete(
        &mut self,
        kernel: &mut Kernel,
        update: Vec<u8>,
        add: Vec<u8>,
        bundle: Vec<Vec<u8>>,
        pair: Pair,
    ) {
        let a = self.write(kernel, update);
        let b = self.write(kernel, add);
        let mut c = true;
        for m in bundle {
            c &= self.write(kernel, m);
        }
        if a && b {
            self.stats.pairs += 1;
            self.stats.bundles += u64::from(c && pair.sas.len() > 2);
            self.pairs.push(pair);
        }
    }

    /// MOBIKE: the peer of a two-SA ESP pair moved to another address
    /// (perhaps behind a NAT with a new port). iked writes, for each SA, an
    /// UPDATE without keys naming the SA by its current addresses, with
    /// ADDRESS_SRC the new source and ADDRESS_PROXY the new destination.
    fn move_pair(&mut self, kernel: &mut Kernel) {
        let movable: Vec<usize> = (0..self.pairs.len())
            .filter(|&i| {
                let p = &self.pairs[i];
                p.sas.len() == 2 && p.sas.iter().all(|s| s.satype == SADB_SATYPE_ESP)
            })
            .collect();
        if movable.is_empty() || self.cfg.remotes.len() < 2 {
            return;
        }
        let i = movable[self.rng.index(movable.len())];
        let local = self.cfg.local;
        let old = self.pairs[i].sas[1].dst;
        let others: Vec<IpAddr> = self
            .cfg
            .remotes
            .iter()
            .copied()
            .filter(|&r| r != old)
            .collect();
        let new = others[self.rng.index(others.len())];
        let port = 4500 + self.rng.below(3) as u16;
        let natt = self.rng.chance(0.5);
        self.stats.moves += 1;
        for j in 0..2 {
            let sa = self.pairs[i].sas[j].clone();
            let (src, dst) = if sa.dst == local {
                (new, local)
            } else {
                (local, new)
            };
            let mut exts = vec![
                sa_ext(SADB_EXT_SA, sa.spi, SADB_SASTATE_MATURE, 0, 0, 0),
                addr_ext(SADB_EXT_ADDRESS_SRC, src, 0),
                addr_ext(SADB_EXT_ADDRESS_DST, sa.dst, 0),
                addr_ext(SADB_EXT_ADDRESS_PROXY, dst, 0),
            ];
            if natt {
                exts.push(ExtRepr::UdpEncap { port });
            }
            let m = self.msg(SADB_UPDATE, sa.satype, &exts);
            if self.write(kernel, m) {
                self.pairs[i].sas[j].src = src;
                self.pairs[i].sas[j].dst = dst;
                let key = |dst| SaKey {
                    satype: sa.satype,
                    spi: sa.spi,
                    dst,
                    rdomain: 0,
                };
                self.moved.push((key(sa.dst), key(dst)));
            }
        }
    }

    fn add_flow(&mut self, kernel: &mut Kernel) {
        let x = self.rng.below(8) as u8;
        let y = self.rng.below(8) as u8;
        let remote = self.cfg.remotes[self.rng.index(self.cfg.remotes.len())];
        let mask = IpAddr::V4([255, 255, 255, 0].into());
        let l = IpAddr::V4([172, 16, x, 0].into());
        let r = IpAddr::V4([10, 20, y, 0].into());
        let (dir, src, dst) = if self.rng.chance(0.5) {
            (IPSP_DIRECTION_OUT, l, r)
        } else {
            (IPSP_DIRECTION_IN, r, l)
        };
        let ftype = if self.rng.chance(0.9) {
            SADB_X_FLOW_TYPE_REQUIRE
        } else {
            SADB_X_FLOW_TYPE_BYPASS
        };
        let proto = if self.rng.chance(0.8) { 0 } else { 6 };
        let mut flow = flow_exts(ftype, dir, proto, (src, mask), (dst, mask));
        if self.rng.chance(0.1) {
            // A static flow as ipsecctl writes it (POLICYFLAGS_POLICY), in
            // an address space of its own: a dynamic request cannot change
            // it (the kernel would silently ignore that), and its
            // X_DELFLOW carries the flag too.
            for e in flow.iter_mut() {
                match e {
                    ExtRepr::Protocol {
                        ext_type: SADB_X_EXT_FLOW_TYPE,
                        flags,
                        ..
                    } => *flags = SADB_X_POLICYFLAGS_POLICY,
                    ExtRepr::Address {
                        ext_type: SADB_X_EXT_SRC_FLOW | SADB_X_EXT_DST_FLOW,
                        addr,
                    } => {
                        // 172.16.x.0 / 10.20.y.0 become 172.17.x.0 / 10.21.y.0.
                        if let IpAddr::V4(v) = addr.ip {
                            let [a, b, c, d] = v.octets();
                            addr.ip = IpAddr::V4([a, b + 1, c, d].into());
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut exts = vec![addr_ext(SADB_EXT_ADDRESS_DST, remote, 0)];
        exts.extend(flow);
        let m = self.msg(SADB_X_ADDFLOW, SADB_SATYPE_ESP, &exts);
        let key = Msg::parse(&m).ok().and_then(|m| flow_key(&m));
        if self.write(kernel, m) {
            self.stats.flows_added += 1;
            if let Some(k) = key {
                self.flows.insert(k, exts_bytes(&flow));
            }
        }
    }
}

fn addr(m: &Msg<'_>, t: u16) -> Option<IpAddr> {
    Some(AddressExt::new(m.find(t)?).ok()?.sockaddr().ok()?.ip)
}

#[cfg(test)]
mod tests;
