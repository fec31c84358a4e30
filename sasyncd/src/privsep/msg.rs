//! The messages and their encoding (the wire format is in the module
//! documentation of [`privsep`](super)).

use std::net::IpAddr;

use sasyncd_core::config::MAX_PEERS;
use sasyncd_core::node::Table;

use super::ProtoError;
use crate::conffile::MAX_CONFIG_BYTES;
use crate::secret::SecretBytes;

/// Bytes before every payload: length (u32), type (u16), reserved (u16).
pub const HEADER_LEN: usize = 8;

/// Largest payload: a whole configuration file ([`MAX_CONFIG_BYTES`], 1 MiB),
/// which is also more than a dump batch holding the largest PF_KEY record.
pub const MAX_PAYLOAD: usize = MAX_CONFIG_BYTES;

/// Largest message, header included.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD;

/// How many bytes of dump records the privileged process packs into one
/// [`ToNet::DumpRecords`], in whole records; a single record larger than
/// this travels alone. Small enough that the network process never holds
/// much of a dump, large enough that a round trip (a wake-up of both
/// processes) carries about a thousand records: at 64 KiB the wake-ups of
/// a 100k-SA sweep cost the privileged process as much as its copying.
pub const BATCH_BYTES: usize = 256 * 1024;

/// Largest PF_KEY message: its length is a 16-bit count of 8-byte units.
pub const MAX_RECORD_BYTES: usize = 0xffff * 8;

/// Most record bytes one [`ToNet::DumpRecords`] may carry: a full batch or
/// one record of the largest size, whichever is more.
pub const MAX_BATCH_BYTES: usize = if MAX_RECORD_BYTES > BATCH_BYTES {
    MAX_RECORD_BYTES
} else {
    BATCH_BYTES
};

/// Longest text in [`ToPriv::Reloaded`] and [`ToNet::ReloadRefused`], in
/// bytes.
pub const MAX_REASON: usize = 1024;

const _: () = assert!(4 + MAX_BATCH_BYTES <= MAX_PAYLOAD);
const _: () = assert!(MAX_REASON < MAX_PAYLOAD);
const _: () = assert!(MAX_PAYLOAD >= 1 << 20);

/// Message type numbers. The two directions use disjoint ranges, so a
/// message sent the wrong way is an unknown type, not a different message.
pub mod types {
    /// [`ToPriv::DumpStart`](super::ToPriv::DumpStart).
    pub const DUMP_START: u16 = 0x0001;
    /// [`ToPriv::DumpMore`](super::ToPriv::DumpMore).
    pub const DUMP_MORE: u16 = 0x0002;
    /// [`ToPriv::DumpCancel`](super::ToPriv::DumpCancel).
    pub const DUMP_CANCEL: u16 = 0x0003;
    /// [`ToPriv::Demote`](super::ToPriv::Demote).
    pub const DEMOTE: u16 = 0x0004;
    /// [`ToPriv::Ike`](super::ToPriv::Ike).
    pub const IKE: u16 = 0x0005;
    /// [`ToPriv::LinkState`](super::ToPriv::LinkState).
    pub const LINK_STATE_REQ: u16 = 0x0006;
    /// [`ToPriv::Reload`](super::ToPriv::Reload).
    pub const RELOAD: u16 = 0x0007;
    /// [`ToPriv::Reloaded`](super::ToPriv::Reloaded).
    pub const RELOADED: u16 = 0x0008;
    /// [`ToNet::DumpRecords`](super::ToNet::DumpRecords).
    pub const DUMP_RECORDS: u16 = 0x0081;
    /// [`ToNet::DumpEnd`](super::ToNet::DumpEnd).
    pub const DUMP_END: u16 = 0x0082;
    /// [`ToNet::DemoteResult`](super::ToNet::DemoteResult).
    pub const DEMOTE_RESULT: u16 = 0x0083;
    /// [`ToNet::IkeResult`](super::ToNet::IkeResult).
    pub const IKE_RESULT: u16 = 0x0084;
    /// [`ToNet::LinkState`](super::ToNet::LinkState).
    pub const LINK_STATE: u16 = 0x0085;
    /// [`ToNet::CarpUnreadable`](super::ToNet::CarpUnreadable).
    pub const CARP_UNREADABLE: u16 = 0x0086;
    /// [`ToNet::Config`](super::ToNet::Config).
    pub const CONFIG: u16 = 0x0087;
    /// [`ToNet::Shutdown`](super::ToNet::Shutdown).
    pub const SHUTDOWN: u16 = 0x0088;
    /// [`ToNet::ReloadRefused`](super::ToNet::ReloadRefused).
    pub const RELOAD_REFUSED: u16 = 0x0089;
    /// [`ToNet::Pfsync`](super::ToNet::Pfsync).
    pub const PFSYNC: u16 = 0x008a;
    /// [`ToNet::PeerAddrs`](super::ToNet::PeerAddrs).
    pub const PEER_ADDRS: u16 = 0x008b;
}

