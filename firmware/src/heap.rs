//! The firmware's heap: embedded-alloc's first-fit allocator over a static 96 KiB arena,
//! counting the bytes in use and their peak. The same on every board.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// Heap size in bytes.
pub const HEAP_SIZE: usize = 96 * 1024;

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

/// Set once the arena is handed to the allocator.
static INIT: AtomicBool = AtomicBool::new(false);

/// Hands the arena to the allocator; later calls do nothing.
pub fn init() {
    static mut ARENA: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
    if INIT.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: runs once (guarded by `INIT`), before any allocation; `ARENA` is used by
    // nothing else.
    unsafe {
        HEAP.heap
            .init(core::ptr::addr_of_mut!(ARENA) as usize, HEAP_SIZE)
    }
}

/// Bytes in use now.
pub fn used() -> usize {
    HEAP.used.load(Ordering::Relaxed)
}

/// The most bytes in use at once so far.
pub fn peak() -> usize {
    HEAP.peak.load(Ordering::Relaxed)
}
