//! Throughput of the frame codecs next to the bare primitives they are built
//! on, PF_KEY parse + filter, and config parsing.
//!
//! `cargo bench -p sasyncd-core --bench codecs`. A plain `harness = false`
//! binary: every codec measurement is interleaved sample by sample with the
//! measurement of its primitives on a buffer of the same size, so the ratio
//! (codec / primitives) is taken under the same machine conditions. The
//! medians are printed as a table at the end. Takes about 15 s.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use sasyncd_core::config::Config;
use sasyncd_core::crypto::{AesKey, Crypto, HmacKey, SoftCrypto};
use sasyncd_core::dialect::KernelDialect;
use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{filter, ExtRepr, FilterPolicy, Msg, Repr, Verdict};
use sasyncd_core::state::{FlushMode, Position, RunState};
use sasyncd_core::wire::legacy::{LegacyCodec, MsgType, MAX_FRAME as LEGACY_MAX};
use sasyncd_core::wire::v2::{
    ArchTag, Hello, Kind, Session, Side, CONFIRM_LEN, MAX_FRAME as V2_MAX, SEALED_OVERHEAD,
};

/// Payload sizes from the issue.
const SIZES: [usize; 3] = [64, 512, 4096];
/// Time one sample aims at.
const SAMPLE: Duration = Duration::from_millis(8);
/// Samples per measurement (odd, for a plain median).
const SAMPLES: usize = 31;
/// Frames opened per untimed sealing round in the v2 open benchmark: small
/// enough to stay in L2, like a frame just read from a socket.
const OPEN_BATCH: usize = 32;

/// Set when run without `--bench` (e.g. `cargo test --benches`): one short
/// sample per measurement, only to check that everything runs.
static QUICK: AtomicBool = AtomicBool::new(false);

/// Runs `iters` iterations and returns the time they took (the closure may
/// do untimed set-up around its timed part).
type Sampler<'a> = dyn FnMut(u64) -> Duration + 'a;

/// Wraps a plain operation as a [`Sampler`].
fn timed<'a>(mut op: impl FnMut() + 'a) -> Box<Sampler<'a>> {
    Box::new(move |iters| {
        let t = Instant::now();
        for _ in 0..iters {
            op();
        }
        t.elapsed()
    })
}

