//! The statements of sasyncd.conf, turned into a [`Config`].

use core::net::IpAddr;

use zeroize::Zeroize;

use super::error::{ConfigError, ConfigErrorKind, Expected, Got, NameKind};
use super::lexer::{Keyword, Lexer, Token};
use super::model::{
    Config, Control, Family, Listen, ListenOn, Peer, PeerName, Protocol, DEFAULT_GROUP,
    DEFAULT_PORT, IFNAME_MAX, MAX_PEERS,
};
use crate::crypto::SecretKey;
use crate::state::{FlushMode, RunState};

/// Longest shared key in bytes (AES-256).
const KEY_MAX: usize = 32;

impl Config {
    /// Parses and checks the text of a sasyncd.conf (see the module
    /// documentation for the grammar). Stops at the first error.
    ///
    /// A configuration is kilobytes (32 peer names): on a small stack
    /// (firmware), parse into one in place with
    /// [`parse_into`](Self::parse_into).
    pub fn parse(text: &[u8]) -> Result<Config, ConfigError> {
        let mut config = Config::empty();
        config.parse_into(text)?;
        Ok(config)
    }

    /// [`parse`](Self::parse), into `self` (whatever it held is replaced).
    /// On error `self` is left [`empty`](Self::empty), from which no node
    /// can be built (it has no shared key).
    pub fn parse_into(&mut self, text: &[u8]) -> Result<(), ConfigError> {
        let parser = Parser {
            lexer: Lexer::new(text),
            peeked: None,
            line: 1,
        };
        let res = parser.parse_into(self);
        if res.is_err() {
            self.clear();
        }
        res
    }

    /// A configuration with nothing in it (no shared key, no peers, no
    /// interface): the starting point of [`parse_into`](Self::parse_into),
    /// and a `const` so that a firmware can keep one in a `static`.
    pub const fn empty() -> Config {
        Config {
            interface: None,
            group: heapless::String::new(),
            flushmode: FlushMode::Startup,
            peers: heapless::Vec::new(),
            listen: Listen {
                on: ListenOn::Any,
                family: None,
                port: DEFAULT_PORT,
            },
            locked: None,
            skipslave: false,
            sharedkey: SecretKey::empty(),
            control: Control {
                isakmpd: true,
                iked: false,
            },
            protocol: Protocol::V2,
        }
    }

    /// Back to [`empty`](Self::empty), field by field (no copy of the
    /// whole through the stack); the old key is wiped.
    fn clear(&mut self) {
        let Config {
            interface,
            group,
            flushmode,
            peers,
            listen,
            locked,
            skipslave,
            sharedkey,
            control,
            protocol,
        } = self;
        *interface = None;
        group.clear();
        *flushmode = FlushMode::Startup;
        peers.clear();
        *listen = Listen::default();
        *locked = None;
        *skipslave = false;
        *sharedkey = SecretKey::empty();
        *control = Control::default();
        *protocol = Protocol::default();
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    /// Line of the last token taken; errors at the end of input point here.
    line: u32,
}

fn err(line: u32, kind: ConfigErrorKind) -> ConfigError {
    ConfigError::new(line, kind)
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Result<Option<Token<'a>>, ConfigError> {
        let token = match self.peeked.take() {
            Some(t) => Some(t),
            None => self.lexer.next_token()?,
        };
        if let Some(t) = &token {
            self.line = t.line;
        }
        Ok(token)
    }

