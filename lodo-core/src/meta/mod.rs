//! Meta-optimizers: how the preconditioner's weights `θ` follow their hypergradient (paper §3,
//! "θ is trained by Adam"; SGD is the paper's ablation, §5.3).
//!
//! A meta-optimizer is an open trait, [`MetaOptimizer`], and a type parameter of
//! [`crate::Lodo`] (as argmin makes a line search a type parameter of its solvers): a new one is
//! one `impl`, nowhere else to edit. It updates `θ` slice by slice, so a preconditioner can hand
//! over each layer's gradient as soon as it is computed and never holds the whole
//! hypergradient; the block network calls [`MetaOptimizer::update_block_layer`], which [`Adam`]
//! overrides with a fused kernel (`θ`, `M`, `V` read and written once, no gradient stored).

mod adam;
mod sgd;

pub use adam::AdamMoments;
pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

use core::fmt::Debug;

use lodo_kernels::Kernels;
use lodo_kernels::block_diagonal::GatheredPair;
use lodo_kernels::compact::Stored;

use crate::error::{ConfigError, StateError};
use crate::real::Real;

/// One block layer's share of a fused LODO backward step (see
/// [`MetaOptimizer::update_block_layer`]): the layer's weights `θ_l` (`h·k` numbers at
/// `offset` in the flat weight vector), the inputs of its hypergradient and the backward
/// outputs to write.
///
/// The kept activations `c`, `e` of the pair are in `T` or stored compactly (`A`,
/// [`lodo_kernels::compact::Stored`]); so are the weights `θ_l` (`W`: `T`, or
/// [`lodo_kernels::compact::F32`] below an `f64` `T`, [`crate::WeightPrecision`]).
#[derive(Debug)]
pub struct BlockLayerStep<'a, T, A = T, W = T> {
    /// Block size `k`.
    pub k: usize,
    /// The interleaved incoming cotangents, their gather index and the layer inputs: the layer
    /// gradient is `s·(â_b c_bᵀ + d̂_b e_bᵀ)` ([`GatheredPair`]).
    pub pair: GatheredPair<'a, T, A>,
    /// The layer's weights `θ_l`, updated in place (as stored: read with `W::load`, written
    /// with `W::store`).
    pub theta: &'a mut [W],
    /// Receives `θ_lᵀ â` and `θ_lᵀ d̂` with the old `θ_l`, interleaved (`2h` numbers).
    pub zad: &'a mut [T],
}

/// How the weights `θ` a meta-optimizer updates are laid out: `len` weights in segments of
/// `segment` (the LODO network's layers, `h·k` each; the last may be shorter) made of `k × k`
/// blocks (`block = k`). A meta-optimizer with blocked state (Adam's q8 moments: one scale pair
/// per tile of whole blocks within a segment) needs it; the others only read `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WeightLayout {
    /// Number of weights.
    pub len: usize,
    /// Weights per segment (at least 1).
    pub segment: usize,
    /// Block size `k` of the segments' `k × k` blocks.
    pub block: usize,
}

impl WeightLayout {
    /// One segment of `len` weights in blocks of one.
    #[must_use]
    pub const fn flat(len: usize) -> Self {
        Self {
            len,
            segment: if len == 0 { 1 } else { len },
            block: 1,
        }
    }

    /// Number of segments.
    #[must_use]
    pub const fn segments(&self) -> usize {
        self.len.div_ceil(self.segment)
    }

    /// The weight range of segment `s`.
    #[must_use]
    pub fn segment_range(&self, s: usize) -> core::ops::Range<usize> {
        let start = s * self.segment;
        start..(start + self.segment).min(self.len)
    }
}

/// The hyperparameters of a meta-optimizer: validated plain data with the learning rate `η`
/// every meta-optimizer has.
pub trait MetaConfig<T: Real>: Copy + Debug + PartialEq + Default {
    /// The learning rate `η`.
    fn learning_rate(&self) -> T;

    /// Sets `η`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidLearningRate`] unless `η` is finite and positive.
    fn with_learning_rate(self, learning_rate: T) -> Result<Self, ConfigError>;
}