/// Iterations per sample so that one sample takes about [`SAMPLE`].
fn calibrate(s: &mut Sampler<'_>) -> u64 {
    if QUICK.load(Ordering::Relaxed) {
        return 1;
    }
    let mut iters = 1u64;
    loop {
        let d = s(iters);
        if d >= SAMPLE / 4 {
            let per = d.as_secs_f64() / iters as f64;
            return ((SAMPLE.as_secs_f64() / per) as u64).max(1);
        }
        iters *= 2;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median ns per iteration of each sampler, with their samples interleaved.
fn measure(samplers: &mut [Box<Sampler<'_>>]) -> Vec<f64> {
    let iters: Vec<u64> = samplers.iter_mut().map(|s| calibrate(s)).collect();
    let samples = if QUICK.load(Ordering::Relaxed) {
        1
    } else {
        SAMPLES
    };
    let mut ns = vec![Vec::with_capacity(samples); samplers.len()];
    for _ in 0..samples {
        for ((s, &n), out) in samplers.iter_mut().zip(&iters).zip(&mut ns) {
            out.push(s(n).as_nanos() as f64 / n as f64);
        }
    }
    ns.into_iter().map(median).collect()
}

/// One line of the final table.
struct Row {
    what: String,
    size: usize,
    codec_ns: f64,
    prim_ns: f64,
}

fn mib_s(bytes: usize, ns: f64) -> f64 {
    bytes as f64 / ns * 1e9 / (1024.0 * 1024.0)
}

fn legacy_rows(rows: &mut Vec<Row>) {
    let crypto = SoftCrypto;
    let key = *b"sasyncd-test-key";
    let codec = LegacyCodec::new(crypto, &key).unwrap();
    let aes = crypto.aes(&key).unwrap();
    let iv = [0xa5u8; 16];
    for size in SIZES {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let padded = size.div_ceil(16) * 16;
        let mut out = vec![0u8; LEGACY_MAX];
        let mut prim = vec![0u8; padded];

        // Encode: SHA-1 of the plaintext, copy + pad, AES-CBC.
        let r = measure(&mut [
            timed(|| {
                black_box(codec.encode(MsgType::PfkeyData, black_box(&payload), iv, &mut out))
                    .unwrap();
            }),
            timed(|| {
                black_box(crypto.sha1(&[black_box(&payload)]));
                prim[..size].copy_from_slice(&payload);
                aes.cbc_encrypt(&iv, &mut prim);
                black_box(&prim);
            }),
        ]);
        rows.push(Row {
            what: "legacy encode".into(),
            size,
            codec_ns: r[0],
            prim_ns: r[1],
        });

        // Decode: copy the frame (decoding is in place), AES-CBC, SHA-1.
        let n = codec
            .encode(MsgType::PfkeyData, &payload, iv, &mut out)
            .unwrap();
        let frame = out[..n].to_vec();
        let mut work = frame.clone();
        let cipher = frame[48..].to_vec();
        let r = measure(&mut [
            timed(|| {
                work.copy_from_slice(black_box(&frame));
                black_box(codec.decode(&mut work)).unwrap();
            }),
            timed(|| {
                prim.copy_from_slice(black_box(&cipher));
                aes.cbc_decrypt(&iv, &mut prim);
                black_box(crypto.sha1(&[&prim[..size]]));
            }),
        ]);
        rows.push(Row {
            what: "legacy decode".into(),
            size,
            codec_ns: r[0],
            prim_ns: r[1],
        });
    }
}

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

/// An established initiator / responder pair.
fn v2_pair() -> (Session<SoftCrypto>, Session<SoftCrypto>) {
    let key = [7u8; 32];
    let (hi, hr) = (hello(1, 0xa1), hello(2, 0xb2));
    let mut i = Session::new(SoftCrypto, &key, Side::Initiator, &hi, &hr).unwrap();
    let mut r = Session::new(SoftCrypto, &key, Side::Responder, &hr, &hi).unwrap();
    let mut buf = [0u8; CONFIRM_LEN];
    i.confirm(&mut buf).unwrap();
    r.check_confirm(&mut buf).unwrap();
    r.confirm(&mut buf).unwrap();
    i.check_confirm(&mut buf).unwrap();
    (i, r)
}

fn v2_rows(rows: &mut Vec<Row>) {
    let crypto = SoftCrypto;
    // Keys of the same sizes as the session's: AES-256 and a 32-byte MAC key.
    let aes = crypto.aes(&[3u8; 32]).unwrap();
    let mac = crypto.hmac(&[4u8; 32]);
    let nonce = [0u8; 16];
    for size in SIZES {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        // Header + sequence number + payload: what the tag covers.
        let authed_len = SEALED_OVERHEAD - 32 + size;
        let mut prim = vec![0u8; authed_len];

        // Seal: copy, AES-256-CTR, HMAC-SHA-256 over header ‖ seq ‖ ciphertext.
        let (mut i, _) = v2_pair();
        let mut out = vec![0u8; V2_MAX];
        let r = measure(&mut [
            timed(|| {
                black_box(i.seal(Kind::Pfkey, black_box(&payload), &mut out)).unwrap();
            }),
            timed(|| {
                prim[16..].copy_from_slice(black_box(&payload));
                aes.ctr_apply(&nonce, &mut prim[16..]);
                black_box(mac.mac(&[&prim]));
            }),
        ]);
        rows.push(Row {
            what: "v2 seal".into(),
            size,
            codec_ns: r[0],
            prim_ns: r[1],
        });

        // Open: copy the frame (opening is in place), HMAC, AES-256-CTR.
        // Frames are sealed in small untimed batches so each is opened with
        // the sequence number the session expects.
        let (mut i, mut r_) = v2_pair();
        let frame_len = SEALED_OVERHEAD + size;
        let mut batch = vec![0u8; OPEN_BATCH * frame_len];
        let mut work = vec![0u8; frame_len];
        let sealed = {
            let (mut i2, _) = v2_pair();
            let n = i2.seal(Kind::Pfkey, &payload, &mut out).unwrap();
            out[..n].to_vec()
        };
        let mut prim_frame = sealed.clone();
        let open: Box<Sampler<'_>> = Box::new(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let k = left.min(OPEN_BATCH);
                for f in batch.chunks_exact_mut(frame_len).take(k) {
                    i.seal(Kind::Pfkey, &payload, f).unwrap();
                }
                let t = Instant::now();
                for f in batch.chunks_exact(frame_len).take(k) {
                    work.copy_from_slice(f);
                    black_box(r_.open(&mut work)).unwrap();
                }
                spent += t.elapsed();
                left -= k;
            }
            spent
        });
        let r = measure(&mut [
            open,
            timed(|| {
                prim_frame.copy_from_slice(black_box(&sealed));
                let (authed, tag) = prim_frame.split_at_mut(authed_len);
                black_box(mac.mac(&[authed]) == tag[..]);
                aes.ctr_apply(&nonce, &mut authed[16..]);
                black_box(&authed);
            }),
        ]);
        rows.push(Row {
            what: "v2 open".into(),
            size,
            codec_ns: r[0],
            prim_ns: r[1],
        });
    }
}

