//! Two authenticated `Node`s (same shared key, v2 or legacy) on the test
//! harness's in-memory world (`sasyncd_tests::harness`: the simulator's
//! PF_KEY kernel per node, byte links, the shared `drive`), driven by the
//! fuzzer the way smoltcp's `iface` fuzzer drives an interface: its bytes
//! choose what the IKE daemon writes to the master's kernel, how far time
//! moves, carp changes, and what the link between the nodes does to the
//! bytes in flight (corrupt, drop, reorder, duplicate), resets and crashes.
//!
//! Input: one byte of setup (bit 0: legacy protocol; bit 1: chunked reads
//! and short writes), then operations of one opcode byte and its arguments
//! (see `Op`); a missing argument ends the input.
//!
//! Invariants, besides no panic, no overflow and no livelock (the harness
//! panics if `drive` or the world does not settle):
//! * no kernel ever holds an SA or flow (in canonical form: identity and
//!   content) that the IKE daemon's writes did not make in some kernel:
//!   tampered bytes never reach a kernel, and nothing is invented;
//! * a node's delta ring never holds more than its capacity;
//! * v2 only: once the link is healed, node 0 made MASTER and node 1
//!   BACKUP, and a few minutes pass, the two kernels are equal (the
//!   anti-entropy digest repairs what a lost delta left behind). The
//!   legacy protocol has no repair (a lost delete stays lost, as in the
//!   original), so only the first two hold for it.
#![no_main]

use std::cell::Cell;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sasyncd_core::pfkey::consts::HDR_LEN;
use sasyncd_core::state::RunState;
use sasyncd_tests::harness::{config, TestWorld, BACKUP, MASTER};
use sasyncd_tests::msgs::{delflow, esp_add, esp_delete, esp_update, flow, getspi, ip4};

/// At most this many operations per input (keeps one run short).
const MAX_OPS: usize = 64;
/// Simulated time for the healed pair to converge (v2).
const HEAL_MS: u64 = 180_000;

/// The fuzzer's bytes, consumed from the front.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}

/// What the link does to the next few writes of one direction.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// XOR one byte (at `at` modulo the write's length) with `mask | 1`.
    Flip { at: u8, mask: u8 },
    /// Lose the write's bytes from `at` on.
    Truncate { at: u8 },
    /// Hold the write back and deliver it after the next one (frames
    /// reordered; lost if no next write comes).
    Reorder,
    /// Deliver the write twice.
    Duplicate,
}

/// The link's state, shared with the harness's tamper hook.
#[derive(Default)]
struct Link {
    /// Which sender's writes are hit, what happens, for how many writes.
    fault: Cell<Option<(usize, Fault, u8)>>,
    /// A write held back by `Reorder`.
    held: std::cell::RefCell<Option<(usize, Vec<u8>)>>,
}

/// A small set of SAs and flows, so deletes and updates hit what adds made.
fn spi(b: u8) -> u32 {
    0x2000 + u32::from(b % 16)
}
fn peer_addr(b: u8) -> IpAddr {
    ip4(0xc000_0200 + u32::from(b % 4)) // 192.0.2.0..3
}
fn local_addr() -> IpAddr {
    ip4(0xc633_6401) // 198.51.100.1
}

fn run(data: &[u8]) {
    let mut input = Bytes(data);
    let Some(setup) = input.u8() else { return };
    let legacy = setup & 1 != 0;
    let proto = if legacy {
        "protocol legacy"
    } else {
        "protocol v2"
    };
    let mut w = TestWorld::with_digest_interval(
        vec![config(0, 2, proto), config(1, 2, proto)],
        Duration::from_secs(5),
    );
    w.lan.chunking = setup & 2 != 0;
    let link = Rc::new(Link::default());
    let l = link.clone();
    w.lan.tamper = Some(Box::new(move |from, out: &mut Vec<u8>| {
        tamper(&l, from, out)
    }));
    let mut seen = BTreeSet::new();
    w.set_link(0, MASTER);
    w.run_for(1000);
    check(&mut w, &seen);

    for _ in 0..MAX_OPS {
        let Some(op) = input.u8() else { break };
        let done = step(&mut w, &link, &mut seen, op, &mut input);
        if done.is_none() {
            break;
        }
        check(&mut w, &seen);
    }

    // Heal: an honest link, both processes up, node 0 the master.
    link.fault.set(None);
    link.held.borrow_mut().take();
    for i in 0..2 {
        if w.nodes[i].node.is_none() {
            w.start(i);
        }
    }
    w.set_link(0, MASTER);
    w.set_link(1, BACKUP);
    w.run_for(HEAL_MS);
    check(&mut w, &seen);
    if std::env::var_os("TWO_NODES_DEBUG").is_some() {
        let (s0, s1) = (w.stats(0), w.stats(1));
        eprintln!(
            "seen {} entries; kernels {}+{} / {}+{} SAs+flows; rejected frames {} {}; applied {} {}",
            seen.len(),
            w.lan.hosts[0].kernel.sa_count(),
            w.lan.hosts[0].kernel.flow_count(),
            w.lan.hosts[1].kernel.sa_count(),
            w.lan.hosts[1].kernel.flow_count(),
            s0.counters.rejected_frames,
            s1.counters.rejected_frames,
            s0.counters.applied,
            s1.counters.applied,
        );
    }
    if !legacy {
        assert_eq!(w.run_state(0), RunState::Master);
        assert_eq!(w.run_state(1), RunState::Slave);
        assert!(w.synced(0, 1), "v2: the healed pair converges");
    }
}

