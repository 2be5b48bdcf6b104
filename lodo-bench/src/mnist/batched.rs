//! The CNN's fast path: a chunk of [`CHUNK`] examples at a time, every 1×1 convolution and the
//! dense head as ONE matrix product over all `chunk × positions` rows.
//!
//! Same network, same loss, same gradient as the per-example reference [`super::net::Tape`]
//! (the tests compare them); only the order of the floating-point sums and the use of fused
//! multiply-adds differ. Layout, per chunk of `n` examples and a stage of `P = side²` positions:
//! an activation map is an `(n·P) × C` row-major matrix (example-major, then position, channels
//! contiguous), so `Y = X·W (+ b)` is one matrix product of `n·P` rows
//! ([`super::pointwise`]: explicit-SIMD register tiles for `f32`, matrixmultiply for `f64`), and
//! so is each weight gradient `Xᵀ·∂Z`. The depthwise 3×3 convolution, `atan` and its slope `1/(1+z²)` are hand
//! loops, compiled for the best instruction set the CPU has (pulp's dispatch: AVX-512, else
//! AVX2 + FMA) and fused: the depthwise pass writes `atan(z₂)` and `1/(1+z₂²)` directly, its
//! backward writes `∂L/∂z₁ = (Σ taps)·1/(1+z₁²)` directly.
//!
//! Channel order of the depthwise stage: TensorFlow's `depthwise_conv2d` with multiplier 3 puts
//! output channel `3c + m` on input channel `c`. Here the 120 channels are stored `m`-major,
//! `40m + c`, so the three filters of every input channel read the same contiguous 40-vector
//! `atan(z₁)` without expanding it; [`Weights::new`] reorders `K`, `b_d` and the rows of `W₂`
//! once per step, and the gradient is put back into the authors' order at the end
//! ([`loss_grad`]). Reordering only moves values: bit for bit the same numbers.
//!
//! Thread-count independence: groups are fixed at [`GROUP`] examples, each group's loss and
//! gradient are computed by one thread from zero (its chunks of [`CHUNK`] in order), and the
//! group results are summed in group order, so every bit of the result is the same for any
//! number of rayon threads.

use rayon::prelude::*;

use super::Scalar;
use super::kernels::{self, E};
use super::net::{
    B1, B2, BD, BLOCK, BLOCKS, CLASSES, DENSE, FEAT, HID, K, N_PARAMS, PIX, Query, R, SIDE, SIDES,
    STAGES, STEM, W1, W2, cross_entropy, features,
};

/// Examples per chunk (the forward and backward passes' unit, and the row count multiplier of
/// every GEMM: 1,568 rows at stage 0; a thread runs the chunks of a [`GROUP`] in order). Small
/// because the chunk's activations (about 5 MB per example in f32) must stay near the 2 MB L2
/// of a core: `benches/mnist.rs` (Dec 7, process CPU
/// time, load average 14–15) measured 233 images/s with 8, 281 with 2, 278 with 1; after the
/// channel-blocked depthwise loops (08:50 UTC, load 4.6–6.1, alternated in one run) 2 was
/// 1.034× faster than 1 and 1.094× faster than 4.
pub const CHUNK: usize = 2;

/// Examples per unit of parallel work: one thread runs the `GROUP / CHUNK` chunks of a group
/// in order, adding their gradients into one buffer, and the group results are summed in group
/// order. Fixed, so the result does not depend on the number of threads. Before, each chunk
/// was its own unit with its own copy of the gradient (128 copies of 379 KB per batch of 256,
/// touched fresh every step: page faults and copies); groups of 16 were **1.054–1.067×**
/// faster (`benches/mnist.rs`'s method, a temporary switch alternated in one process,
/// Dec 7 15:52 UTC, load average 8.3–9.5).
pub const GROUP: usize = 16;

/// Depthwise channel `j = 3c + m` (TensorFlow's order) → its index `40m + c` here.
#[inline]
#[must_use]
pub const fn channel(j: usize) -> usize {
    (j % 3) * HID + j / 3
}

