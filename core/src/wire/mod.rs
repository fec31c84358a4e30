//! Peer wire formats: the OpenBSD-compatible `legacy` frame and our `v2`.
//!
//! Both are length-prefixed frames on a TCP stream; [`stream::Deframer`]
//! reassembles them from arbitrary chunks.

pub mod legacy;
pub mod stream;
pub mod v2;
