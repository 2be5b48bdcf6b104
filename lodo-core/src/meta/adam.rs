//! Adam in the authors' (Keras) form: the paper's meta-optimizer, and a first-order optimizer in
//! its own right.

use alloc::vec;
use alloc::vec::Vec;

use lodo_kernels::Kernels;
use lodo_kernels::block_diagonal::{AdamCoefficients, AdamSlices, GatheredPair, Moments};
use lodo_kernels::compact::{
    BF16_MAX, COMPACT_MAX_K, Stored, adam_tile, decode_tile, encode_tile, noise, q8_scales,
};
use lodo_kernels::tuning::ADAM_TILE;

use super::{BlockLayerStep, MetaConfig, MetaOptimizer, WeightLayout, check_learning_rate};
use crate::error::{ConfigError, StateError, StepError};
use crate::memory::{bytes_of, filled, total};
use crate::optimizer::{Optimizer, check_inputs};
use crate::precision::Precision;
use crate::real::{Real, first_non_finite, lit, powf};

/// Adam's hyperparameters: learning rate `η`, decays `β₁`, `β₂` and `ε`.
///
/// Defaults are Keras's and the authors': `η = 1e−3`, `β₁ = 0.9`, `β₂ = 0.999`, `ε = 1e−7`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AdamConfig<T> {
    learning_rate: T,
    beta1: T,
    beta2: T,
    epsilon: T,
    /// How `M` and `V` are stored ([`Precision`]; absent in configurations of 0.1 and 0.2).
    #[cfg_attr(feature = "serde", serde(default))]
    precision: Precision,
}

impl<T: Real> Default for AdamConfig<T> {
    fn default() -> Self {
        Self {
            learning_rate: lit(1e-3),
            beta1: lit(0.9),
            beta2: lit(0.999),
            epsilon: lit(1e-7),
            precision: Precision::Full,
        }
    }
}

impl<T: Real> AdamConfig<T> {
    /// Sets `β₁`, `β₂` and `ε`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidBeta1`] or [`ConfigError::InvalidBeta2`] unless in `[0, 1)`,
    /// [`ConfigError::InvalidEpsilon`] unless `ε` is finite and positive.
    pub fn with_moments(mut self, beta1: T, beta2: T, epsilon: T) -> Result<Self, ConfigError> {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self.epsilon = epsilon;
        self.validate()?;
        Ok(self)
    }

    /// Sets how the moments `M`, `V` are stored between steps ([`Precision`]; the arithmetic
    /// stays in `T`). Compact moments need the LODO network's block size `k ≤ 22`, checked by
    /// [`crate::Lodo::new`].
    #[must_use]
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// How the moments are stored.
    #[must_use]
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// `β₁`.
    #[must_use]
    pub fn beta1(&self) -> T {
        self.beta1
    }

    /// `β₂`.
    #[must_use]
    pub fn beta2(&self) -> T {
        self.beta2
    }

    /// `ε`.
    #[must_use]
    pub fn epsilon(&self) -> T {
        self.epsilon
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let unit = |x: T| x >= T::zero() && x < T::one();
        check_learning_rate(self.learning_rate)?;
        if !unit(self.beta1) {
            return Err(ConfigError::InvalidBeta1);
        }
        if !unit(self.beta2) {
            return Err(ConfigError::InvalidBeta2);
        }
        if !(self.epsilon.is_finite() && self.epsilon > T::zero()) {
            return Err(ConfigError::InvalidEpsilon);
        }
        Ok(())
    }
}

impl<T: Real> MetaConfig<T> for AdamConfig<T> {
    fn learning_rate(&self) -> T {
        self.learning_rate
    }

    fn with_learning_rate(mut self, learning_rate: T) -> Result<Self, ConfigError> {
        check_learning_rate(learning_rate)?;
        self.learning_rate = learning_rate;
        Ok(self)
    }
}

