//! Plain gradient descent: the paper's "LODO-SGD" ablation meta-optimizer (§5.3).

use super::{MetaConfig, MetaOptimizer, check_learning_rate};
use crate::error::{ConfigError, StateError, StepError};
use crate::optimizer::{Optimizer, check_inputs};
use crate::real::{Real, lit};

/// SGD's hyperparameter: the learning rate `η` (default 1e−3, as LODO's meta learning rate).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SgdConfig<T> {
    learning_rate: T,
}

impl<T: Real> Default for SgdConfig<T> {
    fn default() -> Self {
        Self {
            learning_rate: lit(1e-3),
        }
    }
}

impl<T: Real> MetaConfig<T> for SgdConfig<T> {
    fn learning_rate(&self) -> T {
        self.learning_rate
    }

    fn with_learning_rate(mut self, learning_rate: T) -> Result<Self, ConfigError> {
        check_learning_rate(learning_rate)?;
        self.learning_rate = learning_rate;
        Ok(self)
    }
}

/// Plain gradient descent `θ ← θ − η g`.
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
        check_learning_rate(learning_rate)?;
        Ok(Self { learning_rate, dim })
    }
}

impl<T: Real> MetaOptimizer<T> for Sgd<T> {
    type Config = SgdConfig<T>;
    const NAME: &'static str = "Sgd";

    fn from_config(config: &SgdConfig<T>, dim: usize) -> Result<Self, ConfigError> {
        Self::new(dim, config.learning_rate)
    }

    /// Nothing beyond the struct itself.
    fn memory_bytes(_dim: usize) -> Result<usize, ConfigError> {
        Ok(0)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn learning_rate(&self) -> T {
        self.learning_rate
    }

    /// `θ ← θ − η g` on one slice (`offset` only locates it); a weight whose new value would
    /// not be finite keeps its old one (counted).
    #[track_caller]
    fn update(&mut self, offset: usize, theta: &mut [T], g: &[T]) -> usize {
        assert_eq!(
            theta.len(),
            g.len(),
            "Sgd::update: θ and g differ in length"
        );
        assert!(
            offset + g.len() <= self.dim,
            "Sgd::update: range exceeds the dimension"
        );
        let mut kept = 0;
        for (th, &gi) in theta.iter_mut().zip(g) {
            let new = *th - self.learning_rate * gi;
            if new.is_finite() {
                *th = new;
            } else {
                kept += 1;
            }
        }
        kept
    }

    fn validate_state(&mut self, dim: usize) -> Result<(), StateError> {
        check_learning_rate(self.learning_rate)?;
        if self.dim != dim {
            return Err(StateError::Length {
                what: "SGD dimension",
                expected: dim,
                found: self.dim,
            });
        }
        Ok(())
    }
}

impl<T: Real> Optimizer<T> for Sgd<T> {
    fn dim(&self) -> usize {
        self.dim
    }

    /// One SGD step on the caller's parameters. Atomic: on error nothing changes.
    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<(), StepError> {
        check_inputs(self.dim, params, grad)?;
        let lr = self.learning_rate;
        if let Some(index) = params
            .iter()
            .zip(grad)
            .position(|(&x, &g)| !(x - lr * g).is_finite())
        {
            return Err(StepError::NonFiniteStep { index });
        }
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
        Ok(())
    }
}
