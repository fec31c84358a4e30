//! Ownership of our carp demotion (reference §2, §7.6; fixes D-18, D-19).
//!
//! A freshly booted box must not preempt the master before it has the SAs,
//! so at start-up it adds one demotion to its carp group (the platform only
//! succeeds if the group is already demoted, as the original does) and takes
//! it away again as soon as it has what it needs:
//!
//! * the snapshot from the peer that announced itself MASTER is complete; or
//! * every configured peer has announced a state and none is MASTER (there
//!   is nothing to wait for); or
//! * [`MAX_HOLD`] (60 s) has passed since start-up; or
//! * the node shuts down (D-19: the original could leave it raised).
//!
//! Unlike the original's global ENDSNAP counter (D-18), the decision is
//! made from the current peer states, and this type remembers whether *we*
//! hold a demotion so it is released exactly once.

use core::time::Duration;

use crate::state::RunState;
use crate::time::Instant;

/// The longest we keep our demotion (`CARP_DEMOTE_MAXTIME`).
pub const MAX_HOLD: Duration = Duration::from_secs(60);

/// What the platform must do to the carp group's demote counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoteEffect {
    /// Add one demotion if the group is already demoted; report the outcome
    /// with [`Demotion::handle_raise_result`].
    Raise,
    /// Remove the demotion we added.
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not started yet.
    Idle,
    /// `Raise` is queued for the platform.
    RaiseQueued,
    /// The platform is raising; the outcome is not known yet.
    Raising,
    /// We hold one demotion.
    Raised,
    /// Nothing held, and nothing will be raised again.
    Done,
}

/// Tracks our contribution to the carp group's demote counter.
#[derive(Debug, Clone)]
pub struct Demotion {
    phase: Phase,
    deadline: Option<Instant>,
    /// A release condition arrived while the raise was in flight.
    release_wanted: bool,
    effect: Option<DemoteEffect>,
    raised_at: Option<Instant>,
    released_at: Option<Instant>,
}

impl Default for Demotion {
    fn default() -> Self {
        Demotion::new()
    }
}

impl Demotion {
    /// Nothing raised yet.
    pub const fn new() -> Demotion {
        Demotion {
            phase: Phase::Idle,
            deadline: None,
            release_wanted: false,
            effect: None,
            raised_at: None,
            released_at: None,
        }
    }

    /// Start-up: ask the platform to raise the demotion once, and start the
    /// [`MAX_HOLD`] clock. Later calls do nothing.
    pub fn start(&mut self, now: Instant) {
        if self.phase == Phase::Idle {
            self.phase = Phase::RaiseQueued;
            self.effect = Some(DemoteEffect::Raise);
            self.deadline = Some(now.add(MAX_HOLD));
        }
    }

    /// The next effect for the platform to perform.
    pub fn poll_effect(&mut self) -> Option<DemoteEffect> {
        let effect = self.effect.take();
        if effect == Some(DemoteEffect::Raise) {
            self.phase = Phase::Raising;
        }
        effect
    }

    /// Outcome of [`DemoteEffect::Raise`]: `ok` if the group's counter was
    /// raised by us (it is not when the group was not demoted to begin with).
    pub fn handle_raise_result(&mut self, ok: bool, now: Instant) {
        if self.phase != Phase::Raising {
            return;
        }
        if !ok {
            self.phase = Phase::Done;
            return;
        }
        self.phase = Phase::Raised;
        self.raised_at = Some(now);
        let expired = self.deadline.is_some_and(|d| now >= d);
        if self.release_wanted || expired {
            self.release(now);
        }
    }

    /// A peer finished sending us a snapshot. Only a snapshot from a peer
    /// that announced itself MASTER (`sender_state`) releases the demotion.
    pub fn handle_snapshot_complete(&mut self, sender_state: Option<RunState>, now: Instant) {
        if sender_state == Some(RunState::Master) {
            self.want_release(now);
        }
    }

    /// The announced states of all configured peers (`None` = not yet
    /// announced, or disconnected). Releases when every peer has announced
    /// SLAVE or FAIL: nobody is master, so no snapshot will come. INIT does
    /// not count as an answer: that peer may be about to become master.
    /// With no peers configured there is nothing to wait for.
    pub fn handle_peer_states<I>(&mut self, states: I, now: Instant)
    where
        I: IntoIterator<Item = Option<RunState>>,
    {
        let settled = states
            .into_iter()
            .all(|s| matches!(s, Some(RunState::Slave) | Some(RunState::Fail)));
        if settled {
            self.want_release(now);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::RaiseQueued | Phase::Raising | Phase::Raised => self.deadline,
            Phase::Idle | Phase::Done => None,
        }
    }

