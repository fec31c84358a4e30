//! `bulk-sa N [flows=M] [from=K]`: loads a large SADB and SPD in one
//! command, for scale measurements (`add-sa` adds one pair per command).
//!
//! Adds `N` mature ESP SAs in pairs (one per direction) between the
//! gateway ([`DEFAULT_LOCAL`]) and remote peers 100.64.0.0 onwards, as
//! isakmpd writes them: HMAC-SHA2-256 and AES with random 32-byte keys,
//! hard and soft lifetimes (224 bytes each), tunnel mode; then `M` (default
//! `N / 2`) outbound "require" flows, gateway to peer. Everything is
//! written as the IKE stand-in through the kernel, so a promiscuous sasyncd
//! would see every write (load before starting it to avoid a flood).
//!
//! SA `i` has SPI `0x10000000 + (i * 0x9e3779b1 mod 2^28)`, distinct for
//! every `i` below 2^28; `from=K` starts at index `K`, so commands with
//! disjoint ranges add disjoint SAs (and flows). Replies `sas=N flows=M`.

use std::net::{IpAddr, Ipv4Addr};

use sasyncd_core::pfkey::consts::*;

use super::args::Args;
use crate::devhost::gateway::Gateway;
use crate::devhost::DEFAULT_LOCAL;
use crate::pfmsg::{addr_ext, flow_exts, host_mask, key_ext, lifetime_ext, sa_ext};

/// Most entries one command adds (the SPI scheme allows 2^28).
const MAX: u32 = 1 << 24;

/// `SADB_X_SAFLAGS_TUNNEL`.
const SAFLAGS_TUNNEL: u32 = 0x004;

/// The remote peer of pair / flow `p`: 100.64.0.0 onwards.
fn remote(p: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x6440_0000u32.wrapping_add(p)))
}

/// The SPI of SA `i`.
pub fn spi(i: u32) -> u32 {
    0x1000_0000 + (i.wrapping_mul(0x9e37_79b1) & 0x0fff_ffff)
}

/// `bulk-sa`: what was added.
pub fn bulk_sa(gw: &mut Gateway, words: &[&str]) -> Result<String, String> {
    let usage = "usage: bulk-sa N [flows=M] [from=K]";
    let (n, rest) = match words.split_first() {
        Some((n, rest)) => (n.parse::<u32>().map_err(|_| usage.to_string())?, rest),
        None => return Err(usage.into()),
    };
    let a = Args::parse(rest, &["flows", "from"], &[])?;
    let flows = a.number("flows", MAX)?.unwrap_or(n / 2);
    let from = a.number("from", MAX)?.unwrap_or(0);
    if n > MAX || from.saturating_add(n.max(flows)) > 1 << 28 {
        return Err(format!(
            "bulk-sa: at most {MAX} entries, indices below 2^28"
        ));
    }
    let local = DEFAULT_LOCAL;
    for i in from..from + n {
        let peer = remote(i / 2);
        let (src, dst) = if i % 2 == 0 {
            (local, peer)
        } else {
            (peer, local)
        };
        let mut akey = [0u8; 32];
        let mut ekey = [0u8; 32];
        gw.rng().fill(&mut akey);
        gw.rng().fill(&mut ekey);
        let exts = [
            sa_ext(
                SADB_EXT_SA,
                spi(i),
                SADB_SASTATE_MATURE,
                5,
                12,
                SAFLAGS_TUNNEL,
            ),
            lifetime_ext(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0),
            lifetime_ext(SADB_EXT_LIFETIME_SOFT, 0, 0, 3300, 0),
            addr_ext(SADB_EXT_ADDRESS_SRC, src, 0),
            addr_ext(SADB_EXT_ADDRESS_DST, dst, 0),
            key_ext(SADB_EXT_KEY_AUTH, &akey),
            key_ext(SADB_EXT_KEY_ENCRYPT, &ekey),
        ];
        gw.write_as_ike(SADB_ADD, SADB_SATYPE_ESP, &exts)
            .map_err(|e| format!("ADD spi={:#010x}: {e} (added {} SAs)", spi(i), i - from))?;
    }
    for p in from..from + flows {
        let peer = remote(p);
        let mut exts = vec![addr_ext(SADB_EXT_ADDRESS_DST, peer, 0)];
        exts.extend(flow_exts(
            SADB_X_FLOW_TYPE_REQUIRE,
            IPSP_DIRECTION_OUT,
            0,
            (local, host_mask(local)),
            (peer, host_mask(peer)),
        ));
        gw.write_as_ike(SADB_X_ADDFLOW, SADB_SATYPE_ESP, &exts)
            .map_err(|e| format!("X_ADDFLOW to {peer}: {e} (added {} flows)", p - from))?;
    }
    Ok(format!("sas={n} flows={flows}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devhost::ctl::digest::digest;
    use crate::devhost::gateway::GatewayConfig;

    #[test]
    fn adds_pairs_and_flows() {
        let mut g = Gateway::new(&GatewayConfig::default());
        assert_eq!(bulk_sa(&mut g, &["1000"]), Ok("sas=1000 flows=500".into()));
        assert_eq!(
            (g.kernel().sa_count(), g.kernel().flow_count()),
            (1000, 500)
        );
        assert!(digest(g.kernel()).ends_with(" sas=1000 flows=500"));
        // Disjoint ranges add disjoint entries; overlapping ones are refused.
        assert!(bulk_sa(&mut g, &["10", "flows=0", "from=1000"]).is_ok());
        assert_eq!(g.kernel().sa_count(), 1010);
        let e = bulk_sa(&mut g, &["2", "flows=0", "from=999"]).unwrap_err();
        assert!(e.contains("EEXIST") || e.contains("added"), "{e}");
        assert!(bulk_sa(&mut g, &[]).is_err());
        assert!(bulk_sa(&mut g, &["x"]).is_err());
    }
}
