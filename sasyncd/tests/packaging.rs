//! The OpenBSD port (`ports/net/sasyncd-rs`), checked without `make`: its
//! files are read and held against each other and against the build.
//!
//! * The Makefile builds only the daemon's crate, installs with its own
//!   `do-install` (so no variable of the cargo module's install is left
//!   to do nothing), has no placeholder, and its version is the
//!   workspace's.
//! * Every file `do-install` installs exists in the source or is a binary
//!   the daemon's crate builds, and is listed in PLIST; every file PLIST
//!   lists is installed.
//! * Nothing installed has the base system's names (`sasyncd`,
//!   `sasyncd.8`, `sasyncd.conf.5`, `/etc/rc.d/sasyncd`), and the rc
//!   script's `pexp` matches this daemon's privileged process only.
//! * PLIST's `@mode 600` covers the copy in /etc, not the example.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const PORT: &str = "ports/net/sasyncd-rs";

/// The Makefile's logical lines: continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(line);
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

/// `NAME = value` assignments (also `+=`), value with white space squeezed.
fn variables(make: &str) -> Vec<(String, String)> {
    logical_lines(make)
        .iter()
        .filter(|l| !l.starts_with('\t') && !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once('=')?;
            let name = name.trim().trim_end_matches('+').trim();
            if name.is_empty() || name.contains(' ') || name.starts_with('.') {
                return None;
            }
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            Some((name.to_string(), value))
        })
        .collect()
}

