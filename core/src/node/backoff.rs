//! Outbound reconnect backoff for one peer (fixes D-17).
//!
//! The original retried disconnected peers only every 600 s. Here a failed
//! attempt (or a lost session) is retried after [`FIRST`] (1 s), doubling
//! per consecutive failure up to [`CAP`] (30 s), and a successful session
//! resets the sequence. Each delay is shortened by up to a quarter using a
//! random number from the caller, so that nodes that lost each other at
//! the same moment do not reconnect in lock-step; the result is a pure
//! function of the inputs, which keeps the simulator deterministic.

use core::time::Duration;

use crate::time::Instant;

/// Delay after the first failure (upper bound before jitter).
pub const FIRST: Duration = Duration::from_secs(1);
/// Largest delay.
pub const CAP: Duration = Duration::from_secs(30);

/// The delay after `failures` consecutive failures (≥ 1; 0 is treated as
/// 1): `min(FIRST · 2^(failures-1), CAP)`, minus a jitter of
/// `random mod (delay/4 + 1)` milliseconds.
pub fn delay(failures: u32, random: u32) -> Duration {
    let first = FIRST.as_millis() as u64;
    let cap = CAP.as_millis() as u64;
    let shift = failures.saturating_sub(1).min(16);
    let base = first.checked_shl(shift).unwrap_or(cap).min(cap);
    let jitter = u64::from(random) % (base / 4 + 1);
    Duration::from_millis(base - jitter)
}

/// Reconnect schedule of one peer.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
    next: Option<Instant>,
}

impl Backoff {
    /// No failures yet: the first attempt may happen at once.
    pub const fn new() -> Backoff {
        Backoff {
            failures: 0,
            next: None,
        }
    }

    /// An attempt failed or a session was lost at `now`: the next attempt
    /// is due at the returned instant.
    pub fn handle_failure(&mut self, now: Instant, random: u32) -> Instant {
        self.failures = self.failures.saturating_add(1);
        let at = now.add(delay(self.failures, random));
        self.next = Some(at);
        at
    }

    /// A session came up: the next failure starts again at [`FIRST`].
    pub fn handle_success(&mut self) {
        self.failures = 0;
        self.next = None;
    }

    /// When the next attempt is due, if one is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Whether an attempt may start at `now` (nothing scheduled, or due).
    pub fn may_attempt(&self, now: Instant) -> bool {
        self.next.is_none_or(|at| now >= at)
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn doubles_from_one_second_to_the_cap() {
        let expect = [1, 2, 4, 8, 16, 30, 30, 30];
        for (i, secs) in expect.iter().enumerate() {
            assert_eq!(delay(i as u32 + 1, 0), Duration::from_secs(*secs));
        }
        assert_eq!(delay(0, 0), FIRST);
        assert_eq!(delay(u32::MAX, 0), CAP);
    }

    #[test]
    fn jitter_shortens_by_at_most_a_quarter() {
        assert_eq!(delay(1, 100), ms(900));
        assert_eq!(delay(1, 250), ms(750));
        assert_eq!(delay(1, 251), ms(1000));
        assert_eq!(delay(6, 7500), ms(22_500));
    }

    #[test]
    fn schedule_and_reset() {
        let mut b = Backoff::new();
        let t0 = Instant::from_millis(5000);
        assert!(b.may_attempt(t0));
        assert_eq!(b.handle_failure(t0, 0), Instant::from_millis(6000));
        assert!(!b.may_attempt(Instant::from_millis(5999)));
        assert!(b.may_attempt(Instant::from_millis(6000)));
        assert_eq!(b.handle_failure(t0, 0), Instant::from_millis(7000));
        assert_eq!(b.failures(), 2);
        b.handle_success();
        assert_eq!(b.poll_timeout(), None);
        assert_eq!(b.handle_failure(t0, 0), Instant::from_millis(6000));
    }

    proptest! {
        #[test]
        fn delay_bounded_and_deterministic(f in 0u32..100, r: u32) {
            let d = delay(f, r);
            prop_assert!(d <= CAP);
            prop_assert!(d >= FIRST * 3 / 4);
            prop_assert_eq!(d, delay(f, r));
        }
    }
}
