//! Portable reference bodies of the permutation kernels.

use super::check;

/// `y = P x`: `y[j] = x[π(j)]`.
#[track_caller]
pub fn gather<T: Copy>(perm: &[u32], x: &[T], y: &mut [T]) {
    check(perm, x.len(), y.len());
    for j in 0..perm.len() {
        y[j] = x[perm[j] as usize];
    }
}
