//! The control protocol's codec: requests (one line) and replies (a status
//! line, body lines, an end line), as specified in the
//! [module documentation](super). Plain functions over bytes, so the
//! daemon, `sasyncctl`, the tests and the fuzz target share one
//! implementation. Nothing here panics on any input.

use std::fmt;
use std::net::IpAddr;

/// Longest request line, its LF included.
pub const MAX_REQUEST: usize = 256;

/// Longest reply line, its LF (and a stuffed dot) included. A JSON report
/// is one line; a full node's is a few tens of KiB.
pub const MAX_LINE: usize = 256 * 1024;

/// Longest reply, every line included.
pub const MAX_REPLY: usize = 1024 * 1024;

/// Most characters of a client's text an error reply quotes.
const EXCERPT: usize = 40;

/// What a `show` request reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Report {
    /// `show`: the node and one row per peer.
    Summary,
    /// `show peer ADDR`: one peer in detail.
    Peer(IpAddr),
    /// `show stats`: counters one per line.
    Stats,
}

/// How a `show` report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// For people (the default).
    #[default]
    Text,
    /// One line of JSON in the documented schema (option `json`).
    Json,
}

/// What a client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request {
    /// A report.
    Show {
        /// Which.
        report: Report,
        /// In which format.
        format: Format,
        /// `show stats all`: zero counters too (text; JSON always has all).
        all: bool,
    },
    /// `resync [ADDR]`: ask a master (that one, or ours) for a full
    /// snapshot.
    Resync(Option<IpAddr>),
    /// `reload`: re-read the configuration file, as on SIGHUP, and say
    /// how it went.
    Reload,
    /// `log verbose|brief`: the log verbosity (`true`: verbose).
    Log(bool),
}

impl Request {
    /// The command word of a request that changes something (only root
    /// may ask for it); `None` for a report.
    pub fn mutates(&self) -> Option<&'static str> {
        match self {
            Request::Show { .. } => None,
            Request::Resync(_) => Some("resync"),
            Request::Reload => Some("reload"),
            Request::Log(_) => Some("log"),
        }
    }
}

/// Why a request line was refused. The reply is `error: ` and this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Nothing but white space.
    Empty,
    /// No LF within [`MAX_REQUEST`] bytes.
    TooLong,
    /// The client closed its side before the LF.
    Incomplete,
    /// Bytes other than printable ASCII, space and tab (a CR before the
    /// LF is allowed).
    NotText,
    /// A first word that is no command.
    UnknownCommand(String),
    /// A word the command does not take there.
    Unexpected(String),
    /// The command needs another word.
    Missing(&'static str),
    /// Not an IPv4 or IPv6 address.
    BadAddress(String),
    /// An option given twice.
    Repeated(&'static str),
    /// A request that changes something, from a client that is not root
    /// (members of the control group may only look).
    RootOnly(&'static str),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Empty => f.write_str("empty request"),
            RequestError::TooLong => {
                write!(f, "request longer than {} bytes", MAX_REQUEST - 1)
            }
            RequestError::Incomplete => f.write_str("incomplete request (no end of line)"),
            RequestError::NotText => f.write_str("request is not printable text"),
            RequestError::UnknownCommand(w) => write!(f, "unknown command: {w}"),
            RequestError::Unexpected(w) => write!(f, "unexpected word: {w}"),
            RequestError::Missing(what) => write!(f, "missing {what}"),
            RequestError::BadAddress(w) => write!(f, "not an IP address: {w}"),
            RequestError::Repeated(o) => write!(f, "option {o} given twice"),
            RequestError::RootOnly(c) => write!(f, "{c}: only root may do this"),
        }
    }
}

impl std::error::Error for RequestError {}

/// A client's word, cut short for an error reply (the line is printable
/// ASCII by then, so the excerpt is too).
fn excerpt(word: &str) -> String {
    let mut e: String = word.chars().take(EXCERPT).collect();
    if word.len() > e.len() {
        e.push_str("...");
    }
    e
}

fn address(word: &str) -> Result<IpAddr, RequestError> {
    word.parse()
        .map_err(|_| RequestError::BadAddress(excerpt(word)))
}

