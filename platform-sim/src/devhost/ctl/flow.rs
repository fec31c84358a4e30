//! `add-flow` and `delete-flow`: SPD edits written as the IKE daemon would
//! (its pid, real X_ADDFLOW/X_DELFLOW through the kernel).
//!
//! `add-flow [src=NET] [dst=NET] [dir=out|in] [type=require|use|acquire|bypass|deny|dontacq] [proto=N] [peer=ADDR]`
//! where NET is `ADDR[/LEN]` (a host without `/LEN`). Defaults:
//! src 172.16.0.0/24, dst 10.20.0.0/24, dir out, type require, proto 0
//! (any), peer [`DEFAULT_REMOTE`] (the flow's ADDRESS_DST, the IPsec peer).
//!
//! `delete-flow [src=NET] [dst=NET] [dir=..] [proto=N]` deletes the flow
//! with those selectors (same defaults), whatever its type.

use std::net::IpAddr;

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{flow_key, records, ProtocolExt};

use super::args::Args;
use crate::devhost::gateway::Gateway;
use crate::devhost::DEFAULT_REMOTE;
use crate::pfmsg::{addr_ext, flow_exts};

/// Flow types by name, for `type=`.
pub const FLOW_TYPES: &[(&str, u8)] = &[
    ("use", SADB_X_FLOW_TYPE_USE),
    ("acquire", SADB_X_FLOW_TYPE_ACQUIRE),
    ("require", SADB_X_FLOW_TYPE_REQUIRE),
    ("bypass", SADB_X_FLOW_TYPE_BYPASS),
    ("deny", SADB_X_FLOW_TYPE_DENY),
    ("dontacq", SADB_X_FLOW_TYPE_DONTACQ),
];

/// Directions by name, for `dir=`.
pub const DIRECTIONS: &[(&str, u8)] = &[("out", IPSP_DIRECTION_OUT), ("in", IPSP_DIRECTION_IN)];

type Net = (IpAddr, IpAddr);

/// The selectors shared by both commands.
struct Selectors {
    src: Net,
    dst: Net,
    dir: u8,
    proto: u8,
}

fn selectors(a: &Args<'_>) -> Result<Selectors, String> {
    let mask24 = IpAddr::from([255, 255, 255, 0]);
    let s = Selectors {
        src: a.net("src", (IpAddr::from([172, 16, 0, 0]), mask24))?,
        dst: a.net("dst", (IpAddr::from([10, 20, 0, 0]), mask24))?,
        dir: a.choice("dir", DIRECTIONS, IPSP_DIRECTION_OUT)?,
        proto: a.number("proto", 255)?.unwrap_or(0) as u8,
    };
    if s.src.0.is_ipv4() != s.dst.0.is_ipv4() {
        return Err("src= and dst= are of different families".to_string());
    }
    Ok(s)
}

/// `add-flow`.
pub fn add_flow(gw: &mut Gateway, words: &[&str]) -> Result<String, String> {
    let keys = ["src", "dst", "dir", "type", "proto", "peer"];
    let a = Args::parse(words, &keys, &[])?;
    let s = selectors(&a)?;
    let ftype = a.choice("type", FLOW_TYPES, SADB_X_FLOW_TYPE_REQUIRE)?;
    let peer = a.addr("peer", DEFAULT_REMOTE)?;
    if peer.is_ipv4() != s.src.0.is_ipv4() {
        return Err("peer= is of another family than the flow".to_string());
    }
    let mut exts = vec![addr_ext(SADB_EXT_ADDRESS_DST, peer, 0)];
    exts.extend(flow_exts(ftype, s.dir, s.proto, s.src, s.dst));
    gw.write_as_ike(SADB_X_ADDFLOW, SADB_SATYPE_ESP, &exts)
        .map_err(|e| format!("X_ADDFLOW: {e}"))?;
    Ok(String::new())
}

/// `delete-flow`.
pub fn delete_flow(gw: &mut Gateway, words: &[&str]) -> Result<String, String> {
    let a = Args::parse(words, &["src", "dst", "dir", "proto"], &[])?;
    let s = selectors(&a)?;
    // The flow type is not part of a flow's identity, but X_DELFLOW must
    // carry one: take the installed flow's.
    let probe = crate::pfmsg::message(
        SADB_X_DELFLOW,
        SADB_SATYPE_ESP,
        0,
        0,
        &flow_exts(SADB_X_FLOW_TYPE_REQUIRE, s.dir, s.proto, s.src, s.dst),
    );
    let want = sasyncd_core::pfkey::Msg::parse(&probe)
        .ok()
        .and_then(|m| flow_key(&m));
    let dump = gw.kernel().spd_dump();
    let ftype = records(&dump)
        .map_while(Result::ok)
        .find(|r| want.is_some() && flow_key(r) == want)
        .and_then(|r| ProtocolExt::new(r.find(SADB_X_EXT_FLOW_TYPE)?).ok())
        .map_or(SADB_X_FLOW_TYPE_REQUIRE, |p| p.proto());
    let exts = flow_exts(ftype, s.dir, s.proto, s.src, s.dst);
    gw.write_as_ike(SADB_X_DELFLOW, SADB_SATYPE_ESP, &exts)
        .map_err(|e| format!("X_DELFLOW: {e}"))?;
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devhost::gateway::GatewayConfig;

    #[test]
    fn add_and_delete_flows() {
        let mut g = Gateway::new(&GatewayConfig::default());
        add_flow(&mut g, &[]).unwrap();
        add_flow(
            &mut g,
            &[
                "dir=in",
                "type=bypass",
                "src=10.20.0.0/24",
                "dst=172.16.0.0/24",
            ],
        )
        .unwrap();
        add_flow(
            &mut g,
            &[
                "src=2001:db8::/64",
                "dst=2001:db8:1::1",
                "peer=2001:db8::9",
                "proto=6",
            ],
        )
        .unwrap();
        assert_eq!(g.kernel().flow_count(), 3);
        // Same selectors, other type: replaces.
        add_flow(&mut g, &["type=use"]).unwrap();
        assert_eq!(g.kernel().flow_count(), 3);
        delete_flow(&mut g, &[]).unwrap();
        delete_flow(&mut g, &["dir=in", "src=10.20.0.0/24", "dst=172.16.0.0/24"]).unwrap();
        assert_eq!(g.kernel().flow_count(), 1);
        let e = delete_flow(&mut g, &[]).unwrap_err();
        assert!(e.contains("ESRCH"), "{e}");
        assert!(add_flow(&mut g, &["src=2001:db8::/64"]).is_err());
        assert!(add_flow(&mut g, &["peer=2001:db8::1"]).is_err());
        assert!(add_flow(&mut g, &["dir=sideways"]).is_err());
        assert!(add_flow(&mut g, &["proto=256"]).is_err());
    }
}
