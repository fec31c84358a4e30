//! A large SADB and SPD on every host at boot (`Scenario::preload`), for
//! seeds that check the sweep and the bucket repair at scale.
//!
//! Every host starts with the same `n` SAs and `n / 2` flows, as after a
//! reboot of a cluster that was in sync, except that each host but the
//! first lacks about 1 % of them and holds about 1 % of its own that no
//! other host has: whoever becomes master, its slaves must add what they
//! lack and sweep what is stale, exactly.

use std::net::{IpAddr, Ipv4Addr};

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::time::Instant;

use super::World;
use crate::pfmsg::{addr_ext, flow_exts, host_mask, key_ext, message, sa_ext};

/// The gateway end of every preloaded SA and flow.
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100));

/// Entry `i` of host `owner` (0: the common set).
fn sa(owner: usize, i: u32) -> Vec<u8> {
    let peer = IpAddr::V4(Ipv4Addr::from(0x6440_0000 + (owner as u32) * 0x10_0000 + i));
    let spi = 0x2000_0000 | (owner as u32) << 24 | i;
    message(
        SADB_ADD,
        SADB_SATYPE_ESP,
        0,
        crate::kernel::OPERATOR_PID,
        &[
            sa_ext(SADB_EXT_SA, spi, SADB_SASTATE_MATURE, 5, 12, 0),
            addr_ext(SADB_EXT_ADDRESS_SRC, LOCAL, 0),
            addr_ext(SADB_EXT_ADDRESS_DST, peer, 0),
            key_ext(SADB_EXT_KEY_AUTH, &spi.to_be_bytes().repeat(8)),
            key_ext(SADB_EXT_KEY_ENCRYPT, &i.to_le_bytes().repeat(8)),
        ],
    )
}

/// Flow `i` of host `owner` (0: the common set).
fn flow(owner: usize, i: u32) -> Vec<u8> {
    let peer = IpAddr::V4(Ipv4Addr::from(0x6440_0000 + (owner as u32) * 0x10_0000 + i));
    let mut exts = vec![addr_ext(SADB_EXT_ADDRESS_DST, peer, 0)];
    exts.extend(flow_exts(
        SADB_X_FLOW_TYPE_REQUIRE,
        IPSP_DIRECTION_OUT,
        0,
        (LOCAL, host_mask(LOCAL)),
        (peer, host_mask(peer)),
    ));
    message(
        SADB_X_ADDFLOW,
        SADB_SATYPE_ESP,
        0,
        crate::kernel::OPERATOR_PID,
        &exts,
    )
}

impl World {
    /// Loads the scenario's preload into every host's kernel.
    pub(super) fn preload(&mut self) {
        let n = self.sc.preload as u32;
        if n == 0 {
            return;
        }
        for h in 0..self.hosts.len() {
            let mut rng = self.rng.fork();
            let kernel = &mut self.hosts[h].kernel;
            let diverge = h > 0;
            let (mut sas, mut flows) = (0u32, 0u32);
            for i in 0..n {
                if !(diverge && rng.chance(0.01)) && kernel.manual_write(&sa(0, i)).is_ok() {
                    sas += 1;
                }
                if i % 2 == 0
                    && !(diverge && rng.chance(0.01))
                    && kernel.manual_write(&flow(0, i / 2)).is_ok()
                {
                    flows += 1;
                }
            }
            if diverge {
                for i in 0..n / 100 {
                    let _ = kernel.manual_write(&sa(h, i));
                    if i % 2 == 0 {
                        let _ = kernel.manual_write(&flow(h, i / 2));
                    }
                }
            }
            let note = format!(
                "preloaded {sas} of {n} common SAs and {flows} flows{}",
                if diverge { ", plus 1 % of its own" } else { "" }
            );
            self.trace.event(Instant::ZERO, h, note);
        }
    }
}