/// Adam's moments when stored compactly ([`Precision::Bf16`], [`Precision::Q8`]; see
/// [`lodo_kernels::compact`] for the codes).
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AdamMoments {
    /// Not compact: the moments are Adam's `m`, `v` in `T`.
    #[default]
    Full,
    /// bf16 bits of `M` and `V`.
    Bf16 {
        /// `M`.
        m: Vec<u16>,
        /// `V`.
        v: Vec<u16>,
    },
    /// 8-bit codes of `M` and `V` and each tile's `[max|M|, max V]`.
    Q8 {
        /// `M`'s codes.
        m: Vec<u8>,
        /// `V`'s codes.
        v: Vec<u8>,
        /// Per tile of each segment, in order.
        scales: Vec<[f32; 2]>,
    },
}

/// Adam in the authors' (Keras) form, with bias correction folded into the rate:
///
/// $$ t \gets t+1,\quad M \gets β_1 M + (1-β_1) g,\quad V \gets β_2 V + (1-β_2) g^2,\quad
///    θ \gets θ - η \frac{\sqrt{1-β_2^t}}{1-β_1^t} \frac{M}{\sqrt V + ε}. $$
///
/// The step counter `t` saturates at `u64::MAX` (where the bias correction is 1 to the last bit).
/// The moments are held in `T`, or compactly ([`AdamConfig::with_precision`]): then each tile
/// of a segment of weights is decoded into `T`, updated and encoded again, the same way in the
/// fused kernel and in [`MetaOptimizer::update`].
///
/// Saved fields: `learning_rate, beta1, beta2, epsilon, t, m, v` (as in formats 1 and 2; `m`,
/// `v` empty when compact) and `compact` ([`AdamMoments`]; `"Full"` or absent for moments in `T`).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "T: serde::Serialize",
        deserialize = "T: serde::Deserialize<'de>"
    ))
)]
pub struct Adam<T> {
    learning_rate: T,
    beta1: T,
    beta2: T,
    epsilon: T,
    t: u64,
    m: Vec<T>,
    v: Vec<T>,
    #[cfg_attr(feature = "serde", serde(default))]
    compact: AdamMoments,
    /// The layout of the weights (set on construction and restore).
    #[cfg_attr(feature = "serde", serde(skip, default = "unset_layout"))]
    layout: WeightLayout,
    /// The rate of the open step; `None` before the first (recomputed on restore).
    #[cfg_attr(feature = "serde", serde(skip))]
    rate: Option<T>,
    /// `(t, rate)` before the open step, for [`MetaOptimizer::cancel_step`].
    #[cfg_attr(feature = "serde", serde(skip))]
    before: (u64, Option<T>),
}

#[cfg(feature = "serde")]
fn unset_layout() -> WeightLayout {
    WeightLayout::flat(0)
}

/// The number of q8 scale pairs of `layout`: one per tile of each segment.
fn scale_count(layout: WeightLayout) -> usize {
    let full = layout.len / layout.segment;
    let rest = layout.len % layout.segment;
    full * q8_scales(layout.segment, layout.block) + q8_scales(rest, layout.block)
}

impl<T: Real> Adam<T> {
    /// Adam for `dim` variables with learning rate `η` and the Keras defaults.
    ///
    /// # Errors
    /// [`ConfigError::InvalidLearningRate`] unless `η` is finite and positive.
    pub fn new(dim: usize, learning_rate: T) -> Result<Self, ConfigError> {
        let config = AdamConfig::default().with_learning_rate(learning_rate)?;
        Self::from_config(&config, dim)
    }

    /// `η·√(1−β₂ᵗ)/(1−β₁ᵗ)`, the step size of step `t` (t ≥ 1).
    ///
    /// `βᵗ` comes from the `libm` crate in every build ([`powf`]), never from the platform's
    /// `pow`, so the rate has the same bits on every platform, with or without std.
    fn rate_at(&self, t: u64) -> T {
        let tt: T = lit(t as f64);
        self.learning_rate * (T::one() - powf(self.beta2, tt)).sqrt()
            / (T::one() - powf(self.beta1, tt))
    }

