//! The LODO network (paper §3, Figure 1): `G(θ) = α₀ Πᵀ Aᵀ A Π`,
//! `A = B_N P_N ⋯ B_1 P_1`, with fixed uniformly random permutations `P_l` and trainable
//! block-diagonal `B_l` of `k × k` blocks, each initialised Haar-orthogonal so `G = α₀·I` at the
//! start.
//!
//! # Hypergradient
//! With `p_l(v)` the input of `B_l` when `Πv` flows forward and `w_l(v) = (B_N P_N ⋯ B_{l+1}
//! P_{l+1})ᵀ A Π v` the cotangent at its output when `AΠv` flows back,
//!
//! $$ ∇_{B_l} ⟨g, G m⟩ = α₀ \big(w_l(m)\, p_l(g)^T + w_l(g)\, p_l(m)^T\big)
//!    \quad\text{(restricted to the blocks).} $$
//!
//! A step keeps `p_l(m)` from the previous step's `G(θ)·m` (its forward pass) and the forward
//! output `AΠm`; `w_l(m)` is recomputed during the backward sweep, beside `w_l(g)`, from the same
//! read of `B_l` (so it is never stored). A step computes one forward pass of `g` (keeping
//! `p_l(g)`), one backward sweep of both streams fused with the gradient and meta-update layer by
//! layer ([`BlockPreconditioner::backprop_meta`]; with Adam the layer gradient is never
//! materialised), and one forward and backward pass of the new `m`.
//!
//! # Permutations are gathers
//! Forward, `p_l = P_l u_{l−1}` is a gather by `π_l`. Backward, the sweep keeps
//! `z_l = B_lᵀ w_l` unpermuted and the layer below reads `w_{l−1} = P_lᵀ z_l` through the
//! inverse, `w_{l−1}[i] = z_l[π_l⁻¹(i)]`
//! ([`lodo_kernels::Kernels::layer_backward_gathered`]); the last `P_1ᵀ` is a gather of
//! the `n` outputs only. Every permutation is a read, never a store: from a random place for
//! `Random`, from `k` sequential streams for the structured families, whose sources are computed
//! block by block instead of read from an index ([`lodo_kernels::wiring::Wiring`]).
//!
//! # Weight layout
//! `θ = [B_1, …, B_N]`, each `B_l` as `h·k` numbers in [`lodo_kernels::block_diagonal`]'s layout,
//! held in `T` or, below an `f64` `T`, in `f32` ([`BlockConfig::with_weights`],
//! [`WeightPrecision`]): the kernels read each `k × k` block into `T` registers and the fused Adam
//! kernel stores the updated block back, so the arithmetic is the same either way.

use alloc::vec;
use alloc::vec::Vec;

use lodo_kernels::Kernels;
use lodo_kernels::block_diagonal::GatheredPair;
use lodo_kernels::permutation::{gather_rows, scatter_rows};
use lodo_kernels::wiring::Wiring;

use super::{Footprint, Preconditioner, WeightSink, check_alpha, check_len, check_weights, pad};
use crate::config::{PreconditionerConfig, check_hidden, check_layers, hidden_width, set_alpha0};
use crate::error::{ConfigError, StateError};
use crate::memory::{bytes_of, filled, total, with_capacity};
use crate::meta::{BlockLayerStep, MetaOptimizer, WeightLayout};
use crate::permutation::{Permutation, PermutationFamily, Wires};
use crate::precision::{Precision, WeightPrecision};
use crate::random::Stream;
use crate::real::{Real, lit};
use lodo_kernels::compact::{Bf16, F32, Stored};

/// The LODO network's hyperparameters (paper §3; defaults from the authors' `training/lodo.py`).
///
/// | symbol | meaning | default |
/// |---|---|---|
/// | `α₀` | initial learning rate, `G = α₀·I` at the start | 1.0 |
/// | `N` | layers of `A` | 16 |
/// | `k` | block size | 4 |
/// | `h` | hidden width | `k·⌈2n/k⌉` ([`hidden_width`]) |
/// | `P_l` | permutation family ([`PermutationFamily`]) | `Random` (the paper) |
///
/// and the storage policy of its state: the kept activations ([`BlockConfig::with_activations`])
/// and the weights `θ` ([`BlockConfig::with_weights`]), both full by default.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BlockConfig<T> {
    alpha0: T,
    layers: usize,
    block_size: usize,
    hidden: Option<usize>,
    #[cfg_attr(feature = "serde", serde(default))]
    permutations: PermutationFamily,
    #[cfg_attr(feature = "serde", serde(default))]
    activations: Precision,
    #[cfg_attr(feature = "serde", serde(default))]
    weights: WeightPrecision,
}

impl<T: Real> Default for BlockConfig<T> {
    fn default() -> Self {
        Self {
            alpha0: T::one(),
            layers: 16,
            block_size: 4,
            hidden: None,
            permutations: PermutationFamily::Random,
            activations: Precision::Full,
            weights: WeightPrecision::Full,
        }
    }
}

impl<T: Real> BlockConfig<T> {
    /// Sets the number of layers `N`.
    ///
    /// # Errors
    /// [`ConfigError::ZeroLayers`] if `N = 0`.
    pub fn with_layers(mut self, layers: usize) -> Result<Self, ConfigError> {
        self.layers = check_layers(layers)?;
        Ok(self)
    }

    /// Sets the block size `k`.
    ///
    /// # Errors
    /// [`ConfigError::ZeroBlockSize`] if `k = 0`.
    pub fn with_block_size(mut self, block_size: usize) -> Result<Self, ConfigError> {
        if block_size == 0 {
            return Err(ConfigError::ZeroBlockSize);
        }
        self.block_size = block_size;
        Ok(self)
    }

