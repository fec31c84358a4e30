//! Which master a slave takes its stream from. A slave follows one master
//! at a time: when two peers claim MASTER (a partition healing), mixing
//! their streams would sweep one master's entries away with the other's
//! snapshot. A v2 slave asks its master for the stream (`Resync`); a legacy
//! one, which cannot ask, follows the latest peer to claim MASTER and
//! reconnects to get a snapshot from a master whose data it refused.

use crate::crypto::Crypto;
use crate::ctl::Ctl;
use crate::dialect::Dialect;
use crate::random::Random;
use crate::state::RunState;
use crate::time::Instant;

use super::event::ConnId;
use super::machine::Node;
use super::marks::MarkStore;

impl<'a, C: Crypto + Clone, R: Random, M: MarkStore, D: Dialect> Node<'a, C, R, M, D> {
    /// Whether a v2 slave may take a stream from `conn`: it follows no one,
    /// or already follows `conn`, or the one it follows is no longer master.
    pub(super) fn may_follow(&self, conn: ConnId) -> bool {
        match self.slave.following() {
            None => true,
            Some(f) if f.conn == conn => true,
            Some(f) => self.peer_state_of(f.conn) != Some(RunState::Master),
        }
    }

    /// A slave that follows no one picks the peer that claimed MASTER most
    /// recently and asks it to resume (or send a snapshot).
    pub(super) fn attach(&mut self, now: Instant) {
        if let Some((conn, why)) = self.attach_step(now) {
            self.close_conn(now, conn, why, true);
        }
    }

    /// [`attach`](Self::attach), but a connection that must be closed
    /// (asking failed, or a legacy master to reconnect to) is returned with
    /// the reason to log, not closed: closing may attach again.
    pub(super) fn attach_step(&mut self, now: Instant) -> Option<(ConnId, Option<&'static str>)> {
        if self.slave.following().is_some()
            || self.role.state() == RunState::Master
            || self.shutting_down
        {
            return None;
        }
        // The newest claimant: an older one may be a master that died
        // behind a half-open connection.
        let claim = |c: ConnId| self.slot_of(c).and_then(|(p, _)| self.slave.claim(p));
        let conn = self
            .open_conns()
            .into_iter()
            .filter(|&c| self.peer_state_of(c) == Some(RunState::Master))
            .max_by_key(|&c| claim(c))?;
        if self.legacy {
            self.legacy_switch_step(conn)
        } else {
            self.ask_step(now, conn)
        }
    }

    /// A peer newly claims MASTER (its state changed, or a new session says
    /// so) while we follow another: carp elected it after the one we
    /// follow, which may be dead behind a half-open connection that only
    /// the liveness timeout would end. The newest claimant wins at once:
    /// drop the old stream and what was half-received from it, and ask the
    /// new master for ours. One stream at a time still holds, so a healed
    /// partition cannot mix two masters' data; split brain is still seen
    /// (and settled by carp) between the masters themselves.
    pub(super) fn switch_to(&mut self, now: Instant, conn: ConnId) {
        let Some(old) = self.slave.following().filter(|f| f.conn != conn) else {
            return;
        };
        #[cfg(feature = "planted-bugs")]
        if self.bugs.follow_dead_master {
            return;
        }
        if let (Some((p, _)), Some((q, _))) = (self.slot_of(conn), self.slot_of(old.conn)) {
            log::info!(
                "peer {} claims MASTER; following it instead of {}",
                self.peer_addrs[p],
                self.peer_addrs[q]
            );
        }
        self.slave.leave(old.conn);
        self.job_conn_gone(old.conn);
        self.ask(now, conn);
    }

    /// A legacy slave starts following `conn`'s master. If it applied data
    /// from another master since, or refused some of this one's, its tables
    /// are a mix: it hangs up, because reconnecting is how a legacy master
    /// is made to send a full snapshot.
    pub(super) fn legacy_switch_to(&mut self, now: Instant, conn: ConnId) {
        if let Some((conn, why)) = self.legacy_switch_step(conn) {
            self.close_conn(now, conn, why, true);
        }
    }

    /// [`legacy_switch_to`](Self::legacy_switch_to), returning the
    /// connection to hang up on instead of closing it.
    fn legacy_switch_step(&mut self, conn: ConnId) -> Option<(ConnId, Option<&'static str>)> {
        if self.slave.follows(conn) {
            return None;
        }
        let peer = self.slot_of(conn).map(|(p, _)| p);
        let mixed = self.slave.legacy_source().is_some_and(|a| Some(a) != peer)
            || self.conn(conn).is_some_and(|c| c.refused());
        if mixed {
            self.slave.legacy_drop_master();
            return Some((
                conn,
                Some("switching masters; reconnecting for a full snapshot"),
            ));
        }
        self.slave.legacy_follow(conn);
        None
    }

    /// Asks `conn`'s master for our stream: resume after our position, or
    /// a full snapshot.
    pub(super) fn ask(&mut self, now: Instant, conn: ConnId) {
        if let Some((conn, why)) = self.ask_step(now, conn) {
            self.close_conn(now, conn, why, true);
        }
    }

    /// [`ask`](Self::ask), returning the connection to close if the
    /// request could not be queued.
    fn ask_step(&mut self, now: Instant, conn: ConnId) -> Option<(ConnId, Option<&'static str>)> {
        // A repair owed to the stream we leave stays owed: we say we are
        // repairing until a digest finds where (at once if we are resumed
        // across streams, else the next periodic one). (`follow` cannot
        // see the switch: by the time the new stream begins, we already
        // follow its connection.)
        self.slave.asking(conn, now);
        let pos = self.resume_position();
        (!self.try_send_ctl(now, conn, &Ctl::Resync(pos))).then_some((conn, None))
    }

    /// A legacy slave follows one master too, by its own choice (the wire
    /// protocol has no say): data from a second peer claiming MASTER while
    /// the followed one still is gets refused. When the followed one steps
    /// down and we switch to a master whose data we refused before, we hang
    /// up on it: reconnecting is how a legacy master is made to send a full
    /// snapshot. `None` means the connection was closed.
    pub(super) fn legacy_follow(&mut self, now: Instant, conn: ConnId) -> Option<bool> {
        let switch = match self.slave.following() {
            Some(f) if f.conn == conn => return Some(true),
            Some(f) if self.peer_state_of(f.conn) == Some(RunState::Master) => {
                if let Some(c) = self.conn_mut(conn) {
                    c.refuse();
                }
                // Legacy sessions have no keepalive: the master we follow may
                // be long dead behind a half-open connection. Announcing our
                // state makes it answer (ACK), or makes TCP find out.
                if self.slave.legacy_prod(now) {
                    let ours = self.role.state();
                    self.send_ctl_or_close(now, f.conn, &Ctl::State(ours));
                }
                return Some(false);
            }
            _ => true,
        };
        if switch {
            self.legacy_switch_to(now, conn);
        }
        if self.slave.follows(conn) {
            Some(true)
        } else {
            None
        }
    }
}
