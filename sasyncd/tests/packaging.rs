//! The OpenBSD packaging files agree with each other and with what the
//! project ships: both rc scripts match the privileged process's title,
//! check the configuration before starting and keep SIGHUP reload; the
//! port installs and lists every manual page.

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

#[test]
fn rc_scripts_follow_rc_subr() {
    for rel in ["etc/rc.d/sasyncd", "ports/net/sasyncd-rs/pkg/sasyncd_rs.rc"] {
        let s = read(rel);
        assert!(s.starts_with("#!/bin/ksh\n"), "{rel}");
        assert!(s.contains("\n. /etc/rc.d/rc.subr\n"), "{rel}");
        // The title sys::set_process_title gives the privileged process.
        assert!(s.contains("\npexp=\"sasyncd: \\[priv\\]\"\n"), "{rel}");
        assert!(s.contains("${daemon} -n ${daemon_flags}"), "{rel}");
        assert!(!s.contains("rc_reload=NO"), "{rel}: SIGHUP reload works");
        assert!(s.trim_end().ends_with("rc_cmd $1"), "{rel}");
    }
}

#[test]
fn the_port_installs_and_lists_every_page() {
    let make = read("ports/net/sasyncd-rs/Makefile");
    let plist = read("ports/net/sasyncd-rs/pkg/PLIST");
    assert!(make.contains("MODULES =\t\tdevel/cargo"));
    assert!(make.contains("CONFIGURE_STYLE =\tcargo"));
    assert!(make.contains(".include \"crates.inc\""));
    for e in std::fs::read_dir(root().join("man")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let section = name.rsplit('.').next().unwrap();
        assert!(
            make.contains(&format!("man/{name}")),
            "Makefile installs {name}"
        );
        assert!(
            plist.contains(&format!("@man man/man{section}/{name}\n")),
            "PLIST lists {name}"
        );
    }
    for bin in ["sasyncd", "sasyncctl"] {
        assert!(plist.contains(&format!("@bin sbin/{bin}\n")), "{bin}");
    }
    assert!(plist.contains("@rcscript ${RCDIR}/sasyncd_rs\n"));
}
