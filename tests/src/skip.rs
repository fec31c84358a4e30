//! Skipping a test (or part of one) out loud.
//!
//! A skipped test still counts as passed, so the reason must reach the
//! terminal: the test harness captures `println!` and `eprintln!` and
//! shows them only for failures, so [`skip`] writes to the process's
//! standard error directly. Where every test must run (CI as root sets
//! `SASYNCD_TESTS_NO_SKIP=1`), a skip fails the test instead.

use std::io::Write;

/// The variable that turns skips into failures.
pub const NO_SKIP: &str = "SASYNCD_TESTS_NO_SKIP";

/// Says that the running test skips (some of) its work and why; panics if
/// [`NO_SKIP`] is set.
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    assert!(
        std::env::var_os(NO_SKIP).is_none(),
        "{test} skipped, but {NO_SKIP} is set: {why}"
    );
    // Not eprintln!: the harness would capture it.
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}
