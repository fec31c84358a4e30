//! Interoperability with an unmodified OpenBSD sasyncd, played by a
//! scripted peer built only from the legacy codec, the deframer and the
//! control-message codec (never a `Node`), following reference §10.4,
//! §11 and the §16.4 checklist to the letter.

use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::ctl::{Ctl, CtlType};
use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{set_pid_seq, Msg};
use sasyncd_core::state::RunState;
use sasyncd_core::wire::legacy::{LegacyCodec, LegacyDeframer, MsgType, HEADER_LEN, MAX_FRAME};
use sasyncd_sim::kernel::Kernel;
use sasyncd_sim::rng::Rng;
use sasyncd_tests::harness::{addr, config, TestWorld, IKE_PID, KEY};
use sasyncd_tests::msgs::{esp_add, esp_delete, esp_update, flow, getspi, ip};

/// What the scripted peer read from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
// `Ctl` is large (its `Buckets` variant); a test's lists of them need not care.
#[allow(clippy::large_enum_variant)]
enum Got {
    Ctl(Ctl),
    Pfkey(Vec<u8>),
}

/// The OpenBSD daemon's side of one connection.
struct OpenBsd {
    codec: LegacyCodec<SoftCrypto>,
    deframer: LegacyDeframer,
    end: usize,
    iv: u8,
}

impl OpenBsd {
    fn new(end: usize) -> OpenBsd {
        OpenBsd {
            codec: LegacyCodec::new(SoftCrypto, KEY.as_bytes()).unwrap(),
            deframer: LegacyDeframer::new(),
            end,
            iv: 0,
        }
    }

    fn send(&mut self, w: &mut TestWorld, ty: MsgType, plaintext: &[u8]) {
        self.iv = self.iv.wrapping_add(1);
        let mut out = [0u8; MAX_FRAME];
        let n = self
            .codec
            .encode(ty, plaintext, [self.iv; 16], &mut out)
            .unwrap();
        w.ext_send(self.end, &out[..n]);
    }

    fn ctl(&mut self, w: &mut TestWorld, ctl: Ctl) {
        let mut b = [0u8; 12];
        assert_eq!(ctl.encode(&mut b), Ok(12));
        self.send(w, MsgType::Ctl, &b);
    }

    /// A PF_KEY message as this daemon (pid 4242) sends it.
    fn pfkey(&mut self, w: &mut TestWorld, msg: &[u8], seq: u32) {
        let mut m = msg.to_vec();
        set_pid_seq(&mut m, 4242, seq);
        self.send(w, MsgType::PfkeyData, &m);
    }

    /// Everything the node sent, frame by frame. Each frame must be
    /// byte-exact: re-encoding its plaintext with its IV gives it back.
    fn recv(&mut self, w: &mut TestWorld) -> Vec<Got> {
        let bytes = w.ext_take(self.end);
        let mut input = &bytes[..];
        let mut got = Vec::new();
        while let Some(frame) = self.deframer.next_frame(&mut input).unwrap() {
            let raw = frame.to_vec();
            let iv: [u8; 16] = raw[32..48].try_into().unwrap();
            let (ty, pt) = self
                .codec
                .decode(frame)
                .expect("a frame the original accepts");
            let pt = pt.to_vec();
            let mut again = [0u8; MAX_FRAME];
            let n = self.codec.encode(ty, &pt, iv, &mut again).unwrap();
            assert_eq!(&again[..n], &raw[..], "frame is byte-exact");
            assert!(raw.len() - HEADER_LEN >= 16 && raw.len() - HEADER_LEN <= 4096);
            got.push(match ty {
                MsgType::Ctl => {
                    assert_eq!(pt.len(), 12, "only 12-byte control messages");
                    Got::Ctl(Ctl::decode(&pt).unwrap())
                }
                MsgType::PfkeyData => Got::Pfkey(pt),
            });
        }
        assert!(input.is_empty());
        got
    }
}

/// The slave's kernel took every write.
fn nothing_refused(w: &TestWorld) {
    let refused = &w.lan.hosts[0].refused;
    assert!(
        refused.is_empty(),
        "the slave's kernel refused: {refused:?}"
    );
}

fn msg(b: &[u8]) -> Msg<'_> {
    Msg::parse(b).unwrap()
}

fn spi_of(m: &Msg<'_>) -> u32 {
    sasyncd_core::pfkey::sa_key(m).unwrap().spi
}

