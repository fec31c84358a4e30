//! PF_KEY messages from the kernel or a peer: header view, extension walk,
//! typed views, the filter under every policy, promiscuous unwrap, the
//! snapshot rewrites, digest input, identity keys and dump records.
//!
//! Input: the raw message (or dump, or promiscuous copy).
#![no_main]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{
    build_delete, build_delflow, canonical_digest_input, dump_to_add, filter, flow_key,
    promisc_writer_pid, records, sa_key, spd_dump_to_addflow, unwrap_promisc, AddressExt, ExtSet,
    FilterPolicy, KeyExt, LifetimeExt, Msg, PfkeyError, ProtocolExt, RdomainExt, SaExt, SkipReason,
    Verdict, PFKEY_MSG_MAXSZ, SNAPSHOT_ADD_KEEP,
};
use sasyncd_core::state::FlushMode;

/// The peers of the seeds (and of `sasyncd.conf.example`), plus loopback.
const PEERS: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
    IpAddr::V4(Ipv4Addr::LOCALHOST),
];

fuzz_target!(|data: &[u8]| {
    one_message(data);
    if let Some(inner) = unwrap_promisc(data) {
        assert!(data.len() >= 32);
        assert_eq!(inner, &data[HDR_LEN..]);
        assert!(promisc_writer_pid(data).is_some());
        one_message(inner);
    } else {
        assert_eq!(promisc_writer_pid(data), None);
    }

    // As a sysctl dump: records are consecutive and inside the buffer.
    let mut total = 0usize;
    let mut count = 0usize;
    for r in records(data) {
        count += 1;
        // Every item but a final error consumes at least one 8-byte unit.
        assert!(count <= data.len() / CHUNK + 1, "records() does not end");
        if let Ok(m) = r {
            total += m.len_bytes();
            assert!(total <= data.len());
            // Each record is exactly the next bytes of the dump.
            assert!(m.len_bytes() >= HDR_LEN);
        }
    }
});

fn one_message(data: &[u8]) {
    let msg = match Msg::parse(data) {
        Ok(m) => m,
        Err(e) => {
            assert!(matches!(
                e,
                PfkeyError::Short | PfkeyError::BadVersion(_) | PfkeyError::BadLength
            ));
            return;
        }
    };
    assert_eq!(msg.version(), PF_KEY_V2);
    assert_eq!(msg.len_bytes(), data.len());
    assert_eq!(data.len() % CHUNK, 0);
    let _ = (
        msg.errno(),
        msg.satype(),
        msg.reserved(),
        msg.seq(),
        msg.pid(),
    );
    let _ = msg_type_name(msg.msg_type());

    let well_formed = views(&msg);
    assert_eq!(well_formed, msg.check_extensions().is_ok());
    verdicts(&msg, well_formed);

    let mut out = [0u8; PFKEY_MSG_MAXSZ];
    let add = dump_to_add(data, &mut out).map(|n| out[..n].to_vec());
    if let Ok(add) = &add {
        check_rebuilt(&msg, add, SADB_ADD, SNAPSHOT_ADD_KEEP);
        assert_eq!(sa_key(&Msg::parse(add).unwrap()), sa_key(&msg));
        // Idempotent: an ADD rewritten again is the same ADD.
        let n = dump_to_add(add, &mut out).expect("ADD → ADD");
        assert_eq!(&out[..n], &add[..]);
    }
    let flow = spd_dump_to_addflow(data, &mut out).map(|n| out[..n].to_vec());
    if let Ok(flow) = &flow {
        check_rebuilt(&msg, flow, SADB_X_ADDFLOW, ADDFLOW_ALLOWED);
        assert_eq!(flow_key(&Msg::parse(flow).unwrap()), flow_key(&msg));
        let n = spd_dump_to_addflow(flow, &mut out).expect("ADDFLOW → ADDFLOW");
        assert_eq!(&out[..n], &flow[..]);
    }

    match canonical_digest_input(&msg, &mut out) {
        Ok(n) => {
            let canon = out[..n].to_vec();
            let cm = Msg::parse(&canon).expect("canonical form parses");
            assert_eq!(
                (cm.seq(), cm.pid(), cm.errno(), cm.reserved()),
                (0, 0, 0, 0)
            );
            assert!(matches!(cm.msg_type(), SADB_ADD | SADB_X_ADDFLOW));
            // Ascending types, each once.
            let types: Vec<u16> = cm.extensions().map(|e| e.unwrap().ext_type()).collect();
            assert!(types.windows(2).all(|w| w[0] < w[1]), "{types:?}");
            // Idempotent, and the identity survives it.
            assert_eq!(canonical_digest_input(&cm, &mut out), Ok(n));
            assert_eq!(&out[..n], &canon[..]);
            if cm.msg_type() == SADB_ADD {
                assert_eq!(sa_key(&cm), sa_key(&msg));
            } else {
                assert_eq!(flow_key(&cm), flow_key(&msg));
            }
            // The master's entry and the slave's copy digest alike.
            for copy in [&add, &flow].into_iter().flatten() {
                let c = Msg::parse(copy).unwrap();
                if c.msg_type() == cm.msg_type() {
                    assert_eq!(canonical_digest_input(&c, &mut out), Ok(n));
                    assert_eq!(&out[..n], &canon[..]);
                }
            }
        }
        Err(_) => assert!(add.is_err() && flow.is_err()),
    }

    if let Ok(n) = build_delete(&msg, 1, 2, &mut out) {
        let d = Msg::parse(&out[..n]).expect("DELETE parses");
        assert_eq!(d.msg_type(), SADB_DELETE);
        assert_eq!(sa_key(&d), sa_key(&msg));
    }
    if let Ok(n) = build_delflow(&msg, 1, 2, &mut out) {
        let d = Msg::parse(&out[..n]).expect("DELFLOW parses");
        assert_eq!(d.msg_type(), SADB_X_DELFLOW);
        assert_eq!(flow_key(&d), flow_key(&msg));
    }
}

