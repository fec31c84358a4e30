//! `sasyncd-sim`: runs sasyncd nodes in a simulated cluster.
//!
//! Without arguments it tells the failover story on a timeline and checks
//! that the cluster converges. `--seeds A..B` searches random scenarios for
//! bugs; `--seed N --trace` replays one of them in full.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant as WallClock;

use clap::Parser;
use sasyncd_sim::scenario::Scenario;
use sasyncd_sim::world::World;

/// The invocations, for the usage line.
const USAGE: &str = "\
sasyncd-sim                      the failover story (3 nodes, fixed seed)
       sasyncd-sim --scenario NAME      another built-in story (see below)
       sasyncd-sim --seeds A..B         swarm: random scenarios for seeds A to B-1
       sasyncd-sim --seed N [--trace]   replay random scenario N (--trace: every event)";

/// What follows the options in `--help`.
const AFTER_HELP: &str = "\
ENVIRONMENT (with --trace or a story):
    SASYNCD_SIM_ECHO=1    print the timeline while it runs (for runs that hang)
    SASYNCD_SIM_DEBUG=1   include the nodes' debug-level lines

STORIES: failover, reconnect, split-brain, repair, adversary, legacy,
         failover-under-load, split-brain-failover, split-brain-storm,
         impostors

WHAT IS SIMULATED: each node runs the real sasyncd state machine
(sasyncd-core) over a simulated PF_KEY kernel (SADB and SPD with OpenBSD's
rules, promiscuous copies that are dropped when a listener's queue is full,
sysctl dumps), carp election (advskew, preemption, demotion, partitions),
TCP-like links (latency, bandwidth, partial writes, resets, partitions,
half-open connections), an IKE daemon workload on the master (negotiation,
rekeys, expiry, flows, flushes), an adversary that flips, truncates, injects
and replays bytes, strangers, and operators editing a slave's SADB by hand.
One seed in a hundred boots every host with 10,000-15,000 SAs and half as
many flows, diverged a little per host; some give the nodes firmware-sized
storage for snapshot marks. One v2 seed in 25 (3+ nodes) gets a storm of
split brains (partitions into 2..n groups) ending with a master's death;
one in 500 gets large tables, small mark storage and lossy queues at once.
Time is simulated and one seed drives every random choice: the same seed
gives the same run.

WHAT IS NOT: the routing socket and ioctl byte formats, privilege
separation, isakmpd/iked's own protocols, packet forwarding, real TCP
congestion control, and kernel behaviour beyond what sasyncd relies on.

CHECKS (oracles), each failure naming seed, time and node: data is applied
only from a master and never by a master; no frame goes to an unconfigured
address; no demotion is held over 60 s or released more often than raised;
after healing, every slave equals the master within the stated bound (no
stale entry survives, none is missing); at a master's death its in-sync slaves hold everything it had (unless
a split brain ended less than 5 s before, 35 s if by a death: doc/PROTOCOL.md); a v2 snapshot
never empties a slave's SADB; adversary traffic is rejected; without
injected loss, anti-entropy never finds a difference; with --impostors, a
connection from a peer's address that knows no key never ends or takes its
session, evicts our dial or a legacy alias, moves our backoff, or sets the
last error of a peer with a session.
";