#[test]
fn master_serves_an_openbsd_slave() {
    let mut w = TestWorld::new(vec![config(0, 2, "mode master\nprotocol legacy")]);
    let k = &mut w.lan.hosts[0].kernel;
    k.manual_write(&esp_add(0x2001, ip("192.0.2.1"), ip("198.51.100.1")))
        .unwrap();
    k.manual_write(&esp_add(0x2002, ip("192.0.2.1"), ip("198.51.100.2")))
        .unwrap();
    k.manual_write(&flow(ip("192.0.2.0"), ip("198.51.100.0")))
        .unwrap();
    // A larval SA (GETSPI, no keys): never part of a snapshot.
    k.manual_write(&getspi(ip("192.0.2.1"), ip("198.51.100.3"), 0x3000, 0x3000))
        .unwrap();
    w.run_for(100);

    // The C slave connects and announces itself first (§10.4).
    let x = w.ext_connect(0, addr(1)).expect("a configured peer");
    let mut c = OpenBsd::new(x);
    w.settle();
    assert!(
        c.recv(&mut w).is_empty(),
        "the acceptor speaks only when spoken to"
    );
    c.ctl(&mut w, Ctl::State(RunState::Slave));
    w.run_for(100);
    let got = c.recv(&mut w);
    assert_eq!(
        got,
        [Got::Ctl(Ctl::Ack {
            about: CtlType::State,
            state: RunState::Master
        })]
    );
    // As the original, the snapshot follows 2 s after the session began.
    w.run_for(2000);
    let got = c.recv(&mut w);
    // The snapshot: FLUSH (flushmode startup), SA ADDs, X_ADDFLOWs, ENDSNAP.
    let Got::Pfkey(f) = &got[0] else {
        panic!("{:?}", got[0])
    };
    assert_eq!(f.len(), 16);
    let f = msg(f);
    assert_eq!(
        (f.msg_type(), f.satype(), f.pid()),
        (SADB_FLUSH, 0, w.lan.hosts[0].pid)
    );
    let mut fresh = Kernel::new(Rng::new(9));
    let mut spis = Vec::new();
    for g in &got[1..3] {
        let Got::Pfkey(a) = g else { panic!("{g:?}") };
        let m = msg(a);
        assert_eq!(m.msg_type(), SADB_ADD);
        spis.push(spi_of(&m));
        // The C slave's kernel takes it once the pid is its own (D-30).
        let mut a = a.clone();
        set_pid_seq(&mut a, 555, 1);
        fresh
            .write(&a, 555)
            .expect("a snapshot ADD the kernel accepts");
    }
    spis.sort();
    assert_eq!(spis, [0x2001, 0x2002]);
    let Got::Pfkey(fl) = &got[3] else {
        panic!("{:?}", got[3])
    };
    assert_eq!(msg(fl).msg_type(), SADB_X_ADDFLOW);
    assert_eq!(got[4], Got::Ctl(Ctl::EndSnap));
    assert_eq!(got.len(), 5, "{got:?}");

    // Live changes: UPDATE arrives as ADD, with the originator's pid.
    let dst = ip("203.0.113.5");
    let spi = w
        .try_ike_write(0, &getspi(ip("192.0.2.1"), dst, 0x4000, 0x4fff))
        .unwrap()
        .spi;
    let spi = spi.unwrap();
    w.ike_write(0, &esp_update(spi, ip("192.0.2.1"), dst));
    w.ike_write(0, &esp_delete(0x2001, ip("192.0.2.1"), ip("198.51.100.1")));
    w.settle();
    let got = c.recv(&mut w);
    assert_eq!(got.len(), 2, "GETSPI is not forwarded: {got:?}");
    let Got::Pfkey(a) = &got[0] else { panic!() };
    let a = msg(a);
    assert_eq!(a.msg_type(), SADB_ADD, "UPDATE turned into ADD");
    assert_eq!(spi_of(&a), spi);
    assert!(a.find(SADB_EXT_KEY_ENCRYPT).is_some());
    assert_eq!(a.pid(), IKE_PID, "the originator's pid is left as it was");
    let Got::Pfkey(d) = &got[1] else { panic!() };
    assert_eq!((msg(d).msg_type(), spi_of(&msg(d))), (SADB_DELETE, 0x2001));
}