/// Walks the extensions through every typed view; whether all were
/// well-framed.
fn views(msg: &Msg<'_>) -> bool {
    let mut at = HDR_LEN;
    for e in msg.extensions() {
        let Ok(e) = e else { return false };
        let b = e.bytes();
        assert!(!b.is_empty() && b.len() % CHUNK == 0);
        // Extensions are consecutive slices of the message.
        assert_eq!(&msg.bytes()[at..at + b.len()], b);
        at += b.len();
        assert_eq!(e.body().len(), b.len() - EXT_HDR_LEN);
        assert_eq!(
            msg.find(e.ext_type()).map(|f| f.ext_type()),
            Some(e.ext_type())
        );
        if let Ok(v) = SaExt::new(e) {
            let _ = (
                v.spi(),
                v.replay(),
                v.state(),
                v.auth(),
                v.encrypt(),
                v.flags(),
            );
        }
        if let Ok(v) = LifetimeExt::new(e) {
            let _ = (v.allocations(), v.bytes(), v.addtime(), v.usetime());
        }
        if let Ok(v) = AddressExt::new(e) {
            assert!(v.sockaddr_bytes().len() + AddressExt::LEN == b.len());
            if let Ok(sa) = v.sockaddr() {
                let _ = (sa.ip, sa.port);
            }
        }
        if let Ok(v) = KeyExt::new(e) {
            assert_eq!(v.key().len(), usize::from(v.bits()).div_ceil(8));
        }
        if let Ok(v) = ProtocolExt::new(e) {
            let _ = (v.proto(), v.direction(), v.flags());
        }
        if let Ok(v) = RdomainExt::new(e) {
            let _ = (v.dom1(), v.dom2());
        }
    }
    true
}

/// The filter under all six policies, and how the verdicts must relate.
fn verdicts(msg: &Msg<'_>, well_formed: bool) {
    let modes = [FlushMode::Startup, FlushMode::Never, FlushMode::Sync];
    let v = |flushmode, skipslave| {
        filter(
            msg,
            &FilterPolicy {
                flushmode,
                skipslave,
            },
            &PEERS,
        )
    };
    for &mode in &modes {
        let plain = v(mode, false);
        let skip = v(mode, true);
        if plain == Verdict::Sync {
            assert!(well_formed);
            assert_eq!(msg.errno(), 0);
        }
        // skipslave only ever removes messages.
        if skip == Verdict::Sync {
            assert_eq!(plain, Verdict::Sync);
        }
        if plain == Verdict::Sync && skip != Verdict::Sync {
            assert!(matches!(
                skip,
                Verdict::Skip(SkipReason::Peer(_) | SkipReason::BadAddress(_))
            ));
        }
        if let Verdict::Skip(SkipReason::Peer(ip)) = skip {
            assert!(PEERS.contains(&ip));
        }
        // With no peers, skipslave changes nothing.
        let nopeers = filter(
            msg,
            &FilterPolicy {
                flushmode: mode,
                skipslave: true,
            },
            &[],
        );
        if plain == Verdict::Sync {
            assert!(matches!(
                nopeers,
                Verdict::Sync | Verdict::Skip(SkipReason::BadAddress(_))
            ));
        }
    }
    // Flush mode only matters for FLUSH.
    if msg.msg_type() != SADB_FLUSH {
        assert_eq!(v(FlushMode::Startup, false), v(FlushMode::Never, false));
        assert_eq!(v(FlushMode::Startup, false), v(FlushMode::Sync, false));
    }
}

/// A rewritten message: parses, has the wanted type, the source's satype,
/// seq and pid, only allowed extensions, each once.
fn check_rebuilt(src: &Msg<'_>, out: &[u8], ty: u8, allowed: ExtSet) {
    assert!(out.len() <= PFKEY_MSG_MAXSZ);
    let m = Msg::parse(out).expect("rewrite parses");
    assert_eq!(m.msg_type(), ty);
    assert_eq!((m.errno(), m.reserved()), (0, 0));
    assert_eq!(
        (m.satype(), m.seq(), m.pid()),
        (src.satype(), src.seq(), src.pid())
    );
    let mut seen = ExtSet::EMPTY;
    for e in m.extensions() {
        let t = e.expect("rewrite is well-formed").ext_type();
        assert!(allowed.contains(t), "extension {t} kept");
        assert!(!seen.contains(t), "extension {t} twice");
        seen = seen.with(t);
    }
}
