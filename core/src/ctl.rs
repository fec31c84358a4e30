//! Control (SYNCCTL) messages: the plaintext of control frames.
//!
//! Every message starts with a big-endian `u32` type. The legacy messages
//! (reference §10) are exactly three big-endian words — type, `data`,
//! `data2` — 12 bytes, and are what an OpenBSD sasyncd understands. The v2
//! additions keep the same first word and use type numbers from 16 up, so a
//! legacy peer never mistakes one for a message it knows (it logs types > 5
//! and ignores them); they are only sent inside v2 frames, whose sealing
//! makes the positions they carry trustworthy.
//!
//! Decoding is strict about what it returns (typed values only) but, for
//! legacy messages, as lenient as the original about what it ignores: the
//! unused `data`/`data2` words and bytes after the twelfth are not looked
//! at, because the C daemon does not look at them either.

use crate::dialect::IDENTITY_MAX;
use crate::state::{Position, RunState};

/// Length of a legacy control message; shorter input is [`CtlError::Truncated`].
pub const LEGACY_LEN: usize = 12;

/// Length of the longest control message ([`Ctl::Buckets`]).
pub const MAX_LEN: usize = 4 + 16 + 4 + 8 * BUCKETS_PER_CHUNK + 8;

/// Buckets of the anti-entropy digest (see `node::fingerprint`): the
/// identity space is cut into this many parts.
pub const BUCKETS: usize = 256;

/// A set of buckets as a bitmap (bucket `b` is bit `b % 8` of byte `b / 8`).
pub type BucketSet = [u8; BUCKETS / 8];

/// Buckets whose sums one [`Ctl::Buckets`] message carries.
pub const BUCKETS_PER_CHUNK: usize = 64;

/// Control message type: the first big-endian word of every message.
///
/// 0..=5 are the legacy numbers (reference §10.2); `Reserved` and `Unknown`
/// never head a message, they only appear as the subject of an error.
/// The v2 types start at 16 to stay clear of any future legacy number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CtlType {
    /// 0: "about PF_KEY data / nothing in particular" in `CTL_ERROR`.
    Reserved = 0,
    /// 1: `CTL_STATE`, the sender's run state.
    State = 1,
    /// 2: `CTL_ERROR`, a complaint about a message of some type.
    Error = 2,
    /// 3: `CTL_ACK`, acknowledges a message and carries the acker's state.
    Ack = 3,
    /// 4: `CTL_ENDSNAP`, a master finished sending a snapshot.
    EndSnap = 4,
    /// 5: `CTL_UNKNOWN`, subject of the error sent for a too-short message.
    Unknown = 5,
    /// 16 (v2): a slave has applied the stream up to a position.
    AckSeq = 16,
    /// 17 (v2): a slave asks to resume after a position.
    Resync = 17,
    /// 18 (v2): a full snapshot follows.
    SnapBegin = 18,
    /// 19 (v2): the snapshot is complete.
    SnapEnd = 19,
    /// 20 (v2): anti-entropy digest of the master's tables.
    Digest = 20,
    /// 21 (v2): the delta stream resumes after a position (no snapshot).
    Resume = 21,
    /// 22 (v2): per-bucket sums of the master's tables.
    Buckets = 22,
    /// 23 (v2): a slave asks for the entries of some buckets again.
    Repair = 23,
    /// 24 (v2): the last outbound sequence number of one SA.
    OutSeq = 24,
}

impl CtlType {
    /// The wire value.
    pub const fn to_u32(self) -> u32 {
        self as u32
    }

    /// Parses a wire value; `None` for numbers that name no type.
    pub const fn from_u32(v: u32) -> Option<CtlType> {
        Some(match v {
            0 => CtlType::Reserved,
            1 => CtlType::State,
            2 => CtlType::Error,
            3 => CtlType::Ack,
            4 => CtlType::EndSnap,
            5 => CtlType::Unknown,
            16 => CtlType::AckSeq,
            17 => CtlType::Resync,
            18 => CtlType::SnapBegin,
            19 => CtlType::SnapEnd,
            20 => CtlType::Digest,
            21 => CtlType::Resume,
            22 => CtlType::Buckets,
            23 => CtlType::Repair,
            24 => CtlType::OutSeq,
            _ => return None,
        })
    }

