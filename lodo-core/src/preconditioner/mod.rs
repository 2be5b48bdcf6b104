//! The preconditioner `G(θ)`: the symmetric map from the averaged gradient `m` to the step
//! `G(θ)·m` (paper §3), and its hypergradient.
//!
//! Every architecture (the LODO network and the paper's ablations, §5.3) implements
//! [`Preconditioner`]. The optimizer only ever calls [`Preconditioner::apply`] (forward, which
//! remembers what the next hypergradient needs) and [`Preconditioner::backprop`].
//!
//! # Hypergradient
//! The step just taken was `x_t = x_{t−1} − G(θ)·m_{t−1}`, and `g_t = ∇ℓ(x_t)`. By the chain rule
//!
//! $$ ∇_θ\, ℓ(x_t) = −\Big(\frac{∂\,[G(θ)\,m_{t−1}]}{∂θ}\Big)^{\!T} g_t
//!                 = −∇_θ \langle g_t,\; G(θ)\, m_{t−1} \rangle, $$
//!
//! which every architecture computes exactly from the activations kept by the last `apply`.

pub mod block;
pub mod diagonal;
pub mod global;
pub mod residual;

pub use block::{BlockConfig, BlockPreconditioner};
pub use diagonal::{Diagonal, DiagonalConfig};
pub use global::{Global, GlobalConfig};
pub use residual::{Residual, ResidualConfig};

use alloc::vec;
use alloc::vec::Vec;

use crate::config::{PreconditionerConfig, check_alpha0};
use crate::error::{ConfigError, StateError};
use crate::meta::{MetaOptimizer, WeightLayout};
use crate::random::Stream;
use crate::real::Real;

/// The memory a preconditioner of a given shape holds, from its formula (see each
/// architecture's [`Preconditioner::footprint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes held: weights, permutations and the activations and scratch of a step.
    pub bytes: usize,
    /// Number of trainable weights `θ` (what the meta-optimizer holds state for).
    pub weights: usize,
}

/// Receives the hypergradient piece by piece: `(offset, θ[offset..offset+len], ∇θ[..len])`.
pub type WeightSink<'a, T> = dyn FnMut(usize, &mut [T], &[T]) + 'a;

/// A learned symmetric preconditioner `G(θ)` acting on `n`-vectors.
pub trait Preconditioner<T: Real>: Clone {
    /// The architecture's own hyperparameters (`α₀` and whatever else it uses).
    type Config: PreconditionerConfig<T>;

    /// Builds the initial preconditioner for `n` parameters.
    ///
    /// # Errors
    /// Any [`ConfigError`] the architecture's shape checks find.
    fn from_config(n: usize, config: &Self::Config, rng: &mut Stream) -> Result<Self, ConfigError>;

    /// What an instance for `n` parameters holds ([`Footprint`]): the input of
    /// [`crate::Lodo::memory_bytes`].
    ///
    /// # Errors
    /// Any [`ConfigError`] [`Preconditioner::from_config`] would return for this shape.
    fn footprint(n: usize, config: &Self::Config) -> Result<Footprint, ConfigError>;

    /// How the weights of an instance for `n` parameters are laid out for the meta-optimizer
    /// (by default one flat segment of [`Footprint::weights`]).
    ///
    /// # Errors
    /// As [`Preconditioner::footprint`].
    fn weight_layout(n: usize, config: &Self::Config) -> Result<WeightLayout, ConfigError> {
        Ok(WeightLayout::flat(Self::footprint(n, config)?.weights))
    }

    /// Bytes of the scratch [`Preconditioner::reserve_meta_scratch`] allocates (by default none).
    ///
    /// # Errors
    /// As [`Preconditioner::footprint`].
    fn meta_scratch_bytes(n: usize, config: &Self::Config) -> Result<usize, ConfigError> {
        let _ = (n, config);
        Ok(0)
    }

