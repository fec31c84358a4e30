//! A minimal in-memory kernel for one gateway: an SADB and an SPD of fixed
//! capacity, promiscuous copies for the node's PF_KEY socket, and sysctl
//! dumps taken as point-in-time copies, all in static memory.
//!
//! It does what sasyncd relies on, as the simulator's kernel does, with
//! less: it checks the header, the extensions' framing and the writer's
//! pid; carries out ADD (mature SAs only; EEXIST for an SA it holds),
//! UPDATE, DELETE, FLUSH, X_ADDFLOW (adds or replaces) and X_DELFLOW with
//! the kernel's errnos; copies every valid request to a promiscuous socket
//! (made before the request is carried out, wrapped in an X_PROMISC header
//! whose seq is the writer's pid); and dumps SAs in the kernel's record
//! layout (type DUMP, the SA extension, a LIFETIME_CURRENT of its own, then
//! the stored extensions) and flows as X_SPDDUMP records.
//!
//! Not modelled: GETSPI and larval SAs, GET, X_GRPSPIS, expirations, the
//! kernel's replies, usage counters beyond the add time.

use sasyncd_core::node::{DumpId, Table};
use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{
    canonical_digest_input, flow_key, sa_key, ExtRepr, FlowKey, Msg, Repr, SaExt, SaKey,
};
use sasyncd_core::platform::DumpRead;

/// SAs a kernel holds at most.
pub const MAX_SAS: usize = 384;
/// Flows a kernel holds at most.
pub const MAX_FLOWS: usize = 64;
/// Largest request a table stores (the ESP ADDs here are 224 bytes; a
/// slave's snapshot ADD adds the master's LIFETIME_CURRENT).
pub const ENTRY_BYTES: usize = 320;
/// Dumps a kernel serves at once.
const DUMP_SLOTS: usize = 3;
/// Bytes of one dump: every SA with its LIFETIME_CURRENT.
const DUMP_BYTES: usize = MAX_SAS * (ENTRY_BYTES + 32);
/// A socket's receive queue for promiscuous copies (`PFKEYRCVQ`).
const RCVBUF: usize = PFKEY_SOCKBUF;
/// Copies queued at most (each one a slot of `HDR_LEN + ENTRY_BYTES`).
const COPY_SLOTS: usize = 32;

/// `errno` values the kernel answers with.
pub const EINVAL: u32 = 22;
/// An SA with this identity exists.
pub const EEXIST: u32 = 17;
/// No such SA or flow.
pub const ESRCH: u32 = 3;
/// The table (or the entry's storage) is full.
pub const ENOMEM: u32 = 12;

/// One stored entry: its identity and the request bytes it came from.
#[derive(Clone, Copy)]
struct Entry<K> {
    key: K,
    len: u16,
    bytes: [u8; ENTRY_BYTES],
}

impl<K> Entry<K> {
    fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Entries in slots (unordered, removal moves the last one into the gap)
/// with an index sorted by identity pointing into them, so that an insert
/// moves a few bytes of index rather than whole entries.
struct Store<K, const N: usize> {
    slots: heapless::Vec<Entry<K>, N>,
    index: heapless::Vec<(K, u16), N>,
}

impl<K: Ord + Copy, const N: usize> Store<K, N> {
    const fn new() -> Self {
        Store {
            slots: heapless::Vec::new(),
            index: heapless::Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn find(&self, key: &K) -> Result<usize, usize> {
        self.index.binary_search_by(|(k, _)| k.cmp(key))
    }

    fn get(&self, key: &K) -> Option<&[u8]> {
        let at = self.find(key).ok()?;
        Some(self.slots[usize::from(self.index[at].1)].bytes())
    }

    /// Adds or replaces the entry `key`.
    fn put(&mut self, key: K, bytes: &[u8]) -> Result<(), u32> {
        if bytes.len() > ENTRY_BYTES {
            return Err(ENOMEM);
        }
        let slot = match self.find(&key) {
            Ok(at) => usize::from(self.index[at].1),
            Err(at) => {
                let s = self.slots.len();
                let fresh = Entry {
                    key,
                    len: 0,
                    bytes: [0; ENTRY_BYTES],
                };
                self.slots.push(fresh).map_err(|_| ENOMEM)?;
                if self.index.insert(at, (key, s as u16)).is_err() {
                    self.slots.pop();
                    return Err(ENOMEM);
                }
                s
            }
        };
        let e = &mut self.slots[slot];
        e.bytes[..bytes.len()].copy_from_slice(bytes);
        e.len = bytes.len() as u16;
        Ok(())
    }

    fn remove(&mut self, key: &K) -> bool {
        let Ok(at) = self.find(key) else {
            return false;
        };
        let (_, slot) = self.index.remove(at);
        let slot = usize::from(slot);
        self.slots.swap_remove(slot);
        if slot < self.slots.len() {
            // The last entry moved into the gap: repoint its index entry.
            let moved = self.slots[slot].key;
            if let Ok(m) = self.find(&moved) {
                self.index[m].1 = slot as u16;
            }
        }
        true
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.index.clear();
    }

    /// Entries in identity order.
    fn iter(&self) -> impl Iterator<Item = (&K, &[u8])> + '_ {
        self.index
            .iter()
            .map(|(k, s)| (k, self.slots[usize::from(*s)].bytes()))
    }
}

/// One promiscuous copy waiting to be read.
#[derive(Clone, Copy)]
struct Copied {
    len: u16,
    bytes: [u8; HDR_LEN + ENTRY_BYTES],
}

/// A point-in-time copy of a table, read record by record.
struct DumpSlot {
    used: bool,
    id: u32,
    /// The copy did not fit: the dump ends with `ok: false`.
    failed: bool,
    len: usize,
    at: usize,
    buf: [u8; DUMP_BYTES],
}

impl DumpSlot {
    const fn new() -> Self {
        DumpSlot {
            used: false,
            id: 0,
            failed: false,
            len: 0,
            at: 0,
            buf: [0; DUMP_BYTES],
        }
    }

