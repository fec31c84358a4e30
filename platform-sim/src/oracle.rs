//! The checks every simulated run must pass. Each failure names the time
//! and the node; the caller adds the seed.

use std::time::Duration;

use sasyncd_core::pfkey::FilterPolicy;
use sasyncd_core::state::{FlushMode, RunState};
use sasyncd_core::time::Instant;

use crate::carp::LINK_STATE_UP;
use crate::errno::Errno;
use crate::kernel::synced_by;
use crate::scenario::Scenario;
use crate::world::World;

pub mod impostor;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// When it was seen.
    pub at: Instant,
    /// Which node, if one.
    pub node: Option<usize>,
    /// What went wrong.
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.at.as_millis();
        match self.node {
            Some(n) => write!(f, "{:>5}.{:03}s n{}: {}", t / 1000, t % 1000, n, self.what),
            None => write!(f, "{:>5}.{:03}s: {}", t / 1000, t % 1000, self.what),
        }
    }
}

/// One round trip on the scenario's network, with what may be queued ahead
/// of a message (a node's send buffer and the network's): the time within
/// which a change on a master reaches its connected slaves.
pub fn round_trip(sc: &Scenario) -> Duration {
    let n = sc.net;
    let queued = (16 * 1024 + n.sndbuf as u64) * 1000 / n.bandwidth.max(1);
    2 * (n.latency + n.jitter) + Duration::from_millis(queued + 50)
}

/// How soon after a node becomes carp MASTER every connected slave must
/// follow it: carp's announcement reaches sasyncd at once in the
/// simulation, then one round trip (its state message out, our `Resync`
/// back).
pub fn follow_bound(sc: &Scenario) -> Duration {
    round_trip(sc) + Duration::from_millis(100)
}

/// After a split brain (two carp masters at once) ends, how long its
/// slaves have to settle with the one master left before the failover
/// check holds them to everything it holds: the same grace a takeover gets
/// (`master_crashed` wants a master 5 s old). See doc/PROTOCOL.md, "After a
/// split brain".
const SPLIT_GRACE: Duration = Duration::from_secs(5);

/// The same when the split brain ends by a master's death: a slave that
/// followed it learns of the death only when its session falls silent
/// (`Settings::dead_after`, 30 s: a host that dies says nothing, and the
/// master left made no new claim to switch to).
const SPLIT_GRACE_DEAD: Duration = Duration::from_secs(30 + 5);

/// State the checks keep between events.
#[derive(Debug, Default)]
pub struct Oracle {
    /// What failed.
    pub failures: Vec<Failure>,
    /// When the network healed and the workload paused.
    pub quiet_from: Option<Instant>,
    legacy: bool,
    lossy: bool,
    tamper: bool,
    last_change: Vec<Instant>,
    master_since: Vec<Option<Instant>>,
    sync_start_sas: Vec<Option<usize>>,
    disturbed_at: Option<Instant>,
    /// Manual edits made by the operator.
    pub manual_edits: u64,
    last_manual_edit: Option<Instant>,
    /// How long after a change on the master its slaves must hold it.
    round_trip: Duration,
    /// How long after a master's carp transition its slaves must follow it.
    follow_bound: Duration,
    /// The anti-entropy period (repairs manual edits and lost copies).
    digest_interval: Duration,
    /// carp transitions to MASTER still to be checked: (node, when).
    follow_due: Vec<(usize, Instant)>,
    /// When the network last healed, and TCP's retransmission interval:
    /// what was sent during a partition arrives up to one interval after.
    healed_at: Option<Instant>,
    rto: Duration,
    /// Follow checks that ran (their preconditions held).
    pub follow_checks: u64,
    /// Connections a stranger attempted / that nodes refused.
    pub stranger_attempts: u64,
    /// Stranger connections the nodes refused.
    pub rejected_strangers: u64,
    /// Rejections counted by node processes that later crashed.
    pub rejected_by_crashed: u64,
    /// Failover checks that ran (their preconditions held).
    pub failover_checks: u64,
    /// Kernel refusals of the nodes' writes, by errno.
    pub refusals: std::collections::BTreeMap<Errno, u64>,
    /// Refusals outside normal operation, and the first: (when, node,
    /// message type, errno).
    pub sync_refused: u64,
    first_sync_refusal: Option<(Instant, usize, u8, Errno)>,
    /// MOBIKE moves still to be checked: (node, the SA's old and new
    /// identity, when).
    moves_due: Vec<(
        usize,
        sasyncd_core::pfkey::SaKey,
        sasyncd_core::pfkey::SaKey,
        Instant,
    )>,
    /// Move checks that ran (their preconditions held).
    pub move_checks: u64,
    /// Bundle checks that ran at the end.
    pub bundle_checks: u64,
    /// Recent (time, position) of each master's delta stream.
    heads: Vec<std::collections::VecDeque<(Instant, sasyncd_core::state::Position)>>,
    /// Until when failover checks wait after a split brain (see
    /// [`SPLIT_GRACE`]); pushed on while two carp masters exist.
    split_settles_at: Option<Instant>,
    /// Split brains seen (two carp masters at once).
    pub split_brains: u64,
    /// Impostor connections attempted (see [`impostor`]).
    pub impostor_attempts: u64,
    /// Calls an impostor caused that were checked.
    pub impostor_checks: u64,
}