    /// Allocates the scratch a meta-optimizer without a fused block-layer update needs
    /// ([`MetaOptimizer::FUSES_BLOCK_LAYER`] false): [`crate::Lodo`] calls it at construction
    /// and restore so that steps allocate nothing. By default nothing.
    ///
    /// # Errors
    /// [`ConfigError::OutOfMemory`].
    fn reserve_meta_scratch(&mut self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// The layout of this instance's weights ([`Preconditioner::weight_layout`]).
    fn layout(&self) -> WeightLayout {
        WeightLayout::flat(self.weight_count())
    }

    /// The dimension `n`.
    fn dim(&self) -> usize;

    /// The scale `α₀` of `G = α₀·…`.
    fn alpha0(&self) -> T;

    /// Sets `α₀` for the following steps. The hypergradient of the step already taken is then
    /// computed with the new `α₀` too (it scales that hypergradient by the same factor).
    ///
    /// # Errors
    /// [`ConfigError::InvalidAlpha0`] unless finite and positive; nothing changes then.
    fn set_alpha0(&mut self, alpha0: T) -> Result<(), ConfigError>;

    /// The number of trainable weights `θ`.
    fn weight_count(&self) -> usize;

    /// The trainable weights `θ` as one flat array in `T` (layout documented per architecture),
    /// decoded into `out` if they are held below `T` (the LODO network with
    /// [`crate::WeightPrecision::F32`]; decoding is exact).
    ///
    /// # Panics
    /// If `out.len()` is not [`Preconditioner::weight_count`].
    fn weights_into(&self, out: &mut [T]);

    /// Sets the weights `θ` from `w` (rounded to nearest where they are held below `T`).
    /// This invalidates what [`Preconditioner::apply`] remembered: call `apply` again before
    /// [`Preconditioner::backprop`].
    ///
    /// # Panics
    /// If `w.len()` is not [`Preconditioner::weight_count`].
    fn set_weights(&mut self, w: &[T]);

    /// The weights as a new vector ([`Preconditioner::weights_into`]; allocates, for tests,
    /// inspection and tools).
    fn weights(&self) -> Vec<T> {
        let mut w = vec![T::zero(); self.weight_count()];
        self.weights_into(&mut w);
        w
    }

    /// `out = G(θ)·m`, remembering the activations of `m` for the next
    /// [`Preconditioner::backprop`].
    ///
    /// # Panics
    /// If `m` or `out` does not have length `n`.
    fn apply(&mut self, m: &[T], out: &mut [T]);

    /// `out = G(θ)·v` without touching what `apply` remembered (allocates scratch).
    ///
    /// # Panics
    /// If `v` or `out` does not have length `n`.
    fn matvec(&self, v: &[T], out: &mut [T]);

    /// Computes the hypergradient `∇_θ ℓ = −∇_θ⟨g, G(θ)·m⟩` for the `m` of the last `apply`
    /// and hands it over piece by piece: `sink(offset, θ[offset..offset+len], ∇θ[..len])`.
    /// The sink may update `θ` in place; each piece is handed over only after the old `θ` of that
    /// piece has been used, so updating there is exact.
    ///
    /// # Panics
    /// If `g` does not have length `n`.
    fn backprop(&mut self, g: &[T], sink: &mut WeightSink<'_, T>);

    /// The hypergradient step of [`crate::Lodo`]: [`Preconditioner::backprop`] with every piece
    /// handed straight to `meta.update`. Architectures override it to fuse the gradient with the
    /// meta-update (the LODO network reads and writes each block's `θ`, `M`, `V` once). Returns
    /// the number of weights the meta-optimizer's guard kept ([`MetaOptimizer::update`]).
    ///
    /// # Panics
    /// If `g` does not have length `n` or `meta` was built for another number of weights.
    fn backprop_meta<M: MetaOptimizer<T>>(&mut self, g: &[T], meta: &mut M) -> usize {
        let mut kept = 0;
        self.backprop(g, &mut |offset, theta, grad| {
            kept += meta.update(offset, theta, grad);
        });
        kept
    }

    /// Re-creates what `apply` remembers and validates the structure after deserialisation.
    ///
    /// # Errors
    /// [`StateError`] if the stored structure is inconsistent.
    fn prepare(&mut self) -> Result<(), StateError>;

    /// The full hypergradient `−∇_θ⟨g, G(θ)·m⟩` into `out` (length `weight_count()`), leaving
    /// `θ` unchanged.
    ///
    /// # Panics
    /// If `g` has the wrong length or `out.len() != weight_count()`.
    fn hypergradient(&mut self, g: &[T], out: &mut [T]) {
        assert_eq!(
            out.len(),
            self.weight_count(),
            "hypergradient: out has the wrong length"
        );
        self.backprop(g, &mut |offset, _theta, grad| {
            out[offset..offset + grad.len()].copy_from_slice(grad);
        });
    }

    /// The dense `n × n` matrix `G(θ)`, row-major, materialised column by column with
    /// [`Preconditioner::matvec`].
    fn to_dense(&self) -> Vec<T> {
        let n = self.dim();
        let mut dense = vec![T::zero(); n * n];
        let mut e = vec![T::zero(); n];
        let mut col = vec![T::zero(); n];
        for j in 0..n {
            e[j] = T::one();
            self.matvec(&e, &mut col);
            e[j] = T::zero();
            for i in 0..n {
                dense[i * n + j] = col[i];
            }
        }
        dense
    }
}

/// `out = α · src[..out.len()]` (the `α₀ Πᵀ` at the end of every architecture).
#[inline]
pub(crate) fn unpad_scaled<T: Real>(alpha: T, src: &[T], out: &mut [T]) {
    for (o, &s) in out.iter_mut().zip(src) {
        *o = alpha * s;
    }
}

/// `dst = Π v`: `v` followed by zeros.
#[inline]
pub(crate) fn pad<T: Real>(v: &[T], dst: &mut [T]) {
    let (head, tail) = dst.split_at_mut(v.len());
    head.copy_from_slice(v);
    tail.fill(T::zero());
}

#[track_caller]
pub(crate) fn check_len(what: &str, found: usize, expected: usize) {
    assert!(
        found == expected,
        "{what} has length {found}, expected {expected}"
    );
}

pub(crate) fn check_alpha<T: Real>(alpha0: T) -> Result<(), StateError> {
    Ok(check_alpha0(alpha0)?)
}

/// The configuration of the ablations that have nothing but `α₀` (default 1).
macro_rules! alpha_only_config {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name<T> {
            alpha0: T,
        }

        impl<T: Real> Default for $name<T> {
            fn default() -> Self {
                Self { alpha0: T::one() }
            }
        }

        impl<T: Real> PreconditionerConfig<T> for $name<T> {
            fn alpha0(&self) -> T {
                self.alpha0
            }

            fn with_alpha0(self, alpha0: T) -> Result<Self, ConfigError> {
                crate::config::check_alpha0(alpha0)?;
                Ok(Self { alpha0 })
            }
        }
    };
}
pub(crate) use alpha_only_config;

pub(crate) fn check_weights<T: Real>(w: &[T], expected: usize) -> Result<(), StateError> {
    if w.len() != expected {
        return Err(StateError::Length {
            what: "weights",
            expected,
            found: w.len(),
        });
    }
    if crate::real::first_non_finite(w).is_some() {
        return Err(StateError::NonFinite { what: "weights" });
    }
    Ok(())
}
