//! Two network namespaces joined by a veth pair, for the partition tests:
//! each gateway runs in its own namespace (see
//! [`Options::netns`](crate::cluster::Options::netns)) and the link between
//! them can be cut and restored. Needs root and `ip netns`; both
//! namespaces (and so the veth pair) are deleted when the pair drops.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The veth end in each namespace.
const DEV: [&str; 2] = ["veth0", "veth1"];

/// Two namespaces, `ns[0]` and `ns[1]`, joined by a veth pair whose ends
/// have `addr[0]` and `addr[1]`.
#[derive(Debug)]
pub struct NetPair {
    /// The namespaces' names.
    pub ns: [String; 2],
    /// Each veth end's address (a /24 of their own).
    pub addr: [Ipv4Addr; 2],
    created: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetPair {
    /// Creates the pair, or says why it cannot (not root, no `ip`, no
    /// namespaces): the caller skips its test then.
    pub fn new() -> Result<NetPair, String> {
        if !crate::cluster::is_root() {
            return Err("network namespaces need root".into());
        }
        remove_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let ns = [0, 1].map(|side| format!("sasyncd-e2e-{pid}-{n}-{side}"));
        let net = (pid % 250) as u8 + 1;
        let addr = [1, 2].map(|h| Ipv4Addr::new(10, net, n as u8, h));
        let mut pair = NetPair {
            ns: ns.clone(),
            addr,
            created: Vec::new(),
        };
        for name in &ns {
            ip(&["netns", "add", name])?;
            pair.created.push(name.clone());
        }
        ip(&[
            "link", "add", DEV[0], "netns", &ns[0], "type", "veth", "peer", "name", DEV[1],
            "netns", &ns[1],
        ])?;
        for side in 0..2 {
            let cidr = format!("{}/24", addr[side]);
            ip(&["-n", &ns[side], "addr", "add", &cidr, "dev", DEV[side]])?;
            ip(&["-n", &ns[side], "link", "set", "lo", "up"])?;
            ip(&["-n", &ns[side], "link", "set", DEV[side], "up"])?;
        }
        Ok(pair)
    }

    /// Takes `side`'s end of the link down: nothing passes either way.
    pub fn cut(&self, side: usize) {
        ip(&["-n", &self.ns[side], "link", "set", DEV[side], "down"]).expect("cut the link");
    }

    /// Brings `side`'s end of the link back up.
    pub fn restore(&self, side: usize) {
        ip(&["-n", &self.ns[side], "link", "set", DEV[side], "up"]).expect("restore the link");
    }
}

/// Deletes the namespaces of test runs that were killed before their
/// pairs dropped (their names carry the pid of a process that is gone).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let pid = name
            .strip_prefix("sasyncd-e2e-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the
        // pair.
        for name in self.created.drain(..) {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}
