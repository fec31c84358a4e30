//! Building a node in place. A node is tens to hundreds of kilobytes (its
//! ring, send buffers and scratch), more than a firmware stack holds, so
//! [`Node::init_in`] writes it field by field into memory the caller
//! provides: a `static`, or a `MaybeUninit` of its own. [`Node::new`] is
//! the same, for platforms with stack to spare.
//!
//! The only `unsafe` code of the crate. What keeps it sound: everything
//! that can fail is done before the first write ([`Node::prepare`]), and
//! [`every_field`] names each field of [`Node`] without `..`, so a field
//! added to the node does not compile until it is written here too.
#![allow(unsafe_code)]

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use crate::config::{Config, Protocol};
use crate::crypto::Crypto;
use crate::ctl::BUCKETS;
use crate::pfkey::FilterPolicy;
use crate::random::Random;
use crate::state::Position;
use crate::time::Instant;

use super::backoff::Backoff;
use super::conn::{Conn, Feed, Phase, Rx, RxMode, Slot, RX_FRAME};
use super::event::ConnId;
use super::event::{NodeError, Settings};
use super::jobs::Job;
use super::machine::{BucketSums, Node};
use super::marks::{MarkStore, SnapshotMarks};
use super::peer_table::PeerIndex;
use super::pfkeyq::PfkeyQueue;
use super::ring::DeltaRing;
use super::scratch::Scratch;
use super::stats::Counters;
use super::txbuf::TxBuf;
use crate::wire::stream::DeframeState;

