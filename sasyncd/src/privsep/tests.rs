use super::*;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use proptest::prelude::*;
use sasyncd_core::node::Table;

use crate::conffile::MAX_CONFIG_BYTES;
use crate::secret::SecretBytes;

fn secret(bytes: &[u8]) -> SecretBytes {
    SecretBytes::from_slice(bytes)
}

/// One of every message, with values away from zero.
fn to_priv_samples() -> Vec<ToPriv> {
    vec![
        ToPriv::DumpStart {
            dump: 0x0102_0304,
            table: Table::Sadb,
        },
        ToPriv::DumpStart {
            dump: u32::MAX,
            table: Table::Spd,
        },
        ToPriv::DumpMore { dump: 7 },
        ToPriv::DumpCancel { dump: 8 },
        ToPriv::Demote { raise: true },
        ToPriv::Demote { raise: false },
        ToPriv::Ike {
            id: 42,
            active: true,
        },
        ToPriv::Ike {
            id: 43,
            active: false,
        },
        ToPriv::LinkState,
        ToPriv::Reload,
        ToPriv::Reloaded {
            ok: true,
            message: String::new(),
        },
        ToPriv::reloaded(false, "/etc/sasyncd.conf:3: missing sharedkey — ü"),
    ]
}

fn to_net_samples() -> Vec<ToNet> {
    vec![
        ToNet::DumpRecords {
            dump: 1,
            records: secret(&[0xaa; 16]),
        },
        ToNet::DumpRecords {
            dump: 2,
            records: secret(&vec![0x5c; MAX_BATCH_BYTES]),
        },
        ToNet::DumpEnd { dump: 3, ok: true },
        ToNet::DumpEnd { dump: 4, ok: false },
        ToNet::DemoteResult { ok: true },
        ToNet::IkeResult { id: 9, ok: false },
        ToNet::LinkState { state: 4 },
        ToNet::CarpUnreadable,
        ToNet::Pfsync { up: false },
        ToNet::Pfsync { up: true },
        ToNet::Config {
            text: secret(b"interface carp0\nsharedkey sasyncd-test-key\n"),
        },
        ToNet::Config {
            text: secret(&vec![b'#'; MAX_CONFIG_BYTES]),
        },
        ToNet::Config { text: secret(b"") },
        ToNet::Shutdown,
        ToNet::ReloadRefused {
            reason: String::new(),
        },
        ToNet::reload_refused("/etc/sasyncd.conf: bad owner, type or mode — ü"),
        ToNet::PeerAddrs { addrs: vec![] },
        ToNet::PeerAddrs {
            addrs: vec!["192.0.2.2".parse().unwrap(), "2001:db8::2".parse().unwrap()],
        },
        ToNet::PeerAddrs {
            addrs: vec!["10.0.0.1".parse().unwrap(); sasyncd_core::config::MAX_PEERS],
        },
    ]
}

/// More addresses than peers, a length that is not whole addresses, or a
/// family byte that is neither 4 nor 6 is refused.
#[test]
fn peer_addrs_are_bounded_and_checked() {
    let many = ToNet::PeerAddrs {
        addrs: vec!["10.0.0.1".parse().unwrap(); sasyncd_core::config::MAX_PEERS + 1],
    };
    assert!(many.encode(&mut Vec::new()).is_err());
    let ok = frame(&ToNet::PeerAddrs {
        addrs: vec!["10.0.0.1".parse().unwrap()],
    });
    let mut short = ok.clone();
    short.pop();
    short[..4].copy_from_slice(&16u32.to_le_bytes());
    assert!(ToNet::decode(&short).is_err());
    let mut family = ok.clone();
    family[HEADER_LEN] = 5;
    assert!(ToNet::decode(&family).is_err());
    assert!(ToNet::decode(&ok).is_ok());
}

fn frame<M: Message>(m: &M) -> Vec<u8> {
    m.to_frame().unwrap().to_vec()
}

fn header(len: u32, ty: u16, reserved: u16) -> Vec<u8> {
    let mut v = len.to_le_bytes().to_vec();
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&reserved.to_le_bytes());
    v
}

