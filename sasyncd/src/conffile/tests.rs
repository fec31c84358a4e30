use super::*;

use std::fs;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::testutil::{is_root, TempDir};

const GOOD: &str = "interface carp0\nsharedkey sasyncd-test-key\npeer 10.0.0.2\n";

/// Only root may own the file (as on a host without `_isakmpd`, run by
/// root).
const ROOT_ONLY: Owners = Owners {
    ike_user: None,
    euid: None,
};

/// Owners under which a file this test process created is acceptable.
fn ours() -> Owners {
    let euid = geteuid().as_raw();
    Owners {
        ike_user: None,
        euid: (euid != 0).then_some(euid),
    }
}

fn write(dir: &TempDir, name: &str, text: &[u8], mode: u32) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn message(path: &Path, owners: &Owners) -> String {
    load_with(path, owners).unwrap_err().to_string()
}

#[test]
fn private_file_is_accepted() {
    let dir = TempDir::new("conf");
    let path = write(&dir, "sasyncd.conf", GOOD.as_bytes(), 0o600);
    let c = load_with(&path, &ours()).unwrap();
    assert_eq!(c.interface.as_deref(), Some("carp0"));
    assert_eq!(c.sharedkey.as_bytes(), b"sasyncd-test-key");
    // Stricter modes are fine too.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert!(load_with(&path, &ours()).is_ok());
}

#[test]
fn root_file_with_mode_0600_is_accepted_by_root() {
    if !is_root() {
        crate::testutil::skip("needs root to own a file as root");
        return;
    }
    let dir = TempDir::new("conf");
    let path = write(&dir, "sasyncd.conf", GOOD.as_bytes(), 0o600);
    assert!(load_with(&path, &ROOT_ONLY).is_ok());
    assert!(load(&path).is_ok());
}

#[test]
fn symlink_is_refused_even_to_a_good_file() {
    let dir = TempDir::new("conf");
    let good = write(&dir, "real.conf", GOOD.as_bytes(), 0o600);
    let link = dir.path().join("sasyncd.conf");
    symlink(&good, &link).unwrap();
    assert_eq!(
        message(&link, &ours()),
        format!("{}: is a symbolic link; refusing it", link.display())
    );
    // A dangling link is refused the same way, not as a missing file.
    let dangling = dir.path().join("dangling.conf");
    symlink(dir.path().join("nowhere"), &dangling).unwrap();
    assert_eq!(
        message(&dangling, &ours()),
        format!("{}: is a symbolic link; refusing it", dangling.display())
    );
}

#[test]
fn directory_and_fifo_are_not_regular_files() {
    let dir = TempDir::new("conf");
    let sub = dir.path().join("sasyncd.conf");
    fs::create_dir(&sub).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        message(&sub, &ours()),
        format!("{}: not a regular file", sub.display())
    );
    // A fifo with no writer: opening must not block (O_NONBLOCK).
    let fifo = dir.path().join("fifo.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_eq!(
        message(&fifo, &ours()),
        format!("{}: not a regular file", fifo.display())
    );
}

#[test]
fn foreign_owner_is_refused() {
    if !is_root() {
        crate::testutil::skip("needs root to chown a file");
        return;
    }
    let dir = TempDir::new("conf");
    let path = write(&dir, "sasyncd.conf", GOOD.as_bytes(), 0o600);
    chown(&path, Some(12345), None).unwrap();
    let shown = path.display();
    assert_eq!(
        message(&path, &ROOT_ONLY),
        format!("{shown}: owned by uid 12345; must be owned by root")
    );
    let ike = Owners {
        ike_user: Some(777),
        euid: None,
    };
    assert_eq!(
        message(&path, &ike),
        format!("{shown}: owned by uid 12345; must be owned by root or _isakmpd")
    );
    let dev = Owners {
        ike_user: Some(777),
        euid: Some(1000),
    };
    assert_eq!(
        message(&path, &dev),
        format!("{shown}: owned by uid 12345; must be owned by root, _isakmpd or uid 1000 (ours)")
    );
    // The IKE user and our own uid may own it.
    let ike_owns = Owners {
        ike_user: Some(12345),
        euid: None,
    };
    assert!(load_with(&path, &ike_owns).is_ok());
    let we_own = Owners {
        ike_user: None,
        euid: Some(12345),
    };
    assert!(load_with(&path, &we_own).is_ok());
}

