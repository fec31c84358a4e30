//! Run-state tracking: what the carp interface says we are, unless the
//! config locked the role (reference §7).
//!
//! The platform reads the link state of the carp interface (at start-up with
//! an ioctl, later from routing-socket messages) and feeds the byte here.
//! The tracker reports a change only when the state really differs (§7.5),
//! so the node does its transition work (promiscuous mode, IKE control,
//! `CTL_STATE` to peers) exactly once per transition.
//!
//! A locked node (`mode master|slave`) never changes state: unlike the
//! original, a peer's `CTL_ERROR(CTL_STATE)` cannot make it re-read the
//! interface and fall out of its locked role (D-31).

use crate::state::RunState;

/// Maps an `ifi_link_state` byte of the carp interface to a run state
/// (reference §7.3): unknown/invalid → INIT, down (carp backup) → SLAVE,
/// up / half / full duplex → MASTER, anything else (including
/// `LINK_STATE_KALIVE_DOWN`) → FAIL.
pub const fn map_link_state(link_state: u8) -> RunState {
    match link_state {
        0 | 1 => RunState::Init,
        2 => RunState::Slave,
        4..=6 => RunState::Master,
        _ => RunState::Fail,
    }
}

/// A run-state transition the node must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// The state before.
    pub from: RunState,
    /// The state now.
    pub to: RunState,
}

impl StateChange {
    /// What to do with PF_KEY promiscuous mode: `Some(true)` when becoming
    /// MASTER, `Some(false)` when leaving it (the original never switched
    /// it off, D-35), `None` otherwise.
    pub fn promiscuous(&self) -> Option<bool> {
        match (self.from, self.to) {
            (_, RunState::Master) => Some(true),
            (RunState::Master, _) => Some(false),
            _ => None,
        }
    }
}

/// Tracks the node's own run state.
#[derive(Debug, Clone)]
pub struct RoleTracker {
    state: RunState,
    locked: bool,
    recheck: bool,
    /// The last link-state byte read (`None`: none yet, or unreadable).
    link_state: Option<u8>,
}

impl RoleTracker {
    /// A node whose role the config fixed (`mode master|slave`): it never
    /// changes and never looks at a carp interface.
    pub const fn locked(state: RunState) -> RoleTracker {
        RoleTracker {
            state,
            locked: true,
            recheck: false,
            link_state: None,
        }
    }

    /// A node that follows its carp interface. It starts in INIT; the
    /// platform's first link-state reading then reports the first change.
    pub const fn tracking() -> RoleTracker {
        RoleTracker {
            state: RunState::Init,
            locked: false,
            recheck: false,
            link_state: None,
        }
    }

    /// The current run state.
    pub const fn state(&self) -> RunState {
        self.state
    }

    /// Whether the config locked the role.
    pub const fn is_locked(&self) -> bool {
        self.locked
    }

    /// A link-state byte of the carp interface (from the start-up read, a
    /// routing message or a requested re-check). Returns the transition if
    /// the state changed; `None` if it is the same or the role is locked.
    pub fn handle_link_state(&mut self, link_state: u8) -> Option<StateChange> {
        self.link_state = Some(link_state);
        self.apply(map_link_state(link_state))
    }

    /// The carp interface could not be read at all: FAIL (unless locked).
    pub fn handle_read_failure(&mut self) -> Option<StateChange> {
        self.link_state = None;
        self.apply(RunState::Fail)
    }

    /// A reloaded config locks the role (`mode master|slave`): the node is
    /// in `state` from now on, whatever carp says. Returns the transition
    /// if the state changed.
    pub fn lock(&mut self, state: RunState) -> Option<StateChange> {
        self.locked = true;
        self.recheck = false;
        let from = self.state;
        self.state = state;
        (from != state).then_some(StateChange { from, to: state })
    }

    /// A reloaded config no longer locks the role: the node keeps its
    /// state until the carp interface is read again, which is requested
    /// at once (see [`poll_recheck`](Self::poll_recheck)).
    pub fn unlock(&mut self) {
        self.locked = false;
        self.recheck = true;
    }

    /// A reloaded config names another carp interface: an unlocked node
    /// reads it at once.
    pub fn handle_interface_changed(&mut self) {
        if !self.locked {
            self.recheck = true;
        }
    }

    /// The last link-state byte the platform reported (`None` before the
    /// first reading, or after the interface could not be read).
    pub const fn link_state(&self) -> Option<u8> {
        self.link_state
    }

    fn apply(&mut self, to: RunState) -> Option<StateChange> {
        self.recheck = false;
        if self.locked || to == self.state {
            return None;
        }
        let from = self.state;
        self.state = to;
        Some(StateChange { from, to })
    }

    /// A peer sent `CTL_ERROR` about our `CTL_STATE`: it did not understand
    /// the state we announced, so an unlocked node re-reads its carp
    /// interface. A locked node ignores it (D-31).
    pub fn handle_state_error(&mut self) {
        if !self.locked {
            self.recheck = true;
        }
    }

