//! Plain-data statistics for the daemon's status output and for tests.

use core::net::IpAddr;

use crate::crypto::Crypto;
use crate::dialect::Dialect;
use crate::random::Random;
use crate::state::{Position, RunState};
use crate::time::Instant;

use super::ike::IkeMode;
use super::machine::Node;
use super::marks::MarkStore;
use super::peer_table::{ConnStatus, PeerIndex, PeerStats};

/// Node-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Kernel changes the master put in its delta ring.
    pub forwarded: u64,
    /// PF_KEY messages from the master queued for our kernel.
    pub applied: u64,
    /// PF_KEY messages the platform wrote to our kernel.
    pub pfkey_written: u64,
    /// Kernel error replies to our own writes.
    pub kernel_errors: u64,
    /// A snapshot's ADDs of SAs we held already (EEXIST): expected.
    pub kernel_exists: u64,
    /// PF_KEY data refused because its sender was not master (or we are).
    pub refused_data: u64,
    /// Inbound connections refused: not a configured peer.
    pub rejected_unknown: u64,
    /// Connections closed because of bad frames (auth, framing, replay).
    pub rejected_frames: u64,
    /// Full snapshots started / finished (master side).
    pub snapshots_started: u64,
    /// Full snapshots fully sent.
    pub snapshots_done: u64,
    /// Slaves resumed from the delta ring without a snapshot.
    pub ring_resumes: u64,
    /// Resync requests honoured (master side).
    pub resyncs: u64,
    /// Sweeps completed (slave side).
    pub sweeps: u64,
    /// Entries deleted by sweeps.
    pub swept: u64,
    /// Digests announced (master side).
    pub digests_sent: u64,
    /// Digests that matched / did not match our tables (slave side).
    pub digests_matched: u64,
    /// Digest mismatches (each leads to a resync request).
    pub digest_mismatches: u64,
    /// Sweeps that deleted nothing because the snapshot overflowed the
    /// platform's mark storage (slave side).
    pub sweeps_skipped: u64,
    /// Repairs of some buckets sent (master side).
    pub repairs: u64,
    /// Slaves from another stream resumed at our head, to be repaired by
    /// bucket instead of a full snapshot (master side).
    pub resumes_with_repair: u64,
    /// Repairs of some buckets applied (slave side).
    pub repairs_done: u64,
    /// Digest differences found right after resuming with a new master:
    /// expected after a failover, repaired by bucket, not a sign of loss.
    pub resume_repairs: u64,
    /// Split-brain episodes seen.
    pub split_brain_episodes: u64,
    /// Events that did not fit the event queue (never expected).
    pub events_overflow: u64,
}

/// A snapshot of a node's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStats {
    /// Our run state.
    pub run_state: RunState,
    /// When we entered it (start-up for the first one).
    pub run_state_since: Instant,
    /// Whether the config locked it.
    pub locked: bool,
    /// The carp link state the platform last reported (`None`: not yet,
    /// or the interface could not be read).
    pub link_state: Option<u8>,
    /// Whether we hold a carp demotion.
    pub demote_held: bool,
    /// When our start-up demotion is released at the latest, while it is
    /// held or being raised.
    pub demote_deadline: Option<Instant>,
    /// The mode we last asked the IKE daemons for (`None`: none are
    /// controlled).
    pub ike_requested: Option<IkeMode>,
    /// The mode the platform last confirmed they are in.
    pub ike_confirmed: Option<IkeMode>,
    /// Whether a split brain is going on now.
    pub split_brain: bool,
    /// Master: the head of the delta stream. Slave: the applied position.
    pub position: Position,
    /// How full the delta ring is.
    pub ring: RingFill,
    /// PF_KEY messages waiting for the kernel.
    pub pfkey_queued: usize,
    /// Slave: a full snapshot or its sweep is in progress.
    pub syncing: bool,
    /// Slave: our tables are known or likely to differ from the master's
    /// (after following it from another stream, or a digest that did not
    /// match) and buckets are being repaired.
    pub repairing: bool,
    /// v2 slave: the master whose stream we take, and whether it started.
    pub following: Option<(IpAddr, bool)>,
    /// The dump job in progress, if any ("sweep", "digest check", "digest").
    pub job: Option<&'static str>,
    /// Connections whose reading is paused.
    pub paused_reads: usize,
    /// Counters.
    pub counters: Counters,
}

/// How full the master's delta ring is: when it is full, the oldest deltas
/// go, and a slave that was away longer than the ring covers needs a full
/// snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingFill {
    /// Bytes in use (records, their length fields, a wrap gap).
    pub bytes: usize,
    /// The ring's size in bytes.
    pub capacity: usize,
    /// Deltas held.
    pub records: usize,
}

/// Where a peer's connection is in its life (ordered from down to up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionPhase {
    /// No connection (waiting for the next dial, or for the peer).
    Down,
    /// We are dialling it.
    Connecting,
    /// Connected; the v2 handshake is under way.
    Handshake,
    /// A session is up.
    Up,
}

impl SessionPhase {
    /// A short name for status output.
    pub const fn name(self) -> &'static str {
        match self {
            SessionPhase::Down => "down",
            SessionPhase::Connecting => "connecting",
            SessionPhase::Handshake => "handshake",
            SessionPhase::Up => "up",
        }
    }
}

