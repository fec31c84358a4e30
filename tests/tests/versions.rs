//! Every binary the project installs or documents answers `--version`
//! with its name and the workspace's version, and exits 0.

use std::process::Command;

use sasyncd_tests::cluster::bin;

#[test]
fn every_binary_answers_version() {
    let version = env!("CARGO_PKG_VERSION");
    for name in ["sasyncd", "sasyncctl", "sasyncd-devhost", "sasyncd-sim"] {
        let out = Command::new(bin(name))
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --version: {out:?}");
        assert_eq!(said.trim(), format!("{name} {version}"), "{name}");
    }
}
