//! The node's own buffers keep no SA key once the message that carried it
//! is handled (issue 22): the working buffers, the receive buffer, the
//! PF_KEY queue toward the kernel, and on the master the frame batch; the
//! delta ring holds it while the delta is current and wipes it when the
//! node goes. The attack is a memory dump of the network process.
//!
//! A tracking allocator records the heap blocks allocated while a node is
//! started (its storage: the node itself never allocates afterwards, as
//! `zero_alloc` checks), looks for a known key in each of them at
//! checkpoints, and in each one freed. A master and a slave replicate an
//! SA carrying the key, as a delta and in a snapshot, in both protocols.
//!
//! One process-wide allocator: no harness threads (`harness = false`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sasyncd_tests::harness::{config, TestWorld, World};
use sasyncd_tests::msgs::{esp_add, esp_delete, ip, ip4};

/// The SA key of the test, made at run time.
static mut KEY: [u8; 32] = [0; 32];

const SLOTS: usize = 4096;
/// The node's blocks: address (0 empty, 1 removed) and size.
static PTRS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static SIZES: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static OVERFLOW: AtomicBool = AtomicBool::new(false);
/// Blocks allocated now are the node's.
static COLLECT: AtomicBool = AtomicBool::new(false);
/// The node's freed blocks that still held the key.
static FREED_WITH_KEY: AtomicUsize = AtomicUsize::new(0);

fn track(p: usize, size: usize) {
    for i in 0..SLOTS {
        let cur = PTRS[i].load(Ordering::Relaxed);
        if (cur == 0 || cur == 1)
            && PTRS[i]
                .compare_exchange(cur, p, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            SIZES[i].store(size, Ordering::Release);
            return;
        }
    }
    OVERFLOW.store(true, Ordering::Relaxed);
}

/// Whether `p` was one of the node's blocks (it is not any more).
fn untrack(p: usize) -> bool {
    for slot in &PTRS {
        if slot.load(Ordering::Acquire) == p {
            slot.store(1, Ordering::Release);
            return true;
        }
    }
    false
}

/// Whether `len` bytes at `p` hold the key.
///
/// # Safety
/// `p..p+len` must be readable.
unsafe fn holds_key(p: *const u8, len: usize) -> bool {
    // SAFETY: the caller's promise; KEY is only written before the nodes
    // start.
    let (bytes, key) = unsafe {
        (
            std::slice::from_raw_parts(p, len),
            &*std::ptr::addr_of!(KEY),
        )
    };
    bytes.windows(key.len()).any(|w| w == key)
}

struct Tracking;

