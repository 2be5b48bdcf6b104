//! Every kernel path against the reference bodies (issue 3, STYLE §10).
//!
//! Sizes: block counts 0..=9 (odd ones included) and `k ∈ {1, 2, 3, 4, 5, 8}`, so lengths are
//! rarely lane-width multiples. Values: O(1) blocks and vectors scaled by `10^e`,
//! `e ∈ [−30, 30]`. Outputs are pre-filled with NaN. Permutations are checked bit for bit;
//! float kernels within the bounds derived in `lodo_kernels::block_diagonal` (“Accuracy”):
//! `|fast − ref| ≤ 2k·ε·Σ|b_j x_j| + 2k·ε·MIN_POSITIVE` per output (the last term covers
//! subnormal products), and for Adam the first-order propagation of those roundings (see
//! `adam_bound`), with a safety factor 4. `LODO_KERNEL`, when set, must name an available path
//! (the `selected_path_is_available` test fails otherwise). `PROPTEST_CASES` overrides the case
//! count (default 64 per test).

mod common;

use common::{cases, fast, kernels};
use lodo_kernels::block_diagonal::{AdamCoefficients, AdamSlices, GatheredPair};
use lodo_kernels::wiring::Wiring;
use lodo_kernels::{Kernels, Path, dispatch, gemm, permutation, reference};
use num_traits::{Float, ToPrimitive};
use proptest::prelude::*;

#[test]
fn selected_path_is_available() {
    // Panics (fails) if LODO_KERNEL forces an unknown or unavailable path.
    let p = dispatch::selected();
    assert!(p.is_available());
    if let Ok(name) = std::env::var("LODO_KERNEL") {
        assert_eq!(p.name(), name, "LODO_KERNEL was not honoured");
    }
    // Paths this CPU has must be usable through the handle.
    for p in Path::ALL {
        assert_eq!(Kernels::new(p).is_ok(), p.is_available());
    }
    assert!(Kernels::new(Path::Reference).is_ok());
}

#[derive(Clone, Debug)]
struct Case {
    k: usize,
    nb: usize,
    scale_exp: i32,
    perm: Vec<u32>,
    unit: Vec<f64>,
}

impl Case {
    fn h(&self) -> usize {
        self.k * self.nb
    }
    /// `len` values in (−1, 1) starting at `off` (cycled), times `scale`.
    fn vals<T: Float>(&self, off: usize, len: usize, scale: f64) -> Vec<T> {
        (0..len)
            .map(|i| T::from(self.unit[(off + i * 7) % self.unit.len()] * scale).unwrap())
            .collect()
    }
    fn scale(&self) -> f64 {
        10f64.powi(self.scale_exp)
    }
}

fn case() -> impl Strategy<Value = Case> {
    // Fast runs (Miri interprets every iterator step) keep to a handful of blocks.
    let nb = if fast() {
        prop_oneof![0usize..=2, 3usize..=4]
    } else {
        prop_oneof![0usize..=9, 30usize..=700]
    };
    (
        prop::sample::select(vec![1usize, 2, 3, 4, 4, 5, 8]),
        // Few blocks (edge cases), and enough to span several tiles of the fused kernels
        // (`tuning::ADAM_TILE / k²` blocks per tile: 32 for k = 4, 512 for k = 1).
        nb,
        -30i32..=30,
    )
        .prop_flat_map(|(k, nb, e)| {
            let h = k * nb;
            let perm = Just((0..h as u32).collect::<Vec<_>>()).prop_shuffle();
            let unit = prop::collection::vec(-1.0f64..1.0, 64);
            (Just(k), Just(nb), Just(e), perm, unit)
        })
        .prop_map(|(k, nb, scale_exp, perm, unit)| Case {
            k,
            nb,
            scale_exp,
            perm,
            unit,
        })
}

fn nan<T: Float>(n: usize) -> Vec<T> {
    vec![T::nan(); n]
}

/// Same class and within `tol` (both non-finite with equal bits counts as equal).
fn close<T: Float + std::fmt::Debug>(what: &str, path: Path, got: &[T], want: &[T], tol: &[f64]) {
    assert_eq!(got.len(), want.len());
    for i in 0..got.len() {
        let (g, w) = (got[i], want[i]);
        assert!(!w.is_nan(), "{what}: reference left NaN at {i}");
        if !w.is_finite() {
            assert!(g == w, "{what} [{path}] {i}: {g:?} vs reference {w:?}");
            continue;
        }
        let d = (g.to_f64().unwrap() - w.to_f64().unwrap()).abs();
        assert!(
            d <= tol[i],
            "{what} [{path}] {i}: {g:?} vs reference {w:?}, |Δ| {d:e} > {:e}",
            tol[i]
        );
    }
}

