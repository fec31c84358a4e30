//! Deterministic simulation of a sasyncd gateway cluster: the parts of the
//! world the `core::node` state machines run in, each a plain type driven
//! by simulated time ([`sasyncd_core::time::Instant`]) and one seeded
//! [`rng::Rng`]. No wall clock, no threads, no hash-order dependence: the
//! same seed gives the same run, byte for byte (checked with
//! [`trace::Trace`]'s hash).
//!
//! Simulated:
//! * [`kernel`]: one node's SADB/SPD behind PF_KEY, speaking real PF_KEY
//!   bytes, with promiscuous copies, bounded listener queues and sysctl
//!   dumps;
//! * [`carp`]: carp election with advskew, group demotion, preemption,
//!   partitions and crashes, reported as link-state changes;
//! * [`net`]: TCP-like byte streams with latency, bandwidth, bounded send
//!   buffers, random read chunking, resets, partitions and an adversary hook;
//! * [`links`]: who can reach whom (shared by carp and the network);
//! * [`ike`]: the IKE daemon's PF_KEY workload on the active node;
//! * [`lan`]: a few gateways joined by direct in-memory links, the world
//!   of the scenario tests and the benchmarks.
//!
//! Not a simulation but built from these parts: `devhost` (unix only), a
//! process that plays one gateway's kernel, carp interface and IKE daemon
//! over a unix socket, in real time, so the real daemon runs on Linux.
//!
//! Not simulated: the node itself (`core::node` is wired into these parts
//! by the world that drives them), the routing socket's byte format, the
//! privilege-separation monitor, isakmpd/iked control channels, real
//! cryptography in the workload (keys are random bytes), packet forwarding.

pub mod carp;
#[cfg(unix)]
pub mod devhost;
pub mod errno;
pub mod ike;
pub mod kernel;
pub mod lan;
pub mod links;
pub mod logcap;
pub mod marks;
pub mod net;
pub mod oracle;
pub mod pfmsg;
pub mod rng;
pub mod scenario;
pub mod takeover;
pub mod trace;
pub mod world;
pub mod xfrm_kernel;
pub mod xfrm_world;

#[cfg(test)]
mod determinism {
    //! All parts together under one seed: the run is a function of it.

    use sasyncd_core::time::Instant;

    use crate::carp::{Carp, LINK_STATE_UP};
    use crate::ike::{Ike, IkeConfig};
    use crate::kernel::Kernel;
    use crate::links::Links;
    use crate::net::{Net, NetConfig};
    use crate::rng::Rng;
    use crate::trace::Trace;

    fn scenario(seed: u64) -> (u64, u64) {
        let mut rng = Rng::new(seed);
        let addrs: Vec<std::net::IpAddr> = (1..=3).map(|i| [10, 0, 0, i].into()).collect();
        let vip: std::net::IpAddr = [10, 0, 0, 100].into();
        let mut links = Links::new();
        let mut carp = Carp::new(&[0, 50, 100]);
        let mut net = Net::new(&addrs, NetConfig::default(), rng.fork());
        let mut kernels: Vec<Kernel> = (0..3).map(|_| Kernel::new(rng.fork())).collect();
        let mut ikes: Vec<Ike> = (0..3)
            .map(|i| Ike::new(IkeConfig::for_node(i, vip), rng.fork()))
            .collect();
        let mut trace = Trace::new().keep_lines(false);
        for i in 0..3 {
            carp.start(i, Instant::ZERO);
            net.listen(i, true);
        }
        let mut now = Instant::ZERO;
        let end = Instant::from_millis(2_000_000);
        while now < end {
            let t = [
                carp.poll_timeout(),
                net.poll_timeout(),
                ikes.iter().filter_map(Ike::poll_timeout).min(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
            now = t.max(now);
            carp.handle_timeout(now, &links);
            net.handle_timeout(now, &links);
            for (i, ike) in ikes.iter_mut().enumerate() {
                ike.handle_timeout(now, &mut kernels[i]);
            }
            while let Some(e) = carp.poll_event() {
                trace.event(now, e.node, format_args!("link {}", e.link_state));
                ikes[e.node].set_active(e.link_state == LINK_STATE_UP, now, &kernels[e.node]);
                if e.link_state == LINK_STATE_UP {
                    let c = net.connect(e.node, addrs[(e.node + 1) % 3], now);
                    net.send(c, b"hello", now);
                }
            }
            while let Some(e) = net.poll_event() {
                trace.event(now, e.node, format_args!("{:?} {:?}", e.conn, e.kind));
            }
            if rng.chance(0.01) {
                let n = rng.index(3);
                let _ = carp.demote(n, if rng.chance(0.5) { 1 } else { -1 }, now);
                trace.event(now, n, "demote");
            }
            if rng.chance(0.002) {
                links.partition(&[&[0], &[1, 2]]);
            } else if rng.chance(0.004) {
                links.heal();
            }
        }
        let sas: usize = kernels.iter().map(Kernel::sa_count).sum();
        trace.global(now, format_args!("{sas} SAs"));
        (trace.hash(), trace.len())
    }

    #[test]
    fn same_seed_same_trace() {
        let a = scenario(42);
        assert!(a.1 > 20, "{a:?}");
        assert_eq!(a, scenario(42));
        assert_ne!(a.0, scenario(43).0);
    }
}
