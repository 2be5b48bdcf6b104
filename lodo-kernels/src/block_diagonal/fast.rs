//! The bodies of the SIMD paths: portable code shaped for the vectorisers (fixed `k = 4` copies,
//! tiles, straight elementwise loops), compiled once per instruction set inside the
//! `#[target_feature]` wrappers of `x86.rs` / `aarch64.rs` (matrixmultiply's technique).
//!
//! `K` is the block size when known at compile time (`K = 4`: loops unroll to whole-register
//! operations), or `0` for "use the runtime `k`". `FMA` selects fused multiply-adds, which round
//! once instead of twice; that is the only source of difference from the reference bodies.
//! Shapes were checked by the caller (the safe entry points in `mod.rs`); indexing stays checked.

use num_traits::Float;

use super::{AdamCoefficients, AdamSlices, OuterPair};
use crate::tuning::{ADAM_TILE, PREFETCH_BLOCKS};

/// `acc + a·b`, fused when `FMA`.
#[inline(always)]
fn madd<T: Float, const FMA: bool>(a: T, b: T, acc: T) -> T {
    if FMA { a.mul_add(b, acc) } else { acc + a * b }
}

/// Hints the cache to fetch the line holding `base[i]` for every `i` in
/// `perm[next..next + k]` (nothing if that range is past the end).
#[inline(always)]
fn prefetch_block<T>(base: &[T], perm: &[u32], next: usize, k: usize) {
    if let Some(idx) = perm.get(next..next + k) {
        for &i in idx {
            prefetch(base.as_ptr().wrapping_add(i as usize));
        }
    }
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
fn prefetch<T>(p: *const T) {
    use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: `prefetch` is a hint: it never faults and has no architectural effect, so any
    // address is allowed; `p` was formed with `wrapping_add` (no out-of-bounds offset UB).
    // SSE, which the instruction needs, is part of the x86-64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
}

#[cfg(not(all(target_arch = "x86_64", not(miri))))]
#[inline(always)]
fn prefetch<T>(_p: *const T) {}

#[inline(always)]
fn block_k<const K: usize>(k: usize) -> usize {
    if K == 0 { k } else { K }
}

#[inline(always)]
pub(crate) fn matvec<T: Float, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[T],
    x: &[T],
    y: &mut [T],
) {
    let k = block_k::<K>(k);
    for ((bb, xb), yb) in blocks
        .chunks_exact(k * k)
        .zip(x.chunks_exact(k))
        .zip(y.chunks_exact_mut(k))
    {
        for (row, yr) in bb.chunks_exact(k).zip(yb.iter_mut()) {
            let mut acc = T::zero();
            for (&brc, &xc) in row.iter().zip(xb) {
                acc = madd::<T, FMA>(brc, xc, acc);
            }
            *yr = acc;
        }
    }
}

#[inline(always)]
pub(crate) fn matvec_transpose<T: Float, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[T],
    x: &[T],
    y: &mut [T],
) {
    let k = block_k::<K>(k);
    for ((bb, xb), yb) in blocks
        .chunks_exact(k * k)
        .zip(x.chunks_exact(k))
        .zip(y.chunks_exact_mut(k))
    {
        for (c, yc) in yb.iter_mut().enumerate() {
            let mut acc = T::zero();
            for (r, &xr) in xb.iter().enumerate() {
                acc = madd::<T, FMA>(bb[r * k + c], xr, acc);
            }
            *yc = acc;
        }
    }
}

/// Per block: gather `p_b = (P x)_b`, store it, `y_b = B_b p_b`. One pass.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn layer_forward_into<T: Float, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[T],
    perm: &[u32],
    x: &[T],
    p: &mut [T],
    y: &mut [T],
) {
    let k = block_k::<K>(k);
    for (b, (((bb, pib), pb), yb)) in blocks
        .chunks_exact(k * k)
        .zip(perm.chunks_exact(k))
        .zip(p.chunks_exact_mut(k))
        .zip(y.chunks_exact_mut(k))
        .enumerate()
    {
        prefetch_block(x, perm, (b + PREFETCH_BLOCKS) * k, k);
        for (pc, &j) in pb.iter_mut().zip(pib) {
            *pc = x[j as usize];
        }
        for (row, yr) in bb.chunks_exact(k).zip(yb.iter_mut()) {
            let mut acc = T::zero();
            for (&brc, &pc) in row.iter().zip(pb.iter()) {
                acc = madd::<T, FMA>(brc, pc, acc);
            }
            *yr = acc;
        }
    }
}

/// Per block: `Bᵀ_b w_b`, scattered through `π`.
#[inline(always)]
pub(crate) fn layer_backward<T: Float, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[T],
    perm: &[u32],
    w: &[T],
    y: &mut [T],
) {
    let k = block_k::<K>(k);
    for (b, ((bb, wb), pib)) in blocks
        .chunks_exact(k * k)
        .zip(w.chunks_exact(k))
        .zip(perm.chunks_exact(k))
        .enumerate()
    {
        prefetch_block(y, perm, (b + PREFETCH_BLOCKS) * k, k);
        for (c, &j) in pib.iter().enumerate() {
            let mut acc = T::zero();
            for (r, &wr) in wb.iter().enumerate() {
                acc = madd::<T, FMA>(bb[r * k + c], wr, acc);
            }
            y[j as usize] = acc;
        }
    }
}

