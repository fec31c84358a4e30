//! The mirrored variant of the failover bench (`tests/kernel/failover`):
//! **kernel state mirrored by platform-linux, not yet the sasyncd
//! daemon**. This process stands in for the backup's sasyncd: it copies
//! the master's states and policies into the backup's kernel (a snapshot,
//! then the master's change events), carries the master's outbound
//! sequence numbers (replay events), and when the virtual address appears
//! in the backup moves every outbound state past the last number carried
//! by MARGIN (0: no jump, to show what the peer's anti-replay window does
//! without it).
//!
//! ```text
//! failover_mirror MASTER_NETNS BACKUP_NETNS VIP MARGIN
//! ```
//!
//! Prints `MIRROR-...` lines; exits after the takeover.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use clap::Parser;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use sasyncd_linux::mirror::{apply_event, sync_tables};
use sasyncd_linux::nl::Msg;
use sasyncd_linux::replay::{self, OutboundSeqs};
use sasyncd_linux::socket::XfrmSocket;
use sasyncd_linux::xfrm::{group, msg, SaView};

/// Whether `vip` is an address of the namespace `netns` (a bind to it
/// succeeds only then).
fn holds(netns: &Path, vip: IpAddr) -> bool {
    let own = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
    let target = std::fs::File::open(netns).expect("backup netns");
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
    let ok = UdpSocket::bind(SocketAddr::new(vip, 0)).is_ok();
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns back");
    ok
}

/// Ask the master's kernel for replay events of the state in `m` (a new
/// state takes the sysctl's thresholds, an event every 2 packets).
fn want_events(master: &mut XfrmSocket, m: &Msg<'_>) {
    if let Ok(sa) = SaView::from_new(m) {
        if sa.is_complete() {
            let r = master.request(&mut replay::thresholds(&sa, replay::DEFAULT_THRESHOLD, 25));
            if let Err(e) = r {
                eprintln!("MIRROR thresholds of spi 0x{:08x}: {e}", sa.spi());
            }
        }
    }
}

/// The arguments (all positional, in this order).
#[derive(Debug, Parser)]
#[command(
    name = "failover_mirror",
    about = "mirror a master's XFRM states and policies into a backup until the takeover"
)]
struct Args {
    /// The master's network namespace (a path).
    master_netns: PathBuf,
    /// The backup's network namespace (a path).
    backup_netns: PathBuf,
    /// The virtual address whose arrival in the backup is the takeover.
    vip: IpAddr,
    /// How far past the last carried sequence number outbound states move
    /// at the takeover (0: not at all).
    margin: u64,
}

fn main() {
    let a = Args::parse();
    let (m_ns, b_ns) = (a.master_netns.as_path(), a.backup_netns.as_path());
    let (vip, margin) = (a.vip, a.margin);
    let start = Instant::now();
    let mut watch = XfrmSocket::open_in(
        m_ns,
        group::SA | group::POLICY | group::EXPIRE | group::AEVENTS,
    )
    .expect("watch socket in the master");
    let mut master = XfrmSocket::open_in(m_ns, 0).expect("socket in the master");
    let mut backup = XfrmSocket::open_in(b_ns, 0).expect("socket in the backup");
    let mut seqs = OutboundSeqs::new();
    let mut resync = true;
    let mut applied = 0usize;
    let mut aevents = 0usize;
    loop {
        if resync {
            let st = sync_tables(&mut master, &mut backup).expect("snapshot");
            master
                .dump(msg::GETSA, |m| {
                    seqs.handle_message(&m);
                })
                .expect("dump");
            let n = replay::set_all_thresholds(&mut master, replay::DEFAULT_THRESHOLD, 25)
                .expect("thresholds");
            println!(
                "MIRROR snapshot at {} ms: {} states, {} policies written; events asked of {n} states",
                start.elapsed().as_millis(),
                st.states_written,
                st.policies_written
            );
            resync = false;
        }
        let mut evs: Vec<Vec<u8>> = Vec::new();
        match watch.events(Duration::from_millis(10), |m| evs.push(m.bytes().to_vec())) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                println!("MIRROR events lost: resynchronising");
                resync = true;
            }
            Err(e) => panic!("watch: {e}"),
        }
        for e in &evs {
            let Ok(m) = Msg::new(e) else { continue };
            seqs.handle_message(&m);
            if m.kind() == msg::NEWAE {
                aevents += 1;
                continue;
            }
            if m.pid() == master.port() {
                continue;
            }
            if m.kind() == msg::NEWSA {
                want_events(&mut master, &m);
            }
            match apply_event(&mut backup, &m) {
                Ok(_) => applied += 1,
                Err(err) => {
                    println!("MIRROR cannot apply {m:?}: {err}: resynchronising");
                    resync = true;
                }
            }
        }
        if holds(b_ns, vip) {
            let at = start.elapsed().as_millis();
            println!(
                "MIRROR takeover: {vip} is the backup's at {at} ms; {applied} changes and {aevents} replay events mirrored; carried: {:?}",
                seqs.iter().map(|(k, v)| (u32::from_be(k.spi), *v)).map(|(s, v)| format!("spi 0x{s:08x} oseq {v}")).collect::<Vec<_>>()
            );
            if margin == 0 {
                println!("MIRROR no jump (margin 0): outbound states keep the numbers copied");
            } else {
                let local = [vip];
                let t = Instant::now();
                let st = replay::takeover(&mut backup, &seqs, margin, |s| {
                    replay::sends_from(s, &local)
                })
                .expect("takeover");
                println!(
                    "MIRROR jumped {} outbound states by {margin} past the carried numbers in {:?} ({} skipped, {} exhausted)",
                    st.moved,
                    t.elapsed(),
                    st.skipped,
                    st.exhausted
                );
            }
            return;
        }
    }
}