/// Reorders the depthwise tensors of every block (`K`, `b_d`, the rows of `W₂`) from the
/// authors' channel order to this module's (`to_batched`), or back; every other entry is copied.
///
/// # Panics
/// If either slice is not [`N_PARAMS`] long.
pub fn relayout<T: Copy>(src: &[T], dst: &mut [T], to_batched: bool) {
    assert!(src.len() == N_PARAMS && dst.len() == N_PARAMS, "shapes");
    dst.copy_from_slice(src);
    let mv = |dst: &mut [T], d: usize, s: usize| {
        if to_batched {
            dst[d] = src[s];
        } else {
            dst[s] = src[d];
        }
    };
    for blk in 0..STAGES * BLOCKS {
        let o = STEM + blk * BLOCK;
        for j in 0..E {
            let q = channel(j);
            for tap in 0..9 {
                mv(dst, o + K + tap * E + q, o + K + tap * E + j);
            }
            mv(dst, o + BD + q, o + BD + j);
            for r in 0..R {
                mv(dst, o + W2 + q * R + r, o + W2 + j * R + r);
            }
        }
    }
}

fn transpose<T: Copy>(a: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(rows * cols);
    for j in 0..cols {
        out.extend((0..rows).map(|i| a[i * cols + j]));
    }
    out
}

/// The parameters in this module's layout, with the transposes the backward pass multiplies by.
pub struct Weights<T> {
    p: Vec<T>,
    /// Per block `W₁ᵀ` (40×20).
    w1t: Vec<T>,
    /// Per block `W₂ᵀ` (20×120, channels in this module's order).
    w2t: Vec<T>,
    /// Dense `Wᵀ` (256×20).
    wdt: Vec<T>,
}

impl<T: Scalar> Weights<T> {
    /// Prepares `params` (the authors' layout, length [`N_PARAMS`]).
    ///
    /// # Panics
    /// If `params.len() != N_PARAMS`.
    #[must_use]
    pub fn new(params: &[T]) -> Self {
        let mut p = vec![T::zero(); N_PARAMS];
        relayout(params, &mut p, true);
        let (mut w1t, mut w2t) = (Vec::new(), Vec::new());
        for blk in 0..STAGES * BLOCKS {
            let o = STEM + blk * BLOCK;
            w1t.extend(transpose(&p[o + W1..o + B1], R, HID));
            w2t.extend(transpose(&p[o + W2..o + B2], E, R));
        }
        let wdt = transpose(&p[DENSE..DENSE + R * CLASSES], R, CLASSES);
        Self { p, w1t, w2t, wdt }
    }

    fn block(&self, blk: usize) -> &[T] {
        &self.p[STEM + blk * BLOCK..STEM + (blk + 1) * BLOCK]
    }
}

/// The per-block hand loops of the forward pass (`atan` of the first 1×1 convolution, the
/// depthwise convolution with its `atan`, the residual plus bias), run through pulp's dispatch
/// so LLVM compiles them for the widest instruction set the CPU has (AVX-512, else AVX2 + FMA,
/// else plain; without FMA hardware `mul_add` becomes a libm call: correct, slow). Everything
/// called from `with_simd` is `#[inline(always)]`, so it is compiled inside the
/// `#[target_feature]` function pulp selects.
struct ForwardLoops<'a, T> {
    side: usize,
    a1: &'a mut [T],
    s1: &'a mut [T],
    a2: &'a mut [T],
    s2: &'a mut [T],
    k: &'a [Row<T>; 9],
    bd: &'a Row<T>,
    x: &'a [T],
    b2: &'a [T; R],
    y: &'a mut [T],
}

