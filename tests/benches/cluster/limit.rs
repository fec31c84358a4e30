//! The limit a node's per-entry cost is compared with, measured in the
//! same run: the frame crypto of the same messages (v2: `Session::seal` on
//! one side and `Session::open` on the other; legacy: `LegacyCodec::encode`
//! and `decode`) plus one `Msg::parse` of each message, on the very
//! messages the master's snapshot sent (its dump records rewritten as the
//! master rewrites them).

use std::hint::black_box;
use std::time::Instant as Clock;

use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::dialect::KernelDialect;
use sasyncd_core::pfkey::{dump_to_add, spd_dump_to_addflow, Msg, PFKEY_MSG_MAXSZ};
use sasyncd_core::state::{Position, RunState};
use sasyncd_core::wire::legacy::{LegacyCodec, MsgType, MAX_FRAME as LEGACY_MAX};
use sasyncd_core::wire::v2::{ArchTag, Hello, Kind, Session, Side, CONFIRM_LEN, MAX_FRAME};

/// Samples per measurement (odd: a plain median).
const SAMPLES: usize = 15;

/// The shared key of the benchmark's configs.
pub const KEY: &[u8; 16] = b"sasyncd-test-key";

fn hello(node: u8, nonce: u8) -> Hello {
    Hello {
        node_id: [node; 16],
        boot_epoch: 1,
        nonce: [nonce; 32],
        run_state: RunState::Master,
        resume: Position::NONE,
        arch: ArchTag::host(),
        dialect: KernelDialect::OpenBsd,
    }
}

/// An established initiator / responder pair with the benchmark's key.
fn v2_pair() -> (Session<SoftCrypto>, Session<SoftCrypto>) {
    let (hi, hr) = (hello(1, 0xa1), hello(2, 0xb2));
    let mut i = Session::new(SoftCrypto, KEY, Side::Initiator, &hi, &hr).expect("session");
    let mut r = Session::new(SoftCrypto, KEY, Side::Responder, &hr, &hi).expect("session");
    let mut buf = [0u8; CONFIRM_LEN];
    i.confirm(&mut buf).expect("confirm");
    r.check_confirm(&mut buf).expect("confirm");
    r.confirm(&mut buf).expect("confirm");
    i.check_confirm(&mut buf).expect("confirm");
    (i, r)
}

/// The messages a master sends for these dump records (SADB records, or
/// SPD records when `spd`).
pub fn messages(records: &[Vec<u8>], spd: bool) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; PFKEY_MSG_MAXSZ];
    records
        .iter()
        .filter_map(|r| {
            let n = if spd {
                spd_dump_to_addflow(r, &mut buf)
            } else {
                dump_to_add(r, &mut buf)
            };
            n.ok().map(|n| buf[..n].to_vec())
        })
        .collect()
}

/// ns per message: seal + open (v2) or encode + decode (legacy), plus one
/// parse, over `msgs` (one pass is one sample).
struct Limit {
    legacy: bool,
    v2: (Session<SoftCrypto>, Session<SoftCrypto>),
    codec: LegacyCodec<SoftCrypto>,
    frames: Vec<u8>,
    work: Vec<u8>,
}

impl Limit {
    fn new(legacy: bool) -> Limit {
        Limit {
            legacy,
            v2: v2_pair(),
            codec: LegacyCodec::new(SoftCrypto, KEY).expect("key"),
            frames: Vec::new(),
            work: vec![0u8; MAX_FRAME.max(LEGACY_MAX)],
        }
    }

    /// One pass over `msgs`: ns per message.
    fn pass(&mut self, msgs: &[Vec<u8>]) -> f64 {
        if msgs.is_empty() {
            return 0.0;
        }
        let slot = MAX_FRAME.max(LEGACY_MAX);
        self.frames.resize(msgs.len() * slot, 0);
        let mut lens = Vec::with_capacity(msgs.len());
        let t = Clock::now();
        // The sending side: one frame per message.
        for (m, out) in msgs.iter().zip(self.frames.chunks_exact_mut(slot)) {
            let n = if self.legacy {
                self.codec
                    .encode(MsgType::PfkeyData, m, [0xa5; 16], out)
                    .expect("encode")
            } else {
                self.v2.0.seal(Kind::Pfkey, m, out).expect("seal")
            };
            lens.push(n);
        }
        // The receiving side: open each frame (in place, from a copy as a
        // socket read would give it) and parse the message.
        for (f, &n) in self.frames.chunks_exact(slot).zip(&lens) {
            let w = &mut self.work[..n];
            w.copy_from_slice(&f[..n]);
            let pt = if self.legacy {
                self.codec.decode(w).expect("decode").1
            } else {
                self.v2.1.open(w).expect("open").1
            };
            black_box(Msg::parse(pt).expect("parse").msg_type());
        }
        t.elapsed().as_nanos() as f64 / msgs.len() as f64
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The limit per SA message and per flow message (ns), medians of
/// interleaved samples. `quick`: one sample.
pub fn measure(legacy: bool, sas: &[Vec<u8>], flows: &[Vec<u8>], quick: bool) -> (f64, f64) {
    let mut l = Limit::new(legacy);
    let samples = if quick { 1 } else { SAMPLES };
    // Warm up once.
    l.pass(sas);
    l.pass(flows);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        a.push(l.pass(sas));
        b.push(l.pass(flows));
    }
    (median(a), median(b))
}
