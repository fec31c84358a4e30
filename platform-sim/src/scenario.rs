//! What a simulated run does: how many nodes, which protocol, which
//! faults, for how long. Random scenarios come from a seed; the built-in
//! stories are fixed scripts.

use std::time::Duration;

use crate::net::NetConfig;
use crate::rng::Rng;

/// A scripted action at a simulated time.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Host crash: carp, sasyncd and IKE stop; `wipe` loses the kernel too.
    Crash { node: usize, wipe: bool },
    /// Whoever is carp MASTER at that moment crashes (if anyone), and its
    /// host comes back `down_for` later: failovers, and cascades of them
    /// when scripted close together.
    CrashMaster { wipe: bool, down_for: Duration },
    /// The host comes back (or, if only sasyncd stopped, sasyncd does).
    Restart { node: usize },
    /// sasyncd shuts down cleanly (the host, its carp and kernel stay up).
    Stop { node: usize },
    /// sasyncd restarts with the wrong shared key (`wrong`), or with the
    /// right one again: a misconfigured peer.
    Rekey { node: usize, wrong: bool },
    /// Split the cluster into groups that cannot reach each other.
    Partition(Vec<Vec<usize>>),
    /// Everyone reaches everyone again.
    Heal,
    /// Reset every connection of a node (like a flapping link).
    ResetConns { node: usize },
    /// The operator deletes an SA on a node by hand.
    ManualDelete { node: usize },
    /// The operator adds a stray SA on a node by hand.
    ManualAdd { node: usize },
    /// The workload (IKE daemons) stops / starts.
    Workload(bool),
    /// A stranger (unconfigured address) connects to a node and talks.
    Stranger { node: usize },
    /// An impostor connects to `node` from the address of its peer `peer`
    /// (spoofed) and sends junk (`junk`) or holds the connection silent.
    Impostor {
        node: usize,
        peer: usize,
        junk: bool,
    },
}

/// Known bugs to plant in the nodes (see `core::node::PlantedBugs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Slaves do not sweep after a full snapshot.
    pub skip_sweep: bool,
    /// Slaves apply data from anyone.
    pub apply_from_non_master: bool,
    /// The start-up demotion is never released.
    pub keep_demote: bool,
    /// Masters skip one delta per epoch.
    pub drop_delta: bool,
    /// v2 slaves keep following a master that another peer replaced.
    pub follow_dead_master: bool,
    /// Nodes whose event queue holds two events.
    pub short_event_queue: bool,
    /// Snapshot ADDs keep X_REPLAY and X_LIFETIME_LASTUSE.
    pub snapshot_keeps_counters: bool,
    /// Masters forward every UPDATE as an ADD.
    pub update_always_add: bool,
    /// Snapshots and repairs do not re-group bundles.
    pub no_regroup: bool,
    /// v2 slaves keep following a split brain's loser once it steps down.
    pub keep_split_loser: bool,
    /// An inbound connection may evict any connection of its peer.
    pub inbound_evicts_any: bool,
    /// A failed inbound handshake restarts the outbound backoff.
    pub inbound_failure_backs_off: bool,
    /// A legacy alias may be evicted by an inbound connection.
    pub alias_evictable: bool,
    /// A legacy refusal does not probe the session it keeps.
    pub no_alias_probe: bool,
    /// A repair keeps a slave's grouping the master does not have.
    pub keep_foreign_groups: bool,
    /// A new master does not move its outbound sequence numbers past
    /// those carried (the XFRM swarm; OpenBSD nodes carry none).
    pub no_seq_jump: bool,
    /// Masters leave new SAs at the kernel's replay-event thresholds
    /// (XFRM swarm only).
    pub no_seq_thresholds: bool,
}