use types::*;

/// The name of a message type, for error messages.
pub fn type_name(ty: u16) -> &'static str {
    match ty {
        DUMP_START => "DumpStart",
        DUMP_MORE => "DumpMore",
        DUMP_CANCEL => "DumpCancel",
        DEMOTE => "Demote",
        IKE => "Ike",
        LINK_STATE_REQ => "LinkState request",
        RELOAD => "Reload",
        RELOADED => "Reloaded",
        DUMP_RECORDS => "DumpRecords",
        DUMP_END => "DumpEnd",
        DEMOTE_RESULT => "DemoteResult",
        IKE_RESULT => "IkeResult",
        LINK_STATE => "LinkState",
        CARP_UNREADABLE => "CarpUnreadable",
        CONFIG => "Config",
        SHUTDOWN => "Shutdown",
        RELOAD_REFUSED => "ReloadRefused",
        PFSYNC => "Pfsync",
        PEER_ADDRS => "PeerAddrs",
        _ => "unknown",
    }
}

/// Network process → privileged process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToPriv {
    /// Take a point-in-time copy of the SADB or SPD (sysctl), then send
    /// its first batch of records.
    DumpStart {
        /// The network process's name for this dump.
        dump: u32,
        /// Which table.
        table: Table,
    },
    /// Send the next batch of a dump: the network process asks when it has
    /// room, which is the flow control.
    DumpMore {
        /// The dump.
        dump: u32,
    },
    /// Drop (and wipe) the copy of a dump.
    DumpCancel {
        /// The dump.
        dump: u32,
    },
    /// Raise or release our carp group demotion.
    Demote {
        /// `true`: raise; `false`: release.
        raise: bool,
    },
    /// Tell isakmpd/iked to go active or passive.
    Ike {
        /// The network process's name for this request, echoed in the
        /// result.
        id: u32,
        /// `true`: active; `false`: passive.
        active: bool,
    },
    /// Read the carp interface's link state again.
    LinkState,
    /// Re-read the configuration, as on SIGHUP.
    Reload,
    /// The result of applying a [`ToNet::Config`].
    Reloaded {
        /// Whether the network process now runs the new configuration.
        ok: bool,
        /// Why not, or a summary (at most [`MAX_REASON`] bytes of UTF-8).
        message: String,
    },
}

impl ToPriv {
    /// A [`ToPriv::Reloaded`] whose message is cut (at a character
    /// boundary) to [`MAX_REASON`] bytes, so it can always be sent.
    pub fn reloaded(ok: bool, message: &str) -> ToPriv {
        ToPriv::Reloaded {
            ok,
            message: cut_reason(message),
        }
    }
}

impl ToNet {
    /// A [`ToNet::ReloadRefused`] whose reason is cut (at a character
    /// boundary) to [`MAX_REASON`] bytes, so it can always be sent.
    pub fn reload_refused(reason: &str) -> ToNet {
        ToNet::ReloadRefused {
            reason: cut_reason(reason),
        }
    }
}

