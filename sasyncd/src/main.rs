//! `sasyncd`: the IPsec SA/SPD synchronisation daemon for carp(4) failover
//! gateways. Options follow the original: `-c file`, `-d`, `-n`, `-v`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use sasyncd_core::config::Config;

/// Default configuration file, as on OpenBSD.
const DEFAULT_CONFIG: &str = "/etc/sasyncd.conf";

/// Command line of the daemon (reference §3.1).
#[derive(Debug, Parser)]
#[command(
    name = "sasyncd",
    version,
    about = "IPsec SA/SPD synchronisation for carp(4) failover gateways"
)]
struct Args {
    /// Use this configuration file instead of /etc/sasyncd.conf.
    #[arg(short = 'c', value_name = "config-file")]
    config: Option<PathBuf>,
    /// Do not daemonise; log to stderr.
    #[arg(short = 'd', action = clap::ArgAction::Count)]
    debug: u8,
    /// Only check the configuration file, print "configuration OK" and exit.
    #[arg(short = 'n')]
    check_only: bool,
    /// More verbose logging (repeatable).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = match load_config(&path) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("sasyncd: {msg}");
            return ExitCode::from(1);
        }
    };
    if args.check_only {
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    let _ = config;
    eprintln!(
        "sasyncd: the synchronisation engine is not built yet; only -n (configuration check) works in this release"
    );
    ExitCode::from(1)
}

/// Reads and parses the configuration, applying the original's file checks
/// (reference §6.1): a regular file owned by root (or by us), with no group
/// or other permission bits, since it holds the shared key.
fn load_config(path: &Path) -> Result<Config, String> {
    let shown = path.display();
    let meta = fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    let euid = current_euid();
    if !meta.is_file() || (meta.uid() != 0 && meta.uid() != euid) || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown}: configuration file has bad owner, type or mode (want a regular file owned by root, mode 0600 or stricter)"
        ));
    }
    let text = fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Config::parse(&text).map_err(|e| e.display_with(&name).to_string())
}

/// The effective uid, read from the metadata of `/proc/self` where it exists
/// and otherwise from a file we create, so that no `unsafe` call is needed.
fn current_euid() -> u32 {
    if let Ok(m) = fs::metadata("/proc/self") {
        return m.uid();
    }
    let probe = std::env::temp_dir().join(format!("sasyncd-uid-{}", std::process::id()));
    let uid = fs::write(&probe, b"")
        .and_then(|_| fs::metadata(&probe))
        .map(|m| m.uid())
        .unwrap_or(0);
    let _ = fs::remove_file(&probe);
    uid
}