fn keep_all() -> impl Fn(&sasyncd_core::pfkey::Msg<'_>) -> bool {
    synced_by(
        FilterPolicy {
            flushmode: FlushMode::Startup,
            skipslave: false,
        },
        Vec::new(),
    )
}

impl Oracle {
    /// Fresh checks for a scenario.
    pub fn new(sc: &Scenario) -> Oracle {
        let n = sc.nodes;
        Oracle {
            failures: Vec::new(),
            quiet_from: None,
            legacy: sc.legacy,
            lossy: sc.lossy_promisc,
            tamper: sc.tamper > 0.0,
            last_change: vec![Instant::ZERO; n],
            master_since: vec![None; n],
            sync_start_sas: vec![None; n],
            disturbed_at: None,
            manual_edits: 0,
            last_manual_edit: None,
            round_trip: round_trip(sc),
            follow_bound: follow_bound(sc),
            digest_interval: sc.digest_interval,
            follow_due: Vec::new(),
            healed_at: None,
            rto: sc.net.rto,
            follow_checks: 0,
            stranger_attempts: 0,
            rejected_strangers: 0,
            rejected_by_crashed: 0,
            failover_checks: 0,
            refusals: Default::default(),
            sync_refused: 0,
            first_sync_refusal: None,
            moves_due: Vec::new(),
            move_checks: 0,
            bundle_checks: 0,
            heads: vec![Default::default(); n],
            split_settles_at: None,
            split_brains: 0,
            impostor_attempts: 0,
            impostor_checks: 0,
        }
    }

    /// Records a failure (at most 50 are kept).
    pub fn fail(&mut self, at: Instant, node: Option<usize>, what: String) {
        if self.failures.len() < 50
            && !self
                .failures
                .iter()
                .any(|f| f.node == node && f.what == what)
        {
            self.failures.push(Failure { at, node, what });
        }
    }

    /// The workload changed node `i`'s kernel.
    pub fn kernel_changed(&mut self, i: usize, now: Instant) {
        self.last_change[i] = now;
    }

    /// The operator edited node `i`'s kernel.
    pub fn manual_edit(&mut self, i: usize, now: Instant) {
        self.manual_edits += 1;
        self.last_manual_edit = Some(now);
        self.last_change[i] = now;
    }

    /// A partition or reset happened.
    pub fn disturbed(&mut self, now: Instant) {
        self.disturbed_at = Some(now);
    }

    /// The network healed.
    pub fn healed(&mut self, now: Instant) {
        self.healed_at = Some(now);
    }

