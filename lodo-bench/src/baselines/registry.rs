//! The one registry of optimizers: [`OptimizerKind`] names them (tables, file names, the
//! command line, seeds); [`Optimizer`] is one with its typed hyperparameters, the authors'
//! defaults (`training/hyperparameter_setup.py`) and how the tuner normalises each field
//! (`tuning/hyperparameter_normalization.py`); [`Optimizer::build`] constructs it. Every LODO
//! (the paper's LODO, its ablations and the MNIST sweeps) is constructed in [`build_lodo`].

use std::fmt;
use std::str::FromStr;

use lodo_core::{
    Adam, AdamConfig, BlockConfig, ConfigError, DiagonalConfig, DiagonalLodo, GlobalConfig,
    GlobalLodo, Lodo, LodoConfig, MetaConfig, MetaOptimizer, PermutationFamily, Precision,
    PreconditionerConfig, Real, ResidualConfig, ResidualLodo, SgdConfig, SgdLodo, WeightPrecision,
    lit,
};

use super::{
    Bfgs, Lars, Lbfgs, LbfgsVariant, LevenbergMarquardt, LodoMinimizer, Momentum, RmsProp, Yogi,
};
use crate::task::{FirstOrder, Minimizer, StateFloat};

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
    /// The wrong number of hyperparameter values was given (to [`Optimizer::with_values`]).
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
    /// The optimizer has no hyperparameter of this name.
    UnknownHyperparameter {
        /// The optimizer.
        optimizer: &'static str,
        /// The name given.
        name: String,
    },
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
                OptimizerKind::names()
            ),
            Self::UnknownHyperparameter { optimizer, name } => {
                let known: Vec<&str> = OptimizerKind::from_name(optimizer)
                    .map(|k| k.defaults().fields().iter().map(|h| h.name).collect())
                    .unwrap_or_default();
                write!(
                    f,
                    "{optimizer} has no hyperparameter {name:?}; it has {}",
                    known.join(", ")
                )
            }
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