/// How `θ` follows its hypergradient `∇_θ ℓ`: the meta-step of LODO (paper §3, Algorithm 1).
///
/// Contract of a step of [`crate::Lodo`]: [`MetaOptimizer::begin_step`] once, then every weight
/// is updated exactly once, through [`MetaOptimizer::update`] or
/// [`MetaOptimizer::update_block_layer`], with disjoint `offset` ranges.
pub trait MetaOptimizer<T: Real>: Clone + Debug {
    /// Its validated hyperparameters.
    type Config: MetaConfig<T>;

    /// Whether it overrides [`MetaOptimizer::update_block_layer`] with a form that needs no
    /// materialised layer gradient (then the LODO network holds no scratch for one).
    const FUSES_BLOCK_LAYER: bool = false;

    /// The name that tags its saved state (`{"Adam": {…}}`), unique among meta-optimizers.
    const NAME: &'static str;

    /// A fresh meta-optimizer for `dim` weights.
    ///
    /// # Errors
    /// A [`ConfigError`] for an invalid configuration.
    fn from_config(config: &Self::Config, dim: usize) -> Result<Self, ConfigError>;

    /// Bytes an instance for `dim` weights holds (for [`crate::Lodo::memory_bytes`]) with the
    /// default configuration.
    ///
    /// # Errors
    /// [`ConfigError::TooLarge`] if the count overflows `usize`.
    fn memory_bytes(dim: usize) -> Result<usize, ConfigError>;

    /// A fresh meta-optimizer for the weights of `layout` (what [`crate::Lodo::new`] calls);
    /// by default [`MetaOptimizer::from_config`] for `layout.len` weights.
    ///
    /// # Errors
    /// A [`ConfigError`] for an invalid configuration or one this layout cannot hold.
    fn for_layout(config: &Self::Config, layout: WeightLayout) -> Result<Self, ConfigError> {
        Self::from_config(config, layout.len)
    }

    /// Bytes [`MetaOptimizer::for_layout`] allocates; by default
    /// [`MetaOptimizer::memory_bytes`] of `layout.len`.
    ///
    /// # Errors
    /// As [`MetaOptimizer::for_layout`], or [`ConfigError::TooLarge`].
    fn layout_bytes(config: &Self::Config, layout: WeightLayout) -> Result<usize, ConfigError> {
        let _ = config;
        Self::memory_bytes(layout.len)
    }

    /// Number of weights it updates.
    fn dim(&self) -> usize;

    /// The learning rate `η`.
    fn learning_rate(&self) -> T;

    /// Opens a meta-step (e.g. advances Adam's bias-correction counter).
    fn begin_step(&mut self) {}

    /// Undoes [`MetaOptimizer::begin_step`]'s counters when [`crate::Lodo`] refuses the step
    /// (the weights already updated stay updated; see [`crate::StepError::NonFiniteMetaUpdate`]).
    fn cancel_step(&mut self) {}

    /// Updates the slice `θ[offset .. offset + θ.len()]` of the weights with its hypergradient
    /// `g`, inside the step opened by [`MetaOptimizer::begin_step`].
    ///
    /// **Guard** (part of the contract): a weight whose update would store a NaN or ±∞ in `θ`
    /// or in the meta-optimizer's own state keeps its old values; the return value counts such
    /// weights (0 for a clean update).
    ///
    /// # Panics
    /// If `θ` and `g` differ in length or the range exceeds [`MetaOptimizer::dim`].
    fn update(&mut self, offset: usize, theta: &mut [T], g: &[T]) -> usize;

