//! One SPD entry (flow) as the simulated kernel keeps it, and its sysctl
//! dump record (reference §13.3).

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{ExtRepr, Msg, Repr};

use sasyncd_core::time::Instant;

use crate::pfmsg;

/// The order of a flow's extensions in an SPD dump record.
const RECORD_ORDER: [u16; 11] = [
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_X_EXT_FLOW_TYPE,
    SADB_X_EXT_PROTOCOL,
    SADB_X_EXT_SRC_FLOW,
    SADB_X_EXT_SRC_MASK,
    SADB_X_EXT_DST_FLOW,
    SADB_X_EXT_DST_MASK,
    SADB_EXT_IDENTITY_SRC,
    SADB_EXT_IDENTITY_DST,
    SADB_X_EXT_RDOMAIN,
];

/// One flow: the extensions of the X_ADDFLOW that installed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlowEntry {
    pub satype: u8,
    /// Those of them a record carries, back to back in record order: a
    /// dump record is one copy.
    exts: Vec<u8>,
    /// When it was installed (or last replaced), for the failover oracle.
    pub changed: Instant,
    /// A static flow (ipsecctl's): only a static request changes it. The
    /// dump does not say so (the kernel exports no flags).
    pub is_static: bool,
}

impl FlowEntry {
    /// An entry from a validated X_ADDFLOW.
    pub fn from_request(msg: &Msg<'_>, now: Instant) -> FlowEntry {
        let by_type = pfmsg::exts_by_type(msg.extensions(), ADDFLOW_ALLOWED);
        let mut exts = Vec::with_capacity(200);
        for &t in &RECORD_ORDER {
            let at = exts.len();
            exts.extend_from_slice(by_type[usize::from(t) % 64]);
            // The kernel exports a flow's type and direction, not its flags
            // (pfkeyv2_convert.c rev. 1.84, export_flow()).
            if t == SADB_X_EXT_FLOW_TYPE {
                if let Some(f) = exts.get_mut(at + 6) {
                    *f = 0;
                }
            }
        }
        FlowEntry {
            satype: msg.satype(),
            exts,
            changed: now,
            is_static: false,
        }
    }

    /// The entry as an X_SPDDUMP record.
    pub fn record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.record_into(&mut out);
        out
    }

    /// [`record`](Self::record) appended to `out`.
    pub fn record_into(&self, out: &mut Vec<u8>) {
        let exts = [ExtRepr::Raw(&self.exts)];
        let exts = if self.exts.is_empty() {
            &[][..]
        } else {
            &exts[..]
        };
        pfmsg::emit_into(out, &Repr::new(SADB_X_SPDDUMP, self.satype, 0, 0, exts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An extension X_ADDFLOW takes without a place in the record would be
    /// dropped silently.
    #[test]
    fn every_addflow_type_has_one_place_in_the_record() {
        for t in 0..64u16 {
            let places = RECORD_ORDER.iter().filter(|&&o| o == t).count();
            assert_eq!(places, usize::from(ADDFLOW_ALLOWED.contains(t)), "type {t}");
        }
    }
}
