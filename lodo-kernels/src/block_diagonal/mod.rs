//! Block-diagonal mat-vecs and the fused layer kernels of LODO's network.
//!
//! `B = diag(B_0, …, B_{h/k−1})` with `k × k` blocks stored row-major, one after another
//! (`B_b[r][c] = blocks[b·k² + r·k + c]`). One LODO layer is `u ↦ B P u` (paper §3,
//! `A = B_N P_N ⋯ B_1 P_1`); its adjoint is `w ↦ Pᵀ Bᵀ w`.
//!
//! The kernels are methods of [`Kernels`] (one handle per path; [`Kernels::selected`] is the
//! process-wide choice):
//!
//! | kernel | formula |
//! |---|---|
//! | [`Kernels::layer_forward_into`] | $p = P x,\ y = B p$ (one pass; LODO's forward layer) |
//! | [`Kernels::layer_backward_gathered`] | $z = B^T Q w$, $(Q w)_j = w_{q(j)}$ (LODO's backward layer) |
//! | [`Kernels::backward_pair_gradient`] | $z_a = B^T Q a,\ z_d = B^T Q d$ and $Δ_b = s ((Qa)_b c_b^T + (Qd)_b e_b^T)$, with $a, d$ interleaved ([`GatheredPair`]) |
//! | [`Kernels::backward_pair_adam`] | the same, then Adam on $B$ with gradient $Δ$: $B$, $M$, $V$ read and written once |
//! | [`Kernels::matmat`], [`Kernels::matmat_transpose`] | $Y = B X$, $Y = B^T X$ for many right-hand sides (matrixmultiply) |
//!
//! The kernels that read `θ` (the forward and backward layers and the two fused backward
//! kernels) take it as `&[W]`, `W:` [`Stored`]`<T>`: `T` itself, or [`crate::compact::F32`]
//! (`θ` in `f32` below an `f64` working float). Each `k × k` block is read with `W::load` into
//! registers and the arithmetic stays in `T`, so a kernel gives the same bits as with `θ`
//! decoded into `T`; the fused Adam kernel writes the new `θ` back with `W::store`.
//!
//! # Accuracy
//! The reference bodies ([`crate::reference`]) sum each output in index order `0, …, k−1` with
//! multiply-then-add. The SIMD paths keep that order but fuse each multiply-add (one rounding
//! instead of two), so for an output `y = Σ_{j<k} b_j x_j` they differ from the reference by at
//! most `2k·ε·Σ_j |b_j x_j|` (`ε` the unit round-off; each path is within `k·ε·Σ|b_j x_j|` of
//! the exact sum). The fused Adam update differs by the rounding of its two multiply-adds,
//! propagated through `√` and the division; the tests bound it relative to the size of the
//! terms. Every path is deterministic: the same path gives the same bits.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod fast;
pub(crate) mod reference;
#[cfg(target_arch = "x86_64")]
mod x86;

use num_traits::Float;

use crate::dispatch::{Kernels, Path};
use crate::gemm::{Accum, Op, gemm};
use crate::tuning::{ADAM_TILE_MAX_K, MATMAT_GEMM_MIN_COLS};
use crate::wiring::Wiring;

pub use crate::compact::Moments;
use crate::compact::Stored;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use fast::FORWARD_MAX_K;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const FORWARD_MAX_K: usize = usize::MAX;