    /// carp changed node `i`'s link state.
    pub fn carp_changed(&mut self, i: usize, link_state: u8, now: Instant) {
        let before = self.carp_masters();
        self.master_since[i] = (link_state == LINK_STATE_UP).then_some(now);
        if link_state == LINK_STATE_UP {
            self.follow_due.push((i, now));
        }
        let after = self.carp_masters();
        if after >= 2 && before < 2 {
            self.split_brains += 1;
        }
        // A death during the split brain keeps its longer grace.
        let dead_grace = self
            .split_settles_at
            .is_some_and(|t| t > now.add(SPLIT_GRACE));
        if (before >= 2 || after >= 2) && !dead_grace {
            self.split_settles_at = Some(now.add(SPLIT_GRACE));
        }
        // A split brain ends with one master left: for the slaves that
        // followed the other one it is a takeover, and they follow it
        // within the same bound (doc/PROTOCOL.md, "Split brain") -- unless
        // a master died in it: a slave may attach to the dead one, the
        // newest claimant it knows, until its session falls silent.
        if before >= 2 && after == 1 && !dead_grace {
            if let Some(m) = self.master_since.iter().position(|m| m.is_some()) {
                self.follow_due.push((m, now));
            }
        }
    }

    /// How many nodes carp holds MASTER (as reported to the oracle).
    fn carp_masters(&self) -> usize {
        self.master_since.iter().filter(|m| m.is_some()).count()
    }

    /// The IKE daemon of node `i` moved an SA from identity `old` to `new`
    /// (MOBIKE).
    pub fn moved(
        &mut self,
        i: usize,
        old: sasyncd_core::pfkey::SaKey,
        new: sasyncd_core::pfkey::SaKey,
        now: Instant,
    ) {
        self.moves_due.push((i, old, new, now));
    }

    /// A MOBIKE move made on a master reaches every slave connected to it
    /// and in sync within a round trip (both protocols): a slave that held
    /// the SA holds it under its new identity with the master's content.
    /// (One that lacked it, say before a repair, is the digest's.)
    fn check_moves(&mut self, w: &World) {
        let now = w.now;
        let bound = self.round_trip;
        let (due, later): (Vec<_>, Vec<_>) = self
            .moves_due
            .drain(..)
            .partition(|&(_, _, _, t)| now.since(t) >= bound);
        self.moves_due = later;
        let quiet =
            |since: Option<Instant>| since.is_none_or(|t| now.since(t) > Duration::from_secs(10));
        // An operator's edit on a slave (a deleted SA cannot be moved) is
        // the digest's to repair.
        let edited = self
            .last_manual_edit
            .is_some_and(|t| now.since(t) <= 2 * self.digest_interval + Duration::from_secs(10));
        for (m, old, key, at) in due {
            if edited {
                continue;
            }
            let master_since = self.master_since[m];
            let Some(ms) = w.node_stats(m) else { continue };
            // Only a move the master forwarded while settled as master, on
            // an undisturbed network, with nothing changed on it since.
            if ms.run_state != RunState::Master
                || self.tamper
                || self.lossy
                || w.links.is_split()
                || !quiet(self.disturbed_at)
                || master_since.is_none_or(|t| at.since(t) <= Duration::from_secs(5))
                || !w.hosts[m].kernel.has_mature_sa(&key)
                || w.hosts[m].kernel.changed_since(&key, at)
            {
                continue;
            }
            let want = w.hosts[m].kernel.canonical_sa(&key);
            // Where the master's stream stood at the move (the nodes run
            // after the workload and the tick within one instant).
            let head = self.heads[m]
                .iter()
                .rev()
                .find(|&&(t, _)| t <= at)
                .map(|&(_, p)| p);
            for (n, h) in w.hosts.iter().enumerate() {
                let Some(node) = h.node.as_ref().filter(|_| n != m && !h.wrong_key) else {
                    continue;
                };
                let s = node.stats();
                let connected = node.peers().any(|p| {
                    p.addr == w.hosts[m].addr
                        && p.connected
                        && p.stats
                            .up_since
                            .is_some_and(|t| at.since(t) > Duration::from_secs(5))
                });
                let synced = s.following == Some((w.hosts[m].addr, true)) || self.legacy;
                // A v2 slave still applying deltas the master forwarded
                // before the move (the backlog a long snapshot leaves in the
                // ring, seed 222966362) gets the move after them: in order,
                // later than a round trip; that it arrives at all is the
                // convergence oracle's.
                let behind = head.is_some_and(|head| {
                    node.peers().any(|p| {
                        p.addr == w.hosts[m].addr
                            && p.stats.applied.epoch == head.epoch
                            && p.stats.applied.seq < head.seq
                    })
                });
                if !connected
                    || !synced
                    || behind
                    || s.run_state != RunState::Slave
                    || s.pfkey_queued > 0
                    || s.syncing
                    || s.repairing
                {
                    continue;
                }
                let held = h.kernel.has_mature_sa(&old) || h.kernel.has_mature_sa(&key);
                if !held {
                    continue;
                }
                self.move_checks += 1;
                if h.kernel.canonical_sa(&key) != want {
                    self.fail(
                        now,
                        Some(n),
                        format!(
                            "MOBIKE move of {key:?} on master n{m} did not reach this slave within {} ms",
                            bound.as_millis()
                        ),
                    );
                }
            }
        }
    }

