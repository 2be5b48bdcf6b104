//! The bodies of the SIMD paths: portable code shaped for the vectorisers (fixed `k = 4` copies,
//! tiles, straight elementwise loops), compiled once per instruction set inside the
//! `#[target_feature]` wrappers of `x86.rs` / `aarch64.rs` (matrixmultiply's technique).
//!
//! `K` is the block size when known at compile time (`K = 4`: loops unroll to whole-register
//! operations), or `0` for "use the runtime `k`". `FMA` selects fused multiply-adds, which round
//! once instead of twice; that is the only source of difference from the reference bodies.
//! Shapes were checked by the caller (the safe entry points in `mod.rs`); indexing stays checked.

use num_traits::Float;

use super::{AdamCoefficients, AdamSlices, GatheredPair, Moments};
use crate::compact::{
    Stored, bf16_moment_codes, bf16_value, compact_limit, inverse, q8_m_value, q8_scale, q8_signed,
    q8_unsigned, q8_v_value, to_f32,
};
use crate::cursor::{Cursor, prefetch, prefetch_lines, with_cursor};
use crate::tuning::{
    ADAM_TILE, ADAM_TILE_MAX_K, FORWARD_AHEAD, PREFETCH_BLOCKS, PREFETCH_MIN_BYTES, THETA_AHEAD,
};
use crate::wiring::Wiring;

/// `acc + a·b`, fused when `FMA`.
#[inline(always)]
fn madd<T: Float, const FMA: bool>(a: T, b: T, acc: T) -> T {
    if FMA { a.mul_add(b, acc) } else { acc + a * b }
}

/// Hints the cache to fetch the line holding `base[i]` for every `i` in
/// `perm[next..next + k]` (nothing if that range is past the end, or if `base` is smaller than
/// [`PREFETCH_MIN_BYTES`]).
#[inline(always)]
fn prefetch_block<T>(base: &[T], perm: &[u32], next: usize, k: usize) {
    if size_of_val(base) < PREFETCH_MIN_BYTES {
        return;
    }
    if let Some(idx) = perm.get(next..next + k) {
        for &i in idx {
            prefetch(base.as_ptr().wrapping_add(i as usize));
        }
    }
}

/// The block size: `K` if known at compile time, else the runtime `k`.
#[inline(always)]
fn block_k<const K: usize>(k: usize) -> usize {
    if K == 0 { k } else { K }
}

/// `y_a = B_bᵀ a_b`, `y_d = B_bᵀ d_b` for one `K × K` block (`K > 0`), written as combinations
/// of the block's rows (`y[c] += B[r][c]·a[r]` for `r = 0, …, K−1`), which vectorises across
/// `c` without horizontal sums. Each output is accumulated in the reference order.
#[inline(always)]
fn transpose_pair_fixed<T: Float, W: Stored<T>, const FMA: bool, const K: usize>(
    bb: &[W],
    ab: &[T],
    db: &[T],
) -> ([T; K], [T; K]) {
    let (mut sa, mut sd) = ([T::zero(); K], [T::zero(); K]);
    for ((row, &ar), &dr) in bb.chunks_exact(K).zip(ab).zip(db) {
        for ((&brc, ya), yd) in row.iter().zip(sa.iter_mut()).zip(sd.iter_mut()) {
            let brc = brc.load();
            *ya = madd::<T, FMA>(brc, ar, *ya);
            *yd = madd::<T, FMA>(brc, dr, *yd);
        }
    }
    (sa, sd)
}

/// `y = B_b x_b` for one `K × K` block (`K > 0`): `y[r] = Σ_c B[r][c]·x[c]` summed in the
/// reference order `c = 0, …, K−1`, written column by column so the `K` outputs advance together
/// (no horizontal sums).
#[inline(always)]
fn block_fixed<T: Float, W: Stored<T>, const FMA: bool, const K: usize>(
    bb: &[W],
    xb: &[T],
) -> [T; K] {
    let mut y = [T::zero(); K];
    for (c, &xc) in xb.iter().enumerate().take(K) {
        for (r, yr) in y.iter_mut().enumerate() {
            *yr = madd::<T, FMA>(bb[r * K + c].load(), xc, *yr);
        }
    }
    y
}

