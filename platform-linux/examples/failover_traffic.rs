//! The traffic of the failover bench (`tests/kernel/failover`): a
//! sequence-numbered UDP stream both ways between two network namespaces
//! (through the tunnel), a failure made at a set time, and what it cost.
//!
//! ```text
//! failover_traffic NETNS_A ADDR_A:PORT NETNS_B ADDR_B:PORT RATE BEFORE_S AFTER_S FAIL_CMD
//! ```
//!
//! Sends RATE datagrams/s each way, runs `bash -c FAIL_CMD` after BEFORE_S
//! seconds, and goes on for AFTER_S seconds. Each datagram carries its
//! number and its send time; the receiver notes what came and when. One
//! line per direction (`FAILOVER-RESULT`): sent, received, lost, lost
//! after the failure, the time from the failure until datagrams arrive
//! again (ten in a row: `flow_again_ms`, or `never`), the outage (from
//! the first datagram lost to then), and the longest gap between two
//! arrivals.

use clap::Parser;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

fn udp_in(netns: &str, addr: &str) -> UdpSocket {
    let own = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
    let target = std::fs::File::open(netns).unwrap_or_else(|e| panic!("{netns}: {e}"));
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
    let s = UdpSocket::bind(addr);
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns back");
    s.unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}

/// What a receiver saw: for each number, its arrival (µs since start).
type Arrivals = Arc<Mutex<Vec<Option<u64>>>>;

fn receiver(sock: UdpSocket, start: Instant, arrivals: Arrivals, stop: Instant) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 64];
    while Instant::now() < stop {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n < 16 {
                continue;
            }
            let seq = u64::from_be_bytes(buf[..8].try_into().unwrap()) as usize;
            let at = start.elapsed().as_micros() as u64;
            let mut a = arrivals.lock().unwrap();
            if seq < a.len() && a[seq].is_none() {
                a[seq] = Some(at);
            }
        }
    }
}

fn sender(sock: &UdpSocket, dst: &str, rate: u64, start: Instant, total: usize) -> Vec<u64> {
    let mut sent = Vec::with_capacity(total);
    let period = Duration::from_nanos(1_000_000_000 / rate);
    for seq in 0..total {
        let due = start + period * seq as u32;
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            thread::sleep(d);
        }
        let at = start.elapsed().as_micros() as u64;
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(seq as u64).to_be_bytes());
        b[8..].copy_from_slice(&at.to_be_bytes());
        // A send can fail while routes move (no neighbour yet): the
        // datagram is lost, as on a wire.
        let _ = sock.send_to(&b, dst);
        sent.push(at);
    }
    sent
}

fn report(name: &str, sent: &[u64], arr: &[Option<u64>], fail_at: u64) {
    let received = arr.iter().filter(|a| a.is_some()).count();
    let lost_after = sent
        .iter()
        .zip(arr)
        .filter(|(s, a)| **s >= fail_at && a.is_none())
        .count();
    // Lost just before the failure too (in flight when it struck).
    let first_lost = sent.iter().zip(arr).position(|(_, a)| a.is_none());
    // The outage: from the first datagram lost around the failure (sent
    // up to 200 ms before it: in flight) to the arrival of the first one of
    // ten in a row that all arrived (flow again, not a stray).
    let lost_at = (0..sent.len()).find(|&i| sent[i] + 200_000 >= fail_at && arr[i].is_none());
    let (flow, outage) = match lost_at {
        None => ("0".to_string(), "0".to_string()),
        Some(k) => {
            let back = (k + 1..sent.len()).find(|&i| {
                let end = (i + 10).min(arr.len());
                arr[i..end].iter().all(Option::is_some)
            });
            match back.and_then(|i| arr[i]) {
                Some(a) => (
                    format!("{}", a.saturating_sub(fail_at) / 1000),
                    format!("{}", a.saturating_sub(sent[k]) / 1000),
                ),
                None => ("never".to_string(), "never".to_string()),
            }
        }
    };
    let mut times: Vec<u64> = arr.iter().flatten().copied().collect();
    times.sort_unstable();
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) / 1000;
    println!(
        "FAILOVER-RESULT {name} sent={} received={received} lost={} lost_after_fail={lost_after} first_lost_seq={} flow_again_ms={flow} outage_ms={outage} max_gap_ms={gap}",
        sent.len(),
        sent.len() - received,
        first_lost.map_or("none".into(), |s| s.to_string()),
    );
}

