//! The XFRM kernel dialect: what the core needs per message
//! ([`Dialect`]), for Linux's netlink records.
//!
//! * **Identity**: the kernel's own rules ([`SaKey`]: destination, SPI,
//!   protocol, family, mark; [`PolicyKey`]: selector, direction, mark,
//!   interface id), as [`super::view`] reads them from adds, updates,
//!   deletes and expiries alike.
//! * **Filter**: an event whose header names our socket's port is our own
//!   write; larval states (no algorithm yet), per-socket policies and soft
//!   expiries are not changes a slave makes; `flushmode never` keeps
//!   flushes; skipslave drops states whose endpoints, and policies whose
//!   selector addresses, are a peer's.
//! * **Rewrite**: [`super::rewrite`]'s requests (adds with counters,
//!   replaces, deletes by identity, flushes); policies always as
//!   add-or-replace (`UPDPOLICY`), as OpenBSD's `X_ADDFLOW` does.
//! * **Digest form**: the record as an add (`NEWSA`/`NEWPOLICY`, header
//!   zeroed) with what differs between a master's entry and its copy
//!   zeroed or left out: current lifetimes, statistics, the acquire
//!   sequence, a policy's index (the receiver may give another), the
//!   replay state (it moves with every packet), and the attributes that
//!   only mean something on one machine; attributes in ascending type
//!   order, so equal entries give equal bytes whatever message carried
//!   them.

use core::fmt;
use core::net::IpAddr;

use crate::dialect::{
    Classified, Dialect, Identity, KernelDialect, Op, Request, Scope, IDENTITY_MAX,
};
use crate::node::Table;
use crate::state::FlushMode;

use super::consts::{attr, msg, pol_off, sa_off, LIFETIME_CUR_LEN, USERSA_INFO_LEN};
use super::identity::{PolicyKey, SaKey};
use super::nl::{self, Attrs, Msg, NlError, Writer, HDR_LEN, NLMSG_DONE, NLMSG_ERROR};
use super::rewrite;
use super::view::{addr_at, PolicyView, SaView};

/// The XFRM dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Xfrm;

/// Why an XFRM change is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a change of the tables (acquires, replay events, policy
    /// expiries, unknown types).
    NotForwarded(u16),
    /// Unreadable.
    Malformed(NlError),
    /// A larval state: an SPI reserved mid-negotiation, without keys.
    Larval,
    /// A soft expiry: the keying daemon rekeys; the state stays.
    SoftExpire,
    /// A per-socket policy: it belongs to a process on this machine.
    SocketPolicy,
    /// A flush while `flushmode never`.
    FlushNever,
    /// skipslave: an endpoint or selector address is a peer's.
    Peer(IpAddr),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NotForwarded(k) => write!(f, "XFRM message type {k} is not forwarded"),
            Skip::Malformed(e) => write!(f, "malformed: {e}"),
            Skip::Larval => f.write_str("larval state"),
            Skip::SoftExpire => f.write_str("soft expiry"),
            Skip::SocketPolicy => f.write_str("per-socket policy"),
            Skip::FlushNever => f.write_str("flushmode never"),
            Skip::Peer(ip) => write!(f, "skipslave: involves peer {ip}"),
        }
    }
}

/// Why a record cannot be rewritten or digested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XfrmError {
    /// Unreadable.
    Malformed(NlError),
    /// A message type that names no entry to write.
    WrongType(u16),
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
    },
    /// A 32-bit sequence number would pass 2^32 - 1.
    SeqExhausted(u64),
}

impl fmt::Display for XfrmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XfrmError::Malformed(e) => write!(f, "malformed: {e}"),
            XfrmError::WrongType(k) => write!(f, "XFRM message type {k} is no entry"),
            XfrmError::BufferTooSmall { need } => write!(f, "needs a {need}-byte buffer"),
            XfrmError::SeqExhausted(n) => {
                write!(f, "sequence number {n} does not fit a 32-bit state")
            }
        }
    }
}

impl From<NlError> for XfrmError {
    fn from(e: NlError) -> Self {
        match e {
            NlError::NoRoom { need } => XfrmError::BufferTooSmall { need },
            e => XfrmError::Malformed(e),
        }
    }
}

/// Attributes left out of the digest form: local to one machine, or
/// counters that move with traffic.
const NOT_DIGESTED: [u16; 8] = [
    attr::LASTUSED,
    attr::OFFLOAD_DEV,
    attr::PAD,
    attr::LTIME_VAL,
    attr::SA,
    attr::POLICY,
    attr::REPLAY_VAL,
    attr::REPLAY_ESN_VAL,
];