/// One tunable hyperparameter, as the tuner sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HyperParam {
    /// Its name, as in the authors' code.
    pub name: &'static str,
    /// Its value (the tuner's start; the authors' default in [`OptimizerKind::hyperparameters`]).
    pub default: f64,
    /// Its normalisation.
    pub scale: Scale,
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
    /// All kinds, in table order (a kind's position is its [`OptimizerKind::id`]).
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

    /// Every name, comma-separated (for help texts and errors).
    #[must_use]
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// The kind named exactly `name` (as [`OptimizerKind::name`] spells it).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind's position in [`OptimizerKind::ALL`], a stable part of derived seeds.
    #[must_use]
    pub fn id(self) -> u64 {
        self as u64
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

    /// Whether it uses exact Hessian–vector products besides gradients (Levenberg–Marquardt):
    /// not a gradient-only method like the others.
    #[must_use]
    pub fn uses_hessian(self) -> bool {
        matches!(self, Self::LevenbergMarquardt)
    }

    /// Whether a run of it can be checkpointed (its state saved and restored bit for bit):
    /// every first-order optimizer and every LODO, not the quasi-Newton methods and
    /// Levenberg–Marquardt.
    #[must_use]
    pub fn checkpointable(self) -> bool {
        !matches!(
            self,
            Self::Lbfgs | Self::OLbfgs | Self::Bfgs | Self::LevenbergMarquardt
        )
    }

    /// Whether it keeps an `n × n` matrix (BFGS, Levenberg–Marquardt).
    #[must_use]
    pub fn is_dense(self) -> bool {
        matches!(self, Self::Bfgs | Self::LevenbergMarquardt)
    }

    /// The optimizer with the authors' default hyperparameters. (RMSprop's `rho` is normalised
    /// as a decay here; the authors' name-based rule put it on the log scale.)
    #[must_use]
    pub fn defaults(self) -> Optimizer {
        let lodo = |variant| {
            Optimizer::Lodo(LodoParams {
                alpha0: 1.0,
                meta_lr: 1e-3,
                beta: 0.9,
                variant,
            })
        };
        let lbfgs = LbfgsParams {
            eta_0: 1e-3,
            tau: 1e4,
            epsilon: 1e-10,
        };
        match self {
            Self::Momentum => Optimizer::Momentum {
                lr: 0.01,
                momentum: 0.0,
            },
            Self::RmsProp => Optimizer::RmsProp {
                lr: 1e-3,
                rho: 0.9,
                momentum: 0.0,
            },
            Self::Adam => Optimizer::Adam {
                lr: 1e-3,
                beta_1: 0.9,
                beta_2: 0.999,
            },
            Self::Yogi => Optimizer::Yogi {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
            },
            Self::Lars => Optimizer::Lars {
                lr: 1e-3,
                momentum: 0.9,
                weight_decay: 5e-4,
            },
            Self::Lbfgs => Optimizer::Lbfgs(lbfgs),
            Self::OLbfgs => Optimizer::OLbfgs(lbfgs),
            Self::Bfgs => Optimizer::Bfgs {
                lr: 0.01,
                h0_scale: 1.0,
            },
            Self::LevenbergMarquardt => Optimizer::LevenbergMarquardt { lam: 1.0 },
            Self::Lodo => lodo(LodoVariant::BLOCK),
            Self::LodoDiagonal => lodo(LodoVariant::Diagonal),
            Self::LodoGlobal => lodo(LodoVariant::Global),
            Self::LodoResiduals => lodo(LodoVariant::Residuals),
            Self::LodoNoMomentum => lodo(LodoVariant::NoMomentum),
            Self::LodoSgd => lodo(LodoVariant::Sgd),
        }
    }

    /// The tunable hyperparameters with the authors' defaults, in the authors' order.
    #[must_use]
    pub fn hyperparameters(self) -> Vec<HyperParam> {
        self.defaults().fields()
    }
}

/// L-BFGS's and O-LBFGS's hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbfgsParams {
    /// Step size `η₀` (`eta_0`).
    pub eta_0: f64,
    /// Step decay horizon `τ` (`tau`; O-LBFGS's `η₀·τ/(τ+t)`).
    pub tau: f64,
    /// Curvature-pair and initial-scaling guard `ε` (`epsilon`).
    pub epsilon: f64,
}

/// How the block network's optimizer state is stored between steps (issue 17): the precision
/// of Adam's moments of `θ` (`AdamConfig::with_precision`) and of the kept activations
/// `p_l(m)`, `p_l(g)` (`BlockConfig::with_activations`), and of `θ` itself
/// (`BlockConfig::with_weights`: in the working float, or in f32 below f64). The arithmetic stays
/// in the working float either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StatePolicy {
    /// Everything in the working float: the paper's arithmetic, bit for bit.
    #[default]
    Full,
    /// Moments in bf16 (seeded stochastic rounding), activations in bf16 (nearest).
    Bf16,
    /// Moments in 8-bit block-wise log codes, activations in bf16 (nearest): the smallest
    /// state (at n = 10⁶ in f32 with `Shuffle`: 966 bytes per parameter against 1,860).
    Q8,
    /// As [`StatePolicy::Q8`] with `θ` held in f32: f64 tasks only (an f32 task gets LODO's
    /// typed configuration error). At n = 10⁶ in f64 with `Shuffle`: 1,034 bytes per parameter
    /// against 3,720.
    Q8Theta32,
}

impl StatePolicy {
    /// Every policy, the full one first.
    pub const ALL: [Self; 4] = [Self::Full, Self::Bf16, Self::Q8, Self::Q8Theta32];

