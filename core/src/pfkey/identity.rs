//! The identity of an SA or flow, and the bytes of an entry that master and
//! slave copies share (for anti-entropy digests and mark-and-sweep).

use core::net::IpAddr;

use super::build::rebuild;
use super::consts::*;
use super::ext::{AddressExt, ProtocolExt, RdomainExt, SaExt};
use super::rewrite::SNAPSHOT_ADD_KEEP;
use super::sockaddr::SockAddr;
use super::{Msg, PfkeyError};

/// What the kernel identifies an SA by: type, SPI, destination, routing
/// domain (0 when the message carries no X_RDOMAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaKey {
    /// `SADB_SATYPE_*`.
    pub satype: u8,
    /// The SPI as a number.
    pub spi: u32,
    /// The destination address.
    pub dst: IpAddr,
    /// The routing domain.
    pub rdomain: u16,
}

/// What the kernel identifies a flow by: its selectors, direction and
/// routing domain. The flow type (USE, REQUIRE, …) is deliberately not part
/// of it: an X_ADDFLOW for an existing flow with another type replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// `IPSP_DIRECTION_*`.
    pub direction: u8,
    /// Transport protocol (0 = any).
    pub proto: u8,
    /// Source address and port.
    pub src: SockAddr,
    /// Source mask.
    pub src_mask: SockAddr,
    /// Destination address and port.
    pub dst: SockAddr,
    /// Destination mask.
    pub dst_mask: SockAddr,
    /// The routing domain.
    pub rdomain: u16,
}

fn rdomain(msg: &Msg<'_>) -> Option<u16> {
    match msg.find(SADB_X_EXT_RDOMAIN) {
        None => Some(0),
        Some(e) => RdomainExt::new(e).ok().map(|r| r.dom1()),
    }
}

fn addr(msg: &Msg<'_>, t: u16) -> Option<SockAddr> {
    AddressExt::new(msg.find(t)?).ok()?.sockaddr().ok()
}

/// The key of the SA `msg` describes (any message with an SA and an
/// ADDRESS_DST extension), or `None` if they are absent or unreadable.
pub fn sa_key(msg: &Msg<'_>) -> Option<SaKey> {
    let sa = SaExt::new(msg.find(SADB_EXT_SA)?).ok()?;
    Some(SaKey {
        satype: msg.satype(),
        spi: sa.spi(),
        dst: addr(msg, SADB_EXT_ADDRESS_DST)?.ip,
        rdomain: rdomain(msg)?,
    })
}

/// The key of the SA a grouped entry's outbound path applies next (its
/// X_SA2, X_DST2, X_SATYPE2), taken to be in the entry's domain.
pub fn next_key(msg: &Msg<'_>) -> Option<SaKey> {
    let sa = SaExt::new(msg.find(SADB_X_EXT_SA2)?).ok()?;
    let st = ProtocolExt::new(msg.find(SADB_X_EXT_SATYPE2)?).ok()?;
    Some(SaKey {
        satype: st.proto(),
        spi: sa.spi(),
        dst: addr(msg, SADB_X_EXT_DST2)?.ip,
        rdomain: rdomain(msg)?,
    })
}

/// The key of the flow `msg` describes (any message with the flow
/// extensions), or `None` if they are absent or unreadable. A missing
/// X_PROTOCOL means "any protocol" (0).
pub fn flow_key(msg: &Msg<'_>) -> Option<FlowKey> {
    let ft = ProtocolExt::new(msg.find(SADB_X_EXT_FLOW_TYPE)?).ok()?;
    let proto = match msg.find(SADB_X_EXT_PROTOCOL) {
        None => 0,
        Some(e) => ProtocolExt::new(e).ok()?.proto(),
    };
    Some(FlowKey {
        direction: ft.direction(),
        proto,
        src: addr(msg, SADB_X_EXT_SRC_FLOW)?,
        src_mask: addr(msg, SADB_X_EXT_SRC_MASK)?,
        dst: addr(msg, SADB_X_EXT_DST_FLOW)?,
        dst_mask: addr(msg, SADB_X_EXT_DST_MASK)?,
        rdomain: rdomain(msg)?,
    })
}

/// Extensions that legitimately differ between a master's entry and the
/// slave's copy: usage counters and times.
const VOLATILE: ExtSet = ExtSet::of(&[
    SADB_EXT_LIFETIME_CURRENT,
    SADB_X_EXT_LIFETIME_LASTUSE,
    SADB_X_EXT_COUNTER,
    SADB_X_EXT_REPLAY,
]);

/// Writes the canonical form of an SA entry (ADD, UPDATE or SADB dump
/// record) or flow entry (X_ADDFLOW or SPD dump record): a PF_KEY message of
/// type ADD or X_ADDFLOW with errno, reserved, seq and pid zero, holding only
/// the extensions a slave's copy can have (those a snapshot ADD / X_ADDFLOW
/// carries) minus the volatile ones (LIFETIME_CURRENT, X_LIFETIME_LASTUSE,
/// X_COUNTER, X_REPLAY), in ascending type order. Equal entries on master
/// and slave thus give equal bytes, whatever message carried them.
pub fn canonical_digest_input(msg: &Msg<'_>, out: &mut [u8]) -> Result<usize, PfkeyError> {
    let (ty, keep) = match msg.msg_type() {
        SADB_DUMP | SADB_ADD | SADB_UPDATE => (SADB_ADD, SNAPSHOT_ADD_KEEP),
        SADB_X_SPDDUMP | SADB_X_ADDFLOW => (SADB_X_ADDFLOW, ADDFLOW_ALLOWED),
        t => return Err(PfkeyError::WrongType(t)),
    };
    rebuild(
        msg,
        ty,
        keep.minus(VOLATILE),
        ExtSet::EMPTY,
        true,
        0,
        0,
        out,
    )
}

#[cfg(test)]
mod tests;