    /// The coefficients of the open step (`rate` as in [`MetaOptimizer::update`]) for segment
    /// `segment` (the key of its stochastic rounding).
    fn coefficients(&self, segment: usize) -> AdamCoefficients<T> {
        AdamCoefficients {
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            rate: self.rate.unwrap_or_else(|| self.rate_at(self.t.max(1))),
            key: noise(self.t as u32, segment as u32),
            first: 0,
        }
    }

    /// Steps taken.
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Its hyperparameters.
    #[must_use]
    pub fn config(&self) -> AdamConfig<T> {
        AdamConfig {
            learning_rate: self.learning_rate,
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            precision: self.precision(),
        }
    }

    /// How the moments are stored.
    #[must_use]
    pub fn precision(&self) -> Precision {
        match self.compact {
            AdamMoments::Full => Precision::Full,
            AdamMoments::Bf16 { .. } => Precision::Bf16,
            AdamMoments::Q8 { .. } => Precision::Q8,
        }
    }

    /// The first and second moments `M`, `V`, decoded into `T` (allocates `2·dim` numbers).
    #[must_use]
    pub fn moments(&self) -> (Vec<T>, Vec<T>) {
        if self.compact == AdamMoments::Full {
            return (self.m.clone(), self.v.clone());
        }
        let layout = self.layout;
        let (mut m, mut v) = (vec![T::zero(); layout.len], vec![T::zero(); layout.len]);
        let tile = adam_tile(layout.block);
        let mut compact = self.compact.clone();
        for s in 0..layout.segments() {
            let range = layout.segment_range(s);
            let view = segment_view::<T>(&mut compact, layout, s);
            for (t, at) in (0..range.len()).step_by(tile).enumerate() {
                let n = tile.min(range.len() - at);
                let i = range.start + at;
                decode_tile(&view, t, at, &mut m[i..i + n], &mut v[i..i + n]);
            }
        }
        (m, v)
    }

    /// The unfused update of `θ[offset..offset+len]` with compact moments: every tile the
    /// range touches is decoded, the covered entries updated as in the fused kernel, and the
    /// tile encoded again.
    fn update_compact(&mut self, offset: usize, theta: &mut [T], g: &[T]) -> usize {
        let layout = self.layout;
        let tile = adam_tile(layout.block);
        let limit: T = lit(f64::from(BF16_MAX));
        let (mut mb, mut vb) = ([T::zero(); ADAM_TILE], [T::zero(); ADAM_TILE]);
        let end = offset + g.len();
        let mut kept = 0;
        let mut i = offset;
        while i < end {
            let s = i / layout.segment;
            let range = layout.segment_range(s);
            let co = self.coefficients(s);
            let (c1, c2) = (T::one() - co.beta1, T::one() - co.beta2);
            let t = (i - range.start) / tile;
            let at = t * tile;
            let n = tile.min(range.len() - at);
            let first = range.start + at;
            let stop = end.min(first + n);
            let mut view = segment_view::<T>(&mut self.compact, layout, s);
            let (mb, vb) = (&mut mb[..n], &mut vb[..n]);
            decode_tile(&view, t, at, mb, vb);
            for j in i..stop {
                let (th, gi) = (&mut theta[j - offset], g[j - offset]);
                let (mi, vi) = (&mut mb[j - first], &mut vb[j - first]);
                let mn = co.beta1 * *mi + c1 * gi;
                let vn = co.beta2 * *vi + c2 * gi * gi;
                let tn = *th - co.rate * mn / (vn.sqrt() + co.epsilon);
                if mn.is_finite() && vn <= limit && tn.is_finite() {
                    (*mi, *vi, *th) = (mn, vn, tn);
                } else {
                    kept += 1;
                }
            }
            encode_tile(&mut view, t, at, (co.key, at), mb, vb);
            i = stop;
        }
        kept
    }

