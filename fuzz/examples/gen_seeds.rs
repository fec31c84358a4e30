//! Writes the hand-made seed corpus to `fuzz/seeds/<target>/`.
//!
//! `cargo run --example gen_seeds` (from `fuzz/`). Deterministic: the v2
//! seeds are sealed by the fixed initiator of `common::v2`, so they open on
//! the fixed responder inside the `v2_frame` target. The PF_KEY seeds are in
//! host byte order, like the messages themselves.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::ctl::Ctl;
use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{ExtRepr, Repr};
use sasyncd_core::state::{Position, RunState};
use sasyncd_core::wire::legacy::{LegacyCodec, MsgType, MAX_FRAME as LEGACY_MAX};
use sasyncd_core::wire::v2::{Kind, CONFIRM_LEN, HELLO_LEN, MAX_FRAME as V2_MAX};

#[path = "../fuzz_targets/common.rs"]
mod common;

/// Reference §16.1, frame A: CTL_STATE(MASTER) under `sasyncd-test-key`.
const FRAME_A: &str = "0000003c0000000000000004b0e0f98474db5627ead9a12cf20c33d63ae50566\
                       a0a1a2a3a4a5a6a7a8a9aaabacadaeaf8c29686c74c4c1bb4325fd254dca307f";
/// Reference §16.2, frame B: a 16-byte SADB_FLUSH under the same key.
const FRAME_B: &str = "0000003c000000010000000097a67b79a799d07645e9ba22f637b1ecbc7625a3\
                       a0a1a2a3a4a5a6a7a8a9aaabacadaeafe6b10d4884560b268e4f6e8b6356a0a3";
/// Chunking seed byte put in front of the framed seeds.
const CHUNK_SEED: u8 = 0x5a;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `exts` as a message, emitted by the core's builder (host byte order).
fn pf(msg_type: u8, satype: u8, seq: u32, pid: u32, exts: &[ExtRepr<'_>]) -> Vec<u8> {
    let repr = Repr::new(msg_type, satype, seq, pid, exts);
    let mut v = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut v).unwrap();
    v.truncate(n);
    v
}

/// The SA extension isakmpd writes (replay window 64).
fn sa(spi: u32, state: u8, auth: u8, encrypt: u8) -> ExtRepr<'static> {
    ExtRepr::Sa {
        ext_type: SADB_EXT_SA,
        spi,
        replay: 64,
        state,
        auth,
        encrypt,
        flags: 0,
    }
}

fn addr(ext_type: u16, ip: IpAddr) -> ExtRepr<'static> {
    ExtRepr::address(ext_type, ip, 0)
}

fn rdomain(d: u16) -> ExtRepr<'static> {
    ExtRepr::Rdomain { dom1: d, dom2: d }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An ESP SA as isakmpd adds it: AES-256 + HMAC-SHA2-256 keys, hard and
/// soft lifetimes, both endpoints.
fn esp_add(msg_type: u8, src: &str, dst: &str) -> Vec<u8> {
    let exts = [
        sa(0x1234_5678, SADB_SASTATE_MATURE, 5, 12),
        ExtRepr::addtime(SADB_EXT_LIFETIME_HARD, 1200),
        ExtRepr::addtime(SADB_EXT_LIFETIME_SOFT, 1080),
        addr(SADB_EXT_ADDRESS_SRC, ip(src)),
        addr(SADB_EXT_ADDRESS_DST, ip(dst)),
        ExtRepr::key(SADB_EXT_KEY_AUTH, &[0x5a; 32]),
        ExtRepr::key(SADB_EXT_KEY_ENCRYPT, &[0xa5; 32]),
    ];
    pf(msg_type, SADB_SATYPE_ESP, 7, 4242, &exts)
}

