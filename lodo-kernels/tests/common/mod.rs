//! Helpers shared by lodo-kernels' test binaries.

use lodo_kernels::{Kernels, Path};

/// A handle for every kernel path this CPU has (the reference always).
pub fn kernels() -> Vec<Kernels> {
    Path::ALL
        .into_iter()
        .filter_map(|p| Kernels::new(p).ok())
        .collect()
}

/// Whether to run few, small cases: under Miri, or with `LODO_FAST_TEST` set (`.ci/miri`).
pub fn fast() -> bool {
    cfg!(miri) || std::env::var_os("LODO_FAST_TEST").is_some()
}

/// Proptest cases per test: `PROPTEST_CASES` if set, else 1 under Miri, 4 in fast runs and
/// `default` otherwise.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(miri) {
            1
        } else if fast() {
            4
        } else {
            default
        })
}

/// The bound of a proptest case's random block count: `default`, or 16 under Miri, where one
/// case of up to 200 blocks took minutes to interpret (every `unsafe` dispatch arm runs at any
/// size; the many-tile cases keep their own, larger, fixed sizes).
#[allow(dead_code)] // compact.rs and theta_f32.rs use it; each test binary compiles this module
pub fn max_blocks(default: usize) -> usize {
    if cfg!(miri) { 16 } else { default }
}
