//! The CNN's 1×1 convolutions and their weight gradients as explicit-SIMD products over
//! `P = chunk × positions` rows (issue 19; paper §5.2's network):
//!
//! $$ Y \mathrel{+}= X W \qquad (X: P\times C_i,\ W: C_i\times C_o,\ Y: P\times C_o) $$
//! $$ \partial W \mathrel{+}= X^\top \partial Z \qquad (\partial Z: P\times C_o) $$
//!
//! All matrices row-major, channels contiguous (NHWC). For `f32` the products run through
//! pulp's runtime dispatch (AVX-512, else AVX2 + FMA) in register-blocked tiles written with
//! pulp's `Simd` operations: `MR` rows × `NB` vectors of accumulators held in registers; per
//! term of the inner sum, `NB` vector loads of `W` (or of `∂Z`), `MR` broadcasts, `MR·NB` fused
//! multiply-adds. No packing of `X`, no gathers. `W` is copied once per call into a zero-padded
//! block-major buffer on the stack (`C_i × NB·lanes` per column block), so every load of it is
//! a full vector; the columns of `Y` past a whole vector are read and written through a small
//! stack buffer. `f64`, other shapes, and machines without AVX2 + FMA use matrixmultiply
//! (`lodo_kernels::gemm`), as before.
//!
//! The weight gradients run over the `P` rows in panels of 64 (the panel stays in L1 while
//! every tile of `∂W` passes over it).
//!
//! Summation order: each output is `y` (or `∂w`) plus the terms in increasing index order,
//! one fused multiply-add each (for `∂W` computed transposed, the terms onto 0, then added to
//! `∂w`); tiles and panels do not change it, and it is independent of the thread count. The
//! tests check it on bits against scalar fused multiply-adds, and compare with the plain loops
//! of [`super::kernels`] on every instruction set the CPU has.

use lodo_kernels::gemm::{Accum, Op, gemm};
use pulp::Simd;

/// Largest padded weight block the stack buffer holds (`C_i × padded C_o`, f32 entries).
const PAD_MAX: usize = 4096;

/// Element types with the pointwise products; `f32` has the SIMD kernels.
pub trait Pointwise: Copy + Sized {
    /// `Y ← X·W` ([`Accum::Replace`]) or `Y ← Y + X·W` ([`Accum::Add`]), `X: P×CI`,
    /// `W: CI×CO`, `Y: P×CO`, `P = x.len() / CI`.
    ///
    /// # Panics
    /// If the lengths are not `P·CI`, `CI·CO`, `P·CO` for one `P`.
    fn xw<const CI: usize, const CO: usize>(accum: Accum, x: &[Self], w: &[Self], y: &mut [Self]);

    /// `Y ← (X·W) ⊙ S` (elementwise product with `S: P×CO`), bit for bit [`Pointwise::xw`]
    /// with [`Accum::Replace`] followed by `y ← y·s`, without the second pass over `Y` (the
    /// CNN's `∂z₂ = (∂y·W₂ᵀ) ⊙ slope₂`).
    ///
    /// # Panics
    /// If the lengths are not `P·CI`, `CI·CO`, `P·CO`, `P·CO` for one `P`.
    fn xw_scaled<const CI: usize, const CO: usize>(
        x: &[Self],
        w: &[Self],
        s: &[Self],
        y: &mut [Self],
    );

    /// `dW ← dW + Xᵀ·dZ`, `X: P×CI`, `dZ: P×CO`, `dW: CI×CO`.
    ///
    /// # Panics
    /// If the lengths are not `P·CI`, `P·CO`, `CI·CO` for one `P`.
    fn xt_dz<const CI: usize, const CO: usize>(x: &[Self], dz: &[Self], dw: &mut [Self]);
}

#[track_caller]
fn check_xw(ci: usize, co: usize, x: usize, w: usize, y: usize) -> usize {
    let p = x / ci;
    assert!(x == p * ci && w == ci * co && y == p * co, "shapes");
    p
}

