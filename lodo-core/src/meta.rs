//! Meta-optimizers: how the preconditioner's weights `θ` follow their hypergradient (paper §3,
//! "θ is trained by Adam"; SGD is the paper's ablation, §5.3).
//!
//! Both update `θ` slice by slice, so a preconditioner can hand over each layer's gradient as soon
//! as it is computed and never holds the whole hypergradient.

use alloc::vec;
use alloc::vec::Vec;

use lodo_kernels::Kernels;
use lodo_kernels::block_diagonal::{AdamCoefficients, AdamSlices, GatheredPair};

use crate::error::{ConfigError, StateError, StepError};
use crate::real::{Real, first_non_finite, lit};

/// One block layer's share of a fused LODO backward step (see
/// [`MetaOptimizer::update_block_layer`]): the layer's weights `θ_l` (`h·k` numbers at
/// `offset` in the flat weight vector), the inputs of its hypergradient and the backward
/// outputs to write.
#[derive(Debug)]
pub struct BlockLayerStep<'a, T> {
    /// Block size `k`.
    pub k: usize,
    /// The interleaved incoming cotangents, their gather index and the layer inputs: the layer
    /// gradient is `s·(â_b c_bᵀ + d̂_b e_bᵀ)` ([`GatheredPair`]).
    pub pair: GatheredPair<'a, T>,
    /// The layer's weights `θ_l`, updated in place.
    pub theta: &'a mut [T],
    /// Receives `θ_lᵀ â` and `θ_lᵀ d̂` with the old `θ_l`, interleaved (`2h` numbers).
    pub zad: &'a mut [T],
}

/// Adam in the authors' (Keras) form, with bias correction folded into the rate:
///
/// $$ t \gets t+1,\quad M \gets β_1 M + (1-β_1) g,\quad V \gets β_2 V + (1-β_2) g^2,\quad
///    θ \gets θ - η \frac{\sqrt{1-β_2^t}}{1-β_1^t} \frac{M}{\sqrt V + ε}. $$
///
/// Defaults `β₁ = 0.9`, `β₂ = 0.999`, `ε = 1e−7` (Keras).
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
}

impl<T: Real> Adam<T> {
    /// Adam for `dim` variables with learning rate `η` and the Keras defaults.
    ///
    /// # Errors
    /// [`ConfigError::InvalidLearningRate`] unless `η` is finite and positive.
    pub fn new(dim: usize, learning_rate: T) -> Result<Self, ConfigError> {
        Self::with_hyperparameters(dim, learning_rate, lit(0.9), lit(0.999), lit(1e-7))
    }

