//! The CNN's inner loops, written so LLVM vectorises them: fixed channel counts as const
//! generics, channels innermost (NHWC), no bounds checks in the hot loops.
//!
//! Layout: an activation map of `P = side²` positions and `C` channels is a slice of `P·C`
//! values, position-major. A 1×1 convolution is then the GEMM `Y = X·W (+ b)`, `X: P×Cin`,
//! `W: Cin×Cout` row-major.

use lodo_kernels::gemm::Accum;

use super::Scalar;

/// Below this many positions the plain loops are used instead of the products of
/// [`super::pointwise`] (maps of 7×7 and smaller: the threshold was measured against
/// matrixmultiply's packing with `benches/mnist.rs` on the 2-core Xeon of the development
/// machine, and kept for the SIMD kernels, which apply from 98 rows at chunk 2).
pub const GEMM_MIN_POSITIONS: usize = 64;

/// `Y[p] = b + X[p]·W` for every position `p` (`X: P×CI`, `W: CI×CO`, `Y: P×CO`), through
/// [`super::pointwise::Pointwise::xw`] for large maps (`f32`: explicit-SIMD tiles with
/// runtime AVX-512 / AVX2 + FMA dispatch; `f64`: matrixmultiply).
///
/// # Panics
/// If the lengths are not `P·CI`, `CI·CO`, `CO`, `P·CO` for one `P`.
pub fn conv1x1<T: Scalar, const CI: usize, const CO: usize>(
    x: &[T],
    w: &[T],
    b: &[T],
    y: &mut [T],
) {
    let p = x.len() / CI;
    if p < GEMM_MIN_POSITIONS {
        return conv1x1_loop::<T, CI, CO>(x, w, b, y);
    }
    assert!(b.len() == CO && y.len() == p * CO, "shapes");
    for row in y.chunks_exact_mut(CO) {
        row.copy_from_slice(b);
    }
    T::xw::<CI, CO>(Accum::Add, x, w, y);
}

/// `Y[p] += X[p]·W` for every position (`X: P×CI`, `W: CI×CO`, `Y: P×CO`).
///
/// # Panics
/// On shape mismatch.
pub fn conv1x1_acc<T: Scalar, const CI: usize, const CO: usize>(x: &[T], w: &[T], y: &mut [T]) {
    let p = x.len() / CI;
    if p < GEMM_MIN_POSITIONS {
        return conv1x1_acc_loop::<T, CI, CO>(x, w, y);
    }
    T::xw::<CI, CO>(Accum::Add, x, w, y);
}

/// `dW += Xᵀ·dZ` and `db += Σ_p dZ[p]` (`X: P×CI`, `dZ: P×CO`, `dW: CI×CO`, `db: CO`).
///
/// # Panics
/// On shape mismatch.
pub fn outer_acc<T: Scalar, const CI: usize, const CO: usize>(
    x: &[T],
    dz: &[T],
    dw: &mut [T],
    db: &mut [T],
) {
    let p = x.len() / CI;
    if p < GEMM_MIN_POSITIONS {
        return outer_acc_loop::<T, CI, CO>(x, dz, dw, db);
    }
    assert!(db.len() == CO && dz.len() == p * CO, "shapes");
    let db: &mut [T; CO] = db.try_into().expect("db has CO entries");
    let mut acc = *db;
    for zp in dz.as_chunks::<CO>().0 {
        for j in 0..CO {
            acc[j] = acc[j] + zp[j];
        }
    }
    *db = acc;
    T::xt_dz::<CI, CO>(x, dz, dw);
}

/// A float type the network runs in: `f32` for speed, `f64` for gradient checks.
///
/// Implemented for `f32` (fast, vectorisable `atan`) and `f64` (`std`'s `atan`, so the analytic
/// derivative `1/(1+z²)` is exact to rounding for finite-difference checks).
pub trait Atan: Copy {
    /// `atan(x)`.
    fn atan_v(self) -> Self;
    /// `(atan(x), 1/(1+x²))`: the activation and its slope, with one division for `f32`
    /// ([`atan_slope_f32`]).
    fn atan_slope(self) -> (Self, Self);
}