impl Pointwise for f64 {
    fn xw<const CI: usize, const CO: usize>(accum: Accum, x: &[f64], w: &[f64], y: &mut [f64]) {
        let p = check_xw(CI, CO, x.len(), w.len(), y.len());
        gemm(accum, Op::NoTranspose, p, CI, CO, 1.0, x, w, y);
    }

    fn xw_scaled<const CI: usize, const CO: usize>(x: &[f64], w: &[f64], s: &[f64], y: &mut [f64]) {
        assert_eq!(s.len(), y.len(), "shapes");
        Self::xw::<CI, CO>(Accum::Replace, x, w, y);
        for (yv, &sv) in y.iter_mut().zip(s) {
            *yv *= sv;
        }
    }

    fn xt_dz<const CI: usize, const CO: usize>(x: &[f64], dz: &[f64], dw: &mut [f64]) {
        let p = check_xw(CI, CO, x.len(), dw.len(), dz.len());
        gemm(Accum::Add, Op::Transpose, CI, p, CO, 1.0, x, dz, dw);
    }
}

impl Pointwise for f32 {
    fn xw<const CI: usize, const CO: usize>(accum: Accum, x: &[f32], w: &[f32], y: &mut [f32]) {
        let p = check_xw(CI, CO, x.len(), w.len(), y.len());
        let job = Xw::<CI, CO> {
            accum,
            x,
            w,
            scale: None,
            y,
        };
        if !pulp::Arch::new().dispatch(job) {
            gemm(accum, Op::NoTranspose, p, CI, CO, 1.0, x, w, y);
        }
    }

    fn xw_scaled<const CI: usize, const CO: usize>(x: &[f32], w: &[f32], s: &[f32], y: &mut [f32]) {
        let p = check_xw(CI, CO, x.len(), w.len(), y.len());
        assert_eq!(s.len(), y.len(), "shapes");
        let job = Xw::<CI, CO> {
            accum: Accum::Replace,
            x,
            w,
            scale: Some(s),
            y,
        };
        if !pulp::Arch::new().dispatch(job) {
            gemm(Accum::Replace, Op::NoTranspose, p, CI, CO, 1.0, x, w, y);
            for (yv, &sv) in y.iter_mut().zip(s) {
                *yv *= sv;
            }
        }
    }

    fn xt_dz<const CI: usize, const CO: usize>(x: &[f32], dz: &[f32], dw: &mut [f32]) {
        let p = check_xw(CI, CO, x.len(), dw.len(), dz.len());
        if !pulp::Arch::new().dispatch(XtDz::<CI, CO> { x, dz, dw }) {
            gemm(Accum::Add, Op::Transpose, CI, p, CO, 1.0, x, dz, dw);
        }
    }
}

/// `(NB, MR)` for `CO` output columns at `lanes` f32 lanes, or `None` (no SIMD kernel): the
/// `MR × NB` accumulators fill most of the vector registers (32 with AVX-512, 16 with AVX2)
/// and leave room for the `NB` loaded vectors and a broadcast.
const fn blocking(lanes: usize, co: usize) -> Option<(usize, usize)> {
    match (lanes, co) {
        (16, 20) => Some((2, 12)),
        (16, 40) => Some((3, 8)),
        (16, 120) => Some((8, 3)),
        (8, 20) => Some((3, 4)),
        (8, 40 | 120) => Some((5, 2)),
        _ => None,
    }
}

/// `Y (+)= X·W` on one instruction set; `false` when no kernel fits (the caller uses gemm).
struct Xw<'a, const CI: usize, const CO: usize> {
    accum: Accum,
    x: &'a [f32],
    w: &'a [f32],
    /// `S` of [`Pointwise::xw_scaled`] (with [`Accum::Replace`]): `Y ← (X·W) ⊙ S`.
    scale: Option<&'a [f32]>,
    y: &'a mut [f32],
}