    /// Overrides the hidden width `h` (checked against `n` and `k` by [`BlockConfig::hidden_for`]
    /// when the preconditioner is built).
    ///
    /// # Errors
    /// [`ConfigError::TooLarge`] if `h` exceeds the `u32` permutation indices.
    pub fn with_hidden(mut self, hidden: usize) -> Result<Self, ConfigError> {
        self.hidden = check_hidden(hidden)?;
        Ok(self)
    }

    /// Sets the family the layer permutations `P_l` are drawn from.
    ///
    /// # Errors
    /// [`ConfigError::ZeroTile`] for `TiledShuffle { tile: 0 }`.
    pub fn with_permutations(mut self, family: PermutationFamily) -> Result<Self, ConfigError> {
        family.validate()?;
        self.permutations = family;
        Ok(self)
    }

    /// The permutation family.
    #[must_use]
    pub fn permutations(&self) -> PermutationFamily {
        self.permutations
    }

    /// Sets how the kept activations `p_l(m)`, `p_l(g)` (`2·N·h` numbers, the input of the
    /// hypergradient) are held between the forward passes and the backward sweep:
    /// [`Precision::Full`] or [`Precision::Bf16`] (rounded to nearest; the step `G·m` itself is
    /// computed from the unrounded values, so only the hypergradient sees the rounding).
    ///
    /// # Errors
    /// [`ConfigError::UnsupportedActivationPrecision`] for [`Precision::Q8`].
    pub fn with_activations(mut self, precision: Precision) -> Result<Self, ConfigError> {
        check_activations(precision)?;
        self.activations = precision;
        Ok(self)
    }

    /// How the kept activations are held.
    #[must_use]
    pub fn activations(&self) -> Precision {
        self.activations
    }

    /// Sets how the weights `θ` (`N·h·k` numbers, 128 per parameter at the defaults) are held
    /// between steps: [`WeightPrecision::Full`] (in `T`) or [`WeightPrecision::F32`] (in `f32`
    /// below an `f64` `T`, rounded to nearest after each update; the arithmetic stays in `f64`).
    ///
    /// # Errors
    /// [`ConfigError::UnsupportedWeightPrecision`] for `F32` unless `T` is wider than `f32`.
    pub fn with_weights(mut self, precision: WeightPrecision) -> Result<Self, ConfigError> {
        check_weight_precision::<T>(precision)?;
        self.weights = precision;
        Ok(self)
    }

    /// How the weights `θ` are held.
    #[must_use]
    pub fn weights(&self) -> WeightPrecision {
        self.weights
    }

    /// `N`.
    #[must_use]
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// `k`.
    #[must_use]
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The hidden width for `n` parameters ([`hidden_width`]): the one set, or `2n` rounded up
    /// to a multiple of the family's [`PermutationFamily::alignment`] (`k` for `Random`, so
    /// `k·⌈2n/k⌉` as in the paper; `k²` for `Shuffle`; `k·T` for `TiledShuffle`).
    ///
    /// # Errors
    /// As [`hidden_width`]; [`ConfigError::HiddenNotAligned`] for a width set that the family
    /// cannot stream; the family's own errors ([`PermutationFamily::alignment`]).
    pub fn hidden_for(&self, n: usize) -> Result<usize, ConfigError> {
        let k = self.block_size;
        if k == 0 {
            return Err(ConfigError::ZeroBlockSize);
        }
        // The default width, 2n rounded up to what the family streams at (k for Random).
        let multiple = self.permutations.alignment(k)?;
        let hidden = match self.hidden {
            Some(h) => h,
            None => n
                .checked_mul(2)
                .and_then(|t| t.div_ceil(multiple).checked_mul(multiple))
                .ok_or(ConfigError::TooLarge)?,
        };
        let h = hidden_width(n, k, self.layers, Some(hidden))?;
        if h.is_multiple_of(multiple) {
            Ok(h)
        } else {
            Err(ConfigError::HiddenNotAligned {
                hidden: h,
                multiple,
            })
        }
    }
}

impl<T: Real> PreconditionerConfig<T> for BlockConfig<T> {
    fn alpha0(&self) -> T {
        self.alpha0
    }

    fn with_alpha0(mut self, alpha0: T) -> Result<Self, ConfigError> {
        set_alpha0(&mut self.alpha0, alpha0)?;
        Ok(self)
    }
}

/// The LODO preconditioner network (paper §3): `G(θ) = α₀ Πᵀ Aᵀ A Π`, `A = B_N P_N ⋯ B_1 P_1`;
/// its hypergradient and the fused meta-update are described on [`BlockPreconditioner::backprop_meta`].
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "T: serde::Serialize",
        deserialize = "T: serde::Deserialize<'de>"
    ))
)]
pub struct BlockPreconditioner<T> {
    n: usize,
    hidden: usize,
    block_size: usize,
    alpha0: T,
    /// The family the permutations belong to (checked on restore; absent in format-1 states,
    /// which are `Random`).
    #[cfg_attr(feature = "serde", serde(default))]
    family: PermutationFamily,
    /// Saved as whole forward indices whatever the family (one format); held compactly.
    #[cfg_attr(feature = "serde", serde(rename = "permutations"))]
    wires: Vec<Wires>,
    /// `θ` in `T` ([`WeightPrecision::Full`]; empty otherwise).
    #[cfg_attr(feature = "serde", serde(default))]
    blocks: Vec<T>,
    /// `θ` in `f32` ([`WeightPrecision::F32`]; empty otherwise). Absent in states of formats
    /// 1 to 3 (always written: positional formats such as postcard cannot skip a field).
    #[cfg_attr(feature = "serde", serde(default, with = "f32_codes"))]
    blocks_f32: Vec<F32>,
    /// How the kept activations are held (absent in states of formats 1 and 2: `Full`).
    #[cfg_attr(feature = "serde", serde(default))]
    activations: Precision,
    /// How `θ` is held (absent in states of formats 1 to 3: `Full`).
    #[cfg_attr(feature = "serde", serde(default))]
    weights: WeightPrecision,
    #[cfg_attr(feature = "serde", serde(skip))]
    cache: Cache<T>,
}

