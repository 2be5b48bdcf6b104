//! LODO on a Cortex-M4F: f32, the reference kernel path (lodo-core without `std` fixes it at
//! compile time), a fixed 96 KiB heap, semihosting output. Prints the loss every
//! [`problem::PRINT_EVERY`] steps, the emulator's wall time of the step loop (semihosting's
//! clock, centiseconds), the peak heap bytes and the final parameters' bits; `.ci/embedded`
//! compares the `bits` line with `host/`.
#![no_std]
#![no_main]

extern crate alloc;

mod problem;

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use cortex_m_rt::entry;
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
    loop {}
}

/// Semihosting's SYS_CLOCK: centiseconds of host wall time since the emulator started.
fn clock_cs() -> usize {
    // SAFETY: SYS_CLOCK takes no argument block.
    unsafe { syscall!(CLOCK) }
}

fn fail(what: &str) -> ! {
    hprintln!("error: {}", what);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

#[entry]
fn main() -> ! {
    {
        static mut ARENA: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: runs once, before any allocation; `ARENA` is used by nothing else.
        unsafe { HEAP.heap.init(core::ptr::addr_of_mut!(ARENA) as usize, HEAP_SIZE) }
    }

    let Ok(config) = LodoConfig::default().with_alpha0(ALPHA0) else { fail("config") };
    let Ok(mut lodo) = Lodo::<f32>::new(N, config, SEED) else { fail("new") };
    let mut x = [0.0f32; N];
    let mut g = [0.0f32; N];
    hprintln!("lodo-firmware: n = {}, steps = {}, seed = {}", N, STEPS, SEED);
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
    let loss = loss_and_gradient(&x, &mut g);
    hprintln!("step {} loss {:e}", STEPS, loss);
    hprintln!("emulator wall time: {} cs for {} steps", elapsed, STEPS);
    hprintln!("heap peak: {} bytes of {}", HEAP.peak.load(Ordering::Relaxed), HEAP_SIZE);
    hprint!("bits");
    for xi in x {
        hprint!(" {:08x}", xi.to_bits());
    }
    hprintln!();
    debug::exit(debug::EXIT_SUCCESS);
    loop {}
}
