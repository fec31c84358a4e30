//! Telling the local IKE daemons to be active or passive (reference §12.4),
//! latest wins (fixes D-16).
//!
//! The node wants isakmpd and/or iked *active* while it is MASTER and
//! *passive* otherwise. The platform performs one [`IkeRequest`] at a time
//! and reports the outcome. A failure is retried after [`RETRY`] (4 s, the
//! original's `MONITOR_RETRY_TIMEOUT`), but only while that mode is still
//! what we want: unlike the original monitor, a request superseded by a
//! newer run state is never replayed, and a late result for it is ignored.

use core::time::Duration;

use crate::state::RunState;
use crate::time::Instant;

/// Delay before a failed request is tried again.
pub const RETRY: Duration = Duration::from_secs(4);

/// Which IKE daemons sasyncd controls (`control isakmpd|iked|all|none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Control {
    /// Write to isakmpd's fifo.
    pub isakmpd: bool,
    /// Send an imsg on iked's control socket.
    pub iked: bool,
}

impl Control {
    /// Whether any daemon is controlled at all.
    pub const fn any(self) -> bool {
        self.isakmpd || self.iked
    }
}

/// The mode the IKE daemons should be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeMode {
    /// Negotiate (we are MASTER).
    Active,
    /// Stay quiet (any other state).
    Passive,
}

impl IkeMode {
    /// Active when MASTER, passive otherwise.
    pub const fn for_state(state: RunState) -> IkeMode {
        match state {
            RunState::Master => IkeMode::Active,
            _ => IkeMode::Passive,
        }
    }
}

/// One request for the platform: put `control`'s daemons in `mode`, then
/// report the outcome with [`IkeControl::handle_result`] quoting `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeRequest {
    /// Identifies this attempt; every attempt (retries too) gets a new one.
    pub id: u32,
    /// What to tell the daemons.
    pub mode: IkeMode,
    /// Which daemons.
    pub control: Control,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing to do.
    Idle,
    /// A request for the wanted mode must be handed out.
    Queued,
    /// Request `id` is with the platform.
    InFlight,
    /// The last attempt failed; try again at this time.
    RetryAt(Instant),
}

/// Drives the IKE daemons toward the mode of our latest run state.
#[derive(Debug, Clone)]
pub struct IkeControl {
    control: Control,
    wanted: Option<IkeMode>,
    /// The mode the platform last confirmed.
    confirmed: Option<IkeMode>,
    phase: Phase,
    last_id: u32,
}

impl IkeControl {
    /// Controls the daemons named in `control` (nothing if neither).
    pub const fn new(control: Control) -> IkeControl {
        IkeControl {
            control,
            wanted: None,
            confirmed: None,
            phase: Phase::Idle,
            last_id: 0,
        }
    }

    /// A reloaded config controls other daemons. Whatever is in flight is
    /// superseded (its result will be ignored) and the mode for `state` is
    /// requested again from the new set. `false` if nothing changed.
    pub fn set_control(&mut self, control: Control, state: RunState) -> bool {
        if control == self.control {
            return false;
        }
        self.control = control;
        self.confirmed = None;
        if control.any() {
            self.wanted = Some(IkeMode::for_state(state));
            self.phase = Phase::Queued;
        } else {
            self.wanted = None;
            self.phase = Phase::Idle;
        }
        true
    }

    /// Which daemons are controlled.
    pub fn control(&self) -> Control {
        self.control
    }

    /// Our run state is (now) `state`. The first call, at start-up, always
    /// produces a request; later calls only when the wanted mode changes.
    pub fn handle_run_state(&mut self, state: RunState) {
        let mode = IkeMode::for_state(state);
        if !self.control.any() || self.wanted == Some(mode) {
            return;
        }
        self.wanted = Some(mode);
        self.phase = Phase::Queued;
    }