fn peer_of(peers: &[IpAddr], addrs: [Option<IpAddr>; 2]) -> Option<IpAddr> {
    addrs.into_iter().flatten().find(|a| peers.contains(a))
}

/// A policy's selector addresses (destination at 0, source at 16; the
/// family at 40).
fn selector_addrs(p: &PolicyView<'_>) -> [Option<IpAddr>; 2] {
    let family = p.family();
    [
        addr_at(p.info, pol_off::SEL, family),
        addr_at(p.info, pol_off::SEL + 16, family),
    ]
}

fn state_check(sa: &SaView<'_>, scope: &Scope<'_>) -> Result<(), Skip> {
    if scope.policy.skipslave {
        if let Some(p) = peer_of(scope.peers, [sa.saddr(), sa.daddr()]) {
            return Err(Skip::Peer(p));
        }
    }
    Ok(())
}

fn policy_check(p: &PolicyView<'_>, scope: &Scope<'_>) -> Result<(), Skip> {
    if p.is_socket_policy() {
        return Err(Skip::SocketPolicy);
    }
    if scope.policy.skipslave {
        if let Some(a) = peer_of(scope.peers, selector_addrs(p)) {
            return Err(Skip::Peer(a));
        }
    }
    Ok(())
}

fn classify_msg(m: &Msg<'_>, scope: &Scope<'_>) -> Result<(), Skip> {
    match m.kind() {
        msg::NEWSA | msg::UPDSA => {
            let sa = SaView::from_new(m).map_err(Skip::Malformed)?;
            if !sa.is_complete() {
                return Err(Skip::Larval);
            }
            state_check(&sa, scope)
        }
        msg::DELSA => state_check(&SaView::from_del(m).map_err(Skip::Malformed)?, scope),
        msg::EXPIRE => {
            let (sa, hard) = SaView::from_expire(m).map_err(Skip::Malformed)?;
            if !hard {
                return Err(Skip::SoftExpire);
            }
            state_check(&sa, scope)
        }
        msg::NEWPOLICY | msg::UPDPOLICY => {
            policy_check(&PolicyView::from_new(m).map_err(Skip::Malformed)?, scope)
        }
        msg::DELPOLICY => policy_check(&PolicyView::from_del(m).map_err(Skip::Malformed)?, scope),
        msg::FLUSHSA | msg::FLUSHPOLICY if scope.policy.flushmode == FlushMode::Never => {
            Err(Skip::FlushNever)
        }
        msg::FLUSHSA | msg::FLUSHPOLICY => Ok(()),
        k => Err(Skip::NotForwarded(k)),
    }
}

/// The digest form of a state or policy record: an add whose fixed
/// struct has the volatile fields zeroed, with the lasting attributes in
/// type order (attributes of one type keep their order), written to `out`.
fn digest_form(
    kind: u16,
    fixed_in: &[u8],
    attrs: Attrs<'_>,
    out: &mut [u8],
) -> Result<usize, NlError> {
    let mut copy = [0u8; USERSA_INFO_LEN];
    let fixed = copy.get_mut(..fixed_in.len()).ok_or(NlError::BadLength {
        len: fixed_in.len(),
        avail: USERSA_INFO_LEN,
    })?;
    fixed.copy_from_slice(fixed_in);
    let mut zero = |at: usize, len: usize| {
        if let Some(f) = fixed.get_mut(at..at + len) {
            f.fill(0);
        }
    };
    if kind == msg::NEWSA {
        zero(sa_off::CURLFT, LIFETIME_CUR_LEN);
        // stats (replay window drops, replay and integrity failures) and
        // the acquire sequence.
        zero(sa_off::STATS, 12);
        zero(sa_off::SEQ, 4);
    } else {
        zero(pol_off::CURLFT, LIFETIME_CUR_LEN);
        zero(pol_off::INDEX, 4);
    }
    for a in attrs.clone() {
        a?;
    }
    let kept = || {
        attrs
            .clone()
            .flatten()
            .filter(|a| !NOT_DIGESTED.contains(&a.kind))
    };
    let mut w = Writer::new(out, kind, 0);
    w.raw(fixed);
    // Types in ascending order without sorting into a heap: each pass
    // writes the attributes of the smallest type above the last written.
    let mut last: Option<u16> = None;
    while let Some(next) = kept()
        .map(|a| a.kind)
        .filter(|k| last.is_none_or(|l| *k > l))
        .min()
    {
        for a in kept().filter(|a| a.kind == next) {
            w.attr(a.kind, a.data);
        }
        last = Some(next);
    }
    w.finish()
}