impl<const CI: usize, const CO: usize> pulp::WithSimd for Xw<'_, CI, CO> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> bool {
        match blocking(S::F32_LANES, CO) {
            Some((2, 12)) => xw_blocks::<S, CI, CO, 2, 12>(simd, self),
            Some((3, 8)) => xw_blocks::<S, CI, CO, 3, 8>(simd, self),
            Some((8, 3)) => xw_blocks::<S, CI, CO, 8, 3>(simd, self),
            Some((3, 4)) => xw_blocks::<S, CI, CO, 3, 4>(simd, self),
            Some((5, 2)) => xw_blocks::<S, CI, CO, 5, 2>(simd, self),
            _ => false,
        }
    }
}

/// One full vector from `s[..lanes]`.
#[inline(always)]
fn load<S: Simd>(s: &[f32]) -> S::f32s {
    S::as_simd_f32s(&s[..S::F32_LANES]).0[0]
}

/// `s[..lanes] ← v`.
#[inline(always)]
fn store<S: Simd>(s: &mut [f32], v: S::f32s) {
    S::as_mut_simd_f32s(&mut s[..S::F32_LANES]).0[0] = v;
}

/// The vector of `row[c..c + lanes]`, zeros past the row's end (`c < row.len()`).
#[inline(always)]
fn load_row<S: Simd>(row: &[f32], c: usize) -> S::f32s {
    let l = S::F32_LANES;
    if c + l <= row.len() {
        load::<S>(&row[c..])
    } else {
        let mut t = [0.0f32; 16];
        t[..row.len() - c].copy_from_slice(&row[c..]);
        load::<S>(&t)
    }
}

/// `row[c..c + lanes] ← v`, the lanes past the row's end dropped (`c < row.len()`).
#[inline(always)]
fn store_row<S: Simd>(row: &mut [f32], c: usize, v: S::f32s) {
    let l = S::F32_LANES;
    if c + l <= row.len() {
        store::<S>(&mut row[c..], v);
    } else {
        let mut t = [0.0f32; 16];
        store::<S>(&mut t, v);
        let n = row.len() - c;
        row[c..].copy_from_slice(&t[..n]);
    }
}

/// Copies the `CI × CO` matrix `w` into `buf` as column blocks of `bw = NB·lanes` columns,
/// block-major (`buf[(cb·CI + k)·bw + j] = w[k, cb·bw + j]`), zero past `CO`; returns the
/// number of blocks, or `None` if the buffer is too small.
#[inline(always)]
fn pad_columns<const CI: usize, const CO: usize>(
    w: &[f32],
    bw: usize,
    buf: &mut [f32; PAD_MAX],
) -> Option<usize> {
    let blocks = CO.div_ceil(bw);
    if blocks * bw * CI > PAD_MAX {
        return None;
    }
    for cb in 0..blocks {
        let c0 = cb * bw;
        let n = bw.min(CO - c0);
        for k in 0..CI {
            let o = (cb * CI + k) * bw;
            buf[o..o + n].copy_from_slice(&w[k * CO + c0..k * CO + c0 + n]);
            buf[o + n..o + bw].fill(0.0);
        }
    }
    Some(blocks)
}

#[inline(always)]
fn xw_blocks<S: Simd, const CI: usize, const CO: usize, const NB: usize, const MR: usize>(
    simd: S,
    job: Xw<'_, CI, CO>,
) -> bool {
    // Two instantiations, so that the unscaled tiles compile exactly as without the option
    // (a runtime `Option` inside the tile made LLVM's code for 40-column tiles 2× slower).
    match job.scale {
        Some(s) => xw_blocks_as::<S, CI, CO, NB, MR, true>(simd, job.accum, job.x, job.w, s, job.y),
        None => xw_blocks_as::<S, CI, CO, NB, MR, false>(simd, job.accum, job.x, job.w, &[], job.y),
    }
}

