//! Scale benchmark (issue 9): a master and a slave node with the daemon's storage on the
//! simulator's kernels, joined by an in-memory pipe, synchronising
//! N = 1k … 1M SAs plus N/2 flows, under v2 and legacy; delta costs by
//! ring fill; the cost of repairing a damaged slave; optionally a failover
//! and two real daemon processes.
//!
//! `cargo bench -p sasyncd-tests --bench cluster [-- FLAGS]`; BENCHMARKS.md
//! ("Scale (issue 9)") says what each column means and has the numbers.
//! Without `--bench` on the command line (`cargo test --benches`) it does
//! a small smoke run only. No timing is ever asserted: costs are printed
//! next to a limit measured in the same run.
//!
//! Flags (after `--`):
//! * `--quick`: the smoke sizes, in an optimised build;
//! * `--sizes=1k,10k,100k,1M`: the sync sizes (default 1k,10k,100k; `--1m`
//!   or `SASYNCD_BENCH_1M=1` adds 1M: about two more minutes and 3 GiB);
//! * `--proto=v2|legacy|both` (default both);
//! * `--only=sync,delta,repair,failover,daemons,daemons-repair`: the
//!   sections to run (default sync, delta, repair); `--failover`,
//!   `--daemons` and `--daemons-repair` add theirs (the last waits for the
//!   daemons' 60 s digests: about five minutes);
//! * `--stale=N`: stale SAs a syncing slave starts with (default 1000);
//! * `--runs=K`: sync runs per size and protocol, the median run printed
//!   (default: 15 at 1k, 10 at 10k, 1 from 100k: a 1k sync takes a few
//!   milliseconds, so one preemption moves a single run's ratio a lot);
//! * `--delta-n=N`, `--repair-n=N`, `--failover-n=N`: table sizes of those
//!   sections (default 10k, 100k, 100k);
//! * `--daemons-n=1k,10k,...`: the daemons' sizes (default 100k), each
//!   under every protocol of `--proto`; `--daemons-deltas=K`: new SAs
//!   written one at a time after a sync at the first size (default 20k).
//!
//! `--daemons` builds and starts `sasyncd` and `sasyncd-devhost` (release)
//! the way the end-to-end tests do (`sasyncd_tests::cluster`).
//!
//! When the core changes: node construction is `cluster/node.rs` alone;
//! the platform is `cluster/pipe.rs` (`Io`); "in sync" is [`in_sync`]; the
//! repair rounds read the counters `digests_sent`, `digests_matched`,
//! `digest_mismatches` and `snapshots_started`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant as Clock};

use nix::sys::resource::{getrusage, UsageWho};
use nix::time::{clock_gettime, ClockId};
use sasyncd_core::node::Settings;
use sasyncd_core::time::Instant;
use sasyncd_sim::devhost::ctl::bulk;
use sasyncd_sim::kernel::Kernel;
use sasyncd_sim::rng::Rng;

#[path = "cluster/limit.rs"]
mod limit;
#[path = "cluster/load.rs"]
mod load;
#[path = "cluster/node.rs"]
mod node;
#[path = "cluster/pipe.rs"]
mod pipe;

use load::{Space, IKE_PID};
use pipe::{World, BACKUP, MASTER};

// ----- options ---------------------------------------------------------------

#[derive(Debug, Clone)]
struct Opts {
    /// Smoke run: tiny sizes, one sample.
    quick: bool,
    sizes: Vec<u64>,
    protos: Vec<bool>,
    sync: bool,
    delta: bool,
    repair: bool,
    failover: bool,
    daemons: bool,
    daemons_repair: bool,
    stale: u64,
    /// Sync runs per size (`None`: by size).
    runs: Option<usize>,
    delta_n: u64,
    repair_n: u64,
    failover_n: u64,
    daemons_n: Vec<u64>,
    daemons_deltas: u64,
}

fn parse_n(s: &str) -> u64 {
    let s = s.trim().to_ascii_lowercase();
    let (num, mul) = if let Some(x) = s.strip_suffix('m') {
        (x, 1_000_000)
    } else if let Some(x) = s.strip_suffix('k') {
        (x, 1_000)
    } else {
        (s.as_str(), 1)
    };
    num.parse::<u64>()
        .unwrap_or_else(|_| panic!("not a size: {s}"))
        * mul
}

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let bench = args.iter().any(|a| a == "--bench");
        let quick = !bench || args.iter().any(|a| a == "--quick");
        let million = args.iter().any(|a| a == "--1m")
            || std::env::var("SASYNCD_BENCH_1M").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut o = Opts {
            quick,
            sizes: if quick {
                vec![300]
            } else {
                vec![1_000, 10_000, 100_000]
            },
            protos: vec![false, true],
            sync: true,
            delta: true,
            repair: true,
            failover: false,
            daemons: false,
            daemons_repair: false,
            stale: if quick { 100 } else { 1000 },
            runs: None,
            delta_n: if quick { 100 } else { 10_000 },
            repair_n: if quick { 300 } else { 100_000 },
            failover_n: if quick { 1000 } else { 100_000 },
            daemons_n: vec![100_000],
            daemons_deltas: 20_000,
        };
        if million && !quick {
            o.sizes.push(1_000_000);
        }
        for a in &args {
            let (k, v) = a.split_once('=').unwrap_or((a.as_str(), ""));
            match k {
                "--bench" | "--quick" | "--1m" => {}
                "--sizes" => o.sizes = v.split(',').map(parse_n).collect(),
                "--proto" => {
                    o.protos = match v {
                        "v2" => vec![false],
                        "legacy" => vec![true],
                        "both" => vec![false, true],
                        _ => panic!("--proto=v2|legacy|both"),
                    }
                }
                "--only" => {
                    let has = |s: &str| v.split(',').any(|x| x == s);
                    o.sync = has("sync");
                    o.delta = has("delta");
                    o.repair = has("repair");
                    o.failover = has("failover");
                    o.daemons = has("daemons");
                    o.daemons_repair = has("daemons-repair");
                }
                "--failover" => o.failover = true,
                "--daemons" => o.daemons = true,
                "--daemons-repair" => o.daemons_repair = true,
                "--daemons-deltas" => o.daemons_deltas = parse_n(v).max(1),
                "--daemons-n" => o.daemons_n = v.split(',').map(parse_n).collect(),
                "--stale" => o.stale = parse_n(v),
                "--runs" => o.runs = Some(parse_n(v).max(1) as usize),
                "--delta-n" => o.delta_n = parse_n(v),
                "--repair-n" => o.repair_n = parse_n(v),
                "--failover-n" => o.failover_n = parse_n(v),
                // libtest-style flags cargo may pass (e.g. --nocapture).
                _ if k.starts_with("--") => eprintln!("cluster bench: ignoring {a}"),
                _ => {}
            }
        }
        o
    }
}