/// `y = B_bᵀ w_b` for one `K × K` block (`K > 0`), as [`transpose_pair_fixed`].
#[inline(always)]
fn transpose_fixed<T: Float, W: Stored<T>, const FMA: bool, const K: usize>(
    bb: &[W],
    wb: &[T],
) -> [T; K] {
    let mut y = [T::zero(); K];
    for (row, &wr) in bb.chunks_exact(K).zip(wb) {
        for (&brc, yc) in row.iter().zip(y.iter_mut()) {
            *yc = madd::<T, FMA>(brc.load(), wr, *yc);
        }
    }
    y
}

/// `y = B x`, block by block, each output summed in the reference order.
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
        if K > 0 {
            yb.copy_from_slice(&block_fixed::<T, T, FMA, K>(bb, xb));
            continue;
        }
        for (row, yr) in bb.chunks_exact(k).zip(yb.iter_mut()) {
            let mut acc = T::zero();
            for (&brc, &xc) in row.iter().zip(xb) {
                acc = madd::<T, FMA>(brc, xc, acc);
            }
            *yr = acc;
        }
    }
}

/// `y = Bᵀ x`, block by block, each output summed in the reference order.
#[inline(always)]
pub(crate) fn matvec_transpose<T: Float, W: Stored<T>, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[W],
    x: &[T],
    y: &mut [T],
) {
    let k = block_k::<K>(k);
    for ((bb, xb), yb) in blocks
        .chunks_exact(k * k)
        .zip(x.chunks_exact(k))
        .zip(y.chunks_exact_mut(k))
    {
        if K > 0 {
            yb.copy_from_slice(&transpose_fixed::<T, W, FMA, K>(bb, xb));
            continue;
        }
        for (c, yc) in yb.iter_mut().enumerate() {
            let mut acc = T::zero();
            for (r, &xr) in xb.iter().enumerate() {
                acc = madd::<T, FMA>(bb[r * k + c].load(), xr, acc);
            }
            *yc = acc;
        }
    }
}

/// Per block: gather `p_b = x̂_b` (`x̂_j = x_{s(j)}`, the wiring's sources), store it,
/// `y_b = B_b p_b`. One pass.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn layer_forward_into<
    T: Float,
    A: Stored<T>,
    W: Stored<T>,
    const FMA: bool,
    const K: usize,
>(
    k: usize,
    blocks: &[W],
    wiring: Wiring<'_>,
    x: &[T],
    p: &mut [A],
    y: &mut [T],
) {
    match wiring {
        Wiring::Shuffle(s) if !s.inverse && s.offset == 0 && p.len() == s.width => {
            forward_streamed::<T, A, W, FMA, K>(k, blocks, s, x, p, y);
        }
        _ => with_cursor!(wiring, k, |cur| forward_with::<T, A, W, FMA, K>(
            k, blocks, cur, x, p, y
        )),
    }
}

/// A whole forward layer through `σ` (or `σ∘τ`), in the order that reads `x` once: for each
/// run of positions `pos₀ … pos₀ + T − 1` (`T` the tile, or `k` untiled), the `k` segments'
/// outputs `a·r + pos` in turn. They all read the window `x[pos₀·k … (pos₀ + T)·k)`, which
/// stays in L1 while the `k` segments use it, so `x` streams from memory once instead of `k`
/// times (the natural order reads it with stride `k` per segment). Each block is computed as in
/// [`forward_with`], so the bits are the same.
///
/// The `k` segments' blocks are `k` streams of `θ` from memory, prefetched [`FORWARD_AHEAD`]
/// runs ahead (hints only: the bits do not change).
#[inline(always)]
fn forward_streamed<T: Float, A: Stored<T>, W: Stored<T>, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[W],
    s: crate::wiring::Shuffle<'_>,
    x: &[T],
    p: &mut [A],
    y: &mut [T],
) {
    use crate::cursor::{ShuffleCursor, TiledShuffleCursor};
    let r = s.width / k;
    let run = s.tiles.map_or(k, |t| t.tile);
    for pos in (0..r).step_by(run) {
        // A segment's last tile is cut at the segment's end.
        let len = run.min(r - pos);
        if size_of_val(blocks) >= PREFETCH_MIN_BYTES {
            let ahead = pos + FORWARD_AHEAD * run;
            for a in 0..k {
                let t = blocks.as_ptr().wrapping_add((a * r + ahead) * k);
                prefetch_lines(t, len * k * size_of::<W>());
            }
        }
        for a in 0..k {
            let j0 = a * r + pos;
            let (b, p, y) = (
                &blocks[j0 * k..(j0 + len) * k],
                &mut p[j0..j0 + len],
                &mut y[j0..j0 + len],
            );
            match s.tiles {
                None => forward_with::<T, A, W, FMA, K>(
                    k,
                    b,
                    ShuffleCursor::at_segment(a, pos, k, r),
                    x,
                    p,
                    y,
                ),
                Some(t) => forward_with::<T, A, W, FMA, K>(
                    k,
                    b,
                    TiledShuffleCursor::at_tile(a, pos, k, r, t.tile, t.local),
                    x,
                    p,
                    y,
                ),
            }
        }
    }
}