    /// The index of the first weight whose update with `g` would not be stored (non-finite,
    /// or beyond what compact moments hold), without changing anything.
    fn first_refused(&self, params: &[T], grad: &[T], rate: T) -> Option<usize> {
        let (b1, b2, eps) = (self.beta1, self.beta2, self.epsilon);
        let (c1, c2) = (T::one() - b1, T::one() - b2);
        let refused = |i: usize, m: T, v: T, limit: T| {
            let mi = b1 * m + c1 * grad[i];
            let vi = b2 * v + c2 * grad[i] * grad[i];
            let x = params[i] - rate * mi / (vi.sqrt() + eps);
            !(mi.is_finite() && vi <= limit && x.is_finite())
        };
        if self.compact == AdamMoments::Full {
            return (0..params.len()).find(|&i| refused(i, self.m[i], self.v[i], T::max_value()));
        }
        let (m, v) = self.moments();
        let limit: T = lit(f64::from(BF16_MAX));
        (0..params.len()).find(|&i| refused(i, m[i], v[i], limit))
    }
}

/// The [`Moments`] view of segment `s` of compact moments.
///
/// # Panics
/// For [`AdamMoments::Full`] (whose moments live in `T` beside it).
fn segment_view<T>(compact: &mut AdamMoments, layout: WeightLayout, s: usize) -> Moments<'_, T> {
    let range = layout.segment_range(s);
    match compact {
        AdamMoments::Full => unreachable!("moments in T have no compact view"),
        AdamMoments::Bf16 { m, v } => Moments::Bf16 {
            m: &mut m[range.clone()],
            v: &mut v[range],
        },
        AdamMoments::Q8 { m, v, scales } => {
            let per = q8_scales(layout.segment, layout.block);
            let count = q8_scales(range.len(), layout.block);
            Moments::Q8 {
                m: &mut m[range.clone()],
                v: &mut v[range],
                scales: &mut scales[s * per..s * per + count],
            }
        }
    }
}

/// One fused layer step, [`Kernels::backward_pair_adam`]. With the `parallel` feature, from
/// [`PARALLEL_MIN_ROWS`](crate::preconditioner::block::PARALLEL_MIN_ROWS) hidden rows, the
/// layer runs in parts of whole Adam tiles ([`adam_tile`]; a q8 tile is a quantization block)
/// on rayon's threads: each part reads the whole layer's cotangents through its part of the
/// wiring ([`GatheredPair::part`]; without a wiring, its own slice) and
/// starts its stochastic rounding at its first entry ([`AdamCoefficients::first`]), so every
/// entry is computed as in the whole layer: the same bits. The counts of kept elements add up.
fn fused_layer<T: Real, A: Stored<T> + Send + Sync, W: Stored<T> + Send + Sync>(
    kernels: Kernels,
    k: usize,
    pair: GatheredPair<'_, T, A>,
    state: AdamSlices<'_, T, W>,
    co: AdamCoefficients<T>,
    zad: &mut [T],
) -> usize {
    #[cfg(feature = "parallel")]
    {
        let h = pair.c.len();
        let rows = crate::preconditioner::block::part_rows(h, adam_tile(k) / k);
        if k <= COMPACT_MAX_K && rows < h {
            return fused_parts(kernels, k, pair, state, co, zad, rows);
        }
    }
    kernels.backward_pair_adam(k, pair, state, co, zad)
}

