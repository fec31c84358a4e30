//! Raw TCP connections to a running daemon, for the adversary tests: a
//! socket bound to any 127/8 address (the daemon tells peers apart by
//! source address, and loopback lets us be any of them), and a minimal v2
//! peer that knows the shared key, so that authentic frames can be
//! replayed.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
use sasyncd_core::crypto::SoftCrypto;
use sasyncd_core::ctl::Ctl;
use sasyncd_core::dialect::KernelDialect;
use sasyncd_core::state::{Position, RunState};
use sasyncd_core::wire::v2::{
    ArchTag, Hello, Kind, Session, Side, CONFIRM_LEN, HELLO_LEN, MAX_FRAME,
};

use crate::cluster::WAIT;

/// A blocking TCP connection from `from` (any port) to `to`.
pub fn connect_from(from: Ipv4Addr, to: SocketAddrV4) -> TcpStream {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(from, 0)),
    )
    .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    connect(fd.as_raw_fd(), &SockaddrIn::from(to))
        .unwrap_or_else(|e| panic!("connect {from} -> {to}: {e}"));
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    s
}

/// Reads until the daemon closes the connection (EOF or reset); panics
/// after [`WAIT`]. Returns what was read before.
pub fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let until = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset: the daemon closed with our bytes unread.
            Err(_) => return got,
        }
        assert!(
            Instant::now() < until,
            "the daemon did not close the connection from {:?} within {WAIT:?}",
            s.local_addr()
        );
    }
}

/// Reads exactly `n` bytes (panics after [`WAIT`] or on EOF).
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let until = Instant::now() + WAIT;
    let mut got = vec![0u8; n];
    let mut at = 0;
    while at < n {
        match s.read(&mut got[at..]) {
            Ok(0) => panic!("the daemon closed the connection after {at} of {n} bytes"),
            Ok(k) => at += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading {n} bytes from the daemon: {e}"),
        }
        assert!(Instant::now() < until, "{n} bytes did not come in {WAIT:?}");
    }
    got
}

/// Random bytes from the kernel.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    b
}

/// A v2 peer speaking for a configured address, with the shared key: it
/// completes the handshake as the initiator and keeps every byte it sent,
/// so a test can send frames twice or replay the whole session later.
pub struct V2Peer {
    /// The connection.
    pub stream: TcpStream,
    /// Every byte we sent, in order.
    pub sent: Vec<u8>,
    session: Session<SoftCrypto>,
}

impl std::fmt::Debug for V2Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2Peer")
            .field("stream", &self.stream)
            .field("sent", &self.sent.len())
            .finish()
    }
}

impl V2Peer {
    /// Connects from `from` to the daemon at `to` and completes the
    /// handshake as a SLAVE with nothing applied. Its node id is the
    /// lowest there is, so it wins the tie-break against any session the
    /// daemon already has with that peer.
    pub fn handshake(from: Ipv4Addr, to: SocketAddrV4, key: &str) -> V2Peer {
        let mut stream = connect_from(from, to);
        let theirs =
            Hello::decode(&read_exact(&mut stream, HELLO_LEN)).expect("the daemon's HELLO decodes");
        let nonce: [u8; 32] = random_bytes(32).try_into().expect("32 bytes");
        let ours = Hello {
            node_id: [0; 16],
            boot_epoch: u64::from_be_bytes(random_bytes(8).try_into().expect("8 bytes")),
            nonce,
            run_state: RunState::Slave,
            resume: Position::NONE,
            arch: ArchTag::host(),
            dialect: KernelDialect::OpenBsd,
        };
        let mut sent = Vec::new();
        let mut buf = [0u8; MAX_FRAME];
        let n = ours.encode(&mut buf).expect("encode our HELLO");
        sent.extend_from_slice(&buf[..n]);
        let mut session = Session::new(SoftCrypto, key.as_bytes(), Side::Initiator, &ours, &theirs)
            .expect("session keys");
        let n = session.confirm(&mut buf).expect("our CONFIRM");
        sent.extend_from_slice(&buf[..n]);
        stream.write_all(&sent).expect("send HELLO and CONFIRM");
        let mut confirm = read_exact(&mut stream, CONFIRM_LEN);
        session
            .check_confirm(&mut confirm)
            .expect("the daemon's CONFIRM checks with the shared key");
        V2Peer {
            stream,
            sent,
            session,
        }
    }

    /// Seals `ctl` as the next frame; returns the frame's bytes (sent and
    /// recorded).
    pub fn send_ctl(&mut self, ctl: &Ctl) -> Vec<u8> {
        let mut payload = [0u8; 128];
        let n = ctl.encode(&mut payload).expect("encode a control message");
        let mut buf = [0u8; MAX_FRAME];
        let len = self
            .session
            .seal(Kind::Ctl, &payload[..n], &mut buf)
            .expect("seal a frame");
        self.send_raw(&buf[..len]);
        buf[..len].to_vec()
    }

    /// Sends bytes as they are (recorded too).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the daemon");
        self.sent.extend_from_slice(bytes);
    }
}