    /// Adam with every hyperparameter given.
    ///
    /// # Errors
    /// [`ConfigError::InvalidLearningRate`], [`ConfigError::InvalidBeta1`],
    /// [`ConfigError::InvalidBeta2`] or [`ConfigError::InvalidEpsilon`].
    pub fn with_hyperparameters(
        dim: usize,
        learning_rate: T,
        beta1: T,
        beta2: T,
        epsilon: T,
    ) -> Result<Self, ConfigError> {
        let s = Self {
            learning_rate,
            beta1,
            beta2,
            epsilon,
            t: 0,
            m: vec![T::zero(); dim],
            v: vec![T::zero(); dim],
            rate: None,
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let unit = |x: T| x >= T::zero() && x < T::one();
        if !(self.learning_rate.is_finite() && self.learning_rate > T::zero()) {
            return Err(ConfigError::InvalidLearningRate);
        }
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

    /// `η·√(1−β₂ᵗ)/(1−β₁ᵗ)`, the step size of step `t` (t ≥ 1).
    fn rate_at(&self, t: u64) -> T {
        let tt: T = lit(t as f64);
        self.learning_rate * (T::one() - self.beta2.powf(tt)).sqrt()
            / (T::one() - self.beta1.powf(tt))
    }

    /// Starts step `t + 1`: advances the step count used for bias correction.
    pub fn begin_step(&mut self) {
        self.t += 1;
        self.rate = Some(self.rate_at(self.t));
    }

    /// Updates `θ[offset .. offset + θ.len()]` with gradient `g`, inside the step opened by
    /// [`Adam::begin_step`].
    ///
    /// # Panics
    /// If `θ` and `g` differ in length or the range exceeds the dimension.
    #[track_caller]
    pub fn update(&mut self, offset: usize, theta: &mut [T], g: &[T]) {
        assert_eq!(
            theta.len(),
            g.len(),
            "Adam::update: θ and g differ in length"
        );
        let end = offset + g.len();
        let (b1, b2, eps) = (self.beta1, self.beta2, self.epsilon);
        let rate = self.rate.unwrap_or_else(|| self.rate_at(self.t.max(1)));
        let (c1, c2) = (T::one() - b1, T::one() - b2);
        let moments = self.m[offset..end].iter_mut().zip(&mut self.v[offset..end]);
        for ((th, &gi), (mi, vi)) in theta.iter_mut().zip(g).zip(moments) {
            *mi = b1 * *mi + c1 * gi;
            *vi = b2 * *vi + c2 * gi * gi;
            *th = *th - rate * *mi / (vi.sqrt() + eps);
        }
    }

    /// The coefficients of the open step (`rate` as in [`Adam::update`]).
    fn coefficients(&self) -> AdamCoefficients<T> {
        AdamCoefficients {
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            rate: self.rate.unwrap_or_else(|| self.rate_at(self.t.max(1))),
        }
    }

    /// The fused form of [`Adam::update`] for one block layer: the backward outputs with the
    /// old `θ_l`, then Adam on `θ_l[offset..]` with the gradient `s·(a_b c_bᵀ + d_b e_bᵀ)`
    /// computed block by block and never stored ([`lodo_kernels::block_diagonal::backward_pair_adam`]).
    ///
    /// # Panics
    /// If the shapes disagree (see the kernel) or the range exceeds the dimension.
    #[track_caller]
    pub fn update_block_layer(
        &mut self,
        kernels: Kernels,
        offset: usize,
        step: BlockLayerStep<'_, T>,
    ) {
        let co = self.coefficients();
        let end = offset + step.theta.len();
        let state = AdamSlices {
            theta: step.theta,
            m: &mut self.m[offset..end],
            v: &mut self.v[offset..end],
        };
        kernels.backward_pair_adam(step.k, step.pair, state, co, step.zad);
    }

    /// Number of variables.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.m.len()
    }

    /// Steps taken.
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The learning rate `η`.
    #[must_use]
    pub fn learning_rate(&self) -> T {
        self.learning_rate
    }

    pub(crate) fn validate_state(&mut self, dim: usize) -> Result<(), StateError> {
        self.validate()?;
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
        self.rate = (self.t > 0).then(|| self.rate_at(self.t));
        Ok(())
    }
}

impl<T: Real> crate::Optimizer<T> for Adam<T> {
    fn dim(&self) -> usize {
        self.m.len()
    }

    /// One Adam step on the caller's parameters. Atomic: on error nothing changes.
    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<(), StepError> {
        crate::optimizer::check_inputs(self.m.len(), params, grad)?;
        let rate = self.rate_at(self.t + 1);
        let (b1, b2, eps) = (self.beta1, self.beta2, self.epsilon);
        let (c1, c2) = (T::one() - b1, T::one() - b2);
        let candidate = |i: usize| {
            let mi = b1 * self.m[i] + c1 * grad[i];
            let vi = b2 * self.v[i] + c2 * grad[i] * grad[i];
            (mi, vi, params[i] - rate * mi / (vi.sqrt() + eps))
        };
        if let Some(index) = (0..params.len()).find(|&i| !candidate(i).2.is_finite()) {
            return Err(StepError::NonFiniteStep { index });
        }
        self.t += 1;
        self.rate = Some(rate);
        self.update(0, params, grad);
        Ok(())
    }
}

/// Plain gradient descent `θ ← θ − η g`: the paper's "LODO-SGD" ablation meta-optimizer.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Sgd<T> {
    learning_rate: T,
    dim: usize,
}