/// The inputs of one fused backward layer of LODO's hypergradient sweep
/// ([`Kernels::backward_pair_gradient`], [`Kernels::backward_pair_adam`]).
///
/// The two incoming cotangents are stored interleaved, `ad[2i] = a_i`, `ad[2i+1] = d_i`, so the
/// permutation fetches both with one access. They are read through the wiring's sources `q`
/// ([`Wiring`]), `â_j = a_{q(j)}`, `d̂_j = d_{q(j)}` (identity: `â = a`, `d̂ = d`). The layer
/// gradient is `Δ_b = s·(â_b c_bᵀ + d̂_b e_bᵀ)`.
///
/// In LODO (see `lodo-core`'s block preconditioner) `a = z_{l+1}(m)`, `d = z_{l+1}(g)`, `q = π_{l+1}⁻¹`
/// (so `â = w_l(m)`, `d̂ = w_l(g)`), `c = p_l(g)`, `e = p_l(m)` and `s = −α₀`.
///
/// `c` and `e` are kept activations, in `T` or stored compactly (`A`, see
/// [`crate::compact::Stored`]; read as `A::load`).
#[derive(Clone, Copy, Debug)]
pub struct GatheredPair<'a, T, A = T> {
    /// The scale `s`.
    pub scale: T,
    /// The interleaved cotangents (length `2h`).
    pub ad: &'a [T],
    /// Where `â`, `d̂` are read from (an index of length `h`, a shuffle, or the identity).
    pub wiring: Wiring<'a>,
    /// Column vector of the first product (length `h`).
    pub c: &'a [A],
    /// Column vector of the second product (length `h`).
    pub e: &'a [A],
}

impl<'a, T, A> GatheredPair<'a, T, A> {
    /// The pair of outputs `start..start + len` only (a part of a layer split across threads):
    /// through a wiring, the whole layer's `ad` read at the part's sources
    /// ([`Wiring::part`]); without one, the part's own slice of `ad`.
    ///
    /// # Panics
    /// If the part lies outside the layer.
    #[must_use]
    #[track_caller]
    pub fn part(self, start: usize, len: usize) -> Self {
        let end = start + len;
        Self {
            ad: if self.wiring == Wiring::Identity {
                &self.ad[2 * start..2 * end]
            } else {
                self.ad
            },
            wiring: self.wiring.part(start, len),
            c: &self.c[start..end],
            e: &self.e[start..end],
            ..self
        }
    }
}

/// One block layer's weights `θ` and its Adam moments `M`, `V` (each `h·k` entries), in the
/// working float or stored compactly ([`Moments`]). `θ` is held as `W` ([`Stored`]: `T`
/// itself, or [`crate::compact::F32`] below an `f64` working float): read with `W::load`,
/// updated in `T`, written back with `W::store`.
#[derive(Debug)]
pub struct AdamSlices<'a, T, W = T> {
    /// The weights `θ`.
    pub theta: &'a mut [W],
    /// The moments `M` and `V`.
    pub moments: Moments<'a, T>,
}

impl<'a, T, W> AdamSlices<'a, T, W> {
    /// `θ` with moments in the working float.
    pub fn full(theta: &'a mut [W], m: &'a mut [T], v: &'a mut [T]) -> Self {
        Self {
            theta,
            moments: Moments::Full { m, v },
        }
    }
}

/// The coefficients of one Keras-Adam step: `rate = η·√(1−β₂ᵗ)/(1−β₁ᵗ)` is precomputed by
/// the caller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamCoefficients<T> {
    /// `β₁`.
    pub beta1: T,
    /// `β₂`.
    pub beta2: T,
    /// `ε`.
    pub epsilon: T,
    /// `η·√(1−β₂ᵗ)/(1−β₁ᵗ)`.
    pub rate: T,
    /// The key of this call's stochastic rounding ([`crate::compact::noise`]; used by
    /// [`Moments::Bf16`] only): a different key each step and layer.
    pub key: u32,
    /// The index in its layer of the call's first entry of `θ`: 0 for a whole layer, the
    /// part's start for a part of a layer split across threads. Entry `i` of the call rounds
    /// with [`crate::compact::noise`]`(key, first + i)`, so a layer gives the same bits
    /// however it is split ([`Moments::Bf16`] only).
    pub first: usize,
}

/// The shape assertions shared by the entry points and the reference bodies.
pub(crate) mod check {
    use super::{AdamSlices, GatheredPair};

