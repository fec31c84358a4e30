//! The simulated gateway behind one devhost: its PF_KEY kernel, its carp
//! interface's link state, the carp group's demotion counter, and the IKE
//! daemon stand-in (the `ike` control switch, the writes `ctl` makes in
//! its name, and the optional [`Ike`] workload). No I/O here: the server
//! feeds it requests and moves what it produces onto sockets.

use std::collections::BTreeSet;
use std::time::Duration;

use sasyncd_core::node::Table;
use sasyncd_core::time::Instant;

use super::reply::reply;
use super::{DEFAULT_LOCAL, IKE_PID};
use crate::carp::{LINK_STATE_DOWN, LINK_STATE_UNKNOWN, LINK_STATE_UP};
use crate::errno::Errno;
use crate::ike::{Ike, IkeConfig};
use crate::kernel::{Kernel, WriteOk};
use crate::pfmsg;
use crate::rng::Rng;

/// Highest value of a carp group's demotion counter (`if_setgroupattribs`).
pub const DEMOTE_MAX: i32 = 255;

/// How the gateway starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Initial demotion counter (0..=255).
    pub demote: i32,
    /// Initial `LINK_STATE_*` of the carp interface.
    pub link_state: u8,
    /// Mean interval of the IKE workload, if it starts enabled.
    pub workload: Option<Duration>,
    /// Seed of the random SPIs, keys and workload.
    pub seed: u64,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            demote: 0,
            link_state: LINK_STATE_DOWN,
            workload: None,
            seed: 0,
        }
    }
}

/// What the IKE daemon was last told by the host role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeMode {
    /// Never told anything.
    Unset,
    /// Told to negotiate.
    Active,
    /// Told to stay passive.
    Passive,
}

impl IkeMode {
    /// Lower-case name for `show status`.
    pub fn name(self) -> &'static str {
        match self {
            IkeMode::Unset => "unset",
            IkeMode::Active => "active",
            IkeMode::Passive => "passive",
        }
    }
}

/// The IKE workload and the interval it was started with.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The daemon model.
    pub ike: Ike,
    /// Its mean interval between actions.
    pub interval: Duration,
}

/// One simulated gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    kernel: Kernel,
    rng: Rng,
    seq: u32,
    now: Instant,
    link_state: u8,
    /// A pfsync interface is up (a configured gateway pair has one).
    pfsync: bool,
    demote: i32,
    ike_mode: IkeMode,
    ike_refuse: bool,
    workload: Option<Workload>,
    drop_budget: u64,
    injected_drops: u64,
    /// Pids with a connected pfkey client.
    pfkey_pids: BTreeSet<u32>,
    /// Every pid that ever had one (the kernel keeps their drop counters).
    seen_pids: BTreeSet<u32>,
}

/// The name of a `LINK_STATE_*` value as carp would report it.
pub fn link_state_name(s: u8) -> &'static str {
    match s {
        LINK_STATE_UP => "master",
        LINK_STATE_DOWN => "backup",
        LINK_STATE_UNKNOWN => "init",
        _ => "other",
    }
}

impl Gateway {
    /// A gateway in the state `cfg` describes, with empty tables.
    pub fn new(cfg: &GatewayConfig) -> Gateway {
        let mut rng = Rng::new(cfg.seed);
        let mut kernel = Kernel::new(rng.fork());
        kernel.add_rtable(crate::ike::RDOMAIN);
        let mut gw = Gateway {
            kernel,
            rng,
            seq: 0,
            now: Instant::ZERO,
            link_state: cfg.link_state,
            pfsync: true,
            demote: cfg.demote.clamp(0, DEMOTE_MAX),
            ike_mode: IkeMode::Unset,
            ike_refuse: false,
            workload: None,
            drop_budget: 0,
            injected_drops: 0,
            pfkey_pids: BTreeSet::new(),
            seen_pids: BTreeSet::new(),
        };
        gw.set_workload(cfg.workload);
        gw
    }