/// The kernel's name of a message type, for log lines.
fn type_name(kind: u16) -> &'static str {
    match kind {
        msg::NEWSA => "XFRM_MSG_NEWSA",
        msg::DELSA => "XFRM_MSG_DELSA",
        msg::GETSA => "XFRM_MSG_GETSA",
        msg::NEWPOLICY => "XFRM_MSG_NEWPOLICY",
        msg::DELPOLICY => "XFRM_MSG_DELPOLICY",
        msg::GETPOLICY => "XFRM_MSG_GETPOLICY",
        msg::ACQUIRE => "XFRM_MSG_ACQUIRE",
        msg::EXPIRE => "XFRM_MSG_EXPIRE",
        msg::UPDPOLICY => "XFRM_MSG_UPDPOLICY",
        msg::UPDSA => "XFRM_MSG_UPDSA",
        msg::POLEXPIRE => "XFRM_MSG_POLEXPIRE",
        msg::FLUSHSA => "XFRM_MSG_FLUSHSA",
        msg::FLUSHPOLICY => "XFRM_MSG_FLUSHPOLICY",
        msg::NEWAE => "XFRM_MSG_NEWAE",
        msg::GETAE => "XFRM_MSG_GETAE",
        NLMSG_ERROR => "NLMSG_ERROR",
        NLMSG_DONE => "NLMSG_DONE",
        _ => "UNKNOWN",
    }
}

fn request_of(kind: u16) -> Request {
    let op = match kind {
        msg::NEWSA => Op::Add,
        msg::UPDSA => Op::Update,
        msg::DELSA => Op::Delete,
        msg::DELPOLICY => Op::DeletePolicy,
        msg::NEWAE => Op::Counters,
        _ => Op::Other,
    };
    Request {
        op,
        name: type_name(kind),
    }
}

impl Dialect for Xfrm {
    const ID: KernelDialect = KernelDialect::LinuxXfrm;
    /// `ENOENT`: `xfrm_get_policy` finds no policy to delete.
    const MISSING_POLICY: u32 = 2;
    type SaKey = SaKey;
    type PolicyKey = PolicyKey;
    type Skip = Skip;
    type Error = XfrmError;
    const CARRIES_SEQ: bool = true;
    const WRITE_GROWTH: usize = 2;
    type Seqs = crate::node::outseq::Carried;

    fn classify<'a>(&self, bytes: &'a [u8], scope: &Scope<'_>) -> Classified<'a, Skip> {
        let m = match Msg::new(bytes) {
            Ok(m) => m,
            Err(e) => return Classified::Malformed(Skip::Malformed(e)),
        };
        if matches!(m.kind(), NLMSG_ERROR | NLMSG_DONE) {
            return Classified::Reply;
        }
        // The kernel's own changes (expiries) carry port 0, never ours.
        if m.pid() == scope.own && scope.own != 0 {
            return Classified::Own;
        }
        match classify_msg(&m, scope) {
            Ok(()) => Classified::Sync(m.bytes()),
            Err(why @ Skip::Malformed(_)) => Classified::Malformed(why),
            Err(why) => Classified::Skip(why),
        }
    }

    fn identity(&self, record: &[u8]) -> Option<Identity<SaKey, PolicyKey>> {
        let m = Msg::new(record).ok()?;
        Some(match m.kind() {
            msg::NEWSA | msg::UPDSA => Identity::Sa(SaView::from_new(&m).ok()?.key()),
            msg::DELSA => Identity::Sa(SaView::from_del(&m).ok()?.key()),
            msg::EXPIRE => Identity::Sa(SaView::from_expire(&m).ok()?.0.key()),
            msg::NEWPOLICY | msg::UPDPOLICY => {
                Identity::Policy(PolicyView::from_new(&m).ok()?.key())
            }
            msg::DELPOLICY => Identity::Policy(PolicyView::from_del(&m).ok()?.key()),
            _ => return None,
        })
    }

    /// A tag byte (1: state, 2: policy), then the key's fields in a fixed
    /// layout (32 and 70 bytes).
    fn identity_bytes(
        &self,
        id: &Identity<SaKey, PolicyKey>,
        out: &mut [u8; IDENTITY_MAX],
    ) -> usize {
        match id {
            Identity::Sa(k) => {
                out[0] = 1;
                out[1] = k.proto;
                out[2..4].copy_from_slice(&k.family.to_be_bytes());
                out[4..20].copy_from_slice(&k.daddr);
                out[20..24].copy_from_slice(&k.spi.to_be_bytes());
                out[24..32].copy_from_slice(&k.mark.to_bytes());
                32
            }
            Identity::Policy(k) => {
                out[0] = 2;
                out[1] = k.dir;
                let end = 2 + k.sel.len();
                out[2..end].copy_from_slice(&k.sel);
                out[end..end + 8].copy_from_slice(&k.mark.to_bytes());
                out[end + 8..end + 12].copy_from_slice(&k.if_id.to_be_bytes());
                end + 12
            }
        }
    }

