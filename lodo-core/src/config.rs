//! Validated hyperparameters of LODO (paper §3 and Appendix; defaults from the authors'
//! `training/lodo.py`).

use crate::error::ConfigError;
use crate::real::{Real, lit};

/// Which meta-optimizer trains `θ`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MetaKind<T> {
    /// Keras-form Adam (the paper's choice).
    Adam {
        /// `β₁` (default 0.9).
        beta1: T,
        /// `β₂` (default 0.999).
        beta2: T,
        /// `ε` (default 1e−7).
        epsilon: T,
    },
    /// Plain SGD (the paper's "LODO-SGD" ablation).
    Sgd,
}

/// LODO's hyperparameters. Every setter validates; [`LodoConfig::hidden_for`] validates the
/// parts that depend on the problem size.
///
/// | symbol | field | default |
/// |---|---|---|
/// | `α₀` | initial learning rate, `G = α₀·I` at the start | 1.0 |
/// | `η` | meta learning rate | 1e−3 |
/// | `β` | momentum of the gradient average `m` | 0.9 |
/// | `N` | layers of `A` | 16 (64 for [`LodoConfig::residual`]) |
/// | `k` | block size | 4 |
/// | `h` | hidden width | `k·⌈2n/k⌉` |
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LodoConfig<T> {
    alpha0: T,
    meta_lr: T,
    beta: T,
    layers: usize,
    block_size: usize,
    hidden: Option<usize>,
    meta: MetaKind<T>,
}

impl<T: Real> Default for LodoConfig<T> {
    fn default() -> Self {
        Self {
            alpha0: T::one(),
            meta_lr: lit(1e-3),
            beta: lit(0.9),
            layers: 16,
            block_size: 4,
            hidden: None,
            meta: MetaKind::Adam {
                beta1: lit(0.9),
                beta2: lit(0.999),
                epsilon: lit(1e-7),
            },
        }
    }
}

impl<T: Real> LodoConfig<T> {
    /// The defaults of the residual ablation (`N = 64`; the authors' `LODOWithResiduals`).
    #[must_use]
    pub fn residual() -> Self {
        Self {
            layers: 64,
            ..Self::default()
        }
    }

    /// Sets `α₀`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidAlpha0`] unless finite and positive.
    pub fn with_alpha0(mut self, alpha0: T) -> Result<Self, ConfigError> {
        if !(alpha0.is_finite() && alpha0 > T::zero()) {
            return Err(ConfigError::InvalidAlpha0);
        }
        self.alpha0 = alpha0;
        Ok(self)
    }

    /// Sets the meta learning rate `η`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidMetaLearningRate`] unless finite and positive.
    pub fn with_meta_lr(mut self, meta_lr: T) -> Result<Self, ConfigError> {
        if !(meta_lr.is_finite() && meta_lr > T::zero()) {
            return Err(ConfigError::InvalidMetaLearningRate);
        }
        self.meta_lr = meta_lr;
        Ok(self)
    }

    /// Sets the momentum `β` (0 disables momentum: the paper's "no momentum" ablation).
    ///
    /// # Errors
    /// [`ConfigError::InvalidMomentum`] unless `0 ≤ β < 1`.
    pub fn with_beta(mut self, beta: T) -> Result<Self, ConfigError> {
        if !(beta >= T::zero() && beta < T::one()) {
            return Err(ConfigError::InvalidMomentum);
        }
        self.beta = beta;
        Ok(self)
    }