    /// `k > 0`, `x` a multiple of `k`, and `blocks = x·k` (the `x/k` blocks of `k²` numbers).
    #[track_caller]
    #[inline]
    pub(crate) fn square(k: usize, blocks: usize, x: usize) {
        assert!(k > 0, "block size k must be positive");
        assert_eq!(x % k, 0, "vector length must be a multiple of k");
        assert_eq!(
            Some(blocks),
            x.checked_mul(k),
            "blocks must hold (h/k)·k² = h·k numbers"
        );
    }

    /// A vector called `what` has length `expected`.
    #[track_caller]
    #[inline]
    pub(crate) fn vec_eq(what: &str, expected: usize, found: usize) {
        assert!(
            expected == found,
            "{what} has length {found}, expected {expected}"
        );
    }

    /// Shapes of a fused backward layer: `θ` and the gradient or moments have `h·k` numbers.
    #[track_caller]
    #[inline]
    pub(crate) fn gathered_shapes<T, A>(
        k: usize,
        pair: &GatheredPair<'_, T, A>,
        theta: usize,
        zad: usize,
    ) {
        let h = pair.c.len();
        square(k, theta, h);
        // Through a wiring, `â`, `d̂` are read at the sources of a part of a layer from the whole
        // layer's `ad` (each read bounds-checked); read directly, `ad` is the part's own.
        if pair.wiring == crate::wiring::Wiring::Identity {
            vec_eq("ad", 2 * h, pair.ad.len());
        }
        vec_eq("e", h, pair.e.len());
        pair.wiring.check(k, h);
        vec_eq("zad", 2 * h, zad);
    }

    /// Shapes of the fused Adam layer: as [`gathered_shapes`], and `M`, `V` as long as `θ`
    /// (compact moments: `k ≤` [`crate::compact::COMPACT_MAX_K`], one scale pair per tile).
    #[track_caller]
    #[inline]
    pub(crate) fn adam_shapes<T, A, W>(
        k: usize,
        pair: &GatheredPair<'_, T, A>,
        state: &AdamSlices<'_, T, W>,
        zad: usize,
    ) {
        gathered_shapes(k, pair, state.theta.len(), zad);
        crate::compact::check(&state.moments, state.theta.len(), k);
    }
}

/// Generates the `#[target_feature]` wrappers of one instruction set around the fast bodies,
/// each with a `k = 4` copy (fully unrolled) and a generic-`k` copy.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! simd_bodies {
    ($features:literal) => {
        use num_traits::Float;

        use $crate::block_diagonal::fast;
        use $crate::block_diagonal::{AdamCoefficients, AdamSlices, GatheredPair};
        use $crate::compact::Stored;
        use $crate::wiring::Wiring;

        /// Fused multiply-adds need std's `mul_add` (libm's is a software routine).
        const FMA: bool = cfg!(feature = "std");

        /// [`fast::matvec`] with the instruction set enabled.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn matvec<T: Float>(k: usize, blocks: &[T], x: &[T], y: &mut [T]) {
            if k == 4 {
                fast::matvec::<T, FMA, 4>(k, blocks, x, y)
            } else {
                fast::matvec::<T, FMA, 0>(k, blocks, x, y)
            }
        }

        /// [`fast::layer_forward_into`] with the instruction set enabled.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn layer_forward_into<T: Float, A: Stored<T>, W: Stored<T>>(
            k: usize,
            blocks: &[W],
            wiring: Wiring<'_>,
            x: &[T],
            p: &mut [A],
            y: &mut [T],
        ) {
            if k == 4 {
                fast::layer_forward_into::<T, A, W, FMA, 4>(k, blocks, wiring, x, p, y)
            } else {
                fast::layer_forward_into::<T, A, W, FMA, 0>(k, blocks, wiring, x, p, y)
            }
        }

        /// [`fast::layer_backward`] with the instruction set enabled.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn layer_backward<T: Float>(
            k: usize,
            blocks: &[T],
            perm: &[u32],
            w: &[T],
            y: &mut [T],
        ) {
            if k == 4 {
                fast::layer_backward::<T, FMA, 4>(k, blocks, perm, w, y)
            } else {
                fast::layer_backward::<T, FMA, 0>(k, blocks, perm, w, y)
            }
        }

        /// [`fast::layer_backward_gathered`] with the instruction set enabled.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn layer_backward_gathered<T: Float, W: Stored<T>>(
            k: usize,
            blocks: &[W],
            wiring: Wiring<'_>,
            w: &[T],
            z: &mut [T],
        ) {
            if k == 4 {
                fast::layer_backward_gathered::<T, W, FMA, 4>(k, blocks, wiring, w, z)
            } else {
                fast::layer_backward_gathered::<T, W, FMA, 0>(k, blocks, wiring, w, z)
            }
        }

        /// [`fast::backward_pair_gradient`] with the instruction set enabled.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn backward_pair_gradient<T: Float, A: Stored<T>, W: Stored<T>>(
            k: usize,
            pair: GatheredPair<'_, T, A>,
            theta: &[W],
            grad: &mut [T],
            zad: &mut [T],
        ) {
            if k == 4 {
                fast::backward_pair_gradient::<T, A, W, FMA, 4>(k, pair, theta, grad, zad)
            } else {
                fast::backward_pair_gradient::<T, A, W, FMA, 0>(k, pair, theta, grad, zad)
            }
        }

        /// [`fast::backward_pair_adam`] with the instruction set enabled.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn backward_pair_adam<T: Float, A: Stored<T>, W: Stored<T>>(
            k: usize,
            pair: GatheredPair<'_, T, A>,
            state: AdamSlices<'_, T, W>,
            co: AdamCoefficients<T>,
            zad: &mut [T],
        ) -> usize {
            if k == 4 {
                fast::backward_pair_adam::<T, A, W, FMA, 4>(k, pair, state, co, zad)
            } else {
                fast::backward_pair_adam::<T, A, W, FMA, 0>(k, pair, state, co, zad)
            }
        }
    };
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use simd_bodies;

