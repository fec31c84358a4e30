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
//!   carried them.
//!
//! Peers must speak one dialect: v2's HELLO names it
//! ([`KernelDialect`], `wire/README.md`), and a mixed cluster is refused
//! there. [`OpenBsd`] is the dialect of today's node (it delegates to
//! [`crate::pfkey`]); Linux's is [`crate::xfrm::Xfrm`]. Wiring the trait into the node is issue 24's rework.

use core::fmt::{Debug, Display};
use core::hash::Hash;
use core::net::IpAddr;

use crate::pfkey::consts::{SADB_X_ADDFLOW, SADB_X_DELFLOW, SADB_X_SPDDUMP};
use crate::pfkey::{
    canonical_digest_input, filter, flow_key, for_slave, sa_key, unwrap_promisc, FilterPolicy,
    FlowKey, Msg, PfkeyError, SaKey, SkipReason, Verdict,
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
    /// A change that is not forwarded, for this reason.
    Skip(S),
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
pub trait Dialect {
    /// The dialect's HELLO byte.
    const ID: KernelDialect;
    /// An SA's identity.
    type SaKey: Copy + Eq + Ord + Hash + Debug;
    /// A flow's or policy's identity.
    type PolicyKey: Copy + Eq + Ord + Hash + Debug;
    /// Why a change is not forwarded.
    type Skip: Copy + Debug + Display;
    /// Why a record cannot be rewritten or digested.
    type Error: Copy + Debug + Display;

    /// Decides what a master does with `msg`, one message as its kernel's
    /// watch delivered it.
    fn classify<'a>(&self, msg: &'a [u8], scope: &Scope<'_>) -> Classified<'a, Self::Skip>;

    /// The identity of the entry a record (dump record, change, or
    /// request) names; `None` for records naming no single entry (a
    /// flush) or unreadable ones.
    fn identity(&self, record: &[u8]) -> Option<Identity<Self::SaKey, Self::PolicyKey>>;

    /// Writes to `out` the request a slave's kernel is given for a
    /// master's record (a snapshot record or a forwarded change); returns
    /// its length.
    fn to_request(&self, record: &[u8], out: &mut [u8]) -> Result<usize, Self::Error>;

    /// Writes to `out` the canonical bytes of an entry for digests;
    /// returns their length.
    fn digest_input(&self, record: &[u8], out: &mut [u8]) -> Result<usize, Self::Error>;
}

/// OpenBSD's PF_KEY, as [`crate::pfkey`] reads it: the dialect of the node
/// today.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenBsd;

impl Dialect for OpenBsd {
    const ID: KernelDialect = KernelDialect::OpenBsd;
    type SaKey = SaKey;
    type PolicyKey = FlowKey;
    type Skip = SkipReason;
    type Error = PfkeyError;

    /// A promiscuous copy carries the request another process wrote; our
    /// own requests carry our pid; [`filter`] decides the rest.
    fn classify<'a>(&self, msg: &'a [u8], scope: &Scope<'_>) -> Classified<'a, SkipReason> {
        let Some(inner) = unwrap_promisc(msg) else {
            return Classified::Reply;
        };
        let m = match Msg::parse(inner) {
            Ok(m) => m,
            Err(e) => return Classified::Skip(SkipReason::Malformed(e)),
        };
        if m.pid() == scope.own {
            return Classified::Own;
        }
        match filter(&m, &scope.policy, scope.peers) {
            Verdict::Sync => Classified::Sync(inner),
            Verdict::Skip(why) => Classified::Skip(why),
        }
    }

    fn identity(&self, record: &[u8]) -> Option<Identity<SaKey, FlowKey>> {
        let m = Msg::parse(record).ok()?;
        match m.msg_type() {
            SADB_X_ADDFLOW | SADB_X_DELFLOW | SADB_X_SPDDUMP => flow_key(&m).map(Identity::Policy),
            _ => sa_key(&m).map(Identity::Sa),
        }
    }

    fn to_request(&self, record: &[u8], out: &mut [u8]) -> Result<usize, PfkeyError> {
        for_slave(record, out)
    }

    fn digest_input(&self, record: &[u8], out: &mut [u8]) -> Result<usize, PfkeyError> {
        canonical_digest_input(&Msg::parse(record)?, out)
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
            Classified::Skip(SkipReason::Larval)
        );
        let peers = [ip("192.0.2.2")];
        assert_eq!(
            d.classify(&promisc(&add, 500), &scope(&peers, true)),
            Classified::Skip(SkipReason::Peer(ip("192.0.2.2")))
        );
        let mut bad = promisc(&add, 500);
        bad[16 + 16] = 0xff; // the first extension's length
        assert!(matches!(
            d.classify(&bad, &s),
            Classified::Skip(SkipReason::Malformed(_))
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