fn raw(ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = header(payload.len() as u32, ty, 0);
    v.extend_from_slice(payload);
    v
}

#[test]
fn every_message_round_trips() {
    for m in to_priv_samples() {
        let f = frame(&m);
        assert_eq!(f.len(), m.encoded_len());
        assert_eq!(ToPriv::decode(&f), Ok(m));
    }
    for m in to_net_samples() {
        let f = frame(&m);
        assert_eq!(f.len(), m.encoded_len());
        assert_eq!(ToNet::decode(&f), Ok(m));
    }
}

/// The layout in the module documentation, byte for byte.
#[test]
fn wire_layout() {
    let m = ToPriv::DumpStart {
        dump: 0x0102_0304,
        table: Table::Spd,
    };
    assert_eq!(frame(&m), [5, 0, 0, 0, 1, 0, 0, 0, 4, 3, 2, 1, 2]);
    let m = ToNet::IkeResult { id: 0x10, ok: true };
    assert_eq!(frame(&m), [5, 0, 0, 0, 0x84, 0, 0, 0, 0x10, 0, 0, 0, 1]);
    assert_eq!(frame(&ToNet::Shutdown), [0, 0, 0, 0, 0x88, 0, 0, 0]);
    let m = ToPriv::reloaded(false, "no");
    assert_eq!(frame(&m), [3, 0, 0, 0, 8, 0, 0, 0, 0, b'n', b'o']);
    let m = ToNet::reload_refused("no");
    assert_eq!(frame(&m), [2, 0, 0, 0, 0x89, 0, 0, 0, b'n', b'o']);
}

#[test]
fn short_and_trailing_input() {
    for m in to_priv_samples() {
        let f = frame(&m);
        for cut in [0, 1, HEADER_LEN - 1, HEADER_LEN, f.len() - 1] {
            if cut < f.len() {
                assert_eq!(ToPriv::decode(&f[..cut]), Err(ProtoError::Truncated));
            }
        }
        let mut long = f.clone();
        long.extend_from_slice(&[0, 0]);
        assert_eq!(ToPriv::decode(&long), Err(ProtoError::Trailing(2)));
    }
    for m in to_net_samples() {
        let f = frame(&m);
        assert_eq!(ToNet::decode(&f[..f.len() - 1]), Err(ProtoError::Truncated));
        let mut long = f.clone();
        long.push(0);
        assert_eq!(ToNet::decode(&long), Err(ProtoError::Trailing(1)));
    }
}

#[test]
fn header_errors() {
    let too_big = (MAX_PAYLOAD + 1) as u32;
    // Refused from the header alone, before any payload is buffered.
    let h = header(too_big, types::CONFIG, 0);
    assert_eq!(frame_len(&h), Err(ProtoError::Oversized(too_big)));
    assert_eq!(ToNet::decode(&h), Err(ProtoError::Oversized(too_big)));
    assert_eq!(
        ToNet::decode(&header(u32::MAX, types::SHUTDOWN, 0)),
        Err(ProtoError::Oversized(u32::MAX))
    );
    assert_eq!(
        ToNet::decode(&header(0, types::SHUTDOWN, 1)),
        Err(ProtoError::Reserved(1))
    );
    assert_eq!(frame_len(&h[..7]), Ok(None));
    assert_eq!(frame_len(&raw(types::RELOAD, &[])), Ok(Some(8)));
    // Unknown types, and each direction's types sent the other way.
    assert_eq!(
        ToPriv::decode(&raw(0x0009, &[])),
        Err(ProtoError::UnknownType(9))
    );
    assert_eq!(
        ToPriv::decode(&frame(&ToNet::Shutdown)),
        Err(ProtoError::UnknownType(types::SHUTDOWN))
    );
    assert_eq!(
        ToNet::decode(&frame(&ToPriv::Reload)),
        Err(ProtoError::UnknownType(types::RELOAD))
    );
}