    /// Its command-line name: `full`, `bf16`, `q8`, `q8-theta32`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Bf16 => "bf16",
            Self::Q8 => "q8",
            Self::Q8Theta32 => "q8-theta32",
        }
    }

    /// How `θ` is held.
    #[must_use]
    pub fn weights(self) -> WeightPrecision {
        match self {
            Self::Q8Theta32 => WeightPrecision::F32,
            _ => WeightPrecision::Full,
        }
    }

    /// `(moments, activations)`: the precisions lodo-core is configured with.
    #[must_use]
    pub fn precisions(self) -> (Precision, Precision) {
        match self {
            Self::Full => (Precision::Full, Precision::Full),
            Self::Bf16 => (Precision::Bf16, Precision::Bf16),
            Self::Q8 | Self::Q8Theta32 => (Precision::Q8, Precision::Bf16),
        }
    }
}

impl fmt::Display for StatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StatePolicy {
    type Err = String;

    /// `full`, `bf16`, `q8` or `q8-theta32`, case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.name() == key)
            .ok_or_else(|| {
                format!(
                    "unknown state policy {:?}; known: full, bf16, q8, q8-theta32",
                    s.trim()
                )
            })
    }
}

/// Which LODO: the preconditioner architecture and meta-optimizer of each ablation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LodoVariant {
    /// The block network with `layers` (N), `block_size` (k), the layer permutations drawn
    /// from `permutations` and the stored state's precision `state`; Adam meta-optimizer.
    Block {
        /// Layers `N`.
        layers: usize,
        /// Block size `k`.
        block_size: usize,
        /// The family of the layer permutations `P_l` (`Random`: the paper).
        permutations: PermutationFamily,
        /// How the optimizer state is stored (`Full`: the paper).
        state: StatePolicy,
    },
    /// `G = α₀·diag(w)`.
    Diagonal,
    /// `G = α₀·w·I`.
    Global,
    /// The residual network (`N = 64`).
    Residuals,
    /// The block network with `β = 0` (the `beta` field is ignored and not tuned).
    NoMomentum,
    /// The block network with an SGD meta-optimizer.
    Sgd,
}

impl LodoVariant {
    /// The paper's block network (`N = 16`, `k = 4`, random permutations).
    pub const BLOCK: Self = Self::Block {
        layers: 16,
        block_size: 4,
        permutations: PermutationFamily::Random,
        state: StatePolicy::Full,
    };

    /// The paper's block network (`N = 16`, `k = 4`) with the layer permutations drawn from
    /// `family` and the state stored as `state`.
    #[must_use]
    pub fn block_with(family: PermutationFamily, state: StatePolicy) -> Self {
        Self::Block {
            layers: 16,
            block_size: 4,
            permutations: family,
            state,
        }
    }

    /// The permutation family of a block network (`None` for the diagonal, global and
    /// residual preconditioners; the no-momentum and SGD ablations use `Random`).
    #[must_use]
    pub fn permutations(self) -> Option<PermutationFamily> {
        match self {
            Self::Block { permutations, .. } => Some(permutations),
            Self::NoMomentum | Self::Sgd => Some(PermutationFamily::Random),
            Self::Diagonal | Self::Global | Self::Residuals => None,
        }
    }
}

/// LODO's hyperparameters and variant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LodoParams {
    /// Initial step `α₀` (`initial_lr`): `G = α₀·I` at the start.
    pub alpha0: f64,
    /// Meta learning rate `η` (`meta_lr`).
    pub meta_lr: f64,
    /// Momentum `β` (`beta`).
    pub beta: f64,
    /// Architecture and meta-optimizer.
    pub variant: LodoVariant,
}

