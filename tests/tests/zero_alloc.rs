//! The core never touches the heap: a counting global allocator counts
//! every heap operation made while the harness is inside a call into a
//! `Node` (`handle_*`, `poll_*`, `stats`, `peers`, `reconfigure`,
//! `Node::new`), over a long randomized run of three nodes under both
//! protocols, and over configuration reloads of every kind.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::IpAddr;

use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::node::Node;
use sasyncd_core::state::RunState;
use sasyncd_sim::rng::Rng;
use sasyncd_sim::world::SimRandom;
use sasyncd_tests::harness::{config, HNode, TestWorld, World, BACKUP, MASTER};
use sasyncd_tests::msgs::{delflow, esp_add, esp_delete, esp_update, flow, getspi, ip, ip4};
use sasyncd_tests::{in_core, probe};

/// Counts heap operations made inside the core, then defers to `System`.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; counting touches only a const-initialised thread-local.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        probe::note_heap_use();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        probe::note_heap_use();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        probe::note_heap_use();
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        probe::note_heap_use();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn the_counter_counts_heap_use_inside_core() {
    let before = probe::heap_uses();
    let v = in_core!(std::hint::black_box(vec![7u8; 100]));
    assert!(
        probe::heap_uses() > before,
        "an allocation under the flag is counted"
    );
    let mid = probe::heap_uses();
    drop(v);
    let w = std::hint::black_box(vec![1u8; 100]);
    drop(w);
    assert_eq!(
        probe::heap_uses(),
        mid,
        "allocations outside the flag are not"
    );
}

#[test]
fn sizes() {
    println!(
        "size_of Node<SoftCrypto, SimRandom, VecMarks> = {} bytes (without its storage)",
        std::mem::size_of::<Node<'static, SoftCrypto, SimRandom, sasyncd_sim::marks::VecMarks>>()
    );
    println!(
        "size_of harness node (4 peers, 8 KiB ring, 4 KiB marks) = {} bytes",
        std::mem::size_of::<HNode<4096>>()
    );
}

/// The node that is master now, if any.
fn master(w: &mut World) -> Option<usize> {
    (0..w.nodes.len()).find(|&i| w.nodes[i].node.is_some() && w.run_state(i) == RunState::Master)
}

/// One random kernel change by the IKE daemon on `m`.
fn change(w: &mut World, rng: &mut Rng, m: usize, flows: &mut Vec<(IpAddr, IpAddr)>, n: u32) {
    let src = ip("192.0.2.1");
    match rng.below(10) {
        0..=3 => {
            let spi = w.next_spi();
            w.ike_write(m, &esp_add(spi, src, ip4(0xc600_0000 + n)));
        }
        4 | 5 => {
            // isakmpd's way: GETSPI (larval, not synced), then UPDATE
            // (synced as ADD).
            let dst = ip4(0xc700_0000 + n);
            if let Ok(ok) = w.try_ike_write(m, &getspi(src, dst, 0x1000_0000, 0x2000_0000)) {
                let spi = ok.spi.expect("GETSPI gives an SPI");
                w.ike_write(m, &esp_update(spi, src, dst));
            }
        }
        6 | 7 => {
            let keys = w.lan.hosts[m].kernel.sa_keys();
            if !keys.is_empty() {
                let k = keys[rng.index(keys.len())];
                let _ = w.try_ike_write(m, &esp_delete(k.spi, src, k.dst));
            }
        }
        8 => {
            let f = (ip4(0x0a01_0000 + n), ip4(0x0a02_0000 + n));
            w.ike_write(m, &flow(f.0, f.1));
            flows.push(f);
        }
        _ => {
            if !flows.is_empty() {
                let f = flows.swap_remove(rng.index(flows.len()));
                let _ = w.try_ike_write(m, &delflow(f.0, f.1));
            }
        }
    }
}