#[test]
fn payload_errors() {
    use types::*;
    let bad_len = |ty, len| Some(ProtoError::BadLength { ty, len });
    // Fixed sizes, one byte off either way.
    for (ty, size) in [
        (DUMP_START, 5),
        (DUMP_MORE, 4),
        (DUMP_CANCEL, 4),
        (DEMOTE, 1),
        (IKE, 5),
        (LINK_STATE_REQ, 0),
        (RELOAD, 0),
    ] {
        assert_eq!(
            ToPriv::decode(&raw(ty, &vec![0; size + 1])).err(),
            bad_len(ty, size + 1)
        );
        if size > 0 {
            assert_eq!(
                ToPriv::decode(&raw(ty, &vec![0; size - 1])).err(),
                bad_len(ty, size - 1)
            );
        }
    }
    for (ty, size) in [
        (DUMP_END, 5),
        (DEMOTE_RESULT, 1),
        (IKE_RESULT, 5),
        (LINK_STATE, 1),
        (CARP_UNREADABLE, 0),
        (PFSYNC, 1),
        (SHUTDOWN, 0),
    ] {
        assert_eq!(
            ToNet::decode(&raw(ty, &vec![0; size + 1])).err(),
            bad_len(ty, size + 1)
        );
    }
    // Flags and tables.
    let bad = |ty, value| Some(ProtoError::BadValue { ty, value });
    assert_eq!(ToPriv::decode(&raw(DEMOTE, &[2])).err(), bad(DEMOTE, 2));
    assert_eq!(
        ToPriv::decode(&raw(IKE, &[0, 0, 0, 0, 0xff])).err(),
        bad(IKE, 0xff)
    );
    assert_eq!(
        ToPriv::decode(&raw(DUMP_START, &[0, 0, 0, 0, 0])).err(),
        bad(DUMP_START, 0)
    );
    assert_eq!(
        ToPriv::decode(&raw(DUMP_START, &[0, 0, 0, 0, 3])).err(),
        bad(DUMP_START, 3)
    );
    assert_eq!(ToPriv::decode(&raw(RELOADED, &[7])).err(), bad(RELOADED, 7));
    assert_eq!(
        ToNet::decode(&raw(DUMP_END, &[0, 0, 0, 0, 2])).err(),
        bad(DUMP_END, 2)
    );
    assert_eq!(
        ToNet::decode(&raw(DEMOTE_RESULT, &[9])).err(),
        bad(DEMOTE_RESULT, 9)
    );
    // Any LINK_STATE_* byte is carried as is.
    assert_eq!(
        ToNet::decode(&raw(LINK_STATE, &[0xff])),
        Ok(ToNet::LinkState { state: 0xff })
    );
    // Reloaded: text bounded and UTF-8.
    assert_eq!(
        ToPriv::decode(&raw(RELOADED, &[])).err(),
        bad_len(RELOADED, 0)
    );
    assert_eq!(
        ToPriv::decode(&raw(RELOADED, &[1, 0xc3])),
        Err(ProtoError::NotUtf8 { ty: RELOADED })
    );
    let mut long = vec![1];
    long.resize(MAX_REASON + 2, b'x');
    assert_eq!(
        ToPriv::decode(&raw(RELOADED, &long)).err(),
        bad_len(RELOADED, MAX_REASON + 2)
    );
    let too_long = ToPriv::Reloaded {
        ok: false,
        message: "x".repeat(MAX_REASON + 1),
    };
    let mut out = Vec::new();
    assert_eq!(
        too_long.encode(&mut out).err(),
        bad_len(RELOADED, MAX_REASON + 2)
    );
    assert!(out.is_empty(), "a refused message appends nothing");
    // ReloadRefused: text bounded and UTF-8.
    assert_eq!(
        ToNet::decode(&raw(RELOAD_REFUSED, &[b'x', 0xc3])),
        Err(ProtoError::NotUtf8 { ty: RELOAD_REFUSED })
    );
    assert_eq!(
        ToNet::decode(&raw(RELOAD_REFUSED, &vec![b'x'; MAX_REASON + 1])).err(),
        bad_len(RELOAD_REFUSED, MAX_REASON + 1)
    );
    let too_long = ToNet::ReloadRefused {
        reason: "x".repeat(MAX_REASON + 1),
    };
    assert_eq!(
        too_long.encode(&mut out).err(),
        bad_len(RELOAD_REFUSED, MAX_REASON + 1)
    );
    assert!(out.is_empty());
    // Dump records: whole 8-byte units, at least one, within the limit.
    for n in [0, 7, 9, 15] {
        let mut p = vec![0; 4];
        p.resize(4 + n, 0xaa);
        assert_eq!(
            ToNet::decode(&raw(DUMP_RECORDS, &p)).err(),
            bad_len(DUMP_RECORDS, 4 + n)
        );
        let m = ToNet::DumpRecords {
            dump: 0,
            records: secret(&vec![0xaa; n]),
        };
        assert_eq!(m.encode(&mut out).err(), bad_len(DUMP_RECORDS, 4 + n));
    }
    let over = MAX_BATCH_BYTES + 8;
    let m = ToNet::DumpRecords {
        dump: 0,
        records: secret(&vec![0; over]),
    };
    assert_eq!(m.encode(&mut out).err(), bad_len(DUMP_RECORDS, 4 + over));
    assert_eq!(
        ToNet::decode(&raw(DUMP_RECORDS, &vec![0; 4 + over])).err(),
        bad_len(DUMP_RECORDS, 4 + over)
    );
    // Config: at most a whole configuration file.
    let m = ToNet::Config {
        text: secret(&vec![b'#'; MAX_CONFIG_BYTES + 1]),
    };
    assert_eq!(
        m.encode(&mut out).err(),
        bad_len(CONFIG, MAX_CONFIG_BYTES + 1)
    );
    assert!(out.is_empty());
}

