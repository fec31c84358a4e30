//! The SADB and SPD the benchmark synchronises: realistic 224-byte ESP
//! ADDs as isakmpd writes them (SA mature with HMAC-SHA2-256 and AES, hard
//! and soft lifetimes, both endpoints, 32-byte auth and encryption keys),
//! in pairs per remote peer, and one host-to-host "require" flow per peer.
//! Written straight into a simulated kernel with the IKE daemon's pid
//! (nothing goes through the network to load them).

use std::net::{IpAddr, Ipv4Addr};

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{set_pid_seq, SaKey};
use sasyncd_sim::kernel::Kernel;
use sasyncd_sim::pfmsg;
use sasyncd_sim::rng::Rng;

/// The pid the IKE daemon writes with.
pub const IKE_PID: u32 = 9000;

/// The gateway's own (carp) address, one end of every SA and flow.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Which SPI space an SA index lives in: the master's entries, or entries
/// only a slave has (stale ones, and the ones deltas add).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// SAs the master holds.
    Master,
    /// SAs the master never had (a slave's stale entries).
    Stale,
    /// SAs added one by one during the delta measurement.
    Delta,
}

/// The remote peer of SA pair / flow `p`: 10.0.1.0 onwards.
pub fn remote(p: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0100u32.wrapping_add(p as u32)))
}

/// A unique SPI for index `i` of `space` (a bijection on 28 bits).
pub fn spi(space: Space, i: u64) -> u32 {
    let base = match space {
        Space::Master => 0x1000_0000u32,
        Space::Stale => 0x2000_0000,
        Space::Delta => 0x3000_0000,
    };
    base + ((i as u32).wrapping_mul(0x9e37_79b1) & 0x0fff_ffff)
}

/// Source and destination of SA `i`: even ones outbound, odd ones inbound.
fn ends(i: u64) -> (IpAddr, IpAddr) {
    let (l, r) = (IpAddr::V4(LOCAL), remote(i / 2));
    if i.is_multiple_of(2) {
        (l, r)
    } else {
        (r, l)
    }
}

/// The identity of SA `i` of `space`.
pub fn sa_key(space: Space, i: u64) -> SaKey {
    SaKey {
        satype: SADB_SATYPE_ESP,
        spi: spi(space, i),
        dst: ends(i).1,
        rdomain: 0,
    }
}

/// The ADD of SA `i` of `space` as isakmpd writes it (224 bytes), its
/// keys drawn from `seed` and `i` (so the same SA can be written again);
/// pid and seq are the IKE daemon's.
pub fn sa_add(space: Space, i: u64, seed: u64) -> Vec<u8> {
    let (src, dst) = ends(i);
    let mut rng = Rng::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ spi(space, i) as u64);
    let mut akey = [0u8; 32];
    let mut ekey = [0u8; 32];
    rng.fill(&mut akey);
    rng.fill(&mut ekey);
    let mut m = pfmsg::message(
        SADB_ADD,
        SADB_SATYPE_ESP,
        0,
        0,
        &[
            pfmsg::sa_ext(SADB_EXT_SA, spi(space, i), SADB_SASTATE_MATURE, 5, 12, 0),
            pfmsg::lifetime_ext(SADB_EXT_LIFETIME_HARD, 0, 0, 1200, 0),
            pfmsg::lifetime_ext(SADB_EXT_LIFETIME_SOFT, 0, 0, 1080, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_SRC, src, 0),
            pfmsg::addr_ext(SADB_EXT_ADDRESS_DST, dst, 0),
            pfmsg::key_ext(SADB_EXT_KEY_AUTH, &akey),
            pfmsg::key_ext(SADB_EXT_KEY_ENCRYPT, &ekey),
        ],
    );
    set_pid_seq(&mut m, IKE_PID, (i as u32).wrapping_add(1));
    m
}

/// The X_ADDFLOW of flow `p`: outbound, require, gateway to peer `p`.
pub fn flow_add(p: u64) -> Vec<u8> {
    let (src, dst) = (IpAddr::V4(LOCAL), remote(p));
    let mut m = pfmsg::message(
        SADB_X_ADDFLOW,
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
    );
    set_pid_seq(&mut m, IKE_PID, (p as u32).wrapping_add(1));
    m
}

/// Writes SAs `range` of `space` (keys from `seed`) into `kernel` as the
/// IKE daemon.
pub fn add_sas(kernel: &mut Kernel, space: Space, range: std::ops::Range<u64>, seed: u64) {
    for i in range {
        let m = sa_add(space, i, seed);
        kernel.write(&m, IKE_PID).expect("the kernel takes the ADD");
    }
}

/// Writes flows `0..n` into `kernel` as the IKE daemon.
pub fn add_flows(kernel: &mut Kernel, n: u64) {
    for p in 0..n {
        kernel
            .write(&flow_add(p), IKE_PID)
            .expect("the kernel takes the flow");
    }
}

/// What one kernel holds that another does not, by identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Diff {
    /// SAs and flows only `slave` has (stale).
    pub stale: usize,
    /// SAs and flows only `master` has (missing on the slave).
    pub missing: usize,
}

fn diff_sorted<T: Ord>(a: &[T], b: &[T]) -> (usize, usize) {
    // (only in a, only in b), both sorted.
    let (mut i, mut j, mut oa, mut ob) = (0, 0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                oa += 1;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                ob += 1;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    (oa + a.len() - i, ob + b.len() - j)
}

/// Compares two kernels by SA and flow identity.
pub fn diff(master: &Kernel, slave: &Kernel) -> Diff {
    let (m_sa, s_sa) = diff_sorted(&master.sa_keys(), &slave.sa_keys());
    let (m_fl, s_fl) = diff_sorted(&master.flow_keys(), &slave.flow_keys());
    Diff {
        stale: s_sa + s_fl,
        missing: m_sa + m_fl,
    }
}
