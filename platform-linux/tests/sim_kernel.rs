//! The simulator's XFRM kernel (`sasyncd_sim::xfrm_kernel`) against the
//! real one: the same requests, in the guest booted by `tests/kernel/run`,
//! get the same answers (acknowledgement or errno), leave the same tables
//! (the dialect's canonical form, the record layout and attribute order,
//! counters) and announce the same events (type and writer port). The
//! simulator judges the nodes; this is what keeps it honest.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::errno::Errno;
use sasyncd_core::dialect::Dialect;
use sasyncd_linux::nl::{Builder, Msg, NLM_F_ACK, NLM_F_REPLACE, NLM_F_REQUEST};
use sasyncd_linux::socket::{RequestError, XfrmSocket};
use sasyncd_linux::xfrm::{
    attr, group, msg, pol_off, sa_off, Mark, PolicyView, SaView, Xfrm, AF_INET, IPPROTO_ESP,
    LIFETIME_CUR_LEN, USERPOLICY_INFO_LEN, USERSA_INFO_LEN,
};
use sasyncd_sim::xfrm_kernel::XfrmKernel;

fn in_guest(test: &str) -> bool {
    if std::env::var_os("SASYNCD_KERNEL_GUEST").is_some() {
        return true;
    }
    eprintln!("{test}: skipped: needs a kernel with XFRM and ESP; run tests/kernel/run");
    false
}

struct Ns(String);