    /// After convergence every bundle of master `m` (both SAs synced) is
    /// grouped alike on slave `i`, and the outbound path of its first SA
    /// applies the same transforms on both; and the other way round.
    fn check_bundles(&mut self, now: Instant, m: usize, i: usize, w: &World) {
        let keep = keep_all();
        let (mk, sk) = (&w.hosts[m].kernel, &w.hosts[i].kernel);
        let synced = mk.canonical(&keep);
        // The master's bundles, then the slave's: a grouping only a slave
        // has sends its traffic through an SA the master's would not use
        // once it takes over.
        let ours = mk.bundles().into_iter().map(|b| (b, false));
        for ((first, next), slaves) in ours.chain(sk.bundles().into_iter().map(|b| (b, true))) {
            if !synced.sas.contains_key(&first) || !synced.sas.contains_key(&next) {
                continue;
            }
            self.bundle_checks += 1;
            let (want, got) = (mk.outbound_path(&first), sk.outbound_path(&first));
            if want != got {
                let what = if slaves {
                    format!("{first:?} grouped with {next:?} here but not on master n{m}")
                } else {
                    format!("bundle of {first:?} not grouped as on master n{m}")
                };
                self.fail(
                    now,
                    Some(i),
                    format!("{what}: outbound path {got:?}, master's {want:?}"),
                );
                return;
            }
        }
    }

    /// The kernel refused a write (of type `msg_type`) of node `i`. Only
    /// an ADD of an SA the node holds already (a snapshot meeting what
    /// the stream brought), and a DELETE, an UPDATE (a move) or a repair's
    /// X_GRPSPIS of what is not there (gone, or not yet repaired) are part
    /// of normal operation;
    /// anything else a real kernel would refuse is a sync write lost,
    /// noted for [`final_check`](Self::final_check). (A move that never
    /// arrives is the MOBIKE check's.)
    pub fn kernel_refused(&mut self, i: usize, msg_type: u8, e: Errno, now: Instant) {
        use sasyncd_core::pfkey::consts::{
            SADB_ADD, SADB_DELETE, SADB_UPDATE, SADB_X_DELFLOW, SADB_X_GRPSPIS,
        };
        *self.refusals.entry(e).or_default() += 1;
        let expected = (msg_type == SADB_ADD && e == Errno::EEXIST)
            || (matches!(
                msg_type,
                SADB_DELETE | SADB_X_DELFLOW | SADB_UPDATE | SADB_X_GRPSPIS
            ) && e == Errno::ESRCH);
        if !expected {
            self.sync_refused += 1;
            if self.first_sync_refusal.is_none() {
                self.first_sync_refusal = Some((now, i, msg_type, e));
            }
        }
    }