/// [`xw_blocks`] with the scaling fixed at compile time (`SC`: multiply by `scale` on store).
#[inline(always)]
fn xw_blocks_as<
    S: Simd,
    const CI: usize,
    const CO: usize,
    const NB: usize,
    const MR: usize,
    const SC: bool,
>(
    simd: S,
    accum: Accum,
    x: &[f32],
    w: &[f32],
    scale: &[f32],
    y: &mut [f32],
) -> bool {
    let l = S::F32_LANES;
    let bw = NB * l;
    let mut buf = [0.0f32; PAD_MAX];
    let Some(blocks) = pad_columns::<CI, CO>(w, bw, &mut buf) else {
        return false;
    };
    let wv = S::as_simd_f32s(&buf[..blocks * CI * bw]).0;
    let wv: &[[S::f32s; NB]] = wv.as_chunks::<NB>().0;
    let x = x.as_chunks::<CI>().0;
    let rows = x.len();
    let add = matches!(accum, Accum::Add);
    let sr = |r: usize| if SC { &scale[r * CO..] } else { scale };
    for cb in 0..blocks {
        let wb: &[[S::f32s; NB]; CI] = wv[cb * CI..(cb + 1) * CI].try_into().expect("CI rows");
        let c0 = cb * bw;
        let mut r = 0;
        while r + MR <= rows {
            xw_tile::<S, CI, CO, NB, MR, SC>(
                simd,
                &x[r..r + MR],
                wb,
                &mut y[r * CO..],
                sr(r),
                c0,
                add,
            );
            r += MR;
        }
        while r < rows {
            xw_tile::<S, CI, CO, NB, 1, SC>(simd, &x[r..=r], wb, &mut y[r * CO..], sr(r), c0, add);
            r += 1;
        }
    }
    true
}

/// `M` rows × columns `c0..c0 + NB·lanes` (those below `CO`) of `Y (+)= X·W`, each stored
/// value multiplied by the same entry of `scale` if `SC` (`scale` from the tile's first row).
#[inline(always)]
fn xw_tile<
    S: Simd,
    const CI: usize,
    const CO: usize,
    const NB: usize,
    const M: usize,
    const SC: bool,
>(
    simd: S,
    x: &[[f32; CI]],
    wb: &[[S::f32s; NB]; CI],
    y: &mut [f32],
    scale: &[f32],
    c0: usize,
    add: bool,
) {
    let l = S::F32_LANES;
    let x: &[[f32; CI]; M] = x.try_into().expect("M rows");
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; NB]; M];
    if add {
        for (i, a) in acc.iter_mut().enumerate() {
            let row = &y[i * CO..(i + 1) * CO];
            for (v, av) in a.iter_mut().enumerate() {
                let c = c0 + v * l;
                if c < CO {
                    *av = load_row::<S>(row, c);
                }
            }
        }
    }
    for k in 0..CI {
        let wk = &wb[k];
        for i in 0..M {
            let xk = simd.splat_f32s(x[i][k]);
            for v in 0..NB {
                acc[i][v] = simd.mul_add_f32s(xk, wk[v], acc[i][v]);
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        let row = &mut y[i * CO..(i + 1) * CO];
        for (v, &av) in a.iter().enumerate() {
            let c = c0 + v * l;
            if c < CO {
                let av = if SC {
                    simd.mul_f32s(av, load_row::<S>(&scale[i * CO..(i + 1) * CO], c))
                } else {
                    av
                };
                store_row::<S>(row, c, av);
            }
        }
    }
}

/// `dW += Xᵀ·dZ` on one instruction set; `false` when no kernel fits. When `CO` is narrower
/// than `CI` (`120 → 20`) it computes `dWᵀ = dZᵀ·X` instead (the wide side in the vectors:
/// 120 of 128 lanes used instead of 20 of 32) into a stack buffer and adds its transpose.
struct XtDz<'a, const CI: usize, const CO: usize> {
    x: &'a [f32],
    dz: &'a [f32],
    dw: &'a mut [f32],
}