impl Request {
    /// Parses one request line (without its LF; a trailing CR is ignored).
    /// Words are separated by runs of spaces or tabs.
    pub fn parse(line: &[u8]) -> Result<Request, RequestError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() >= MAX_REQUEST {
            return Err(RequestError::TooLong);
        }
        if !line
            .iter()
            .all(|&b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b))
        {
            return Err(RequestError::NotText);
        }
        // Printable ASCII: always UTF-8.
        let text = std::str::from_utf8(line).map_err(|_| RequestError::NotText)?;
        let mut words = text.split([' ', '\t']).filter(|w| !w.is_empty());
        let Some(cmd) = words.next() else {
            return Err(RequestError::Empty);
        };
        let req = match cmd {
            "show" => {
                let mut report = Report::Summary;
                let mut format = None;
                let mut all = None;
                let mut first = true;
                while let Some(w) = words.next() {
                    match w {
                        "peer" if first => {
                            let a = words.next().ok_or(RequestError::Missing("peer address"))?;
                            report = Report::Peer(address(a)?);
                        }
                        "stats" if first => report = Report::Stats,
                        "json" => {
                            if format.replace(Format::Json).is_some() {
                                return Err(RequestError::Repeated("json"));
                            }
                        }
                        "all" if report == Report::Stats => {
                            if all.replace(true).is_some() {
                                return Err(RequestError::Repeated("all"));
                            }
                        }
                        _ => return Err(RequestError::Unexpected(excerpt(w))),
                    }
                    first = false;
                }
                return Ok(Request::Show {
                    report,
                    format: format.unwrap_or_default(),
                    all: all.unwrap_or(false),
                });
            }
            "resync" => Request::Resync(words.next().map(address).transpose()?),
            "reload" => Request::Reload,
            "log" => match words.next() {
                Some("verbose") => Request::Log(true),
                Some("brief") => Request::Log(false),
                Some(w) => return Err(RequestError::Unexpected(excerpt(w))),
                None => return Err(RequestError::Missing("verbose or brief")),
            },
            _ => return Err(RequestError::UnknownCommand(excerpt(cmd))),
        };
        match words.next() {
            Some(w) => Err(RequestError::Unexpected(excerpt(w))),
            None => Ok(req),
        }
    }

    /// The request line, LF included, in its canonical spelling (single
    /// spaces, options in the order `all json`).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        match self {
            Request::Show {
                report,
                format,
                all,
            } => {
                s.push_str("show");
                match report {
                    Report::Summary => {}
                    Report::Peer(a) => s.push_str(&format!(" peer {a}")),
                    Report::Stats => s.push_str(" stats"),
                }
                if *all && *report == Report::Stats {
                    s.push_str(" all");
                }
                if *format == Format::Json {
                    s.push_str(" json");
                }
            }
            Request::Resync(None) => s.push_str("resync"),
            Request::Resync(Some(a)) => s.push_str(&format!("resync {a}")),
            Request::Reload => s.push_str("reload"),
            Request::Log(true) => s.push_str("log verbose"),
            Request::Log(false) => s.push_str("log brief"),
        }
        s.push('\n');
        s
    }
}

/// Where a request is in `buf` (the bytes a client sent so far): the line
/// before the first LF, `Ok(None)` while there is none yet, or
/// [`RequestError::TooLong`] once [`MAX_REQUEST`] bytes came without one.
pub fn request_line(buf: &[u8]) -> Result<Option<&[u8]>, RequestError> {
    let window = buf.get(..MAX_REQUEST).unwrap_or(buf);
    match window.iter().position(|&b| b == b'\n') {
        Some(end) => Ok(window.get(..end)),
        None if buf.len() >= MAX_REQUEST => Err(RequestError::TooLong),
        None => Ok(None),
    }
}

/// A decoded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success, with the body's lines (each without its LF).
    Ok(Vec<String>),
    /// `error: ...`: the request failed, and why.
    Error(String),
}