#[test]
fn reloaded_text_is_cut_at_a_character() {
    let m = ToPriv::reloaded(true, &"é".repeat(MAX_REASON));
    let ToPriv::Reloaded { message, .. } = &m else {
        panic!("{m:?}")
    };
    assert_eq!(message.len(), MAX_REASON);
    assert_eq!(ToPriv::decode(&frame(&m)), Ok(m.clone()));
    let m = ToPriv::reloaded(true, &format!("a{}", "é".repeat(MAX_REASON)));
    let ToPriv::Reloaded { message, .. } = &m else {
        panic!("{m:?}")
    };
    assert_eq!(message.len(), MAX_REASON - 1);
    let m = ToNet::reload_refused(&format!("a{}", "é".repeat(MAX_REASON)));
    let ToNet::ReloadRefused { reason } = &m else {
        panic!("{m:?}")
    };
    assert_eq!(reason.len(), MAX_REASON - 1);
    assert_eq!(ToNet::decode(&frame(&m)), Ok(m.clone()));
}

#[test]
fn errors_read_well() {
    let e = ProtoError::BadLength {
        ty: types::DUMP_RECORDS,
        len: 7,
    };
    assert_eq!(
        e.to_string(),
        "DumpRecords message with a bad length (7 bytes)"
    );
    assert_eq!(
        ProtoError::Oversized(2_000_000).to_string(),
        "message payload of 2000000 bytes exceeds the limit of 1048576"
    );
    assert_eq!(
        ProtoError::UnknownType(0x99).to_string(),
        "unknown message type 0x0099"
    );
}

#[test]
fn debug_hides_key_material() {
    let records = ToNet::DumpRecords {
        dump: 5,
        records: secret(b"KEYKEYKEYKEYKEY!"),
    };
    let config = ToNet::Config {
        text: secret(b"sharedkey sasyncd-test-key\n"),
    };
    let shown = format!("{records:?} {config:?}");
    assert_eq!(
        shown,
        "DumpRecords { dump: 5, records: SecretBytes(16 bytes) } \
         Config { text: SecretBytes(27 bytes) }"
    );
    let frame = records.to_frame().unwrap();
    assert_eq!(format!("{frame:?}"), "SecretBytes(28 bytes)");
    let mut d = Deframer::<ToNet>::new();
    d.push(&frame);
    assert_eq!(
        format!("{d:?}"),
        "Deframer { buffered: 28, eof: false, failed: None }"
    );
}

