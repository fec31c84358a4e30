//! Logging through the `log` facade: to stderr with `-d`, to syslog
//! otherwise.
//!
//! # Verbosity
//!
//! The original has numbered levels 0 to 6 and prints a message when the
//! `-v` count reaches its level (reference §5). Here the `-v` count picks
//! the most detailed `log` level shown ([`level_for`]):
//!
//! | `-v` | shown | the original's levels it covers |
//! |---|---|---|
//! | none | error, warn, info | 0 (errors, important messages) and 1 (state changes, peers coming and going) |
//! | `-v` | + debug | 2 (configuration, initialisation, most detail the original logs) |
//! | `-vv` and more | + trace | 3 to 6 (PF_KEY, network, crypto, timers) |
//!
//! Unlike the original (which logs SA keys in hex at level 2), nothing here
//! logs key material at any level.
//!
//! Debug and trace lines are shown only from this project's crates (a
//! `target` starting with `sasyncd`), so a dependency's chatter never
//! reaches the operator.
//!
//! # Lines
//!
//! One event per line. The process tag set after the fork
//! ([`set_process`]) starts the line, so the privileged and the network
//! process can be told apart: `priv: warning: ...`. Control characters in a
//! message are written as `\xNN`, so text a peer sent cannot forge lines.
//!
//! # Destinations
//!
//! [`init`] installs the logger once per process. A daemon starts on stderr,
//! where a refused configuration is seen by the operator, and switches with
//! [`set_destination`] when it detaches, as OpenBSD daemons call
//! `log_init` twice.
//!
//! # Syslog
//!
//! Facility daemon, ident `sasyncd`, with the pid. `openlog` is called with
//! `LOG_NDELAY` when syslog is chosen, so before any chroot: glibc opens `/dev/log` only
//! on the first message otherwise, which fails inside an empty chroot. On
//! OpenBSD `syslog(3)` uses `sendsyslog(2)`, which needs no socket at all.
//! The original logged everything at `LOG_CRIT`; here levels map to
//! priorities ([`priority`]), so `syslog.conf` can route them.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};
use nix::syslog::{Facility, Priority, Severity};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Standard error (`-d`).
    Stderr,
    /// syslog, facility daemon.
    Syslog,
}