/// Why reply bytes could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// A line longer than [`MAX_LINE`].
    LineTooLong,
    /// More than [`MAX_REPLY`] bytes.
    TooLong,
    /// A line that is not UTF-8.
    NotUtf8,
    /// The first line is neither `ok` nor `error: ...`.
    BadStatus,
    /// An error reply with more than its one line.
    ErrorBody,
    /// Text to encode holds a CR or another control character (a tab is
    /// fine).
    ControlCharacter,
    /// Bytes after the end line.
    Trailing,
    /// The stream ended before the end line.
    Truncated,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplyError::LineTooLong => "reply line too long",
            ReplyError::TooLong => "reply too long",
            ReplyError::NotUtf8 => "reply is not UTF-8",
            ReplyError::BadStatus => "reply does not start with ok or error",
            ReplyError::ErrorBody => "error reply with a body",
            ReplyError::ControlCharacter => "control character in reply text",
            ReplyError::Trailing => "bytes after the end of the reply",
            ReplyError::Truncated => "reply cut short (the daemon closed the connection)",
        })
    }
}

impl std::error::Error for ReplyError {}

/// The end line.
const END: &[u8] = b".\n";
/// The status line of a success.
const OK: &str = "ok";
/// What starts an error's status line.
const ERROR: &str = "error: ";

fn check_text(s: &str) -> Result<(), ReplyError> {
    if s.chars().any(|c| c.is_control() && c != '\t') {
        Err(ReplyError::ControlCharacter)
    } else {
        Ok(())
    }
}