/// An SADB dump record: an ESP SA with the kernel's extra extensions.
fn dump_record() -> Vec<u8> {
    let exts = [
        sa(0xcafe_f00d, SADB_SASTATE_MATURE, 5, 12),
        ExtRepr::Lifetime {
            ext_type: SADB_EXT_LIFETIME_CURRENT,
            allocations: 3,
            bytes: 123_456,
            addtime: 1_700_000_000,
            usetime: 1_700_000_100,
        },
        ExtRepr::addtime(SADB_EXT_LIFETIME_HARD, 1200),
        addr(SADB_EXT_ADDRESS_SRC, ip("192.0.2.1")),
        addr(SADB_EXT_ADDRESS_DST, ip("198.51.100.7")),
        ExtRepr::key(SADB_EXT_KEY_AUTH, &[1; 32]),
        ExtRepr::key(SADB_EXT_KEY_ENCRYPT, &[2; 32]),
        // 8 bytes longer than `sadb_x_counter`: the parsers must take it.
        ExtRepr::Opaque {
            ext_type: SADB_X_EXT_COUNTER,
            body: &[0; 76],
        },
        ExtRepr::Mtu { mtu: 0 },
        ExtRepr::Lifetime {
            ext_type: SADB_X_EXT_LIFETIME_LASTUSE,
            allocations: 0,
            bytes: 0,
            addtime: 0,
            usetime: 1_700_000_100,
        },
        rdomain(0),
    ];
    pf(SADB_DUMP, SADB_SATYPE_ESP, 0, 0, &exts)
}