impl<const CI: usize, const CO: usize> pulp::WithSimd for XtDz<'_, CI, CO> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> bool {
        let l = S::F32_LANES;
        if CI > CO && CI * CO <= PAD_MAX && blocking(l, CI).is_some() {
            let mut t = [0.0f32; PAD_MAX];
            let t = &mut t[..CO * CI];
            let done = match blocking(l, CI) {
                Some((8, 3)) => xt_dz_blocks::<S, CO, CI, 8, 3>(simd, self.dz, self.x, t),
                Some((5, 2)) => xt_dz_blocks::<S, CO, CI, 5, 2>(simd, self.dz, self.x, t),
                Some((3, 8)) => xt_dz_blocks::<S, CO, CI, 3, 8>(simd, self.dz, self.x, t),
                _ => false,
            };
            if done {
                for (j, tj) in t.chunks_exact(CI).enumerate() {
                    for (i, &v) in tj.iter().enumerate() {
                        self.dw[i * CO + j] += v;
                    }
                }
            }
            return done;
        }
        match blocking(l, CO) {
            Some((2, 12)) => xt_dz_blocks::<S, CI, CO, 2, 12>(simd, self.x, self.dz, self.dw),
            Some((3, 8)) => xt_dz_blocks::<S, CI, CO, 3, 8>(simd, self.x, self.dz, self.dw),
            Some((8, 3)) => xt_dz_blocks::<S, CI, CO, 8, 3>(simd, self.x, self.dz, self.dw),
            Some((3, 4)) => xt_dz_blocks::<S, CI, CO, 3, 4>(simd, self.x, self.dz, self.dw),
            Some((5, 2)) => xt_dz_blocks::<S, CI, CO, 5, 2>(simd, self.x, self.dz, self.dw),
            _ => false,
        }
    }
}

/// `dW += Xᵀ·dZ` in tiles of `MR` rows of `dW` × `NB` vectors of columns, each tile one pass
/// over the `P` rows (accumulators in registers). The rows of `dZ` are read as whole vectors
/// that may run into the next row (those lanes land in accumulator lanes past `CO`, which are
/// dropped); the last row, which has no next row, is read from a zero-padded copy.
#[inline(always)]
fn xt_dz_blocks<S: Simd, const CI: usize, const CO: usize, const NB: usize, const MR: usize>(
    simd: S,
    x: &[f32],
    dz: &[f32],
    dw: &mut [f32],
) -> bool {
    let l = S::F32_LANES;
    let bw = NB * l;
    let blocks = CO.div_ceil(bw);
    let rows = x.len() / CI;
    // The whole-vector reads of row p < P − 1 end by (p + 1)·CO + (bw·blocks − CO) ≤ P·CO.
    if rows == 0 || blocks * bw > 2 * CO || bw * blocks > 128 {
        return rows == 0;
    }
    let x = x.as_chunks::<CI>().0;
    let mut last = [0.0f32; 128];
    last[..CO].copy_from_slice(&dz[(rows - 1) * CO..]);
    // Panels of `PANEL` rows: the panel of `dZ` (and `X`) stays in L1 while every tile of `dW`
    // passes over it; the accumulators are stored between panels (exact: the same f32 values,
    // the same order of terms, so the same bits as one pass over all rows).
    for p0 in (0..rows).step_by(PANEL) {
        let pr = p0..(p0 + PANEL).min(rows);
        for cb in 0..blocks {
            let c0 = cb * bw;
            let mut i = 0;
            while i + MR <= CI {
                xt_dz_tile::<S, CI, CO, NB, MR>(simd, x, dz, &last, dw, i, c0, pr.clone());
                i += MR;
            }
            // The remainder in tiles of 4 and 2 rows where they fit the registers, then 1.
            if MR > 4 && i + 4 <= CI {
                xt_dz_tile::<S, CI, CO, NB, 4>(simd, x, dz, &last, dw, i, c0, pr.clone());
                i += 4;
            }
            if MR > 2 && i + 2 <= CI {
                xt_dz_tile::<S, CI, CO, NB, 2>(simd, x, dz, &last, dw, i, c0, pr.clone());
                i += 2;
            }
            while i < CI {
                xt_dz_tile::<S, CI, CO, NB, 1>(simd, x, dz, &last, dw, i, c0, pr.clone());
                i += 1;
            }
        }
    }
    true
}