// ----- measuring -------------------------------------------------------------

/// CPU time of this thread.
fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// The process's peak resident set so far, in MiB.
fn max_rss_mib() -> f64 {
    // Linux reports ru_maxrss in KiB.
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| u.max_rss() as f64 / 1024.0)
}

fn proto_name(legacy: bool) -> &'static str {
    if legacy {
        "legacy"
    } else {
        "v2"
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

// ----- a cluster ---------------------------------------------------------------

/// Host `i`'s own address (not an SA endpoint).
fn host_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 251 + i as u8))
}

/// How a node's run state is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `mode master`.
    Master,
    /// `mode slave`.
    Slave,
    /// Follows carp.
    Carp,
}

fn config(me: usize, hosts: usize, legacy: bool, role: Role) -> Vec<u8> {
    let mut s = String::new();
    for j in (0..hosts).filter(|&j| j != me) {
        s += &format!("peer {}\n", host_addr(j));
    }
    s += &format!(
        "sharedkey {}\ncontrol none\nprotocol {}\n",
        std::str::from_utf8(limit::KEY).expect("text key"),
        proto_name(legacy)
    );
    s += match role {
        Role::Master => "mode master\n",
        Role::Slave => "mode slave\n",
        Role::Carp => "interface carp0\n",
    };
    s.into_bytes()
}

fn settings(i: usize, digest: Duration) -> Settings {
    let mut id = [0u8; 16];
    id[0] = i as u8 + 1;
    let mut s = Settings::new(id, 0x5eed_0000 + i as u64, 0);
    s.digest_interval = digest;
    s
}

/// A world of `roles.len()` hosts (not started).
fn world(roles: &[Role], legacy: bool, seed: u64) -> World {
    let hosts: Vec<(IpAddr, Vec<u8>)> = roles
        .iter()
        .enumerate()
        .map(|(i, &r)| (host_addr(i), config(i, roles.len(), legacy, r)))
        .collect();
    World::new(&hosts, seed)
}

/// Loads `n` SAs (keys from `seed`) and `n / 2` flows into host `i`'s
/// kernel.
fn load_master(w: &mut World, i: usize, n: u64, seed: u64) {
    load::add_sas(&mut w.lan.hosts[i].kernel, Space::Master, 0..n, seed);
    load::add_flows(&mut w.lan.hosts[i].kernel, n / 2);
}

/// Whether slave `s` is in sync with master `m` since `since`: it follows
/// it, its last snapshot or resume (sweep included) completed at or after
/// `since`, nothing is queued for its kernel and no job runs.
fn in_sync(w: &mut World, m: usize, s: usize, legacy: bool, since: Instant) -> bool {
    let maddr = w.lan.hosts[m].addr;
    let st = w.stats(s);
    if st.syncing || st.pfkey_queued > 0 || st.job.is_some() {
        return false;
    }
    if !legacy && st.following != Some((maddr, true)) {
        return false;
    }
    w.peer(s, maddr)
        .is_some_and(|p| p.stats.last_sync.is_some_and(|t| t >= since))
}

/// Simulated time a phase may take before the bench gives up.
const MAX_SIM_MS: u64 = 600_000;

// ----- sync ----------------------------------------------------------------------

/// One initial synchronisation.
#[derive(Debug, Clone)]
struct SyncRow {
    n: u64,
    legacy: bool,
    entries: u64,
    wall: Duration,
    cpu: Duration,
    core_master_ns: f64,
    core_slave_ns: f64,
    /// The limit per table entry: seal + open + parse of one pass over the
    /// table's messages (SA and flow messages in their N : N/2 mix), ns.
    limit_entry_ns: f64,
    limit_sa_ns: f64,
    limit_flow_ns: f64,
    bytes_ms: u64,
    bytes_sm: u64,
    frames_ms: u64,
    writes_ms: u64,
    snapshots: u64,
    applied: u64,
    stale_left: usize,
    missing: usize,
    equal: Option<bool>,
    rss_mib: f64,
    setup: Duration,
    /// v2: the first anti-entropy round after the sync (bytes master to
    /// slave, and what is left stale / missing after it).
    ae: Option<(u64, load::Diff)>,
}

/// The limit per SA and per flow message, on messages built like the
/// master's (a small kernel with the same generator, dumped).
fn limit_for(legacy: bool, quick: bool) -> (f64, f64) {
    let mut k = Kernel::new(Rng::new(7));
    load::add_sas(&mut k, Space::Master, 0..512, 11);
    load::add_flows(&mut k, 256);
    let recs = |b: Vec<u8>| -> Vec<Vec<u8>> {
        sasyncd_core::pfkey::records(&b)
            .map(|r| r.expect("dump record").bytes().to_vec())
            .collect()
    };
    let sas = limit::messages(&recs(k.sadb_dump(0)), false);
    let flows = limit::messages(&recs(k.spd_dump()), true);
    limit::measure(legacy, &sas, &flows, quick)
}

