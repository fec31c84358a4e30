//! The sasyncd state machine.