/// Rows of `P` per panel in [`xt_dz_blocks`] (a 120-float row: 64 rows = 30 KB, in a 48 KB L1).
const PANEL: usize = 64;

/// Rows `i0..i0 + M` × columns `c0..c0 + NB·lanes` (those below `CO`) of `dW += Xᵀ·dZ`, the
/// terms of the rows `pr` of `X` and `dZ`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn xt_dz_tile<S: Simd, const CI: usize, const CO: usize, const NB: usize, const M: usize>(
    simd: S,
    x: &[[f32; CI]],
    dz: &[f32],
    last: &[f32; 128],
    dw: &mut [f32],
    i0: usize,
    c0: usize,
    pr: std::ops::Range<usize>,
) {
    let l = S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; NB]; M];
    for (i, a) in acc.iter_mut().enumerate() {
        let row = &dw[(i0 + i) * CO..(i0 + i + 1) * CO];
        for (v, av) in a.iter_mut().enumerate() {
            let c = c0 + v * l;
            if c < CO {
                *av = load_row::<S>(row, c);
            }
        }
    }
    let rows = x.len();
    let direct = pr.start..pr.end.min(rows - 1);
    for (p, xp) in direct.clone().zip(&x[direct]) {
        xt_dz_term::<S, CI, NB, M>(simd, &mut acc, xp, &dz[p * CO..], i0, c0);
    }
    if pr.end == rows {
        xt_dz_term::<S, CI, NB, M>(simd, &mut acc, &x[rows - 1], last, i0, c0);
    }
    for (i, a) in acc.iter().enumerate() {
        let row = &mut dw[(i0 + i) * CO..(i0 + i + 1) * CO];
        for (v, &av) in a.iter().enumerate() {
            let c = c0 + v * l;
            if c < CO {
                store_row::<S>(row, c, av);
            }
        }
    }
}