impl Atan for f32 {
    #[inline(always)]
    fn atan_v(self) -> f32 {
        atan_f32(self)
    }

    #[inline(always)]
    fn atan_slope(self) -> (f32, f32) {
        atan_slope_f32(self)
    }
}

impl Atan for f64 {
    #[inline]
    fn atan_v(self) -> f64 {
        self.atan()
    }

    #[inline(always)]
    fn atan_slope(self) -> (f64, f64) {
        (self.atan(), 1.0 / self.mul_add(self, 1.0))
    }
}

/// `(atan x, 1/(1+x²))` for `f32` with ONE division (divisions, not multiply-adds, bound the
/// CNN's activation passes): [`atan_f32`]'s reduction `r = num/den` and the slope share
/// `q = 1/(den·(1+x²))`, as `r = num·(1+x²)·q` and `1/(1+x²) = den·q`. Beyond `|x| = 10¹²`
/// the shared reciprocal uses `10¹²` (so `den·(1+x²)` stays finite): `atan` is `±π/2` either
/// way and the slope is `10⁻²⁴` instead of a smaller number. NaN gives NaN for both.
/// Tested against `f64` over a sweep of all `f32` magnitudes (`tests/mnist_net.rs`).
#[inline(always)]
#[must_use]
pub fn atan_slope_f32(x: f32) -> (f32, f32) {
    let t = clamp_1e12(x.abs());
    let (num, den, y0) = atan_reduce::<true>(t);
    let s = t.mul_add(t, 1.0);
    let q = 1.0 / (den * s);
    ((y0 + atan_poly::<true>(num * (s * q))).copysign(x), den * q)
}

/// Branch-free `atan` for `f32` (Cephes' `atanf` scheme): reduce `|x|` to `[0, tan(π/8)]` with
/// `atan x = π/4 + atan((x−1)/(x+1))` or `π/2 + atan(−1/x)`, then an odd degree-9 polynomial.
/// Tested against `f64::atan` over a sweep of all `f32` magnitudes (`tests/mnist_net.rs`);
/// `±∞ → ±π/2`, NaN → NaN. Separate multiplies and adds, not [`atan_slope_f32`]'s fused
/// ones: this one runs in the per-example reference path, compiled without the FMA feature,
/// where `mul_add` is a libm call (it made the reference 3.7× slower).
#[inline(always)]
#[must_use]
pub fn atan_f32(x: f32) -> f32 {
    let (num, den, y0) = atan_reduce::<false>(clamp_1e12(x.abs()));
    (y0 + atan_poly::<false>(num / den)).copysign(x)
}

/// `a·b + c`, fused (one rounding) if `FMA`, else a multiply and an add.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `min(t, 10¹²)`, NaN kept (not `f32::min`, which would drop it). Beyond `10¹²` `atan` is
/// `π/2` in `f32` either way; the clamp keeps `0·t` and `den·(1+t²)` finite.
#[inline(always)]
fn clamp_1e12(t: f32) -> f32 {
    if t > 1e12 { 1e12 } else { t }
}

/// Cephes' reduction of `t = |x|` (finite or NaN): `(num, den, y0)` with
/// `atan t = y0 + atan(num/den)` and `|num/den| ≤ tan(π/8)`. It is the tangent subtraction
/// formula `atan t = y0 + atan((t − c)/(1 + c·t))` at `c = tan y0 = 0, 1, ∞`, written as
/// `num = a·t − b`, `den = b·t + a` with `(a, b) = (1, 0), (1, 1), (0, 1)`: the multiply-adds
/// by 0 and 1 are exact, so `num, den` are exactly `t, 1`; `t − 1, t + 1`; `−1, t` (two
/// selects and two multiply-adds instead of four selects and two additions; exact either way).
#[inline(always)]
fn atan_reduce<const FMA: bool>(t: f32) -> (f32, f32, f32) {
    use std::f32::consts::{FRAC_PI_2, FRAC_PI_4};
    let big = t > 2.414_213_6;
    let mid = t > 0.414_213_57;
    let a: f32 = if big { 0.0 } else { 1.0 };
    let b: f32 = if mid { 1.0 } else { 0.0 };
    let y0 = if big {
        FRAC_PI_2
    } else if mid {
        FRAC_PI_4
    } else {
        0.0
    };
    (madd::<FMA>(a, t, -b), madd::<FMA>(b, t, a), y0)
}