/// The kept layer inputs `p_l(m)` and `p_l(g)` (`N·h` each), in `T` or bf16.
#[derive(Clone, Debug)]
enum Kept<T> {
    Full { p_m: Vec<T>, p_g: Vec<T> },
    Bf16 { p_m: Vec<Bf16>, p_g: Vec<Bf16> },
}

/// Activations kept between steps and scratch, allocated once.
#[derive(Clone, Debug)]
struct Cache<T> {
    /// `p_l(m)` and `p_l(g)` for every layer.
    kept: Kept<T>,
    /// `AΠm` of the last `apply` (the start of `w_l(m)`'s backward sweep), `h`.
    u_m: Vec<T>,
    /// Two `h`-vectors: a stream and its next value (forward passes, the backward of `apply`).
    u: Vec<T>,
    tmp: Vec<T>,
    /// The two streams of the hypergradient sweep interleaved (`2h`), and their next values.
    wad: Vec<T>,
    wad_next: Vec<T>,
    /// One layer's gradient (`h·k`), for the sink path and meta-optimizers without a fused
    /// block-layer update only ([`Preconditioner::reserve_meta_scratch`]); empty otherwise.
    grad: Vec<T>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Self {
            kept: Kept::Full {
                p_m: Vec::new(),
                p_g: Vec::new(),
            },
            u_m: Vec::new(),
            u: Vec::new(),
            tmp: Vec::new(),
            wad: Vec::new(),
            wad_next: Vec::new(),
            grad: Vec::new(),
        }
    }
}

impl<T: Real> Cache<T> {
    /// `2N·h` kept activations and `7h` numbers of scratch, allocated fallibly.
    fn new(layers: usize, h: usize, activations: Precision) -> Result<Self, ConfigError> {
        let z = |len: usize| filled(len, T::zero());
        let kept = match activations {
            Precision::Bf16 => Kept::Bf16 {
                p_m: filled(layers * h, Bf16(0))?,
                p_g: filled(layers * h, Bf16(0))?,
            },
            _ => Kept::Full {
                p_m: z(layers * h)?,
                p_g: z(layers * h)?,
            },
        };
        Ok(Self {
            kept,
            u_m: z(h)?,
            u: z(h)?,
            tmp: z(h)?,
            wad: z(2 * h)?,
            wad_next: z(2 * h)?,
            grad: Vec::new(),
        })
    }

    /// The bytes [`Cache::new`] allocates.
    fn bytes(layers: usize, h: usize, activations: Precision) -> Result<usize, ConfigError> {
        let kept = 2 * layers * h;
        total(&[
            match activations {
                Precision::Bf16 => bytes_of::<Bf16>(kept)?,
                _ => bytes_of::<T>(kept)?,
            },
            bytes_of::<T>(7 * h)?,
        ])
    }
}

/// `θ` in `f32` needs a wider `T`.
fn check_weight_precision<T>(precision: WeightPrecision) -> Result<(), ConfigError> {
    if precision == WeightPrecision::F32 && size_of::<T>() <= size_of::<f32>() {
        Err(ConfigError::UnsupportedWeightPrecision)
    } else {
        Ok(())
    }
}

/// `θ` held as `f32` codes, saved as a sequence of `f32`.
#[cfg(feature = "serde")]
mod f32_codes {
    use alloc::vec::Vec;

    use lodo_kernels::compact::F32;
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ptr_arg)]
    pub(super) fn serialize<S: Serializer>(codes: &Vec<F32>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(codes.iter().map(|c| c.0))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<F32>, D::Error> {
        Ok(Vec::<f32>::deserialize(d)?.into_iter().map(F32).collect())
    }
}

/// [`Precision::Q8`] is for Adam's moments only.
fn check_activations(precision: Precision) -> Result<(), ConfigError> {
    if precision == Precision::Q8 {
        Err(ConfigError::UnsupportedActivationPrecision)
    } else {
        Ok(())
    }
}

/// Where the backward sweep sends each layer's hypergradient.
enum Update<'s, 'm, M, T> {
    /// Handed over materialised (`(offset, θ_l, ∇θ_l)`).
    Sink(&'s mut WeightSink<'m, T>),
    /// Fused with the meta-optimizer's update.
    Meta(&'s mut M),
}

impl<T: Real> BlockPreconditioner<T> {
    /// The hidden width `h`.
    #[must_use]
    pub fn hidden(&self) -> usize {
        self.hidden
    }
    /// The block size `k`.
    #[must_use]
    pub fn block_size(&self) -> usize {
        self.block_size
    }
    /// The number of layers `N`.
    #[must_use]
    pub fn layers(&self) -> usize {
        self.wires.len()
    }
    /// `α₀`.
    #[must_use]
    pub fn alpha0(&self) -> T {
        self.alpha0
    }
    /// The family of the permutations.
    #[must_use]
    pub fn permutation_family(&self) -> PermutationFamily {
        self.family
    }
    /// How the kept activations are held ([`BlockConfig::with_activations`]).
    #[must_use]
    pub fn activations(&self) -> Precision {
        self.activations
    }
    /// How the weights `θ` are held ([`BlockConfig::with_weights`]).
    #[must_use]
    pub fn weight_precision(&self) -> WeightPrecision {
        self.weights
    }
    /// The fixed permutations `P_1, …, P_N`, whole. A structured family is held compactly
    /// (see [`PermutationFamily`]; `Shuffle` stores no index at all), so this computes their
    /// indices and inverses (`8h` bytes per layer).
    ///
    /// # Errors
    /// [`StateError::Config`] with [`ConfigError::OutOfMemory`].
    pub fn permutations(&self) -> Result<Vec<Permutation>, StateError> {
        self.wires.iter().map(Wires::to_permutation).collect()
    }

