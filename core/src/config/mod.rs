//! The sasyncd.conf grammar.