    /// The next request to perform, if any.
    pub fn poll_request(&mut self) -> Option<IkeRequest> {
        let mode = self.wanted?;
        if self.phase != Phase::Queued {
            return None;
        }
        self.last_id = self.last_id.wrapping_add(1);
        self.phase = Phase::InFlight;
        Some(IkeRequest {
            id: self.last_id,
            mode,
            control: self.control,
        })
    }

    /// Outcome of request `id`. Only the latest request counts: its failure
    /// schedules a retry at `now + RETRY`, its success ends the work.
    pub fn handle_result(&mut self, id: u32, ok: bool, now: Instant) {
        if self.phase != Phase::InFlight || id != self.last_id {
            return;
        }
        if ok {
            self.phase = Phase::Idle;
            self.confirmed = self.wanted;
        } else {
            self.phase = Phase::RetryAt(now.add(RETRY));
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::RetryAt(at) => Some(at),
            _ => None,
        }
    }

    /// Time passes: a due retry is queued again.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Phase::RetryAt(at) = self.phase {
            if now >= at {
                self.phase = Phase::Queued;
            }
        }
    }

    /// The mode we last asked for (what the daemons end up in).
    pub fn wanted(&self) -> Option<IkeMode> {
        self.wanted
    }

    /// The mode the platform last confirmed the daemons are in.
    pub fn confirmed(&self) -> Option<IkeMode> {
        self.confirmed
    }

    /// Whether the daemons are known to be in the wanted mode.
    pub fn is_settled(&self) -> bool {
        self.phase == Phase::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Control = Control {
        isakmpd: true,
        iked: true,
    };

    fn t(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    #[test]
    fn active_when_master_passive_otherwise() {
        let mut c = IkeControl::new(BOTH);
        c.handle_run_state(RunState::Slave);
        let r = c.poll_request().unwrap();
        assert_eq!((r.mode, r.control), (IkeMode::Passive, BOTH));
        assert_eq!(c.poll_request(), None, "one request at a time");
        c.handle_result(r.id, true, t(0));
        assert!(c.is_settled());
        c.handle_run_state(RunState::Master);
        assert_eq!(c.poll_request().unwrap().mode, IkeMode::Active);
        for s in [RunState::Init, RunState::Fail] {
            assert_eq!(IkeMode::for_state(s), IkeMode::Passive);
        }
    }

    #[test]
    fn initial_state_is_announced_even_if_passive() {
        let mut c = IkeControl::new(BOTH);
        c.handle_run_state(RunState::Init);
        assert_eq!(c.poll_request().map(|r| r.mode), Some(IkeMode::Passive));
    }

    #[test]
    fn same_mode_is_not_requested_again() {
        let mut c = IkeControl::new(BOTH);
        c.handle_run_state(RunState::Slave);
        let r = c.poll_request().unwrap();
        c.handle_result(r.id, true, t(0));
        c.handle_run_state(RunState::Fail);
        assert_eq!(c.poll_request(), None);
    }

    #[test]
    fn nothing_when_no_daemon_is_controlled() {
        let mut c = IkeControl::new(Control::default());
        c.handle_run_state(RunState::Master);
        assert_eq!(c.poll_request(), None);
        let only_iked = Control {
            isakmpd: false,
            iked: true,
        };
        let mut c = IkeControl::new(only_iked);
        c.handle_run_state(RunState::Master);
        assert_eq!(c.poll_request().unwrap().control, only_iked);
    }

    #[test]
    fn failure_retries_after_four_seconds_until_success() {
        let mut c = IkeControl::new(BOTH);
        c.handle_run_state(RunState::Master);
        let r = c.poll_request().unwrap();
        c.handle_result(r.id, false, t(10));
        assert_eq!(c.poll_timeout(), Some(t(14)));
        c.handle_timeout(t(13));
        assert_eq!(c.poll_request(), None);
        c.handle_timeout(t(14));
        let r2 = c.poll_request().unwrap();
        assert_eq!(r2.mode, IkeMode::Active);
        assert_ne!(r2.id, r.id);
        c.handle_result(r2.id, true, t(14));
        assert_eq!(c.poll_timeout(), None);
        c.handle_timeout(t(100));
        assert_eq!(c.poll_request(), None);
    }

    #[test]
    fn superseded_request_is_never_replayed() {
        // D-16: ACTIVE fails, node becomes SLAVE, PASSIVE succeeds; the
        // stale ACTIVE must not come back.
        let mut c = IkeControl::new(BOTH);
        c.handle_run_state(RunState::Master);
        let active = c.poll_request().unwrap();
        c.handle_result(active.id, false, t(0));
        c.handle_run_state(RunState::Slave);
        assert_eq!(c.poll_timeout(), None, "the retry is dropped");
        let passive = c.poll_request().unwrap();
        assert_eq!(passive.mode, IkeMode::Passive);
        c.handle_result(passive.id, true, t(1));
        for s in 1..20 {
            c.handle_timeout(t(s * 4));
            assert_eq!(c.poll_request(), None);
        }
        assert_eq!(c.wanted(), Some(IkeMode::Passive));
    }

    #[test]
    fn result_for_superseded_request_is_ignored() {
        let mut c = IkeControl::new(BOTH);
        c.handle_run_state(RunState::Master);
        let active = c.poll_request().unwrap();
        c.handle_run_state(RunState::Slave);
        let passive = c.poll_request().unwrap();
        // The late failure of ACTIVE must not schedule anything, and its
        // success must not mark PASSIVE done.
        c.handle_result(active.id, false, t(0));
        assert_eq!(c.poll_timeout(), None);
        c.handle_result(active.id, true, t(0));
        assert!(!c.is_settled());
        c.handle_result(passive.id, false, t(1));
        assert_eq!(c.poll_timeout(), Some(t(5)));
    }

    #[test]
    fn unknown_or_repeated_results_are_ignored() {
        let mut c = IkeControl::new(BOTH);
        c.handle_run_state(RunState::Master);
        let r = c.poll_request().unwrap();
        c.handle_result(r.id, true, t(0));
        c.handle_result(r.id, false, t(0));
        assert_eq!(c.poll_timeout(), None);
        assert!(c.is_settled());
    }

    #[test]
    fn requested_and_confirmed_modes() {
        let mut c = IkeControl::new(BOTH);
        c.handle_run_state(RunState::Slave);
        let r = c.poll_request().unwrap();
        assert_eq!((c.wanted(), c.confirmed()), (Some(IkeMode::Passive), None));
        c.handle_result(r.id, true, t(0));
        assert_eq!(c.confirmed(), Some(IkeMode::Passive));
        c.handle_run_state(RunState::Master);
        let r = c.poll_request().unwrap();
        c.handle_result(r.id, false, t(1));
        assert_eq!(
            (c.wanted(), c.confirmed()),
            (Some(IkeMode::Active), Some(IkeMode::Passive)),
            "a failure confirms nothing"
        );
    }

    #[test]
    fn new_control_supersedes_what_is_in_flight() {
        let mut c = IkeControl::new(BOTH);
        c.handle_run_state(RunState::Master);
        let old = c.poll_request().unwrap();
        let iked = Control {
            isakmpd: false,
            iked: true,
        };
        assert!(c.set_control(iked, RunState::Master));
        assert!(!c.set_control(iked, RunState::Master), "no change");
        c.handle_result(old.id, true, t(0));
        assert_eq!(c.confirmed(), None, "the old request's result is ignored");
        let r = c.poll_request().unwrap();
        assert_eq!((r.mode, r.control), (IkeMode::Active, iked));
        c.handle_result(r.id, true, t(0));
        assert_eq!(c.confirmed(), Some(IkeMode::Active));
        // Controlling nothing: no requests, nothing wanted.
        assert!(c.set_control(Control::default(), RunState::Master));
        assert_eq!(c.poll_request(), None);
        assert_eq!(c.wanted(), None);
        // Controlling again asks for the current state's mode.
        assert!(c.set_control(BOTH, RunState::Slave));
        assert_eq!(c.poll_request().unwrap().mode, IkeMode::Passive);
    }
}
