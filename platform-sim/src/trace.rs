//! A run's trace: one line per notable event, and a running 64-bit FNV-1a
//! hash of all of them, so a test can run a scenario twice with one seed
//! and compare a single number (determinism check) and print the lines
//! of a failing run.
//!
//! Simulated: nothing. The hash covers exactly the text of the lines
//! (each followed by `\n`), whether or not the lines are kept.

use core::fmt::{self, Write as _};

use sasyncd_core::time::Instant;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Trace recorder.
#[derive(Debug, Clone)]
pub struct Trace {
    lines: Vec<String>,
    keep: bool,
    echo: bool,
    hash: u64,
    count: u64,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

impl Trace {
    /// A trace that keeps its lines and does not print them.
    pub fn new() -> Trace {
        Trace {
            lines: Vec::new(),
            keep: true,
            echo: false,
            hash: FNV_OFFSET,
            count: 0,
        }
    }

    /// Whether to keep the lines in memory (long runs may only want the hash).
    pub fn keep_lines(mut self, keep: bool) -> Trace {
        self.keep = keep;
        self
    }

    /// Whether to print each line to stderr as it is recorded.
    pub fn echo(mut self, echo: bool) -> Trace {
        self.echo = echo;
        self
    }

    /// Records that `what` happened at `time` on `node`.
    pub fn event(&mut self, time: Instant, node: usize, what: impl fmt::Display) {
        self.line(format_args!("n{node} {what}"), time);
    }

    /// Records a world-wide event (not tied to a node).
    pub fn global(&mut self, time: Instant, what: impl fmt::Display) {
        self.line(format_args!("-- {what}"), time);
    }

    fn line(&mut self, body: fmt::Arguments<'_>, time: Instant) {
        let ms = time.as_millis();
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = write!(s, "[{:>7}.{:03}] {}", ms / 1000, ms % 1000, body);
        for b in s.bytes().chain(core::iter::once(b'\n')) {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self.count += 1;
        if self.echo {
            eprintln!("{s}");
        }
        if self.keep {
            self.lines.push(s);
        }
    }

    /// The FNV-1a hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many lines were recorded (kept or not).
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The kept lines.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The last `n` kept lines, joined, for a failure message.
    pub fn tail(&self, n: usize) -> String {
        let start = self.lines.len().saturating_sub(n);
        self.lines[start..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_covers_lines() {
        let mut a = Trace::new();
        let mut b = Trace::new().keep_lines(false);
        for t in [&mut a, &mut b] {
            t.event(Instant::from_millis(1500), 2, "became master");
            t.global(Instant::from_millis(2000), format_args!("partition {}", 1));
        }
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.len(), 2);
        assert!(b.lines().is_empty());
        assert_eq!(a.lines()[0], "[      1.500] n2 became master");
        assert_eq!(a.tail(1), "[      2.000] -- partition 1");
        let mut c = Trace::new();
        c.event(Instant::from_millis(1500), 2, "became slave");
        assert_ne!(c.hash(), Trace::new().hash());
        assert_ne!(c.hash(), a.hash());
        assert!(Trace::default().is_empty());
    }
}
