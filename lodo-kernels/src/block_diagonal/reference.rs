//! Portable reference bodies, written as the formulas read: one loop per index, plain
//! multiply-then-add, sums in index order `0, 1, …, k−1`. Every other path is tested against
//! these. Shapes are checked as in the safe entry points (see their `# Panics`).

use num_traits::Float;

use super::check::{adam_shapes, gathered_shapes, square, vec_eq};
use super::{AdamCoefficients, AdamSlices, GatheredPair, Moments};
use crate::compact::{Stored, adam_tile, compact_limit, decode_tile, encode_tile};
use crate::tuning::ADAM_TILE;
use crate::wiring::Wiring;

/// `y = B x`: `y_b[r] = Σ_c B_b[r][c] x_b[c]`.
#[track_caller]
pub fn matvec<T: Float>(k: usize, blocks: &[T], x: &[T], y: &mut [T]) {
    square(k, blocks.len(), x.len());
    vec_eq("y", x.len(), y.len());
    for b in 0..x.len() / k {
        for r in 0..k {
            let mut acc = T::zero();
            for c in 0..k {
                acc = acc + blocks[b * k * k + r * k + c] * x[b * k + c];
            }
            y[b * k + r] = acc;
        }
    }
}

/// `y = Bᵀ x`: `y_b[c] = Σ_r B_b[r][c] x_b[r]`.
#[track_caller]
pub fn matvec_transpose<T: Float, W: Stored<T>>(k: usize, blocks: &[W], x: &[T], y: &mut [T]) {
    square(k, blocks.len(), x.len());
    vec_eq("y", x.len(), y.len());
    for b in 0..x.len() / k {
        for c in 0..k {
            let mut acc = T::zero();
            for r in 0..k {
                acc = acc + blocks[b * k * k + r * k + c].load() * x[b * k + r];
            }
            y[b * k + c] = acc;
        }
    }
}

/// `p_j = x_{s(j)}` (the wiring's sources), then `y = B p`.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn layer_forward_into<T: Float, A: Stored<T>, W: Stored<T>>(
    k: usize,
    blocks: &[W],
    wiring: Wiring<'_>,
    x: &[T],
    p: &mut [A],
    y: &mut [T],
) {
    wiring.check(k, p.len());
    square(k, blocks.len(), p.len());
    vec_eq("y", p.len(), y.len());
    // y_b[r] = Σ_c B_b[r][c] x_{s(b·k+c)}, with the unrounded gathered values; p stores them.
    for (b, (pb, yb)) in p.chunks_exact_mut(k).zip(y.chunks_exact_mut(k)).enumerate() {
        for (r, yr) in yb.iter_mut().enumerate() {
            let mut acc = T::zero();
            for c in 0..k {
                acc = acc + blocks[b * k * k + r * k + c].load() * x[wiring.source(k, b * k + c)];
            }
            *yr = acc;
        }
        for (c, pc) in pb.iter_mut().enumerate() {
            *pc = A::store(x[wiring.source(k, b * k + c)]);
        }
    }
}

/// `y = Pᵀ Bᵀ w`: `y[π(b·k + c)] = Σ_r B_b[r][c] w_b[r]`.
#[track_caller]
pub fn layer_backward<T: Float>(k: usize, blocks: &[T], perm: &[u32], w: &[T], y: &mut [T]) {
    square(k, blocks.len(), w.len());
    vec_eq("y", w.len(), y.len());
    vec_eq("perm", w.len(), perm.len());
    for b in 0..w.len() / k {
        for c in 0..k {
            let mut acc = T::zero();
            for r in 0..k {
                acc = acc + blocks[b * k * k + r * k + c] * w[b * k + r];
            }
            y[perm[b * k + c] as usize] = acc;
        }
    }
}

/// `z = Bᵀ Q w`: `z_b[c] = Σ_r B_b[r][c] ŵ_b[r]` with `ŵ[j] = w[s(j)]`, the wiring's sources.
#[track_caller]
pub fn layer_backward_gathered<T: Float, W: Stored<T>>(
    k: usize,
    blocks: &[W],
    wiring: Wiring<'_>,
    w: &[T],
    z: &mut [T],
) {
    square(k, blocks.len(), z.len());
    wiring.check(k, z.len());
    let at = |j: usize| w[wiring.source(k, j)];
    for b in 0..z.len() / k {
        for c in 0..k {
            let mut acc = T::zero();
            for r in 0..k {
                acc = acc + blocks[b * k * k + r * k + c].load() * at(b * k + r);
            }
            z[b * k + c] = acc;
        }
    }
}

/// The gathered cotangents `(â_j, d̂_j) = (ad[2q(j)], ad[2q(j)+1])` of a [`GatheredPair`].
fn cotangents<T: Float, A>(k: usize, pair: &GatheredPair<'_, T, A>, j: usize) -> (T, T) {
    let i = pair.wiring.source(k, j);
    (pair.ad[2 * i], pair.ad[2 * i + 1])
}