    /// A replay event's outbound number (`xfrm_replay_notify`, Linux 6.1
    /// `net/xfrm/xfrm_replay.c`): sent when a number moved by the state's
    /// threshold, or its timer ran with a change.
    fn outbound_seq(&self, msg: &[u8]) -> Option<(SaKey, u64)> {
        super::replay::event(msg)
            .filter(|(_, c)| c.oseq > 0)
            .map(|(k, c)| (k, c.oseq))
    }

    /// A state add or replace with its replay state, or the counters
    /// setter a forwarded replace is followed by.
    fn record_seq(&self, record: &[u8]) -> Option<(SaKey, u64)> {
        let m = Msg::new(record).ok()?;
        let (key, c) = match m.kind() {
            msg::NEWSA | msg::UPDSA => {
                let sa = SaView::from_new(&m).ok()?;
                (sa.key(), super::replay::counters(&sa.attrs)?)
            }
            _ => super::replay::event(record)?,
        };
        (c.oseq > 0).then_some((key, c.oseq))
    }

    fn seq_jump(
        &self,
        record: &[u8],
        carried: Option<u64>,
        margin: u64,
        own: u32,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Option<usize>, XfrmError> {
        use super::replay::JumpError;
        match super::replay::jump(record, carried, margin, out) {
            Ok(Some(n)) => {
                nl::set_seq_pid(&mut out[..n], seq, own);
                Ok(Some(n))
            }
            Ok(None) => Ok(None),
            Err(JumpError::Nl(e)) => Err(e.into()),
            Err(JumpError::Exhausted(n)) => Err(XfrmError::SeqExhausted(n)),
        }
    }

    /// An added state's thresholds (`XFRMA_REPLAY_THRESH`,
    /// `XFRMA_ETIMER_THRESH` in a `NEWAE`: `xfrm_new_ae` and
    /// `xfrm_update_ae_params`, Linux 6.1 `net/xfrm/xfrm_user.c`): the
    /// kernel's default reports every 2 packets, and every second while
    /// a state sends (`replay::event_threshold`).
    fn seq_thresholds(&self, change: &[u8], margin: u64, out: &mut [u8]) -> Option<usize> {
        // Both adds: the keying daemon completes an inbound state it
        // allocated the SPI of with UPDSA. Inbound states report too (when
        // their inbound number moved by the threshold): events the node
        // reads only to drop.
        super::replay::thresholds(change, margin, out).ok()?
    }

    /// Events are recorded as the requests a slave writes.
    fn forward(&self, change: &[u8], out: &mut [u8]) -> Result<usize, XfrmError> {
        self.to_request(change, out)
    }

    /// Dump records are `NEWSA`/`NEWPOLICY` messages already.
    fn dump_to_request(
        &self,
        _table: Table,
        record: &[u8],
        out: &mut [u8],
    ) -> Result<usize, XfrmError> {
        self.to_request(record, out)
    }

    fn syncs(&self, entry: &[u8], scope: &Scope<'_>) -> bool {
        Msg::new(entry).is_ok_and(|m| classify_msg(&m, scope).is_ok())
    }

    fn delete_request(
        &self,
        entry: &[u8],
        own: u32,
        seq: u32,
        out: &mut [u8],
    ) -> Result<usize, XfrmError> {
        let m = Msg::new(entry)?;
        let n = match m.kind() {
            msg::NEWSA | msg::UPDSA => rewrite::state_delete(&SaView::from_new(&m)?, out)?,
            msg::NEWPOLICY | msg::UPDPOLICY => {
                rewrite::policy_delete(&PolicyView::from_new(&m)?, out)?
            }
            k => return Err(XfrmError::WrongType(k)),
        };
        nl::set_seq_pid(&mut out[..n], seq, own);
        Ok(n)
    }

    /// The states of every protocol (the legacy protocol, which alone
    /// sends it, is OpenBSD's).
    fn flush_request(&self, own: u32, seq: u32, out: &mut [u8]) -> Result<usize, XfrmError> {
        let n = rewrite::flush_states(0, out)?;
        nl::set_seq_pid(&mut out[..n], seq, own);
        Ok(n)
    }

    /// Every message of the write (an [`add_first`](Self::add_first)
    /// pair carries two).
    fn stamp(&self, request: &mut [u8], own: u32, seq: u32) {
        let mut at = 0;
        while let Some(m) = request.get_mut(at..) {
            let Some(len) = self.record_len(m).filter(|&l| l <= m.len()) else {
                break;
            };
            nl::set_seq_pid(&mut m[..len], seq, own);
            at += nl::align(len);
        }
    }

    /// An `UPDSA`: Linux refuses the update of a state it lacks (`ESRCH`,
    /// `xfrm_state_update`), and a slave never gets the larval state the
    /// master's update completes (`ALLOCSPI` is answered to its caller
    /// only, `xfrm_alloc_userspi`). So `NEWSA` first, in the same write:
    /// it adds the state where the slave lacks it (the update then
    /// changes nothing) and is refused with `EEXIST` where the slave holds
    /// it (the update then applies).
    fn add_first(&self, request: &[u8], out: &mut [u8]) -> Option<usize> {
        let m = Msg::new(request).ok()?;
        if m.kind() != msg::UPDSA {
            return None;
        }
        let n = m.bytes().len();
        let first = nl::align(n);
        let pair = out.get_mut(..first + n)?;
        pair[..n].copy_from_slice(m.bytes());
        pair[4..6].copy_from_slice(&msg::NEWSA.to_ne_bytes());
        pair[n..first].fill(0);
        pair[first..].copy_from_slice(m.bytes());
        Some(first + n)
    }

    fn request(&self, m: &[u8]) -> Option<Request> {
        Msg::new(m).ok().map(|m| request_of(m.kind()))
    }

    /// An `NLMSG_ERROR` with a non-zero errno, followed by the header of
    /// the request it refuses (whose port is ours).
    fn refusal(&self, reply: &[u8], own: u32) -> Option<(Request, u32)> {
        let m = Msg::new(reply).ok()?;
        let errno = m.error().filter(|&e| e != 0)?;
        let req = m.payload().get(4..4 + HDR_LEN)?;
        let kind = u16::from_ne_bytes([req[4], req[5]]);
        let pid = u32::from_ne_bytes([req[12], req[13], req[14], req[15]]);
        (pid == own).then(|| (request_of(kind), errno.unsigned_abs()))
    }

    /// `nlmsg_len`, in bytes.
    fn record_len(&self, bytes: &[u8]) -> Option<usize> {
        let b = bytes.get(..4)?;
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        (len >= HDR_LEN).then_some(len)
    }

    fn to_request(&self, record: &[u8], out: &mut [u8]) -> Result<usize, XfrmError> {
        let m = Msg::new(record)?;
        Ok(match m.kind() {
            msg::NEWSA => rewrite::state_write(&SaView::from_new(&m)?, false, out)?,
            msg::UPDSA => rewrite::state_write(&SaView::from_new(&m)?, true, out)?,
            msg::DELSA => rewrite::state_delete(&SaView::from_del(&m)?, out)?,
            msg::EXPIRE => rewrite::state_delete(&SaView::from_expire(&m)?.0, out)?,
            // A policy is always written add-or-replace (UPDPOLICY): a
            // slave may hold it already (a snapshot and the stream
            // overlap), and NEWPOLICY would be refused (EEXIST,
            // xfrm_policy_insert) where OpenBSD's X_ADDFLOW replaces.
            msg::NEWPOLICY | msg::UPDPOLICY => {
                rewrite::policy_write(&PolicyView::from_new(&m)?, true, out)?
            }
            msg::DELPOLICY => rewrite::policy_delete(&PolicyView::from_del(&m)?, out)?,
            msg::FLUSHSA => rewrite::flush_states(m.payload().first().copied().unwrap_or(0), out)?,
            msg::FLUSHPOLICY => rewrite::flush_policies(out)?,
            k => return Err(XfrmError::WrongType(k)),
        })
    }

    fn digest_input(&self, record: &[u8], out: &mut [u8]) -> Result<usize, XfrmError> {
        let m = Msg::new(record)?;
        Ok(match m.kind() {
            msg::NEWSA | msg::UPDSA => {
                let sa = SaView::from_new(&m)?;
                digest_form(msg::NEWSA, sa.info, sa.attrs, out)?
            }
            msg::NEWPOLICY | msg::UPDPOLICY => {
                let p = PolicyView::from_new(&m)?;
                digest_form(msg::NEWPOLICY, p.info, p.attrs, out)?
            }
            k => return Err(XfrmError::WrongType(k)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pfkey::FilterPolicy;
    use crate::xfrm::identity::Mark;
    use crate::xfrm::nl::{self, Builder, HDR_LEN};
    use crate::xfrm::testutil::*;
    use std::vec;
    use std::vec::Vec;

    fn req(f: impl FnOnce(&mut [u8]) -> Result<usize, NlError>) -> Vec<u8> {
        let mut b = [0u8; 2048];
        let n = f(&mut b).unwrap();
        b[..n].to_vec()
    }

    fn scope(peers: &[IpAddr], skipslave: bool, flushmode: FlushMode) -> Scope<'_> {
        Scope {
            policy: FilterPolicy {
                flushmode,
                skipslave,
            },
            peers,
            own: 4242,
        }
    }

    fn with_pid(mut b: Vec<u8>, pid: u32) -> Vec<u8> {
        nl::set_seq_pid(&mut b, 1, pid);
        b
    }

    #[test]
    fn node_requests() {
        let d = Xfrm;
        let mut out = [0u8; 4096];
        let (mut a, mut b) = ([0u8; IDENTITY_MAX], [0u8; IDENTITY_MAX]);
        // A dump record's request, its delete: the same state, our port.
        let rec = newsa(msg::NEWSA, 0x42);
        let n = d.dump_to_request(Table::Sadb, &rec, &mut out).unwrap();
        let add = out[..n].to_vec();
        assert!(d.syncs(&add, &scope(&[], false, FlushMode::Startup)));
        let n = d.delete_request(&add, 4242, 7, &mut out).unwrap();
        let del = Msg::new(&out[..n]).unwrap();
        assert_eq!((del.kind(), del.pid(), del.seq()), (msg::DELSA, 4242, 7));
        assert_eq!(d.record_len(&out[..n + 3]), Some(n));
        let k = d.key(&rec, &mut a).unwrap();
        assert_eq!(d.key(&delsa(0x42), &mut b), Some(k));
        assert_eq!(a[..k], b[..k]);
        let pol = newpolicy(msg::NEWPOLICY);
        let k = d.key(&pol, &mut a).unwrap();
        assert_eq!(d.key(&delpolicy(), &mut b), Some(k));
        assert_eq!((a[0], a[..k] == b[..k]), (2, true));
        // Our request refused: the error echoes its header.
        let mut refused = Builder::new(NLMSG_ERROR, 0)
            .raw(&(-3i32).to_ne_bytes())
            .raw(&out[..HDR_LEN])
            .finish();
        let (r, errno) = d.refusal(&refused, 4242).unwrap();
        assert_eq!((r.op, r.name, errno), (Op::Delete, "XFRM_MSG_DELSA", 3));
        assert_eq!(d.refusal(&refused, 1), None);
        refused[16..20].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(d.refusal(&refused, 4242), None, "an acknowledgement");
        let mut x = add.clone();
        d.stamp(&mut x, 9, 10);
        let m = Msg::new(&x).unwrap();
        assert_eq!((m.pid(), m.seq()), (9, 10));
        assert_eq!(d.group_of(&rec), None, "XFRM has no bundles");
        // An added state gets the node's replay-event thresholds; its
        // refusal is a counters request's.
        let n = d.seq_thresholds(&rec, 4096, &mut out).unwrap();
        d.stamp(&mut out[..n], 4242, 8);
        let m = Msg::new(&out[..n]).unwrap();
        assert_eq!((m.kind(), m.pid(), m.seq()), (msg::NEWAE, 4242, 8));
        assert_eq!(d.request(&out[..n]).map(|r| r.op), Some(Op::Counters));
        assert_eq!(d.seq_thresholds(&pol, 4096, &mut out), None, "a policy");
        assert_eq!(
            d.seq_thresholds(&delsa(0x42), 4096, &mut out),
            None,
            "a delete"
        );
    }

    #[test]
    fn classifies_events() {
        let d = Xfrm;
        let s = scope(&[], false, FlushMode::Startup);
        let add = newsa(msg::NEWSA, 0x42);
        assert_eq!(d.classify(&add, &s), Classified::Sync(&add[..]));
        let ours = with_pid(newsa(msg::NEWSA, 0x42), 4242);
        assert_eq!(d.classify(&ours, &s), Classified::Own);
        // Another writer's (charon's port) is forwarded.
        let charon = with_pid(newsa(msg::UPDSA, 0x42), 7001);
        assert!(matches!(d.classify(&charon, &s), Classified::Sync(_)));
        let del = delsa(0x42);
        assert!(matches!(d.classify(&del, &s), Classified::Sync(_)));
        // A larval state: an SPI reserved without algorithms.
        let mut info = [0u8; USERSA_INFO_LEN];
        info[sa_off::PROTO] = crate::xfrm::consts::IPPROTO_ESP;
        let larval = Builder::new(msg::NEWSA, 0).raw(&info).finish();
        assert_eq!(d.classify(&larval, &s), Classified::Skip(Skip::Larval));
        let pol = newpolicy(msg::NEWPOLICY);
        assert!(matches!(d.classify(&pol, &s), Classified::Sync(_)));
        let mut sock = newpolicy(msg::NEWPOLICY);
        sock[HDR_LEN + pol_off::DIR] = 4;
        assert_eq!(d.classify(&sock, &s), Classified::Skip(Skip::SocketPolicy));
        assert!(matches!(d.classify(&delpolicy(), &s), Classified::Sync(_)));
        // Flushes follow flushmode.
        let flush = Builder::new(msg::FLUSHSA, 0).raw(&[0]).finish();
        assert!(matches!(d.classify(&flush, &s), Classified::Sync(_)));
        let never = scope(&[], false, FlushMode::Never);
        assert_eq!(
            d.classify(&flush, &never),
            Classified::Skip(Skip::FlushNever)
        );
        // Not changes.
        let acquire = Builder::new(msg::ACQUIRE, 0).raw(&[0; 8]).finish();
        assert_eq!(
            d.classify(&acquire, &s),
            Classified::Skip(Skip::NotForwarded(msg::ACQUIRE))
        );
        let ack = Builder::new(NLMSG_ERROR, 0).raw(&[0; 20]).finish();
        assert_eq!(d.classify(&ack, &s), Classified::Reply);
        assert!(matches!(
            d.classify(&add[..10], &s),
            Classified::Malformed(Skip::Malformed(_))
        ));
        let mut short = newsa(msg::NEWSA, 1);
        short.truncate(HDR_LEN + 100);
        short[..4].copy_from_slice(&((HDR_LEN + 100) as u32).to_ne_bytes());
        assert!(matches!(
            d.classify(&short, &s),
            Classified::Malformed(Skip::Malformed(_))
        ));
    }

    #[test]
    fn skipslave_drops_what_involves_a_peer() {
        let d = Xfrm;
        let peers: [IpAddr; 1] = ["192.0.2.2".parse().unwrap()];
        let s = scope(&peers, true, FlushMode::Startup);
        let add = newsa(msg::NEWSA, 0x42);
        assert_eq!(d.classify(&add, &s), Classified::Skip(Skip::Peer(peers[0])));
        assert_eq!(
            d.classify(&delsa(0x42), &s),
            Classified::Skip(Skip::Peer(peers[0]))
        );
        let other: [IpAddr; 1] = ["10.2.0.0".parse().unwrap()];
        let s = scope(&other, true, FlushMode::Startup);
        assert!(matches!(d.classify(&add, &s), Classified::Sync(_)));
        assert_eq!(
            d.classify(&newpolicy(msg::NEWPOLICY), &s),
            Classified::Skip(Skip::Peer(other[0]))
        );
    }

    #[test]
    fn identity_is_the_kernels_rule_across_messages() {
        let d = Xfrm;
        let add = d.identity(&newsa(msg::NEWSA, 0x42));
        assert!(
            matches!(add, Some(Identity::Sa(k)) if k.spi == 0x42u32.to_be() && k.mark == Mark { v: 5, m: 0xff })
        );
        assert_eq!(add, d.identity(&delsa(0x42)));
        assert_eq!(add, d.identity(&newsa(msg::UPDSA, 0x42)));
        assert_ne!(add, d.identity(&newsa(msg::NEWSA, 0x43)));
        let p = d.identity(&newpolicy(msg::NEWPOLICY));
        assert!(matches!(p, Some(Identity::Policy(k)) if k.if_id == 9 && k.dir == 1));
        assert_eq!(p, d.identity(&delpolicy()));
        assert_eq!(d.identity(&req(rewrite::flush_policies)), None);
        assert_eq!(d.identity(&[1, 2, 3]), None);
    }

    #[test]
    fn records_become_requests() {
        let d = Xfrm;
        let mut out = vec![0u8; 4096];
        let rec = newsa(msg::NEWSA, 0x42);
        let n = d.to_request(&rec, &mut out).unwrap();
        let m = Msg::new(&rec).unwrap();
        let want = req(|b| rewrite::state_write(&SaView::from_new(&m).unwrap(), false, b));
        assert_eq!(out[..n], want[..]);
        let n = d.to_request(&newsa(msg::UPDSA, 0x42), &mut out).unwrap();
        assert_eq!(Msg::new(&out[..n]).unwrap().kind(), msg::UPDSA);
        let n = d.to_request(&delsa(0x42), &mut out).unwrap();
        assert_eq!(Msg::new(&out[..n]).unwrap().kind(), msg::DELSA);
        let n = d.to_request(&delpolicy(), &mut out).unwrap();
        assert_eq!(Msg::new(&out[..n]).unwrap().kind(), msg::DELPOLICY);
        let flush = Builder::new(msg::FLUSHSA, 0).raw(&[50]).finish();
        let n = d.to_request(&flush, &mut out).unwrap();
        assert_eq!(out[..n], req(|b| rewrite::flush_states(50, b))[..]);
        assert_eq!(
            d.to_request(&rec, &mut [0u8; 16]),
            Err(XfrmError::BufferTooSmall { need: want.len() })
        );
        let acquire = Builder::new(msg::ACQUIRE, 0).raw(&[0; 8]).finish();
        assert_eq!(
            d.to_request(&acquire, &mut out),
            Err(XfrmError::WrongType(msg::ACQUIRE))
        );
    }

    #[test]
    fn the_digest_form_ignores_what_differs_between_copies() {
        let d = Xfrm;
        let (mut a, mut b) = (vec![0u8; 4096], vec![0u8; 4096]);
        let master = newsa(msg::NEWSA, 0x42);
        // The slave's copy: other counters, another message type, the
        // request's LTIME_VAL, the attributes in another order, a replay
        // state.
        let mut info = master[HDR_LEN..HDR_LEN + USERSA_INFO_LEN].to_vec();
        info[sa_off::CURLFT..sa_off::CURLFT + 8].copy_from_slice(&99u64.to_ne_bytes());
        info[sa_off::STATS] = 3;
        let m = Msg::new(&master).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        let mut attrs: Vec<_> = sa.attrs.clone().map(Result::unwrap).collect();
        attrs.reverse();
        let mut copy = Builder::new(msg::UPDSA, 0).raw(&info);
        for at in &attrs {
            copy = copy.attr(at.kind, at.data);
        }
        let copy = copy
            .attr(attr::LTIME_VAL, &[1; LIFETIME_CUR_LEN])
            .attr(attr::REPLAY_VAL, &[7; 12])
            .finish();
        let n = d.digest_input(&master, &mut a).unwrap();
        let k = d.digest_input(&copy, &mut b).unwrap();
        assert_eq!(a[..n], b[..k]);
        // What is lasting counts: another key is another digest.
        let other = newsa(msg::NEWSA, 0x43);
        let k = d.digest_input(&other, &mut b).unwrap();
        assert_ne!(a[..n], b[..k]);
        // A policy's index is the receiver's to choose.
        let p = newpolicy(msg::NEWPOLICY);
        let mut q = p.clone();
        q[HDR_LEN + pol_off::INDEX] = 0x99;
        let n = d.digest_input(&p, &mut a).unwrap();
        let k = d.digest_input(&q, &mut b).unwrap();
        assert_eq!(a[..n], b[..k]);
        let mut r = p.clone();
        r[HDR_LEN + pol_off::PRIORITY] = 0x99;
        let k = d.digest_input(&r, &mut b).unwrap();
        assert_ne!(a[..n], b[..k], "the priority is lasting");
        assert!(d.digest_input(&delsa(0x42), &mut a).is_err());
    }

    #[test]
    fn an_update_goes_with_its_add_first_and_every_message_is_stamped() {
        let d = Xfrm;
        let upd = d
            .to_request(
                &crate::xfrm::testutil::newsa(msg::UPDSA, 0x42),
                &mut [0u8; 2048],
            )
            .ok();
        let mut req = [0u8; 2048];
        let n = d
            .to_request(&crate::xfrm::testutil::newsa(msg::UPDSA, 0x42), &mut req)
            .unwrap();
        assert_eq!(upd, Some(n));
        let mut out = [0u8; 4096];
        let m = d
            .add_first(&req[..n], &mut out)
            .expect("an update gets its add");
        d.stamp(&mut out[..m], 77, 9);
        let kinds: std::vec::Vec<(u16, u32, u32)> = nl::messages(&out[..m])
            .map(|r| r.map(|r| (r.kind(), r.pid(), r.seq())).unwrap())
            .collect();
        assert_eq!(kinds, [(msg::NEWSA, 77, 9), (msg::UPDSA, 77, 9)]);
        // The same state in both.
        let add = Msg::new(&out[..m]).unwrap();
        assert_eq!(&add.bytes()[6..], &out[add.bytes().len() + 6..m]);
        // Anything else is written as it is; a buffer too small for the pair
        // gets none.
        let mut add_req = [0u8; 2048];
        let a = d
            .to_request(
                &crate::xfrm::testutil::newsa(msg::NEWSA, 0x42),
                &mut add_req,
            )
            .unwrap();
        assert_eq!(d.add_first(&add_req[..a], &mut out), None);
        assert_eq!(d.add_first(&req[..n], &mut out[..n]), None);
    }
}