/// `text` cut at a character boundary to at most [`MAX_REASON`] bytes.
fn cut_reason(text: &str) -> String {
    let mut end = text.len().min(MAX_REASON);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

/// Privileged process → network process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToNet {
    /// Whole PF_KEY dump records, at most [`BATCH_BYTES`] unless a single
    /// record is larger (at most [`MAX_BATCH_BYTES`]). They hold SA keys:
    /// wiped on drop, not shown by `Debug`.
    DumpRecords {
        /// The dump.
        dump: u32,
        /// One or more records, back to back (a multiple of 4 bytes: PF_KEY
        /// records are 8-aligned, netlink's 4-aligned).
        records: SecretBytes,
    },
    /// The dump has no more records (`ok`), or could not be taken.
    DumpEnd {
        /// The dump.
        dump: u32,
        /// `false`: the sysctl failed; the records sent so far are not a
        /// complete copy.
        ok: bool,
    },
    /// The result of a [`ToPriv::Demote`].
    DemoteResult {
        /// Whether the demotion counter was changed.
        ok: bool,
    },
    /// The result of a [`ToPriv::Ike`].
    IkeResult {
        /// The request's id.
        id: u32,
        /// Whether every controlled IKE daemon took the request.
        ok: bool,
    },
    /// The carp interface's link state.
    LinkState {
        /// A `LINK_STATE_*` value.
        state: u8,
    },
    /// The carp interface's link state could not be read.
    CarpUnreadable,
    /// A new configuration that passed every check (after SIGHUP). Holds
    /// the shared key: wiped on drop, not shown by `Debug`.
    Config {
        /// The file's text, at most [`MAX_CONFIG_BYTES`].
        text: SecretBytes,
    },
    /// The privileged process got SIGTERM or SIGINT: shut down cleanly.
    Shutdown,
    /// A reload (SIGHUP, or [`ToPriv::Reload`]) found the file unreadable
    /// or invalid: the running configuration stays. Sent so that whoever
    /// asked for the reload (`sasyncctl reload`) learns why.
    ReloadRefused {
        /// Why: the line the privileged process logged (at most
        /// [`MAX_REASON`] bytes of UTF-8).
        reason: String,
    },
    /// Whether a pfsync(4) interface is up, as the privileged process
    /// found at start-up and after each reload (for the status report).
    Pfsync {
        /// Up (`false`: the new master's replay counters will be stale).
        up: bool,
    },
    /// Sent right before a [`ToNet::Config`]: the address of each of its
    /// peers, in file order, as the privileged process resolved them (the
    /// network process is chrooted, without a resolver).
    PeerAddrs {
        /// One per peer, at most [`MAX_PEERS`].
        addrs: Vec<IpAddr>,
    },
}

/// [`ToNet::PeerAddrs`]: one address is a family byte (4 or 6) and 16
/// bytes (an IPv4 address in the first 4).
const ADDR_LEN: usize = 17;

fn encode_addr(a: &IpAddr) -> [u8; ADDR_LEN] {
    let mut out = [0u8; ADDR_LEN];
    match a {
        IpAddr::V4(v4) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out[0] = 6;
            out[1..].copy_from_slice(&v6.octets());
        }
    }
    out
}

fn decode_addr(ty: u16, b: [u8; ADDR_LEN]) -> Result<IpAddr, ProtoError> {
    let [family, rest @ ..] = b;
    match family {
        4 => {
            let [a, b, c, d, ..] = rest;
            Ok(IpAddr::from([a, b, c, d]))
        }
        6 => Ok(IpAddr::from(rest)),
        _ => Err(bad_len(ty, ADDR_LEN)),
    }
}

/// One direction's messages: how they are framed.
pub trait Message: Sized {
    /// The whole encoded size, header included.
    fn encoded_len(&self) -> usize;

    /// Appends the encoded message to `out`; on error `out` is unchanged.
    /// To keep secrets from being left behind by a reallocation, reserve
    /// [`encoded_len`](Message::encoded_len) bytes first (as
    /// [`to_frame`](Message::to_frame) and the channel do).
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError>;

    /// Decodes exactly one message: `frame` must hold its header and
    /// payload and nothing more.
    fn decode(frame: &[u8]) -> Result<Self, ProtoError>;

    /// The encoded message in a buffer of its own that wipes itself.
    fn to_frame(&self) -> Result<SecretBytes, ProtoError> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode(&mut v)?;
        Ok(SecretBytes::new(v))
    }
}

