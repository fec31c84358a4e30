//! `doc/log-messages.md` lists every message the daemon can log, at every
//! level, and nothing else: this test reads the `log::` macro calls in
//! `core/`, `sasyncd/`, `platform-openbsd/` and `platform-linux/` and compares. A message
//! that is added, reworded or moved to another level without the
//! catalogue fails here (so does a catalogue entry whose message is gone).
//!
//! Placeholders are compared as `{}` whatever they name (`{e}`, `{:?}`,
//! `{addr}`), so the catalogue may name them for the reader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every placeholder (`{...}`, not `{{`/`}}`) as `{}`.
pub fn normalise(fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push_str("{{");
            }
            '{' => {
                for d in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                }
                out.push_str("{}");
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push_str("}}");
            }
            c => out.push(c),
        }
    }
    out
}

/// The first string literal at the start of `s` (after white space and
/// comments), unescaped as Rust does; `None` if the macro's first
/// argument is not a literal.
fn literal(s: &str) -> Option<String> {
    let s = s.trim_start();
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                '0' => out.push('\0'),
                // A line continuation: the newline and the next line's
                // leading white space vanish.
                '\n' => {
                    let rest: String = chars.clone().collect();
                    let skip = rest.len() - rest.trim_start().len();
                    for _ in 0..rest[..skip].chars().count() {
                        chars.next();
                    }
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            c => out.push(c),
        }
    }
    None
}

/// `(level, message)` of every `log::LEVEL!("...")` in `text`, with the
/// line it is on; calls whose first argument is no literal are errors.
fn calls(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for level in LEVELS {
        let pat = format!("log::{level}!(");
        let mut from = 0;
        while let Some(at) = text[from..].find(&pat) {
            let start = from + at;
            from = start + pat.len();
            let line = text[..start].matches('\n').count() + 1;
            let msg = literal(&text[from..])
                .unwrap_or_else(|| panic!("log::{level}! at line {line} has no literal message"));
            out.push((level.to_string(), normalise(&msg), line));
        }
    }
    out
}

/// Every message in the code, by level, with where it is.
fn in_code() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    for d in [
        "core/src",
        "sasyncd/src",
        "platform-openbsd/src",
        "platform-linux/src",
    ] {
        rust_files(&root().join(d), &mut files);
    }
    assert!(files.len() > 50, "found the sources");
    let mut set = BTreeSet::new();
    for f in files {
        // Test modules in files of their own may log what they like.
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if matches!(name, "tests.rs" | "proptests.rs" | "testutil.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // Tests may log what they like.
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        for (level, msg, _) in calls(text) {
            set.insert((level, msg));
        }
    }
    set
}

/// The catalogue's entries: a `## ` heading names the level (its first
/// word: Errors, Warnings, Notices, Debug, Trace), an entry is a line
/// ``#### `message` ``.
fn in_catalogue() -> BTreeSet<(String, String)> {
    let p = root().join("doc/log-messages.md");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut level = None;
    let mut set = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(h) = line.strip_prefix("## ") {
            level = match h.split_whitespace().next() {
                Some("Errors") => Some("error"),
                Some("Warnings") => Some("warn"),
                Some("Notices") => Some("info"),
                Some("Debug") => Some("debug"),
                Some("Trace") => Some("trace"),
                _ => None,
            };
        } else if let Some(e) = line.strip_prefix("#### `") {
            let msg = e
                .strip_suffix('`')
                .unwrap_or_else(|| panic!("line {}: an entry is #### `message`", n + 1));
            let level = level.unwrap_or_else(|| panic!("line {}: entry outside a level", n + 1));
            assert!(
                set.insert((level.to_string(), normalise(msg))),
                "line {}: listed twice",
                n + 1
            );
        }
    }
    set
}

#[test]
fn the_catalogue_lists_every_message_and_no_other() {
    let code = in_code();
    let doc = in_catalogue();
    let missing: Vec<_> = code.difference(&doc).collect();
    let stale: Vec<_> = doc.difference(&code).collect();
    let show = |v: &[&(String, String)]| {
        v.iter()
            .map(|(l, m)| format!("  {l}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        missing.is_empty() && stale.is_empty(),
        "doc/log-messages.md is out of date.\nin the code, not in the catalogue:\n{}\nin the catalogue, not in the code:\n{}",
        show(&missing),
        show(&stale)
    );
}

#[test]
fn extraction_handles_what_the_code_writes() {
    let src = r#"
        log::warn!("peer {}: dropped a frame: {}", a, b);
        log::info!(
            "peer {} claims MASTER; following it instead of {}",
            x, y
        );
        log::error!("{e}; keeping the running configuration");
        log::debug!("a \"quoted\" {:?} and {{braces}} \
                     continued");
    "#;
    let got: Vec<(String, String)> = calls(src).into_iter().map(|(l, m, _)| (l, m)).collect();
    let want = [
        ("error", "{}; keeping the running configuration"),
        ("warn", "peer {}: dropped a frame: {}"),
        ("info", "peer {} claims MASTER; following it instead of {}"),
        ("debug", "a \"quoted\" {} and {{braces}} continued"),
    ];
    assert_eq!(
        got,
        want.map(|(l, m)| (l.to_string(), m.to_string())).to_vec()
    );
    assert_eq!(normalise("x {addr} {:?} {0} {{y}}"), "x {} {} {} {{y}}");
}