/// An optimizer with its typed hyperparameters (field names as in the authors' code).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Keras SGD with momentum.
    Momentum {
        /// Learning rate.
        lr: f64,
        /// Momentum.
        momentum: f64,
    },
    /// Keras RMSprop.
    RmsProp {
        /// Learning rate.
        lr: f64,
        /// Decay of the squared-gradient average.
        rho: f64,
        /// Momentum.
        momentum: f64,
    },
    /// Keras Adam.
    Adam {
        /// Learning rate.
        lr: f64,
        /// First-moment decay.
        beta_1: f64,
        /// Second-moment decay.
        beta_2: f64,
    },
    /// Yogi.
    Yogi {
        /// Learning rate.
        lr: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
    },
    /// LARS.
    Lars {
        /// Learning rate.
        lr: f64,
        /// Momentum.
        momentum: f64,
        /// Weight decay.
        weight_decay: f64,
    },
    /// L-BFGS without line search.
    Lbfgs(LbfgsParams),
    /// O-LBFGS.
    OLbfgs(LbfgsParams),
    /// Dense BFGS.
    Bfgs {
        /// Fixed step.
        lr: f64,
        /// Scale of the initial inverse Hessian (`H0_scale`).
        h0_scale: f64,
    },
    /// Levenberg–Marquardt.
    LevenbergMarquardt {
        /// Damping `λ` (`lam`).
        lam: f64,
    },
    /// LODO or one of its ablations.
    Lodo(LodoParams),
}

/// Which hyperparameters the tuner moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TuneScope {
    /// All of them (the synthetic tasks, as the authors).
    All,
    /// Only the learning rates (LODO: `α₀` and `η`), and LODO's `β` if `beta` (MNIST).
    Rates {
        /// Also LODO's `β`.
        beta: bool,
    },
}

/// A hyperparameter field of an [`Optimizer`]: the one typed mapping between the typed
/// hyperparameters and the tuner's vectors.
struct Slot<'a> {
    name: &'static str,
    scale: Scale,
    /// A learning rate (tuned in [`TuneScope::Rates`]).
    rate: bool,
    value: &'a mut f64,
}

impl Optimizer {
    /// Its kind (name).
    #[must_use]
    pub fn kind(&self) -> OptimizerKind {
        match self {
            Self::Momentum { .. } => OptimizerKind::Momentum,
            Self::RmsProp { .. } => OptimizerKind::RmsProp,
            Self::Adam { .. } => OptimizerKind::Adam,
            Self::Yogi { .. } => OptimizerKind::Yogi,
            Self::Lars { .. } => OptimizerKind::Lars,
            Self::Lbfgs(_) => OptimizerKind::Lbfgs,
            Self::OLbfgs(_) => OptimizerKind::OLbfgs,
            Self::Bfgs { .. } => OptimizerKind::Bfgs,
            Self::LevenbergMarquardt { .. } => OptimizerKind::LevenbergMarquardt,
            Self::Lodo(p) => match p.variant {
                LodoVariant::Block { .. } => OptimizerKind::Lodo,
                LodoVariant::Diagonal => OptimizerKind::LodoDiagonal,
                LodoVariant::Global => OptimizerKind::LodoGlobal,
                LodoVariant::Residuals => OptimizerKind::LodoResiduals,
                LodoVariant::NoMomentum => OptimizerKind::LodoNoMomentum,
                LodoVariant::Sgd => OptimizerKind::LodoSgd,
            },
        }
    }

