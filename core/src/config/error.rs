//! Parse errors: the line and what was wrong, printed the way OpenBSD's
//! parsers print them (`sasyncd.conf:12: ...`).

use core::fmt;
use core::net::IpAddr;

use super::lexer::Keyword;
use super::model::{Family, MAX_PEERS};

/// How many bytes of offending text an error keeps.
pub const EXCERPT_MAX: usize = 64;

/// A bounded copy of offending text, so that errors are `Copy` and outlive
/// the input. Longer text is cut and shown with a trailing `...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Excerpt {
    bytes: [u8; EXCERPT_MAX],
    len: u8,
    truncated: bool,
}

impl Excerpt {
    /// Copies up to [`EXCERPT_MAX`] bytes of `text`.
    pub fn new(text: impl IntoIterator<Item = u8>) -> Self {
        let mut e = Excerpt {
            bytes: [0; EXCERPT_MAX],
            len: 0,
            truncated: false,
        };
        for b in text {
            match e.bytes.get_mut(usize::from(e.len)) {
                Some(slot) => {
                    *slot = b;
                    e.len = e.len.saturating_add(1);
                }
                None => {
                    e.truncated = true;
                    break;
                }
            }
        }
        e
    }

    /// The bytes kept.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Whether the text was longer than what is kept.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

/// Writes a byte of file text so that the message stays one printable line.
fn write_byte(f: &mut fmt::Formatter<'_>, b: u8) -> fmt::Result {
    match b {
        b'"' | b'\\' => write!(f, "\\{}", char::from(b)),
        0x20..=0x7e => write!(f, "{}", char::from(b)),
        _ => write!(f, "\\x{b:02x}"),
    }
}

impl fmt::Display for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.as_bytes() {
            write_byte(f, b)?;
        }
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// What the parser was looking for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A statement keyword (`interface`, `peer`, ...).
    Statement,
    /// The name after `interface`.
    InterfaceName,
    /// The name after `group`.
    GroupName,
    /// `startup`, `never` or `sync`.
    FlushMode,
    /// The address or name after `peer`.
    PeerAddress,
    /// `on` after `listen`.
    On,
    /// The address or interface after `listen on`.
    ListenAddress,
    /// The number after `port`.
    PortNumber,
    /// `master`, `slave` or `skipslave`.
    Mode,
    /// The key after `sharedkey`.
    SharedKey,
    /// `isakmpd`, `iked`, `all` or `none`.
    ControlMode,
    /// `legacy` or `v2`.
    Protocol,
    /// The address after `interface NAME address`.
    TrackAddress,
    /// `file` after `demote`.
    File,
    /// The path after `demote file`.
    DemotePath,
    /// `margin` after `replay`.
    Margin,
    /// The number after `replay margin`.
    MarginNumber,
}

impl Expected {
    /// Free-text values, where quoting a keyword makes it acceptable.
    const fn is_free_text(self) -> bool {
        matches!(
            self,
            Expected::InterfaceName
                | Expected::GroupName
                | Expected::PeerAddress
                | Expected::ListenAddress
                | Expected::SharedKey
                | Expected::TrackAddress
                | Expected::DemotePath
        )
    }

    const fn text(self) -> &'static str {
        match self {
            Expected::Statement => "a statement",
            Expected::InterfaceName => "interface name",
            Expected::GroupName => "group name",
            Expected::FlushMode => "startup, never or sync",
            Expected::PeerAddress => "peer address",
            Expected::On => "on",
            Expected::ListenAddress => "address or interface name",
            Expected::PortNumber => "port number",
            Expected::Mode => "master, slave or skipslave",
            Expected::SharedKey => "shared key",
            Expected::ControlMode => "isakmpd, iked, all or none",
            Expected::Protocol => "legacy or v2",
            Expected::TrackAddress => "address",
            Expected::File => "file",
            Expected::DemotePath => "absolute path",
            Expected::Margin => "margin",
            Expected::MarginNumber => "number of packets",
        }
    }
}

/// What the parser found instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// The end of the file.
    End,
    /// An unquoted keyword.
    Keyword(Keyword),
    /// Some other word (or a quoted string).
    Word(Excerpt),
}

/// Which name a length or encoding error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// `interface`.
    Interface,
    /// `group`.
    Group,
    /// `peer`.
    Peer,
    /// `listen on` with an interface name.
    ListenInterface,
    /// The path of `demote file`.
    DemoteFile,
}

impl NameKind {
    const fn text(self) -> &'static str {
        match self {
            NameKind::Interface => "interface name",
            NameKind::Group => "group name",
            NameKind::Peer => "peer name",
            NameKind::ListenInterface => "listen interface name",
            NameKind::DemoteFile => "demote file path",
        }
    }
}

/// Why an address cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrProblem {
    /// `0.0.0.0` or `::`.
    Unspecified,
    /// A multicast or the broadcast address.
    Multicast,
    /// A link-local address, or one with a `%scope`: the scope cannot be
    /// kept, so connecting would fail forever.
    Scoped,
    /// Neither an address literal nor an interface name (`999.1.1.1`).
    NotAnAddress,
}