#[test]
fn slave_applies_an_openbsd_masters_data_only_after_its_state() {
    let mut w = TestWorld::new(vec![config(0, 2, "mode slave\nprotocol legacy")]);
    w.lan.chunking = true;
    w.run_for(100);
    assert_eq!(
        w.lan.hosts[0].demoted, 2,
        "demoted until the first snapshot"
    );
    let x = w.ext_connect(0, addr(1)).unwrap();
    let mut c = OpenBsd::new(x);

    // Data before the peer said it is MASTER: refused like the original.
    let early = esp_add(0x5001, ip("192.0.2.1"), ip("198.51.100.1"));
    c.pfkey(&mut w, &early, 7);
    w.run_for(100);
    assert_eq!(c.recv(&mut w), [Got::Ctl(Ctl::Error(CtlType::Reserved))]);
    assert!(
        w.lan.hosts[0].written.is_empty(),
        "nothing reached the kernel"
    );

    c.ctl(&mut w, Ctl::State(RunState::Master));
    w.run_for(100);
    assert_eq!(
        c.recv(&mut w),
        [Got::Ctl(Ctl::Ack {
            about: CtlType::State,
            state: RunState::Slave
        })]
    );
    assert_eq!(w.peers(0)[0].state, Some(RunState::Master));

    // A C master's snapshot, then live data.
    let mut flush = vec![0u8; 16];
    sasyncd_core::pfkey::build_flush(0, 1, 4242, &mut flush).unwrap();
    let sent = [
        flush,
        esp_add(0x5002, ip("192.0.2.1"), ip("198.51.100.2")),
        flow(ip("192.0.2.0"), ip("198.51.100.0")),
    ];
    for (i, m) in sent.iter().enumerate() {
        c.pfkey(&mut w, m, 100 + i as u32);
    }
    c.ctl(&mut w, Ctl::EndSnap);
    let live = esp_delete(0x5002, ip("192.0.2.1"), ip("198.51.100.2"));
    c.pfkey(&mut w, &live, 200);
    w.run_for(100);
    assert!(
        c.recv(&mut w).is_empty(),
        "nothing to answer: {:?}",
        w.lan.hosts[0].written
    );

    let written = w.lan.hosts[0].written.clone();
    assert_eq!(written.len(), 4);
    for (k, (out, orig)) in written.iter().zip(sent.iter().chain([&live])).enumerate() {
        // Only pid and seq are rewritten (§11.4).
        assert_eq!(out.len(), orig.len());
        assert_eq!(out[..8], orig[..8]);
        assert_eq!(out[16..], orig[16..]);
        let m = msg(out);
        assert_eq!(m.pid(), w.lan.hosts[0].pid, "our pid");
        assert_eq!(m.seq(), k as u32 + 1, "our counter, from 1");
    }
    nothing_refused(&w);
    assert_eq!(
        (
            w.lan.hosts[0].kernel.sa_count(),
            w.lan.hosts[0].kernel.flow_count()
        ),
        (0, 1)
    );
    assert_eq!(w.lan.hosts[0].demoted, 1, "ENDSNAP released the demotion");
}

#[test]
fn slave_dials_an_openbsd_master_and_announces_first() {
    let mut w = TestWorld::new(vec![config(0, 2, "mode slave\nprotocol legacy")]);
    w.ext_listen(addr(1));
    w.settle();
    assert_eq!(w.lan.ext.len(), 1, "the slave dialled the C master");
    let mut c = OpenBsd::new(0);
    assert_eq!(c.recv(&mut w), [Got::Ctl(Ctl::State(RunState::Slave))]);
    c.ctl(
        &mut w,
        Ctl::Ack {
            about: CtlType::State,
            state: RunState::Master,
        },
    );
    c.pfkey(
        &mut w,
        &esp_add(0x6001, ip("192.0.2.1"), ip("198.51.100.1")),
        1,
    );
    c.ctl(&mut w, Ctl::EndSnap);
    w.run_for(100);
    assert!(c.recv(&mut w).is_empty());
    assert_eq!(w.lan.hosts[0].kernel.sa_count(), 1);
    assert_eq!(w.lan.hosts[0].demoted, 1);
}