/// A consumed message's bytes do not linger in the receive buffer.
#[test]
fn deframer_wipes_what_it_consumed() {
    let m = ToNet::DumpRecords {
        dump: 1,
        records: secret(&[0xa5; 64]),
    };
    let mut d = Deframer::<ToNet>::new();
    let f = frame(&m);
    d.push(&f);
    d.push(&f[..20]);
    assert_eq!(d.next_msg(), Ok(Some(m)));
    assert_eq!(d.buffered(), 20);
    let a5 = d.raw().iter().filter(|&&b| b == 0xa5).count();
    assert_eq!(
        a5,
        20 - HEADER_LEN - 4,
        "only the partial second copy is left"
    );
    assert_eq!(d.push(&f[20..]), f.len() - 20);
    assert!(d.next_msg().unwrap().is_some());
    assert_eq!(d.raw().iter().filter(|&&b| b == 0xa5).count(), 0);
    assert_eq!(d.buffered(), 0);
}

/// Moving pending bytes to the front of the buffer leaves no copy behind.
#[test]
fn deframer_compaction_wipes() {
    let s = ToNet::DumpRecords {
        dump: 2,
        records: secret(&[0xa5; 64]),
    };
    let sf = frame(&s);
    let filler = frame(&ToNet::Config {
        text: secret(&vec![0; MAX_FRAME - 100 - HEADER_LEN]),
    });
    let mut d = Deframer::<ToNet>::new();
    assert_eq!(d.push(&filler), filler.len());
    assert_eq!(d.push(&sf), sf.len());
    assert_eq!(d.push(&sf), 100 - sf.len(), "the buffer is full");
    assert!(matches!(d.next_msg(), Ok(Some(ToNet::Config { .. }))));
    assert_eq!(d.next_msg(), Ok(Some(s.clone())));
    // The rest of the second copy makes the pending piece move.
    let taken = 100 - sf.len();
    assert_eq!(d.push(&sf[taken..]), sf.len() - taken);
    let a5 = |d: &Deframer<ToNet>| d.raw().iter().filter(|&&b| b == 0xa5).count();
    assert_eq!(a5(&d), 64, "one copy, at the front");
    assert_eq!(d.next_msg(), Ok(Some(s)));
    assert_eq!(a5(&d), 0);
}

#[test]
fn deframer_errors_are_sticky_and_eof_mid_message_is_an_error() {
    let mut d = Deframer::<ToPriv>::new();
    d.push(&frame(&ToPriv::Reload));
    d.push(&raw(0x0777, &[]));
    d.push(&frame(&ToPriv::Reload));
    assert_eq!(d.next_msg(), Ok(Some(ToPriv::Reload)));
    assert_eq!(d.next_msg(), Err(ProtoError::UnknownType(0x0777)));
    assert_eq!(d.next_msg(), Err(ProtoError::UnknownType(0x0777)));

    let mut d = Deframer::<ToPriv>::new();
    let f = frame(&ToPriv::DumpMore { dump: 1 });
    d.push(&f[..5]);
    assert_eq!(d.next_msg(), Ok(None));
    d.set_eof();
    assert_eq!(d.next_msg(), Err(ProtoError::Truncated));

    // A clean end is no error.
    let mut d = Deframer::<ToPriv>::new();
    d.push(&f);
    d.set_eof();
    assert_eq!(d.next_msg(), Ok(Some(ToPriv::DumpMore { dump: 1 })));
    assert_eq!(d.next_msg(), Ok(None));
}