/// Encodes a success whose body is `body` (lines separated by LF; a final
/// LF is optional). Refuses a body that breaks the limits or holds control
/// characters.
pub fn encode_ok(body: &str) -> Result<Vec<u8>, ReplyError> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(OK.as_bytes());
    out.push(b'\n');
    let body = body.strip_suffix('\n').unwrap_or(body);
    if !body.is_empty() {
        for line in body.split('\n') {
            check_text(line)?;
            let stuffed = line.starts_with('.');
            if line.len() + usize::from(stuffed) + 1 > MAX_LINE {
                return Err(ReplyError::LineTooLong);
            }
            if stuffed {
                out.push(b'.');
            }
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out.extend_from_slice(END);
    if out.len() > MAX_REPLY {
        return Err(ReplyError::TooLong);
    }
    Ok(out)
}

/// Encodes an error reply. The reason is made one line: control
/// characters become spaces, and it is cut to fit a line.
pub fn encode_error(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(reason.len() + 10);
    out.extend_from_slice(ERROR.as_bytes());
    let room = MAX_LINE - ERROR.len() - 1;
    let mut used = 0;
    for c in reason.chars() {
        let c = if c.is_control() { ' ' } else { c };
        used += c.len_utf8();
        if used > room {
            break;
        }
        let mut b = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(END);
    out
}

/// Reads a reply as it arrives: feed bytes with [`push`](Self::push) and
/// call [`finish`](Self::finish) at EOF. Checks every limit as the bytes
/// come, so a hostile or broken peer cannot make it buffer more than
/// [`MAX_LINE`] bytes of a line or [`MAX_REPLY`] in all.
#[derive(Debug, Default)]
pub struct ReplyReader {
    line: Vec<u8>,
    total: usize,
    status: Option<Result<(), String>>,
    body: Vec<String>,
    done: bool,
    error: Option<ReplyError>,
}

impl ReplyReader {
    /// A reader at the start of a reply.
    pub fn new() -> ReplyReader {
        ReplyReader::default()
    }

    /// Takes bytes; `Ok(true)` once the end line arrived. Errors are
    /// sticky.
    pub fn push(&mut self, bytes: &[u8]) -> Result<bool, ReplyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        for &b in bytes {
            if let Err(e) = self.byte(b) {
                self.error = Some(e);
                return Err(e);
            }
        }
        Ok(self.done)
    }

    fn byte(&mut self, b: u8) -> Result<(), ReplyError> {
        if self.done {
            return Err(ReplyError::Trailing);
        }
        self.total += 1;
        if self.total > MAX_REPLY {
            return Err(ReplyError::TooLong);
        }
        if b != b'\n' {
            if self.line.len() + 1 >= MAX_LINE {
                return Err(ReplyError::LineTooLong);
            }
            self.line.push(b);
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        let line = String::from_utf8(line).map_err(|_| ReplyError::NotUtf8)?;
        match &self.status {
            None => {
                self.status = Some(if line == OK {
                    Ok(())
                } else if let Some(r) = line.strip_prefix(ERROR) {
                    Err(r.to_string())
                } else {
                    return Err(ReplyError::BadStatus);
                });
            }
            Some(_) if line == "." => self.done = true,
            Some(Err(_)) => return Err(ReplyError::ErrorBody),
            Some(Ok(())) => {
                let line = match line.strip_prefix('.') {
                    Some(rest) => rest.to_string(),
                    None => line,
                };
                self.body.push(line);
            }
        }
        Ok(())
    }

    /// The reply, once the stream ended: [`ReplyError::Truncated`] if the
    /// end line never came.
    pub fn finish(self) -> Result<Reply, ReplyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match (self.done, self.status) {
            (true, Some(Ok(()))) => Ok(Reply::Ok(self.body)),
            (true, Some(Err(reason))) => Ok(Reply::Error(reason)),
            _ => Err(ReplyError::Truncated),
        }
    }
}

/// Decodes a whole reply.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, ReplyError> {
    let mut r = ReplyReader::new();
    r.push(bytes)?;
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn show(report: Report, format: Format, all: bool) -> Request {
        Request::Show {
            report,
            format,
            all,
        }
    }

    #[test]
    fn requests_parse() {
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        for (line, want) in [
            ("show", show(Report::Summary, Format::Text, false)),
            ("  show\t", show(Report::Summary, Format::Text, false)),
            ("show json", show(Report::Summary, Format::Json, false)),
            (
                "show peer 192.0.2.7",
                show(Report::Peer(a), Format::Text, false),
            ),
            (
                "show peer 2001:db8::1 json",
                show(Report::Peer(b), Format::Json, false),
            ),
            ("show stats", show(Report::Stats, Format::Text, false)),
            (
                "show stats all json",
                show(Report::Stats, Format::Json, true),
            ),
            (
                "show stats json all",
                show(Report::Stats, Format::Json, true),
            ),
            ("resync", Request::Resync(None)),
            ("resync 192.0.2.7", Request::Resync(Some(a))),
            ("reload", Request::Reload),
            ("log verbose", Request::Log(true)),
            ("log brief\r", Request::Log(false)),
        ] {
            assert_eq!(Request::parse(line.as_bytes()), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn bad_requests_say_why() {
        for (line, want) in [
            ("", "empty request"),
            (" \t ", "empty request"),
            ("reboot", "unknown command: reboot"),
            ("SHOW", "unknown command: SHOW"),
            ("show peer", "missing peer address"),
            ("show peer nohost", "not an IP address: nohost"),
            ("show json peer 192.0.2.1", "unexpected word: peer"),
            ("show all", "unexpected word: all"),
            ("show json json", "option json given twice"),
            ("show stats all all", "option all given twice"),
            ("show stats peer", "unexpected word: peer"),
            ("reload now", "unexpected word: now"),
            ("resync 1.2.3.4 5.6.7.8", "unexpected word: 5.6.7.8"),
            ("resync x", "not an IP address: x"),
            ("log", "missing verbose or brief"),
            ("log loud", "unexpected word: loud"),
            ("show\x01", "request is not printable text"),
            ("show \u{e9}", "request is not printable text"),
            ("show\rx", "request is not printable text"),
        ] {
            let e = Request::parse(line.as_bytes()).unwrap_err();
            assert_eq!(e.to_string(), want, "{line:?}");
        }
        let long = format!("reboot{}", "x".repeat(100));
        let e = Request::parse(long.as_bytes()).unwrap_err().to_string();
        assert_eq!(e, format!("unknown command: reboot{}...", "x".repeat(34)));
        let e = Request::parse(&[b'x'; MAX_REQUEST]).unwrap_err();
        assert_eq!(e, RequestError::TooLong);
    }

    #[test]
    fn request_lines_are_found_and_bounded() {
        assert_eq!(request_line(b"sho"), Ok(None));
        assert_eq!(request_line(b"show\nrest"), Ok(Some(&b"show"[..])));
        assert_eq!(request_line(b"\n"), Ok(Some(&b""[..])));
        let mut long = vec![b'a'; MAX_REQUEST - 1];
        assert_eq!(request_line(&long), Ok(None));
        long.push(b'\n');
        assert_eq!(request_line(&long).unwrap().map(<[u8]>::len), Some(255));
        long.insert(0, b'a');
        assert_eq!(request_line(&long), Err(RequestError::TooLong));
    }

    #[test]
    fn replies_round_trip_with_dots_stuffed() {
        let body = "line one\n.hidden\n.\n\n  indented\ttab\n";
        let bytes = encode_ok(body).unwrap();
        assert_eq!(
            bytes,
            b"ok\nline one\n..hidden\n..\n\n  indented\ttab\n.\n".to_vec()
        );
        assert_eq!(
            decode_reply(&bytes),
            Ok(Reply::Ok(vec![
                "line one".into(),
                ".hidden".into(),
                ".".into(),
                "".into(),
                "  indented\ttab".into()
            ]))
        );
        assert_eq!(encode_ok("").unwrap(), b"ok\n.\n");
        assert_eq!(decode_reply(b"ok\n.\n"), Ok(Reply::Ok(vec![])));
        let e = encode_error("no such peer\nsecond line");
        assert_eq!(e, b"error: no such peer second line\n.\n");
        assert_eq!(
            decode_reply(&e),
            Ok(Reply::Error("no such peer second line".into()))
        );
    }

    #[test]
    fn broken_replies_are_refused() {
        for (bytes, want) in [
            (&b"ok\nbody\n"[..], ReplyError::Truncated),
            (b"", ReplyError::Truncated),
            (b"ok", ReplyError::Truncated),
            (b"fine\n.\n", ReplyError::BadStatus),
            (b"error: x\nmore\n.\n", ReplyError::ErrorBody),
            (b"ok\n.\nmore", ReplyError::Trailing),
            (b"ok\n\xff\n.\n", ReplyError::NotUtf8),
        ] {
            assert_eq!(decode_reply(bytes), Err(want), "{bytes:?}");
        }
        let mut long = b"ok\n".to_vec();
        long.resize(MAX_LINE + 10, b'x');
        assert_eq!(decode_reply(&long), Err(ReplyError::LineTooLong));
        let line = format!("{}\n", "y".repeat(1000));
        let huge = format!("ok\n{}", line.repeat(MAX_REPLY / 1000 + 1));
        assert_eq!(decode_reply(huge.as_bytes()), Err(ReplyError::TooLong));
        assert_eq!(encode_ok("a\rb"), Err(ReplyError::ControlCharacter));
        assert_eq!(
            encode_ok(&"z".repeat(MAX_LINE)),
            Err(ReplyError::LineTooLong)
        );
        assert_eq!(encode_ok(&huge), Err(ReplyError::TooLong));
        // Errors are sticky.
        let mut r = ReplyReader::new();
        assert!(r.push(b"nope\n").is_err());
        assert_eq!(r.push(b"ok\n.\n"), Err(ReplyError::BadStatus));
    }

    fn request_strategy() -> impl Strategy<Value = Request> {
        let addr = prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ];
        let report = prop_oneof![
            Just(Report::Summary),
            Just(Report::Stats),
            addr.clone().prop_map(Report::Peer),
        ];
        let format = prop_oneof![Just(Format::Text), Just(Format::Json)];
        prop_oneof![
            (report, format, any::<bool>()).prop_map(|(report, format, all)| Request::Show {
                report,
                format,
                all: all && report == Report::Stats,
            }),
            proptest::option::of(addr).prop_map(Request::Resync),
            Just(Request::Reload),
            any::<bool>().prop_map(Request::Log),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(r in request_strategy()) {
            let line = r.encode();
            prop_assert!(line.len() <= MAX_REQUEST);
            let body = line.strip_suffix('\n').unwrap();
            prop_assert_eq!(request_line(line.as_bytes()), Ok(Some(body.as_bytes())));
            prop_assert_eq!(Request::parse(body.as_bytes()), Ok(r));
        }

        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(r) = Request::parse(&bytes) {
                let again = r.encode();
                prop_assert_eq!(Request::parse(again.trim_end().as_bytes()), Ok(r));
            }
            let _ = decode_reply(&bytes);
        }

        #[test]
        fn bodies_round_trip(lines in proptest::collection::vec("[ -~\t]{0,40}", 0..20)) {
            let body = lines.join("\n");
            let bytes = encode_ok(&body).unwrap();
            let b = body.strip_suffix('\n').unwrap_or(&body);
            let want: Vec<String> = if b.is_empty() {
                vec![]
            } else {
                b.split('\n').map(String::from).collect()
            };
            prop_assert_eq!(decode_reply(&bytes), Ok(Reply::Ok(want)));
        }
    }
}