/// The most detailed level shown for a `-v` count (see the module
/// documentation for how it maps to the original's levels).
pub fn level_for(verbosity: u8) -> LevelFilter {
    match verbosity {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// The syslog severity for a level.
pub fn priority(level: Level) -> Severity {
    match level {
        Level::Error => Severity::LOG_ERR,
        Level::Warn => Severity::LOG_WARNING,
        Level::Info => Severity::LOG_INFO,
        Level::Debug | Level::Trace => Severity::LOG_DEBUG,
    }
}

/// Whether a line at `meta` is shown when `max` is the most detailed level:
/// debug and trace only from our own crates.
pub fn shown(max: LevelFilter, meta: &Metadata<'_>) -> bool {
    meta.level() <= max && (meta.level() <= Level::Info || meta.target().starts_with("sasyncd"))
}

/// The `log::Log` implementation. [`init`] installs one for the process;
/// tests build their own with [`Logger::with_writer`].
pub struct Logger {
    /// Replaces stderr when set (tests).
    writer: Option<Mutex<Box<dyn Write + Send>>>,
    syslog: AtomicBool,
    verbosity: AtomicU8,
    process: Mutex<&'static str>,
    /// The start-up report ([`set_report`]): error lines also go there
    /// until the daemon is up.
    report: Mutex<Option<std::fs::File>>,
    /// Whether stderr lines start with the time (`-d` once running).
    timestamps: AtomicBool,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sink = if self.writer.is_some() {
            "writer"
        } else if self.syslog.load(Ordering::Relaxed) {
            "syslog"
        } else {
            "stderr"
        };
        f.debug_struct("Logger")
            .field("sink", &sink)
            .field("verbosity", &self.verbosity.load(Ordering::Relaxed))
            .field("process", &self.process())
            .finish()
    }
}

impl Logger {
    fn new(dest: Destination, verbosity: u8) -> Logger {
        Logger {
            writer: None,
            syslog: AtomicBool::new(dest == Destination::Syslog),
            verbosity: AtomicU8::new(verbosity),
            process: Mutex::new(""),
            report: Mutex::new(None),
            timestamps: AtomicBool::new(false),
        }
    }

    /// A logger writing stderr-style lines to `w` (for tests). It is not
    /// installed; call its [`Log::log`] directly.
    pub fn with_writer(w: Box<dyn Write + Send>, verbosity: u8) -> Logger {
        Logger {
            writer: Some(Mutex::new(w)),
            ..Logger::new(Destination::Stderr, verbosity)
        }
    }

    /// Switches between stderr and syslog; opens syslog when switching to
    /// it (see [`set_destination`]).
    pub fn set_destination(&self, dest: Destination) {
        if dest == Destination::Syslog {
            open_syslog();
        }
        self.syslog
            .store(dest == Destination::Syslog, Ordering::Relaxed);
    }

    /// Changes the `-v` count this logger filters with.
    pub fn set_verbosity(&self, verbosity: u8) {
        self.verbosity.store(verbosity, Ordering::Relaxed);
    }

    /// Sets the tag that starts every line (empty: none).
    pub fn set_process(&self, tag: &'static str) {
        if let Ok(mut p) = self.process.lock() {
            *p = tag;
        }
    }

    fn process(&self) -> &'static str {
        self.process.lock().map(|p| *p).unwrap_or("")
    }

    fn line_untimed(&self, record: &Record<'_>) -> String {
        let was = self.timestamps.swap(false, Ordering::Relaxed);
        let line = self.line(record, true);
        self.timestamps.store(was, Ordering::Relaxed);
        line
    }

    /// The text of one line, without its newline. `with_level`: prefix
    /// warnings and errors (stderr only; syslog carries the priority).
    fn line(&self, record: &Record<'_>, with_level: bool) -> String {
        let mut message = String::new();
        // Writing to a String cannot fail; a Display impl that does is
        // simply cut short.
        let _ = write!(message, "{}", record.args());
        let mut line = String::with_capacity(message.len() + 40);
        if with_level && self.timestamps.load(Ordering::Relaxed) {
            line.push_str(&timestamp(std::time::SystemTime::now()));
            line.push(' ');
        }
        let tag = self.process();
        if !tag.is_empty() {
            line.push_str(tag);
            line.push_str(": ");
        }
        if with_level {
            match record.level() {
                Level::Error => line.push_str("error: "),
                Level::Warn => line.push_str("warning: "),
                _ => {}
            }
        }
        push_escaped(&mut line, &message);
        line
    }
}

/// Appends `text` with control characters (but tab) as `\xNN`.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
}

