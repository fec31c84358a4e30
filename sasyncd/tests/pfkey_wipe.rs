//! PF_KEY bytes (SA keys) leave no copy in the heap once the message that
//! carried them is handled: not in a buffer that is reused, nor in one
//! that is freed or outgrown. The attack is a memory dump of the process
//! (a core file, /proc/PID/mem as root): it must not hold the key of an
//! SA whose message is gone.
//!
//! A tracking allocator knows every live heap block and looks for a known
//! key in every block freed; at checkpoints the test also looks for it in
//! every live block. Reallocation is modelled as the allocator is free to
//! do it: a new block, a copy, the old block freed (the default
//! `GlobalAlloc::realloc`), so growing a buffer full of keys without
//! wiping it shows as a freed copy.
//!
//! Covered: the network process's read path in development mode
//! (`DevPfkey` and the devhost framer), on OpenBSD (`ObsdPfkey` over a
//! datagram pair, as the kernel's socket hands out records), and the
//! privileged process's dump from a devhost (`DevHost::dump`, a reply of
//! several MiB read as it arrives), and the dump's records on the
//! privilege-separation channel, both ends. On Linux: the network
//! process's XFRM socket (`LinuxXfrm`, its netlink datagrams read whole,
//! one larger than the socket's first buffer) and the privileged
//! process's XFRM dump (`XfrmSocket::dump`), over a datagram pair whose
//! other end plays the kernel.
//!
//! One process-wide allocator: no harness threads (`harness = false`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sasyncd::dev::{DevHost, DevPfkey};
use sasyncd::kernel::{Host, PfkeySocket};
use sasyncd::openbsd::ObsdPfkey;
use sasyncd::privsep::{NetChannel, PrivChannel, ToNet};
use sasyncd::secret::SecretBytes;
use sasyncd_core::node::Table;
use sasyncd_devhost_proto::frame::{frame, read_frame};
use sasyncd_devhost_proto::proto::{ok_reply, MAX_REPLY};
use sasyncd_openbsd::pfkey::PfkeySock;
use zeroize::Zeroize;

/// The SA key every test message carries, made at run time (so it is in
/// no block but the ones under test). A static: not on the heap itself.
static mut KEY: [u8; 32] = [0; 32];

const SLOTS: usize = 1 << 16;
/// Live blocks: address (0 empty, 1 removed) and size.
static PTRS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static SIZES: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static OVERFLOW: AtomicBool = AtomicBool::new(false);
static ARMED: AtomicBool = AtomicBool::new(false);
/// Freed blocks that still held the key.
static FREED_WITH_KEY: AtomicUsize = AtomicUsize::new(0);

fn slot_of(p: usize) -> usize {
    (p >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) % SLOTS
}

fn track(p: usize, size: usize) {
    let mut i = slot_of(p);
    for _ in 0..SLOTS {
        let cur = PTRS[i].load(Ordering::Relaxed);
        if (cur == 0 || cur == 1)
            && PTRS[i]
                .compare_exchange(cur, p, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            SIZES[i].store(size, Ordering::Release);
            return;
        }
        i = (i + 1) % SLOTS;
    }
    OVERFLOW.store(true, Ordering::Relaxed);
}

fn untrack(p: usize) {
    let mut i = slot_of(p);
    for _ in 0..SLOTS {
        match PTRS[i].load(Ordering::Acquire) {
            0 => return,
            x if x == p => {
                PTRS[i].store(1, Ordering::Release);
                return;
            }
            _ => i = (i + 1) % SLOTS,
        }
    }
}

/// Whether `len` bytes at `p` hold the key.
///
/// # Safety
/// `p..p+len` must be readable.
unsafe fn holds_key(p: *const u8, len: usize) -> bool {
    // SAFETY: the caller's promise; KEY is only written before arming.
    let (bytes, key) = unsafe {
        (
            std::slice::from_raw_parts(p, len),
            &*std::ptr::addr_of!(KEY),
        )
    };
    bytes.windows(key.len()).any(|w| w == key)
}

struct Tracking;

