//! `sasyncd`: the IPsec SA/SPD synchronisation daemon for carp(4) failover
//! gateways. Options follow the original: `-c file`, `-d`, `-n`, `-v`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sasyncd::conffile;
use sasyncd::logger::{self, Destination};

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
    // Stderr while starting, so a refused configuration is seen; the
    // daemon switches to syslog when it detaches.
    if let Err(e) = logger::init(Destination::Stderr, args.verbose) {
        eprintln!("sasyncd: {e}");
        return ExitCode::from(1);
    }
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = match conffile::load(&path) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    if args.check_only {
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    let _ = config;
    log::error!(
        "the synchronisation engine is not built yet; only -n (configuration check) works in this release"
    );
    ExitCode::from(1)
}
