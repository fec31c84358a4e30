//! Numbers of the OpenBSD PF_KEY v2 interface (reference §13.1, §13.6).
//!
//! Names follow `pfkeyv2.h` so that a reader can match them against kernel
//! sources and `ipsecctl -m` output.

/// Protocol version carried in every header (and the socket protocol number).
pub const PF_KEY_V2: u8 = 2;
/// Length unit of the header and of every extension, in bytes.
pub const CHUNK: usize = 8;
/// Size of `struct sadb_msg`.
pub const HDR_LEN: usize = 16;
/// Size of the common extension header (u16 length, u16 type).
pub const EXT_HDR_LEN: usize = 4;
/// The largest message the kernel accepts from a writer (`PFKEY_MSG_MAXSZ`).
/// Everything this module builds is refused above this size, because the
/// receiving kernel would refuse it anyway.
pub const PFKEY_MSG_MAXSZ: usize = 4096;
/// Send and receive buffer of each PF_KEY socket (`PFKEYSNDQ`/`PFKEYRCVQ`).
/// The kernel silently drops promiscuous copies that do not fit (D-14), so a
/// reader must drain the socket whenever it is readable, not take one
/// message per wake-up. A promiscuous copy of a maximal request is
/// `HDR_LEN + PFKEY_MSG_MAXSZ` bytes, so views accept messages above 4096.
pub const PFKEY_SOCKBUF: usize = 8192;
/// The largest length a header can describe (u16 count of 8-byte units).
pub const MAX_ENCODABLE: usize = u16::MAX as usize * CHUNK;

/// Message type 0 (never valid).
pub const SADB_RESERVED: u8 = 0;
/// Reserve an SPI (creates a larval SA).
pub const SADB_GETSPI: u8 = 1;
/// Fill in (or change the lifetimes of) an existing SA.
pub const SADB_UPDATE: u8 = 2;
/// Add a complete SA.
pub const SADB_ADD: u8 = 3;
/// Delete an SA.
pub const SADB_DELETE: u8 = 4;
/// Read one SA.
pub const SADB_GET: u8 = 5;
/// Kernel asks a key manager for an SA.
pub const SADB_ACQUIRE: u8 = 6;
/// Key manager registers for ACQUIREs.
pub const SADB_REGISTER: u8 = 7;
/// An SA's lifetime ran out.
pub const SADB_EXPIRE: u8 = 8;
/// Remove all SAs (and, with satype 0, all flows).
pub const SADB_FLUSH: u8 = 9;
/// Dump the SADB; also the type of SADB sysctl dump records.
pub const SADB_DUMP: u8 = 10;
/// Toggle promiscuous mode; also the wrapper of promiscuous copies.
pub const SADB_X_PROMISC: u8 = 11;
/// Add a flow (SPD entry).
pub const SADB_X_ADDFLOW: u8 = 12;
/// Delete a flow.
pub const SADB_X_DELFLOW: u8 = 13;
/// Group two SAs.
pub const SADB_X_GRPSPIS: u8 = 14;
/// Kernel asks for the policy of a socket.
pub const SADB_X_ASKPOLICY: u8 = 15;
/// Dump the SPD; also the type of SPD sysctl dump records.
pub const SADB_X_SPDDUMP: u8 = 16;
/// The highest message type.
pub const SADB_MAX: u8 = 16;

