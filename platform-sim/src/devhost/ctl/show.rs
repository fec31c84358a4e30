//! `show sadb` and `show spd`: one line per entry, fields in a fixed order
//! as `key=value` words, so scripts can grep and split them. Keys are
//! never shown: `keyhash=` is a short hash of the key bytes ("-" when the
//! SA has none), enough to see whether two hosts hold the same keys.
//!
//! ```text
//! sa esp spi=0x00001000 src=10.0.0.100 dst=192.0.2.1 state=mature auth=5 enc=12 keyhash=3f2a9c0e51d7b846
//! flow esp dir=out type=require proto=0 src=172.16.0.0/24 dst=10.20.0.0/24 peer=192.0.2.1
//! ```
//!
//! Optional fields follow only when set: ` rdomain=N` (both), and for
//! flows ` sport=N`/` dport=N`; a non-contiguous mask is shown as
//! `ADDR/MASK`.

use std::fmt::Write;

use sasyncd_core::crypto::{Crypto, SoftCrypto};
use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{
    records, AddressExt, KeyExt, Msg, ProtocolExt, RdomainExt, SaExt, SockAddr,
};

use super::args::{mask_len, satype_name};
use super::flow::{DIRECTIONS, FLOW_TYPES};

/// Domain separation for key hashes.
const KEYHASH_DOMAIN: &[u8] = b"sasyncd devhost keyhash\0";

fn addr(m: &Msg<'_>, t: u16) -> Option<SockAddr> {
    AddressExt::new(m.find(t)?).ok()?.sockaddr().ok()
}

fn key<'a>(m: &Msg<'a>, t: u16) -> &'a [u8] {
    m.find(t)
        .and_then(|e| KeyExt::new(e).ok())
        .map_or(&[], |k| k.key())
}

fn rdomain(m: &Msg<'_>) -> u16 {
    m.find(SADB_X_EXT_RDOMAIN)
        .and_then(|e| RdomainExt::new(e).ok())
        .map_or(0, |r| r.dom1())
}

fn name(names: &[(&str, u8)], v: u8) -> String {
    names
        .iter()
        .find(|(_, x)| *x == v)
        .map_or_else(|| v.to_string(), |(n, _)| n.to_string())
}

fn state_name(s: u8) -> String {
    match s {
        SADB_SASTATE_LARVAL => "larval".into(),
        SADB_SASTATE_MATURE => "mature".into(),
        SADB_SASTATE_DYING => "dying".into(),
        SADB_SASTATE_DEAD => "dead".into(),
        s => format!("state{s}"),
    }
}