#[derive(Debug, Parser)]
#[command(
    name = "sasyncd-sim",
    version,
    about = "sasyncd-sim: deterministic simulation of a sasyncd gateway cluster",
    override_usage = USAGE,
    after_help = AFTER_HELP
)]
struct Args {
    /// Another built-in story (see STORIES below).
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(Scenario::STORIES), hide_possible_values = true)]
    scenario: Option<String>,
    /// Seed of a story or of a random scenario.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Swarm: random scenarios for seeds A to B-1.
    #[arg(long, value_name = "A..B", value_parser = seed_range, conflicts_with_all = ["scenario", "seed", "trace"])]
    seeds: Option<(u64, u64)>,
    /// Print every event, including what the nodes log.
    #[arg(long)]
    trace: bool,
    /// Swarm worker threads (default: all cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(usize))]
    jobs: Option<usize>,
    /// Plant a known bug in the nodes, to show an oracle bites (a build
    /// with --features planted-bugs).
    #[arg(long, value_name = "BUG")]
    plant: Option<String>,
    /// Random scenarios get impostors: connections from the peers'
    /// addresses that know no key (off by default so the traces of existing
    /// seeds stay the same).
    #[arg(long)]
    impostors: bool,
    /// The nodes' kernel in a swarm: `pfkey` (OpenBSD, the default) or
    /// `xfrm` (Linux: nodes of the XFRM dialect over the simulated XFRM
    /// kernel, in the smaller world of `xfrm_world`).
    #[arg(long, value_name = "KIND", default_value = "pfkey", value_parser = ["pfkey", "xfrm"], requires = "seeds")]
    kernel: String,
}

/// Parses `A..B` with B > A.
fn seed_range(v: &str) -> Result<(u64, u64), String> {
    let (x, y) = v.split_once("..").ok_or("takes A..B")?;
    let x: u64 = x.parse().map_err(|_| "takes A..B")?;
    let y: u64 = y.parse().map_err(|_| "takes A..B")?;
    if y <= x {
        return Err("A..B needs B > A".into());
    }
    Ok((x, y))
}

fn plant(sc: &mut Scenario, bug: &Option<String>) -> Result<(), String> {
    let Some(b) = bug else { return Ok(()) };
    if !cfg!(feature = "planted-bugs") {
        return Err("--plant needs a build with --features planted-bugs".into());
    }
    match b.as_str() {
        "skip-sweep" => sc.bugs.skip_sweep = true,
        "apply-from-non-master" => sc.bugs.apply_from_non_master = true,
        "keep-demote" => sc.bugs.keep_demote = true,
        "drop-delta" => sc.bugs.drop_delta = true,
        "follow-dead-master" => sc.bugs.follow_dead_master = true,
        "short-event-queue" => sc.bugs.short_event_queue = true,
        "snapshot-keeps-counters" => sc.bugs.snapshot_keeps_counters = true,
        "update-always-add" => sc.bugs.update_always_add = true,
        "no-regroup" => sc.bugs.no_regroup = true,
        "keep-split-loser" => sc.bugs.keep_split_loser = true,
        "inbound-evicts-any" => sc.bugs.inbound_evicts_any = true,
        "inbound-failure-backs-off" => sc.bugs.inbound_failure_backs_off = true,
        "alias-evictable" => sc.bugs.alias_evictable = true,
        "no-alias-probe" => sc.bugs.no_alias_probe = true,
        "keep-foreign-groups" => sc.bugs.keep_foreign_groups = true,
        "no-seq-jump" => sc.bugs.no_seq_jump = true,
        _ => return Err(format!("unknown bug {b}")),
    }
    Ok(())
}

/// The planted bugs the XFRM world takes.
const XFRM_BUGS: [&str; 5] = [
    "no-seq-jump",
    "no-seq-thresholds",
    "no-add-first",
    "apply-from-non-master",
    "keep-demote",
];

