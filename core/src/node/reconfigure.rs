//! Reloading the configuration of a running node (SIGHUP).
//!
//! A running node is not booting: it keeps its identity, boot epoch, delta
//! ring, applied position and counters, and raises no start-up demotion.
//! What changed is applied with the least disturbance:
//!
//! * peers whose address and port are unchanged keep their sessions and
//!   statistics; removed peers are hung up on (and everything that served
//!   them dropped, through the ordinary close path); added peers are
//!   dialled at once;
//! * a new shared key or protocol invalidates every session (each was
//!   authenticated with the old key, or speaks the old protocol): all are
//!   closed and redialled at once;
//! * the sync policy (`flushmode`, `skipslave`), the locked role or carp
//!   interface, and which IKE daemons are controlled apply at once;
//! * the listen address and the carp demotion group belong to the
//!   platform: the result says they changed, the node cannot apply them.
//!
//! Everything is checked first: a configuration that cannot be applied
//! changes nothing.

use core::net::IpAddr;

use crate::config::{Config, Protocol, MAX_PEERS};
use crate::crypto::{Crypto, SecretKey};
use crate::dialect::{Dialect, KernelDialect};
use crate::pfkey::FilterPolicy;
use crate::random::Random;
use crate::state::RunState;
use crate::time::Instant;
use crate::wire::legacy::LegacyCodec;

use super::event::{ConnId, NodeError};
use super::ike::Control;
use super::machine::Node;
use super::marks::MarkStore;
use super::peer_table::PeerIndex;

/// Why every session was closed and redialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionReset {
    /// The shared key changed: sessions were authenticated with the old one.
    SharedKey,
    /// The protocol changed (legacy ↔ v2).
    Protocol,
    /// Both.
    SharedKeyAndProtocol,
}

impl SessionReset {
    const fn what(self) -> &'static str {
        match self {
            SessionReset::SharedKey => "shared key changed",
            SessionReset::Protocol => "protocol changed",
            SessionReset::SharedKeyAndProtocol => "shared key and protocol changed",
        }
    }
}

/// How the node's role changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// `mode master|slave` now locks it in this state (entered at once).
    Locked(RunState),
    /// No longer locked: carp decides again (the platform was asked to
    /// read the carp interface).
    Unlocked,
}

/// What a reload did, for the daemon's log and for it to act on what only
/// the platform can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reconfigured {
    /// Peers with the same address and port: their sessions were kept.
    pub peers_kept: usize,
    /// New peers, dialled at once.
    pub peers_added: usize,
    /// Peers no longer configured: their connections were closed.
    pub peers_removed: usize,
    /// Every session was closed and redialled, and why.
    pub sessions_reset: Option<SessionReset>,
    /// The role was locked or unlocked.
    pub role: Option<RoleChange>,
    /// Another carp interface is configured (read at once unless the role
    /// is locked).
    pub interface_changed: bool,
    /// Other IKE daemons are controlled (told our mode at once).
    pub control_changed: bool,
    /// `flushmode` or `skipslave` changed (applied at once).
    pub policy_changed: bool,
    /// `listen on` changed: only the platform can rebind.
    pub listen_changed: bool,
    /// The carp demotion group changed: only the platform can apply it.
    pub group_changed: bool,
}

impl Reconfigured {
    /// Whether the platform has something to do (or to log) that the node
    /// could not: the listen address or the demotion group changed.
    pub fn needs_platform(&self) -> bool {
        self.listen_changed || self.group_changed
    }

    /// Whether anything at all changed.
    pub fn changed(&self) -> bool {
        self.peers_added > 0
            || self.peers_removed > 0
            || self.sessions_reset.is_some()
            || self.role.is_some()
            || self.interface_changed
            || self.control_changed
            || self.policy_changed
            || self.needs_platform()
    }
}

impl core::fmt::Display for Reconfigured {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let peers = if self.peers_kept == 1 {
            "peer"
        } else {
            "peers"
        };
        write!(
            f,
            "reloaded: {} {peers} kept, {} added, {} removed",
            self.peers_kept, self.peers_added, self.peers_removed
        )?;
        if let Some(r) = self.sessions_reset {
            write!(f, "; {}: all sessions reset", r.what())?;
        }
        match self.role {
            Some(RoleChange::Locked(s)) => write!(f, "; role locked to {s}")?,
            Some(RoleChange::Unlocked) => f.write_str("; role unlocked: carp decides")?,
            None => {}
        }
        if self.interface_changed {
            f.write_str("; carp interface changed")?;
        }
        if self.control_changed {
            f.write_str("; IKE control changed")?;
        }
        if self.policy_changed {
            f.write_str("; sync policy changed")?;
        }
        if self.listen_changed {
            f.write_str("; listen address changed: restart to apply")?;
        }
        if self.group_changed {
            f.write_str("; carp group changed: restart to apply")?;
        }
        Ok(())
    }
}

