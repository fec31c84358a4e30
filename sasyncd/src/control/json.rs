//! The `json` reports: one line of JSON each, in a stable schema for
//! scripts and monitoring (documented for users in sasyncctl(8), section
//! JSON OUTPUT; a test checks that every key written here is listed
//! there). Written by hand: the schema is small and fixed, and the daemon
//! needs no serialisation framework for it.
//!
//! Stability: `schema` is 2; keys are only ever added within it (a reader
//! must ignore keys it does not know); renaming or removing a key, or
//! changing what a value means, raises `schema`. Times are integers in
//! milliseconds: `*_ago_ms` before `time_ms`, `*_in_ms` after it, other
//! `*_ms` are durations. A value that is not known is `null`. 64-bit
//! identifiers (a stream's epoch) are strings of hex digits, as the text
//! shows them: JSON readers such as jq hold numbers as doubles, exact
//! only to 2^53. (Schema 1 wrote epochs as numbers and an unknown
//! position as epoch 0, seq 0.)

use sasyncd_core::config::Protocol;
use sasyncd_core::node::{ErrorCounts, ErrorKind, IkeMode, PeerView};
use sasyncd_core::state::Position;

use super::status::{counters, link_name, Status};

/// The schema version every report carries.
pub const SCHEMA: u64 = 2;

/// Builds one JSON text. Keys and values are written in order; commas are
/// placed by the writer.
#[derive(Debug, Default)]
struct Writer {
    out: String,
    comma: bool,
}

impl Writer {
    fn sep(&mut self) {
        if self.comma {
            self.out.push(',');
        }
    }

    fn open(&mut self, c: char) {
        self.sep();
        self.out.push(c);
        self.comma = false;
    }

    fn close(&mut self, c: char) {
        self.out.push(c);
        self.comma = true;
    }

    fn key(&mut self, k: &str) {
        self.sep();
        self.string(k);
        self.out.push(':');
        self.comma = false;
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\t' => self.out.push_str("\\t"),
                '\r' => self.out.push_str("\\r"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    self.out.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.string(v);
        self.comma = true;
    }

    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    fn num(&mut self, k: &str, v: u64) {
        self.key(k);
        self.out.push_str(&v.to_string());
        self.comma = true;
    }

    fn opt_num(&mut self, k: &str, v: Option<u64>) {
        match v {
            Some(v) => self.num(k, v),
            None => self.null(k),
        }
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
        self.comma = true;
    }

    fn null(&mut self, k: &str) {
        self.key(k);
        self.out.push_str("null");
        self.comma = true;
    }

    fn object(&mut self, k: &str, f: impl FnOnce(&mut Writer)) {
        self.key(k);
        self.open('{');
        f(self);
        self.close('}');
    }

    /// `{"epoch":"hex","seq":N}`, or `null` for no position (none yet).
    fn position(&mut self, k: &str, p: Position) {
        if p == Position::NONE {
            return self.null(k);
        }
        self.object(k, |w| {
            w.str("epoch", &format!("{:x}", p.epoch));
            w.num("seq", p.seq);
        });
    }
}

fn ms(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn ike(m: Option<IkeMode>) -> Option<&'static str> {
    m.map(|m| match m {
        IkeMode::Active => "active",
        IkeMode::Passive => "passive",
    })
}

/// The protocol's name as in sasyncd.conf.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Legacy => "legacy",
        Protocol::V2 => "v2",
    }
}

/// An error cause's JSON name (the `errors` object's key).
pub fn kind_key(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::Auth => "auth",
        ErrorKind::Replay => "replay",
        ErrorKind::WrongKey => "wrong_key",
        ErrorKind::Oversize => "oversize",
        ErrorKind::Malformed => "malformed",
        ErrorKind::Protocol => "protocol",
        ErrorKind::Kernel => "kernel",
        ErrorKind::Io => "io",
    }
}

/// Every cause with its count, in a fixed order.
pub fn by_cause(e: &ErrorCounts) -> [(ErrorKind, u32); 8] {
    [
        ErrorKind::Auth,
        ErrorKind::Replay,
        ErrorKind::WrongKey,
        ErrorKind::Oversize,
        ErrorKind::Malformed,
        ErrorKind::Protocol,
        ErrorKind::Kernel,
        ErrorKind::Io,
    ]
    .map(|k| (k, e.get(k)))
}

fn head(w: &mut Writer, s: &Status, report: &str) {
    w.open('{');
    w.num("schema", SCHEMA);
    w.str("report", report);
    w.num("time_ms", s.wall_ms);
}