/// Largest block size of the fast forward body (its gathered block lives on the stack); larger
/// blocks take the reference body ([`crate::Kernels::layer_forward_into`]).
pub(crate) const FORWARD_MAX_K: usize = 64;

/// [`layer_forward_into`] for one cursor type.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_with<T: Float, A: Stored<T>, W: Stored<T>, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[W],
    mut cur: impl Cursor,
    x: &[T],
    p: &mut [A],
    y: &mut [T],
) {
    let k = block_k::<K>(k);
    // The gathered block in T (the forward uses it unrounded), then stored as A.
    let mut buf = [T::zero(); FORWARD_MAX_K];
    for ((bb, pa), yb) in blocks
        .chunks_exact(k * k)
        .zip(p.chunks_exact_mut(k))
        .zip(y.chunks_exact_mut(k))
    {
        let pb = &mut buf[..k];
        cur.prefetch(x, 1, PREFETCH_BLOCKS);
        cur.gather(x, pb);
        cur.advance();
        A::store_run(pb, pa);
        if K > 0 {
            yb.copy_from_slice(&block_fixed::<T, W, FMA, K>(bb, pb));
            continue;
        }
        for (row, yr) in bb.chunks_exact(k).zip(yb.iter_mut()) {
            let mut acc = T::zero();
            for (&brc, &pc) in row.iter().zip(pb.iter()) {
                acc = madd::<T, FMA>(brc.load(), pc, acc);
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
        if K > 0 {
            for (&j, yc) in pib.iter().zip(transpose_fixed::<T, T, FMA, K>(bb, wb)) {
                y[j as usize] = yc;
            }
            continue;
        }
        for (c, &j) in pib.iter().enumerate() {
            let mut acc = T::zero();
            for (r, &wr) in wb.iter().enumerate() {
                acc = madd::<T, FMA>(bb[r * k + c], wr, acc);
            }
            y[j as usize] = acc;
        }
    }
}

/// Per block: `ŵ_b` gathered through the wiring (random indices prefetched
/// `PREFETCH_BLOCKS` ahead), `z_b = B_bᵀ ŵ_b` written in order.
#[inline(always)]
pub(crate) fn layer_backward_gathered<T: Float, W: Stored<T>, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[W],
    wiring: Wiring<'_>,
    w: &[T],
    z: &mut [T],
) {
    if wiring == Wiring::Identity {
        return matvec_transpose::<T, W, FMA, K>(k, blocks, w, z);
    }
    with_cursor!(wiring, k, |cur| backward_with::<T, W, FMA, K>(
        k, blocks, cur, w, z
    ))
}

/// [`layer_backward_gathered`] for one cursor type.
#[inline(always)]
fn backward_with<T: Float, W: Stored<T>, const FMA: bool, const K: usize>(
    k: usize,
    blocks: &[W],
    mut cur: impl Cursor,
    w: &[T],
    z: &mut [T],
) {
    let k = block_k::<K>(k);
    let far = size_of_val(blocks) >= PREFETCH_MIN_BYTES;
    for (i, (bb, zb)) in blocks
        .chunks_exact(k * k)
        .zip(z.chunks_exact_mut(k))
        .enumerate()
    {
        if far {
            // `θ` streams from memory: ask for the block `THETA_AHEAD` on, as in the fused
            // sweep (a hint: the bits do not change).
            let ahead = blocks.as_ptr().wrapping_add((i + THETA_AHEAD) * k * k);
            prefetch_lines(ahead, k * k * size_of::<W>());
        }
        cur.prefetch(w, 1, PREFETCH_BLOCKS);
        if K > 0 {
            let mut wb = [T::zero(); K];
            cur.gather(w, &mut wb);
            cur.advance();
            zb.copy_from_slice(&transpose_fixed::<T, W, FMA, K>(bb, &wb));
            continue;
        }
        for (c, zc) in zb.iter_mut().enumerate() {
            let mut acc = T::zero();
            for r in 0..k {
                acc = madd::<T, FMA>(bb[r * k + c].load(), w[cur.at(r)], acc);
            }
            *zc = acc;
        }
        cur.advance();
    }
}

/// One tile of a fused backward layer: for each block, gather the pair `â_b, d̂_b` (prefetched
/// `PREFETCH_BLOCKS` ahead, both numbers of a pair from one cache line), read the block once,
/// write `z_a, z_d` interleaved in order and the block gradient `s·(â_b c_bᵀ + d̂_b e_bᵀ)`.
/// `v0` is the tile's first vector index; `th_t`, `g_t` hold its blocks, `zad_t` its pairs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pair_tile<T: Float, A: Stored<T>, W: Stored<T>, const FMA: bool, const K: usize>(
    k: usize,
    pair: &GatheredPair<'_, T, A>,
    cur: &mut impl Cursor,
    far: bool,
    v0: usize,
    th_t: &[W],
    g_t: &mut [T],
    zad_t: &mut [T],
) {
    let kk = k * k;
    let GatheredPair {
        scale, ad, c, e, ..
    } = *pair;
    let (mut abuf, mut dbuf) = ([T::zero(); ADAM_TILE_MAX_K], [T::zero(); ADAM_TILE_MAX_K]);
    let (ab, db) = (&mut abuf[..k], &mut dbuf[..k]);
    let v1 = v0 + th_t.len() / k;
    let blocks = th_t
        .chunks_exact(kk)
        .zip(g_t.chunks_exact_mut(kk))
        .zip(zad_t.chunks_exact_mut(2 * k))
        .zip(c[v0..v1].chunks_exact(k))
        .zip(e[v0..v1].chunks_exact(k));
    for (i, ((((bb, gb), zb), cb), eb)) in blocks.enumerate() {
        if far {
            // `θ` streams from memory: ask for the block `THETA_AHEAD` on (past the tile's end
            // too: `th_t` is part of the layer's `θ`), so that the next tile's blocks arrive
            // while this tile's Adam update computes. A hint: the bits do not change.
            let ahead = th_t.as_ptr().wrapping_add((i + THETA_AHEAD) * kk);
            prefetch_lines(ahead, kk * size_of::<W>());
        }
        cur.prefetch(ad, 2, PREFETCH_BLOCKS);
        cur.gather_pairs(ad, ab, db);
        cur.advance();
        if K > 0 {
            let (sa, sd) = transpose_pair_fixed::<T, W, FMA, K>(bb, ab, db);
            for ((z, a), d) in zb.chunks_exact_mut(2).zip(sa).zip(sd) {
                z[0] = a;
                z[1] = d;
            }
        } else {
            for (col, z) in zb.chunks_exact_mut(2).enumerate() {
                let (mut sa, mut sd) = (T::zero(), T::zero());
                for r in 0..k {
                    let brc = bb[r * k + col].load();
                    sa = madd::<T, FMA>(brc, ab[r], sa);
                    sd = madd::<T, FMA>(brc, db[r], sd);
                }
                z[0] = sa;
                z[1] = sd;
            }
        }
        // The block's kept activations read once (decoded, for a compact `A`), used by every row.
        let (mut cbuf, mut ebuf) = ([T::zero(); ADAM_TILE_MAX_K], [T::zero(); ADAM_TILE_MAX_K]);
        let (cv, ev) = (&mut cbuf[..k], &mut ebuf[..k]);
        for ((cv, ev), (&cc, &ec)) in cv.iter_mut().zip(ev.iter_mut()).zip(cb.iter().zip(eb)) {
            (*cv, *ev) = (cc.load(), ec.load());
        }
        for ((grow, &ar), &dr) in gb.chunks_exact_mut(k).zip(ab.iter()).zip(db.iter()) {
            for ((gi, &cc), &ec) in grow.iter_mut().zip(cv.iter()).zip(ev.iter()) {
                *gi = scale * madd::<T, FMA>(ar, cc, dr * ec);
            }
        }
    }
}

