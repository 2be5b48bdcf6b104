//! Optimizers by name, with their hyperparameters, the authors' defaults
//! (`training/hyperparameter_setup.py`) and how the tuner normalises each one
//! (`tuning/hyperparameter_normalization.py`).

use std::fmt;
use std::str::FromStr;

use lodo_core::{
    Adam, AdamConfig, BlockPreconditioner, ConfigError, Diagonal, Global, Lodo, LodoConfig,
    MetaConfig, MetaOptimizer, Preconditioner, Real, Residual, Sgd, lit,
};

use super::{
    Bfgs, Lars, Lbfgs, LbfgsVariant, LevenbergMarquardt, LodoMinimizer, Momentum, RmsProp, Yogi,
};
use crate::task::{FirstOrder, Minimizer};

/// The L-BFGS buffer size the authors used (`buffer_size=48`).
pub const LBFGS_BUFFER: usize = 48;

/// Why an optimizer could not be built.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BuildError {
    /// A hyperparameter is out of its range.
    Hyperparameter {
        /// Its name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What it must be.
        expected: &'static str,
    },
    /// The wrong number of hyperparameters was given.
    Count {
        /// The optimizer.
        optimizer: &'static str,
        /// How many it takes.
        expected: usize,
        /// How many were given.
        found: usize,
    },
    /// LODO rejected its configuration.
    Config(ConfigError),
    /// Bad LARS layer starts or a zero step budget.
    Layers,
    /// The optimizer needs exact Hessian-vector products, which the task does not provide.
    NeedsHessian(&'static str),
    /// No optimizer has this name.
    Unknown(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hyperparameter {
                name,
                value,
                expected,
            } => write!(f, "hyperparameter {name} = {value} must be {expected}"),
            Self::Count {
                optimizer,
                expected,
                found,
            } => write!(
                f,
                "{optimizer} takes {expected} hyperparameters, {found} given"
            ),
            Self::Config(e) => write!(f, "LODO configuration: {e}"),
            Self::Layers => write!(
                f,
                "LARS needs layer starts 0 = s₀ < s₁ < … < n and a step budget ≥ 1"
            ),
            Self::NeedsHessian(o) => write!(
                f,
                "{o} needs exact Hessian-vector products, which this task does not provide"
            ),
            Self::Unknown(name) => write!(
                f,
                "unknown optimizer {name:?}; known: {}",
                OptimizerKind::ALL
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

pub(crate) fn check_positive<T: Real>(name: &'static str, v: T) -> Result<(), BuildError> {
    if v.is_finite() && v > T::zero() {
        Ok(())
    } else {
        Err(BuildError::Hyperparameter {
            name,
            value: v.to_f64().unwrap_or(f64::NAN),
            expected: "finite and > 0",
        })
    }
}

pub(crate) fn check_unit<T: Real>(name: &'static str, v: T) -> Result<(), BuildError> {
    if v >= T::zero() && v < T::one() {
        Ok(())
    } else {
        Err(BuildError::Hyperparameter {
            name,
            value: v.to_f64().unwrap_or(f64::NAN),
            expected: "in [0, 1)",
        })
    }
}

/// How the tuner maps a hyperparameter to its normalised coordinate `z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// `z = log x`, `x = eˢ` (learning rates, scales).
    Log,
    /// `z = log(max(1e−30, 1 − x))`, `x = max(0, 1 − eᶻ)` (momenta and β-like decays).
    Decay,
}

impl Scale {
    /// Value → normalised coordinate.
    #[must_use]
    pub fn normalize(self, x: f64) -> f64 {
        match self {
            Self::Log => x.ln(),
            Self::Decay => (1.0 - x).max(1e-30).ln(),
        }
    }

    /// Normalised coordinate → value.
    #[must_use]
    pub fn unnormalize(self, z: f64) -> f64 {
        match self {
            Self::Log => z.exp(),
            Self::Decay => (1.0 - z.exp()).max(0.0),
        }
    }
}

/// One tunable hyperparameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HyperParam {
    /// Its name, as in the authors' code.
    pub name: &'static str,
    /// The authors' default.
    pub default: f64,
    /// Its normalisation.
    pub scale: Scale,
}

const fn hp(name: &'static str, default: f64, scale: Scale) -> HyperParam {
    HyperParam {
        name,
        default,
        scale,
    }
}

/// Every optimizer of the harness, named as in the authors' code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OptimizerKind {
    /// Keras SGD with momentum.
    Momentum,
    /// Keras RMSprop.
    RmsProp,
    /// Keras Adam ([`lodo_core::Adam`]).
    Adam,
    /// Yogi (authors' form).
    Yogi,
    /// LARS (authors' form).
    Lars,
    /// L-BFGS without line search.
    Lbfgs,
    /// O-LBFGS.
    OLbfgs,
    /// Dense BFGS with a fixed step.
    Bfgs,
    /// Levenberg–Marquardt.
    LevenbergMarquardt,
    /// LODO (block network, Adam meta-optimizer).
    Lodo,
    /// LODO with `G = α₀·diag(w)`.
    LodoDiagonal,
    /// LODO with `G = α₀·w·I`.
    LodoGlobal,
    /// LODO with the residual network (`N = 64`).
    LodoResiduals,
    /// LODO with `β = 0`.
    LodoNoMomentum,
    /// LODO with an SGD meta-optimizer.
    LodoSgd,
}