/// The length of the message at the start of `buf`: `Ok(None)` while its
/// header or payload is incomplete, an error as soon as the header is
/// invalid (so an oversized message is refused before it is buffered).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ProtoError> {
    let Some((h, _)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let reserved = u16::from_le_bytes([h[6], h[7]]);
    if reserved != 0 {
        return Err(ProtoError::Reserved(reserved));
    }
    let payload = usize::try_from(len).map_err(|_| ProtoError::Oversized(len))?;
    if payload > MAX_PAYLOAD {
        return Err(ProtoError::Oversized(len));
    }
    let total = HEADER_LEN + payload;
    Ok((buf.len() >= total).then_some(total))
}

/// Checks the framing of exactly one message; returns its type and payload.
fn split(frame: &[u8]) -> Result<(u16, &[u8]), ProtoError> {
    let n = frame_len(frame)?.ok_or(ProtoError::Truncated)?;
    if frame.len() > n {
        return Err(ProtoError::Trailing(frame.len() - n));
    }
    let (h, payload) = frame
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(ProtoError::Truncated)?;
    Ok((u16::from_le_bytes([h[4], h[5]]), payload))
}

/// Reads a payload's fields in order.
struct Fields<'a> {
    ty: u16,
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// A payload that must be exactly `len` bytes.
    fn fixed(ty: u16, payload: &'a [u8], len: usize) -> Result<Fields<'a>, ProtoError> {
        if payload.len() != len {
            return Err(ProtoError::BadLength {
                ty,
                len: payload.len(),
            });
        }
        Ok(Fields { ty, rest: payload })
    }

    /// A payload with `fixed` bytes of fields before a variable part of
    /// `min..=max` bytes.
    fn variable(
        ty: u16,
        payload: &'a [u8],
        fixed: usize,
        min: usize,
        max: usize,
    ) -> Result<Fields<'a>, ProtoError> {
        let var = payload.len().checked_sub(fixed);
        if !var.is_some_and(|v| (min..=max).contains(&v)) {
            return Err(ProtoError::BadLength {
                ty,
                len: payload.len(),
            });
        }
        Ok(Fields { ty, rest: payload })
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(ProtoError::Truncated)?;
        self.rest = tail;
        Ok(*head)
    }

    fn u32(&mut self) -> Result<u32, ProtoError> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }

    fn u8(&mut self) -> Result<u8, ProtoError> {
        self.bytes::<1>().map(|[b]| b)
    }

    fn flag(&mut self) -> Result<bool, ProtoError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(ProtoError::BadValue { ty: self.ty, value }),
        }
    }

    fn table(&mut self) -> Result<Table, ProtoError> {
        match self.u8()? {
            TABLE_SADB => Ok(Table::Sadb),
            TABLE_SPD => Ok(Table::Spd),
            value => Err(ProtoError::BadValue { ty: self.ty, value }),
        }
    }

    fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// Table numbers on the wire: the `NET_KEY_SADB_DUMP` / `NET_KEY_SPD_DUMP`
/// sysctl numbers they select.
const TABLE_SADB: u8 = 1;
const TABLE_SPD: u8 = 2;

fn table_byte(t: Table) -> u8 {
    match t {
        Table::Sadb => TABLE_SADB,
        Table::Spd => TABLE_SPD,
    }
}

/// Appends a header and the payload parts; checks the total first.
fn put(out: &mut Vec<u8>, ty: u16, parts: &[&[u8]]) -> Result<(), ProtoError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let wire = u32::try_from(len)
        .ok()
        .filter(|_| len <= MAX_PAYLOAD)
        .ok_or(ProtoError::BadLength { ty, len })?;
    out.extend_from_slice(&wire.to_le_bytes());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(())
}

fn bad_len(ty: u16, len: usize) -> ProtoError {
    ProtoError::BadLength { ty, len }
}