/// The backward layer with its gradient written out, tile by tile.
#[inline(always)]
pub(crate) fn backward_pair_gradient<
    T: Float,
    A: Stored<T>,
    W: Stored<T>,
    const FMA: bool,
    const K: usize,
>(
    k: usize,
    pair: GatheredPair<'_, T, A>,
    theta: &[W],
    grad: &mut [T],
    zad: &mut [T],
) {
    with_cursor!(pair.wiring, k, |cur| gradient_with::<T, A, W, FMA, K>(
        k, &pair, cur, theta, grad, zad
    ))
}

/// [`backward_pair_gradient`] for one cursor type.
#[inline(always)]
fn gradient_with<T: Float, A: Stored<T>, W: Stored<T>, const FMA: bool, const K: usize>(
    k: usize,
    pair: &GatheredPair<'_, T, A>,
    mut cur: impl Cursor,
    theta: &[W],
    grad: &mut [T],
    zad: &mut [T],
) {
    let k = block_k::<K>(k);
    let tile = (ADAM_TILE / (k * k)) * k * k;
    let far = size_of_val(theta) >= PREFETCH_MIN_BYTES;
    for (t, ((th_t, g_t), zad_t)) in theta
        .chunks(tile)
        .zip(grad.chunks_mut(tile))
        .zip(zad.chunks_mut(2 * tile / k))
        .enumerate()
    {
        pair_tile::<T, A, W, FMA, K>(k, pair, &mut cur, far, t * tile / k, th_t, g_t, zad_t);
    }
}

