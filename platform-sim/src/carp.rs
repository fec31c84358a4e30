//! carp(4) election among the simulated nodes, reported to each node as
//! the link-state changes of its carp interface (what RTM_IFINFO carries,
//! reference §13.4): `LINK_STATE_DOWN` (2) for BACKUP, `LINK_STATE_UP` (4)
//! for MASTER.
//!
//! Simulated (OpenBSD's rules with `net.inet.carp.preempt=1`): the master
//! advertises every `advbase + advskew/256` s carrying its interface
//! group's demote counter and its advskew; a master that hears an
//! advertisement at least as good (lower demote, then lower or equal
//! advskew) steps down; a backup takes over at once from a master that is
//! worse (higher demote, or equal demote and higher advskew); a backup
//! whose master-down timer (`3 × advbase + advskew/256` s) expires becomes
//! master. Demotion is a per-node counter changed by deltas and refused
//! outside 0..=255 (`if_setgroupattribs`); a master re-advertises at once
//! when its demotion changes. Crashed nodes neither send nor hear
//! advertisements and lose their demote counter; partitions come from
//! [`Links`]. Advertisements arrive instantly (one LAN).
//!
//! Not simulated: the carp packet format and its HMAC, virtual MAC
//! addresses, multiple vhids, balancing, the `carpdemote` sysctl paths.

use std::collections::VecDeque;
use std::time::Duration;

use sasyncd_core::time::Instant;

use crate::errno::Errno;
use crate::links::Links;

/// `ifi_link_state` of a carp interface in BACKUP.
pub const LINK_STATE_DOWN: u8 = 2;
/// `ifi_link_state` of a carp interface in MASTER.
pub const LINK_STATE_UP: u8 = 4;
/// `ifi_link_state` before the interface has an opinion.
pub const LINK_STATE_UNKNOWN: u8 = 0;

/// A node's carp state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarpState {
    /// Down (not booted yet, or crashed).
    Init,
    /// Listening for a master.
    Backup,
    /// Advertising.
    Master,
}

/// A link-state change of one node's carp interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkEvent {
    /// The node.
    pub node: usize,
    /// [`LINK_STATE_DOWN`] or [`LINK_STATE_UP`].
    pub link_state: u8,
}

#[derive(Debug, Clone)]
struct Node {
    advskew: u8,
    demote: u8,
    state: CarpState,
    timer: Option<Instant>,
}

/// The carp group of all nodes.
#[derive(Debug, Clone)]
pub struct Carp {
    nodes: Vec<Node>,
    events: VecDeque<LinkEvent>,
    advbase: Duration,
    preempt: bool,
}

impl Carp {
    /// Nodes with the given advskews, all down until [`Carp::start`];
    /// advbase 1 s, preemption on.
    pub fn new(advskews: &[u8]) -> Carp {
        Carp {
            nodes: advskews
                .iter()
                .map(|&advskew| Node {
                    advskew,
                    demote: 0,
                    state: CarpState::Init,
                    timer: None,
                })
                .collect(),
            events: VecDeque::new(),
            advbase: Duration::from_secs(1),
            preempt: true,
        }
    }

    /// Switches preemption (`net.inet.carp.preempt`).
    pub fn set_preempt(&mut self, on: bool) {
        self.preempt = on;
    }

    fn skew(n: &Node) -> Duration {
        Duration::from_millis(u64::from(n.advskew) * 1000 / 256)
    }

    fn adv_interval(&self, i: usize) -> Duration {
        self.advbase + Self::skew(&self.nodes[i])
    }

    fn master_down(&self, i: usize) -> Duration {
        self.advbase * 3 + Self::skew(&self.nodes[i])
    }

    fn set_state(&mut self, i: usize, s: CarpState) {
        if self.nodes[i].state == s {
            return;
        }
        self.nodes[i].state = s;
        let link_state = match s {
            CarpState::Master => LINK_STATE_UP,
            CarpState::Backup => LINK_STATE_DOWN,
            CarpState::Init => return,
        };
        self.events.push_back(LinkEvent {
            node: i,
            link_state,
        });
    }

    /// The node boots: BACKUP, waiting a master-down interval for a master.
    pub fn start(&mut self, node: usize, now: Instant) {
        if self.nodes[node].state != CarpState::Init {
            return;
        }
        self.set_state(node, CarpState::Backup);
        self.nodes[node].timer = Some(now + self.master_down(node));
    }