    /// One block layer of LODO's backward step with its meta-update: the backward outputs
    /// `step.zad` with the old `θ_l`, then `θ_l` updated with the hypergradient
    /// `s·(â_b c_bᵀ + d̂_b e_bᵀ)`.
    ///
    /// The provided form materialises the layer gradient in `scratch` (`θ_l.len()` numbers,
    /// [`Kernels::backward_pair_gradient`]) and calls [`MetaOptimizer::update`]; with `θ_l` held
    /// below `T` it also decodes `θ_l` into the next `θ_l.len()` numbers of `scratch`, updates
    /// them and stores them back (rounded to nearest). [`Adam`] overrides it with the fused
    /// kernel. Returns the count of weights kept, as `update`.
    ///
    /// # Panics
    /// If the shapes disagree, `scratch` is shorter than `θ_l` (twice `θ_l` when `θ_l` is held
    /// below `T`), or the range exceeds the dimension.
    #[track_caller]
    fn update_block_layer<A: Stored<T> + Send + Sync, W: Stored<T> + Send + Sync>(
        &mut self,
        kernels: Kernels,
        offset: usize,
        step: BlockLayerStep<'_, T, A, W>,
        scratch: &mut [T],
    ) -> usize {
        let len = step.theta.len();
        let (grad, rest) = scratch.split_at_mut(len);
        kernels.backward_pair_gradient(step.k, step.pair, &*step.theta, grad, step.zad);
        match W::as_full_mut(step.theta) {
            Some(theta) => self.update(offset, theta, grad),
            None => {
                let buf = &mut rest[..len];
                for (b, &w) in buf.iter_mut().zip(step.theta.iter()) {
                    *b = w.load();
                }
                let mut kept = self.update(offset, buf, grad);
                for (w, &b) in step.theta.iter_mut().zip(buf.iter()) {
                    // A value beyond what `W` holds keeps its old `θ` (counted as kept).
                    let stored = W::store(b);
                    if stored.load().is_finite() {
                        *w = stored;
                    } else {
                        kept += 1;
                    }
                }
                kept
            }
        }
    }

    /// Validates a restored state for `dim` weights (every field, before anything is
    /// allocated) and recomputes what is not stored.
    ///
    /// # Errors
    /// [`StateError`] naming the first invalid field.
    fn validate_state(&mut self, dim: usize) -> Result<(), StateError>;

    /// [`MetaOptimizer::validate_state`] against the whole layout of the weights (what
    /// [`crate::Lodo::from_state`] calls); by default against `layout.len`.
    ///
    /// # Errors
    /// [`StateError`] naming the first invalid field.
    fn validate_layout(&mut self, layout: WeightLayout) -> Result<(), StateError> {
        self.validate_state(layout.len)
    }
}

/// Learning rates are finite and positive.
pub(crate) fn check_learning_rate<T: Real>(learning_rate: T) -> Result<(), ConfigError> {
    if learning_rate.is_finite() && learning_rate > T::zero() {
        Ok(())
    } else {
        Err(ConfigError::InvalidLearningRate)
    }
}

/// Serialises a meta-optimizer's state tagged by its [`MetaOptimizer::NAME`] as a one-entry map,
/// `{"Adam": {…}}` (the layout of state format 1), and refuses another name on load.
#[cfg(feature = "serde")]
pub(crate) mod tagged {
    use alloc::string::String;
    use core::fmt;
    use core::marker::PhantomData;

    use serde::de::{self, MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::MetaOptimizer;
    use crate::real::Real;

    pub(crate) fn serialize<T: Real, M, S>(meta: &M, s: S) -> Result<S::Ok, S::Error>
    where
        M: MetaOptimizer<T> + Serialize,
        S: Serializer,
    {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(M::NAME, meta)?;
        map.end()
    }

    pub(crate) fn deserialize<'de, T: Real, M, D>(d: D) -> Result<M, D::Error>
    where
        M: MetaOptimizer<T> + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        struct Tagged<T, M>(PhantomData<(T, M)>);
        impl<'de, T: Real, M: MetaOptimizer<T> + Deserialize<'de>> Visitor<'de> for Tagged<T, M> {
            type Value = M;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a map with the single key {:?}", M::NAME)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<M, A::Error> {
                let key: String = map
                    .next_key()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                if key != M::NAME {
                    return Err(de::Error::unknown_variant(&key, &[M::NAME]));
                }
                let meta = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::invalid_length(2, &self));
                }
                Ok(meta)
            }
        }
        d.deserialize_map(Tagged::<T, M>(PhantomData))
    }
}
