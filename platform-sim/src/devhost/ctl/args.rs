//! The `key=value` arguments of the edit commands, and the value syntaxes
//! they share (SPIs, addresses, networks).

use std::collections::BTreeMap;
use std::net::IpAddr;

use sasyncd_core::pfkey::consts::*;

use crate::pfmsg::host_mask;

/// A command's arguments: `key=value` pairs and bare flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args<'a> {
    values: BTreeMap<&'a str, &'a str>,
    flags: Vec<&'a str>,
}

impl<'a> Args<'a> {
    /// Parses `words`; every key must be in `keys` and every bare word in
    /// `flags`, each at most once.
    pub fn parse(words: &[&'a str], keys: &[&str], flags: &[&str]) -> Result<Args<'a>, String> {
        let mut a = Args::default();
        for w in words {
            match w.split_once('=') {
                Some((k, v)) if keys.contains(&k) => {
                    if a.values.insert(k, v).is_some() {
                        return Err(format!("{k}= given twice"));
                    }
                }
                Some((k, _)) => return Err(format!("unknown argument {k}=")),
                None if flags.contains(w) && !a.flags.contains(w) => a.flags.push(w),
                None => return Err(format!("unexpected '{w}'")),
            }
        }
        Ok(a)
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.values.get(key).copied()
    }

    /// Whether the bare word `flag` was given.
    pub fn flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    /// `key` as an address, or `default`.
    pub fn addr(&self, key: &str, default: IpAddr) -> Result<IpAddr, String> {
        self.get(key).map_or(Ok(default), |v| parse_addr(key, v))
    }

    /// `key` as a network `ADDR[/LEN]`, or `default`.
    pub fn net(&self, key: &str, default: (IpAddr, IpAddr)) -> Result<(IpAddr, IpAddr), String> {
        self.get(key).map_or(Ok(default), |v| parse_net(key, v))
    }

    /// `key` as a number (decimal or `0x` hex) up to `max`.
    pub fn number(&self, key: &str, max: u32) -> Result<Option<u32>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => v.parse(),
        };
        match n {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(format!("{key}={v} is not a number up to {max}")),
        }
    }

    /// `key` as one of `names` (mapped to its value), or `default`.
    pub fn choice<T: Copy>(&self, key: &str, names: &[(&str, T)], default: T) -> Result<T, String> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        names
            .iter()
            .find(|(n, _)| *n == v)
            .map(|&(_, t)| t)
            .ok_or_else(|| {
                let all: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                format!("{key}={v} is not one of {}", all.join("|"))
            })
    }
}

fn parse_addr(key: &str, v: &str) -> Result<IpAddr, String> {
    v.parse()
        .map_err(|_| format!("{key}={v} is not an address"))
}

fn parse_net(key: &str, v: &str) -> Result<(IpAddr, IpAddr), String> {
    let (a, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v, None),
    };
    let ip = parse_addr(key, a)?;
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let Some(len) = len else {
        return Ok((ip, host_mask(ip)));
    };
    match len.parse::<u32>() {
        Ok(n) if n <= bits => Ok((ip, prefix_mask(ip, n))),
        _ => Err(format!("{key}={v}: prefix length must be 0..={bits}")),
    }
}

/// The mask of an `n`-bit prefix in `ip`'s family.
pub fn prefix_mask(ip: IpAddr, n: u32) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(u32::MAX.checked_shl(32 - n).unwrap_or(0).into()),
        IpAddr::V6(_) => IpAddr::V6(u128::MAX.checked_shl(128 - n).unwrap_or(0).into()),
    }
}

/// The prefix length of a contiguous mask, if it is one.
pub fn mask_len(mask: IpAddr) -> Option<u32> {
    let n = match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones(),
        IpAddr::V6(m) => u128::from(m).leading_ones(),
    };
    (prefix_mask(mask, n) == mask).then_some(n)
}

/// SA types by name, for `type=`.
pub const SATYPES: &[(&str, u8)] = &[
    ("esp", SADB_SATYPE_ESP),
    ("ah", SADB_SATYPE_AH),
    ("ipcomp", SADB_X_SATYPE_IPCOMP),
    ("tcpmd5", SADB_X_SATYPE_TCPSIGNATURE),
    ("ipip", SADB_X_SATYPE_IPIP),
];

/// The name of an SA type (its number if unknown).
pub fn satype_name(t: u8) -> String {
    SATYPES
        .iter()
        .find(|(_, v)| *v == t)
        .map_or_else(|| format!("satype{t}"), |(n, _)| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_flags() {
        let w = ["spi=0x1000", "single", "dst=192.0.2.9"];
        let a = Args::parse(&w, &["spi", "dst"], &["single"]).unwrap();
        assert_eq!(a.number("spi", u32::MAX), Ok(Some(0x1000)));
        assert!(a.flag("single"));
        assert_eq!(
            a.addr("dst", [0, 0, 0, 0].into()),
            Ok([192, 0, 2, 9].into())
        );
        assert_eq!(a.addr("src", [1, 2, 3, 4].into()), Ok([1, 2, 3, 4].into()));
        assert!(Args::parse(&["bogus=1"], &["spi"], &[]).is_err());
        assert!(Args::parse(&["spi=1", "spi=2"], &["spi"], &[]).is_err());
        assert!(Args::parse(&["single", "single"], &[], &["single"]).is_err());
        assert!(Args::parse(&["word"], &[], &[]).is_err());
        let a = Args::parse(&["spi=12x"], &["spi"], &[]).unwrap();
        assert!(a.number("spi", u32::MAX).is_err());
        let a = Args::parse(&["spi=4294967296"], &["spi"], &[]).unwrap();
        assert!(a.number("spi", u32::MAX).is_err());
    }

    #[test]
    fn networks_and_masks() {
        let a = Args::parse(
            &["n=10.1.0.0/16", "h=2001:db8::1", "b=1.2.3.4/33"],
            &["n", "h", "b"],
            &[],
        )
        .unwrap();
        let any = ([0, 0, 0, 0].into(), [0, 0, 0, 0].into());
        let (ip, m) = a.net("n", any).unwrap();
        assert_eq!((ip, m), ([10, 1, 0, 0].into(), [255, 255, 0, 0].into()));
        assert_eq!(mask_len(m), Some(16));
        let (_, m) = a.net("h", any).unwrap();
        assert_eq!(mask_len(m), Some(128));
        assert!(a.net("b", any).is_err());
        assert_eq!(mask_len([255, 0, 255, 0].into()), None);
        assert_eq!(mask_len([0, 0, 0, 0].into()), Some(0));
        assert_eq!(
            prefix_mask([0, 0, 0, 0].into(), 0),
            IpAddr::from([0, 0, 0, 0])
        );
    }

    #[test]
    fn choices() {
        let a = Args::parse(&["type=ah", "x=no"], &["type", "x"], &[]).unwrap();
        assert_eq!(a.choice("type", SATYPES, 0), Ok(SADB_SATYPE_AH));
        assert_eq!(a.choice("other", SATYPES, 7), Ok(7));
        assert!(a.choice("x", SATYPES, 0).is_err());
        assert_eq!(satype_name(2), "esp");
        assert_eq!(satype_name(42), "satype42");
    }
}
