//! A `#![no_std]` staticlib that builds a LODO optimizer and takes a step. It has its own panic
//! handler and a bump allocator over a static arena, so it fails to build if anything links std.
#![no_std]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use lodo_core::{Lodo, LodoConfig};

const ARENA: usize = 1 << 20;

struct Bump {
    arena: UnsafeCell<[u8; ARENA]>,
    next: AtomicUsize,
}

// SAFETY: allocation hands out disjoint ranges, claimed atomically through `next`.
unsafe impl Sync for Bump {}

// SAFETY: every returned pointer is aligned to `layout.align()`, lies inside the arena and is
// never handed out twice; `dealloc` leaks, which is sound.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.arena.get() as usize;
        let mut start = 0;
        let claimed = self.next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |next| {
            start = (base + next).next_multiple_of(layout.align()) - base;
            let end = start.checked_add(layout.size())?;
            (end <= ARENA).then_some(end)
        });
        match claimed {
            Ok(_) => (base + start) as *mut u8,
            Err(_) => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump { arena: UnsafeCell::new([0; ARENA]), next: AtomicUsize::new(0) };

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Builds an 8-parameter LODO optimizer, takes one step on ½‖x‖², returns 0 on success.
#[unsafe(no_mangle)]
pub extern "C" fn lodo_nostd_smoke() -> i32 {
    let Ok(mut lodo) = Lodo::<f32>::new(8, LodoConfig::default(), 7) else { return 1 };
    let mut x = [1.0f32; 8];
    let g = x;
    match lodo.step(&mut x, &g) {
        Ok(()) => 0,
        Err(_) => 2,
    }
}