/// Cephes' odd degree-9 polynomial for `atan r`, `|r| ≤ tan(π/8)`, by Horner's rule
/// ([`madd`]: fused multiply-adds if `FMA`).
#[inline(always)]
fn atan_poly<const FMA: bool>(r: f32) -> f32 {
    let z = r * r;
    let p = madd::<FMA>(8.053_744_5e-2, z, -1.387_768_6e-1);
    let p = madd::<FMA>(p, z, 1.997_771_1e-1);
    let p = madd::<FMA>(p, z, -3.333_295e-1);
    madd::<FMA>(p * z, r, r)
}

/// `Y[p] = b + X[p]·W` for every position `p` (`X: P×CI`, `W: CI×CO`, `Y: P×CO`): the plain
/// loop, reference for [`conv1x1`].
///
/// # Panics
/// If the lengths are not `P·CI`, `CI·CO`, `CO`, `P·CO` for one `P`.
pub fn conv1x1_loop<T: Scalar, const CI: usize, const CO: usize>(
    x: &[T],
    w: &[T],
    b: &[T],
    y: &mut [T],
) {
    let b: &[T; CO] = b.try_into().expect("b has CO entries");
    let (rows, rest) = y.as_chunks_mut::<CO>();
    assert!(rest.is_empty(), "shapes");
    rows.fill(*b);
    // Same accumulation order as starting each row's sum at `b`: bit-identical.
    conv1x1_acc_loop::<T, CI, CO>(x, w, y);
}

/// `Y[p] += X[p]·W` for every position (`X: P×CI`, `W: CI×CO`, `Y: P×CO`): the plain loop,
/// reference for [`conv1x1_acc`].
///
/// # Panics
/// On shape mismatch.
pub fn conv1x1_acc_loop<T: Scalar, const CI: usize, const CO: usize>(
    x: &[T],
    w: &[T],
    y: &mut [T],
) {
    let w: &[[T; CO]; CI] = w.as_chunks::<CO>().0.try_into().expect("W is CI×CO");
    let (x, xr) = x.as_chunks::<CI>();
    let (y, yr) = y.as_chunks_mut::<CO>();
    assert!(
        xr.is_empty() && yr.is_empty() && x.len() == y.len(),
        "shapes"
    );
    for (xp, yp) in x.iter().zip(y.iter_mut()) {
        let mut acc = *yp;
        for k in 0..CI {
            let a = xp[k];
            for j in 0..CO {
                acc[j] = acc[j] + a * w[k][j];
            }
        }
        *yp = acc;
    }
}

/// Positions per tile in [`outer_acc`]: the `dZ` tile (`TILE·CO` values) stays in L1.
const TILE: usize = 16;