    fn slots(&mut self) -> Vec<Slot<'_>> {
        use Scale::{Decay, Log};
        let s = |name, scale, rate, value| Slot {
            name,
            scale,
            rate,
            value,
        };
        match self {
            Self::Momentum { lr, momentum } => {
                vec![
                    s("lr", Log, true, lr),
                    s("momentum", Decay, false, momentum),
                ]
            }
            Self::RmsProp { lr, rho, momentum } => vec![
                s("lr", Log, true, lr),
                s("rho", Decay, false, rho),
                s("momentum", Decay, false, momentum),
            ],
            Self::Adam { lr, beta_1, beta_2 } => vec![
                s("lr", Log, true, lr),
                s("beta_1", Decay, false, beta_1),
                s("beta_2", Decay, false, beta_2),
            ],
            Self::Yogi { lr, beta1, beta2 } => vec![
                s("lr", Log, true, lr),
                s("beta1", Decay, false, beta1),
                s("beta2", Decay, false, beta2),
            ],
            Self::Lars {
                lr,
                momentum,
                weight_decay,
            } => vec![
                s("lr", Log, true, lr),
                s("momentum", Decay, false, momentum),
                s("weight_decay", Log, false, weight_decay),
            ],
            Self::Lbfgs(p) | Self::OLbfgs(p) => vec![
                s("eta_0", Log, true, &mut p.eta_0),
                s("tau", Log, false, &mut p.tau),
                s("epsilon", Log, false, &mut p.epsilon),
            ],
            Self::Bfgs { lr, h0_scale } => {
                vec![s("lr", Log, true, lr), s("H0_scale", Log, false, h0_scale)]
            }
            Self::LevenbergMarquardt { lam } => vec![s("lam", Log, false, lam)],
            Self::Lodo(p) => {
                let mut v = vec![
                    s("initial_lr", Log, true, &mut p.alpha0),
                    s("meta_lr", Log, true, &mut p.meta_lr),
                ];
                if p.variant != LodoVariant::NoMomentum {
                    v.push(s("beta", Decay, false, &mut p.beta));
                }
                v
            }
        }
    }

    /// Its tunable hyperparameters with their current values, in the authors' order.
    #[must_use]
    pub fn fields(&self) -> Vec<HyperParam> {
        self.scoped_fields(TuneScope::All)
    }

    /// The hyperparameters `scope` tunes, with their current values.
    #[must_use]
    pub fn scoped_fields(&self, scope: TuneScope) -> Vec<HyperParam> {
        let mut copy = *self;
        copy.slots()
            .into_iter()
            .filter(|s| match scope {
                TuneScope::All => true,
                TuneScope::Rates { beta } => s.rate || (beta && s.name == "beta"),
            })
            .map(|s| HyperParam {
                name: s.name,
                default: *s.value,
                scale: s.scale,
            })
            .collect()
    }

    /// The values of [`Optimizer::fields`].
    #[must_use]
    pub fn values(&self) -> Vec<f64> {
        self.fields().iter().map(|h| h.default).collect()
    }

    /// With every field of [`Optimizer::fields`] set to `values`, in order.
    ///
    /// # Errors
    /// [`BuildError::Count`] unless there is one value per field.
    pub fn with_values(mut self, values: &[f64]) -> Result<Self, BuildError> {
        let kind = self.kind();
        let mut slots = self.slots();
        if slots.len() != values.len() {
            return Err(BuildError::Count {
                optimizer: kind.name(),
                expected: slots.len(),
                found: values.len(),
            });
        }
        for (s, &v) in slots.iter_mut().zip(values) {
            *s.value = v;
        }
        Ok(self)
    }

    /// With the fields `names` set to `values`.
    ///
    /// # Errors
    /// [`BuildError::UnknownHyperparameter`] for a name the optimizer does not have, or
    /// [`BuildError::Count`] if the lengths differ.
    pub fn with_named<S: AsRef<str>>(
        mut self,
        names: &[S],
        values: &[f64],
    ) -> Result<Self, BuildError> {
        let kind = self.kind();
        if names.len() != values.len() {
            return Err(BuildError::Count {
                optimizer: kind.name(),
                expected: names.len(),
                found: values.len(),
            });
        }
        let mut slots = self.slots();
        for (name, &v) in names.iter().zip(values) {
            let slot = slots
                .iter_mut()
                .find(|s| s.name == name.as_ref())
                .ok_or_else(|| BuildError::UnknownHyperparameter {
                    optimizer: kind.name(),
                    name: name.as_ref().to_string(),
                })?;
            *slot.value = v;
        }
        Ok(self)
    }

    /// Builds the optimizer for a run described by `ctx`.
    ///
    /// # Errors
    /// [`BuildError`] for an out-of-range value, a LODO configuration error, or
    /// Levenberg–Marquardt on a task without Hessian-vector products.
    pub fn build<T: StateFloat>(
        &self,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Minimizer<T>>, BuildError> {
        let v = |x: f64| -> T { lit(x) };
        let n = ctx.dim;
        Ok(match *self {
            Self::Momentum { lr, momentum } => {
                Box::new(FirstOrder::new(Momentum::new(n, v(lr), v(momentum))?))
            }
            Self::RmsProp { lr, rho, momentum } => Box::new(FirstOrder::new(RmsProp::new(
                n,
                v(lr),
                v(rho),
                v(momentum),
            )?)),
            Self::Adam { lr, beta_1, beta_2 } => {
                check_positive("lr", v(lr))?;
                check_unit("beta_1", v(beta_1))?;
                check_unit("beta_2", v(beta_2))?;
                let config = AdamConfig::default()
                    .with_learning_rate(v(lr))?
                    .with_moments(v(beta_1), v(beta_2), lit(1e-7))?;
                Box::new(FirstOrder::new(Adam::from_config(&config, n)?))
            }
            Self::Yogi { lr, beta1, beta2 } => {
                Box::new(FirstOrder::new(Yogi::new(n, v(lr), v(beta1), v(beta2))?))
            }
            Self::Lars {
                lr,
                momentum,
                weight_decay,
            } => {
                let whole = [0];
                let starts = ctx.layer_starts.as_deref().unwrap_or(&whole);
                Box::new(FirstOrder::new(Lars::new(
                    n,
                    v(lr),
                    v(momentum),
                    v(weight_decay),
                    ctx.total_steps,
                    starts,
                )?))
            }
            Self::Lbfgs(p) | Self::OLbfgs(p) => {
                let variant = if matches!(self, Self::Lbfgs(_)) {
                    LbfgsVariant::NoLineSearch
                } else {
                    LbfgsVariant::Online
                };
                Box::new(Lbfgs::new(
                    variant,
                    n,
                    v(p.eta_0),
                    v(p.tau),
                    v(p.epsilon),
                    LBFGS_BUFFER,
                )?)
            }
            Self::Bfgs { lr, h0_scale } => Box::new(Bfgs::new(n, v(lr), v(h0_scale))?),
            Self::LevenbergMarquardt { lam } => {
                if !ctx.hessian_vector {
                    return Err(BuildError::NeedsHessian(self.kind().name()));
                }
                Box::new(LevenbergMarquardt::new(n, v(lam))?)
            }
            Self::Lodo(p) => build_lodo::<T>(&p, n, ctx.seed)?.into_minimizer(),
        })
    }
}

