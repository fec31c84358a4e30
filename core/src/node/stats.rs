//! Plain-data statistics for the daemon's status output and for tests.

use core::net::IpAddr;

use crate::crypto::Crypto;
use crate::random::Random;
use crate::state::{Position, RunState};

use super::machine::Node;
use super::peer_table::{ConnStatus, PeerStats};

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
    /// Whether the config locked it.
    pub locked: bool,
    /// Whether we hold a carp demotion.
    pub demote_held: bool,
    /// Whether a split brain is going on now.
    pub split_brain: bool,
    /// Master: the head of the delta stream. Slave: the applied position.
    pub position: Position,
    /// PF_KEY messages waiting for the kernel.
    pub pfkey_queued: usize,
    /// Slave: a full snapshot or its sweep is in progress.
    pub syncing: bool,
    /// v2 slave: the master whose stream we take, and whether it started.
    pub following: Option<(IpAddr, bool)>,
    /// The dump job in progress, if any ("sweep", "digest check", "digest").
    pub job: Option<&'static str>,
    /// Connections whose reading is paused.
    pub paused_reads: usize,
    /// Counters.
    pub counters: Counters,
}

/// One peer as the status output shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    /// Its address.
    pub addr: IpAddr,
    /// The state it announced in its current session.
    pub state: Option<RunState>,
    /// Whether a session is up.
    pub connected: bool,
    /// Its counters.
    pub stats: PeerStats,
}

impl<
        C: Crypto + Clone,
        R: Random,
        const P: usize,
        const RING: usize,
        const MARKS: usize,
        const TX: usize,
    > Node<C, R, P, RING, MARKS, TX>
{
    /// Node-wide statistics.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            run_state: self.role.state(),
            locked: self.role.is_locked(),
            demote_held: self.demote.is_raised(),
            split_brain: self.split_brain,
            position: if self.role.state() == RunState::Master {
                self.ring.position()
            } else {
                self.applied
            },
            pfkey_queued: self.pfkeyq.len(),
            syncing: self.incoming.is_some() || self.job.is_sweep(),
            following: self.following.and_then(|f| {
                let (p, _) = self.slot_of(f.conn)?;
                Some((self.peer_addrs[p], f.synced))
            }),
            job: self.job.name(),
            paused_reads: self
                .conns
                .iter()
                .flatten()
                .flatten()
                .filter(|c| c.paused)
                .count(),
            counters: self.counters,
        }
    }

    /// Per-peer statistics, in configuration order.
    pub fn peers(&self) -> impl Iterator<Item = PeerView> + '_ {
        self.table.iter().map(|(_, p)| PeerView {
            addr: p.addr(),
            state: p.state(),
            connected: matches!(p.status(), ConnStatus::Connected(_)),
            stats: p.stats,
        })
    }
}
