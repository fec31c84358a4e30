//! sasyncd-core on a Cortex-M4F: a master and a slave node, each with an
//! in-memory kernel, joined by in-memory pipes and run by the core's one
//! runtime (`sasyncd_core::platform::drive`). The master's kernel
//! holds SAs and flows before the nodes start (the slave gets them by
//! snapshot), more come and go while they run (deltas from the master's
//! promiscuous PF_KEY socket); then the slave's kernel must hold exactly
//! the master's entries.
//!
//! Reports over semihosting and exits with a failure status on any
//! failure, panic or fault. See README.md for what each figure means.

#![no_std]
#![no_main]

mod kernel;
mod meter;
mod msgs;
mod node;
mod world;

use core::cell::UnsafeCell;
use core::mem::{size_of, MaybeUninit};
use core::net::{IpAddr, Ipv4Addr};
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use sasyncd_core::config::Config;
use sasyncd_core::node::Settings;
use sasyncd_core::time::Instant;

use kernel::Kernel;
use msgs::IKE_PID;
use node::FwNode;
use world::World;

/// SAs in the master's kernel before the nodes start (sent by snapshot).
const SNAPSHOT_SAS: u32 = 300;
/// Flows in the master's kernel before the nodes start.
const SNAPSHOT_FLOWS: u32 = 32;
/// SAs the IKE daemon adds while the nodes run (sent as deltas).
const DELTA_SAS: u32 = 40;
/// SAs it deletes meanwhile (the first ones of the snapshot).
const DELTA_DELETES: u32 = 10;
/// Flows it deletes, and flows it adds, meanwhile.
const DELTA_FLOWS: u32 = 4;
/// Requests the IKE daemon writes between two services of the nodes
/// (well within the promiscuous socket's 8 KiB queue).
const BATCH: u32 = 8;

const MASTER: usize = 0;
const SLAVE: usize = 1;
const ADDRS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
];
const PIDS: [u32; 2] = [100, 101];

const MASTER_CONF: &[u8] = b"mode master\npeer 10.0.0.2\ncontrol none\n\
sharedkey 0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
const SLAVE_CONF: &[u8] = b"mode slave\npeer 10.0.0.1\ncontrol none\n\
sharedkey 0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

/// Simulated time the sync may take (the nodes' timers fire meanwhile).
const MAX_SIM_MS: u64 = 120_000;
/// Rounds of servicing both nodes before the world must have settled.
const MAX_ROUNDS: u32 = 1_000_000;

/// A static handed out once as `&'static mut` (no heap, no `static mut`).
struct Once<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reachable only through `take`, which hands it out
// at most once.
unsafe impl<T> Sync for Once<T> {}