/// Security association: SPI, state, algorithms, flags.
pub const SADB_EXT_SA: u16 = 1;
/// Current usage counters and times.
pub const SADB_EXT_LIFETIME_CURRENT: u16 = 2;
/// Hard limits.
pub const SADB_EXT_LIFETIME_HARD: u16 = 3;
/// Soft limits.
pub const SADB_EXT_LIFETIME_SOFT: u16 = 4;
/// SA source address.
pub const SADB_EXT_ADDRESS_SRC: u16 = 5;
/// SA destination address.
pub const SADB_EXT_ADDRESS_DST: u16 = 6;
/// Proxy address (UPDATE only).
pub const SADB_EXT_ADDRESS_PROXY: u16 = 7;
/// Authentication key.
pub const SADB_EXT_KEY_AUTH: u16 = 8;
/// Encryption key.
pub const SADB_EXT_KEY_ENCRYPT: u16 = 9;
/// Source identity.
pub const SADB_EXT_IDENTITY_SRC: u16 = 10;
/// Destination identity.
pub const SADB_EXT_IDENTITY_DST: u16 = 11;
/// Security label.
pub const SADB_EXT_SENSITIVITY: u16 = 12;
/// Proposal (ACQUIRE).
pub const SADB_EXT_PROPOSAL: u16 = 13;
/// Supported authentication algorithms (REGISTER).
pub const SADB_EXT_SUPPORTED_AUTH: u16 = 14;
/// Supported encryption algorithms (REGISTER).
pub const SADB_EXT_SUPPORTED_ENCRYPT: u16 = 15;
/// SPI range (GETSPI).
pub const SADB_EXT_SPIRANGE: u16 = 16;
/// Flow source mask.
pub const SADB_X_EXT_SRC_MASK: u16 = 17;
/// Flow destination mask.
pub const SADB_X_EXT_DST_MASK: u16 = 18;
/// Flow transport protocol.
pub const SADB_X_EXT_PROTOCOL: u16 = 19;
/// Flow type and direction.
pub const SADB_X_EXT_FLOW_TYPE: u16 = 20;
/// Flow source address.
pub const SADB_X_EXT_SRC_FLOW: u16 = 21;
/// Flow destination address.
pub const SADB_X_EXT_DST_FLOW: u16 = 22;
/// Second SA of a group.
pub const SADB_X_EXT_SA2: u16 = 23;
/// Destination of the second SA of a group.
pub const SADB_X_EXT_DST2: u16 = 24;
/// Policy sequence.
pub const SADB_X_EXT_POLICY: u16 = 25;
/// Local credentials.
pub const SADB_X_EXT_LOCAL_CREDENTIALS: u16 = 26;
/// Remote credentials.
pub const SADB_X_EXT_REMOTE_CREDENTIALS: u16 = 27;
/// Local authentication data.
pub const SADB_X_EXT_LOCAL_AUTH: u16 = 28;
/// Remote authentication data.
pub const SADB_X_EXT_REMOTE_AUTH: u16 = 29;
/// Supported compression algorithms.
pub const SADB_X_EXT_SUPPORTED_COMP: u16 = 30;
/// UDP encapsulation port.
pub const SADB_X_EXT_UDPENCAP: u16 = 31;
/// Time of last use.
pub const SADB_X_EXT_LIFETIME_LASTUSE: u16 = 32;
/// pf tag.
pub const SADB_X_EXT_TAG: u16 = 33;
/// enc(4) interface unit.
pub const SADB_X_EXT_TAP: u16 = 34;
/// Type of the second SA of a group.
pub const SADB_X_EXT_SATYPE2: u16 = 35;
/// Packet and byte statistics.
pub const SADB_X_EXT_COUNTER: u16 = 36;
/// Routing domain(s).
pub const SADB_X_EXT_RDOMAIN: u16 = 37;
/// Path MTU.
pub const SADB_X_EXT_MTU: u16 = 38;
/// Replay counter.
pub const SADB_X_EXT_REPLAY: u16 = 39;
/// sec(4) interface.
pub const SADB_X_EXT_IFACE: u16 = 40;
/// The highest extension type.
pub const SADB_EXT_MAX: u16 = 40;

/// Unspecified SA type (FLUSH: everything).
pub const SADB_SATYPE_UNSPEC: u8 = 0;
/// AH.
pub const SADB_SATYPE_AH: u8 = 1;
/// ESP.
pub const SADB_SATYPE_ESP: u8 = 2;
/// RSVP (unused by OpenBSD).
pub const SADB_SATYPE_RSVP: u8 = 3;
/// OSPFv2 (unused by OpenBSD).
pub const SADB_SATYPE_OSPFV2: u8 = 4;
/// RIPv2 (unused by OpenBSD).
pub const SADB_SATYPE_RIPV2: u8 = 5;
/// Mobile IP (unused by OpenBSD).
pub const SADB_SATYPE_MIP: u8 = 6;
/// IP-in-IP.
pub const SADB_X_SATYPE_IPIP: u8 = 7;
/// TCP MD5 signatures.
pub const SADB_X_SATYPE_TCPSIGNATURE: u8 = 8;
/// IPcomp.
pub const SADB_X_SATYPE_IPCOMP: u8 = 9;
/// The highest SA type.
pub const SADB_SATYPE_MAX: u8 = 9;

