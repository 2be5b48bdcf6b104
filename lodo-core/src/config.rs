//! Validated hyperparameters of LODO (paper §3 and Appendix; defaults from the authors'
//! `training/lodo.py`).
//!
//! Each part owns its settings: [`LodoConfig`] holds what every LODO has (the momentum `β`), the
//! preconditioner's configuration (e.g. [`crate::BlockConfig`]: `α₀`, `N`, `k`, `h`) and the
//! meta-optimizer's (e.g. [`crate::AdamConfig`]: `η`, `β₁`, `β₂`, `ε`). Which parts a
//! [`crate::Lodo`] has is decided by its type; `LodoConfig::default()` then picks the matching
//! defaults:
//!
//! ```
//! use lodo_core::{BlockConfig, DiagonalLodo, Lodo, LodoConfig, SgdConfig, SgdLodo};
//!
//! // The paper's LODO with α₀ = 0.5 and η = 1e-4.
//! let config = LodoConfig::default().with_alpha0(0.5)?.with_meta_lr(1e-4)?;
//! let lodo = Lodo::<f64>::new(10, config, 1)?;
//! // Eight layers of 3 × 3 blocks, trained by SGD.
//! let network = BlockConfig::default().with_layers(8)?.with_block_size(3)?;
//! let config = LodoConfig::new(network, SgdConfig::default()).with_beta(0.5)?;
//! let sgd: SgdLodo<f64> = Lodo::new(10, config, 1)?;
//! // The diagonal ablation with its defaults.
//! let diagonal = DiagonalLodo::<f32>::new(10, LodoConfig::default(), 1)?;
//! # Ok::<(), lodo_core::ConfigError>(())
//! ```

use core::fmt::Debug;

use crate::error::ConfigError;
use crate::meta::{AdamConfig, MetaConfig};
use crate::preconditioner::BlockConfig;
use crate::real::{Real, lit};

/// The configuration of a preconditioner architecture: validated plain data with the scale `α₀`
/// every architecture has (`G = α₀·…`).
pub trait PreconditionerConfig<T: Real>: Copy + Debug + PartialEq + Default {
    /// `α₀`.
    fn alpha0(&self) -> T;

    /// Sets `α₀`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidAlpha0`] unless finite and positive.
    fn with_alpha0(self, alpha0: T) -> Result<Self, ConfigError>;
}

/// LODO's hyperparameters: the momentum `β` of the gradient average `m` (default 0.9), the
/// preconditioner's configuration `PC` and the meta-optimizer's `MC`. Every setter validates;
/// the parts that depend on the problem size are checked by [`crate::Lodo::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LodoConfig<T, PC = BlockConfig<T>, MC = AdamConfig<T>> {
    beta: T,
    preconditioner: PC,
    meta: MC,
}

impl<T: Real, PC: Default, MC: Default> Default for LodoConfig<T, PC, MC> {
    fn default() -> Self {
        Self {
            beta: lit(0.9),
            preconditioner: PC::default(),
            meta: MC::default(),
        }
    }
}

impl<T: Real, PC: PreconditionerConfig<T>, MC: MetaConfig<T>> LodoConfig<T, PC, MC> {
    /// The given parts with the default momentum `β = 0.9`.
    #[must_use]
    pub fn new(preconditioner: PC, meta: MC) -> Self {
        Self {
            beta: lit(0.9),
            preconditioner,
            meta,
        }
    }

    /// Sets the momentum `β` (0 disables momentum: the paper's "no momentum" ablation).
    ///
    /// # Errors
    /// [`ConfigError::InvalidMomentum`] unless `0 ≤ β < 1`.
    pub fn with_beta(mut self, beta: T) -> Result<Self, ConfigError> {
        check_momentum(beta)?;
        self.beta = beta;
        Ok(self)
    }

    /// Sets the preconditioner's `α₀` (shorthand for [`PreconditionerConfig::with_alpha0`]).
    ///
    /// # Errors
    /// [`ConfigError::InvalidAlpha0`] unless finite and positive.
    pub fn with_alpha0(mut self, alpha0: T) -> Result<Self, ConfigError> {
        self.preconditioner = self.preconditioner.with_alpha0(alpha0)?;
        Ok(self)
    }

