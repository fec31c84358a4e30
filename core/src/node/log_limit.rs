//! Rate limits for log lines an unauthenticated sender can cause: a
//! connection from a peer's address costs an attacker one SYN, so the log
//! lines it causes (connected, handshake failed, bad frame) are allowed a
//! few per window per source, and the rest are counted and reported as
//! suppressed with the next line allowed.

use crate::time::Instant;
use core::time::Duration;

/// Lines allowed per window.
pub const BURST: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// One source's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogLimit {
    start: Option<Instant>,
    used: u32,
    suppressed: u32,
}

/// What [`LogLimit::allow`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log the line; this many were suppressed before it (say so).
    Log(u32),
    /// Do not log it (it is counted).
    Suppress,
}

impl LogLimit {
    /// Whether a line may be logged at `now`.
    pub fn allow(&mut self, now: Instant) -> Verdict {
        let fresh = self.start.is_none_or(|s| now.since(s) >= WINDOW);
        if fresh {
            self.start = Some(now);
            self.used = 0;
        }
        if self.used < BURST {
            self.used += 1;
            Verdict::Log(core::mem::take(&mut self.suppressed))
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            Verdict::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn a_burst_then_silence_then_the_count() {
        let mut l = LogLimit::default();
        for _ in 0..BURST {
            assert_eq!(l.allow(t(0)), Verdict::Log(0));
        }
        for _ in 0..1000 {
            assert_eq!(l.allow(t(1)), Verdict::Suppress);
        }
        assert_eq!(l.allow(t(59_999)), Verdict::Suppress);
        assert_eq!(l.allow(t(60_000)), Verdict::Log(1001));
        assert_eq!(l.allow(t(60_001)), Verdict::Log(0));
    }
}