fn sync_run(n: u64, legacy: bool, stale: u64, quick: bool) -> SyncRow {
    let t_setup = Clock::now();
    let mut w = world(&[Role::Master, Role::Slave], legacy, 0x5eed ^ n);
    load_master(&mut w, 0, n, 0xa11ce ^ n);
    load::add_sas(&mut w.lan.hosts[1].kernel, Space::Stale, 0..stale, 0xb0b);
    let setup = t_setup.elapsed();
    // The limit is measured before and after the run, and averaged.
    let limit_before = limit_for(legacy, quick);

    w.cpu_split = true;
    let since = w.lan.now;
    let (wall0, cpu0) = (Clock::now(), thread_cpu());
    w.start(0, settings(0, Duration::from_secs(60)), 1);
    w.start(1, settings(1, Duration::from_secs(60)), 2);
    let ok = w.run_until(MAX_SIM_MS, |w| in_sync(w, 0, 1, legacy, since));
    let (wall, cpu) = (wall0.elapsed(), thread_cpu() - cpu0);
    assert!(
        ok,
        "{} N={n}: the slave did not get in sync",
        proto_name(legacy)
    );

    let s_addr = w.lan.hosts[1].addr;
    let mview = w.peer(0, s_addr).expect("master knows its slave");
    let sstats = w.stats(1);
    let mstats = w.stats(0);
    let d = load::diff(&w.lan.hosts[0].kernel, &w.lan.hosts[1].kernel);
    let equal = (n <= 10_000).then(|| {
        w.lan.hosts[0]
            .kernel
            .entries_equal_after_filter(&w.lan.hosts[1].kernel, &|_| true)
            .is_ok()
    });
    let limit_after = limit_for(legacy, quick);
    let lsa = (limit_before.0 + limit_after.0) / 2.0;
    let lfl = (limit_before.1 + limit_after.1) / 2.0;
    let entries = n + n / 2;
    let mix = (n as f64 * lsa + (n / 2) as f64 * lfl) / entries.max(1) as f64;
    let applied = sstats.counters.applied;
    let mut row = SyncRow {
        n,
        legacy,
        entries,
        wall,
        cpu,
        core_master_ns: w.nodes[0].core_ns,
        core_slave_ns: w.nodes[1].core_ns,
        limit_entry_ns: mix,
        limit_sa_ns: lsa,
        limit_flow_ns: lfl,
        bytes_ms: w.lan.traffic[0][1].bytes,
        bytes_sm: w.lan.traffic[1][0].bytes,
        frames_ms: mview.stats.frames_out,
        writes_ms: w.lan.traffic[0][1].writes,
        snapshots: mstats.counters.snapshots_started,
        applied,
        stale_left: d.stale,
        missing: d.missing,
        equal,
        rss_mib: 0.0,
        setup,
        ae: None,
    };
    // What the next anti-entropy round does about what the sync left.
    if !legacy {
        let r = digest_round(&mut w, "after sync");
        row.ae = Some((r.bytes_ms, r.left));
    }
    row.rss_mib = max_rss_mib();
    row
}

impl SyncRow {
    /// Core time per entry over the limit per entry: the `ratio` column.
    fn ratio(&self) -> f64 {
        let core = self.core_master_ns + self.core_slave_ns;
        core / (self.entries.max(1) as f64 * self.limit_entry_ns).max(1.0)
    }
}

fn print_sync_header() {
    println!(
        "{:<6} {:>5} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>8} {:>7} {:>8} {:>5} {:>5} {:>5} {:>6} {:>5} {:>5} {:>8} {:>6} {:>7}",
        "proto", "N", "entries", "wall_s", "cpu_s", "core_s", "us/ent", "mst_us", "slv_us",
        "lim_us", "ratio", "r/msg", "MB_m>s", "KB_s>m", "fr_m>s", "fr/wr", "snaps", "appl%", "stale",
        "miss", "equal", "ae_MB", "ae_st", "rss_MiB"
    );
}

fn print_sync(r: &SyncRow) {
    let e = r.entries.max(1) as f64;
    let core = r.core_master_ns + r.core_slave_ns;
    let (ae_mb, ae_st) = match r.ae {
        Some((b, d)) => (format!("{:.1}", mb(b)), d.stale.to_string()),
        None => ("-".to_string(), "-".to_string()),
    };
    println!(
        "{:<6} {:>5} {:>8} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>6.3} {:>6.2} {:>6.2} {:>8.1} {:>7.1} {:>8} {:>5.1} {:>5} {:>5.0} {:>6} {:>5} {:>5} {:>8} {:>6} {:>7.0}",
        proto_name(r.legacy),
        human(r.n),
        r.entries,
        r.wall.as_secs_f64(),
        r.cpu.as_secs_f64(),
        core / 1e9,
        core / e / 1e3,
        r.core_master_ns / e / 1e3,
        r.core_slave_ns / e / 1e3,
        r.limit_entry_ns / 1e3,
        r.ratio(),
        core / (r.applied as f64 * r.limit_entry_ns).max(1.0),
        mb(r.bytes_ms),
        r.bytes_sm as f64 / 1e3,
        r.frames_ms,
        r.frames_ms as f64 / r.writes_ms.max(1) as f64,
        r.snapshots,
        r.applied as f64 * 100.0 / e,
        r.stale_left,
        r.missing,
        match r.equal {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        },
        ae_mb,
        ae_st,
        r.rss_mib,
    );
}

// ----- deltas ----------------------------------------------------------------------

/// One delta: core time of each side, bytes and frames, ring fill before.
#[derive(Debug, Clone, Copy)]
struct DeltaSample {
    fill: f64,
    master_ns: f64,
    slave_ns: f64,
    bytes: u64,
    /// Frames master to slave and slave to master.
    frames: (u64, u64),
}