/// `show json`: the node and every peer.
pub fn summary(s: &Status) -> String {
    let mut w = Writer::default();
    head(&mut w, s, "show");
    let n = &s.node;
    w.object("node", |w| {
        w.str("state", n.run_state.name());
        w.num("state_changed_ago_ms", ms(s.ago(n.run_state_since)));
        w.bool("locked", n.locked);
        w.str("protocol", protocol_name(s.protocol));
        w.opt_num("carp_link_state", n.link_state.map(u64::from));
        w.opt_str("carp_link", n.link_state.map(link_name));
        w.bool("demotion_held", n.demote_held);
        w.opt_num(
            "demotion_release_in_ms",
            n.demote_deadline.map(|d| ms(s.until(d))),
        );
        w.opt_str("ike_requested", ike(n.ike_requested));
        w.opt_str("ike_confirmed", ike(n.ike_confirmed));
        match s.pfsync {
            Some(up) => w.bool("pfsync", up),
            None => w.null("pfsync"),
        }
        w.bool("split_brain", n.split_brain);
        w.position("position", n.position);
        match n.following {
            Some((addr, streaming)) => w.object("following", |w| {
                w.str("addr", &addr.to_string());
                w.bool("streaming", streaming);
            }),
            None => w.null("following"),
        }
        w.bool("syncing", n.syncing);
        w.bool("repairing", n.repairing);
        w.opt_str("job", n.job);
        w.num("pfkey_queued", n.pfkey_queued as u64);
        w.num("paused_reads", n.paused_reads as u64);
        w.object("ring", |w| {
            w.num("bytes", n.ring.bytes as u64);
            w.num("capacity", n.ring.capacity as u64);
            w.num("records", n.ring.records as u64);
        });
    });
    w.key("peers");
    w.open('[');
    for p in &s.peers {
        peer_object(&mut w, s, p);
    }
    w.close(']');
    w.close('}');
    w.out
}

/// `show peer ADDR json`.
pub fn peer(s: &Status, p: &PeerView) -> String {
    let mut w = Writer::default();
    head(&mut w, s, "peer");
    w.key("peer");
    peer_object(&mut w, s, p);
    w.close('}');
    w.out
}

/// `show stats json`: every counter, zeros included.
pub fn stats(s: &Status) -> String {
    let mut w = Writer::default();
    head(&mut w, s, "stats");
    w.object("counters", |w| {
        for c in counters(s) {
            w.num(c.name, c.value);
        }
    });
    w.close('}');
    w.out
}

fn peer_object(w: &mut Writer, s: &Status, p: &PeerView) {
    let st = &p.stats;
    let ago = |t: Option<sasyncd_core::time::Instant>| t.map(|t| ms(s.ago(t)));
    w.open('{');
    w.str("addr", &p.addr.to_string());
    w.num("port", u64::from(p.port));
    w.opt_str(
        "protocol",
        super::status::peer_protocol(s.protocol, p).map(protocol_name),
    );
    w.str("session", p.phase.name());
    w.opt_num("session_changed_ago_ms", ago(p.phase_since));
    w.opt_str("state", p.state.map(|r| r.name()));
    w.bool("connected", p.connected);
    w.opt_num("up_ago_ms", ago(st.up_since));
    w.opt_num("down_ago_ms", ago(st.down_since));
    w.opt_num("last_sync_ago_ms", ago(st.last_sync));
    w.num("sessions", u64::from(st.sessions));
    w.num("reconnects", u64::from(st.reconnects));
    w.num("frames_in", st.frames_in);
    w.num("frames_out", st.frames_out);
    w.num("bytes_in", st.bytes_in);
    w.num("bytes_out", st.bytes_out);
    w.object("errors", |w| {
        for (k, n) in by_cause(&st.errors) {
            w.num(kind_key(k), u64::from(n));
        }
    });
    match st.last_error {
        Some(e) => w.object("last_error", |w| {
            w.str("kind", kind_key(e.kind));
            w.str("reason", e.reason);
            w.num("ago_ms", ms(s.ago(e.at)));
        }),
        None => w.null("last_error"),
    }
    w.num("snapshots_sent", u64::from(st.snapshots_sent));
    w.num("snapshots_received", u64::from(st.snapshots_received));
    w.opt_num("last_snapshot_sent_ms", st.last_snapshot_sent.map(ms));
    w.opt_num(
        "last_snapshot_received_ms",
        st.last_snapshot_received.map(ms),
    );
    w.num("repairs_sent", u64::from(st.repairs_sent));
    w.num("repairs_received", u64::from(st.repairs_received));
    w.opt_num("last_repair_sent_ms", st.last_repair_sent.map(ms));
    w.opt_num("last_repair_received_ms", st.last_repair_received.map(ms));
    w.opt_num("sending_snapshot_for_ms", ago(st.sending_snapshot_since));
    w.opt_num(
        "receiving_snapshot_for_ms",
        ago(st.receiving_snapshot_since),
    );
    w.position("applied", st.applied);
    w.position("acked_to", st.acked_to);
    w.position("acked_by", st.acked_by);
    w.num("lag", st.lag);
    w.close('}');
}

#[cfg(test)]
mod tests {
    use super::super::status::tests::sample;
    use super::*;
    use serde_json::Value;