fn addflow(msg_type: u8) -> Vec<u8> {
    let mask = ip("255.255.0.0");
    let [ft, pr, sf, sm, df, dm] = ExtRepr::flow(
        SADB_X_FLOW_TYPE_REQUIRE,
        IPSP_DIRECTION_OUT,
        0,
        (ip("10.1.0.0"), mask),
        (ip("10.2.0.0"), mask),
    );
    let exts = [
        addr(SADB_EXT_ADDRESS_DST, ip("198.51.100.7")),
        ft,
        pr,
        sf,
        sm,
        df,
        dm,
        rdomain(1),
    ];
    pf(msg_type, SADB_SATYPE_ESP, 3, 4242, &exts)
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn framed(stream: &[u8]) -> Vec<u8> {
    let mut v = vec![CHUNK_SEED];
    v.extend_from_slice(stream);
    v
}

fn main() {
    // PF_KEY.
    let add4 = esp_add(SADB_ADD, "192.0.2.1", "198.51.100.7");
    let add6 = esp_add(SADB_UPDATE, "2001:db8::1", "2001:db8::2");
    let flush = pf(SADB_FLUSH, 0, 1, 12345, &[]);
    let promisc = pf(SADB_X_PROMISC, 0, 4242, 0, &[ExtRepr::Raw(&add4)]);
    let mut dump = dump_record();
    dump.extend_from_slice(&dump_record());
    let pfkey: [(&str, Vec<u8>); 9] = [
        ("esp_add_v4", add4.clone()),
        ("esp_update_v6", add6),
        ("flush", flush.clone()),
        ("promisc_add", promisc),
        ("dump_record", dump_record()),
        ("sadb_dump_two", dump),
        ("addflow", addflow(SADB_X_ADDFLOW)),
        ("spd_dump", addflow(SADB_X_SPDDUMP)),
        (
            "delete_peer",
            pf(
                SADB_DELETE,
                SADB_SATYPE_ESP,
                9,
                1,
                &[
                    sa(0x1234_5678, SADB_SASTATE_MATURE, 0, 0),
                    addr(SADB_EXT_ADDRESS_DST, ip("192.0.2.2")),
                ],
            ),
        ),
    ];
    for (name, bytes) in &pfkey {
        write("pfkey", name, bytes);
    }

    // Control messages: every variant.
    let pos = Position { epoch: 3, seq: 99 };
    let ctls = [
        ("state", Ctl::State(RunState::Master)),
        ("error", Ctl::Error(sasyncd_core::ctl::CtlType::State)),
        (
            "ack",
            Ctl::Ack {
                about: sasyncd_core::ctl::CtlType::State,
                state: RunState::Slave,
            },
        ),
        ("endsnap", Ctl::EndSnap),
        ("ackseq", Ctl::AckSeq(pos)),
        ("resync", Ctl::Resync(Position::NONE)),
        (
            "snapbegin",
            Ctl::SnapBegin {
                pos,
                sweep: true,
                expect: 0,
                buckets: None,
            },
        ),
        ("snapend", Ctl::SnapEnd { pos }),
        (
            "digest",
            Ctl::Digest {
                pos,
                sas: 12,
                flows: 4,
                sa_digest: [0x11; 32],
                flow_digest: [0x22; 32],
                partial: false,
            },
        ),
    ];
    for (name, c) in &ctls {
        let mut b = [0u8; 128];
        let n = c.encode(&mut b).unwrap();
        write("ctl", name, &b[..n]);
    }

    // Legacy frames: the two worked examples, both in one stream, and a
    // PF_KEY ADD framed under the same key and IV.
    let (a, b) = (unhex(FRAME_A), unhex(FRAME_B));
    let codec = LegacyCodec::new(SoftCrypto, b"sasyncd-test-key").unwrap();
    let mut out = vec![0u8; LEGACY_MAX];
    let iv: [u8; 16] = core::array::from_fn(|i| 0xa0 + i as u8);
    let n = codec
        .encode(MsgType::PfkeyData, &add4, iv, &mut out)
        .unwrap();
    let mut ab = a.clone();
    ab.extend_from_slice(&b);
    ab.extend_from_slice(&out[..n]);
    write("legacy_frame", "frame_a", &framed(&a));
    write("legacy_frame", "frame_b", &framed(&b));
    write("legacy_frame", "a_b_add", &framed(&ab));

    // v2: a HELLO, then CONFIRM and sealed frames from the fixed initiator.
    let mut hello = [0u8; HELLO_LEN];
    common::v2::hello_i().encode(&mut hello).unwrap();
    write("v2_frame", "hello", &framed(&hello));
    let (mut i, _) = common::v2::fresh();
    let mut stream = hello.to_vec();
    let mut buf = vec![0u8; V2_MAX];
    let n = i.confirm(&mut buf).unwrap();
    assert_eq!(n, CONFIRM_LEN);
    stream.extend_from_slice(&buf[..n]);
    let mut ctl = [0u8; 12];
    Ctl::State(RunState::Master).encode(&mut ctl).unwrap();
    let n = i.seal(Kind::Ctl, &ctl, &mut buf).unwrap();
    stream.extend_from_slice(&buf[..n]);
    let n = i.seal(Kind::Pfkey, &add4, &mut buf).unwrap();
    stream.extend_from_slice(&buf[..n]);
    let n = i.seal(Kind::Pfkey, &flush, &mut buf).unwrap();
    stream.extend_from_slice(&buf[..n]);
    write("v2_frame", "session", &framed(&stream));
    // Check that the seeds do what the target expects of them.
    let d = common::deframe::<sasyncd_core::wire::v2::V2, V2_MAX>(&stream, None);
    assert_eq!(d.frames.len(), 5);
    let (_, mut unconfirmed) = common::v2::fresh();
    let (_, mut est) = common::v2::established();
    unconfirmed.check_confirm(&mut d.frames[1].clone()).unwrap();
    for f in &d.frames[2..] {
        est.open(&mut f.clone()).unwrap();
    }
    let d = common::deframe::<sasyncd_core::wire::legacy::Legacy, LEGACY_MAX>(&ab, None);
    assert_eq!(d.frames.len(), 3);
    for f in &d.frames {
        codec.decode(&mut f.clone()).unwrap();
    }

    // Configs.
    let example = include_bytes!("../../sasyncd.conf.example");
    write("config", "example", example);
    write(
        "config",
        "minimal",
        b"mode master\nsharedkey sasyncd-test-key\n",
    );
    write(
        "config",
        "full",
        b"interface carp0 group carp flushmode sync\n\
          peer 192.0.2.2 port 4500 peer \"host.example\" peer 2001:db8::2\n\
          listen on em0 inet6 port 1500 mode slave mode skipslave\n\
          sharedkey \"a key with # and \\\" in it!!\"\\\n control all protocol legacy\n",
    );
    // Privsep: one message of every type, each alone (the single-message
    // check reads the whole input) and all in one stream after a chunking
    // seed. The dump records are the PF_KEY dump records above.
    use sasyncd::privsep::{Message, ToNet, ToPriv};
    use sasyncd::secret::SecretBytes;
    use sasyncd_core::node::Table;
    let to_priv = [
        (
            "dump_start",
            ToPriv::DumpStart {
                dump: 1,
                table: Table::Sadb,
            },
        ),
        (
            "dump_start_spd",
            ToPriv::DumpStart {
                dump: 2,
                table: Table::Spd,
            },
        ),
        ("dump_more", ToPriv::DumpMore { dump: 1 }),
        ("dump_cancel", ToPriv::DumpCancel { dump: 2 }),
        ("demote", ToPriv::Demote { raise: true }),
        (
            "ike",
            ToPriv::Ike {
                id: 7,
                active: true,
            },
        ),
        ("link_state_req", ToPriv::LinkState),
        ("reload", ToPriv::Reload),
        (
            "reloaded",
            ToPriv::reloaded(false, "sasyncd.conf:3: missing sharedkey"),
        ),
    ];
    let mut records = dump_record();
    records.extend_from_slice(&dump_record());
    let to_net = [
        (
            "dump_records",
            ToNet::DumpRecords {
                dump: 1,
                records: SecretBytes::new(records),
            },
        ),
        ("dump_end", ToNet::DumpEnd { dump: 1, ok: true }),
        ("demote_result", ToNet::DemoteResult { ok: true }),
        ("ike_result", ToNet::IkeResult { id: 7, ok: false }),
        ("link_state", ToNet::LinkState { state: 4 }),
        ("carp_unreadable", ToNet::CarpUnreadable),
        (
            "config",
            ToNet::Config {
                text: SecretBytes::from_slice(b"mode master\nsharedkey sasyncd-test-key\n"),
            },
        ),
        ("shutdown", ToNet::Shutdown),
        (
            "reload_refused",
            ToNet::reload_refused("/etc/sasyncd.conf:3: missing sharedkey"),
        ),
    ];
    let mut up = vec![CHUNK_SEED];
    for (name, m) in &to_priv {
        let f = m.to_frame().unwrap();
        assert_eq!(ToPriv::decode(&f).as_ref(), Ok(m));
        write("privsep", name, &f);
        up.extend_from_slice(&f);
    }
    let mut down = vec![CHUNK_SEED];
    for (name, m) in &to_net {
        let f = m.to_frame().unwrap();
        assert_eq!(ToNet::decode(&f).as_ref(), Ok(m));
        write("privsep", name, &f);
        down.extend_from_slice(&f);
    }
    write("privsep", "stream_to_priv", &up);
    write("privsep", "stream_to_net", &down);

    // Control socket: request lines (the whole input is a request), and
    // replies after a chunking seed.
    use sasyncd::control::proto::{encode_error, encode_ok};
    for (name, line) in [
        ("show", "show\n"),
        ("show_peer_json", "show peer 192.0.2.1 json\n"),
        ("show_stats_all", "show stats all json\n"),
        ("resync", "resync 2001:db8::1\n"),
        ("reload", "reload\n"),
        ("log", "log verbose\r\n"),
    ] {
        write("control", name, line.as_bytes());
    }
    let text = "State:        SLAVE for 00:01:39\n.dotted\n\n\tindented";
    let json = "{\"schema\":1,\"report\":\"stats\",\"counters\":{\"applied\":42}}";
    for (name, bytes) in [
        ("reply_text", encode_ok(text).unwrap()),
        ("reply_json", encode_ok(json).unwrap()),
        ("reply_empty", encode_ok("").unwrap()),
        ("reply_error", encode_error("no such peer: 192.0.2.7")),
    ] {
        let mut v = vec![CHUNK_SEED];
        v.extend_from_slice(&bytes);
        write("control", name, &v);
    }

    // Two nodes: a setup byte (bit 0 legacy, bit 1 chunked), then
    // operations: low nibble the kind, high nibble its variant (see
    // fuzz_targets/two_nodes.rs): 0 add SA, 1 delete SA, 2 add flow,
    // 3 delete flow, 4 GETSPI + UPDATE, 5 raw write, 6 time, 7 carp,
    // 8 link fault, 9 reset/crash.
    let two_nodes: [(&str, &[u8]); 12] = [
        (
            "v2_add_delete",
            &[
                0x00, 0x00, 1, 0x10, 2, 0x02, 1, 0x06, 40, 0x01, 1, 0x03, 1, 0x06, 60,
            ],
        ),
        (
            "v2_flip",
            &[
                0x00, 0x00, 1, 0x06, 20, 0x08, 5, 3, 0x10, 2, 0x06, 80, 0x01, 1, 0x06, 200,
            ],
        ),
        (
            "v2_truncate_from_slave",
            &[
                0x00, 0x00, 1, 0x06, 20, 0x58, 9, 2, 0x07, 0, 0x07, 1, 0x06, 120, 0x00, 3, 0x06,
                100,
            ],
        ),
        (
            "v2_reorder",
            &[
                0x00, 0x00, 1, 0x06, 20, 0x28, 0, 4, 0x00, 2, 0x00, 3, 0x01, 1, 0x06, 150,
            ],
        ),
        (
            "v2_duplicate",
            &[0x00, 0x38, 0, 2, 0x00, 1, 0x02, 2, 0x06, 50, 0x06, 200],
        ),
        (
            "v2_failover",
            &[
                0x00, 0x00, 1, 0x02, 1, 0x06, 30, 0x07, 0, 0x17, 1, 0x06, 60, 0x00, 4, 0x11, 1,
                0x06, 60, 0x17, 0, 0x07, 1, 0x06, 90,
            ],
        ),
        (
            "v2_split_brain",
            &[
                0x00, 0x00, 1, 0x06, 30, 0x17, 1, 0x00, 2, 0x06, 40, 0x17, 0, 0x06, 120,
            ],
        ),
        (
            "v2_crash_restart",
            &[
                0x00, 0x00, 1, 0x06, 30, 0x29, 0x00, 2, 0x01, 1, 0x06, 40, 0x29, 0x06, 120, 0x19,
                0x19, 0x09, 0x06, 100,
            ],
        ),
        (
            "v2_getspi_update",
            &[0x00, 0x04, 5, 0x14, 6, 0x06, 40, 0x01, 5, 0x06, 60],
        ),
        (
            "v2_chunked",
            &[
                0x02, 0x00, 1, 0x00, 2, 0x02, 3, 0x06, 30, 0x08, 17, 7, 0x06, 120,
            ],
        ),
        (
            "legacy_basic",
            &[0x01, 0x00, 1, 0x02, 1, 0x06, 40, 0x01, 1, 0x03, 1, 0x06, 60],
        ),
        (
            "legacy_flip",
            &[0x01, 0x00, 1, 0x06, 20, 0x08, 5, 1, 0x00, 2, 0x06, 200],
        ),
    ];
    for (name, bytes) in two_nodes {
        write("two_nodes", name, bytes);
    }

    println!("seeds written");
}