/// Reference §16.1 / §16.2, key `sasyncd-test-key`, IV a0..af.
const IV: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
const FRAME_A: [u8; 64] = [
    0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xb0, 0xe0, 0xf9, 0x84,
    0x74, 0xdb, 0x56, 0x27, 0xea, 0xd9, 0xa1, 0x2c, 0xf2, 0x0c, 0x33, 0xd6, 0x3a, 0xe5, 0x05, 0x66,
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    0x8c, 0x29, 0x68, 0x6c, 0x74, 0xc4, 0xc1, 0xbb, 0x43, 0x25, 0xfd, 0x25, 0x4d, 0xca, 0x30, 0x7f,
];
const FRAME_B: [u8; 64] = [
    0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x97, 0xa6, 0x7b, 0x79,
    0xa7, 0x99, 0xd0, 0x76, 0x45, 0xe9, 0xba, 0x22, 0xf6, 0x37, 0xb1, 0xec, 0xbc, 0x76, 0x25, 0xa3,
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    0xe6, 0xb1, 0x0d, 0x48, 0x84, 0x56, 0x0b, 0x26, 0x8e, 0x4f, 0x6e, 0x8b, 0x63, 0x56, 0xa0, 0xa3,
];
const FLUSH_B: [u8; 16] = [2, 9, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0x39, 0x30, 0, 0];

#[test]
fn worked_frames_a_and_b() {
    // Our codec builds them byte for byte.
    let codec = LegacyCodec::new(SoftCrypto, KEY.as_bytes()).unwrap();
    let mut out = [0u8; 64];
    let state = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0];
    assert_eq!(codec.encode(MsgType::Ctl, &state, IV, &mut out), Ok(64));
    assert_eq!(out, FRAME_A);
    assert_eq!(
        codec.encode(MsgType::PfkeyData, &FLUSH_B, IV, &mut out),
        Ok(64)
    );
    assert_eq!(out, FRAME_B);

    // A slave fed frame A records a MASTER and acks; frame B flushes its
    // kernel, written with its own pid and seq.
    let mut w = TestWorld::new(vec![config(0, 2, "mode slave\nprotocol legacy")]);
    w.lan.hosts[0]
        .kernel
        .manual_write(&esp_add(0x7001, ip("192.0.2.1"), ip("198.51.100.1")))
        .unwrap();
    let x = w.ext_connect(0, addr(1)).unwrap();
    let mut c = OpenBsd::new(x);
    w.ext_send(x, &FRAME_A);
    w.settle();
    assert_eq!(
        c.recv(&mut w),
        [Got::Ctl(Ctl::Ack {
            about: CtlType::State,
            state: RunState::Slave
        })]
    );
    w.ext_send(x, &FRAME_B);
    w.settle();
    assert_eq!(
        w.lan.hosts[0].kernel.sa_count(),
        0,
        "frame B flushed the SADB"
    );
    let written = msg(&w.lan.hosts[0].written[0]);
    assert_eq!(written.msg_type(), SADB_FLUSH);
    assert_eq!((written.pid(), written.seq()), (w.lan.hosts[0].pid, 1));

    // A master fed frame A refuses the second master (§10.3).
    let mut w = TestWorld::new(vec![config(0, 2, "mode master\nprotocol legacy")]);
    let x = w.ext_connect(0, addr(1)).unwrap();
    let mut c = OpenBsd::new(x);
    w.ext_send(x, &FRAME_A);
    w.settle();
    assert_eq!(c.recv(&mut w), [Got::Ctl(Ctl::Error(CtlType::State))]);
}

/// The original's view of its one peer (reference §8.3–§8.6): a single
/// socket at a time. It uses its own outbound connection until it accepts
/// one from the peer, which replaces it without closing it (D-11): the
/// replaced one is never read or written again. It writes only to the
/// socket it holds.
struct Original {
    codec: LegacyCodec<SoftCrypto>,
    deframer: LegacyDeframer,
    socket: usize,
    iv: u8,
}

impl Original {
    /// Its start-up connect to node 0 (the node accepts it).
    fn dial(w: &mut TestWorld, state: RunState) -> Original {
        let y = w.ext_connect(0, addr(1)).expect("a configured peer");
        let mut o = Original {
            codec: LegacyCodec::new(SoftCrypto, KEY.as_bytes()).unwrap(),
            deframer: LegacyDeframer::new(),
            socket: y,
            iv: 0,
        };
        // The connector announces its state (§8.3).
        o.ctl(w, Ctl::State(state));
        o
    }

    /// Its main loop accepts the node's connection `x`: from now on it
    /// reads and writes only that one.
    fn accept(&mut self, x: usize) {
        self.socket = x;
        self.deframer = LegacyDeframer::new();
    }