fn eps<T: Float>() -> f64 {
    T::epsilon().to_f64().unwrap()
}
fn tiny<T: Float>() -> f64 {
    T::min_positive_value().to_f64().unwrap() * eps::<T>()
}

/// `4 · (2k·ε·Σ_j |b_j x_j| + 2k·tiny)` for each output of `y = B x` (or `Bᵀ x` with `tr`).
fn matvec_tol<T: Float>(k: usize, b: &[T], x: &[T], tr: bool) -> Vec<f64> {
    let f = |v: T| v.to_f64().unwrap().abs();
    (0..x.len())
        .map(|i| {
            let (blk, r) = (i / k, i % k);
            let s: f64 = (0..k)
                .map(|j| {
                    let bij = if tr {
                        b[blk * k * k + j * k + r]
                    } else {
                        b[blk * k * k + r * k + j]
                    };
                    f(bij) * f(x[blk * k + j])
                })
                .sum();
            4.0 * (2.0 * k as f64 * eps::<T>() * s + 2.0 * k as f64 * tiny::<T>())
        })
        .collect()
}

fn scatter_tol(perm: &[u32], tol: Vec<f64>) -> Vec<f64> {
    let mut out = vec![0.0; tol.len()];
    for (j, &p) in perm.iter().enumerate() {
        out[p as usize] = tol[j];
    }
    out
}