/// A constructed LODO: one variant per preconditioner type.
#[derive(Clone, Debug)]
pub enum BuiltLodo<T: Real> {
    /// The block network (LODO, no momentum, the MNIST sweeps).
    Block(Lodo<T>),
    /// The block network trained by an SGD meta-optimizer.
    Sgd(SgdLodo<T>),
    /// `G = α₀·diag(w)`.
    Diagonal(DiagonalLodo<T>),
    /// `G = α₀·w·I`.
    Global(GlobalLodo<T>),
    /// The residual network.
    Residual(ResidualLodo<T>),
}

impl<T: StateFloat> BuiltLodo<T> {
    /// As a [`Minimizer`] exposing its preconditioner.
    #[must_use]
    pub fn into_minimizer(self) -> Box<dyn Minimizer<T>> {
        match self {
            Self::Block(l) => Box::new(LodoMinimizer::new(l)),
            Self::Sgd(l) => Box::new(LodoMinimizer::new(l)),
            Self::Diagonal(l) => Box::new(LodoMinimizer::new(l)),
            Self::Global(l) => Box::new(LodoMinimizer::new(l)),
            Self::Residual(l) => Box::new(LodoMinimizer::new(l)),
        }
    }
}

/// Constructs LODO (every variant) for `n` parameters from `p`; `seed` draws the permutations
/// (from the block network's [`PermutationFamily`]) and initial blocks. This is the only place a LODO optimizer is configured and built.
///
/// # Errors
/// [`BuildError::Config`] if LODO rejects the configuration.
pub fn build_lodo<T: Real>(
    p: &LodoParams,
    n: usize,
    seed: u64,
) -> Result<BuiltLodo<T>, BuildError> {
    let beta = if p.variant == LodoVariant::NoMomentum {
        0.0
    } else {
        p.beta
    };
    // Every part at its default but α₀, η, β (and N, k, the permutation family and the state's
    // precision for the block network's sweeps and layouts).
    let adam = AdamConfig::default();
    let network = BlockConfig::default();
    Ok(match p.variant {
        LodoVariant::Block {
            layers,
            block_size,
            permutations,
            state,
        } => {
            let (moments, activations) = state.precisions();
            let network = network
                .with_layers(layers)?
                .with_block_size(block_size)?
                .with_permutations(permutations)?
                .with_activations(activations)?
                .with_weights(state.weights())?;
            let adam = adam.with_precision(moments);
            BuiltLodo::Block(Lodo::new(n, tuned_config(network, adam, p, beta)?, seed)?)
        }
        LodoVariant::NoMomentum => {
            BuiltLodo::Block(Lodo::new(n, tuned_config(network, adam, p, beta)?, seed)?)
        }
        LodoVariant::Sgd => {
            let config = tuned_config(network, SgdConfig::default(), p, beta)?;
            BuiltLodo::Sgd(SgdLodo::new(n, config, seed)?)
        }
        LodoVariant::Diagonal => {
            let config = tuned_config(DiagonalConfig::default(), adam, p, beta)?;
            BuiltLodo::Diagonal(DiagonalLodo::new(n, config, seed)?)
        }
        LodoVariant::Global => {
            let config = tuned_config(GlobalConfig::default(), adam, p, beta)?;
            BuiltLodo::Global(GlobalLodo::new(n, config, seed)?)
        }
        LodoVariant::Residuals => {
            let config = tuned_config(ResidualConfig::default(), adam, p, beta)?;
            BuiltLodo::Residual(ResidualLodo::new(n, config, seed)?)
        }
    })
}