    fn parse(s: &str) -> Value {
        assert!(!s.contains('\n'), "one line");
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    /// An epoch above 2^53 survives a JSON reader that holds numbers as
    /// doubles: it is a string, the hex the text shows.
    #[test]
    fn epochs_are_hex_strings() {
        let mut w = Writer::default();
        w.open('{');
        let p = Position {
            epoch: 0x173e_2b4c_1f2b_9625,
            seq: 3,
        };
        w.position("position", p);
        w.close('}');
        let v = parse(&w.out);
        assert_eq!(v["position"]["epoch"], "173e2b4c1f2b9625");
        assert_eq!(v["position"]["seq"], 3);
    }

    #[test]
    fn summary_parses_and_says_what_the_node_knows() {
        let s = sample();
        let v = parse(&summary(&s));
        assert_eq!(v["schema"], 2);
        assert_eq!(v["report"], "show");
        assert_eq!(v["time_ms"], 1_700_000_000_000u64);
        let n = &v["node"];
        assert_eq!(n["state"], "SLAVE");
        assert_eq!(n["state_changed_ago_ms"], 99_000);
        assert_eq!(n["carp_link_state"], 2);
        assert_eq!(n["carp_link"], "backup");
        assert_eq!(n["demotion_held"], true);
        assert_eq!(n["demotion_release_in_ms"], 30_000);
        assert_eq!(n["ike_requested"], "passive");
        assert_eq!(n["pfsync"], Value::Null);
        assert_eq!(n["protocol"], "v2");
        assert_eq!(n["position"]["seq"], 42);
        assert_eq!(n["following"]["addr"], "192.0.2.1");
        assert_eq!(n["following"]["streaming"], true);
        assert_eq!(n["job"], Value::Null);
        assert_eq!(n["ring"]["capacity"], 131_072);
        let peers = v["peers"].as_array().unwrap();
        assert_eq!(peers.len(), 2);
        let m = &peers[0];
        assert_eq!(m["addr"], "192.0.2.1");
        assert_eq!(m["session"], "up");
        assert_eq!(m["session_changed_ago_ms"], 10_000);
        assert_eq!(m["state"], "MASTER");
        assert_eq!(m["applied"]["epoch"], "7");
        assert_eq!(m["acked_to"]["seq"], 40);
        // Unknown (no position yet): null, as the text says "none".
        assert_eq!(m["acked_by"], Value::Null);
        assert_eq!(m["last_snapshot_received_ms"], 24);
        assert_eq!(m["repairs_received"], 3);
        assert_eq!(m["last_repair_received_ms"], 7);
        assert!(m["last_repair_sent_ms"].is_null());
        assert_eq!(m["last_sync_ago_ms"], 1_000);
        assert_eq!(m["errors"]["io"], 1);
        assert_eq!(m["last_error"], Value::Null);
        let o = &peers[1];
        assert_eq!(o["addr"], "2001:db8::3");
        assert_eq!(o["state"], Value::Null);
        assert_eq!(o["session"], "down");
        assert_eq!(o["last_error"]["kind"], "auth");
        assert_eq!(o["last_error"]["reason"], "bad MAC");
        assert_eq!(o["last_error"]["ago_ms"], 40_000);
    }

    #[test]
    fn peer_and_stats_parse() {
        let s = sample();
        let v = parse(&peer(&s, &s.peers[1]));
        assert_eq!(v["report"], "peer");
        assert_eq!(v["peer"]["port"], 7500);
        assert_eq!(v["peer"]["errors"]["auth"], 1);
        let v = parse(&stats(&s));
        assert_eq!(v["report"], "stats");
        let c = v["counters"].as_object().unwrap();
        assert_eq!(c.len(), counters(&s).len(), "zeros included");
        assert_eq!(c["applied"], 42);
        assert_eq!(c["forwarded"], 0);
    }

    /// Every key the reports write is documented in sasyncctl(8).
    #[test]
    fn every_key_is_in_the_manual() {
        fn keys(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        out.push(k.clone());
                        keys(x, out);
                    }
                }
                Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
                _ => {}
            }
        }
        let s = sample();
        let mut all = Vec::new();
        for text in [summary(&s), peer(&s, &s.peers[1]), stats(&s)] {
            keys(&parse(&text), &mut all);
        }
        all.sort();
        all.dedup();
        assert!(all.len() > 100, "{}", all.len());
        let page = concat!(env!("CARGO_MANIFEST_DIR"), "/../man/sasyncctl.8");
        let page = std::fs::read_to_string(page).unwrap();
        let missing: Vec<&String> = all
            .iter()
            .filter(|k| {
                !page.lines().filter_map(|l| l.strip_prefix('.')).any(|l| {
                    l.split_whitespace()
                        .collect::<Vec<_>>()
                        .windows(2)
                        .any(|w| w[0] == "Li" && w[1].trim_end_matches(',') == k.as_str())
                })
            })
            .collect();
        assert!(missing.is_empty(), "not in sasyncctl.8: {missing:?}");
    }

    #[test]
    fn strings_are_escaped() {
        let mut w = Writer::default();
        w.open('{');
        w.str("k", "a\"b\\c\nd\u{1}e\u{e9}");
        w.close('}');
        assert_eq!(w.out, "{\"k\":\"a\\\"b\\\\c\\nd\\u0001e\u{e9}\"}");
        let v: Value = serde_json::from_str(&w.out).unwrap();
        assert_eq!(v["k"], "a\"b\\c\nd\u{1}e\u{e9}");
    }
}