impl<
        C: Crypto + Clone,
        R: Random,
        const P: usize,
        const RING: usize,
        M: MarkStore,
        const TX: usize,
        const PQ: usize,
        const EV: usize,
    > Node<C, R, P, RING, M, TX, PQ, EV>
{
    /// Builds a node from its configuration. Raises the start-up carp
    /// demotion request at once; a locked node announces its role at once,
    /// a tracking one waits for the first `handle_link_state`.
    ///
    /// The node is returned by value: on a small stack (firmware), build
    /// it in place with [`init_in`](Self::init_in) instead.
    pub fn new(
        config: &Config,
        settings: Settings,
        crypto: C,
        rng: R,
        marks: M,
        now: Instant,
    ) -> Result<Self, NodeError> {
        let mut slot = MaybeUninit::uninit();
        Self::init_in(&mut slot, config, settings, crypto, rng, marks, now)?;
        // SAFETY: `init_in` returned Ok, so it wrote every field.
        Ok(unsafe { slot.assume_init() })
    }

    /// [`new`](Self::new), building the node in `slot` without a copy of
    /// it on the stack. On error nothing was written (`slot` stays
    /// uninitialised). What `slot` held before is overwritten, not dropped.
    ///
    /// `marks` is moved in: a store of kilobytes (a [`FixedMarks`]) passes
    /// through the stack on the way; give a `&'static mut` to one instead
    /// (a mutable reference to a store is a store).
    ///
    /// [`FixedMarks`]: super::FixedMarks
    pub fn init_in<'a>(
        slot: &'a mut MaybeUninit<Self>,
        config: &Config,
        settings: Settings,
        crypto: C,
        rng: R,
        marks: M,
        now: Instant,
    ) -> Result<&'a mut Self, NodeError> {
        let pre = Self::prepare(config, &crypto, now)?;
        let n = slot.as_mut_ptr();
        // SAFETY (every `put!`): `n` comes from `&mut MaybeUninit<Self>`,
        // so it is valid for writes of a `Self` and aligned; `addr_of_mut!`
        // takes a field's address without making a reference to
        // uninitialised memory; each field is written exactly once.
        macro_rules! put {
            ($field:ident, $value:expr) => {
                unsafe { addr_of_mut!((*n).$field).write($value) }
            };
        }
        put!(settings, settings);
        put!(crypto, crypto);
        put!(rng, rng);
        put!(codec, pre.codec);
        put!(key, pre.key);
        put!(legacy, config.protocol == Protocol::Legacy);
        put!(flushmode, config.flushmode);
        put!(
            policy,
            FilterPolicy {
                flushmode: config.flushmode,
                skipslave: config.skipslave,
            }
        );
        put!(peer_addrs, pre.peer_addrs);
        put!(table, pre.table);
        put!(backoff, core::array::from_fn(|_| Backoff::new()));
        // The connections one by one: each is kilobytes.
        // SAFETY: as for `put!`; `[[T; 2]; P]` is laid out as `2 * P`
        // consecutive `T`s, so the casted pointer and its offsets stay
        // inside the field.
        let conns = unsafe { addr_of_mut!((*n).conns) }.cast::<Slot<C, TX>>();
        for i in 0..2 * P {
            // SAFETY: as above; `i < 2 * P`.
            unsafe { empty_slot_at(conns.add(i)) };
        }
        put!(role, pre.role);
        put!(state_since, now);
        put!(interface, config.interface.clone());
        put!(group, config.group.clone());
        put!(listen, config.listen.clone());
        put!(demote, pre.demote);
        put!(ike, pre.ike);
        // The large buffers are constant expressions: an optimised build
        // fills them where they are (what the firmware example measures).
        put!(ring, DeltaRing::new(0));
        put!(marks, SnapshotMarks::new(marks));
        put!(scratch, Scratch::new());
        put!(pfkeyq, PfkeyQueue::new());
        put!(events, heapless::Deque::new());
        put!(next_conn, 1);
        put!(next_dump, 1);
        put!(pfkey_seq, 0);
        put!(applied, Position::NONE);
        put!(incoming, None);
        put!(following, None);
        put!(claims, [None; P]);
        put!(legacy_applied_from, None);
        put!(regroup, [[super::machine::Regroup::None; 2]; P]);
        put!(stale_buckets, [0; BUCKETS / 8]);
        put!(stale_retried, false);
        put!(job, Job::None);
        put!(next_digest, None);
        put!(sums, BucketSums::EMPTY);
        put!(announced, None);
        put!(compare, None);
        put!(resumed_across, false);
        put!(awaiting_digest, false);
        put!(repair_asked, None);
        put!(last_master_entries, 0);
        put!(snapshot_entries, 0);
        put!(sweep_overflowed, false);
        put!(repair_queue, [0; BUCKETS / 8]);
        put!(repair_fit, 0);
        put!(snapshot_in_batches, false);
        put!(split_brain, false);
        put!(shutting_down, false);
        put!(counters, Counters::default());
        put!(rr, 0);
        #[cfg(feature = "planted-bugs")]
        put!(bugs, super::machine::PlantedBugs::default());
        // SAFETY: every field is written above (`every_field` lists them).
        let node = unsafe { slot.assume_init_mut() };
        node.start(config, now);
        Ok(node)
    }
}

/// Writes an unused connection slot at `s`, field by field (a slot is
/// kilobytes; a whole one built first would sit on the stack).
///
/// # Safety
/// `s` is valid for writes of a `Slot` and aligned.
unsafe fn empty_slot_at<C: Crypto, const TX: usize>(s: *mut Slot<C, TX>) {
    // SAFETY (every write): `s` is valid and aligned (the caller's
    // promise), so are its fields' addresses; each is written once.
    unsafe {
        addr_of_mut!((*s).live).write(false);
        let c = addr_of_mut!((*s).conn);
        macro_rules! put {
            ($($field:ident).+, $value:expr) => {
                addr_of_mut!((*c).$($field).+).write($value)
            };
        }
        put!(id, ConnId(0));
        put!(peer, PeerIndex(0));
        put!(outbound, false);
        put!(opened, Instant::ZERO);
        put!(phase, Phase::Connecting);
        put!(rx.buf, [0; RX_FRAME]);
        put!(rx.mode, RxMode::V2(DeframeState::new()));
        put!(tx, TxBuf::new());
        put!(up, false);
        put!(feed, Feed::Idle);
        put!(pending_digest, None);
        put!(paused, false);
        put!(acked, Position::NONE);
        put!(acked_at, Instant::ZERO);
        put!(peer_acked, Position::NONE);
        put!(refused, false);
        put!(alias, false);
        put!(refused_logged, false);
        put!(feed_at, None);
        put!(blocked, false);
        put!(last_rx, Instant::ZERO);
        put!(last_tx, Instant::ZERO);
        put!(bad_frames, 0);
    }
}