/// The fused layer step, tile by tile (`k ≤ ADAM_TILE_MAX_K`, checked by the caller).
///
/// Phase 1 ([`pair_tile`]) reads each block of the tile once (from memory), writes both
/// backward outputs and the block's gradient into a stack buffer; phase 2 runs the Adam update
/// over the tile's `θ, M, V` (θ now from L1) as one straight elementwise loop. Each of `θ, M, V`
/// crosses the memory bus once in each direction. An element whose new `M`, `V` or `θ` would
/// not be finite keeps its old three values (a select, no branch); the count is returned.
#[inline(always)]
pub(crate) fn backward_pair_adam<
    T: Float,
    A: Stored<T>,
    W: Stored<T>,
    const FMA: bool,
    const K: usize,
>(
    k: usize,
    pair: GatheredPair<'_, T, A>,
    state: AdamSlices<'_, T, W>,
    co: AdamCoefficients<T>,
    zad: &mut [T],
) -> usize {
    with_cursor!(pair.wiring, k, |cur| adam_with::<T, A, W, FMA, K>(
        k, &pair, cur, state, co, zad
    ))
}

/// [`backward_pair_adam`] for one cursor type: moments in `T` are updated in place; compact
/// ones are decoded inside the update loop itself, element by element, and encoded again
/// ([`crate::compact`]): bf16 in the same loop, q8 in a second loop over the tile once its
/// scales (the new moments' largest magnitudes, taken in the first) are known.
#[inline(always)]
fn adam_with<T: Float, A: Stored<T>, W: Stored<T>, const FMA: bool, const K: usize>(
    k: usize,
    pair: &GatheredPair<'_, T, A>,
    mut cur: impl Cursor,
    state: AdamSlices<'_, T, W>,
    co: AdamCoefficients<T>,
    zad: &mut [T],
) -> usize {
    let k = block_k::<K>(k);
    let AdamSlices { theta, moments } = state;
    let far = size_of_val(theta) >= PREFETCH_MIN_BYTES;
    let tiles = Tiles {
        k,
        pair,
        far,
        theta,
        zad,
    };
    match moments {
        Moments::Full { m, v } => tiles.update::<FMA, K>(&mut cur, |_, at, th_t, g_t| {
            let n = th_t.len();
            adam_full::<T, W, FMA>(&co, th_t, &mut m[at..at + n], &mut v[at..at + n], g_t)
        }),
        Moments::Bf16 { m, v } => tiles.update::<FMA, K>(&mut cur, |_, at, th_t, g_t| {
            let n = th_t.len();
            if far {
                // The next tile's codes, fetched while this tile computes (a hint).
                prefetch_lines(m.as_ptr().wrapping_add(at + n), n * 2);
                prefetch_lines(v.as_ptr().wrapping_add(at + n), n * 2);
            }
            let codes = (&mut m[at..at + n], &mut v[at..at + n]);
            adam_bf16::<T, W, FMA>(&co, co.first + at, th_t, codes, g_t)
        }),
        Moments::Q8 { m, v, scales } => {
            let (mut mb, mut vb) = ([0.0f32; ADAM_TILE], [0.0f32; ADAM_TILE]);
            tiles.update::<FMA, K>(&mut cur, |t, at, th_t, g_t| {
                let n = th_t.len();
                if far {
                    prefetch_lines(m.as_ptr().wrapping_add(at + n), n);
                    prefetch_lines(v.as_ptr().wrapping_add(at + n), n);
                }
                let codes = (&mut m[at..at + n], &mut v[at..at + n]);
                let buffers = (&mut mb[..n], &mut vb[..n]);
                adam_q8::<T, W, FMA>(&co, th_t, codes, &mut scales[t], g_t, buffers)
            })
        }
    }
}