fn var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The recipe lines of `target:`.
fn recipe(make: &str, target: &str) -> Vec<String> {
    let lines = logical_lines(make);
    let start = lines
        .iter()
        .position(|l| l.trim_end() == format!("{target}:"))
        .unwrap_or_else(|| panic!("no {target} target"));
    lines[start + 1..]
        .iter()
        .take_while(|l| l.starts_with('\t'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// PLIST's entries that are files or directories (no `@` annotation
/// other than `@bin` and `@man`, which name files).
fn plist_paths(plist: &str) -> BTreeSet<String> {
    plist
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(p) = l.strip_prefix("@bin ").or(l.strip_prefix("@man ")) {
                Some(p.to_string())
            } else if l.starts_with('@') || l.is_empty() {
                None
            } else {
                Some(l.to_string())
            }
        })
        .collect()
}

/// The binaries the daemon's crate builds: `src/main.rs` (the package's
/// name) and `src/bin/*.rs`.
fn crate_bins() -> BTreeSet<String> {
    let mut bins = BTreeSet::new();
    let manifest = read("sasyncd/Cargo.toml");
    assert!(manifest.contains("\nname = \"sasyncd\"\n"));
    assert!(root().join("sasyncd/src/main.rs").exists());
    bins.insert("sasyncd".to_string());
    for e in std::fs::read_dir(root().join("sasyncd/src/bin")).expect("src/bin") {
        let name = e.expect("entry").file_name().into_string().expect("utf-8");
        if let Some(stem) = name.strip_suffix(".rs") {
            bins.insert(stem.to_string());
        }
    }
    bins
}

/// The workspace's version.
fn workspace_version() -> String {
    let toml = read("Cargo.toml");
    let pkg = toml
        .split("[workspace.package]")
        .nth(1)
        .expect("[workspace.package]");
    let line = pkg
        .lines()
        .find(|l| l.starts_with("version = "))
        .expect("version");
    line.trim_start_matches("version = ")
        .trim_matches('"')
        .to_string()
}

#[test]
fn the_makefile_builds_what_it_installs_and_has_no_placeholder() {
    let make = read(&format!("{PORT}/Makefile"));
    let vars = variables(&make);
    assert_eq!(var(&vars, "MODULES"), Some("devel/cargo"));
    assert_eq!(var(&vars, "CONFIGURE_STYLE"), Some("cargo"));
    assert_eq!(var(&vars, "V"), Some(workspace_version().as_str()));
    assert_eq!(var(&vars, "DISTNAME"), Some("sasyncd-rs-${V}"));
    // Only the daemon's crate is built.
    assert_eq!(var(&vars, "MODCARGO_BUILD_ARGS"), Some("-p sasyncd --bins"));
    // do-install is the port's own: the module's install variables would
    // do nothing.
    assert!(!recipe(&make, "do-install").is_empty());
    for v in ["MODCARGO_INSTALL_TARGET_PATHS", "MODCARGO_INSTALL_ARGS"] {
        assert_eq!(var(&vars, v), None, "{v} is unused with do-install");
    }
    // No placeholder: a made-up maintainer or site is worse than none
    // (the ports list, and a distfile made from a checkout).
    assert!(
        !make.contains("example.invalid"),
        "placeholder in the Makefile"
    );
    assert_eq!(var(&vars, "MAINTAINER"), None);
    assert_eq!(var(&vars, "MASTER_SITES"), None);
    assert!(
        make.contains("git archive --prefix=sasyncd-rs-${V}/"),
        "the distfile is explained"
    );
    assert!(make.contains(".include \"crates.inc\""));
    assert!(root().join(PORT).join("crates.inc").exists());
}

#[test]
fn plist_and_do_install_agree_with_each_other_and_the_source() {
    let make = read(&format!("{PORT}/Makefile"));
    let plist = read(&format!("{PORT}/pkg/PLIST"));
    let listed = plist_paths(&plist);
    let bins = crate_bins();
    let mut installed = BTreeSet::new();
    for line in recipe(&make, "do-install") {
        let words: Vec<&str> = line.split(' ').collect();
        match words[0] {
            "${INSTALL_DATA_DIR}" => {
                let dir = words[1].strip_prefix("${PREFIX}/").expect("under PREFIX");
                installed.insert(format!("{dir}/"));
            }
            "${INSTALL_PROGRAM}" | "${INSTALL_MAN}" | "${INSTALL_DATA}" => {
                assert_eq!(words.len(), 3, "one file to one path: {line}");
                let (src, dst) = (words[1], words[2]);
                if let Some(bin) = src.strip_prefix("${MODCARGO_TARGET_DIR}/release/") {
                    assert!(
                        bins.contains(bin),
                        "{bin} is not a binary of sasyncd: {bins:?}"
                    );
                } else {
                    let rel = src.strip_prefix("${WRKSRC}/").expect("from WRKSRC");
                    assert!(root().join(rel).is_file(), "{rel} is not in the source");
                }
                let dst = dst.strip_prefix("${PREFIX}/").expect("under PREFIX");
                assert!(!dst.ends_with('/'), "install to a full path: {line}");
                installed.insert(dst.to_string());
            }
            other => panic!("unexpected command {other} in do-install"),
        }
    }
    assert_eq!(
        installed, listed,
        "do-install installs exactly what PLIST lists"
    );
    // Every page and binary the project ships.
    for e in std::fs::read_dir(root().join("man")).expect("man/") {
        let name = e.expect("entry").file_name().into_string().expect("utf-8");
        assert!(
            make.contains(&format!("${{WRKSRC}}/man/{name} ")),
            "{name} installed"
        );
    }
    for bin in &bins {
        assert!(
            make.contains(&format!("${{MODCARGO_TARGET_DIR}}/release/{bin} ")),
            "{bin} installed"
        );
    }
}

#[test]
fn nothing_installed_takes_a_base_system_name() {
    let plist = read(&format!("{PORT}/pkg/PLIST"));
    let listed = plist_paths(&plist);
    for base in [
        "sbin/sasyncd",
        "man/man8/sasyncd.8",
        "man/man5/sasyncd.conf.5",
    ] {
        assert!(
            !listed.contains(base),
            "{base} would shadow or be shadowed by base"
        );
    }
    assert!(listed.contains("sbin/sasyncd-rs"));
    assert!(listed.contains("man/man8/sasyncd-rs.8"));
    assert!(listed.contains("man/man5/sasyncd-rs.conf.5"));
    assert!(plist.contains("@rcscript ${RCDIR}/sasyncd_rs\n"));
    assert!(!plist.contains("@rcscript ${RCDIR}/sasyncd\n"));
    assert!(
        !root().join("etc/rc.d/sasyncd").exists(),
        "no second rc script"
    );
}

#[test]
fn only_the_copy_in_etc_is_private() {
    let plist = read(&format!("{PORT}/pkg/PLIST"));
    let lines: Vec<&str> = plist.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "@mode 600")
        .expect("@mode 600");
    let end = start
        + lines[start..]
            .iter()
            .position(|l| *l == "@mode")
            .expect("@mode reset");
    for l in &lines[start + 1..end] {
        assert!(
            l.starts_with("@owner") || l.starts_with("@group") || l.starts_with("@sample"),
            "only the sample is mode 600, not {l:?}"
        );
    }
    // The sample is the daemon's default configuration file.
    let main = read("sasyncd/src/main.rs");
    assert!(main.contains("const DEFAULT_CONFIG: &str = \"/etc/sasyncd.conf\";"));
    assert!(lines[start..end].contains(&"@sample ${SYSCONFDIR}/sasyncd.conf"));
    // The example right before it is what gets copied.
    assert_eq!(lines[start - 1], "share/examples/sasyncd-rs/sasyncd.conf");
}

