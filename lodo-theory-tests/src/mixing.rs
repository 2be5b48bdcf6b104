//! Structural mixing of the LODO network (THEORY.md, T3): the first depth at which `A·Π` is
//! structurally dense (every one of the `h` outputs depends on every one of the `n` inputs when
//! all block entries are nonzero).
//!
//! Supports are propagated exactly, 64 input columns at a time as bits of a `u64` per hidden
//! unit: a layer `u ↦ B P u` gathers (`p[i] = u[π(i)]`) and then ORs each `k`-block, because an
//! output of block `b` depends on every input of block `b`.

use lodo_core::Permutation;

/// The first depth `D ≤ perms.len()` at which `A·Π` (`h × n`, `h = perms[0].len()`, `k`-blocks)
/// is structurally dense, or `None` if it is not dense after all layers.
///
/// # Panics
/// If `k` does not divide `h`, `n > h`, or the permutations have different lengths.
#[must_use]
pub fn mixing_depth(perms: &[Permutation], n: usize, k: usize) -> Option<usize> {
    let h = perms.first().map_or(0, Permutation::len);
    assert!(k > 0 && h.is_multiple_of(k) && n <= h && perms.iter().all(|p| p.len() == h));
    let mut worst = 0;
    let mut u = vec![0u64; h];
    let mut p = vec![0u64; h];
    for start in (0..n).step_by(64) {
        let width = (n - start).min(64);
        let full = if width == 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        u.fill(0);
        for c in 0..width {
            u[start + c] = 1u64 << c;
        }
        let mut depth = None;
        for (l, perm) in perms.iter().enumerate() {
            for (pi, &src) in p.iter_mut().zip(perm.forward()) {
                *pi = u[src as usize];
            }
            for (ub, pb) in u.chunks_exact_mut(k).zip(p.chunks_exact(k)) {
                let or = pb.iter().fold(0, |a, &b| a | b);
                ub.fill(or);
            }
            if u.iter().all(|&w| w == full) {
                depth = Some(l + 1);
                break;
            }
        }
        worst = worst.max(depth?);
    }
    Some(worst)
}

/// `⌈log_k h⌉`: the smallest depth at which one input can reach all `h` outputs (a column's
/// support grows at most `k`-fold per layer).
#[must_use]
pub fn log_lower_bound(h: usize, k: usize) -> usize {
    let mut d = 0;
    let mut reach = 1usize;
    while reach < h {
        reach = reach.saturating_mul(k);
        d += 1;
    }
    d
}
