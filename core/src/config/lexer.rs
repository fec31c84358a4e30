//! Splits sasyncd.conf into words and quoted strings, each with its line.
//!
//! Rules (the original's pre-pass is reference §6.2; differences are fixes):
//! * White space (space, tab, CR, LF, VT, FF) separates tokens; there is no
//!   statement terminator.
//! * `#` starts a comment up to the end of the line, and ends the token it
//!   touches (`peer 10.0.0.1#c` is `peer`, `10.0.0.1`; D-26).
//! * A backslash directly before the end of a line joins the lines: outside
//!   quotes it separates tokens, inside quotes it vanishes (so a long quoted
//!   key may be split). Any other backslash outside quotes is an ordinary
//!   character. A comment ends at its newline even after a backslash.
//! * `"..."` is one token whatever it contains; `\"` and `\\` are its only
//!   escapes. It must close on its line (or continue with `\`). A quoted
//!   token is never a keyword, so any text can be a value (D-27). A `"`
//!   also ends an unquoted word.
//! * Other control characters are errors (outside comments); bytes from 0x80
//!   up are ordinary characters.

use core::fmt;

use super::error::{ConfigError, ConfigErrorKind, Excerpt};

macro_rules! keywords {
    ($($variant:ident = $text:literal,)*) => {
        /// A reserved word. Unquoted, it is never a value; quoted, it is
        /// just text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Keyword {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )*
        }

        impl Keyword {
            /// The keyword as written.
            pub const fn text(self) -> &'static str {
                match self {
                    $(Keyword::$variant => $text,)*
                }
            }

            /// The keyword spelled exactly (case-sensitive) by `word`.
            pub fn from_bytes(word: &[u8]) -> Option<Keyword> {
                match word {
                    $(w if w == $text.as_bytes() => Some(Keyword::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

keywords! {
    Address = "address",
    Control = "control",
    Demote = "demote",
    Flushmode = "flushmode",
    Group = "group",
    Inet = "inet",
    Inet6 = "inet6",
    Interface = "interface",
    Listen = "listen",
    Master = "master",
    Mode = "mode",
    Never = "never",
    On = "on",
    Peer = "peer",
    Port = "port",
    Sharedkey = "sharedkey",
    Skipslave = "skipslave",
    Slave = "slave",
    Startup = "startup",
    Sync = "sync",
    Protocol = "protocol",
    Replay = "replay",
    Margin = "margin",
    Legacy = "legacy",
    V2 = "v2",
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A word or quoted string and the line it starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// 1-based line number.
    pub line: u32,
    /// The text; for a quoted string, between the quotes and still escaped.
    raw: &'a [u8],
    quoted: bool,
}

impl<'a> Token<'a> {
    /// The keyword, if this is one and unquoted.
    pub fn keyword(&self) -> Option<Keyword> {
        if self.quoted {
            None
        } else {
            Keyword::from_bytes(self.raw)
        }
    }

    /// Whether the token was written in quotes.
    pub fn is_quoted(&self) -> bool {
        self.quoted
    }

    /// The unescaped text.
    pub fn bytes(&self) -> Unescape<'a> {
        Unescape {
            rest: self.raw,
            quoted: self.quoted,
        }
    }

    /// Whether the unescaped text equals `text`.
    pub fn is(&self, text: &str) -> bool {
        self.bytes().eq(text.bytes())
    }

    /// A copy of the text for an error message.
    pub fn excerpt(&self) -> Excerpt {
        Excerpt::new(self.bytes())
    }
}

/// Iterator over a token's unescaped bytes. The lexer has already checked the
/// escapes, so this cannot fail.
#[derive(Debug, Clone)]
pub(crate) struct Unescape<'a> {
    rest: &'a [u8],
    quoted: bool,
}

impl Iterator for Unescape<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        loop {
            let (&b, tail) = self.rest.split_first()?;
            self.rest = tail;
            if !self.quoted || b != b'\\' {
                return Some(b);
            }
            match tail {
                [b'\n', rest @ ..] => self.rest = rest,
                [b'\r', b'\n', rest @ ..] => self.rest = rest,
                [c, rest @ ..] => {
                    self.rest = rest;
                    return Some(*c);
                }
                [] => return Some(b),
            }
        }
    }
}

const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

const fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// The tokenizer: a cursor over the file.
#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    input: &'a [u8],
    pos: usize,
    line: u32,
}

impl<'a> Lexer<'a> {
    /// Starts at line 1.
    pub fn new(input: &'a [u8]) -> Self {
        Lexer {
            input,
            pos: 0,
            line: 1,
        }
    }

    fn at(&self, pos: usize) -> Option<u8> {
        self.input.get(pos).copied()
    }

    fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        self.input.get(from..to).unwrap_or(&[])
    }

    fn newline(&mut self) {
        self.line = self.line.saturating_add(1);
    }

    fn error(&self, kind: ConfigErrorKind) -> ConfigError {
        ConfigError::new(self.line, kind)
    }

    /// Length of a backslash-newline at `pos`, if there is one.
    fn continuation(&self, pos: usize) -> Option<usize> {
        if self.at(pos) != Some(b'\\') {
            return None;
        }
        match (
            self.at(pos.saturating_add(1)),
            self.at(pos.saturating_add(2)),
        ) {
            (Some(b'\n'), _) => Some(2),
            (Some(b'\r'), Some(b'\n')) => Some(3),
            _ => None,
        }
    }

    /// The next token, or `None` at the end of the input.
    pub fn next_token(&mut self) -> Result<Option<Token<'a>>, ConfigError> {
        loop {
            let Some(b) = self.at(self.pos) else {
                return Ok(None);
            };
            match b {
                b'\n' => {
                    self.newline();
                    self.pos += 1;
                }
                b if is_space(b) => self.pos += 1,
                b'#' => {
                    while self.at(self.pos).is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                b'"' => return self.quoted().map(Some),
                _ => {
                    if let Some(n) = self.continuation(self.pos) {
                        self.pos += n;
                        self.newline();
                    } else {
                        return self.word().map(Some);
                    }
                }
            }
        }
    }

    fn word(&mut self) -> Result<Token<'a>, ConfigError> {
        let start = self.pos;
        while let Some(b) = self.at(self.pos) {
            if is_space(b) || b == b'#' || b == b'"' || self.continuation(self.pos).is_some() {
                break;
            }
            if is_control(b) {
                return Err(self.error(ConfigErrorKind::BadCharacter(b)));
            }
            self.pos += 1;
        }
        Ok(Token {
            line: self.line,
            raw: self.slice(start, self.pos),
            quoted: false,
        })
    }

    fn quoted(&mut self) -> Result<Token<'a>, ConfigError> {
        let line = self.line;
        let unterminated = ConfigError::new(line, ConfigErrorKind::UnterminatedString);
        self.pos += 1;
        let start = self.pos;
        loop {
            let Some(b) = self.at(self.pos) else {
                return Err(unterminated);
            };
            match b {
                b'"' => {
                    let raw = self.slice(start, self.pos);
                    self.pos += 1;
                    return Ok(Token {
                        line,
                        raw,
                        quoted: true,
                    });
                }
                b'\n' => return Err(unterminated),
                b'\r' if self.at(self.pos + 1) == Some(b'\n') => return Err(unterminated),
                b'\\' => {
                    if let Some(n) = self.continuation(self.pos) {
                        self.pos += n;
                        self.newline();
                        continue;
                    }
                    match self.at(self.pos + 1) {
                        Some(b'"' | b'\\') => self.pos += 2,
                        Some(c) => return Err(self.error(ConfigErrorKind::BadEscape(c))),
                        None => return Err(unterminated),
                    }
                }
                b'\t' => self.pos += 1,
                b if is_control(b) => return Err(self.error(ConfigErrorKind::BadCharacter(b))),
                _ => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// (line, unescaped text, quoted) of every token, or the error.
    fn lex(input: &[u8]) -> Result<Vec<(u32, Vec<u8>, bool)>, ConfigError> {
        let mut lexer = Lexer::new(input);
        let mut out = Vec::new();
        while let Some(t) = lexer.next_token()? {
            out.push((t.line, t.bytes().collect(), t.is_quoted()));
        }
        Ok(out)
    }

    fn words(input: &[u8]) -> Vec<(u32, &'static str)> {
        lex(input)
            .unwrap()
            .into_iter()
            .map(|(l, t, _)| (l, &*std::string::String::from_utf8(t).unwrap().leak()))
            .collect()
    }

    #[test]
    fn keywords_round_trip() {
        for k in [Keyword::Control, Keyword::Inet6, Keyword::V2, Keyword::Sync] {
            assert_eq!(Keyword::from_bytes(k.text().as_bytes()), Some(k));
        }
        assert_eq!(Keyword::from_bytes(b"Peer"), None);
        assert_eq!(Keyword::from_bytes(b"isakmpd"), None);
    }

    #[test]
    fn separators_comments_continuations() {
        assert_eq!(
            words(b"  peer\t10.0.0.1#c\npeer x # y \\\n z\\\nw"),
            [
                (1, "peer"),
                (1, "10.0.0.1"),
                (2, "peer"),
                (2, "x"),
                (3, "z"),
                (4, "w")
            ]
        );
        assert_eq!(words(b"a\\\r\nb c\\d"), [(1, "a"), (2, "b"), (2, "c\\d")]);
        assert_eq!(words(b"a\"b c\"d"), [(1, "a"), (1, "b c"), (1, "d")]);
        assert_eq!(words(b"\\"), [(1, "\\")]);
    }

    #[test]
    fn quoted_strings() {
        let toks = lex(b"\"x\\\"y\\\\z\" \"ab\\\ncd\" \"\" e").unwrap();
        assert_eq!(toks[0], (1, b"x\"y\\z".to_vec(), true));
        assert_eq!(toks[1], (1, b"abcd".to_vec(), true));
        assert_eq!(toks[2], (2, b"".to_vec(), true));
        assert_eq!(toks[3], (2, b"e".to_vec(), false));
        let t = Lexer::new(b"\"peer\"").next_token().unwrap().unwrap();
        assert_eq!(t.keyword(), None);
        assert!(t.is("peer"));
    }

    #[test]
    fn lexical_errors() {
        let err = |input: &[u8]| lex(input).unwrap_err();
        use ConfigErrorKind::*;
        assert_eq!(err(b"a\n\"abc"), ConfigError::new(2, UnterminatedString));
        assert_eq!(
            err(b"\"abc\ndef\""),
            ConfigError::new(1, UnterminatedString)
        );
        assert_eq!(err(b"\"abc\r\n\""), ConfigError::new(1, UnterminatedString));
        assert_eq!(err(b"\"abc\\"), ConfigError::new(1, UnterminatedString));
        assert_eq!(err(b"\n\"a\\nb\""), ConfigError::new(2, BadEscape(b'n')));
        assert_eq!(err(b"a\x01"), ConfigError::new(1, BadCharacter(1)));
        assert_eq!(err(b"\n\"\x00\""), ConfigError::new(2, BadCharacter(0)));
        assert_eq!(err(b"\"a\rb\""), ConfigError::new(1, BadCharacter(b'\r')));
        // Anything goes in a comment.
        assert_eq!(lex(b"# \x00\x01\"\n").unwrap(), []);
    }
}