macro_rules! float_tests {
    ($m:ident, $T:ty) => {
        mod $m {
            use super::*;
            type T = $T;

            fn blocks(c: &Case) -> Vec<T> {
                c.vals(3, c.h() * c.k, 1.0)
            }

            pub(super) fn matvecs(c: &Case) {
                let (k, h, s) = (c.k, c.h(), c.scale());
                let (b, x) = (blocks(c), c.vals::<T>(11, h, s));
                let mut want = nan::<T>(h);
                reference::matvec(k, &b, &x, &mut want);
                for kern in kernels() {
                    let mut y = nan::<T>(h);
                    kern.matvec(k, &b, &x, &mut y);
                    close(
                        "matvec",
                        kern.path(),
                        &y,
                        &want,
                        &matvec_tol(k, &b, &x, false),
                    );
                    // Same path, same bits.
                    let mut y2 = nan::<T>(h);
                    kern.matvec(k, &b, &x, &mut y2);
                    assert!(y.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()));
                }
            }

            pub(super) fn layers(c: &Case) {
                let (k, h, s) = (c.k, c.h(), c.scale());
                let (b, x, w) = (blocks(c), c.vals::<T>(5, h, s), c.vals::<T>(17, h, s));
                let (mut p0, mut y0) = (nan::<T>(h), nan::<T>(h));
                reference::layer_forward_into(k, &b, Wiring::Index(&c.perm), &x, &mut p0, &mut y0);
                let mut yb0 = nan::<T>(h);
                reference::layer_backward(k, &b, &c.perm, &w, &mut yb0);
                let fwd_tol = matvec_tol(k, &b, &p0, false);
                let bwd_tol = scatter_tol(&c.perm, matvec_tol(k, &b, &w, true));
                for kern in kernels() {
                    let (mut p, mut y) = (nan::<T>(h), nan::<T>(h));
                    kern.layer_forward_into(k, &b, Wiring::Index(&c.perm), &x, &mut p, &mut y);
                    assert!(
                        p.iter().zip(&p0).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "p [{}]",
                        kern.path()
                    );
                    close("layer_forward_into", kern.path(), &y, &y0, &fwd_tol);
                    let mut yb = nan::<T>(h);
                    kern.layer_backward(k, &b, &c.perm, &w, &mut yb);
                    close("layer_backward", kern.path(), &yb, &yb0, &bwd_tol);
                }
                // The gathered adjoint layer: z = Bᵀ Q w, with and without an index; against
                // the reference, and against the definition Bᵀ (Q w) built from other kernels.
                let qw: Vec<T> = c.perm.iter().map(|&j| w[j as usize]).collect();
                let gat_tol = matvec_tol(k, &b, &qw, true);
                let plain_tol = matvec_tol(k, &b, &w, true);
                let mut zq0 = nan::<T>(h);
                reference::layer_backward_gathered(k, &b, Wiring::Index(&c.perm), &w, &mut zq0);
                let mut zdef = nan::<T>(h);
                reference::matvec_transpose(k, &b, &qw, &mut zdef);
                assert!(
                    zq0.iter()
                        .zip(&zdef)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
                let mut zn0 = nan::<T>(h);
                reference::layer_backward_gathered(k, &b, Wiring::Identity, &w, &mut zn0);
                let mut zdef = nan::<T>(h);
                reference::matvec_transpose(k, &b, &w, &mut zdef);
                assert!(
                    zn0.iter()
                        .zip(&zdef)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
                for kern in kernels() {
                    let mut z = nan::<T>(h);
                    kern.layer_backward_gathered(k, &b, Wiring::Index(&c.perm), &w, &mut z);
                    close("layer_backward_gathered", kern.path(), &z, &zq0, &gat_tol);
                    // A layer computed in two parts (split at a block boundary, each part
                    // reading the whole input through its indices) equals the whole, bit for bit.
                    let cut = (c.nb / 2) * k;
                    let mut zp = nan::<T>(h);
                    let (z1, z2) = zp.split_at_mut(cut);
                    let (q1, q2) = c.perm.split_at(cut);
                    kern.layer_backward_gathered(k, &b[..cut * k], Wiring::Index(q1), &w, z1);
                    kern.layer_backward_gathered(k, &b[cut * k..], Wiring::Index(q2), &w, z2);
                    assert!(zp.iter().zip(&z).all(|(a, b)| a.to_bits() == b.to_bits()));
                    let (mut p_all, mut y_all) = (nan::<T>(h), nan::<T>(h));
                    kern.layer_forward_into(
                        k,
                        &b,
                        Wiring::Index(&c.perm),
                        &x,
                        &mut p_all,
                        &mut y_all,
                    );
                    let (mut pp, mut yp) = (nan::<T>(h), nan::<T>(h));
                    let ((p1, p2), (y1, y2)) = (pp.split_at_mut(cut), yp.split_at_mut(cut));
                    kern.layer_forward_into(k, &b[..cut * k], Wiring::Index(q1), &x, p1, y1);
                    kern.layer_forward_into(k, &b[cut * k..], Wiring::Index(q2), &x, p2, y2);
                    assert!(
                        pp.iter()
                            .zip(&p_all)
                            .all(|(a, b)| a.to_bits() == b.to_bits())
                    );
                    assert!(
                        yp.iter()
                            .zip(&y_all)
                            .all(|(a, b)| a.to_bits() == b.to_bits())
                    );
                    let mut z = nan::<T>(h);
                    kern.layer_backward_gathered(k, &b, Wiring::Identity, &w, &mut z);
                    close(
                        "layer_backward_gathered (no index)",
                        kern.path(),
                        &z,
                        &zn0,
                        &plain_tol,
                    );
                }
            }

            /// ⟨y, B P x⟩ = ⟨Pᵀ Bᵀ y, x⟩ within `4k·ε·Σ|y_r B_rc (Px)_c|` (+ tiny terms).
            pub(super) fn adjoint(c: &Case) {
                let (k, h, s) = (c.k, c.h(), c.scale().sqrt());
                let (b, x, y) = (blocks(c), c.vals::<T>(5, h, s), c.vals::<T>(13, h, s));
                for kern in kernels() {
                    let (mut p, mut bpx) = (nan::<T>(h), nan::<T>(h));
                    kern.layer_forward_into(k, &b, Wiring::Index(&c.perm), &x, &mut p, &mut bpx);
                    let mut bty = nan::<T>(h);
                    kern.layer_backward(k, &b, &c.perm, &y, &mut bty);
                    let f = |v: T| v.to_f64().unwrap();
                    let lhs: f64 = y.iter().zip(&bpx).map(|(&a, &b)| f(a) * f(b)).sum();
                    let rhs: f64 = bty.iter().zip(&x).map(|(&a, &b)| f(a) * f(b)).sum();
                    let mut mag = 0.0;
                    for blk in 0..c.nb {
                        for r in 0..k {
                            for col in 0..k {
                                mag += (f(y[blk * k + r])
                                    * f(b[blk * k * k + r * k + col])
                                    * f(p[blk * k + col]))
                                .abs();
                            }
                        }
                    }
                    let tol =
                        4.0 * k as f64 * eps::<T>() * mag + 8.0 * (h * k) as f64 * tiny::<T>() * s;
                    assert!(
                        (lhs - rhs).abs() <= tol,
                        "[{}] {lhs:e} vs {rhs:e} (tol {tol:e})",
                        kern.path()
                    );
                }
            }

            pub(super) fn outer_and_adam(c: &Case, rate: f64) {
                let (k, h, s) = (c.k, c.h(), c.scale());
                let (a, cc, d, e) = (
                    c.vals::<T>(1, h, s),
                    c.vals::<T>(2, h, 1.0),
                    c.vals::<T>(3, h, s),
                    c.vals::<T>(4, h, 1.0),
                );
                let scale: T = -0.5;
                let hk = h * k;
                let theta0 = c.vals::<T>(9, hk, 1.0);
                let m0 = c.vals::<T>(10, hk, s);
                let v0: Vec<T> = m0
                    .iter()
                    .map(|&x| {
                        let v = x * x * 0.5;
                        if v.is_finite() { v } else { T::max_value() }
                    })
                    .collect();
                let co = AdamCoefficients {
                    beta1: 0.9,
                    beta2: 0.999,
                    epsilon: 1e-7,
                    rate: rate as T,
                    key: 0,
                    first: 0,
                };
                // The kernels see a and d interleaved, read through the index (or not).
                let ad: Vec<T> = a.iter().zip(&d).flat_map(|(&x, &y)| [x, y]).collect();
                let gathered = |x: &[T], wiring: Wiring<'_>| -> Vec<T> {
                    (0..x.len()).map(|j| x[wiring.source(k, j)]).collect()
                };
                let interleaved = |x: &[T], y: &[T]| -> Vec<T> {
                    x.iter().zip(y).flat_map(|(&u, &w)| [u, w]).collect()
                };
                for wiring in [Wiring::Index(&c.perm[..]), Wiring::Identity] {
                    let (ag, dg) = (gathered(&a, wiring), gathered(&d, wiring));
                    let gp = GatheredPair {
                        scale,
                        ad: &ad,
                        wiring,
                        c: &cc,
                        e: &e,
                    };
                    // Reference, against its definition from the unfused kernels: bit for bit.
                    let mut g0 = nan::<T>(hk);
                    let mut zad0 = nan::<T>(2 * h);
                    reference::backward_pair_gradient(k, gp, &theta0, &mut g0, &mut zad0);
                    // Δ_b[r][col] = s·(â_b[r] c_b[col] + d̂_b[r] e_b[col]), as the formula reads.
                    let gdef: Vec<T> = (0..hk)
                        .map(|i| {
                            let (blk, r, col) = (i / (k * k), (i / k) % k, i % k);
                            scale
                                * (ag[blk * k + r] * cc[blk * k + col]
                                    + dg[blk * k + r] * e[blk * k + col])
                        })
                        .collect();
                    let (mut za_def, mut zd_def) = (nan::<T>(h), nan::<T>(h));
                    reference::matvec_transpose(k, &theta0, &ag, &mut za_def);
                    reference::matvec_transpose(k, &theta0, &dg, &mut zd_def);
                    let same =
                        |x: &[T], y: &[T]| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
                    assert!(same(&g0, &gdef));
                    assert!(same(&zad0, &interleaved(&za_def, &zd_def)));
                    let (mut th_r, mut m_r, mut v_r) = (theta0.clone(), m0.clone(), v0.clone());
                    let mut zad_r = nan::<T>(2 * h);
                    let kept_r = reference::backward_pair_adam(
                        k,
                        gp,
                        AdamSlices::full(&mut th_r, &mut m_r, &mut v_r),
                        co,
                        &mut zad_r,
                    );
                    assert!(same(&zad_r, &zad0));
                    let f = |v: T| v.to_f64().unwrap();
                    let gabs: Vec<f64> = (0..hk)
                        .map(|i| {
                            let (blk, r, col) = (i / (k * k), (i / k) % k, i % k);
                            f(scale).abs()
                                * ((f(ag[blk * k + r]) * f(cc[blk * k + col])).abs()
                                    + (f(dg[blk * k + r]) * f(e[blk * k + col])).abs())
                        })
                        .collect();
                    let g_tol: Vec<f64> = gabs
                        .iter()
                        .map(|&x| 4.0 * (6.0 * eps::<T>() * x + 4.0 * tiny::<T>()))
                        .collect();
                    let (dm, dv, dth) =
                        adam_bound::<T>(&co, &theta0, &m0, &v0, &g0, &gabs, &m_r, &v_r);
                    let z_tol: Vec<f64> = matvec_tol(k, &theta0, &ag, true)
                        .into_iter()
                        .zip(matvec_tol(k, &theta0, &dg, true))
                        .flat_map(|(x, y)| [x, y])
                        .collect();
                    for kern in kernels() {
                        let (mut g, mut zad) = (nan::<T>(hk), nan::<T>(2 * h));
                        kern.backward_pair_gradient(k, gp, &theta0, &mut g, &mut zad);
                        close("pair gradient", kern.path(), &g, &g0, &g_tol);
                        close("pair zad", kern.path(), &zad, &zad0, &z_tol);
                        let (mut th, mut m, mut v) = (theta0.clone(), m0.clone(), v0.clone());
                        let mut zad_a = nan::<T>(2 * h);
                        let kept = kern.backward_pair_adam(
                            k,
                            gp,
                            AdamSlices::full(&mut th, &mut m, &mut v),
                            co,
                            &mut zad_a,
                        );
                        // At 1e±30 scales some updates overflow: every path keeps the same ones.
                        assert_eq!(kept, kept_r, "[{}] adam: elements kept", kern.path());
                        // The fused step's backward outputs equal the unfused kernel's bits.
                        assert!(same(&zad_a, &zad), "[{}] adam zad", kern.path());
                        close("adam M", kern.path(), &m, &m_r, &dm);
                        close("adam V", kern.path(), &v, &v_r, &dv);
                        close("adam θ", kern.path(), &th, &th_r, &dth);
                    }
                }
            }

            pub(super) fn matmat(c: &Case, cols: usize) {
                let (k, h, s) = (c.k, c.h(), c.scale());
                let b = blocks(c);
                let x = c.vals::<T>(7, h * cols, s);
                for kern in kernels() {
                    for tr in [false, true] {
                        let mut y = nan::<T>(h * cols);
                        if tr {
                            kern.matmat_transpose(k, &b, cols, &x, &mut y)
                        } else {
                            kern.matmat(k, &b, cols, &x, &mut y)
                        }
                        for j in 0..cols {
                            let col: Vec<T> = (0..h).map(|i| x[i * cols + j]).collect();
                            let mut want = nan::<T>(h);
                            if tr {
                                reference::matvec_transpose(k, &b, &col, &mut want)
                            } else {
                                reference::matvec(k, &b, &col, &mut want)
                            }
                            let got: Vec<T> = (0..h).map(|i| y[i * cols + j]).collect();
                            // matrixmultiply may sum in another order: bound 2k·ε·Σ|b x| per side.
                            close(
                                "matmat",
                                kern.path(),
                                &got,
                                &want,
                                &matvec_tol(k, &b, &col, tr),
                            );
                        }
                    }
                }
            }
        }
    };
}

