//! Kernel dialects: what the core needs to know about the kernel messages
//! it moves, per kind of kernel.
//!
//! The bytes that travel between peers are the kernel's own records
//! (OpenBSD PF_KEY messages, or Linux XFRM netlink messages): translating
//! one kernel's records into another's format would lose what the other
//! has no field for (on Linux: marks, interface ids, ESN replay state,
//! several templates per policy) and make a slave's kernel differ from its
//! master's. So the core is given a [`Dialect`], and the dialect supplies,
//! per message:
//!
//! * the **identity** of the entry a record names ([`Dialect::identity`]):
//!   the kernel's own uniqueness rule, which delta keys, snapshot marks
//!   and digests use;
//! * the **filter** ([`Dialect::classify`]): what a master forwards, and
//!   its own writes recognised (OpenBSD: the writer's pid in the request a
//!   promiscuous copy carries; Linux: the netlink port in the event's
//!   header);
//! * the **rewrite** of a received record into the request the slave's
//!   kernel accepts ([`Dialect::to_request`]);
//! * the **canonical form** digests hash ([`Dialect::digest_input`]):
//!   equal entries on master and slave give equal bytes, whatever message
//!   carried them;
//! * the **requests** the node writes itself: a dump record's add
//!   ([`Dialect::dump_to_request`]), a sweep's delete, a legacy flush, our
//!   writer id stamped into what a slave applies ([`Dialect::stamp`]), and
//!   which of them a kernel refusal names ([`Dialect::refusal`]);
//! * OpenBSD's **SA bundles** (`group_*`), which other kernels lack;
//! * Linux's **outbound sequence numbers** ([`Dialect::outbound_seq`],
//!   [`Dialect::seq_jump`]): a master carries them, a new master moves
//!   them forward. OpenBSD's pfsync(4) does that job, so its dialect
//!   carries nothing.
//!
//! Peers must speak one dialect: v2's HELLO names it
//! ([`KernelDialect`], `wire/README.md`), and a mixed cluster is refused
//! there. [`OpenBsd`] is the dialect of today's node (it delegates to
//! [`crate::pfkey`]); Linux's is [`crate::xfrm::Xfrm`]. The node calls
//! the kernel's formats only through this trait.

use core::fmt::{Debug, Display};
use core::hash::Hash;
use core::net::IpAddr;

use crate::node::Table;
use crate::pfkey::consts::{
    CHUNK, HDR_LEN, SADB_ADD, SADB_DELETE, SADB_SATYPE_UNSPEC, SADB_UPDATE, SADB_X_ADDFLOW,
    SADB_X_DELFLOW, SADB_X_GRPSPIS, SADB_X_SPDDUMP,
};
use crate::pfkey::{
    build_delete, build_delflow, build_flush, build_group, canonical_digest_input, dump_to_add,
    filter, flow_key, for_slave, is_grouped, msg_type_name, next_key, sa_key, set_pid_seq,
    spd_dump_to_addflow, unwrap_promisc, FilterPolicy, FlowKey, Msg, PfkeyError, SaKey, SkipReason,
    Verdict,
};

/// The kind of kernel records a node sends: the byte v2's HELLO carries
/// at offset 83 (`wire/README.md`). An older v2 node sends 0 there (the
/// byte was reserved and zero), which is OpenBSD: what it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum KernelDialect {
    /// OpenBSD PF_KEY v2 with OpenBSD's extensions and SPD messages.
    #[default]
    OpenBsd = 0,
    /// Linux XFRM netlink records (states and policies).
    LinuxXfrm = 1,
}

impl KernelDialect {
    /// The dialect a HELLO byte names, if any.
    pub const fn from_u8(b: u8) -> Option<KernelDialect> {
        match b {
            0 => Some(KernelDialect::OpenBsd),
            1 => Some(KernelDialect::LinuxXfrm),
            _ => None,
        }
    }

    /// Its name in log messages.
    pub const fn name(self) -> &'static str {
        match self {
            KernelDialect::OpenBsd => "OpenBSD PF_KEY",
            KernelDialect::LinuxXfrm => "Linux XFRM",
        }
    }
}

impl Display for KernelDialect {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an entry of a kernel's tables is, by the kernel's own rule: two
/// records with the same identity describe the same entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity<S, P> {
    /// A security association (state).
    Sa(S),
    /// A flow (OpenBSD) or policy (Linux).
    Policy(P),
}

/// Longest identity encoding ([`Dialect::identity_bytes`]): snapshot marks
/// and digest buckets are keyed on these bytes.
pub const IDENTITY_MAX: usize = 96;

/// What a master does with one message read from its kernel's watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified<'a, S> {
    /// A change another process made: forward these bytes (the change
    /// itself, unwrapped).
    Sync(&'a [u8]),
    /// Our own write coming back: never forwarded.
    Own,
    /// The kernel's reply to a request, not a change.
    Reply,
    /// A change that is not forwarded, for this reason (logged at debug
    /// level: `not forwarding {reason}`).
    Skip(S),
    /// A change that cannot be read (logged as a warning).
    Malformed(S),
}

