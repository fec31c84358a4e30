//! The OpenBSD-compatible frame.