    fn send(&mut self, w: &mut TestWorld, ty: MsgType, plaintext: &[u8]) {
        assert!(
            w.lan.ext[self.socket].open,
            "the node closed the socket we use"
        );
        self.iv = self.iv.wrapping_add(1);
        let mut out = [0u8; MAX_FRAME];
        let n = self
            .codec
            .encode(ty, plaintext, [self.iv; 16], &mut out)
            .unwrap();
        w.ext_send(self.socket, &out[..n]);
    }

    fn ctl(&mut self, w: &mut TestWorld, ctl: Ctl) {
        let mut b = [0u8; 12];
        assert_eq!(ctl.encode(&mut b), Ok(12));
        self.send(w, MsgType::Ctl, &b);
    }

    fn pfkey(&mut self, w: &mut TestWorld, msg: &[u8], seq: u32) {
        let mut m = msg.to_vec();
        set_pid_seq(&mut m, 4242, seq);
        self.send(w, MsgType::PfkeyData, &m);
    }

    /// What arrived on the socket it reads (the others pile up unread).
    fn recv(&mut self, w: &mut TestWorld) -> Vec<Got> {
        let bytes = w.ext_take(self.socket);
        let mut input = &bytes[..];
        let mut got = Vec::new();
        while let Some(frame) = self.deframer.next_frame(&mut input).unwrap() {
            let (ty, pt) = self.codec.decode(frame).expect("a frame it accepts");
            got.push(match ty {
                MsgType::Ctl => Got::Ctl(Ctl::decode(pt).unwrap()),
                MsgType::PfkeyData => Got::Pfkey(pt.to_vec()),
            });
        }
        got
    }
}

/// Both dial at once. `theirs_first`: the original's connection reaches
/// the node before the node's own dial completes; otherwise after.
fn crossed_start(role: &str, theirs_first: bool) -> (TestWorld, Original) {
    let mut w = TestWorld::new(vec![config(0, 2, &format!("mode {role}\nprotocol legacy"))]);
    w.ext_listen(addr(1));
    let theirs = if role == "master" {
        RunState::Slave
    } else {
        RunState::Master
    };
    let mut o = if theirs_first {
        let o = Original::dial(&mut w, theirs);
        w.settle();
        o
    } else {
        w.settle();
        Original::dial(&mut w, theirs)
    };
    w.settle();
    // The node's connection is the other scripted end (ext_listen).
    assert_eq!(w.lan.ext.len(), 2, "both dialled");
    let x = (0..2).find(|&e| e != o.socket).unwrap();
    o.accept(x);
    (w, o)
}

/// Issue 7, legacy crossed start: whatever order the two connections come
/// up in, every message gets through both ways, because the node sends on
/// the connection the original reads (its own) and reads both.
#[test]
fn crossed_start_with_an_openbsd_master() {
    for theirs_first in [false, true] {
        let (mut w, mut o) = crossed_start("slave", theirs_first);
        // The node announced itself on its own connection, which the
        // original now reads.
        let got = o.recv(&mut w);
        assert!(
            got.contains(&Got::Ctl(Ctl::State(RunState::Slave))),
            "theirs_first={theirs_first}: {got:?}"
        );
        o.ctl(
            &mut w,
            Ctl::Ack {
                about: CtlType::State,
                state: RunState::Master,
            },
        );
        // Its snapshot timer fires: FLUSH, SAs, ENDSNAP; then live data.
        let mut flush = vec![0u8; 16];
        sasyncd_core::pfkey::build_flush(0, 1, 4242, &mut flush).unwrap();
        o.pfkey(&mut w, &flush, 1);
        o.pfkey(
            &mut w,
            &esp_add(0x8001, ip("192.0.2.1"), ip("198.51.100.1")),
            2,
        );
        o.pfkey(&mut w, &flow(ip("192.0.2.0"), ip("198.51.100.0")), 3);
        o.ctl(&mut w, Ctl::EndSnap);
        o.pfkey(
            &mut w,
            &esp_add(0x8002, ip("192.0.2.1"), ip("198.51.100.2")),
            4,
        );
        w.run_for(3000);
        let k = &w.lan.hosts[0].kernel;
        assert_eq!(
            (k.sa_count(), k.flow_count()),
            (2, 1),
            "theirs_first={theirs_first}: every message applied"
        );
        assert_eq!(w.lan.hosts[0].demoted, 1, "ENDSNAP released the demotion");
        assert!(w.peers(0)[0].connected);
        // The node answers the original's state probes where it reads.
        o.recv(&mut w);
        o.ctl(&mut w, Ctl::State(RunState::Master));
        w.run_for(100);
        assert_eq!(
            o.recv(&mut w),
            [Got::Ctl(Ctl::Ack {
                about: CtlType::State,
                state: RunState::Slave
            })],
            "theirs_first={theirs_first}"
        );
    }
}

