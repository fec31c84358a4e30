//! Working buffers for the record or frame at hand, kept in the node: a snapshot
//! or a sweep handles every entry of the SADB, and zeroing a fresh 4 KiB
//! stack buffer for each cost more than the work on the entry (on
//! firmware, the stack stays small too).
//!
//! They hold PF_KEY messages and so SA keys: each user wipes what it
//! wrote once it is done with it (see [`wipe`](super::wipe)), and the
//! buffers are wiped whole when the node's storage is dropped.

use crate::pfkey::PFKEY_MSG_MAXSZ;
use crate::wire::v2::MAX_PAYLOAD;

use super::wipe::wipe;

/// Three message-sized buffers, part of the [`NodeStorage`](super::NodeStorage); what they hold matters only during one
/// call.
pub struct Scratch {
    /// A message rewritten for the slaves (a dump record as ADD).
    pub(super) msg: [u8; PFKEY_MSG_MAXSZ],
    /// The canonical form of an entry, for fingerprints and digests.
    pub(super) canon: [u8; PFKEY_MSG_MAXSZ],
    /// What the node sends or writes: a sweep's DELETE, a frame's batch
    /// of deltas. Also the payload of a received frame while it is handled
    /// (`handle_recv` decodes into it and its handlers read it there):
    /// receiving never runs a sweep or fills a frame before it is done
    /// with the payload, and a control message is decoded before it acts.
    pub(super) out: [u8; PFKEY_MSG_MAXSZ],
}

// A frame's payload fits `out`.
const _: () = assert!(MAX_PAYLOAD <= PFKEY_MSG_MAXSZ);

impl core::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Scratch")
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// Zeroed buffers (a constant: a `static` holds them in place).
    pub const fn new() -> Self {
        Scratch {
            msg: [0; PFKEY_MSG_MAXSZ],
            canon: [0; PFKEY_MSG_MAXSZ],
            out: [0; PFKEY_MSG_MAXSZ],
        }
    }
}

impl Scratch {
    /// Wipes the first `n` bytes of each buffer (all of them if `n` is
    /// larger).
    pub(super) fn wipe_first(&mut self, n: usize) {
        let n = n.min(PFKEY_MSG_MAXSZ);
        wipe(&mut self.msg[..n]);
        wipe(&mut self.canon[..n]);
        wipe(&mut self.out[..n]);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.wipe_first(PFKEY_MSG_MAXSZ);
    }
}
