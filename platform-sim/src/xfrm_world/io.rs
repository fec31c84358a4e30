//! The XFRM world as the runtime drives it (`world/runtime.rs`): its
//! kernel behind each node's netlink socket, and what the oracles see of
//! the nodes' writes.

use std::time::Duration;

use sasyncd_core::dialect::{Dialect, Identity};
use sasyncd_core::node::{IkeRequest, Table};
use sasyncd_core::platform::{Livelock, PfkeyWrite};
use sasyncd_core::state::RunState;
use sasyncd_core::time::Instant;
use sasyncd_core::xfrm::nl::Msg;
use sasyncd_core::xfrm::{msg, Xfrm};

use crate::carp::LinkEvent;
use crate::net::{NetEvent, NetEventKind};
use crate::world::runtime::{self, Cluster, IoEvent};
use crate::world::sockets::Pending;
use crate::xfrm_kernel::errno;

use super::{XfrmWorld, SYNCED_AFTER};

/// The XFRM world as the runtime drives it (`world/runtime.rs`).
impl Cluster for XfrmWorld {
    runtime::cluster_parts!(Xfrm);

    fn deadline(&self) -> Option<Instant> {
        let script = self.script.first().map(|(t, _, _)| *t);
        let ike = self.workload.then_some(self.next_ike);
        script.into_iter().chain(ike).min()
    }

    fn due(&self) -> Vec<String> {
        Vec::new()
    }

    fn fire(&mut self) {
        let now = self.now;
        // The kernels' timers: a keying daemon's reservation it never
        // completed (it lost the mastership meanwhile) runs out.
        let secs = self.secs();
        for h in &mut self.hosts {
            h.kernel.expire_acquires(secs);
        }
        while self.script.first().is_some_and(|(t, _, _)| *t <= now) {
            let (_, i, f) = self.script.remove(0);
            self.echo(|| format!("fault {f:?} on n{i}"));
            self.act(i, f);
        }
        self.carp.handle_timeout(now, &self.links);
        self.net.handle_timeout(now, &self.links);
        if self.workload && self.next_ike <= now {
            if let Some(m) = self.carp.masters().first().copied() {
                self.ike_step(m);
            }
            let gap = self.rng.range(50..1500);
            self.next_ike = now.add(Duration::from_millis(gap));
        }
    }

    fn carp_changed(&mut self, e: &LinkEvent) {
        self.takeovers += u64::from(e.link_state == crate::carp::LINK_STATE_UP);
        self.echo(|| format!("n{} carp link {}", e.node, e.link_state));
    }

    fn on_net(&mut self, e: NetEvent) {
        let now = self.now;
        let (node, nc) = (e.node, e.conn);
        if node >= self.hosts.len() || self.hosts[node].node.is_none() {
            if let NetEventKind::Accepted { .. } = e.kind {
                self.net.close(nc, now);
            }
            return;
        }
        let inputs = &mut self.hosts[node].sockets.inputs;
        inputs.push_back(Pending::Net(nc, e.kind));
    }

    /// The kernel's events, for the node's watch socket if it listens.
    fn read_kernel(&mut self, i: usize) -> bool {
        let h = &mut self.hosts[i];
        let events = h.kernel.take_events();
        if h.node.is_none() || !h.watch {
            return false;
        }
        let mut moved = false;
        for e in events {
            if e.group & crate::xfrm_kernel::WATCH_GROUPS != 0 {
                moved = true;
                h.sockets.inputs.push_back(Pending::Kernel(e.msg));
            }
        }
        moved
    }

    fn driven(&mut self, i: usize, state: RunState, settled: Result<Option<Instant>, Livelock>) {
        if std::env::var_os("SASYNCD_SIM_ECHO").is_some() {
            for (_, line) in crate::logcap::take() {
                eprintln!("[{:?}] n{i} {line}", self.now);
            }
        }
        let h = &mut self.hosts[i];
        if h.state != Some(state) {
            let (now, was) = (self.now, h.state);
            if std::env::var_os("SASYNCD_SIM_ECHO").is_some() {
                eprintln!("[{now:?}] n{i} {was:?} -> {state:?}");
            }
            // A takeover is checked if the node was a slave long enough
            // to hold the master's numbers.
            h.armed = state == RunState::Master
                && h.state == Some(RunState::Slave)
                && self.now >= h.started.add(SYNCED_AFTER);
            h.state = Some(state);
        }
        if let Err(e) = settled {
            self.fail_run(format!("n{i}: {e}"));
        }
    }