/// A buffer full of small messages makes room again as they are taken.
#[test]
fn deframer_compacts() {
    let f = frame(&ToNet::DumpEnd { dump: 9, ok: true });
    let mut d = Deframer::<ToNet>::new();
    let mut stream = Vec::new();
    while stream.len() < MAX_FRAME + MAX_FRAME / 2 {
        stream.extend_from_slice(&f);
    }
    let (mut fed, mut got) = (0, 0);
    while got < stream.len() / f.len() {
        fed += d.push(&stream[fed..]);
        // Take only a few, so the buffer stays nearly full.
        for _ in 0..3 {
            if let Some(m) = d.next_msg().unwrap() {
                assert_eq!(m, ToNet::DumpEnd { dump: 9, ok: true });
                got += 1;
            }
        }
    }
    assert_eq!(fed, stream.len());
}

fn to_priv_strategy() -> impl Strategy<Value = ToPriv> {
    let table = prop_oneof![Just(Table::Sadb), Just(Table::Spd)];
    prop_oneof![
        (any::<u32>(), table).prop_map(|(dump, table)| ToPriv::DumpStart { dump, table }),
        any::<u32>().prop_map(|dump| ToPriv::DumpMore { dump }),
        any::<u32>().prop_map(|dump| ToPriv::DumpCancel { dump }),
        any::<bool>().prop_map(|raise| ToPriv::Demote { raise }),
        (any::<u32>(), any::<bool>()).prop_map(|(id, active)| ToPriv::Ike { id, active }),
        Just(ToPriv::LinkState),
        Just(ToPriv::Reload),
        (any::<bool>(), ".{0,300}").prop_map(|(ok, m)| ToPriv::reloaded(ok, &m)),
    ]
}

fn to_net_strategy() -> impl Strategy<Value = ToNet> {
    let records = (1usize..64, any::<u8>()).prop_map(|(units, b)| secret(&vec![b; units * 8]));
    prop_oneof![
        (any::<u32>(), records).prop_map(|(dump, records)| ToNet::DumpRecords { dump, records }),
        (any::<u32>(), any::<bool>()).prop_map(|(dump, ok)| ToNet::DumpEnd { dump, ok }),
        any::<bool>().prop_map(|ok| ToNet::DemoteResult { ok }),
        (any::<u32>(), any::<bool>()).prop_map(|(id, ok)| ToNet::IkeResult { id, ok }),
        any::<u8>().prop_map(|state| ToNet::LinkState { state }),
        Just(ToNet::CarpUnreadable),
        any::<bool>().prop_map(|up| ToNet::Pfsync { up }),
        proptest::collection::vec(any::<u8>(), 0..600)
            .prop_map(|t| ToNet::Config { text: secret(&t) }),
        Just(ToNet::Shutdown),
        ".{0,300}".prop_map(|r| ToNet::reload_refused(&r)),
        proptest::collection::vec(any::<[u8; 16]>(), 0..=sasyncd_core::config::MAX_PEERS).prop_map(
            |v| ToNet::PeerAddrs {
                addrs: v.into_iter().map(std::net::IpAddr::from).collect(),
            }
        ),
    ]
}

proptest! {
    #[test]
    fn to_priv_round_trips(m in to_priv_strategy()) {
        let f = frame(&m);
        prop_assert_eq!(f.len(), m.encoded_len());
        prop_assert_eq!(ToPriv::decode(&f), Ok(m));
    }

    #[test]
    fn to_net_round_trips(m in to_net_strategy()) {
        let f = frame(&m);
        prop_assert_eq!(f.len(), m.encoded_len());
        prop_assert_eq!(ToNet::decode(&f), Ok(m));
    }

    /// Whatever the bytes, decoding does not panic, and what decodes
    /// re-encodes to exactly those bytes (the encoding is canonical).
    #[test]
    fn arbitrary_bytes(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..64),
        fix_header in any::<bool>(),
        pick in 0usize..17,
    ) {
        // Often a consistent header with a real type, so the payload
        // checks run rather than the header checks alone.
        if fix_header && bytes.len() >= HEADER_LEN {
            let n = (bytes.len() - HEADER_LEN) as u32;
            let ty = [0x01u16, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                      0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89][pick];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            bytes[4..6].copy_from_slice(&ty.to_le_bytes());
            bytes[6..8].copy_from_slice(&[0, 0]);
        }
        if let Ok(m) = ToPriv::decode(&bytes) {
            prop_assert_eq!(frame(&m), bytes.clone());
        }
        if let Ok(m) = ToNet::decode(&bytes) {
            prop_assert_eq!(frame(&m), bytes.clone());
        }
    }

    /// Fed in any chunks, the deframer gives the same messages.
    #[test]
    fn chunking_does_not_matter(
        msgs in proptest::collection::vec(to_net_strategy(), 1..8),
        chunk in 1usize..40,
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(frame).collect();
        let mut d = Deframer::<ToNet>::new();
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            prop_assert_eq!(d.push(c), c.len());
            while let Some(m) = d.next_msg().unwrap() {
                got.push(m);
            }
        }
        d.set_eof();
        prop_assert_eq!(d.next_msg(), Ok(None));
        prop_assert_eq!(got, msgs);
    }
}

