//! Applying one kernel's tables and changes to another: the snapshot a
//! slave takes ([`sync_tables`]) and the live changes it follows
//! ([`apply_event`]).
//!
//! Writes are idempotent where the kernel allows it, because a slave can
//! see a change twice (in the snapshot and again as an event) or miss its
//! predecessor: an add of a state that exists becomes its update, an
//! update of one that does not becomes its add, a delete of what is gone
//! already is done. Policies are always written with `UPDPOLICY`, which
//! adds or replaces.

use std::collections::{BTreeMap, BTreeSet};

use nix::errno::Errno;

use crate::nl::{to_vec, Msg, NlError};
use crate::rewrite::{
    flush_policies, flush_states, policy_delete, policy_write, state_counters, state_delete,
    state_write,
};
use crate::socket::{RequestError, XfrmSocket};
use crate::xfrm::{msg, PolicyKey, PolicyView, SaKey, SaView};

/// What [`apply_event`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A state was added or updated.
    StateWritten,
    /// A state was deleted (or was gone already).
    StateDeleted,
    /// A policy was added or replaced.
    PolicyWritten,
    /// A policy was deleted (or was gone already).
    PolicyDeleted,
    /// A table was flushed.
    Flushed,
    /// Nothing to do: why.
    Skipped(Skip),
}

/// Why an event is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A state without keys yet (an SPI reserved mid-negotiation).
    Larval,
    /// A per-socket policy: it belongs to a process on the machine.
    SocketPolicy,
    /// A soft expiry: a warning to the keying daemon, no change.
    SoftExpire,
    /// A message that is not a table change (acquire, replay counters...).
    NotAChange,
}

/// Why an event or a record could not be applied.
#[derive(Debug)]
pub enum MirrorError {
    /// The event or record is malformed.
    Malformed(NlError),
    /// The receiving kernel refused the write, or its socket failed.
    Write(RequestError),
}

impl core::fmt::Display for MirrorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MirrorError::Malformed(e) => write!(f, "malformed: {e}"),
            MirrorError::Write(e) => write!(f, "write {e}"),
        }
    }
}

impl std::error::Error for MirrorError {}

impl From<NlError> for MirrorError {
    fn from(e: NlError) -> Self {
        MirrorError::Malformed(e)
    }
}

impl From<RequestError> for MirrorError {
    fn from(e: RequestError) -> Self {
        MirrorError::Write(e)
    }
}

fn refused(r: &Result<(), RequestError>, errno: Errno) -> bool {
    matches!(r, Err(RequestError::Refused(e)) if *e == errno)
}

/// Writes the state `sa` into `dst`: added, or updated if it exists
/// (`update` says which to try first). An updated state then gets the
/// counters of `sa` too if `counters`: true for a dump record or an add
/// event, which describe the state in the table; false for an update
/// event, which describes the request's state (its add time is the
/// request's, its counters zero), not the one the update left in the
/// table (`xfrm_add_sa` announces the state it built from the request).
pub fn write_state(
    dst: &mut XfrmSocket,
    sa: &SaView<'_>,
    update: bool,
    counters: bool,
) -> Result<(), MirrorError> {
    let mut req = to_vec(|b| state_write(sa, update, b))?;
    let r = dst.request(&mut req);
    let retry = if update {
        refused(&r, Errno::ESRCH) || refused(&r, Errno::ENOENT)
    } else {
        refused(&r, Errno::EEXIST)
    };
    let updated = if retry {
        let mut req = to_vec(|b| state_write(sa, !update, b))?;
        dst.request(&mut req)?;
        !update
    } else {
        r?;
        update
    };
    if updated && counters {
        dst.request(&mut to_vec(|b| state_counters(sa, b))?)?;
    }
    Ok(())
}

/// Deletes the state `sa` names from `dst`; a state already gone is fine.
pub fn delete_state(dst: &mut XfrmSocket, sa: &SaView<'_>) -> Result<(), MirrorError> {
    let r = dst.request(&mut to_vec(|b| state_delete(sa, b))?);
    if refused(&r, Errno::ESRCH) || refused(&r, Errno::ENOENT) {
        return Ok(());
    }
    Ok(r?)
}

/// Adds or replaces the policy `p` in `dst`.
pub fn write_policy(dst: &mut XfrmSocket, p: &PolicyView<'_>) -> Result<(), MirrorError> {
    Ok(dst.request(&mut to_vec(|b| policy_write(p, true, b))?)?)
}

/// Deletes the policy `p` names from `dst`; a policy already gone is fine.
pub fn delete_policy(dst: &mut XfrmSocket, p: &PolicyView<'_>) -> Result<(), MirrorError> {
    let r = dst.request(&mut to_vec(|b| policy_delete(p, b))?);
    if refused(&r, Errno::ENOENT) || refused(&r, Errno::ESRCH) {
        return Ok(());
    }
    Ok(r?)
}