/// One row `p` of [`xt_dz_tile`]: `acc[i][v] += x[p, i0 + i] · dz[p, c0 + v·lanes ..]`
/// (`zp` = the row of `dZ` from column 0; a function, not a closure, so that it is inlined
/// into the `#[target_feature]` body: a closure that LLVM did not inline ran 50× slower).
#[inline(always)]
fn xt_dz_term<S: Simd, const CI: usize, const NB: usize, const M: usize>(
    simd: S,
    acc: &mut [[S::f32s; NB]; M],
    xp: &[f32; CI],
    zp: &[f32],
    i0: usize,
    c0: usize,
) {
    let l = S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let mut z = [zero; NB];
    for (v, zv) in z.iter_mut().enumerate() {
        *zv = load::<S>(&zp[c0 + v * l..]);
    }
    for i in 0..M {
        let xi = simd.splat_f32s(xp[i0 + i]);
        for v in 0..NB {
            acc[i][v] = simd.mul_add_f32s(xi, z[v], acc[i][v]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mnist::kernels::{conv1x1_acc_loop, outer_acc_loop};

    fn fill(n: usize, seed: u64) -> Vec<f32> {
        let mut s = lodo_core::random::Stream::new(seed);
        (0..n)
            .map(|_| (s.below(2001) as f32 - 1000.0) / 1000.0)
            .collect()
    }

    /// `|a − b| ≤ 64·ε·scale`, scale = the sum of |terms| bound (`terms · max|x|·max|w|`,
    /// here ≤ terms, entries in [−1, 1]) plus the start value.
    fn close(a: &[f32], b: &[f32], terms: usize) {
        let tol = 64.0 * f32::EPSILON * (terms as f32 + 1.0);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "entry {i}: {x} vs {y} (tol {tol})");
        }
    }

    fn check_xw<const CI: usize, const CO: usize>(rows: usize) {
        let x = fill(rows * CI, 1);
        let w = fill(CI * CO, 2);
        let y0 = fill(rows * CO, 3);
        let mut want = y0.clone();
        conv1x1_acc_loop::<f32, CI, CO>(&x, &w, &mut want);
        let mut want0 = vec![0.0f32; rows * CO];
        conv1x1_acc_loop::<f32, CI, CO>(&x, &w, &mut want0);
        // The dispatched path.
        let mut got = y0.clone();
        f32::xw::<CI, CO>(Accum::Add, &x, &w, &mut got);
        close(&got, &want, CI);
        let mut got = vec![f32::NAN; rows * CO];
        f32::xw::<CI, CO>(Accum::Replace, &x, &w, &mut got);
        close(&got, &want0, CI);
        // The scaled product: bit for bit the product, then the elementwise multiply.
        let s = fill(rows * CO, 7);
        let scaled = |y: &[f32]| -> Vec<f32> { y.iter().zip(&s).map(|(a, b)| a * b).collect() };
        let want_s = scaled(&got);
        let mut got = vec![f32::NAN; rows * CO];
        f32::xw_scaled::<CI, CO>(&x, &w, &s, &mut got);
        assert!(
            got.iter()
                .zip(&want_s)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        // Each instruction set present, forced.
        let run = |simd_run: &dyn Fn(Xw<'_, CI, CO>) -> bool| {
            let mut got = y0.clone();
            let done = simd_run(Xw::<CI, CO> {
                accum: Accum::Add,
                x: &x,
                w: &w,
                scale: None,
                y: &mut got,
            });
            assert!(done, "a kernel for {CI}×{CO}");
            close(&got, &want, CI);
            let mut got = vec![f32::NAN; rows * CO];
            simd_run(Xw::<CI, CO> {
                accum: Accum::Replace,
                x: &x,
                w: &w,
                scale: None,
                y: &mut got,
            });
            close(&got, &want0, CI);
            let want_s = scaled(&got);
            let mut got = vec![f32::NAN; rows * CO];
            simd_run(Xw::<CI, CO> {
                accum: Accum::Replace,
                x: &x,
                w: &w,
                scale: Some(&s),
                y: &mut got,
            });
            assert!(
                got.iter()
                    .zip(&want_s)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        };
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(s) = pulp::x86::V3::try_new() {
                run(&|job| s.vectorize(move || pulp::WithSimd::with_simd(job, s)));
            }
            if let Some(s) = pulp::x86::V4::try_new() {
                run(&|job| s.vectorize(move || pulp::WithSimd::with_simd(job, s)));
            }
        }
        let _ = run;
    }

    fn check_xt_dz<const CI: usize, const CO: usize>(rows: usize) {
        let x = fill(rows * CI, 4);
        let dz = fill(rows * CO, 5);
        let dw0 = fill(CI * CO, 6);
        let mut want = dw0.clone();
        let mut db = vec![0.0f32; CO];
        outer_acc_loop::<f32, CI, CO>(&x, &dz, &mut want, &mut db);
        let mut got = dw0.clone();
        f32::xt_dz::<CI, CO>(&x, &dz, &mut got);
        close(&got, &want, rows);
        let run = |simd_run: &dyn Fn(XtDz<'_, CI, CO>) -> bool| {
            let mut got = dw0.clone();
            let done = simd_run(XtDz::<CI, CO> {
                x: &x,
                dz: &dz,
                dw: &mut got,
            });
            assert!(done, "a kernel for {CI}×{CO}");
            close(&got, &want, rows);
        };
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(s) = pulp::x86::V3::try_new() {
                run(&|job| s.vectorize(move || pulp::WithSimd::with_simd(job, s)));
            }
            if let Some(s) = pulp::x86::V4::try_new() {
                run(&|job| s.vectorize(move || pulp::WithSimd::with_simd(job, s)));
            }
        }
        let _ = run;
    }

    /// The documented summation order, on bits: `Y ← Y + X·W` is, per output, the fused
    /// multiply-adds of the terms `k = 0, 1, …` onto `y`; `dW += Xᵀ·dZ` the fused multiply-adds
    /// of the rows `p = 0, 1, …` onto `dw` (when computed transposed, onto 0, then added to
    /// `dw`). Panels and tiles must not change a bit.
    fn check_bits<const CI: usize, const CO: usize>(rows: usize) {
        let x = fill(rows * CI, 8);
        let w = fill(CI * CO, 9);
        let y0 = fill(rows * CO, 10);
        let mut want = y0.clone();
        for p in 0..rows {
            for j in 0..CO {
                let mut a = want[p * CO + j];
                for k in 0..CI {
                    a = x[p * CI + k].mul_add(w[k * CO + j], a);
                }
                want[p * CO + j] = a;
            }
        }
        let mut got = y0.clone();
        f32::xw::<CI, CO>(Accum::Add, &x, &w, &mut got);
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        let dz = fill(rows * CO, 11);
        let dw0 = fill(CI * CO, 12);
        let mut want = dw0.clone();
        for i in 0..CI {
            for j in 0..CO {
                let mut a = if CI > CO { 0.0 } else { want[i * CO + j] };
                for p in 0..rows {
                    a = x[p * CI + i].mul_add(dz[p * CO + j], a);
                }
                want[i * CO + j] = if CI > CO { want[i * CO + j] + a } else { a };
            }
        }
        let mut got = dw0.clone();
        f32::xt_dz::<CI, CO>(&x, &dz, &mut got);
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }

    #[test]
    fn summation_order_is_the_documented_one() {
        for rows in [1, 63, 64, 65, 200] {
            check_bits::<20, 40>(rows);
            check_bits::<120, 20>(rows);
            check_bits::<20, 120>(rows);
            check_bits::<40, 20>(rows);
        }
    }

    /// Row counts: 1, odd, below and at a tile multiple, and the CNN's (chunk 2: 1568, 392, 98).
    const ROWS: [usize; 8] = [1, 2, 7, 13, 24, 98, 392, 1568];

    #[test]
    fn xw_matches_the_plain_loop() {
        for rows in ROWS {
            check_xw::<20, 40>(rows);
            check_xw::<120, 20>(rows);
            check_xw::<20, 120>(rows);
            check_xw::<40, 20>(rows);
            check_xw::<5, 20>(rows);
        }
    }

    #[test]
    fn xt_dz_matches_the_plain_loop() {
        for rows in ROWS {
            check_xt_dz::<120, 20>(rows);
            check_xt_dz::<20, 40>(rows);
            check_xt_dz::<20, 120>(rows);
            check_xt_dz::<40, 20>(rows);
            check_xt_dz::<5, 20>(rows);
        }
    }

    #[test]
    fn f64_and_other_shapes_use_gemm() {
        let x: Vec<f64> = (0..30).map(f64::from).collect();
        let w: Vec<f64> = (0..21).map(|v| f64::from(v) * 0.5).collect();
        let mut y = vec![f64::NAN; 10 * 7];
        f64::xw::<3, 7>(Accum::Replace, &x, &w, &mut y);
        // y[0][j] = 0·w[0][j] + 1·w[1][j] + 2·w[2][j]
        for j in 0..7 {
            let want = w[7 + j] + 2.0 * w[14 + j];
            assert_eq!(y[j].to_bits(), want.to_bits());
        }
        let mut y32 = vec![f32::NAN; 10 * 7];
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        f32::xw::<3, 7>(Accum::Replace, &x32, &w32, &mut y32);
        for j in 0..7 {
            assert_eq!(y32[j].to_bits(), (w32[7 + j] + 2.0 * w32[14 + j]).to_bits());
        }
    }
}