/// What a request does, as far as the node tells kernel refusals apart
/// (some are expected: a DELETE of what is gone already, an ADD of what a
/// snapshot finds present).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Adds an SA.
    Add,
    /// Changes an SA (or completes a larval one).
    Update,
    /// Deletes an SA.
    Delete,
    /// Deletes a flow or policy.
    DeletePolicy,
    /// Groups SAs into a bundle (OpenBSD's X_GRPSPIS).
    Group,
    /// Sets an SA's counters or replay-event thresholds (Linux's
    /// `XFRM_MSG_NEWAE`).
    Counters,
    /// Anything else.
    Other,
}

/// A request the node wrote (or a kernel reply echoing one): what it does,
/// and its name in log messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// What it does.
    pub op: Op,
    /// The kernel's name of its type (`ADD`, `X_DELFLOW`, `XFRM_MSG_NEWSA`).
    pub name: &'static str,
}

/// What shapes the filter: the configuration and who "we" are.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `flushmode` and `mode skipslave`.
    pub policy: FilterPolicy,
    /// Every configured peer's address (skipslave).
    pub peers: &'a [IpAddr],
    /// Our writer id: the pid our PF_KEY requests carry (OpenBSD), or our
    /// netlink socket's port id (Linux).
    pub own: u32,
}

/// A kernel dialect: the per-message knowledge the core needs.
///
/// Records are byte strings as the platform hands them over (one kernel
/// message per watch read, one record per dump entry); requests are what
/// the node queues for its kernel. A dialect has no state the node
/// changes: one value serves the node's whole life.
///
/// The **bundle** methods (`group_*`) are OpenBSD's SA bundles
/// (X_GRPSPIS): a dump's ADD loses the grouping, so snapshots, sweeps and
/// digests carry it apart. A kernel without them (Linux XFRM: a policy's
/// templates name every SA of the path) keeps the defaults, and the
/// node's bundle passes do nothing.
pub trait Dialect {
    /// The dialect's HELLO byte.
    const ID: KernelDialect;
    /// The errno the kernel refuses a policy's delete with when it holds
    /// no such policy (OpenBSD: `ESRCH`, as for SAs).
    const MISSING_POLICY: u32 = 3;
    /// An SA's identity.
    type SaKey: Copy + Eq + Ord + Hash + Debug;
    /// A flow's or policy's identity.
    type PolicyKey: Copy + Eq + Ord + Hash + Debug;
    /// Why a change is not forwarded.
    type Skip: Copy + Debug + Display;
    /// Why a record cannot be rewritten or digested.
    type Error: Copy + Debug + Display;
    /// Whether a master carries outbound sequence numbers
    /// ([`outbound_seq`](Self::outbound_seq)) and a new master moves them
    /// ([`seq_jump`](Self::seq_jump)): Linux. OpenBSD leaves it to
    /// pfsync(4), and its node reads no dump at a takeover.
    const CARRIES_SEQ: bool = false;
    /// At most how many times its length a request written for one record
    /// of the stream takes ([`add_first`](Self::add_first) writes Linux's
    /// `UPDSA` as `NEWSA`+`UPDSA`: 2, plus padding): what a slave keeps
    /// room for in its PF_KEY queue before it reads a frame
    /// ([`frame_room`](crate::node::frame_room)).
    const WRITE_GROWTH: usize = 1;
    /// Where a node keeps carried numbers ([`crate::node::outseq`]):
    /// nothing for a dialect that carries none.
    type Seqs: crate::node::outseq::SeqTable;

    /// Decides what a master does with `msg`, one message as its kernel's
    /// watch delivered it.
    fn classify<'a>(&self, msg: &'a [u8], scope: &Scope<'_>) -> Classified<'a, Self::Skip>;

    /// The identity of the entry a record (dump record, change, or
    /// request) names; `None` for records naming no single entry (a
    /// flush) or unreadable ones.
    fn identity(&self, record: &[u8]) -> Option<Identity<Self::SaKey, Self::PolicyKey>>;

    /// Writes an identity's bytes to `out` (what snapshot marks and digest
    /// buckets are keyed on: equal identities, equal bytes); returns their
    /// length.
    fn identity_bytes(
        &self,
        id: &Identity<Self::SaKey, Self::PolicyKey>,
        out: &mut [u8; IDENTITY_MAX],
    ) -> usize;

    /// The bytes of the identity of the entry `record` names.
    fn key(&self, record: &[u8], out: &mut [u8; IDENTITY_MAX]) -> Option<usize> {
        self.identity(record)
            .map(|id| self.identity_bytes(&id, out))
    }

