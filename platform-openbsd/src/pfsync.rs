//! Whether a pfsync(4) interface is up. sasyncd(8) needs one alongside:
//! without pfsync the replay counters of the SAs are not synchronised, so
//! replay-protected SAs fail after a failover. The daemon warns at
//! start-up when none is up.

use std::io;

use nix::net::if_::InterfaceFlags;

/// Whether `name` is a pfsync interface (`pfsync` and a unit number).
pub fn is_pfsync(name: &str) -> bool {
    name.strip_prefix("pfsync")
        .is_some_and(|unit| !unit.is_empty() && unit.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether any of `interfaces` (name, up) is an up pfsync interface.
pub fn any_up<'a, I>(interfaces: I) -> bool
where
    I: IntoIterator<Item = (&'a str, bool)>,
{
    interfaces
        .into_iter()
        .any(|(name, up)| up && is_pfsync(name))
}

/// Whether a pfsync interface is up on this host (getifaddrs(3)).
pub fn pfsync_up() -> io::Result<bool> {
    let ifs: Vec<(String, bool)> = nix::ifaddrs::getifaddrs()?
        .map(|a| (a.interface_name, a.flags.contains(InterfaceFlags::IFF_UP)))
        .collect();
    Ok(any_up(ifs.iter().map(|(n, up)| (n.as_str(), *up))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_pfsync("pfsync0"));
        assert!(is_pfsync("pfsync12"));
        assert!(!is_pfsync("pfsync"));
        assert!(!is_pfsync("pfsync0a"));
        assert!(!is_pfsync("pflog0"));
        assert!(!is_pfsync("em0"));
    }

    #[test]
    fn up_ones_count() {
        assert!(any_up([("em0", true), ("pfsync0", true)]));
        assert!(!any_up([("em0", true), ("pfsync0", false)]));
        assert!(!any_up([]));
    }

    #[test]
    fn this_host_has_none() {
        // Linux has no pfsync; the call itself works anywhere.
        if cfg!(target_os = "linux") {
            assert!(!pfsync_up().unwrap());
        }
    }
}
