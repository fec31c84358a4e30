//! PF_KEY requests as the IKE daemon or an operator writes them, emitted by
//! the core's builder through the simulator's [`pfmsg`] shorthand. pid and
//! seq are left 0: the harness sets the writer's.

use std::net::IpAddr;

use sasyncd_core::pfkey::consts::*;
use sasyncd_sim::pfmsg;

/// A parsed address (test shorthand).
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// An IPv4 address from a number (for many distinct destinations).
pub fn ip4(n: u32) -> IpAddr {
    IpAddr::V4(n.into())
}

/// A mature ESP SA with keys and a hard lifetime.
pub fn esp_add(spi: u32, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    pfmsg::message(
        SADB_ADD,
        SADB_SATYPE_ESP,
        0,
        0,
        &[
            pfmsg::sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 5, 12, 0),
            pfmsg::lifetime_ext(SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_SRC, src, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_DST, dst, 0),
            pfmsg::key_ext(SADB_EXT_KEY_AUTH, &[0xaa; 32]),
            pfmsg::key_ext(SADB_EXT_KEY_ENCRYPT, &[0xbb; 16]),
        ],
    )
}

/// DELETE of an ESP SA.
pub fn esp_delete(spi: u32, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    pfmsg::message(
        SADB_DELETE,
        SADB_SATYPE_ESP,
        0,
        0,
        &[
            pfmsg::sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 0, 0, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_SRC, src, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_DST, dst, 0),
        ],
    )
}

/// GETSPI: reserve an SPI in `[min, max]` (the kernel makes a larval SA).
pub fn getspi(src: IpAddr, dst: IpAddr, min: u32, max: u32) -> Vec<u8> {
    pfmsg::message(
        SADB_GETSPI,
        SADB_SATYPE_ESP,
        0,
        0,
        &[
            pfmsg::addr_ext(SADB_EXT_ADDRESS_SRC, src, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_DST, dst, 0),
            pfmsg::spirange_ext(min, max),
        ],
    )
}

/// UPDATE of a larval SA into a mature one (what isakmpd does after GETSPI).
pub fn esp_update(spi: u32, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let mut m = esp_add(spi, src, dst);
    m[1] = SADB_UPDATE;
    m
}

/// The flow extensions of a host-to-host outbound "require" flow.
fn flow_msg(ty: u8, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    pfmsg::message(
        ty,
        SADB_SATYPE_ESP,
        0,
        0,
        &pfmsg::flow_exts(
            SADB_X_FLOW_TYPE_REQUIRE,
            IPSP_DIRECTION_OUT,
            0,
            (src, pfmsg::host_mask(src)),
            (dst, pfmsg::host_mask(dst)),
        ),
    )
}

/// X_ADDFLOW of an outbound "require" flow between two hosts.
pub fn flow(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    flow_msg(SADB_X_ADDFLOW, src, dst)
}

/// X_DELFLOW of the flow [`flow`] adds.
pub fn delflow(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    flow_msg(SADB_X_DELFLOW, src, dst)
}