/// Waits (bounded) until `fd` is readable.
fn wait_readable(fd: std::os::fd::BorrowedFd<'_>) {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(2000u16));
}

fn pair() -> (NetChannel, PrivChannel) {
    let (a, b) = UnixStream::pair().unwrap();
    (Channel::new(a).unwrap(), Channel::new(b).unwrap())
}

/// Both directions over a real socketpair, with messages far larger than
/// the socket buffer: writes are partial, reads see pieces, and everything
/// arrives in order.
#[test]
fn socketpair_both_ways_with_partial_writes() {
    let (mut net, mut privp) = pair();
    let down = to_net_samples();
    let up = to_priv_samples();
    for m in &down {
        privp.queue(m).unwrap();
    }
    for m in &up {
        net.queue(m).unwrap();
    }
    let (mut got_down, mut got_up) = (Vec::new(), Vec::new());
    let mut partial_writes = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got_down.len() < down.len() || got_up.len() < up.len() {
        assert!(Instant::now() < deadline, "stalled");
        if !privp.flush().unwrap() {
            partial_writes += 1;
        }
        net.flush().unwrap();
        assert_eq!(net.read_ready().unwrap(), ReadStatus::Open);
        while let Some(m) = net.next_msg().unwrap() {
            got_down.push(m);
        }
        assert_eq!(privp.read_ready().unwrap(), ReadStatus::Open);
        while let Some(m) = privp.next_msg().unwrap() {
            got_up.push(m);
        }
    }
    assert_eq!(got_down, down);
    assert_eq!(got_up, up);
    assert!(partial_writes > 0, "the test never filled the socket");
    assert!(!privp.wants_write() && !net.wants_write());
}

/// Records queued from a borrowed slice arrive as the owned message would,
/// and a batch the message could not carry is refused the same way.
#[test]
fn dump_records_from_a_borrowed_slice() {
    let (mut net, mut privp) = pair();
    let records: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    privp.queue_dump_records(9, &records).unwrap();
    assert!(privp.flush().unwrap());
    wait_readable(net.fd());
    assert_eq!(net.read_ready().unwrap(), ReadStatus::Open);
    let want = ToNet::DumpRecords {
        dump: 9,
        records: secret(&records),
    };
    assert_eq!(net.next_msg().unwrap(), Some(want));
    for bad in [&records[..5], &[][..]] {
        let err = privp.queue_dump_records(9, bad).unwrap_err();
        let owned = ToNet::DumpRecords {
            dump: 9,
            records: secret(bad),
        };
        assert_eq!(Some(err), privp.queue(&owned).err());
    }
    assert!(!privp.wants_write(), "nothing queued by a refused batch");
}