/// Never called: the fields of a slot, all named, like [`every_field`].
#[allow(dead_code)]
fn every_slot_field<C: Crypto, const TX: usize>(s: &Slot<C, TX>) {
    let Slot { live: _, conn } = s;
    let Rx { buf: _, mode: _ } = &conn.rx;
    let Conn {
        id: _,
        peer: _,
        outbound: _,
        opened: _,
        phase: _,
        rx: _,
        tx: _,
        up: _,
        feed: _,
        pending_digest: _,
        paused: _,
        acked: _,
        acked_at: _,
        peer_acked: _,
        refused: _,
        alias: _,
        refused_logged: _,
        feed_at: _,
        blocked: _,
        last_rx: _,
        last_tx: _,
        bad_frames: _,
    } = conn;
}

/// Never called: a node's fields, all named. A field added to [`Node`]
/// fails to compile here, a reminder to write it in `init_in`.
#[allow(dead_code)]
fn every_field<
    C: Crypto + Clone,
    R: Random,
    const P: usize,
    const RING: usize,
    M: MarkStore,
    const TX: usize,
    const PQ: usize,
    const EV: usize,
>(
    n: &Node<C, R, P, RING, M, TX, PQ, EV>,
) {
    let Node {
        settings: _,
        crypto: _,
        rng: _,
        codec: _,
        key: _,
        legacy: _,
        flushmode: _,
        policy: _,
        peer_addrs: _,
        table: _,
        backoff: _,
        conns: _,
        regroup: _,
        role: _,
        state_since: _,
        interface: _,
        group: _,
        listen: _,
        demote: _,
        ike: _,
        ring: _,
        marks: _,
        scratch: _,
        pfkeyq: _,
        events: _,
        next_conn: _,
        next_dump: _,
        pfkey_seq: _,
        applied: _,
        incoming: _,
        following: _,
        claims: _,
        legacy_applied_from: _,
        stale_buckets: _,
        stale_retried: _,
        job: _,
        next_digest: _,
        sums: _,
        announced: _,
        compare: _,
        resumed_across: _,
        awaiting_digest: _,
        repair_asked: _,
        last_master_entries: _,
        snapshot_entries: _,
        sweep_overflowed: _,
        repair_queue: _,
        repair_fit: _,
        snapshot_in_batches: _,
        split_brain: _,
        shutting_down: _,
        counters: _,
        rr: _,
        #[cfg(feature = "planted-bugs")]
            bugs: _,
    } = n;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SoftCrypto;
    use crate::node::{FixedMarks, SmallNode};
    use std::boxed::Box;

    /// Deterministic bytes (a test needs no real randomness).
    struct Counter(u8);

    impl Random for Counter {
        fn fill(&mut self, out: &mut [u8]) {
            for b in out {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    type Small = SmallNode<SoftCrypto, Counter, FixedMarks<16>>;

    fn build<'a>(text: &str, slot: &'a mut MaybeUninit<Small>) -> Result<&'a mut Small, NodeError> {
        let cfg = Config::parse(text.as_bytes()).expect("config");
        let settings = Settings::new([1; 16], 7, 42);
        let now = Instant::from_millis(1000);
        Small::init_in(
            slot,
            &cfg,
            settings,
            SoftCrypto,
            Counter(0),
            FixedMarks::new(),
            now,
        )
    }

    const ONE_PEER: &str = "peer 192.0.2.2\nsharedkey sixteen-byte-key\nmode master\n";

    /// Whatever the memory held before, the node built in place is the
    /// one `new` builds: same state, same first outputs.
    #[test]
    fn built_in_place_over_garbage_as_new_builds() {
        let mut slot = Box::new(MaybeUninit::<Small>::uninit());
        // SAFETY: writes `size_of::<Small>()` bytes into the slot's own
        // memory; a `MaybeUninit` may hold any bytes.
        unsafe {
            slot.as_mut_ptr()
                .cast::<u8>()
                .write_bytes(0xa5, core::mem::size_of::<Small>());
        }
        let a = build(ONE_PEER, &mut slot).expect("built in place");
        let cfg = Config::parse(ONE_PEER.as_bytes()).expect("config");
        let mut b = Box::new(
            Small::new(
                &cfg,
                Settings::new([1; 16], 7, 42),
                SoftCrypto,
                Counter(0),
                FixedMarks::new(),
                Instant::from_millis(1000),
            )
            .expect("built by value"),
        );
        assert_eq!(a.stats(), b.stats());
        let mut events = 0;
        loop {
            let (x, y) = (a.poll_event(), b.poll_event());
            assert_eq!(x, y);
            if x.is_none() {
                break;
            }
            events += 1;
        }
        assert!(events > 0, "a master starts by asking for things");
        assert_eq!(a.poll_timeout(), b.poll_timeout());
    }

    /// What can fail fails before anything is written.
    #[test]
    fn a_bad_configuration_is_refused_before_writing() {
        let mut slot = Box::new(MaybeUninit::<Small>::uninit());
        let two = "peer 192.0.2.2\npeer 192.0.2.3\nsharedkey sixteen-byte-key\nmode slave\n";
        assert_eq!(
            build(two, &mut slot).err(),
            Some(NodeError::TooManyPeers),
            "a SmallNode has one peer"
        );
        // The slot can be used again.
        assert!(build(ONE_PEER, &mut slot).is_ok());
    }

    /// A slot as `init_in` writes it is unused; closing one wipes what its
    /// connection decrypted, and reopening starts from nothing, whatever
    /// the last connection left.
    #[test]
    fn a_closed_slot_keeps_no_plaintext_and_reopens_clean() {
        use crate::node::MIN_TX_BYTES;
        let mut b = Box::<Slot<SoftCrypto, MIN_TX_BYTES>>::new_uninit();
        // SAFETY: the box's memory is valid and aligned for a slot;
        // `empty_slot_at` writes every field before `assume_init`.
        let mut s = unsafe {
            empty_slot_at(b.as_mut_ptr());
            b.assume_init()
        };
        assert!(s.as_ref().is_none() && s.is_none());
        let now = Instant::from_millis(5);
        let c = s.open(ConnId(7), PeerIndex(0), true, false, now);
        assert_eq!((c.id, c.outbound, c.opened), (ConnId(7), true, now));
        // What a session leaves behind: a decrypted frame, queued bytes,
        // flags.
        c.rx.buf[..4].copy_from_slice(b"KEYS");
        assert!(c
            .tx
            .append_with(3, |out| {
                out[..3].copy_from_slice(b"abc");
                Ok::<usize, ()>(3)
            })
            .is_some());
        c.up = true;
        c.refused = true;
        c.feed_at = Some(now);
        s.close();
        assert!(s.as_ref().is_none());
        assert!(s.conn.rx.buf.iter().all(|&b| b == 0), "plaintext wiped");
        assert!(matches!(s.conn.phase, Phase::Connecting));
        let later = Instant::from_millis(9);
        let c = s.open(ConnId(8), PeerIndex(0), false, true, later);
        assert_eq!(
            (c.id, c.outbound, c.up, c.refused),
            (ConnId(8), false, false, false)
        );
        assert!(c.tx.is_empty() && c.feed_at.is_none());
        assert!(
            matches!(c.rx.mode, RxMode::Legacy(_)),
            "the protocol follows the reload"
        );
        assert_eq!((c.last_rx, c.last_tx, c.acked_at), (later, later, later));
    }
}