    /// Writes to `out` the request a slave's kernel is given for a
    /// master's record (a snapshot record or a forwarded change); returns
    /// its length. A slave of a legacy master applies it to what it
    /// receives.
    fn to_request(&self, record: &[u8], out: &mut [u8]) -> Result<usize, Self::Error>;

    /// Writes to `out` the bytes a master records in its delta ring for a
    /// change [`classify`](Self::classify) let through: what its slaves
    /// write, bar our writer id ([`stamp`](Self::stamp)).
    fn forward(&self, change: &[u8], out: &mut [u8]) -> Result<usize, Self::Error>;

    /// Writes to `out` the request that re-creates the entry a dump record
    /// of `table` describes, without its usage counters (a snapshot's
    /// ADD, and the form sweeps and digests read).
    fn dump_to_request(
        &self,
        table: Table,
        record: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Self::Error>;

    /// [`dump_to_request`](Self::dump_to_request) keeping what it drops:
    /// the planted bug `snapshot_keeps_counters` (OpenBSD refuses such an
    /// ADD).
    fn dump_to_request_with_counters(
        &self,
        table: Table,
        record: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Self::Error> {
        self.dump_to_request(table, record, out)
    }

    /// Whether the filter lets an entry (a dump record as
    /// [`dump_to_request`](Self::dump_to_request) rewrote it) be
    /// synchronised: snapshots send, sweeps delete and digests count only
    /// these.
    fn syncs(&self, entry: &[u8], scope: &Scope<'_>) -> bool;

    /// Writes to `out` the request that deletes the entry `entry` (as
    /// [`dump_to_request`](Self::dump_to_request) wrote it) describes,
    /// carrying our writer id and `seq`.
    fn delete_request(
        &self,
        entry: &[u8],
        own: u32,
        seq: u32,
        out: &mut [u8],
    ) -> Result<usize, Self::Error>;

    /// Writes to `out` the request that empties the tables a legacy
    /// snapshot replaces (`flushmode startup`).
    fn flush_request(&self, own: u32, seq: u32, out: &mut [u8]) -> Result<usize, Self::Error>;

    /// If a slave may lack the entry the master's change `request`
    /// changes although the master held it — Linux: an `UPDSA` that
    /// completes a state the keying daemon reserved with `ALLOCSPI`, a
    /// larval state no watcher hears of (how charon installs every
    /// inbound SA) — writes to `out` one write that lands either way: the
    /// add (refused as a duplicate where the slave holds it), then
    /// `request`; returns its length. `None`: write `request` as it is.
    fn add_first(&self, _request: &[u8], _out: &mut [u8]) -> Option<usize> {
        None
    }

    /// Puts our writer id and `seq` into a request in place (a slave's
    /// kernel refuses, or mistakes for the master's, the id it arrived
    /// with; our watch recognises our own writes by it).
    fn stamp(&self, request: &mut [u8], own: u32, seq: u32);

    /// What `msg` (a request, or a kernel reply echoing one) is; `None`
    /// if unreadable.
    fn request(&self, msg: &[u8]) -> Option<Request>;

    /// If `reply` is the kernel's refusal of one of our (writer `own`)
    /// requests: that request and the errno.
    fn refusal(&self, reply: &[u8], own: u32) -> Option<(Request, u32)>;

    /// The length the header of the record `bytes` starts with declares
    /// (a v2 frame carries several back to back); `None` if `bytes` holds
    /// no header or the length is shorter than one.
    fn record_len(&self, bytes: &[u8]) -> Option<usize>;

    /// Writes to `out` the canonical bytes of an entry for digests;
    /// returns their length.
    fn digest_input(&self, record: &[u8], out: &mut [u8]) -> Result<usize, Self::Error>;

    /// If `msg`, one message of the kernel's watch, reports the outbound
    /// sequence number of an SA (Linux: a replay event): the SA and the
    /// number. Only numbers above 0 are reported (an inbound SA's events
    /// carry 0). The default reports none: OpenBSD's pfsync(4) carries
    /// replay counters between carp peers itself.
    fn outbound_seq(&self, msg: &[u8]) -> Option<(Self::SaKey, u64)> {
        let _ = msg;
        None
    }

    /// The outbound sequence number a record from the master (a snapshot
    /// record or a forwarded change, as [`to_request`](Self::to_request)
    /// wrote it) gives an SA, if above 0: a slave keeps it beside those
    /// carried, since a snapshot's add of an SA it holds already is
    /// refused and leaves its kernel's number behind.
    fn record_seq(&self, record: &[u8]) -> Option<(Self::SaKey, u64)> {
        let _ = record;
        None
    }

    /// Writes to `out` the request that moves the outbound sequence
    /// number of the SA the SADB dump record `record` describes to
    /// `margin` past the larger of its own and `carried` (the last one its
    /// old master reported), carrying our writer id and `seq`; `Ok(None)`
    /// if it is no outbound SA to move. The default moves nothing.
    fn seq_jump(
        &self,
        record: &[u8],
        carried: Option<u64>,
        margin: u64,
        own: u32,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Option<usize>, Self::Error> {
        let _ = (record, carried, margin, own, seq, out);
        Ok(None)
    }

    /// Writes to `out` the request that gives the SA a change the master
    /// forwards adds (as its kernel reported it) the replay-event
    /// thresholds that keep the numbers it carries within `margin`
    /// (to be [`stamp`](Self::stamp)ed); `None` for other changes. The
    /// default writes none (a dialect that carries no numbers).
    fn seq_thresholds(&self, change: &[u8], margin: u64, out: &mut [u8]) -> Option<usize> {
        let _ = (change, margin, out);
        None
    }

    /// If the SADB dump record `record` starts a bundle: `Some`, with the
    /// SA the bundle applies next if it is readable.
    fn group_of(&self, record: &[u8]) -> Option<Option<Self::SaKey>> {
        let _ = record;
        None
    }

    /// Writes to `out` the request that re-creates the bundle `record`
    /// starts, carrying the record's own writer id and sequence.
    fn group_request(&self, record: &[u8], out: &mut [u8]) -> Option<usize> {
        let _ = (record, out);
        None
    }

    /// Whether a snapshot must leave the bundle `record` starts to the
    /// stream: `changes` (those recorded since the snapshot began) add or
    /// move one of its SAs, or they cannot be told apart.
    fn group_touched<'c>(&self, record: &[u8], changes: impl Iterator<Item = &'c [u8]>) -> bool {
        let _ = (record, changes);
        true
    }
}

/// Why OpenBSD's filter does not forward a change: the change's type (for
/// the log line) and the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenBsdSkip {
    /// The filter's decision on a message of this type.
    Filtered(u8, SkipReason),
    /// The change cannot be read.
    Malformed(PfkeyError),
}

impl Display for OpenBsdSkip {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenBsdSkip::Filtered(t, why) => write!(f, "{}: {why}", msg_type_name(*t)),
            OpenBsdSkip::Malformed(e) => write!(f, "{e}"),
        }
    }
}