    fn layer_len(&self) -> usize {
        self.hidden * self.block_size
    }

    /// Forward `u ← A Π v`, keeping each layer input `p_l` in `keep` (`N·h` numbers: layer `l`
    /// at `l·h`), or reusing `keep[..h]` when `keep` has only `h`. Each layer is one pass of
    /// the fused kernel `p = P u`, `tmp = B p`, then the buffers swap.
    fn forward<A: Stored<T> + Send + Sync>(
        &self,
        kern: Kernels,
        v: &[T],
        u: &mut Vec<T>,
        tmp: &mut Vec<T>,
        keep: &mut [A],
    ) {
        match self.weights {
            WeightPrecision::Full => self.forward_with(&self.blocks, kern, v, u, tmp, keep),
            WeightPrecision::F32 => self.forward_with(&self.blocks_f32, kern, v, u, tmp, keep),
        }
    }

    /// [`BlockPreconditioner::forward`] with `θ` held as `W`.
    fn forward_with<A: Stored<T> + Send + Sync, W: Stored<T> + Send + Sync>(
        &self,
        theta: &[W],
        kern: Kernels,
        v: &[T],
        u: &mut Vec<T>,
        tmp: &mut Vec<T>,
        keep: &mut [A],
    ) {
        let (h, k, ll) = (self.hidden, self.block_size, self.layer_len());
        let keep_all = keep.len() == self.layers() * h;
        pad(v, u);
        for (l, wires) in self.wires.iter().enumerate() {
            let b = &theta[l * ll..(l + 1) * ll];
            let p = if keep_all {
                &mut keep[l * h..(l + 1) * h]
            } else {
                &mut keep[..h]
            };
            forward_layer(kern, k, b, wires.forward(), u, p, tmp);
            core::mem::swap(u, tmp);
        }
    }

    /// Backward `out = α₀ Πᵀ P_1ᵀ B_1ᵀ ⋯ P_Nᵀ B_Nᵀ u` with the current `θ`: one gathered
    /// transposed pass per layer (`z_l = B_lᵀ P_{l+1}ᵀ z_{l+1}`), then the `n` kept outputs of
    /// `P_1ᵀ z_1` gathered through `π_1⁻¹` and scaled.
    fn backward(&self, kern: Kernels, u: &mut Vec<T>, tmp: &mut Vec<T>, out: &mut [T]) {
        match self.weights {
            WeightPrecision::Full => self.backward_with(&self.blocks, kern, u, tmp, out),
            WeightPrecision::F32 => self.backward_with(&self.blocks_f32, kern, u, tmp, out),
        }
    }

    /// [`BlockPreconditioner::backward`] with `θ` held as `W`.
    fn backward_with<W: Stored<T> + Send + Sync>(
        &self,
        theta: &[W],
        kern: Kernels,
        u: &mut Vec<T>,
        tmp: &mut Vec<T>,
        out: &mut [T],
    ) {
        let (k, ll) = (self.block_size, self.layer_len());
        for l in (0..self.layers()).rev() {
            let b = &theta[l * ll..(l + 1) * ll];
            backward_layer(kern, k, b, cotangent_wiring(&self.wires, l), u, tmp);
            core::mem::swap(u, tmp);
        }
        kern.gather_wired(k, self.wires[0].inverse(), u, out);
        for o in out.iter_mut() {
            *o = self.alpha0 * *o;
        }
    }

    /// The hypergradient sweep: forward of `g`, then both backward streams layer by layer with
    /// each layer's gradient sent to `update` after the old `θ_l` has been used.
    fn sweep<M: MetaOptimizer<T>>(&mut self, g: &[T], update: Update<'_, '_, M, T>) -> usize {
        check_len("g", g.len(), self.n);
        let mut cache = core::mem::take(&mut self.cache);
        // The sink and a meta-optimizer without a fused form need one layer's gradient; a
        // `Lodo` reserved it ([`Preconditioner::reserve_meta_scratch`]), a direct caller gets it
        // allocated here once.
        let needs_grad = matches!(update, Update::Sink(_)) || !M::FUSES_BLOCK_LAYER;
        let scratch_len = self.meta_scratch_len();
        if needs_grad && cache.grad.len() < scratch_len {
            cache.grad.resize(scratch_len, T::zero());
        }
        let Cache {
            kept,
            u_m,
            u,
            tmp,
            wad,
            wad_next,
            grad,
        } = &mut cache;
        let mut scratch = Scratch {
            u_m,
            u,
            tmp,
            wad,
            wad_next,
            grad,
        };
        let (mut full, mut f32s) = (
            core::mem::take(&mut self.blocks),
            core::mem::take(&mut self.blocks_f32),
        );
        let kept = match (kept, self.weights) {
            (Kept::Full { p_m, p_g }, WeightPrecision::Full) => {
                self.sweep_kept(g, update, p_m, p_g, &mut full, &mut scratch)
            }
            (Kept::Bf16 { p_m, p_g }, WeightPrecision::Full) => {
                self.sweep_kept(g, update, p_m, p_g, &mut full, &mut scratch)
            }
            (Kept::Full { p_m, p_g }, WeightPrecision::F32) => {
                self.sweep_kept(g, update, p_m, p_g, &mut f32s, &mut scratch)
            }
            (Kept::Bf16 { p_m, p_g }, WeightPrecision::F32) => {
                self.sweep_kept(g, update, p_m, p_g, &mut f32s, &mut scratch)
            }
        };
        (self.blocks, self.blocks_f32) = (full, f32s);
        self.cache = cache;
        kept
    }