    /// Checks that run at every timer: slaves following, moves kept, and
    /// (v2) a slave's SADB emptied by a snapshot. (A demotion held too
    /// long is the runtime's check, `world/demotion.rs`.)
    pub fn tick(&mut self, w: &World) {
        let now = w.now;
        self.check_follow(w);
        self.check_moves(w);
        for (i, h) in w.hosts.iter().enumerate() {
            if let Some(s) = w.node_stats(i).filter(|s| s.run_state == RunState::Master) {
                let q = &mut self.heads[i];
                if q.back().is_none_or(|&(_, p)| p != s.position) {
                    q.push_back((now, s.position));
                }
                while q.len() > 2
                    && q.get(1)
                        .is_some_and(|&(t, _)| now.since(t) > Duration::from_secs(5))
                {
                    q.pop_front();
                }
            } else {
                self.heads[i].clear();
            }
            let syncing = w.node_stats(i).is_some_and(|s| s.syncing);
            match (syncing, self.sync_start_sas[i]) {
                (true, None) => self.sync_start_sas[i] = Some(h.kernel.sa_count()),
                (false, Some(_)) => self.sync_start_sas[i] = None,
                _ => {}
            }
            if !self.legacy
                && syncing
                && self.sync_start_sas[i].is_some_and(|n| n > 0)
                && h.kernel.sa_count() == 0
            {
                let master_has = w.hosts.iter().enumerate().any(|(j, x)| {
                    j != i
                        && w.node_stats(j)
                            .is_some_and(|s| s.run_state == RunState::Master)
                        && x.kernel.sa_count() > 0
                });
                if master_has {
                    self.fail(
                        now,
                        Some(i),
                        "a full snapshot left the slave with an empty SADB (v2)".into(),
                    );
                }
            }
        }
    }

    /// Follow: once a node has been carp MASTER for [`follow_bound`], every
    /// slave that had a session with it when it took over follows it (the
    /// v2 slave asked it for its stream; the legacy slave takes its data).
    /// A slave still following the old master is blind to the new one's
    /// changes: if the new master dies too, they are lost.
    fn check_follow(&mut self, w: &World) {
        let now = w.now;
        let due: Vec<(usize, Instant)> = self
            .follow_due
            .iter()
            .copied()
            .filter(|&(_, t)| now.since(t) >= self.follow_bound)
            .collect();
        self.follow_due
            .retain(|&(_, t)| now.since(t) < self.follow_bound);
        for (m, t) in due {
            // Master since `t` or before (a split brain that ended at `t`
            // left it the only one).
            let still_master = self.master_since[m].is_some_and(|s| s <= t)
                && w.node_stats(m)
                    .is_some_and(|s| s.run_state == RunState::Master);
            let only_master = (0..w.hosts.len()).filter(|&j| j != m).all(|j| {
                w.node_stats(j)
                    .is_none_or(|s| s.run_state != RunState::Master)
            });
            // Messages sent during a partition arrive up to a retransmission
            // interval after it heals (TCP's backoff, not the node's).
            let settle = 2 * self.rto.as_millis() as u64;
            let quiet = self
                .disturbed_at
                .is_none_or(|d| d.as_millis() + 1000 < t.as_millis())
                && self
                    .healed_at
                    .is_none_or(|h| h.as_millis() + settle < t.as_millis());
            if !still_master || !only_master || !quiet || self.tamper || w.links.is_split() {
                continue;
            }
            if w.hosts[m].wrong_key {
                continue;
            }
            let addr = w.hosts[m].addr;
            for (n, h) in w.hosts.iter().enumerate() {
                let Some(node) = h.node.as_ref().filter(|_| n != m && !h.wrong_key) else {
                    continue;
                };
                let s = node.stats();
                let connected = node.peers().any(|p| {
                    p.addr == addr && p.connected && p.stats.up_since.is_some_and(|u| u <= t)
                });
                if !connected || s.run_state != RunState::Slave {
                    continue;
                }
                self.follow_checks += 1;
                let follows = if self.legacy {
                    // A legacy slave follows whoever sends it data; it
                    // must at least not refuse the new master's.
                    s.following.is_none_or(|(a, _)| a == addr)
                } else {
                    s.following.is_some_and(|(a, _)| a == addr)
                };
                if !follows {
                    let who = s
                        .following
                        .map_or("no one".to_string(), |(a, _)| a.to_string());
                    self.fail(
                        now,
                        Some(n),
                        format!(
                            "follows {who}, not n{m} which became master {} ms ago",
                            now.as_millis() - t.as_millis()
                        ),
                    );
                }
            }
        }
    }

