//! The kernel's checks on a written PF_KEY request, as OpenBSD's
//! `pfkeyv2_parsemessage()` makes them (sys/net/pfkeyv2_parsemessage.c
//! rev. 1.64, its `sadb_exts_allowed_in` / `sadb_exts_required_in`
//! tables): header, then every extension's framing, type, uniqueness,
//! shape and whether the message type allows or requires it. Every refusal
//! is `EINVAL`, except an oversized message (`EMSGSIZE`).
//!
//! Also the tables of the reply check `pfkeyv2_dosend()` makes after a
//! successful request (sys/net/pfkeyv2.c rev. 1.272, with the
//! `sadb_exts_allowed_out` / `sadb_exts_required_out` tables of
//! pfkeyv2_parsemessage.c rev. 1.64): see [`reply_rules`].

use sasyncd_core::pfkey::consts::*;
use sasyncd_core::pfkey::{AddressExt, Ext, Extensions, KeyExt, Msg, ProtocolExt, SaExt};

use crate::errno::Errno;

/// Extensions allowed on UPDATE: ADD's plus ADDRESS_PROXY, minus LASTUSE.
const UPDATE_ALLOWED: ExtSet = ADD_ALLOWED
    .with(SADB_EXT_ADDRESS_PROXY)
    .minus(ExtSet::of(&[SADB_X_EXT_LIFETIME_LASTUSE]));
const UPDATE_REQUIRED: ExtSet =
    ExtSet::of(&[SADB_EXT_SA, SADB_EXT_ADDRESS_SRC, SADB_EXT_ADDRESS_DST]);
/// GETSPI takes no X_RDOMAIN: the SPI is reserved in the socket's domain.
const GETSPI_ALLOWED: ExtSet = ExtSet::of(&[
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_EXT_SPIRANGE,
]);
const GETSPI_REQUIRED: ExtSet = GETSPI_ALLOWED;
const EXPIRE_SET: ExtSet = ExtSet::of(&[SADB_EXT_SA, SADB_EXT_ADDRESS_SRC, SADB_EXT_ADDRESS_DST]);
const GRPSPIS_REQUIRED: ExtSet = ExtSet::of(&[
    SADB_EXT_SA,
    SADB_X_EXT_SA2,
    SADB_X_EXT_DST2,
    SADB_EXT_ADDRESS_DST,
    SADB_X_EXT_SATYPE2,
]);
const ACQUIRE_ALLOWED: ExtSet = ExtSet::of(&[
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_EXT_IDENTITY_SRC,
    SADB_EXT_IDENTITY_DST,
    SADB_EXT_PROPOSAL,
]);
const LIFETIMES: ExtSet = ExtSet::of(&[
    SADB_EXT_LIFETIME_CURRENT,
    SADB_EXT_LIFETIME_HARD,
    SADB_EXT_LIFETIME_SOFT,
]);
/// What the kernel may answer an ADD with (after it took the keys out):
/// no X_LIFETIME_LASTUSE, X_COUNTER or X_REPLAY, though ADD accepts them.
pub(crate) const ADD_ALLOWED_OUT: ExtSet = ExtSet::of(&[
    SADB_EXT_SA,
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_EXT_IDENTITY_SRC,
    SADB_EXT_IDENTITY_DST,
    SADB_X_EXT_UDPENCAP,
    SADB_X_EXT_TAG,
    SADB_X_EXT_TAP,
    SADB_X_EXT_RDOMAIN,
    SADB_X_EXT_IFACE,
])
.union(LIFETIMES)
.union(X_FLOW_SET);
/// What a GET reply may carry: everything a record has but the group.
const GET_ALLOWED_OUT: ExtSet = ExtSet::of(&[
    SADB_EXT_SA,
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
    SADB_X_EXT_COUNTER,
    SADB_X_EXT_RDOMAIN,
    SADB_X_EXT_MTU,
    SADB_X_EXT_REPLAY,
    SADB_X_EXT_IFACE,
])
.union(LIFETIMES)
.union(X_FLOW_SET);
const SUPPORTED: ExtSet = ExtSet::of(&[
    SADB_EXT_SUPPORTED_AUTH,
    SADB_EXT_SUPPORTED_ENCRYPT,
    SADB_X_EXT_SUPPORTED_COMP,
]);