    /// Numbers of scratch a sweep needs for the sink and unfused meta-optimizers: one layer's
    /// gradient, and one layer of `θ` decoded into `T` when `θ` is held below `T`.
    fn meta_scratch_len(&self) -> usize {
        meta_scratch_layers(self.weights) * self.layer_len()
    }

    /// [`BlockPreconditioner::sweep`] with the kept activations stored as `A` and `θ` (taken
    /// out of `self` for the sweep) as `W`.
    fn sweep_kept<M: MetaOptimizer<T>, A: Stored<T> + Send + Sync, W: Stored<T> + Send + Sync>(
        &self,
        g: &[T],
        mut update: Update<'_, '_, M, T>,
        p_m: &[A],
        p_g: &mut [A],
        blocks: &mut [W],
        scratch: &mut Scratch<'_, T>,
    ) -> usize {
        let kern = Kernels::selected();
        let Scratch {
            u_m,
            u,
            tmp,
            wad,
            wad_next,
            grad,
        } = scratch;
        self.forward_with(blocks, kern, g, u, tmp, p_g);
        let (h, k, ll) = (self.hidden, self.block_size, self.layer_len());
        // The top cotangents w_N(m) = AΠm, w_N(g) = AΠg, interleaved; below the top layer wad
        // holds the unpermuted z_{l+1} of both streams, read through π_{l+1}⁻¹.
        for ((pair, &a), &d) in wad.chunks_exact_mut(2).zip(u_m.iter()).zip(u.iter()) {
            pair[0] = a;
            pair[1] = d;
        }
        let mut kept = 0;
        for l in (0..self.layers()).rev() {
            let layer = l * h..(l + 1) * h;
            let pair = GatheredPair {
                scale: -self.alpha0,
                ad: wad,
                wiring: cotangent_wiring(&self.wires, l),
                c: &p_g[layer.clone()],
                e: &p_m[layer],
            };
            let theta = &mut blocks[l * ll..(l + 1) * ll];
            match &mut update {
                Update::Sink(sink) => {
                    let (grad, rest) = grad.split_at_mut(ll);
                    kern.backward_pair_gradient(k, pair, &*theta, grad, wad_next);
                    match W::as_full_mut(theta) {
                        Some(theta) => sink(l * ll, theta, grad),
                        None => {
                            // θ held below T: handed over decoded, stored back rounded.
                            let buf = &mut rest[..ll];
                            for (b, &w) in buf.iter_mut().zip(theta.iter()) {
                                *b = w.load();
                            }
                            sink(l * ll, buf, grad);
                            for (w, &b) in theta.iter_mut().zip(buf.iter()) {
                                let stored = W::store(b);
                                if stored.load().is_finite() {
                                    *w = stored;
                                }
                            }
                        }
                    }
                }
                Update::Meta(meta) => {
                    let step = BlockLayerStep {
                        k,
                        pair,
                        theta,
                        zad: wad_next,
                    };
                    kept += meta.update_block_layer(kern, l * ll, step, grad);
                }
            }
            core::mem::swap(*wad, *wad_next);
        }
        kept
    }
}

/// Layers of scratch (in `T`) a sweep needs for the sink and unfused meta-optimizers: the
/// gradient, and `θ` decoded when it is held below `T`.
fn meta_scratch_layers(weights: WeightPrecision) -> usize {
    match weights {
        WeightPrecision::Full => 1,
        WeightPrecision::F32 => 2,
    }
}

/// The scratch of a sweep, borrowed from the [`Cache`] beside its kept activations.
struct Scratch<'a, T> {
    u_m: &'a mut Vec<T>,
    u: &'a mut Vec<T>,
    tmp: &'a mut Vec<T>,
    wad: &'a mut Vec<T>,
    wad_next: &'a mut Vec<T>,
    grad: &'a mut Vec<T>,
}

/// How layer `l` reads its incoming cotangent: through `π_{l+1}⁻¹`, or directly for the top
/// layer (nothing follows `B_N`). A free function so the sweep can call it while it holds `θ`
/// mutably.
fn cotangent_wiring(wires: &[Wires], l: usize) -> Wiring<'_> {
    wires.get(l + 1).map_or(Wiring::Identity, Wires::inverse)
}

/// Hidden rows from which the `parallel` feature splits a forward or backward layer across
/// rayon's threads. Below it a layer is a few microseconds and the fork-join costs more than it
/// saves (the default `h = 2n` reaches it at `n = 16,384`).
pub const PARALLEL_MIN_ROWS: usize = 1 << 15;

/// Rows per part of a layer of `h` rows: whole units of `k` rows (blocks, or Adam tiles), the
/// layer spread evenly over rayon's threads, or the whole layer below [`PARALLEL_MIN_ROWS`] or
/// on one thread.
#[cfg(feature = "parallel")]
pub(crate) fn part_rows(h: usize, k: usize) -> usize {
    let threads = rayon::current_num_threads();
    if threads < 2 || h < PARALLEL_MIN_ROWS {
        h.max(k)
    } else {
        (h / k).div_ceil(threads) * k
    }
}