/// Applies one event read from a watch socket to `dst`.
pub fn apply_event(dst: &mut XfrmSocket, ev: &Msg<'_>) -> Result<Applied, MirrorError> {
    match ev.kind() {
        msg::NEWSA | msg::UPDSA => {
            let sa = SaView::from_new(ev)?;
            if !sa.is_complete() {
                return Ok(Applied::Skipped(Skip::Larval));
            }
            let update = ev.kind() == msg::UPDSA;
            write_state(dst, &sa, update, !update)?;
            Ok(Applied::StateWritten)
        }
        msg::DELSA => {
            delete_state(dst, &SaView::from_del(ev)?)?;
            Ok(Applied::StateDeleted)
        }
        msg::EXPIRE => {
            let (sa, hard) = SaView::from_expire(ev)?;
            if !hard {
                return Ok(Applied::Skipped(Skip::SoftExpire));
            }
            delete_state(dst, &sa)?;
            Ok(Applied::StateDeleted)
        }
        msg::NEWPOLICY | msg::UPDPOLICY => {
            let p = PolicyView::from_new(ev)?;
            if p.is_socket_policy() {
                return Ok(Applied::Skipped(Skip::SocketPolicy));
            }
            write_policy(dst, &p)?;
            Ok(Applied::PolicyWritten)
        }
        msg::DELPOLICY => {
            let p = PolicyView::from_del(ev)?;
            if p.is_socket_policy() {
                return Ok(Applied::Skipped(Skip::SocketPolicy));
            }
            delete_policy(dst, &p)?;
            Ok(Applied::PolicyDeleted)
        }
        msg::FLUSHSA => {
            let proto = ev.payload().first().copied().unwrap_or(0);
            dst.request(&mut to_vec(|b| flush_states(proto, b))?)?;
            Ok(Applied::Flushed)
        }
        msg::FLUSHPOLICY => {
            dst.request(&mut to_vec(flush_policies)?)?;
            Ok(Applied::Flushed)
        }
        _ => Ok(Applied::Skipped(Skip::NotAChange)),
    }
}

/// What [`sync_tables`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// States written (added or updated).
    pub states_written: usize,
    /// States of the receiver that the sender lacks, deleted.
    pub states_deleted: usize,
    /// Larval states not copied.
    pub states_skipped: usize,
    /// Policies written.
    pub policies_written: usize,
    /// Policies of the receiver that the sender lacks, deleted.
    pub policies_deleted: usize,
    /// Per-socket policies not copied.
    pub policies_skipped: usize,
}

/// Makes `dst`'s states and policies those of `src`: a full dump of each
/// table of `src` is taken, what `dst` has that `src` lacks is deleted,
/// and every state then every policy of `src` is written into `dst`
/// (states first, so that a policy never finds its state missing). The two sockets may be in different namespaces (or
/// machines: the dump records are what a master would send).
pub fn sync_tables(src: &mut XfrmSocket, dst: &mut XfrmSocket) -> Result<SyncStats, MirrorError> {
    let mut st = SyncStats::default();
    let mut states: Vec<Vec<u8>> = Vec::new();
    src.dump(msg::GETSA, |m| states.push(m.bytes().to_vec()))?;
    let mut policies: Vec<Vec<u8>> = Vec::new();
    src.dump(msg::GETPOLICY, |m| policies.push(m.bytes().to_vec()))?;

    let mut have_sa: BTreeMap<SaKey, Vec<u8>> = BTreeMap::new();
    let mut bad = None;
    dst.dump(msg::GETSA, |m| match SaView::from_new(&m) {
        Ok(sa) => {
            have_sa.insert(sa.key(), m.bytes().to_vec());
        }
        Err(e) => bad = Some(e),
    })?;
    let mut have_pol: BTreeMap<PolicyKey, Vec<u8>> = BTreeMap::new();
    dst.dump(msg::GETPOLICY, |m| match PolicyView::from_new(&m) {
        Ok(p) => {
            have_pol.insert(p.key(), m.bytes().to_vec());
        }
        Err(e) => bad = Some(e),
    })?;
    if let Some(e) = bad {
        return Err(e.into());
    }

    // What B has that A lacks goes first, and so does a policy of B that
    // A has under another index: then every index of A's policies is free
    // in B, and B's policies get A's (`ip xfrm policy` shows the same).
    let mut pol_index: BTreeMap<PolicyKey, u32> = BTreeMap::new();
    for rec in &policies {
        let m = Msg::new(rec)?;
        let p = PolicyView::from_new(&m)?;
        pol_index.insert(p.key(), p.index());
    }
    for rec in have_pol.values() {
        let m = Msg::new(rec)?;
        let p = PolicyView::from_new(&m)?;
        if p.is_socket_policy() {
            continue;
        }
        if pol_index.get(&p.key()) != Some(&p.index()) {
            delete_policy(dst, &p)?;
            st.policies_deleted += usize::from(!pol_index.contains_key(&p.key()));
        }
    }
    let a_states: BTreeSet<SaKey> = states
        .iter()
        .filter_map(|r| Some(SaView::from_new(&Msg::new(r).ok()?).ok()?.key()))
        .collect();
    for (key, rec) in &have_sa {
        if !a_states.contains(key) {
            let m = Msg::new(rec)?;
            delete_state(dst, &SaView::from_new(&m)?)?;
            st.states_deleted += 1;
        }
    }
    for rec in &states {
        let m = Msg::new(rec)?;
        let sa = SaView::from_new(&m)?;
        if !sa.is_complete() {
            st.states_skipped += 1;
            continue;
        }
        let exists = have_sa.contains_key(&sa.key());
        write_state(dst, &sa, exists, true)?;
        st.states_written += 1;
    }
    for rec in &policies {
        let m = Msg::new(rec)?;
        let p = PolicyView::from_new(&m)?;
        if p.is_socket_policy() {
            st.policies_skipped += 1;
            continue;
        }
        write_policy(dst, &p)?;
        st.policies_written += 1;
    }
    for v in states.iter_mut().chain(have_sa.values_mut()) {
        zeroize::Zeroize::zeroize(v);
    }
    Ok(st)
}
