//! LODO on a Cortex-M4F: f32, the reference kernel path (lodo-core without `std` fixes it at
//! compile time), a fixed 96 KiB heap, semihosting output. Prints the loss every
//! [`problem::PRINT_EVERY`] steps, the step loop's time (semihosting's wall clock in
//! centiseconds, and SysTick ticks of the emulated 25 MHz core clock: under
//! `qemu-system-arm -icount shift=0`, one instruction per virtual ns, ticks × 40 counts the
//! instructions executed), the peak heap bytes and the final parameters' bits; `.ci/embedded`
//! compares the loss and `bits` lines with `host/`. Then, with the optimizer dropped, the
//! largest `n` whose optimizer fits the heap with the full f32 state and with the compact one
//! ([`capacity`]).
#![no_std]
#![no_main]

extern crate alloc;

mod capacity;
mod problem;

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprint, hprintln, syscall};
use embedded_alloc::LlffHeap;
use lodo_core::{Lodo, LodoConfig};

use problem::{ALPHA0, N, PRINT_EVERY, SEED, STEPS, loss_and_gradient};

/// Heap size in bytes.
const HEAP_SIZE: usize = 96 * 1024;

/// embedded-alloc's first-fit heap, counting bytes in use and their peak.
struct Counting {
    heap: LlffHeap,
    used: AtomicUsize,
    peak: AtomicUsize,
}

// SAFETY: forwards to `LlffHeap`, which upholds `GlobalAlloc`'s contract; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's `layout` obligations are passed through unchanged.
        let p = unsafe { self.heap.alloc(layout) };
        if !p.is_null() {
            let now = self.used.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.used.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this `layout` (the caller's obligation).
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: Counting = Counting {
    heap: LlffHeap::empty(),
    used: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
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

/// Core-clock ticks since SysTick started (the counter counts down from 2²⁴ − 1, wrapping).
fn ticks() -> u64 {
    loop {
        let wraps = SYSTICK_WRAPS.load(Ordering::Relaxed);
        let now = SYST::get_current();
        if SYSTICK_WRAPS.load(Ordering::Relaxed) == wraps {
            return wraps as u64 * (1 << 24) + u64::from(0x00ff_ffff - now);
        }
    }
}

/// Semihosting's SYS_CLOCK: centiseconds of host wall time since the emulator started.
fn clock_cs() -> usize {
    // SAFETY: SYS_CLOCK takes no argument block.
    unsafe { syscall!(CLOCK) }
}

fn fail(what: &str) -> ! {
    hprintln!("error: {}", what);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    {
        static mut ARENA: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: runs once, before any allocation; `ARENA` is used by nothing else.
        unsafe {
            HEAP.heap
                .init(core::ptr::addr_of_mut!(ARENA) as usize, HEAP_SIZE)
        }
    }

    let Ok(config) = LodoConfig::default().with_alpha0(ALPHA0) else {
        fail("config")
    };
    let Ok(mut lodo) = Lodo::<f32>::new(N, config, SEED) else {
        fail("new")
    };
    let mut x = [0.0f32; N];
    let mut g = [0.0f32; N];
    hprintln!(
        "lodo-firmware: n = {}, steps = {}, seed = {}",
        N,
        STEPS,
        SEED
    );
    let Some(mut peripherals) = cortex_m::Peripherals::take() else {
        fail("peripherals")
    };
    let syst = &mut peripherals.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00ff_ffff);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // The counter reads 0 until its first reload.
    while SYST::get_current() == 0 {}
    let start_ticks = ticks();
    let start = clock_cs();
    for t in 0..STEPS {
        let loss = loss_and_gradient(&x, &mut g);
        if t % PRINT_EVERY == 0 {
            hprintln!("step {} loss {:e}", t, loss);
        }
        if lodo.step(&mut x, &g).is_err() {
            fail("step");
        }
    }
    let elapsed = clock_cs() - start;
    let elapsed_ticks = ticks() - start_ticks;
    let loss = loss_and_gradient(&x, &mut g);
    hprintln!("step {} loss {:e}", STEPS, loss);
    hprintln!("emulator wall time: {} cs for {} steps", elapsed, STEPS);
    hprintln!(
        "emulator SysTick: {} core-clock ticks for {} steps",
        elapsed_ticks,
        STEPS
    );
    hprintln!(
        "heap peak: {} bytes of {}",
        HEAP.peak.load(Ordering::Relaxed),
        HEAP_SIZE
    );
    hprint!("bits");
    for xi in x {
        hprint!(" {:08x}", xi.to_bits());
    }
    hprintln!();
    drop(lodo);
    let free = HEAP_SIZE - HEAP.used.load(Ordering::Relaxed);
    let Ok(configs) = capacity::configs() else {
        fail("capacity configs")
    };
    for (name, config) in configs {
        match capacity::largest_n(&config, free) {
            Some((n, bytes)) => hprintln!(
                "capacity: {}: n <= {} in {} free heap bytes (memory_bytes {})",
                name,
                n,
                free,
                bytes
            ),
            None => hprintln!("capacity: {}: not even n = 1 fits", name),
        }
    }
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}