    /// The node crashes: silent at once, demotion forgotten.
    pub fn crash(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.state = CarpState::Init;
        n.timer = None;
        n.demote = 0;
    }

    /// Adds `delta` to the node's interface-group demote counter; refuses
    /// (EINVAL) a result outside 0..=255, like the kernel.
    pub fn demote(&mut self, node: usize, delta: i32, now: Instant) -> Result<(), Errno> {
        let n = &mut self.nodes[node];
        let v = i32::from(n.demote) + delta;
        let v = u8::try_from(v).map_err(|_| Errno::EINVAL)?;
        n.demote = v;
        if n.state == CarpState::Master {
            n.timer = Some(now);
        }
        Ok(())
    }

    /// The node's demote counter.
    pub fn demote_count(&self, node: usize) -> u8 {
        self.nodes[node].demote
    }

    /// Changes a node's advskew (takes effect with its next advertisement).
    pub fn set_advskew(&mut self, node: usize, advskew: u8) {
        self.nodes[node].advskew = advskew;
    }

    /// The node's carp state.
    pub fn state(&self, node: usize) -> CarpState {
        self.nodes[node].state
    }

    /// The link state an ioctl (SIOCGIFDATA) would read now.
    pub fn link_state(&self, node: usize) -> u8 {
        match self.nodes[node].state {
            CarpState::Init => LINK_STATE_UNKNOWN,
            CarpState::Backup => LINK_STATE_DOWN,
            CarpState::Master => LINK_STATE_UP,
        }
    }