impl<T: Scalar> pulp::WithSimd for ForwardLoops<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let np = self.side * self.side;
        atan_slope(self.a1, self.s1);
        for ((ai, oi), si) in self
            .a1
            .chunks_exact(np * HID)
            .zip(self.a2.chunks_exact_mut(np * E))
            .zip(self.s2.chunks_exact_mut(np * E))
        {
            depthwise_fwd(
                ai.as_chunks().0,
                self.k,
                self.bd,
                groups_mut(oi),
                groups_mut(si),
                self.side,
            );
        }
        for (yp, xp) in self
            .y
            .as_chunks_mut::<R>()
            .0
            .iter_mut()
            .zip(self.x.as_chunks::<R>().0)
        {
            for j in 0..R {
                yp[j] = xp[j] + self.b2[j];
            }
        }
    }
}

/// The per-block hand loops of the backward pass (the depthwise backward, given
/// `∂L/∂z₂ = ∂L/∂a₂ · slope₂` from [`super::pointwise::Pointwise::xw_scaled`]), dispatched as
/// [`ForwardLoops`].
struct BackwardLoops<'a, T> {
    side: usize,
    dz2: &'a [T],
    a1: &'a [T],
    s1: &'a [T],
    k: &'a [Row<T>; 9],
    gk: &'a mut [Row<T>; 9],
    gbd: &'a mut Row<T>,
    dz1: &'a mut [T],
}

impl<T: Scalar> pulp::WithSimd for BackwardLoops<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let np = self.side * self.side;
        for (((ai, zi), si), di) in self
            .a1
            .chunks_exact(np * HID)
            .zip(self.dz2.chunks_exact(np * E))
            .zip(self.s1.chunks_exact(np * HID))
            .zip(self.dz1.chunks_exact_mut(np * HID))
        {
            depthwise_bwd(
                ai.as_chunks().0,
                self.k,
                groups(zi),
                si.as_chunks().0,
                self.gk,
                self.gbd,
                di.as_chunks_mut().0,
                self.side,
            );
        }
    }
}

/// `z ← atan(z)`, `d ← 1/(1+z²)`, elementwise over flat slices: no channel structure, so LLVM
/// vectorises it at the full vector width (a 40-channel row is 2½ AVX-512 vectors, and loops
/// over it compiled to 8-lane AVX2 vectors: measured with `perf annotate`).
#[inline(always)]
fn atan_slope<T: Scalar>(z: &mut [T], d: &mut [T]) {
    for (zv, dv) in z.iter_mut().zip(d) {
        (*zv, *dv) = zv.atan_slope();
    }
}

/// A row of the depthwise stage's 120 channels as its three 40-channel filter groups `m`.
type Row<T> = [[T; HID]; 3];

/// Views a `P×120` slice as rows of three 40-channel groups.
#[inline(always)]
fn groups<T>(v: &[T]) -> &[Row<T>] {
    let (groups, rest) = v.as_chunks::<HID>();
    debug_assert!(rest.is_empty());
    groups.as_chunks::<3>().0
}

/// As [`groups`], mutable.
#[inline(always)]
fn groups_mut<T>(v: &mut [T]) -> &mut [Row<T>] {
    v.as_chunks_mut::<HID>().0.as_chunks_mut::<3>().0
}

/// The depthwise loops' channel blocks: `(first channel, lanes)`, 40 = 16 + 16 + 8 (one
/// AVX-512 vector each, or two and one AVX2 vectors). Per block the 27 filter vectors of the
/// 9 taps × 3 groups stay in registers across the positions, so an input vector loaded once
/// feeds three fused multiply-adds (one per group) instead of two loads feeding one.
macro_rules! channel_blocks {
    ($f:ident::<$t:ty>($($arg:expr),* $(,)?)) => {{
        $f::<$t, 16>($($arg,)* 0);
        $f::<$t, 16>($($arg,)* 16);
        $f::<$t, 8>($($arg,)* 32);
    }};
}

/// `v[c0..c0 + L]` as an array (`c0 + L ≤ 40`, constant after inlining).
#[inline(always)]
fn lanes<T: Copy, const L: usize>(v: &[T; HID], c0: usize) -> [T; L] {
    v[c0..c0 + L].try_into().expect("c0 + L <= 40")
}