    /// Name for logs; the legacy ones are spelt as the original logs them.
    pub const fn name(self) -> &'static str {
        match self {
            CtlType::Reserved => "RESERVED",
            CtlType::State => "CTL_STATE",
            CtlType::Error => "CTL_ERROR",
            CtlType::Ack => "CTL_ACK",
            CtlType::EndSnap => "CTL_ENDSNAP",
            CtlType::Unknown => "CTL_UNKNOWN",
            CtlType::AckSeq => "CTL_ACKSEQ",
            CtlType::Resync => "CTL_RESYNC",
            CtlType::SnapBegin => "CTL_SNAPBEGIN",
            CtlType::SnapEnd => "CTL_SNAPEND",
            CtlType::Digest => "CTL_DIGEST",
            CtlType::Resume => "CTL_RESUME",
            CtlType::Buckets => "CTL_BUCKETS",
            CtlType::Repair => "CTL_REPAIR",
            CtlType::OutSeq => "CTL_OUTSEQ",
        }
    }

    /// Whether an OpenBSD sasyncd knows this number (0..=5).
    pub const fn is_legacy(self) -> bool {
        (self as u32) <= 5
    }
}

impl core::fmt::Display for CtlType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A control message.
///
/// Layouts, all integers big-endian, `type` being [`CtlType::to_u32`]:
///
/// | Variant | Bytes | Layout after the 4-byte type |
/// |---|---|---|
/// | `State` | 12 | state `u32` (0..=3), `0u32` |
/// | `Error` | 12 | subject type `u32`, `0u32` |
/// | `Ack` | 12 | acknowledged type `u32`, acker's state `u32` |
/// | `EndSnap` | 12 | `0u32`, `0u32` |
/// | `AckSeq`, `Resync`, `SnapEnd`, `Resume` | 20 | epoch `u64`, seq `u64` |
/// | `SnapBegin` | 28 or 60 | epoch `u64`, seq `u64`, flags `u32` (bit 0 = sweep, bit 1 = only some buckets, others 0), expected entries `u32`, then with bit 1 the bucket set `[u8; 32]` |
/// | `Digest` | 96 | epoch `u64`, seq `u64`, sas `u32`, flows `u32`, SA digest `[u8; 32]`, flow digest `[u8; 32]`, flags `u32` (bit 0 = partial: the tables changed while they were read, the whole-table digests do not apply) |
/// | `Buckets` | 548 | epoch `u64`, seq `u64`, first bucket `u32`, 64 sums `u64`, unknown-bucket mask `u64` (bit i: bucket first + i changed while read) |
/// | `Repair` | 52 | epoch `u64`, seq `u64`, bucket set `[u8; 32]` |
/// | `OutSeq` | 16 + n | sequence number `u64`, identity length `u32` (n, 1..=96), the SA's identity bytes (`Dialect::identity_bytes`) |
// `Buckets` is 548 bytes and the rest are small; boxing needs a heap core
// has not, and a decoded `Ctl` lives on the stack only while it is handled.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ctl {
    /// `CTL_STATE`: the sender's run state.
    State(RunState),
    /// `CTL_ERROR`: the sender refused a message of this type.
    Error(CtlType),
    /// `CTL_ACK`: acknowledges a message of type `about`; `state` is the
    /// acknowledger's own run state.
    Ack {
        /// The type being acknowledged (the original only acks `State`).
        about: CtlType,
        /// The acknowledger's run state.
        state: RunState,
    },
    /// `CTL_ENDSNAP`: the last message of a legacy snapshot.
    EndSnap,
    /// v2, slave → master: everything up to this position is applied.
    AckSeq(Position),
    /// v2, slave → master: resume the stream after this position;
    /// [`Position::NONE`] asks for a full snapshot.
    Resync(Position),
    /// v2, master → slave: no snapshot is needed; the delta stream
    /// continues right after this position (the slave's resume point).
    Resume(Position),
    /// v2, master → slave: a snapshot follows (of every bucket, or of
    /// `buckets` only), after which the stream continues at `pos`.
    SnapBegin {
        /// Where the delta stream continues after the snapshot.
        pos: Position,
        /// The slave must delete what the snapshot did not contain (in the
        /// buckets it covers).
        sweep: bool,
        /// About how many entries follow (0: unknown), so the slave's
        /// platform can size the marks.
        expect: u32,
        /// `Some`: only the entries of these buckets follow (a repair).
        buckets: Option<BucketSet>,
    },
    /// v2, master → slave: the snapshot announced by `SnapBegin` is complete.
    SnapEnd {
        /// The position the slave is at once the snapshot is applied.
        pos: Position,
    },
    /// v2, master → slave: order-independent digests of the master's SA
    /// and flow tables at `pos`, so a slave can detect silent divergence.
    Digest {
        /// The position the digests describe.
        pos: Position,
        /// Number of SAs digested.
        sas: u32,
        /// Number of flows digested.
        flows: u32,
        /// Digest over the SAs.
        sa_digest: [u8; 32],
        /// Digest over the flows.
        flow_digest: [u8; 32],
        /// The tables changed while they were read: the whole-table digests
        /// do not apply; the buckets not marked unknown still do.
        partial: bool,
    },
    /// v2, master → slave: the sums of buckets `first..first + 64` at
    /// `pos`, sent right after the `Digest` they belong to.
    Buckets {
        /// The position of the digest.
        pos: Position,
        /// The first bucket.
        first: u32,
        /// Each bucket's sum.
        sums: [u64; BUCKETS_PER_CHUNK],
        /// Bit `i`: bucket `first + i` changed while it was read.
        unknown: u64,
    },
    /// v2, slave → master: the slave's tables differ from the digest at
    /// `pos` in these buckets; send their entries again.
    Repair {
        /// The digest's position.
        pos: Position,
        /// The buckets that differ.
        buckets: BucketSet,
    },
    /// v2, master → slave: the last outbound sequence number the master's
    /// kernel reported for one SA, so that a slave which takes over moves
    /// it past (`wire/README.md`, CTL_OUTSEQ). Not part of the delta
    /// stream: it has no position.
    OutSeq {
        /// The sequence number (64 bits: extended sequence numbers).
        seq: u64,
        /// Bytes of `id` in use (1..=[`IDENTITY_MAX`]).
        len: u8,
        /// The SA's identity bytes, zero after `len`.
        id: [u8; IDENTITY_MAX],
    },
}

