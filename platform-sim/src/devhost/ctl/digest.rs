//! `digest`: one hash of what sasyncd synchronises from this host's
//! kernel, so a test checks "slave equals master" by comparing two
//! replies.
//!
//! It covers exactly what the simulator's convergence oracle compares
//! ([`Kernel::canonical`] with the core's filter, default policy, no
//! skipslave peers): mature SAs and flows in canonical form, without the
//! counters and times that differ between kernels; larval SAs and
//! anything the daemon would not forward do not count. Each table is
//! digested as the daemon's anti-entropy does ([`MultisetDigest`], order
//! independent), and the two digests with their counts are hashed into one.

use std::fmt::Write;

use sasyncd_core::crypto::{Crypto, SoftCrypto};
use sasyncd_core::node::digest::MultisetDigest;
use sasyncd_core::pfkey::FilterPolicy;

use crate::kernel::{synced_by, Kernel};

const DOMAIN: &[u8] = b"sasyncd devhost digest v1\0";

/// The digest reply: `HEX64 sas=N flows=M`.
pub fn digest(kernel: &Kernel) -> String {
    let c = kernel.canonical(&synced_by(FilterPolicy::default(), Vec::new()));
    let mut sas = MultisetDigest::new();
    for v in c.sas.values() {
        sas.add(&SoftCrypto, v);
    }
    let mut flows = MultisetDigest::new();
    for v in c.flows.values() {
        flows.add(&SoftCrypto, v);
    }
    let ((sd, sn), (fd, fn_)) = (sas.finish(), flows.finish());
    let h = SoftCrypto.sha256(&[DOMAIN, &sd, &sn.to_be_bytes(), &fd, &fn_.to_be_bytes()]);
    let mut out = h.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    let _ = write!(out, " sas={sn} flows={fn_}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devhost::ctl::sa::add_sa;
    use crate::devhost::gateway::{Gateway, GatewayConfig};
    use crate::pfmsg::*;
    use sasyncd_core::pfkey::consts::*;

    #[test]
    fn larval_sas_do_not_count() {
        let mut g = Gateway::new(&GatewayConfig::default());
        let empty = digest(g.kernel());
        assert!(empty.ends_with(" sas=0 flows=0"), "{empty}");
        let exts = [
            addr_ext(SADB_EXT_ADDRESS_SRC, [192, 0, 2, 1].into(), 0),
            addr_ext(SADB_EXT_ADDRESS_DST, [10, 0, 0, 100].into(), 0),
            spirange_ext(0x100, 0xffff),
        ];
        g.write_as_ike(SADB_GETSPI, SADB_SATYPE_ESP, &exts).unwrap();
        assert_eq!(g.kernel().sa_count(), 1);
        assert_eq!(digest(g.kernel()), empty);
        add_sa(&mut g, &["single"]).unwrap();
        assert_ne!(digest(g.kernel()), empty);
    }
}
