//! Construction and restore with a heap that is too small: a typed `OutOfMemory` error, never
//! an abort. A global allocator refuses every allocation above a limit while the test sets it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use lodo_core::{ConfigError, Lodo, LodoConfig, LodoState, StateError};

/// Refuses single allocations larger than `LIMIT` bytes (usize::MAX: no limit).
struct Limited;

static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

// SAFETY: forwards to the system allocator, or returns null (allowed by `GlobalAlloc`).
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT.load(Ordering::SeqCst) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Limited = Limited;

/// The limit is process-wide: each test holds this lock for its whole body, so no other test's
/// allocations run while a limit is set.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` with single allocations above `limit` bytes refused (call under [`serial`]).
fn with_limit<R>(limit: usize, f: impl FnOnce() -> R) -> R {
    LIMIT.store(limit, Ordering::SeqCst);
    let r = f();
    LIMIT.store(usize::MAX, Ordering::SeqCst);
    r
}

#[test]
fn construction_with_a_heap_too_small_is_a_typed_error() {
    let _serial = serial();
    let _ = lodo_kernels::Kernels::selected();
    let n = 50_000;
    // The largest single buffer is θ (N·h·k = 16·100,000·4 f64 = 51.2 MB): refuse above 1 MB.
    let err = with_limit(1 << 20, || Lodo::<f64>::new(n, LodoConfig::default(), 1)).unwrap_err();
    let ConfigError::OutOfMemory { bytes } = err else {
        panic!("{err:?}")
    };
    assert!(bytes > 1 << 20, "{bytes}");
    assert!(err.to_string().contains(&bytes.to_string()));
    // And it works once memory is there.
    assert!(Lodo::<f64>::new(n, LodoConfig::default(), 1).is_ok());
}

#[test]
fn restore_with_a_heap_too_small_is_a_typed_error() {
    let _serial = serial();
    let _ = lodo_kernels::Kernels::selected();
    let lodo = Lodo::<f32>::new(20_000, LodoConfig::default(), 1).unwrap();
    let json = serde_json::to_string(lodo.state()).unwrap();
    let state: LodoState<f32, lodo_core::BlockPreconditioner<f32>> =
        serde_json::from_str(&json).unwrap();
    // Deserialising needed the stored arrays; restoring needs the scratch (N·h = 640,000 f32
    // = 2.56 MB for the kept activations): refuse above 1 MB.
    let err = with_limit(1 << 20, || Lodo::from_state(state)).unwrap_err();
    assert!(
        matches!(err, StateError::Config(ConfigError::OutOfMemory { .. })),
        "{err:?}"
    );
}