impl OptimizerKind {
    /// All kinds, in table order.
    pub const ALL: [Self; 15] = [
        Self::Momentum,
        Self::RmsProp,
        Self::Adam,
        Self::Yogi,
        Self::Lars,
        Self::Lbfgs,
        Self::OLbfgs,
        Self::Bfgs,
        Self::LevenbergMarquardt,
        Self::Lodo,
        Self::LodoDiagonal,
        Self::LodoGlobal,
        Self::LodoResiduals,
        Self::LodoNoMomentum,
        Self::LodoSgd,
    ];

    /// The LODO ablations (paper §5.3).
    pub const ABLATIONS: [Self; 5] = [
        Self::LodoDiagonal,
        Self::LodoGlobal,
        Self::LodoResiduals,
        Self::LodoNoMomentum,
        Self::LodoSgd,
    ];

    /// The name used in tables, file names and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Momentum => "Momentum",
            Self::RmsProp => "RMSprop",
            Self::Adam => "Adam",
            Self::Yogi => "Yogi",
            Self::Lars => "LARS",
            Self::Lbfgs => "L-BFGS",
            Self::OLbfgs => "O-LBFGS",
            Self::Bfgs => "BFGS",
            Self::LevenbergMarquardt => "Levenberg-Marquardt",
            Self::Lodo => "LODO",
            Self::LodoDiagonal => "LODO-Diagonal",
            Self::LodoGlobal => "LODO-Global",
            Self::LodoResiduals => "LODO-Residuals",
            Self::LodoNoMomentum => "LODO-No-Momentum",
            Self::LodoSgd => "LODO-SGD",
        }
    }

    /// Whether this is LODO or one of its ablations.
    #[must_use]
    pub fn is_lodo(self) -> bool {
        matches!(
            self,
            Self::Lodo
                | Self::LodoDiagonal
                | Self::LodoGlobal
                | Self::LodoResiduals
                | Self::LodoNoMomentum
                | Self::LodoSgd
        )
    }

    /// The tunable hyperparameters with the authors' defaults. (RMSprop's `rho` is normalised
    /// as a decay here; the authors' name-based rule put it on the log scale.)
    #[must_use]
    pub fn hyperparameters(self) -> &'static [HyperParam] {
        use Scale::{Decay, Log};
        const LODO: [HyperParam; 3] = [
            hp("initial_lr", 1.0, Log),
            hp("meta_lr", 1e-3, Log),
            hp("beta", 0.9, Decay),
        ];
        const LODO_NO_MOMENTUM: [HyperParam; 2] =
            [hp("initial_lr", 1.0, Log), hp("meta_lr", 1e-3, Log)];
        const LBFGS: [HyperParam; 3] = [
            hp("eta_0", 1e-3, Log),
            hp("tau", 1e4, Log),
            hp("epsilon", 1e-10, Log),
        ];
        const MOMENTUM: [HyperParam; 2] = [hp("lr", 0.01, Log), hp("momentum", 0.0, Decay)];
        const RMSPROP: [HyperParam; 3] = [
            hp("lr", 1e-3, Log),
            hp("rho", 0.9, Decay),
            hp("momentum", 0.0, Decay),
        ];
        const ADAM: [HyperParam; 3] = [
            hp("lr", 1e-3, Log),
            hp("beta_1", 0.9, Decay),
            hp("beta_2", 0.999, Decay),
        ];
        const YOGI: [HyperParam; 3] = [
            hp("lr", 1e-3, Log),
            hp("beta1", 0.9, Decay),
            hp("beta2", 0.999, Decay),
        ];
        const LARS: [HyperParam; 3] = [
            hp("lr", 1e-3, Log),
            hp("momentum", 0.9, Decay),
            hp("weight_decay", 5e-4, Log),
        ];
        const BFGS: [HyperParam; 2] = [hp("lr", 0.01, Log), hp("H0_scale", 1.0, Log)];
        const LM: [HyperParam; 1] = [hp("lam", 1.0, Log)];
        match self {
            Self::Momentum => &MOMENTUM,
            Self::RmsProp => &RMSPROP,
            Self::Adam => &ADAM,
            Self::Yogi => &YOGI,
            Self::Lars => &LARS,
            Self::Lbfgs | Self::OLbfgs => &LBFGS,
            Self::Bfgs => &BFGS,
            Self::LevenbergMarquardt => &LM,
            Self::LodoNoMomentum => &LODO_NO_MOMENTUM,
            Self::Lodo
            | Self::LodoDiagonal
            | Self::LodoGlobal
            | Self::LodoResiduals
            | Self::LodoSgd => &LODO,
        }
    }

    /// The authors' default hyperparameter values.
    #[must_use]
    pub fn defaults(self) -> Vec<f64> {
        self.hyperparameters().iter().map(|h| h.default).collect()
    }

    /// Builds the optimizer with hyperparameters `values` (in [`Self::hyperparameters`] order).
    ///
    /// # Errors
    /// [`BuildError`] for a wrong count, an out-of-range value, a LODO configuration error, or
    /// Levenberg–Marquardt on a task without Hessian-vector products.
    pub fn build<T: Real>(
        self,
        values: &[f64],
        ctx: &BuildContext,
    ) -> Result<Box<dyn Minimizer<T>>, BuildError> {
        let expected = self.hyperparameters().len();
        if values.len() != expected {
            return Err(BuildError::Count {
                optimizer: self.name(),
                expected,
                found: values.len(),
            });
        }
        let v = |i: usize| -> T { lit(values[i]) };
        let n = ctx.dim;
        // LODO's values: α₀, η and β (β = 0 for the no-momentum ablation, which has no β).
        let lodo = |values: &[f64]| LodoValues {
            alpha0: values[0],
            meta_lr: values[1],
            beta: values.get(2).copied().unwrap_or(0.0),
            seed: ctx.seed,
        };
        Ok(match self {
            Self::Momentum => Box::new(FirstOrder::new(Momentum::new(n, v(0), v(1))?)),
            Self::RmsProp => Box::new(FirstOrder::new(RmsProp::new(n, v(0), v(1), v(2))?)),
            Self::Adam => {
                check_positive("lr", v(0))?;
                check_unit("beta_1", v(1))?;
                check_unit("beta_2", v(2))?;
                let config = AdamConfig::default()
                    .with_learning_rate(v(0))?
                    .with_moments(v(1), v(2), lit(1e-7))?;
                Box::new(FirstOrder::new(Adam::from_config(&config, n)?))
            }
            Self::Yogi => Box::new(FirstOrder::new(Yogi::new(n, v(0), v(1), v(2))?)),
            Self::Lars => {
                let whole = [0];
                let starts = ctx.layer_starts.as_deref().unwrap_or(&whole);
                Box::new(FirstOrder::new(Lars::new(
                    n,
                    v(0),
                    v(1),
                    v(2),
                    ctx.total_steps,
                    starts,
                )?))
            }
            Self::Lbfgs | Self::OLbfgs => {
                let variant = if self == Self::Lbfgs {
                    LbfgsVariant::NoLineSearch
                } else {
                    LbfgsVariant::Online
                };
                Box::new(Lbfgs::new(variant, n, v(0), v(1), v(2), LBFGS_BUFFER)?)
            }
            Self::Bfgs => Box::new(Bfgs::new(n, v(0), v(1))?),
            Self::LevenbergMarquardt => {
                if !ctx.hessian_vector {
                    return Err(BuildError::NeedsHessian(self.name()));
                }
                Box::new(LevenbergMarquardt::new(n, v(0))?)
            }
            Self::Lodo | Self::LodoNoMomentum => {
                lodo(values).build::<T, BlockPreconditioner<T>, Adam<T>>(n)?
            }
            Self::LodoSgd => lodo(values).build::<T, BlockPreconditioner<T>, Sgd<T>>(n)?,
            Self::LodoDiagonal => lodo(values).build::<T, Diagonal<T>, Adam<T>>(n)?,
            Self::LodoGlobal => lodo(values).build::<T, Global<T>, Adam<T>>(n)?,
            Self::LodoResiduals => lodo(values).build::<T, Residual<T>, Adam<T>>(n)?,
        })
    }
}