#[test]
fn the_rc_script_matches_this_daemon_only_and_tests_the_configuration() {
    let rc = read(&format!("{PORT}/pkg/sasyncd_rs.rc"));
    let plist = read(&format!("{PORT}/pkg/PLIST"));
    assert!(rc.starts_with("#!/bin/ksh\n"));
    assert!(rc.contains("\n. /etc/rc.d/rc.subr\n"));
    assert!(rc.trim_end().ends_with("rc_cmd $1"));
    let daemon = rc
        .lines()
        .find_map(|l| l.strip_prefix("daemon=\"${TRUEPREFIX}/"))
        .and_then(|l| l.strip_suffix('"'))
        .expect("daemon=\"${TRUEPREFIX}/...\"");
    assert!(
        plist.contains(&format!("@bin {daemon}\n")),
        "{daemon} is installed"
    );
    let name = daemon.rsplit('/').next().expect("file name");
    // setproctitle(3) shows "NAME: TITLE"; the privileged process's title:
    let src = read("sasyncd/src/daemon.rs");
    assert!(src.contains("sys::set_process_title(\"[priv]\")"));
    let pexp = format!("\npexp=\"{}: \\[priv\\]\"\n", name);
    assert!(rc.contains(&pexp), "pexp matches {name}: [priv]");
    assert!(
        !rc.contains("pexp=\"sasyncd: "),
        "base's daemon would match"
    );
    // rc.subr runs rc_configtest before start, restart and reload, and
    // rcctl configtest shows its output (rc_pre's is discarded).
    assert!(rc.contains("\nrc_configtest() {\n\t${daemon} -n ${daemon_flags}\n}\n"));
    assert!(!rc.contains("rc_pre"), "rc_pre's output is never seen");
    assert!(!rc.contains("rc_reload=NO"), "SIGHUP reload works");
}

/// The network process's default user must exist once the package is
/// installed: the base system's `_isakmpd`, or one the package creates.
#[test]
fn the_default_user_exists_after_install() {
    let src = read("sasyncd/src/daemon.rs");
    let user = src
        .lines()
        .find_map(|l| l.strip_prefix("pub const DEFAULT_USER: &str = \""))
        .and_then(|l| l.strip_suffix("\";"))
        .expect("DEFAULT_USER");
    if user != "_isakmpd" {
        let plist = read(&format!("{PORT}/pkg/PLIST"));
        assert!(
            plist.contains(&format!("@newuser {user}:")),
            "PLIST creates {user} (@newuser) or the daemon cannot start"
        );
    }
}
