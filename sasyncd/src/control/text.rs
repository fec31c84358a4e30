//! The reports for people, in the manner of bgpctl(8) and netstat(1):
//! `show` fits one screen (the node, then one row per peer), `show peer`
//! has the details, `show stats` one counter per line. The wording may be
//! improved between releases; scripts use the JSON reports.

use std::fmt::Write as _;
use std::time::Duration;

use sasyncd_core::node::{IkeMode, PeerView};
use sasyncd_core::state::{Position, RunState};

use super::json::{by_cause, protocol_name};
use super::status::{counters, link_name, Status};

/// A time span as bgpctl prints it: `HH:MM:SS` under a day, `1d02h03m`
/// under a week, `02w3d04h` beyond.
pub fn timeframe(d: Duration) -> String {
    let t = d.as_secs();
    let (sec, min, hrs) = (t % 60, (t / 60) % 60, (t / 3600) % 24);
    let days = t / 86_400;
    if t < 86_400 {
        format!("{hrs:02}:{min:02}:{sec:02}")
    } else if t < 7 * 86_400 {
        format!("{days}d{hrs:02}h{min:02}m")
    } else {
        format!("{:02}w{}d{hrs:02}h", days / 7, days % 7)
    }
}

/// A short duration (a snapshot's) in seconds with milliseconds.
fn secs(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

/// A stream position in full: the sequence number and, in hex, the
/// master's epoch (a large random-looking number).
fn pos(p: Position) -> String {
    if p == Position::NONE {
        "none".to_string()
    } else {
        format!("{} (epoch {:x})", p.seq, p.epoch)
    }
}

/// A position in a table: the sequence number alone when it is in
/// `epoch` (the node's), else with an abbreviated epoch.
fn pos_in(p: Position, epoch: u64) -> String {
    if p == Position::NONE {
        "-".to_string()
    } else if p.epoch == epoch {
        p.seq.to_string()
    } else {
        format!("{}@{:x}", p.seq, p.epoch >> 40)
    }
}

fn ike(m: Option<IkeMode>) -> &'static str {
    match m {
        Some(IkeMode::Active) => "active",
        Some(IkeMode::Passive) => "passive",
        None => "none",
    }
}

/// `show`: the node, then one row per peer.
pub fn summary(s: &Status) -> String {
    let n = &s.node;
    let mut o = String::new();
    let mut field = |k: &str, v: String| {
        let _ = writeln!(o, "{:<14}{v}", format!("{k}:"));
    };
    let carp = match n.link_state {
        Some(l) => format!("carp link {} ({l})", link_name(l)),
        None => "carp link not known yet".to_string(),
    };
    let locked = if n.locked { ", locked by mode" } else { "" };
    field(
        "State",
        format!(
            "{} for {} ({carp}{locked})",
            n.run_state,
            timeframe(s.ago(n.run_state_since))
        ),
    );
    field(
        "Demotion",
        match (n.demote_held, n.demote_deadline) {
            (true, Some(d)) => format!("held, released within {}", timeframe(s.until(d))),
            (true, None) => "held".to_string(),
            (false, Some(d)) => format!("being raised, until {} at most", timeframe(s.until(d))),
            (false, None) => "none".to_string(),
        },
    );
    let confirmed = if n.ike_requested.is_some() && n.ike_requested != n.ike_confirmed {
        " (not yet confirmed)"
    } else {
        ""
    };
    field(
        "IKE daemons",
        format!(
            "{} requested, {} confirmed{confirmed}",
            ike(n.ike_requested),
            ike(n.ike_confirmed)
        ),
    );
    field(
        "pfsync",
        match s.pfsync {
            Some(true) => "up".to_string(),
            Some(false) => {
                "WARNING: down; a failover leaves the new master with stale replay counters"
                    .to_string()
            }
            None => "not checked (see sasyncd(8), CAVEATS)".to_string(),
        },
    );
    field("Protocol", protocol_name(s.protocol).to_string());
    if n.split_brain {
        field(
            "Split brain",
            "WARNING: a peer claims MASTER while we are MASTER".to_string(),
        );
    }
    if n.run_state != RunState::Master {
        field(
            "Following",
            match n.following {
                Some((a, true)) => format!("{a}, streaming"),
                Some((a, false)) => format!("{a}, asked for the stream"),
                None => "none".to_string(),
            },
        );
    }
    let syncing = match (n.syncing, n.job) {
        (true, Some(j)) => format!(", syncing ({j})"),
        (true, None) => ", syncing (snapshot)".to_string(),
        (false, Some(j)) => format!(", {j} running"),
        (false, None) => String::new(),
    };
    let syncing = if n.repairing {
        format!("{syncing}, repairing buckets that differ from the master's")
    } else {
        syncing
    };
    field("Position", format!("{}{syncing}", pos(n.position)));
    field(
        "Delta ring",
        format!(
            "{} of {} bytes, {} records",
            n.ring.bytes, n.ring.capacity, n.ring.records
        ),
    );
    field(
        "Kernel queue",
        format!(
            "{} messages{}",
            n.pfkey_queued,
            if n.paused_reads > 0 {
                format!(", {} peer reads paused", n.paused_reads)
            } else {
                String::new()
            }
        ),
    );
    o.push('\n');
    let _ = writeln!(
        o,
        "{:<24} {:<10} {:>9} {:<6} {:>10} {:>10} {:>5} {:>5}  Last error",
        "Peer", "Session", "Since", "Role", "Applied", "Acked", "Lag", "Snap"
    );
    for p in &s.peers {
        let st = &p.stats;
        let since = p
            .phase_since
            .map_or("never".to_string(), |t| timeframe(s.ago(t)));
        let role = p.state.map_or("-", |r| r.name());
        // Towards a slave of ours what matters is what it acknowledged;
        // towards our master, what we acknowledged to it.
        let acked = if n.run_state == RunState::Master {
            st.acked_by
        } else {
            st.acked_to
        };
        let _ = writeln!(
            o,
            "{:<24} {:<10} {:>9} {:<6} {:>10} {:>10} {:>5} {:>5}  {}",
            endpoint(p),
            p.phase.name(),
            since,
            role,
            pos_in(st.applied, n.position.epoch),
            pos_in(acked, n.position.epoch),
            st.lag,
            format!("{}/{}", st.snapshots_sent, st.snapshots_received),
            last_error(s, p)
        );
    }
    o
}

