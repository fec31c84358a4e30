//! `sasyncctl`: asks a running sasyncd what it is doing, through its
//! control socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sasyncd::daemon::DEFAULT_CONTROL;

/// Command line of the control tool.
#[derive(Debug, Parser)]
#[command(name = "sasyncctl", version, about = "control a running sasyncd")]
struct Args {
    /// The daemon's control socket.
    #[arg(short = 's', value_name = "socket", default_value = DEFAULT_CONTROL)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The node's state, its counters and one block per peer.
    Show,
    /// Change the daemon's log verbosity.
    Log {
        /// verbose or brief.
        #[arg(value_parser = ["verbose", "brief"])]
        level: String,
    },
}

fn main() -> ExitCode {
    let a = Args::parse();
    let request = match &a.command {
        Command::Show => "show".to_string(),
        Command::Log { level } => format!("log {level}"),
    };
    let mut s = match UnixStream::connect(&a.socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sasyncctl: {}: {e}", a.socket.display());
            return ExitCode::from(2);
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reply = String::new();
    let r = s
        .write_all(format!("{request}\n").as_bytes())
        .and_then(|()| s.read_to_string(&mut reply));
    if let Err(e) = r {
        eprintln!("sasyncctl: {}: {e}", a.socket.display());
        return ExitCode::from(2);
    }
    if let Some(e) = reply.strip_prefix("error: ") {
        eprint!("sasyncctl: {e}");
        return ExitCode::from(1);
    }
    print!("{reply}");
    ExitCode::SUCCESS
}