/// Why a control message could not be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtlError {
    /// Shorter than its type requires (the original answers a message
    /// under 12 bytes with `CTL_ERROR(CTL_UNKNOWN)`).
    Truncated,
    /// The type word names no message (includes 0 and 5, which are only
    /// subjects of errors).
    UnknownType(u32),
    /// A run state outside 0..=3.
    BadState(u32),
    /// The subject of an error or ack names no type.
    BadAbout(u32),
    /// `SnapBegin` or `Digest` flags with unknown bits set.
    BadFlags(u32),
    /// A `Buckets` chunk that does not start at a chunk boundary.
    BadBucket(u32),
    /// Bytes after the end of a v2 message.
    Trailing,
    /// An identity length outside 1..=96.
    BadIdentity(u32),
    /// The output buffer cannot hold the encoding.
    BufferTooSmall,
}

impl core::fmt::Display for CtlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CtlError::Truncated => f.write_str("control message too short"),
            CtlError::UnknownType(t) => write!(f, "unknown control message type {t}"),
            CtlError::BadState(s) => write!(f, "invalid run state {s} in control message"),
            CtlError::BadAbout(t) => write!(f, "control message refers to unknown type {t}"),
            CtlError::BadFlags(x) => write!(f, "unknown flags {x:#x} in control message"),
            CtlError::BadBucket(b) => write!(f, "bucket chunk starting at {b}"),
            CtlError::Trailing => f.write_str("trailing bytes after control message"),
            CtlError::BadIdentity(n) => write!(f, "identity of {n} bytes in control message"),
            CtlError::BufferTooSmall => f.write_str("buffer too small for control message"),
        }
    }
}

impl core::error::Error for CtlError {}

/// `SnapBegin` flag: the slave deletes what the snapshot did not contain.
const FLAG_SWEEP: u32 = 1;
/// `SnapBegin` flag: only some buckets follow; their set comes last.
const FLAG_BUCKETS: u32 = 2;
/// `Digest` flag: the whole-table digests do not apply.
const FLAG_PARTIAL: u32 = 1;

impl Ctl {
    /// The type word of this message.
    pub const fn ctl_type(&self) -> CtlType {
        match self {
            Ctl::State(_) => CtlType::State,
            Ctl::Error(_) => CtlType::Error,
            Ctl::Ack { .. } => CtlType::Ack,
            Ctl::EndSnap => CtlType::EndSnap,
            Ctl::AckSeq(_) => CtlType::AckSeq,
            Ctl::Resync(_) => CtlType::Resync,
            Ctl::SnapBegin { .. } => CtlType::SnapBegin,
            Ctl::SnapEnd { .. } => CtlType::SnapEnd,
            Ctl::Resume(_) => CtlType::Resume,
            Ctl::Digest { .. } => CtlType::Digest,
            Ctl::Buckets { .. } => CtlType::Buckets,
            Ctl::Repair { .. } => CtlType::Repair,
            Ctl::OutSeq { .. } => CtlType::OutSeq,
        }
    }

    /// Whether this message may be sent to an OpenBSD sasyncd.
    pub const fn is_legacy(&self) -> bool {
        self.ctl_type().is_legacy()
    }

