//! The session rules against impostors (issue 22): a connection from a
//! peer's address that authenticated nothing
//! - never evicts the peer's authenticated session, our own dial, or any
//!   connection the peer authenticated (a legacy crossed start's alias:
//!   closing it ends the session at the peer's end),
//! - never becomes the peer's session (legacy: a new connection replaces
//!   the live one only after an authentic frame),
//! - never moves our outbound backoff (a failed inbound handshake is not
//!   ours to count),
//! - never sets the "last error" of a peer that has a session (without
//!   one, what fails on its address is all there is to tell a wrong key
//!   by, and is shown).
//!
//! The world snapshots the real peer around every call an impostor's
//! connection causes ([`crate::world`]'s impostors); anything that
//! changed in that call, the impostor changed.

use std::net::IpAddr;

use sasyncd_core::node::{ConnId as NodeConn, LastError};
use sasyncd_core::time::Instant;

use super::Oracle;

/// The real peer as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// A session is up.
    pub connected: bool,
    /// Sessions so far.
    pub sessions: u32,
    /// When we dial it next.
    pub next_dial: Option<Instant>,
    /// Its last error.
    pub last_error: Option<LastError>,
    /// Our own connections that are live, to any peer.
    pub dials: Vec<NodeConn>,
    /// Connections the peers opened that authenticated (legacy: a
    /// crossed start's alias too), to any peer: closing one ends the
    /// session at the peer's end.
    pub held: Vec<NodeConn>,
}

impl Oracle {
    /// Node `node` handled a call caused by an impostor using `addr`;
    /// `before` and `after` are the real peer around it.
    pub fn impostor_call(
        &mut self,
        now: Instant,
        node: usize,
        addr: IpAddr,
        what: &str,
        before: &Seen,
        after: &Seen,
    ) {
        self.impostor_checks += 1;
        let mut broke = Vec::new();
        if before.connected && !after.connected {
            broke.push("ended the peer's session".to_string());
        }
        if after.sessions != before.sessions {
            broke.push("became the peer's session".to_string());
        }
        let lost: Vec<_> = before
            .dials
            .iter()
            .filter(|d| !after.dials.contains(d))
            .collect();
        if !lost.is_empty() {
            broke.push(format!("evicted our own dial {lost:?}"));
        }
        let closed: Vec<_> = before
            .held
            .iter()
            .filter(|d| !after.held.contains(d))
            .collect();
        if !closed.is_empty() {
            broke.push(format!(
                "closed a connection its peer authenticated {closed:?}"
            ));
        }
        if after.next_dial != before.next_dial {
            broke.push(format!(
                "moved our next dial from {:?} to {:?}",
                before.next_dial.map(|t| t.as_millis()),
                after.next_dial.map(|t| t.as_millis())
            ));
        }
        if before.connected && after.last_error != before.last_error {
            broke.push(format!(
                "set the peer's last error to {:?}",
                after.last_error.map(|e| e.reason)
            ));
        }
        if !broke.is_empty() {
            self.fail(
                now,
                Some(node),
                format!("impostor from {addr}: {what} {}", broke.join(", ")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasyncd_core::node::ErrorKind;

    fn up() -> Seen {
        Seen {
            connected: true,
            sessions: 3,
            next_dial: None,
            last_error: None,
            dials: vec![NodeConn(4)],
            held: vec![NodeConn(5)],
        }
    }

    fn check(before: &Seen, after: &Seen) -> Vec<String> {
        let mut o = Oracle::default();
        let addr: IpAddr = "10.0.0.2".parse().unwrap();
        o.impostor_call(Instant::from_millis(1), 0, addr, "x", before, after);
        assert_eq!(o.impostor_checks, 1);
        o.failures.into_iter().map(|f| f.what).collect()
    }

    #[test]
    fn each_rule_is_checked() {
        assert!(check(&up(), &up()).is_empty());
        let down = Seen {
            connected: false,
            ..up()
        };
        let f = check(&up(), &down);
        assert!(f[0].contains("ended the peer's session"), "{f:?}");
        let taken = Seen {
            sessions: 4,
            ..up()
        };
        assert!(check(&up(), &taken)[0].contains("became the peer's session"));
        let no_dial = Seen {
            dials: vec![],
            ..up()
        };
        assert!(check(&up(), &no_dial)[0].contains("evicted our own dial"));
        let no_alias = Seen {
            held: vec![],
            ..up()
        };
        assert!(check(&up(), &no_alias)[0].contains("closed a connection its peer authenticated"));
        let later = Seen {
            next_dial: Some(Instant::from_millis(30_000)),
            ..down.clone()
        };
        let f = check(&down, &later);
        assert!(f[0].contains("moved our next dial"), "{f:?}");
        let blamed = |s: &Seen| Seen {
            last_error: Some(LastError {
                kind: ErrorKind::WrongKey,
                reason: "key confirmation failed",
                at: Instant::from_millis(1),
            }),
            ..s.clone()
        };
        assert!(check(&up(), &blamed(&up()))[0].contains("set the peer's last error"));
        // Without a session, what fails on its address is what there is
        // to show.
        assert!(check(&down, &blamed(&down)).is_empty());
    }
}