impl AddrProblem {
    const fn text(self) -> &'static str {
        match self {
            AddrProblem::Unspecified => "the unspecified address",
            AddrProblem::Multicast => "a multicast or broadcast address",
            AddrProblem::Scoped => {
                "a link-local or scoped address, which cannot be used (use a global or unique-local one)"
            }
            AddrProblem::NotAnAddress => "neither an address nor an interface name",
        }
    }
}

impl fmt::Display for AddrProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// A token other than the one the grammar allows here.
    Expected {
        /// What would have been accepted.
        what: Expected,
        /// The keyword it should have followed (`None` at statement start).
        after: Option<Keyword>,
        /// What was there.
        got: Got,
    },
    /// A `"` without its closing `"` on the same line.
    UnterminatedString,
    /// A backslash in a quoted string followed by something other than `"`,
    /// `\` or a newline.
    BadEscape(u8),
    /// A control character (other than white space) outside a comment.
    BadCharacter(u8),
    /// A name longer than its limit.
    NameTooLong {
        /// Which name.
        what: NameKind,
        /// The limit in bytes.
        max: usize,
    },
    /// A quoted empty name.
    EmptyName(NameKind),
    /// A name that is not UTF-8.
    NotUtf8(NameKind),
    /// A port that is not a decimal number in 1..=65535 (the original reset
    /// such ports to 500; we refuse them).
    BadPort(Excerpt),
    /// A shared key whose length (in bytes) is not 16, 24 or 32.
    KeyLength(usize),
    /// A `0x` shared key with an odd number of hex digits (the original
    /// silently dropped the last digit).
    OddHexDigits,
    /// An unquoted `0x` shared key with a byte that is not a hex digit (the
    /// first one). Such a key used to be taken as text, hiding the typo.
    BadHexDigit(u8),
    /// `listen on` a literal address with the other family's qualifier.
    FamilyMismatch {
        /// The qualifier given.
        family: Family,
        /// The literal.
        addr: IpAddr,
    },
    /// More than [`MAX_PEERS`] peers.
    TooManyPeers,
    /// The same peer twice (same address, or same name ignoring ASCII case).
    DuplicatePeer {
        /// The peer as written the second time.
        peer: Excerpt,
        /// The line of the first statement.
        first_line: u32,
    },
    /// A statement that may appear once, twice (the second one used to
    /// win silently, hiding an edit made in the wrong place).
    DuplicateStatement {
        /// The statement: `mode` for `mode master|slave`, `skipslave` for
        /// `mode skipslave`.
        statement: Keyword,
        /// The line of the first one.
        first_line: u32,
    },
    /// A peer address no gateway can have.
    BadPeerAddress {
        /// The peer as written.
        peer: Excerpt,
        /// What is wrong with it.
        why: AddrProblem,
    },
    /// `listen on` something that is neither an address nor an interface
    /// name (`999.1.1.1`), or an address nothing can listen on.
    BadListenAddress {
        /// The word as written.
        word: Excerpt,
        /// What is wrong with it.
        why: AddrProblem,
    },
    /// `interface NAME address ADDR` with an unusable address.
    BadTrackAddress {
        /// The word as written.
        word: Excerpt,
        /// What is wrong with it.
        why: AddrProblem,
    },
    /// `demote file` with a relative path (the daemon changes directory).
    RelativeDemotePath,
    /// `replay margin` with a number outside 1..=2^31.
    BadReplayMargin(Excerpt),
    /// A shared key that is one byte repeated (all zeros, all spaces): a
    /// placeholder, not a secret.
    WeakKey,
    /// No `sharedkey` statement.
    MissingSharedKey,
    /// No `interface` statement and no `mode master|slave`.
    MissingInterface,
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigErrorKind::Expected { what, after, got } => {
                write!(f, "expected {}", what.text())?;
                if let Some(k) = after {
                    write!(f, " after {k}")?;
                }
                match got {
                    Got::End => Ok(()),
                    Got::Word(w) => write!(f, ", got \"{w}\""),
                    Got::Keyword(k) if what.is_free_text() => {
                        write!(f, ", got keyword {k} (quote it to use it as a value)")
                    }
                    Got::Keyword(k) => write!(f, ", got keyword {k}"),
                }
            }
            ConfigErrorKind::UnterminatedString => f.write_str("unterminated quoted string"),
            ConfigErrorKind::BadEscape(b) => {
                f.write_str("invalid escape \\")?;
                write_byte(f, b)?;
                f.write_str(" in quoted string (only \\\" and \\\\ are allowed)")
            }
            ConfigErrorKind::BadCharacter(b) => write!(f, "invalid character 0x{b:02x}"),
            ConfigErrorKind::NameTooLong { what, max } => {
                write!(f, "{} too long (at most {max} bytes)", what.text())
            }
            ConfigErrorKind::EmptyName(what) => write!(f, "{} is empty", what.text()),
            ConfigErrorKind::NotUtf8(what) => write!(f, "{} is not valid UTF-8", what.text()),
            ConfigErrorKind::BadPort(p) => write!(f, "invalid port \"{p}\" (must be 1 to 65535)"),
            ConfigErrorKind::KeyLength(_) => f.write_str("sharedkey must be 16, 24 or 32 bytes"),
            ConfigErrorKind::OddHexDigits => {
                f.write_str("sharedkey has an odd number of hex digits")
            }
            ConfigErrorKind::BadHexDigit(b) => {
                f.write_str("sharedkey starts with 0x but has the non-hex digit \"")?;
                write_byte(f, b)?;
                f.write_str("\" (quote the key to use it as text)")
            }
            ConfigErrorKind::FamilyMismatch { family, addr } => {
                write!(f, "listen address {addr} is not {}", family.name())
            }
            ConfigErrorKind::TooManyPeers => write!(f, "too many peers (at most {MAX_PEERS})"),
            ConfigErrorKind::DuplicatePeer { peer, first_line } => {
                write!(f, "duplicate peer {peer} (first on line {first_line})")
            }
            ConfigErrorKind::DuplicateStatement {
                statement,
                first_line,
            } => {
                let name = match statement {
                    Keyword::Skipslave => "mode skipslave",
                    Keyword::Mode => "mode master|slave",
                    Keyword::Listen => "listen on",
                    k => k.text(),
                };
                write!(
                    f,
                    "duplicate {name} statement (first on line {first_line}; it may appear once)"
                )
            }
            ConfigErrorKind::BadPeerAddress { peer, why } => {
                write!(f, "peer {peer}: {}", why.text())
            }
            ConfigErrorKind::BadListenAddress { word, why } => {
                write!(f, "listen on {word}: {}", why.text())
            }
            ConfigErrorKind::BadTrackAddress { word, why } => {
                write!(f, "interface address {word}: {}", why.text())
            }
            ConfigErrorKind::RelativeDemotePath => {
                f.write_str("demote file must be an absolute path")
            }
            ConfigErrorKind::BadReplayMargin(w) => {
                write!(f, "invalid replay margin \"{w}\" (must be 1 to 2147483648)")
            }
            ConfigErrorKind::WeakKey => f.write_str(
                "sharedkey is one byte repeated; use a random key (see sasyncd.conf(5))",
            ),
            ConfigErrorKind::MissingSharedKey => f.write_str("missing sharedkey"),
            ConfigErrorKind::MissingInterface => {
                f.write_str("missing interface (required unless mode master or mode slave)")
            }
        }
    }
}

