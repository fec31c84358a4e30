//! The sasyncd.conf grammar.
//!
//! [`Config::parse`] reads the whole file from a byte slice, without heap
//! allocation, and returns a checked [`Config`] or the first [`ConfigError`]
//! with its line. It accepts the original's language (reference §6) and fixes
//! its defects; checking the file's owner and mode is the platform's job.
//!
//! # Grammar
//!
//! Statements appear in any order, separated by white space (newlines are not
//! special). `#` comments run to the end of the line. Words are split as
//! described in the lexer rules below. `NAME` is any word that is not an
//! unquoted keyword; quote it to use a keyword as a value (`peer "master"`).
//!
//! | Statement | Effect | Default |
//! |---|---|---|
//! | `interface NAME [address ADDR]` | CARP interface (≤ [`IFNAME_MAX`] bytes); with `address` (addition, Linux): the role follows the presence of that virtual address on the interface, as keepalived moves it. Once. | required unless `mode master\|slave` |
//! | `demote file PATH` | (addition, Linux) demotion written as the integer in this file, for keepalived's `track_file`; absolute, ≤ [`DEMOTE_PATH_MAX`] bytes. Once. | carp group |
//! | `group NAME` | interface group for CARP demotion (≤ [`IFNAME_MAX`] bytes). Once. | `carp` |
//! | `flushmode startup\|never\|sync` | [`FlushMode`](crate::state::FlushMode). Once (the original OR-ed them, D-28). | `startup` |
//! | `peer NAME [port N]` | add a peer (≤ [`MAX_PEERS`], names ≤ [`PEER_NAME_MAX`] bytes). | none |
//! | `listen on NAME [inet\|inet6] [port N]` | local address literal or interface name. Once. | IPv4 wildcard, port 500 |
//! | `mode master\|slave` | lock the run state. Once. | track CARP |
//! | `mode skipslave` | do not sync SAs/flows whose endpoint is a peer. Independent of the lock. | off |
//! | `sharedkey KEY` | 16, 24 or 32 bytes. Once. | required |
//! | `control isakmpd\|iked\|all\|none` | which IKE daemons to control. Once. | `isakmpd` |
//! | `protocol legacy\|v2` | peer protocol (addition). Once. | `v2` |
//!
//! Keywords (case-sensitive): the original's 18 — `control flushmode group
//! inet inet6 interface listen master mode never on peer port sharedkey
//! skipslave slave startup sync` — plus `protocol legacy v2 address
//! demote`. Enumerated
//! values (`startup`, `isakmpd`, ...) are matched quoted or not; `isakmpd`,
//! `iked`, `all` and `none` are not keywords, as in the original.
//!
//! ## Values
//!
//! * Shared key: an unquoted word starting with `0x` (or `0X`) is
//!   binary, two hex digits a byte; an odd digit count is an error (the
//!   original dropped the last digit), and so is a non-hex digit (the
//!   original took such a word as a text key). Anything else, or anything
//!   quoted, is taken byte for byte, so `sharedkey sasyncd-test-key` and `sharedkey
//!   0x736173796e63642d746573742d6b6579` are the same key. Keys may start with
//!   a digit, contain `#` or spaces when quoted, or equal a keyword (D-27).
//! * Peer: if the name is an IPv4 or IPv6 literal (as [`core::net::IpAddr`]
//!   parses it), [`Peer::addr`] holds it; otherwise the name is kept and
//!   `addr` is `None` — this crate does no resolution, the platform may. A
//!   peer listed twice (same address, or same name ignoring ASCII case) is an
//!   error (the original corrupted its list, D-25). Peers keep file order.
//!   `port N` is an addition: the original assumed every peer listens on our
//!   own listen port (D-23), which stays the default.
//! * Port: decimal, 1 to 65535; anything else is an error with its line (the
//!   original silently reset it to 500).
//! * `listen on` an address literal with a contradicting `inet`/`inet6` is an
//!   error (the original ignored the qualifier, D-38).
//!
//! ## Lexer rules
//!
//! * White space is space, tab, CR, LF, VT and FF. Other control characters
//!   are errors, except in comments. Bytes from 0x80 up are ordinary (names
//!   must then be UTF-8).
//! * `#` ends the token it touches (`peer 10.0.0.1#c` is fine; D-26).
//! * `"..."` is one token; `\"` and `\\` are its only escapes; it must close
//!   on its line. A `"` also ends an unquoted word.
//! * A backslash right before a newline continues the line: inside quotes
//!   the two characters vanish (split a long key); outside they only separate
//!   tokens. Other backslashes outside quotes are ordinary characters. Line
//!   numbers count every newline, so errors after continuations point to the
//!   physical line.
//!
//! ## Errors
//!
//! Every error carries the line of the offending token (or of the last token
//! when the file ends too early); whole-file errors (missing `sharedkey`,
//! missing `interface`) have line 0. [`ConfigError::display_with`] prints
//! `sasyncd.conf:7: duplicate peer 10.0.0.2 (first on line 5)` or
//! `sasyncd.conf: missing sharedkey`.

mod error;
mod lexer;
mod model;
mod parser;
#[cfg(test)]
mod tests;

pub use error::{
    AddrProblem, ConfigError, ConfigErrorKind, DisplayWith, Excerpt, Expected, Got, NameKind,
    EXCERPT_MAX,
};
pub use lexer::Keyword;
pub use model::{
    Config, Control, DemotePath, Family, IfName, Lines, Listen, ListenOn, Peer, PeerName, Protocol,
    DEFAULT_GROUP, DEFAULT_PORT, DEFAULT_REPLAY_MARGIN, DEMOTE_PATH_MAX, IFNAME_MAX, MAX_PEERS,
    PEER_NAME_MAX,
};
pub use parser::addr_problem;