/// The XFRM world's planted bug `name` (one of [`XFRM_BUGS`]).
#[cfg(feature = "planted-bugs")]
fn xfrm_bug(name: &str) -> sasyncd_core::node::PlantedBugs {
    let mut b = sasyncd_core::node::PlantedBugs::default();
    match name {
        "no-seq-jump" => b.no_seq_jump = true,
        "no-seq-thresholds" => b.no_seq_thresholds = true,
        "no-add-first" => b.no_add_first = true,
        "apply-from-non-master" => b.apply_from_non_master = true,
        "keep-demote" => b.keep_demote = true,
        _ => {}
    }
    b
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some((a, b)) = args.seeds {
        if args.kernel == "xfrm" {
            let plant = match args.plant.as_deref() {
                None => None,
                Some(p) if XFRM_BUGS.contains(&p) && cfg!(feature = "planted-bugs") => {
                    Some(p.to_string())
                }
                Some(b) => {
                    let bugs = XFRM_BUGS.join(", ");
                    eprintln!(
                        "--kernel xfrm plants only {bugs} (with --features planted-bugs), not {b}"
                    );
                    return ExitCode::from(2);
                }
            };
            return xfrm_swarm(a, b, args.jobs, plant);
        }
        return swarm(a, b, args.jobs, &args.plant, args.impostors);
    }
    let mut sc = match (&args.scenario, args.seed) {
        (Some(name), seed) => match Scenario::story(name, seed.unwrap_or(1)) {
            Some(s) => s,
            None => {
                eprintln!(
                    "sasyncd-sim: no story named {name}; try: {}",
                    Scenario::STORIES.join(", ")
                );
                return ExitCode::from(2);
            }
        },
        (None, Some(seed)) => Scenario::random(seed),
        (None, None) => Scenario::story("failover", 1).expect("the failover story exists"),
    };
    if let Err(e) = plant(&mut sc, &args.plant) {
        eprintln!("sasyncd-sim: {e}");
        return ExitCode::from(2);
    }
    sc.impostors |= args.impostors;
    story(sc, args.trace)
}

/// Runs one scenario and prints its timeline and verdict.
fn story(sc: Scenario, trace: bool) -> ExitCode {
    println!(
        "scenario: {} (seed {}), {} nodes, {} protocol",
        sc.name,
        sc.seed,
        sc.nodes,
        if sc.legacy { "legacy" } else { "v2" }
    );
    let wall = WallClock::now();
    let mut w = World::new(sc, true);
    w.run();
    for line in w.trace.lines() {
        if trace || is_story_line(line) {
            println!("{line}");
        }
    }
    report(&w, wall.elapsed().as_secs_f64())
}

/// The compact timeline keeps what a reader needs to follow the story.
fn is_story_line(line: &str) -> bool {
    const KEEP: &[&str] = &[
        "boot",
        "crashed",
        "carp link",
        "switching state",
        "session up",
        "full snapshot",
        "in sync",
        "demote",
        "fault:",
        "split brain",
        "resync",
        "differ",
        "converged",
        "failures",
        "heal",
        "isakmpd:",
        "refused",
        "closing connection",
        "fell behind",
        "claims MASTER",
    ];
    KEEP.iter().any(|k| line.contains(k))
}

