//! The node's large storage, provided by its platform (as smoltcp's
//! sockets take their buffers): the delta ring, the PF_KEY queue, the
//! event queue, the peer table and the connection slots with their send
//! and receive buffers. Their sizes are the node's capacities, checked
//! once by [`Node::new`](super::Node::new); the node never allocates.
//!
//! Firmware lends statics (`&'static mut [u8]`); a host with a heap may
//! hand over vectors instead (feature `alloc`, [`NodeStorage::on_heap`]),
//! which the node then owns and frees with itself, so a simulator can
//! build and drop nodes without leaking or borrowing across its world.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use crate::crypto::Crypto;

use super::conn::{ConnSlot, RX_FRAME};
use super::event::Event;
use super::peer_table::Peer;
use super::ring::MIN_RING_BYTES;
use super::scratch::Scratch;
use super::{min_events, MIN_PFKEY_QUEUE_BYTES};

/// A slice the node works in: borrowed from the platform, or (feature
/// `alloc`) a vector handed over to it (smoltcp's `ManagedSlice`).
#[derive(Debug)]
pub enum ManagedSlice<'a, T> {
    /// The platform's memory, lent for the node's life.
    Borrowed(&'a mut [T]),
    /// A vector the node owns from now on.
    #[cfg(feature = "alloc")]
    Owned(Vec<T>),
}

impl<T> ManagedSlice<'_, T> {
    /// No storage at all (a connection slot before the node gives it its
    /// buffers is never one).
    pub const fn empty() -> Self {
        ManagedSlice::Borrowed(&mut [])
    }
}

impl<T> core::ops::Deref for ManagedSlice<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            ManagedSlice::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            ManagedSlice::Owned(v) => v,
        }
    }
}

impl<T> core::ops::DerefMut for ManagedSlice<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            ManagedSlice::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            ManagedSlice::Owned(v) => v,
        }
    }
}

/// One value the node works in: borrowed from the platform, or (feature
/// `alloc`) boxed and handed over (smoltcp's `Managed`).
#[derive(Debug)]
pub enum Managed<'a, T> {
    /// The platform's value, lent for the node's life.
    Borrowed(&'a mut T),
    /// A box the node owns from now on.
    #[cfg(feature = "alloc")]
    Owned(alloc::boxed::Box<T>),
}

impl<T> core::ops::Deref for Managed<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Managed::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            Managed::Owned(v) => v,
        }
    }
}

impl<T> core::ops::DerefMut for Managed<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match self {
            Managed::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            Managed::Owned(v) => v,
        }
    }
}

impl<'a, T> From<&'a mut T> for Managed<'a, T> {
    fn from(s: &'a mut T) -> Self {
        Managed::Borrowed(s)
    }
}

impl<'a, T> From<&'a mut [T]> for ManagedSlice<'a, T> {
    fn from(s: &'a mut [T]) -> Self {
        ManagedSlice::Borrowed(s)
    }
}

impl<'a, T, const N: usize> From<&'a mut [T; N]> for ManagedSlice<'a, T> {
    fn from(s: &'a mut [T; N]) -> Self {
        ManagedSlice::Borrowed(s)
    }
}

#[cfg(feature = "alloc")]
impl<T> From<Vec<T>> for ManagedSlice<'_, T> {
    fn from(v: Vec<T>) -> Self {
        ManagedSlice::Owned(v)
    }
}

/// The smallest receive buffer: the longest frame of either protocol.
pub const RX_BYTES: usize = RX_FRAME;

/// Everything a node keeps that grows with its capacities. The number of
/// peers it can hold is `peers.len()`, which must equal `conns.len()`
/// (a pair of connection slots per peer).
#[derive(Debug)]
pub struct NodeStorage<'a, C: Crypto> {
    /// The master's delta ring, at least [`MIN_RING_BYTES`].
    pub ring: ManagedSlice<'a, u8>,
    /// PF_KEY messages waiting for the kernel, at least
    /// [`MIN_PFKEY_QUEUE_BYTES`].
    pub pfkey: ManagedSlice<'a, u8>,
    /// Events waiting for the platform, at least
    /// [`min_events`]`(peers.len())`.
    pub events: ManagedSlice<'a, Option<Event>>,
    /// The configured peers (at most [`MAX_PEERS`](crate::config::MAX_PEERS)).
    pub peers: ManagedSlice<'a, Peer>,
    /// Two connection slots per peer.
    pub conns: ManagedSlice<'a, [ConnSlot<'a, C>; 2]>,
    /// Working buffers for the message at hand (12 KiB).
    pub scratch: Managed<'a, Scratch>,
}