impl Message for ToPriv {
    fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                ToPriv::DumpStart { .. } | ToPriv::Ike { .. } => 5,
                ToPriv::DumpMore { .. } | ToPriv::DumpCancel { .. } => 4,
                ToPriv::Demote { .. } => 1,
                ToPriv::LinkState | ToPriv::Reload => 0,
                ToPriv::Reloaded { message, .. } => 1 + message.len(),
            }
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        match self {
            ToPriv::DumpStart { dump, table } => put(
                out,
                DUMP_START,
                &[&dump.to_le_bytes(), &[table_byte(*table)]],
            ),
            ToPriv::DumpMore { dump } => put(out, DUMP_MORE, &[&dump.to_le_bytes()]),
            ToPriv::DumpCancel { dump } => put(out, DUMP_CANCEL, &[&dump.to_le_bytes()]),
            ToPriv::Demote { raise } => put(out, DEMOTE, &[&[u8::from(*raise)]]),
            ToPriv::Ike { id, active } => put(out, IKE, &[&id.to_le_bytes(), &[u8::from(*active)]]),
            ToPriv::LinkState => put(out, LINK_STATE_REQ, &[]),
            ToPriv::Reload => put(out, RELOAD, &[]),
            ToPriv::Reloaded { ok, message } => {
                if message.len() > MAX_REASON {
                    return Err(bad_len(RELOADED, 1 + message.len()));
                }
                put(out, RELOADED, &[&[u8::from(*ok)], message.as_bytes()])
            }
        }
    }

    fn decode(frame: &[u8]) -> Result<ToPriv, ProtoError> {
        let (ty, p) = split(frame)?;
        Ok(match ty {
            DUMP_START => {
                let mut f = Fields::fixed(ty, p, 5)?;
                let dump = f.u32()?;
                let table = f.table()?;
                ToPriv::DumpStart { dump, table }
            }
            DUMP_MORE => ToPriv::DumpMore {
                dump: Fields::fixed(ty, p, 4)?.u32()?,
            },
            DUMP_CANCEL => ToPriv::DumpCancel {
                dump: Fields::fixed(ty, p, 4)?.u32()?,
            },
            DEMOTE => ToPriv::Demote {
                raise: Fields::fixed(ty, p, 1)?.flag()?,
            },
            IKE => {
                let mut f = Fields::fixed(ty, p, 5)?;
                let id = f.u32()?;
                let active = f.flag()?;
                ToPriv::Ike { id, active }
            }
            LINK_STATE_REQ => {
                Fields::fixed(ty, p, 0)?;
                ToPriv::LinkState
            }
            RELOAD => {
                Fields::fixed(ty, p, 0)?;
                ToPriv::Reload
            }
            RELOADED => {
                let mut f = Fields::variable(ty, p, 1, 0, MAX_REASON)?;
                let ok = f.flag()?;
                let message = std::str::from_utf8(f.rest())
                    .map_err(|_| ProtoError::NotUtf8 { ty })?
                    .to_owned();
                ToPriv::Reloaded { ok, message }
            }
            other => return Err(ProtoError::UnknownType(other)),
        })
    }
}

