//! The node's connection slots: two per peer (one we dial, one the peer
//! dials, so a crossed start has room for both), over the platform's
//! storage, with each peer's reconnect [`Backoff`], the connection ids
//! and whose turn it is to send.
//!
//! A connection's memory stays in its slot for the node's life (see
//! [`ConnSlot`]); a peer's slots and backoff move together when a reload
//! renumbers the peers. Sending goes round the slots, so one busy peer
//! cannot starve the others.

use crate::config::MAX_PEERS;
use crate::crypto::Crypto;
use crate::time::Instant;

use super::backoff::Backoff;
use super::conn::{Conn, ConnSlot};
use super::event::ConnId;
use super::peer_table::PeerIndex;
use super::storage::ManagedSlice;

/// The connection slots (see the module documentation).
pub(super) struct ConnSlots<'a, C: Crypto> {
    /// Two per peer: `slots.len()` is how many peers the node holds.
    slots: ManagedSlice<'a, [ConnSlot<'a, C>; 2]>,
    backoff: [Backoff; MAX_PEERS],
    /// The next connection id (never 0).
    next_id: u32,
    /// The slot whose turn it is to send first.
    turn: usize,
}

impl<'a, C: Crypto> ConnSlots<'a, C> {
    /// Slots over the platform's storage, two per peer.
    pub fn new(slots: ManagedSlice<'a, [ConnSlot<'a, C>; 2]>) -> Self {
        ConnSlots {
            slots,
            backoff: core::array::from_fn(|_| Backoff::new()),
            next_id: 1,
            turn: 0,
        }
    }

    /// How many peers the slots hold.
    pub fn peers(&self) -> usize {
        self.slots.len()
    }

    /// How many connections the slots hold at most.
    pub fn capacity(&self) -> usize {
        self.slots.len() * 2
    }

    /// A fresh connection id.
    pub fn alloc_id(&mut self) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Where connection `id` is: its peer and slot.
    pub fn slot_of(&self, id: ConnId) -> Option<(usize, usize)> {
        for (p, slots) in self.slots.iter().enumerate() {
            for (s, c) in slots.iter().enumerate() {
                if c.as_ref().is_some_and(|c| c.id() == id) {
                    return Some((p, s));
                }
            }
        }
        None
    }

    /// The connection in peer `p`'s slot `s`.
    pub fn slot(&self, p: usize, s: usize) -> Option<&Conn<'a, C>> {
        self.slots.get(p)?.get(s)?.as_ref()
    }

    /// The connection in peer `p`'s slot `s`.
    pub fn slot_mut(&mut self, p: usize, s: usize) -> Option<&mut Conn<'a, C>> {
        self.slots.get_mut(p)?.get_mut(s)?.as_mut()
    }

    /// Connection `id`.
    pub fn get(&self, id: ConnId) -> Option<&Conn<'a, C>> {
        let (p, s) = self.slot_of(id)?;
        self.slot(p, s)
    }

    /// Connection `id`.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<'a, C>> {
        let (p, s) = self.slot_of(id)?;
        self.slot_mut(p, s)
    }

    /// Peer `p`'s connections.
    pub fn of_peer(&self, p: usize) -> impl Iterator<Item = &Conn<'a, C>> {
        self.slots.get(p).into_iter().flatten().flatten()
    }

    /// How many connections peer `p` has.
    pub fn count(&self, p: usize) -> usize {
        self.of_peer(p).count()
    }

    /// Every connection.
    pub fn iter(&self) -> impl Iterator<Item = &Conn<'a, C>> {
        self.slots.iter().flatten().flatten()
    }

    /// Every connection.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Conn<'a, C>> {
        self.slots.iter_mut().flatten().flatten()
    }

    /// Whether no slot holds a connection.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// A new connection `id` in peer `p`'s (unused) slot `s`, in phase
    /// `Connecting`.
    pub fn open(
        &mut self,
        p: usize,
        s: usize,
        id: ConnId,
        outbound: bool,
        legacy: bool,
        now: Instant,
    ) -> &mut Conn<'a, C> {
        self.slots[p][s].open(id, PeerIndex(p), outbound, legacy, now)
    }

    /// Peer `p`'s slot `s` no longer holds a connection (its secrets are
    /// wiped now).
    pub fn close(&mut self, p: usize, s: usize) {
        if let Some(slot) = self.slots.get_mut(p).and_then(|x| x.get_mut(s)) {
            slot.close();
        }
    }

    // ----- reconnecting ----------------------------------------------------

    /// Peer `p`'s reconnect backoff.
    pub fn backoff(&self, p: usize) -> &Backoff {
        &self.backoff[p]
    }

    /// Peer `p`'s reconnect backoff.
    pub fn backoff_mut(&mut self, p: usize) -> &mut Backoff {
        &mut self.backoff[p]
    }

    /// Every peer may be dialled at once (our state changed, or a reload).
    pub fn redial_all(&mut self) {
        for b in self.backoff.iter_mut() {
            b.handle_success();
        }
    }

    /// The peer table was rebuilt: `from[j]` is new index `j`'s old one.
    /// Each kept peer's slots and backoff move to its new index; what is
    /// left at the other indexes is what removed peers left (their
    /// connections are closed already), and a new peer's backoff starts
    /// afresh. The turn starts over.
    pub fn peers_moved(&mut self, from: &[Option<PeerIndex>]) {
        let mut at: [usize; MAX_PEERS] = core::array::from_fn(|i| i);
        let mut pos: [usize; MAX_PEERS] = core::array::from_fn(|i| i);
        for (j, old) in from.iter().enumerate() {
            let Some(o) = *old else {
                continue;
            };
            let s = pos[o.0];
            if s != j {
                swap_slots(&mut self.slots[..], s, j);
                swap_slots(&mut self.backoff, s, j);
                let (a, b) = (at[s], at[j]);
                at.swap(s, j);
                pos[a] = j;
                pos[b] = s;
            }
        }
        for j in 0..self.slots.len() {
            let kept = from.get(j).is_some_and(|o| o.is_some());
            if !kept {
                self.backoff[j] = Backoff::new();
            }
            for c in self.slots[j].iter_mut().flatten() {
                c.moved_to(PeerIndex(j));
            }
        }
        self.turn = 0;
    }

    // ----- sending in turn -------------------------------------------------

    /// Slot numbers (`peer * 2 + slot`) in the order they may send: from
    /// the one whose turn it is, round.
    pub fn in_turn(&self) -> impl Iterator<Item = usize> {
        let (n, turn) = (self.capacity(), self.turn);
        (0..n).map(move |k| (turn + k) % n)
    }

    /// Slot number `i` sent: the next one's turn.
    pub fn sent(&mut self, i: usize) {
        self.turn = (i + 1) % self.capacity().max(1);
    }
}