/// A message written a byte at a time is returned only when complete.
#[test]
fn partial_reads() {
    let (raw_end, b) = UnixStream::pair().unwrap();
    let mut net: NetChannel = Channel::new(b).unwrap();
    let m = ToNet::IkeResult { id: 77, ok: true };
    let f = frame(&m);
    for (i, byte) in f.iter().enumerate() {
        (&raw_end).write_all(&[*byte]).unwrap();
        wait_readable(net.fd());
        assert_eq!(net.read_ready().unwrap(), ReadStatus::Open);
        let got = net.next_msg().unwrap();
        if i + 1 < f.len() {
            assert_eq!(got, None, "after {} bytes", i + 1);
        } else {
            assert_eq!(got, Some(m.clone()));
        }
    }
    // Nothing more, and reading with nothing there does not block.
    assert_eq!(net.read_ready().unwrap(), ReadStatus::Open);
    assert_eq!(net.next_msg(), Ok(None));
}

/// Reads until EOF (bounded): a child forked by another test may hold a
/// copy of the other end for a moment.
fn read_to_eof<In: Message, Out: Message>(ch: &mut Channel<In, Out>) -> Vec<In> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        wait_readable(ch.fd());
        let status = ch.read_ready().unwrap();
        while let Some(m) = ch.next_msg().unwrap() {
            got.push(m);
        }
        if status == ReadStatus::Eof {
            return got;
        }
        assert!(Instant::now() < deadline, "no EOF");
    }
}

#[test]
fn eof_after_messages_and_mid_message() {
    let (mut net, mut privp) = pair();
    privp.queue(&ToNet::DemoteResult { ok: true }).unwrap();
    privp.queue(&ToNet::Shutdown).unwrap();
    assert!(privp.flush().unwrap());
    drop(privp);
    assert_eq!(
        read_to_eof(&mut net),
        [ToNet::DemoteResult { ok: true }, ToNet::Shutdown]
    );
    assert_eq!(net.read_ready().unwrap(), ReadStatus::Eof);

    let (raw_end, b) = UnixStream::pair().unwrap();
    let mut privp: PrivChannel = Channel::new(b).unwrap();
    (&raw_end).write_all(&frame(&ToPriv::Reload)).unwrap();
    (&raw_end)
        .write_all(&frame(&ToPriv::DumpMore { dump: 3 })[..6])
        .unwrap();
    drop(raw_end);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        wait_readable(privp.fd());
        let status = privp.read_ready().unwrap();
        match privp.next_msg() {
            Ok(Some(m)) => got.push(m),
            Ok(None) => assert!(status == ReadStatus::Open && Instant::now() < deadline),
            Err(e) => break e,
        }
    };
    assert_eq!(got, [ToPriv::Reload]);
    assert_eq!(err, ProtoError::Truncated);
}

#[test]
fn garbage_from_the_socket_is_a_final_error() {
    let (raw_end, b) = UnixStream::pair().unwrap();
    let mut net: NetChannel = Channel::new(b).unwrap();
    (&raw_end)
        .write_all(&frame(&ToNet::CarpUnreadable))
        .unwrap();
    (&raw_end).write_all(&header(u32::MAX, 0x81, 0)).unwrap();
    wait_readable(net.fd());
    net.read_ready().unwrap();
    assert_eq!(net.next_msg(), Ok(Some(ToNet::CarpUnreadable)));
    assert_eq!(net.next_msg(), Err(ProtoError::Oversized(u32::MAX)));
    (&raw_end).write_all(&frame(&ToNet::Shutdown)).unwrap();
    wait_readable(net.fd());
    net.read_ready().unwrap();
    assert_eq!(net.next_msg(), Err(ProtoError::Oversized(u32::MAX)));
}

#[test]
fn send_queue_is_bounded() {
    let (_net, mut privp) = pair();
    let big = ToNet::Config {
        text: secret(&vec![b'#'; MAX_CONFIG_BYTES]),
    };
    assert_eq!(big.encoded_len(), MAX_FRAME);
    for _ in 0..MAX_QUEUED / MAX_FRAME {
        privp.queue(&big).unwrap();
    }
    assert_eq!(privp.queue(&ToNet::Shutdown), Err(ProtoError::QueueFull));
    assert_eq!(privp.queued(), MAX_QUEUED);
    // Writing some makes room again.
    assert!(!privp.flush().unwrap());
    privp.queue(&ToNet::Shutdown).unwrap();
}