#[test]
fn crossed_start_with_an_openbsd_slave() {
    for theirs_first in [false, true] {
        let (mut w, mut o) = crossed_start("master", theirs_first);
        w.lan.hosts[0]
            .kernel
            .manual_write(&esp_add(0x9001, ip("192.0.2.1"), ip("198.51.100.1")))
            .unwrap();
        w.run_for(3000);
        // Our announcement, the snapshot and the live data arrive on the
        // connection the original reads.
        let spi = w.next_spi();
        w.ike_write(0, &esp_add(spi, ip("192.0.2.1"), ip("198.51.100.9")));
        w.run_for(100);
        let got = o.recv(&mut w);
        let adds: Vec<u32> = got
            .iter()
            .filter_map(|g| match g {
                Got::Pfkey(m) if msg(m).msg_type() == SADB_ADD => Some(spi_of(&msg(m))),
                _ => None,
            })
            .collect();
        assert!(
            got.contains(&Got::Ctl(Ctl::State(RunState::Master))),
            "theirs_first={theirs_first}: {got:?}"
        );
        assert!(
            got.contains(&Got::Ctl(Ctl::EndSnap)),
            "theirs_first={theirs_first}: a whole snapshot: {got:?}"
        );
        assert!(
            adds.contains(&spi),
            "theirs_first={theirs_first}: the live change: {adds:x?}"
        );
        // And the original's messages are read.
        o.ctl(&mut w, Ctl::State(RunState::Slave));
        w.run_for(100);
        assert!(o.recv(&mut w).contains(&Got::Ctl(Ctl::Ack {
            about: CtlType::State,
            state: RunState::Master
        })));
    }
}