/// LODO's configuration from its parts and the tuned `α₀`, `η` and `β`.
fn tuned_config<T: Real, PC: PreconditionerConfig<T>, MC: MetaConfig<T>>(
    preconditioner: PC,
    meta: MC,
    p: &LodoParams,
    beta: f64,
) -> Result<LodoConfig<T, PC, MC>, BuildError> {
    Ok(LodoConfig::new(preconditioner, meta)
        .with_alpha0(lit(p.alpha0))?
        .with_meta_lr(lit(p.meta_lr))?
        .with_beta(lit(beta))?)
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

/// Parses an [`OptimizerKind`] on the command line and lists every name in `--help`.
#[derive(Clone, Copy, Debug, Default)]
pub struct KindParser;

impl clap::builder::TypedValueParser for KindParser {
    type Value = OptimizerKind;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<OptimizerKind, clap::Error> {
        let s = value.to_string_lossy();
        s.parse().map_err(|e: BuildError| {
            let arg = arg.map_or_else(|| "...".to_string(), ToString::to_string);
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value '{s}' for '{arg}': {e}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            OptimizerKind::ALL
                .into_iter()
                .map(|k| clap::builder::PossibleValue::new(k.name())),
        ))
    }
}

impl clap::builder::ValueParserFactory for OptimizerKind {
    type Parser = KindParser;

    fn value_parser() -> KindParser {
        KindParser
    }
}

/// What [`Optimizer::build`] needs to know about the run.
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