/// `dW += Xᵀ·dZ` and `db += Σ_p dZ[p]` (`X: P×CI`, `dZ: P×CO`, `dW: CI×CO`, `db: CO`): the
/// plain loop, reference for [`outer_acc`].
///
/// # Panics
/// On shape mismatch.
pub fn outer_acc_loop<T: Scalar, const CI: usize, const CO: usize>(
    x: &[T],
    dz: &[T],
    dw: &mut [T],
    db: &mut [T],
) {
    let dw: &mut [[T; CO]; CI] = dw.as_chunks_mut::<CO>().0.try_into().expect("dW is CI×CO");
    let db: &mut [T; CO] = db.try_into().expect("db has CO entries");
    let (x, xr) = x.as_chunks::<CI>();
    let (dz, zr) = dz.as_chunks::<CO>();
    assert!(
        xr.is_empty() && zr.is_empty() && x.len() == dz.len(),
        "shapes"
    );
    for (xt, zt) in x.chunks(TILE).zip(dz.chunks(TILE)) {
        let mut acc = *db;
        for zp in zt {
            for j in 0..CO {
                acc[j] = acc[j] + zp[j];
            }
        }
        *db = acc;
        for k in 0..CI {
            let mut acc = dw[k];
            for (xp, zp) in xt.iter().zip(zt) {
                let a = xp[k];
                for j in 0..CO {
                    acc[j] = acc[j] + a * zp[j];
                }
            }
            dw[k] = acc;
        }
    }
}

/// Channels of the depthwise stage (40 inputs × multiplier 3).
pub const E: usize = 120;

/// The range of output coordinates `o` in `0..side` whose source `o + t − 1` lies in `0..side`.
#[inline]
fn valid(t: usize, side: usize) -> std::ops::Range<usize> {
    let lo = usize::from(t == 0);
    let hi = if t == 2 { side - 1 } else { side };
    lo..hi.max(lo)
}

/// 3×3 depthwise convolution, 'SAME' zero padding, on channel-expanded input:
/// `Z[y,x,j] = b[j] + Σ_{t,u} A[y+t−1, x+u−1, j]·K[t,u,j]` (`A, Z: side²×120`, `K: 9×120`).
///
/// With `A[·,·,3c+m] = a[·,·,c]` this is TensorFlow's `depthwise_conv2d` with multiplier 3
/// (output channel `3c+m` uses filter `K[t,u,c,m]`, stored at `(3t+u)·120 + 3c + m`).
///
/// # Panics
/// On shape mismatch.
pub fn depthwise<T: Scalar>(a: &[T], k: &[T], b: &[T], z: &mut [T], side: usize) {
    let k: &[[T; E]; 9] = k.as_chunks::<E>().0.try_into().expect("K is 9×120");
    let b: &[T; E] = b.try_into().expect("b has 120 entries");
    let a = a.as_chunks::<E>().0;
    let z = z.as_chunks_mut::<E>().0;
    assert!(a.len() == side * side && z.len() == side * side, "shapes");
    for zp in z.iter_mut() {
        *zp = *b;
    }
    for t in 0..3 {
        for y in valid(t, side) {
            let sy = y + t - 1;
            for u in 0..3 {
                let kk = &k[3 * t + u];
                let xs = valid(u, side);
                let zrow = &mut z[y * side + xs.start..y * side + xs.end];
                let src = sy * side + xs.start + u - 1;
                let arow = &a[src..src + xs.len()];
                for (zp, ap) in zrow.iter_mut().zip(arow) {
                    for j in 0..E {
                        zp[j] = zp[j] + ap[j] * kk[j];
                    }
                }
            }
        }
    }
}