float_tests!(f32s, f32);
float_tests!(f64s, f64);

/// First-order bound on |fast − ref| for Adam's `M`, `V`, `θ`, from the gradient's bound
/// `dg = 6ε·gabs` and a few ε per operation, times 4.
#[allow(clippy::too_many_arguments)]
fn adam_bound<T: Float>(
    co: &AdamCoefficients<T>,
    theta0: &[T],
    m0: &[T],
    v0: &[T],
    g: &[T],
    gabs: &[f64],
    m: &[T],
    v: &[T],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let e = eps::<T>();
    let t = tiny::<T>();
    let f = |x: T| x.to_f64().unwrap();
    let (b1, b2, ea, rate) = (f(co.beta1), f(co.beta2), f(co.epsilon), f(co.rate));
    let (mut dm, mut dv, mut dth) = (vec![], vec![], vec![]);
    for i in 0..g.len() {
        let dg = 6.0 * e * gabs[i] + 4.0 * t;
        let gi = f(g[i]).abs().max(gabs[i]);
        let dmi = (1.0 - b1) * dg + 3.0 * e * (b1 * f(m0[i]).abs() + (1.0 - b1) * gi) + 4.0 * t;
        let dvi =
            (1.0 - b2) * 2.0 * gi * dg + 4.0 * e * (b2 * f(v0[i]) + (1.0 - b2) * gi * gi) + 4.0 * t;
        let (mi, vi) = (f(m[i]), f(v[i]).max(0.0));
        let sq = vi.sqrt();
        let dsq = if sq > 0.0 {
            (dvi / (2.0 * sq)).min(dvi.sqrt())
        } else {
            dvi.sqrt()
        } + 2.0 * e * sq;
        let den = sq + ea;
        let u = mi / den;
        // V overflowed (f32 at 1e30 scales): both sides divide by ∞ and leave θ unchanged.
        let du = if den.is_finite() {
            dmi / den + mi.abs() * dsq / (den * den) + 2.0 * e * u.abs()
        } else {
            0.0
        };
        let dthi = rate * du + 2.0 * e * (f(theta0[i]).abs() + rate * u.abs()) + 4.0 * t;
        dm.push(4.0 * dmi);
        dv.push(4.0 * dvi);
        dth.push(4.0 * dthi);
    }
    (dm, dv, dth)
}

