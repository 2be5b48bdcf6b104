//! The diagonal ablation (paper §5.3, "LODO-Diagonal"): `G(w) = α₀·diag(w)`, `w ← 1`.
//!
//! Hypergradient: `∇_w ⟨g, G m⟩ = α₀ (g ⊙ m)`. (The authors' registry labels this class as the
//! global one and vice versa; here each name says what it computes.)

use alloc::vec::Vec;

use super::{
    Footprint, Preconditioner, WeightSink, alpha_only_config, check_alpha, check_len, check_weights,
};
use crate::config::{PreconditionerConfig, set_alpha0};
use crate::error::{ConfigError, StateError};
use crate::memory::{bytes_of, filled};
use crate::random::Stream;
use crate::real::Real;

alpha_only_config!(
    /// The diagonal ablation's configuration: `α₀` (default 1).
    DiagonalConfig
);

/// `G = α₀·diag(w)`; weights `θ = w` (length `n`).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "T: serde::Serialize",
        deserialize = "T: serde::Deserialize<'de>"
    ))
)]
pub struct Diagonal<T> {
    alpha0: T,
    w: Vec<T>,
    #[cfg_attr(feature = "serde", serde(skip))]
    m: Vec<T>,
    #[cfg_attr(feature = "serde", serde(skip))]
    grad: Vec<T>,
}

impl<T: Real> Preconditioner<T> for Diagonal<T> {
    type Config = DiagonalConfig<T>;

    fn from_config(
        n: usize,
        config: &DiagonalConfig<T>,
        _rng: &mut Stream,
    ) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(ConfigError::EmptyProblem);
        }
        Ok(Self {
            alpha0: config.alpha0(),
            w: filled(n, T::one())?,
            m: filled(n, T::zero())?,
            grad: filled(n, T::zero())?,
        })
    }

    /// `w`, the kept `m` and the gradient scratch: `3n` numbers.
    fn footprint(n: usize, _config: &DiagonalConfig<T>) -> Result<Footprint, ConfigError> {
        Ok(Footprint {
            bytes: bytes_of::<T>(n.checked_mul(3).ok_or(ConfigError::TooLarge)?)?,
            weights: n,
        })
    }

    fn dim(&self) -> usize {
        self.w.len()
    }

    fn alpha0(&self) -> T {
        self.alpha0
    }

    fn set_alpha0(&mut self, alpha0: T) -> Result<(), ConfigError> {
        set_alpha0(&mut self.alpha0, alpha0)
    }

    fn weight_count(&self) -> usize {
        self.w.len()
    }

    fn weights_into(&self, out: &mut [T]) {
        check_len("out", out.len(), self.w.len());
        out.copy_from_slice(&self.w);
    }

    fn set_weights(&mut self, w: &[T]) {
        check_len("w", w.len(), self.w.len());
        self.w.copy_from_slice(w);
    }

    fn apply(&mut self, m: &[T], out: &mut [T]) {
        check_len("m", m.len(), self.w.len());
        self.m.copy_from_slice(m);
        self.matvec(m, out);
    }

    fn matvec(&self, v: &[T], out: &mut [T]) {
        check_len("v", v.len(), self.w.len());
        check_len("out", out.len(), self.w.len());
        for ((o, &vi), &wi) in out.iter_mut().zip(v).zip(&self.w) {
            *o = self.alpha0 * wi * vi;
        }
    }

    fn backprop(&mut self, g: &[T], sink: &mut WeightSink<'_, T>) {
        check_len("g", g.len(), self.w.len());
        let scale = -self.alpha0;
        for ((d, &gi), &mi) in self.grad.iter_mut().zip(g).zip(&self.m) {
            *d = scale * gi * mi;
        }
        sink(0, &mut self.w, &self.grad);
    }

    fn prepare(&mut self) -> Result<(), StateError> {
        check_alpha(self.alpha0)?;
        if self.w.is_empty() {
            return Err(ConfigError::EmptyProblem.into());
        }
        check_weights(&self.w, self.w.len())?;
        self.m = filled(self.w.len(), T::zero())?;
        self.grad = filled(self.w.len(), T::zero())?;
        Ok(())
    }
}