/// One forward layer `p = P u`, `y = B p` ([`Kernels::layer_forward_into`]); with the
/// `parallel` feature, in parts of whole blocks on rayon's threads, each part reading all of
/// `u` through its sources ([`Wiring::part`]; the same operations per entry, so the same bits).
fn forward_layer<T: Real, A: Stored<T> + Send + Sync, W: Stored<T> + Send + Sync>(
    kern: Kernels,
    k: usize,
    b: &[W],
    wiring: Wiring<'_>,
    u: &[T],
    p: &mut [A],
    y: &mut [T],
) {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        let rows = part_rows(p.len(), k);
        p.par_chunks_mut(rows)
            .zip(y.par_chunks_mut(rows))
            .zip(b.par_chunks(rows * k))
            .enumerate()
            .for_each(|(i, ((p, y), b))| {
                let part = wiring.part(i * rows, p.len());
                kern.layer_forward_into(k, b, part, u, p, y);
            });
    }
    #[cfg(not(feature = "parallel"))]
    kern.layer_forward_into(k, b, wiring, u, p, y);
}

/// One backward layer `z = Bᵀ Q w` ([`Kernels::layer_backward_gathered`]); with the `parallel`
/// feature in parts, as [`forward_layer`].
fn backward_layer<T: Real, W: Stored<T> + Send + Sync>(
    kern: Kernels,
    k: usize,
    b: &[W],
    wiring: Wiring<'_>,
    w: &[T],
    z: &mut [T],
) {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        let rows = part_rows(z.len(), k);
        z.par_chunks_mut(rows)
            .zip(b.par_chunks(rows * k))
            .enumerate()
            .for_each(|(i, (z, b))| {
                let at = i * rows..i * rows + z.len();
                match wiring {
                    Wiring::Identity => kern.layer_backward_gathered(k, b, wiring, &w[at], z),
                    _ => kern.layer_backward_gathered(k, b, wiring.part(at.start, z.len()), w, z),
                }
            });
    }
    #[cfg(not(feature = "parallel"))]
    kern.layer_backward_gathered(k, b, wiring, w, z);
}

impl<T: Real> Preconditioner<T> for BlockPreconditioner<T> {
    type Config = BlockConfig<T>;

    fn from_config(
        n: usize,
        config: &BlockConfig<T>,
        rng: &mut Stream,
    ) -> Result<Self, ConfigError> {
        // Choose the kernel path now (reading `LODO_KERNEL` allocates), so steps never do.
        let _ = Kernels::selected();
        let k = config.block_size();
        let h = config.hidden_for(n)?;
        let layers = config.layers();
        let mut wires = with_capacity(layers)?;
        let weights = config.weights();
        check_weight_precision::<T>(weights)?;
        let full = weights == WeightPrecision::Full;
        let (mut blocks, mut blocks_f32) = if full {
            (with_capacity(layers * h * k)?, Vec::new())
        } else {
            (Vec::new(), with_capacity(layers * h * k)?)
        };
        let mut q = filled(k * k, 0.0f64)?;
        let family = config.permutations();
        for _ in 0..layers {
            wires.push(family.wires(h, k, rng)?);
            for _ in 0..h / k {
                rng.orthogonal(k, &mut q);
                if full {
                    blocks.extend(q.iter().map(|&x| lit::<T>(x)));
                } else {
                    // The f64 draw rounded once to f32 (what `F32::store` of `lit::<f64>` gives).
                    blocks_f32.extend(q.iter().map(|&x| <F32 as Stored<T>>::store(lit::<T>(x))));
                }
            }
        }
        Ok(Self {
            n,
            hidden: h,
            block_size: k,
            alpha0: config.alpha0(),
            family,
            wires,
            blocks,
            blocks_f32,
            activations: config.activations(),
            weights,
            cache: Cache::new(layers, h, config.activations())?,
        })
    }

    /// `N` permutations (their headers, and `8h` bytes of indices each for `Random`, none for
    /// `Shuffle`, `4h` for `TiledShuffle`), `θ` (`N·h·k` numbers in `T`, or `f32`
    /// with [`WeightPrecision::F32`]) and the cache: the kept layer
    /// inputs of `m` and `g` (`2N·h` numbers in `T`, or bf16), the top activation, three
    /// `h`-vectors and two interleaved `2h` streams (`7h` numbers). One layer's gradient
    /// (`h·k` numbers, and one layer of decoded `θ` with [`WeightPrecision::F32`]) comes on top
    /// for a meta-optimizer without a fused block-layer update
    /// ([`Preconditioner::meta_scratch_bytes`]).
    fn footprint(n: usize, config: &BlockConfig<T>) -> Result<Footprint, ConfigError> {
        let (layers, k) = (config.layers(), config.block_size());
        let h = config.hidden_for(n)?;
        let weights = layers * h * k; // fits: hidden_width checked (N + 1)·h·k
        check_weight_precision::<T>(config.weights())?;
        let bytes = total(&[
            bytes_of::<Wires>(layers)?,
            Wires::heap_bytes(config.permutations(), h, k)
                .and_then(|b| b.checked_mul(layers))
                .ok_or(ConfigError::TooLarge)?,
            match config.weights() {
                WeightPrecision::Full => bytes_of::<T>(weights)?,
                WeightPrecision::F32 => bytes_of::<F32>(weights)?,
            },
            Cache::<T>::bytes(layers, h, config.activations())?,
        ])?;
        Ok(Footprint { bytes, weights })
    }

    /// One layer's gradient, `h·k` numbers (and one layer of decoded `θ` with
    /// [`WeightPrecision::F32`]).
    fn meta_scratch_bytes(n: usize, config: &BlockConfig<T>) -> Result<usize, ConfigError> {
        let layer = config.hidden_for(n)? * config.block_size();
        bytes_of::<T>(layer * meta_scratch_layers(config.weights()))
    }

    fn reserve_meta_scratch(&mut self) -> Result<(), ConfigError> {
        let len = self.meta_scratch_len();
        let mut grad = with_capacity(len)?;
        grad.resize(len, T::zero());
        self.cache.grad = grad;
        Ok(())
    }