/// Runs `$name` on the path `$kernels` selects for `$T`.
macro_rules! dispatch {
    ($kernels:expr, $T:ty, $name:ident($($arg:expr),* $(,)?)) => {
        match $kernels.path_for::<$T>() {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => {
                // SAFETY: a `Kernels` holds `Path::Avx512` only after `Path::is_available`
                // confirmed avx512f + avx512vl + avx512bw + avx512dq + avx2 + fma
                // (`Kernels::new`, or `dispatch::selected` via `initial`/`force`); those are
                // exactly the features this body enables.
                unsafe { x86::avx512::$name($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => {
                // SAFETY: a `Kernels` holds `Path::Avx2` only after `Path::is_available`
                // confirmed avx2 + fma (`Kernels::new`, or `dispatch::selected`), the features
                // this body enables.
                unsafe { x86::avx2::$name($($arg),*) }
            }
            #[cfg(target_arch = "aarch64")]
            Path::Neon => {
                // SAFETY: a `Kernels` holds `Path::Neon` only after `Path::is_available`
                // confirmed neon (`Kernels::new`, or `dispatch::selected`).
                unsafe { aarch64::neon::$name($($arg),*) }
            }
            _ => reference::$name($($arg),*),
        }
    };
}

impl Kernels {
    /// `y = B x`: `y_b[r] = Σ_c B_b[r][c] x_b[c]`.
    ///
    /// Not used by the optimizer (its layers are [`Kernels::layer_forward_into`] and
    /// [`Kernels::layer_backward_gathered`]); kept for the benches' baseline.
    ///
    /// # Panics
    /// - if `k == 0` or `x.len()` is not a multiple of `k`;
    /// - if `blocks.len() != x.len() · k` or `y.len() != x.len()`.
    #[doc(hidden)]
    #[track_caller]
    pub fn matvec<T: Float + 'static>(self, k: usize, blocks: &[T], x: &[T], y: &mut [T]) {
        check::square(k, blocks.len(), x.len());
        check::vec_eq("y", x.len(), y.len());
        #[cfg(target_arch = "x86_64")]
        if crate::tuning::MATVEC_AVX512_RUNS_AVX2 && self.path_for::<T>() == Path::Avx512 {
            // SAFETY: a `Kernels` holds `Path::Avx512` only after `Path::is_available`
            // confirmed avx512f + avx512vl + avx512bw + avx512dq + avx2 + fma, which include the
            // avx2 + fma this body enables.
            return unsafe { x86::avx2::matvec::<T>(k, blocks, x, y) };
        }
        dispatch!(self, T, matvec(k, blocks, x, y));
    }

    /// One forward layer, out of place and in one pass: `p = P x` (kept: it is the layer input
    /// the hypergradient needs), `y = B p`, with `(P x)_j = x_{s(j)}` read through `wiring`
    /// ([`Wiring`]: a stored index, or a perfect shuffle computed while streaming).
    ///
    /// `blocks`, `p`, `y` (and an index) may cover a contiguous run of whole blocks of the layer
    /// while `x` is the whole input: a layer can be computed in parts (in parallel), each part
    /// reading `x` only through its sources ([`Wiring::part`]).
    ///
    /// # Panics
    /// - if `k == 0` or `p.len()` is not a multiple of `k`; if `blocks.len() != p.len() · k`;
    /// - if `y` does not have the length of `p`, or the wiring does not fit it (an index of
    ///   another length; a shuffle whose shape is not whole blocks, see [`Wiring`]);
    /// - if a source is out of bounds of `x`.
    ///
    /// # Examples
    /// ```
    /// use lodo_kernels::{Kernels, wiring::Wiring};
    /// // P swaps the two entries; B = [[1, 2], [3, 4]].
    /// let (mut p, mut y) = ([0.0; 2], [0.0; 2]);
    /// Kernels::selected().layer_forward_into(
    ///     2, &[1.0, 2.0, 3.0, 4.0], Wiring::Index(&[1, 0]), &[10.0, 1.0], &mut p, &mut y);
    /// assert_eq!(p, [1.0, 10.0]);
    /// assert_eq!(y, [21.0, 43.0]);
    /// ```
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn layer_forward_into<T: Float + 'static, A: Stored<T>, W: Stored<T>>(
        self,
        k: usize,
        blocks: &[W],
        wiring: Wiring<'_>,
        x: &[T],
        p: &mut [A],
        y: &mut [T],
    ) {
        check::square(k, blocks.len(), p.len());
        check::vec_eq("y", p.len(), y.len());
        if wiring == Wiring::Identity {
            check::vec_eq("x", p.len(), x.len());
        }
        wiring.check(k, p.len());
        if k > FORWARD_MAX_K {
            return reference::layer_forward_into(k, blocks, wiring, x, p, y);
        }
        dispatch!(self, T, layer_forward_into(k, blocks, wiring, x, p, y));
    }

    /// One backward (adjoint) layer with the permutation as a scatter on the way out:
    /// `y = Pᵀ Bᵀ w`, i.e. `y[π(b·k + c)] = Σ_r B_b[r][c] w_b[r]`.
    ///
    /// Not used by the optimizer, which runs its backward layers as gathers
    /// ([`Kernels::layer_backward_gathered`]); kept for the benches' scatter-vs-gather baseline.
    ///
    /// # Panics
    /// - if `k == 0` or `w.len()` is not a multiple of `k`; if `blocks.len() != w.len() · k`;
    /// - if `perm` or `y` does not have the length of `w`; if an index of `perm` is out of bounds.
    #[doc(hidden)]
    #[track_caller]
    pub fn layer_backward<T: Float + 'static>(
        self,
        k: usize,
        blocks: &[T],
        perm: &[u32],
        w: &[T],
        y: &mut [T],
    ) {
        check::square(k, blocks.len(), w.len());
        check::vec_eq("perm", w.len(), perm.len());
        check::vec_eq("y", w.len(), y.len());
        dispatch!(self, T, layer_backward(k, blocks, perm, w, y));
    }

    /// One backward (adjoint) layer with the permutation applied on the way in, as a gather:
    /// `z = Bᵀ Q w`, `z_b[c] = Σ_r B_b[r][c] w[q(b·k + r)]`, `q` the sources of `wiring`.
    ///
    /// LODO's backward sweep `w_{l−1} = P_lᵀ B_lᵀ w_l` is run as `z_l = B_lᵀ P_{l+1}ᵀ z_{l+1}`
    /// with `P_{l+1}ᵀ` a gather by `π_{l+1}⁻¹`: every permutation is then a read (from a random
    /// place, which a prefetch can cover, or from `k` streams for a shuffle) instead of a store
    /// to one (which costs a read and a write of a whole cache line).
    ///
    /// `blocks` and `z` may cover a contiguous run of whole blocks while `w` is the whole input
    /// (a layer computed in parts, as [`Kernels::layer_forward_into`]); with
    /// [`Wiring::Identity`], `w` is the part's own input.
    ///
    /// # Panics
    /// - if `k == 0` or `z.len()` is not a multiple of `k`; if `blocks.len() != z.len() · k`;
    /// - if the wiring does not fit `z` (with the identity: if `w` does not have the length of
    ///   `z`); if a source is out of bounds of `w`.
    ///
    /// # Examples
    /// ```
    /// use lodo_kernels::{Kernels, wiring::Wiring};
    /// // Q swaps the two entries; Bᵀ = [[1, 3], [2, 4]].
    /// let mut z = [0.0; 2];
    /// Kernels::selected().layer_backward_gathered(
    ///     2, &[1.0, 2.0, 3.0, 4.0], Wiring::Index(&[1, 0]), &[10.0, 1.0], &mut z);
    /// assert_eq!(z, [31.0, 42.0]);
    /// ```
    #[track_caller]
    pub fn layer_backward_gathered<T: Float + 'static, W: Stored<T>>(
        self,
        k: usize,
        blocks: &[W],
        wiring: Wiring<'_>,
        w: &[T],
        z: &mut [T],
    ) {
        check::square(k, blocks.len(), z.len());
        if wiring == Wiring::Identity {
            check::vec_eq("w", z.len(), w.len());
        }
        wiring.check(k, z.len());
        dispatch!(self, T, layer_backward_gathered(k, blocks, wiring, w, z));
    }

    /// One backward layer of LODO's hypergradient sweep with its gradient materialised: with
    /// the gathered cotangents `â`, `d̂` of `pair` ([`GatheredPair`]),
    ///
    /// $$ z_a = θ^T \hat a,\quad z_d = θ^T \hat d \ \text{(interleaved into zad)},\qquad
    ///    \mathrm{grad}_b = s (\hat a_b c_b^T + \hat d_b e_b^T). $$
    ///
    /// The unfused form of [`Kernels::backward_pair_adam`] (for SGD and for handing the
    /// gradient over).
    ///
    /// # Panics
    /// - if `k == 0`, `h = c.len()` is not a multiple of `k`, or `ad`, `zad` do not have `2h`
    ///   numbers, `e` `h`, `θ` and `grad` `h·k`, or the wiring does not fit `h`;
    /// - if a source is out of bounds.
    ///
    /// # Examples
    /// ```
    /// use lodo_kernels::{Kernels, wiring::Wiring};
    /// use lodo_kernels::block_diagonal::GatheredPair;
    /// // h = 2, k = 1: θ = diag(2, 3); the index swaps the two entries.
    /// let pair = GatheredPair { scale: 1.0, ad: &[1.0, 10.0, 2.0, 20.0], wiring: Wiring::Index(&[1, 0]),
    ///     c: &[1.0, 1.0], e: &[0.0, 1.0] };
    /// let (mut grad, mut zad) = ([0.0; 2], [0.0; 4]);
    /// Kernels::selected().backward_pair_gradient(1, pair, &[2.0, 3.0], &mut grad, &mut zad);
    /// assert_eq!(zad, [4.0, 40.0, 3.0, 30.0]); // â = (2, 1), d̂ = (20, 10)
    /// assert_eq!(grad, [2.0, 11.0]);            // â c + d̂ e
    /// ```
    #[track_caller]
    pub fn backward_pair_gradient<T: Float + 'static, A: Stored<T>, W: Stored<T>>(
        self,
        k: usize,
        pair: GatheredPair<'_, T, A>,
        theta: &[W],
        grad: &mut [T],
        zad: &mut [T],
    ) {
        check::gathered_shapes(k, &pair, theta.len(), zad.len());
        check::vec_eq("grad", theta.len(), grad.len());
        if k > ADAM_TILE_MAX_K {
            return reference::backward_pair_gradient(k, pair, theta, grad, zad);
        }
        dispatch!(self, T, backward_pair_gradient(k, pair, theta, grad, zad));
    }

    /// The fused LODO layer step: [`Kernels::backward_pair_gradient`] with the **old** `θ`,
    /// then the Keras-Adam update with that gradient `g`, block by block (`g` is never stored
    /// beyond a small tile),
    ///
    /// $$ M \gets β_1 M + (1-β_1) g,\quad V \gets β_2 V + (1-β_2) g^2,\quad
    ///    θ \gets θ - \mathrm{rate} \cdot \frac{M}{\sqrt V + ε}, $$
    ///
    /// reading and writing each of `θ`, `M`, `V` once. `rate = η√(1−β₂ᵗ)/(1−β₁ᵗ)`.
    ///
    /// Compact moments ([`Moments::Bf16`], [`Moments::Q8`]) are decoded tile by tile
    /// ([`crate::compact::adam_tile`] entries) into `T`, updated as above and encoded again, in
    /// the same way on every path ([`crate::compact`]): the paths differ only by the fused
    /// multiply-adds of the update, which can move an entry across a rounding boundary of its
    /// code (one code step, `2⁻⁴` relative for q8, `2⁻⁸` for bf16).
    ///
    /// **Guard**: an element whose new `M`, `V` or `θ` would be NaN or ±∞ (an overflowing
    /// gradient, say), or whose new `V` exceeds [`crate::compact::BF16_MAX`] with compact
    /// moments, keeps its three old values; the return value counts such elements, so the
    /// caller can tell a clean update (0) from a partial one. Nothing non-finite is ever written.
    ///
    /// # Panics
    /// As [`Kernels::backward_pair_gradient`], with `M`, `V` in place of `grad`; compact moments
    /// also need `k ≤` [`crate::compact::COMPACT_MAX_K`] and, for q8, one scale pair per tile.
    ///
    /// # Examples
    /// ```
    /// use lodo_kernels::{Kernels, wiring::Wiring};
    /// use lodo_kernels::block_diagonal::{AdamCoefficients, AdamSlices, GatheredPair};
    /// let (mut theta, mut m, mut v) = ([2.0], [0.0], [0.0]);
    /// let mut zad = [0.0; 2];
    /// let pair = GatheredPair { scale: 1.0, ad: &[1.0, 3.0], wiring: Wiring::Identity, c: &[1.0], e: &[0.0] };
    /// let co = AdamCoefficients { beta1: 0.5, beta2: 0.75, epsilon: 0.0, rate: 1.0, key: 0, first: 0 };
    /// let state = AdamSlices::full(&mut theta, &mut m, &mut v);
    /// let kept = Kernels::selected().backward_pair_adam(1, pair, state, co, &mut zad);
    /// assert_eq!(kept, 0);                  // every new value finite
    /// assert_eq!(zad, [2.0, 6.0]);          // old θ = 2
    /// assert_eq!((m, v), ([0.5], [0.25]));  // g = 1
    /// assert_eq!(theta, [1.0]);             // 2 − 0.5/√0.25
    /// ```
    #[track_caller]
    pub fn backward_pair_adam<T: Float + 'static, A: Stored<T>, W: Stored<T>>(
        self,
        k: usize,
        pair: GatheredPair<'_, T, A>,
        state: AdamSlices<'_, T, W>,
        coefficients: AdamCoefficients<T>,
        zad: &mut [T],
    ) -> usize {
        check::adam_shapes(k, &pair, &state, zad.len());
        if k > ADAM_TILE_MAX_K {
            return reference::backward_pair_adam(k, pair, state, coefficients, zad);
        }
        dispatch!(
            self,
            T,
            backward_pair_adam(k, pair, state, coefficients, zad)
        )
    }

    /// `Y = B X` for `cols` right-hand sides at once: `X` and `Y` are `h × cols`, row-major
    /// (`X[i][j] = x[i·cols + j]`). Each block is one `k × k` by `k × cols` product, done by
    /// matrixmultiply from [`crate::tuning::MATMAT_GEMM_MIN_COLS`] columns on (SIMD paths), by
    /// plain loops otherwise. Used for dense materialisation of `G`.
    ///
    /// # Panics
    /// - if `cols == 0` or `x.len()` is not a multiple of `cols`;
    /// - if `k == 0` or `h = x.len() / cols` is not a multiple of `k`;
    /// - if `blocks.len() != h · k` or `y.len() != x.len()`.
    ///
    /// # Examples
    /// ```
    /// use lodo_kernels::Kernels;
    /// // B = [[1, 2], [3, 4]] applied to the two columns of the identity.
    /// let mut y = [0.0; 4];
    /// Kernels::selected().matmat(2, &[1.0, 2.0, 3.0, 4.0], 2, &[1.0, 0.0, 0.0, 1.0], &mut y);
    /// assert_eq!(y, [1.0, 2.0, 3.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn matmat<T: Float + 'static>(
        self,
        k: usize,
        blocks: &[T],
        cols: usize,
        x: &[T],
        y: &mut [T],
    ) {
        self.matmat_op(Op::NoTranspose, k, blocks, cols, x, y);
    }

    /// `Y = Bᵀ X` for `cols` right-hand sides (layout as [`Kernels::matmat`]).
    ///
    /// # Panics
    /// As [`Kernels::matmat`].
    ///
    /// # Examples
    /// ```
    /// use lodo_kernels::Kernels;
    /// // Bᵀ = [[1, 3], [2, 4]] applied to the two columns of the identity.
    /// let mut y = [0.0; 4];
    /// Kernels::selected().matmat_transpose(2, &[1.0, 2.0, 3.0, 4.0], 2, &[1.0, 0.0, 0.0, 1.0], &mut y);
    /// assert_eq!(y, [1.0, 3.0, 2.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn matmat_transpose<T: Float + 'static>(
        self,
        k: usize,
        blocks: &[T],
        cols: usize,
        x: &[T],
        y: &mut [T],
    ) {
        self.matmat_op(Op::Transpose, k, blocks, cols, x, y);
    }

    #[track_caller]
    fn matmat_op<T: Float + 'static>(
        self,
        op: Op,
        k: usize,
        blocks: &[T],
        cols: usize,
        x: &[T],
        y: &mut [T],
    ) {
        assert!(cols > 0, "matmat: cols must be positive");
        assert_eq!(x.len() % cols, 0, "matmat: x.len() must be h·cols");
        let h = x.len() / cols;
        check::square(k, blocks.len(), h);
        check::vec_eq("y", x.len(), y.len());
        let per_block = k * cols;
        let use_gemm = cols >= MATMAT_GEMM_MIN_COLS && self.path() != Path::Reference;
        for ((bb, xb), yb) in blocks
            .chunks_exact(k * k)
            .zip(x.chunks_exact(per_block))
            .zip(y.chunks_exact_mut(per_block))
        {
            if use_gemm {
                gemm(Accum::Replace, op, k, k, cols, T::one(), bb, xb, yb);
            } else {
                for r in 0..k {
                    for j in 0..cols {
                        let mut acc = T::zero();
                        for c in 0..k {
                            let brc = match op {
                                Op::NoTranspose => bb[r * k + c],
                                Op::Transpose => bb[c * k + r],
                            };
                            acc = acc + brc * xb[c * cols + j];
                        }
                        yb[r * cols + j] = acc;
                    }
                }
            }
        }
    }
}
