//! Adam in the authors' (Keras) form: the paper's meta-optimizer, and a first-order optimizer in
//! its own right.

use alloc::vec::Vec;

use lodo_kernels::Kernels;
use lodo_kernels::block_diagonal::{AdamCoefficients, AdamSlices};

use super::{BlockLayerStep, MetaConfig, MetaOptimizer, check_learning_rate};
use crate::error::{ConfigError, StateError, StepError};
use crate::memory::{bytes_of, filled};
use crate::optimizer::{Optimizer, check_inputs};
use crate::real::{Real, first_non_finite, lit};

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
}

impl<T: Real> Default for AdamConfig<T> {
    fn default() -> Self {
        Self {
            learning_rate: lit(1e-3),
            beta1: lit(0.9),
            beta2: lit(0.999),
            epsilon: lit(1e-7),
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

/// Adam in the authors' (Keras) form, with bias correction folded into the rate:
///
/// $$ t \gets t+1,\quad M \gets β_1 M + (1-β_1) g,\quad V \gets β_2 V + (1-β_2) g^2,\quad
///    θ \gets θ - η \frac{\sqrt{1-β_2^t}}{1-β_1^t} \frac{M}{\sqrt V + ε}. $$
///
/// The step counter `t` saturates at `u64::MAX` (where the bias correction is 1 to the last bit).
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
    /// The rate of the open step; `None` before the first (recomputed on restore).
    #[cfg_attr(feature = "serde", serde(skip))]
    rate: Option<T>,
    /// `(t, rate)` before the open step, for [`MetaOptimizer::cancel_step`].
    #[cfg_attr(feature = "serde", serde(skip))]
    before: (u64, Option<T>),
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
    fn rate_at(&self, t: u64) -> T {
        let tt: T = lit(t as f64);
        self.learning_rate * (T::one() - self.beta2.powf(tt)).sqrt()
            / (T::one() - self.beta1.powf(tt))
    }

    /// The coefficients of the open step (`rate` as in [`MetaOptimizer::update`]).
    fn coefficients(&self) -> AdamCoefficients<T> {
        AdamCoefficients {
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            rate: self.rate.unwrap_or_else(|| self.rate_at(self.t.max(1))),
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
        }
    }
}

impl<T: Real> MetaOptimizer<T> for Adam<T> {
    type Config = AdamConfig<T>;
    const NAME: &'static str = "Adam";

    fn from_config(config: &AdamConfig<T>, dim: usize) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            learning_rate: config.learning_rate,
            beta1: config.beta1,
            beta2: config.beta2,
            epsilon: config.epsilon,
            t: 0,
            m: filled(dim, T::zero())?,
            v: filled(dim, T::zero())?,
            rate: None,
            before: (0, None),
        })
    }

    /// The moments `M` and `V`: `2·dim` numbers.
    fn memory_bytes(dim: usize) -> Result<usize, ConfigError> {
        bytes_of::<T>(dim.checked_mul(2).ok_or(ConfigError::TooLarge)?)
    }

    fn dim(&self) -> usize {
        self.m.len()
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
    /// not be finite keeps its old three values (counted).
    #[track_caller]
    fn update(&mut self, offset: usize, theta: &mut [T], g: &[T]) -> usize {
        assert_eq!(
            theta.len(),
            g.len(),
            "Adam::update: θ and g differ in length"
        );
        let end = offset + g.len();
        let co = self.coefficients();
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

    /// The fused form for one block layer: the backward outputs with the old `θ_l`, then Adam
    /// on `θ_l` with the gradient `s·(a_b c_bᵀ + d_b e_bᵀ)` computed block by block and never
    /// stored ([`Kernels::backward_pair_adam`], guarded as [`MetaOptimizer::update`]); `scratch`
    /// is unused.
    #[track_caller]
    fn update_block_layer(
        &mut self,
        kernels: Kernels,
        offset: usize,
        step: BlockLayerStep<'_, T>,
        _scratch: &mut [T],
    ) -> usize {
        let co = self.coefficients();
        let end = offset + step.theta.len();
        let state = AdamSlices {
            theta: step.theta,
            m: &mut self.m[offset..end],
            v: &mut self.v[offset..end],
        };
        kernels.backward_pair_adam(step.k, step.pair, state, co, step.zad)
    }

    fn validate_state(&mut self, dim: usize) -> Result<(), StateError> {
        self.config().validate()?;
        for (what, v) in [
            ("Adam first moment", &self.m),
            ("Adam second moment", &self.v),
        ] {
            if v.len() != dim {
                return Err(StateError::Length {
                    what,
                    expected: dim,
                    found: v.len(),
                });
            }
            if first_non_finite(v).is_some() {
                return Err(StateError::NonFinite { what });
            }
        }
        if self.v.iter().any(|&v| v < T::zero()) {
            return Err(StateError::Negative {
                what: "Adam second moment",
            });
        }
        self.rate = (self.t > 0).then(|| self.rate_at(self.t));
        Ok(())
    }
}

impl<T: Real> Optimizer<T> for Adam<T> {
    fn dim(&self) -> usize {
        self.m.len()
    }

    /// One Adam step on the caller's parameters. Atomic: on error nothing changes.
    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<(), StepError> {
        check_inputs(self.m.len(), params, grad)?;
        let t = self.t.saturating_add(1);
        let rate = self.rate_at(t);
        let (b1, b2, eps) = (self.beta1, self.beta2, self.epsilon);
        let (c1, c2) = (T::one() - b1, T::one() - b2);
        let candidate = |i: usize| {
            let mi = b1 * self.m[i] + c1 * grad[i];
            let vi = b2 * self.v[i] + c2 * grad[i] * grad[i];
            (mi, vi, params[i] - rate * mi / (vi.sqrt() + eps))
        };
        let finite = |(m, v, x): (T, T, T)| m.is_finite() && v.is_finite() && x.is_finite();
        if let Some(index) = (0..params.len()).find(|&i| !finite(candidate(i))) {
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
