//! Captures what the nodes log (through the `log` facade) so the world can
//! put it on its timeline, attributed to the node it was calling.
//! Per thread, so parallel swarm workers do not mix their lines.

use std::cell::RefCell;

struct Capture;

thread_local! {
    static LINES: RefCell<Option<Vec<(log::Level, String)>>> = const { RefCell::new(None) };
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        LINES.with(|l| l.borrow().is_some())
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.with(|l| {
            if let Some(v) = l.borrow_mut().as_mut() {
                v.push((record.level(), record.args().to_string()));
            }
        });
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// Installs the capturing logger (once per process; later calls and other
/// loggers already installed are fine) and turns capture on or off for
/// this thread.
pub fn capture(on: bool) {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Debug);
    LINES.with(|l| *l.borrow_mut() = if on { Some(Vec::new()) } else { None });
}

/// Takes the lines logged on this thread since the last call.
pub fn take() -> Vec<(log::Level, String)> {
    LINES.with(|l| {
        l.borrow_mut()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    })
}