/// A configuration error: where and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line of the offending token; 0 for whole-file errors (a
    /// missing statement).
    pub line: u32,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// An error at `line`.
    pub const fn new(line: u32, kind: ConfigErrorKind) -> Self {
        ConfigError { line, kind }
    }

    /// Formats as `file:line: message`, or `file: message` for whole-file
    /// errors, like OpenBSD's daemons report their configuration.
    pub fn display_with<'a>(&'a self, file: &'a str) -> DisplayWith<'a> {
        DisplayWith { error: self, file }
    }
}

impl fmt::Display for ConfigError {
    /// `line N: message`, or just the message for whole-file errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line != 0 {
            write!(f, "line {}: ", self.line)?;
        }
        write!(f, "{}", self.kind)
    }
}

impl core::error::Error for ConfigError {}

/// [`ConfigError::display_with`]'s result.
#[derive(Debug, Clone, Copy)]
pub struct DisplayWith<'a> {
    error: &'a ConfigError,
    file: &'a str,
}

impl fmt::Display for DisplayWith<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file)?;
        if self.error.line != 0 {
            write!(f, ":{}", self.error.line)?;
        }
        write!(f, ": {}", self.error.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn excerpt_escapes_and_truncates() {
        let e = Excerpt::new(b"a\"b\\c\x01\xff".iter().copied());
        assert_eq!(e.to_string(), "a\\\"b\\\\c\\x01\\xff");
        let long = Excerpt::new(core::iter::repeat_n(b'x', 100));
        assert_eq!(long.as_bytes().len(), EXCERPT_MAX);
        assert!(long.is_truncated());
        assert!(long.to_string().ends_with("x..."));
    }

    #[test]
    fn line_zero_has_no_number() {
        let e = ConfigError::new(0, ConfigErrorKind::MissingSharedKey);
        assert_eq!(e.display_with("f").to_string(), "f: missing sharedkey");
        assert_eq!(e.to_string(), "missing sharedkey");
        let e = ConfigError::new(4, ConfigErrorKind::OddHexDigits);
        assert_eq!(
            e.display_with("f").to_string(),
            "f:4: sharedkey has an odd number of hex digits"
        );
        assert_eq!(
            e.to_string(),
            "line 4: sharedkey has an odd number of hex digits"
        );
    }
}