impl Message for ToNet {
    fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                ToNet::DumpRecords { records, .. } => 4 + records.len(),
                ToNet::DumpEnd { .. } | ToNet::IkeResult { .. } => 5,
                ToNet::DemoteResult { .. } | ToNet::LinkState { .. } | ToNet::Pfsync { .. } => 1,
                ToNet::CarpUnreadable | ToNet::Shutdown => 0,
                ToNet::Config { text } => text.len(),
                ToNet::ReloadRefused { reason } => reason.len(),
                ToNet::PeerAddrs { addrs } => addrs.len() * ADDR_LEN,
            }
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        match self {
            ToNet::DumpRecords { dump, records } => encode_dump_records(out, *dump, records),
            ToNet::DumpEnd { dump, ok } => {
                put(out, DUMP_END, &[&dump.to_le_bytes(), &[u8::from(*ok)]])
            }
            ToNet::DemoteResult { ok } => put(out, DEMOTE_RESULT, &[&[u8::from(*ok)]]),
            ToNet::IkeResult { id, ok } => {
                put(out, IKE_RESULT, &[&id.to_le_bytes(), &[u8::from(*ok)]])
            }
            ToNet::LinkState { state } => put(out, LINK_STATE, &[&[*state]]),
            ToNet::CarpUnreadable => put(out, CARP_UNREADABLE, &[]),
            ToNet::Config { text } => put(out, CONFIG, &[text]),
            ToNet::Shutdown => put(out, SHUTDOWN, &[]),
            ToNet::Pfsync { up } => put(out, PFSYNC, &[&[u8::from(*up)]]),
            ToNet::ReloadRefused { reason } => {
                if reason.len() > MAX_REASON {
                    return Err(bad_len(RELOAD_REFUSED, reason.len()));
                }
                put(out, RELOAD_REFUSED, &[reason.as_bytes()])
            }
            ToNet::PeerAddrs { addrs } => {
                if addrs.len() > MAX_PEERS {
                    return Err(bad_len(PEER_ADDRS, addrs.len() * ADDR_LEN));
                }
                let bytes: Vec<[u8; ADDR_LEN]> = addrs.iter().map(encode_addr).collect();
                let parts: Vec<&[u8]> = bytes.iter().map(|b| &b[..]).collect();
                put(out, PEER_ADDRS, &parts)
            }
        }
    }

    fn decode(frame: &[u8]) -> Result<ToNet, ProtoError> {
        let (ty, p) = split(frame)?;
        Ok(match ty {
            DUMP_RECORDS => {
                let mut f = Fields::variable(ty, p, 4, 8, MAX_BATCH_BYTES)?;
                let dump = f.u32()?;
                let records = f.rest();
                if !records_ok(records.len()) {
                    return Err(bad_len(ty, p.len()));
                }
                ToNet::DumpRecords {
                    dump,
                    records: SecretBytes::from_slice(records),
                }
            }
            DUMP_END => {
                let mut f = Fields::fixed(ty, p, 5)?;
                let dump = f.u32()?;
                let ok = f.flag()?;
                ToNet::DumpEnd { dump, ok }
            }
            DEMOTE_RESULT => ToNet::DemoteResult {
                ok: Fields::fixed(ty, p, 1)?.flag()?,
            },
            IKE_RESULT => {
                let mut f = Fields::fixed(ty, p, 5)?;
                let id = f.u32()?;
                let ok = f.flag()?;
                ToNet::IkeResult { id, ok }
            }
            LINK_STATE => ToNet::LinkState {
                state: Fields::fixed(ty, p, 1)?.u8()?,
            },
            CARP_UNREADABLE => {
                Fields::fixed(ty, p, 0)?;
                ToNet::CarpUnreadable
            }
            CONFIG => ToNet::Config {
                text: SecretBytes::from_slice(
                    Fields::variable(ty, p, 0, 0, MAX_CONFIG_BYTES)?.rest(),
                ),
            },
            SHUTDOWN => {
                Fields::fixed(ty, p, 0)?;
                ToNet::Shutdown
            }
            RELOAD_REFUSED => {
                let f = Fields::variable(ty, p, 0, 0, MAX_REASON)?;
                let reason = std::str::from_utf8(f.rest())
                    .map_err(|_| ProtoError::NotUtf8 { ty })?
                    .to_owned();
                ToNet::ReloadRefused { reason }
            }
            PFSYNC => ToNet::Pfsync {
                up: Fields::fixed(ty, p, 1)?.flag()?,
            },
            PEER_ADDRS => {
                let mut f = Fields::variable(ty, p, 0, 0, MAX_PEERS * ADDR_LEN)?;
                if p.len() % ADDR_LEN != 0 {
                    return Err(bad_len(ty, p.len()));
                }
                let mut addrs = Vec::with_capacity(p.len() / ADDR_LEN);
                for _ in 0..p.len() / ADDR_LEN {
                    addrs.push(decode_addr(ty, f.bytes::<ADDR_LEN>()?)?);
                }
                ToNet::PeerAddrs { addrs }
            }
            other => return Err(ProtoError::UnknownType(other)),
        })
    }
}

/// [`ToNet::DumpRecords`] encoded from borrowed records: the privileged
/// process sends a batch straight from its copy of the dump.
pub fn encode_dump_records(out: &mut Vec<u8>, dump: u32, records: &[u8]) -> Result<(), ProtoError> {
    if !records_ok(records.len()) {
        return Err(bad_len(DUMP_RECORDS, 4 + records.len()));
    }
    put(out, DUMP_RECORDS, &[&dump.to_le_bytes(), records])
}

/// Dump records: at least 8 bytes, whole 4-byte units (netlink's
/// alignment; PF_KEY's 8 is a multiple), within the batch limit.
fn records_ok(len: usize) -> bool {
    len >= 8 && len.is_multiple_of(4) && len <= MAX_BATCH_BYTES
}