    /// Appends the record `exts` as a message of `msg_type`/`satype`.
    fn record(&mut self, msg_type: u8, satype: u8, exts: &[ExtRepr<'_>]) -> bool {
        let out = self.buf.get_mut(self.len..).unwrap_or(&mut []);
        match Repr::new(msg_type, satype, 0, 0, exts).emit(out) {
            Ok(n) => {
                self.len += n;
                true
            }
            Err(_) => {
                self.failed = true;
                false
            }
        }
    }
}

/// What a kernel has done, for the report and the checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelStats {
    /// Requests that passed the checks.
    pub valid_writes: u32,
    /// Requests refused (any errno).
    pub refused: u32,
    /// Promiscuous copies dropped because the queue was full.
    pub promisc_drops: u32,
}

/// How two kernels' synchronised entries differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Diff {
    /// Entries only the first kernel holds.
    pub missing: usize,
    /// Entries only the second kernel holds.
    pub extra: usize,
    /// Entries both hold with different content.
    pub differ: usize,
}

impl Diff {
    /// Whether the kernels hold the same entries.
    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }
}

/// One gateway's kernel.
pub struct Kernel {
    sas: Store<SaKey, MAX_SAS>,
    flows: Store<FlowKey, MAX_FLOWS>,
    /// The node's socket asked for promiscuous mode.
    promisc: bool,
    copies: heapless::Deque<Copied, COPY_SLOTS>,
    queued_bytes: usize,
    dumps: [DumpSlot; DUMP_SLOTS],
    /// Seconds since the epoch, for LIFETIME_CURRENT add times.
    now_secs: u64,
    stats: KernelStats,
}

fn ext_bytes<'a>(msg: &Msg<'a>) -> impl Iterator<Item = (u16, &'a [u8])> {
    msg.extensions()
        .map_while(Result::ok)
        .map(|e| (e.ext_type(), e.bytes()))
}

/// The extensions of one dump record: those of a stored request (at most
/// one of each type) and the kernel's LIFETIME_CURRENT.
type RecordExts<'a> = heapless::Vec<ExtRepr<'a>, 24>;