impl Log for Logger {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        shown(level_for(self.verbosity.load(Ordering::Relaxed)), meta)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if record.level() == Level::Error {
            if let Ok(mut r) = self.report.lock() {
                if let Some(f) = r.as_mut() {
                    let mut line = self.line_untimed(record);
                    line.push('\n');
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
        if let Some(w) = &self.writer {
            let mut line = self.line(record, true);
            line.push('\n');
            if let Ok(mut w) = w.lock() {
                let _ = w.write_all(line.as_bytes());
            }
        } else if self.syslog.load(Ordering::Relaxed) {
            let line = self.line(record, false);
            let pri = Priority::new(priority(record.level()), Facility::LOG_DAEMON);
            // `push_escaped` removed NULs, so this cannot fail on the text;
            // nix passes it under a fixed "%s" format.
            let _ = nix::syslog::syslog(pri, line.as_str());
        } else {
            let mut line = self.line(record, true);
            line.push('\n');
            // One write per line, so the two processes' lines do not
            // interleave; there is nowhere to report a failure to.
            let _ = io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        if let Some(w) = &self.writer {
            if let Ok(mut w) = w.lock() {
                let _ = w.flush();
            }
        }
    }
}

/// The installed logger, for [`set_verbosity`] and [`set_process`].
static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Why [`init`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    /// A logger is already installed in this process.
    AlreadyInstalled,
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitError::AlreadyInstalled => f.write_str("a logger is already installed"),
        }
    }
}

impl std::error::Error for InitError {}

/// Installs the process's logger. For [`Destination::Syslog`] it opens the
/// log connection now (see the module documentation), so call it before
/// chroot.
pub fn init(dest: Destination, verbosity: u8) -> Result<(), InitError> {
    if dest == Destination::Syslog {
        open_syslog();
    }
    let mut fresh = false;
    let logger = LOGGER.get_or_init(|| {
        fresh = true;
        Logger::new(dest, verbosity)
    });
    if !fresh {
        return Err(InitError::AlreadyInstalled);
    }
    log::set_logger(logger).map_err(|_| InitError::AlreadyInstalled)?;
    log::set_max_level(level_for(verbosity));
    Ok(())
}

/// `openlog("sasyncd", LOG_PID | LOG_NDELAY, LOG_DAEMON)`.
fn open_syslog() {
    // nix's openlog is not used: off Linux it passes a temporary copy of the
    // ident, which syslog(3) keeps a pointer to after the call returns.
    // SAFETY: the ident is a static NUL-terminated string that lives for
    // the whole process, as openlog(3) requires; the other arguments are
    // plain integers.
    unsafe {
        libc::openlog(
            c"sasyncd".as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_DAEMON,
        );
    }
}

/// Switches the installed logger between stderr and syslog. Daemons log to
/// stderr while starting, where the operator sees a refused configuration,
/// and switch to syslog when they detach (as OpenBSD's `log_init` is called
/// twice). Switching to syslog opens it, so do it before chroot.
pub fn set_destination(dest: Destination) {
    if let Some(l) = LOGGER.get() {
        l.set_destination(dest);
    }
}

/// Sends this process's error lines also to `report`, the write end of
/// the start-up report (see [`daemonize`](crate::sys::daemonize)), until
/// [`report_ready`] or [`end_report`].
pub fn set_report(report: std::os::fd::OwnedFd) {
    if let Some(l) = LOGGER.get() {
        if let Ok(mut r) = l.report.lock() {
            *r = Some(std::fs::File::from(report));
        }
    }
}

/// Tells the waiting parent that this process is up, and closes the
/// report.
pub fn report_ready() {
    if let Some(l) = LOGGER.get() {
        if let Ok(mut r) = l.report.lock() {
            if let Some(mut f) = r.take() {
                let _ = writeln!(f, "{}", crate::sys::READY);
            }
        }
    }
}

/// Closes this process's copy of the report without a word (the other
/// process reports).
pub fn end_report() {
    if let Some(l) = LOGGER.get() {
        if let Ok(mut r) = l.report.lock() {
            r.take();
        }
    }
}

/// Starts stderr lines with the time (`-d` once the daemon runs: a
/// foreground log is read later, often beside other logs).
pub fn set_timestamps(on: bool) {
    if let Some(l) = LOGGER.get() {
        l.timestamps.store(on, Ordering::Relaxed);
    }
}

/// `2026-12-07T06:35:48.123Z`: UTC, milliseconds, sortable.
pub fn timestamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Whether syslog can be reached: on OpenBSD always (sendsyslog(2) needs
/// no socket); elsewhere when `/dev/log` accepts a connection, datagram
/// or stream (syslog(3) tries both).
pub fn syslog_reachable() -> Result<(), io::Error> {
    if cfg!(target_os = "openbsd") {
        return Ok(());
    }
    let dgram = std::os::unix::net::UnixDatagram::unbound()?.connect("/dev/log");
    if dgram.is_ok() {
        return Ok(());
    }
    std::os::unix::net::UnixStream::connect("/dev/log").map(drop)
}

/// Changes the verbosity at run time (a `-v` count; see [`level_for`]).
pub fn set_verbosity(verbosity: u8) {
    if let Some(l) = LOGGER.get() {
        l.set_verbosity(verbosity);
    }
    log::set_max_level(level_for(verbosity));
}

/// Sets the tag that starts each line of this process (`"priv"`, `"net"`);
/// call it right after the fork.
pub fn set_process(tag: &'static str) {
    if let Some(l) = LOGGER.get() {
        l.set_process(tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        use std::time::{Duration, UNIX_EPOCH};
        let t = |ms: u64| timestamp(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(t(1_765_000_000_250), "2025-12-06T05:46:40.250Z");
        assert_eq!(t(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(t(0), "1970-01-01T00:00:00.000Z");
    }
    use std::sync::Arc;

    /// A writer whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn emit(l: &Logger, level: Level, target: &str, msg: &str) {
        l.log(
            &Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("{msg}"))
                .build(),
        );
    }

    #[test]
    fn verbosity_levels() {
        assert_eq!(level_for(0), LevelFilter::Info);
        assert_eq!(level_for(1), LevelFilter::Debug);
        assert_eq!(level_for(2), LevelFilter::Trace);
        assert_eq!(level_for(255), LevelFilter::Trace);
        assert_eq!(priority(Level::Error), Severity::LOG_ERR);
        assert_eq!(priority(Level::Warn), Severity::LOG_WARNING);
        assert_eq!(priority(Level::Info), Severity::LOG_INFO);
        assert_eq!(priority(Level::Trace), Severity::LOG_DEBUG);
    }

    #[test]
    fn lines_levels_and_process_tag() {
        let cap = Capture::default();
        let l = Logger::with_writer(Box::new(cap.clone()), 0);
        emit(&l, Level::Info, "sasyncd::x", "started");
        emit(&l, Level::Warn, "sasyncd_core::node", "peer gone");
        l.set_process("priv");
        emit(&l, Level::Error, "sasyncd", "cannot dump");
        emit(&l, Level::Debug, "sasyncd", "hidden at -v 0");
        assert_eq!(
            cap.text(),
            "started\nwarning: peer gone\npriv: error: cannot dump\n"
        );
    }

    #[test]
    fn debug_only_from_our_crates() {
        let cap = Capture::default();
        let l = Logger::with_writer(Box::new(cap.clone()), 0);
        l.set_verbosity(2);
        l.set_process("net");
        emit(&l, Level::Trace, "sasyncd_openbsd::route", "ours");
        emit(&l, Level::Debug, "sasyncd_core", "core");
        emit(&l, Level::Trace, "mio::poll", "theirs");
        emit(&l, Level::Debug, "nix", "theirs");
        emit(&l, Level::Info, "clap", "dependency info is kept");
        l.set_verbosity(1);
        emit(&l, Level::Trace, "sasyncd", "trace hidden at -v");
        emit(&l, Level::Debug, "sasyncd", "debug shown at -v");
        assert_eq!(
            cap.text(),
            "net: ours\nnet: core\nnet: dependency info is kept\nnet: debug shown at -v\n"
        );
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        let cap = Capture::default();
        let l = Logger::with_writer(Box::new(cap.clone()), 0);
        emit(
            &l,
            Level::Info,
            "sasyncd",
            "peer says \"a\nwarning: fake\"\0\ttab",
        );
        assert_eq!(cap.text(), "peer says \"a\\x0awarning: fake\"\\x00\ttab\n");
    }

    /// The process-wide logger: installed once, verbosity and tag
    /// changeable at run time. The only test that installs it.
    #[test]
    fn global_logger() {
        init(Destination::Stderr, 0).unwrap();
        assert_eq!(log::max_level(), LevelFilter::Info);
        assert_eq!(
            init(Destination::Stderr, 0),
            Err(InitError::AlreadyInstalled)
        );
        set_verbosity(2);
        assert_eq!(log::max_level(), LevelFilter::Trace);
        let installed = LOGGER.get().unwrap();
        assert!(installed.enabled(
            &Metadata::builder()
                .level(Level::Trace)
                .target("sasyncd")
                .build()
        ));
        set_verbosity(0);
        assert_eq!(log::max_level(), LevelFilter::Info);
        assert!(!installed.enabled(
            &Metadata::builder()
                .level(Level::Debug)
                .target("sasyncd")
                .build()
        ));
        set_process("priv");
        assert_eq!(installed.process(), "priv");
        set_process("");
    }

    /// Opening and writing to syslog works whether or not the host has a
    /// log socket (a build container often has no /dev/log).
    #[test]
    fn syslog_smoke() {
        let l = Logger::new(Destination::Stderr, 0);
        l.set_destination(Destination::Syslog);
        l.set_process("test");
        emit(&l, Level::Info, "sasyncd", "logger syslog smoke test");
        emit(&l, Level::Error, "sasyncd", "embedded \0 NUL is escaped");
        l.flush();
    }
}