    /// Whether the platform should re-read the carp interface and feed the
    /// result to [`handle_link_state`](Self::handle_link_state).
    pub const fn recheck_requested(&self) -> bool {
        self.recheck
    }

    /// Takes the re-check request (the platform is about to do it).
    pub fn poll_recheck(&mut self) -> bool {
        core::mem::take(&mut self.recheck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_follows_reference_table() {
        let expect = [
            (0, RunState::Init),
            (1, RunState::Init),
            (2, RunState::Slave),
            (3, RunState::Fail),
            (4, RunState::Master),
            (5, RunState::Master),
            (6, RunState::Master),
            (7, RunState::Fail),
            (255, RunState::Fail),
        ];
        for (byte, state) in expect {
            assert_eq!(map_link_state(byte), state, "link state {byte}");
        }
    }

    #[test]
    fn change_reported_only_when_state_differs() {
        let mut t = RoleTracker::tracking();
        assert_eq!(t.state(), RunState::Init);
        assert_eq!(t.handle_link_state(0), None, "INIT to INIT is no change");
        assert_eq!(
            t.handle_link_state(4),
            Some(StateChange {
                from: RunState::Init,
                to: RunState::Master
            })
        );
        // Up, half and full duplex are all MASTER: no change between them.
        assert_eq!(t.handle_link_state(5), None);
        assert_eq!(t.handle_link_state(6), None);
        assert_eq!(
            t.handle_link_state(2),
            Some(StateChange {
                from: RunState::Master,
                to: RunState::Slave
            })
        );
        assert_eq!(t.state(), RunState::Slave);
        assert_eq!(t.handle_read_failure().map(|c| c.to), Some(RunState::Fail));
    }

    #[test]
    fn promiscuous_mode_follows_mastership() {
        let c = |from, to| StateChange { from, to };
        assert_eq!(
            c(RunState::Slave, RunState::Master).promiscuous(),
            Some(true)
        );
        assert_eq!(
            c(RunState::Master, RunState::Slave).promiscuous(),
            Some(false)
        );
        assert_eq!(
            c(RunState::Master, RunState::Fail).promiscuous(),
            Some(false)
        );
        assert_eq!(c(RunState::Init, RunState::Slave).promiscuous(), None);
    }

    #[test]
    fn locked_role_never_changes() {
        let mut t = RoleTracker::locked(RunState::Master);
        assert!(t.is_locked());
        assert_eq!(t.handle_link_state(2), None);
        assert_eq!(t.handle_read_failure(), None);
        assert_eq!(t.state(), RunState::Master);
    }

    #[test]
    fn state_error_rechecks_only_when_unlocked() {
        let mut t = RoleTracker::tracking();
        t.handle_state_error();
        assert!(t.recheck_requested());
        assert!(t.poll_recheck());
        assert!(!t.poll_recheck(), "taken once");

        // D-31: a peer cannot knock a locked node out of its role.
        let mut l = RoleTracker::locked(RunState::Slave);
        l.handle_state_error();
        assert!(!l.recheck_requested());
        assert!(!l.poll_recheck());
        assert_eq!(l.state(), RunState::Slave);
    }

    #[test]
    fn a_reading_satisfies_a_pending_recheck() {
        let mut t = RoleTracker::tracking();
        t.handle_state_error();
        let _ = t.handle_link_state(2);
        assert!(!t.recheck_requested());
    }

    #[test]
    fn the_last_reading_is_kept() {
        let mut t = RoleTracker::tracking();
        assert_eq!(t.link_state(), None);
        let _ = t.handle_link_state(2);
        assert_eq!(t.link_state(), Some(2));
        assert_eq!(t.handle_read_failure().map(|c| c.to), Some(RunState::Fail));
        assert_eq!(t.link_state(), None, "unreadable");
    }

    #[test]
    fn locking_a_tracking_node_enters_the_locked_state_now() {
        let mut t = RoleTracker::tracking();
        let _ = t.handle_link_state(2);
        assert_eq!(
            t.lock(RunState::Master),
            Some(StateChange {
                from: RunState::Slave,
                to: RunState::Master
            })
        );
        assert!(t.is_locked());
        assert_eq!(t.handle_link_state(2), None, "carp no longer counts");
        assert_eq!(t.lock(RunState::Master), None, "already there");
    }

    #[test]
    fn unlocking_keeps_the_state_and_asks_for_a_reading() {
        let mut t = RoleTracker::locked(RunState::Master);
        t.unlock();
        assert!(!t.is_locked());
        assert_eq!(t.state(), RunState::Master);
        assert!(t.poll_recheck());
        assert_eq!(
            t.handle_link_state(2).map(|c| c.to),
            Some(RunState::Slave),
            "carp decides again"
        );
    }

    #[test]
    fn another_interface_is_read_only_when_tracking() {
        let mut t = RoleTracker::tracking();
        t.handle_interface_changed();
        assert!(t.poll_recheck());
        let mut l = RoleTracker::locked(RunState::Slave);
        l.handle_interface_changed();
        assert!(!l.poll_recheck());
    }
}
