//! Working buffers for the record or frame at hand, kept in the node: a snapshot
//! or a sweep handles every entry of the SADB, and zeroing a fresh 4 KiB
//! stack buffer for each cost more than the work on the entry (on
//! firmware, the stack stays small too).

use crate::pfkey::PFKEY_MSG_MAXSZ;
use crate::wire::v2::MAX_PAYLOAD;

/// Four message-sized buffers; what they hold matters only during one
/// call.
pub(super) struct Scratch {
    /// A message rewritten for the slaves (a dump record as ADD).
    pub msg: [u8; PFKEY_MSG_MAXSZ],
    /// The canonical form of an entry, for fingerprints and digests.
    pub canon: [u8; PFKEY_MSG_MAXSZ],
    /// What the node sends or writes: a sweep's DELETE, a frame's batch
    /// of deltas.
    pub out: [u8; PFKEY_MSG_MAXSZ],
    /// The payload of the frame being handled (received messages are read
    /// from here while the node handles them).
    pub rx: [u8; MAX_PAYLOAD],
}

// A frame's payload fits `out`.
const _: () = assert!(MAX_PAYLOAD <= PFKEY_MSG_MAXSZ);

impl Scratch {
    pub const fn new() -> Self {
        Scratch {
            msg: [0; PFKEY_MSG_MAXSZ],
            canon: [0; PFKEY_MSG_MAXSZ],
            out: [0; PFKEY_MSG_MAXSZ],
            rx: [0; MAX_PAYLOAD],
        }
    }
}