fn randomized_run(proto: &str, seed: u64) {
    let legacy = proto == "legacy";
    let mut w = TestWorld::with_digest_interval(
        (0..3)
            .map(|i| config(i, 3, &format!("protocol {proto}")))
            .collect(),
        std::time::Duration::from_secs(5),
    );
    w.lan.chunking = true;
    let mut rng = Rng::new(seed);
    w.set_link(0, MASTER);
    w.run_for(3000);
    let mut flows = Vec::new();
    let mut failed_over = false;
    for n in 0..2500u32 {
        let Some(m) = master(&mut w) else {
            w.run_for(100);
            continue;
        };
        change(&mut w, &mut rng, m, &mut flows, n);
        match rng.below(100) {
            0..=59 => w.settle(),
            60..=97 => w.run_for(rng.below(300)),
            _ => {
                let (a, b) = (rng.index(3), rng.index(3));
                if a != b {
                    w.cut(a, b);
                }
            }
        }
        if !legacy && rng.below(200) == 0 {
            // An operator edits a slave by hand; anti-entropy repairs it.
            let s = (m + 1 + rng.index(2)) % 3;
            let keys = w.lan.hosts[s].kernel.sa_keys();
            if let (Some(k), true) = (keys.first(), w.nodes[s].node.is_some()) {
                let _ = w.lan.hosts[s].kernel.manual_delete_sa(k);
            }
        }
        if n == 1200 && !failed_over {
            // Failover: the master's process dies, carp elects the next
            // node; the old one returns later as a backup.
            failed_over = true;
            let next = (m + 1) % 3;
            w.crash(m);
            w.lan.hosts[m].link_state = BACKUP;
            w.set_link(next, MASTER);
            w.run_for(2000);
            w.start(m);
        }
    }
    assert!(failed_over, "{proto}: the run failed over");
    w.run_for(if legacy { 10_000 } else { 20_000 });
    let m = master(&mut w).expect("a master at the end");
    for i in (0..3).filter(|&i| i != m) {
        if !w.synced(m, i) {
            eprintln!("master {m}: {:?}\n{:?}", w.stats(m), w.peers(m));
            eprintln!("node {i}: {:?}\n{:?}", w.stats(i), w.peers(i));
            eprintln!("{w:?}");
        }
        assert!(w.synced(m, i), "{proto}: node {i} equals master {m}");
    }
    assert!(
        w.lan.hosts[m].kernel.sa_count() > 100,
        "{proto}: a real workload ran"
    );
}

#[test]
fn no_heap_use_inside_core_over_a_long_randomized_run() {
    let before = probe::heap_uses();
    randomized_run("v2", 1);
    randomized_run("legacy", 2);
    assert_eq!(probe::heap_uses(), before, "heap operations inside core");
}

/// Reloads of every kind (peers added, removed and moved, a new key, a new
/// protocol, the role locked and unlocked) while the nodes sync.
#[test]
fn no_heap_use_while_reconfiguring() {
    let before = probe::heap_uses();
    for proto in ["v2", "legacy"] {
        let other = if proto == "v2" { "legacy" } else { "v2" };
        let mut w = TestWorld::new(
            (0..3)
                .map(|i| config(i, 3, &format!("protocol {proto}")))
                .collect(),
        );
        w.set_link(0, MASTER);
        w.run_for(3000);
        let mut rng = Rng::new(9);
        let mut flows = Vec::new();
        let steps: [(usize, Vec<u8>); 6] = [
            // Node 0 drops node 1; node 2 moves to its first place.
            (
                0,
                format!("peer 10.0.0.3\nsharedkey sasyncd-test-key\ninterface carp0\nmode skipslave\ncontrol all\nprotocol {proto}\n")
                    .into_bytes(),
            ),
            (0, config(0, 3, &format!("protocol {proto}"))),
            (1, config(1, 3, &format!("mode master\nprotocol {proto}"))),
            (1, config(1, 3, &format!("protocol {proto}\nsharedkey another-test-key"))),
            (1, config(1, 3, &format!("protocol {proto}"))),
            (2, config(2, 3, &format!("protocol {other}"))),
        ];
        for (n, (i, cfg)) in steps.into_iter().enumerate() {
            w.reconfigure(i, cfg).expect("applies");
            for k in 0..20u32 {
                if let Some(m) = master(&mut w) {
                    change(&mut w, &mut rng, m, &mut flows, n as u32 * 100 + k);
                }
                w.run_for(rng.below(300));
            }
        }
        w.run_for(10_000);
    }
    assert_eq!(probe::heap_uses(), before, "heap operations inside core");
}
