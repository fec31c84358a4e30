//! The devhost end to end: a server thread on a temporary socket, driven
//! through the client API.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{promisc_writer_pid, records, sa_key, set_pid_seq, unwrap_promisc, Msg};

use super::frame::{frame, read_frame};
use super::proto::{parse_reply, Role};
use super::*;
use crate::errno::Errno;
use crate::pfmsg::{self, addr_ext, flow_exts, key_ext, sa_ext, spirange_ext};

/// Reads whatever `r` has without blocking past its timeout; used by
/// tests to show that nothing arrived.
fn read_available<R: std::io::Read>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(out)
            }
            Err(e) => return Err(e),
        }
    }
}

/// A devhost serving in a thread, stopped and cleaned up on drop.
struct TestHost {
    dir: PathBuf,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestHost {
    fn start(cfg: GatewayConfig) -> TestHost {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("devhost-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let mut server = Server::bind(&path, &cfg).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = Some(std::thread::spawn(move || server.run(&s)));
        TestHost {
            dir,
            path,
            stop,
            thread,
        }
    }

    fn ctl(&self, cmd: &str) -> Result<String, String> {
        ctl(&self.path, cmd).unwrap()
    }

    fn ok(&self, cmd: &str) -> String {
        self.ctl(cmd)
            .unwrap_or_else(|e| panic!("{cmd}: error: {e}"))
    }

    fn status(&self, key: &str) -> String {
        let s = self.ok("show status");
        let prefix = format!("{key}=");
        s.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key} in {s}"))
            .to_string()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.unwrap().unwrap();
                assert!(!self.path.exists(), "socket file removed");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PF_KEY socket of pid `pid` on a devhost, as the daemon would use it.
struct Pfkey {
    s: UnixStream,
    framer: PfkeyFramer,
    pid: u32,
    seq: u32,
}

impl Pfkey {
    fn open(path: &Path, pid: u32) -> Pfkey {
        let s = connect_pfkey(path, pid).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Pfkey {
            s,
            framer: PfkeyFramer::default(),
            pid,
            seq: 0,
        }
    }

    fn msg(&mut self, t: u8, satype: u8, exts: &[pfmsg::ExtRepr<'_>]) -> Vec<u8> {
        self.seq += 1;
        pfmsg::message(t, satype, self.seq, self.pid, exts)
    }

    /// The next message, waiting up to the read timeout.
    fn read(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(m) = self.framer.next_message() {
                return Some(m.unwrap());
            }
            match self.framer.read_from(&mut self.s) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Writes `m` and returns what arrives up to and including the reply
    /// (the first message that is not a promiscuous copy).
    fn call(&mut self, m: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
        self.s.write_all(m).unwrap();
        let mut copies = Vec::new();
        loop {
            let r = self.read().expect("a reply");
            if r[1] == SADB_X_PROMISC && r.len() > HDR_LEN {
                copies.push(r);
            } else {
                return (copies, r);
            }
        }
    }

    fn request(&mut self, t: u8, satype: u8, exts: &[pfmsg::ExtRepr<'_>]) -> Vec<u8> {
        let m = self.msg(t, satype, exts);
        let (copies, reply) = self.call(&m);
        assert!(copies.is_empty(), "not promiscuous");
        reply
    }

    fn promisc(&mut self, on: bool) {
        let m = self.msg(SADB_X_PROMISC, on as u8, &[]);
        let (_, r) = self.call(&m);
        assert_eq!(r[2], 0);
    }

    /// What arrives within `wait`.
    fn drain(&mut self, wait: Duration) -> Vec<Vec<u8>> {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let mut v = Vec::new();
        while let Some(m) = self.read() {
            v.push(m);
        }
        self.s
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        v
    }
}

/// Keys fixed so that two hosts can hold identical SAs.
fn esp_sa(spi: u32, src: [u8; 4], dst: [u8; 4]) -> Vec<pfmsg::ExtRepr<'static>> {
    vec![
        sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 5, 12, 0),
        addr_ext(SADB_EXT_ADDRESS_SRC, src.into(), 0),
        addr_ext(SADB_EXT_ADDRESS_DST, dst.into(), 0),
        // Leaked: a few bytes per test, so the description can outlive us.
        key_ext(SADB_EXT_KEY_AUTH, vec![spi as u8; 32].leak()),
        key_ext(SADB_EXT_KEY_ENCRYPT, vec![!(spi as u8); 16].leak()),
    ]
}

fn flow(dir: u8, x: u8) -> Vec<pfmsg::ExtRepr<'static>> {
    let mask = [255, 255, 255, 0].into();
    let mut v = vec![addr_ext(SADB_EXT_ADDRESS_DST, [192, 0, 2, 1].into(), 0)];
    v.extend(flow_exts(
        SADB_X_FLOW_TYPE_REQUIRE,
        dir,
        0,
        ([172, 16, x, 0].into(), mask),
        ([10, 20, x, 0].into(), mask),
    ));
    v
}

fn errno(reply: &[u8]) -> u8 {
    Msg::parse(reply).unwrap().errno()
}

fn spis(copies: &[Vec<u8>]) -> Vec<u32> {
    copies
        .iter()
        .map(|c| {
            let inner = Msg::parse(unwrap_promisc(c).unwrap()).unwrap();
            sa_key(&inner).unwrap().spi
        })
        .collect()
}

#[test]
fn pfkey_add_and_delete_with_kernel_errnos() {
    let h = TestHost::start(GatewayConfig::default());
    let mut p = Pfkey::open(&h.path, 4242);
    let add = p.msg(
        SADB_ADD,
        SADB_SATYPE_ESP,
        &esp_sa(0x1000, [10, 0, 0, 100], [192, 0, 2, 1]),
    );
    let (_, r) = p.call(&add);
    let m = Msg::parse(&r).unwrap();
    assert_eq!(
        (m.msg_type(), m.errno(), m.seq(), m.pid()),
        (SADB_ADD, 0, 1, 4242)
    );
    let again = p.request(
        SADB_ADD,
        SADB_SATYPE_ESP,
        &esp_sa(0x1000, [10, 0, 0, 100], [192, 0, 2, 1]),
    );
    assert_eq!(errno(&again), Errno::EEXIST.0 as u8);
    assert_eq!(h.ok("show counts"), "sas=1 flows=0");
    let del = [
        sa_ext(SADB_EXT_SA, 0x1000, SADB_SASTATE_MATURE, 0, 0, 0),
        addr_ext(SADB_EXT_ADDRESS_DST, [192, 0, 2, 1].into(), 0),
    ];
    assert_eq!(errno(&p.request(SADB_DELETE, SADB_SATYPE_ESP, &del)), 0);
    assert_eq!(
        errno(&p.request(SADB_DELETE, SADB_SATYPE_ESP, &del)),
        Errno::ESRCH.0 as u8
    );
    // The kernel insists on the writer's own pid.
    let mut foreign = p.msg(SADB_FLUSH, 0, &[]);
    set_pid_seq(&mut foreign, 7, 1);
    assert_eq!(errno(&p.call(&foreign).1), Errno::EINVAL.0 as u8);
    // GETSPI answers with the reserved SPI.
    let getspi = [
        addr_ext(SADB_EXT_ADDRESS_SRC, [192, 0, 2, 1].into(), 0),
        addr_ext(SADB_EXT_ADDRESS_DST, [10, 0, 0, 100].into(), 0),
        spirange_ext(0x100, 0x1ff),
    ];
    let r = p.request(SADB_GETSPI, SADB_SATYPE_ESP, &getspi);
    let m = Msg::parse(&r).unwrap();
    let spi = sasyncd_core::pfkey::SaExt::new(m.find(SADB_EXT_SA).unwrap())
        .unwrap()
        .spi();
    assert!((0x100..=0x1ff).contains(&spi), "{spi:#x}");
    assert!(h.status("refused").contains("EEXIST:1"));
}

#[test]
fn pfkey_bad_headers_einval_then_too_long_disconnects() {
    let h = TestHost::start(GatewayConfig::default());
    let mut p = Pfkey::open(&h.path, 100);
    let mut zero = p.msg(SADB_FLUSH, 0, &[]);
    zero[4] = 0;
    let (_, r) = p.call(&zero);
    assert_eq!((r.len(), errno(&r)), (16, Errno::EINVAL.0 as u8));
    let mut v1 = p.msg(
        SADB_DELETE,
        SADB_SATYPE_ESP,
        &[sa_ext(SADB_EXT_SA, 1, 1, 0, 0, 0)],
    );
    v1[0] = 1;
    let (_, r) = p.call(&v1);
    assert_eq!((r[0], r[1], r[2]), (2, SADB_DELETE, Errno::EINVAL.0 as u8));
    // The stream is still in step.
    assert_eq!(errno(&p.request(SADB_FLUSH, 0, &[])), 0);
    // Over PFKEY_MSG_MAXSZ: disconnected; others still served.
    let mut big = p.msg(SADB_FLUSH, 0, &[]);
    big[4..6].copy_from_slice(&((PFKEY_MSG_MAXSZ / 8 + 1) as u16).to_ne_bytes());
    p.s.write_all(&big).unwrap();
    assert_eq!(p.read(), None, "disconnected");
    assert_eq!(h.ok("show counts"), "sas=0 flows=0");
    let mut q = Pfkey::open(&h.path, 100);
    assert_eq!(errno(&q.request(SADB_FLUSH, 0, &[])), 0, "pid free again");
}

#[test]
fn promiscuous_copies_of_other_writers() {
    let h = TestHost::start(GatewayConfig::default());
    let mut p = Pfkey::open(&h.path, 500);
    // Not promiscuous: nothing arrives.
    h.ok("add-sa spi=0x1000");
    assert!(p.drain(Duration::from_millis(200)).is_empty());
    p.promisc(true);
    assert_eq!(h.status("promisc_listeners"), "1");
    let out = h.ok("add-sa spi=0x2000");
    assert_eq!(out, "spi=0x00002000 spi=0x00002001");
    let copies = p.drain(Duration::from_millis(300));
    assert_eq!(spis(&copies), [0x2000, 0x2001]);
    for c in &copies {
        assert_eq!(promisc_writer_pid(c), Some(IKE_PID));
        let inner = Msg::parse(unwrap_promisc(c).unwrap()).unwrap();
        assert_eq!((inner.msg_type(), inner.pid()), (SADB_ADD, IKE_PID));
        assert!(inner.find(SADB_EXT_KEY_ENCRYPT).is_some(), "keys included");
    }
    h.ok("add-flow");
    h.ok("delete-sa spi=0x2000");
    let types: Vec<u8> = p
        .drain(Duration::from_millis(300))
        .iter()
        .map(|c| unwrap_promisc(c).unwrap()[1])
        .collect();
    assert_eq!(types, [SADB_X_ADDFLOW, SADB_DELETE]);
    // A refused request is still copied (the kernel copies before acting).
    assert!(h.ctl("delete-sa spi=0x2000").unwrap_err().contains("ESRCH"));
    assert_eq!(p.drain(Duration::from_millis(300)).len(), 1);
    // Dropped copies: the next one is lost, the one after arrives.
    h.ok("drop-promisc 1");
    assert_eq!(h.status("drop_pending"), "1");
    h.ok("add-sa spi=0x3000");
    assert_eq!(spis(&p.drain(Duration::from_millis(300))), [0x3001]);
    assert_eq!(h.status("injected_drops"), "1");
    assert_eq!(h.status("drop_pending"), "0");
    // Promiscuous mode off: nothing more.
    p.promisc(false);
    h.ok("add-sa spi=0x4000");
    assert!(p.drain(Duration::from_millis(200)).is_empty());
    assert_eq!(h.status("promisc_listeners"), "0");
}

#[test]
fn a_writer_sees_its_own_copy_first_marked_with_its_pid() {
    // As on OpenBSD (reference 13.2) a promiscuous writer gets the copy of
    // its own request too; the outer seq is its pid, which is how sasyncd
    // tells its own writes apart. Non-promiscuous writers get none.
    let h = TestHost::start(GatewayConfig::default());
    let mut a = Pfkey::open(&h.path, 500);
    let mut b = Pfkey::open(&h.path, 501);
    a.promisc(true);
    b.promisc(true);
    let switch = a.drain(Duration::from_millis(300));
    assert_eq!(switch.len(), 1, "b's switch, copied to a");
    assert_eq!(promisc_writer_pid(&switch[0]), Some(501));
    let add = a.msg(
        SADB_ADD,
        SADB_SATYPE_ESP,
        &esp_sa(0x10, [10, 0, 0, 100], [192, 0, 2, 1]),
    );
    let (own, reply) = a.call(&add);
    assert_eq!(errno(&reply), 0);
    assert_eq!(own.len(), 1);
    assert_eq!(promisc_writer_pid(&own[0]), Some(500));
    assert_eq!(unwrap_promisc(&own[0]), Some(&add[..]));
    // b: a's switch to promiscuous mode happened before b's; then a's ADD.
    let at_b = b.drain(Duration::from_millis(300));
    assert_eq!(at_b.len(), 1, "{at_b:?}");
    assert_eq!(promisc_writer_pid(&at_b[0]), Some(500));
    // A non-promiscuous writer: reply only.
    let mut c = Pfkey::open(&h.path, 502);
    assert_eq!(errno(&c.request(SADB_FLUSH, 0, &[])), 0);
    assert_eq!(a.drain(Duration::from_millis(300)).len(), 1);
}

#[test]
fn kernel_queue_limit_drops_copies_of_a_reader_that_lags() {
    let h = TestHost::start(GatewayConfig::default());
    let mut slow = Pfkey::open(&h.path, 500);
    slow.promisc(true);
    let mut w = Pfkey::open(&h.path, 501);
    // Each copy is ~200 bytes; well past the socket buffers and the
    // kernel's 8 KiB queue while `slow` reads nothing.
    for i in 0..4000u32 {
        let r = w.request(
            SADB_ADD,
            SADB_SATYPE_ESP,
            &esp_sa(0x1000 + i, [10, 0, 0, 100], [192, 0, 2, 1]),
        );
        assert_eq!(errno(&r), 0);
    }
    let drops: u64 = h.status("promisc_drops").parse().unwrap();
    assert!(drops > 0, "no drops");
    let got = slow.drain(Duration::from_millis(500)).len() as u64;
    assert_eq!(
        got + drops,
        4000,
        "every copy either arrived or was counted"
    );
}

#[test]
fn host_dump_demote_ike_and_link_state() {
    let h = TestHost::start(GatewayConfig {
        demote: 1,
        ..GatewayConfig::default()
    });
    h.ok("add-sa spi=0x1000 single");
    h.ok("add-flow");
    let mut host = HostClient::connect(&h.path).unwrap();
    let sadb = host.dump(Table::Sadb).unwrap();
    let recs: Vec<_> = records(&sadb).collect::<Result<_, _>>().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].msg_type(), SADB_DUMP);
    assert_eq!(sa_key(&recs[0]).unwrap().spi, 0x1000);
    let spd = host.dump(Table::Spd).unwrap();
    let recs: Vec<_> = records(&spd).collect::<Result<_, _>>().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].msg_type(), SADB_X_SPDDUMP);
    assert_eq!(host.get_demote().unwrap(), 1);
    assert_eq!(host.demote(2).unwrap(), Ok(3));
    assert!(host.demote(-4).unwrap().is_err(), "never below 0");
    assert_eq!(host.get_demote().unwrap(), 3);
    assert_eq!(host.demote(-3).unwrap(), Ok(0));
    assert!(host.demote(256).unwrap().is_err());
    assert_eq!(h.status("demote"), "0");
    assert_eq!(h.status("ike"), "unset");
    assert!(host.ike(true).unwrap());
    assert_eq!(h.status("ike"), "active");
    h.ok("ike refuse");
    assert!(!host.ike(false).unwrap());
    assert_eq!(
        h.status("ike"),
        "active",
        "a refused request changes nothing"
    );
    h.ok("ike accept");
    assert!(host.ike(false).unwrap());
    assert_eq!(h.status("ike"), "passive");
    assert_eq!(host.link_state().unwrap(), crate::carp::LINK_STATE_DOWN);
    h.ok("carp master");
    assert_eq!(host.link_state().unwrap(), crate::carp::LINK_STATE_UP);
}