/// The tiles of a layer's `θ`, for the fused step.
struct Tiles<'p, 'a, T, A, W> {
    k: usize,
    pair: &'p GatheredPair<'a, T, A>,
    far: bool,
    theta: &'p mut [W],
    zad: &'p mut [T],
}

impl<T: Float, A: Stored<T>, W: Stored<T>> Tiles<'_, '_, T, A, W> {
    /// For each tile in order: phase 1 ([`pair_tile`]) into a gradient buffer, then
    /// `update(t, at, θ_t, g_t)` (tile `t`, its first entry `at`); the sum of the counts the
    /// updates return. Generic, so that everything is inlined into the caller's
    /// `#[target_feature]` body.
    #[inline(always)]
    fn update<const FMA: bool, const K: usize>(
        self,
        cur: &mut impl Cursor,
        mut update: impl FnMut(usize, usize, &mut [W], &[T]) -> u32,
    ) -> usize {
        let Tiles {
            k,
            pair,
            far,
            theta,
            zad,
        } = self;
        let tile = (ADAM_TILE / (k * k)) * k * k;
        let mut grad = [T::zero(); ADAM_TILE];
        let mut skipped = 0;
        let tiles = theta.chunks_mut(tile).zip(zad.chunks_mut(2 * tile / k));
        for (t, (th_t, zad_t)) in tiles.enumerate() {
            let g_t = &mut grad[..th_t.len()];
            pair_tile::<T, A, W, FMA, K>(k, pair, cur, far, t * tile / k, th_t, g_t, zad_t);
            skipped += update(t, t * tile, th_t, g_t) as usize;
        }
        skipped
    }
}

/// The Keras-Adam update of one element (`COMPACT`: the new `V` must also stay within
/// [`crate::compact::BF16_MAX`]): the new `M`, `V`, stored `θ`, and whether the element keeps
/// its old values instead (a new `V` or `θ` that is not finite, or too large to store).
#[inline(always)]
fn adam_element<T: Float, W: Stored<T>, const FMA: bool, const COMPACT: bool>(
    co: &AdamCoefficients<T>,
    th: W,
    mi: T,
    vi: T,
    gi: T,
) -> (T, T, W, bool) {
    let (c1, c2) = (T::one() - co.beta1, T::one() - co.beta2);
    let mn = madd::<T, FMA>(co.beta1, mi, c1 * gi);
    let vn = madd::<T, FMA>(co.beta2, vi, c2 * gi * gi);
    // θ is updated in T and stored as W (for W = T, `store` and `load` are the identity);
    // the guard looks at the value as stored (θ in f32 can overflow where T = f64 does not).
    let sn = W::store(th.load() - co.rate * mn / (vn.sqrt() + co.epsilon));
    let tn = sn.load();
    // `M` can only overflow with `V` (|M_new| ≤ max(|M|, |g|), and |g| that large
    // overflows g²), so V and θ decide.
    let ok = if COMPACT {
        vn <= compact_limit::<T>() && both_finite(tn, tn)
    } else {
        both_finite(vn, tn)
    };
    (mn, vn, sn, !ok)
}