// SAFETY: every call is passed to `System` unchanged; the bookkeeping
// allocates nothing.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for this call.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() && COLLECT.load(Ordering::Relaxed) {
            track(p as usize, l.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for this call.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() && COLLECT.load(Ordering::Relaxed) {
            track(p as usize, l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the block is live until System frees it below.
        if p as usize > 1 && untrack(p as usize) && unsafe { holds_key(p, l.size()) } {
            FREED_WITH_KEY.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as the caller promised for this call.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Sizes of the node blocks that hold the key now (single thread:
/// nothing frees a block being read).
fn live_with_key() -> Vec<usize> {
    let mut v = Vec::new();
    for i in 0..SLOTS {
        let p = PTRS[i].load(Ordering::Acquire);
        let size = SIZES[i].load(Ordering::Acquire);
        // SAFETY: a tracked block is live and SIZES holds its size.
        if p > 1 && unsafe { holds_key(p as *const u8, size) } {
            v.push(size);
        }
    }
    v
}

/// An ESP ADD whose authentication key is the test's key.
fn keyed_add(spi: u32) -> Vec<u8> {
    let mut m = esp_add(spi, ip("192.0.2.1"), ip("192.0.2.2"));
    let at = m
        .windows(32)
        .position(|w| w.iter().all(|&b| b == 0xaa))
        .expect("esp_add carries a 32-byte auth key");
    // SAFETY: single-threaded; read only through `holds_key`.
    m[at..at + 32].copy_from_slice(unsafe { &*std::ptr::addr_of!(KEY) });
    m
}

/// Master 0 and slave 1 in `proto`; the nodes' blocks are tracked from
/// their start on.
fn run(proto: &str, failures: &mut Vec<String>) {
    let mut w: World = TestWorld::new(vec![
        config(0, 2, &format!("mode master\nprotocol {proto}")),
        config(1, 2, &format!("mode slave\nprotocol {proto}")),
    ]);
    // Restarted, so that only the nodes' own blocks are collected.
    w.crash(0);
    w.crash(1);
    COLLECT.store(true, Ordering::Relaxed);
    w.start(0);
    w.start(1);
    COLLECT.store(false, Ordering::Relaxed);
    w.run_for(3000);
    let ring = w.stats(0).ring.capacity;
    // A few SAs first; the key's is the last message every buffer saw, so
    // that no later one overwrites what was not wiped.
    for k in 0..3 {
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip4(0x0a00_0100 + k)));
    }
    w.run_for(500);
    let keyed = w.next_spi();
    w.ike_write(0, &keyed_add(keyed));
    w.run_for(500);
    assert!(w.synced(0, 1), "{proto}: the slave has the SA");
    assert!(
        w.lan.hosts[1].kernel.sa_count() >= 4,
        "{proto}: the slave's kernel holds the SAs"
    );
    // Only the master's delta ring may hold the key: the delta is current.
    let live = live_with_key();
    eprintln!("{proto}: node blocks holding the key: sizes {live:?} (ring {ring})");
    if live.iter().any(|&s| s != ring) || live.len() > 1 {
        failures.push(format!(
            "{proto}: node blocks other than the master's ring hold the key: sizes {live:?}"
        ));
    }
    // The slave restarts: the key comes in the master's snapshot (a dump
    // record, converted in the master's working buffers).
    w.crash(1);
    COLLECT.store(true, Ordering::Relaxed);
    w.start(1);
    COLLECT.store(false, Ordering::Relaxed);
    w.run_for(3000);
    assert!(w.synced(0, 1), "{proto}: the restarted slave has the SA");
    let live = live_with_key();
    eprintln!("{proto}: after a snapshot, node blocks holding the key: sizes {live:?}");
    if live.iter().any(|&s| s != ring) || live.len() > 1 {
        failures.push(format!(
            "{proto}: after a snapshot, node blocks other than the master's ring hold the key: sizes {live:?}"
        ));
    }
    if FREED_WITH_KEY.swap(0, Ordering::Relaxed) > 0 {
        failures.push(format!(
            "{proto}: the first slave's freed blocks held the key"
        ));
    }
    // The SA goes; the master's process ends with its delta still held.
    w.ike_write(0, &esp_delete(keyed, ip("192.0.2.1"), ip("192.0.2.2")));
    w.run_for(500);
    w.crash(0);
    let freed = FREED_WITH_KEY.swap(0, Ordering::Relaxed);
    eprintln!("{proto}: master gone, {freed} freed blocks held the key");
    if freed > 0 {
        failures.push(format!(
            "{proto}: {freed} of the master's freed blocks held the key"
        ));
    }
    w.crash(1);
    let freed = FREED_WITH_KEY.swap(0, Ordering::Relaxed);
    let live = live_with_key();
    if freed > 0 || !live.is_empty() {
        failures.push(format!(
            "{proto}: slave gone, {freed} freed blocks and {live:?} live held the key"
        ));
    }
}

fn main() {
    let mut x: u64 = 0x7a5a_1234_9876_abcd ^ u64::from(std::process::id());
    // SAFETY: single-threaded, before any node runs.
    let key = unsafe { &mut *std::ptr::addr_of_mut!(KEY) };
    for b in key.iter_mut() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 33) as u8 | 0x80;
    }
    let mut failures = Vec::new();
    for proto in ["v2", "legacy"] {
        run(proto, &mut failures);
    }
    assert!(
        !OVERFLOW.load(Ordering::Relaxed),
        "the block table overflowed: the checks are incomplete"
    );
    if !failures.is_empty() {
        eprintln!("FAILED:");
        for f in &failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    eprintln!("node_wipe: ok");
}