/// OpenBSD's PF_KEY, as [`crate::pfkey`] reads it: the dialect of the node
/// today.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenBsd;

fn op_of(msg_type: u8) -> Op {
    match msg_type {
        SADB_ADD => Op::Add,
        SADB_UPDATE => Op::Update,
        SADB_DELETE => Op::Delete,
        SADB_X_DELFLOW => Op::DeletePolicy,
        SADB_X_GRPSPIS => Op::Group,
        _ => Op::Other,
    }
}

impl Dialect for OpenBsd {
    const ID: KernelDialect = KernelDialect::OpenBsd;
    type SaKey = SaKey;
    type PolicyKey = FlowKey;
    type Skip = OpenBsdSkip;
    type Error = PfkeyError;
    type Seqs = crate::node::outseq::NoSeqs;

    /// A promiscuous copy carries the request another process wrote; our
    /// own requests carry our pid; [`filter`] decides the rest.
    fn classify<'a>(&self, msg: &'a [u8], scope: &Scope<'_>) -> Classified<'a, OpenBsdSkip> {
        let Some(inner) = unwrap_promisc(msg) else {
            return Classified::Reply;
        };
        let m = match Msg::parse(inner) {
            Ok(m) => m,
            Err(e) => return Classified::Malformed(OpenBsdSkip::Malformed(e)),
        };
        if m.pid() == scope.own {
            return Classified::Own;
        }
        match filter(&m, &scope.policy, scope.peers) {
            Verdict::Sync => Classified::Sync(inner),
            Verdict::Skip(why) => Classified::Skip(OpenBsdSkip::Filtered(m.msg_type(), why)),
        }
    }

    /// An SA if the message names one, else a flow (an SA's DELETE and a
    /// flow's X_DELFLOW alike).
    fn identity(&self, record: &[u8]) -> Option<Identity<SaKey, FlowKey>> {
        let m = Msg::parse(record).ok()?;
        if let Some(k) = sa_key(&m) {
            return Some(Identity::Sa(k));
        }
        flow_key(&m).map(Identity::Policy)
    }

