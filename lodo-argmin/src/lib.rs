//! LODO as an [`argmin`] [`Solver`]: [`LodoSolver`].
//!
//! ```
//! use argmin::core::{CostFunction, Error, Executor, Gradient};
//! use lodo_argmin::LodoSolver;
//! use lodo_core::LodoConfig;
//!
//! /// ½‖x − 1‖².
//! struct Bowl;
//! impl CostFunction for Bowl {
//!     type Param = Vec<f64>;
//!     type Output = f64;
//!     fn cost(&self, x: &Vec<f64>) -> Result<f64, Error> {
//!         Ok(x.iter().map(|xi| 0.5 * (xi - 1.0).powi(2)).sum())
//!     }
//! }
//! impl Gradient for Bowl {
//!     type Param = Vec<f64>;
//!     type Gradient = Vec<f64>;
//!     fn gradient(&self, x: &Vec<f64>) -> Result<Vec<f64>, Error> {
//!         Ok(x.iter().map(|xi| xi - 1.0).collect())
//!     }
//! }
//!
//! let solver = LodoSolver::new(LodoConfig::default().with_alpha0(0.5)?, 42);
//! let result = Executor::new(Bowl, solver)
//!     .configure(|state| state.param(vec![0.0; 10]).max_iters(200))
//!     .run()?;
//! assert!(result.state.best_cost < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # One iteration
//! With `x_t` the state's parameter (its cost already known):
//! 1. one gradient evaluation `g_t = ∇f(x_t)`,
//! 2. one LODO step `x_{t+1} = x_t − G(θ)·m_t` ([`lodo_core::Lodo::step`]),
//! 3. one cost evaluation `f(x_{t+1})`, which argmin uses for the best parameter, the target
//!    cost and the observers; it never enters the step.
//!
//! [`Solver::init`] evaluates `f(x₀)` once. So a run of `k` iterations makes exactly `k`
//! gradient and `k + 1` cost evaluations, and no line search: LODO's contract is one gradient per
//! step.
//!
//! # Stochastic problems
//! A problem whose `gradient` (and `cost`) draw a new sample at each call is supported: the
//! solver never evaluates the gradient twice at one iterate and never compares costs, so noise
//! cannot stall it the way it stalls a line search. Evaluations happen in the order
//! `cost(x₀)`, then per iteration `gradient(x_t)`, `cost(x_{t+1})`: a problem that draws its
//! sample in `cost` and evaluates `gradient` on the latest draw sees one sample per iteration,
//! with loss and gradient of one iterate on the same sample (the convention of the paper's noisy
//! bowl; see `examples/argmin_compare.rs`).
//!
//! The state's `gradient` is not set (the gradient evaluated in an iteration belongs to the
//! previous parameter); its norm is reported to observers as `gradient_norm`, with the step's
//! norm as `step_norm`.
//!
//! # Checkpointing
//! [`LodoSolver`] is `Serialize + Deserialize` (the whole LODO state, validated by
//! [`lodo_core::Lodo::from_state`] on load), so argmin's checkpointing resumes a run bit for bit.
//!
//! # Compact state
//! The state-precision policy of lodo-core (issue 17: [`lodo_core::Precision`]) is part of the
//! configuration the solver takes, so a compact solver is built like any other:
//!
//! ```
//! use lodo_argmin::LodoSolver;
//! use lodo_core::{
//!     AdamConfig, BlockConfig, LodoConfig, PermutationFamily, Precision, WeightPrecision,
//! };
//!
//! // 8-bit block-wise Adam moments, bf16 kept activations, the weights θ in f32 (f64 only),
//! // the streamed shuffle wiring: 1,034 bytes per parameter (checked below), against 3,720
//! // for the full f64 state with the same wiring (lodo-core's README).
//! let block = BlockConfig::default()
//!     .with_permutations(PermutationFamily::Shuffle)?
//!     .with_activations(Precision::Bf16)?
//!     .with_weights(WeightPrecision::F32)?;
//! let config = LodoConfig::new(block, AdamConfig::default().with_precision(Precision::Q8))
//!     .with_alpha0(0.5)?;
//! let solver: LodoSolver<f64> = LodoSolver::new(config, 42);
//! // What the optimizer will hold for a million parameters (a formula, nothing allocated).
//! let bytes = lodo_core::Lodo::<f64>::memory_bytes(1_000_000, solver.config())?;
//! assert_eq!(bytes / 1_000_000, 1_034);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A checkpoint of a compact solver holds the compact state and resumes it bit for bit
//! (tested), whatever the configuration of the solver it is loaded into. `θ` in `f32`
//! ([`lodo_core::WeightPrecision::F32`]) needs `T = f64`: with `f32` the builder returns
//! [`ConfigError::UnsupportedWeightPrecision`], and a configuration that carries it anyway
//! (deserialised) stops the run with [`LodoSolverError::Config`].
//!
//! # Errors
//! Every failure is an [`argmin::core::Error`] wrapping a [`LodoSolverError`] (recover it with
//! `downcast_ref`): no parameter set, a parameter of the wrong length, an invalid configuration,
//! or a step LODO refused (non-finite gradient or step; the state's parameter is then unchanged).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;