/// Where the primitives' time goes, and what batching the AES calls would
/// give: `SoftAes` inherits the trait's block-at-a-time CTR and CBC loops,
/// while RustCrypto's `encrypt_blocks` / `decrypt_blocks` pipeline several
/// blocks through AES-NI at once (CBC encryption cannot be batched).
fn breakdown(out: &mut Vec<(String, usize, f64)>) {
    let crypto = SoftCrypto;
    let key = [3u8; 32];
    let aes = crypto.aes(&key).unwrap();
    let raw = aes::Aes256::new_from_slice(&key).unwrap();
    let mac = crypto.hmac(&[4u8; 32]);
    let nonce = [0u8; 16];
    for size in [512usize, 4096] {
        // One buffer per closure: they are alive at the same time.
        let (mut b0, mut b1, mut b2, mut b3) = (
            vec![0x42u8; size],
            vec![0x42u8; size],
            vec![0x42u8; size],
            vec![0x42u8; size],
        );
        let b4 = vec![0x42u8; size];
        let mut blocks = vec![aes::Block::default(); size / 16];
        let mut ks = vec![aes::Block::default(); size / 16];
        let r = measure(&mut [
            timed(|| aes.ctr_apply(&nonce, black_box(&mut b0))),
            timed(|| {
                // CTR with one batched call: counter blocks, encrypt, XOR.
                for (i, b) in ks.iter_mut().enumerate() {
                    b[8..].copy_from_slice(&(i as u64).to_be_bytes());
                }
                raw.encrypt_blocks(&mut ks);
                // XOR a block as one u128 (a byte loop here costs more
                // than the AES itself).
                for (c, k) in b1.chunks_exact_mut(16).zip(&ks) {
                    let mut c16 = [0u8; 16];
                    c16.copy_from_slice(c);
                    let x = u128::from_ne_bytes(c16) ^ u128::from_ne_bytes(k.0);
                    c.copy_from_slice(&x.to_ne_bytes());
                }
                black_box(&b1);
            }),
            timed(|| aes.cbc_decrypt(&nonce, black_box(&mut b2))),
            timed(|| raw.decrypt_blocks(black_box(&mut blocks))),
            timed(|| aes.cbc_encrypt(&nonce, black_box(&mut b3))),
            timed(|| {
                black_box(mac.mac(&[black_box(&b4)]));
            }),
            timed(|| {
                black_box(crypto.sha1(&[black_box(&b4)]));
            }),
        ]);
        let names = [
            "AES-256 ctr_apply (SoftAes, batched)",
            "AES-256 CTR, batched encrypt_blocks",
            "AES-256 cbc_decrypt (SoftAes, batched)",
            "AES-256 decrypt_blocks (batched, no XOR)",
            "AES-256 cbc_encrypt (SoftAes)",
            "HMAC-SHA-256 (SoftHmac::mac)",
            "SHA-1 (SoftCrypto::sha1)",
        ];
        for (n, ns) in names.iter().zip(r) {
            out.push((n.to_string(), size, ns));
        }
    }
}