/// [`fused_layer`] in parts of `rows` hidden rows (a multiple of the tile's rows) on rayon's
/// threads.
#[cfg(feature = "parallel")]
fn fused_parts<T: Real, A: Stored<T> + Send + Sync, W: Stored<T> + Send + Sync>(
    kernels: Kernels,
    k: usize,
    pair: GatheredPair<'_, T, A>,
    state: AdamSlices<'_, T, W>,
    co: AdamCoefficients<T>,
    zad: &mut [T],
    rows: usize,
) -> usize {
    use rayon::prelude::*;
    let len = rows * k;
    // Part `i` of the layer: its pair, its first entry and its `zad`.
    let part = |i: usize, theta: &[W]| {
        let r0 = i * rows;
        let p = pair.part(r0, theta.len() / k);
        (
            p,
            AdamCoefficients {
                first: r0 * k,
                ..co
            },
        )
    };
    let AdamSlices { theta, moments } = state;
    let thetas = theta.par_chunks_mut(len).zip(zad.par_chunks_mut(2 * rows));
    let run = |i: usize, theta: &mut [W], zad: &mut [T], moments: Moments<'_, T>| {
        let (p, co) = part(i, theta);
        kernels.backward_pair_adam(k, p, AdamSlices { theta, moments }, co, zad)
    };
    match moments {
        Moments::Full { m, v } => thetas
            .zip(m.par_chunks_mut(len).zip(v.par_chunks_mut(len)))
            .enumerate()
            .map(|(i, ((th, z), (m, v)))| run(i, th, z, Moments::Full { m, v }))
            .sum(),
        Moments::Bf16 { m, v } => thetas
            .zip(m.par_chunks_mut(len).zip(v.par_chunks_mut(len)))
            .enumerate()
            .map(|(i, ((th, z), (m, v)))| run(i, th, z, Moments::Bf16 { m, v }))
            .sum(),
        Moments::Q8 { m, v, scales } => thetas
            .zip(m.par_chunks_mut(len).zip(v.par_chunks_mut(len)))
            .zip(scales.par_chunks_mut(len / adam_tile(k)))
            .enumerate()
            .map(|(i, (((th, z), (m, v)), scales))| run(i, th, z, Moments::Q8 { m, v, scales }))
            .sum(),
    }
}

impl<T: Real> MetaOptimizer<T> for Adam<T> {
    type Config = AdamConfig<T>;
    const NAME: &'static str = "Adam";
    const FUSES_BLOCK_LAYER: bool = true;

    fn from_config(config: &AdamConfig<T>, dim: usize) -> Result<Self, ConfigError> {
        Self::for_layout(config, WeightLayout::flat(dim))
    }

    /// The moments `M` and `V` in `T`: `2·dim` numbers.
    fn memory_bytes(dim: usize) -> Result<usize, ConfigError> {
        bytes_of::<T>(dim.checked_mul(2).ok_or(ConfigError::TooLarge)?)
    }

    fn for_layout(config: &AdamConfig<T>, layout: WeightLayout) -> Result<Self, ConfigError> {
        config.validate()?;
        check_compact(config.precision, layout)?;
        let len = layout.len;
        let full = config.precision == Precision::Full;
        let compact = match config.precision {
            Precision::Full => AdamMoments::Full,
            Precision::Bf16 => AdamMoments::Bf16 {
                m: filled(len, 0)?,
                v: filled(len, 0)?,
            },
            Precision::Q8 => AdamMoments::Q8 {
                m: filled(len, 0)?,
                v: filled(len, 0)?,
                scales: filled(scale_count(layout), [0.0; 2])?,
            },
        };
        Ok(Self {
            learning_rate: config.learning_rate,
            beta1: config.beta1,
            beta2: config.beta2,
            epsilon: config.epsilon,
            t: 0,
            m: filled(if full { len } else { 0 }, T::zero())?,
            v: filled(if full { len } else { 0 }, T::zero())?,
            compact,
            layout,
            rate: None,
            before: (0, None),
        })
    }

    /// In `T`: `2·len` numbers; bf16: `4·len` bytes; q8: `2·len` bytes and 8 per tile.
    fn layout_bytes(config: &AdamConfig<T>, layout: WeightLayout) -> Result<usize, ConfigError> {
        check_compact(config.precision, layout)?;
        let twice = layout.len.checked_mul(2).ok_or(ConfigError::TooLarge)?;
        match config.precision {
            Precision::Full => bytes_of::<T>(twice),
            Precision::Bf16 => bytes_of::<u16>(twice),
            Precision::Q8 => total(&[twice, bytes_of::<[f32; 2]>(scale_count(layout))?]),
        }
    }