/// The source coordinate `o + t − 1` of tap `t` at output coordinate `o`, if inside the map.
#[inline(always)]
fn src(o: usize, t: usize, side: usize) -> Option<usize> {
    (o + t).checked_sub(1).filter(|&v| v < side)
}

/// The output coordinate `q + 1 − t` that reads input coordinate `q` through tap `t`, if any.
#[inline(always)]
fn dst(q: usize, t: usize, side: usize) -> Option<usize> {
    (q + 1).checked_sub(t).filter(|&v| v < side)
}

/// The 27 filter vectors `k[tap][m][c0..c0+L]`.
#[inline(always)]
fn filter_lanes<T: Copy, const L: usize>(k: &[Row<T>; 9], c0: usize) -> [[[T; L]; 3]; 9] {
    core::array::from_fn(|tap| core::array::from_fn(|m| lanes(&k[tap][m], c0)))
}

/// One example's 3×3 depthwise convolution ('SAME' zero padding) followed by its activation:
/// `z[p, 40m+c] = b[40m+c] + Σ_{t,u} a[p+(t−1,u−1), c]·k[3t+u, 40m+c]` (taps summed in the
/// order `3t + u`, fused multiply-adds), then `out = atan(z)`, `slope = 1/(1+z²)`.
/// `a: P×40`, `k: 9×120`, `out, slope: P×120`. Row by row, in channel blocks
/// ([`channel_blocks`]); the activation runs over each finished image row (`side·120` values,
/// still in L1) as one flat slice, at the full vector width ([`atan_slope`]).
#[inline(always)]
fn depthwise_fwd<T: Scalar>(
    a: &[[T; HID]],
    k: &[Row<T>; 9],
    b: &Row<T>,
    out: &mut [Row<T>],
    slope: &mut [Row<T>],
    side: usize,
) {
    for y in 0..side {
        channel_blocks!(depthwise_fwd_row::<T>(a, k, b, out, side, y));
        let row = y * side..(y + 1) * side;
        atan_slope(
            out[row.clone()].as_flattened_mut().as_flattened_mut(),
            slope[row].as_flattened_mut().as_flattened_mut(),
        );
    }
}

/// [`depthwise_fwd`]'s `z` for image row `y`, channels `c0..c0+L` of every group.
#[inline(always)]
fn depthwise_fwd_row<T: Scalar, const L: usize>(
    a: &[[T; HID]],
    k: &[Row<T>; 9],
    b: &Row<T>,
    out: &mut [Row<T>],
    side: usize,
    y: usize,
    c0: usize,
) {
    let kr = filter_lanes::<T, L>(k, c0);
    let br: [[T; L]; 3] = core::array::from_fn(|m| lanes(&b[m], c0));
    for x in 0..side {
        let mut acc = br;
        for t in 0..3 {
            let Some(sy) = src(y, t, side) else {
                continue;
            };
            for u in 0..3 {
                let Some(sx) = src(x, u, side) else {
                    continue;
                };
                let av: [T; L] = lanes(&a[sy * side + sx], c0);
                for m in 0..3 {
                    for c in 0..L {
                        acc[m][c] = av[c].mul_add(kr[3 * t + u][m][c], acc[m][c]);
                    }
                }
            }
        }
        let o = &mut out[y * side + x];
        for m in 0..3 {
            o[m][c0..c0 + L].copy_from_slice(&acc[m]);
        }
    }
}