fn swap_slots<T>(v: &mut [T], a: usize, b: usize) {
    let (lo, hi) = (a.min(b), a.max(b));
    if lo == hi || hi >= v.len() {
        return;
    }
    let (x, y) = v.split_at_mut(hi);
    core::mem::swap(&mut x[lo], &mut y[0]);
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::boxed::Box;
    use std::vec::Vec;

    use super::*;
    use crate::crypto::SoftCrypto as Soft;

    fn slots(peers: usize) -> ConnSlots<'static, Soft> {
        let v: Vec<[ConnSlot<'static, Soft>; 2]> = (0..peers)
            .map(|_| {
                core::array::from_fn(|_| {
                    let tx: &'static mut [u8] = Box::leak(std::vec![0u8; 64].into_boxed_slice());
                    let rx: &'static mut [u8] = Box::leak(std::vec![0u8; 64].into_boxed_slice());
                    ConnSlot::new(tx, rx)
                })
            })
            .collect();
        ConnSlots::new(Box::leak(v.into_boxed_slice()).into())
    }

    const T: Instant = Instant::ZERO;

    #[test]
    fn connections_are_found_by_id_and_by_peer() {
        let mut c = slots(2);
        assert_eq!((c.peers(), c.capacity()), (2, 4));
        assert!(c.is_empty());
        let a = c.alloc_id();
        let b = c.alloc_id();
        assert_ne!(a, b);
        c.open(1, 0, a, true, false, T);
        c.open(1, 1, b, false, false, T);
        assert_eq!((c.slot_of(a), c.slot_of(b)), (Some((1, 0)), Some((1, 1))));
        assert_eq!(
            c.get(b).map(|x| (x.peer(), x.outbound())),
            Some((PeerIndex(1), false))
        );
        assert_eq!((c.count(0), c.count(1), c.count(5)), (0, 2, 0));
        assert_eq!(c.iter().count(), 2);
        c.close(1, 0);
        assert_eq!(c.slot_of(a), None);
        assert!(c.get_mut(a).is_none() && c.slot(1, 0).is_none());
        c.close(1, 1);
        assert!(c.is_empty());
    }

    #[test]
    fn ids_are_never_zero() {
        let mut c = slots(1);
        c.next_id = u32::MAX;
        assert_eq!(c.alloc_id(), ConnId(u32::MAX));
        assert_eq!(c.alloc_id(), ConnId(1));
    }

    #[test]
    fn sending_goes_round_from_the_slot_after_the_last_sender() {
        let mut c = slots(2);
        assert_eq!(c.in_turn().collect::<Vec<_>>(), [0, 1, 2, 3]);
        c.sent(2);
        assert_eq!(c.in_turn().collect::<Vec<_>>(), [3, 0, 1, 2]);
        c.sent(3);
        assert_eq!(c.in_turn().next(), Some(0));
    }

    #[test]
    fn a_reload_moves_a_kept_peers_slots_and_backoff_with_it() {
        let mut c = slots(3);
        let (a, b) = (c.alloc_id(), c.alloc_id());
        c.open(0, 0, a, true, false, T);
        c.open(2, 1, b, true, false, T);
        c.backoff_mut(2).handle_failure(T, 0);
        c.backoff_mut(1).handle_failure(T, 0);
        c.sent(3);
        // Old peer 2 becomes 0, old 0 becomes 2, a new peer at 1.
        c.peers_moved(&[Some(PeerIndex(2)), None, Some(PeerIndex(0))]);
        assert_eq!((c.slot_of(b), c.slot_of(a)), (Some((0, 1)), Some((2, 0))));
        assert_eq!(c.get(b).map(|x| x.peer()), Some(PeerIndex(0)));
        assert_eq!(c.get(a).map(|x| x.peer()), Some(PeerIndex(2)));
        assert!(!c.backoff(0).may_attempt(T), "its backoff came along");
        assert!(c.backoff(1).may_attempt(T), "a new peer starts afresh");
        assert_eq!(c.in_turn().next(), Some(0));
        c.redial_all();
        assert!(c.backoff(0).may_attempt(T));
    }

    #[test]
    fn swap_slots_swaps_and_ignores_nonsense() {
        let mut v = [1, 2, 3];
        swap_slots(&mut v, 2, 0);
        assert_eq!(v, [3, 2, 1]);
        swap_slots(&mut v, 1, 1);
        swap_slots(&mut v, 1, 7);
        assert_eq!(v, [3, 2, 1]);
    }
}
