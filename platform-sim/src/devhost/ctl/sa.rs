//! `add-sa` and `delete-sa`: SA edits written as the IKE daemon would
//! write them (its pid, real PF_KEY ADD/DELETE through the kernel), so a
//! promiscuous sasyncd sees them as it would see isakmpd's.
//!
//! `add-sa [spi=N] [src=ADDR] [dst=ADDR] [type=esp|ah|ipcomp|tcpmd5] [single]`
//! adds the SA `src`→`dst` with SPI `N` and, unless `single`, its partner
//! `dst`→`src` with SPI `N+1`; SPIs are random when `spi=` is absent.
//! Defaults: src = the gateway ([`DEFAULT_LOCAL`]), dst = a remote peer
//! ([`DEFAULT_REMOTE`]), type esp. Keys are random (ESP: HMAC-SHA2-256 and
//! AES-128; AH: HMAC-SHA2-256; TCP-MD5: a 16-byte password; IPcomp:
//! deflate, no key); lifetimes soft 3300 s, hard 3600 s.
//!
//! `delete-sa spi=N [dst=ADDR] [type=...]` deletes the SA with that SPI
//! (the one destination holding it, or `dst=` when several do).

use std::net::IpAddr;

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{records, sa_key, AddressExt};

use super::args::{Args, SATYPES};
use crate::devhost::gateway::Gateway;
use crate::devhost::{DEFAULT_LOCAL, DEFAULT_REMOTE};
use crate::pfmsg::{addr_ext, key_ext, lifetime_ext, rdomain_ext, sa_ext, ExtRepr};

/// SA types `add-sa` can make (IPIP SAs carry nothing to synchronise).
const ADDABLE: &[(&str, u8)] = SATYPES.split_at(4).0;

/// `SADB_X_SAFLAGS_TUNNEL`: isakmpd's SAs are tunnel-mode.
const SAFLAGS_TUNNEL: u32 = 0x004;

/// Lowest SPI: 0..=255 are reserved.
const SPI_MIN: u32 = 0x100;

fn spi_max(satype: u8) -> u32 {
    // IPcomp's CPI is 16 bits.
    if satype == SADB_X_SATYPE_IPCOMP {
        0xffff
    } else {
        u32::MAX
    }
}

/// The extensions of a mature SA with fresh random keys (in `keys`).
fn sa_exts<'k>(
    gw: &mut Gateway,
    satype: u8,
    spi: u32,
    src: IpAddr,
    dst: IpAddr,
    keys: &'k mut [[u8; 32]; 2],
) -> Vec<ExtRepr<'k>> {
    let (auth, enc, akey, ekey) = match satype {
        SADB_SATYPE_ESP => (5, 12, 32, 16),
        SADB_SATYPE_AH => (5, 0, 32, 0),
        SADB_X_SATYPE_IPCOMP => (0, 2, 0, 0),
        _ => (0, 0, 16, 0),
    };
    let mut v = vec![
        sa_ext(
            SADB_EXT_SA,
            spi,
            SADB_SASTATE_MATURE,
            auth,
            enc,
            SAFLAGS_TUNNEL,
        ),
        lifetime_ext(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0),
        lifetime_ext(SADB_EXT_LIFETIME_SOFT, 0, 0, 3300, 0),
        addr_ext(SADB_EXT_ADDRESS_SRC, src, 0),
        addr_ext(SADB_EXT_ADDRESS_DST, dst, 0),
    ];
    let [a, e] = keys;
    for (t, n, k) in [
        (SADB_EXT_KEY_AUTH, akey, a),
        (SADB_EXT_KEY_ENCRYPT, ekey, e),
    ] {
        if n > 0 {
            gw.rng().fill(&mut k[..n]);
            v.push(key_ext(t, &k[..n]));
        }
    }
    v
}

/// `add-sa`: the SPIs added.
pub fn add_sa(gw: &mut Gateway, words: &[&str]) -> Result<String, String> {
    let a = Args::parse(words, &["spi", "src", "dst", "type"], &["single"])?;
    let satype = a.choice("type", ADDABLE, SADB_SATYPE_ESP)?;
    let src = a.addr("src", DEFAULT_LOCAL)?;
    let dst = a.addr("dst", DEFAULT_REMOTE)?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err("src= and dst= are of different families".to_string());
    }
    let max = spi_max(satype);
    let pair = !a.flag("single");
    let spis = match a.number("spi", max)? {
        Some(s) if s < SPI_MIN => return Err(format!("SPIs below {SPI_MIN:#x} are reserved")),
        Some(s) if pair && s == max => {
            return Err(format!("spi={s:#x} leaves no SPI for the pair"))
        }
        Some(s) => [s, s + 1],
        None => {
            let r = u64::from(SPI_MIN)..u64::from(max) + 1;
            [gw.rng().range(r.clone()) as u32, gw.rng().range(r) as u32]
        }
    };
    let mut dirs = vec![(spis[0], src, dst)];
    if pair {
        dirs.push((spis[1], dst, src));
    }
    let mut added = Vec::new();
    for (spi, s, d) in dirs {
        let mut keys = [[0u8; 32]; 2];
        let exts = sa_exts(gw, satype, spi, s, d, &mut keys);
        if let Err(e) = gw.write_as_ike(SADB_ADD, satype, &exts) {
            let mut msg = format!("ADD spi={spi:#010x}: {e}");
            if !added.is_empty() {
                msg += &format!(" (added {})", added.join(" "));
            }
            return Err(msg);
        }
        added.push(format!("spi={spi:#010x}"));
    }
    Ok(added.join(" "))
}