/// LODO's tuned values and seed; [`LodoValues::build`] makes any architecture and meta-optimizer
/// from them (every other setting at its default).
struct LodoValues {
    alpha0: f64,
    meta_lr: f64,
    beta: f64,
    seed: u64,
}

impl LodoValues {
    fn build<T, P, M>(&self, n: usize) -> Result<Box<dyn Minimizer<T>>, BuildError>
    where
        T: Real,
        P: Preconditioner<T> + Send + 'static,
        M: MetaOptimizer<T> + Send + 'static,
    {
        let config = LodoConfig::<T, P::Config, M::Config>::default()
            .with_alpha0(lit(self.alpha0))?
            .with_meta_lr(lit(self.meta_lr))?
            .with_beta(lit(self.beta))?;
        Ok(Box::new(LodoMinimizer::new(Lodo::<T, P, M>::new(
            n, config, self.seed,
        )?)))
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OptimizerKind {
    type Err = BuildError;

    /// Case-insensitive; `-` and `_` are interchangeable.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = |x: &str| x.to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|k| key(k.name()) == key(s))
            .ok_or_else(|| BuildError::Unknown(s.to_string()))
    }
}

/// What [`OptimizerKind::build`] needs to know about the run.
#[derive(Clone, Debug, Default)]
pub struct BuildContext {
    /// Number of parameters `n`.
    pub dim: usize,
    /// The run's budget of evaluations (LARS's decay `(1 − t/T)²`).
    pub total_steps: u64,
    /// Seed of LODO's permutations and initial blocks.
    pub seed: u64,
    /// LARS layer starts; `None` means one layer.
    pub layer_starts: Option<Vec<usize>>,
    /// Whether the task gives exact Hessian-vector products.
    pub hessian_vector: bool,
}
