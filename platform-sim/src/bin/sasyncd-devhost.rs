//! `sasyncd-devhost`: plays one gateway (PF_KEY kernel, carp interface,
//! IKE daemon) on a unix socket so `sasyncd` runs on Linux; or, given a
//! command, sends it to a running devhost as a ctl client.

use std::process::ExitCode;

#[cfg(unix)]
fn main() -> ExitCode {
    unix::main()
}

#[cfg(not(unix))]
fn main() -> ExitCode {
    eprintln!("sasyncd-devhost: unix only");
    ExitCode::from(2)
}

#[cfg(unix)]
mod unix {
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicBool, Ordering};

    use clap::{ArgAction, Parser, ValueEnum};
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    use sasyncd_sim::carp::{LINK_STATE_DOWN, LINK_STATE_UP};
    use sasyncd_sim::devhost::ctl::{DEFAULT_WORKLOAD_INTERVAL, HELP};
    use sasyncd_sim::devhost::{ctl, GatewayConfig, Server};

    const AFTER_HELP: &str = "\
Without COMMAND, serves PATH until SIGTERM or SIGINT (then removes PATH).
With COMMAND, sends it to the devhost serving PATH and prints the reply:
exit 0 on ok, 1 on error (message on stderr), 2 if PATH cannot be reached.

Clients say hello as one of: pfkey (a PF_KEY socket: raw PF_KEY v2
messages), host (dumps, carp demotion, IKE control, link state), carp
(link-state changes pushed), ctl (these text commands).

COMMANDS:";

    #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
    enum CarpArg {
        Master,
        Backup,
    }

    /// Development-mode gateway host for sasyncd: a simulated OpenBSD
    /// PF_KEY kernel, carp interface and IKE daemon on a unix socket.
    #[derive(Debug, Parser)]
    #[command(name = "sasyncd-devhost", version, after_help = format!("{AFTER_HELP}\n{HELP}"))]
    struct Cli {
        /// The devhost's unix socket.
        path: PathBuf,
        /// A ctl command to send instead of serving (e.g. `show sadb`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
        /// Initial demotion counter of the carp group (serving).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..=255))]
        demote: Option<i32>,
        /// Initial carp state (serving; default backup).
        #[arg(long, value_enum)]
        carp: Option<CarpArg>,
        /// Start the IKE workload (serving): it negotiates, rekeys and
        /// expires SAs and flows while the daemon keeps IKE active.
        #[arg(long)]
        workload: bool,
        /// Seed of random SPIs, keys and the workload (serving; default
        /// from the clock).
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// More log lines (-v: debug).
        #[arg(short, long, action = ArgAction::Count)]
        verbose: u8,
    }

    static STOP: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_: nix::libc::c_int) {
        STOP.store(true, Ordering::Relaxed);
    }

    /// Log lines on stderr.
    struct Stderr;

    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record<'_>) {
            if self.enabled(r.metadata()) {
                eprintln!("sasyncd-devhost: {}: {}", r.level(), r.args());
            }
        }
        fn flush(&self) {}
    }

    static LOGGER: Stderr = Stderr;

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        if cli.command.is_empty() {
            return serve(&cli);
        }
        if cli.demote.is_some() || cli.carp.is_some() || cli.workload || cli.seed.is_some() {
            eprintln!("sasyncd-devhost: --demote, --carp, --workload and --seed are for serving");
            return ExitCode::from(2);
        }
        match ctl(&cli.path, &cli.command.join(" ")) {
            Ok(Ok(out)) => {
                if !out.is_empty() {
                    println!("{out}");
                }
                ExitCode::SUCCESS
            }
            Ok(Err(msg)) => {
                eprintln!("sasyncd-devhost: {msg}");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("sasyncd-devhost: {}: {e}", cli.path.display());
                ExitCode::from(2)
            }
        }
    }

    fn clock_seed() -> u64 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ u64::from(std::process::id()).rotate_left(32)
    }

    fn serve(cli: &Cli) -> ExitCode {
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(if cli.verbose > 0 {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
        let handler = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for sig in [Signal::SIGTERM, Signal::SIGINT] {
            // SAFETY: the handler only stores to an atomic, which is
            // async-signal-safe, and replaces no handler anything relies on.
            if let Err(e) = unsafe { sigaction(sig, &handler) } {
                log::error!("sigaction {sig}: {e}");
                return ExitCode::FAILURE;
            }
        }
        let cfg = GatewayConfig {
            demote: cli.demote.unwrap_or(0),
            link_state: match cli.carp {
                Some(CarpArg::Master) => LINK_STATE_UP,
                _ => LINK_STATE_DOWN,
            },
            workload: cli.workload.then_some(DEFAULT_WORKLOAD_INTERVAL),
            seed: cli.seed.unwrap_or_else(clock_seed),
        };
        let mut server = match Server::bind(&cli.path, &cfg) {
            Ok(s) => s,
            Err(e) => {
                log::error!("{}: {e}", cli.path.display());
                return ExitCode::FAILURE;
            }
        };
        let r = server.run(&STOP);
        drop(server);
        match r {
            Ok(()) => {
                log::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                log::error!("{e}");
                ExitCode::FAILURE
            }
        }
    }
}