/// `delete-sa`: the SPI deleted.
pub fn delete_sa(gw: &mut Gateway, words: &[&str]) -> Result<String, String> {
    let a = Args::parse(words, &["spi", "dst", "type"], &[])?;
    let spi = a.number("spi", u32::MAX)?.ok_or("spi= is required")?;
    let satype = a.choice("type", ADDABLE, SADB_SATYPE_ESP)?;
    let want_dst = a
        .get("dst")
        .map(|_| a.addr("dst", DEFAULT_REMOTE))
        .transpose()?;
    let dump = gw.kernel().sadb_dump(satype);
    let found: Vec<(Option<IpAddr>, IpAddr, u16)> = records(&dump)
        .map_while(Result::ok)
        .filter_map(|r| {
            let k = sa_key(&r)?;
            let src = r
                .find(SADB_EXT_ADDRESS_SRC)
                .and_then(|e| AddressExt::new(e).ok()?.sockaddr().ok());
            Some((k, src.map(|s| s.ip)))
        })
        .filter(|(k, _)| k.spi == spi && want_dst.is_none_or(|d| d == k.dst))
        .map(|(k, src)| (src, k.dst, k.rdomain))
        .collect();
    let (src, dst, rdomain) = match found[..] {
        [one] => one,
        // Nothing to delete: write it anyway, so the kernel's ESRCH is
        // what the operator sees.
        [] => (None, want_dst.unwrap_or(DEFAULT_REMOTE), 0),
        _ => return Err(format!("several SAs have spi={spi:#010x}: give dst=")),
    };
    let mut exts = vec![sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 0, 0, 0)];
    if let Some(s) = src {
        exts.push(addr_ext(SADB_EXT_ADDRESS_SRC, s, 0));
    }
    exts.push(addr_ext(SADB_EXT_ADDRESS_DST, dst, 0));
    if rdomain != 0 {
        exts.push(rdomain_ext(rdomain, rdomain));
    }
    gw.write_as_ike(SADB_DELETE, satype, &exts)
        .map_err(|e| format!("DELETE spi={spi:#010x}: {e}"))?;
    Ok(format!("spi={spi:#010x}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devhost::gateway::GatewayConfig;

    fn gw() -> Gateway {
        Gateway::new(&GatewayConfig::default())
    }

    #[test]
    fn add_pair_then_delete_each() {
        let mut g = gw();
        assert_eq!(
            add_sa(&mut g, &["spi=0x1000"]),
            Ok("spi=0x00001000 spi=0x00001001".to_string())
        );
        assert_eq!(g.kernel().sa_count(), 2);
        let e = add_sa(&mut g, &["spi=0x1000"]).unwrap_err();
        assert!(e.contains("EEXIST"), "{e}");
        assert_eq!(
            delete_sa(&mut g, &["spi=4096"]),
            Ok("spi=0x00001000".into())
        );
        assert_eq!(
            delete_sa(&mut g, &["spi=0x1001"]),
            Ok("spi=0x00001001".into())
        );
        assert_eq!(g.kernel().sa_count(), 0);
        let e = delete_sa(&mut g, &["spi=0x1001"]).unwrap_err();
        assert!(e.contains("ESRCH"), "{e}");
    }

    #[test]
    fn random_single_and_types() {
        let mut g = gw();
        let r = add_sa(&mut g, &[]).unwrap();
        assert_eq!(r.split(' ').count(), 2, "{r}");
        add_sa(&mut g, &["single", "type=ah", "spi=300"]).unwrap();
        add_sa(&mut g, &["type=ipcomp"]).unwrap();
        add_sa(
            &mut g,
            &["type=tcpmd5", "src=2001:db8::1", "dst=2001:db8::2"],
        )
        .unwrap();
        assert_eq!(g.kernel().sa_count(), 7);
        assert!(add_sa(&mut g, &["type=ipcomp", "spi=0x10000"]).is_err());
        assert!(add_sa(&mut g, &["spi=255"]).is_err());
        assert!(add_sa(&mut g, &["spi=0xffffffff"]).is_err());
        assert!(add_sa(&mut g, &["src=10.0.0.1", "dst=::1"]).is_err());
        assert!(add_sa(&mut g, &["type=ipip"]).is_err());
        assert!(delete_sa(&mut g, &[]).is_err());
    }

    #[test]
    fn same_spi_to_two_destinations_needs_dst() {
        let mut g = gw();
        add_sa(&mut g, &["spi=0x2000", "single", "dst=192.0.2.7"]).unwrap();
        add_sa(&mut g, &["spi=0x2000", "single", "dst=192.0.2.8"]).unwrap();
        assert!(delete_sa(&mut g, &["spi=0x2000"])
            .unwrap_err()
            .contains("dst="));
        delete_sa(&mut g, &["spi=0x2000", "dst=192.0.2.8"]).unwrap();
        delete_sa(&mut g, &["spi=0x2000"]).unwrap();
        assert_eq!(g.kernel().sa_count(), 0);
    }
}
