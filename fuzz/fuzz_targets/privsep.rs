//! The privsep channel's messages, both directions: single-message
//! decoding is canonical, and deframing a stream does not depend on how it
//! is split.
//!
//! Input: one byte that seeds the chunking, then the byte stream.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use sasyncd::privsep::{Deframer, Message, ProtoError, ToNet, ToPriv, HEADER_LEN};

#[path = "common.rs"]
mod common;
use common::Chunker;

/// Decoding `data` as one message: what is accepted re-encodes to exactly
/// `data` and decodes again to the same value.
fn single<M: Message + PartialEq + Debug>(data: &[u8]) {
    match M::decode(data) {
        Ok(m) => {
            let frame = m.to_frame().expect("a decoded message encodes");
            assert_eq!(frame.len(), m.encoded_len());
            assert_eq!(&frame[..], data);
            assert_eq!(M::decode(&frame).as_ref(), Ok(&m));
        }
        Err(e) => {
            if data.len() < HEADER_LEN {
                assert_eq!(e, ProtoError::Truncated);
            }
            assert_ne!(e, ProtoError::QueueFull);
        }
    }
}

/// What a deframer made of a stream.
#[derive(Debug, PartialEq)]
struct Run<M> {
    msgs: Vec<M>,
    error: Option<ProtoError>,
}

/// Feeds `stream` to a deframer in chunks (`None`: at once), taking every
/// message as soon as it is whole, then ends the stream.
fn deframe<M: Message + Debug>(stream: &[u8], mut chunks: Option<Chunker>) -> Run<M> {
    let mut d = Deframer::<M>::new();
    let mut msgs = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = chunks
            .as_mut()
            .map_or(rest.len(), Chunker::next_len)
            .min(rest.len());
        let (mut piece, tail) = rest.split_at(n);
        rest = tail;
        while !piece.is_empty() {
            let took = d.push(piece);
            piece = &piece[took..];
            let before = msgs.len();
            loop {
                match d.next_msg() {
                    Ok(Some(m)) => msgs.push(m),
                    Ok(None) => break,
                    Err(e) => {
                        // Errors are sticky.
                        assert_eq!(d.next_msg().err(), Some(e));
                        return Run {
                            msgs,
                            error: Some(e),
                        };
                    }
                }
            }
            // A full buffer always holds a whole message to take.
            assert!(took > 0 || msgs.len() > before, "deframer stuck");
        }
    }
    d.set_eof();
    let error = match d.next_msg() {
        Ok(Some(m)) => panic!("a message appeared at EOF: {m:?}"),
        Ok(None) => {
            assert_eq!(d.buffered(), 0);
            None
        }
        Err(e) => {
            assert_eq!(e, ProtoError::Truncated);
            Some(e)
        }
    };
    Run { msgs, error }
}

fn stream<M: Message + PartialEq + Debug>(seed: u8, data: &[u8]) {
    let whole = deframe::<M>(data, None);
    let chunked = deframe::<M>(data, Some(Chunker::new(seed)));
    assert_eq!(whole, chunked);
    // The messages re-encode to the bytes they came from.
    let mut again = Vec::new();
    for m in &whole.msgs {
        again.extend_from_slice(&m.to_frame().expect("encodes"));
    }
    assert!(data.starts_with(&again));
    if whole.error.is_none() {
        assert_eq!(again.len(), data.len());
    }
}

fuzz_target!(|data: &[u8]| {
    single::<ToPriv>(data);
    single::<ToNet>(data);
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    stream::<ToPriv>(seed, rest);
    stream::<ToNet>(seed, rest);
});
