//! Permutation gather and scatter.
//!
//! A permutation `π` of `0..h` acts as the matrix `P` with `(P x)[j] = x[π(j)]` (a gather, as
//! `tf.gather_nd` in the authors' code), and `(Pᵀ x)[π(j)] = x[j]` (a scatter). Both only move
//! data, so every path agrees with the reference bit for bit.
//!
//! | kernel | formula |
//! |---|---|
//! | [`gather`] | $y = P x$, $y_j = x_{π(j)}$ (on the path [`Kernels::selected`] chooses) |
//! | [`gather_rows`] | $Y = P X$ for an $h × \mathrm{cols}$ row-major $X$ (whole rows) |
//! | [`scatter_rows`] | $Y = P^T X$, row $π(j)$ of $Y$ is row $j$ of $X$ |

pub(crate) mod reference;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::dispatch::Kernels;
#[cfg(target_arch = "x86_64")]
use crate::dispatch::{Path, is_native};
use crate::wiring::Wiring;

/// `x` and `y` have the length of `perm`.
#[track_caller]
#[inline]
pub(crate) fn check(perm: &[u32], x: usize, y: usize) {
    assert_eq!(x, perm.len(), "permutation: x has the wrong length");
    assert_eq!(y, perm.len(), "permutation: y has the wrong length");
}

impl Kernels {
    /// `y = P x` on this handle's path (the benches time each path). See [`gather`].
    ///
    /// # Panics
    /// As [`gather`].
    #[doc(hidden)]
    #[track_caller]
    pub fn gather<T: Copy + 'static>(self, perm: &[u32], x: &[T], y: &mut [T]) {
        check(perm, x.len(), y.len());
        match self.path() {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 if is_native::<T>() => {
                // SAFETY: a `Kernels` holds `Path::Avx512` only after `Path::is_available`
                // confirmed avx512f + avx512vl + avx512bw + avx512dq + avx2 + fma (`Kernels::new`
                // or `dispatch::selected`).
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
}

impl Kernels {
    /// `y_j = x_{s(j)}` for `j < y.len()`, `s` the sources of `wiring` ([`Wiring`]): a plain
    /// permutation gather, or a prefix of one (LODO's last backward step keeps `n ≤ h` outputs).
    /// Moves data only, so every path gives the same bits; the SIMD paths compute a structured
    /// wiring's sources incrementally, block by block.
    ///
    /// # Panics
    /// If the wiring does not fit `y.len()` outputs of block size `k` (an index shorter than
    /// `y`; a shuffle with `k² ∤ h`, see [`Wiring`]), or a source is out of bounds of `x`.
    ///
    /// # Examples
    /// ```
    /// use lodo_kernels::{Kernels, wiring::{Shuffle, Wiring}};
    /// // The 2-ary perfect shuffle of h = 4: σ = [0, 2, 1, 3].
    /// let s = Wiring::Shuffle(Shuffle { width: 4, inverse: false, tiles: None, offset: 0 });
    /// let mut y = [0.0; 3];
    /// Kernels::selected().gather_wired(2, s, &[10.0, 11.0, 12.0, 13.0], &mut y);
    /// assert_eq!(y, [10.0, 12.0, 11.0]);
    /// ```
    #[track_caller]
    pub fn gather_wired<T: Copy>(self, k: usize, wiring: Wiring<'_>, x: &[T], y: &mut [T]) {
        let wiring = wiring.part(0, y.len());
        wiring.check(k, y.len());
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if self.path() != crate::dispatch::Path::Reference {
            use crate::cursor::{Cursor, with_cursor};
            let full = y.len() / k * k;
            let (head, tail) = y.split_at_mut(full);
            with_cursor!(wiring, k, |cur| {
                let mut cur = cur;
                for yb in head.chunks_exact_mut(k) {
                    for (c, v) in yb.iter_mut().enumerate() {
                        *v = x[cur.at(c)];
                    }
                    cur.advance();
                }
            });
            for (j, v) in tail.iter_mut().enumerate() {
                *v = x[wiring.source(k, full + j)];
            }
            return;
        }
        for (j, v) in y.iter_mut().enumerate() {
            *v = x[wiring.source(k, j)];
        }
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

/// Row gather on an `h × cols` row-major matrix: row `j` of `Y` is row `π(j)` of `X`.
///
/// # Panics
/// - if `cols == 0`, or `x.len()` or `y.len()` is not `perm.len() · cols`;
/// - if an index of `perm` is out of bounds.
///
/// # Examples
/// ```
/// // Two rows of two columns, swapped.
/// let mut y = [0.0; 4];
/// lodo_kernels::permutation::gather_rows(&[1, 0], 2, &[1.0, 2.0, 3.0, 4.0], &mut y);
/// assert_eq!(y, [3.0, 4.0, 1.0, 2.0]);
/// ```
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
///
/// # Examples
/// ```
/// // Row 0 of X goes to row π(0) = 2 of Y.
/// let mut y = [0.0; 3];
/// lodo_kernels::permutation::scatter_rows(&[2, 0, 1], 1, &[30.0, 10.0, 20.0], &mut y);
/// assert_eq!(y, [10.0, 20.0, 30.0]);
/// ```
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