/// Backward of [`depthwise_fwd`] for one example, given `dz = ∂L/∂z` (`P×120`):
/// `dk[3t+u, 40m+c] += Σ_p a[p+(t−1,u−1), c]·dz[p, 40m+c]` (positions in raster order),
/// `db += Σ_p dz[p]`, and
/// `dz1[q, c] = slope1[q, c]·Σ_{t,u,m} dz[q−(t−1,u−1), 40m+c]·k[3t+u, 40m+c]` (overwritten;
/// `slope1 = 1/(1+z₁²)` is the slope of the `atan` before the convolution). In channel blocks
/// ([`channel_blocks`]), the 27 accumulators of `dk`, or the 27 filter vectors, in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn depthwise_bwd<T: Scalar>(
    a: &[[T; HID]],
    k: &[Row<T>; 9],
    dz: &[Row<T>],
    slope1: &[[T; HID]],
    dk: &mut [Row<T>; 9],
    db: &mut Row<T>,
    dz1: &mut [[T; HID]],
    side: usize,
) {
    for m in 0..3 {
        let mut acc = db[m];
        for zp in dz {
            for c in 0..HID {
                acc[c] = acc[c] + zp[m][c];
            }
        }
        db[m] = acc;
    }
    channel_blocks!(depthwise_bwd_filter::<T>(a, dz, dk, side));
    channel_blocks!(depthwise_bwd_input::<T>(k, dz, slope1, dz1, side));
}

/// [`depthwise_bwd`]'s `dk` for channels `c0..c0+L` of every group.
#[inline(always)]
fn depthwise_bwd_filter<T: Scalar, const L: usize>(
    a: &[[T; HID]],
    dz: &[Row<T>],
    dk: &mut [Row<T>; 9],
    side: usize,
    c0: usize,
) {
    let mut g = filter_lanes::<T, L>(dk, c0);
    for y in 0..side {
        for x in 0..side {
            let zp = &dz[y * side + x];
            let zv: [[T; L]; 3] = core::array::from_fn(|m| lanes(&zp[m], c0));
            for t in 0..3 {
                let Some(sy) = src(y, t, side) else {
                    continue;
                };
                for u in 0..3 {
                    let Some(sx) = src(x, u, side) else {
                        continue;
                    };
                    let av: [T; L] = lanes(&a[sy * side + sx], c0);
                    for m in 0..3 {
                        for c in 0..L {
                            g[3 * t + u][m][c] = av[c].mul_add(zv[m][c], g[3 * t + u][m][c]);
                        }
                    }
                }
            }
        }
    }
    for tap in 0..9 {
        for m in 0..3 {
            dk[tap][m][c0..c0 + L].copy_from_slice(&g[tap][m]);
        }
    }
}

/// [`depthwise_bwd`]'s `dz1` for channels `c0..c0+L`, gathered per input position `q` from the
/// outputs `q − (t−1, u−1)` that read it.
#[inline(always)]
fn depthwise_bwd_input<T: Scalar, const L: usize>(
    k: &[Row<T>; 9],
    dz: &[Row<T>],
    slope1: &[[T; HID]],
    dz1: &mut [[T; HID]],
    side: usize,
    c0: usize,
) {
    let kr = filter_lanes::<T, L>(k, c0);
    for qy in 0..side {
        for qx in 0..side {
            let mut acc = [T::zero(); L];
            for t in 0..3 {
                let Some(y) = dst(qy, t, side) else {
                    continue;
                };
                for u in 0..3 {
                    let Some(x) = dst(qx, u, side) else {
                        continue;
                    };
                    let zp = &dz[y * side + x];
                    for m in 0..3 {
                        let zv: [T; L] = lanes(&zp[m], c0);
                        for c in 0..L {
                            acc[c] = zv[c].mul_add(kr[3 * t + u][m][c], acc[c]);
                        }
                    }
                }
            }
            let q = qy * side + qx;
            let s: [T; L] = lanes(&slope1[q], c0);
            let d = &mut dz1[q][c0..c0 + L];
            for c in 0..L {
                d[c] = acc[c] * s[c];
            }
        }
    }
}

/// The activations of one chunk and the scratch of its backward pass; reused across chunks.
pub struct Workspace<T> {
    cap: usize,
    n: usize,
    feats: Vec<T>,
    /// `xs[s][b]`: input of block `b` of stage `s` (`b = 4`: the stage's pre-pooling output).
    xs: Vec<Vec<Vec<T>>>,
    /// Per block: `atan(z₁)`, its slope `1/(1+z₁²)`, `atan(z₂)`, its slope.
    a1: Vec<Vec<T>>,
    s1: Vec<Vec<T>>,
    a2: Vec<Vec<T>>,
    s2: Vec<Vec<T>>,
    last: Vec<T>,
    logits: Vec<T>,
    dlogits: Vec<T>,
    dcur: Vec<T>,
    dnext: Vec<T>,
    dz2: Vec<T>,
    dz1: Vec<T>,
    /// The chunk's gradient, in this module's layout.
    grad: Vec<T>,
}