/// Refuses `protocol legacy` to a node of another kernel than OpenBSD's
/// (see [`NodeError::LegacyDialect`]).
pub(super) fn legacy_dialect<D: Dialect>(config: &Config) -> Result<(), NodeError> {
    if config.protocol == Protocol::Legacy && D::ID != KernelDialect::OpenBsd {
        return Err(NodeError::LegacyDialect);
    }
    Ok(())
}

/// The configured peers as the node keys them (canonical address, port to
/// dial), checked against the node's capacity.
pub(super) fn wanted_peers(
    config: &Config,
    capacity: usize,
) -> Result<heapless::Vec<(IpAddr, u16), MAX_PEERS>, NodeError> {
    let mut v: heapless::Vec<(IpAddr, u16), MAX_PEERS> = heapless::Vec::new();
    for p in &config.peers {
        let addr = p.addr.ok_or(NodeError::PeerNotAddress)?.to_canonical();
        if v.iter().any(|&(a, _)| a == addr) {
            return Err(NodeError::DuplicatePeer);
        }
        if v.len() == capacity {
            return Err(NodeError::TooManyPeers);
        }
        v.push((addr, p.port_or(config.listen.port)))
            .map_err(|_| NodeError::TooManyPeers)?;
    }
    Ok(v)
}

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect> Node<'a, C, R, M, D> {
    /// Applies a reloaded configuration (see the module documentation).
    /// On error nothing changed and the node runs on as before.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        config: &Config,
    ) -> Result<Reconfigured, NodeError> {
        if self.shutting_down {
            return Err(NodeError::ShuttingDown);
        }
        let codec = LegacyCodec::new(self.crypto.clone(), config.sharedkey.as_bytes())
            .map_err(|_| NodeError::BadKey)?;
        let key = SecretKey::new(config.sharedkey.as_bytes()).ok_or(NodeError::BadKey)?;
        legacy_dialect::<D>(config)?;
        let wanted = wanted_peers(config, self.conns.peers())?;

        let mut r = Reconfigured::default();
        let legacy = config.protocol == Protocol::Legacy;
        let key_changed = key.as_bytes() != self.key.as_bytes();
        r.sessions_reset = match (key_changed, legacy != self.legacy) {
            (true, true) => Some(SessionReset::SharedKeyAndProtocol),
            (true, false) => Some(SessionReset::SharedKey),
            (false, true) => Some(SessionReset::Protocol),
            (false, false) => None,
        };
        if let Some(why) = r.sessions_reset {
            self.reset_sessions(now, why, legacy);
            self.codec = codec;
            self.key = key;
        }

        self.reconfigure_peers(now, &wanted, &mut r);

        let policy = FilterPolicy {
            flushmode: config.flushmode,
            skipslave: config.skipslave,
        };
        r.policy_changed = policy != self.policy;
        self.policy = policy;
        self.flushmode = config.flushmode;
        self.replay_margin = u64::from(config.replay_margin);

        let control = Control {
            isakmpd: config.control.isakmpd,
            iked: config.control.iked,
        };
        r.control_changed = self.ike.set_control(control, self.role.state());

        r.interface_changed = config.interface != self.interface;
        self.interface.clone_from(&config.interface);
        r.role = self.reconfigure_role(now, config.locked, r.interface_changed);

        r.listen_changed = config.listen != self.listen;
        self.listen.clone_from(&config.listen);
        r.group_changed = config.group != self.group;
        self.group.clone_from(&config.group);

        // Who is master, whether our demotion can go, whom to dial.
        self.check_split_brain(true);
        self.demote.handle_peer_states(self.table.states(), now);
        if self.role.state() != RunState::Master {
            self.attach(now);
        }
        self.dial_due(now);
        self.flush_parts();
        // Not logged here: the caller reports the outcome once (the daemon's
        // privileged process logs `configuration reloaded: ...`).
        Ok(r)
    }

    /// Closes every connection (they belong to the old key or protocol),
    /// switches protocol if asked, and lets every peer be redialled at once.
    fn reset_sessions(&mut self, now: Instant, why: SessionReset, legacy: bool) {
        let mut ids: heapless::Vec<ConnId, 64> = heapless::Vec::new();
        for c in self.conns.iter() {
            let _ = ids.push(c.id());
        }
        for &id in &ids {
            self.close_conn(now, id, Some(why.what()), true);
        }
        if legacy != self.legacy {
            self.legacy = legacy;
            // A legacy stream has no positions: only a full snapshot tells
            // a v2 master what we hold. Anti-entropy is v2 only.
            self.slave.protocol_changed();
            self.job_cancel();
            let v2_master = !legacy && self.role.state() == RunState::Master;
            let interval = self.settings.digest_interval;
            self.feed.schedule_digests(v2_master, now, interval);
        }
        self.conns.redial_all();
    }

    /// Hangs up on removed peers, then rebuilds the peer table and moves
    /// each kept peer's connections and backoff to its new index.
    fn reconfigure_peers(&mut self, now: Instant, wanted: &[(IpAddr, u16)], r: &mut Reconfigured) {
        for p in 0..self.table.len() {
            let Some((addr, port)) = self.table.get(PeerIndex(p)).map(|x| (x.addr(), x.port()))
            else {
                continue;
            };
            if wanted.contains(&(addr, port)) {
                continue;
            }
            r.peers_removed += 1;
            log::info!("peer {addr}: no longer configured");
            for s in 0..2 {
                if let Some(id) = self.conns.slot(p, s).map(|c| c.id()) {
                    self.close_conn(now, id, Some("no longer configured"), true);
                }
            }
        }
        let from = match self.table.reconfigure(wanted) {
            Ok(f) => f,
            // Checked by `wanted_peers`; keep the old table rather than panic.
            Err(_) => return,
        };
        self.slave.peers_moved(&from);
        for old in from.iter() {
            if old.is_some() {
                r.peers_kept += 1;
            } else {
                r.peers_added += 1;
            }
        }
        // Each kept peer's slots and backoff move to its new index; what
        // is left in the other slots is what removed peers left (their
        // connections were closed above).
        self.conns.peers_moved(&from);
        self.peer_addrs.clear();
        for &(addr, _) in wanted {
            let _ = self.peer_addrs.push(addr);
        }
    }

    /// Locks or unlocks the role; a tracking node re-reads a new carp
    /// interface.
    fn reconfigure_role(
        &mut self,
        now: Instant,
        locked: Option<RunState>,
        interface_changed: bool,
    ) -> Option<RoleChange> {
        match (locked, self.role.is_locked()) {
            (Some(s), was_locked) => {
                let changed = !was_locked || self.role.state() != s;
                if let Some(change) = self.role.lock(s) {
                    self.enter_state(now, change);
                }
                changed.then_some(RoleChange::Locked(s))
            }
            (None, true) => {
                self.role.unlock();
                Some(RoleChange::Unlocked)
            }
            (None, false) => {
                if interface_changed {
                    self.role.handle_interface_changed();
                }
                None
            }
        }
    }
}

/// Swaps two elements in place (`mem::swap` on the halves, which avoids a
/// temporary the size of a connection's buffers).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_for_the_operator() {
        let r = Reconfigured {
            peers_kept: 2,
            peers_added: 1,
            sessions_reset: Some(SessionReset::SharedKey),
            ..Reconfigured::default()
        };
        assert_eq!(
            std::format!("{r}"),
            "reloaded: 2 peers kept, 1 added, 0 removed; shared key changed: all sessions reset"
        );
        assert!(r.changed());
        assert!(!r.needs_platform());
        let r = Reconfigured {
            peers_kept: 1,
            role: Some(RoleChange::Locked(RunState::Master)),
            listen_changed: true,
            ..Reconfigured::default()
        };
        assert_eq!(
            std::format!("{r}"),
            "reloaded: 1 peer kept, 0 added, 0 removed; role locked to MASTER; listen address changed: restart to apply"
        );
        assert!(r.needs_platform());
        let nothing = Reconfigured {
            peers_kept: 3,
            ..Reconfigured::default()
        };
        assert!(!nothing.changed());
    }
}
