//! `sasyncd`: the IPsec SA/SPD synchronisation daemon for carp(4) failover
//! gateways. Options follow the original (`-c file`, `-d`, `-n`, `-v`);
//! the long options are this implementation's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sasyncd::daemon::{self, Options, DEFAULT_CONTROL, DEFAULT_USER};

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
    /// Development mode: the devhost listening at PATH plays this
    /// gateway's kernel, carp interface and IKE daemon.
    #[arg(long = "dev-host", value_name = "PATH")]
    dev_host: Option<PathBuf>,
    /// The control socket (sasyncctl).
    #[arg(long = "control", value_name = "PATH", default_value = DEFAULT_CONTROL)]
    control: PathBuf,
    /// The group that may use the control socket (default: root's).
    #[arg(long = "control-group", value_name = "GROUP")]
    control_group: Option<String>,
    /// The unprivileged user the network process runs as.
    #[arg(long = "user", value_name = "NAME", default_value = DEFAULT_USER)]
    user: String,
    /// Where the network process is chrooted (default: the user's home).
    #[arg(long = "chroot", value_name = "DIR")]
    chroot: Option<PathBuf>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    daemon::run(Options {
        config: a.config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        foreground: a.debug > 0,
        check_only: a.check_only,
        verbosity: a.verbose,
        dev_host: a.dev_host,
        control: a.control,
        control_group: a.control_group,
        user: a.user,
        chroot: a.chroot,
    })
}
