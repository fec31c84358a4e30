//! What a report is made from: the node's statistics copied at one
//! instant, with the wall-clock time of that instant, so that every report
//! (text or JSON) is consistent within itself and can be rendered, and
//! tested, away from the running node.

use std::net::IpAddr;
use std::time::Duration;

use sasyncd_core::config::Protocol;
use sasyncd_core::node::{NodeStats, PeerView};
use sasyncd_core::time::Instant;

/// A copy of what the node knows, taken at `now`.
#[derive(Debug, Clone)]
pub struct Status {
    /// The node's clock when the copy was taken.
    pub now: Instant,
    /// Unix time in milliseconds at `now`, so readers can turn the
    /// "so long ago" values into dates.
    pub wall_ms: u64,
    /// The peer protocol the node speaks.
    pub protocol: Protocol,
    /// Node-wide state and counters.
    pub node: NodeStats,
    /// Every configured peer, in configuration order.
    pub peers: Vec<PeerView>,
    /// Whether pfsync(4) is up (`None`: not known: no platform reports it
    /// yet). Without pfsync a new master's SAs carry stale replay counters.
    pub pfsync: Option<bool>,
}

impl Status {
    /// How long before `now` the instant `t` was.
    pub fn ago(&self, t: Instant) -> Duration {
        self.now.since(t)
    }

    /// How long after `now` the instant `t` is (zero if passed).
    pub fn until(&self, t: Instant) -> Duration {
        t.since(self.now)
    }

    /// The peer at `addr`.
    pub fn peer(&self, addr: IpAddr) -> Option<&PeerView> {
        self.peers.iter().find(|p| p.addr == addr)
    }
}

/// One line of `show stats`: a stable name (the JSON key), what it counts
/// (the text, after the number, as netstat -s writes it), and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// The stable name.
    pub name: &'static str,
    /// What is counted.
    pub what: &'static str,
    /// The count.
    pub value: u64,
}

