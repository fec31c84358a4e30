//! The `json` reports: one line of JSON each, in a stable schema for
//! scripts and monitoring (documented for users in sasyncctl(8), section
//! JSON OUTPUT; a test checks that every key written here is listed
//! there). The schema is written down as the types below and serialised
//! by serde_json: members appear in field order, `None` is `null`.
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

use serde::ser::{Serialize, Serializer};
use serde::Serialize as Derive;

use sasyncd_core::config::Protocol;
use sasyncd_core::node::{ErrorCounts, ErrorKind, IkeMode, PeerView};
use sasyncd_core::state::Position;
use sasyncd_core::time::Instant;

use super::status::{counters, link_name, peer_protocol, Status};

/// The schema version every report carries.
pub const SCHEMA: u64 = 2;

/// `show json`.
#[derive(Derive)]
struct SummaryReport<'a> {
    schema: u64,
    report: &'static str,
    time_ms: u64,
    node: NodeJson<'a>,
    peers: Vec<PeerJson<'a>>,
}

/// `show peer ADDR json`.
#[derive(Derive)]
struct PeerReport<'a> {
    schema: u64,
    report: &'static str,
    time_ms: u64,
    peer: PeerJson<'a>,
}

/// `show stats json`.
#[derive(Derive)]
struct StatsReport<'a> {
    schema: u64,
    report: &'static str,
    time_ms: u64,
    counters: Counters<'a>,
}

#[derive(Derive)]
struct NodeJson<'a> {
    state: &'a str,
    state_changed_ago_ms: u64,
    locked: bool,
    protocol: &'static str,
    carp_link_state: Option<u8>,
    carp_link: Option<&'static str>,
    demotion_held: bool,
    demotion_release_in_ms: Option<u64>,
    ike_requested: Option<&'static str>,
    ike_confirmed: Option<&'static str>,
    pfsync: Option<bool>,
    split_brain: bool,
    position: Option<PositionJson>,
    following: Option<Following>,
    syncing: bool,
    repairing: bool,
    job: Option<&'a str>,
    pfkey_queued: usize,
    paused_reads: usize,
    ring: Ring,
}

/// The master a slave follows.
#[derive(Derive)]
struct Following {
    addr: String,
    streaming: bool,
}

#[derive(Derive)]
struct Ring {
    bytes: usize,
    capacity: usize,
    records: usize,
}

/// A stream position; `None` (no position yet) is `null`.
#[derive(Derive)]
struct PositionJson {
    /// Hex, as the text shows it (exact in every JSON reader).
    epoch: String,
    seq: u64,
}

#[derive(Derive)]
struct PeerJson<'a> {
    addr: String,
    port: u16,
    protocol: Option<&'static str>,
    session: &'a str,
    session_changed_ago_ms: Option<u64>,
    state: Option<&'a str>,
    connected: bool,
    up_ago_ms: Option<u64>,
    down_ago_ms: Option<u64>,
    last_sync_ago_ms: Option<u64>,
    sessions: u32,
    reconnects: u32,
    frames_in: u64,
    frames_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    errors: Errors,
    last_error: Option<LastErrorJson<'a>>,
    snapshots_sent: u32,
    snapshots_received: u32,
    last_snapshot_sent_ms: Option<u64>,
    last_snapshot_received_ms: Option<u64>,
    repairs_sent: u32,
    repairs_received: u32,
    last_repair_sent_ms: Option<u64>,
    last_repair_received_ms: Option<u64>,
    sending_snapshot_for_ms: Option<u64>,
    receiving_snapshot_for_ms: Option<u64>,
    applied: Option<PositionJson>,
    acked_to: Option<PositionJson>,
    acked_by: Option<PositionJson>,
    lag: u64,
}

#[derive(Derive)]
struct LastErrorJson<'a> {
    kind: &'static str,
    reason: &'a str,
    ago_ms: u64,
}

/// Every error cause with its count, as an object in a fixed order.
struct Errors([(ErrorKind, u32); 8]);