impl core::fmt::Display for SessionPhase {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One peer as the status output shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    /// Its address.
    pub addr: IpAddr,
    /// The port we dial.
    pub port: u16,
    /// The state it announced in its current session.
    pub state: Option<RunState>,
    /// Whether a session is up (`phase == Up`).
    pub connected: bool,
    /// Where its connection is.
    pub phase: SessionPhase,
    /// Since when (`None` for a peer that was never connected).
    pub phase_since: Option<Instant>,
    /// Its counters.
    pub stats: PeerStats,
    /// When we may dial it next (its reconnect backoff), if a wait is
    /// scheduled: only our own failures may move it, never what anyone
    /// does from its address.
    pub next_dial: Option<Instant>,
}

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect> Node<'a, C, R, M, D> {
    /// Node-wide statistics.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            run_state: self.role.state(),
            run_state_since: self.state_since,
            locked: self.role.is_locked(),
            link_state: self.role.link_state(),
            demote_held: self.demote.is_raised(),
            demote_deadline: self.demote.deadline(),
            ike_requested: self.ike.wanted(),
            ike_confirmed: self.ike.confirmed(),
            split_brain: self.split_brain,
            position: if self.role.state() == RunState::Master {
                self.ring.position()
            } else {
                self.slave.applied()
            },
            ring: RingFill {
                bytes: self.ring.bytes_used(),
                capacity: self.ring.capacity(),
                records: self.ring.len(),
            },
            pfkey_queued: self.pfkeyq.len(),
            syncing: self.slave.receiving() || self.job.is_sweep(),
            repairing: self.slave.repairing(),
            following: self.slave.following().and_then(|f| {
                let (p, _) = self.slot_of(f.conn)?;
                Some((self.peer_addrs[p], f.synced))
            }),
            job: self.job.name(),
            paused_reads: self.conns.iter().filter(|c| c.paused()).count(),
            counters: self.counters,
        }
    }

    /// Per-peer statistics, in configuration order.
    pub fn peers(&self) -> impl Iterator<Item = PeerView> + use<'_, 'a, C, R, M, D> {
        self.table.iter().map(|(i, p)| {
            let (phase, phase_since) = self.phase_of(i);
            let mut stats = p.stats;
            if let Some(lag) = self.lag_of(i) {
                stats.lag = lag;
            }
            PeerView {
                addr: p.addr(),
                port: p.port(),
                state: p.state(),
                connected: phase == SessionPhase::Up,
                phase,
                phase_since,
                stats,
                next_dial: self.conns.backoff(i.0).poll_timeout(),
            }
        })
    }

    /// A peer's session phase and since when: up from its session, else
    /// from the connection that got furthest.
    fn phase_of(&self, i: PeerIndex) -> (SessionPhase, Option<Instant>) {
        let Some(p) = self.table.get(i) else {
            return (SessionPhase::Down, None);
        };
        if matches!(p.status(), ConnStatus::Connected(_)) {
            return (SessionPhase::Up, p.stats.up_since);
        }
        let conns = self.conns.of_peer(i.0);
        let mut best: Option<(SessionPhase, Instant)> = None;
        for c in conns {
            let phase = if c.connecting() {
                SessionPhase::Connecting
            } else if c.handshaking() {
                SessionPhase::Handshake
            } else {
                continue;
            };
            best = match best {
                Some((b, t)) if b > phase || (b == phase && t <= c.opened()) => Some((b, t)),
                _ => Some((phase, c.opened())),
            };
        }
        match best {
            Some((phase, since)) => (phase, Some(since)),
            None => (SessionPhase::Down, p.stats.down_since),
        }
    }

    /// Master (v2): how far behind our head a connected slave is, from
    /// what it acknowledged; `None` where the stored value stands.
    fn lag_of(&self, i: PeerIndex) -> Option<u64> {
        if self.legacy || self.role.state() != RunState::Master {
            return None;
        }
        let p = self.table.get(i)?;
        if !matches!(p.status(), ConnStatus::Connected(_))
            || !matches!(p.state(), Some(s) if s != RunState::Master)
        {
            return None;
        }
        Some(lag(self.ring.position(), p.stats.acked_by))
    }
}

/// Deltas between what a slave acknowledged and the head: all of this
/// epoch's if it acknowledged nothing in it.
pub(super) fn lag(head: Position, acked: Position) -> u64 {
    if acked.epoch == head.epoch {
        head.seq.saturating_sub(acked.seq)
    } else {
        head.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_acknowledged_position() {
        let head = Position { epoch: 7, seq: 10 };
        assert_eq!(lag(head, Position { epoch: 7, seq: 10 }), 0);
        assert_eq!(lag(head, Position { epoch: 7, seq: 4 }), 6);
        assert_eq!(lag(head, Position::NONE), 10, "nothing acknowledged yet");
        assert_eq!(lag(head, Position { epoch: 3, seq: 99 }), 10);
    }

    #[test]
    fn phases_order_from_down_to_up() {
        assert!(SessionPhase::Down < SessionPhase::Connecting);
        assert!(SessionPhase::Connecting < SessionPhase::Handshake);
        assert!(SessionPhase::Handshake < SessionPhase::Up);
        assert_eq!(std::format!("{}", SessionPhase::Handshake), "handshake");
    }
}
