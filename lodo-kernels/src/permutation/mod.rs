//! Permutation gather and scatter.
//!
//! A permutation `π` of `0..h` acts as the matrix `P` with `(P x)[j] = x[π(j)]` (a gather, as
//! `tf.gather_nd` in the authors' code), and `(Pᵀ x)[π(j)] = x[j]` (a scatter). Both only move
//! data, so every path agrees with the reference bit for bit. The row forms move whole rows of
//! an `h × cols` row-major matrix (for many right-hand sides at once).

pub mod reference;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::dispatch::Kernels;
#[cfg(target_arch = "x86_64")]
use crate::dispatch::{Path, is_native};

#[track_caller]
#[inline]
pub(crate) fn check(perm: &[u32], x: usize, y: usize) {
    assert_eq!(x, perm.len(), "permutation: x has the wrong length");
    assert_eq!(y, perm.len(), "permutation: y has the wrong length");
}

impl Kernels {
    /// `y = P x`. See [`gather`].
    ///
    /// # Panics
    /// As [`gather`].
    #[track_caller]
    pub fn gather<T: Copy + 'static>(self, perm: &[u32], x: &[T], y: &mut [T]) {
        check(perm, x.len(), y.len());
        match self.path() {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 if is_native::<T>() => {
                // SAFETY: a `Kernels` holds `Path::Avx512` only after `Path::is_available`
                // confirmed avx512f + avx2 + fma (`Kernels::new` or `dispatch::selected`).
                unsafe { x86::gather_avx512(perm, x, y) }
            }
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 if is_native::<T>() => {
                // SAFETY: a `Kernels` holds `Path::Avx2` only after `Path::is_available`
                // confirmed avx2 + fma (`Kernels::new` or `dispatch::selected`).
                unsafe { x86::gather_avx2(perm, x, y) }
            }
            _ => reference::gather(perm, x, y),
        }
    }

    /// `y = Pᵀ x`. See [`scatter`].
    ///
    /// # Panics
    /// As [`scatter`].
    #[track_caller]
    pub fn scatter<T: Copy + 'static>(self, perm: &[u32], x: &[T], y: &mut [T]) {
        check(perm, x.len(), y.len());
        // A scatter's stores go to random places; no instruction set does better than the
        // plain loop here, so every path shares it.
        reference::scatter(perm, x, y);
    }
}

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
pub fn gather<T: Copy + 'static>(perm: &[u32], x: &[T], y: &mut [T]) {
    Kernels::selected().gather(perm, x, y);
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
pub fn scatter<T: Copy + 'static>(perm: &[u32], x: &[T], y: &mut [T]) {
    Kernels::selected().scatter(perm, x, y);
}

/// Row gather on an `h × cols` row-major matrix: row `j` of `Y` is row `π(j)` of `X`.
///
/// # Panics
/// - if `cols == 0`, or `x.len()` or `y.len()` is not `perm.len() · cols`;
/// - if an index of `perm` is out of bounds.
#[track_caller]
pub fn gather_rows<T: Copy>(perm: &[u32], cols: usize, x: &[T], y: &mut [T]) {
    assert!(cols > 0, "gather_rows: cols must be positive");
    check(perm, x.len() / cols, y.len() / cols);
    assert!(
        x.len() == y.len() && x.len().is_multiple_of(cols),
        "gather_rows: bad shape"
    );
    for (yr, &j) in y.chunks_exact_mut(cols).zip(perm) {
        let j = j as usize;
        yr.copy_from_slice(&x[j * cols..(j + 1) * cols]);
    }
}

/// Row scatter on an `h × cols` row-major matrix: row `π(j)` of `Y` is row `j` of `X`.
///
/// # Panics
/// As [`gather_rows`].
#[track_caller]
pub fn scatter_rows<T: Copy>(perm: &[u32], cols: usize, x: &[T], y: &mut [T]) {
    assert!(cols > 0, "scatter_rows: cols must be positive");
    check(perm, x.len() / cols, y.len() / cols);
    assert!(
        x.len() == y.len() && x.len().is_multiple_of(cols),
        "scatter_rows: bad shape"
    );
    for (xr, &j) in x.chunks_exact(cols).zip(perm) {
        let j = j as usize;
        y[j * cols..(j + 1) * cols].copy_from_slice(xr);
    }
}
