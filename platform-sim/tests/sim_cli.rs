//! `sasyncd-sim`'s command line (clap): the help says what the program
//! does and which stories exist, and bad arguments are usage errors
//! (status 2) that name the problem.

use std::process::{Command, Output};

use sasyncd_sim::scenario::Scenario;

const BIN: &str = env!("CARGO_BIN_EXE_sasyncd-sim");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run sasyncd-sim")
}

#[test]
fn help_lists_usage_stories_environment_and_what_is_simulated() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    for want in [
        "sasyncd-sim --scenario NAME",
        "sasyncd-sim --seeds A..B",
        "sasyncd-sim --seed N [--trace]",
        "--jobs <N>",
        "SASYNCD_SIM_ECHO=1",
        "SASYNCD_SIM_DEBUG=1",
        "WHAT IS SIMULATED:",
        "WHAT IS NOT:",
        "CHECKS (oracles)",
    ] {
        assert!(text.contains(want), "--help lacks {want:?}:\n{text}");
    }
    let stories = &text[text.find("STORIES:").unwrap()..text.find("WHAT IS SIMULATED").unwrap()];
    for s in Scenario::STORIES {
        assert!(stories.contains(s), "--help does not list story {s}");
    }
    let v = run(&["-V"]);
    assert!(v.status.success());
    assert!(String::from_utf8(v.stdout)
        .unwrap()
        .starts_with("sasyncd-sim "));
}

#[test]
fn bad_arguments_are_usage_errors() {
    for (args, says) in [
        (&["--seeds", "5..3"][..], "B > A"),
        (&["--seeds", "5"][..], "A..B"),
        (&["--seed", "x"][..], "--seed"),
        (&["--scenario", "nope"][..], "split-brain-storm"),
        (&["--seeds", "0..2", "--trace"][..], "cannot be used with"),
        (&["--frobnicate"][..], "--frobnicate"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?} ran anyway");
    }
}
