//! The sasyncd state machine.

pub mod marks;
pub mod pfkeyq;
pub mod txbuf;
