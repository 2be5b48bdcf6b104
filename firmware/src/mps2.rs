//! The Cortex-M4F board: qemu-system-arm's `mps2-an386`, semihosting console and exit,
//! SysTick counting core-clock ticks (25 MHz; under `-icount shift=0`, one instruction per
//! virtual ns, so ticks × 40 counts the instructions executed), semihosting's `SYS_CLOCK` for
//! the host's wall time.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hio, hprintln, syscall};

use crate::Board;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}

fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// SysTick wraps (every 2²⁴ ticks of the core clock).
static SYSTICK_WRAPS: AtomicUsize = AtomicUsize::new(0);

#[exception]
fn SysTick() {
    SYSTICK_WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// The board: semihosting's stdout.
struct Mps2(hio::HostStream);

impl fmt::Write for Mps2 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(s)
    }
}

impl Board for Mps2 {
    const COUNTER: &'static str = "SysTick: core-clock ticks";

    /// Core-clock ticks since SysTick started (the counter counts down from 2²⁴ − 1, wrapping).
    fn counter(&mut self) -> u64 {
        loop {
            let wraps = SYSTICK_WRAPS.load(Ordering::Relaxed);
            let now = SYST::get_current();
            if SYSTICK_WRAPS.load(Ordering::Relaxed) == wraps {
                return wraps as u64 * (1 << 24) + u64::from(0x00ff_ffff - now);
            }
        }
    }

    /// Semihosting's SYS_CLOCK: centiseconds of host wall time since the emulator started.
    fn wall_cs(&mut self) -> Option<usize> {
        // SAFETY: SYS_CLOCK takes no argument block.
        Some(unsafe { syscall!(CLOCK) })
    }
}

#[entry]
fn main() -> ! {
    let Ok(stdout) = hio::hstdout() else {
        exit(false)
    };
    let Some(mut peripherals) = cortex_m::Peripherals::take() else {
        hprintln!("error: peripherals");
        exit(false)
    };
    let syst = &mut peripherals.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00ff_ffff);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // The counter reads 0 until its first reload.
    while SYST::get_current() == 0 {}
    match crate::run(&mut Mps2(stdout)) {
        Ok(()) => exit(true),
        Err(what) => {
            hprintln!("error: {}", what);
            exit(false)
        }
    }
}