    /// Sets the number of layers `N`.
    ///
    /// # Errors
    /// [`ConfigError::ZeroLayers`] if `N = 0`.
    pub fn with_layers(mut self, layers: usize) -> Result<Self, ConfigError> {
        if layers == 0 {
            return Err(ConfigError::ZeroLayers);
        }
        self.layers = layers;
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

    /// Overrides the hidden width `h` (checked against `n` and `k` when the optimizer is built).
    ///
    /// # Errors
    /// Never at this point; the `Result` keeps the builder uniform.
    pub fn with_hidden(mut self, hidden: usize) -> Result<Self, ConfigError> {
        self.hidden = Some(hidden);
        Ok(self)
    }

    /// Uses Adam with the given `β₁`, `β₂`, `ε` as the meta-optimizer.
    ///
    /// # Errors
    /// [`ConfigError::InvalidBeta1`], [`ConfigError::InvalidBeta2`] or
    /// [`ConfigError::InvalidEpsilon`].
    pub fn with_meta_adam(mut self, beta1: T, beta2: T, epsilon: T) -> Result<Self, ConfigError> {
        let unit = |x: T| x >= T::zero() && x < T::one();
        if !unit(beta1) {
            return Err(ConfigError::InvalidBeta1);
        }
        if !unit(beta2) {
            return Err(ConfigError::InvalidBeta2);
        }
        if !(epsilon.is_finite() && epsilon > T::zero()) {
            return Err(ConfigError::InvalidEpsilon);
        }
        self.meta = MetaKind::Adam {
            beta1,
            beta2,
            epsilon,
        };
        Ok(self)
    }

    /// Uses plain SGD as the meta-optimizer (the paper's LODO-SGD ablation).
    #[must_use]
    pub fn with_meta_sgd(mut self) -> Self {
        self.meta = MetaKind::Sgd;
        self
    }

    /// `α₀`.
    #[must_use]
    pub fn alpha0(&self) -> T {
        self.alpha0
    }
    /// `η`.
    #[must_use]
    pub fn meta_lr(&self) -> T {
        self.meta_lr
    }
    /// `β`.
    #[must_use]
    pub fn beta(&self) -> T {
        self.beta
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
    /// The meta-optimizer.
    #[must_use]
    pub fn meta(&self) -> MetaKind<T> {
        self.meta
    }

    /// The hidden width for `n` parameters with block size `k`: the override, or `k·⌈2n/k⌉`.
    ///
    /// # Errors
    /// [`ConfigError::EmptyProblem`], [`ConfigError::HiddenTooSmall`],
    /// [`ConfigError::HiddenNotMultipleOfBlock`] or [`ConfigError::TooLarge`].
    pub fn hidden_for(&self, n: usize, k: usize) -> Result<usize, ConfigError> {
        if n == 0 {
            return Err(ConfigError::EmptyProblem);
        }
        let h = match self.hidden {
            Some(h) => h,
            None => n
                .checked_mul(2)
                .and_then(|t| t.div_ceil(k).checked_mul(k))
                .ok_or(ConfigError::TooLarge)?,
        };
        if h < n {
            return Err(ConfigError::HiddenTooSmall { hidden: h, dim: n });
        }
        if h % k != 0 {
            return Err(ConfigError::HiddenNotMultipleOfBlock {
                hidden: h,
                block_size: k,
            });
        }
        if h > u32::MAX as usize
            || h.checked_mul(k)
                .and_then(|x| x.checked_mul(self.layers + 1))
                .is_none()
        {
            return Err(ConfigError::TooLarge);
        }
        Ok(h)
    }

    /// The meta-optimizer for `dim` weights.
    pub(crate) fn build_meta(
        &self,
        dim: usize,
    ) -> Result<crate::meta::MetaOptimizer<T>, ConfigError> {
        use crate::meta::{Adam, MetaOptimizer, Sgd};
        let bad_lr = |e| {
            if e == ConfigError::InvalidLearningRate {
                ConfigError::InvalidMetaLearningRate
            } else {
                e
            }
        };
        Ok(match self.meta {
            MetaKind::Adam {
                beta1,
                beta2,
                epsilon,
            } => MetaOptimizer::Adam(
                Adam::with_hyperparameters(dim, self.meta_lr, beta1, beta2, epsilon)
                    .map_err(bad_lr)?,
            ),
            MetaKind::Sgd => MetaOptimizer::Sgd(Sgd::new(dim, self.meta_lr).map_err(bad_lr)?),
        })
    }
}