/// One operation; `None` when the input ran out mid-way.
fn step(
    w: &mut TestWorld,
    link: &Link,
    seen: &mut BTreeSet<Vec<u8>>,
    op: u8,
    input: &mut Bytes<'_>,
) -> Option<()> {
    match (op & 0x0f) % 10 {
        // The IKE daemon on the carp master writes to its kernel.
        0 => ike(
            w,
            seen,
            &esp_add(spi(input.u8()?), local_addr(), peer_addr(op >> 4)),
        ),
        1 => ike(
            w,
            seen,
            &esp_delete(spi(input.u8()?), local_addr(), peer_addr(op >> 4)),
        ),
        2 => ike(w, seen, &flow(local_addr(), peer_addr(input.u8()?))),
        3 => ike(w, seen, &delflow(local_addr(), peer_addr(input.u8()?))),
        4 => {
            // GETSPI makes a larval SA; UPDATE matures it with keys.
            let s = spi(input.u8()?);
            ike(w, seen, &getspi(peer_addr(op >> 4), local_addr(), s, s));
            ike(w, seen, &esp_update(s, peer_addr(op >> 4), local_addr()));
        }
        5 => {
            // Any message the kernel accepts from IKE reaches the master.
            let n = usize::from(input.u8()?).max(HDR_LEN / 8) * 8;
            let raw = input.take(n.min(input.0.len() / 8 * 8))?.to_vec();
            if raw.len() >= HDR_LEN {
                ike(w, seen, &raw);
            }
        }
        // Time passes (1 ms to ~32 s, timers fire).
        6 => {
            let b = input.u8()?;
            w.run_for(u64::from(b) * u64::from(b) / 2 + 1);
        }
        // carp: node op>>4&1 becomes BACKUP, MASTER or INIT.
        7 => {
            let state = [BACKUP, MASTER, 0][usize::from(input.u8()? % 3)];
            w.set_link(usize::from(op >> 4) & 1, state);
            w.settle();
        }
        // The link starts damaging one direction's next writes.
        8 => {
            let arg = input.u8()?;
            let count = input.u8()? % 8 + 1;
            let fault = match op >> 4 & 3 {
                0 => Fault::Flip {
                    at: arg,
                    mask: arg.rotate_left(3),
                },
                1 => Fault::Truncate { at: arg },
                2 => Fault::Reorder,
                _ => Fault::Duplicate,
            };
            link.fault
                .set(Some((usize::from(op >> 6) & 1, fault, count)));
            w.settle();
        }
        // Resets and crashes.
        _ => {
            match op >> 4 & 3 {
                0 => w.cut(0, 1),
                1 | 2 => {
                    let i = usize::from(op >> 4 & 3) - 1;
                    if w.nodes[i].node.is_some() {
                        w.crash(i);
                    } else {
                        w.start(i);
                    }
                }
                _ => {
                    // The held-back write is lost with the connection.
                    link.held.borrow_mut().take();
                    w.cut(0, 1);
                }
            }
            w.settle();
        }
    }
    Some(())
}

/// The IKE daemon on whichever node carp made MASTER writes `msg` (none
/// when neither is); what the kernel then holds is what syncing may copy.
fn ike(w: &mut TestWorld, seen: &mut BTreeSet<Vec<u8>>, msg: &[u8]) {
    let Some(i) = (0..2).find(|&i| w.lan.hosts[i].link_state == MASTER) else {
        return;
    };
    let r = w.try_ike_write(i, msg);
    if std::env::var_os("TWO_NODES_DEBUG").is_some() {
        eprintln!(
            "ike write on {i}: type {} -> {r:?}",
            msg.get(1).copied().unwrap_or(0)
        );
    }
    if r.is_ok() {
        let c = w.lan.hosts[i].kernel.canonical(&|_| true);
        seen.extend(c.sas.into_values().chain(c.flows.into_values()));
    }
    w.settle();
}

fn tamper(link: &Link, from: usize, out: &mut Vec<u8>) {
    // A write held back goes out after this one, whatever this one is.
    let held = {
        let mut h = link.held.borrow_mut();
        match h.as_ref() {
            Some((f, _)) if *f == from => h.take().map(|(_, b)| b),
            _ => None,
        }
    };
    if let Some((who, fault, left)) = link.fault.get() {
        if who == from && !out.is_empty() {
            link.fault.set((left > 1).then_some((who, fault, left - 1)));
            match fault {
                Fault::Flip { at, mask } => {
                    let n = out.len();
                    out[usize::from(at) % n] ^= mask | 1;
                }
                Fault::Truncate { at } => {
                    let n = out.len();
                    out.truncate(usize::from(at) % n);
                }
                Fault::Reorder if link.held.borrow().is_none() => {
                    *link.held.borrow_mut() = Some((from, std::mem::take(out)));
                }
                Fault::Reorder => {}
                Fault::Duplicate => {
                    let copy = out.clone();
                    out.extend_from_slice(&copy);
                }
            }
        }
    }
    if let Some(b) = held {
        out.extend_from_slice(&b);
    }
}

/// The invariants that hold at every moment.
fn check(w: &mut TestWorld, seen: &BTreeSet<Vec<u8>>) {
    for i in 0..2 {
        let c = w.lan.hosts[i].kernel.canonical(&|_| true);
        for v in c.sas.values().chain(c.flows.values()) {
            assert!(
                seen.contains(v),
                "node {i}'s kernel holds an entry no IKE write made: {v:02x?}"
            );
        }
        if w.nodes[i].node.is_some() {
            let s = w.stats(i);
            assert!(
                s.ring.bytes <= s.ring.capacity,
                "node {i}: ring over capacity"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| run(data));
