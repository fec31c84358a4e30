//! Faults and the life of a host: boot, crash, sasyncd stop and start,
//! misconfiguration, partitions, operator edits, strangers.

use std::net::IpAddr;
use std::time::Duration;

use sasyncd_core::config::Config;
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::{Node, Settings};
use sasyncd_core::time::Instant;

use crate::kernel::Kernel;
use crate::pfmsg;
use crate::rng::Rng;
use crate::scenario::{Action, Scenario};

use super::sockets::Pending;
use super::{host_addr, SimRandom, World, VIP};

impl World {
    pub(super) fn random_faults(sc: &Scenario, rng: &mut Rng, script: &mut Vec<(Instant, Action)>) {
        let minutes = sc.active.as_secs_f64() / 60.0;
        let count = (sc.faults_per_min * minutes).round() as usize;
        let n = sc.nodes;
        for _ in 0..count {
            // Leave the first 10 s for start-up.
            let at = 10_000 + rng.below(sc.active.as_millis().saturating_sub(10_000).max(1) as u64);
            let t = Instant::from_millis(at);
            let node = rng.index(n);
            // The legacy protocol has no way to notice that a healed split
            // brain left slaves with the other master's snapshot (no digests,
            // no resync request), so legacy runs get no partitions.
            let kinds: &[u8] = if sc.legacy {
                &[0, 2, 6, 8]
            } else {
                &[0, 1, 2, 3, 4, 5, 6, 7, 8]
            };
            let action = match kinds[rng.index(kinds.len())] {
                0 => {
                    script.push((
                        t.add(Duration::from_millis(2_000 + rng.below(20_000))),
                        Action::Restart { node },
                    ));
                    Action::Crash {
                        node,
                        wipe: rng.chance(0.3),
                    }
                }
                1 => {
                    let cut = 1 + rng.index(n - 1);
                    let mut order: Vec<usize> = (0..n).collect();
                    for k in (1..n).rev() {
                        order.swap(k, rng.index(k + 1));
                    }
                    script.push((
                        t.add(Duration::from_millis(1_000 + rng.below(30_000))),
                        Action::Heal,
                    ));
                    Action::Partition(vec![order[..cut].to_vec(), order[cut..].to_vec()])
                }
                2 => Action::ResetConns { node },
                3 => Action::ManualDelete { node },
                4 => Action::ManualAdd { node },
                5 => Action::Stranger { node },
                6 => {
                    script.push((
                        t.add(Duration::from_millis(1_000 + rng.below(20_000))),
                        Action::Restart { node },
                    ));
                    Action::Stop { node }
                }
                7 => {
                    script.push((
                        t.add(Duration::from_millis(5_000 + rng.below(20_000))),
                        Action::Rekey { node, wrong: false },
                    ));
                    Action::Rekey { node, wrong: true }
                }
                _ => {
                    // A failover, often followed by a second one while the
                    // cluster is still settling from the first.
                    if rng.chance(0.6) {
                        script.push((
                            t.add(Duration::from_millis(3_000 + rng.below(20_000))),
                            Action::CrashMaster {
                                wipe: rng.chance(0.3),
                                down_for: Duration::from_millis(2_000 + rng.below(20_000)),
                            },
                        ));
                    }
                    Action::CrashMaster {
                        wipe: rng.chance(0.3),
                        down_for: Duration::from_millis(2_000 + rng.below(20_000)),
                    }
                }
            };
            script.push((t, action));
        }
    }

    pub(super) fn config_text(&self, i: usize) -> String {
        let mut s = String::new();
        for j in 0..self.sc.nodes {
            if j != i {
                s += &format!("peer {}\n", host_addr(j));
            }
        }
        // Each misconfigured node has a key of its own: two of them must
        // not be able to talk to each other either.
        s += &if self.hosts[i].wrong_key {
            format!("sharedkey \"wrong-key-node{i:02}\"\n")
        } else {
            "sharedkey \"sasyncd-sim-key!\"\n".to_string()
        };
        s += "interface carp0\ncontrol isakmpd\n";
        s += if self.sc.legacy {
            "protocol legacy\n"
        } else {
            "protocol v2\n"
        };
        s
    }