/// Issue 19, defect 4. The original master sends its kernel's dump records
/// as they are, only their type set to ADD (§11.5): X_COUNTER, X_REPLAY,
/// X_LIFETIME_LASTUSE, X_MTU and a bundle's X_SA2 trio stay in, and an
/// OpenBSD kernel refuses each of them on ADD (EINVAL at the parser, EPERM
/// when it answers the writer). It also forwards its IKE daemon's UPDATEs
/// unchanged (§11.3), which complete a larval SA the slave never had. Our
/// slave must get all of it into its kernel, which keeps OpenBSD's rules.
#[test]
fn slave_writes_an_openbsd_masters_raw_records_as_its_kernel_accepts() {
    use sasyncd_core::pfkey::{records, SaKey};
    use sasyncd_sim::kernel::Kernel;
    use sasyncd_sim::pfmsg::{addr_ext, message, proto_ext, sa_ext};

    const C_PID: u32 = 4242;
    let (a, b) = (ip("192.0.2.1"), ip("198.51.100.9"));
    let key = |satype, spi| SaKey {
        satype,
        spi,
        dst: b,
        rdomain: 0,
    };

    // The original master's kernel: an SA that carried traffic and learnt
    // its path MTU, an IPcomp+ESP bundle and a flow, written by its IKE
    // daemon.
    let mut k = Kernel::new(Rng::new(19));
    let mut seq = 0;
    let ipcomp = message(
        SADB_ADD,
        SADB_X_SATYPE_IPCOMP,
        0,
        0,
        &[
            sa_ext(SADB_EXT_SA, 0x300, SADB_SASTATE_MATURE, 0, 2, 0),
            addr_ext(SADB_EXT_ADDRESS_SRC, a, 0),
            addr_ext(SADB_EXT_ADDRESS_DST, b, 0),
        ],
    );
    let group = message(
        SADB_X_GRPSPIS,
        SADB_X_SATYPE_IPCOMP,
        0,
        0,
        &[
            sa_ext(SADB_EXT_SA, 0x300, SADB_SASTATE_MATURE, 0, 0, 0),
            addr_ext(SADB_EXT_ADDRESS_DST, b, 0),
            sa_ext(SADB_X_EXT_SA2, 0x6002, SADB_SASTATE_MATURE, 0, 0, 0),
            addr_ext(SADB_X_EXT_DST2, b, 0),
            proto_ext(SADB_X_EXT_SATYPE2, SADB_SATYPE_ESP, 0),
        ],
    );
    for m in [
        esp_add(0x6001, a, b),
        ipcomp,
        esp_add(0x6002, a, b),
        group,
        flow(a, b),
    ] {
        seq += 1;
        let mut m = m;
        set_pid_seq(&mut m, IKE_PID, seq);
        k.write(&m, IKE_PID)
            .unwrap_or_else(|e| panic!("{e:?} for {m:?}"));
    }
    for _ in 0..40 {
        k.traffic();
    }
    assert!(k.set_mtu(&key(SADB_SATYPE_ESP, 0x6001), 1400));
    let sadb = k.sadb_dump(0);
    let spd = k.spd_dump();
    // The records hold what the kernel refuses on ADD, or this test would
    // prove nothing.
    let has = |ext| records(&sadb).any(|r| r.unwrap().find(ext).is_some());
    for ext in [
        SADB_X_EXT_COUNTER,
        SADB_X_EXT_REPLAY,
        SADB_X_EXT_LIFETIME_LASTUSE,
        SADB_X_EXT_MTU,
        SADB_X_EXT_SA2,
        SADB_X_EXT_DST2,
        SADB_X_EXT_SATYPE2,
    ] {
        assert!(has(ext), "no dump record carries extension {ext}");
    }

    let mut w = TestWorld::new(vec![config(0, 2, "mode slave\nprotocol legacy")]);
    w.run_for(100);
    let x = w.ext_connect(0, addr(1)).unwrap();
    let mut c = OpenBsd::new(x);
    c.ctl(&mut w, Ctl::State(RunState::Master));
    w.run_for(100);
    c.recv(&mut w);

    // The snapshot as §11.5 sends it: FLUSH, SA records as ADD, SPD records
    // as X_ADDFLOW, ENDSNAP.
    let mut flush = vec![0u8; 16];
    sasyncd_core::pfkey::build_flush(0, seq, C_PID, &mut flush).unwrap();
    c.pfkey(&mut w, &flush, seq);
    for (dump, ty) in [(&sadb, SADB_ADD), (&spd, SADB_X_ADDFLOW)] {
        for r in records(dump) {
            let mut m = r.unwrap().bytes().to_vec();
            m[1] = ty;
            seq += 1;
            c.pfkey(&mut w, &m, seq);
        }
    }
    c.ctl(&mut w, Ctl::EndSnap);
    w.run_for(200);
    nothing_refused(&w);
    assert_eq!(
        (
            w.lan.hosts[0].kernel.sa_count(),
            w.lan.hosts[0].kernel.flow_count()
        ),
        (3, 1)
    );

    // Live: the IKE daemon reserves an SPI and completes it. The original
    // skips the GETSPI and forwards the UPDATE's promiscuous copy as is.
    k.set_promisc(C_PID, true);
    for m in [getspi(a, b, 0x7000, 0x7000), esp_update(0x7000, a, b)] {
        seq += 1;
        let mut m = m;
        set_pid_seq(&mut m, IKE_PID, seq);
        k.write(&m, IKE_PID).unwrap();
    }
    let mut forwarded = 0;
    while let Some(p) = k.read_promisc(C_PID) {
        let inner = p[16..].to_vec();
        if inner[1] == SADB_GETSPI {
            continue;
        }
        seq += 1;
        c.pfkey(&mut w, &inner, seq);
        forwarded += 1;
    }
    assert_eq!(forwarded, 1, "the UPDATE");
    w.run_for(200);
    nothing_refused(&w);
    assert_eq!(
        w.lan.hosts[0]
            .kernel
            .sa_state(&key(SADB_SATYPE_ESP, 0x7000)),
        Some(SADB_SASTATE_MATURE)
    );
    // The master's SAs, keys included, are the slave's.
    for (satype, spi) in [
        (SADB_SATYPE_ESP, 0x6001),
        (SADB_X_SATYPE_IPCOMP, 0x300),
        (SADB_SATYPE_ESP, 0x6002),
        (SADB_SATYPE_ESP, 0x7000),
    ] {
        assert!(w.lan.hosts[0].kernel.has_mature_sa(&key(satype, spi)));
    }
    // The original sends no X_GRPSPIS in a snapshot: the bundle cannot
    // be restored from it (doc/PROTOCOL.md §9).
    assert!(w.lan.hosts[0].kernel.bundles().is_empty());
}