/// Block `b`'s backward products `z_a = θ_bᵀ â_b`, `z_d = θ_bᵀ d̂_b` (`θ_b`: its `k²` numbers),
/// interleaved into `zad`.
fn block_backward<T: Float, A, W: Stored<T>>(
    k: usize,
    pair: &GatheredPair<'_, T, A>,
    b: usize,
    theta_b: &[W],
    zad: &mut [T],
) {
    for col in 0..k {
        let (mut sa, mut sd) = (T::zero(), T::zero());
        for r in 0..k {
            let (a, d) = cotangents(k, pair, b * k + r);
            let t = theta_b[r * k + col].load();
            sa = sa + t * a;
            sd = sd + t * d;
        }
        zad[2 * (b * k + col)] = sa;
        zad[2 * (b * k + col) + 1] = sd;
    }
}

/// Block `b`'s gradient entry `(r, col)`: `s·(â_r c_col + d̂_r e_col)`.
fn gradient_entry<T: Float, A: Stored<T>>(
    k: usize,
    pair: &GatheredPair<'_, T, A>,
    b: usize,
    r: usize,
    col: usize,
) -> T {
    let (a, d) = cotangents(k, pair, b * k + r);
    pair.scale * (a * pair.c[b * k + col].load() + d * pair.e[b * k + col].load())
}

/// `z_a = θᵀ â`, `z_d = θᵀ d̂` interleaved into `zad`, and `grad_b = s·(â_b c_bᵀ + d̂_b e_bᵀ)`,
/// with `â_j = ad[2q(j)]`, `d̂_j = ad[2q(j)+1]` (see [`GatheredPair`]).
#[track_caller]
pub fn backward_pair_gradient<T: Float, A: Stored<T>, W: Stored<T>>(
    k: usize,
    pair: GatheredPair<'_, T, A>,
    theta: &[W],
    grad: &mut [T],
    zad: &mut [T],
) {
    gathered_shapes(k, &pair, theta.len(), zad.len());
    vec_eq("grad", theta.len(), grad.len());
    let kk = k * k;
    for b in 0..pair.c.len() / k {
        block_backward(k, &pair, b, &theta[b * kk..(b + 1) * kk], zad);
        for r in 0..k {
            for col in 0..k {
                grad[b * kk + r * k + col] = gradient_entry(k, &pair, b, r, col);
            }
        }
    }
}

/// [`backward_pair_gradient`] with the old `θ`, then per element the Keras-Adam update
/// `M ← β₁M + (1−β₁)g`, `V ← β₂V + (1−β₂)g²`, `θ ← θ − rate·M/(√V + ε)`, applied only where
/// all three new values are finite (elsewhere the old ones stay); returns how many elements
/// kept their old values. Compact moments are decoded per tile, updated in `T` (where the new
/// `V` also stays within [`crate::compact::BF16_MAX`]) and encoded again.
#[track_caller]
pub fn backward_pair_adam<T: Float, A: Stored<T>, W: Stored<T>>(
    k: usize,
    pair: GatheredPair<'_, T, A>,
    state: AdamSlices<'_, T, W>,
    coefficients: AdamCoefficients<T>,
    zad: &mut [T],
) -> usize {
    adam_shapes(k, &pair, &state, zad.len());
    let AdamSlices { theta, moments } = state;
    let AdamCoefficients {
        beta1,
        beta2,
        epsilon,
        rate,
        key,
        first,
    } = coefficients;
    // θ is updated in T and stored as W; the guard checks the stored value.
    let update = |mi: T, vi: T, th: W, g: T, limit: T| {
        let mn = beta1 * mi + (T::one() - beta1) * g;
        let vn = beta2 * vi + (T::one() - beta2) * g * g;
        let sn = W::store(th.load() - rate * mn / (vn.sqrt() + epsilon));
        (mn.is_finite() && vn <= limit && sn.load().is_finite()).then_some((mn, vn, sn))
    };
    let kk = k * k;
    let mut skipped = 0;
    let mut moments = match moments {
        Moments::Full { m, v } => {
            for b in 0..pair.c.len() / k {
                // The backward products with this block's old θ, then its update.
                block_backward(k, &pair, b, &theta[b * kk..(b + 1) * kk], zad);
                for r in 0..k {
                    for col in 0..k {
                        let i = b * kk + r * k + col;
                        let g = gradient_entry(k, &pair, b, r, col);
                        match update(m[i], v[i], theta[i], g, T::max_value()) {
                            Some(new) => (m[i], v[i], theta[i]) = new,
                            None => skipped += 1,
                        }
                    }
                }
            }
            return skipped;
        }
        compact => compact,
    };
    let (tile, limit) = (adam_tile(k), compact_limit::<T>());
    let (mut mb, mut vb) = ([T::zero(); ADAM_TILE], [T::zero(); ADAM_TILE]);
    for (t, at) in (0..theta.len()).step_by(tile).enumerate() {
        let n = tile.min(theta.len() - at);
        let (mb, vb) = (&mut mb[..n], &mut vb[..n]);
        decode_tile(&moments, t, at, mb, vb);
        for b in at / kk..(at + n) / kk {
            block_backward(k, &pair, b, &theta[b * kk..(b + 1) * kk], zad);
            for r in 0..k {
                for col in 0..k {
                    let i = b * kk + r * k + col;
                    let g = gradient_entry(k, &pair, b, r, col);
                    match update(mb[i - at], vb[i - at], theta[i], g, limit) {
                        Some(new) => (mb[i - at], vb[i - at], theta[i]) = new,
                        None => skipped += 1,
                    }
                }
            }
        }
        encode_tile(&mut moments, t, at, (key, first + at), mb, vb);
    }
    skipped
}
