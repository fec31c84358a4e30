//! The development-mode protocol between `sasyncd --dev-host` (and tests)
//! and `sasyncd-devhost`, the process in `sasyncd-sim` that plays one
//! gateway's kernel, carp interface and IKE daemon: the frame format both
//! sides speak ([`frame`], [`framer`], [`proto`]) and the client side
//! ([`client`], unix only). A crate of its own so the production daemon
//! links this small client and not the simulator that serves it.
//!
//! # Wire format
//!
//! The devhost listens on a unix stream socket. Every connection starts
//! with a **hello frame** from the client and a **status frame** from the
//! devhost; then it speaks its role's protocol.
//!
//! **Frames** (everything but PF_KEY traffic): a u32 big-endian payload
//! length, then the payload. A client's frames carry at most
//! [`MAX_REQUEST`](proto::MAX_REQUEST) (4096) bytes, the devhost's at most
//! [`MAX_REPLY`](proto::MAX_REPLY) (1 GiB, for dumps of a million SAs). A longer frame is not read:
//! the devhost logs one line, sends an error status and disconnects.
//!
//! **Hello** payload: `"SDH1"`, a role byte, and for pfkey the pid (u32
//! big-endian, not 0):
//!
//! | role | byte | then |
//! |---|---|---|
//! | pfkey | 1 | pid |
//! | host | 2 | — |
//! | carp | 3 | — |
//! | ctl | 4 | — |
//!
//! **Status** (the hello's answer and every host reply): byte 0 = ok,
//! followed by the result; byte 1 = error, followed by a UTF-8 message.
//! After refusing a hello the devhost closes the connection. A pfkey hello
//! is refused for a pid that already has a PF_KEY socket here and for
//! the devhost's IKE stand-in (`IKE_PID` in `sasyncd_sim::devhost`).
//!
//! **pfkey**: after the status frame, raw PF_KEY v2 messages in both
//! directions, each self-delimited by its 16-byte `sadb_msg` header
//! (`sadb_msg_len` in 8-byte units, host byte order like all PF_KEY
//! fields). Each message the client writes goes to the kernel model as a
//! write by the hello's pid (so `sadb_msg_pid` must be that pid), and the
//! client reads a reply (see `sasyncd_sim::devhost::reply` for its exact content: the header
//! echoed with `sadb_msg_errno` on failure; on success the header with
//! errno 0, GETSPI and GET with their result). `SADB_X_PROMISC` switches
//! the socket's promiscuous mode; a promiscuous client then receives the
//! kernel's wrapped copy of every valid request any writer makes (the IKE
//! stand-in, `ctl` edits, other pfkey clients — and, as on OpenBSD, its
//! own, whose outer `sadb_msg_seq` is its pid), before the writer's reply.
//! Copies wait in the kernel's per-socket queue (8 KiB, excess dropped and
//! counted, as on OpenBSD) until the client's unsent output is below that
//! size. A header with another version or a length under 16 bytes is
//! answered with EINVAL and skipped; a length over 4096 bytes
//! (`PFKEY_MSG_MAXSZ`) disconnects the client.
//!
//! **host**: request frames, each answered by one status frame. Requests
//! (integers big-endian):
//!
//! | request | payload | ok result |
//! |---|---|---|
//! | Dump | `1`, table (0 SADB, 1 SPD) | the sysctl dump (`net.key.sadb_dump` all types / `net.key.spd_dump`) |
//! | Demote | `2`, i32 delta | i32 new counter (refused outside 0..=255; unchanged then) |
//! | GetDemote | `3` | i32 counter |
//! | Ike | `4`, 0 passive / 1 active | empty (refused after `ctl ike refuse`) |
//! | LinkState | `5` | u8 `LINK_STATE_*` of the carp interface |
//! | Pfsync | `6` | u8 1 if a pfsync interface is up (`ctl pfsync up\|down`), else 0 |
//!
//! A malformed request gets an error status; the connection stays.
//!
//! **carp**: after the status frame the devhost sends a one-byte frame
//! with the current link state (4 `LINK_STATE_UP` = MASTER, 2
//! `LINK_STATE_DOWN` = BACKUP, 0 `LINK_STATE_UNKNOWN` = INIT), then one
//! each time it changes. A watcher that sends anything is disconnected.
//!
//! **ctl**: request frames holding one UTF-8 command line; each is
//! answered by a UTF-8 frame: `ok`, `ok WORDS`, `ok` followed by
//! newline-separated lines, or `error: MESSAGE`. The commands are in
//! `sasyncd_sim::devhost::ctl::HELP`.
//!

#[cfg(unix)]
pub mod client;
pub mod frame;
pub mod framer;
pub mod proto;

#[cfg(unix)]
pub use client::{connect_carp, connect_pfkey, ctl, CarpWatch, HostClient};
pub use framer::{PfkeyFrameError, PfkeyFramer};