    /// Starts (or restarts) host `i`: the boot scripts demote the carp
    /// group, carp starts as backup, sasyncd starts, and the boot finishes
    /// (undemoting) two seconds later.
    pub(super) fn boot(&mut self, i: usize) {
        let now = self.now;
        self.hosts[i].up = true;
        self.hosts[i].boots += 1;
        let _ = self.carp.demote(i, 1, now);
        self.boot_ends.push((now.add(Duration::from_secs(2)), i));
        self.carp.start(i, now);
        self.net.restart(i);
        self.net.listen(i, true);
        self.start_sasyncd(i);
        self.trace.event(now, i, "boot");
    }

    pub(super) fn start_sasyncd(&mut self, i: usize) {
        let now = self.now;
        let cfg = match Config::parse(self.config_text(i).as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("simulator config: {}", e.display_with("sim.conf")),
        };
        let mut id = [0u8; 16];
        id[0] = i as u8 + 1;
        let mut settings = Settings::new(id, self.rng.u64(), self.hosts[i].pid);
        settings.digest_interval = self.sc.digest_interval;
        let node = Node::new(
            &cfg,
            settings,
            SoftCrypto,
            SimRandom(self.rng.fork()),
            match self.sc.mark_limit {
                Some(l) => crate::marks::VecMarks::with_limit(l),
                None => crate::marks::VecMarks::new(),
            },
            super::sim_storage(),
            now,
        );
        let node = match node {
            Ok(n) => Box::new(n),
            Err(e) => panic!("simulator node: {e}"),
        };
        #[cfg(feature = "planted-bugs")]
        let node = {
            let mut node = node;
            let b = self.sc.bugs;
            node.bugs = sasyncd_core::node::PlantedBugs {
                skip_sweep: b.skip_sweep,
                apply_from_non_master: b.apply_from_non_master,
                keep_demote: b.keep_demote,
                drop_delta: b.drop_delta,
                follow_dead_master: b.follow_dead_master,
                short_event_queue: b.short_event_queue,
                snapshot_keeps_counters: b.snapshot_keeps_counters,
                update_always_add: b.update_always_add,
                no_regroup: b.no_regroup,
                keep_split_loser: b.keep_split_loser,
                inbound_evicts_any: b.inbound_evicts_any,
                inbound_failure_backs_off: b.inbound_failure_backs_off,
                alias_evictable: b.alias_evictable,
                no_alias_probe: b.no_alias_probe,
                keep_foreign_groups: b.keep_foreign_groups,
                no_seq_jump: b.no_seq_jump,
                no_seq_thresholds: b.no_seq_thresholds,
                no_add_first: false,
            };
            node
        };
        let ls = self.carp.link_state(i);
        self.hosts[i].sockets.inputs.push_back(Pending::Link(ls));
        self.hosts[i].node = Some(node);
        self.collect_logs(i);
    }

    /// Clean shutdown of sasyncd alone: it releases its demotion and
    /// closes its connections; carp, the kernel and the IKE daemon stay.
    pub(super) fn stop_sasyncd(&mut self, i: usize) {
        let now = self.now;
        if self.hosts[i].node.is_none() {
            return;
        }
        super::runtime::shut_down(self, i);
        let s = self.node_stats(i);
        if let Some(s) = s {
            self.oracle.rejected_by_crashed +=
                s.counters.rejected_frames + s.counters.rejected_unknown;
            if self.hosts[i].wrong_key && s.counters.applied > 0 {
                self.oracle.fail(
                    now,
                    Some(i),
                    "a node with the wrong key applied data".into(),
                );
            }
        }
        if self.hosts[i].demotion.held > 0 {
            self.oracle.fail(
                now,
                Some(i),
                "shut down without releasing its demotion".into(),
            );
        }
        super::runtime::gone(self, i, false);
        self.trace.event(now, i, "sasyncd stopped");
    }

    pub(super) fn crash(&mut self, i: usize, wipe: bool) {
        let now = self.now;
        if !self.hosts[i].up {
            return;
        }
        if let Some(s) = self.node_stats(i) {
            self.oracle.rejected_by_crashed +=
                s.counters.rejected_frames + s.counters.rejected_unknown;
        }
        let was_master = self.carp.link_state(i) == crate::carp::LINK_STATE_UP;
        if was_master {
            self.with_oracle(|o, w| o.master_crashed(i, w));
        }
        let h = &mut self.hosts[i];
        h.up = false;
        h.ike.set_active(false, now, &h.kernel);
        super::runtime::gone(self, i, true);
        if wipe {
            let mut fresh = Kernel::new(self.rng.fork());
            fresh.add_rtable(crate::ike::RDOMAIN);
            if self.sc.lossy_promisc {
                fresh.set_rcvbuf(1024);
            }
            self.hosts[i].kernel = fresh;
        }
        self.boot_ends.retain(|(_, n)| *n != i);
        self.trace.event(
            now,
            i,
            if wipe {
                "host crashed (kernel lost)"
            } else {
                "host crashed"
            },
        );
    }

