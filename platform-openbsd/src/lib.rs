//! The OpenBSD platform layer of sasyncd.
