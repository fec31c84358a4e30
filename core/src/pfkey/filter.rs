//! What a master forwards to its slaves (reference §11.3), with the
//! original's defects fixed:
//!
//! * UPDATE is filtered like ADD (D-7): the larval and skipslave checks
//!   apply to it too.
//! * skipslave compares whole addresses, IPv6 included (D-8), checks the
//!   flow addresses of X_ADDFLOW/X_DELFLOW (D-9) and uses every address the
//!   caller passes in — all configured peers, not only connected ones.
//! * "Larval" is decided by the SA's state, not by the presence of an
//!   encryption key, so AH, IPcomp and TCP-MD5 SAs are synchronised (D-10).
//! * Requests the slave's kernel refuses anyway (no SA on ADD, an SA state
//!   other than MATURE, a non-zero errno, type 0, X_SPDDUMP) are skipped.

use core::net::IpAddr;

use super::consts::*;
use super::ext::{AddressExt, SaExt};
use super::{Msg, PfkeyError};
use crate::state::FlushMode;

/// The configuration that shapes the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FilterPolicy {
    /// Whether live FLUSHes are forwarded (not in [`FlushMode::Never`]).
    pub flushmode: FlushMode,
    /// `mode skipslave`: do not forward SAs and flows that involve a peer.
    pub skipslave: bool,
}

/// The filter's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the message to the slaves.
    Sync,
    /// Do not forward it, for this reason.
    Skip(SkipReason),
}

/// Why a message is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A message type that is never forwarded (queries, registrations,
    /// kernel notifications, dumps, promiscuous switches, unknown types).
    NotForwarded(u8),
    /// A kernel reply reporting an error.
    Errno(u8),
    /// The extensions are malformed.
    Malformed(PfkeyError),
    /// An ADD or UPDATE without a usable SA extension.
    NoSa,
    /// An ADD or UPDATE of a larval SA (reserved by GETSPI, no keys yet).
    Larval,
    /// An ADD or UPDATE with an SA state other than MATURE, which the kernel
    /// refuses.
    NotMature(u8),
    /// A FLUSH while flush mode is `never`.
    FlushNever,
    /// skipslave: an SA or flow address belongs to a peer.
    Peer(IpAddr),
    /// skipslave: an address extension could not be read.
    BadAddress(PfkeyError),
}

impl core::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            SkipReason::NotForwarded(t) => write!(f, "{} is not forwarded", msg_type_name(t)),
            SkipReason::Errno(e) => write!(f, "kernel reply with errno {e}"),
            SkipReason::Malformed(e) => write!(f, "malformed: {e}"),
            SkipReason::NoSa => f.write_str("no SA extension"),
            SkipReason::Larval => f.write_str("larval SA"),
            SkipReason::NotMature(s) => write!(f, "SA state {s} is not mature"),
            SkipReason::FlushNever => f.write_str("flushmode never"),
            SkipReason::Peer(ip) => write!(f, "skipslave: involves peer {ip}"),
            SkipReason::BadAddress(e) => write!(f, "skipslave: bad address: {e}"),
        }
    }
}

/// Address extensions skipslave looks at: the SA endpoints and the flow
/// addresses (a DELFLOW carries only the latter).
const SKIPSLAVE_ADDRS: ExtSet = ExtSet::of(&[
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_ADDRESS_DST,
    SADB_X_EXT_SRC_FLOW,
    SADB_X_EXT_DST_FLOW,
]);

/// Decides whether the master forwards `msg` (an unwrapped request, or a
/// snapshot record already rewritten to ADD / X_ADDFLOW). `peers` are the
/// addresses of all configured peers; they matter only with skipslave.
pub fn filter(msg: &Msg<'_>, policy: &FilterPolicy, peers: &[IpAddr]) -> Verdict {
    match check(msg, policy, peers) {
        Ok(()) => Verdict::Sync,
        Err(r) => Verdict::Skip(r),
    }
}

fn check(msg: &Msg<'_>, policy: &FilterPolicy, peers: &[IpAddr]) -> Result<(), SkipReason> {
    let t = msg.msg_type();
    match t {
        SADB_ADD | SADB_UPDATE | SADB_DELETE | SADB_EXPIRE | SADB_FLUSH | SADB_X_ADDFLOW
        | SADB_X_DELFLOW | SADB_X_GRPSPIS => {}
        _ => return Err(SkipReason::NotForwarded(t)),
    }
    if msg.errno() != 0 {
        return Err(SkipReason::Errno(msg.errno()));
    }
    msg.check_extensions().map_err(SkipReason::Malformed)?;
    match t {
        SADB_ADD | SADB_UPDATE => {
            let sa = msg.find(SADB_EXT_SA).ok_or(SkipReason::NoSa)?;
            let sa = SaExt::new(sa).map_err(|_| SkipReason::NoSa)?;
            match sa.state() {
                SADB_SASTATE_MATURE => {}
                SADB_SASTATE_LARVAL => return Err(SkipReason::Larval),
                s => return Err(SkipReason::NotMature(s)),
            }
        }
        SADB_FLUSH if policy.flushmode == FlushMode::Never => {
            return Err(SkipReason::FlushNever);
        }
        _ => {}
    }
    if policy.skipslave {
        skipslave(msg, peers)?;
    }
    Ok(())
}

fn skipslave(msg: &Msg<'_>, peers: &[IpAddr]) -> Result<(), SkipReason> {
    for e in msg.extensions().map_while(Result::ok) {
        if !SKIPSLAVE_ADDRS.contains(e.ext_type()) {
            continue;
        }
        let sa = match AddressExt::new(e).and_then(|a| a.sockaddr()) {
            Ok(sa) => sa,
            // Not an IP address: it cannot be a peer's.
            Err(PfkeyError::UnknownFamily(_)) => continue,
            Err(err) => return Err(SkipReason::BadAddress(err)),
        };
        if peers.contains(&sa.ip) {
            return Err(SkipReason::Peer(sa.ip));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