// SAFETY: every call is passed to `System` unchanged; the bookkeeping
// allocates nothing.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for this call.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            track(p as usize, l.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for this call.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            track(p as usize, l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        untrack(p as usize);
        // SAFETY: the block is live until System frees it below.
        if ARMED.load(Ordering::Relaxed) && unsafe { holds_key(p, l.size()) } {
            FREED_WITH_KEY.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as the caller promised for this call.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Live heap blocks that hold the key now. Only while no other thread
/// runs (one could free a block being read).
fn live_with_key() -> usize {
    let mut n = 0;
    for i in 0..SLOTS {
        let p = PTRS[i].load(Ordering::Acquire);
        if p > 1 {
            // SAFETY: a tracked block is live (single thread: nothing
            // frees it meanwhile) and SIZES holds its size.
            if unsafe { holds_key(p as *const u8, SIZES[i].load(Ordering::Acquire)) } {
                n += 1;
            }
        }
    }
    n
}

/// Checks both ways of leaving a key behind since the last checkpoint.
fn checkpoint(what: &str, failures: &mut Vec<String>) {
    let freed = FREED_WITH_KEY.swap(0, Ordering::Relaxed);
    let live = live_with_key();
    eprintln!("{what}: {freed} freed and {live} live blocks hold the key");
    if freed > 0 || live > 0 {
        failures.push(format!(
            "{what}: {freed} freed and {live} live heap blocks still hold the SA key"
        ));
    }
}

/// A PF_KEY message of `len` bytes (a multiple of 8, at least 56) whose
/// body carries the key.
fn message(len: usize, seq: u32, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[2, 3, 0, 2]);
    out.extend_from_slice(&((len / 8) as u16).to_ne_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&4242u32.to_ne_bytes());
    out.resize(start + len, 0x5a);
    // SAFETY: KEY is only written before arming.
    let key = unsafe { &*std::ptr::addr_of!(KEY) };
    out[start + 24..start + 24 + key.len()].copy_from_slice(key);
}

/// The network process in development mode: messages of every size
/// arrive in pieces of every size, so the framer takes messages, keeps
/// partial ones and compacts its buffer.
fn dev_pfkey(failures: &mut Vec<String>) {
    let (ours, mut devhost) = UnixStream::pair().unwrap();
    let mut pfkey = DevPfkey::from_stream(ours).unwrap();
    let sizes = [56usize, 64, 200, 512, 1016, 4096, 72];
    let count = 300;
    let total: usize = (0..count).map(|i| sizes[i % sizes.len()]).sum();
    let mut stream = Vec::with_capacity(total);
    for i in 0..count {
        message(sizes[i % sizes.len()], i as u32, &mut stream);
    }
    let mut got = 0;
    let mut at = 0;
    let mut piece = 1;
    while at < stream.len() {
        let n = piece.min(stream.len() - at);
        devhost.write_all(&stream[at..at + n]).unwrap();
        at += n;
        piece = (piece * 7 + 13) % 3000 + 1;
        let mut out: Vec<SecretBytes> = Vec::with_capacity(64);
        pfkey.read_messages(&mut out).unwrap();
        got += out.len();
    }
    assert_eq!(got, count, "every message came through");
    stream.zeroize();
    checkpoint("DevPfkey, messages handled (framer alive)", failures);
    drop(pfkey);
    checkpoint("DevPfkey dropped", failures);
}

/// The network process on OpenBSD: one record per read.
fn obsd_pfkey(failures: &mut Vec<String>) {
    let (ours, kernel) = UnixDatagram::pair().unwrap();
    let mut pfkey = ObsdPfkey(PfkeySock::from_fd(OwnedFd::from(ours)).unwrap());
    let mut got = 0;
    for (i, len) in [64usize, 4096, 128, 1024].into_iter().enumerate() {
        let mut m = Vec::with_capacity(len);
        message(len, i as u32, &mut m);
        kernel.send(&m).unwrap();
        m.zeroize();
        let mut out: Vec<SecretBytes> = Vec::with_capacity(8);
        pfkey.read_messages(&mut out).unwrap();
        got += out.len();
    }
    assert_eq!(got, 4);
    checkpoint("ObsdPfkey, records handled", failures);
    drop(pfkey);
    checkpoint("ObsdPfkey dropped", failures);
}

