//! `sasyncctl`: asks a running sasyncd what it is doing, and tells it what
//! to do, through its control socket (protocol: `sasyncd::control`).
//! Exit status: 0 done, 1 the daemon refused (its reason on stderr), 2 a
//! usage error (as clap reports its own), 3 the daemon could not be asked
//! (no socket, no answer), so that a script can tell "not running" from
//! "wrong command".

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sasyncd::control::client::{self, ClientError};
use sasyncd::control::{Format, Reply, Report, Request};
use sasyncd::daemon::DEFAULT_CONTROL;

/// Exit status: a usage error (clap's own is 2 too).
const EXIT_USAGE: u8 = 2;
/// Exit status: the daemon could not be asked.
const EXIT_UNREACHABLE: u8 = 3;

/// Command line of the control tool.
#[derive(Debug, Parser)]
#[command(name = "sasyncctl", version, about = "control a running sasyncd")]
struct Args {
    /// The daemon's control socket.
    #[arg(short = 's', value_name = "socket", default_value = DEFAULT_CONTROL)]
    socket: PathBuf,
    /// show: print JSON (schema in sasyncctl(8)).
    #[arg(short = 'j', global = true)]
    json: bool,
    /// show stats: also the counters that are zero.
    #[arg(short = 'v', global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The node's state and one row per peer; or a peer, or the counters.
    Show {
        #[command(subcommand)]
        what: Option<Show>,
    },
    /// Ask a master (ADDR, or the one followed) for a full snapshot.
    Resync {
        /// The master to ask.
        addr: Option<IpAddr>,
    },
    /// Re-read the configuration file (as SIGHUP) and report the result.
    Reload,
    /// Change the daemon's log verbosity.
    Log {
        /// verbose or brief.
        #[arg(value_parser = ["verbose", "brief"])]
        level: String,
    },
}

#[derive(Debug, Subcommand)]
enum Show {
    /// One peer in detail: traffic, errors by cause, snapshots.
    Peer {
        /// The peer's address.
        addr: IpAddr,
    },
    /// Counters, one per line (zeros only with -v).
    Stats,
}

/// The request the command line asks for, or why it makes no sense.
fn request(a: &Args) -> Result<Request, &'static str> {
    let format = if a.json { Format::Json } else { Format::Text };
    let only_show = |r: Request| {
        if a.json || a.verbose {
            Err("-j and -v go with show only")
        } else {
            Ok(r)
        }
    };
    match &a.command {
        Command::Show { what } => {
            let report = match what {
                None => Report::Summary,
                Some(Show::Peer { addr }) => Report::Peer(*addr),
                Some(Show::Stats) => Report::Stats,
            };
            if a.verbose && report != Report::Stats {
                return Err("-v goes with show stats only");
            }
            Ok(Request::Show {
                report,
                format,
                all: a.verbose,
            })
        }
        Command::Resync { addr } => only_show(Request::Resync(*addr)),
        Command::Reload => only_show(Request::Reload),
        Command::Log { level } => only_show(Request::Log(level == "verbose")),
    }
}

/// Once connected, the tool needs nothing but its descriptors.
#[cfg(target_os = "openbsd")]
fn pledge_stdio() {
    // SAFETY: both arguments are valid NUL-terminated strings or null, as
    // pledge(2) wants.
    let r = unsafe { libc::pledge(c"stdio".as_ptr(), std::ptr::null()) };
    if r == -1 {
        eprintln!("sasyncctl: pledge: {}", std::io::Error::last_os_error());
        std::process::exit(i32::from(EXIT_UNREACHABLE));
    }
}

#[cfg(not(target_os = "openbsd"))]
fn pledge_stdio() {}

fn main() -> ExitCode {
    let a = Args::parse();
    let req = match request(&a) {
        Ok(r) => r,
        Err(why) => {
            eprintln!("sasyncctl: {why}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let fail = |e: ClientError| {
        eprintln!("sasyncctl: {}: {e}", a.socket.display());
        ExitCode::from(EXIT_UNREACHABLE)
    };
    let s = match client::connect(&a.socket) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    pledge_stdio();
    match client::exchange(s, &req) {
        Ok(Reply::Ok(lines)) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Ok(Reply::Error(why)) => {
            eprintln!("sasyncctl: {why}");
            ExitCode::from(1)
        }
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &[&str]) -> Result<Request, String> {
        let a = Args::try_parse_from(std::iter::once("sasyncctl").chain(args.iter().copied()))
            .map_err(|e| e.kind().to_string())?;
        request(&a).map_err(String::from)
    }

    #[test]
    fn command_lines_become_requests() {
        let show = |report, format, all| Request::Show {
            report,
            format,
            all,
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            req(&["show"]),
            Ok(show(Report::Summary, Format::Text, false))
        );
        assert_eq!(
            req(&["-j", "show"]),
            Ok(show(Report::Summary, Format::Json, false))
        );
        assert_eq!(
            req(&["show", "-j"]),
            Ok(show(Report::Summary, Format::Json, false))
        );
        assert_eq!(
            req(&["show", "peer", "192.0.2.1", "-j"]),
            Ok(show(Report::Peer(a), Format::Json, false))
        );
        assert_eq!(
            req(&["show", "stats", "-v"]),
            Ok(show(Report::Stats, Format::Text, true))
        );
        assert_eq!(req(&["resync"]), Ok(Request::Resync(None)));
        assert_eq!(req(&["resync", "192.0.2.1"]), Ok(Request::Resync(Some(a))));
        assert_eq!(req(&["reload"]), Ok(Request::Reload));
        assert_eq!(req(&["log", "brief"]), Ok(Request::Log(false)));
        assert!(req(&["reload", "-j"]).is_err());
        assert!(req(&["show", "-v"]).is_err());
        assert!(req(&["log", "loud"]).is_err());
        assert!(req(&["show", "peer", "nohost"]).is_err());
    }
}