    /// The nodes currently MASTER, in index order.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].state == CarpState::Master)
            .collect()
    }

    /// The next link-state change to report.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When [`Carp::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.nodes.iter().filter_map(|n| n.timer).min()
    }

    /// Runs every timer due at `now` (advertisements, master-down).
    pub fn handle_timeout(&mut self, now: Instant, links: &Links) {
        while let Some(i) = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].timer.is_some_and(|t| t <= now))
            .min_by_key(|&i| (self.nodes[i].timer, i))
        {
            if self.nodes[i].state == CarpState::Backup {
                self.set_state(i, CarpState::Master);
            }
            self.nodes[i].timer = Some(now + self.adv_interval(i));
            self.advertise(i, now, links);
        }
    }

    /// Delivers `from`'s advertisement to every live node it reaches.
    fn advertise(&mut self, from: usize, now: Instant, links: &Links) {
        let (sd, ss) = (self.nodes[from].demote, self.nodes[from].advskew);
        for r in 0..self.nodes.len() {
            if r == from || !links.reachable(from, r) {
                continue;
            }
            let (od, os) = (self.nodes[r].demote, self.nodes[r].advskew);
            match self.nodes[r].state {
                CarpState::Init => {}
                CarpState::Master => {
                    if sd < od || (sd == od && ss <= os) {
                        self.set_state(r, CarpState::Backup);
                        self.nodes[r].timer = Some(now + self.master_down(r));
                    }
                }
                CarpState::Backup => {
                    let worse = sd > od || (self.preempt && os < ss && sd >= od);
                    self.nodes[r].timer = Some(if worse {
                        now // take over in this same handle_timeout
                    } else {
                        now + self.master_down(r)
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    /// Runs carp until `end`, returning all events with their times.
    fn run(c: &mut Carp, links: &Links, from: Instant, end: Instant) -> Vec<(u64, LinkEvent)> {
        let mut now = from;
        let mut out = Vec::new();
        loop {
            while let Some(e) = c.poll_event() {
                out.push((now.as_millis(), e));
            }
            match c.poll_timeout() {
                Some(t) if t <= end => {
                    now = t.max(now);
                    c.handle_timeout(now, links);
                }
                _ => return out,
            }
        }
    }

    fn started(skews: &[u8]) -> (Carp, Links) {
        let mut c = Carp::new(skews);
        for i in 0..skews.len() {
            c.start(i, Instant::ZERO);
        }
        (c, Links::new())
    }

    #[test]
    fn lowest_advskew_wins_election() {
        let (mut c, l) = started(&[100, 0, 50]);
        let ev = run(&mut c, &l, Instant::ZERO, at(20));
        assert_eq!(c.masters(), vec![1]);
        // All three reported BACKUP first; node 1 became master after
        // 3 s (its master-down time), before the others' timers ran out.
        assert_eq!(
            ev.iter()
                .filter(|(_, e)| e.link_state == LINK_STATE_DOWN)
                .count(),
            3
        );
        let ups: Vec<_> = ev
            .iter()
            .filter(|(_, e)| e.link_state == LINK_STATE_UP)
            .collect();
        assert_eq!(ups.len(), 1);
        assert_eq!(
            ups[0],
            &(
                3000,
                LinkEvent {
                    node: 1,
                    link_state: LINK_STATE_UP
                }
            )
        );
        assert_eq!(c.link_state(1), LINK_STATE_UP);
        assert_eq!(c.link_state(0), LINK_STATE_DOWN);
    }

    #[test]
    fn crash_then_takeover_then_preempt_back() {
        let (mut c, l) = started(&[0, 100]);
        run(&mut c, &l, Instant::ZERO, at(10));
        assert_eq!(c.masters(), vec![0]);
        c.crash(0);
        let ev = run(&mut c, &l, at(10), at(20));
        assert_eq!(c.masters(), vec![1]);
        // Took over within master-down (3 s + 100/256 s) of the last advert.
        let (t, e) = ev[0];
        assert_eq!(
            e,
            LinkEvent {
                node: 1,
                link_state: LINK_STATE_UP
            }
        );
        assert!(t <= 10_000 + 3_391, "{t}");
        assert_eq!(c.link_state(0), LINK_STATE_UNKNOWN);
        // Node 0 comes back and preempts on the master's next advert.
        c.start(0, at(20));
        let ev = run(&mut c, &l, at(20), at(30));
        assert_eq!(c.masters(), vec![0]);
        assert!(ev.contains(&(
            ev[ev.len() - 1].0,
            LinkEvent {
                node: 1,
                link_state: LINK_STATE_DOWN
            }
        )));
        c.set_preempt(false);
        assert_eq!(c.state(1), CarpState::Backup);
    }

    #[test]
    fn demotion_moves_mastership() {
        let (mut c, l) = started(&[0, 100]);
        run(&mut c, &l, Instant::ZERO, at(10));
        assert_eq!(c.masters(), vec![0]);
        c.demote(0, 1, at(10)).unwrap();
        run(&mut c, &l, at(10), at(12));
        assert_eq!(c.masters(), vec![1]);
        assert_eq!(c.demote_count(0), 1);
        // Limits.
        assert_eq!(c.demote(0, -2, at(12)), Err(Errno::EINVAL));
        assert_eq!(c.demote(0, 255, at(12)), Err(Errno::EINVAL));
        assert_eq!(c.demote_count(0), 1);
        // Undemoting: node 0 is better again and preempts.
        c.demote(0, -1, at(12)).unwrap();
        run(&mut c, &l, at(12), at(15));
        assert_eq!(c.masters(), vec![0]);
        // Without preemption an equal-demote better advskew waits.
        c.set_preempt(false);
        c.demote(0, 5, at(15)).unwrap();
        run(&mut c, &l, at(15), at(17));
        assert_eq!(c.masters(), vec![1]);
        c.demote(0, -5, at(17)).unwrap();
        run(&mut c, &l, at(17), at(30));
        assert_eq!(c.masters(), vec![1]);
        c.crash(0);
        assert_eq!(c.demote_count(0), 0);
    }

    #[test]
    fn partition_elects_one_master_per_side_then_heals() {
        let (mut c, mut l) = started(&[0, 50, 100]);
        run(&mut c, &l, Instant::ZERO, at(10));
        assert_eq!(c.masters(), vec![0]);
        l.partition(&[&[0], &[1, 2]]);
        run(&mut c, &l, at(10), at(20));
        assert_eq!(c.masters(), vec![0, 1]);
        l.heal();
        run(&mut c, &l, at(20), at(25));
        assert_eq!(c.masters(), vec![0]);
        // A one-way cut: node 1 no longer hears node 0 and takes over,
        // node 0 hears node 1's adverts but keeps its better advskew.
        l.cut(0, 1);
        run(&mut c, &l, at(25), at(35));
        assert_eq!(c.masters(), vec![0, 1]);
    }

    #[test]
    fn equal_priority_settles_on_one_master() {
        let (mut c, mut l) = started(&[10, 10]);
        l.partition(&[&[0], &[1]]);
        run(&mut c, &l, Instant::ZERO, at(10));
        assert_eq!(c.masters(), vec![0, 1]);
        l.heal();
        run(&mut c, &l, at(10), at(20));
        assert_eq!(c.masters().len(), 1);
    }
}
