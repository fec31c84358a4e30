//! Time as the core sees it: an opaque monotonic instant passed in by the
//! platform (the simulator's clock or `CLOCK_MONOTONIC`), never read here.

use core::time::Duration;

/// A monotonic point in time, in milliseconds since an origin the platform
/// chooses. Millisecond resolution is ample for timers of 1 s and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, d: Duration) -> Instant {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant::add(self, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(1500);
        assert_eq!(t.add(Duration::from_secs(2)).as_millis(), 3500);
        assert_eq!(
            Instant::from_millis(u64::MAX)
                .add(Duration::from_secs(1))
                .as_millis(),
            u64::MAX
        );
        assert_eq!(t.since(Instant::from_millis(500)), Duration::from_secs(1));
        assert_eq!(Instant::ZERO.since(t), Duration::ZERO);
    }
}