    fn dim(&self) -> usize {
        self.layout.len
    }

    fn learning_rate(&self) -> T {
        self.learning_rate
    }

    /// Starts step `t + 1`: advances the step count used for bias correction.
    fn begin_step(&mut self) {
        self.before = (self.t, self.rate);
        self.t = self.t.saturating_add(1);
        self.rate = Some(self.rate_at(self.t));
    }

    fn cancel_step(&mut self) {
        (self.t, self.rate) = self.before;
    }

    /// The elementwise Keras-Adam update, guarded: an element whose new `M`, `V` or `θ` would
    /// not be finite (or, with compact moments, whose `V` would exceed
    /// [`lodo_kernels::compact::BF16_MAX`]) keeps its old three values (counted).
    #[track_caller]
    fn update(&mut self, offset: usize, theta: &mut [T], g: &[T]) -> usize {
        assert_eq!(
            theta.len(),
            g.len(),
            "Adam::update: θ and g differ in length"
        );
        let end = offset + g.len();
        assert!(
            end <= self.layout.len,
            "Adam::update: range beyond the weights"
        );
        if self.compact != AdamMoments::Full {
            return self.update_compact(offset, theta, g);
        }
        let co = self.coefficients(0);
        let (c1, c2) = (T::one() - co.beta1, T::one() - co.beta2);
        let moments = self.m[offset..end].iter_mut().zip(&mut self.v[offset..end]);
        let mut kept = 0;
        for ((th, &gi), (mi, vi)) in theta.iter_mut().zip(g).zip(moments) {
            let mn = co.beta1 * *mi + c1 * gi;
            let vn = co.beta2 * *vi + c2 * gi * gi;
            let tn = *th - co.rate * mn / (vn.sqrt() + co.epsilon);
            if mn.is_finite() && vn.is_finite() && tn.is_finite() {
                (*mi, *vi, *th) = (mn, vn, tn);
            } else {
                kept += 1;
            }
        }
        kept
    }

    /// The fused form for one block layer (a segment of the layout): the backward outputs with
    /// the old `θ_l`, then Adam on `θ_l` with the gradient `s·(a_b c_bᵀ + d_b e_bᵀ)` computed
    /// block by block and never stored ([`Kernels::backward_pair_adam`], guarded as
    /// [`MetaOptimizer::update`], compact moments decoded and encoded per tile); `scratch` is
    /// unused.
    #[track_caller]
    fn update_block_layer<A: Stored<T> + Send + Sync, W: Stored<T> + Send + Sync>(
        &mut self,
        kernels: Kernels,
        offset: usize,
        step: BlockLayerStep<'_, T, A, W>,
        _scratch: &mut [T],
    ) -> usize {
        let layout = self.layout;
        let s = offset / layout.segment;
        // Compact moments are tiled per segment: the layer must be one (moments in T: any range).
        assert!(
            self.compact == AdamMoments::Full
                || (layout.segment_range(s) == (offset..offset + step.theta.len())
                    && layout.block == step.k),
            "Adam::update_block_layer: the layer is not a segment of the layout"
        );
        let co = self.coefficients(s);
        let moments = match self.compact {
            AdamMoments::Full => Moments::Full {
                m: &mut self.m[offset..offset + step.theta.len()],
                v: &mut self.v[offset..offset + step.theta.len()],
            },
            ref mut compact => segment_view(compact, layout, s),
        };
        let state = AdamSlices {
            theta: step.theta,
            moments,
        };
        fused_layer(kernels, step.k, step.pair, state, co, step.zad)
    }

