//! The RISC-V board: qemu-system-riscv32's `virt` machine (RV32IMAC: no FPU, so every f32
//! operation is compiler-builtins' soft float, correctly rounded like the hardware's), started
//! in M-mode at 0x8000_0000 with `-bios none`; the console is the 16550 UART at 0x1000_0000,
//! the exit the SiFive test device at 0x10_0000; `minstret` counts the instructions retired.

use core::fmt;

use riscv_rt::entry;

use crate::Board;

/// The 16550 UART's transmit holding register (qemu's UART needs no waiting).
const UART_THR: *mut u8 = 0x1000_0000 as *mut u8;
/// The SiFive test device: 0x5555 ends qemu with status 0, `(code << 16) | 0x3333` with `code`.
const TEST_DEVICE: *mut u32 = 0x0010_0000 as *mut u32;

/// The board: the UART.
struct Virt;

impl fmt::Write for Virt {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            // SAFETY: `UART_THR` is the virt machine's UART data register (qemu's memory map),
            // a byte-wide MMIO register that nothing else in this program touches.
            unsafe { UART_THR.write_volatile(b) }
        }
        Ok(())
    }
}

impl Board for Virt {
    const COUNTER: &'static str = "minstret: instructions retired";

    fn counter(&mut self) -> u64 {
        riscv::register::minstret::read64()
    }

    fn wall_cs(&mut self) -> Option<usize> {
        None
    }
}

fn exit(ok: bool) -> ! {
    let code = if ok { 0x5555 } else { (1 << 16) | 0x3333 };
    // SAFETY: `TEST_DEVICE` is the virt machine's SiFive test device (qemu's memory map), a
    // word-wide MMIO register; writing it ends the emulator.
    unsafe { TEST_DEVICE.write_volatile(code) }
    loop {
        riscv::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = fmt::Write::write_fmt(&mut Virt, format_args!("panic: {}\n", info));
    exit(false)
}

#[entry]
fn main() -> ! {
    match crate::run(&mut Virt) {
        Ok(()) => exit(true),
        Err(what) => {
            let _ = fmt::Write::write_fmt(&mut Virt, format_args!("error: {}\n", what));
            exit(false)
        }
    }
}