/// A short hash of an SA's keys, "-" without keys.
fn keyhash(auth: &[u8], enc: &[u8]) -> String {
    if auth.is_empty() && enc.is_empty() {
        return "-".into();
    }
    let alen = (auth.len() as u32).to_be_bytes();
    let h = SoftCrypto.sha256(&[KEYHASH_DOMAIN, &alen, auth, enc]);
    h[..8].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn show_addr(a: Option<SockAddr>) -> String {
    a.map_or_else(|| "-".into(), |a| a.ip.to_string())
}

/// The line of one SADB dump record.
pub fn sa_line(m: &Msg<'_>) -> String {
    let sa = m.find(SADB_EXT_SA).and_then(|e| SaExt::new(e).ok());
    let (spi, state, auth, enc) = sa.map_or((0, 0, 0, 0), |s| {
        (s.spi(), s.state(), s.auth(), s.encrypt())
    });
    let mut l = format!(
        "sa {} spi={spi:#010x} src={} dst={} state={} auth={auth} enc={enc} keyhash={}",
        satype_name(m.satype()),
        show_addr(addr(m, SADB_EXT_ADDRESS_SRC)),
        show_addr(addr(m, SADB_EXT_ADDRESS_DST)),
        state_name(state),
        keyhash(key(m, SADB_EXT_KEY_AUTH), key(m, SADB_EXT_KEY_ENCRYPT)),
    );
    if rdomain(m) != 0 {
        let _ = write!(l, " rdomain={}", rdomain(m));
    }
    l
}

fn net(a: Option<SockAddr>, mask: Option<SockAddr>) -> String {
    match (a, mask) {
        (Some(a), Some(m)) => match mask_len(m.ip) {
            Some(n) => format!("{}/{n}", a.ip),
            None => format!("{}/{}", a.ip, m.ip),
        },
        (a, _) => show_addr(a),
    }
}

/// The line of one SPD dump record.
pub fn flow_line(m: &Msg<'_>) -> String {
    let ft = m
        .find(SADB_X_EXT_FLOW_TYPE)
        .and_then(|e| ProtocolExt::new(e).ok());
    let (ftype, dir) = ft.map_or((0, 0), |p| (p.proto(), p.direction()));
    let proto = m
        .find(SADB_X_EXT_PROTOCOL)
        .and_then(|e| ProtocolExt::new(e).ok())
        .map_or(0, |p| p.proto());
    let (src, dst) = (addr(m, SADB_X_EXT_SRC_FLOW), addr(m, SADB_X_EXT_DST_FLOW));
    let mut l = format!(
        "flow {} dir={} type={} proto={proto} src={} dst={} peer={}",
        satype_name(m.satype()),
        name(DIRECTIONS, dir),
        name(FLOW_TYPES, ftype),
        net(src, addr(m, SADB_X_EXT_SRC_MASK)),
        net(dst, addr(m, SADB_X_EXT_DST_MASK)),
        show_addr(addr(m, SADB_EXT_ADDRESS_DST)),
    );
    for (k, a) in [("sport", src), ("dport", dst)] {
        if let Some(p) = a.map(|a| a.port).filter(|&p| p != 0) {
            let _ = write!(l, " {k}={p}");
        }
    }
    if rdomain(m) != 0 {
        let _ = write!(l, " rdomain={}", rdomain(m));
    }
    l
}

/// The lines of a whole dump, with `line` for each record; a record the
/// walk cannot read ends the listing with a line saying so.
pub fn dump_lines(dump: &[u8], line: fn(&Msg<'_>) -> String) -> Vec<String> {
    let mut out = Vec::new();
    for r in records(dump) {
        match r {
            Ok(m) => out.push(line(&m)),
            Err(e) => {
                out.push(format!("unreadable record: {e}"));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pfmsg::*;

    #[test]
    fn sa_line_fields() {
        let m = message(
            SADB_DUMP,
            SADB_SATYPE_ESP,
            0,
            0,
            &[
                sa_ext(SADB_EXT_SA, 0x1000, SADB_SASTATE_MATURE, 5, 12, 0),
                addr_ext(SADB_EXT_ADDRESS_SRC, [10, 0, 0, 100].into(), 0),
                addr_ext(SADB_EXT_ADDRESS_DST, [192, 0, 2, 1].into(), 0),
                key_ext(SADB_EXT_KEY_AUTH, &[1; 32]),
                key_ext(SADB_EXT_KEY_ENCRYPT, &[2; 16]),
                rdomain_ext(3, 3),
            ],
        );
        let l = sa_line(&Msg::parse(&m).unwrap());
        let prefix = "sa esp spi=0x00001000 src=10.0.0.100 dst=192.0.2.1 state=mature auth=5 enc=12 keyhash=";
        assert!(l.starts_with(prefix), "{l}");
        let rest = &l[prefix.len()..];
        assert_eq!(rest.len(), 16 + " rdomain=3".len(), "{l}");
        assert!(rest.ends_with(" rdomain=3"));
        assert!(!l.contains("0101"), "no key bytes: {l}");
        assert_ne!(keyhash(&[1; 32], &[2; 16]), keyhash(&[1; 32], &[3; 16]));
        assert_ne!(keyhash(&[1, 2], &[]), keyhash(&[1], &[2]));
        assert_eq!(keyhash(&[], &[]), "-");
    }

    #[test]
    fn flow_line_fields() {
        let mut exts = vec![addr_ext(SADB_EXT_ADDRESS_DST, [192, 0, 2, 1].into(), 0)];
        exts.extend(flow_exts(
            SADB_X_FLOW_TYPE_REQUIRE,
            IPSP_DIRECTION_OUT,
            6,
            ([172, 16, 0, 0].into(), [255, 255, 255, 0].into()),
            ([10, 20, 0, 0].into(), [255, 0, 255, 0].into()),
        ));
        let m = message(SADB_X_SPDDUMP, SADB_SATYPE_ESP, 0, 0, &exts);
        assert_eq!(
            flow_line(&Msg::parse(&m).unwrap()),
            "flow esp dir=out type=require proto=6 src=172.16.0.0/24 \
             dst=10.20.0.0/255.0.255.0 peer=192.0.2.1"
        );
    }

    #[test]
    fn unreadable_dump_tail() {
        let mut d = message(SADB_X_SPDDUMP, SADB_SATYPE_ESP, 0, 0, &[]);
        d.extend_from_slice(&[2, 16, 0, 0, 9, 0]);
        let l = dump_lines(&d, flow_line);
        assert_eq!(l.len(), 2);
        assert!(l[1].starts_with("unreadable record"), "{l:?}");
    }
}