    /// `N` segments (the layers) of `h·k` weights in `k × k` blocks.
    fn weight_layout(n: usize, config: &BlockConfig<T>) -> Result<WeightLayout, ConfigError> {
        let (layers, k) = (config.layers(), config.block_size());
        let h = config.hidden_for(n)?;
        Ok(WeightLayout {
            len: layers * h * k,
            segment: h * k,
            block: k,
        })
    }

    fn layout(&self) -> WeightLayout {
        WeightLayout {
            len: self.weight_count(),
            segment: self.layer_len(),
            block: self.block_size,
        }
    }

    fn dim(&self) -> usize {
        self.n
    }

    fn alpha0(&self) -> T {
        self.alpha0
    }

    fn set_alpha0(&mut self, alpha0: T) -> Result<(), ConfigError> {
        set_alpha0(&mut self.alpha0, alpha0)
    }

    fn weight_count(&self) -> usize {
        self.layers() * self.layer_len()
    }

    fn weights_into(&self, out: &mut [T]) {
        check_len("out", out.len(), self.weight_count());
        match self.weights {
            WeightPrecision::Full => out.copy_from_slice(&self.blocks),
            WeightPrecision::F32 => {
                for (o, &w) in out.iter_mut().zip(&self.blocks_f32) {
                    *o = w.load();
                }
            }
        }
    }

    /// Rounds each weight to the nearest `f32` with [`WeightPrecision::F32`].
    fn set_weights(&mut self, w: &[T]) {
        check_len("w", w.len(), self.weight_count());
        match self.weights {
            WeightPrecision::Full => self.blocks.copy_from_slice(w),
            WeightPrecision::F32 => {
                for (s, &x) in self.blocks_f32.iter_mut().zip(w) {
                    *s = <F32 as Stored<T>>::store(x);
                }
            }
        }
    }

    fn apply(&mut self, m: &[T], out: &mut [T]) {
        check_len("m", m.len(), self.n);
        check_len("out", out.len(), self.n);
        let kern = Kernels::selected();
        let mut cache = core::mem::take(&mut self.cache);
        let Cache {
            kept, u_m, u, tmp, ..
        } = &mut cache;
        match kept {
            Kept::Full { p_m, .. } => self.forward(kern, m, u, tmp, p_m),
            Kept::Bf16 { p_m, .. } => self.forward(kern, m, u, tmp, p_m),
        }
        u_m.copy_from_slice(u);
        self.backward(kern, u, tmp, out);
        self.cache = cache;
    }

    fn matvec(&self, v: &[T], out: &mut [T]) {
        check_len("v", v.len(), self.n);
        check_len("out", out.len(), self.n);
        let kern = Kernels::selected();
        let h = self.hidden;
        let (mut u, mut tmp, mut p) = (vec![T::zero(); h], vec![T::zero(); h], vec![T::zero(); h]);
        self.forward(kern, v, &mut u, &mut tmp, &mut p);
        self.backward(kern, &mut u, &mut tmp, out);
    }

    fn backprop(&mut self, g: &[T], sink: &mut WeightSink<'_, T>) {
        self.sweep::<crate::Sgd<T>>(g, Update::Sink(sink));
    }

    /// [`Preconditioner::backprop`] fused with the meta-update: computes the hypergradient
    /// `−∇_θ⟨g, G(θ)·m⟩` for the `m` of the last `apply` and updates `θ` with `meta`, layer by
    /// layer through [`MetaOptimizer::update_block_layer`]. With [`crate::Adam`] each layer's
    /// gradient is formed block by block inside the update kernel
    /// ([`lodo_kernels::Kernels::backward_pair_adam`]): `θ`, `M` and `V` are read and written
    /// once and no gradient is stored; a meta-optimizer without a fused form gets the layer
    /// gradient materialised in scratch. Same result as `backprop` with a sink calling
    /// [`MetaOptimizer::update`], up to the rounding of the fused multiply-adds of the SIMD
    /// kernel paths (bit for bit on the reference path).
    ///
    /// Open the meta-step ([`MetaOptimizer::begin_step`]) first.
    ///
    /// # Panics
    /// If `g` does not have length `n` or `meta` does not have `weights().len()` variables.
    fn backprop_meta<M: MetaOptimizer<T>>(&mut self, g: &[T], meta: &mut M) -> usize {
        self.sweep(g, Update::Meta(meta))
    }

    /// All `n` columns at once: `X = Π I` (`h × n`) through every layer with the batched block
    /// products ([`lodo_kernels::Kernels::matmat`], matrixmultiply for wide batches).
    fn to_dense(&self) -> Vec<T> {
        let (n, h, k, ll) = (self.n, self.hidden, self.block_size, self.layer_len());
        let kern = Kernels::selected();
        let mut x = vec![T::zero(); h * n];
        let mut t = vec![T::zero(); h * n];
        for j in 0..n {
            x[j * n + j] = T::one();
        }
        let index =
            |l: usize| -> Vec<u32> { (0..h).map(|j| self.wires[l].source(j) as u32).collect() };
        // θ in T (decoded when held below it; reading is exact).
        let decoded;
        let theta: &[T] = match self.weights {
            WeightPrecision::Full => &self.blocks,
            WeightPrecision::F32 => {
                decoded = self.weights();
                &decoded
            }
        };
        for l in 0..self.layers() {
            gather_rows(&index(l), n, &x, &mut t);
            kern.matmat(k, &theta[l * ll..(l + 1) * ll], n, &t, &mut x);
        }
        for l in (0..self.layers()).rev() {
            kern.matmat_transpose(k, &theta[l * ll..(l + 1) * ll], n, &x, &mut t);
            scatter_rows(&index(l), n, &t, &mut x);
        }
        x.truncate(n * n);
        for e in &mut x {
            *e = self.alpha0 * *e;
        }
        x
    }