impl Bugs {
    /// Whether any bug is planted.
    pub fn any(&self) -> bool {
        self.skip_sweep
            || self.apply_from_non_master
            || self.keep_demote
            || self.drop_delta
            || self.follow_dead_master
            || self.short_event_queue
            || self.snapshot_keeps_counters
            || self.update_always_add
            || self.no_regroup
            || self.keep_split_loser
            || self.inbound_evicts_any
            || self.inbound_failure_backs_off
            || self.alias_evictable
            || self.no_alias_probe
            || self.keep_foreign_groups
            || self.no_seq_jump
    }
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name for reports.
    pub name: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// Cluster size (2..=5).
    pub nodes: usize,
    /// OpenBSD's protocol instead of v2.
    pub legacy: bool,
    /// Network parameters.
    pub net: NetConfig,
    /// Mean time between IKE actions on the master.
    pub ike_interval: Duration,
    /// Most SA pairs the IKE workload keeps at once.
    pub ike_pairs: usize,
    /// How long the workload and the faults run.
    pub active: Duration,
    /// The quiet time after healing, within which every slave must equal
    /// the master (see `oracle`).
    pub settle: Duration,
    /// Faults at fixed times.
    pub script: Vec<(Duration, Action)>,
    /// Random faults per simulated minute during the active phase.
    pub faults_per_min: f64,
    /// Adversary on the links (v2 only): probability per segment.
    pub tamper: f64,
    /// The PF_KEY listener queue is small, so promiscuous copies get lost.
    pub lossy_promisc: bool,
    /// The anti-entropy period.
    pub digest_interval: Duration,
    /// Planted bugs.
    pub bugs: Bugs,
    /// Most snapshot marks each node's platform gives it (`None`: as many
    /// as needed), as firmware with a small fixed buffer would.
    pub mark_limit: Option<usize>,
    /// SAs (and half as many flows) every host holds at boot, with a
    /// little divergence between hosts (see `world::preload`).
    pub preload: usize,
    /// Impostors connect from the peers' addresses, in bursts, some right
    /// after a peer went down (see `world::impostors`). Off in
    /// [`Scenario::random`] unless asked for (`--impostors`), so the
    /// traces of existing seeds stay as they were.
    pub impostors: bool,
}

/// Longest time to convergence once the network is healed and the
/// workload paused, for v2: reconnect backoff cap (30 s) + carp election
/// (≤ 3.5 s) + handshake and snapshot (≤ 5 s at simulated sizes) + one
/// anti-entropy period for losses only a digest can reveal (the scenario's
/// `digest_interval`) + its dump and resync (≤ 5 s) + margin.
pub fn settle_bound(digest_interval: Duration) -> Duration {
    Duration::from_secs(30 + 4 + 5 + 5 + 10) + digest_interval
}

/// What a snapshot of a large preloaded table adds to [`settle_bound`]'s
/// 5 s, for each of the two it may take: the one running at the heal, and
/// the repair after the next digest, a full snapshot when most buckets
/// differ (seed 1096678944: 13 048 entries took 24.6 s each on its slow
/// link, and the deltas evicted during the first made the second
/// necessary). 2.5 ms per entry is above every large seed measured.
pub fn large_table_settle(preload: usize) -> Duration {
    2 * Duration::from_micros(preload as u64 * 2_500).saturating_sub(Duration::from_secs(5))
}

/// Two or three partitions of `n` nodes into two groups or more, each
/// healed before the next (most short enough for the sessions to live
/// through them), then the death of whoever is master 2-20 s after the
/// last heal: within the last split brain's grace or after it (see
/// `oracle::SPLIT_GRACE`), when the failover check holds.
fn split_brain_storm(r: &mut Rng, n: usize, active: Duration) -> Vec<(Duration, Action)> {
    let ms = Duration::from_millis;
    let mut script = Vec::new();
    let mut at = ms(10_000 + r.below(10_000));
    for _ in 0..2 + r.index(2) {
        let groups = 2 + r.index(n - 1);
        let mut order: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            order.swap(k, r.index(k + 1));
        }
        // The first `groups` nodes found one group each; the rest join any.
        let mut parts: Vec<Vec<usize>> = order[..groups].iter().map(|&x| vec![x]).collect();
        for &x in &order[groups..] {
            let g = r.index(groups);
            parts[g].push(x);
        }
        let longest = if r.chance(0.8) { 20_000 } else { 40_000 };
        let heal = at + ms(4_000 + r.below(longest));
        if heal + ms(22_000) > active {
            break;
        }
        script.push((at, Action::Partition(parts)));
        script.push((heal, Action::Heal));
        at = heal + ms(3_000 + r.below(12_000));
    }
    if let Some(&(last, _)) = script.last() {
        script.push((
            last + ms(2_000 + r.below(18_000)),
            Action::CrashMaster {
                wipe: false,
                down_for: ms(2_000 + r.below(10_000)),
            },
        ));
    }
    script
}

impl Scenario {
    /// A quiet base: `n` nodes, v2, no faults.
    pub fn base(name: &str, seed: u64, n: usize) -> Scenario {
        let digest_interval = Duration::from_secs(60);
        Scenario {
            name: name.to_string(),
            seed,
            nodes: n,
            legacy: false,
            net: NetConfig::default(),
            ike_interval: Duration::from_millis(500),
            ike_pairs: 30,
            active: Duration::from_secs(120),
            settle: settle_bound(digest_interval),
            script: Vec::new(),
            faults_per_min: 0.0,
            tamper: 0.0,
            lossy_promisc: false,
            digest_interval,
            bugs: Bugs::default(),
            mark_limit: None,
            preload: 0,
            impostors: false,
        }
    }

