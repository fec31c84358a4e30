//! Marks the moments the harness is inside a call into a `Node`, so that a
//! counting global allocator (see `tests/zero_alloc.rs`) can tell the
//! core's allocations from the harness's own.
//!
//! Thread-local, const-initialised and destructor-free: reading it from an
//! allocator can neither allocate nor recurse, and tests running on other
//! threads do not disturb each other's counts.

use std::cell::Cell;

thread_local! {
    static IN_CORE: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// From now on this thread is inside the core.
pub fn enter() {
    IN_CORE.with(|f| f.set(true));
}

/// This thread left the core.
pub fn leave() {
    IN_CORE.with(|f| f.set(false));
}

/// While alive, this thread is outside the core (a platform callback the
/// core's driver makes); the flag is restored when it drops, early returns
/// included.
#[derive(Debug)]
pub struct Outside {
    was: bool,
}

/// Leaves the core until the returned guard drops.
pub fn outside() -> Outside {
    let was = in_core();
    leave();
    Outside { was }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if self.was {
            enter();
        }
    }
}

/// Whether this thread is inside the core.
pub fn in_core() -> bool {
    IN_CORE.try_with(Cell::get).unwrap_or(false)
}

/// Called by a counting allocator on every allocation, reallocation or
/// deallocation: counts it if this thread is inside the core.
pub fn note_heap_use() {
    if in_core() {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

/// Heap operations counted on this thread while inside the core.
pub fn heap_uses() -> u64 {
    COUNT.with(Cell::get)
}

/// Evaluates an expression with the "inside core" flag set.
#[macro_export]
macro_rules! in_core {
    ($e:expr) => {{
        $crate::probe::enter();
        let r = $e;
        $crate::probe::leave();
        r
    }};
}
