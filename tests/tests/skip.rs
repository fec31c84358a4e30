//! A skip is said on the terminal, not captured, and fails the test where
//! every test must run (`SASYNCD_TESTS_NO_SKIP`, set by CI as root). One
//! test in its own binary: it changes the environment.

use std::process::Command;

use sasyncd_tests::skip::{skip, NO_SKIP};

#[test]
fn a_skip_is_visible_and_fails_where_no_skip_is_allowed() {
    if std::env::var_os("SKIP_TEST_CHILD").is_some() {
        skip("the child's reason");
        return;
    }
    // Run this very test again in a child, with and without NO_SKIP,
    // under the harness's own output capture.
    let me = std::env::current_exe().expect("test binary");
    let run = |no_skip: bool| {
        let mut c = Command::new(&me);
        c.arg("a_skip_is_visible").env("SKIP_TEST_CHILD", "1");
        if no_skip {
            c.env(NO_SKIP, "1");
        } else {
            c.env_remove(NO_SKIP);
        }
        c.output().expect("run the child")
    };
    let out = run(false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "SKIPPED a_skip_is_visible_and_fails_where_no_skip_is_allowed: the child's reason"
        ),
        "the reason reaches stderr past the capture: {err:?}"
    );
    let out = run(true);
    assert!(!out.status.success(), "a skip fails under {NO_SKIP}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the child's reason"), "{text}");
}
