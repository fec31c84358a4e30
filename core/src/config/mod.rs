//! The sasyncd.conf grammar.

mod error;
mod lexer;
mod model;

pub use error::{
    ConfigError, ConfigErrorKind, DisplayWith, Excerpt, Expected, Got, NameKind, EXCERPT_MAX,
};
pub use lexer::Keyword;
pub use model::{
    Config, Control, Family, IfName, Listen, ListenOn, Peer, PeerName, Protocol, DEFAULT_GROUP,
    DEFAULT_PORT, IFNAME_MAX, MAX_PEERS, PEER_NAME_MAX,
};