/// Every counter, node-wide ones first, then totals over all peers.
pub fn counters(s: &Status) -> Vec<Counter> {
    let c = &s.node.counters;
    let sum =
        |f: &dyn Fn(&PeerView) -> u64| s.peers.iter().fold(0u64, |a, p| a.saturating_add(f(p)));
    let e =
        |f: fn(&sasyncd_core::node::ErrorCounts) -> u32| sum(&|p| u64::from(f(&p.stats.errors)));
    let list: [(&'static str, &'static str, u64); 37] = [
        (
            "forwarded",
            "kernel changes put in the delta stream (master)",
            c.forwarded,
        ),
        (
            "applied",
            "PF_KEY messages from the master queued for the kernel",
            c.applied,
        ),
        (
            "pfkey_written",
            "PF_KEY messages written to the kernel",
            c.pfkey_written,
        ),
        (
            "kernel_errors",
            "kernel errors in reply to our writes",
            c.kernel_errors,
        ),
        (
            "kernel_exists",
            "snapshot ADDs of SAs already held (expected)",
            c.kernel_exists,
        ),
        (
            "refused_data",
            "PF_KEY data refused: not from the master we follow",
            c.refused_data,
        ),
        (
            "rejected_unknown",
            "connections refused: not a configured peer",
            c.rejected_unknown,
        ),
        (
            "rejected_frames",
            "connections closed for bad frames",
            c.rejected_frames,
        ),
        (
            "snapshots_started",
            "full snapshots started (master)",
            c.snapshots_started,
        ),
        (
            "snapshots_done",
            "full snapshots completed (master)",
            c.snapshots_done,
        ),
        (
            "ring_resumes",
            "slaves resumed from the delta ring without a snapshot",
            c.ring_resumes,
        ),
        ("resyncs", "resync requests honoured (master)", c.resyncs),
        ("sweeps", "sweeps after a snapshot (slave)", c.sweeps),
        ("swept", "stale entries deleted by sweeps (slave)", c.swept),
        (
            "digests_sent",
            "anti-entropy digests sent (master)",
            c.digests_sent,
        ),
        (
            "digests_matched",
            "digests that matched our tables (slave)",
            c.digests_matched,
        ),
        (
            "digest_mismatches",
            "digests that did not match, each asking for a resync",
            c.digest_mismatches,
        ),
        (
            "split_brain_episodes",
            "split-brain episodes",
            c.split_brain_episodes,
        ),
        (
            "events_overflow",
            "events lost to a full queue (never expected)",
            c.events_overflow,
        ),
        (
            "peer_frames_in",
            "frames received from peers",
            sum(&|p| p.stats.frames_in),
        ),
        (
            "peer_frames_out",
            "frames sent to peers",
            sum(&|p| p.stats.frames_out),
        ),
        (
            "peer_bytes_in",
            "bytes received from peers",
            sum(&|p| p.stats.bytes_in),
        ),
        (
            "peer_bytes_out",
            "bytes sent to peers",
            sum(&|p| p.stats.bytes_out),
        ),
        (
            "peer_sessions",
            "peer sessions established",
            sum(&|p| u64::from(p.stats.sessions)),
        ),
        (
            "peer_reconnects",
            "peer sessions re-established",
            sum(&|p| u64::from(p.stats.reconnects)),
        ),
        (
            "peer_snapshots_sent",
            "full snapshots sent to peers",
            sum(&|p| u64::from(p.stats.snapshots_sent)),
        ),
        (
            "peer_snapshots_received",
            "full snapshots received from peers",
            sum(&|p| u64::from(p.stats.snapshots_received)),
        ),
        (
            "peer_repairs_sent",
            "bucket repairs sent to peers",
            sum(&|p| u64::from(p.stats.repairs_sent)),
        ),
        (
            "peer_repairs_received",
            "bucket repairs received from peers",
            sum(&|p| u64::from(p.stats.repairs_received)),
        ),
        (
            "peer_errors_auth",
            "frames failing authentication (bad MAC or hash)",
            e(|x| x.auth),
        ),
        (
            "peer_errors_replay",
            "frames out of sequence (replayed or lost)",
            e(|x| x.replay),
        ),
        (
            "peer_errors_wrong_key",
            "handshakes failing key confirmation (wrong key)",
            e(|x| x.wrong_key),
        ),
        (
            "peer_errors_oversize",
            "frames or messages too large",
            e(|x| x.oversize),
        ),
        (
            "peer_errors_malformed",
            "frames or messages that do not parse",
            e(|x| x.malformed),
        ),
        (
            "peer_errors_protocol",
            "messages not acceptable in the session's state",
            e(|x| x.protocol),
        ),
        (
            "peer_errors_kernel",
            "peer data our kernel refused",
            e(|x| x.kernel),
        ),
        (
            "peer_errors_io",
            "connection failures (connect, timeout, reset)",
            e(|x| x.io),
        ),
    ];
    list.iter()
        .map(|&(name, what, value)| Counter { name, what, value })
        .collect()
}

/// The protocol a peer speaks, as far as this node knows: the other one
/// when its frames showed it (a mismatch), ours once a session is up or
/// it synced, else unknown.
pub fn peer_protocol(ours: Protocol, p: &PeerView) -> Option<Protocol> {
    use sasyncd_core::node::{SessionPhase, PEER_SPEAKS_LEGACY, PEER_SPEAKS_V2};
    match p.stats.other_protocol {
        Some(r) if r == PEER_SPEAKS_V2 => return Some(Protocol::V2),
        Some(r) if r == PEER_SPEAKS_LEGACY => return Some(Protocol::Legacy),
        _ => {}
    }
    (p.phase == SessionPhase::Up || p.stats.last_sync.is_some()).then_some(ours)
}

