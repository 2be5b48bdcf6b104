//! How large a problem fits this firmware's heap, for each state policy (issue 17): the largest
//! `n` whose optimizer can be built in the free heap and take a step, found by building it.
//!
//! `Lodo::memory_bytes(n, config)` (the bytes an optimizer allocates, equal to a counting
//! allocator's count) gives the first candidate, the largest `n` with
//! `memory_bytes(n) ≤ free`; the candidate is then built for real in this heap (embedded-alloc's
//! first-fit allocator adds alignment and fragmentation to the formula's bytes) and lowered
//! until it builds and steps. Construction allocates fallibly, so a candidate that does not fit
//! is `ConfigError::OutOfMemory`, not an abort.

use lodo_core::{
    AdamConfig, BlockConfig, ConfigError, Lodo, LodoConfig, PermutationFamily, Precision,
};

use crate::problem::SEED;

/// The largest `n` tried (the step's buffers live on the stack).
pub const MAX_N: usize = 512;

/// The configurations reported: the firmware's own (full state, `Random`: the paper's), and the
/// smallest state (`Shuffle`, 8-bit moments, bf16 activations).
pub fn configs() -> Result<[(&'static str, LodoConfig<f32>); 2], ConfigError> {
    let compact = LodoConfig::new(
        BlockConfig::default()
            .with_permutations(PermutationFamily::Shuffle)?
            .with_activations(Precision::Bf16)?,
        AdamConfig::default().with_precision(Precision::Q8),
    );
    Ok([
        ("full f32 state, Random", LodoConfig::default()),
        ("q8 moments + bf16 activations, Shuffle", compact),
    ])
}

/// `(n, memory_bytes(n))`: the largest `n ≤ MAX_N` whose optimizer with `config` builds in the
/// heap's `free` bytes and takes one step; `None` if not even `n = 1` does.
pub fn largest_n(config: &LodoConfig<f32>, free: usize) -> Option<(usize, usize)> {
    let fits = |n: usize| Lodo::<f32>::memory_bytes(n, config).is_ok_and(|b| b <= free);
    // memory_bytes grows with n: the largest n the formula allows.
    let (mut lo, mut hi) = (0usize, MAX_N + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut x = [0.0f32; MAX_N];
    let g = [1.0f32; MAX_N];
    for n in (1..=lo).rev() {
        if let Ok(mut lodo) = Lodo::<f32>::new(n, *config, SEED)
            && lodo.step(&mut x[..n], &g[..n]).is_ok()
        {
            let bytes = Lodo::<f32>::memory_bytes(n, config).ok()?;
            return Some((n, bytes));
        }
    }
    None
}