/// Which part of a [`NodeStorage`] is too small (or the wrong shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageError {
    /// The delta ring is below [`MIN_RING_BYTES`].
    Ring,
    /// The PF_KEY queue is below [`MIN_PFKEY_QUEUE_BYTES`], or below the
    /// dialect's [`frame_room`](super::frame_room).
    PfkeyQueue,
    /// The event queue is below [`min_events`] for the peers.
    Events,
    /// More peer slots than [`MAX_PEERS`](crate::config::MAX_PEERS), or
    /// not one pair of connection slots per peer.
    Peers,
    /// A send buffer below [`MIN_TX_BYTES`](super::MIN_TX_BYTES).
    SendBuffer,
    /// A receive buffer below [`RX_BYTES`].
    ReceiveBuffer,
}

impl core::fmt::Display for StorageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            StorageError::Ring => "delta ring below MIN_RING_BYTES",
            StorageError::PfkeyQueue => "PF_KEY queue below the room of one frame (frame_room)",
            StorageError::Events => "event queue below min_events(peers)",
            StorageError::Peers => "peer slots above MAX_PEERS or not one connection pair each",
            StorageError::SendBuffer => "a send buffer below MIN_TX_BYTES",
            StorageError::ReceiveBuffer => "a receive buffer below RX_BYTES",
        })
    }
}

impl core::error::Error for StorageError {}

impl<C: Crypto> NodeStorage<'_, C> {
    /// Whether every part has at least its minimum.
    pub fn check(&self) -> Result<(), StorageError> {
        let peers = self.peers.len();
        if peers > crate::config::MAX_PEERS || self.conns.len() != peers {
            return Err(StorageError::Peers);
        }
        if self.ring.len() < MIN_RING_BYTES {
            return Err(StorageError::Ring);
        }
        if self.pfkey.len() < MIN_PFKEY_QUEUE_BYTES {
            return Err(StorageError::PfkeyQueue);
        }
        if self.events.len() < min_events(peers) {
            return Err(StorageError::Events);
        }
        for s in self.conns.iter().flatten() {
            s.conn.check_buffers()?;
        }
        Ok(())
    }
}

#[cfg(feature = "alloc")]
impl<C: Crypto> NodeStorage<'static, C> {
    /// Storage on the heap for `peers` peers, a `ring`-byte delta ring,
    /// `tx` bytes of send buffer per connection, a `pfkey`-byte PF_KEY
    /// queue and `events` events (for a host with a heap; the node owns
    /// it). Whether the sizes are enough is checked by
    /// [`Node::new`](super::Node::new).
    pub fn on_heap(peers: usize, ring: usize, tx: usize, pfkey: usize, events: usize) -> Self {
        let slot = || ConnSlot::new(alloc::vec![0; tx], alloc::vec![0; RX_BYTES]);
        NodeStorage {
            ring: alloc::vec![0; ring].into(),
            pfkey: alloc::vec![0; pfkey].into(),
            events: alloc::vec![None; events].into(),
            peers: (0..peers)
                .map(|_| Peer::default())
                .collect::<Vec<_>>()
                .into(),
            conns: (0..peers)
                .map(|_| [slot(), slot()])
                .collect::<Vec<_>>()
                .into(),
            scratch: Managed::Owned(alloc::boxed::Box::new(Scratch::new())),
        }
    }

    /// [`on_heap`](Self::on_heap) with the default capacities:
    /// [`MAX_PEERS`](crate::config::MAX_PEERS) peers (the parser's limit), a
    /// [`DEFAULT_RING_BYTES`](super::DEFAULT_RING_BYTES) ring,
    /// [`TX_BYTES`](super::TX_BYTES) of send buffer per connection, a
    /// [`PFKEY_QUEUE_BYTES`](super::PFKEY_QUEUE_BYTES) PF_KEY queue and
    /// [`EVENTS`](super::EVENTS) events.
    pub fn default_on_heap() -> Self {
        Self::on_heap(
            crate::config::MAX_PEERS,
            super::DEFAULT_RING_BYTES,
            super::TX_BYTES,
            super::PFKEY_QUEUE_BYTES,
            super::EVENTS,
        )
    }
}

/// A queue of events in the platform's storage.
pub(super) struct EventQueue<'a> {
    buf: ManagedSlice<'a, Option<Event>>,
    head: usize,
    len: usize,
}

impl<'a> EventQueue<'a> {
    pub fn new(buf: ManagedSlice<'a, Option<Event>>) -> Self {
        EventQueue {
            buf,
            head: 0,
            len: 0,
        }
    }

    #[cfg(any(test, feature = "planted-bugs"))]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends `e`; gives it back if the queue is full.
    pub fn push_back(&mut self, e: Event) -> Result<(), Event> {
        let cap = self.buf.len();
        if self.len == cap {
            return Err(e);
        }
        self.buf[(self.head + self.len) % cap] = Some(e);
        self.len += 1;
        Ok(())
    }