/// The dump's records on their way from the privileged process to the
/// network process: the channel's send queue (reused, compacted, grown)
/// and its reader, in batches of every size.
fn privsep_dump(failures: &mut Vec<String>) {
    let (p, n) = UnixStream::pair().unwrap();
    let mut to_net = PrivChannel::new(p).unwrap();
    let mut from_priv = NetChannel::new(n).unwrap();
    let mut records = Vec::with_capacity(64 * 1024);
    for i in 0..64 {
        message(1024, i, &mut records);
    }
    let mut got = 0;
    let mut want = 0;
    for batch in 1..=64usize {
        // Queue more than the socket takes, then flush and read in turn.
        for _ in 0..4 {
            to_net
                .queue_dump_records(7, &records[..batch * 1024])
                .unwrap();
            want += batch * 1024;
        }
        while got < want {
            to_net.flush().unwrap();
            from_priv.read_ready().unwrap();
            while let Some(m) = from_priv.next_msg().unwrap() {
                match m {
                    ToNet::DumpRecords { records, .. } => got += records.len(),
                    other => panic!("{other:?}"),
                }
            }
        }
    }
    assert_eq!(
        got,
        4 * 1024 * (1..=64).sum::<usize>(),
        "every record came through"
    );
    records.zeroize();
    checkpoint(
        "privsep channel, dump records handled (channels alive)",
        failures,
    );
    drop(to_net);
    drop(from_priv);
    checkpoint("privsep channels dropped", failures);
}

/// The privileged process's dump from a devhost: a reply larger than the
/// first buffer the client reserves, so it grows while reading.
fn dev_dump(failures: &mut Vec<String>) {
    let dir = std::env::temp_dir().join(format!("sasyncd-wipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("devhost.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let records = 3 * 1024 * 1024 / 1024;
    let mut dump = Vec::with_capacity(records * 1024);
    for i in 0..records {
        message(1024, i as u32, &mut dump);
    }
    let mut payload = ok_reply(&dump);
    let mut reply = frame(&payload);
    payload.zeroize();
    dump.zeroize();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hello = read_frame(&mut s, MAX_REPLY).unwrap();
        hello.zeroize();
        let ok = frame(&ok_reply(&[]));
        s.write_all(&ok).unwrap();
        let mut req = read_frame(&mut s, MAX_REPLY).unwrap();
        req.zeroize();
        s.write_all(&reply).unwrap();
        reply.zeroize();
        // Until the client leaves.
        let _ = s.read(&mut [0u8; 1]);
    });
    let mut host = DevHost::open(&path).unwrap();
    let got = host.dump(Table::Sadb).unwrap();
    assert_eq!(got.len(), records * 1024);
    drop(got);
    drop(host);
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    checkpoint("DevHost::dump of 3 MiB, dropped", failures);
}

/// A netlink message of `len` bytes (a multiple of 4, at least 52) of
/// type `kind` whose body carries the key.
#[cfg(target_os = "linux")]
fn nl_message(len: usize, kind: u16, seq: u32, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&4242u32.to_ne_bytes());
    out.resize(start + len, 0x5a);
    // SAFETY: KEY is only written before arming.
    let key = unsafe { &*std::ptr::addr_of!(KEY) };
    out[start + 20..start + 20 + key.len()].copy_from_slice(key);
}

/// Sizes of the XFRM records sent: small ones, several to a datagram,
/// and one larger than the socket's first buffer (32 KiB), which the
/// reader grows to.
#[cfg(target_os = "linux")]
const XFRM_SIZES: [usize; 8] = [56, 64, 200, 512, 1016, 4096, 72, 40_000];