/// SA reserved by GETSPI, not usable yet.
pub const SADB_SASTATE_LARVAL: u8 = 0;
/// Usable SA; the only state the kernel accepts on ADD.
pub const SADB_SASTATE_MATURE: u8 = 1;
/// Soft lifetime reached.
pub const SADB_SASTATE_DYING: u8 = 2;
/// Hard lifetime reached.
pub const SADB_SASTATE_DEAD: u8 = 3;

/// Flow type: use an SA if there is one.
pub const SADB_X_FLOW_TYPE_USE: u8 = 1;
/// Flow type: acquire an SA.
pub const SADB_X_FLOW_TYPE_ACQUIRE: u8 = 2;
/// Flow type: require an SA.
pub const SADB_X_FLOW_TYPE_REQUIRE: u8 = 3;
/// Flow type: bypass IPsec.
pub const SADB_X_FLOW_TYPE_BYPASS: u8 = 4;
/// Flow type: drop.
pub const SADB_X_FLOW_TYPE_DENY: u8 = 5;
/// Flow type: do not acquire.
pub const SADB_X_FLOW_TYPE_DONTACQ: u8 = 6;
/// Flow direction: inbound.
pub const IPSP_DIRECTION_IN: u8 = 1;
/// Flow direction: outbound.
pub const IPSP_DIRECTION_OUT: u8 = 2;

/// BSD address family of IPv4 sockaddrs.
pub const AF_INET: u8 = 2;
/// BSD address family of IPv6 sockaddrs (24 on OpenBSD, not Linux's 10).
pub const AF_INET6: u8 = 24;
/// Size of `struct sockaddr_in`.
pub const SOCKADDR_IN_LEN: u8 = 16;
/// Size of `struct sockaddr_in6`.
pub const SOCKADDR_IN6_LEN: u8 = 28;

/// The name of a message type, as logs and `pfkeyv2.h` spell it.
pub const fn msg_type_name(t: u8) -> &'static str {
    match t {
        SADB_RESERVED => "RESERVED",
        SADB_GETSPI => "GETSPI",
        SADB_UPDATE => "UPDATE",
        SADB_ADD => "ADD",
        SADB_DELETE => "DELETE",
        SADB_GET => "GET",
        SADB_ACQUIRE => "ACQUIRE",
        SADB_REGISTER => "REGISTER",
        SADB_EXPIRE => "EXPIRE",
        SADB_FLUSH => "FLUSH",
        SADB_DUMP => "DUMP",
        SADB_X_PROMISC => "X_PROMISC",
        SADB_X_ADDFLOW => "X_ADDFLOW",
        SADB_X_DELFLOW => "X_DELFLOW",
        SADB_X_GRPSPIS => "X_GRPSPIS",
        SADB_X_ASKPOLICY => "X_ASKPOLICY",
        SADB_X_SPDDUMP => "X_SPDDUMP",
        _ => "UNKNOWN",
    }
}

/// The flow-type flag of a static flow (ipsecctl's): only a request with
/// it changes or deletes such a flow.
pub const SADB_X_POLICYFLAGS_POLICY: u8 = 0x01;

/// A set of extension types, as a bit mask (bit `t` = type `t`, 1..=40).
/// Used for the kernel's "allowed in" tables without any allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtSet(pub u64);

impl ExtSet {
    /// The empty set.
    pub const EMPTY: ExtSet = ExtSet(0);

    /// A set from a list of types; types above 63 are ignored.
    pub const fn of(types: &[u16]) -> ExtSet {
        let mut bits = 0u64;
        let mut i = 0;
        while i < types.len() {
            if types[i] < 64 {
                bits |= 1u64 << types[i];
            }
            i += 1;
        }
        ExtSet(bits)
    }
    /// Whether `t` is in the set.
    pub const fn contains(self, t: u16) -> bool {
        t < 64 && self.0 & (1u64 << t) != 0
    }
    /// The union of two sets.
    pub const fn union(self, other: ExtSet) -> ExtSet {
        ExtSet(self.0 | other.0)
    }
    /// The set minus the members of `other`.
    pub const fn minus(self, other: ExtSet) -> ExtSet {
        ExtSet(self.0 & !other.0)
    }
    /// `self` with `t` added (types above 63 are ignored).
    pub const fn with(self, t: u16) -> ExtSet {
        if t < 64 {
            ExtSet(self.0 | 1u64 << t)
        } else {
            self
        }
    }
}

