//! The global ablation (paper §5.3, "LODO-Global"): `G(w) = α₀·w·I` with one scalar `w ← 1`.
//!
//! Hypergradient: `∇_w ⟨g, G m⟩ = α₀ ⟨g, m⟩` (summed in index order).

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
    /// The global ablation's configuration: `α₀` (default 1).
    GlobalConfig
);

/// `G = α₀·w·I`; weights `θ = [w]`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "T: serde::Serialize",
        deserialize = "T: serde::Deserialize<'de>"
    ))
)]
pub struct Global<T> {
    n: usize,
    alpha0: T,
    w: [T; 1],
    #[cfg_attr(feature = "serde", serde(skip))]
    m: Vec<T>,
}

impl<T: Real> Preconditioner<T> for Global<T> {
    type Config = GlobalConfig<T>;

    fn from_config(
        n: usize,
        config: &GlobalConfig<T>,
        _rng: &mut Stream,
    ) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(ConfigError::EmptyProblem);
        }
        Ok(Self {
            n,
            alpha0: config.alpha0(),
            w: [T::one()],
            m: filled(n, T::zero())?,
        })
    }

    /// The kept `m`: `n` numbers (the one weight lives inline).
    fn footprint(n: usize, _config: &GlobalConfig<T>) -> Result<Footprint, ConfigError> {
        Ok(Footprint {
            bytes: bytes_of::<T>(n)?,
            weights: 1,
        })
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
        check_len("m", m.len(), self.n);
        self.m.copy_from_slice(m);
        self.matvec(m, out);
    }

    fn matvec(&self, v: &[T], out: &mut [T]) {
        check_len("v", v.len(), self.n);
        check_len("out", out.len(), self.n);
        let s = self.alpha0 * self.w[0];
        for (o, &vi) in out.iter_mut().zip(v) {
            *o = s * vi;
        }
    }

    fn backprop(&mut self, g: &[T], sink: &mut WeightSink<'_, T>) {
        check_len("g", g.len(), self.n);
        let dot = g
            .iter()
            .zip(&self.m)
            .fold(T::zero(), |acc, (&gi, &mi)| acc + gi * mi);
        sink(0, &mut self.w, &[-self.alpha0 * dot]);
    }

    fn prepare(&mut self) -> Result<(), StateError> {
        check_alpha(self.alpha0)?;
        if self.n == 0 {
            return Err(ConfigError::EmptyProblem.into());
        }
        check_weights(&self.w, 1)?;
        self.m = filled(self.n, T::zero())?;
        Ok(())
    }
}
