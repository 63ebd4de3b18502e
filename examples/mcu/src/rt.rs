//! Bare-metal runtime for the examples and the on-target tests.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::debug;

// The defmt global logger: frames go to the host through semihosting `SYS_WRITE` on stdout, which
// `qemu-run.sh` pipes into `defmt-print`.
use defmt_semihosting as _;

/// Ends the program through semihosting `SYS_EXIT`: QEMU exits with status 0 when `success`,
/// 1 otherwise.
pub fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached if the debugger ignores the exit request (not the case under QEMU).
    loop {
        cortex_m::asm::bkpt();
    }
}

// Logs only the location, not the message: formatting the message would link `core::fmt` into
// every program and distort the flash sizes measured in docs/EMBEDDED.md.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(location) => defmt::error!(
            "panicked at {=str}:{=u32}",
            location.file(),
            location.line()
        ),
        None => defmt::error!("panicked"),
    }
    exit(false)
}

// `defmt::panic!` and the failed `defmt::assert!`s of defmt-test have already logged their message.
#[defmt::panic_handler]
fn defmt_panic() -> ! {
    exit(false)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!("HardFault at pc = {=u32:#010x}", frame.pc());
    exit(false)
}

/// Word written over the stack before a measurement. A word that no longer contains it was used.
const PAINT: u32 = 0xCAFE_F00D;

/// Paints the `bytes` below the caller's stack pointer with [`PAINT`] and returns that stack
/// pointer, for [`stack_used`].
///
/// `#[inline(always)]` keeps this function's own frame out of the painted window.
#[inline(always)]
pub fn paint_stack(bytes: usize) -> usize {
    let sp = cortex_m::register::msp::read() as usize;
    let mut word = ((sp - bytes) & !3) as *mut u32;
    while (word as usize) < sp {
        // SAFETY: the words between `sp - bytes` and `sp` are free stack below the caller's frame.
        // cortex-m-rt puts the stack at the top of RAM, and memory.x leaves far more than `bytes`
        // of RAM under it. Nothing lives there until the next call.
        unsafe {
            word.write_volatile(PAINT);
            word = word.add(1);
        }
    }
    sp
}

/// Returns how many bytes below `sp` (from [`paint_stack`] with the same `bytes`) were written
/// since the painting: the peak stack of the calls made in between, to a word.
///
/// If the result equals `bytes`, the painted window was too small and the real peak is larger.
#[inline(always)]
pub fn stack_used(sp: usize, bytes: usize) -> usize {
    let mut word = ((sp - bytes) & !3) as *const u32;
    // SAFETY: reads the same window `paint_stack` wrote; it is mapped RAM below the live frames.
    while (word as usize) < sp && unsafe { word.read_volatile() } == PAINT {
        word = unsafe { word.add(1) };
    }
    sp - word as usize
}

/// Returns the initial stack pointer, the top of RAM that cortex-m-rt gives the stack (the
/// linker symbol `_stack_start`). `stack_top() - sp` is the stack in use at `sp`.
pub fn stack_top() -> usize {
    extern "C" {
        static _stack_start: u32;
    }
    // Taking the address of an extern static reads nothing, so it needs no `unsafe`.
    core::ptr::addr_of!(_stack_start) as usize
}

/// Processor clock of the `mps2-an386` board in QEMU (its `SYSCLK`): 25 MHz.
const CORE_CLOCK_HZ: u64 = 25_000_000;
/// With `-icount shift=0` QEMU executes one instruction per nanosecond of virtual time.
const INSTRUCTIONS_PER_SECOND: u64 = 1_000_000_000;
/// Instructions per SysTick tick under `-icount shift=0`: 10⁹ / 25·10⁶ = 40.
pub const INSTRUCTIONS_PER_TICK: u64 = INSTRUCTIONS_PER_SECOND / CORE_CLOCK_HZ;
/// SysTick's counter has 24 bits; it counts down from this reload value to 0, then wraps.
const SYST_RELOAD: u32 = 0x00FF_FFFF;

/// Completed SysTick periods, counted by the SysTick exception.
static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    SYSTICK_WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Counts executed instructions with SysTick, exactly to a multiple of
/// [`INSTRUCTIONS_PER_TICK`], when QEMU runs with `-icount shift=0` (`QEMU_ICOUNT=0` for
/// `qemu-run.sh`). Without `-icount` the counts follow the host's wall clock and vary.
///
/// The SysTick exception counts the 24-bit wraps, so windows of any length can be measured. Each
/// wrap adds the handler's 10 instructions to the count, once per 6.7·10⁸ counted ones.
pub struct InstructionCounter {
    _syst: SYST,
}

impl InstructionCounter {
    /// Starts SysTick on the processor clock, free-running over its full 24-bit range.
    pub fn new(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYST_RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // The current value reads 0 until the counter loads the reload value on its first tick.
        // A window that started before that would see the counter jump up.
        while SYST::get_current() == 0 {}
        Self { _syst: syst }
    }

    /// Returns `f`'s result and the instructions it executed, with the cost of reading the timer
    /// subtracted.
    pub fn measure<R>(&self, f: impl FnOnce() -> R) -> (R, u64) {
        let overhead = {
            let start = read_ticks();
            read_ticks() - start
        };
        let start = read_ticks();
        let result = f();
        let end = read_ticks();
        (
            result,
            (end - start).saturating_sub(overhead) * INSTRUCTIONS_PER_TICK,
        )
    }
}

/// Returns the SysTick ticks elapsed since the counter started, as a count that only grows.
// Not inlined, so that every measured window contains exactly the same read sequence.
#[inline(never)]
fn read_ticks() -> u64 {
    let period = u64::from(SYST_RELOAD) + 1;
    loop {
        let wraps = SYSTICK_WRAPS.load(Ordering::Relaxed);
        let pending_before = SCB::is_pendst_pending();
        let current = SYST::get_current();
        let pending_after = SCB::is_pendst_pending();
        // A wrap that happened before `current` was read but whose exception has not run yet shows
        // as a pending SysTick: count it here. If the pending state or the count changed during
        // the reads, the wrap cannot be placed before or after `current`, so read again.
        if pending_before == pending_after && SYSTICK_WRAPS.load(Ordering::Relaxed) == wraps {
            let wraps = u64::from(wraps) + u64::from(pending_after);
            return wraps * period + u64::from(SYST_RELOAD - current);
        }
    }
}