#[test]
fn group_or_other_bits_are_refused() {
    let dir = TempDir::new("conf");
    for mode in [0o640, 0o604, 0o602, 0o610, 0o644, 0o777] {
        let path = write(&dir, "sasyncd.conf", GOOD.as_bytes(), mode);
        assert_eq!(
            message(&path, &ours()),
            format!(
                "{}: mode {mode:04o} lets group or others access it; chmod 600 it",
                path.display()
            )
        );
    }
}

#[test]
fn oversized_file_is_refused() {
    let dir = TempDir::new("conf");
    let mut text = GOOD.as_bytes().to_vec();
    text.resize(MAX_CONFIG_BYTES + 1, b'\n');
    let path = write(&dir, "sasyncd.conf", &text, 0o600);
    assert_eq!(
        message(&path, &ours()),
        format!("{}: larger than 1048576 bytes; refusing it", path.display())
    );
    // Exactly the limit is fine.
    text.truncate(MAX_CONFIG_BYTES);
    let path = write(&dir, "max.conf", &text, 0o600);
    assert!(load_with(&path, &ours()).is_ok());
}

#[test]
fn missing_file_and_parse_errors_name_the_path() {
    let dir = TempDir::new("conf");
    let missing = dir.path().join("none.conf");
    assert_eq!(
        message(&missing, &ours()),
        format!("{}: No such file or directory", missing.display())
    );
    let bad = write(
        &dir,
        "bad.conf",
        b"interface carp0\n\nsharedkey 0xZZ\n",
        0o600,
    );
    assert_eq!(
        message(&bad, &ours()),
        format!(
            "{}:3: sharedkey starts with 0x but has the non-hex digit \"Z\" (quote the key to use it as text)",
            bad.display()
        )
    );
}

#[test]
fn config_text_debug_hides_the_bytes() {
    let dir = TempDir::new("conf");
    let path = write(&dir, "sasyncd.conf", GOOD.as_bytes(), 0o600);
    let text = read_checked(&path, &ours()).unwrap();
    assert_eq!(&*text, GOOD.as_bytes());
    let shown = format!("{text:?}");
    assert_eq!(shown, format!("SecretBytes({} bytes)", GOOD.len()));
    assert!(!shown.contains("sasyncd-test-key"));
}

/// The old code learnt its euid by writing `$TMPDIR/sasyncd-uid-<pid>`, a
/// predictable name: a symlink planted there made root create or truncate
/// any file. Loading must create nothing in the temp directory now.
#[test]
fn no_probe_file_in_the_temp_dir() {
    let dir = TempDir::new("conf");
    let path = write(&dir, "sasyncd.conf", GOOD.as_bytes(), 0o600);
    let victim = dir.path().join("victim");
    let probe = std::env::temp_dir().join(format!("sasyncd-uid-{}", std::process::id()));
    let _ = fs::remove_file(&probe);
    symlink(&victim, &probe).unwrap();
    let before = probes();
    let result = load(&path);
    let after = probes();
    let link_kept = fs::symlink_metadata(&probe).is_ok_and(|m| m.file_type().is_symlink());
    fs::remove_file(&probe).unwrap();
    result.unwrap();
    assert!(!victim.exists(), "the planted symlink was followed");
    assert!(link_kept, "the planted symlink was removed or replaced");
    assert_eq!(before, after);
}

/// Names in the temp directory that look like the old probe.
fn probes() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sasyncd-uid-"))
        .collect();
    v.sort();
    v
}

