//! The control socket: how `sasyncctl` (or a script) asks a running daemon
//! what it is doing and tells it what to do. The network process serves
//! it from its poll loop; the socket is created before privileges are
//! dropped (default `/var/run/sasyncd.sock`, mode 0660, group from
//! `--control-group`), and a daemon refuses to start while another one
//! answers on it.
//!
//! # Protocol
//!
//! One request per connection. The client sends one request line; the
//! daemon answers with one reply and closes the connection.
//!
//! **Request**: printable ASCII words separated by spaces or tabs, ended by
//! LF (a CR before it is ignored), at most [`MAX_REQUEST`] bytes with the
//! LF. Bytes after the LF are ignored.
//!
//! ```text
//! show [json]                      the node and one row per peer
//! show peer ADDR [json]            one peer in detail
//! show stats [all] [json]          counters, one per line (all: zeros too)
//! resync [ADDR]                    ask a master for a full snapshot
//! reload                           re-read the configuration file (SIGHUP)
//! log verbose | log brief          log verbosity
//! ```
//!
//! **Reply**: lines ended by LF, UTF-8, no control characters but tab.
//!
//! ```text
//! reply  = status *body "." LF
//! status = "ok" LF  /  "error: " reason LF       (an error has no body)
//! body   = line LF, with one more "." in front of a line starting with "."
//! ```
//!
//! A line is at most [`MAX_LINE`] bytes and a reply at most [`MAX_REPLY`];
//! a reader stops at the end line (`.`), so a reply cut short by a dying
//! daemon is told from a complete one. `json` reports are one body line
//! in the schema of sasyncctl(8) (see [`json`]).
//!
//! A malformed request (not text, too long, unknown, half a line before
//! the client closed) gets `error: ...`, changes nothing and is logged at
//! debug level only, so a flood of them cannot fill the logs. Clients that
//! stay silent or do not read are dropped after [`CLIENT_TIMEOUT`]; beyond
//! [`MAX_CLIENTS`] at once, a client is told the daemon is busy.
//!
//! `reload` is answered once the privileged process re-read the file and
//! the network process applied it (`ok` and what changed), or refused it
//! (`error:` and why); a reload that produces no answer within
//! [`CLIENT_TIMEOUT`] is reported as such.

pub mod client;
pub mod json;
pub mod proto;
pub mod socket;
pub mod status;
pub mod text;

pub use proto::{
    decode_reply, encode_error, encode_ok, request_line, Format, Reply, ReplyError, ReplyReader,
    Report, Request, RequestError, MAX_LINE, MAX_REPLY, MAX_REQUEST,
};
pub use socket::{BindError, ClientId, Control, CLIENT_TIMEOUT, MAX_CLIENTS};
pub use status::{counters, Counter, Status};

/// The reply to a `show` request, from a status copy.
pub fn show(s: &Status, report: Report, format: Format, all: bool) -> Vec<u8> {
    let body = match (report, format) {
        (Report::Summary, Format::Text) => text::summary(s),
        (Report::Summary, Format::Json) => json::summary(s),
        (Report::Stats, Format::Text) => text::stats(s, all),
        (Report::Stats, Format::Json) => json::stats(s),
        (Report::Peer(a), f) => match s.peer(a) {
            Some(p) if f == Format::Text => text::peer(s, p),
            Some(p) => json::peer(s, p),
            None => return encode_error(&format!("no such peer: {a}")),
        },
    };
    encode_ok(&body).unwrap_or_else(|e| encode_error(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_replies_decode() {
        let s = status::tests::sample();
        for (report, format) in [
            (Report::Summary, Format::Text),
            (Report::Summary, Format::Json),
            (Report::Stats, Format::Text),
            (Report::Stats, Format::Json),
            (Report::Peer(s.peers[0].addr), Format::Text),
            (Report::Peer(s.peers[1].addr), Format::Json),
        ] {
            let r = decode_reply(&show(&s, report, format, false)).unwrap();
            let Reply::Ok(lines) = r else {
                panic!("{report:?} {format:?}: {r:?}")
            };
            assert!(!lines.is_empty());
            if format == Format::Json {
                assert_eq!(lines.len(), 1);
            }
        }
        let r = decode_reply(&show(
            &s,
            Report::Peer("192.0.2.200".parse().unwrap()),
            Format::Text,
            false,
        ));
        assert_eq!(r, Ok(Reply::Error("no such peer: 192.0.2.200".into())));
    }
}