use argmin::core::{
    ArgminFloat, CostFunction, Error, Gradient, IterState, KV, Problem, Solver, State,
};
use lodo_core::{
    Adam, BlockPreconditioner, ConfigError, Lodo, LodoConfig, LodoState, MetaOptimizer,
    Preconditioner, Real, StepError,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The state type [`LodoSolver`] runs on: parameter and gradient `Vec<T>`, cost `T`.
pub type LodoIterState<T> = IterState<Vec<T>, Vec<T>, (), (), (), T>;

/// The configuration of `Lodo<T, P, M>`.
pub type ConfigOf<T, P, M> =
    LodoConfig<T, <P as Preconditioner<T>>::Config, <M as MetaOptimizer<T>>::Config>;

/// Why [`LodoSolver`] stopped with an error (inside an [`argmin::core::Error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LodoSolverError {
    /// The state has no parameter: set one with `configure(|s| s.param(x0))`.
    NoParameter,
    /// The parameter's length is not the dimension of the (restored or given) LODO.
    ParamLength {
        /// LODO's dimension.
        expected: usize,
        /// The parameter's length.
        found: usize,
    },
    /// The configuration is invalid for this problem (e.g. an empty parameter).
    Config(ConfigError),
    /// LODO refused the step; the state's parameter is unchanged.
    Step(StepError),
}

impl fmt::Display for LodoSolverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoParameter => write!(
                f,
                "LODO needs an initial parameter: configure the executor with `state.param(x0)`"
            ),
            Self::ParamLength { expected, found } => write!(
                f,
                "the parameter has length {found}, the LODO state has dimension {expected}"
            ),
            Self::Config(e) => write!(f, "invalid LODO configuration: {e}"),
            Self::Step(e) => write!(f, "LODO step refused: {e}"),
        }
    }
}

impl std::error::Error for LodoSolverError {}

/// LODO as an argmin solver for problems with `CostFunction + Gradient` over `Vec<T>`
/// (`T` = `f32` or `f64`); see the [crate docs](crate) for what one iteration evaluates.
///
/// The LODO optimizer is created in [`Solver::init`] from the initial parameter's length, the
/// configuration and the seed, unless the solver already holds one of that dimension (restored
/// from a checkpoint, or carried over with [`LodoSolver::from_lodo`]).
#[derive(Clone, Debug)]
pub struct LodoSolver<
    T: Real,
    P: Preconditioner<T> = BlockPreconditioner<T>,
    M: MetaOptimizer<T> = Adam<T>,
> {
    config: ConfigOf<T, P, M>,
    seed: u64,
    lodo: Option<Lodo<T, P, M>>,
}

impl<T: Real> LodoSolver<T> {
    /// The paper's LODO (block network, Adam meta-optimizer): creates
    /// `Lodo::new(n, config, seed)` at the first iteration (`n`: the initial parameter's length).
    /// Other parts (the ablations): [`LodoSolver::from_config`].
    #[must_use]
    pub fn new(config: LodoConfig<T>, seed: u64) -> Self {
        Self::from_config(config, seed)
    }
}

impl<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>> LodoSolver<T, P, M> {
    /// A solver that creates `Lodo::<T, P, M>::new(n, config, seed)` at the first iteration
    /// (`n`: the initial parameter's length), e.g.
    /// `LodoSolver::<f64, Diagonal<f64>>::from_config(LodoConfig::default(), 0)`.
    #[must_use]
    pub fn from_config(config: ConfigOf<T, P, M>, seed: u64) -> Self {
        Self {
            config,
            seed,
            lodo: None,
        }
    }

    /// A solver that continues with an existing LODO (e.g. a preconditioner trained on a
    /// similar problem); its dimension must match the initial parameter's length.
    #[must_use]
    pub fn from_lodo(lodo: Lodo<T, P, M>, config: ConfigOf<T, P, M>, seed: u64) -> Self {
        Self {
            config,
            seed,
            lodo: Some(lodo),
        }
    }

    /// The LODO optimizer, once the run has started.
    #[must_use]
    pub fn lodo(&self) -> Option<&Lodo<T, P, M>> {
        self.lodo.as_ref()
    }