impl<T: Scalar> Default for Workspace<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Scalar> Workspace<T> {
    /// Buffers for a chunk of up to [`CHUNK`] examples.
    #[must_use]
    pub fn new() -> Self {
        Self::with_examples(CHUNK)
    }

    /// Buffers for a chunk of up to `cap` examples.
    #[must_use]
    pub fn with_examples(cap: usize) -> Self {
        let z = |n: usize| vec![T::zero(); cap * n];
        let mut xs = Vec::new();
        let (mut a1, mut s1, mut a2, mut s2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &side in &SIDES[..STAGES] {
            let p = side * side;
            xs.push((0..=BLOCKS).map(|_| z(p * R)).collect());
            for _ in 0..BLOCKS {
                a1.push(z(p * HID));
                s1.push(z(p * HID));
                a2.push(z(p * E));
                s2.push(z(p * E));
            }
        }
        Self {
            cap,
            n: 0,
            feats: z(PIX * FEAT),
            xs,
            a1,
            s1,
            a2,
            s2,
            last: z(R),
            logits: z(CLASSES),
            dlogits: z(CLASSES),
            dcur: z(PIX * R),
            dnext: z(PIX * R),
            dz2: z(PIX * E),
            dz1: z(PIX * HID),
            grad: vec![T::zero(); N_PARAMS],
        }
    }

    /// The logits of the last [`Workspace::forward`], one row of 256 per example.
    #[must_use]
    pub fn logits(&self) -> &[T] {
        &self.logits[..self.n * CLASSES]
    }

    /// Forward pass of the examples `queries` (at most the workspace's capacity) of `images` (`n·784` bytes).
    ///
    /// # Panics
    /// If there are more queries than the workspace holds or a query's image is out of range.
    pub fn forward(&mut self, w: &Weights<T>, images: &[u8], queries: &[Query]) {
        let n = queries.len();
        assert!(n <= self.cap, "more examples than the workspace holds");
        self.n = n;
        for (q, f) in queries.iter().zip(self.feats.chunks_exact_mut(PIX * FEAT)) {
            let i = q.image as usize;
            features(
                &images[i * PIX..(i + 1) * PIX],
                q.row.into(),
                q.col.into(),
                f,
            );
        }
        let p = &w.p;
        kernels::conv1x1::<T, FEAT, R>(
            &self.feats[..n * PIX * FEAT],
            &p[..FEAT * R],
            &p[FEAT * R..STEM],
            &mut self.xs[0][0][..n * PIX * R],
        );
        for s in 0..STAGES {
            let side = SIDES[s];
            let np = side * side;
            let rows = n * np;
            for b in 0..BLOCKS {
                let blk = s * BLOCKS + b;
                let bw = w.block(blk);
                let (lo, hi) = self.xs[s].split_at_mut(b + 1);
                let x = &lo[b][..rows * R];
                let y = &mut hi[0][..rows * R];
                let a1 = &mut self.a1[blk][..rows * HID];
                let s1 = &mut self.s1[blk][..rows * HID];
                let a2 = &mut self.a2[blk][..rows * E];
                let s2 = &mut self.s2[blk][..rows * E];
                kernels::conv1x1::<T, R, HID>(x, &bw[W1..B1], &bw[B1..K], a1);
                let k: &[Row<T>; 9] = groups(&bw[K..BD]).try_into().expect("9×120");
                let bd = &groups(&bw[BD..W2])[0];
                let b2: &[T; R] = bw[B2..BLOCK].try_into().expect("20");
                pulp::Arch::new().dispatch(ForwardLoops {
                    side,
                    a1,
                    s1,
                    a2: &mut *a2,
                    s2,
                    k,
                    bd,
                    x,
                    b2,
                    y: &mut *y,
                });
                kernels::conv1x1_acc::<T, E, R>(a2, &bw[W2..B2], y);
            }
            let so = SIDES[s + 1];
            let out = if s + 1 < STAGES {
                let (lo, hi) = self.xs.split_at_mut(s + 1);
                (&lo[s][BLOCKS], &mut hi[0][0])
            } else {
                (&self.xs[s][BLOCKS], &mut self.last)
            };
            for (xi, yi) in out.0[..rows * R]
                .chunks_exact(np * R)
                .zip(out.1.chunks_exact_mut(so * so * R))
            {
                kernels::avg_pool::<T, R>(xi, yi, side);
            }
        }
        kernels::conv1x1::<T, R, CLASSES>(
            &self.last[..n * R],
            &p[DENSE..DENSE + R * CLASSES],
            &p[DENSE + R * CLASSES..],
            &mut self.logits[..n * CLASSES],
        );
    }

    /// Backward pass of the last [`Workspace::forward`] given `∂L/∂logits` in `self.dlogits`;
    /// adds `∂L/∂θ` (this module's layout) to `self.grad`.
    fn backward(&mut self, w: &Weights<T>) {
        let n = self.n;
        let g = &mut self.grad;
        {
            let (gw, gb) = g[DENSE..].split_at_mut(R * CLASSES);
            let dl = &self.dlogits[..n * CLASSES];
            kernels::outer_acc::<T, R, CLASSES>(&self.last[..n * R], dl, gw, gb);
            kernels::conv1x1::<T, CLASSES, R>(
                dl,
                &w.wdt,
                &[T::zero(); R],
                &mut self.dnext[..n * R],
            );
        }
        for s in (0..STAGES).rev() {
            let side = SIDES[s];
            let np = side * side;
            let rows = n * np;
            let so = SIDES[s + 1];
            for (dyi, dxi) in self.dnext[..n * so * so * R]
                .chunks_exact(so * so * R)
                .zip(self.dcur.chunks_exact_mut(np * R))
            {
                kernels::avg_pool_backward::<T, R>(dyi, dxi, side);
            }
            for b in (0..BLOCKS).rev() {
                let blk = s * BLOCKS + b;
                let bw = w.block(blk);
                let go = STEM + blk * BLOCK;
                let gblk = &mut g[go..go + BLOCK];
                let dy = &mut self.dcur[..rows * R];
                let a2 = &self.a2[blk][..rows * E];
                {
                    let (gw2, gb2) = gblk[W2..].split_at_mut(E * R);
                    kernels::outer_acc::<T, E, R>(a2, dy, gw2, gb2);
                }
                let dz2 = &mut self.dz2[..rows * E];
                let s2 = &self.s2[blk][..rows * E];
                // ∂z₂ = (∂y·W₂ᵀ) ⊙ slope₂, the slope applied as the product is stored.
                T::xw_scaled::<R, E>(dy, &w.w2t[blk * E * R..(blk + 1) * E * R], s2, dz2);
                let dz1 = &mut self.dz1[..rows * HID];
                let (a1, s1) = (&self.a1[blk][..rows * HID], &self.s1[blk][..rows * HID]);
                let k: &[Row<T>; 9] = groups(&bw[K..BD]).try_into().expect("9×120");
                {
                    let (gk, gbd) = gblk[K..W2].split_at_mut(9 * E);
                    let gk: &mut [Row<T>; 9] = groups_mut(gk).try_into().expect("9×120");
                    let gbd = &mut groups_mut(gbd)[0];
                    pulp::Arch::new().dispatch(BackwardLoops {
                        side,
                        dz2,
                        a1,
                        s1,
                        k,
                        gk,
                        gbd,
                        dz1: &mut *dz1,
                    });
                }
                {
                    let (gw1, gb1) = gblk[W1..K].split_at_mut(R * HID);
                    kernels::outer_acc::<T, R, HID>(&self.xs[s][b][..rows * R], dz1, gw1, gb1);
                }
                kernels::conv1x1_acc::<T, HID, R>(
                    dz1,
                    &w.w1t[blk * R * HID..(blk + 1) * R * HID],
                    dy,
                );
            }
            if s > 0 {
                std::mem::swap(&mut self.dcur, &mut self.dnext);
            }
        }
        let (gw, gb) = g[..STEM].split_at_mut(FEAT * R);
        kernels::outer_acc::<T, FEAT, R>(
            &self.feats[..n * PIX * FEAT],
            &self.dcur[..n * PIX * R],
            gw,
            gb,
        );
    }

    /// `Σ` over `queries` of the cross-entropy; adds the gradient of `scale ×` that sum to
    /// `self.grad` (this module's layout).
    fn loss_grad(&mut self, w: &Weights<T>, images: &[u8], queries: &[Query], scale: T) -> T {
        self.forward(w, images, queries);
        let mut loss = T::zero();
        for ((q, z), dz) in queries
            .iter()
            .zip(self.logits.chunks_exact(CLASSES))
            .zip(self.dlogits.chunks_exact_mut(CLASSES))
        {
            let i = q.image as usize;
            let target = images[i * PIX + usize::from(q.row) * SIDE + usize::from(q.col)];
            loss = loss + cross_entropy(z, target.into(), scale, Some(dz));
        }
        self.backward(w);
        loss
    }
}

/// Mean cross-entropy over `batch` and its gradient (written to `grad`, the authors' layout),
/// chunk-parallel over rayon's current pool, bit-identical for any thread count.
///
/// # Panics
/// If `grad.len()` or `params.len()` is not [`N_PARAMS`], the batch is empty, or a query is out
/// of range.
pub fn loss_grad<T: Scalar>(params: &[T], images: &[u8], batch: &[Query], grad: &mut [T]) -> T {
    assert!(grad.len() == N_PARAMS && !batch.is_empty(), "shapes");
    let w = Weights::new(params);
    let scale = T::one() / T::from(batch.len()).expect("batch size");
    let cap = batch.len().min(CHUNK);
    let parts: Vec<(T, Vec<T>)> = batch
        .par_chunks(GROUP)
        .map_init(
            || Workspace::<T>::with_examples(cap),
            |ws, group| {
                ws.grad.fill(T::zero());
                let mut l = T::zero();
                for chunk in group.chunks(CHUNK) {
                    l = l + ws.loss_grad(&w, images, chunk, scale);
                }
                (l, ws.grad.clone())
            },
        )
        .collect();
    let mut sum = vec![T::zero(); N_PARAMS];
    let mut loss = T::zero();
    for (l, g) in parts {
        loss = loss + l;
        for (a, b) in sum.iter_mut().zip(&g) {
            *a = *a + *b;
        }
    }
    relayout(&sum, grad, false);
    loss * scale
}

/// Sum of cross-entropies (in `f64`) over `queries`, forward only, chunk-parallel,
/// thread-count independent.
///
/// # Panics
/// As [`loss_grad`].
pub fn loss_sum<T: Scalar>(params: &[T], images: &[u8], queries: &[Query]) -> f64 {
    let w = Weights::new(params);
    let cap = queries.len().min(CHUNK);
    let parts: Vec<f64> = queries
        .par_chunks(CHUNK)
        .map_init(
            || Workspace::<T>::with_examples(cap),
            |ws, chunk| {
                ws.forward(&w, images, chunk);
                let mut s = 0.0f64;
                for (q, z) in chunk.iter().zip(ws.logits.chunks_exact(CLASSES)) {
                    let i = q.image as usize;
                    let target = images[i * PIX + usize::from(q.row) * SIDE + usize::from(q.col)];
                    s += cross_entropy(z, target.into(), T::one(), None)
                        .to_f64()
                        .expect("float");
                }
                s
            },
        )
        .collect();
    parts.iter().sum()
}