/// The flow extensions that describe an SPD entry.
pub const X_FLOW_SET: ExtSet = ExtSet::of(&[
    SADB_X_EXT_SRC_MASK,
    SADB_X_EXT_DST_MASK,
    SADB_X_EXT_PROTOCOL,
    SADB_X_EXT_SRC_FLOW,
    SADB_X_EXT_DST_FLOW,
    SADB_X_EXT_FLOW_TYPE,
]);

/// Extensions the kernel accepts on ADD (reference §13.2).
pub const ADD_ALLOWED: ExtSet = ExtSet::of(&[
    SADB_EXT_SA,
    SADB_EXT_LIFETIME_CURRENT,
    SADB_EXT_LIFETIME_HARD,
    SADB_EXT_LIFETIME_SOFT,
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_EXT_KEY_AUTH,
    SADB_EXT_KEY_ENCRYPT,
    SADB_EXT_IDENTITY_SRC,
    SADB_EXT_IDENTITY_DST,
    SADB_X_EXT_UDPENCAP,
    SADB_X_EXT_LIFETIME_LASTUSE,
    SADB_X_EXT_TAG,
    SADB_X_EXT_TAP,
    SADB_X_EXT_RDOMAIN,
    SADB_X_EXT_COUNTER,
    SADB_X_EXT_REPLAY,
    SADB_X_EXT_IFACE,
])
.union(X_FLOW_SET);

/// Extensions required on ADD.
pub const ADD_REQUIRED: ExtSet = ExtSet::of(&[SADB_EXT_SA, SADB_EXT_ADDRESS_DST]);

/// Extensions the kernel accepts on DELETE.
pub const DELETE_ALLOWED: ExtSet = ExtSet::of(&[
    SADB_EXT_SA,
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_X_EXT_RDOMAIN,
]);

/// Extensions the kernel accepts on X_ADDFLOW.
pub const ADDFLOW_ALLOWED: ExtSet = ExtSet::of(&[
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_EXT_IDENTITY_SRC,
    SADB_EXT_IDENTITY_DST,
    SADB_X_EXT_RDOMAIN,
])
.union(X_FLOW_SET);

/// Extensions the kernel accepts on X_DELFLOW.
pub const DELFLOW_ALLOWED: ExtSet = X_FLOW_SET.with(SADB_X_EXT_RDOMAIN);

/// Extensions required on X_ADDFLOW and X_DELFLOW.
pub const FLOW_REQUIRED: ExtSet = ExtSet::of(&[
    SADB_X_EXT_SRC_MASK,
    SADB_X_EXT_DST_MASK,
    SADB_X_EXT_SRC_FLOW,
    SADB_X_EXT_DST_FLOW,
    SADB_X_EXT_FLOW_TYPE,
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_sets() {
        assert!(ADD_ALLOWED.contains(SADB_EXT_SA));
        assert!(ADD_ALLOWED.contains(SADB_X_EXT_FLOW_TYPE));
        for t in [
            SADB_X_EXT_MTU,
            SADB_X_EXT_SA2,
            SADB_X_EXT_DST2,
            SADB_X_EXT_SATYPE2,
            SADB_EXT_ADDRESS_PROXY,
        ] {
            assert!(!ADD_ALLOWED.contains(t), "{t}");
        }
        assert!(!ExtSet::EMPTY.contains(0));
        assert!(!ExtSet::of(&[70]).contains(70));
        assert!(DELFLOW_ALLOWED.contains(SADB_X_EXT_RDOMAIN));
        assert!(!DELFLOW_ALLOWED.contains(SADB_EXT_ADDRESS_SRC));
        assert!(!ADD_ALLOWED.minus(ExtSet::of(&[SADB_EXT_SA])).contains(1));
        assert_eq!(msg_type_name(SADB_X_SPDDUMP), "X_SPDDUMP");
        assert_eq!(msg_type_name(17), "UNKNOWN");
    }
}