impl<T> Once<T> {
    const fn new(value: T) -> Self {
        Once {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    fn take(&'static self) -> &'static mut T {
        assert!(!self.taken.swap(true, Ordering::SeqCst), "taken twice");
        // SAFETY: `taken` guarantees this is the only reference.
        unsafe { &mut *self.value.get() }
    }
}

/// The two kernels and the pipes (all-zero at start, so in .bss).
static WORLD: Once<World> = Once::new(World::new());
/// The two nodes. Uninitialised statics (in .bss) written at start: an
/// empty `Option` is not zero bytes, and a `None` initialiser would put
/// them in .data, a flash image of their size.
static NODES: Once<MaybeUninit<[Option<FwNode>; 2]>> = Once::new(MaybeUninit::uninit());
/// Their buffers (zero at start: in .bss).
static BUFFERS: Once<[node::Buffers; 2]> = Once::new([node::Buffers::new(), node::Buffers::new()]);
/// Their event queues: in .data (1.4 KB; built at start they would
/// take as much of `run`'s stack frame).
static EVENTS: Once<[node::Events; 2]> = Once::new([[None; node::EVENTS]; 2]);
/// Their peers and connection slots, written when they are built
/// (uninitialised as `NODES`).
static PARTS: Once<MaybeUninit<[Option<node::Parts>; 2]>> = Once::new(MaybeUninit::uninit());
/// Their snapshot marks, lent to them.
static MARKS: Once<[node::Marks; 2]> = Once::new([node::Marks::new(), node::Marks::new()]);
/// Their configurations, parsed in place (a `Config` is 9 KB).
static CONFIGS: Once<[Config; 2]> = Once::new([Config::empty(), Config::empty()]);

type Nodes = [&'static mut FwNode; 2];

/// Why the run failed.
type Fail = &'static str;

#[entry]
fn main() -> ! {
    let cp = cortex_m::Peripherals::take().expect("core peripherals");
    meter::start_clock(cp.SYST);
    let per_tick = meter::instructions_per_tick();
    match run(per_tick) {
        Ok(()) => {
            hprintln!("firmware: PASS");
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err(why) => {
            hprintln!("firmware: FAIL: {}", why);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {
        cortex_m::asm::bkpt();
    }
}

fn settings(i: usize) -> Settings {
    let mut id = [0u8; 16];
    id[0] = i as u8 + 1;
    Settings::new(id, 0x5eed_0000 + i as u64, PIDS[i])
}

/// Writes `msg` to `kernel` as the IKE daemon.
fn ike_write(kernel: &mut Kernel, msg: &msgs::MsgBuf) -> Result<(), Fail> {
    kernel
        .write(msg.bytes(), IKE_PID)
        .map_err(|_| "the master's kernel refused an IKE request")
}

fn run(per_tick: u64) -> Result<(), Fail> {
    if per_tick != 40 {
        hprintln!(
            "firmware: warning: {} instructions per SysTick tick, not 40: not run under QEMU's -icount shift=0? The instruction figures are then not instructions",
            per_tick
        );
    }
    let w = WORLD.take();
    w.init(ADDRS, PIDS);
    if cfg!(feature = "planted-drop") {
        hprintln!("firmware: planted failure: one of the slave's PF_KEY writes is dropped");
        w.drop_write = Some(7);
    }
    if cfg!(feature = "planted-loss") {
        hprintln!("firmware: planted failure: the slave's kernel ignores every write of one SA");
        w.lose_spi = Some(msgs::spi(20));
    }

    // The IKE daemon's SAs and flows before sasyncd runs.
    let mk = &mut w.hosts[MASTER].kernel;
    for i in 0..SNAPSHOT_SAS {
        ike_write(mk, &msgs::sa_add(i))?;
    }
    for p in 0..SNAPSHOT_FLOWS {
        ike_write(mk, &msgs::flow_add(p))?;
    }

    // Parse the configurations and build the nodes, in place (measured
    // apart from the sync).
    meter::paint_stack();
    let [m_slot, s_slot] = NODES.take().write([None, None]);
    let [m_bufs, s_bufs] = BUFFERS.take();
    let [m_parts, s_parts] = PARTS.take().write([None, None]);
    let [m_events, s_events] = EVENTS.take();
    let [m_marks, s_marks] = MARKS.take();
    let [m_conf, s_conf] = CONFIGS.take();
    let now = w.now;
    m_conf
        .parse_into(MASTER_CONF)
        .map_err(|_| "master config")?;
    let master = node::build(m_slot, m_bufs, m_events, m_parts, m_marks, m_conf, settings(MASTER), 1, now)
        .map_err(|_| "the master node could not be built")?;
    s_conf.parse_into(SLAVE_CONF).map_err(|_| "slave config")?;
    let slave = node::build(s_slot, s_bufs, s_events, s_parts, s_marks, s_conf, settings(SLAVE), 2, now)
        .map_err(|_| "the slave node could not be built")?;
    let build_stack = meter::peak_stack();
    let mut nodes: Nodes = [master, slave];

    // Snapshot: the slave connects and takes the master's tables.
    meter::paint_stack();
    let t0 = meter::ticks();
    run_until_synced(w, &mut nodes)?;
    let t1 = meter::ticks();
    let aside1 = w.platform_ticks + w.check_ticks;
    let snap_entries = w.hosts[MASTER].kernel.sa_count() + w.hosts[MASTER].kernel.flow_count();

    // Deltas: the IKE daemon changes the master's kernel while both run.
    let mut changes = 0u32;
    let mut batch = 0u32;
    let mut write = |w: &mut World, nodes: &mut Nodes, msg: msgs::MsgBuf| -> Result<(), Fail> {
        let t = meter::ticks();
        ike_write(&mut w.hosts[MASTER].kernel, &msg)?;
        w.platform_ticks += meter::ticks() - t;
        changes += 1;
        batch += 1;
        if batch == BATCH {
            batch = 0;
            settle(w, nodes)?;
        }
        Ok(())
    };
    for i in 0..DELTA_SAS {
        write(w, &mut nodes, msgs::sa_add(SNAPSHOT_SAS + i))?;
    }
    for i in 0..DELTA_DELETES {
        write(w, &mut nodes, msgs::sa_delete(i))?;
    }
    for p in 0..DELTA_FLOWS {
        write(w, &mut nodes, msgs::flow_delete(p))?;
        write(w, &mut nodes, msgs::flow_add(SNAPSHOT_FLOWS + p))?;
    }
    run_until_synced(w, &mut nodes)?;
    let t2 = meter::ticks();
    let aside2 = w.platform_ticks + w.check_ticks - aside1;
    let sync_stack = meter::peak_stack();

    // Report.
    let (mk, sk) = (&w.hosts[MASTER].kernel, &w.hosts[SLAVE].kernel);
    let ms = nodes[MASTER].stats();
    let ss = nodes[SLAVE].stats();
    hprintln!(
        "firmware: node: {} bytes each and {} bytes of storage (1 peer, {} B delta ring, {} B send buffer) and {} bytes of marks ({}); 2 nodes in static RAM",
        size_of::<FwNode>(),
        size_of::<node::Buffers>() + size_of::<node::Events>() + size_of::<node::Parts>(),
        node::RING,
        node::TX,
        size_of::<node::Marks>(),
        node::MARKS
    );
    hprintln!(
        "firmware: test world (2 in-memory kernels with dump copies, pipes): {} bytes of static RAM",
        size_of::<World>()
    );
    hprintln!(
        "firmware: static RAM {} bytes; flash {} bytes (vectors, code, rodata, .data image)",
        meter::static_ram(),
        meter::flash_used()
    );
    hprintln!(
        "firmware: peak stack {} bytes while syncing; {} bytes while parsing the configurations and building the nodes in place; {} bytes of stack room",
        sync_stack,
        build_stack,
        meter::stack_room()
    );
    let instr = |t: u64| t * per_tick;
    let per = |t: u64, n: u64| instr(t) / n.max(1);
    let (snap_n, delta_n) = (snap_entries as u64, u64::from(changes));
    let (snap_node, delta_node) = ((t1 - t0) - aside1, (t2 - t1) - aside2);
    hprintln!(
        "firmware: instructions (QEMU -icount shift=0, {} per SysTick tick): snapshot of {} entries: {} per entry in the two nodes ({} per entry with kernels, pipes and checks); {} deltas: {} per delta in the two nodes ({} with the rest)",
        per_tick,
        snap_n,
        per(snap_node, snap_n),
        per(t1 - t0, snap_n),
        delta_n,
        per(delta_node, delta_n),
        per(t2 - t1, delta_n)
    );
    hprintln!(
        "firmware: instructions in total: snapshot {} (nodes {}), deltas {} (nodes {})",
        instr(t1 - t0),
        instr(snap_node),
        instr(t2 - t1),
        instr(delta_node)
    );
    hprintln!(
        "firmware: synced: master {} SAs {} flows, slave {} SAs {} flows; bytes sent {} / {}; slave applied {}, kernel errors {}; master snapshots {}",
        mk.sa_count(),
        mk.flow_count(),
        sk.sa_count(),
        sk.flow_count(),
        w.sent[MASTER],
        w.sent[SLAVE],
        ss.counters.applied,
        ss.counters.kernel_errors,
        ms.counters.snapshots_done
    );

    // The checks.
    let d = mk.diff(sk);
    if !d.is_empty() {
        hprintln!(
            "firmware: kernels differ: {} missing on the slave, {} extra, {} with other content",
            d.missing,
            d.extra,
            d.differ
        );
        return Err("the slave's kernel does not hold the master's entries");
    }
    let expected = (SNAPSHOT_SAS + DELTA_SAS - DELTA_DELETES) as usize;
    if mk.sa_count() != expected || mk.flow_count() != SNAPSHOT_FLOWS as usize {
        return Err("the master's kernel does not hold what the IKE daemon wrote");
    }
    if ss.counters.kernel_errors != 0 || mk.stats().refused != 0 || sk.stats().refused != 0 {
        return Err("a kernel refused a request");
    }
    hprintln!(
        "firmware: anti-entropy: slave digest mismatches {}, repairs applied {}; master snapshots {}, repairs sent {}",
        ss.counters.digest_mismatches,
        ss.counters.repairs_done,
        ms.counters.snapshots_done,
        ms.counters.repairs
    );
    if ss.counters.digest_mismatches != 0
        || ss.counters.repairs_done != 0
        || ms.counters.repairs != 0
    {
        return Err("the slave's kernel had to be repaired (anti-entropy found a difference)");
    }
    if ms.counters.snapshots_done != 1 || ss.syncing {
        return Err("the slave did not finish exactly one snapshot");
    }
    if mk.stats().promisc_drops != 0 {
        return Err("promiscuous copies were dropped");
    }
    // The nodes' event queues are the smallest core allows (min_events).
    if ms.counters.events_overflow != 0 || ss.counters.events_overflow != 0 {
        return Err("a node's event queue overflowed");
    }
    // Issue 12's bar: one node, its storage, its marks and the worst stack
    // seen fit in 64 KiB of RAM.
    let one = size_of::<FwNode>()
        + size_of::<node::Buffers>()
        + size_of::<node::Events>()
        + size_of::<node::Parts>()
        + size_of::<node::Marks>()
        + sync_stack.max(build_stack);
    hprintln!(
        "firmware: one node's RAM: {} bytes (node + storage + marks + peak stack) of a 65536-byte budget",
        one
    );
    if one > RAM_BUDGET {
        return Err("one node with its marks and peak stack does not fit in 64 KiB");
    }
    Ok(())
}

/// The RAM one node may use with its worst-case stack (a 64 KiB part).
const RAM_BUDGET: usize = 64 * 1024;

/// Services both nodes until nothing moves (simulated time stands still).
fn settle(w: &mut World, nodes: &mut Nodes) -> Result<(), Fail> {
    for _ in 0..MAX_ROUNDS {
        let a = w.service(MASTER, nodes[MASTER]);
        let b = w.service(SLAVE, nodes[SLAVE]);
        if !a && !b {
            return Ok(());
        }
    }
    Err("the world did not settle")
}

/// Whether the slave follows the master, is done with its snapshot and
/// its kernel queue, and its kernel holds the master's entries.
fn synced(w: &mut World, nodes: &Nodes) -> bool {
    let t = meter::ticks();
    let s = nodes[SLAVE].stats();
    let done = matches!(s.following, Some((_, true)))
        && !s.syncing
        && !s.repairing
        && s.pfkey_queued == 0
        && s.job.is_none()
        && w.hosts[MASTER]
            .kernel
            .diff(&w.hosts[SLAVE].kernel)
            .is_empty();
    w.check_ticks += meter::ticks() - t;
    done
}

/// Settles, then moves simulated time from deadline to deadline (the
/// nodes' timers firing as they run) until the slave is in sync.
fn run_until_synced(w: &mut World, nodes: &mut Nodes) -> Result<(), Fail> {
    let end = w.now.as_millis() + MAX_SIM_MS;
    loop {
        settle(w, nodes)?;
        if synced(w, nodes) {
            return Ok(());
        }
        let next = nodes
            .iter()
            .filter_map(|n| n.poll_timeout())
            .min()
            .ok_or("no timer left and not in sync")?;
        if next.as_millis() > end {
            let d = w.hosts[MASTER].kernel.diff(&w.hosts[SLAVE].kernel);
            hprintln!(
                "firmware: kernels differ: {} missing on the slave, {} extra, {} with other content",
                d.missing,
                d.extra,
                d.differ
            );
            return Err("not in sync within the time allowed");
        }
        // The nodes' timers fire as they run, at the next settle.
        w.now = Instant::from_millis(next.as_millis().max(w.now.as_millis() + 1));
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("firmware: FAIL: panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    hprintln!("firmware: FAIL: hard fault at pc {:#010x}", ef.pc());
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}