/// States a watcher receives within `wait`.
fn states(w: &mut CarpWatch, wait: Duration) -> Vec<u8> {
    let end = Instant::now() + wait;
    let mut v = Vec::new();
    while Instant::now() < end {
        v.extend(w.read_states().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
    v
}

#[test]
fn carp_changes_are_pushed_to_every_watcher() {
    let h = TestHost::start(GatewayConfig::default());
    let mut w1 = connect_carp(&h.path).unwrap();
    let mut w2 = connect_carp(&h.path).unwrap();
    let short = Duration::from_millis(200);
    assert_eq!(states(&mut w1, short), [2], "current state at connect");
    h.ok("carp master");
    h.ok("carp master");
    h.ok("carp init");
    h.ok("carp backup");
    assert_eq!(states(&mut w1, short), [4, 0, 2], "changes only");
    assert_eq!(states(&mut w2, short), [2, 4, 0, 2]);
    assert_eq!(h.status("clients"), "pfkey:0,host:0,carp:2,ctl:1");
}

#[test]
fn a_slave_fed_the_masters_copies_has_the_same_digest() {
    let master = TestHost::start(GatewayConfig {
        seed: 1,
        ..GatewayConfig::default()
    });
    let slave = TestHost::start(GatewayConfig {
        seed: 2,
        ..GatewayConfig::default()
    });
    assert_eq!(master.ok("digest"), slave.ok("digest"), "both empty");
    let mut m = Pfkey::open(&master.path, 700);
    let mut s = Pfkey::open(&slave.path, 800);
    m.promisc(true);
    master.ok("add-sa");
    master.ok("add-sa type=ah single");
    master.ok("add-flow dir=in");
    assert_ne!(master.ok("digest"), slave.ok("digest"));
    // What sasyncd does: unwrap each copy, take it as its own, write it.
    for c in m.drain(Duration::from_millis(300)) {
        let mut inner = unwrap_promisc(&c).unwrap().to_vec();
        set_pid_seq(&mut inner, 800, 1);
        assert_eq!(errno(&s.call(&inner).1), 0);
    }
    assert_eq!(master.ok("digest"), slave.ok("digest"));
    assert!(master.ok("digest").ends_with(" sas=3 flows=1"));
    assert_eq!(master.ok("show sadb"), slave.ok("show sadb"));
    // A larval SA (not synchronised) does not count; a real one does.
    let getspi = [
        addr_ext(SADB_EXT_ADDRESS_SRC, [192, 0, 2, 1].into(), 0),
        addr_ext(SADB_EXT_ADDRESS_DST, [10, 0, 0, 100].into(), 0),
        spirange_ext(0x100, 0xffff),
    ];
    assert_eq!(errno(&s.request(SADB_GETSPI, SADB_SATYPE_ESP, &getspi)), 0);
    assert_eq!(master.ok("digest"), slave.ok("digest"));
    slave.ok("add-sa single");
    assert_ne!(master.ok("digest"), slave.ok("digest"));
}

#[test]
fn digest_ignores_order_and_sees_content() {
    let a = TestHost::start(GatewayConfig::default());
    let b = TestHost::start(GatewayConfig::default());
    let mut pa = Pfkey::open(&a.path, 10);
    let mut pb = Pfkey::open(&b.path, 10);
    let sas = [
        esp_sa(0x100, [10, 0, 0, 100], [192, 0, 2, 1]),
        esp_sa(0x101, [192, 0, 2, 1], [10, 0, 0, 100]),
        esp_sa(0x102, [10, 0, 0, 100], [192, 0, 2, 2]),
    ];
    let flows = [flow(IPSP_DIRECTION_OUT, 1), flow(IPSP_DIRECTION_IN, 2)];
    for e in &sas {
        assert_eq!(errno(&pa.request(SADB_ADD, SADB_SATYPE_ESP, e)), 0);
    }
    for f in &flows {
        assert_eq!(errno(&pa.request(SADB_X_ADDFLOW, SADB_SATYPE_ESP, f)), 0);
    }
    for f in flows.iter().rev() {
        assert_eq!(errno(&pb.request(SADB_X_ADDFLOW, SADB_SATYPE_ESP, f)), 0);
    }
    for e in sas.iter().rev() {
        assert_eq!(errno(&pb.request(SADB_ADD, SADB_SATYPE_ESP, e)), 0);
    }
    assert_eq!(a.ok("digest"), b.ok("digest"));
    // Same identity, other keys: different.
    let del = [
        sa_ext(SADB_EXT_SA, 0x102, SADB_SASTATE_MATURE, 0, 0, 0),
        addr_ext(SADB_EXT_ADDRESS_DST, [192, 0, 2, 2].into(), 0),
    ];
    assert_eq!(errno(&pb.request(SADB_DELETE, SADB_SATYPE_ESP, &del)), 0);
    let mut other = esp_sa(0x102, [10, 0, 0, 100], [192, 0, 2, 2]);
    other[4] = key_ext(SADB_EXT_KEY_ENCRYPT, &[0x55; 16]);
    assert_eq!(errno(&pb.request(SADB_ADD, SADB_SATYPE_ESP, &other)), 0);
    assert_ne!(a.ok("digest"), b.ok("digest"));
    assert_eq!(a.ok("show counts"), b.ok("show counts"));
}

/// Sends `bytes` on a fresh connection and returns what comes back before
/// the devhost closes it (or the read times out).
fn raw(path: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(bytes).unwrap();
    read_available(&mut s).unwrap()
}

fn hello(path: &Path, role: Role) -> UnixStream {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&frame(&role.encode())).unwrap();
    let p = read_frame(&mut s, 64).unwrap();
    assert_eq!(parse_reply(&p), Ok(Ok(&[][..])));
    s
}

fn is_closed(s: &mut UnixStream) -> bool {
    matches!(s.read(&mut [0u8; 64]), Ok(0) | Err(_))
}

#[test]
fn garbage_on_every_role_and_the_host_keeps_serving() {
    let h = TestHost::start(GatewayConfig::default());
    let mut good = Pfkey::open(&h.path, 1);
    // Hello: an HTTP request (its first bytes read as a huge length), a
    // wrong magic, an unknown role, pid 0, a pid in use, the IKE pid.
    for bad in [
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        frame(b"XXXX\x02"),
        frame(b"SDH1\x09"),
        frame(b"SDH1\x01\0\0\0\0"),
        frame(&Role::Pfkey { pid: 1 }.encode()),
        frame(&Role::Pfkey { pid: IKE_PID }.encode()),
    ] {
        let got = raw(&h.path, &bad);
        let p = read_frame(&mut &got[..], 1024).unwrap();
        assert!(parse_reply(&p).unwrap().is_err(), "{bad:?}");
    }
    // Host: an unknown request and a short one are answered; the
    // connection stays. An oversized frame disconnects.
    let mut s = hello(&h.path, Role::Host);
    for bad in [&[9u8][..], &[2, 0], &[]] {
        s.write_all(&frame(bad)).unwrap();
        let p = read_frame(&mut s, 1024).unwrap();
        assert!(parse_reply(&p).unwrap().is_err());
    }
    s.write_all(&frame(&[5])).unwrap();
    assert_eq!(
        parse_reply(&read_frame(&mut s, 1024).unwrap()),
        Ok(Ok(&[2u8][..]))
    );
    s.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
    let p = read_frame(&mut s, 1024).unwrap();
    assert!(parse_reply(&p).unwrap().is_err());
    assert!(is_closed(&mut s));
    // Ctl: not UTF-8 is an error reply; the connection stays.
    let mut s = hello(&h.path, Role::Ctl);
    s.write_all(&frame(&[0xff, 0xfe])).unwrap();
    assert_eq!(
        read_frame(&mut s, 1024).unwrap(),
        b"error: command is not UTF-8"
    );
    s.write_all(&frame(b"show counts")).unwrap();
    assert_eq!(read_frame(&mut s, 1024).unwrap(), b"ok sas=0 flows=0");
    s.write_all(&(5000u32).to_be_bytes()).unwrap();
    assert!(parse_reply(&read_frame(&mut s, 1024).unwrap())
        .unwrap()
        .is_err());
    assert!(is_closed(&mut s));
    // Carp: a watcher that talks is dropped.
    let mut s = hello(&h.path, Role::Carp);
    assert_eq!(read_frame(&mut s, 1).unwrap(), [2]);
    s.write_all(b"x").unwrap();
    assert!(is_closed(&mut s));
    // Half a hello, then gone: nothing breaks.
    UnixStream::connect(&h.path)
        .unwrap()
        .write_all(&[0, 0])
        .unwrap();
    // Everyone else is still served.
    assert_eq!(errno(&good.request(SADB_FLUSH, 0, &[])), 0);
    assert_eq!(h.ok("show counts"), "sas=0 flows=0");
    assert!(h.ctl("frobnicate").is_err());
}

#[test]
fn pfkey_writes_before_a_close_are_carried_out() {
    let h = TestHost::start(GatewayConfig::default());
    {
        let mut p = Pfkey::open(&h.path, 9);
        for spi in 0x100..0x110 {
            let m = p.msg(
                SADB_ADD,
                SADB_SATYPE_ESP,
                &esp_sa(spi, [10, 0, 0, 100], [192, 0, 2, 1]),
            );
            p.s.write_all(&m).unwrap();
        }
    }
    let end = Instant::now() + Duration::from_secs(5);
    while h.ok("show counts") != "sas=16 flows=0" {
        assert!(Instant::now() < end, "{}", h.ok("show counts"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.status("clients"), "pfkey:0,host:0,carp:0,ctl:1");
}

#[test]
fn workload_negotiates_while_ike_is_active() {
    let h = TestHost::start(GatewayConfig::default());
    h.ok("workload on 5");
    let mut p = Pfkey::open(&h.path, 33);
    p.promisc(true);
    std::thread::sleep(Duration::from_millis(200));
    assert!(p.drain(Duration::from_millis(50)).is_empty(), "IKE passive");
    let mut host = HostClient::connect(&h.path).unwrap();
    assert!(host.ike(true).unwrap());
    let end = Instant::now() + Duration::from_secs(10);
    let mut writers = Vec::new();
    while writers.len() < 10 && Instant::now() < end {
        if let Some(c) = p.read() {
            writers.push(promisc_writer_pid(&c));
        }
    }
    assert!(writers.len() >= 10, "{writers:?}");
    assert!(writers.iter().all(|w| *w == Some(IKE_PID)));
    h.ok("workload off");
    assert_eq!(h.status("workload"), "off");
}

#[test]
fn a_second_server_on_a_live_socket_is_refused_and_a_stale_one_replaced() {
    let h = TestHost::start(GatewayConfig::default());
    let e = Server::bind(&h.path, &GatewayConfig::default()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    let stale = h.dir.join("stale");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let s = Server::bind(&stale, &GatewayConfig::default()).unwrap();
    assert_eq!(s.path(), stale);
    drop(s);
    assert!(!stale.exists());
    let file = h.dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let e = Server::bind(&file, &GatewayConfig::default()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(file.exists());
}
