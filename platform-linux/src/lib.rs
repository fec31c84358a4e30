//! The Linux platform layer of sasyncd: the kernel's IPsec states and
//! policies, read, watched and written through XFRM netlink.
//!
//! * [`nl`], [`xfrm`], [`rewrite`], [`dialect`]: re-exported from
//!   `sasyncd_core::xfrm` (no_std, no heap, where the node and the
//!   simulator's XFRM kernel use them too): netlink framing; XFRM numbers,
//!   layouts, checked views of state and policy records and their
//!   identities; a record one kernel reported, as a request another kernel
//!   accepts; the kernel dialect.
//! * [`socket`]: the socket: requests with acknowledgement, full dumps,
//!   the event stream; opened in any network namespace.
//! * [`mirror`]: one kernel's tables and changes applied to another (a
//!   slave's snapshot and its live updates).
//! * [`replay`]: outbound sequence numbers watched (replay events),
//!   carried, and moved past the last one carried at a takeover.
//! * [`addr`]: the role keepalived gives the node, from the virtual
//!   address's presence on an interface (rtnetlink).
//! * [`trackfile`]: demotion through keepalived's `track_file`.
//! * [`confine`]: the network process's seccomp filter (and why no
//!   Landlock).
//!
//! # Why XFRM netlink and not PF_KEY, for every job
//!
//! Linux offers both: `af_key` (PF_KEY v2 with KAME extensions) and
//! `NETLINK_XFRM`, the native interface that strongSwan and libreswan use.
//! Netlink serves each of the three jobs better:
//!
//! * **Watching changes.** Both announce every add, update and delete,
//!   whoever made it (states and policies added over netlink reach PF_KEY
//!   sockets too). But PF_KEY's copy drops what it cannot say: marks
//!   (shown in the guest: test `pfkey_loses_the_marks_netlink_keeps`),
//!   XFRM interface ids, output marks, the ESN replay state, offload. A
//!   slave fed from PF_KEY would build a different state: a marked state
//!   copied without its mark matches other traffic. The netlink event carries the whole object, and its
//!   header names the port of the writer, so a watcher skips its own
//!   writes.
//! * **Full dumps.** `XFRM_MSG_GETSA`/`GETPOLICY` with `NLM_F_DUMP` return
//!   the same records as the events, many to a datagram (up to 32 KiB,
//!   sized by the reader's buffer); PF_KEY's `SADB_DUMP` sends one message
//!   per state. Measured in the guest (`tests/kernel/run`, test
//!   `dump_speed_netlink_vs_pfkey`, Linux 6.1 under QEMU TCG, release
//!   build, best of 3, records only counted): 2000 states dump in 6.8 ms
//!   through netlink and 27.6 ms through PF_KEY (in a busier run, 18 ms
//!   and 48–60 ms: netlink 2.6–4.5 times faster).
//! * **Writing.** Only netlink takes the current lifetime counters and the
//!   replay state of a new state (`XFRMA_LTIME_VAL`, `XFRMA_REPLAY_VAL`):
//!   a copied outbound state continues at the sequence number the
//!   original reached, so the peer's anti-replay window does not drop the
//!   new master's packets after a failover (on OpenBSD, pfsync's job;
//!   on Linux nothing else does it), and byte lifetimes run out together.
//!   Policies keep their index and priority; PF_KEY's `SADB_X_SPDADD`
//!   cannot set marks or interface ids.
//!
//! The kernel facts used: `net/xfrm/xfrm_user.c` (Linux 6.1, the Debian 12
//! kernel the guest boots): a delete event carries an `xfrm_usersa_id`
//! with the whole state in `XFRMA_SA` and its mark at the top level
//! (`xfrm_notify_sa`); an add applies `XFRMA_LTIME_VAL` and
//! `XFRMA_REPLAY_VAL` (`xfrm_update_ae_params`); dump requests are
//! answered before any payload check. Each is exercised by a test in the
//! guest.
//!
//! # How Linux's messages meet the core: a dialect, not a translation
//!
//! The core (`sasyncd_core::pfkey`) reads, filters, rewrites and digests
//! OpenBSD PF_KEY messages. Translating XFRM records into OpenBSD PF_KEY
//! at this edge would lose what OpenBSD's format has no field for (marks,
//! interface ids, output marks, ESN replay, multiple policy templates,
//! per-policy priorities and actions) and would make a Linux slave's
//! kernel differ from its master's: the one thing sasyncd must not do.
//! So the choice is a **kernel dialect**: the bytes that travel between
//! peers are this kernel's own records (dump records and events, as
//! [`rewrite`] turns them into requests on the receiving side), the core
//! is told which dialect its peers speak, and the dialect supplies what
//! the core needs per message: its identity ([`xfrm::SaKey`],
//! [`xfrm::PolicyKey`]: the kernel's own uniqueness rules, which the
//! core's delta keys and digests use), the filter (larval states and
//! per-socket policies are not synced; a node's own writes are recognised
//! by the event's port id, as PF_KEY's by the writer pid), and the
//! rewrite into a request ([`rewrite`]). A cluster that mixes kernels is
//! then refused at HELLO by its dialect, as issue 20 asks (HELLO byte 83,
//! `core/src/wire/README.md`; tested by `tests/tests/dialect.rs`). The trait
//! is `sasyncd_core::dialect::Dialect`, implemented here by
//! [`dialect::Xfrm`]; the node is generic over it, and the daemon builds
//! the XFRM node on Linux (`sasyncd/src/daemon.rs`).
//!
//! In the core's platform contract (`sasyncd_core::platform::Platform`),
//! as the daemon's network process fills it on Linux (`sasyncd::linux`):
//! `pfkey_write` is [`socket::XfrmSocket::send_request`] of the dialect's
//! request (not waiting: the acknowledgement or refusal is read back on
//! the same socket); `set_promisc` joins or leaves
//! [`xfrm::group::SA`], [`xfrm::group::POLICY`] and
//! [`xfrm::group::EXPIRE`] on that socket
//! ([`socket::XfrmSocket::set_groups`]); `dump_start`/`dump_next` are the
//! privileged process's [`socket::XfrmSocket::dump`] of `GETSA` or
//! `GETPOLICY`, copied at start as the contract asks; a watch's `ENOBUFS`
//! (events lost) is the node's cue to digest at once
//! (`Node::handle_events_lost`), so that slaves repair what they missed.
//!
//! # What is proven, and where
//!
//! Unit tests (any Linux host): framing, layouts, views, identities and
//! rewrites, on records built field by field as the kernel lays them out.
//! In the guest (`tests/kernel/run`, a stock Debian kernel under QEMU):
//! `tests/guest.rs` dumps what `ip xfrm` wrote; copies namespace A's
//! states and policies into B (stale entries in B updated or deleted) and
//! compares with `ip -s xfrm state/policy`, traffic counters and replay
//! state included; mirrors twelve live changes and a hard expiry from A's
//! event stream into B, comparing after each; shows events naming their
//! writer's port; shows a watch that fell behind told so (`ENOBUFS`) and
//! a snapshot repairing the copy; shows PF_KEY's records without the
//! marks netlink reports; times the dumps above and a snapshot of 2000
//! states; shows replay events carrying an outbound state's number with
//! traffic, a copy at an older number dropped by the peer's anti-replay
//! window, and the takeover jump ([`replay::takeover`]) making it flow
//! again (`ip -s xfrm state` shows the new `oseq`; an ESN state crosses
//! 2^32); measures events against a periodic read; and runs the XFRM
//! dialect on real records (`the_xfrm_dialect_on_real_records`): its
//! requests rebuild A's tables in B, equal per `ip -s xfrm`, every copy
//! has its original's identity and digest form, and our own writes are
//! told from a keying daemon's by the event's port.
//!
//! On any Linux host as root: the address watch and the track file against
//! a real keepalived in two network namespaces
//! (`sasyncd/tests/keepalived.rs`), and the seccomp filter in a forked
//! process (`sasyncd::linux` tests).
//!
//! The failover bench (`tests/kernel/run --failover`, script
//! `tests/kernel/failover`) runs keepalived, strongSwan and a numbered
//! traffic stream (example `failover_traffic`) in the guest and kills the
//! master: the baseline (the backup's charon renegotiates) beside the
//! sasyncd daemons.

pub mod addr;
pub mod confine;
pub mod mirror;
pub mod replay;
pub mod socket;
pub mod trackfile;

// The pure XFRM code (framing, views, identities, rewrites, the dialect)
// lives in the core, where the node and the simulator use it too.
pub use sasyncd_core::xfrm;
pub use sasyncd_core::xfrm::{dialect, nl, rewrite};