    /// Length of the encoding.
    pub const fn encoded_len(&self) -> usize {
        match self {
            Ctl::State(_) | Ctl::Error(_) | Ctl::Ack { .. } | Ctl::EndSnap => LEGACY_LEN,
            Ctl::AckSeq(_) | Ctl::Resync(_) | Ctl::SnapEnd { .. } | Ctl::Resume(_) => 20,
            Ctl::SnapBegin { buckets: None, .. } => 28,
            Ctl::SnapBegin {
                buckets: Some(_), ..
            } => 60,
            Ctl::Digest { .. } => 96,
            Ctl::Buckets { .. } => MAX_LEN,
            Ctl::Repair { .. } => 52,
            Ctl::OutSeq { len, .. } => 16 + *len as usize,
        }
    }

    /// Writes the message to the front of `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CtlError> {
        let len = self.encoded_len();
        let out = out.get_mut(..len).ok_or(CtlError::BufferTooSmall)?;
        let mut w = Writer { out, at: 0 };
        w.u32(self.ctl_type().to_u32())?;
        match *self {
            Ctl::State(s) => {
                w.u32(s.to_u32())?;
                w.u32(0)?;
            }
            Ctl::Error(about) => {
                w.u32(about.to_u32())?;
                w.u32(0)?;
            }
            Ctl::Ack { about, state } => {
                w.u32(about.to_u32())?;
                w.u32(state.to_u32())?;
            }
            Ctl::EndSnap => {
                w.u32(0)?;
                w.u32(0)?;
            }
            Ctl::AckSeq(pos) | Ctl::Resync(pos) | Ctl::SnapEnd { pos } | Ctl::Resume(pos) => {
                w.pos(pos)?
            }
            Ctl::SnapBegin {
                pos,
                sweep,
                expect,
                ref buckets,
            } => {
                w.pos(pos)?;
                let flags = if sweep { FLAG_SWEEP } else { 0 }
                    | if buckets.is_some() { FLAG_BUCKETS } else { 0 };
                w.u32(flags)?;
                w.u32(expect)?;
                if let Some(b) = buckets {
                    w.bytes(b)?;
                }
            }
            Ctl::Buckets {
                pos,
                first,
                ref sums,
                unknown,
            } => {
                w.pos(pos)?;
                w.u32(first)?;
                for s in sums {
                    w.bytes(&s.to_be_bytes())?;
                }
                w.bytes(&unknown.to_be_bytes())?;
            }
            Ctl::Repair { pos, ref buckets } => {
                w.pos(pos)?;
                w.bytes(buckets)?;
            }
            Ctl::OutSeq { seq, len, ref id } => {
                let n = usize::from(len);
                if n == 0 || n > IDENTITY_MAX {
                    return Err(CtlError::BadIdentity(u32::from(len)));
                }
                w.bytes(&seq.to_be_bytes())?;
                w.u32(u32::from(len))?;
                w.bytes(&id[..n])?;
            }
            Ctl::Digest {
                pos,
                sas,
                flows,
                ref sa_digest,
                ref flow_digest,
                partial,
            } => {
                w.pos(pos)?;
                w.u32(sas)?;
                w.u32(flows)?;
                w.bytes(sa_digest)?;
                w.bytes(flow_digest)?;
                w.u32(if partial { FLAG_PARTIAL } else { 0 })?;
            }
        }
        Ok(w.at)
    }

    /// Parses a control message.
    ///
    /// Anything under 12 bytes is [`CtlError::Truncated`] whatever its type,
    /// as in the original. Legacy messages ignore their unused words and
    /// any bytes after the twelfth; v2 messages must be exactly their size.
    #[inline(never)]
    pub fn decode(bytes: &[u8]) -> Result<Ctl, CtlError> {
        if bytes.len() < LEGACY_LEN {
            return Err(CtlError::Truncated);
        }
        let mut r = Reader { bytes, at: 0 };
        let raw = r.u32()?;
        let ty = CtlType::from_u32(raw).ok_or(CtlError::UnknownType(raw))?;
        let msg = match ty {
            CtlType::Reserved | CtlType::Unknown => return Err(CtlError::UnknownType(raw)),
            CtlType::State => Ctl::State(state(r.u32()?)?),
            CtlType::Error => Ctl::Error(about(r.u32()?)?),
            CtlType::Ack => {
                let about = about(r.u32()?)?;
                let state = state(r.u32()?)?;
                Ctl::Ack { about, state }
            }
            CtlType::EndSnap => Ctl::EndSnap,
            CtlType::AckSeq => Ctl::AckSeq(r.pos()?),
            CtlType::Resync => Ctl::Resync(r.pos()?),
            CtlType::SnapEnd => Ctl::SnapEnd { pos: r.pos()? },
            CtlType::Resume => Ctl::Resume(r.pos()?),
            CtlType::SnapBegin => {
                let pos = r.pos()?;
                let flags = r.u32()?;
                if flags & !(FLAG_SWEEP | FLAG_BUCKETS) != 0 {
                    return Err(CtlError::BadFlags(flags));
                }
                let expect = r.u32()?;
                let buckets = if flags & FLAG_BUCKETS != 0 {
                    Some(r.take()?)
                } else {
                    None
                };
                Ctl::SnapBegin {
                    pos,
                    sweep: flags & FLAG_SWEEP != 0,
                    expect,
                    buckets,
                }
            }
            CtlType::Digest => {
                let pos = r.pos()?;
                let sas = r.u32()?;
                let flows = r.u32()?;
                let sa_digest = r.arr32()?;
                let flow_digest = r.arr32()?;
                let flags = r.u32()?;
                if flags & !FLAG_PARTIAL != 0 {
                    return Err(CtlError::BadFlags(flags));
                }
                Ctl::Digest {
                    pos,
                    sas,
                    flows,
                    sa_digest,
                    flow_digest,
                    partial: flags & FLAG_PARTIAL != 0,
                }
            }
            CtlType::Buckets => {
                let pos = r.pos()?;
                let first = r.u32()?;
                if !(first as usize).is_multiple_of(BUCKETS_PER_CHUNK) || first as usize >= BUCKETS
                {
                    return Err(CtlError::BadBucket(first));
                }
                let mut sums = [0u64; BUCKETS_PER_CHUNK];
                for s in sums.iter_mut() {
                    *s = r.u64()?;
                }
                Ctl::Buckets {
                    pos,
                    first,
                    sums,
                    unknown: r.u64()?,
                }
            }
            CtlType::Repair => Ctl::Repair {
                pos: r.pos()?,
                buckets: r.take()?,
            },
            CtlType::OutSeq => {
                let seq = r.u64()?;
                let n = r.u32()?;
                if n == 0 || n as usize > IDENTITY_MAX {
                    return Err(CtlError::BadIdentity(n));
                }
                let end = r.at + n as usize;
                let src = bytes.get(r.at..end).ok_or(CtlError::Truncated)?;
                let mut id = [0u8; IDENTITY_MAX];
                id[..src.len()].copy_from_slice(src);
                r.at = end;
                Ctl::OutSeq {
                    seq,
                    len: n as u8,
                    id,
                }
            }
        };
        if !ty.is_legacy() && r.at != bytes.len() {
            return Err(CtlError::Trailing);
        }
        Ok(msg)
    }
}