    /// Addresses as 16 bytes (IPv4 mapped) after a family byte, numbers
    /// big-endian; a leading 1 (SA) or 2 (flow).
    fn identity_bytes(&self, id: &Identity<SaKey, FlowKey>, out: &mut [u8; IDENTITY_MAX]) -> usize {
        fn ip(out: &mut [u8], at: &mut usize, a: IpAddr) {
            let b = match a {
                IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
                IpAddr::V6(v) => v.octets(),
            };
            out[*at] = u8::from(a.is_ipv6());
            out[*at + 1..*at + 17].copy_from_slice(&b);
            *at += 17;
        }
        match id {
            Identity::Sa(k) => {
                let b = match k.dst {
                    IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
                    IpAddr::V6(v) => v.octets(),
                };
                out[0] = 1;
                out[1] = k.satype;
                out[2..6].copy_from_slice(&k.spi.to_be_bytes());
                out[6..8].copy_from_slice(&k.rdomain.to_be_bytes());
                out[8] = u8::from(k.dst.is_ipv6());
                out[9..25].copy_from_slice(&b);
                25
            }
            Identity::Policy(k) => {
                out[0] = 2;
                out[1] = k.direction;
                out[2] = k.proto;
                out[3..5].copy_from_slice(&k.rdomain.to_be_bytes());
                let mut at = 5;
                for s in [k.src, k.src_mask, k.dst, k.dst_mask] {
                    ip(out, &mut at, s.ip);
                    out[at..at + 2].copy_from_slice(&s.port.to_be_bytes());
                    at += 2;
                }
                at
            }
        }
    }

    fn to_request(&self, record: &[u8], out: &mut [u8]) -> Result<usize, PfkeyError> {
        for_slave(record, out)
    }

    /// An UPDATE goes as [`for_slave`] rewrites it (a larval completion
    /// becomes an ADD: the slaves never saw the larval SA; a move stays an
    /// UPDATE minus what it may not carry); the rest as it was written.
    fn forward(&self, change: &[u8], out: &mut [u8]) -> Result<usize, PfkeyError> {
        if Msg::parse(change).is_ok_and(|m| m.msg_type() == SADB_UPDATE) {
            return for_slave(change, out);
        }
        let n = change.len().min(out.len());
        out[..n].copy_from_slice(&change[..n]);
        Ok(n)
    }

    fn dump_to_request(
        &self,
        table: Table,
        record: &[u8],
        out: &mut [u8],
    ) -> Result<usize, PfkeyError> {
        match table {
            Table::Sadb => dump_to_add(record, out),
            Table::Spd => spd_dump_to_addflow(record, out),
        }
    }

    #[cfg(feature = "planted-bugs")]
    fn dump_to_request_with_counters(
        &self,
        table: Table,
        record: &[u8],
        out: &mut [u8],
    ) -> Result<usize, PfkeyError> {
        match table {
            Table::Sadb => crate::pfkey::dump_to_add_with_counters(record, out),
            Table::Spd => spd_dump_to_addflow(record, out),
        }
    }

    fn syncs(&self, entry: &[u8], scope: &Scope<'_>) -> bool {
        Msg::parse(entry).is_ok_and(|m| filter(&m, &scope.policy, scope.peers) == Verdict::Sync)
    }

    /// A DELETE for an SA, an X_DELFLOW for a flow.
    fn delete_request(
        &self,
        entry: &[u8],
        own: u32,
        seq: u32,
        out: &mut [u8],
    ) -> Result<usize, PfkeyError> {
        let m = Msg::parse(entry)?;
        match m.msg_type() {
            SADB_X_ADDFLOW | SADB_X_SPDDUMP => build_delflow(&m, seq, own, out),
            _ => build_delete(&m, seq, own, out),
        }
    }

    /// One FLUSH of every SA type (and with them every flow).
    fn flush_request(&self, own: u32, seq: u32, out: &mut [u8]) -> Result<usize, PfkeyError> {
        build_flush(SADB_SATYPE_UNSPEC, seq, own, out)
    }

    fn stamp(&self, request: &mut [u8], own: u32, seq: u32) {
        set_pid_seq(request, own, seq)
    }

    fn request(&self, msg: &[u8]) -> Option<Request> {
        let t = Msg::parse(msg).ok()?.msg_type();
        Some(Request {
            op: op_of(t),
            name: msg_type_name(t),
        })
    }

    /// The kernel answers the writer with its request's header, errno set.
    fn refusal(&self, reply: &[u8], own: u32) -> Option<(Request, u32)> {
        let m = Msg::parse(reply).ok()?;
        if m.pid() != own || m.errno() == 0 {
            return None;
        }
        let t = m.msg_type();
        let r = Request {
            op: op_of(t),
            name: msg_type_name(t),
        };
        Some((r, u32::from(m.errno())))
    }