    /// Advances the clock (the kernel's LIFETIME_CURRENT times, the
    /// workload's timers).
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.kernel.set_now(now);
    }

    /// The kernel, for dumps and listings.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// A new pfkey client for `pid`. Refused for the IKE stand-in's pid
    /// and for a pid that already has a client (the kernel keys its
    /// promiscuous queues by pid).
    pub fn pfkey_open(&mut self, pid: u32) -> Result<(), String> {
        if pid == IKE_PID {
            return Err(format!("pid {pid} is the IKE stand-in's"));
        }
        if !self.pfkey_pids.insert(pid) {
            return Err(format!("pid {pid} already has a PF_KEY socket"));
        }
        self.seen_pids.insert(pid);
        Ok(())
    }

    /// The client of `pid` went away: its socket stops being promiscuous
    /// and what was queued for it is discarded, as when a socket closes.
    pub fn pfkey_close(&mut self, pid: u32) {
        if self.pfkey_pids.remove(&pid) {
            self.kernel.set_promisc(pid, false);
            while self.kernel.read_promisc(pid).is_some() {}
        }
    }

    /// Pids with a connected pfkey client.
    pub fn pfkey_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.pfkey_pids.iter().copied()
    }

    /// `pid` writes `msg` on its PF_KEY socket; the reply it reads.
    pub fn pfkey_write(&mut self, msg: &[u8], pid: u32) -> Vec<u8> {
        let verdict = self.kernel.write(msg, pid);
        reply(msg, &verdict)
    }

    /// The next promiscuous copy for `pid`'s client, after the drops that
    /// `drop-promisc` asked for.
    pub fn take_promisc(&mut self, pid: u32) -> Option<Vec<u8>> {
        loop {
            let m = self.kernel.read_promisc(pid)?;
            if self.drop_budget == 0 {
                return Some(m);
            }
            self.drop_budget -= 1;
            self.injected_drops += 1;
        }
    }

    /// Drops the next `n` promiscuous copies bound for pfkey clients.
    pub fn drop_promisc(&mut self, n: u64) {
        self.drop_budget = self.drop_budget.saturating_add(n);
    }

    /// Copies still to be dropped.
    pub fn drop_budget(&self) -> u64 {
        self.drop_budget
    }

    /// Copies lost: by a full kernel queue, and by `drop-promisc`.
    pub fn promisc_drops(&self) -> (u64, u64) {
        let kernel = self
            .seen_pids
            .iter()
            .map(|&p| self.kernel.promisc_drops(p))
            .sum();
        (kernel, self.injected_drops)
    }

    /// Connected pfkey clients in promiscuous mode.
    pub fn promisc_listeners(&self) -> usize {
        self.pfkey_pids
            .iter()
            .filter(|&&p| self.kernel.is_promisc(p))
            .count()
    }

    /// The sysctl dump of `table`.
    pub fn dump(&self, table: Table) -> Vec<u8> {
        let mut out = Vec::new();
        self.dump_into(table, &mut out);
        out
    }

    /// [`dump`](Self::dump) appended to `out`.
    pub fn dump_into(&self, table: Table, out: &mut Vec<u8>) {
        match table {
            Table::Sadb => self.kernel.sadb_dump_into(0, out),
            Table::Spd => self.kernel.spd_dump_into(out),
        }
    }

    /// Adds `delta` to the demotion counter; the new value, or a refusal
    /// when the result would leave 0..=255 (the counter is then unchanged).
    pub fn demote(&mut self, delta: i32) -> Result<i32, String> {
        let new = i64::from(self.demote) + i64::from(delta);
        if !(0..=i64::from(DEMOTE_MAX)).contains(&new) {
            return Err(format!(
                "demotion counter {} {delta:+} would be {new}, outside 0..={DEMOTE_MAX}",
                self.demote
            ));
        }
        self.demote = new as i32;
        Ok(self.demote)
    }

    /// The demotion counter.
    pub fn demote_counter(&self) -> i32 {
        self.demote
    }

    /// The carp interface's `LINK_STATE_*`.
    pub fn link_state(&self) -> u8 {
        self.link_state
    }

    /// Whether a pfsync interface is up.
    pub fn pfsync_up(&self) -> bool {
        self.pfsync
    }

    /// Brings the pfsync interface up or down.
    pub fn set_pfsync(&mut self, up: bool) {
        self.pfsync = up;
    }

    /// Sets the link state; whether it changed.
    pub fn set_link_state(&mut self, s: u8) -> bool {
        let changed = s != self.link_state;
        self.link_state = s;
        changed
    }

    /// The host role's IKE control: refused while `ike refuse` is in force.
    pub fn set_ike(&mut self, active: bool) -> Result<(), String> {
        if self.ike_refuse {
            return Err("the IKE daemon is not answering (ike refuse)".to_string());
        }
        self.ike_mode = if active {
            IkeMode::Active
        } else {
            IkeMode::Passive
        };
        let (now, kernel) = (self.now, &self.kernel);
        if let Some(w) = &mut self.workload {
            w.ike.set_active(active, now, kernel);
        }
        Ok(())
    }

    /// What the IKE daemon was last told.
    pub fn ike_mode(&self) -> IkeMode {
        self.ike_mode
    }

    /// Makes later IKE control requests fail (true) or succeed.
    pub fn set_ike_refuse(&mut self, refuse: bool) {
        self.ike_refuse = refuse;
    }

    /// Whether IKE control requests fail.
    pub fn ike_refuse(&self) -> bool {
        self.ike_refuse
    }

    /// Starts the workload with mean interval `interval` (replacing one
    /// that runs), or stops it. It negotiates only while the IKE daemon is
    /// active; SAs made so far stay in the kernel.
    pub fn set_workload(&mut self, interval: Option<Duration>) {
        self.workload = interval.map(|interval| {
            let mut cfg = IkeConfig::for_node(0, DEFAULT_LOCAL);
            cfg.pid = IKE_PID;
            cfg.mean_interval = interval;
            cfg.lifetime = interval * 60;
            let mut ike = Ike::new(cfg, self.rng.fork());
            if self.ike_mode == IkeMode::Active {
                ike.set_active(true, self.now, &self.kernel);
            }
            Workload { ike, interval }
        });
    }

    /// The workload, if enabled.
    pub fn workload(&self) -> Option<&Workload> {
        self.workload.as_ref()
    }

    /// When the workload next acts.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.workload.as_ref().and_then(|w| w.ike.poll_timeout())
    }

    /// Lets the workload do what is due.
    pub fn handle_timeout(&mut self) {
        if let Some(w) = &mut self.workload {
            w.ike.handle_timeout(self.now, &mut self.kernel);
        }
    }

    /// Writes a request in the IKE stand-in's name (the `ctl` edits), with
    /// its pid and next sequence number.
    pub fn write_as_ike(
        &mut self,
        msg_type: u8,
        satype: u8,
        exts: &[pfmsg::ExtRepr<'_>],
    ) -> Result<WriteOk, Errno> {
        self.seq = self.seq.wrapping_add(1);
        let m = pfmsg::message(msg_type, satype, self.seq, IKE_PID, exts);
        self.kernel.write(&m, IKE_PID)
    }

    /// Random bytes (SPIs and keys of `add-sa`).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasyncd_core::pfkey::consts::*;

    #[test]
    fn demotion_stays_in_range() {
        let mut gw = Gateway::new(&GatewayConfig::default());
        assert_eq!(gw.demote(2), Ok(2));
        assert_eq!(gw.demote(-1), Ok(1));
        assert!(gw.demote(-2).is_err());
        assert_eq!(gw.demote_counter(), 1);
        assert!(gw.demote(255).is_err());
        assert!(gw.demote(i32::MIN).is_err());
        assert_eq!(gw.demote(254), Ok(255));
        assert_eq!(gw.demote(-255), Ok(0));
    }

    #[test]
    fn pfkey_pids_are_unique_and_not_the_ike_stand_ins() {
        let mut gw = Gateway::new(&GatewayConfig::default());
        assert!(gw.pfkey_open(IKE_PID).is_err());
        assert!(gw.pfkey_open(10).is_ok());
        assert!(gw.pfkey_open(10).is_err());
        gw.pfkey_close(10);
        assert!(gw.pfkey_open(10).is_ok());
    }

    #[test]
    fn closing_a_socket_stops_its_copies() {
        let mut gw = Gateway::new(&GatewayConfig::default());
        gw.pfkey_open(10).unwrap();
        let on = pfmsg::message(SADB_X_PROMISC, 1, 1, 10, &[]);
        assert_eq!(Msg(&gw.pfkey_write(&on, 10)).errno(), 0);
        assert_eq!(gw.promisc_listeners(), 1);
        gw.write_as_ike(SADB_FLUSH, 0, &[]).unwrap();
        assert!(gw.take_promisc(10).is_some(), "the FLUSH");
        assert!(gw.take_promisc(10).is_none());
        gw.write_as_ike(SADB_FLUSH, 0, &[]).unwrap();
        gw.pfkey_close(10);
        assert_eq!(gw.promisc_listeners(), 0);
        assert!(gw.take_promisc(10).is_none());
        gw.write_as_ike(SADB_FLUSH, 0, &[]).unwrap();
        assert!(gw.take_promisc(10).is_none());
    }

    #[test]
    fn injected_drops_are_counted() {
        let mut gw = Gateway::new(&GatewayConfig::default());
        gw.pfkey_open(10).unwrap();
        gw.kernel.set_promisc(10, true);
        gw.drop_promisc(1);
        gw.write_as_ike(SADB_FLUSH, 0, &[]).unwrap();
        gw.write_as_ike(SADB_FLUSH, 0, &[]).unwrap();
        assert!(gw.take_promisc(10).is_some());
        assert!(gw.take_promisc(10).is_none());
        assert_eq!(gw.promisc_drops(), (0, 1));
        assert_eq!(gw.drop_budget(), 0);
    }

    #[test]
    fn ike_refusal_and_workload() {
        let cfg = GatewayConfig {
            workload: Some(Duration::from_millis(100)),
            ..GatewayConfig::default()
        };
        let mut gw = Gateway::new(&cfg);
        assert_eq!(gw.poll_timeout(), None, "passive until told");
        gw.set_ike_refuse(true);
        assert!(gw.set_ike(true).is_err());
        assert_eq!(gw.ike_mode(), IkeMode::Unset);
        gw.set_ike_refuse(false);
        gw.set_ike(true).unwrap();
        let mut now = Instant::ZERO;
        for _ in 0..2000 {
            now = gw.poll_timeout().unwrap().max(now);
            gw.set_now(now);
            gw.handle_timeout();
        }
        assert!(gw.kernel().sa_count() > 0);
        gw.set_ike(false).unwrap();
        assert_eq!(gw.poll_timeout(), None);
    }

    /// Header view for the assertions.
    struct Msg<'a>(&'a [u8]);
    impl Msg<'_> {
        fn errno(&self) -> u8 {
            self.0[2]
        }
    }
}