    /// Failover: the master `m` is about to crash. Every slave in sync that
    /// had a session with it (whoever it followed) must hold everything the
    /// master held a round trip before it died; a slave that is to become
    /// master next must not lack any of it. Followers must also have
    /// applied its delta stream up to where it was a second before.
    ///
    /// A split brain (two carp masters at once) lets each master hold what
    /// no slave of the other could have: while it lasts, and for a grace
    /// after it ends (`SPLIT_GRACE`, `SPLIT_GRACE_DEAD` if a master's
    /// death ends it), a dying master's SAs are not owed to anyone. The
    /// promise is the one doc/PROTOCOL.md states: the master left keeps
    /// its tables, and its slaves hold them once they settle.
    pub fn master_crashed(&mut self, m: usize, w: &World) {
        let now = w.now;
        let masters = w.carp.masters().len();
        // Its host goes down: carp reports no transition for it.
        let since = self.master_since[m].take();
        if masters >= 2 {
            self.split_settles_at = Some(now.add(SPLIT_GRACE_DEAD));
            return;
        }
        if self.split_settles_at.is_some_and(|t| now < t) {
            return;
        }
        let Some(ms) = w.node_stats(m) else { return };
        let quiet = |t: Option<Instant>| t.is_none_or(|t| now.since(t) > Duration::from_secs(10));
        let edits_repaired = self
            .last_manual_edit
            .is_none_or(|t| now.since(t) > 2 * self.digest_interval + Duration::from_secs(10));
        if ms.run_state != RunState::Master
            || self.tamper
            || self.lossy
            || !edits_repaired
            || w.links.is_split()
            || !quiet(self.disturbed_at)
            || since.is_none_or(|t| now.since(t) <= Duration::from_secs(5))
        {
            return;
        }
        let cutoff = Instant::from_millis(
            now.as_millis()
                .saturating_sub(self.round_trip.as_millis() as u64),
        );
        let held = w.hosts[m].kernel.held_since(&keep_all(), cutoff);
        // The master's head one second ago.
        let second_ago = now.as_millis().saturating_sub(1000);
        let old_head = self.heads[m]
            .iter()
            .rev()
            .find(|(t, _)| t.as_millis() <= second_ago)
            .map(|&(_, p)| p);
        for (n, h) in w.hosts.iter().enumerate() {
            let Some(node) = h.node.as_ref().filter(|_| n != m && !h.wrong_key) else {
                continue;
            };
            let s = node.stats();
            let connected = node.peers().any(|p| {
                p.addr == w.hosts[m].addr
                    && p.connected
                    && p.stats
                        .up_since
                        .is_some_and(|t| now.since(t) > Duration::from_secs(5))
            });
            // A slave still taking a snapshot or repairing buckets knows
            // it lacks something (and says so); only in-sync ones count.
            if !connected
                || s.run_state != RunState::Slave
                || s.pfkey_queued > 0
                || s.syncing
                || s.repairing
            {
                continue;
            }
            self.failover_checks += 1;
            let follows = s.following == Some((w.hosts[m].addr, true));
            if let Some(old) = old_head.filter(|_| !self.legacy && follows && !s.syncing) {
                if s.position.epoch != old.epoch || s.position.seq < old.seq {
                    self.fail(now, Some(n), format!(
                        "failover: slave at {}:{} but the master was at {}:{} a second before it died",
                        s.position.epoch, s.position.seq, old.epoch, old.seq
                    ));
                }
            }
            let missing = held.missing_from(&h.kernel.canonical(&keep_all()));
            if let Some(first) = missing.first() {
                let who = s
                    .following
                    .map_or("no one".to_string(), |(a, _)| a.to_string());
                self.fail(
                    now,
                    Some(n),
                    format!(
                        "failover: slave (following {who}) lacks what dying master n{m} held {} ms before: {} differences, first: {first}",
                        self.round_trip.as_millis(),
                        missing.len()
                    ),
                );
            }
        }
    }