/// The arguments (all positional, in this order).
#[derive(Debug, Parser)]
#[command(
    name = "failover_traffic",
    about = "UDP both ways through the tunnel, a failure at a set time, and what it cost"
)]
struct Args {
    /// Network namespace of end A.
    netns_a: String,
    /// End A's address and port.
    #[arg(value_name = "ADDR_A:PORT")]
    addr_a: String,
    /// Network namespace of end B.
    netns_b: String,
    /// End B's address and port.
    #[arg(value_name = "ADDR_B:PORT")]
    addr_b: String,
    /// Datagrams per second each way.
    rate: u64,
    /// Seconds before the failure.
    before_s: u64,
    /// Seconds after it.
    after_s: u64,
    /// The failure: run with `bash -c`.
    fail_cmd: String,
}

fn main() {
    let a = Args::parse();
    let (ns_a, addr_a, ns_b, addr_b) = (&a.netns_a, &a.addr_a, &a.netns_b, &a.addr_b);
    let (rate, before, after) = (a.rate, a.before_s, a.after_s);
    let fail_cmd = a.fail_cmd.clone();
    let total = (rate * (before + after)) as usize;
    let sa = udp_in(ns_a, addr_a);
    let sb = udp_in(ns_b, addr_b);
    let start = Instant::now();
    let start_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    let stop = start + Duration::from_secs(before + after + 2);
    let arr_ab: Arrivals = Arc::new(Mutex::new(vec![None; total]));
    let arr_ba: Arrivals = Arc::new(Mutex::new(vec![None; total]));
    let rx_b = {
        let (s, a) = (sb.try_clone().unwrap(), arr_ab.clone());
        thread::spawn(move || receiver(s, start, a, stop))
    };
    let rx_a = {
        let (s, a) = (sa.try_clone().unwrap(), arr_ba.clone());
        thread::spawn(move || receiver(s, start, a, stop))
    };
    let tx_ab = {
        let (s, d) = (sa.try_clone().unwrap(), addr_b.clone());
        thread::spawn(move || sender(&s, &d, rate, start, total))
    };
    let tx_ba = {
        let (s, d) = (sb.try_clone().unwrap(), addr_a.clone());
        thread::spawn(move || sender(&s, &d, rate, start, total))
    };
    thread::sleep(Duration::from_secs(before));
    let fail_at = start.elapsed().as_micros() as u64;
    println!(
        "FAILOVER-EVENT failure at {} ms: {fail_cmd}",
        fail_at / 1000
    );
    let st = Command::new("bash").arg("-c").arg(&fail_cmd).status();
    println!(
        "FAILOVER-EVENT failure command done at {} ms: {st:?}",
        start.elapsed().as_millis()
    );
    // The command may say when the failure really struck (a busy machine
    // can take seconds to run it): seconds since the epoch in the file
    // FAILOVER_FAIL_FILE names ($EPOCHREALTIME, written as it struck).
    let fail_at = match std::env::var("FAILOVER_FAIL_FILE")
        .ok()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| t.trim().parse::<f64>().ok())
    {
        Some(t) => {
            let struck = (t - start_wall) * 1e6;
            println!(
                "FAILOVER-EVENT the failure struck at {} ms",
                struck as u64 / 1000
            );
            struck.max(0.0) as u64
        }
        None => fail_at,
    };
    let sent_ab = tx_ab.join().unwrap();
    let sent_ba = tx_ba.join().unwrap();
    rx_a.join().unwrap();
    rx_b.join().unwrap();
    report("a->b", &sent_ab, &arr_ab.lock().unwrap(), fail_at);
    report("b->a", &sent_ba, &arr_ba.lock().unwrap(), fail_at);
}