/// Every path's gather against the reference, and the round trips with the row scatter, bit
/// for bit; the row forms against their definition.
fn permutations(c: &Case) {
    let h = c.h();
    let x: Vec<f64> = c.vals(0, h, c.scale());
    let xs: Vec<f32> = c.vals(0, h, c.scale());
    let mut want = vec![f64::NAN; h];
    reference::gather(&c.perm, &x, &mut want);
    let mut want_s = vec![f32::NAN; h];
    reference::gather(&c.perm, &xs, &mut want_s);
    for kern in kernels() {
        let mut y = vec![f64::NAN; h];
        kern.gather(&c.perm, &x, &mut y);
        assert!(y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
        let mut back = vec![f64::NAN; h];
        permutation::scatter_rows(&c.perm, 1, &y, &mut back);
        assert!(
            back.iter().zip(&x).all(|(a, b)| a.to_bits() == b.to_bits()),
            "scatter∘gather ≠ id"
        );
        let mut ys = vec![f32::NAN; h];
        kern.gather(&c.perm, &xs, &mut ys);
        assert!(
            ys.iter()
                .zip(&want_s)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        let mut backs = vec![f32::NAN; h];
        permutation::scatter_rows(&c.perm, 1, &ys, &mut backs);
        assert!(
            backs
                .iter()
                .zip(&xs)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        // gather ∘ scatter = id as well
        let mut s = vec![f64::NAN; h];
        permutation::scatter_rows(&c.perm, 1, &x, &mut s);
        let mut g = vec![f64::NAN; h];
        kern.gather(&c.perm, &s, &mut g);
        assert!(g.iter().zip(&x).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
    // The free function runs the selected path.
    let mut y = vec![f64::NAN; h];
    permutation::gather(&c.perm, &x, &mut y);
    assert!(y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
    if h > 0 {
        let cols = 3;
        let xr: Vec<f64> = c.vals(1, h * cols, 1.0);
        let mut yr = vec![f64::NAN; h * cols];
        permutation::gather_rows(&c.perm, cols, &xr, &mut yr);
        // Row j of Y is row π(j) of X.
        for (j, &pj) in c.perm.iter().enumerate() {
            let (yj, xp) = (
                &yr[j * cols..(j + 1) * cols],
                &xr[pj as usize * cols..(pj as usize + 1) * cols],
            );
            assert!(yj.iter().zip(xp).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        let mut back = vec![f64::NAN; h * cols];
        permutation::scatter_rows(&c.perm, cols, &yr, &mut back);
        assert!(
            back.iter()
                .zip(&xr)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }
}

fn config() -> ProptestConfig {
    let cases = cases(64);
    // Under Miri the saved regressions (cases of up to 9 blocks) are not replayed: they cost
    // minutes there and exercise no other `unsafe` block than the fixed cases.
    let failure_persistence: Option<Box<dyn proptest::test_runner::FailurePersistence>> =
        if cfg!(miri) {
            None
        } else {
            Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
            ))
        };
    ProptestConfig {
        cases,
        failure_persistence,
        ..ProptestConfig::default()
    }
}

/// A case without randomness: `k`, `nb` blocks, scale `10^scale_exp`, a reversed-and-rotated
/// permutation and fixed values in (−1, 1).
fn fixed_case(k: usize, nb: usize, scale_exp: i32) -> Case {
    let h = k * nb;
    Case {
        k,
        nb,
        scale_exp,
        perm: (0..h)
            .map(|j| ((2 * h + 2 - j) % h.max(1)) as u32)
            .collect(),
        unit: (0..64).map(|i| (i as f64 * 0.7 + 0.3).sin()).collect(),
    }
}

/// Every kernel on every available path on fixed cases, whatever proptest draws: `k = 4` (the
/// unrolled bodies) over two tiles of the fused kernels (one tile in fast runs), `k = 3` and
/// `k = 1` (the generic bodies), and narrow and wide batches (the wide ones go to
/// matrixmultiply on the SIMD paths). The Miri run (`.ci/miri`) relies on this test to reach
/// every `unsafe` block.
#[test]
fn fixed_cases_every_kernel_every_path() {
    let nb4 = if fast() { 3 } else { 33 };
    for (k, nb, e) in [(4, nb4, 0), (3, 2, 20), (1, 3, -20)] {
        let c = fixed_case(k, nb, e);
        f32s::matvecs(&c);
        f64s::matvecs(&c);
        f32s::layers(&c);
        f64s::layers(&c);
        f32s::adjoint(&c);
        f64s::adjoint(&c);
        f32s::outer_and_adam(&c, 0.1);
        f64s::outer_and_adam(&c, 0.1);
        permutations(&c);
    }
    // The batched products once, narrow (plain loops) and wide (matrixmultiply).
    let c = fixed_case(4, 3, 0);
    for cols in [3, 32] {
        f32s::matmat(&c, cols);
        f64s::matmat(&c, cols);
    }
}

/// The throughput probe computes the same chains on every path: `mul_add` is fused (correctly
/// rounded) on each, so the checksums agree bit for bit.
#[test]
fn probe_paths_agree() {
    use lodo_kernels::probe::fma_chains;
    let (flops, want) = fma_chains::<f64>(Kernels::reference(), 3, 0.999, 1e-3);
    let (flops_s, want_s) = fma_chains::<f32>(Kernels::reference(), 3, 0.999, 1e-3);
    assert_eq!((flops, flops_s), (3 * 8 * 16 * 2, 3 * 8 * 16 * 2));
    assert!(want.is_finite() && want > 0.0);
    for kern in kernels() {
        let (f, got) = fma_chains::<f64>(kern, 3, 0.999, 1e-3);
        assert_eq!(f, flops);
        assert_eq!(got.to_bits(), want.to_bits(), "[{}]", kern.path());
        let (_, got_s) = fma_chains::<f32>(kern, 3, 0.999, 1e-3);
        assert_eq!(got_s.to_bits(), want_s.to_bits(), "[{}] f32", kern.path());
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matvecs_match_reference(c in case()) {
        f32s::matvecs(&c);
        f64s::matvecs(&c);
    }

    #[test]
    fn layers_match_reference(c in case()) {
        f32s::layers(&c);
        f64s::layers(&c);
    }

    #[test]
    fn adjoint_identity(c in case()) {
        f32s::adjoint(&c);
        f64s::adjoint(&c);
    }

    #[test]
    fn fused_adam_matches_reference(c in case(), rate in 1e-4f64..1.0) {
        f32s::outer_and_adam(&c, rate);
        f64s::outer_and_adam(&c, rate);
    }

    #[test]
    fn matmat_matches_matvec(c in case(), cols in prop::sample::select(vec![1usize, 3, 32, 37])) {
        f32s::matmat(&c, cols);
        f64s::matmat(&c, cols);
    }

    #[test]
    fn permutations_bit_exact(c in case()) {
        permutations(&c);
    }

    #[test]
    fn gemm_matches_loops(m in 0usize..6, k in 0usize..6, n in 1usize..40, tr in any::<bool>(), add in any::<bool>()) {
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.91).cos()).collect();
        let c0: Vec<f64> = (0..m * n).map(|i| i as f64 * 0.5).collect();
        let op = if tr { gemm::Op::Transpose } else { gemm::Op::NoTranspose };
        let acc = if add { gemm::Accum::Add } else { gemm::Accum::Replace };
        let mut c = if add { c0.clone() } else { vec![f64::NAN; m * n] };
        gemm::gemm(acc, op, m, k, n, 2.0, &a, &b, &mut c);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                let mut mag = 0.0;
                for l in 0..k {
                    let ail = if tr { a[l * m + i] } else { a[i * k + l] };
                    s += ail * b[l * n + j];
                    mag += (ail * b[l * n + j]).abs();
                }
                let want = if add { c0[i * n + j] + 2.0 * s } else { 2.0 * s };
                let tol = 4.0 * (k as f64 + 2.0) * f64::EPSILON * (2.0 * mag + c0[i * n + j].abs());
                prop_assert!((c[i * n + j] - want).abs() <= tol, "({i},{j}) {} vs {want}", c[i * n + j]);
            }
        }
    }
}

/// The fused Adam step's guard, on every path: rows of the gradient whose square overflows
/// (`a` of 1e200 in f64, 1e30 in f32) keep their old `θ, M, V` bits, every other element is
/// updated as the reference updates it, nothing non-finite is written, and all paths count the
/// same kept elements.
fn adam_guard_keeps_overflowing_elements<T: Float + 'static>(huge: T) {
    for k in 1..=5 {
        let blocks = 7;
        let h = k * blocks;
        let hk = h * k;
        let val =
            |i: usize, s: f64| T::from(((i * 37 + 11) % 29) as f64 / 29.0 * s - 0.5 * s).unwrap();
        let theta0: Vec<T> = (0..hk).map(|i| val(i, 1.0)).collect();
        let m0: Vec<T> = (0..hk).map(|i| val(i + 3, 0.1)).collect();
        let v0: Vec<T> = (0..hk).map(|i| val(i + 5, 0.1).abs()).collect();
        let mut ad: Vec<T> = (0..2 * h).map(|i| val(i + 7, 2.0)).collect();
        // Row r = 1 % k of blocks 0 and 3: its k gradient entries overflow when squared.
        let rows = [1 % k, 3 * k + 1 % k];
        for &row in &rows {
            ad[2 * row] = huge;
        }
        let c: Vec<T> = (0..h)
            .map(|i| val(i + 13, 1.0) + T::from(0.6).unwrap())
            .collect();
        let e: Vec<T> = (0..h).map(|i| val(i + 17, 1.0)).collect();
        let gp = GatheredPair {
            scale: T::from(-0.5).unwrap(),
            ad: &ad,
            wiring: Wiring::Identity,
            c: &c,
            e: &e,
        };
        let co = AdamCoefficients {
            beta1: T::from(0.9).unwrap(),
            beta2: T::from(0.999).unwrap(),
            epsilon: T::from(1e-7).unwrap(),
            rate: T::from(1e-3).unwrap(),
            key: 0,
            first: 0,
        };
        let run = |kern: Option<Kernels>| {
            let (mut th, mut m, mut v) = (theta0.clone(), m0.clone(), v0.clone());
            let mut zad = vec![T::nan(); 2 * h];
            let state = AdamSlices::full(&mut th, &mut m, &mut v);
            let kept = match kern {
                Some(kern) => kern.backward_pair_adam(k, gp, state, co, &mut zad),
                None => reference::backward_pair_adam(k, gp, state, co, &mut zad),
            };
            (kept, th, m, v)
        };
        let (kept_r, th_r, m_r, v_r) = run(None);
        assert_eq!(
            kept_r,
            rows.len() * k,
            "k = {k}: one row of k entries per huge a"
        );
        for kern in kernels() {
            let (kept, th, m, v) = run(Some(kern));
            assert_eq!(kept, kept_r, "[{}] k = {k}: kept count", kern.path());
            for i in 0..hk {
                let overflowing = rows.contains(&(i / k));
                for (what, new, old, want) in [
                    ("θ", &th, &theta0, &th_r),
                    ("M", &m, &m0, &m_r),
                    ("V", &v, &v0, &v_r),
                ] {
                    assert!(
                        new[i].is_finite(),
                        "[{}] {what}[{i}] not finite",
                        kern.path()
                    );
                    if overflowing {
                        assert!(new[i] == old[i], "[{}] {what}[{i}] changed", kern.path());
                    } else {
                        let (a, b) = (new[i].to_f64().unwrap(), want[i].to_f64().unwrap());
                        let tol = 1e-4 * (1.0 + b.abs());
                        assert!(
                            (a - b).abs() <= tol,
                            "[{}] {what}[{i}]: {a} vs {b}",
                            kern.path()
                        );
                        assert!(
                            new[i] != old[i] || want[i] == old[i],
                            "[{}] {what}[{i}] not updated",
                            kern.path()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn adam_guard_keeps_overflowing_elements_f64() {
    adam_guard_keeps_overflowing_elements::<f64>(1e200);
}

#[test]
fn adam_guard_keeps_overflowing_elements_f32() {
    adam_guard_keeps_overflowing_elements::<f32>(1e30);
}
