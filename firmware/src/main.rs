//! LODO on bare metal: f32, the reference kernel path (lodo-core without `std` fixes it at
//! compile time), a fixed 96 KiB heap. One program ([`run`]) on two boards, each in its own
//! module with its entry point, console and exit:
//!
//! | target | machine (qemu) | console | module |
//! |---|---|---|---|
//! | `thumbv7em-none-eabihf` (Cortex-M4F, hardware f32) | `qemu-system-arm -machine mps2-an386` | semihosting | `mps2` |
//! | `riscv32imac-unknown-none-elf` (RV32IMAC, soft float) | `qemu-system-riscv32 -machine virt` | 16550 UART | `virt` |
//!
//! [`run`] prints the loss every [`problem::PRINT_EVERY`] steps, the step loop's cost in the
//! board's counter (under `-icount shift=0` both count instructions: SysTick ticks × 40 on the
//! Cortex-M4, `minstret` on RISC-V), the peak heap bytes and the final parameters' bits;
//! `.ci/embedded` compares the loss and `bits` lines with `host/` (std and no-std builds, x86-64
//! and aarch64) and the two boards with each other. Then, with the optimizer dropped, the
//! largest `n` whose optimizer fits the heap with the full f32 state and with the compact one
//! ([`capacity`]).
#![no_std]
#![no_main]

extern crate alloc;

mod capacity;
mod heap;
#[cfg(target_arch = "arm")]
mod mps2;
mod problem;
#[cfg(target_arch = "riscv32")]
mod virt;

use core::fmt::Write;

use lodo_core::{Lodo, LodoConfig};

use problem::{ALPHA0, N, PRINT_EVERY, SEED, STEPS, loss_and_gradient};

/// What a board gives [`run`]: a console and a counter.
pub trait Board: Write {
    /// What [`Board::counter`] counts, for the timing line.
    const COUNTER: &'static str;
    /// A monotonic counter (what it counts: [`Board::COUNTER`]).
    fn counter(&mut self) -> u64;
    /// The host's wall time in centiseconds, if the board can ask for it.
    fn wall_cs(&mut self) -> Option<usize>;
}

/// Runs the problem on `board` and prints the report; `Err` names the step that failed.
/// A console write error is ignored (there is nowhere to report it).
pub fn run<B: Board>(board: &mut B) -> Result<(), &'static str> {
    heap::init();
    let config = LodoConfig::default()
        .with_alpha0(ALPHA0)
        .map_err(|_| "config")?;
    let mut lodo = Lodo::<f32>::new(N, config, SEED).map_err(|_| "new")?;
    let mut x = [0.0f32; N];
    let mut g = [0.0f32; N];
    let _ = writeln!(
        board,
        "lodo-firmware: n = {}, steps = {}, seed = {}",
        N, STEPS, SEED
    );
    let start_count = board.counter();
    let start = board.wall_cs();
    for t in 0..STEPS {
        let loss = loss_and_gradient(&x, &mut g);
        if t % PRINT_EVERY == 0 {
            let _ = writeln!(board, "step {} loss {:e}", t, loss);
        }
        lodo.step(&mut x, &g).map_err(|_| "step")?;
    }
    let end = board.wall_cs();
    let count = board.counter() - start_count;
    let loss = loss_and_gradient(&x, &mut g);
    let _ = writeln!(board, "step {} loss {:e}", STEPS, loss);
    if let (Some(a), Some(b)) = (start, end) {
        let _ = writeln!(
            board,
            "emulator wall time: {} cs for {} steps",
            b - a,
            STEPS
        );
    }
    let _ = writeln!(
        board,
        "emulator {}: {} for {} steps",
        B::COUNTER,
        count,
        STEPS
    );
    let _ = writeln!(
        board,
        "heap peak: {} bytes of {}",
        heap::peak(),
        heap::HEAP_SIZE
    );
    let _ = write!(board, "bits");
    for xi in x {
        let _ = write!(board, " {:08x}", xi.to_bits());
    }
    let _ = writeln!(board);
    drop(lodo);
    let free = heap::HEAP_SIZE - heap::used();
    let configs = capacity::configs().map_err(|_| "capacity configs")?;
    for (name, config) in configs {
        let _ = match capacity::largest_n(&config, free) {
            Some((n, bytes)) => writeln!(
                board,
                "capacity: {}: n <= {} in {} free heap bytes (memory_bytes {})",
                name, n, free, bytes
            ),
            None => writeln!(board, "capacity: {}: not even n = 1 fits", name),
        };
    }
    Ok(())
}
