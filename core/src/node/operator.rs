//! What an operator may ask of a running node (through the daemon's
//! control socket): a full repair from the master, and which protocol the
//! node speaks (for status output).

use core::net::IpAddr;

use crate::config::Protocol;
use crate::crypto::Crypto;
use crate::ctl::Ctl;
use crate::random::Random;
use crate::state::{Position, RunState};
use crate::time::Instant;

use super::machine::Node;
use super::marks::MarkStore;

/// Why [`Node::request_resync`] asked nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncError {
    /// We are master: repairs flow from us, not to us.
    Master,
    /// The node is shutting down.
    ShuttingDown,
    /// No connected peer claims MASTER.
    NoMaster,
    /// The address is not a configured peer.
    UnknownPeer(IpAddr),
    /// The peer has no session up, or did not announce MASTER in it.
    NotMaster(IpAddr),
}

impl core::fmt::Display for ResyncError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ResyncError::Master => f.write_str("we are master; a resync is asked of a master"),
            ResyncError::ShuttingDown => f.write_str("shutting down"),
            ResyncError::NoMaster => f.write_str("no connected peer claims MASTER"),
            ResyncError::UnknownPeer(a) => write!(f, "{a} is not a configured peer"),
            ResyncError::NotMaster(a) => write!(f, "peer {a} is not a connected master"),
        }
    }
}

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore> Node<'a, C, R, M> {
    /// The peer protocol the node speaks now (a reload may change it).
    pub fn protocol(&self) -> Protocol {
        if self.legacy {
            Protocol::Legacy
        } else {
            Protocol::V2
        }
    }

    /// Asks a master for a full snapshot, as a digest mismatch does:
    /// `peer`, or else the master we follow, or else the newest peer to
    /// claim MASTER. A v2 slave follows that master from now on and sends
    /// it `Resync` from no position (a snapshot with a sweep follows); a
    /// legacy slave, which cannot ask, closes its session to that master,
    /// whose reconnect brings a full snapshot. Returns whom it asked.
    pub fn request_resync(
        &mut self,
        now: Instant,
        peer: Option<IpAddr>,
    ) -> Result<IpAddr, ResyncError> {
        if self.shutting_down {
            return Err(ResyncError::ShuttingDown);
        }
        if self.role.state() == RunState::Master {
            return Err(ResyncError::Master);
        }
        let masters = self
            .open_conns()
            .into_iter()
            .filter(|&c| self.peer_state_of(c) == Some(RunState::Master));
        let conn = match peer {
            Some(a) => {
                let p = self
                    .peer_addrs
                    .iter()
                    .position(|&x| x == a)
                    .ok_or(ResyncError::UnknownPeer(a))?;
                masters
                    .into_iter()
                    .find(|&c| self.slot_of(c).is_some_and(|(q, _)| q == p))
                    .ok_or(ResyncError::NotMaster(a))?
            }
            None => {
                let claim = |c| self.slot_of(c).and_then(|(p, _)| self.slave.claim(p));
                let followed = self.slave.following().map(|f| f.conn);
                masters
                    .max_by_key(|&c| (Some(c) == followed, claim(c)))
                    .ok_or(ResyncError::NoMaster)?
            }
        };
        let addr = self
            .slot_of(conn)
            .map_or(IpAddr::from([0; 4]), |(p, _)| self.peer_addrs[p]);
        log::info!("asking master {addr} for a full resync (operator request)");
        if self.legacy {
            self.slave.legacy_drop_master();
            self.close_conn(now, conn, Some("resync asked for by the operator"), true);
            return Ok(addr);
        }
        if let Some(old) = self.slave.following().filter(|f| f.conn != conn) {
            self.slave.leave(old.conn);
            self.job_conn_gone(old.conn);
        }
        self.slave.resync_asked(conn, now);
        self.send_ctl_or_close(now, conn, &Ctl::Resync(Position::NONE));
        Ok(addr)
    }
}