impl Serialize for Errors {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|&(k, n)| (kind_key(k), n)))
    }
}

/// Every counter, zeros included, as an object in `show stats` order.
struct Counters<'a>(&'a Status);

impl Serialize for Counters<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(counters(self.0).into_iter().map(|c| (c.name, c.value)))
    }
}

/// One line of JSON. The reports hold only strings, numbers, booleans
/// and maps with string keys, which serde_json always serialises.
fn line<T: Serialize>(report: &T) -> String {
    serde_json::to_string(report).expect("a report of plain values serialises")
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

fn position(p: Position) -> Option<PositionJson> {
    (p != Position::NONE).then(|| PositionJson {
        epoch: format!("{:x}", p.epoch),
        seq: p.seq,
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

/// `show json`: the node and every peer.
pub fn summary(s: &Status) -> String {
    let n = &s.node;
    line(&SummaryReport {
        schema: SCHEMA,
        report: "show",
        time_ms: s.wall_ms,
        node: NodeJson {
            state: n.run_state.name(),
            state_changed_ago_ms: ms(s.ago(n.run_state_since)),
            locked: n.locked,
            protocol: protocol_name(s.protocol),
            carp_link_state: n.link_state,
            carp_link: n.link_state.map(link_name),
            demotion_held: n.demote_held,
            demotion_release_in_ms: n.demote_deadline.map(|d| ms(s.until(d))),
            ike_requested: ike(n.ike_requested),
            ike_confirmed: ike(n.ike_confirmed),
            pfsync: s.pfsync,
            split_brain: n.split_brain,
            position: position(n.position),
            following: n.following.map(|(addr, streaming)| Following {
                addr: addr.to_string(),
                streaming,
            }),
            syncing: n.syncing,
            repairing: n.repairing,
            job: n.job,
            pfkey_queued: n.pfkey_queued,
            paused_reads: n.paused_reads,
            ring: Ring {
                bytes: n.ring.bytes,
                capacity: n.ring.capacity,
                records: n.ring.records,
            },
        },
        peers: s.peers.iter().map(|p| peer_json(s, p)).collect(),
    })
}

/// `show peer ADDR json`.
pub fn peer(s: &Status, p: &PeerView) -> String {
    line(&PeerReport {
        schema: SCHEMA,
        report: "peer",
        time_ms: s.wall_ms,
        peer: peer_json(s, p),
    })
}

/// `show stats json`: every counter, zeros included.
pub fn stats(s: &Status) -> String {
    line(&StatsReport {
        schema: SCHEMA,
        report: "stats",
        time_ms: s.wall_ms,
        counters: Counters(s),
    })
}

fn peer_json<'a>(s: &Status, p: &'a PeerView) -> PeerJson<'a> {
    let st = &p.stats;
    let ago = |t: Option<Instant>| t.map(|t| ms(s.ago(t)));
    PeerJson {
        addr: p.addr.to_string(),
        port: p.port,
        protocol: peer_protocol(s.protocol, p).map(protocol_name),
        session: p.phase.name(),
        session_changed_ago_ms: ago(p.phase_since),
        state: p.state.map(|r| r.name()),
        connected: p.connected,
        up_ago_ms: ago(st.up_since),
        down_ago_ms: ago(st.down_since),
        last_sync_ago_ms: ago(st.last_sync),
        sessions: st.sessions,
        reconnects: st.reconnects,
        frames_in: st.frames_in,
        frames_out: st.frames_out,
        bytes_in: st.bytes_in,
        bytes_out: st.bytes_out,
        errors: Errors(by_cause(&st.errors)),
        last_error: st.last_error.map(|e| LastErrorJson {
            kind: kind_key(e.kind),
            reason: e.reason,
            ago_ms: ms(s.ago(e.at)),
        }),
        snapshots_sent: st.snapshots_sent,
        snapshots_received: st.snapshots_received,
        last_snapshot_sent_ms: st.last_snapshot_sent.map(ms),
        last_snapshot_received_ms: st.last_snapshot_received.map(ms),
        repairs_sent: st.repairs_sent,
        repairs_received: st.repairs_received,
        last_repair_sent_ms: st.last_repair_sent.map(ms),
        last_repair_received_ms: st.last_repair_received.map(ms),
        sending_snapshot_for_ms: ago(st.sending_snapshot_since),
        receiving_snapshot_for_ms: ago(st.receiving_snapshot_since),
        applied: position(st.applied),
        acked_to: position(st.acked_to),
        acked_by: position(st.acked_by),
        lag: st.lag,
    }
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
        let p = Position {
            epoch: 0x173e_2b4c_1f2b_9625,
            seq: 3,
        };
        let v = parse(&line(&position(p)));
        assert_eq!(v["epoch"], "173e2b4c1f2b9625");
        assert_eq!(v["seq"], 3);
        assert_eq!(line(&position(Position::NONE)), "null");
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
        let text = line(&LastErrorJson {
            kind: "io",
            reason: "a\"b\\c\nd\u{1}e\u{e9}",
            ago_ms: 0,
        });
        assert_eq!(
            text,
            "{\"kind\":\"io\",\"reason\":\"a\\\"b\\\\c\\nd\\u0001e\u{e9}\",\"ago_ms\":0}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["reason"], "a\"b\\c\nd\u{1}e\u{e9}");
    }

    /// The reports are byte for byte what schema 2 has always been (these
    /// lines were written by the hand-made writer serde_json replaced):
    /// member order, number and `null` spelling, no whitespace.
    #[test]
    fn byte_compatible_with_schema_2() {
        let s = sample();
        assert_eq!(summary(&s), GOLDEN_SHOW);
        assert_eq!(peer(&s, &s.peers[1]), GOLDEN_PEER);
        assert_eq!(stats(&s), GOLDEN_STATS);
    }

    /// What a reader parses is what was written: every report parsed and
    /// written again (serde_json's `Value` keeps member order, with the
    /// `preserve_order` feature off it sorts, so compare as values) gives
    /// the same document, and the numbers survive as integers.
    #[test]
    fn reports_round_trip_through_a_parser() {
        let s = sample();
        for text in [
            summary(&s),
            peer(&s, &s.peers[0]),
            peer(&s, &s.peers[1]),
            stats(&s),
        ] {
            let v = parse(&text);
            let again: Value = parse(&serde_json::to_string(&v).unwrap());
            assert_eq!(v, again);
            assert!(v["schema"].is_u64() && v["time_ms"].is_u64());
            // Every member the text holds is in the parsed value.
            let members = text.matches("\":").count();
            fn count(v: &Value) -> usize {
                match v {
                    Value::Object(m) => m.len() + m.values().map(count).sum::<usize>(),
                    Value::Array(a) => a.iter().map(count).sum(),
                    _ => 0,
                }
            }
            assert_eq!(count(&v), members, "{text}");
        }
    }

    const GOLDEN_SHOW: &str = r#"{"schema":2,"report":"show","time_ms":1700000000000,"node":{"state":"SLAVE","state_changed_ago_ms":99000,"locked":false,"protocol":"v2","carp_link_state":2,"carp_link":"backup","demotion_held":true,"demotion_release_in_ms":30000,"ike_requested":"passive","ike_confirmed":"passive","pfsync":null,"split_brain":false,"position":{"epoch":"7","seq":42},"following":{"addr":"192.0.2.1","streaming":true},"syncing":false,"repairing":false,"job":null,"pfkey_queued":0,"paused_reads":0,"ring":{"bytes":0,"capacity":131072,"records":0}},"peers":[{"addr":"192.0.2.1","port":500,"protocol":"v2","session":"up","session_changed_ago_ms":10000,"state":"MASTER","connected":true,"up_ago_ms":10000,"down_ago_ms":null,"last_sync_ago_ms":1000,"sessions":2,"reconnects":1,"frames_in":44,"frames_out":40,"bytes_in":8812,"bytes_out":3200,"errors":{"auth":0,"replay":0,"wrong_key":0,"oversize":0,"malformed":0,"protocol":0,"kernel":0,"io":1},"last_error":null,"snapshots_sent":0,"snapshots_received":1,"last_snapshot_sent_ms":null,"last_snapshot_received_ms":24,"repairs_sent":0,"repairs_received":3,"last_repair_sent_ms":null,"last_repair_received_ms":7,"sending_snapshot_for_ms":null,"receiving_snapshot_for_ms":null,"applied":{"epoch":"7","seq":42},"acked_to":{"epoch":"7","seq":40},"acked_by":null,"lag":0},{"addr":"2001:db8::3","port":7500,"protocol":null,"session":"down","session_changed_ago_ms":50000,"state":null,"connected":false,"up_ago_ms":null,"down_ago_ms":50000,"last_sync_ago_ms":null,"sessions":0,"reconnects":0,"frames_in":0,"frames_out":0,"bytes_in":0,"bytes_out":0,"errors":{"auth":1,"replay":0,"wrong_key":0,"oversize":0,"malformed":0,"protocol":0,"kernel":0,"io":0},"last_error":{"kind":"auth","reason":"bad MAC","ago_ms":40000},"snapshots_sent":0,"snapshots_received":0,"last_snapshot_sent_ms":null,"last_snapshot_received_ms":null,"repairs_sent":0,"repairs_received":0,"last_repair_sent_ms":null,"last_repair_received_ms":null,"sending_snapshot_for_ms":null,"receiving_snapshot_for_ms":null,"applied":null,"acked_to":null,"acked_by":null,"lag":0}]}"#;
    const GOLDEN_PEER: &str = r#"{"schema":2,"report":"peer","time_ms":1700000000000,"peer":{"addr":"2001:db8::3","port":7500,"protocol":null,"session":"down","session_changed_ago_ms":50000,"state":null,"connected":false,"up_ago_ms":null,"down_ago_ms":50000,"last_sync_ago_ms":null,"sessions":0,"reconnects":0,"frames_in":0,"frames_out":0,"bytes_in":0,"bytes_out":0,"errors":{"auth":1,"replay":0,"wrong_key":0,"oversize":0,"malformed":0,"protocol":0,"kernel":0,"io":0},"last_error":{"kind":"auth","reason":"bad MAC","ago_ms":40000},"snapshots_sent":0,"snapshots_received":0,"last_snapshot_sent_ms":null,"last_snapshot_received_ms":null,"repairs_sent":0,"repairs_received":0,"last_repair_sent_ms":null,"last_repair_received_ms":null,"sending_snapshot_for_ms":null,"receiving_snapshot_for_ms":null,"applied":null,"acked_to":null,"acked_by":null,"lag":0}}"#;
    const GOLDEN_STATS: &str = r#"{"schema":2,"report":"stats","time_ms":1700000000000,"counters":{"forwarded":0,"applied":42,"pfkey_written":42,"kernel_errors":0,"kernel_exists":0,"refused_data":0,"rejected_unknown":0,"rejected_frames":0,"snapshots_started":0,"snapshots_done":0,"ring_resumes":0,"resyncs":0,"sweeps":1,"swept":0,"digests_sent":0,"digests_matched":0,"digest_mismatches":0,"split_brain_episodes":0,"events_overflow":0,"peer_frames_in":44,"peer_frames_out":40,"peer_bytes_in":8812,"peer_bytes_out":3200,"peer_sessions":2,"peer_reconnects":1,"peer_snapshots_sent":0,"peer_snapshots_received":1,"peer_repairs_sent":0,"peer_repairs_received":3,"peer_errors_auth":1,"peer_errors_replay":0,"peer_errors_wrong_key":0,"peer_errors_oversize":0,"peer_errors_malformed":0,"peer_errors_protocol":0,"peer_errors_kernel":0,"peer_errors_io":1}}"#;
}