    /// Takes the next token if it is the unquoted keyword `k`.
    fn accept(&mut self, k: Keyword) -> Result<bool, ConfigError> {
        if self.peeked.is_none() {
            self.peeked = self.lexer.next_token()?;
        }
        if self.peeked.is_some_and(|t| t.keyword() == Some(k)) {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expected(&self, what: Expected, after: Keyword, got: Option<Token<'a>>) -> ConfigError {
        let (line, got) = match got {
            None => (self.line, Got::End),
            Some(t) => match t.keyword() {
                Some(k) => (t.line, Got::Keyword(k)),
                None => (t.line, Got::Word(t.excerpt())),
            },
        };
        err(
            line,
            ConfigErrorKind::Expected {
                what,
                after: Some(after),
                got,
            },
        )
    }

    /// A free-text value: anything but an unquoted keyword.
    fn value(&mut self, what: Expected, after: Keyword) -> Result<Token<'a>, ConfigError> {
        match self.next()? {
            Some(t) if t.keyword().is_none() => Ok(t),
            other => Err(self.expected(what, after, other)),
        }
    }

    /// One of a fixed set of words, quoted or not.
    fn choice<T: Copy>(
        &mut self,
        what: Expected,
        after: Keyword,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let token = self.next()?;
        if let Some(t) = token {
            if let Some(&(_, v)) = choices.iter().find(|(text, _)| t.is(text)) {
                return Ok(v);
            }
        }
        Err(self.expected(what, after, token))
    }

    fn port(&mut self) -> Result<u16, ConfigError> {
        let t = self.value(Expected::PortNumber, Keyword::Port)?;
        let mut n: u32 = 0;
        let mut digits = 0usize;
        for b in t.bytes() {
            let digit = match b {
                b'0'..=b'9' => u32::from(b - b'0'),
                _ => return Err(err(t.line, ConfigErrorKind::BadPort(t.excerpt()))),
            };
            n = n.saturating_mul(10).saturating_add(digit);
            digits += 1;
        }
        match u16::try_from(n) {
            Ok(p) if p != 0 && digits > 0 => Ok(p),
            _ => Err(err(t.line, ConfigErrorKind::BadPort(t.excerpt()))),
        }
    }

    /// Parses into `out`, which starts empty; the statements fill it in
    /// place (no configuration-sized locals).
    fn parse_into(mut self, out: &mut Config) -> Result<(), ConfigError> {
        out.clear();
        let Config {
            interface,
            group,
            flushmode,
            peers,
            listen,
            locked,
            skipslave,
            sharedkey,
            control,
            protocol,
        } = out;
        *group = name::<IFNAME_MAX>(DEFAULT_GROUP.as_bytes()).unwrap_or_default();
        let mut peer_lines = heapless::Vec::<u32, MAX_PEERS>::new();
        let mut have_key = false;

        while let Some(t) = self.next()? {
            let kw = match t.keyword() {
                Some(k) => k,
                None => {
                    let got = Got::Word(t.excerpt());
                    return Err(err(t.line, statement_expected(got)));
                }
            };
            match kw {
                Keyword::Interface => {
                    let t = self.value(Expected::InterfaceName, kw)?;
                    *interface = Some(name_of(&t, NameKind::Interface)?);
                }
                Keyword::Group => {
                    let t = self.value(Expected::GroupName, kw)?;
                    *group = name_of(&t, NameKind::Group)?;
                }
                Keyword::Flushmode => {
                    *flushmode = self.choice(
                        Expected::FlushMode,
                        kw,
                        &[
                            ("startup", FlushMode::Startup),
                            ("never", FlushMode::Never),
                            ("sync", FlushMode::Sync),
                        ],
                    )?;
                }
                Keyword::Peer => {
                    let t = self.value(Expected::PeerAddress, kw)?;
                    let name: PeerName = name_of(&t, NameKind::Peer)?;
                    let addr = name.parse::<IpAddr>().ok();
                    let port = if self.accept(Keyword::Port)? {
                        Some(self.port()?)
                    } else {
                        None
                    };
                    let peer = Peer { name, addr, port };
                    if let Some(i) = peers.iter().position(|p| same_peer(p, &peer)) {
                        let first_line = peer_lines.get(i).copied().unwrap_or(0);
                        let peer = t.excerpt();
                        let kind = ConfigErrorKind::DuplicatePeer { peer, first_line };
                        return Err(err(t.line, kind));
                    }
                    if peers.push(peer).is_err() || peer_lines.push(t.line).is_err() {
                        return Err(err(t.line, ConfigErrorKind::TooManyPeers));
                    }
                }
                Keyword::Listen => *listen = self.listen()?,
                Keyword::Mode => {
                    let mode = self.choice(
                        Expected::Mode,
                        kw,
                        &[
                            ("master", Some(RunState::Master)),
                            ("slave", Some(RunState::Slave)),
                            ("skipslave", None),
                        ],
                    )?;
                    match mode {
                        Some(state) => *locked = Some(state),
                        None => *skipslave = true,
                    }
                }
                Keyword::Sharedkey => {
                    let t = self.value(Expected::SharedKey, kw)?;
                    *sharedkey = key_of(&t)?;
                    have_key = true;
                }
                Keyword::Control => {
                    *control = self
                        .choice(
                            Expected::ControlMode,
                            kw,
                            &[
                                ("isakmpd", (true, false)),
                                ("iked", (false, true)),
                                ("all", (true, true)),
                                ("none", (false, false)),
                            ],
                        )
                        .map(|(isakmpd, iked)| Control { isakmpd, iked })?;
                }
                Keyword::Protocol => {
                    *protocol = self.choice(
                        Expected::Protocol,
                        kw,
                        &[("legacy", Protocol::Legacy), ("v2", Protocol::V2)],
                    )?;
                }
                other => return Err(err(t.line, statement_expected(Got::Keyword(other)))),
            }
        }

        if !have_key {
            return Err(err(0, ConfigErrorKind::MissingSharedKey));
        }
        if interface.is_none() && locked.is_none() {
            return Err(err(0, ConfigErrorKind::MissingInterface));
        }
        Ok(())
    }

    /// `listen on ADDR [inet|inet6] [port N]` after `listen`.
    fn listen(&mut self) -> Result<Listen, ConfigError> {
        self.choice(Expected::On, Keyword::Listen, &[("on", ())])?;
        let t = self.value(Expected::ListenAddress, Keyword::On)?;
        let on = match parse_addr(&t) {
            Some(addr) => ListenOn::Addr(addr),
            None => ListenOn::Interface(name_of::<IFNAME_MAX>(&t, NameKind::ListenInterface)?),
        };
        let family = if self.accept(Keyword::Inet)? {
            Some(Family::Inet)
        } else if self.accept(Keyword::Inet6)? {
            Some(Family::Inet6)
        } else {
            None
        };
        if let (ListenOn::Addr(addr), Some(family)) = (&on, family) {
            if addr.is_ipv4() != (family == Family::Inet) {
                let kind = ConfigErrorKind::FamilyMismatch {
                    family,
                    addr: *addr,
                };
                return Err(err(self.line, kind));
            }
        }
        let port = if self.accept(Keyword::Port)? {
            self.port()?
        } else {
            DEFAULT_PORT
        };
        Ok(Listen { on, family, port })
    }
}

fn statement_expected(got: Got) -> ConfigErrorKind {
    ConfigErrorKind::Expected {
        what: Expected::Statement,
        after: None,
        got,
    }
}

/// Copies a name into a fixed-capacity string; `None` if it is too long or
/// not UTF-8 (the callers tell these apart).
fn name<const N: usize>(bytes: &[u8]) -> Option<heapless::String<N>> {
    let v = heapless::Vec::<u8, N>::from_slice(bytes).ok()?;
    heapless::String::from_utf8(v).ok()
}

fn name_of<const N: usize>(
    t: &Token<'_>,
    what: NameKind,
) -> Result<heapless::String<N>, ConfigError> {
    let mut v = heapless::Vec::<u8, N>::new();
    for b in t.bytes() {
        if v.push(b).is_err() {
            return Err(err(t.line, ConfigErrorKind::NameTooLong { what, max: N }));
        }
    }
    if v.is_empty() {
        return Err(err(t.line, ConfigErrorKind::EmptyName(what)));
    }
    heapless::String::from_utf8(v).map_err(|_| err(t.line, ConfigErrorKind::NotUtf8(what)))
}

/// An IPv4 or IPv6 literal, if the token is one.
fn parse_addr(t: &Token<'_>) -> Option<IpAddr> {
    let mut buf = heapless::Vec::<u8, 64>::new();
    for b in t.bytes() {
        buf.push(b).ok()?;
    }
    core::str::from_utf8(&buf).ok()?.parse().ok()
}

/// Same address, or (for names) the same name ignoring ASCII case. One
/// address twice is a duplicate even with different ports: peers are told
/// apart by their source address (reference §8.4).
fn same_peer(a: &Peer, b: &Peer) -> bool {
    match (a.addr, b.addr) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.name.eq_ignore_ascii_case(&b.name),
        _ => false,
    }
}