fn report(w: &World, wall: f64) -> ExitCode {
    let mut forwarded = 0;
    let mut applied = 0;
    let mut snaps = 0;
    let mut resumes = 0;
    let mut sweeps = 0;
    let mut digests = 0;
    let mut rejected = 0;
    let mut splits = 0;
    for i in 0..w.hosts.len() {
        if let Some(s) = w.node_stats(i) {
            let c = s.counters;
            forwarded += c.forwarded;
            applied += c.applied;
            snaps += c.snapshots_done;
            resumes += c.ring_resumes;
            sweeps += c.sweeps;
            digests += c.digests_sent;
            rejected += c.rejected_frames + c.rejected_unknown;
            splits += c.split_brain_episodes;
        }
    }
    let ike: u64 = w.hosts.iter().map(|h| h.ike.stats().writes).sum();
    println!(
        "\n{:.1} simulated s in {:.2} wall s; IKE writes {ike}, deltas forwarded {forwarded}, applied {applied}, \
         snapshots {snaps}, ring resumes {resumes}, sweeps {sweeps}, digests {digests}, rejected {rejected}, \
         split-brain episodes {splits}, failover checks {}",
        w.now.as_millis() as f64 / 1000.0,
        wall,
        w.oracle.failover_checks
    );
    if w.oracle.impostor_attempts > 0 {
        println!(
            "impostors: {} connections, {} calls into nodes checked",
            w.oracle.impostor_attempts, w.oracle.impostor_checks
        );
    }
    for t in w.takeovers.iter().flat_map(|t| t.list.iter()) {
        let at = t.at.as_millis();
        println!(
            "takeover: n{} became carp MASTER at {}.{:03} s",
            t.master,
            at / 1000,
            at % 1000
        );
        for s in &t.slaves {
            let synced = s.in_sync_after.map_or("never in sync".to_string(), |d| {
                format!("in sync with n{} after {:.3} s", t.master, d.as_secs_f64())
            });
            println!(
                "  n{}: {synced}; lacked at most {} of its SAs",
                s.node, s.max_missing
            );
        }
    }
    for (i, h) in w.hosts.iter().enumerate() {
        // Only mature SAs are synchronised: an SPI reserved for an IKE
        // exchange still under way (larval, GETSPI) stays on its gateway,
        // so totals may differ while the synchronised sets are equal.
        let all = h.kernel.sa_count();
        let mature = h.kernel.canonical(&|_| true).sas.len();
        let larval = match all.saturating_sub(mature) {
            0 => String::new(),
            n => format!(" ({n} larval, never synchronised)"),
        };
        println!(
            "  n{i} {}: {all} SAs{larval}, {} flows",
            h.addr,
            h.kernel.flow_count()
        );
        if !w.oracle.failures.is_empty() {
            if let Some(s) = w.node_stats(i) {
                println!(
                    "      {} at {}:{}, following {:?}, job {:?}, paused reads {}, queued {}",
                    s.run_state,
                    s.position.epoch,
                    s.position.seq,
                    s.following,
                    s.job,
                    s.paused_reads,
                    s.pfkey_queued
                );
                if let Some(n) = h.node.as_ref() {
                    for p in n.peers() {
                        println!("      peer {}: {:?} connected {} lag {} frames in/out {}/{} bytes in/out {}/{} up since {:?}", p.addr, p.state, p.connected, p.stats.lag, p.stats.frames_in, p.stats.frames_out, p.stats.bytes_in, p.stats.bytes_out, p.stats.up_since);
                    }
                }
            }
        }
    }
    if w.oracle.failures.is_empty() {
        println!("verdict: PASS (trace hash {:016x})", w.trace.hash());
        ExitCode::SUCCESS
    } else {
        println!("verdict: FAIL, seed {}", w.sc.seed);
        for f in &w.oracle.failures {
            println!("  {f}");
        }
        ExitCode::from(1)
    }
}

/// Runs random scenarios for seeds `a..b` on `jobs` threads.
/// The XFRM swarm: seeds `a..b`, each 2 to 4 nodes of the XFRM dialect
/// over simulated Linux kernels, 60 s of workload and faults, then the
/// settle bound of a 60 s digest interval (114 s) to converge.
/// `plant`: a planted bug of the XFRM world (one of [`XFRM_BUGS`]).
fn xfrm_swarm(a: u64, b: u64, jobs: Option<usize>, plant: Option<String>) -> ExitCode {
    use sasyncd_sim::xfrm_world::XfrmWorld;
    use std::time::Duration;
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = Arc::new(AtomicU64::new(a));
    /// Seeds run, keying-daemon writes, entries held, failing seeds,
    /// takeovers, restarts, refusals by errno, host crashes, partitions.
    type Totals = (
        u64,
        u64,
        u64,
        Vec<u64>,
        u64,
        u64,
        std::collections::BTreeMap<i32, u64>,
        u64,
        u64,
    );
    let stats: Arc<Mutex<Totals>> = Arc::new(Mutex::new(Totals::default()));
    let wall = WallClock::now();
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (next, stats, plant) = (next.clone(), stats.clone(), plant.clone());
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn(move || loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= b {
                        return;
                    }
                    let nodes = 2 + (seed % 3) as usize;
                    let w = XfrmWorld::new(seed, nodes);
                    #[cfg(feature = "planted-bugs")]
                    let w = match plant.as_deref() {
                        Some(p) => w.plant(xfrm_bug(p)),
                        None => w,
                    };
                    let _ = &plant;
                    // Settling takes up to a periodic digest (the repair of last
                    // resort after a partition or a crash), as in the PF_KEY world.
                    let settle = sasyncd_sim::scenario::settle_bound(Duration::from_secs(60));
                    let r = w.run(Duration::from_secs(60), settle);
                    if let Some(f) = r.failures.first() {
                        eprintln!("\nFAIL seed {seed} (xfrm): {f}");
                    }
                    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                    s.0 += 1;
                    s.1 += r.ike_writes;
                    s.2 += r.tables.0 as u64 + r.tables.1 as u64;
                    s.4 += r.takeovers;
                    s.5 += r.restarts;
                    s.7 += r.crashes;
                    s.8 += r.partitions;
                    for (e, n) in &r.refused {
                        *s.6.entry(*e).or_default() += n;
                    }
                    if !r.failures.is_empty() {
                        s.3.push(seed);
                    }
                })
                .expect("spawn swarm worker")
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let s = stats.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "xfrm swarm: {} seeds ({a}..{b}), {} failing, {} keying-daemon writes, {} takeovers, {} sasyncd restarts, {} host crashes, {} partitions, {} entries held at the end, {:.1} s",
        s.0,
        s.3.len(),
        s.1,
        s.4,
        s.5,
        s.7,
        s.8,
        s.2,
        wall.elapsed().as_secs_f64()
    );
    eprintln!(
        "expected kernel refusals of the nodes' writes, by Linux errno: {:?}",
        s.6
    );
    if s.3.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failing seeds: {:?}", s.3);
        ExitCode::FAILURE
    }
}