    /// At the end, slave `i` equals master `m`: nothing stale survived (an
    /// entry the master does not have), nothing is missing or different.
    fn converged(&mut self, now: Instant, m: usize, i: usize, w: &World) {
        let Err(d) = w.hosts[m]
            .kernel
            .entries_equal_after_filter(&w.hosts[i].kernel, &keep_all())
        else {
            return;
        };
        let (stale, other): (Vec<_>, Vec<_>) =
            d.iter().partition(|x| x.ends_with("only on the right"));
        if let Some(first) = stale.first() {
            self.fail(
                now,
                Some(i),
                format!(
                    "{} stale entries survived convergence (master n{m} has none of them), first: {first}",
                    stale.len()
                ),
            );
        }
        if let Some(first) = other.first() {
            self.fail(
                now,
                Some(i),
                format!(
                    "not converged with master n{m}: {} entries missing or different, first: {first}",
                    other.len()
                ),
            );
        }
    }

    /// At the end: one master, every slave equal to it, demotions gone,
    /// adversaries rejected.
    pub fn final_check(&mut self, w: &World) {
        let now = w.now;
        let masters = w.carp.masters();
        if masters.len() != 1 {
            self.fail(
                now,
                None,
                format!("{} carp masters after healing", masters.len()),
            );
            return;
        }
        let m = masters[0];
        for (i, h) in w.hosts.iter().enumerate() {
            let Some(s) = w.node_stats(i) else {
                self.fail(now, Some(i), "sasyncd not running at the end".into());
                continue;
            };
            let want = if i == m {
                RunState::Master
            } else {
                RunState::Slave
            };
            if s.run_state != want {
                self.fail(
                    now,
                    Some(i),
                    format!("run state {} but carp says {}", s.run_state, want),
                );
            }
            if h.demotion.held > 0 {
                self.fail(
                    now,
                    Some(i),
                    "still holds its carp demotion at the end".into(),
                );
            }
            if i != m {
                self.converged(now, m, i, w);
                self.check_bundles(now, m, i, w);
            }
            // The nodes run with the smallest event queue core allows.
            if s.counters.events_overflow > 0 {
                self.fail(
                    now,
                    Some(i),
                    format!(
                        "event queue overflowed: {} events dropped",
                        s.counters.events_overflow
                    ),
                );
            }
        }
        let rejected: u64 = (0..w.hosts.len())
            .filter_map(|i| w.node_stats(i))
            .map(|s| s.counters.rejected_frames + s.counters.rejected_unknown)
            .sum::<u64>()
            + self.rejected_by_crashed;
        // A few alterations can land where nothing reads them any more (a
        // connection about to close, the tail of a stream); many cannot.
        if self.tamper && w.net_altered() >= 5 && rejected == 0 {
            self.fail(
                now,
                None,
                "the adversary altered traffic but no node rejected anything".into(),
            );
        }
        if self.stranger_attempts > 0 && self.rejected_strangers == 0 && w.stranger_connected() {
            self.fail(
                now,
                None,
                "a stranger connected but no node refused it".into(),
            );
        }
        if !self.legacy && !self.lossy && self.manual_edits == 0 && !self.tamper {
            let mism: u64 = (0..w.hosts.len())
                .filter_map(|i| w.node_stats(i))
                .map(|s| s.counters.digest_mismatches)
                .sum();
            if mism > 0 {
                self.fail(now, None, format!("{mism} digest mismatches with no loss injected: the delta stream lost something"));
            }
        }
        // With no operator edits, a slave's kernel takes every sync write
        // (what a real OpenBSD kernel would refuse, the simulated one does).
        if let (0, Some((at, i, t, e))) = (self.manual_edits, self.first_sync_refusal) {
            let n = self.sync_refused;
            self.fail(
                at,
                Some(i),
                format!(
                    "sync write refused by the kernel: {} with {e} ({n} refused in the run)",
                    sasyncd_core::pfkey::msg_type_name(t)
                ),
            );
        }
        for (e, n) in &self.refusals.clone() {
            if *e == Errno::EINVAL || *e == Errno::EMSGSIZE || *e == Errno::EPERM {
                self.fail(
                    now,
                    None,
                    format!("the kernel refused {n} of the nodes' writes with {e}"),
                );
            }
        }
    }
}
