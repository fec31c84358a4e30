//! Measures each takeover for the stories: from the new master's carp
//! transition, how long every slave took to be "in sync with master X",
//! and how many of the new master's SAs it lacked at worst meanwhile
//! (counting only SAs a round trip old, so that changes in flight do not
//! count). A slave that keeps following a dead master lacks every SA the
//! new one negotiates until it switches.

use std::time::Duration;

use sasyncd_core::state::RunState;
use sasyncd_core::time::Instant;

use crate::carp::LINK_STATE_UP;
use crate::oracle::round_trip;
use crate::world::World;

/// One slave during one takeover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveMeasure {
    /// The slave.
    pub node: usize,
    /// From the carp transition to its "in sync with master" (if it got there).
    pub in_sync_after: Option<Duration>,
    /// Most of the new master's SAs (a round trip old) it lacked at once.
    pub max_missing: usize,
}

/// One node becoming master, and its slaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// The new master.
    pub master: usize,
    /// Its carp transition.
    pub at: Instant,
    /// Every node that had a session with it as a slave when it took over.
    pub slaves: Vec<SlaveMeasure>,
}

/// Every takeover of a run.
#[derive(Debug, Clone, Default)]
pub struct Takeovers {
    /// In order.
    pub list: Vec<Takeover>,
    current: Option<usize>,
    last_sample: Option<Instant>,
    /// Every slave of the current takeover is in sync and lacks nothing.
    settled: bool,
}

/// How often a takeover is sampled, and for how long (walking a large
/// SADB on every event would dominate a run).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const SAMPLE_FOR: Duration = Duration::from_secs(60);

impl Takeovers {
    /// carp changed node `i`'s link state.
    pub fn carp_changed(&mut self, i: usize, link_state: u8, now: Instant) {
        if link_state == LINK_STATE_UP {
            self.list.push(Takeover {
                master: i,
                at: now,
                slaves: Vec::new(),
            });
            self.current = Some(self.list.len() - 1);
            self.settled = false;
        } else if self.current.is_some_and(|c| self.list[c].master == i) {
            self.current = None;
        }
    }

    /// Samples the current takeover.
    pub fn tick(&mut self, w: &World) {
        let Some(c) = self.current else { return };
        if self.settled
            || self
                .last_sample
                .is_some_and(|l| w.now.since(l) < SAMPLE_EVERY)
            || w.now.since(self.list[c].at) > SAMPLE_FOR
        {
            return;
        }
        self.last_sample = Some(w.now);
        let t = &mut self.list[c];
        let m = t.master;
        if w.node_stats(m)
            .is_none_or(|s| s.run_state != RunState::Master)
        {
            return;
        }
        let cutoff = Instant::from_millis(
            w.now
                .as_millis()
                .saturating_sub(round_trip(&w.sc).as_millis() as u64),
        );
        let addr = w.hosts[m].addr;
        let mut settled = true;
        for (n, h) in w.hosts.iter().enumerate() {
            let Some(node) = h.node.as_ref().filter(|_| n != m) else {
                continue;
            };
            let had_session = node.peers().any(|p| {
                p.addr == addr && p.connected && p.stats.up_since.is_some_and(|u| u <= t.at)
            });
            let known = t.slaves.iter().any(|s| s.node == n);
            if node.run_state() != RunState::Slave || !(known || had_session) {
                continue;
            }
            let missing = w.hosts[m]
                .kernel
                .mature_sas_since(cutoff)
                .filter(|k| !h.kernel.has_mature_sa(k))
                .count();
            let synced = node
                .peers()
                .find(|p| p.addr == addr)
                .and_then(|p| p.stats.last_sync)
                .filter(|&s| s >= t.at)
                .map(|s| s.since(t.at));
            let e = match t.slaves.iter_mut().position(|s| s.node == n) {
                Some(k) => &mut t.slaves[k],
                None => {
                    t.slaves.push(SlaveMeasure {
                        node: n,
                        in_sync_after: None,
                        max_missing: 0,
                    });
                    t.slaves.last_mut().expect("just pushed")
                }
            };
            e.max_missing = e.max_missing.max(missing);
            if e.in_sync_after.is_none() {
                e.in_sync_after = synced;
            }
            settled &= missing == 0 && e.in_sync_after.is_some();
        }
        self.settled = settled && !t.slaves.is_empty();
    }
}