    pub fn pop_front(&mut self) -> Option<Event> {
        if self.len == 0 {
            return None;
        }
        let e = self.buf[self.head].take();
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SoftCrypto;
    use crate::node::conn::MIN_TX_BYTES;
    use crate::node::DemoteEffect;
    use std::vec;
    use std::vec::Vec;

    /// Storage for `peers` peers with every part at its minimum, but for
    /// the changes `edit` makes to the sizes (ring, pfkey, events, tx, rx).
    fn storage(
        peers: usize,
        edit: impl FnOnce(&mut [usize; 5]),
    ) -> NodeStorage<'static, SoftCrypto> {
        let mut n = [
            MIN_RING_BYTES,
            MIN_PFKEY_QUEUE_BYTES,
            min_events(peers),
            MIN_TX_BYTES,
            RX_BYTES,
        ];
        edit(&mut n);
        let bytes = |len: usize| -> &'static mut [u8] { vec![0; len].leak() };
        let conns: Vec<_> = (0..peers)
            .map(|_| {
                [
                    ConnSlot::new(bytes(n[3]), bytes(n[4])),
                    ConnSlot::new(bytes(n[3]), bytes(n[4])),
                ]
            })
            .collect();
        NodeStorage {
            ring: bytes(n[0]).into(),
            pfkey: bytes(n[1]).into(),
            events: vec![None; n[2]].leak().into(),
            peers: vec![Peer::default(); peers].leak().into(),
            conns: conns.leak().into(),
            scratch: std::boxed::Box::leak(std::boxed::Box::new(Scratch::new())).into(),
        }
    }

    #[test]
    fn each_part_below_its_minimum_is_named() {
        assert_eq!(storage(2, |_| {}).check(), Ok(()));
        let cases: [(usize, StorageError); 5] = [
            (0, StorageError::Ring),
            (1, StorageError::PfkeyQueue),
            (2, StorageError::Events),
            (3, StorageError::SendBuffer),
            (4, StorageError::ReceiveBuffer),
        ];
        for (i, e) in cases {
            assert_eq!(storage(2, |n| n[i] -= 1).check(), Err(e), "part {i}");
        }
    }

    #[test]
    fn peers_and_connection_pairs_must_match_and_fit() {
        let mut s = storage(2, |_| {});
        s.peers = vec![Peer::default(); 3].leak().into();
        assert_eq!(s.check(), Err(StorageError::Peers));
        let s = storage(crate::config::MAX_PEERS + 1, |_| {});
        assert_eq!(s.check(), Err(StorageError::Peers));
        assert_eq!(storage(0, |_| {}).check(), Ok(()));
    }

    /// A dialect that writes records grown (XFRM's add-first) keeps the
    /// room of a grown frame: the minimum queue is refused for it.
    #[test]
    fn a_growing_dialect_needs_the_room_of_a_grown_frame() {
        use crate::config::Config;
        use crate::node::{frame_room, FixedMarks, Node, NodeError, Settings};
        use crate::time::Instant;
        use crate::xfrm::Xfrm;
        struct Seven;
        impl crate::random::Random for Seven {
            fn fill(&mut self, out: &mut [u8]) {
                out.fill(7)
            }
        }
        let cfg = Config::parse(b"peer 192.0.2.2\nsharedkey sixteen-byte-key\nmode slave\n")
            .expect("config");
        let build = |pfkey: usize| {
            let s = storage(1, |n| n[1] = pfkey);
            let settings = Settings::new([1; 16], 1, 1);
            let marks = FixedMarks::<4>::new();
            Node::<_, _, _, Xfrm>::new(&cfg, settings, SoftCrypto, Seven, marks, s, Instant::ZERO)
                .map(|_| ())
        };
        let refused = Err(NodeError::Storage(StorageError::PfkeyQueue));
        assert_eq!(build(MIN_PFKEY_QUEUE_BYTES), refused);
        assert_eq!(build(frame_room(2) - 1), refused);
        assert_eq!(build(frame_room(2)), Ok(()));
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn the_default_heap_storage_passes() {
        assert_eq!(NodeStorage::<SoftCrypto>::default_on_heap().check(), Ok(()));
    }

    #[test]
    fn events_come_out_in_order_and_a_full_queue_refuses() {
        let mut buf = [None; 3];
        let mut q = EventQueue::new((&mut buf).into());
        let e = |on| Event::Promisc(on);
        assert_eq!(q.push_back(e(true)), Ok(()));
        assert_eq!(q.push_back(e(false)), Ok(()));
        assert_eq!(q.pop_front(), Some(e(true)));
        assert_eq!(q.push_back(Event::Demote(DemoteEffect::Raise)), Ok(()));
        assert_eq!(q.push_back(e(true)), Ok(()));
        assert_eq!(q.push_back(e(false)), Err(e(false)), "full");
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop_front(), Some(e(false)));
        assert_eq!(q.pop_front(), Some(Event::Demote(DemoteEffect::Raise)));
        assert_eq!(q.pop_front(), Some(e(true)));
        assert_eq!(q.pop_front(), None);
    }
}