impl<T: Real> Sgd<T> {
    /// SGD for `dim` variables with learning rate `η`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidLearningRate`] unless `η` is finite and positive.
    pub fn new(dim: usize, learning_rate: T) -> Result<Self, ConfigError> {
        if !(learning_rate.is_finite() && learning_rate > T::zero()) {
            return Err(ConfigError::InvalidLearningRate);
        }
        Ok(Self { learning_rate, dim })
    }

    /// `θ ← θ − η g` on one slice.
    ///
    /// # Panics
    /// If `θ` and `g` differ in length.
    #[track_caller]
    pub fn update(&mut self, theta: &mut [T], g: &[T]) {
        assert_eq!(
            theta.len(),
            g.len(),
            "Sgd::update: θ and g differ in length"
        );
        for (th, &gi) in theta.iter_mut().zip(g) {
            *th = *th - self.learning_rate * gi;
        }
    }
}

impl<T: Real> crate::Optimizer<T> for Sgd<T> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<(), StepError> {
        crate::optimizer::check_inputs(self.dim, params, grad)?;
        let lr = self.learning_rate;
        if let Some(index) = params
            .iter()
            .zip(grad)
            .position(|(&x, &g)| !(x - lr * g).is_finite())
        {
            return Err(StepError::NonFiniteStep { index });
        }
        self.update(params, grad);
        Ok(())
    }
}

/// The meta-optimizer of a [`crate::Lodo`]: Adam (the paper's choice) or SGD (its ablation).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MetaOptimizer<T> {
    /// Keras-form Adam.
    Adam(Adam<T>),
    /// Plain SGD.
    Sgd(Sgd<T>),
}

impl<T: Real> MetaOptimizer<T> {
    /// Opens a meta-step.
    pub fn begin_step(&mut self) {
        if let Self::Adam(a) = self {
            a.begin_step();
        }
    }

    /// Updates the slice `θ[offset..]` of the weights with its hypergradient `g`.
    #[track_caller]
    pub fn update(&mut self, offset: usize, theta: &mut [T], g: &[T]) {
        match self {
            Self::Adam(a) => a.update(offset, theta, g),
            Self::Sgd(s) => s.update(theta, g),
        }
    }

    /// One block layer of LODO's backward step with its meta-update: the backward outputs
    /// `zad` with the old `θ_l`, then `θ_l` updated with the hypergradient
    /// `s·(â_b c_bᵀ + d̂_b e_bᵀ)`. Adam fuses both ([`Adam::update_block_layer`]: `θ, M, V` read
    /// and written once, no gradient stored); SGD materialises the gradient in `scratch`
    /// (`θ_l.len()` numbers, [`lodo_kernels::block_diagonal::backward_pair_gradient`]) and
    /// applies [`Sgd::update`].
    ///
    /// # Panics
    /// If the shapes disagree or `scratch` is too short for SGD.
    #[track_caller]
    pub fn update_block_layer(
        &mut self,
        kernels: Kernels,
        offset: usize,
        step: BlockLayerStep<'_, T>,
        scratch: &mut [T],
    ) {
        match self {
            Self::Adam(a) => a.update_block_layer(kernels, offset, step),
            Self::Sgd(s) => {
                let grad = &mut scratch[..step.theta.len()];
                kernels.backward_pair_gradient(step.k, step.pair, step.theta, grad, step.zad);
                s.update(step.theta, grad);
            }
        }
    }

    pub(crate) fn validate_state(&mut self, dim: usize) -> Result<(), StateError> {
        match self {
            Self::Adam(a) => a.validate_state(dim),
            Self::Sgd(s) => {
                if !(s.learning_rate.is_finite() && s.learning_rate > T::zero()) {
                    return Err(ConfigError::InvalidMetaLearningRate.into());
                }
                if s.dim != dim {
                    return Err(StateError::Length {
                        what: "SGD dimension",
                        expected: dim,
                        found: s.dim,
                    });
                }
                Ok(())
            }
        }
    }
}