/// An ESP SA as isakmpd adds it: SA (mature, HMAC-SHA2-256, AES),
/// hard and soft lifetimes, both endpoints, 32-byte auth and enc keys.
fn esp_add() -> Vec<u8> {
    let exts = [
        ExtRepr::Sa {
            ext_type: SADB_EXT_SA,
            spi: 0x1234_5678,
            replay: 64,
            state: SADB_SASTATE_MATURE,
            auth: 5,
            encrypt: 12,
            flags: 0,
        },
        ExtRepr::addtime(SADB_EXT_LIFETIME_HARD, 1200),
        ExtRepr::addtime(SADB_EXT_LIFETIME_SOFT, 1080),
        ExtRepr::address(SADB_EXT_ADDRESS_SRC, [192, 0, 2, 1].into(), 0),
        ExtRepr::address(SADB_EXT_ADDRESS_DST, [198, 51, 100, 7].into(), 0),
        ExtRepr::key(SADB_EXT_KEY_AUTH, &[0x5a; 32]),
        ExtRepr::key(SADB_EXT_KEY_ENCRYPT, &[0xa5; 32]),
    ];
    let mut out = vec![0u8; 512];
    let n = Repr::new(SADB_ADD, SADB_SATYPE_ESP, 7, 4242, &exts)
        .emit(&mut out)
        .unwrap();
    out.truncate(n);
    out
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // only check that everything runs once.
    let quick = !std::env::args().any(|a| a == "--bench");
    QUICK.store(quick, Ordering::Relaxed);
    let start = Instant::now();
    if quick {
        println!("codecs bench: smoke run (use `cargo bench` to measure)");
    }

    let mut rows = Vec::new();
    legacy_rows(&mut rows);
    v2_rows(&mut rows);
    let mut parts = Vec::new();
    breakdown(&mut parts);

    let msg = esp_add();
    let peers: [IpAddr; 2] = ["192.0.2.2".parse().unwrap(), "2001:db8::2".parse().unwrap()];
    let policy = FilterPolicy {
        flushmode: FlushMode::Startup,
        skipslave: true,
    };
    let pf = measure(&mut [timed(|| {
        let m = Msg::parse(black_box(&msg)).unwrap();
        assert_eq!(filter(&m, &policy, black_box(&peers)), Verdict::Sync);
    })])[0];

    // The example has no active key (the operator sets one): add one.
    let mut text = include_bytes!("../../sasyncd.conf.example").to_vec();
    text.extend_from_slice(b"sharedkey 0x00112233445566778899aabbccddeeff\n");
    let text = &text[..];
    let conf = measure(&mut [timed(|| {
        black_box(Config::parse(black_box(text))).unwrap();
    })])[0];

    println!();
    println!(
        "{:<14} {:>6} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "codec", "bytes", "codec ns", "codec MiB/s", "prim ns", "prim MiB/s", "ratio"
    );
    for r in &rows {
        println!(
            "{:<14} {:>6} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>7.3}",
            r.what,
            r.size,
            r.codec_ns,
            mib_s(r.size, r.codec_ns),
            r.prim_ns,
            mib_s(r.size, r.prim_ns),
            r.prim_ns / r.codec_ns,
        );
    }
    println!("(ratio = codec throughput / primitive throughput = prim ns / codec ns)");
    println!();
    println!(
        "{:<42} {:>6} {:>10} {:>10}",
        "primitive", "bytes", "ns", "MiB/s"
    );
    for (name, size, ns) in &parts {
        println!(
            "{:<42} {:>6} {:>10.0} {:>10.0}",
            name,
            size,
            ns,
            mib_s(*size, *ns)
        );
    }
    println!();
    println!(
        "pfkey parse+filter (ESP ADD, {} B, skipslave, 2 peers): {:.0} ns/msg, {:.2} M msgs/s",
        msg.len(),
        pf,
        1e3 / pf
    );
    println!(
        "config parse (sasyncd.conf.example, {} B): {:.2} us",
        text.len(),
        conf / 1e3
    );
    println!("total bench time: {:.1} s", start.elapsed().as_secs_f64());
}