    fn fail(&mut self, node: Option<usize>, what: String) {
        match node {
            Some(i) => self.fail_run(format!("n{i}: {what}")),
            None => self.fail_run(what),
        }
    }

    /// A request on the node's netlink socket: the kernel's answer is
    /// its acknowledgement or refusal.
    fn kernel_write(&mut self, i: usize, m: &[u8]) -> PfkeyWrite {
        let secs = self.secs();
        #[cfg(test)]
        let mut owned = m.to_vec();
        #[cfg(test)]
        let m = match self.tamper {
            // Lost on the way: the node is told it was written.
            Some(t) if !t(i, &mut owned) => return PfkeyWrite::Written,
            _ => &owned[..],
        };
        let h = &mut self.hosts[i];
        let replies = h.kernel.handle(m, h.port, secs);
        let err = replies
            .iter()
            .filter_map(|r| Msg::new(r).ok().and_then(|r| r.error()))
            .find(|&e| e != 0);
        match err {
            None => PfkeyWrite::Written,
            Some(e) => {
                *h.refused.entry(e).or_default() += 1;
                let kind = Msg::new(m).map(|m| m.kind()).unwrap_or(0);
                // What a slave meets by nature: an add of what a snapshot
                // or the stream brought already, a delete or update of
                // what is gone or not here yet.
                let expected = matches!(
                    (kind, e),
                    (msg::NEWSA, errno::EEXIST)
                        | (msg::DELSA | msg::UPDSA, errno::ESRCH)
                        // Thresholds or a jump for a state the keying
                        // daemon deleted meanwhile.
                        | (msg::NEWAE, errno::ESRCH)
                        | (msg::DELPOLICY, errno::ENOENT)
                );
                // But a master's update of a state it holds must land: a
                // slave refusing it is out of step until a repair (the
                // larval state charon completes is one the slave never
                // got).
                if (kind, e) == (msg::UPDSA, errno::ESRCH) {
                    if let Some(Identity::Sa(key)) = Xfrm.identity(m) {
                        let w = &*self;
                        let held = (0..w.hosts.len()).any(|j| {
                            j != i
                                && w.hosts[j].state == Some(RunState::Master)
                                && w.hosts[j].kernel.holds(&key)
                        });
                        if held {
                            self.fail_run(format!(
                                "n{i}'s kernel refused the master's update of SA spi {:#x} it holds (ESRCH)",
                                u32::from_be(key.spi)
                            ));
                        }
                    }
                }
                if !expected {
                    self.fail_run(format!(
                        "n{i}'s kernel refused a write: type {kind:#x}, errno {e}"
                    ));
                }
                if e == errno::EINVAL || e == errno::ENOSYS {
                    self.fail_run(format!(
                        "n{i} wrote a request Linux refuses as malformed: type {kind:#x}, errno {e}"
                    ));
                }
                PfkeyWrite::Failed(e.unsigned_abs())
            }
        }
    }

    fn kernel_watch(&mut self, i: usize, on: bool) {
        self.hosts[i].watch = on;
        self.hosts[i].kernel.set_aevents_listened(on);
    }

    fn kernel_dump(&mut self, i: usize, table: Table) -> Vec<Vec<u8>> {
        let k = &mut self.hosts[i].kernel;
        match table {
            Table::Sadb => k.dump_states(),
            Table::Spd => k.dump_policies(),
        }
    }

    fn ike(&mut self, _i: usize, _request: IkeRequest) -> Option<bool> {
        Some(true)
    }

    fn observe(&mut self, _i: usize, _e: IoEvent) {}
}
