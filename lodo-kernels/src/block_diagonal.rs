//! Block-diagonal mat-vecs and the fused layer kernels of LODO's network.
//!
//! `B = diag(B_0, …, B_{h/k−1})` with `k × k` blocks stored row-major, one after another
//! (`B_b[r][c] = blocks[b·k² + r·k + c]`). One LODO layer is `u ↦ B P u` (paper §3, eq. for
//! `A = B_N P_N ⋯ B_1 P_1`); its adjoint is `w ↦ Pᵀ Bᵀ w`.
//!
//! Float kernels accumulate each output in index order `c = 0, 1, …, k−1` with plain
//! multiply-then-add, so every call is deterministic.

use num_traits::Float;

#[track_caller]
#[inline]
fn check_shapes(k: usize, blocks: usize, x: usize, y: usize) {
    assert!(k > 0, "block size k must be positive");
    assert_eq!(x % k, 0, "vector length must be a multiple of k");
    assert_eq!(blocks, x * k, "blocks must hold (h/k)·k² = h·k numbers");
    assert_eq!(x, y, "input and output lengths differ");
}

/// `y = B x`: `y_b[r] = Σ_c B_b[r][c] x_b[c]`.
///
/// # Panics
/// - if `k == 0` or `x.len()` is not a multiple of `k`;
/// - if `blocks.len() != x.len() · k` or `y.len() != x.len()`.
///
/// # Examples
/// ```
/// // One 2×2 block [[1, 2], [3, 4]].
/// let mut y = [0.0; 2];
/// lodo_kernels::block_diagonal::matvec(2, &[1.0, 2.0, 3.0, 4.0], &[1.0, 1.0], &mut y);
/// assert_eq!(y, [3.0, 7.0]);
/// ```
#[track_caller]
pub fn matvec<T: Float>(k: usize, blocks: &[T], x: &[T], y: &mut [T]) {
    check_shapes(k, blocks.len(), x.len(), y.len());
    for ((bb, xb), yb) in blocks
        .chunks_exact(k * k)
        .zip(x.chunks_exact(k))
        .zip(y.chunks_exact_mut(k))
    {
        for (row, yr) in bb.chunks_exact(k).zip(yb.iter_mut()) {
            let mut acc = T::zero();
            for (&brc, &xc) in row.iter().zip(xb) {
                acc = acc + brc * xc;
            }
            *yr = acc;
        }
    }
}

/// `y = Bᵀ x`: `y_b[c] = Σ_r B_b[r][c] x_b[r]`.
///
/// # Panics
/// As [`matvec`].
///
/// # Examples
/// ```
/// let mut y = [0.0; 2];
/// lodo_kernels::block_diagonal::matvec_transpose(2, &[1.0, 2.0, 3.0, 4.0], &[1.0, 1.0], &mut y);
/// assert_eq!(y, [4.0, 6.0]);
/// ```
#[track_caller]
pub fn matvec_transpose<T: Float>(k: usize, blocks: &[T], x: &[T], y: &mut [T]) {
    check_shapes(k, blocks.len(), x.len(), y.len());
    for ((bb, xb), yb) in blocks
        .chunks_exact(k * k)
        .zip(x.chunks_exact(k))
        .zip(y.chunks_exact_mut(k))
    {
        for (c, yc) in yb.iter_mut().enumerate() {
            let mut acc = T::zero();
            for (r, &xr) in xb.iter().enumerate() {
                acc = acc + bb[r * k + c] * xr;
            }
            *yc = acc;
        }
    }
}

/// One forward layer in place: `p = P u`, then `u ← B p`. `p` is kept (it is the layer input
/// the hypergradient needs).
///
/// # Panics
/// As [`matvec`] and [`crate::permutation::gather`] (all vectors have length `perm.len()`).
#[track_caller]
pub fn layer_forward<T: Float>(k: usize, blocks: &[T], perm: &[u32], u: &mut [T], p: &mut [T]) {
    crate::permutation::gather(perm, u, p);
    matvec(k, blocks, p, u);
}

/// One backward (adjoint) layer: `y = Pᵀ Bᵀ w`, i.e. `y[π(b·k + c)] = Σ_r B_b[r][c] w_b[r]`.
///
/// # Panics
/// As [`matvec`] and [`crate::permutation::scatter`] (all vectors have length `perm.len()`).
#[track_caller]
pub fn layer_backward<T: Float>(k: usize, blocks: &[T], perm: &[u32], w: &[T], y: &mut [T]) {
    check_shapes(k, blocks.len(), w.len(), y.len());
    assert_eq!(
        perm.len(),
        w.len(),
        "layer_backward: permutation has the wrong length"
    );
    for (b, (bb, wb)) in blocks
        .chunks_exact(k * k)
        .zip(w.chunks_exact(k))
        .enumerate()
    {
        for c in 0..k {
            let mut acc = T::zero();
            for (r, &wr) in wb.iter().enumerate() {
                acc = acc + bb[r * k + c] * wr;
            }
            y[perm[b * k + c] as usize] = acc;
        }
    }
}

/// Per-block sum of two outer products: `Δ_b[r][c] = s · (a_b[r] c_b[c] + d_b[r] e_b[c])`.
///
/// This is the gradient of `s·(⟨a, B c⟩ + ⟨d, B e⟩)` with respect to the blocks of `B`.
///
/// # Panics
/// - if `k == 0`, the vectors differ in length or are not a multiple of `k`;
/// - if `out.len() != a.len() · k`.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn outer_pair<T: Float>(k: usize, s: T, a: &[T], c: &[T], d: &[T], e: &[T], out: &mut [T]) {
    check_shapes(k, out.len(), a.len(), c.len());
    assert_eq!(a.len(), d.len(), "outer_pair: d has the wrong length");
    assert_eq!(a.len(), e.len(), "outer_pair: e has the wrong length");
    let blocks = out.chunks_exact_mut(k * k);
    let vecs = a
        .chunks_exact(k)
        .zip(c.chunks_exact(k))
        .zip(d.chunks_exact(k).zip(e.chunks_exact(k)));
    for (ob, ((ab, cb), (db, eb))) in blocks.zip(vecs) {
        for (r, orow) in ob.chunks_exact_mut(k).enumerate() {
            for (col, o) in orow.iter_mut().enumerate() {
                *o = s * (ab[r] * cb[col] + db[r] * eb[col]);
            }
        }
    }
}