impl Ns {
    fn new() -> Ns {
        let name = format!("sa{}sim", std::process::id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add");
        Ns(name)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// A state request: ESP tunnel 192.0.2.1 -> 192.0.2.2, `spi`, with the
/// given algorithms and extra attributes.
fn state(
    kind: u16,
    spi: u32,
    crypt: &[u8],
    auth: Option<(&[u8], u32)>,
    extra: &[(u16, Vec<u8>)],
) -> Vec<u8> {
    let mut info = [0u8; USERSA_INFO_LEN];
    info[sa_off::DADDR..sa_off::DADDR + 4].copy_from_slice(&[192, 0, 2, 2]);
    info[sa_off::SPI..sa_off::SPI + 4].copy_from_slice(&spi.to_be_bytes());
    info[sa_off::PROTO] = IPPROTO_ESP;
    info[sa_off::SADDR..sa_off::SADDR + 4].copy_from_slice(&[192, 0, 2, 1]);
    // Byte and packet limits "infinite" (as ip writes them); time limits
    // 0: none (u64::MAX would expire the entry at once on Linux, as the
    // guest showed).
    for f in 0..4 {
        let at = sa_off::LFT + 8 * f;
        info[at..at + 8].copy_from_slice(&u64::MAX.to_ne_bytes());
    }
    info[sa_off::LFT + 8..sa_off::LFT + 16].copy_from_slice(&(u64::from(spi) << 20).to_ne_bytes());
    info[sa_off::REQID..sa_off::REQID + 4].copy_from_slice(&7u32.to_ne_bytes());
    info[sa_off::FAMILY..sa_off::FAMILY + 2].copy_from_slice(&AF_INET.to_ne_bytes());
    info[sa_off::MODE] = 1;
    info[sa_off::REPLAY_WINDOW] = 32;
    let mut c = vec![0u8; 68 + 16];
    c[..crypt.len()].copy_from_slice(crypt);
    c[64..68].copy_from_slice(&128u32.to_ne_bytes());
    c[68..].fill(0x11);
    let mut b = Builder::new(kind, NLM_F_REQUEST | NLM_F_ACK).raw(&info);
    match auth {
        Some((name, trunc)) if trunc != u32::MAX => {
            let mut a = vec![0u8; 72 + 32];
            a[..name.len()].copy_from_slice(name);
            a[64..68].copy_from_slice(&256u32.to_ne_bytes());
            a[68..72].copy_from_slice(&trunc.to_ne_bytes());
            a[72..].fill(0x22);
            b = b.attr(attr::ALG_AUTH_TRUNC, &a);
        }
        Some((name, _)) => {
            let mut a = vec![0u8; 68 + 20];
            a[..name.len()].copy_from_slice(name);
            a[64..68].copy_from_slice(&160u32.to_ne_bytes());
            a[68..].fill(0x33);
            b = b.attr(attr::ALG_AUTH, &a);
        }
        None => {}
    }
    b = b.attr(attr::ALG_CRYPT, &c);
    for (k, d) in extra {
        b = b.attr(*k, d);
    }
    b.finish()
}

/// `ALLOCSPI` of the single SPI `spi` for [`state`]'s hosts, request id
/// and mode.
fn alloc_spi(spi: u32) -> Vec<u8> {
    let add = state(msg::NEWSA, spi, b"cbc(aes)", None, &[]);
    let mut p = add[16..16 + USERSA_INFO_LEN].to_vec();
    p[sa_off::SPI..sa_off::SPI + 4].fill(0);
    p.extend_from_slice(&spi.to_ne_bytes());
    p.extend_from_slice(&spi.to_ne_bytes());
    Builder::new(
        sasyncd_sim::xfrm_kernel::ALLOCSPI,
        NLM_F_REQUEST | NLM_F_ACK,
    )
    .raw(&p)
    .finish()
}

fn state_delete(spi: u32) -> Vec<u8> {
    let mut id = [0u8; 24];
    id[..4].copy_from_slice(&[192, 0, 2, 2]);
    id[16..20].copy_from_slice(&spi.to_be_bytes());
    id[20..22].copy_from_slice(&AF_INET.to_ne_bytes());
    id[22] = IPPROTO_ESP;
    Builder::new(msg::DELSA, NLM_F_REQUEST | NLM_F_ACK)
        .raw(&id)
        .finish()
}

fn selector(net: u8) -> [u8; 56] {
    let mut sel = [0u8; 56];
    sel[..4].copy_from_slice(&[10, 2, net, 0]);
    sel[16..20].copy_from_slice(&[10, 1, 0, 0]);
    sel[40..42].copy_from_slice(&AF_INET.to_ne_bytes());
    sel[42] = 24;
    sel[43] = 24;
    sel
}

fn policy(kind: u16, net: u8, dir: u8, index: u32, priority: u32) -> Vec<u8> {
    let mut info = [0u8; USERPOLICY_INFO_LEN];
    info[..56].copy_from_slice(&selector(net));
    // Byte and packet limits "infinite" (as ip writes them); time limits
    // 0: none (u64::MAX would expire the entry at once on Linux, as the
    // guest showed).
    for f in 0..4 {
        let at = pol_off::LFT + 8 * f;
        info[at..at + 8].copy_from_slice(&u64::MAX.to_ne_bytes());
    }
    info[pol_off::PRIORITY..pol_off::PRIORITY + 4].copy_from_slice(&priority.to_ne_bytes());
    info[pol_off::INDEX..pol_off::INDEX + 4].copy_from_slice(&index.to_ne_bytes());
    info[pol_off::DIR] = dir;
    let mut t = [0u8; 64];
    t[..4].copy_from_slice(&[192, 0, 2, 2]);
    t[20] = IPPROTO_ESP; // xfrm_id.proto
    t[28..32].copy_from_slice(&[192, 0, 2, 1]);
    t[44..48].copy_from_slice(&7u32.to_ne_bytes());
    t[48] = 1;
    t[52..64].fill(0xff);
    Builder::new(kind, NLM_F_REQUEST | NLM_F_ACK)
        .raw(&info)
        .attr(attr::TMPL, &t)
        .attr(attr::MARK, &Mark { v: 5, m: 0xff }.to_bytes())
        .finish()
}

fn policy_delete(net: u8) -> Vec<u8> {
    let mut id = [0u8; 64];
    id[..56].copy_from_slice(&selector(net));
    id[60] = 1;
    Builder::new(msg::DELPOLICY, NLM_F_REQUEST | NLM_F_ACK)
        .raw(&id)
        .attr(attr::MARK, &Mark { v: 5, m: 0xff }.to_bytes())
        .finish()
}

/// What a record is once the parts two kernels cannot share are taken
/// out (add and use times, lastused): its type, fixed part and attributes
/// in order.
/// A record's type, fixed part and attributes (type, data) in order.
type Comparable = (u16, Vec<u8>, Vec<(u16, Vec<u8>)>);

fn comparable(rec: &[u8]) -> Comparable {
    let m = Msg::new(rec).unwrap();
    let (mut fixed, attrs) = if m.kind() == msg::NEWSA {
        let sa = SaView::from_new(&m).unwrap();
        (sa.info.to_vec(), sa.attrs)
    } else {
        let p = PolicyView::from_new(&m).unwrap();
        (p.info.to_vec(), p.attrs)
    };
    let cur = if m.kind() == msg::NEWSA {
        sa_off::CURLFT
    } else {
        pol_off::CURLFT
    };
    // Bytes and packets stay; add and use times are each kernel's clock.
    fixed[cur + 16..cur + LIFETIME_CUR_LEN].fill(0);
    let attrs = attrs
        .flatten()
        .filter(|a| a.kind != attr::LASTUSED)
        .map(|a| (a.kind, a.data.to_vec()))
        .collect();
    (m.kind(), fixed, attrs)
}

fn tables(mut dump: impl FnMut(u16) -> Vec<Vec<u8>>) -> BTreeMap<Vec<u8>, Comparable> {
    let d = Xfrm;
    let mut out = BTreeMap::new();
    for kind in [msg::GETSA, msg::GETPOLICY] {
        for r in dump(kind) {
            let mut key = [0u8; sasyncd_core::dialect::IDENTITY_MAX];
            let n = d.key(&r, &mut key).unwrap();
            out.insert(key[..n].to_vec(), comparable(&r));
        }
    }
    out
}

#[test]
fn the_simulated_xfrm_kernel_answers_as_linux() {
    if !in_guest("the_simulated_xfrm_kernel_answers_as_linux") {
        return;
    }
    let ns = Ns::new();
    let path = std::path::PathBuf::from(format!("/run/netns/{}", ns.0));
    let mut writer = XfrmSocket::open_in(&path, 0).unwrap();
    let mut watch = XfrmSocket::open_in(&path, group::SA | group::POLICY).unwrap();
    let mut sim = XfrmKernel::new();

    let lt: Vec<u8> = [3000u64, 20, 1_700_000_000, 0]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let mut replay = vec![0u8; 12];
    replay[..4].copy_from_slice(&1000u32.to_ne_bytes());
    let mark = Mark { v: 5, m: 0xff }.to_bytes().to_vec();
    let sha256: &[u8] = b"hmac(sha256)";
    let mut ae_id = [0u8; 48];
    ae_id[..4].copy_from_slice(&[192, 0, 2, 2]);
    ae_id[16..20].copy_from_slice(&0x301u32.to_be_bytes());
    ae_id[20..22].copy_from_slice(&AF_INET.to_ne_bytes());
    ae_id[22] = IPPROTO_ESP;
    ae_id[24..28].copy_from_slice(&[192, 0, 2, 1]);
    let ae = |flags: u16| {
        Builder::new(msg::NEWAE, flags)
            .raw(&ae_id)
            .attr(attr::LTIME_VAL, &[7u8; 32])
            .finish()
    };
    let script: Vec<(&str, Vec<u8>)> = vec![
        (
            "add",
            state(msg::NEWSA, 0x101, b"cbc(aes)", Some((sha256, 128)), &[]),
        ),
        (
            "add again",
            state(msg::NEWSA, 0x101, b"cbc(aes)", Some((sha256, 128)), &[]),
        ),
        (
            "update missing",
            state(msg::UPDSA, 0x102, b"cbc(aes)", Some((sha256, 128)), &[]),
        ),
        ("delete missing", state_delete(0x102)),
        (
            "add with counters, replay and mark",
            state(
                msg::NEWSA,
                0x103,
                b"cbc(aes)",
                Some((sha256, 128)),
                &[
                    (attr::LTIME_VAL, lt.clone()),
                    (attr::REPLAY_VAL, replay.clone()),
                    (attr::MARK, mark.clone()),
                ],
            ),
        ),
        (
            "another mark",
            state(msg::NEWSA, 0x103, b"cbc(aes)", Some((sha256, 128)), &[]),
        ),
        (
            "crypt by its other name",
            state(msg::NEWSA, 0x104, b"aes", Some((sha256, 128)), &[]),
        ),
        (
            "auth without truncation",
            state(
                msg::NEWSA,
                0x105,
                b"cbc(aes)",
                Some((b"hmac(sha1)", u32::MAX)),
                &[],
            ),
        ),
        (
            "auth truncation 0",
            state(msg::NEWSA, 0x106, b"cbc(aes)", Some((sha256, 0)), &[]),
        ),
        (
            "unknown cipher",
            state(msg::NEWSA, 0x107, b"cbc(xyz)", Some((sha256, 128)), &[]),
        ),
        (
            "truncation past the ICV",
            state(msg::NEWSA, 0x108, b"cbc(aes)", Some((sha256, 512)), &[]),
        ),
        (
            "no algorithm",
            Builder::new(msg::NEWSA, NLM_F_REQUEST | NLM_F_ACK)
                .raw(&state(msg::NEWSA, 0x109, b"", None, &[])[16..16 + USERSA_INFO_LEN])
                .finish(),
        ),
        (
            "update",
            state(
                msg::UPDSA,
                0x101,
                b"cbc(aes)",
                Some((sha256, 128)),
                &[(attr::LTIME_VAL, lt.clone())],
            ),
        ),
        (
            "update adding encap",
            state(
                msg::UPDSA,
                0x101,
                b"cbc(aes)",
                Some((sha256, 128)),
                &[(attr::ENCAP, {
                    let mut e = vec![0u8; 24];
                    e[..2].copy_from_slice(&2u16.to_ne_bytes());
                    e[2..4].copy_from_slice(&4500u16.to_be_bytes());
                    e[4..6].copy_from_slice(&4500u16.to_be_bytes());
                    e
                })],
            ),
        ),
        ("policy", policy(msg::NEWPOLICY, 1, 1, 0, 100)),
        ("policy again", policy(msg::NEWPOLICY, 1, 1, 0, 10)),
        ("policy replaced", policy(msg::UPDPOLICY, 1, 1, 0, 50)),
        (
            "policy with its index",
            policy(msg::NEWPOLICY, 2, 1, 0x7f9, 100),
        ),
        (
            "policy with another direction's index",
            policy(msg::NEWPOLICY, 3, 2, 0x7f9, 100),
        ),
        ("policy fwd", policy(msg::NEWPOLICY, 3, 2, 0, 100)),
        ("policy delete missing", policy_delete(7)),
        (
            "replay counters without replace",
            ae(NLM_F_REQUEST | NLM_F_ACK),
        ),
        (
            "replay counters",
            ae(NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE),
        ),
        (
            "flush AH (none)",
            Builder::new(msg::FLUSHSA, NLM_F_REQUEST | NLM_F_ACK)
                .raw(&[51])
                .finish(),
        ),
        // charon's inbound SA: an SPI reserved (a larval state), refused
        // to an add, completed by an update.
        ("reserve an SPI", alloc_spi(0x201)),
        (
            "add of a reserved SPI",
            state(msg::NEWSA, 0x201, b"cbc(aes)", Some((sha256, 128)), &[]),
        ),
        (
            "update completing a reserved SPI",
            state(msg::UPDSA, 0x201, b"cbc(aes)", Some((sha256, 128)), &[]),
        ),
        ("delete", state_delete(0x101)),
        ("policy delete", policy_delete(2)),
    ];
    let mut diverged = Vec::new();
    for (what, mut req) in script {
        let real = match writer.request(&mut req) {
            Ok(()) => 0,
            Err(RequestError::Refused(e)) => e as i32,
            Err(e) => panic!("{what}: {e}"),
        };
        // The same bytes (the socket set its sequence and port in them).
        let replies = sim.handle(&req, writer.port(), 1_800_000_000);
        let simulated = replies
            .iter()
            .filter_map(|r| Msg::new(r).ok().and_then(|m| m.error()))
            .next()
            .unwrap_or(-1);
        eprintln!("{what}: real {real}, simulated {simulated}");
        if real != simulated {
            diverged.push(format!(
                "{what}: Linux {}, simulator {simulated}",
                Errno::from_raw(real)
            ));
        }
    }
    // The events: type and writer port, in order.
    let mut real_events = Vec::new();
    watch
        .events(Duration::from_millis(500), |m| {
            real_events.push((m.kind(), m.pid()))
        })
        .unwrap();
    let sim_events: Vec<(u16, u32)> = sim
        .take_events()
        .iter()
        .filter(|e| e.group & (group::SA | group::POLICY) != 0)
        .map(|e| {
            let m = Msg::new(&e.msg).unwrap();
            (m.kind(), m.pid())
        })
        .collect();
    if real_events != sim_events {
        diverged.push(format!(
            "events: Linux {real_events:?}, simulator {sim_events:?}"
        ));
    }
    // The tables, record by record.
    let real = tables(|kind| {
        let mut v = Vec::new();
        writer.dump(kind, |m| v.push(m.bytes().to_vec())).unwrap();
        v
    });
    let simulated = tables(|kind| {
        if kind == msg::GETSA {
            sim.dump_states()
        } else {
            sim.dump_policies()
        }
    });
    for (k, r) in &real {
        match simulated.get(k) {
            None => diverged.push(format!("only in Linux: {r:?}")),
            Some(s) if s != r => {
                diverged.push(format!("differs:\n Linux     {r:?}\n simulator {s:?}"))
            }
            Some(_) => {}
        }
    }
    for (k, s) in &simulated {
        if !real.contains_key(k) {
            diverged.push(format!("only in the simulator: {s:?}"));
        }
    }
    assert!(
        diverged.is_empty(),
        "the simulator diverges from Linux:\n{}",
        diverged.join("\n")
    );
}
