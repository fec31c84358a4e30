//! The workload over long runs, takeover, determinism.

use super::*;

fn run(ike: &mut Ike, k: &mut Kernel, from: u64, to: u64) {
    while let Some(t) = ike.poll_timeout() {
        if t.as_millis() > to * 1000 {
            break;
        }
        let now = t.max(Instant::from_millis(from * 1000));
        ike.handle_timeout(now, k);
        if now.as_millis() % 7 == 0 {
            k.traffic();
        }
    }
}

fn local() -> IpAddr {
    IpAddr::V4([10, 0, 0, 100].into())
}

#[test]
fn ten_thousand_seconds_of_valid_writes() {
    let mut k = Kernel::new(Rng::new(1));
    k.add_rtable(RDOMAIN);
    k.set_promisc(4242, true);
    let mut ike = Ike::new(IkeConfig::for_node(0, local()), Rng::new(2));
    ike.set_active(true, Instant::ZERO, &k);
    run(&mut ike, &mut k, 0, 10_000);
    let s = ike.stats().clone();
    assert!(s.writes > 5000, "{s:?}");
    assert!(s.pairs > 500 && s.rekeys > 100 && s.expiries > 50, "{s:?}");
    assert!(s.flows_added > 300 && s.flows_deleted > 100, "{s:?}");
    assert!(s.bundles > 50 && s.moves > 50, "{s:?}");
    assert!(s.flushes >= 1, "{s:?}");
    // The only refusals a lone daemon can meet: an SPI it picked for a
    // direct ADD already taken, and deletions of SAs a FLUSH removed.
    let unexpected: Vec<_> = s.errors.keys().filter(|e| **e != Errno::EEXIST).collect();
    assert!(unexpected.is_empty(), "{s:?}");
    assert!(s.errors.values().sum::<u64>() <= 3, "{s:?}");
    assert_eq!(k.stats().refused, s.errors);
    // Every write was seen by a promiscuous listener, and each copy
    // unwraps to a request the core can parse.
    let mut copies = 0;
    while let Some(c) = k.read_promisc(4242) {
        let inner = sasyncd_core::pfkey::unwrap_promisc(&c).unwrap();
        assert!(Msg::parse(inner).unwrap().check_extensions().is_ok());
        copies += 1;
    }
    assert!(copies > 0 && copies as u64 + k.promisc_drops(4242) == k.stats().valid_writes);
    assert!(k.sa_count() > 0);
}

#[test]
fn passive_does_nothing_and_takeover_adopts() {
    let mut k = Kernel::new(Rng::new(3));
    k.add_rtable(RDOMAIN);
    let mut a = Ike::new(IkeConfig::for_node(0, local()), Rng::new(4));
    a.set_active(true, Instant::ZERO, &k);
    run(&mut a, &mut k, 0, 600);
    a.set_active(false, Instant::from_millis(600_000), &k);
    assert_eq!(a.poll_timeout(), None);
    let before = k.sa_count();
    assert!(before > 0);
    // Another daemon (as on a new master) takes over the same kernel
    // and, over time, replaces every SA it adopted.
    let mut b = Ike::new(IkeConfig::for_node(1, local()), Rng::new(5));
    b.set_active(true, Instant::from_millis(600_000), &k);
    assert!(b.pair_count() > 0);
    let old: Vec<_> = k.sa_keys();
    run(&mut b, &mut k, 600, 1200);
    let mature_old = old
        .iter()
        .filter(|key| k.sa_state(key) == Some(SADB_SASTATE_MATURE))
        .count();
    assert_eq!(mature_old, 0);
    assert!(b
        .stats()
        .errors
        .keys()
        .all(|e| *e == Errno::EEXIST || *e == Errno::ESRCH));
}

#[test]
fn same_seed_same_kernel() {
    let go = |seed| {
        let mut k = Kernel::new(Rng::new(seed));
        let mut ike = Ike::new(IkeConfig::for_node(0, local()), Rng::new(seed + 1));
        ike.set_active(true, Instant::ZERO, &k);
        run(&mut ike, &mut k, 0, 2000);
        (k.sadb_dump(0), k.spd_dump(), ike.stats().clone())
    };
    assert_eq!(go(9), go(9));
    assert_ne!(go(9).0, go(10).0);
}