fn state(v: u32) -> Result<RunState, CtlError> {
    RunState::from_u32(v).ok_or(CtlError::BadState(v))
}

fn about(v: u32) -> Result<CtlType, CtlError> {
    CtlType::from_u32(v).ok_or(CtlError::BadAbout(v))
}

/// Big-endian writer over a buffer already cut to the message length.
struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), CtlError> {
        let end = self
            .at
            .checked_add(b.len())
            .ok_or(CtlError::BufferTooSmall)?;
        let dst = self
            .out
            .get_mut(self.at..end)
            .ok_or(CtlError::BufferTooSmall)?;
        dst.copy_from_slice(b);
        self.at = end;
        Ok(())
    }
    fn u32(&mut self, v: u32) -> Result<(), CtlError> {
        self.bytes(&v.to_be_bytes())
    }
    fn pos(&mut self, p: Position) -> Result<(), CtlError> {
        self.bytes(&p.epoch.to_be_bytes())?;
        self.bytes(&p.seq.to_be_bytes())
    }
}

/// Big-endian reader; running off the end is [`CtlError::Truncated`].
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], CtlError> {
        let end = self.at.checked_add(N).ok_or(CtlError::Truncated)?;
        let src = self.bytes.get(self.at..end).ok_or(CtlError::Truncated)?;
        let mut a = [0u8; N];
        a.copy_from_slice(src);
        self.at = end;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, CtlError> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Result<u64, CtlError> {
        self.take().map(u64::from_be_bytes)
    }
    fn arr32(&mut self) -> Result<[u8; 32], CtlError> {
        self.take()
    }
    fn pos(&mut self) -> Result<Position, CtlError> {
        Ok(Position {
            epoch: self.u64()?,
            seq: self.u64()?,
        })
    }
}

#[cfg(test)]
mod tests;