    /// The configuration a fresh LODO is made with.
    #[must_use]
    pub fn config(&self) -> &ConfigOf<T, P, M> {
        &self.config
    }

    /// Takes the LODO optimizer out (to reuse its preconditioner elsewhere).
    pub fn into_lodo(self) -> Option<Lodo<T, P, M>> {
        self.lodo
    }
}

fn fail(e: LodoSolverError) -> Error {
    Error::new(e)
}

impl<O, T, P, M> Solver<O, LodoIterState<T>> for LodoSolver<T, P, M>
where
    O: CostFunction<Param = Vec<T>, Output = T> + Gradient<Param = Vec<T>, Gradient = Vec<T>>,
    T: Real + ArgminFloat,
    P: Preconditioner<T>,
    M: MetaOptimizer<T>,
{
    fn name(&self) -> &str {
        "LODO"
    }

    /// Creates the LODO optimizer (unless it holds one of the right dimension) and evaluates
    /// the cost of `x₀`.
    fn init(
        &mut self,
        problem: &mut Problem<O>,
        state: LodoIterState<T>,
    ) -> Result<(LodoIterState<T>, Option<KV>), Error> {
        let x0 = state
            .get_param()
            .ok_or_else(|| fail(LodoSolverError::NoParameter))?;
        let n = x0.len();
        if self.lodo.as_ref().is_none_or(|l| l.momentum().len() != n) {
            if let Some(lodo) = &self.lodo {
                return Err(fail(LodoSolverError::ParamLength {
                    expected: lodo.momentum().len(),
                    found: n,
                }));
            }
            self.lodo = Some(
                Lodo::new(n, self.config, self.seed)
                    .map_err(|e| fail(LodoSolverError::Config(e)))?,
            );
        }
        let cost = problem.cost(x0)?;
        Ok((state.cost(cost), None))
    }

    /// One gradient evaluation, one LODO step, one cost evaluation at the new parameter.
    fn next_iter(
        &mut self,
        problem: &mut Problem<O>,
        state: LodoIterState<T>,
    ) -> Result<(LodoIterState<T>, Option<KV>), Error> {
        let mut x = state
            .get_param()
            .ok_or_else(|| fail(LodoSolverError::NoParameter))?
            .clone();
        let lodo = self
            .lodo
            .as_mut()
            .ok_or_else(|| fail(LodoSolverError::NoParameter))?;
        if lodo.momentum().len() != x.len() {
            return Err(fail(LodoSolverError::ParamLength {
                expected: lodo.momentum().len(),
                found: x.len(),
            }));
        }
        let g = problem.gradient(&x)?;
        let before = x.clone();
        lodo.step(&mut x, &g)
            .map_err(|e| fail(LodoSolverError::Step(e)))?;
        let cost = problem.cost(&x)?;
        let norm = |v: &mut dyn Iterator<Item = T>| v.fold(T::zero(), |a, b| a + b * b).sqrt();
        let gradient_norm = norm(&mut g.iter().copied());
        let step_norm = norm(&mut x.iter().zip(&before).map(|(&a, &b)| a - b));
        let kv = argmin::kv!(
            "gradient_norm" => gradient_norm;
            "step_norm" => step_norm;
        );
        Ok((state.param(x).cost(cost), Some(kv)))
    }
}

/// The serialised form: the configuration, the seed and, once the run has started, the whole
/// [`LodoState`].
#[derive(Serialize, Deserialize)]
struct Repr<C, S> {
    config: C,
    seed: u64,
    lodo: Option<S>,
}

impl<T, P, M> Serialize for LodoSolver<T, P, M>
where
    T: Real + Serialize,
    P: Preconditioner<T> + Serialize,
    P::Config: Serialize,
    M: MetaOptimizer<T> + Serialize,
    M::Config: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Repr {
            config: &self.config,
            seed: self.seed,
            lodo: self.lodo.as_ref().map(Lodo::state),
        }
        .serialize(serializer)
    }
}

/// Validates the stored LODO state ([`Lodo::from_state`]); an invalid one is a deserialisation
/// error.
impl<'de, T, P, M> Deserialize<'de> for LodoSolver<T, P, M>
where
    T: Real + Deserialize<'de>,
    P: Preconditioner<T> + Deserialize<'de>,
    P::Config: Deserialize<'de>,
    M: MetaOptimizer<T> + Deserialize<'de>,
    M::Config: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr: Repr<ConfigOf<T, P, M>, LodoState<T, P, M>> = Repr::deserialize(deserializer)?;
        let lodo = repr
            .lodo
            .map(Lodo::from_state)
            .transpose()
            .map_err(serde::de::Error::custom)?;
        Ok(Self {
            config: repr.config,
            seed: repr.seed,
            lodo,
        })
    }
}
