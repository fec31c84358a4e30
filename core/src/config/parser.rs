//! The statements of sasyncd.conf, turned into a [`Config`].

use core::net::IpAddr;

use zeroize::Zeroize;

use super::error::{AddrProblem, ConfigError, ConfigErrorKind, Expected, Got, NameKind};
use super::lexer::{Keyword, Lexer, Token};
use super::model::{
    Config, Control, DemotePath, Family, Lines, Listen, ListenOn, Peer, PeerName, Protocol,
    DEFAULT_GROUP, DEFAULT_PORT, DEFAULT_REPLAY_MARGIN, IFNAME_MAX,
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
            address: None,
            demote_file: None,
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
            replay_margin: DEFAULT_REPLAY_MARGIN,
            lines: Lines {
                listen: 0,
                peers: heapless::Vec::new(),
            },
        }
    }

    /// Back to [`empty`](Self::empty), field by field (no copy of the
    /// whole through the stack); the old key is wiped.
    fn clear(&mut self) {
        let Config {
            interface,
            address,
            demote_file,
            group,
            flushmode,
            peers,
            listen,
            locked,
            skipslave,
            sharedkey,
            control,
            protocol,
            replay_margin,
            lines,
        } = self;
        *interface = None;
        *address = None;
        *demote_file = None;
        lines.listen = 0;
        lines.peers.clear();
        group.clear();
        *flushmode = FlushMode::Startup;
        peers.clear();
        *listen = Listen::default();
        *locked = None;
        *skipslave = false;
        *sharedkey = SecretKey::empty();
        *control = Control::default();
        *protocol = Protocol::default();
        *replay_margin = DEFAULT_REPLAY_MARGIN;
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
            address,
            demote_file,
            group,
            flushmode,
            peers,
            listen,
            locked,
            skipslave,
            sharedkey,
            control,
            protocol,
            replay_margin,
            lines,
        } = out;
        *group = name::<IFNAME_MAX>(DEFAULT_GROUP.as_bytes()).unwrap_or_default();
        let peer_lines = &mut lines.peers;
        let mut seen = Seen::default();

        while let Some(t) = self.next()? {
            let kw = match t.keyword() {
                Some(k) => k,
                None => {
                    let got = Got::Word(t.excerpt());
                    return Err(err(t.line, statement_expected(got)));
                }
            };
            match kw {
                Keyword::Peer => {}
                Keyword::Mode => {
                    // `mode master|slave` and `mode skipslave` are separate
                    // settings; which one this is shows in the next word.
                    if self.peeked.is_none() {
                        self.peeked = self.lexer.next_token()?;
                    }
                    let skip = self.peeked.is_some_and(|n| n.is("skipslave"));
                    let k = if skip {
                        Keyword::Skipslave
                    } else {
                        Keyword::Mode
                    };
                    seen.once(k, t.line)?;
                }
                k => seen.once(k, t.line)?,
            }
            match kw {
                Keyword::Interface => {
                    let t = self.value(Expected::InterfaceName, kw)?;
                    *interface = Some(name_of(&t, NameKind::Interface)?);
                    if self.accept(Keyword::Address)? {
                        let t = self.value(Expected::TrackAddress, Keyword::Address)?;
                        let word = t.excerpt();
                        let a = parse_addr(&t).ok_or_else(|| {
                            let why = AddrProblem::NotAnAddress;
                            err(t.line, ConfigErrorKind::BadTrackAddress { word, why })
                        })?;
                        if let Some(why) = addr_problem(a) {
                            let kind = ConfigErrorKind::BadTrackAddress { word, why };
                            return Err(err(t.line, kind));
                        }
                        *address = Some(a);
                    }
                }
                Keyword::Demote => {
                    self.choice(Expected::File, kw, &[("file", ())])?;
                    let t = self.value(Expected::DemotePath, kw)?;
                    let path: DemotePath = name_of(&t, NameKind::DemoteFile)?;
                    if !path.starts_with('/') {
                        return Err(err(t.line, ConfigErrorKind::RelativeDemotePath));
                    }
                    *demote_file = Some(path);
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
                    let problem = match addr {
                        Some(a) => addr_problem(a),
                        None if name.contains('%') => Some(AddrProblem::Scoped),
                        None => None,
                    };
                    if let Some(why) = problem {
                        let peer = t.excerpt();
                        return Err(err(t.line, ConfigErrorKind::BadPeerAddress { peer, why }));
                    }
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
                Keyword::Listen => {
                    lines.listen = t.line;
                    *listen = self.listen()?;
                }
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
                Keyword::Replay => {
                    self.choice(Expected::Margin, kw, &[("margin", ())])?;
                    let t = self.value(Expected::MarginNumber, Keyword::Margin)?;
                    *replay_margin = margin_of(&t)?;
                }
                other => return Err(err(t.line, statement_expected(Got::Keyword(other)))),
            }
        }

        if seen.line(Keyword::Sharedkey) == 0 {
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
        let bad = |why| {
            let word = t.excerpt();
            err(t.line, ConfigErrorKind::BadListenAddress { word, why })
        };
        let on = match parse_addr(&t) {
            // The unspecified address is the wildcard: fine to listen on.
            Some(addr) => match addr_problem(addr) {
                Some(AddrProblem::Unspecified) | None => ListenOn::Addr(addr),
                Some(why) => return Err(bad(why)),
            },
            // Interface names start with a letter (em0, carp1, vlan100):
            // `999.1.1.1` or `fe80::1%em0` is a mistyped address, not
            // the name of an interface that happens not to exist.
            None if t.bytes().any(|b| b == b'%') => return Err(bad(AddrProblem::Scoped)),
            None if !t.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                || t.bytes().any(|b| b == b':') =>
            {
                return Err(bad(AddrProblem::NotAnAddress))
            }
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

/// The lines of the single-valued statements met so far (0: not yet).
#[derive(Default)]
struct Seen {
    lines: [u32; 11],
}

impl Seen {
    fn slot(k: Keyword) -> Option<usize> {
        Some(match k {
            Keyword::Interface => 0,
            Keyword::Group => 1,
            Keyword::Flushmode => 2,
            Keyword::Listen => 3,
            Keyword::Mode => 4,
            Keyword::Skipslave => 5,
            Keyword::Sharedkey => 6,
            Keyword::Control => 7,
            Keyword::Protocol => 8,
            Keyword::Demote => 9,
            Keyword::Replay => 10,
            _ => return None,
        })
    }

    fn line(&self, k: Keyword) -> u32 {
        Seen::slot(k)
            .and_then(|i| self.lines.get(i).copied())
            .unwrap_or(0)
    }

    /// Records statement `k` at `line`; an error if it was already there.
    fn once(&mut self, k: Keyword, line: u32) -> Result<(), ConfigError> {
        let Some(slot) = Seen::slot(k).and_then(|i| self.lines.get_mut(i)) else {
            return Ok(());
        };
        if *slot != 0 {
            let kind = ConfigErrorKind::DuplicateStatement {
                statement: k,
                first_line: *slot,
            };
            return Err(err(line, kind));
        }
        *slot = line;
        Ok(())
    }
}

/// What makes an address literal unusable as a peer (or to listen on):
/// no host has it, or it needs a scope the daemon cannot keep.
pub fn addr_problem(addr: IpAddr) -> Option<AddrProblem> {
    if addr.is_unspecified() {
        return Some(AddrProblem::Unspecified);
    }
    let broadcast = matches!(addr, IpAddr::V4(a) if a.is_broadcast());
    if addr.is_multicast() || broadcast {
        return Some(AddrProblem::Multicast);
    }
    if matches!(addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80) {
        return Some(AddrProblem::Scoped);
    }
    None
}

/// The number after `replay margin`: 1..=2^31 (a larger jump would use
/// up half of a 32-bit SA's numbers at one failover).
fn margin_of(t: &Token<'_>) -> Result<u32, ConfigError> {
    let mut n: u64 = 0;
    let mut digits = 0usize;
    for b in t.bytes() {
        if !b.is_ascii_digit() {
            return Err(err(t.line, ConfigErrorKind::BadReplayMargin(t.excerpt())));
        }
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
        digits += 1;
    }
    match u32::try_from(n) {
        Ok(m) if m != 0 && m <= 1 << 31 && digits > 0 => Ok(m),
        _ => Err(err(t.line, ConfigErrorKind::BadReplayMargin(t.excerpt()))),
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
    let bytes = buf.get(..len).unwrap_or(&[]);
    let weak = bytes.windows(2).all(|w| w.first() == w.get(1));
    let key = match len {
        16 | 24 | 32 if weak => Err(ConfigErrorKind::WeakKey),
        16 | 24 | 32 => SecretKey::new(bytes).ok_or(ConfigErrorKind::KeyLength(len)),
        _ => Err(ConfigErrorKind::KeyLength(len)),
    };
    buf.zeroize();
    key.map_err(|kind| err(t.line, kind))
}

/// Whether the key is written as hex: unquoted and starting with `0x` (or
/// `0X`, which the original took as text: a surprise, not a feature).
fn is_hex_key(t: &Token<'_>) -> bool {
    let mut bytes = t.bytes();
    !t.is_quoted() && bytes.next() == Some(b'0') && matches!(bytes.next(), Some(b'x' | b'X'))
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
            *slot = if digits.is_multiple_of(2) {
                nibble << 4
            } else {
                *slot | nibble
            };
        }
        digits = digits.saturating_add(1);
    }
    if !digits.is_multiple_of(2) {
        return Err(err(t.line, ConfigErrorKind::OddHexDigits));
    }
    Ok(digits / 2)
}