/// The update of one tile with moments in `T`, in place, as one straight elementwise loop
/// (vectorised); returns the count of elements kept.
#[inline(always)]
fn adam_full<T: Float, W: Stored<T>, const FMA: bool>(
    co: &AdamCoefficients<T>,
    th_t: &mut [W],
    m_t: &mut [T],
    v_t: &mut [T],
    g_t: &[T],
) -> u32 {
    // A 32-bit count (a tile has far fewer than 2³² elements) keeps the loop vectorised.
    let mut kept = 0u32;
    for (((th, mi), vi), &gi) in th_t.iter_mut().zip(m_t).zip(v_t).zip(g_t) {
        let (mn, vn, sn, keep) = adam_element::<T, W, FMA, false>(co, *th, *mi, *vi, gi);
        kept += u32::from(keep);
        *mi = if keep { *mi } else { mn };
        *vi = if keep { *vi } else { vn };
        *th = if keep { *th } else { sn };
    }
    kept
}

/// The update of one tile with bf16 moments (the tile's entries start at `at` of the layer,
/// [`AdamCoefficients::first`] included):
/// each element decoded, updated and encoded again with [`noise`]`(key, at + i)` in one loop
/// (the bits of [`crate::compact::decode_tile`], the update, [`crate::compact::encode_tile`]).
#[inline(always)]
fn adam_bf16<T: Float, W: Stored<T>, const FMA: bool>(
    co: &AdamCoefficients<T>,
    at: usize,
    th_t: &mut [W],
    (cm, cv): (&mut [u16], &mut [u16]),
    g_t: &[T],
) -> u32 {
    let mut kept = 0u32;
    let codes = cm.iter_mut().zip(cv.iter_mut());
    for (i, ((th, (cm, cv)), &gi)) in th_t.iter_mut().zip(codes).zip(g_t).enumerate() {
        let (mi, vi) = (bf16_value::<T>(*cm), bf16_value::<T>(*cv));
        let (mn, vn, sn, keep) = adam_element::<T, W, FMA, true>(co, *th, mi, vi, gi);
        kept += u32::from(keep);
        let (m1, v1) = if keep { (mi, vi) } else { (mn, vn) };
        *th = if keep { *th } else { sn };
        (*cm, *cv) = bf16_moment_codes(co.key, at + i, m1, v1);
    }
    kept
}

/// The update of one tile with q8 moments: decoded and updated in one loop, which keeps the
/// new moments (in `f32`, as they are encoded) in `mb`, `vb` and their largest magnitudes,
/// the tile's new scales; a second loop encodes them (the bits of
/// [`crate::compact::decode_tile`], the update, [`crate::compact::encode_tile`]).
#[inline(always)]
fn adam_q8<T: Float, W: Stored<T>, const FMA: bool>(
    co: &AdamCoefficients<T>,
    th_t: &mut [W],
    (cm, cv): (&mut [u8], &mut [u8]),
    scales: &mut [f32; 2],
    g_t: &[T],
    (mb, vb): (&mut [f32], &mut [f32]),
) -> u32 {
    let [sm, sv] = *scales;
    let mut kept = 0u32;
    let codes = cm.iter().zip(cv.iter());
    let buffers = mb.iter_mut().zip(vb.iter_mut());
    for (((th, (&cm, &cv)), (mo, vo)), &gi) in th_t.iter_mut().zip(codes).zip(buffers).zip(g_t) {
        let (mi, vi) = (q8_m_value::<T>(cm, sm), q8_v_value::<T>(cv, sv));
        let (mn, vn, sn, keep) = adam_element::<T, W, FMA, true>(co, *th, mi, vi, gi);
        kept += u32::from(keep);
        let (m1, v1) = if keep { (mi, vi) } else { (mn, vn) };
        *th = if keep { *th } else { sn };
        (*mo, *vo) = (to_f32(m1), to_f32(v1));
    }
    let (sm, sv) = (q8_scale(mb.iter().copied()), q8_scale(vb.iter().copied()));
    *scales = [sm, sv];
    let (im, iv) = (inverse(sm), inverse(sv));
    for ((cm, cv), (&m1, &v1)) in cm
        .iter_mut()
        .zip(cv.iter_mut())
        .zip(mb.iter().zip(vb.iter()))
    {
        *cm = q8_signed(m1 * im);
        *cv = q8_unsigned(v1 * iv);
    }
    kept
}

/// Whether `a` and `b` are both finite: `x·0` is ±0 for a finite `x` and NaN otherwise, so one
/// comparison decides (vectorises to a few lane operations).
#[inline(always)]
fn both_finite<T: Float>(a: T, b: T) -> bool {
    let z = T::zero();
    a * z + b * z == z
}