    /// Time passes: the demotion is released once [`MAX_HOLD`] is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.want_release(now);
        }
    }

    /// The node is shutting down: release what we hold; a raise that was
    /// not handed to the platform yet is dropped.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.want_release(now);
    }

    /// When the demotion we hold (or are raising) will be released at the
    /// latest; `None` once nothing is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.poll_timeout()
    }

    /// Whether we hold a demotion now.
    pub fn is_raised(&self) -> bool {
        self.phase == Phase::Raised
    }

    /// When our demotion was raised (for the "never held > 60 s" oracle).
    pub fn raised_at(&self) -> Option<Instant> {
        self.raised_at
    }

    /// When our demotion was released.
    pub fn released_at(&self) -> Option<Instant> {
        self.released_at
    }

    fn want_release(&mut self, now: Instant) {
        match self.phase {
            Phase::Idle | Phase::RaiseQueued => {
                self.phase = Phase::Done;
                self.effect = None;
            }
            Phase::Raising => self.release_wanted = true,
            Phase::Raised => self.release(now),
            Phase::Done => {}
        }
    }

    fn release(&mut self, now: Instant) {
        self.phase = Phase::Done;
        self.effect = Some(DemoteEffect::Release);
        self.released_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    fn raised() -> Demotion {
        let mut d = Demotion::new();
        d.start(t(0));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Raise));
        d.handle_raise_result(true, t(0));
        assert!(d.is_raised());
        d
    }

    #[test]
    fn raised_once_at_start() {
        let mut d = Demotion::new();
        assert_eq!(d.poll_effect(), None);
        d.start(t(0));
        d.start(t(1));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Raise));
        assert_eq!(d.poll_effect(), None);
        d.handle_raise_result(true, t(0));
        assert_eq!(d.raised_at(), Some(t(0)));
    }

    #[test]
    fn master_snapshot_releases_but_other_snapshots_do_not() {
        let mut d = raised();
        d.handle_snapshot_complete(Some(RunState::Slave), t(5));
        d.handle_snapshot_complete(None, t(5));
        assert_eq!(d.poll_effect(), None);
        d.handle_snapshot_complete(Some(RunState::Master), t(6));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Release));
        assert_eq!(d.released_at(), Some(t(6)));
        assert!(!d.is_raised());
    }

    #[test]
    fn released_when_all_peers_answered_and_none_is_master() {
        let mut d = raised();
        d.handle_peer_states([Some(RunState::Slave), None], t(2));
        assert_eq!(d.poll_effect(), None, "one peer has not answered");
        d.handle_peer_states([Some(RunState::Slave), Some(RunState::Init)], t(2));
        assert_eq!(d.poll_effect(), None, "INIT is not an answer");
        d.handle_peer_states([Some(RunState::Slave), Some(RunState::Master)], t(3));
        assert_eq!(d.poll_effect(), None, "a master exists: wait for it");
        d.handle_peer_states([Some(RunState::Slave), Some(RunState::Fail)], t(4));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Release));
    }

    #[test]
    fn no_peers_means_nothing_to_wait_for() {
        let mut d = raised();
        d.handle_peer_states([], t(1));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Release));
    }

    #[test]
    fn deadline_is_known_while_held() {
        let mut d = Demotion::new();
        assert_eq!(d.deadline(), None);
        d.start(t(3));
        assert_eq!(d.deadline(), Some(t(63)), "queued: the clock runs");
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Raise));
        d.handle_raise_result(true, t(3));
        assert_eq!(d.deadline(), Some(t(63)));
        d.handle_shutdown(t(4));
        assert_eq!(d.deadline(), None, "released");
    }

    #[test]
    fn released_after_sixty_seconds() {
        let mut d = raised();
        assert_eq!(d.poll_timeout(), Some(t(60)));
        d.handle_timeout(t(59));
        assert_eq!(d.poll_effect(), None);
        d.handle_timeout(t(60));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Release));
        assert_eq!(d.poll_timeout(), None);
        let held = d.released_at().unwrap().since(d.raised_at().unwrap());
        assert!(held <= MAX_HOLD);
    }

    #[test]
    fn never_released_twice() {
        let mut d = raised();
        d.handle_snapshot_complete(Some(RunState::Master), t(1));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Release));
        d.handle_snapshot_complete(Some(RunState::Master), t(2));
        d.handle_timeout(t(61));
        d.handle_shutdown(t(62));
        assert_eq!(d.poll_effect(), None);
        assert_eq!(d.released_at(), Some(t(1)));
    }

    #[test]
    fn failed_raise_is_never_released() {
        let mut d = Demotion::new();
        d.start(t(0));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Raise));
        d.handle_raise_result(false, t(0));
        d.handle_timeout(t(60));
        d.handle_shutdown(t(70));
        assert_eq!(d.poll_effect(), None);
        assert_eq!(d.raised_at(), None);
    }

    #[test]
    fn shutdown_releases_what_is_held() {
        let mut d = raised();
        d.handle_shutdown(t(3));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Release));
    }

    #[test]
    fn shutdown_before_raise_is_performed_drops_it() {
        let mut d = Demotion::new();
        d.start(t(0));
        d.handle_shutdown(t(0));
        assert_eq!(d.poll_effect(), None);
    }

    #[test]
    fn release_condition_during_raise_is_applied_after_it() {
        let mut d = Demotion::new();
        d.start(t(0));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Raise));
        d.handle_shutdown(t(1));
        assert_eq!(d.poll_effect(), None);
        d.handle_raise_result(true, t(1));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Release));
    }

    #[test]
    fn late_raise_result_past_deadline_releases_at_once() {
        let mut d = Demotion::new();
        d.start(t(0));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Raise));
        d.handle_raise_result(true, t(61));
        assert_eq!(d.poll_effect(), Some(DemoteEffect::Release));
    }
}
