//! Permutation gather and scatter.
//!
//! A permutation `π` of `0..h` acts as the matrix `P` with `(P x)[j] = x[π(j)]` (a gather, as
//! `tf.gather_nd` in the authors' code), and `(Pᵀ x)[π(j)] = x[j]` (a scatter). Both only move
//! data, so every implementation must agree with the reference bit for bit.

/// `y = P x`: `y[j] = x[π(j)]`.
///
/// # Panics
/// - if `x.len() != perm.len()` or `y.len() != perm.len()`;
/// - if an index of `perm` is out of bounds.
///
/// # Examples
/// ```
/// let mut y = [0.0; 3];
/// lodo_kernels::permutation::gather(&[2, 0, 1], &[10.0, 20.0, 30.0], &mut y);
/// assert_eq!(y, [30.0, 10.0, 20.0]);
/// ```
#[inline]
#[track_caller]
pub fn gather<T: Copy>(perm: &[u32], x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), perm.len(), "gather: x has the wrong length");
    assert_eq!(y.len(), perm.len(), "gather: y has the wrong length");
    for (yj, &pj) in y.iter_mut().zip(perm) {
        *yj = x[pj as usize];
    }
}

/// `y = Pᵀ x`: `y[π(j)] = x[j]`.
///
/// # Panics
/// - if `x.len() != perm.len()` or `y.len() != perm.len()`;
/// - if an index of `perm` is out of bounds.
///
/// # Examples
/// ```
/// let mut y = [0.0; 3];
/// lodo_kernels::permutation::scatter(&[2, 0, 1], &[30.0, 10.0, 20.0], &mut y);
/// assert_eq!(y, [10.0, 20.0, 30.0]);
/// ```
#[inline]
#[track_caller]
pub fn scatter<T: Copy>(perm: &[u32], x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), perm.len(), "scatter: x has the wrong length");
    assert_eq!(y.len(), perm.len(), "scatter: y has the wrong length");
    for (&xj, &pj) in x.iter().zip(perm) {
        y[pj as usize] = xj;
    }
}
