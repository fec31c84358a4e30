//! The oracles are shown to bite: each known bug, planted in the nodes,
//! is caught by a small swarm well within CI's budget. Needs the
//! `planted-bugs` feature (CI: `cargo test -p sasyncd-sim --features
//! planted-bugs --test oracles_bite`).

use sasyncd_sim::scenario::{Bugs, Scenario};
use sasyncd_sim::world::World;

/// Runs seeds until one fails; returns (seed, first failure).
fn first_catch(bugs: Bugs, seeds: std::ops::Range<u64>) -> Option<(u64, String)> {
    for seed in seeds {
        let mut sc = Scenario::random(seed);
        sc.bugs = bugs;
        let mut w = World::new(sc, false);
        w.run();
        if let Some(f) = w.oracle.failures.first() {
            return Some((seed, f.to_string()));
        }
    }
    None
}

#[test]
fn skipping_the_sweep_is_caught() {
    let c = first_catch(
        Bugs {
            skip_sweep: true,
            ..Bugs::default()
        },
        0..200,
    );
    let (seed, what) = c.expect("a swarm of 200 seeds catches a missing sweep");
    assert!(what.contains("not converged"), "seed {seed}: {what}");
}

#[test]
fn applying_data_from_a_non_master_is_caught() {
    let c = first_catch(
        Bugs {
            apply_from_non_master: true,
            ..Bugs::default()
        },
        0..200,
    );
    let (seed, what) = c.expect("a swarm of 200 seeds catches data applied from a non-master");
    assert!(what.contains("applied PF_KEY data"), "seed {seed}: {what}");
}

#[test]
fn keeping_the_demotion_is_caught() {
    let c = first_catch(
        Bugs {
            keep_demote: true,
            ..Bugs::default()
        },
        0..200,
    );
    let (seed, what) = c.expect("a swarm of 200 seeds catches a demotion never released");
    assert!(what.contains("demotion"), "seed {seed}: {what}");
}

#[test]
fn dropping_a_delta_is_caught() {
    let c = first_catch(
        Bugs {
            drop_delta: true,
            ..Bugs::default()
        },
        0..200,
    );
    let (seed, what) = c.expect("a swarm of 200 seeds catches a dropped delta");
    assert!(
        what.contains("converged") || what.contains("failover") || what.contains("digest"),
        "seed {seed}: {what}"
    );
}