/// The extensions of `m` whose type is in `keep`, copied as they are,
/// after `first`; `None` if there are too many.
fn record_exts<'a>(m: &Msg<'a>, keep: ExtSet, first: &[ExtRepr<'a>]) -> Option<RecordExts<'a>> {
    let mut v = RecordExts::new();
    v.extend_from_slice(first).ok()?;
    for (_, b) in ext_bytes(m).filter(|(t, _)| keep.contains(*t)) {
        v.push(ExtRepr::Raw(b)).ok()?;
    }
    Some(v)
}

/// Extensions a dump record carries from the stored request (the SA
/// extension goes first, the kernel's own counters are not stored).
const SA_DUMPED: ExtSet = ADD_ALLOWED.minus(ExtSet::of(&[
    SADB_EXT_SA,
    SADB_EXT_LIFETIME_CURRENT,
    SADB_X_EXT_LIFETIME_LASTUSE,
    SADB_X_EXT_COUNTER,
    SADB_X_EXT_REPLAY,
]));

impl Kernel {
    /// An empty kernel whose clock reads `now_secs`.
    pub const fn new(now_secs: u64) -> Kernel {
        Kernel {
            sas: Store::new(),
            flows: Store::new(),
            promisc: false,
            copies: heapless::Deque::new(),
            queued_bytes: 0,
            dumps: [DumpSlot::new(), DumpSlot::new(), DumpSlot::new()],
            now_secs,
            stats: KernelStats {
                valid_writes: 0,
                refused: 0,
                promisc_drops: 0,
            },
        }
    }

    /// A process with pid `writer` writes `buf` to its PF_KEY socket.
    pub fn write(&mut self, buf: &[u8], writer: u32) -> Result<(), u32> {
        let r = self.write_inner(buf, writer);
        if r.is_err() {
            self.stats.refused += 1;
        }
        r
    }

    fn write_inner(&mut self, buf: &[u8], writer: u32) -> Result<(), u32> {
        let msg = Msg::parse(buf).map_err(|_| EINVAL)?;
        msg.check_extensions().map_err(|_| EINVAL)?;
        if msg.pid() != writer || msg.errno() != 0 {
            return Err(EINVAL);
        }
        self.stats.valid_writes += 1;
        self.copy_to_listener(buf, writer);
        match msg.msg_type() {
            SADB_ADD => {
                let key = sa_key(&msg).ok_or(EINVAL)?;
                let sa = SaExt::new(msg.find(SADB_EXT_SA).ok_or(EINVAL)?).map_err(|_| EINVAL)?;
                if sa.state() != SADB_SASTATE_MATURE {
                    return Err(EINVAL);
                }
                if self.sas.get(&key).is_some() {
                    return Err(EEXIST);
                }
                self.sas.put(key, buf)
            }
            SADB_UPDATE => {
                let key = sa_key(&msg).ok_or(EINVAL)?;
                if self.sas.get(&key).is_none() {
                    return Err(ESRCH);
                }
                self.sas.put(key, buf)
            }
            SADB_DELETE => {
                let key = sa_key(&msg).ok_or(EINVAL)?;
                self.sas.remove(&key).then_some(()).ok_or(ESRCH)
            }
            SADB_FLUSH => {
                match msg.satype() {
                    SADB_SATYPE_UNSPEC => {
                        self.sas.clear();
                        self.flows.clear();
                    }
                    t => loop {
                        let doomed = self.sas.iter().map(|(k, _)| *k).find(|k| k.satype == t);
                        let Some(k) = doomed else { break };
                        self.sas.remove(&k);
                    },
                }
                Ok(())
            }
            SADB_X_ADDFLOW => {
                let key = flow_key(&msg).ok_or(EINVAL)?;
                self.flows.put(key, buf)
            }
            SADB_X_DELFLOW => {
                let key = flow_key(&msg).ok_or(EINVAL)?;
                self.flows.remove(&key).then_some(()).ok_or(ESRCH)
            }
            // X_PROMISC, DUMP, REGISTER, …: accepted, nothing modelled.
            _ => Ok(()),
        }
    }

    /// Queues the X_PROMISC-wrapped copy of a request for the node's socket
    /// if it is promiscuous; drops it if the queue is full.
    fn copy_to_listener(&mut self, request: &[u8], writer: u32) {
        if !self.promisc {
            return;
        }
        let len = HDR_LEN + request.len();
        if request.len() > ENTRY_BYTES || self.queued_bytes + len > RCVBUF || self.copies.is_full()
        {
            self.stats.promisc_drops += 1;
            return;
        }
        let mut c = Copied {
            len: len as u16,
            bytes: [0; HDR_LEN + ENTRY_BYTES],
        };
        let copy = [ExtRepr::Raw(request)];
        if Repr::new(SADB_X_PROMISC, 0, writer, 0, &copy)
            .emit(&mut c.bytes)
            .is_err()
        {
            self.stats.promisc_drops += 1;
            return;
        }
        self.queued_bytes += len;
        // Cannot fail: checked `is_full` above.
        let _ = self.copies.push_back(c);
    }

    /// Sets the kernel's clock (seconds since the epoch).
    pub fn set_now_secs(&mut self, secs: u64) {
        self.now_secs = secs;
    }

    /// Turns the node's socket's promiscuous mode on or off.
    pub fn set_promisc(&mut self, on: bool) {
        self.promisc = on;
    }

    /// The oldest promiscuous copy waiting for the node, if any.
    pub fn promisc_front(&self) -> Option<&[u8]> {
        self.copies.front().map(|c| &c.bytes[..usize::from(c.len)])
    }

    /// The node has read the oldest promiscuous copy.
    pub fn promisc_pop(&mut self) {
        if let Some(c) = self.copies.pop_front() {
            self.queued_bytes -= usize::from(c.len);
        }
    }

    /// Takes a point-in-time copy of `table` for dump `id`.
    pub fn dump_start(&mut self, id: DumpId, table: Table) {
        let now_secs = self.now_secs;
        let Some(d) = self.dumps.iter_mut().find(|d| !d.used) else {
            // No room for another dump: it ends at once, as failed. Not
            // expected with two peers at most; the sync check would tell.
            return;
        };
        d.used = true;
        d.id = id.0;
        d.failed = false;
        d.len = 0;
        d.at = 0;
        match table {
            Table::Sadb => {
                for (_, bytes) in self.sas.iter() {
                    let Ok(m) = Msg::parse(bytes) else { continue };
                    let Some(sa) = m.find(SADB_EXT_SA) else {
                        continue;
                    };
                    let first = [
                        ExtRepr::Raw(sa.bytes()),
                        ExtRepr::addtime(SADB_EXT_LIFETIME_CURRENT, now_secs),
                    ];
                    let ok = match record_exts(&m, SA_DUMPED, &first) {
                        Some(exts) => d.record(SADB_DUMP, m.satype(), &exts),
                        None => {
                            d.failed = true;
                            false
                        }
                    };
                    if !ok {
                        break;
                    }
                }
            }
            Table::Spd => {
                for (_, bytes) in self.flows.iter() {
                    let Ok(m) = Msg::parse(bytes) else { continue };
                    let ok = match record_exts(&m, ADDFLOW_ALLOWED, &[]) {
                        Some(exts) => d.record(SADB_X_SPDDUMP, m.satype(), &exts),
                        None => {
                            d.failed = true;
                            false
                        }
                    };
                    if !ok {
                        break;
                    }
                }
            }
        }
    }

    /// The next record of dump `id`.
    pub fn dump_next(&mut self, id: DumpId) -> DumpRead<'_> {
        let Some(d) = self.dumps.iter_mut().find(|d| d.used && d.id == id.0) else {
            return DumpRead::End { ok: false };
        };
        if d.failed || d.at + HDR_LEN > d.len {
            d.used = false;
            return DumpRead::End { ok: !d.failed };
        }
        let units = u16::from_ne_bytes([d.buf[d.at + 4], d.buf[d.at + 5]]);
        let from = d.at;
        d.at = (from + usize::from(units) * CHUNK).min(d.len);
        DumpRead::Record(&d.buf[from..d.at])
    }

    /// Drops dump `id`.
    pub fn dump_cancel(&mut self, id: DumpId) {
        for d in self.dumps.iter_mut().filter(|d| d.used && d.id == id.0) {
            d.used = false;
        }
    }

    /// SAs held.
    pub fn sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Flows held.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Counters.
    pub fn stats(&self) -> KernelStats {
        self.stats
    }

    /// How `other`'s SAs and flows differ from ours, by identity and by
    /// canonical content (what a slave's copy shares with its master's
    /// entry: no usage counters, no pid or seq, extensions in order).
    pub fn diff(&self, other: &Kernel) -> Diff {
        let mut d = Diff::default();
        diff_store(&self.sas, &other.sas, &mut d);
        diff_store(&self.flows, &other.flows, &mut d);
        d
    }
}

fn diff_store<K: Ord + Copy, const N: usize>(a: &Store<K, N>, b: &Store<K, N>, d: &mut Diff) {
    let mut ca = [0u8; HDR_LEN + ENTRY_BYTES];
    let mut cb = [0u8; HDR_LEN + ENTRY_BYTES];
    for (k, ea) in a.iter() {
        let Some(eb) = b.get(k) else {
            d.missing += 1;
            continue;
        };
        let canon = |bytes: &[u8], out: &mut [u8]| -> Option<usize> {
            canonical_digest_input(&Msg::parse(bytes).ok()?, out).ok()
        };
        match (canon(ea, &mut ca), canon(eb, &mut cb)) {
            (Some(na), Some(nb)) if ca[..na] == cb[..nb] => {}
            _ => d.differ += 1,
        }
    }
    d.extra += b.iter().filter(|(k, _)| a.get(k).is_none()).count();
}