    /// `sadb_msg_len`, in 8-byte units.
    fn record_len(&self, bytes: &[u8]) -> Option<usize> {
        let b = bytes.get(4..6)?;
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]])) * CHUNK;
        (len >= HDR_LEN).then_some(len)
    }

    fn digest_input(&self, record: &[u8], out: &mut [u8]) -> Result<usize, PfkeyError> {
        canonical_digest_input(&Msg::parse(record)?, out)
    }

    /// A record carrying X_SA2, X_DST2 and X_SATYPE2 starts a bundle.
    fn group_of(&self, record: &[u8]) -> Option<Option<SaKey>> {
        let m = Msg::parse(record).ok()?;
        is_grouped(&m).then(|| next_key(&m))
    }

    fn group_request(&self, record: &[u8], out: &mut [u8]) -> Option<usize> {
        let m = Msg::parse(record).ok()?;
        build_group(&m, m.seq(), m.pid(), out).ok()
    }

    /// An ADD or UPDATE of either SA (by type and SPI: a move changes the
    /// destination) among `changes`.
    fn group_touched<'c>(
        &self,
        record: &[u8],
        mut changes: impl Iterator<Item = &'c [u8]>,
    ) -> bool {
        let Ok(r) = Msg::parse(record) else {
            return true;
        };
        let (Some(k1), Some(k2)) = (sa_key(&r), next_key(&r)) else {
            return true;
        };
        changes.any(|d| {
            let Ok(m) = Msg::parse(d) else { return false };
            if !matches!(m.msg_type(), SADB_ADD | SADB_UPDATE) {
                return false;
            }
            sa_key(&m).is_some_and(|k| {
                [k1, k2]
                    .iter()
                    .any(|x| x.satype == k.satype && x.spi == k.spi)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pfkey::consts::*;
    use crate::pfkey::testutil::*;
    use crate::state::FlushMode;
    use std::vec::Vec;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn promisc(inner: &[u8], writer: u32) -> Vec<u8> {
        let mut v = TestMsg::new(SADB_X_PROMISC, 0).seq(writer).build();
        v.extend_from_slice(inner);
        fix_len(&mut v);
        v
    }

    fn esp_add(spi: u32, pid: u32, state: u8) -> Vec<u8> {
        TestMsg::new(SADB_ADD, SADB_SATYPE_ESP)
            .pid(pid)
            .sa(spi, state, 2, 12)
            .addr(SADB_EXT_ADDRESS_SRC, ip("192.0.2.1"), 0)
            .addr(SADB_EXT_ADDRESS_DST, ip("192.0.2.2"), 0)
            .key(SADB_EXT_KEY_ENCRYPT, 128, &[7; 16])
            .lifetime(SADB_EXT_LIFETIME_CURRENT, 0, 99, 5, 6)
            .build()
    }

    fn scope(peers: &[IpAddr], skipslave: bool) -> Scope<'_> {
        Scope {
            policy: FilterPolicy {
                flushmode: FlushMode::Startup,
                skipslave,
            },
            peers,
            own: 77,
        }
    }

    #[test]
    fn openbsd_classifies_as_the_node_does() {
        let d = OpenBsd;
        let add = esp_add(0x1000, 500, SADB_SASTATE_MATURE);
        let s = scope(&[], false);
        assert_eq!(
            d.classify(&promisc(&add, 500), &s),
            Classified::Sync(&add[..])
        );
        // Our own write (pid 77) coming back.
        let ours = esp_add(0x1000, 77, SADB_SASTATE_MATURE);
        assert_eq!(d.classify(&promisc(&ours, 77), &s), Classified::Own);
        // A kernel reply is not a promiscuous copy.
        assert_eq!(d.classify(&add, &s), Classified::Reply);
        let larval = esp_add(0x1000, 500, SADB_SASTATE_LARVAL);
        assert_eq!(
            d.classify(&promisc(&larval, 500), &s),
            Classified::Skip(OpenBsdSkip::Filtered(SADB_ADD, SkipReason::Larval))
        );
        let peers = [ip("192.0.2.2")];
        assert_eq!(
            d.classify(&promisc(&add, 500), &scope(&peers, true)),
            Classified::Skip(OpenBsdSkip::Filtered(
                SADB_ADD,
                SkipReason::Peer(ip("192.0.2.2"))
            ))
        );
        let mut bad = promisc(&add, 500);
        bad[16 + 16] = 0xff; // the first extension's length
        assert!(matches!(
            d.classify(&bad, &s),
            Classified::Skip(OpenBsdSkip::Filtered(_, SkipReason::Malformed(_)))
        ));
    }

    #[test]
    fn openbsd_identity_rewrite_and_digest_delegate() {
        let d = OpenBsd;
        let add = esp_add(0x1000, 500, SADB_SASTATE_MATURE);
        let Some(Identity::Sa(k)) = d.identity(&add) else {
            panic!("an SA names an SA");
        };
        assert_eq!(Some(k), sa_key(&Msg::parse(&add).unwrap()));
        let fl = TestMsg::new(SADB_X_ADDFLOW, SADB_SATYPE_ESP)
            .flow(
                SADB_X_FLOW_TYPE_REQUIRE,
                1,
                0,
                ip("10.0.0.0"),
                ip("10.1.0.0"),
            )
            .build();
        assert!(matches!(d.identity(&fl), Some(Identity::Policy(_))));
        let flush = TestMsg::new(SADB_FLUSH, 0).build();
        assert_eq!(d.identity(&flush), None);

        let mut a = [0u8; 512];
        let mut b = [0u8; 512];
        let n = d.to_request(&add, &mut a).unwrap();
        let m = for_slave(&add, &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        // The digest ignores the counters: master and slave copies agree.
        let used = TestMsg::new(SADB_ADD, SADB_SATYPE_ESP)
            .pid(9)
            .sa(0x1000, SADB_SASTATE_MATURE, 2, 12)
            .addr(SADB_EXT_ADDRESS_SRC, ip("192.0.2.1"), 0)
            .addr(SADB_EXT_ADDRESS_DST, ip("192.0.2.2"), 0)
            .key(SADB_EXT_KEY_ENCRYPT, 128, &[7; 16])
            .lifetime(SADB_EXT_LIFETIME_CURRENT, 0, 123_456, 5, 6)
            .build();
        let n = d.digest_input(&add, &mut a).unwrap();
        let m = d.digest_input(&used, &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        assert!(d.digest_input(&flush, &mut a).is_err());
    }

    fn grouped_dump(spi: u32, spi2: u32) -> Vec<u8> {
        let mut sa2 = [0u8; 12];
        sa2[..4].copy_from_slice(&spi2.to_be_bytes());
        TestMsg::new(SADB_DUMP, SADB_SATYPE_ESP)
            .seq(3)
            .pid(4)
            .sa(spi, SADB_SASTATE_MATURE, 3, 12)
            .addr(SADB_EXT_ADDRESS_SRC, ip("192.0.2.1"), 0)
            .addr(SADB_EXT_ADDRESS_DST, ip("192.0.2.2"), 0)
            .key(SADB_EXT_KEY_ENCRYPT, 128, &[2; 16])
            .ext(SADB_X_EXT_SA2, &sa2)
            .addr(SADB_X_EXT_DST2, ip("192.0.2.2"), 0)
            .proto(SADB_X_EXT_SATYPE2, SADB_SATYPE_AH, 0)
            .build()
    }

    fn flow_dump() -> Vec<u8> {
        TestMsg::new(SADB_X_SPDDUMP, SADB_SATYPE_ESP)
            .flow(
                SADB_X_FLOW_TYPE_REQUIRE,
                1,
                0,
                ip("10.0.0.0"),
                ip("10.1.0.0"),
            )
            .build()
    }

    #[test]
    fn openbsd_requests_are_the_pfkey_builders() {
        let d = OpenBsd;
        let mut a = [0u8; 1024];
        let mut b = [0u8; 1024];
        // Forwarded: an UPDATE rewritten, the rest as written.
        let upd = TestMsg::new(SADB_UPDATE, SADB_SATYPE_ESP)
            .pid(500)
            .sa(0x1000, SADB_SASTATE_MATURE, 2, 12)
            .addr(SADB_EXT_ADDRESS_SRC, ip("192.0.2.1"), 0)
            .addr(SADB_EXT_ADDRESS_DST, ip("192.0.2.2"), 0)
            .lifetime(SADB_EXT_LIFETIME_CURRENT, 0, 99, 5, 6)
            .build();
        let n = d.forward(&upd, &mut a).unwrap();
        let m = for_slave(&upd, &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        assert_ne!(a[..n], upd[..], "the UPDATE lost its counters");
        let add = esp_add(0x1000, 500, SADB_SASTATE_MATURE);
        let n = d.forward(&add, &mut a).unwrap();
        assert_eq!(a[..n], add[..]);

        // Dump records: an SA's ADD, a flow's X_ADDFLOW; their deletes.
        let rec = grouped_dump(0x2000, 0x3000);
        let n = d.dump_to_request(Table::Sadb, &rec, &mut a).unwrap();
        let m = dump_to_add(&rec, &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        let entry = a[..n].to_vec();
        let n = d.delete_request(&entry, 77, 9, &mut a).unwrap();
        let m = build_delete(&Msg::parse(&entry).unwrap(), 9, 77, &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        let fl = flow_dump();
        let n = d.dump_to_request(Table::Spd, &fl, &mut a).unwrap();
        let m = spd_dump_to_addflow(&fl, &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        let entry = a[..n].to_vec();
        let n = d.delete_request(&entry, 77, 9, &mut a).unwrap();
        let m = build_delflow(&Msg::parse(&entry).unwrap(), 9, 77, &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        let s = scope(&[], false);
        assert!(d.syncs(&entry, &s));
        assert!(!d.syncs(&entry[..8], &s));

        let n = d.flush_request(77, 9, &mut a).unwrap();
        let m = build_flush(SADB_SATYPE_UNSPEC, 9, 77, &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);

        let mut x = add.clone();
        let mut y = add.clone();
        d.stamp(&mut x, 77, 9);
        set_pid_seq(&mut y, 77, 9);
        assert_eq!(x, y);
        assert_eq!(Msg::parse(&x).unwrap().pid(), 77);
    }

    #[test]
    fn openbsd_requests_refusals_and_lengths() {
        let d = OpenBsd;
        let del = TestMsg::new(SADB_DELETE, SADB_SATYPE_ESP).build();
        assert_eq!(
            d.request(&del),
            Some(Request {
                op: Op::Delete,
                name: "DELETE"
            })
        );
        assert_eq!(d.request(&del[..8]), None);
        let refused = TestMsg::new(SADB_X_DELFLOW, 0).pid(77).errno(3).build();
        let (r, errno) = d.refusal(&refused, 77).unwrap();
        assert_eq!((r.op, errno), (Op::DeletePolicy, 3));
        assert_eq!(d.refusal(&refused, 78), None, "another writer's");
        let ok = TestMsg::new(SADB_ADD, 0).pid(77).build();
        assert_eq!(d.refusal(&ok, 77), None, "no errno");
        let add = esp_add(0x1000, 500, SADB_SASTATE_MATURE);
        assert_eq!(d.record_len(&add), Some(add.len()));
        assert_eq!(d.record_len(&add[..5]), None);
        assert_eq!(
            d.record_len(&[0, 0, 0, 0, 1, 0]),
            None,
            "shorter than a header"
        );
    }

    #[test]
    fn openbsd_identity_bytes_tell_entries_apart() {
        let d = OpenBsd;
        let mut k1 = [0u8; IDENTITY_MAX];
        let mut k2 = [0u8; IDENTITY_MAX];
        let a = esp_add(0x1000, 500, SADB_SASTATE_MATURE);
        let n = d.key(&a, &mut k1).unwrap();
        assert_eq!(n, 25);
        assert_eq!(k1[..6], [1, SADB_SATYPE_ESP, 0, 0, 0x10, 0]);
        // The same SA in its DELETE, pid and counters aside: equal bytes.
        let del = TestMsg::new(SADB_DELETE, SADB_SATYPE_ESP)
            .sa(0x1000, SADB_SASTATE_MATURE, 0, 0)
            .addr(SADB_EXT_ADDRESS_DST, ip("192.0.2.2"), 0)
            .build();
        assert_eq!(d.key(&del, &mut k2), Some(n));
        assert_eq!(k1[..n], k2[..n]);
        let other = esp_add(0x1001, 500, SADB_SASTATE_MATURE);
        d.key(&other, &mut k2).unwrap();
        assert_ne!(k1[..n], k2[..n]);
        let f = d.key(&flow_dump(), &mut k2).unwrap();
        assert_eq!((k2[0], f), (2, 5 + 4 * 19));
    }

    #[test]
    fn openbsd_bundles() {
        let d = OpenBsd;
        let rec = grouped_dump(0x2000, 0x3000);
        let next = d.group_of(&rec).expect("grouped");
        assert_eq!(
            next.map(|k| (k.satype, k.spi)),
            Some((SADB_SATYPE_AH, 0x3000))
        );
        let plain = esp_add(0x1000, 500, SADB_SASTATE_MATURE);
        assert_eq!(d.group_of(&plain), None);
        let mut a = [0u8; 1024];
        let mut b = [0u8; 1024];
        let n = d.group_request(&rec, &mut a).unwrap();
        let m = build_group(&Msg::parse(&rec).unwrap(), 3, 4, &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        assert_eq!(d.request(&a[..n]).map(|r| r.op), Some(Op::Group));
        // Touched by an ADD of either SA, not by another SA's or a DELETE.
        let first = esp_add(0x2000, 500, SADB_SASTATE_MATURE);
        let second = TestMsg::new(SADB_ADD, SADB_SATYPE_AH)
            .sa(0x3000, SADB_SASTATE_MATURE, 2, 0)
            .addr(SADB_EXT_ADDRESS_DST, ip("192.0.2.9"), 0)
            .build();
        let del = TestMsg::new(SADB_DELETE, SADB_SATYPE_ESP)
            .sa(0x2000, SADB_SASTATE_MATURE, 0, 0)
            .addr(SADB_EXT_ADDRESS_DST, ip("192.0.2.2"), 0)
            .build();
        assert!(d.group_touched(&rec, [&plain[..], &first[..]].into_iter()));
        assert!(d.group_touched(&rec, [&second[..]].into_iter()));
        assert!(!d.group_touched(&rec, [&plain[..], &del[..]].into_iter()));
        assert!(!d.group_touched(&rec, core::iter::empty()));
    }

    #[test]
    fn the_hello_byte_names_the_dialect() {
        assert_eq!(KernelDialect::from_u8(0), Some(KernelDialect::OpenBsd));
        assert_eq!(KernelDialect::from_u8(1), Some(KernelDialect::LinuxXfrm));
        assert_eq!(KernelDialect::from_u8(2), None);
        assert_eq!(KernelDialect::default(), KernelDialect::OpenBsd);
        assert_eq!(OpenBsd::ID as u8, 0);
        assert_eq!(std::format!("{}", KernelDialect::LinuxXfrm), "Linux XFRM");
    }
}