fn endpoint(p: &PeerView) -> String {
    match p.addr {
        std::net::IpAddr::V4(a) => format!("{a}:{}", p.port),
        std::net::IpAddr::V6(a) => format!("[{a}]:{}", p.port),
    }
}

fn last_error(s: &Status, p: &PeerView) -> String {
    match p.stats.last_error {
        Some(e) => format!(
            "{}: {}, {} ago",
            e.kind.name(),
            e.reason,
            timeframe(s.ago(e.at))
        ),
        None => "-".to_string(),
    }
}

/// `show peer ADDR`: one peer in detail.
pub fn peer(s: &Status, p: &PeerView) -> String {
    let st = &p.stats;
    let mut o = String::new();
    let _ = writeln!(o, "Peer {} port {}", p.addr, p.port);
    let mut field = |k: &str, v: String| {
        let _ = writeln!(o, "  {:<16}{v}", format!("{k}:"));
    };
    let since = p
        .phase_since
        .map_or(String::new(), |t| format!(" for {}", timeframe(s.ago(t))));
    field("Session", format!("{}{since}", p.phase.name()));
    field(
        "Announced",
        p.state
            .map_or("nothing in this session".to_string(), |r| r.to_string()),
    );
    let ours = protocol_name(s.protocol);
    field(
        "Protocol",
        match super::status::peer_protocol(s.protocol, p) {
            Some(theirs) if theirs == s.protocol => ours.to_string(),
            Some(theirs) => format!(
                "{ours} here, but the peer speaks {} (give both the same protocol)",
                protocol_name(theirs)
            ),
            None => format!("{ours} here; the peer's not known yet"),
        },
    );
    field(
        "Sessions",
        format!("{} established, {} reconnects", st.sessions, st.reconnects),
    );
    field(
        "Last sync",
        st.last_sync.map_or("never".to_string(), |t| {
            format!("{} ago", timeframe(s.ago(t)))
        }),
    );
    field(
        "Position",
        format!(
            "applied {}, acknowledged to it {}, by it {}, lag {}",
            pos(st.applied),
            pos(st.acked_to),
            pos(st.acked_by),
            st.lag
        ),
    );
    let took =
        |d: Option<Duration>| d.map_or(String::new(), |d| format!(", last took {}", secs(d)));
    let now = |t: Option<sasyncd_core::time::Instant>| {
        t.map_or(String::new(), |t| {
            format!(", one under way for {}", secs(s.ago(t)))
        })
    };
    field(
        "Snapshots sent",
        format!(
            "{}{}{}",
            st.snapshots_sent,
            took(st.last_snapshot_sent),
            now(st.sending_snapshot_since)
        ),
    );
    field(
        "Snapshots recv",
        format!(
            "{}{}{}",
            st.snapshots_received,
            took(st.last_snapshot_received),
            now(st.receiving_snapshot_since)
        ),
    );
    field(
        "Repairs sent",
        format!("{}{}", st.repairs_sent, took(st.last_repair_sent)),
    );
    field(
        "Repairs recv",
        format!("{}{}", st.repairs_received, took(st.last_repair_received)),
    );
    o.push('\n');
    let _ = writeln!(o, "  {:<18}{:>12} {:>14}", "Traffic", "frames", "bytes");
    let _ = writeln!(
        o,
        "  {:<18}{:>12} {:>14}",
        "  received", st.frames_in, st.bytes_in
    );
    let _ = writeln!(
        o,
        "  {:<18}{:>12} {:>14}",
        "  sent", st.frames_out, st.bytes_out
    );
    o.push('\n');
    let _ = writeln!(o, "  Errors by cause");
    for (k, n) in by_cause(&st.errors) {
        let what = match k {
            sasyncd_core::node::ErrorKind::Auth => "bad MAC or hash (auth)",
            sasyncd_core::node::ErrorKind::Replay => "replay or gap",
            sasyncd_core::node::ErrorKind::WrongKey => "wrong key",
            sasyncd_core::node::ErrorKind::Oversize => "oversize",
            sasyncd_core::node::ErrorKind::Malformed => "malformed",
            sasyncd_core::node::ErrorKind::Protocol => "protocol",
            sasyncd_core::node::ErrorKind::Kernel => "refused by our kernel",
            sasyncd_core::node::ErrorKind::Io => "connection (io)",
        };
        let _ = writeln!(o, "    {what:<26}{n:>8}");
    }
    let _ = writeln!(o, "  {:<16}{}", "Last error:", last_error(s, p));
    o
}