/// (allowed, required) extensions of a request type.
fn rules(msg_type: u8) -> (ExtSet, ExtSet) {
    match msg_type {
        SADB_GETSPI => (GETSPI_ALLOWED, GETSPI_REQUIRED),
        SADB_UPDATE => (UPDATE_ALLOWED, UPDATE_REQUIRED),
        SADB_ADD => (ADD_ALLOWED, ADD_REQUIRED),
        SADB_DELETE | SADB_GET => (DELETE_ALLOWED, ADD_REQUIRED),
        SADB_EXPIRE => (EXPIRE_SET, EXPIRE_SET),
        SADB_X_ADDFLOW => (ADDFLOW_ALLOWED, FLOW_REQUIRED),
        SADB_X_DELFLOW => (DELFLOW_ALLOWED, FLOW_REQUIRED),
        SADB_X_GRPSPIS => (GRPSPIS_REQUIRED.with(SADB_X_EXT_RDOMAIN), GRPSPIS_REQUIRED),
        SADB_X_ASKPOLICY => (
            ExtSet::of(&[SADB_X_EXT_POLICY]),
            ExtSet::of(&[SADB_X_EXT_POLICY]),
        ),
        SADB_ACQUIRE => (ACQUIRE_ALLOWED, ExtSet::EMPTY),
        // REGISTER, FLUSH, DUMP, X_PROMISC (16-byte form), X_SPDDUMP.
        _ => (ExtSet::EMPTY, ExtSet::EMPTY),
    }
}

/// (allowed, required) extensions of the answer to a successful request
/// of this type. The answer is the request itself (minus what the kernel
/// took out, e.g. keys), so an extension a request may carry but its
/// answer may not makes the write fail with `EPERM` after the kernel
/// carried it out.
pub(crate) fn reply_rules(msg_type: u8) -> (ExtSet, ExtSet) {
    let sa_dst = ExtSet::of(&[SADB_EXT_SA, SADB_EXT_ADDRESS_DST]);
    match msg_type {
        SADB_GETSPI => (
            ExtSet::of(&[SADB_EXT_SA, SADB_EXT_ADDRESS_SRC, SADB_EXT_ADDRESS_DST]),
            sa_dst,
        ),
        SADB_UPDATE => (ADD_ALLOWED_OUT.with(SADB_EXT_ADDRESS_PROXY), sa_dst),
        SADB_ADD => (ADD_ALLOWED_OUT, sa_dst),
        SADB_DELETE => (DELETE_ALLOWED, sa_dst),
        SADB_GET => (GET_ALLOWED_OUT, sa_dst.with(SADB_EXT_LIFETIME_CURRENT)),
        SADB_ACQUIRE => (ACQUIRE_ALLOWED, ExtSet::EMPTY),
        SADB_REGISTER => (SUPPORTED, SUPPORTED),
        SADB_EXPIRE => (
            ExtSet::of(&[SADB_EXT_SA, SADB_EXT_ADDRESS_SRC, SADB_EXT_ADDRESS_DST]).union(LIFETIMES),
            sa_dst,
        ),
        SADB_DUMP => (
            ExtSet::of(&[
                SADB_EXT_SA,
                SADB_EXT_ADDRESS_SRC,
                SADB_EXT_ADDRESS_DST,
                SADB_EXT_IDENTITY_SRC,
                SADB_EXT_IDENTITY_DST,
            ])
            .union(LIFETIMES),
            ExtSet::EMPTY,
        ),
        SADB_X_ADDFLOW => (ADDFLOW_ALLOWED, FLOW_REQUIRED),
        SADB_X_DELFLOW => (DELFLOW_ALLOWED, FLOW_REQUIRED),
        SADB_X_GRPSPIS => (GRPSPIS_REQUIRED.with(SADB_X_EXT_RDOMAIN), GRPSPIS_REQUIRED),
        SADB_X_ASKPOLICY => (FLOW_REQUIRED.with(SADB_X_EXT_POLICY), FLOW_REQUIRED),
        _ => (ExtSet::EMPTY, ExtSet::EMPTY),
    }
}

/// The types of the extensions in `msg`.
pub(crate) fn ext_set(msg: &Msg<'_>) -> ExtSet {
    msg.extensions()
        .map_while(Result::ok)
        .fold(ExtSet::EMPTY, |s, e| s.with(e.ext_type()))
}

