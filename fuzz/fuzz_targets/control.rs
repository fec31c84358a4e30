//! The control socket's codec (`sasyncd::control::proto`): request lines
//! and replies. What is accepted re-encodes to something that decodes to
//! the same value, limits hold, and a reply decodes the same whether its
//! bytes come at once or in chunks.
//!
//! Input: one byte that seeds the chunking, then the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sasyncd::control::proto::{
    decode_reply, encode_error, encode_ok, request_line, Reply, ReplyError, ReplyReader, Request,
    RequestError, MAX_LINE, MAX_REPLY, MAX_REQUEST,
};

#[path = "common.rs"]
mod common;
use common::Chunker;

/// A request line: parses or is refused; what parses has a canonical
/// spelling that parses to the same request and fits the limit.
fn request(data: &[u8]) {
    match request_line(data) {
        Ok(Some(line)) => {
            assert!(line.len() < MAX_REQUEST && !line.contains(&b'\n'));
            assert!(data.starts_with(line));
        }
        Ok(None) => assert!(data.len() < MAX_REQUEST && !data.contains(&b'\n')),
        Err(e) => assert_eq!(e, RequestError::TooLong),
    }
    if let Ok(r) = Request::parse(data) {
        let again = r.encode();
        assert!(again.len() <= MAX_REQUEST && again.ends_with('\n'));
        let line = request_line(again.as_bytes()).unwrap().unwrap();
        assert_eq!(Request::parse(line), Ok(r));
        // The error text of anything refused is one printable line.
    } else if let Err(e) = Request::parse(data) {
        let t = e.to_string();
        assert!(t.chars().all(|c| !c.is_control()), "{t:?}");
    }
}

/// A reply: decodes the same at once and in chunks; what decodes
/// re-encodes to bytes that decode to the same reply.
fn reply(seed: u8, data: &[u8]) {
    let whole = decode_reply(data);
    let mut r = ReplyReader::new();
    let mut chunks = Chunker::new(seed);
    let mut rest = data;
    let mut failed = None;
    while !rest.is_empty() {
        let n = chunks.next_len().min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        if let Err(e) = r.push(piece) {
            // Sticky.
            assert_eq!(r.push(b"ok\n.\n"), Err(e));
            failed = Some(e);
            break;
        }
    }
    let chunked = match failed {
        Some(e) => Err(e),
        None => r.finish(),
    };
    assert_eq!(whole, chunked);
    match whole {
        Ok(Reply::Ok(lines)) => {
            let body = lines.join("\n");
            match encode_ok(&body) {
                Ok(bytes) => {
                    assert!(bytes.len() <= MAX_REPLY);
                    let again = decode_reply(&bytes).expect("our own reply decodes");
                    // The encoder takes text whose final LF is optional.
                    assert_eq!(again, Reply::Ok(lines_of(&body)));
                }
                // What the reader took may hold control characters the
                // encoder refuses.
                Err(e) => assert_eq!(e, ReplyError::ControlCharacter),
            }
        }
        Ok(Reply::Error(reason)) => {
            let bytes = encode_error(&reason);
            let again = decode_reply(&bytes).expect("our own error decodes");
            if !reason.chars().any(char::is_control) {
                assert_eq!(again, Reply::Error(reason));
            }
        }
        Err(_) => {}
    }
}

/// The lines an encoded `text` decodes to.
fn lines_of(text: &str) -> Vec<String> {
    let t = text.strip_suffix('\n').unwrap_or(text);
    if t.is_empty() {
        vec![]
    } else {
        t.split('\n').map(String::from).collect()
    }
}

/// Any text as a body: refused for a control character or a limit, or
/// round-trips line by line.
fn body(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match encode_ok(text) {
        Ok(bytes) => {
            let Ok(Reply::Ok(lines)) = decode_reply(&bytes) else {
                panic!("our own reply does not decode");
            };
            assert_eq!(lines, lines_of(text));
        }
        Err(ReplyError::ControlCharacter) => {
            assert!(text.chars().any(|c| c.is_control() && c != '\t' && c != '\n'));
        }
        Err(e) => assert!(
            matches!(e, ReplyError::LineTooLong | ReplyError::TooLong) && text.len() >= MAX_LINE / 2,
            "{e:?}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    request(data);
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    reply(seed, rest);
    body(rest);
});