/// Both streams through one read of the blocks.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn layer_backward_pair<T: Float, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[T],
    perm: &[u32],
    a: &[T],
    d: &[T],
    ya: &mut [T],
    yd: &mut [T],
) {
    let k = block_k::<K>(k);
    for (b, (((bb, ab), db), pib)) in blocks
        .chunks_exact(k * k)
        .zip(a.chunks_exact(k))
        .zip(d.chunks_exact(k))
        .zip(perm.chunks_exact(k))
        .enumerate()
    {
        prefetch_block(ya, perm, (b + PREFETCH_BLOCKS) * k, k);
        prefetch_block(yd, perm, (b + PREFETCH_BLOCKS) * k, k);
        for (c, &j) in pib.iter().enumerate() {
            let (mut sa, mut sd) = (T::zero(), T::zero());
            for r in 0..k {
                sa = madd::<T, FMA>(bb[r * k + c], ab[r], sa);
                sd = madd::<T, FMA>(bb[r * k + c], db[r], sd);
            }
            ya[j as usize] = sa;
            yd[j as usize] = sd;
        }
    }
}

#[inline(always)]
pub(crate) fn outer_pair<T: Float, const FMA: bool, const K: usize>(
    k: usize,
    pair: OuterPair<'_, T>,
    out: &mut [T],
) {
    let k = block_k::<K>(k);
    let OuterPair { scale, a, c, d, e } = pair;
    for ((((ob, ab), cb), db), eb) in out
        .chunks_exact_mut(k * k)
        .zip(a.chunks_exact(k))
        .zip(c.chunks_exact(k))
        .zip(d.chunks_exact(k))
        .zip(e.chunks_exact(k))
    {
        for ((orow, &ar), &dr) in ob.chunks_exact_mut(k).zip(ab).zip(db) {
            for ((o, &cc), &ec) in orow.iter_mut().zip(cb).zip(eb) {
                *o = scale * madd::<T, FMA>(ar, cc, dr * ec);
            }
        }
    }
}

/// The fused layer step, tile by tile (`k² ≤ ADAM_TILE`, checked by the caller).
///
/// Phase 1 reads each block of the tile once (from memory), writes both backward outputs and
/// the block's gradient into a stack buffer; phase 2 runs the Adam update over the tile's
/// `θ, M, V` (θ now from L1) as one straight elementwise loop. Each of `θ, M, V` crosses the
/// memory bus once in each direction.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn backward_pair_adam<T: Float, const FMA: bool, const K: usize>(
    k: usize,
    perm: &[u32],
    pair: OuterPair<'_, T>,
    state: AdamSlices<'_, T>,
    co: AdamCoefficients<T>,
    ya: &mut [T],
    yd: &mut [T],
) {
    let k = block_k::<K>(k);
    let kk = k * k;
    let tile_blocks = ADAM_TILE / kk;
    let OuterPair { scale, a, c, d, e } = pair;
    let AdamSlices { theta, m, v } = state;
    let AdamCoefficients {
        beta1,
        beta2,
        epsilon,
        rate,
    } = co;
    let (c1, c2) = (T::one() - beta1, T::one() - beta2);
    let mut grad = [T::zero(); ADAM_TILE];
    let tiles = theta
        .chunks_mut(tile_blocks * kk)
        .zip(m.chunks_mut(tile_blocks * kk))
        .zip(v.chunks_mut(tile_blocks * kk));
    for (t, ((th_t, m_t), v_t)) in tiles.enumerate() {
        let v0 = t * tile_blocks * k;
        let v1 = v0 + th_t.len() / k;
        let g_t = &mut grad[..th_t.len()];
        let blocks = th_t
            .chunks_exact(kk)
            .zip(g_t.chunks_exact_mut(kk))
            .zip(a[v0..v1].chunks_exact(k))
            .zip(d[v0..v1].chunks_exact(k))
            .zip(c[v0..v1].chunks_exact(k))
            .zip(e[v0..v1].chunks_exact(k))
            .zip(perm[v0..v1].chunks_exact(k));
        for (bt, ((((((bb, gb), ab), db), cb), eb), pib)) in blocks.enumerate() {
            let next = v0 + (bt + PREFETCH_BLOCKS) * k;
            prefetch_block(ya, perm, next, k);
            prefetch_block(yd, perm, next, k);
            for (col, &j) in pib.iter().enumerate() {
                let (mut sa, mut sd) = (T::zero(), T::zero());
                for r in 0..k {
                    sa = madd::<T, FMA>(bb[r * k + col], ab[r], sa);
                    sd = madd::<T, FMA>(bb[r * k + col], db[r], sd);
                }
                ya[j as usize] = sa;
                yd[j as usize] = sd;
            }
            for ((grow, &ar), &dr) in gb.chunks_exact_mut(k).zip(ab).zip(db) {
                for ((gi, &cc), &ec) in grow.iter_mut().zip(cb).zip(eb) {
                    *gi = scale * madd::<T, FMA>(ar, cc, dr * ec);
                }
            }
        }
        for (((th, mi), vi), &gi) in th_t.iter_mut().zip(m_t).zip(v_t).zip(g_t.iter()) {
            let mn = madd::<T, FMA>(beta1, *mi, c1 * gi);
            let vn = madd::<T, FMA>(beta2, *vi, c2 * gi * gi);
            *mi = mn;
            *vi = vn;
            *th = *th - rate * mn / (vn.sqrt() + epsilon);
        }
    }
}