/// An unquoted `0x...` word is binary and must be all hex digits after the
/// `0x`; anything else is the key's own bytes. Quote a key to make `0x...`
/// text. A typo in a hex key is an error rather than a silently different
/// text key, which would only show up as peers that cannot talk.
fn key_of(t: &Token<'_>) -> Result<SecretKey<KEY_MAX>, ConfigError> {
    let mut buf = [0u8; KEY_MAX];
    let len = if is_hex_key(t) {
        hex_key(t, &mut buf)?
    } else {
        let mut len = 0usize;
        for b in t.bytes() {
            if let Some(slot) = buf.get_mut(len) {
                *slot = b;
            }
            len = len.saturating_add(1);
        }
        len
    };
    let key = match len {
        16 | 24 | 32 => SecretKey::new(buf.get(..len).unwrap_or(&[])),
        _ => None,
    };
    buf.zeroize();
    key.ok_or(err(t.line, ConfigErrorKind::KeyLength(len)))
}

/// Whether the key is written as hex: unquoted and starting with `0x`.
fn is_hex_key(t: &Token<'_>) -> bool {
    let mut bytes = t.bytes();
    !t.is_quoted() && bytes.next() == Some(b'0') && bytes.next() == Some(b'x')
}

/// Decodes the digits after `0x` into `buf`; the returned length may exceed
/// `buf` (then only the length is meaningful).
fn hex_key(t: &Token<'_>, buf: &mut [u8]) -> Result<usize, ConfigError> {
    let mut digits = 0usize;
    for b in t.bytes().skip(2) {
        let nibble = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(err(t.line, ConfigErrorKind::BadHexDigit(b))),
        };
        if let Some(slot) = buf.get_mut(digits / 2) {
            *slot = if digits % 2 == 0 {
                nibble << 4
            } else {
                *slot | nibble
            };
        }
        digits = digits.saturating_add(1);
    }
    if digits % 2 != 0 {
        return Err(err(t.line, ConfigErrorKind::OddHexDigits));
    }
    Ok(digits / 2)
}
