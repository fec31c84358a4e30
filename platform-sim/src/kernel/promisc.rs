//! Promiscuous listeners: PF_KEY sockets that receive a copy of every valid
//! request any process writes (reference §13.2), each with a bounded
//! receive queue that silently drops what does not fit (D-14).

use std::collections::{BTreeMap, VecDeque};

use sasyncd_core::pfkey::consts::{HDR_LEN, SADB_X_PROMISC};
use sasyncd_core::pfkey::{ExtRepr, Repr};

use crate::pfmsg;

/// One PF_KEY socket, identified by its owner's pid.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listener {
    pub promisc: bool,
    pub queue: VecDeque<Vec<u8>>,
    pub queued_bytes: usize,
    pub drops: u64,
}

/// All sockets that ever asked for promiscuous mode.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listeners {
    pub by_pid: BTreeMap<u32, Listener>,
    pub rcvbuf: usize,
}

/// The X_PROMISC wrapper the kernel puts around a copy of a request
/// written by `writer_pid` (outer seq = the writer's pid).
pub fn wrap(request: &[u8], writer_pid: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR_LEN + request.len());
    let copy = [ExtRepr::Raw(request)];
    pfmsg::emit_into(&mut v, &Repr::new(SADB_X_PROMISC, 0, writer_pid, 0, &copy));
    v
}

impl Listeners {
    /// Queues a copy of `request` on every promiscuous socket.
    pub fn copy(&mut self, request: &[u8], writer_pid: u32) {
        if !self.by_pid.values().any(|l| l.promisc) {
            return;
        }
        let copy = wrap(request, writer_pid);
        for l in self.by_pid.values_mut().filter(|l| l.promisc) {
            if l.queued_bytes + copy.len() > self.rcvbuf {
                l.drops += 1;
            } else {
                l.queued_bytes += copy.len();
                l.queue.push_back(copy.clone());
            }
        }
    }

    /// The next queued copy of `pid`'s socket.
    pub fn read(&mut self, pid: u32) -> Option<Vec<u8>> {
        let l = self.by_pid.get_mut(&pid)?;
        let m = l.queue.pop_front()?;
        l.queued_bytes -= m.len();
        Some(m)
    }
}
