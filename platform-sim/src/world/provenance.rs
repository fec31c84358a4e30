//! Whose bytes a node applies: the safety oracle's bookkeeping, kept by
//! the runtime for every world. Each connection end's stream is logged
//! by offset with whether its host was master when it wrote; when a node
//! applies records from stream bytes, those bytes must have been written
//! by a master, and the node applying them must not be master itself
//! (sasyncd's first rule: only a master's data goes into a kernel, and a
//! master takes none).

use std::collections::BTreeMap;
use std::time::Duration;

use sasyncd_core::state::RunState;
use sasyncd_core::time::Instant;

use crate::net::ConnId as NetConn;

/// The log of who wrote what, and the verdicts of one pass over a node.
#[derive(Debug, Default)]
pub struct Provenance {
    /// Per sending connection end: (stream offset where a write ended,
    /// whether its host was master).
    sent: BTreeMap<NetConn, Vec<(u64, bool)>>,
    sent_total: BTreeMap<NetConn, u64>,
    /// When each host's sasyncd was last seen master.
    last_master: BTreeMap<usize, Instant>,
    /// During one pass over a node: what it applied, by whether its
    /// sender was master (`None`: not known).
    applied: Vec<Option<bool>>,
    /// During one pass over a node: its writes made while it was not
    /// known to be master, as entries of `sent`, which count as a
    /// master's if it is master once the pass ends (it may have become
    /// master on an input of this pass).
    unsure: Vec<(NetConn, usize)>,
    /// Stream offsets say nothing (an adversary changes lengths): the
    /// sender's side of the check is off.
    blind: bool,
}

impl Provenance {
    /// A log; `blind` when an adversary alters the streams' lengths.
    pub fn new(blind: bool) -> Provenance {
        Provenance {
            blind,
            ..Provenance::default()
        }
    }

    /// Host `i`'s sasyncd is master (or is about to be: it asked IKE to
    /// go active) at `now`.
    pub fn master_seen(&mut self, i: usize, now: Instant) {
        self.last_master.insert(i, now);
    }

    /// Host `i`'s node wrote `bytes` on `nc` at `now`.
    pub fn sent(&mut self, i: usize, nc: NetConn, bytes: usize, now: Instant) {
        if bytes == 0 {
            return;
        }
        // Bytes leave the node's buffer some time after they were queued:
        // count them as a master's if it was master within the last two
        // seconds (more than any buffer here takes to drain; the runtime
        // notes a master after every pass over it).
        let master = self
            .last_master
            .get(&i)
            .is_some_and(|&t| now.since(t) <= Duration::from_secs(2));
        let total = self.sent_total.entry(nc).or_default();
        *total += bytes as u64;
        let log = self.sent.entry(nc).or_default();
        if !master {
            self.unsure.push((nc, log.len()));
        }
        log.push((*total, master));
    }

    /// A node applied records from bytes `[from, to)` of what the other
    /// end of its connection `nc` wrote (`None`: a connection not mapped).
    pub fn applied(&mut self, nc: Option<NetConn>, from: u64, to: u64) {
        let sender_end = nc.map(|nc| NetConn(nc.0 ^ 1));
        let master_sent = sender_end.and_then(|se| self.master_bytes_in(se, from, to));
        self.applied.push(master_sent);
    }

    /// The pass over host `i` ended with its node in `state` at `now`:
    /// its unsure writes are settled, and what it applied is judged. The
    /// failures, if any.
    pub fn pass_done(&mut self, i: usize, state: RunState, now: Instant) -> Vec<&'static str> {
        let unsure = std::mem::take(&mut self.unsure);
        let mut failures = Vec::new();
        for master_sent in std::mem::take(&mut self.applied) {
            if state == RunState::Master {
                failures.push("applied data while master");
            }
            if master_sent == Some(false) {
                failures.push("applied data sent by a node that was not master");
            }
        }
        if state == RunState::Master {
            for (nc, k) in unsure {
                if let Some(e) = self.sent.get_mut(&nc).and_then(|log| log.get_mut(k)) {
                    e.1 = true;
                }
            }
            self.master_seen(i, now);
        }
        failures
    }

    /// Whether any byte in `[from, to)` of the stream written by `end`
    /// was written while its host was master. `None` when unknown
    /// (blind, or bytes of no host's).
    fn master_bytes_in(&mut self, end: NetConn, from: u64, to: u64) -> Option<bool> {
        if self.blind {
            return None;
        }
        let log = self.sent.get_mut(&end)?;
        let mut start = 0u64;
        let mut any = false;
        for &(e, m) in log.iter() {
            if e > from && start < to && m {
                any = true;
            }
            start = e;
        }
        // Forget what is consumed.
        let keep_from = log.iter().position(|&(e, _)| e > from).unwrap_or(log.len());
        if keep_from > 1 {
            log.drain(..keep_from - 1);
        }
        Some(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NetConn = NetConn(4);
    const A_PEER: NetConn = NetConn(5);

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A slave applying what a master wrote passes; applying what a
    /// slave wrote, or applying while master, fails.
    #[test]
    fn only_a_masters_bytes_are_applied_and_only_by_a_slave() {
        let mut p = Provenance::new(false);
        p.master_seen(0, at(1000));
        p.sent(0, A, 100, at(1500));
        p.sent(0, A, 50, at(5000)); // three seconds on: no longer master
        assert!(p.pass_done(0, RunState::Slave, at(5000)).is_empty());
        p.applied(Some(A_PEER), 0, 100);
        assert!(p.pass_done(1, RunState::Slave, at(5000)).is_empty());
        p.applied(Some(A_PEER), 100, 150);
        assert_eq!(
            p.pass_done(1, RunState::Slave, at(5000)),
            ["applied data sent by a node that was not master"]
        );
        p.applied(None, 0, 10);
        assert_eq!(
            p.pass_done(1, RunState::Master, at(5000)),
            ["applied data while master"]
        );
    }

    /// A write made before the node knew it was master counts as a
    /// master's if the pass ends with it master.
    #[test]
    fn a_write_in_the_pass_that_made_the_node_master_is_a_masters() {
        let mut p = Provenance::new(false);
        p.sent(0, A, 10, at(0));
        assert!(p.pass_done(0, RunState::Master, at(0)).is_empty());
        p.applied(Some(A_PEER), 0, 10);
        assert!(p.pass_done(1, RunState::Slave, at(0)).is_empty());
    }

    /// Blind: the sender's side is not judged.
    #[test]
    fn blind_logs_judge_only_the_receiver() {
        let mut p = Provenance::new(true);
        p.sent(0, A, 10, at(0));
        p.applied(Some(A_PEER), 0, 10);
        assert!(p.pass_done(1, RunState::Slave, at(0)).is_empty());
    }
}