    /// A random scenario for swarm testing: node count 2–5, a fault mix,
    /// sizes, timings, legacy or v2, all drawn from `seed`.
    pub fn random(seed: u64) -> Scenario {
        let mut r = Rng::new(seed ^ 0x5a5a_5a5a_1234_5678);
        let n = 2 + r.index(4);
        let mut s = Scenario::base("random", seed, n);
        s.legacy = r.chance(0.2);
        s.digest_interval = Duration::from_secs(20 + r.below(41));
        s.settle = settle_bound(s.digest_interval);
        s.active = Duration::from_secs(40 + r.below(80));
        s.ike_interval = Duration::from_millis(100 + r.below(900));
        s.net.latency = Duration::from_millis(1 + r.below(20));
        s.net.jitter = Duration::from_millis(r.below(5));
        s.net.bandwidth = [1_000_000, 10_000_000, 100_000_000][r.index(3)];
        s.net.sndbuf = [4096, 16 * 1024, 64 * 1024][r.index(3)];
        s.faults_per_min = [0.0, 0.5, 1.0, 2.0][r.index(4)];
        if !s.legacy {
            s.tamper = if r.chance(0.2) { 0.01 } else { 0.0 };
            s.lossy_promisc = r.chance(0.3);
        }
        // Firmware-like mark storage, too small for a full snapshot.
        if r.chance(0.15) {
            s.mark_limit = Some(8 + r.index(40));
        }
        // A large SADB at boot, diverged a little on every slave: the
        // sweep and the bucket repair at scale (marks that fit a bucket).
        if !s.legacy && r.chance(0.01) {
            s.preload = 10_000 + r.index(5_000);
            s.mark_limit = r.chance(0.3).then(|| 1024 + r.index(3072));
            s.settle = settle_bound(s.digest_interval) + large_table_settle(s.preload);
        }
        // Split brains with three or more masters over time: the random
        // faults cut the cluster in two, once in a while; one v2 seed in
        // 25 of three nodes or more gets a storm of its own.
        if !s.legacy && n >= 3 && r.chance(0.04) {
            s.script.extend(split_brain_storm(&mut r, n, s.active));
        }
        // Small mark storage, large tables and lossy queues at once (one
        // v2 seed in 10 000 by the draws above): one in 500 more. Each is
        // a few seconds of work, a large share of a swarm's time.
        if !s.legacy && r.chance(0.002) {
            s.preload = 10_000 + r.index(5_000);
            s.mark_limit = Some(1024 + r.index(3072));
            s.lossy_promisc = true;
            s.settle = settle_bound(s.digest_interval) + large_table_settle(s.preload);
        }
        s.name = format!(
            "random n={} {} faults/min={} tamper={} lossy={} marks={}{}{}",
            n,
            if s.legacy { "legacy" } else { "v2" },
            s.faults_per_min,
            s.tamper,
            s.lossy_promisc,
            s.mark_limit.map_or("any".to_string(), |l| l.to_string()),
            if s.preload > 0 {
                format!(" preload={}", s.preload)
            } else {
                String::new()
            },
            if s.script.is_empty() {
                ""
            } else {
                " split-brain-storm"
            }
        );
        s
    }

