//! The manual pages cannot fall behind the code: every keyword the
//! configuration parser accepts is in sasyncd.conf.5, every option and
//! command clap knows is in sasyncd.8 / sasyncctl.8, each page carries
//! `.Dd $Mdocdate$`, and `mandoc -Tlint` finds nothing (when mandoc is
//! installed; CI installs it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn page(name: &str) -> String {
    let p = root().join("man").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Whether the page names `word` as an argument of one of `macros`
/// (`.It Ic listen on`, `.Cm isakmpd | iked`, ...): on a macro line, after
/// that macro and before the next one.
fn names(page: &str, macros: &[&str], word: &str) -> bool {
    let is_macro = |t: &str| {
        let mut c = t.chars();
        (2..=3).contains(&t.len())
            && c.next().is_some_and(|x| x.is_ascii_uppercase())
            && c.all(|x| x.is_ascii_lowercase())
    };
    page.lines().filter_map(|l| l.strip_prefix('.')).any(|l| {
        let mut current = "";
        for t in l.split_whitespace() {
            if is_macro(t) {
                current = t;
            } else if macros.contains(&current) && t.trim_end_matches([',', ';']) == word {
                return true;
            }
        }
        false
    })
}

/// The keywords of the `keywords!` table in the lexer, and the words the
/// parser accepts as choices (`("word", ...)`), read from the source so
/// that a new one cannot be missed.
fn config_words() -> Vec<String> {
    let lexer = std::fs::read_to_string(root().join("core/src/config/lexer.rs")).unwrap();
    let start = lexer.find("keywords! {").expect("the keywords! table");
    let table = &lexer[start..];
    let table = &table[..table.find("\n}").expect("its end")];
    let mut words: Vec<String> = table
        .lines()
        .filter_map(|l| l.split('"').nth(1))
        .map(String::from)
        .collect();
    assert!(words.len() >= 21, "{words:?}");
    let parser = std::fs::read_to_string(root().join("core/src/config/parser.rs")).unwrap();
    for part in parser.split("(\"").skip(1) {
        if let Some((w, rest)) = part.split_once('"') {
            if rest.starts_with(',') && w.chars().all(|c| c.is_ascii_alphanumeric()) {
                words.push(w.to_string());
            }
        }
    }
    words.sort();
    words.dedup();
    words
}

#[test]
fn every_config_word_is_in_sasyncd_conf_5() {
    let p = page("sasyncd.conf.5");
    let words = config_words();
    for w in [
        "isakmpd", "iked", "all", "none", "protocol", "legacy", "v2", "port",
    ] {
        assert!(words.iter().any(|x| x == w), "{w} found in the source");
    }
    let missing: Vec<&String> = words
        .iter()
        .filter(|w| !names(&p, &["Ic", "Cm"], w))
        .collect();
    assert!(missing.is_empty(), "not in sasyncd.conf.5: {missing:?}");
}

/// The options and commands in a binary's `--help` (and its commands'
/// help): `-x` and `--long` words, and the command names.
fn help(bin: &str, args: &[&str]) -> (Vec<String>, Vec<String>) {
    let out = Command::new(bin).args(args).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut flags = Vec::new();
    let mut commands = Vec::new();
    let mut in_commands = false;
    for line in text.lines() {
        if line.ends_with(':') && !line.starts_with(' ') {
            in_commands = line == "Commands:";
            continue;
        }
        let t = line.trim_start();
        if in_commands {
            if let Some(c) = t.split_whitespace().next() {
                if c != "help" {
                    commands.push(c.to_string());
                }
            }
            continue;
        }
        for w in t.split([' ', ',']).take_while(|w| w.starts_with('-')) {
            let w = w.trim_end_matches("...");
            if !w.is_empty() {
                flags.push(w.to_string());
            }
        }
    }
    (flags, commands)
}

fn check_flags(page_name: &str, flags: &[String]) {
    let p = page(page_name);
    assert!(!flags.is_empty());
    for f in flags {
        let name = f.strip_prefix('-').unwrap();
        let ok = names(&p, &["Fl"], name)
            || (name.len() == 1
                && p.lines().any(|l| {
                    l.split_whitespace()
                        .collect::<Vec<_>>()
                        .windows(2)
                        .any(|w| w[0] == "Fl" && !w[1].starts_with('-') && w[1].contains(name))
                }));
        assert!(ok, "{f} is not in {page_name}");
    }
}

#[test]
fn every_sasyncd_flag_is_in_sasyncd_8() {
    let (flags, _) = help(env!("CARGO_BIN_EXE_sasyncd"), &[]);
    for f in ["-c", "-d", "-n", "-v", "--control-group", "--dev-host"] {
        assert!(flags.iter().any(|x| x == f), "{f} in {flags:?}");
    }
    check_flags("sasyncd.8", &flags);
}

#[test]
fn every_sasyncctl_flag_and_command_is_in_sasyncctl_8() {
    let bin = env!("CARGO_BIN_EXE_sasyncctl");
    let (mut flags, commands) = help(bin, &[]);
    assert_eq!(commands, ["show", "resync", "reload", "log"]);
    let p = page("sasyncctl.8");
    for c in &commands {
        assert!(names(&p, &["Ic"], c), "command {c} not in sasyncctl.8");
        let (f, sub) = help(bin, &[c]);
        flags.extend(f);
        for s in sub {
            assert!(
                p.contains(&format!("Ic {c} {s}")),
                "{c} {s} not in sasyncctl.8"
            );
        }
    }
    flags.sort();
    flags.dedup();
    check_flags("sasyncctl.8", &flags);
}

#[test]
fn pages_are_dated_by_cvs_and_lint_clean() {
    let dir = root().join("man");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    assert_eq!(pages.len(), 3, "{pages:?}");
    for p in &pages {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            text.lines().any(|l| l == ".Dd $Mdocdate$"),
            "{}: .Dd $Mdocdate$",
            p.display()
        );
    }
    let Ok(out) = Command::new("mandoc").arg("-Tlint").args(&pages).output() else {
        // Straight to stderr: the harness captures eprintln!. CI installs
        // mandoc, and fails a skip (SASYNCD_TESTS_NO_SKIP).
        let why = "the lint: mandoc is not installed (Debian package mandoc)";
        assert!(
            std::env::var_os("SASYNCD_TESTS_NO_SKIP").is_none(),
            "skipped {why}"
        );
        let _ = writeln!(std::io::stderr().lock(), "SKIPPED {why}");
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = text.lines().filter(|l| !lint_noise(l)).collect();
    assert!(
        problems.is_empty(),
        "mandoc -Tlint:\n{}",
        problems.join("\n")
    );
}

/// What `mandoc -Tlint` says on a system that is not OpenBSD about pages
/// it does not have (carp(4), iked(8), ...) and about its database.
pub fn lint_noise(line: &str) -> bool {
    line.contains("STYLE: referenced manual not found") || line.contains("outdated mandoc.db")
}