    pub(super) fn act(&mut self, a: Action) {
        let now = self.now;
        self.trace.global(now, format!("fault: {a:?}"));
        match a {
            Action::Crash { node, wipe } => self.crash(node, wipe),
            Action::CrashMaster { wipe, down_for } => {
                let master = (0..self.hosts.len()).find(|&i| {
                    self.hosts[i].up && self.carp.link_state(i) == crate::carp::LINK_STATE_UP
                });
                if let Some(m) = master {
                    self.crash(m, wipe);
                    let at = now.add(down_for);
                    let k = self.script.partition_point(|(t, _)| *t <= at);
                    self.script.insert(k, (at, Action::Restart { node: m }));
                }
            }
            Action::Restart { node } => {
                if !self.hosts[node].up {
                    self.boot(node);
                } else if self.hosts[node].node.is_none() {
                    self.start_sasyncd(node);
                }
            }
            Action::Stop { node } => self.stop_sasyncd(node),
            Action::Rekey { node, wrong } => {
                if self.hosts[node].up {
                    self.stop_sasyncd(node);
                    self.hosts[node].wrong_key = wrong;
                    self.start_sasyncd(node);
                    self.trace.event(
                        now,
                        node,
                        if wrong {
                            "sasyncd restarted with a wrong key"
                        } else {
                            "sasyncd restarted with the right key"
                        },
                    );
                }
            }
            Action::Partition(groups) => {
                let g: Vec<&[usize]> = groups.iter().map(|v| v.as_slice()).collect();
                self.links.partition(&g);
                self.oracle.disturbed(now);
            }
            Action::Heal => {
                self.links.heal();
                self.oracle.healed(now);
            }
            Action::ResetConns { node } => {
                let conns = self.hosts[node].sockets.net_conns();
                for c in conns {
                    self.net.reset(c);
                }
                self.oracle.disturbed(now);
            }
            Action::ManualDelete { node } => {
                let keys = self.hosts[node].kernel.sa_keys();
                if !keys.is_empty() {
                    let k = keys[self.rng.index(keys.len())];
                    let _ = self.hosts[node].kernel.manual_delete_sa(&k);
                    self.oracle.manual_edit(node, now);
                }
            }
            Action::ManualAdd { node } => {
                let spi = 0x7000_0000 | self.rng.u32() & 0xffff;
                let msg = stray_sa(spi);
                if self.hosts[node].kernel.manual_write(&msg).is_ok() {
                    self.oracle.manual_edit(node, now);
                }
            }
            Action::Workload(on) => self.workload = on,
            Action::Stranger { node } => {
                let s = match self.stranger {
                    Some(s) => s,
                    None => {
                        let s = self
                            .net
                            .add_host(IpAddr::V4(std::net::Ipv4Addr::new(10, 66, 0, 1)));
                        self.stranger = Some(s);
                        s
                    }
                };
                self.net.connect(s, host_addr(node), now);
                self.oracle.stranger_attempts += 1;
            }
            Action::Impostor { node, peer, junk } => self.impostor_connect(node, peer, junk),
        }
    }
}

/// An SA no IKE daemon negotiated: what an operator might add by hand.
fn stray_sa(spi: u32) -> Vec<u8> {
    use sasyncd_core::pfkey::consts::*;
    let dst = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 200));
    pfmsg::message(
        SADB_ADD,
        SADB_SATYPE_ESP,
        0,
        crate::kernel::OPERATOR_PID,
        &[
            pfmsg::sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 3, 12, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_SRC, VIP, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_DST, dst, 0),
            pfmsg::key_ext(SADB_EXT_KEY_AUTH, &[0x11; 20]),
            pfmsg::key_ext(SADB_EXT_KEY_ENCRYPT, &[0x22; 16]),
        ],
    )
}
