//! Linux XFRM netlink, without I/O and without heap: framing, numbers and
//! layouts, checked views of states and policies, their identities, the
//! rewrite of one kernel's record into another kernel's request, and the
//! kernel dialect the node is given for it.
//!
//! * [`nl`]: netlink framing (headers, attributes; a [`nl::Writer`] into
//!   the caller's buffer).
//! * [`consts`]: XFRM message and attribute numbers, struct layouts.
//! * [`view`]: checked views of state and policy records
//!   ([`SaView`], [`PolicyView`]).
//! * [`identity`]: the kernel's uniqueness rules ([`SaKey`],
//!   [`PolicyKey`]).
//! * [`rewrite`]: a record one kernel reported, as a request another
//!   accepts (adds with counters, replaces, deletes by identity, flushes,
//!   dump requests).
//! * [`replay`]: outbound sequence numbers read from replay events, and
//!   the request that moves one forward at a takeover.
//! * [`dialect`]: [`Xfrm`], the [`crate::dialect::Dialect`] of Linux.
//!
//! The Linux platform (`sasyncd-linux`) adds the sockets; the simulator's
//! XFRM kernel reads and answers the same records.

pub mod consts;
pub mod dialect;
pub mod identity;
pub mod nl;
pub mod replay;
pub mod rewrite;
#[cfg(any(test, feature = "alloc"))]
pub mod testutil;
pub mod view;

pub use consts::*;
pub use dialect::{Skip, Xfrm, XfrmError};
pub use identity::{Mark, PolicyKey, SaKey};
pub use view::{addr_at, PolicyView, SaView};
