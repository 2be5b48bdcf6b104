//! The interface shared by LODO and every first-order optimizer (the harness's baselines
//! implement it too): what a framework adapter (candle, burn, argmin) needs, and nothing more.

use crate::error::{ConfigError, StepError};
use crate::real::{Real, first_non_finite};

/// An optimizer that turns the gradient at the current parameters into a step, in place.
///
/// Contract: on `Err`, the caller's `params` are unchanged. Inputs are checked (length, NaN/±∞)
/// before anything changes.
pub trait Optimizer<T: Real> {
    /// Number of parameters `n`.
    fn dim(&self) -> usize;

    /// One step: `params ← params + Δ(grad)`, where `grad = ∇ℓ(params)`.
    ///
    /// # Errors
    /// [`StepError::GradientLength`], [`StepError::ParamsLength`],
    /// [`StepError::NonFiniteGradient`] (nothing changed) or [`StepError::NonFiniteStep`]
    /// (parameters unchanged).
    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<(), StepError>;

    /// The learning rate, in the sense each optimizer documents: for [`crate::Lodo`] the
    /// preconditioner's scale `α₀` (`G = α₀·I` at the start), for Adam and SGD their `η`.
    fn learning_rate(&self) -> T;

    /// Sets the learning rate (same meaning as [`Optimizer::learning_rate`]) for the following
    /// steps.
    ///
    /// # Errors
    /// [`ConfigError::InvalidLearningRate`] (or [`ConfigError::InvalidAlpha0`] for LODO) unless
    /// finite and positive; nothing changes then.
    fn set_learning_rate(&mut self, learning_rate: T) -> Result<(), ConfigError>;
}

/// The checks every [`Optimizer::step`] makes before touching anything.
///
/// # Errors
/// As [`Optimizer::step`], except `NonFiniteStep`.
pub fn check_inputs<T: Real>(dim: usize, params: &[T], grad: &[T]) -> Result<(), StepError> {
    if grad.len() != dim {
        return Err(StepError::GradientLength {
            expected: dim,
            found: grad.len(),
        });
    }
    if params.len() != dim {
        return Err(StepError::ParamsLength {
            expected: dim,
            found: params.len(),
        });
    }
    if let Some(index) = first_non_finite(grad) {
        return Err(StepError::NonFiniteGradient { index });
    }
    Ok(())
}

/// Applies a precomputed step `params ← params − s` if every result is finite.
///
/// # Errors
/// [`StepError::NonFiniteStep`] with the first offending index; `params` unchanged.
pub fn apply_descent<T: Real>(params: &mut [T], s: &[T]) -> Result<(), StepError> {
    if let Some(index) = params
        .iter()
        .zip(s)
        .position(|(&x, &si)| !(x - si).is_finite())
    {
        return Err(StepError::NonFiniteStep { index });
    }
    for (x, &si) in params.iter_mut().zip(s) {
        *x = *x - si;
    }
    Ok(())
}