    fn prepare(&mut self) -> Result<(), StateError> {
        check_alpha(self.alpha0)?;
        let (n, h, k, layers) = (self.n, self.hidden, self.block_size, self.wires.len());
        if k == 0 {
            return Err(ConfigError::ZeroBlockSize.into());
        }
        if layers == 0 {
            return Err(ConfigError::ZeroLayers.into());
        }
        hidden_width(n, k, layers, Some(h))?;
        self.family.validate()?;
        for (l, wires) in self.wires.iter_mut().enumerate() {
            if wires.len() != h {
                return Err(StateError::Length {
                    what: "permutation",
                    expected: h,
                    found: wires.len(),
                });
            }
            // A saved state holds whole permutations: validate, then compact per family.
            let mut p = match core::mem::replace(wires, Wires::Shuffle { h: 0, k: 0 }) {
                Wires::Stored(p) => p,
                compact => compact.to_permutation()?,
            };
            p.rebuild_inverse(l)?;
            *wires = Wires::from_permutation(p, self.family, k).map_err(|e| match e {
                StateError::NotAPermutation { .. } => StateError::NotAPermutation { layer: l },
                e => e,
            })?;
        }
        check_weight_precision::<T>(self.weights)?;
        let count = layers * h * k;
        let (full, f32s) = match self.weights {
            WeightPrecision::Full => (count, 0),
            WeightPrecision::F32 => (0, count),
        };
        check_weights(&self.blocks, full)?;
        if self.blocks_f32.len() != f32s {
            return Err(StateError::Length {
                what: "weights (f32)",
                expected: f32s,
                found: self.blocks_f32.len(),
            });
        }
        if self.blocks_f32.iter().any(|w| !w.0.is_finite()) {
            return Err(StateError::NonFinite { what: "weights" });
        }
        let _ = Kernels::selected();
        check_activations(self.activations)?;
        let grad = self.cache.grad.len();
        self.cache = Cache::new(layers, h, self.activations)?;
        if grad > 0 {
            self.reserve_meta_scratch()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Adam, Sgd};

    fn filled(n: usize, seed: u64) -> Vec<f64> {
        (0..n)
            .map(|i| ((i as u64 * 2_654_435_761 + seed * 97) % 1000) as f64 / 500.0 - 1.0)
            .collect()
    }

    /// The fused sweep equals `backprop` + `MetaOptimizer::update` (the unfused definition):
    /// bit for bit on the reference kernel path, within a rounding bound on SIMD paths.
    fn fused_matches_unfused<M: MetaOptimizer<f64>>(make: fn(WeightLayout) -> M) {
        let n = 137;
        let config = BlockConfig::<f64>::default().with_layers(3).unwrap();
        let mut p = BlockPreconditioner::from_config(n, &config, &mut Stream::new(5)).unwrap();
        let (m, g) = (filled(n, 1), filled(n, 2));
        let mut out = vec![0.0; n];
        p.apply(&m, &mut out);
        let meta = make(p.layout());
        let (mut p_fused, mut meta_fused) = (p.clone(), meta.clone());
        let mut meta_plain = meta;
        for step in 0..3 {
            meta_plain.begin_step();
            p.backprop(&g, &mut |o, th, gr| {
                meta_plain.update(o, th, gr);
            });
            meta_fused.begin_step();
            p_fused.backprop_meta(&g, &mut meta_fused);
            let exact = Kernels::selected().path() == lodo_kernels::Path::Reference;
            for (i, (&a, &b)) in p.weights().iter().zip(&p_fused.weights()).enumerate() {
                if exact {
                    assert_eq!(a.to_bits(), b.to_bits(), "step {step}, weight {i}");
                } else {
                    assert!(
                        (a - b).abs() <= 1e-12 * (1.0 + a.abs()),
                        "step {step}, {i}: {a} {b}"
                    );
                }
            }
            p.apply(&m, &mut out);
            p_fused.apply(&m, &mut out);
        }
    }

    #[test]
    fn fused_adam_matches_unfused() {
        fused_matches_unfused(|l| Adam::new(l.len, 1e-2).unwrap());
    }

    /// With compact moments the unfused update decodes, updates and encodes the same tiles.
    #[test]
    fn fused_compact_adam_matches_unfused() {
        use crate::{AdamConfig, MetaConfig, Precision};
        fn make(l: WeightLayout, precision: Precision) -> Adam<f64> {
            let config = AdamConfig::default()
                .with_learning_rate(1e-2)
                .unwrap()
                .with_precision(precision);
            Adam::for_layout(&config, l).unwrap()
        }
        fused_matches_unfused(|l| make(l, Precision::Bf16));
        fused_matches_unfused(|l| make(l, Precision::Q8));
    }

    #[test]
    fn fused_sgd_matches_unfused() {
        fused_matches_unfused(|l| Sgd::new(l.len, 1e-2).unwrap());
    }

    #[test]
    fn batched_dense_equals_matvec_columns() {
        let n = 9;
        let config = BlockConfig::<f64>::default().with_layers(4).unwrap();
        let mut p = BlockPreconditioner::from_config(n, &config, &mut Stream::new(3)).unwrap();
        let w = filled(p.weight_count(), 4);
        p.set_weights(&w);
        let dense = p.to_dense();
        let (mut e, mut col) = (vec![0.0; n], vec![0.0; n]);
        for j in 0..n {
            e[j] = 1.0;
            p.matvec(&e, &mut col);
            e[j] = 0.0;
            for i in 0..n {
                let (a, b) = (dense[i * n + j], col[i]);
                assert!(
                    (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                    "({i},{j}): {a} vs {b}"
                );
            }
        }
    }
}
