//! A host's carp demotion as its sasyncd holds it, kept by the runtime
//! for every world: how many it raised and has not released, since when,
//! and the oracle's rule that it is held no longer than sasyncd's own
//! limit (the original's `CARP_DEMOTE_MAXTIME`, 60 s).

use std::time::Duration;

use sasyncd_core::time::Instant;

/// Longest a node may hold its carp demotion (`CARP_DEMOTE_MAXTIME`),
/// plus the time the platform takes to carry out the release.
pub const DEMOTE_LIMIT: Duration = Duration::from_secs(61);

/// One host's demotion.
#[derive(Debug, Default)]
pub struct Demotion {
    /// Raised and not released.
    pub held: u32,
    /// When the one held was raised.
    since: Option<Instant>,
    /// Held too long, and said so (once a run).
    reported: bool,
}

impl Demotion {
    /// The node raised it at `now`.
    pub fn raise(&mut self, now: Instant) {
        self.held += 1;
        self.since = Some(now);
    }

    /// The node released it: false if it held none.
    pub fn release(&mut self) -> bool {
        if self.held == 0 {
            return false;
        }
        self.held -= 1;
        self.since = None;
        true
    }

    /// The host crashed: carp forgot what it held.
    pub fn forget(&mut self) {
        self.held = 0;
        self.since = None;
    }

    /// Whether it has been held past [`DEMOTE_LIMIT`] at `now`; true
    /// once a run.
    pub fn overdue(&mut self, now: Instant) -> bool {
        let over = self.since.is_some_and(|t| now.since(t) > DEMOTE_LIMIT);
        if over && !self.reported {
            self.reported = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    #[test]
    fn a_demotion_held_past_the_limit_is_reported_once() {
        let mut d = Demotion::default();
        d.raise(at(10));
        assert!(!d.overdue(at(71)));
        assert!(d.overdue(at(72)));
        assert!(!d.overdue(at(100)));
        assert!(d.release());
        assert!(!d.release(), "released more often than raised");
    }

    #[test]
    fn a_release_or_a_crash_stops_the_clock() {
        let mut d = Demotion::default();
        d.raise(at(0));
        assert!(d.release());
        assert!(!d.overdue(at(100)));
        d.raise(at(100));
        d.forget();
        assert_eq!(d.held, 0);
        assert!(!d.overdue(at(500)));
    }
}