fn swarm(a: u64, b: u64, jobs: Option<usize>, bug: &Option<String>, impostors: bool) -> ExitCode {
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = Arc::new(AtomicU64::new(a));
    let done = Arc::new(AtomicU64::new(0));
    let sim_ms = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<(u64, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let wall = WallClock::now();
    let total = b - a;
    let plant_err = {
        let mut probe = Scenario::random(a);
        plant(&mut probe, bug).err()
    };
    if let Some(e) = plant_err {
        eprintln!("sasyncd-sim: {e}");
        return ExitCode::from(2);
    }
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (next, done, sim_ms, failures, bug) = (
                next.clone(),
                done.clone(),
                sim_ms.clone(),
                failures.clone(),
                bug.clone(),
            );
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn(move || loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= b {
                        return;
                    }
                    let mut sc = Scenario::random(seed);
                    let _ = plant(&mut sc, &bug);
                    sc.impostors |= impostors;
                    let mut w = World::new(sc, false);
                    w.run();
                    sim_ms.fetch_add(w.now.as_millis(), Ordering::Relaxed);
                    if let Some(f) = w.oracle.failures.first() {
                        // At once, too: a long run stopped early keeps them.
                        eprintln!("\nFAIL seed {seed}: {f}");
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((seed, f.to_string()));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                })
                .expect("spawn swarm worker")
        })
        .collect();
    let mut last = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let d = done.load(Ordering::Relaxed);
        let secs = wall.elapsed().as_secs_f64();
        if d != last || d == total {
            let nf = failures.lock().map(|f| f.len()).unwrap_or(0);
            eprint!(
                "\r{d}/{total} seeds, {nf} failing, {:.1} seeds/s   ",
                d as f64 / secs.max(1e-9)
            );
            last = d;
        }
        if d >= total {
            break;
        }
    }
    for w in workers {
        let _ = w.join();
    }
    let secs = wall.elapsed().as_secs_f64();
    let sim = sim_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    eprintln!();
    println!(
        "swarm: {total} seeds in {secs:.1} s on {jobs} threads: {:.1} seeds/s, {:.0} simulated s per wall s",
        total as f64 / secs,
        sim / secs
    );
    let mut f = failures.lock().map(|f| f.clone()).unwrap_or_default();
    f.sort();
    if f.is_empty() {
        println!("{total} passed, 0 failed");
        return ExitCode::SUCCESS;
    }
    for (seed, what) in &f {
        println!("FAIL seed {seed}: {what}\n  replay: cargo run --release -p sasyncd-sim -- --seed {seed} --trace");
    }
    println!("{} passed, {} failed", total - f.len() as u64, f.len());
    ExitCode::from(1)
}