fn delta_run(n: u64, legacy: bool, quick: bool) -> Vec<(&'static str, Vec<DeltaSample>)> {
    let mut w = world(&[Role::Master, Role::Slave], legacy, 0xde17a ^ n);
    load_master(&mut w, 0, n, 0xa11ce ^ n);
    let since = w.lan.now;
    w.start(0, settings(0, Duration::from_secs(3600)), 1);
    w.start(1, settings(1, Duration::from_secs(3600)), 2);
    assert!(w.run_until(MAX_SIM_MS, |w| in_sync(w, 0, 1, legacy, since)));
    let (m_addr, s_addr) = (w.lan.hosts[0].addr, w.lan.hosts[1].addr);
    let want = if quick { 3 } else { 64 };
    let mut bands: Vec<(&'static str, Vec<DeltaSample>)> =
        vec![("empty", vec![]), ("half", vec![]), ("full", vec![])];
    let mut seen_full = 0;
    for k in 0..20_000u64 {
        let ring = w.stats(0).ring;
        let fill = ring.bytes as f64 / ring.capacity.max(1) as f64;
        let band = if fill < 0.10 {
            Some(0)
        } else if (0.45..0.55).contains(&fill) {
            Some(1)
        } else if fill > 0.95 {
            seen_full += 1;
            // Let eviction reach a steady state first.
            (seen_full > 16).then_some(2)
        } else {
            None
        };
        if bands[2].1.len() >= want {
            break;
        }
        let msg = load::sa_add(Space::Delta, k, 0xde1);
        w.lan.hosts[0]
            .kernel
            .write(&msg, IKE_PID)
            .expect("the kernel takes the ADD");
        let (m0, s0) = (w.nodes[0].core_ns, w.nodes[1].core_ns);
        let b0 = w.bytes();
        let frames = |w: &mut World| {
            (
                w.peer(0, s_addr).map_or(0, |p| p.stats.frames_out),
                w.peer(1, m_addr).map_or(0, |p| p.stats.frames_out),
            )
        };
        let f0 = frames(&mut w);
        w.settle();
        let f1 = frames(&mut w);
        let sample = DeltaSample {
            fill,
            master_ns: w.nodes[0].core_ns - m0,
            slave_ns: w.nodes[1].core_ns - s0,
            bytes: w.bytes() - b0,
            frames: (f1.0 - f0.0, f1.1 - f0.1),
        };
        if let Some(b) = band {
            if bands[b].1.len() < want {
                bands[b].1.push(sample);
            }
        }
    }
    let d = load::diff(&w.lan.hosts[0].kernel, &w.lan.hosts[1].kernel);
    assert_eq!(
        (d.stale, d.missing),
        (0, 0),
        "deltas reached the slave ({})",
        proto_name(legacy)
    );
    bands
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn print_delta(n: u64, legacy: bool, bands: &[(&'static str, Vec<DeltaSample>)]) {
    let empty = median(
        bands[0]
            .1
            .iter()
            .map(|s| s.master_ns + s.slave_ns)
            .collect(),
    );
    for (name, v) in bands {
        let total = median(v.iter().map(|s| s.master_ns + s.slave_ns).collect());
        println!(
            "{:<6} {:>5} {:<6} {:>4} {:>6.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7.0} {:>6.1} {:>6.1}",
            proto_name(legacy),
            human(n),
            name,
            v.len(),
            median(v.iter().map(|s| s.fill * 100.0).collect()),
            total / 1e3,
            median(v.iter().map(|s| s.master_ns).collect()) / 1e3,
            median(v.iter().map(|s| s.slave_ns).collect()) / 1e3,
            total / empty,
            median(v.iter().map(|s| s.bytes as f64).collect()),
            median(v.iter().map(|s| s.frames.0 as f64).collect()),
            median(v.iter().map(|s| s.frames.1 as f64).collect()),
        );
    }
}

// ----- repair ----------------------------------------------------------------------

/// One anti-entropy round.
#[derive(Debug, Clone)]
struct RepairRow {
    what: String,
    bytes_ms: u64,
    bytes_sm: u64,
    core_ns: f64,
    wall: Duration,
    snapshots: u64,
    matched: u64,
    mismatched: u64,
    left: load::Diff,
}

/// Runs one anti-entropy round: time runs to the master's next digest
/// and everything that follows from it settles.
fn digest_round(w: &mut World, what: &str) -> RepairRow {
    let (b_ms, b_sm) = (w.lan.traffic[0][1].bytes, w.lan.traffic[1][0].bytes);
    let core0 = w.core_ns();
    let snaps0 = w.stats(0).counters.snapshots_started;
    let c0 = w.stats(1).counters;
    let sent0 = w.stats(0).counters.digests_sent;
    let wall0 = Clock::now();
    // From deadline to deadline (keepalives included) until the master
    // has announced a digest and what follows from it has settled.
    let ok = w.run_until(MAX_SIM_MS, |w| w.stats(0).counters.digests_sent > sent0);
    assert!(ok, "the master announced no digest");
    let wall = wall0.elapsed();
    let c1 = w.stats(1).counters;
    RepairRow {
        what: what.to_string(),
        bytes_ms: w.lan.traffic[0][1].bytes - b_ms,
        bytes_sm: w.lan.traffic[1][0].bytes - b_sm,
        core_ns: w.core_ns() - core0,
        wall,
        snapshots: w.stats(0).counters.snapshots_started - snaps0,
        matched: c1.digests_matched - c0.digests_matched,
        mismatched: c1.digest_mismatches - c0.digest_mismatches,
        left: load::diff(&w.lan.hosts[0].kernel, &w.lan.hosts[1].kernel),
    }
}

/// Makes the slave's tables equal to the master's again, directly in its
/// kernel, after a round that may not have repaired everything: the stale
/// SAs `0..stale` go, the master's SAs `removed` come back (written as the
/// master's IKE daemon wrote them, keys included).
fn heal(w: &mut World, seed: u64, stale: u64, removed: &[u64]) {
    for i in 0..stale {
        w.lan.hosts[1]
            .kernel
            .expire_sa(&load::sa_key(Space::Stale, i));
    }
    for &i in removed {
        if !w.lan.hosts[1]
            .kernel
            .has_mature_sa(&load::sa_key(Space::Master, i))
        {
            let m = load::sa_add(Space::Master, i, seed);
            w.lan.hosts[1]
                .kernel
                .write(&m, IKE_PID)
                .expect("the kernel takes the ADD");
        }
    }
}

fn repair_run(n: u64, quick: bool) -> (u64, Vec<RepairRow>) {
    let interval = Duration::from_secs(5);
    let mut w = world(&[Role::Master, Role::Slave], false, 0x4e9a1 ^ n);
    w.cpu_split = true;
    load_master(&mut w, 0, n, 0xa11ce ^ n);
    let since = w.lan.now;
    w.start(0, settings(0, interval), 1);
    w.start(1, settings(1, interval), 2);
    assert!(w.run_until(MAX_SIM_MS, |w| in_sync(w, 0, 1, false, since)));
    let full = w.lan.traffic[0][1].bytes;
    let mut rows = vec![digest_round(&mut w, "none (in sync)")];
    let amounts: &[u64] = if quick { &[1] } else { &[1, 100, 10_000] };
    let seed = 0xa11ce ^ n;
    for &k in amounts {
        // Stale: SAs only the slave has.
        load::add_sas(&mut w.lan.hosts[1].kernel, Space::Stale, 0..k, 0x5a1e);
        rows.push(digest_round(&mut w, &format!("{k} stale")));
        heal(&mut w, seed, k, &[]);
        rows.push(digest_round(&mut w, "(healed)"));
        // Missing: SAs the slave lost.
        let removed: Vec<u64> = (0..k).map(|j| (j * 7919) % n).collect();
        for &i in &removed {
            w.lan.hosts[1]
                .kernel
                .expire_sa(&load::sa_key(Space::Master, i));
        }
        rows.push(digest_round(&mut w, &format!("{k} missing")));
        heal(&mut w, seed, 0, &removed);
        rows.push(digest_round(&mut w, "(healed)"));
    }
    (full, rows)
}

fn print_repair(n: u64, full: u64, rows: &[RepairRow]) {
    for r in rows {
        println!(
            "{:>5} {:<16} {:>9.3} {:>7.1} {:>8.1} {:>8.3} {:>7.3} {:>5} {:>5} {:>5} {:>6} {:>6}",
            human(n),
            r.what,
            mb(r.bytes_ms),
            r.bytes_ms as f64 * 100.0 / full.max(1) as f64,
            r.bytes_sm as f64 / 1e3,
            r.core_ns / 1e9,
            r.wall.as_secs_f64(),
            r.snapshots,
            r.matched,
            r.mismatched,
            r.left.stale,
            r.left.missing,
        );
    }
}

// ----- failover --------------------------------------------------------------------

fn failover_run(n: u64) -> (u64, u64, u64, Duration, f64) {
    let mut w = world(&[Role::Carp, Role::Carp, Role::Carp], false, 0xfa11 ^ n);
    w.cpu_split = true;
    load_master(&mut w, 0, n, 0xa11ce ^ n);
    w.lan.hosts[0].link_state = MASTER;
    w.lan.hosts[1].link_state = BACKUP;
    w.lan.hosts[2].link_state = BACKUP;
    let since = w.lan.now;
    for i in 0..3 {
        w.start(i, settings(i, Duration::from_secs(3600)), i as u64 + 1);
    }
    assert!(w.run_until(MAX_SIM_MS, |w| {
        in_sync(w, 0, 1, false, since) && in_sync(w, 0, 2, false, since)
    }));
    let full = w.lan.traffic[0][2].bytes;
    // A dies; carp elects B.
    w.crash(0);
    let at = w.lan.now;
    let b0 = w.lan.traffic[1][2].bytes;
    let core0 = w.core_ns();
    let wall0 = Clock::now();
    w.set_link(1, MASTER);
    assert!(w.run_until(MAX_SIM_MS, |w| in_sync(w, 1, 2, false, at)));
    let wall = wall0.elapsed();
    let d = load::diff(&w.lan.hosts[1].kernel, &w.lan.hosts[2].kernel);
    assert_eq!((d.stale, d.missing), (0, 0), "C follows B");
    (
        full,
        w.lan.traffic[1][2].bytes - b0,
        w.stats(1).counters.snapshots_started,
        wall,
        w.core_ns() - core0,
    )
}

// ----- daemons ---------------------------------------------------------------------

/// A process's CPU time so far (user + system) and its peak RSS (MiB),
/// from /proc.
fn proc_usage(pid: u32) -> (Duration, f64) {
    let tick = 100.0; // USER_HZ on Linux
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(Duration::from_secs_f64(ticks / tick))
        })
        .unwrap_or_default();
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0);
    (cpu, hwm)
}

/// The process whose command line has `arg` (a devhost by its socket).
fn pid_with_arg(arg: &std::path::Path) -> Option<u32> {
    let want = arg.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        cmd.split(|&b| b == 0).any(|a| a == want).then_some(pid)
    })
}