/// `show stats`: counters one per line, zeros only with `all`.
pub fn stats(s: &Status, all: bool) -> String {
    let mut o = String::from("sasyncd:\n");
    let list = counters(s);
    let mut peers_started = false;
    for c in list.iter().filter(|c| all || c.value != 0) {
        if c.name.starts_with("peer_") && !peers_started {
            o.push_str("peers (all together):\n");
            peers_started = true;
        }
        let _ = writeln!(o, "\t{} {}", c.value, c.what);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::status::tests::sample;
    use super::*;

    #[test]
    fn timeframes_as_bgpctl() {
        assert_eq!(timeframe(Duration::from_secs(0)), "00:00:00");
        assert_eq!(timeframe(Duration::from_secs(3725)), "01:02:05");
        assert_eq!(timeframe(Duration::from_secs(86_400 + 7380)), "1d02h03m");
        assert_eq!(
            timeframe(Duration::from_secs(15 * 86_400 + 4 * 3600)),
            "02w1d04h"
        );
        assert_eq!(secs(Duration::from_millis(24)), "0.024s");
    }

    #[test]
    fn summary_shows_the_node_and_a_row_per_peer() {
        let out = summary(&sample());
        for want in [
            "State:        SLAVE for 00:01:39 (carp link backup (2))",
            "Demotion:     held, released within 00:00:30",
            "IKE daemons:  passive requested, passive confirmed",
            "pfsync:       not checked",
            "Protocol:     v2",
            "Following:    192.0.2.1, streaming",
            "Position:     42 (epoch 7)",
            "Delta ring:   0 of 131072 bytes, 0 records",
        ] {
            assert!(out.contains(want), "{want:?} in\n{out}");
        }
        let rows: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.starts_with("Peer "))
            .collect();
        assert_eq!(rows.len(), 3, "{out}");
        assert!(rows[1].starts_with("192.0.2.1:500 "), "{out}");
        assert!(
            rows[1].contains(" up ") && rows[1].contains("MASTER"),
            "{out}"
        );
        assert!(
            rows[1].contains(" 42 ") && rows[1].contains(" 40 "),
            "{out}"
        );
        assert!(rows[2].starts_with("[2001:db8::3]:7500"), "{out}");
        assert!(rows[2].contains("auth: bad MAC, 00:00:40 ago"), "{out}");
    }

    #[test]
    fn peer_details() {
        let s = sample();
        let out = peer(&s, &s.peers[0]);
        for want in [
            "Peer 192.0.2.1 port 500",
            "Session:        up for 00:00:10",
            "Announced:      MASTER",
            "Sessions:       2 established, 1 reconnects",
            "Last sync:      00:00:01 ago",
            "Snapshots recv: 1, last took 0.024s",
            "Repairs recv:   3, last took 0.007s",
            "received                  44           8812",
            "connection (io)                  1",
            "Last error:     -",
        ] {
            assert!(out.contains(want), "{want:?} in\n{out}");
        }
    }

    #[test]
    fn stats_hide_zeros_unless_all() {
        let s = sample();
        let brief = stats(&s, false);
        assert!(brief.contains("\t42 PF_KEY messages written to the kernel\n"));
        assert!(!brief.contains("\t0 "), "{brief}");
        assert!(brief.contains("peers (all together):\n\t44 frames received from peers"));
        let all = stats(&s, true);
        assert!(all.contains("\t0 full snapshots started (master)\n"));
        assert_eq!(all.lines().count(), counters(&s).len() + 2);
    }
}
