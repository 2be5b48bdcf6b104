//! An independent `f64` materialisation of the LODO network (paper §3):
//! `G(θ) = α₀ Πᵀ Aᵀ A Π`, `A = B_N P_N ⋯ B_1 P_1`, built from the public permutations and
//! weights of a [`BlockPreconditioner`] (layout: `θ = [B_1, …, B_N]`, block `b` of layer `l` at
//! `θ[l·h·k + b·k² + r·k + c] = B_{l,b}[r][c]`, and `(P x)[j] = x[π(j)]`).

use faer::Mat;
use lodo_core::{BlockPreconditioner, Real};

use crate::f;

/// `A·Π` (`h × n`) in `f64`, from the weights of `p` (converted exactly). With `abs`, every
/// weight is replaced by its absolute value: `|A|·Π`, the matrix of the rounding-error bound.
#[must_use]
pub fn a_pi<T: Real>(p: &BlockPreconditioner<T>, abs: bool) -> Mat<f64> {
    let (h, k) = (p.hidden(), p.block_size());
    let n = lodo_core::Preconditioner::dim(p);
    let w = lodo_core::Preconditioner::weights(p);
    let mut x = Mat::<f64>::zeros(h, n);
    for j in 0..n {
        x[(j, j)] = 1.0;
    }
    let perms = p.permutations().expect("memory for the permutations");
    for (l, perm) in perms.iter().enumerate() {
        let fwd = perm.forward();
        let y = Mat::from_fn(h, n, |i, j| x[(fwd[i] as usize, j)]);
        let mut z = Mat::<f64>::zeros(h, n);
        for b in 0..h / k {
            for r in 0..k {
                for c in 0..k {
                    let v = f(w[l * h * k + b * k * k + r * k + c]);
                    let v = if abs { v.abs() } else { v };
                    if v == 0.0 {
                        continue;
                    }
                    for j in 0..n {
                        z[(b * k + r, j)] += v * y[(b * k + c, j)];
                    }
                }
            }
        }
        x = z;
    }
    x
}

/// `α₀ (AΠ)ᵀ(AΠ)` in `f64` (or `α₀ (|A|Π)ᵀ(|A|Π)` with `abs`).
#[must_use]
pub fn gram<T: Real>(p: &BlockPreconditioner<T>, abs: bool) -> Mat<f64> {
    let a = a_pi(p, abs);
    let alpha = f(p.alpha0());
    let mut g = a.transpose() * &a;
    for j in 0..g.ncols() {
        for i in 0..g.nrows() {
            g[(i, j)] *= alpha;
        }
    }
    g
}

/// The dense `G` materialised by `lodo-core` (column by column through its structured mat-vec),
/// converted to `f64`.
#[must_use]
pub fn dense_from_core<T: Real, P: lodo_core::Preconditioner<T>>(p: &P) -> Mat<f64> {
    let n = p.dim();
    let d = p.to_dense();
    Mat::from_fn(n, n, |i, j| f(d[i * n + j]))
}

/// Number of rounding steps in one column of the structured `G·e_j`: `N` forward and `N`
/// backward layers of `k`-term dot products, and the final scaling by `α₀`.
#[must_use]
pub fn rounding_depth<T: Real>(p: &BlockPreconditioner<T>) -> usize {
    2 * p.layers() * p.block_size() + 1
}