/// The name of a carp interface's `LINK_STATE_*` value, as carp means it.
pub fn link_name(state: u8) -> &'static str {
    match state {
        0 => "unknown",
        1 => "invalid",
        2 => "backup",
        3 => "keepalive-down",
        4..=6 => "master",
        _ => "unexpected",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sasyncd_core::node::{Counters, ErrorKind, IkeMode, PeerStats, RingFill, SessionPhase};
    use sasyncd_core::state::{Position, RunState};

    pub(crate) fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A slave at 100 s following master 192.0.2.1, with a second peer
    /// that is down and had an auth error.
    pub(crate) fn sample() -> Status {
        let mut master = PeerStats {
            frames_in: 44,
            frames_out: 40,
            bytes_in: 8812,
            bytes_out: 3200,
            sessions: 2,
            reconnects: 1,
            snapshots_received: 1,
            last_snapshot_received: Some(Duration::from_millis(24)),
            repairs_received: 3,
            last_repair_received: Some(Duration::from_millis(7)),
            up_since: Some(t(90_000)),
            last_sync: Some(t(99_000)),
            applied: Position { epoch: 7, seq: 42 },
            acked_to: Position { epoch: 7, seq: 40 },
            ..PeerStats::default()
        };
        master.errors.io = 1;
        let mut other = PeerStats {
            down_since: Some(t(50_000)),
            ..PeerStats::default()
        };
        other.record_error(ErrorKind::Auth, "bad MAC", t(60_000));
        Status {
            now: t(100_000),
            wall_ms: 1_700_000_000_000,
            protocol: Protocol::V2,
            node: NodeStats {
                run_state: RunState::Slave,
                run_state_since: t(1_000),
                locked: false,
                link_state: Some(2),
                demote_held: true,
                demote_deadline: Some(t(130_000)),
                ike_requested: Some(IkeMode::Passive),
                ike_confirmed: Some(IkeMode::Passive),
                split_brain: false,
                position: Position { epoch: 7, seq: 42 },
                ring: RingFill {
                    bytes: 0,
                    capacity: 131_072,
                    records: 0,
                },
                pfkey_queued: 0,
                syncing: false,
                repairing: false,
                following: Some(("192.0.2.1".parse().unwrap(), true)),
                job: None,
                paused_reads: 0,
                counters: Counters {
                    applied: 42,
                    pfkey_written: 42,
                    sweeps: 1,
                    ..Counters::default()
                },
            },
            peers: vec![
                PeerView {
                    addr: "192.0.2.1".parse().unwrap(),
                    port: 500,
                    state: Some(RunState::Master),
                    connected: true,
                    phase: SessionPhase::Up,
                    phase_since: Some(t(90_000)),
                    stats: master,
                    next_dial: None,
                },
                PeerView {
                    addr: "2001:db8::3".parse().unwrap(),
                    port: 7500,
                    state: None,
                    connected: false,
                    phase: SessionPhase::Down,
                    phase_since: Some(t(50_000)),
                    stats: other,
                    next_dial: Some(t(51_000)),
                },
            ],
            pfsync: None,
        }
    }

    #[test]
    fn counters_sum_peers_and_have_unique_names() {
        let s = sample();
        let c = counters(&s);
        let get = |n: &str| c.iter().find(|x| x.name == n).unwrap().value;
        assert_eq!(get("applied"), 42);
        assert_eq!(get("peer_frames_in"), 44);
        assert_eq!(get("peer_errors_auth"), 1);
        assert_eq!(get("peer_errors_io"), 1);
        assert_eq!(get("peer_sessions"), 2);
        let mut names: Vec<_> = c.iter().map(|x| x.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), c.len());
    }

    #[test]
    fn times_are_relative_to_the_copy() {
        let s = sample();
        assert_eq!(s.ago(t(90_000)), Duration::from_secs(10));
        assert_eq!(s.until(t(130_000)), Duration::from_secs(30));
        assert_eq!(s.until(t(10)), Duration::ZERO);
        assert_eq!(link_name(2), "backup");
        assert_eq!(link_name(6), "master");
        assert_eq!(link_name(9), "unexpected");
    }
}