    /// Sets the meta learning rate `η` (shorthand for [`MetaConfig::with_learning_rate`]).
    ///
    /// # Errors
    /// [`ConfigError::InvalidMetaLearningRate`] unless finite and positive.
    pub fn with_meta_lr(mut self, meta_lr: T) -> Result<Self, ConfigError> {
        self.meta = self
            .meta
            .with_learning_rate(meta_lr)
            .map_err(|_| ConfigError::InvalidMetaLearningRate)?;
        Ok(self)
    }

    /// Replaces the preconditioner's configuration (of the same architecture; a configuration
    /// of another one makes another type: [`LodoConfig::new`]).
    #[must_use]
    pub fn with_preconditioner(mut self, preconditioner: PC) -> Self {
        self.preconditioner = preconditioner;
        self
    }

    /// Replaces the meta-optimizer's configuration (of the same meta-optimizer; see
    /// [`LodoConfig::new`]).
    #[must_use]
    pub fn with_meta(mut self, meta: MC) -> Self {
        self.meta = meta;
        self
    }

    /// `β`.
    #[must_use]
    pub fn beta(&self) -> T {
        self.beta
    }

    /// `α₀`.
    #[must_use]
    pub fn alpha0(&self) -> T {
        self.preconditioner.alpha0()
    }

    /// The meta learning rate `η`.
    #[must_use]
    pub fn meta_lr(&self) -> T {
        self.meta.learning_rate()
    }

    /// The preconditioner's configuration.
    #[must_use]
    pub fn preconditioner(&self) -> &PC {
        &self.preconditioner
    }

    /// The meta-optimizer's configuration.
    #[must_use]
    pub fn meta(&self) -> &MC {
        &self.meta
    }
}

/// `0 ≤ β < 1`.
pub(crate) fn check_momentum<T: Real>(beta: T) -> Result<(), ConfigError> {
    if beta >= T::zero() && beta < T::one() {
        Ok(())
    } else {
        Err(ConfigError::InvalidMomentum)
    }
}

/// `α₀` finite and positive.
pub(crate) fn check_alpha0<T: Real>(alpha0: T) -> Result<(), ConfigError> {
    if alpha0.is_finite() && alpha0 > T::zero() {
        Ok(())
    } else {
        Err(ConfigError::InvalidAlpha0)
    }
}

/// `*slot ← α₀` if valid ([`check_alpha0`]); unchanged otherwise.
pub(crate) fn set_alpha0<T: Real>(slot: &mut T, alpha0: T) -> Result<(), ConfigError> {
    check_alpha0(alpha0)?;
    *slot = alpha0;
    Ok(())
}

/// `N ≥ 1` layers.
pub(crate) fn check_layers(layers: usize) -> Result<usize, ConfigError> {
    if layers == 0 {
        Err(ConfigError::ZeroLayers)
    } else {
        Ok(layers)
    }
}

/// A hidden-width override that fits the `u32` permutation indices (checked against `n` and `k`
/// by [`hidden_width`] when the network is built).
pub(crate) fn check_hidden(hidden: usize) -> Result<Option<usize>, ConfigError> {
    if hidden > u32::MAX as usize {
        Err(ConfigError::TooLarge)
    } else {
        Ok(Some(hidden))
    }
}

/// The hidden width of a network of `layers` layers of `k × k` blocks over `n` parameters: the
/// override, or `k·⌈2n/k⌉` (the authors' `h ≈ 2n`).
///
/// # Errors
/// [`ConfigError::EmptyProblem`], [`ConfigError::HiddenTooSmall`],
/// [`ConfigError::HiddenNotMultipleOfBlock`] or [`ConfigError::TooLarge`] (`h` beyond the `u32`
/// permutation indices, or `(N+1)·h·k` beyond `usize`).
pub fn hidden_width(
    n: usize,
    k: usize,
    layers: usize,
    hidden: Option<usize>,
) -> Result<usize, ConfigError> {
    if n == 0 {
        return Err(ConfigError::EmptyProblem);
    }
    if k == 0 {
        return Err(ConfigError::ZeroBlockSize);
    }
    let h = match hidden {
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
            .and_then(|x| x.checked_mul(layers.checked_add(1)?))
            .is_none()
    {
        return Err(ConfigError::TooLarge);
    }
    Ok(h)
}