fn parsed(text: &str) -> Config {
    Config::parse(text.as_bytes()).unwrap()
}

#[test]
fn peers_resolve_in_place() {
    let mut c =
        parsed("interface carp0 sharedkey sasyncd-test-key peer gw-b peer 10.0.0.3 peer gw-c");
    let calls = AtomicU32::new(0);
    resolve_peers_with(&mut c, &[], |name| {
        calls.fetch_add(1, Ordering::Relaxed);
        Ok(match name {
            "gw-b" => vec![
                "192.0.2.2:0".parse().unwrap(),
                "192.0.2.9:0".parse().unwrap(),
            ],
            _ => vec!["[2001:db8::3]:0".parse().unwrap()],
        })
    })
    .unwrap();
    // Only names are looked up; literals are kept; the first address wins.
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    let addrs: Vec<String> = c
        .peers
        .iter()
        .map(|p| p.addr.unwrap().to_string())
        .collect();
    assert_eq!(addrs, ["192.0.2.2", "10.0.0.3", "2001:db8::3"]);
    assert_eq!(c.peers[0].name.as_str(), "gw-b");
}

#[test]
fn unresolvable_peer_is_named() {
    let mut c = parsed("interface carp0 sharedkey sasyncd-test-key peer 10.0.0.3\npeer gw-x");
    let e = resolve_peers_with(&mut c, &[], |_| {
        Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "peer gw-x: cannot resolve: no such host");
    assert_eq!(
        e.display_with(std::path::Path::new("f")),
        "f:2: peer gw-x: cannot resolve: no such host"
    );
    let e = resolve_peers_with(&mut c, &[], |_| Ok(Vec::new())).unwrap_err();
    assert_eq!(e.to_string(), "peer gw-x: cannot resolve: no address");
}

#[test]
fn name_resolving_to_another_peer_is_refused() {
    let mut c = parsed("interface carp0 sharedkey sasyncd-test-key peer 10.0.0.3 peer gw-y");
    let e =
        resolve_peers_with(&mut c, &[], |_| Ok(vec!["10.0.0.3:0".parse().unwrap()])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "peer gw-y: resolves to 10.0.0.3, the address of peer 10.0.0.3"
    );
}

/// The real resolver, on a name every host resolves without a network.
#[test]
fn localhost_resolves() {
    let mut c = parsed("interface carp0 sharedkey sasyncd-test-key peer localhost");
    resolve_peers(&mut c, &[]).unwrap();
    assert!(c.peers[0].addr.unwrap().is_loopback());
}

/// A peer at one of our own addresses, given or resolved, or a name that
/// resolves to an address no peer can have, is refused with its line.
#[test]
fn own_and_unusable_addresses_are_refused() {
    let own: Vec<std::net::IpAddr> = vec!["192.0.2.1".parse().unwrap()];
    let f = std::path::Path::new("f");
    let mut c = parsed("interface carp0 sharedkey sasyncd-test-key\npeer 192.0.2.1");
    let e = resolve_peers_with(&mut c, &own, |_| unreachable!()).unwrap_err();
    assert_eq!(
        e.display_with(f),
        "f:2: peer 192.0.2.1: 192.0.2.1 is an address of this host; list the other gateways only"
    );
    let mut c = parsed("interface carp0 sharedkey sasyncd-test-key\n\npeer me");
    let e =
        resolve_peers_with(&mut c, &own, |_| Ok(vec!["192.0.2.1:0".parse().unwrap()])).unwrap_err();
    assert!(
        e.display_with(f)
            .starts_with("f:3: peer me: 192.0.2.1 is an address"),
        "{e}"
    );
    let e =
        resolve_peers_with(&mut c, &own, |_| Ok(vec!["224.0.0.1:0".parse().unwrap()])).unwrap_err();
    assert_eq!(
        e.display_with(f),
        "f:3: peer me: resolves to 224.0.0.1: a multicast or broadcast address"
    );
}