    fn validate_state(&mut self, dim: usize) -> Result<(), StateError> {
        self.validate_layout(WeightLayout::flat(dim))
    }

    fn validate_layout(&mut self, layout: WeightLayout) -> Result<(), StateError> {
        self.config().validate()?;
        check_compact(self.precision(), layout)?;
        let len = |what, found: usize, expected: usize| {
            if found == expected {
                Ok(())
            } else {
                Err(StateError::Length {
                    what,
                    expected,
                    found,
                })
            }
        };
        let dim = if self.compact == AdamMoments::Full {
            layout.len
        } else {
            0
        };
        len("Adam first moment", self.m.len(), dim)?;
        len("Adam second moment", self.v.len(), dim)?;
        if first_non_finite(&self.m).is_some() || first_non_finite(&self.v).is_some() {
            return Err(StateError::NonFinite {
                what: "Adam moments",
            });
        }
        if self.v.iter().any(|&v| v < T::zero()) {
            return Err(StateError::Negative {
                what: "Adam second moment",
            });
        }
        match &self.compact {
            AdamMoments::Full => {}
            AdamMoments::Bf16 { m, v } => {
                len("Adam first moment", m.len(), layout.len)?;
                len("Adam second moment", v.len(), layout.len)?;
                // Finite and within BF16_MAX: the exponent is not all ones.
                let finite = |c: &u16| c & 0x7F80 != 0x7F80;
                if !(m.iter().all(finite) && v.iter().all(finite)) {
                    return Err(StateError::NonFinite {
                        what: "Adam moments",
                    });
                }
                if v.iter().any(|c| c & 0x8000 != 0 && c & 0x7FFF != 0) {
                    return Err(StateError::Negative {
                        what: "Adam second moment",
                    });
                }
            }
            AdamMoments::Q8 { m, v, scales } => {
                len("Adam first moment", m.len(), layout.len)?;
                len("Adam second moment", v.len(), layout.len)?;
                len("Adam q8 scales", scales.len(), scale_count(layout))?;
                let ok = |s: &f32| (0.0..=BF16_MAX).contains(s);
                if !scales.iter().flatten().all(ok) {
                    return Err(StateError::NonFinite {
                        what: "Adam q8 scales",
                    });
                }
            }
        }
        self.layout = layout;
        self.rate = (self.t > 0).then(|| self.rate_at(self.t));
        Ok(())
    }
}

/// Compact moments need the blocks of a tile on the stack: `k ≤ COMPACT_MAX_K`.
fn check_compact(precision: Precision, layout: WeightLayout) -> Result<(), ConfigError> {
    if precision != Precision::Full && layout.block > COMPACT_MAX_K {
        return Err(ConfigError::CompactBlockTooLarge {
            block_size: layout.block,
            max: COMPACT_MAX_K,
        });
    }
    Ok(())
}

impl<T: Real> Optimizer<T> for Adam<T> {
    fn dim(&self) -> usize {
        self.layout.len
    }

    /// One Adam step on the caller's parameters. Atomic: on error nothing changes.
    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<(), StepError> {
        check_inputs(self.layout.len, params, grad)?;
        let t = self.t.saturating_add(1);
        let rate = self.rate_at(t);
        if let Some(index) = self.first_refused(params, grad, rate) {
            return Err(StepError::NonFiniteStep { index });
        }
        self.t = t;
        self.rate = Some(rate);
        let kept = MetaOptimizer::update(self, 0, params, grad);
        debug_assert_eq!(kept, 0, "every candidate was checked finite");
        Ok(())
    }

    /// `η`.
    fn learning_rate(&self) -> T {
        self.learning_rate
    }

    /// Sets `η` for the following steps.
    fn set_learning_rate(&mut self, learning_rate: T) -> Result<(), ConfigError> {
        check_learning_rate(learning_rate)?;
        self.learning_rate = learning_rate;
        self.rate = (self.t > 0).then(|| self.rate_at(self.t));
        Ok(())
    }
}
