//! The channel between the privileged process and the network process.
//!
//! The network process asks for what needs root ([`ToPriv`]): kernel
//! dumps, carp demotion, IKE daemon control, the carp link state, a reload.
//! The privileged process answers and pushes events ([`ToNet`]): dump
//! records in batches the network side asks for one at a time (flow
//! control), results, a new configuration after SIGHUP (or why the file
//! was refused), and shutdown.
//!
//! Each side trusts the other only as far as the format: every length is
//! checked, a message is at most [`MAX_FRAME`] bytes, and anything
//! malformed is a [`ProtoError`], never a panic. Buffers that may hold key
//! material (dump records, configuration text, the channel's own buffers)
//! are wiped when dropped and hidden from `Debug`.
//!
//! # Wire format
//!
//! A stream of messages over a `SOCK_STREAM` socketpair. Both ends are the
//! same host; integers are little-endian anyway, so the bytes are the same
//! on every host (test vectors and fuzz seeds are portable) at the cost of
//! a byte swap on big-endian machines.
//!
//! ```text
//! offset  size  field
//!      0     4  payload length N, u32 (0 ..= MAX_PAYLOAD = 1 MiB)
//!      4     2  message type, u16
//!      6     2  reserved, must be 0
//!      8     N  payload
//! ```
//!
//! | type | message | payload |
//! |---|---|---|
//! | `0x0001` | `ToPriv::DumpStart` | dump u32, table u8 (1 SADB, 2 SPD: the `NET_KEY_*_DUMP` numbers) |
//! | `0x0002` | `ToPriv::DumpMore` | dump u32 |
//! | `0x0003` | `ToPriv::DumpCancel` | dump u32 |
//! | `0x0004` | `ToPriv::Demote` | raise u8 (0/1) |
//! | `0x0005` | `ToPriv::Ike` | id u32, active u8 (0/1) |
//! | `0x0006` | `ToPriv::LinkState` | none |
//! | `0x0007` | `ToPriv::Reload` | none |
//! | `0x0008` | `ToPriv::Reloaded` | ok u8 (0/1), UTF-8 text to the end (≤ [`MAX_REASON`]) |
//! | `0x0081` | `ToNet::DumpRecords` | dump u32, records to the end (8 ..= [`MAX_BATCH_BYTES`], a multiple of 4) |
//! | `0x0082` | `ToNet::DumpEnd` | dump u32, ok u8 (0/1) |
//! | `0x0083` | `ToNet::DemoteResult` | ok u8 (0/1) |
//! | `0x0084` | `ToNet::IkeResult` | id u32, ok u8 (0/1) |
//! | `0x0085` | `ToNet::LinkState` | state u8 (`LINK_STATE_*`) |
//! | `0x0086` | `ToNet::CarpUnreadable` | none |
//! | `0x0087` | `ToNet::Config` | the configuration file's bytes to the end (≤ 1 MiB) |
//! | `0x0088` | `ToNet::Shutdown` | none |
//! | `0x0089` | `ToNet::ReloadRefused` | UTF-8 text to the end (≤ [`MAX_REASON`]) |
//! | `0x008a` | `ToNet::Pfsync` | up u8 (0/1) |
//! | `0x008b` | `ToNet::PeerAddrs` | per peer of the coming `Config`, in file order: family u8 (4/6), 16 address bytes (IPv4 in the first 4); ≤ [`MAX_PEERS`](sasyncd_core::config::MAX_PEERS) |
//!
//! Fixed-size payloads must have exactly their size, flags exactly 0 or 1.
//! The two directions use disjoint type ranges, so a message sent the wrong
//! way is an unknown type. The encoding is canonical: a message decodes
//! only from the bytes it encodes to.
//!
//! A dump batch holds whole kernel records (PF_KEY or XFRM netlink), at most [`BATCH_BYTES`] unless
//! a single record is larger (up to [`MAX_RECORD_BYTES`], the largest
//! PF_KEY message); the network side sends `DumpMore` when it has room for
//! the next one, so at most one batch per dump is in flight.

mod channel;
mod deframer;
mod error;
mod msg;

pub use channel::{Channel, NetChannel, PrivChannel, ReadStatus, MAX_QUEUED};
pub use deframer::Deframer;
pub use error::ProtoError;
pub use msg::{
    frame_len, type_name, types, Message, ToNet, ToPriv, BATCH_BYTES, HEADER_LEN, MAX_BATCH_BYTES,
    MAX_FRAME, MAX_PAYLOAD, MAX_REASON, MAX_RECORD_BYTES,
};

#[cfg(test)]
mod tests;
