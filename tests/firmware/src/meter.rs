//! What the program measures about itself: instructions (SysTick under
//! QEMU's `-icount`), the peak stack (painting), and the memory the linker
//! laid out (its symbols).

use core::ptr::{addr_of, read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// SysTick counts down from this and wraps (24 bits).
const RELOAD: u32 = 0x00ff_ffff;

/// SysTick wraps so far.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Starts SysTick on the core clock, wrapping every 2^24 ticks.
pub fn start_clock(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // The counter reads 0 until its first reload (which neither wraps nor
    // interrupts): wait for it, so that time never seems to go back.
    while SYST::get_current() == 0 {}
}

/// Core clock ticks since [`start_clock`] (a reading costs about 20
/// instructions).
pub fn ticks() -> u64 {
    loop {
        let w = WRAPS.load(Ordering::SeqCst);
        let v = SYST::get_current();
        if WRAPS.load(Ordering::SeqCst) == w {
            return (u64::from(w) << 24) + u64::from(RELOAD - v);
        }
    }
}

/// Runs `n` iterations of a two-instruction loop (`subs`, `bne`).
#[inline(never)]
fn spin(n: u32) {
    // SAFETY: register arithmetic and a branch; no memory, no stack.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {0}, {0}, #1",
            "bne 2b",
            inout(reg) n => _,
            options(nomem, nostack),
        );
    }
}

/// Instructions per SysTick tick, measured on a loop of known length
/// (2,000,000 instructions). Under `-icount shift=0` QEMU's clock advances
/// 1 ns per instruction and the MPS2's 25 MHz core clock ticks every 40
/// ns, so this is 40.
pub fn instructions_per_tick() -> u64 {
    const N: u32 = 1_000_000;
    let t0 = ticks();
    spin(N);
    let t1 = ticks();
    (2 * u64::from(N)).div_ceil((t1 - t0).max(1))
}

/// The word painted over the unused stack.
const PAINT: u32 = 0x5afe_57ac;
/// Left unpainted below the stack pointer of [`paint_stack`].
const MARGIN: usize = 256;

extern "C" {
    // cortex-m-rt's link.x: the end of static RAM (.data, .bss, .uninit)
    // and the initial stack pointer (the top of RAM).
    static __sheap: u32;
    static _stack_start: u32;
    static _ram_start: u32;
    // The image in flash: the load address of .data, its size, and the
    // end of the (possibly empty) veneer section after it.
    static __sidata: u32;
    static __sdata: u32;
    static __edata: u32;
    static __veneer_limit: u32;
}

fn sym(s: &u32) -> usize {
    s as *const u32 as usize
}

/// The lowest and highest stack addresses (the stack grows down to the
/// end of static RAM).
fn stack_bounds() -> (usize, usize) {
    // SAFETY: only the symbols' addresses are taken.
    unsafe { (sym(&*addr_of!(__sheap)), sym(&*addr_of!(_stack_start))) }
}

/// Paints the stack from the end of static RAM up to just below the
/// current stack pointer.
#[inline(never)]
pub fn paint_stack() {
    let (lo, _) = stack_bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let hi = sp - MARGIN;
    let mut a = lo;
    while a < hi {
        // SAFETY: the words between the end of static RAM and our stack
        // pointer (minus a margin) belong to nobody yet.
        unsafe { write_volatile(a as *mut u32, PAINT) };
        a += 4;
    }
}

/// The most stack used since the start of the program, as far as the last
/// [`paint_stack`] can tell: from the top of RAM down to the lowest word
/// that is no longer paint.
pub fn peak_stack() -> usize {
    let (lo, top) = stack_bounds();
    let mut a = lo;
    // SAFETY: reading RAM between the end of statics and the top of RAM.
    while a < top && unsafe { read_volatile(a as *const u32) } == PAINT {
        a += 4;
    }
    top - a
}

/// The stack available: from the top of RAM to the end of statics.
pub fn stack_room() -> usize {
    let (lo, top) = stack_bounds();
    top - lo
}

/// Bytes of RAM taken by statics (.data, .bss, .uninit).
pub fn static_ram() -> usize {
    // SAFETY: only the symbols' addresses are taken.
    unsafe { sym(&*addr_of!(__sheap)) - sym(&*addr_of!(_ram_start)) }
}

/// Bytes of flash the image takes: vector table, code, read-only data
/// and the initial values of .data (the linker's layout, from address 0).
pub fn flash_used() -> usize {
    // SAFETY: only the symbols' addresses are taken.
    unsafe {
        let data_end =
            sym(&*addr_of!(__sidata)) + (sym(&*addr_of!(__edata)) - sym(&*addr_of!(__sdata)));
        data_end.max(sym(&*addr_of!(__veneer_limit)))
    }
}