    /// The built-in stories, by name.
    pub fn story(name: &str, seed: u64) -> Option<Scenario> {
        let secs = Duration::from_secs;
        let mut s = Scenario::base(name, seed, 3);
        s.active = secs(90);
        match name {
            // Start-up with demotion, snapshot, live traffic, a master
            // crash, failover, the old master's return and resync.
            "failover" => {
                s.script = vec![
                    (
                        secs(30),
                        Action::Crash {
                            node: 0,
                            wipe: false,
                        },
                    ),
                    (secs(60), Action::Restart { node: 0 }),
                ];
            }
            // A slave's connections are reset and it resumes from the delta
            // ring; later a short partition (shorter than carp's master-down
            // time) stalls it without any reconnect.
            "reconnect" => {
                s.script = vec![
                    (secs(30), Action::ResetConns { node: 2 }),
                    (secs(50), Action::Partition(vec![vec![0, 1], vec![2]])),
                    (secs(52), Action::Heal),
                ];
            }
            // Both halves elect a master; after the heal one wins and the
            // other resyncs with a sweep.
            "split-brain" => {
                s.script = vec![
                    (secs(20), Action::Partition(vec![vec![0], vec![1, 2]])),
                    (secs(50), Action::Heal),
                ];
            }
            // Split brain, then the winner dies: after the heal (soon
            // enough for the sessions to live through the partition) carp
            // keeps n0, n1 steps down, and n2, which followed n1, must
            // follow n0 and hold all it holds by the time it dies.
            "split-brain-failover" => {
                s.script = vec![
                    (secs(20), Action::Partition(vec![vec![0], vec![1, 2]])),
                    (secs(32), Action::Heal),
                    (
                        secs(60),
                        Action::CrashMaster {
                            wipe: false,
                            down_for: secs(10),
                        },
                    ),
                ];
            }
            // Three masters at once, then two, each split brain healed
            // before the next, and the winner of the last one dies: every
            // slave ends with the master left, whichever it followed.
            "split-brain-storm" => {
                s.nodes = 4;
                s.script = vec![
                    (
                        secs(15),
                        Action::Partition(vec![vec![0], vec![1], vec![2, 3]]),
                    ),
                    (secs(35), Action::Heal),
                    (secs(45), Action::Partition(vec![vec![0, 3], vec![1, 2]])),
                    (secs(60), Action::Heal),
                    (
                        secs(75),
                        Action::CrashMaster {
                            wipe: false,
                            down_for: secs(10),
                        },
                    ),
                ];
            }
            // Lost promiscuous copies and manual edits, healed by digests.
            "repair" => {
                s.lossy_promisc = true;
                s.digest_interval = secs(30);
                s.settle = settle_bound(s.digest_interval);
                s.script = vec![
                    (secs(20), Action::ManualDelete { node: 1 }),
                    (secs(25), Action::ManualAdd { node: 2 }),
                ];
            }
            // An adversary flips, truncates, injects and replays bytes, a
            // stranger connects, a peer runs for a while with the wrong key,
            // and one sasyncd is stopped and started cleanly.
            "adversary" => {
                s.tamper = 0.02;
                s.script = vec![
                    (secs(10), Action::Stranger { node: 0 }),
                    (
                        secs(20),
                        Action::Rekey {
                            node: 2,
                            wrong: true,
                        },
                    ),
                    (
                        secs(40),
                        Action::Rekey {
                            node: 2,
                            wrong: false,
                        },
                    ),
                    (secs(55), Action::Stop { node: 1 }),
                    (secs(65), Action::Restart { node: 1 }),
                ];
            }
            // Impostors connect from the peers' addresses while sessions
            // are up, while a peer is down, in both directions.
            "impostors" => {
                s.impostors = true;
                s.script = vec![
                    (secs(30), Action::Stop { node: 1 }),
                    (secs(50), Action::Restart { node: 1 }),
                ];
            }
            // A busy master on a slow network dies, and so does its
            // successor 15 s later: every slave must have followed the
            // successor at once, or the third master lacks its SAs.
            "failover-under-load" => {
                s.nodes = 4;
                s.ike_interval = Duration::from_millis(50);
                s.ike_pairs = 200;
                s.net.latency = Duration::from_millis(20);
                s.net.jitter = Duration::from_millis(5);
                s.net.bandwidth = 1_000_000;
                s.net.sndbuf = 64 * 1024;
                s.script = vec![
                    (
                        secs(40),
                        Action::Crash {
                            node: 0,
                            wipe: false,
                        },
                    ),
                    (
                        secs(55),
                        Action::Crash {
                            node: 1,
                            wipe: false,
                        },
                    ),
                    (secs(70), Action::Restart { node: 0 }),
                    (secs(75), Action::Restart { node: 1 }),
                ];
            }
            // OpenBSD's protocol (no anti-entropy, flush before snapshot).
            "legacy" => {
                s.legacy = true;
                s.script = vec![
                    (
                        secs(30),
                        Action::Crash {
                            node: 0,
                            wipe: false,
                        },
                    ),
                    (secs(60), Action::Restart { node: 0 }),
                ];
            }
            _ => return None,
        }
        Some(s)
    }

    /// Names of the built-in stories.
    pub const STORIES: &'static [&'static str] = &[
        "failover",
        "reconnect",
        "split-brain",
        "repair",
        "adversary",
        "legacy",
        "failover-under-load",
        "split-brain-failover",
        "split-brain-storm",
        "impostors",
    ];
}