/// The reply check: `Err(EPERM)` when the answer `seen` has an extension
/// its type may not carry, or lacks one it must.
pub(crate) fn check_reply(msg_type: u8, seen: ExtSet) -> Result<(), Errno> {
    let (allowed, required) = reply_rules(msg_type);
    if seen.minus(allowed) != ExtSet::EMPTY || required.minus(seen) != ExtSet::EMPTY {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// Whether a message type operates on an SA and so needs a real SA type.
fn needs_satype(msg_type: u8) -> bool {
    matches!(
        msg_type,
        SADB_GETSPI
            | SADB_UPDATE
            | SADB_ADD
            | SADB_DELETE
            | SADB_GET
            | SADB_EXPIRE
            | SADB_X_GRPSPIS
    )
}

/// SA types OpenBSD implements.
pub(crate) fn satype_supported(satype: u8) -> bool {
    matches!(
        satype,
        SADB_SATYPE_AH
            | SADB_SATYPE_ESP
            | SADB_X_SATYPE_IPIP
            | SADB_X_SATYPE_TCPSIGNATURE
            | SADB_X_SATYPE_IPCOMP
    )
}

/// The exact length of extensions whose structure has no variable part.
fn fixed_len(t: u16) -> Option<usize> {
    match t {
        SADB_EXT_SA | SADB_X_EXT_SA2 => Some(SaExt::LEN),
        SADB_EXT_LIFETIME_CURRENT
        | SADB_EXT_LIFETIME_HARD
        | SADB_EXT_LIFETIME_SOFT
        | SADB_X_EXT_LIFETIME_LASTUSE => Some(32),
        SADB_EXT_SPIRANGE => Some(16),
        SADB_X_EXT_RDOMAIN => Some(8),
        _ => None,
    }
}

/// Checks one extension's shape for its type.
fn check_shape(e: Ext<'_>) -> Result<(), Errno> {
    let bad = |_| Errno::EINVAL;
    if fixed_len(e.ext_type()).is_some_and(|n| n != e.bytes().len()) {
        return Err(Errno::EINVAL);
    }
    match e.ext_type() {
        SADB_EXT_ADDRESS_SRC
        | SADB_EXT_ADDRESS_DST
        | SADB_EXT_ADDRESS_PROXY
        | SADB_X_EXT_SRC_MASK
        | SADB_X_EXT_DST_MASK
        | SADB_X_EXT_SRC_FLOW
        | SADB_X_EXT_DST_FLOW
        | SADB_X_EXT_DST2 => {
            AddressExt::new(e).and_then(|a| a.sockaddr()).map_err(bad)?;
        }
        SADB_EXT_SA | SADB_X_EXT_SA2 => {
            // No unknown or DEAD state, no replay window above 64.
            let sa = SaExt::new(e).map_err(bad)?;
            if sa.state() >= SADB_SASTATE_DEAD || sa.replay() > 64 {
                return Err(Errno::EINVAL);
            }
        }
        SADB_EXT_KEY_AUTH | SADB_EXT_KEY_ENCRYPT => {
            KeyExt::new(e).map_err(bad)?;
        }
        SADB_X_EXT_PROTOCOL | SADB_X_EXT_FLOW_TYPE | SADB_X_EXT_SATYPE2 => {
            ProtocolExt::new(e).map_err(bad)?;
        }
        _ => {}
    }
    Ok(())
}

/// Validates a request written by `writer_pid`; returns its view.
pub(crate) fn validate(buf: &[u8], writer_pid: u32) -> Result<Msg<'_>, Errno> {
    if buf.len() > PFKEY_MSG_MAXSZ {
        return Err(Errno::EMSGSIZE);
    }
    let msg = Msg::parse(buf).map_err(|_| Errno::EINVAL)?;
    let t = msg.msg_type();
    if msg.reserved() != 0 || msg.errno() != 0 || !(1..=SADB_MAX).contains(&t) {
        return Err(Errno::EINVAL);
    }
    if msg.pid() != writer_pid {
        return Err(Errno::EINVAL);
    }
    if t == SADB_X_PROMISC && buf.len() > HDR_LEN {
        // A long X_PROMISC carries a whole message to re-inject; its body
        // is not a list of extensions.
        return Ok(msg);
    }
    if needs_satype(t) && !satype_supported(msg.satype()) {
        return Err(Errno::EINVAL);
    }
    if t == SADB_FLUSH && msg.satype() > SADB_SATYPE_MAX {
        return Err(Errno::EINVAL);
    }
    let (allowed, required) = rules(t);
    let mut seen = ExtSet::EMPTY;
    let body = buf.get(HDR_LEN..).unwrap_or(&[]);
    // The core's walk stops quietly at a zero length; the kernel refuses it.
    let mut off = 0;
    while off < body.len() {
        let len = body
            .get(off..off + 2)
            .map(|b| usize::from(u16::from_ne_bytes([b[0], b[1]])) * CHUNK)
            .unwrap_or(0);
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        off += len;
    }
    for e in Extensions::new(body) {
        let e = e.map_err(|_| Errno::EINVAL)?;
        let et = e.ext_type();
        if et == 0 || et > SADB_EXT_MAX || seen.contains(et) || !allowed.contains(et) {
            return Err(Errno::EINVAL);
        }
        seen = seen.with(et);
        check_shape(e)?;
    }
    if required.minus(seen) != ExtSet::EMPTY {
        return Err(Errno::EINVAL);
    }
    Ok(msg)
}
