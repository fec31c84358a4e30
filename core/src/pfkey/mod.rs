//! PF_KEY v2 message views, filters, rewrites and the builder (OpenBSD
//! flavour).
//!
//! Everything here works on borrowed bytes: [`Msg`] is a checked view over a
//! message as read from the kernel or a peer, [`filter`] decides what a
//! master forwards, the rewrites turn kernel output (promiscuous copies,
//! sysctl dumps) into requests a slave's kernel accepts, and [`Repr`]
//! describes any message the project writes and emits it into the caller's
//! buffer (the one encoder: the simulator, tests, firmware, benches and fuzz
//! seeds all use it). Multi-byte kernel fields are in host byte order:
//! PF_KEY payloads only travel between peers of the same architecture. No
//! request sasyncd sends exceeds [`PFKEY_MSG_MAXSZ`].

mod build;
pub mod consts;
mod dump;
mod error;
mod ext;
mod filter;
mod identity;
mod msg;
mod promisc;
#[cfg(test)]
mod proptests;
mod repr;
mod rewrite;
mod sockaddr;
#[cfg(test)]
pub(crate) mod testutil;

pub use build::{build_delete, build_delflow, build_flush, build_promisc};
pub use consts::{msg_type_name, ExtSet, PFKEY_MSG_MAXSZ};
pub use dump::{records, Records};
pub use error::PfkeyError;
pub use ext::{AddressExt, Ext, Extensions, KeyExt, LifetimeExt, ProtocolExt, RdomainExt, SaExt};
pub use filter::{filter, FilterPolicy, SkipReason, Verdict};
pub use identity::{canonical_digest_input, flow_key, next_key, sa_key, FlowKey, SaKey};
pub use msg::{set_pid_seq, Msg};
pub use promisc::{promisc_writer_pid, unwrap_promisc};
pub use repr::{host_mask, ExtRepr, Repr};
#[cfg(feature = "planted-bugs")]
pub use rewrite::dump_to_add_with_counters;
pub use rewrite::{
    build_group, completes_larval, dump_to_add, for_slave, is_grouped, spd_dump_to_addflow,
    update_to_add, SNAPSHOT_ADD_KEEP, UPDATE_MOVE_KEEP,
};
pub use sockaddr::SockAddr;