/// Backward of [`depthwise`]: `dK[t,u,j] += Σ A[p+(t,u)−1, j]·dZ[p,j]`, `db += Σ_p dZ[p]`, and
/// `dA[q,j] = Σ dZ[q−(t,u)+1, j]·K[t,u,j]` (overwritten).
///
/// # Panics
/// On shape mismatch.
pub fn depthwise_backward<T: Scalar>(
    a: &[T],
    k: &[T],
    dz: &[T],
    dk: &mut [T],
    db: &mut [T],
    da: &mut [T],
    side: usize,
) {
    let k: &[[T; E]; 9] = k.as_chunks::<E>().0.try_into().expect("K is 9×120");
    let dk: &mut [[T; E]; 9] = dk.as_chunks_mut::<E>().0.try_into().expect("dK is 9×120");
    let db: &mut [T; E] = db.try_into().expect("db has 120 entries");
    let a = a.as_chunks::<E>().0;
    let dz = dz.as_chunks::<E>().0;
    let da = da.as_chunks_mut::<E>().0;
    assert!(
        a.len() == side * side && dz.len() == side * side && da.len() == side * side,
        "shapes"
    );
    let mut acc = *db;
    for zp in dz {
        for j in 0..E {
            acc[j] = acc[j] + zp[j];
        }
    }
    *db = acc;
    for dp in da.iter_mut() {
        *dp = [T::zero(); E];
    }
    for t in 0..3 {
        for y in valid(t, side) {
            let sy = y + t - 1;
            for u in 0..3 {
                let kk = &k[3 * t + u];
                let xs = valid(u, side);
                let zrow = &dz[y * side + xs.start..y * side + xs.end];
                let src = sy * side + xs.start + u - 1;
                let arow = &a[src..src + xs.len()];
                let mut g = dk[3 * t + u];
                for (zp, ap) in zrow.iter().zip(arow) {
                    for j in 0..E {
                        g[j] = g[j] + ap[j] * zp[j];
                    }
                }
                dk[3 * t + u] = g;
                let darow = &mut da[src..src + xs.len()];
                for (zp, dp) in zrow.iter().zip(darow.iter_mut()) {
                    for j in 0..E {
                        dp[j] = dp[j] + zp[j] * kk[j];
                    }
                }
            }
        }
    }
}

/// Output side of 2×2/stride-2 'SAME' pooling: `⌈side/2⌉`.
#[must_use]
pub const fn pooled(side: usize) -> usize {
    side.div_ceil(2)
}

/// 2×2 average pooling, stride 2, TensorFlow 'SAME' padding: at odd sizes the last window hangs
/// over the edge and averages only its valid cells (TF divides by the count of valid cells).
/// `x: side²×C`, `y: ⌈side/2⌉²×C`.
///
/// # Panics
/// On shape mismatch.
pub fn avg_pool<T: Scalar, const C: usize>(x: &[T], y: &mut [T], side: usize) {
    let so = pooled(side);
    let x = x.as_chunks::<C>().0;
    let y = y.as_chunks_mut::<C>().0;
    assert!(x.len() == side * side && y.len() == so * so, "shapes");
    for oy in 0..so {
        for ox in 0..so {
            let mut acc = [T::zero(); C];
            let mut count = 0u32;
            for iy in 2 * oy..(2 * oy + 2).min(side) {
                for ix in 2 * ox..(2 * ox + 2).min(side) {
                    count += 1;
                    let xp = &x[iy * side + ix];
                    for j in 0..C {
                        acc[j] = acc[j] + xp[j];
                    }
                }
            }
            let inv = T::one() / T::from(count).expect("small count");
            for a in &mut acc {
                *a = *a * inv;
            }
            y[oy * so + ox] = acc;
        }
    }
}

/// Backward of [`avg_pool`]: `dX[i] = dY[window(i)] / count(window(i))` (overwritten).
///
/// # Panics
/// On shape mismatch.
pub fn avg_pool_backward<T: Scalar, const C: usize>(dy: &[T], dx: &mut [T], side: usize) {
    let so = pooled(side);
    let dy = dy.as_chunks::<C>().0;
    let dx = dx.as_chunks_mut::<C>().0;
    assert!(dx.len() == side * side && dy.len() == so * so, "shapes");
    for iy in 0..side {
        let oy = iy / 2;
        let cy = (2 * oy + 2).min(side) - 2 * oy;
        for ix in 0..side {
            let ox = ix / 2;
            let cx = (2 * ox + 2).min(side) - 2 * ox;
            let inv = T::one() / T::from(cy * cx).expect("small count");
            let g = &dy[oy * so + ox];
            let d = &mut dx[iy * side + ix];
            for j in 0..C {
                d[j] = g[j] * inv;
            }
        }
    }
}