/// A daemon of the bench: quiet, `protocol legacy` or v2.
fn daemon_options(legacy: bool) -> sasyncd_tests::cluster::Options {
    sasyncd_tests::cluster::Options {
        verbosity: 0,
        extra: if legacy {
            "protocol legacy".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

/// One initial sync between two daemon processes.
struct DaemonRow {
    n: u64,
    legacy: bool,
    /// Loading the master's devhost (before the clock starts).
    load: Duration,
    /// From starting the slave daemon to its control socket answering.
    answering: Duration,
    /// From starting the slave daemon to its "in sync with master"
    /// (`None`: not within a minute, or the master's dump failed).
    in_sync: Option<Duration>,
    /// Both devhosts' tables equal then (counts and digest).
    equal: bool,
    /// The slave's node says it is not syncing and has swept.
    settled: bool,
    bytes: u64,
    frames: u64,
    snapshots: u64,
    /// CPU from the slave's start and peak RSS (MiB) of the master's
    /// privileged, network and devhost processes, then the slave's.
    usage: [(Duration, f64); 6],
}

/// `n` SAs and `n / 2` flows between two daemon processes on loopback
/// (development mode: each on its `sasyncd-devhost`), timed from the
/// slave daemon's start; the slave's devhost starts with `stale` SAs of
/// its own.
fn daemons_run(n: u64, legacy: bool, stale: u64) -> DaemonRow {
    use sasyncd_tests::cluster::Cluster;
    let opts = daemon_options(legacy);
    let mut c = Cluster::new(2, &[opts.clone(), opts]);
    c.carp(0, "master");
    let t = Clock::now();
    c.host(0, &format!("bulk-sa {n}"));
    let load = t.elapsed();
    if stale > 0 {
        // SAs the master does not have (disjoint indices): the sweep, or a
        // legacy slave's flush, must remove them.
        c.host(1, &format!("bulk-sa {stale} flows=0 from={n}"));
    }
    c.start(0);
    let until = Clock::now() + Duration::from_secs(20);
    while c.show(0).get("state").map(String::as_str) != Some("MASTER") {
        assert!(
            Clock::now() < until,
            "the master daemon did not become MASTER"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let want_counts = c.counts(0);
    let want = c.digest(0);
    let pids0 = [
        c.pid(0).expect("master"),
        c.net_pid(0).expect("master"),
        pid_with_arg(&c.gw[0].host).unwrap_or(0),
    ];
    let cpu0: Vec<Duration> = pids0.iter().map(|&p| proc_usage(p).0).collect();
    let dev1 = pid_with_arg(&c.gw[1].host).unwrap_or(0);
    let dev1_cpu0 = proc_usage(dev1).0;

    let t0 = Clock::now();
    c.start(1);
    let answering = t0.elapsed();
    let pids1 = [c.pid(1).expect("slave"), c.net_pid(1).expect("slave"), dev1];
    let until = t0 + Duration::from_secs(60);
    // Watch only the slave's log (cheap), so that polling does not take
    // the two cores the six processes share; compare the tables after.
    let in_sync = loop {
        if !c.log_lines(1, "in sync with master").is_empty() {
            break Some(t0.elapsed());
        }
        let failed = c.log_lines(0, "kernel dump failed");
        if Clock::now() >= until || !failed.is_empty() {
            eprintln!(
                "{} N={}: NOT IN SYNC after {:.1} s: slave has {:?} (sas, flows) of {want_counts:?}; master snapshots started {}; master log: {}",
                proto_name(legacy),
                human(n),
                t0.elapsed().as_secs_f64(),
                c.counts(1),
                c.counter(0, "snapshots_started"),
                failed.first().map_or("-", String::as_str),
            );
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let equal = c.counts(1) == want_counts && c.digest(1) == want;
    let show = c.show(1);
    // A legacy slave flushes before its snapshot instead of sweeping after.
    let settled = show.get("syncing").map(String::as_str) == Some("false")
        && (legacy || c.counter(1, "sweeps") >= 1);
    let get = |k: &str| c.peer_count(0, c.gw[1].addr, k);
    let mut usage = [(Duration::ZERO, 0.0); 6];
    for (k, &pid) in pids0.iter().chain(&pids1).enumerate() {
        let (cpu, hwm) = proc_usage(pid);
        // CPU from the slave daemon's start (the devhosts loaded before).
        let cpu = match k {
            0..=2 => cpu.saturating_sub(cpu0[k]),
            5 => cpu.saturating_sub(dev1_cpu0),
            _ => cpu,
        };
        usage[k] = (cpu, hwm);
    }
    DaemonRow {
        n,
        legacy,
        load,
        answering,
        in_sync,
        equal,
        settled,
        bytes: get("bytes_out"),
        frames: get("frames_out"),
        snapshots: get("snapshots_sent"),
        usage,
    }
}

const PROCESSES: [&str; 6] = ["mp", "mn", "md", "sp", "sn", "sd"];

fn print_daemons_header() {
    let mut h = format!(
        "{:<6} {:>5} {:>8} {:>6} {:>8} {:>7} {:>5} {:>7} {:>8} {:>8} {:>5} {:>7}",
        "proto",
        "N",
        "entries",
        "load_s",
        "answer_s",
        "sync_s",
        "equal",
        "settled",
        "MB_m>s",
        "fr_m>s",
        "snaps",
        "d_us/en"
    );
    for p in PROCESSES {
        h += &format!(" {:>6}", format!("cpu_{p}"));
    }
    for p in PROCESSES {
        h += &format!(" {:>6}", format!("MiB_{p}"));
    }
    println!("{h}");
}

fn print_daemons(r: &DaemonRow) {
    let entries = r.n + r.n / 2;
    // The four daemon processes, not the devhosts (the kernels).
    let daemons: Duration = [0, 1, 3, 4].iter().map(|&k| r.usage[k].0).sum();
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut line = format!(
        "{:<6} {:>5} {:>8} {:>6.1} {:>8.3} {:>7} {:>5} {:>7} {:>8.1} {:>8} {:>5} {:>7.2}",
        proto_name(r.legacy),
        human(r.n),
        entries,
        r.load.as_secs_f64(),
        r.answering.as_secs_f64(),
        r.in_sync
            .map_or("-".to_string(), |d| format!("{:.3}", d.as_secs_f64())),
        yes(r.equal),
        yes(r.settled),
        mb(r.bytes),
        r.frames,
        r.snapshots,
        daemons.as_secs_f64() * 1e6 / entries.max(1) as f64
    );
    for (cpu, _) in &r.usage {
        line += &format!(" {:>6.2}", cpu.as_secs_f64());
    }
    for (_, hwm) in &r.usage {
        line += &format!(" {:>6.0}", hwm);
    }
    println!("{line}");
}

/// Two daemon processes (gateway 0 master) with `n` SAs and `n / 2` flows
/// on the master, the slave's first sync done.
fn daemons_in_sync(n: u64, legacy: bool) -> sasyncd_tests::cluster::Cluster {
    use sasyncd_tests::cluster::Cluster;
    let opts = daemon_options(legacy);
    let mut c = Cluster::new(2, &[opts.clone(), opts]);
    c.carp(0, "master");
    c.host(0, &format!("bulk-sa {n}"));
    c.start(0);
    c.start(1);
    c.wait_up_to(Duration::from_secs(60), "the slave's first sync", |c| {
        !c.log_lines(1, "in sync with master").is_empty()
    });
    c
}

/// The master's privileged and network processes, then the slave's.
fn daemon_pids(c: &sasyncd_tests::cluster::Cluster) -> [u32; 4] {
    [c.pid(0), c.net_pid(0), c.pid(1), c.net_pid(1)].map(|p| p.unwrap_or(0))
}

/// Deltas between two daemon processes: after a sync of `n` SAs (+ `n /
/// 2` flows), `k` new SAs written one at a time on the master's devhost
/// (one `add-sa single` command each, so the master's daemon keeps up with
/// its promiscuous socket as with an IKE daemon's rekeys), until the
/// slave's tables equal the master's.
fn daemons_delta_run(n: u64, legacy: bool, k: u64) {
    use sasyncd_tests::cluster::Cluster;
    let c = daemons_in_sync(n, legacy);
    c.wait_synced(0, 1);
    let (master, slave) = (c.gw[0].addr, c.gw[1].addr);
    // Bytes and frames master -> slave, frames slave -> master.
    let moved = |c: &Cluster| {
        [
            c.peer_count(0, slave, "bytes_out"),
            c.peer_count(0, slave, "frames_out"),
            c.peer_count(1, master, "frames_out"),
        ]
    };
    let pids = daemon_pids(&c);
    let cpu = || pids.map(|p| proc_usage(p).0);
    let (moved0, cpu0) = (moved(&c), cpu());
    let t0 = Clock::now();
    for _ in 0..k {
        c.host(0, "add-sa single");
    }
    let written = t0.elapsed();
    let want = c.counts(0);
    c.wait_up_to(
        Duration::from_secs(60),
        "the slave to take every delta",
        |c| c.counts(1) == want,
    );
    let wall = t0.elapsed();
    let equal = c.digest(0) == c.digest(1);
    let (moved1, cpu1) = (moved(&c), cpu());
    let moved: Vec<f64> = moved1
        .iter()
        .zip(&moved0)
        .map(|(a, b)| a.saturating_sub(*b) as f64 / k as f64)
        .collect();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / k as f64;
    let used: Vec<f64> = cpu1.iter().zip(&cpu0).map(|(a, b)| per(*a - *b)).collect();
    let drops = c.host_status(0, "promisc_drops");
    println!(
        "{:<6} {:>5} {:>6} {:>7.2} {:>7.2} {:>7.1} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>7.0} {:>7.2} {:>7.3} {:>5} {:>5}",
        proto_name(legacy),
        human(n),
        k,
        written.as_secs_f64(),
        wall.as_secs_f64(),
        used.iter().sum::<f64>(),
        used[0],
        used[1],
        used[2],
        used[3],
        moved[0],
        moved[1],
        moved[2],
        drops,
        if equal { "yes" } else { "NO" }
    );
}

fn print_daemons_delta_header() {
    println!(
        "{:<6} {:>5} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>5} {:>5}",
        "proto",
        "N",
        "deltas",
        "write_s",
        "wall_s",
        "d_us/d",
        "mp_us",
        "mn_us",
        "sp_us",
        "sn_us",
        "B/delta",
        "fr_m>s",
        "fr_s>m",
        "drops",
        "equal"
    );
}

/// Repair between two daemon processes: after a v2 sync of `n` SAs (+
/// `n / 2` flows), rounds that damage the slave's devhost and wait for
/// the master's next digest (every 60 s) to repair it.
fn daemons_repair_run(n: u64) {
    use sasyncd_tests::cluster::Cluster;
    let c = daemons_in_sync(n, false);
    let slave = c.gw[1].addr;
    let sent = |c: &Cluster| c.peer_count(0, slave, "bytes_out");
    let full = sent(&c);
    println!("full snapshot: {:.3} MB master->slave", mb(full));
    println!(
        "{:>5} {:<12} {:>9} {:>7} {:>5} {:>5} {:>8} {:>6} {:>5}",
        "N", "damage", "MB_m>s", "%snap", "snaps", "mism", "d_cpu_s", "wait_s", "equal"
    );
    let pids = daemon_pids(&c);
    let daemons_cpu = || -> Duration { pids.iter().map(|&p| proc_usage(p).0).sum() };
    let mut next_stale = n;
    let mut next_missing = 0u64;
    for (missing, k) in [
        (false, 1u64),
        (true, 1),
        (false, 100),
        (true, 100),
        (false, 10_000),
    ] {
        if missing {
            // SAs the master has, spread over the SADB (each delete dumps
            // the devhost's SADB, so a few only).
            for j in 0..k {
                let i = ((next_missing + j) * 7919 % n) as u32;
                c.host(1, &format!("delete-sa spi=0x{:08x}", bulk::spi(i)));
            }
            next_missing += k;
        } else {
            c.host(1, &format!("bulk-sa {k} flows=0 from={next_stale}"));
            next_stale += k;
        }
        let (b0, snaps0, mism0, cpu0, t0) = (
            sent(&c),
            c.counter(0, "snapshots_started"),
            c.counter(1, "digest_mismatches"),
            daemons_cpu(),
            Clock::now(),
        );
        let until = t0 + Duration::from_secs(150);
        let mut equal = false;
        while Clock::now() < until {
            if c.digest(0) == c.digest(1)
                && c.show(1).get("syncing").map(String::as_str) == Some("false")
            {
                equal = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let moved = sent(&c).saturating_sub(b0);
        println!(
            "{:>5} {:<12} {:>9.3} {:>7.1} {:>5} {:>5} {:>8.2} {:>6.1} {:>5}",
            human(n),
            format!("{k} {}", if missing { "missing" } else { "stale" }),
            mb(moved),
            moved as f64 * 100.0 / full.max(1) as f64,
            c.counter(0, "snapshots_started").saturating_sub(snaps0),
            c.counter(1, "digest_mismatches").saturating_sub(mism0),
            (daemons_cpu() - cpu0).as_secs_f64(),
            t0.elapsed().as_secs_f64(),
            if equal { "yes" } else { "NO" }
        );
    }
}

// ----- main ------------------------------------------------------------------------

fn run(o: Opts) {
    let start = Clock::now();
    if o.quick {
        println!(
            "cluster bench: quick run (`cargo bench -p sasyncd-tests --bench cluster` measures)"
        );
    }
    println!(
        "clock reads: monotonic {:.0} ns (subtracted once per timed platform callback), thread CPU {:.0} ns",
        pipe::clock_overhead_ns(),
        pipe::cpu_clock_overhead_ns()
    );
    if o.sync {
        println!();
        println!(
            "== initial sync: N SAs + N/2 flows, slave starts with {} stale SAs",
            o.stale
        );
        print_sync_header();
        for &n in &o.sizes {
            for &legacy in &o.protos {
                let t = Clock::now();
                let runs = match (o.quick, o.runs) {
                    (true, _) => 1,
                    (false, Some(k)) => k,
                    (false, None) => (100_000 / n.max(1)).clamp(1, 15) as usize,
                };
                let mut rows: Vec<SyncRow> = (0..runs)
                    .map(|_| sync_run(n, legacy, o.stale, o.quick))
                    .collect();
                rows.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
                let r = &rows[rows.len() / 2];
                print_sync(r);
                eprintln!(
                    "   ({} N={}: load {:.1} s, {runs} run(s) {:.1} s, ratios {:.2}..{:.2}, median printed; limit {:.0}/{:.0} ns per SA/flow msg)",
                    proto_name(legacy),
                    human(n),
                    r.setup.as_secs_f64(),
                    t.elapsed().as_secs_f64(),
                    rows[0].ratio(),
                    rows[rows.len() - 1].ratio(),
                    r.limit_sa_ns,
                    r.limit_flow_ns
                );
            }
        }
    }
    if o.delta {
        println!();
        println!(
            "== deltas at N={} (ADD of a new SA: promiscuous copy in, frame out, slave applies; one at a time)",
            human(o.delta_n)
        );
        println!(
            "{:<6} {:>5} {:<6} {:>4} {:>6} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6}",
            "proto",
            "N",
            "ring",
            "cnt",
            "fill%",
            "core_us",
            "mst_us",
            "slv_us",
            "x_empty",
            "bytes",
            "fr_m>s",
            "fr_s>m"
        );
        for &legacy in &o.protos {
            let bands = delta_run(o.delta_n, legacy, o.quick);
            print_delta(o.delta_n, legacy, &bands);
        }
    }
    if o.repair {
        println!();
        println!(
            "== repair at N={} (v2): one anti-entropy round after damaging the slave's kernel",
            human(o.repair_n)
        );
        let (full, rows) = repair_run(o.repair_n, o.quick);
        println!("full snapshot: {:.3} MB master->slave", mb(full));
        println!(
            "{:>5} {:<16} {:>9} {:>7} {:>8} {:>8} {:>7} {:>5} {:>5} {:>5} {:>6} {:>6}",
            "N",
            "damage",
            "MB_m>s",
            "%snap",
            "KB_s>m",
            "core_s",
            "wall_s",
            "snaps",
            "match",
            "mism",
            "stale",
            "miss"
        );
        print_repair(o.repair_n, full, &rows);
    }
    if o.failover {
        println!();
        println!(
            "== failover at N={} (v2): C in sync with A; A dies, B (in sync) becomes master",
            human(o.failover_n)
        );
        let (full, moved, snaps, wall, core) = failover_run(o.failover_n);
        println!(
            "full snapshot A->C {:.3} MB; B->C after failover {} bytes = {:.4} % of it; B snapshots {}; core {:.1} us; wall {:.1} us",
            mb(full),
            moved,
            moved as f64 * 100.0 / full.max(1) as f64,
            snaps,
            core / 1e3,
            wall.as_secs_f64() * 1e6
        );
    }
    if o.daemons {
        println!();
        println!(
            "== daemons: two sasyncd processes (development mode, loopback), slave started last with {} stale SAs",
            o.stale
        );
        print_daemons_header();
        for &n in &o.daemons_n {
            for &legacy in &o.protos {
                print_daemons(&daemons_run(n, legacy, o.stale));
            }
        }
        let n = o.daemons_n[0];
        println!();
        println!(
            "== deltas between the daemons at N={}: {} new SAs written one at a time on the master's devhost",
            human(n),
            o.daemons_deltas
        );
        print_daemons_delta_header();
        for &legacy in &o.protos {
            daemons_delta_run(n, legacy, o.daemons_deltas);
        }
    }
    if o.daemons_repair {
        println!();
        println!(
            "== repair between two daemon processes at N={} (v2): damage the slave's devhost, wait for the master's next digest (60 s)",
            human(o.repair_n)
        );
        daemons_repair_run(o.repair_n);
    }
    println!();
    println!(
        "total bench time: {:.1} s, peak RSS {:.0} MiB",
        start.elapsed().as_secs_f64(),
        max_rss_mib()
    );
}

fn main() {
    let o = Opts::parse();
    // Nodes are a few hundred KiB and a debug build moves them on the stack.
    std::thread::Builder::new()
        .name("cluster-bench".into())
        .stack_size(64 << 20)
        .spawn(move || run(o))
        .expect("thread")
        .join()
        .expect("cluster bench");
}
