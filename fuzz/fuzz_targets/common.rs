//! Helpers shared by the fuzz targets (included with `#[path]`).
#![allow(dead_code)]

use sasyncd_core::wire::stream::{Deframer, Framing};

/// Chunk lengths for feeding a stream to a deframer, derived from one seed
/// byte so that the fuzzer controls the split points.
pub struct Chunker(u32);

impl Chunker {
    pub fn new(seed: u8) -> Self {
        Chunker(u32::from(seed).wrapping_mul(0x9e37_79b9) | 1)
    }
    /// The next chunk length: mostly small (1..=16, to split headers),
    /// sometimes up to ~4 KiB (to deliver several frames at once).
    pub fn next_len(&mut self) -> usize {
        // xorshift32
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        if x & 3 == 0 {
            (x as usize >> 8) % 4200 + 1
        } else {
            (x as usize >> 8) % 16 + 1
        }
    }
}

/// What deframing a stream produced: the frames, the error that ended it
/// (if any), and the bytes of an incomplete last frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Deframed<E> {
    pub frames: Vec<Vec<u8>>,
    pub error: Option<E>,
    pub pending: usize,
}

/// Deframes `stream` in one piece (`chunker == None`) or in the chunks the
/// chunker gives.
pub fn deframe<F: Framing, const N: usize>(
    stream: &[u8],
    mut chunker: Option<Chunker>,
) -> Deframed<F::Error> {
    let mut d = Box::new(Deframer::<F, N>::new());
    let mut frames = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = match chunker.as_mut() {
            Some(c) => c.next_len().min(rest.len()),
            None => rest.len(),
        };
        let (mut chunk, tail) = rest.split_at(n);
        rest = tail;
        loop {
            match d.next_frame(&mut chunk) {
                Ok(Some(f)) => {
                    assert!(f.len() <= N);
                    frames.push(f.to_vec());
                }
                Ok(None) => {
                    assert!(chunk.is_empty(), "Ok(None) with input left");
                    break;
                }
                Err(e) => {
                    // Sticky: the same error again, whatever comes next.
                    let again = d.next_frame(&mut &[0u8; 4][..]);
                    assert!(again.is_err());
                    return Deframed {
                        frames,
                        error: Some(e),
                        pending: 0,
                    };
                }
            }
        }
    }
    let pending = d.pending();
    assert!(pending < N);
    Deframed {
        frames,
        error: None,
        pending,
    }
}

pub mod v2 {
    //! A fixed v2 session pair, so seeds sealed by the initiator open on the
    //! responder in every run.
    use sasyncd_core::crypto::SoftCrypto;
    use sasyncd_core::state::{Position, RunState};
    use sasyncd_core::wire::v2::{ArchTag, Hello, Session, Side, CONFIRM_LEN};

    pub type S = Session<SoftCrypto>;

    /// 32-byte shared key of the fixed sessions.
    pub const SHARED: [u8; 32] = *b"sasyncd-fuzz-shared-key-32-bytes";

    pub fn hello_i() -> Hello {
        Hello {
            node_id: [0x11; 16],
            boot_epoch: 7,
            nonce: [0xa1; 32],
            run_state: RunState::Master,
            resume: Position::NONE,
            arch: ArchTag::host(),
        }
    }

    pub fn hello_r() -> Hello {
        Hello {
            node_id: [0x22; 16],
            boot_epoch: 3,
            nonce: [0xb2; 32],
            run_state: RunState::Slave,
            resume: Position { epoch: 7, seq: 41 },
            arch: ArchTag::host(),
        }
    }

    /// Initiator and responder, neither confirmed.
    pub fn fresh() -> (S, S) {
        let (hi, hr) = (hello_i(), hello_r());
        let i = Session::new(SoftCrypto, &SHARED, Side::Initiator, &hi, &hr).expect("session");
        let r = Session::new(SoftCrypto, &SHARED, Side::Responder, &hr, &hi).expect("session");
        (i, r)
    }

    /// Initiator and responder after both key confirmations: the
    /// initiator's next frame is sequence 1.
    pub fn established() -> (S, S) {
        let (mut i, mut r) = fresh();
        let mut buf = [0u8; CONFIRM_LEN];
        i.confirm(&mut buf).expect("confirm");
        r.check_confirm(&mut buf).expect("check");
        r.confirm(&mut buf).expect("confirm");
        i.check_confirm(&mut buf).expect("check");
        (i, r)
    }
}