/// The network process on Linux: the XFRM socket's change events, many
/// to a datagram, one datagram larger than the first buffer.
#[cfg(target_os = "linux")]
fn linux_xfrm(failures: &mut Vec<String>) {
    use sasyncd::linux::LinuxXfrm;
    use sasyncd_linux::socket::XfrmSocket;
    let (ours, kernel) = UnixDatagram::pair().unwrap();
    kernel
        .set_write_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut xfrm = LinuxXfrm::from_socket(XfrmSocket::from_fd(OwnedFd::from(ours), 77));
    let mut got = 0;
    let mut sent = 0;
    for round in 0..6 {
        // A datagram of one to three records, as the kernel groups them.
        for (i, chunk) in XFRM_SIZES.chunks(1 + round % 3).enumerate() {
            // Sized up front: growing would leave a copy of the keys.
            let mut d = Vec::with_capacity(chunk.iter().sum());
            for &len in chunk {
                nl_message(len, 0x10, i as u32, &mut d);
            }
            kernel.send(&d).unwrap();
            d.zeroize();
            sent += chunk.len();
            let mut out: Vec<SecretBytes> = Vec::with_capacity(8);
            xfrm.read_messages(&mut out).unwrap();
            got += out.len();
        }
    }
    assert_eq!(got, sent, "every record came through");
    checkpoint("LinuxXfrm, events handled (socket alive)", failures);
    drop(xfrm);
    checkpoint("LinuxXfrm dropped", failures);
}

/// The privileged process on Linux: a dump's records, several to a
/// datagram, one datagram larger than the first buffer, the end in the
/// last one with records before it.
#[cfg(target_os = "linux")]
fn linux_dump(failures: &mut Vec<String>) {
    use sasyncd_linux::socket::XfrmSocket;
    let (ours, kernel) = UnixDatagram::pair().unwrap();
    let mut sock = XfrmSocket::from_fd(OwnedFd::from(ours), 77);
    let server = std::thread::spawn(move || {
        let mut req = [0u8; 64];
        let n = kernel.recv(&mut req).unwrap();
        assert!(n >= 16);
        let seq = u32::from_ne_bytes(req[8..12].try_into().unwrap());
        let mut d = Vec::with_capacity(XFRM_SIZES.iter().sum::<usize>() + 20);
        for (i, &len) in XFRM_SIZES.iter().enumerate() {
            nl_message(len, 0x10, seq, &mut d);
            if i % 3 == 2 {
                kernel.send(&d).unwrap();
                d.iter_mut().for_each(|b| *b = 0);
                d.clear();
            }
        }
        // The end (NLMSG_DONE) after the last records.
        d.extend_from_slice(&20u32.to_ne_bytes());
        d.extend_from_slice(&3u16.to_ne_bytes());
        d.extend_from_slice(&2u16.to_ne_bytes());
        d.extend_from_slice(&seq.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        kernel.send(&d).unwrap();
        d.zeroize();
    });
    let mut records = 0;
    let n = sock.dump(0x12, |_| records += 1).unwrap();
    server.join().unwrap();
    assert_eq!((n, records), (XFRM_SIZES.len(), XFRM_SIZES.len()));
    checkpoint("XfrmSocket::dump, records handled (socket alive)", failures);
    drop(sock);
    checkpoint("XfrmSocket dropped", failures);
}

fn main() {
    // A key no heap block holds yet.
    let mut x: u64 = 0x5a5a_1234_9876_abcd ^ u64::from(std::process::id());
    // SAFETY: single-threaded, before arming.
    let key = unsafe { &mut *std::ptr::addr_of_mut!(KEY) };
    for b in key.iter_mut() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 33) as u8 | 0x80;
    }
    ARMED.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    checkpoint("before anything", &mut failures);
    dev_pfkey(&mut failures);
    obsd_pfkey(&mut failures);
    dev_dump(&mut failures);
    privsep_dump(&mut failures);
    #[cfg(target_os = "linux")]
    {
        linux_xfrm(&mut failures);
        linux_dump(&mut failures);
    }
    assert!(
        !OVERFLOW.load(Ordering::Relaxed),
        "the block table overflowed: the live checks are incomplete"
    );
    if !failures.is_empty() {
        eprintln!("FAILED:");
        for f in &failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    eprintln!("pfkey_wipe: ok");
}
