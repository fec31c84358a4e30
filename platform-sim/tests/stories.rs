//! The built-in stories pass, runs are reproducible, and the swarm's
//! random scenarios hold up on a first batch of seeds.

use sasyncd_sim::scenario::{Action, Scenario};
use sasyncd_sim::world::World;

fn run(sc: Scenario) -> World {
    let mut w = World::new(sc, false);
    w.run();
    w
}

fn failures(w: &World) -> String {
    w.oracle
        .failures
        .iter()
        .map(|f| format!("\n  {f}"))
        .collect()
}

#[test]
fn every_story_passes() {
    for name in Scenario::STORIES {
        let w = run(Scenario::story(name, 1).unwrap());
        assert!(
            w.oracle.failures.is_empty(),
            "story {name}:{}",
            failures(&w)
        );
    }
}

/// Runs with everything the nodes log on the timeline, so the hash covers
/// the whole trace.
fn run_logged(sc: Scenario) -> World {
    let mut w = World::new(sc, true);
    w.run();
    w
}

#[test]
fn same_seed_same_run() {
    for seed in [1, 7, 42] {
        let a = run_logged(Scenario::random(seed));
        let b = run_logged(Scenario::random(seed));
        assert!(
            a.trace.lines().len() > 20,
            "the trace holds the nodes' lines"
        );
        assert_eq!(a.trace.lines(), b.trace.lines(), "seed {seed}");
        assert_eq!(a.trace.hash(), b.trace.hash(), "seed {seed}");
        assert_eq!(a.now, b.now);
    }
    let a = run(Scenario::random(1));
    let b = run(Scenario::random(2));
    assert_ne!(a.trace.hash(), b.trace.hash());
}

#[test]
fn failover_story_fails_over_and_resyncs() {
    let w = run(Scenario::story("failover", 1).unwrap());
    assert!(w.oracle.failover_checks > 0, "the failover oracle ran");
    let snaps: u64 = (0..3)
        .filter_map(|i| w.node_stats(i))
        .map(|s| s.counters.sweeps)
        .sum();
    assert!(snaps >= 3, "the returning node resynced with a sweep");
}

#[test]
fn a_slave_away_briefly_resumes_from_the_ring() {
    // Only the connection reset of the reconnect story, nothing else.
    let mut sc = Scenario::story("reconnect", 3).unwrap();
    sc.script
        .retain(|(_, a)| matches!(a, Action::ResetConns { .. }));
    let w = run(sc);
    assert!(w.oracle.failures.is_empty(), "{}", failures(&w));
    let master = (0..3)
        .find(|&i| {
            w.node_stats(i)
                .is_some_and(|s| s.run_state == sasyncd_core::state::RunState::Master)
        })
        .unwrap();
    let c = w.node_stats(master).unwrap().counters;
    assert!(c.ring_resumes >= 1, "resumed from the ring: {c:?}");
    // One snapshot per slave at start-up, none for the reset.
    assert_eq!(c.snapshots_started, 2, "{c:?}");
}

#[test]
fn repair_story_heals_by_digest() {
    let w = run(Scenario::story("repair", 1).unwrap());
    assert!(w.oracle.failures.is_empty(), "{}", failures(&w));
    let mism: u64 = (0..3)
        .filter_map(|i| w.node_stats(i))
        .map(|s| s.counters.digest_mismatches)
        .sum();
    assert!(mism >= 1, "anti-entropy found and repaired the differences");
}

#[test]
fn adversary_story_is_rejected_and_counted() {
    let w = run(Scenario::story("adversary", 1).unwrap());
    assert!(w.oracle.failures.is_empty(), "{}", failures(&w));
    assert!(w.net_altered() > 0);
    let rejected: u64 = (0..3)
        .filter_map(|i| w.node_stats(i))
        .map(|s| s.counters.rejected_frames + s.counters.rejected_unknown)
        .sum();
    assert!(rejected > 0);
}

#[test]
fn a_first_batch_of_random_seeds_passes() {
    for seed in 0..30 {
        let w = run(Scenario::random(seed));
        assert!(
            w.oracle.failures.is_empty(),
            "seed {seed} ({}):{}",
            w.sc.name,
            failures(&w)
        );
    }
}

/// Issue 7's measure: at every takeover of the failover stories, each
/// slave that had a session with the new master is in sync with it within
/// a second of simulated time and never lacks more than the SAs still in
/// flight (none a round trip old).
#[test]
fn slaves_follow_a_new_master_within_a_second() {
    for name in ["failover", "failover-under-load"] {
        let mut w = World::new(Scenario::story(name, 1).unwrap(), false);
        w.takeovers = Some(Default::default());
        w.run();
        assert!(w.oracle.failures.is_empty(), "{name}:{}", failures(&w));
        let list = &w.takeovers.as_ref().unwrap().list;
        assert!(list.len() >= 3, "{name}: {list:?}");
        for t in list {
            for s in &t.slaves {
                let d = s.in_sync_after.expect("in sync");
                assert!(
                    d < std::time::Duration::from_secs(1) && s.max_missing == 0,
                    "{name}: takeover by n{} at {:?}: {s:?}",
                    t.master,
                    t.at
                );
            }
        }
    }
}

/// Issue 25's seeds: a failover check during a split brain (9411700), a
/// slave repairing in batches when its master changed (9436359: large
/// tables, small mark storage, lossy queues; seconds of work, so only in
/// optimised builds), a digest of the master left behind (9495407); and
/// 7105, a split-brain storm whose slave lost a repair with its replaced
/// connection and must say it is still repairing; 389565788, a storm over
/// 13 743 preloaded entries whose slaves' snapshot (a repair of every
/// bucket) was cut short by a resume and must leave the repair owed;
/// 11773 and 32264, where a MOBIKE move reached a slave that lacked the SA
/// while a repair was on its way.
#[test]
fn the_seeds_of_issue_25_pass() {
    // 11773, 32264: a MOBIKE move met a slave that lacked the SA while a
    // repair was on its way (the move's ESRCH now leaves a repair owed).
    let mut seeds = vec![9_411_700, 9_495_407, 7_105, 11_773, 32_264];
    if cfg!(debug_assertions) {
        eprintln!(
            "skipping seeds 9436359 and 389565788 in a debug build (minutes); cargo test --release runs them"
        );
    } else {
        // 222966362: a move checked while the slave still applied the
        // backlog of a long snapshot (the oracle now waits for it);
        // 223026619: a slave kept bundles a master lost by taking over
        // mid-snapshot (the sweep now undoes groupings the master lacks).
        // 1096678944: a large table on a slow link needed two full
        // snapshots after the heal (the settle bound now counts them).
        // 1497940755: right after a large snapshot, a frame of deltas
        // found the slaves' PF_KEY queues with room for one maximal
        // message, not for its every record, and its last one was
        // dropped (a slave now keeps a whole frame's room, `frame_room`).
        seeds.extend([
            9_436_359,
            389_565_788,
            222_966_362,
            223_026_619,
            1_096_678_944,
            1_497_940_755,
        ]);
    }
    for seed in seeds {
        let w = run(Scenario::random(seed));
        assert!(
            w.oracle.failures.is_empty(),
            "seed {seed} ({}):{}",
            w.sc.name,
            failures(&w)
        );
    }
}
