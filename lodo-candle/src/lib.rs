//! LODO as a [`candle_nn::Optimizer`]: [`LodoOptimizer`].
//!
//! One LODO instance preconditions **all** of a model's variables at once: they are flattened
//! into one parameter vector, so the learned `G(θ)` mixes across tensors (that is LODO's point;
//! one optimizer per tensor would lose it).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{Linear, Module, Optimizer, VarBuilder, VarMap, linear};
//! use lodo_candle::{LodoOptimizer, LodoOptimizerConfig};
//! use lodo_core::LodoConfig;
//!
//! // Fit y = 2x − 1 with a 1 → 1 linear layer.
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let model: Linear = linear(1, 1, vb.pp("fc"))?;
//! let config = LodoOptimizerConfig::new(LodoConfig::default().with_alpha0(0.1)?, 7);
//! // Variables in name order ("fc.bias", "fc.weight"): the same order on every run.
//! let mut opt = LodoOptimizer::<f32>::from_varmap(&varmap, config)?;
//! let x = Tensor::new(&[[0f32], [1.], [2.], [3.]], &Device::Cpu)?;
//! let y = Tensor::new(&[[-1f32], [1.], [3.], [5.]], &Device::Cpu)?;
//! for _ in 0..300 {
//!     let loss = model.forward(&x)?.sub(&y)?.sqr()?.mean_all()?;
//!     opt.backward_step(&loss)?;
//! }
//! let loss = model.forward(&x)?.sub(&y)?.sqr()?.mean_all()?.to_scalar::<f32>()?;
//! assert!(loss < 1e-3, "loss {loss}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Flatten order
//! The parameter vector is the variables **in the order given** to [`Optimizer::new`] (for
//! [`LodoOptimizer::from_varmap`]: sorted by name, byte-wise), each in row-major order of its
//! elements (candle's contiguous layout). [`LodoOptimizer::layout`] lists the `(offset, shape)`
//! of each. Do not build it from `VarMap::all_vars()` if you want to resume a run: that order
//! comes from a `HashMap` and changes between processes; `from_varmap` is stable, and a saved
//! state records the shapes (and names) and refuses variables that do not match.
//!
//! # Gradients
//! [`Optimizer::step`] reads each variable's gradient from the [`GradStore`]. **A variable
//! without a gradient counts as a zero gradient** (it still moves: LODO's momentum and the
//! off-diagonal part of `G` carry other variables' gradients into it). A gradient whose dtype or
//! shape differs from its variable's is an error.
//!
//! # Learning rate
//! [`Optimizer::learning_rate`] and [`Optimizer::set_learning_rate`] read and write `α₀`, the
//! scale of the preconditioner (`G = α₀·I` at the start; steps scale by `α_new/α_old` for the
//! same `θ` and momentum). It is converted to `T` by rounding. candle's setter cannot fail: a
//! non-finite or non-positive value is **not applied**, and the next `step` returns the error
//! ([`LodoOptimizer::try_set_learning_rate`] returns it at once).
//!
//! # Supported variables
//! `f32` variables with `LodoOptimizer<f32>`, `f64` with `LodoOptimizer<f64>`, all on the CPU
//! device, contiguous, each given once. Anything else (another dtype, mixed dtypes, another
//! device, a duplicated variable, no variables) is an error at construction.
//!
//! # Errors and non-finite values
//! Failures are [`LodoCandleError`]s; the [`Optimizer`] trait methods return them inside a
//! [`candle_core::Error`] (its message). LODO refuses a non-finite gradient and a step that
//! would make a parameter non-finite: then no variable is written (nothing NaN reaches the
//! model) and `step` returns an error.
//!
//! # Save and resume
//! [`LodoOptimizer::save`] writes the state (JSON, floats round-tripped exactly) beside
//! `VarMap::save`; [`LodoOptimizer::load_for_varmap`] (or [`LodoOptimizer::load`]) restores it,
//! and training continues bit for bit (same kernel path, on any platform).
//!
//! # Compact state
//! lodo-core's state-precision policy (issue 17: [`lodo_core::Precision`]) is part of the
//! [`LodoConfig`] the adapter takes: `AdamConfig::default().with_precision(Precision::Q8)` for
//! 8-bit block-wise moments, `BlockConfig::default().with_activations(Precision::Bf16)?` for bf16
//! kept activations, combined with `LodoConfig::new(block, adam)`; with `f64` variables,
//! `BlockConfig::default().with_weights(WeightPrecision::F32)?` holds the weights `θ` in `f32`
//! (lodo-core's [`lodo_core::WeightPrecision`]; half of `θ`'s bytes, the arithmetic stays in
//! `f64`; with `LodoOptimizer<f32>` it is [`ConfigError::UnsupportedWeightPrecision`], as
//! [`LodoCandleError::Config`] or, from a state file, [`LodoCandleError::State`]). Such an
//! optimizer saves its compact state (a smaller file) and resumes it bit for bit (tested in
//! `tests/adapter.rs`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Storage, Tensor, Var, WithDType};
use candle_nn::{Optimizer, VarMap};
use lodo_core::{
    Adam, BlockPreconditioner, ConfigError, Lodo, LodoConfig, LodoState, MetaOptimizer,
    Preconditioner, Real, StateError, StepError,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The element types [`LodoOptimizer`] runs on: `f32` and `f64`.
pub trait CandleReal: Real + WithDType + Serialize + DeserializeOwned + sealed::Sealed {
    /// The variable's storage as a mutable slice, if it holds `Self`.
    #[doc(hidden)]
    fn storage_mut(storage: &mut CpuStorage) -> Option<&mut [Self]>;
}

impl CandleReal for f32 {
    fn storage_mut(storage: &mut CpuStorage) -> Option<&mut [Self]> {
        match storage {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl CandleReal for f64 {
    fn storage_mut(storage: &mut CpuStorage) -> Option<&mut [Self]> {
        match storage {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// The configuration of `Lodo<T, P, M>`.
pub type ConfigOf<T, P, M> =
    LodoConfig<T, <P as Preconditioner<T>>::Config, <M as MetaOptimizer<T>>::Config>;

/// [`LodoOptimizer`]'s `Optimizer::Config`: LODO's configuration and the seed of its
/// permutations and initial blocks.
#[derive(Debug)]
pub struct LodoOptimizerConfig<
    T: Real,
    P: Preconditioner<T> = BlockPreconditioner<T>,
    M: MetaOptimizer<T> = Adam<T>,
> {
    /// LODO's hyperparameters.
    pub lodo: ConfigOf<T, P, M>,
    /// The seed.
    pub seed: u64,
}

impl<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>> Clone for LodoOptimizerConfig<T, P, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>> Copy for LodoOptimizerConfig<T, P, M> {}

impl<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>> PartialEq
    for LodoOptimizerConfig<T, P, M>
{
    fn eq(&self, other: &Self) -> bool {
        self.lodo == other.lodo && self.seed == other.seed
    }
}

impl<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>> LodoOptimizerConfig<T, P, M> {
    /// LODO's configuration with a seed.
    #[must_use]
    pub fn new(lodo: ConfigOf<T, P, M>, seed: u64) -> Self {
        Self { lodo, seed }
    }
}

impl<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>> Default for LodoOptimizerConfig<T, P, M> {
    /// The defaults of the parts, seed 0.
    fn default() -> Self {
        Self {
            lodo: LodoConfig::default(),
            seed: 0,
        }
    }
}

/// What went wrong in [`LodoOptimizer`].
#[derive(Debug)]
#[non_exhaustive]
pub enum LodoCandleError {
    /// No variables (LODO needs at least one parameter).
    NoVariables,
    /// A variable's dtype is not the optimizer's `T`.
    DType {
        /// Position of the variable (in the flatten order).
        index: usize,
        /// Its dtype.
        found: DType,
        /// The optimizer's.
        expected: DType,
        /// The variables hold more than one dtype.
        mixed: bool,
    },
    /// A variable is not on the CPU device.
    Device {
        /// Position of the variable.
        index: usize,
        /// Its device, as candle prints it.
        found: String,
    },
    /// A variable is not contiguous (candle cannot write it back).
    NotContiguous {
        /// Position of the variable.
        index: usize,
    },
    /// The same variable appears twice.
    Duplicate {
        /// Position of the second occurrence.
        index: usize,
    },
    /// A gradient's dtype or shape differs from its variable's.
    Gradient {
        /// Position of the variable.
        index: usize,
        /// What differs.
        detail: String,
    },
    /// The variables do not match a saved state's layout.
    Layout(String),
    /// LODO's configuration is invalid (or a learning rate set by `set_learning_rate` was).
    Config(ConfigError),
    /// A saved LODO state is invalid.
    State(StateError),
    /// LODO refused the step; no variable was written.
    Step(StepError),
    /// A candle operation failed.
    Candle(candle_core::Error),
    /// Reading or writing a state file failed.
    Io(std::io::Error),
    /// A state file could not be (de)serialised.
    Json(serde_json::Error),
}

impl fmt::Display for LodoCandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoVariables => write!(f, "LodoOptimizer needs at least one variable"),
            Self::DType {
                index,
                found,
                expected,
                mixed,
            } => {
                write!(
                    f,
                    "variable {index} has dtype {found:?}, this LodoOptimizer takes {expected:?} only"
                )?;
                if *mixed {
                    write!(f, " (the variables mix dtypes: use one dtype for all)")?;
                }
                Ok(())
            }
            Self::Device { index, found } => write!(
                f,
                "variable {index} is on {found}; LodoOptimizer supports the CPU device only"
            ),
            Self::NotContiguous { index } => write!(f, "variable {index} is not contiguous"),
            Self::Duplicate { index } => {
                write!(f, "variable {index} appears twice in the variable list")
            }
            Self::Gradient { index, detail } => {
                write!(f, "gradient of variable {index}: {detail}")
            }
            Self::Layout(s) => write!(f, "the variables do not match the saved state: {s}"),
            Self::Config(e) => write!(f, "invalid LODO configuration: {e}"),
            Self::State(e) => write!(f, "invalid LODO state: {e}"),
            Self::Step(e) => write!(f, "LODO step refused, no variable written: {e}"),
            Self::Candle(e) => write!(f, "candle: {e}"),
            Self::Io(e) => write!(f, "state file: {e}"),
            Self::Json(e) => write!(f, "state file: {e}"),
        }
    }
}

impl std::error::Error for LodoCandleError {}

impl From<candle_core::Error> for LodoCandleError {
    fn from(e: candle_core::Error) -> Self {
        Self::Candle(e)
    }
}

impl From<LodoCandleError> for candle_core::Error {
    fn from(e: LodoCandleError) -> Self {
        match e {
            LodoCandleError::Candle(e) => e,
            e => candle_core::Error::wrap(e),
        }
    }
}

/// One variable's place in the flat parameter vector, as saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VarLayout {
    /// Its name, when the optimizer was built from a `VarMap`.
    pub name: Option<String>,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// The saved form of a [`LodoOptimizer`]: the variables' layout and the whole LODO state.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize, P: Serialize, M: MetaOptimizer<T> + Serialize",
    deserialize = "T: Real + Deserialize<'de>, P: Deserialize<'de>, M: MetaOptimizer<T> + Deserialize<'de>"
))]
pub struct LodoOptimizerState<T, P = BlockPreconditioner<T>, M = Adam<T>> {
    /// The variables in flatten order.
    pub variables: Vec<VarLayout>,
    /// LODO's state.
    pub lodo: LodoState<T, P, M>,
}

/// LODO over a list of candle variables (see the [crate docs](crate) for the flatten order,
/// gradients, learning rate and errors).
#[derive(Debug)]
pub struct LodoOptimizer<
    T: CandleReal,
    P: Preconditioner<T> = BlockPreconditioner<T>,
    M: MetaOptimizer<T> = Adam<T>,
> {
    vars: Vec<Var>,
    layout: Vec<VarLayout>,
    /// `offsets[i]..offsets[i + 1]` is variable `i` in the flat vector.
    offsets: Vec<usize>,
    lodo: Lodo<T, P, M>,
    params: Vec<T>,
    grads: Vec<T>,
    /// An invalid learning rate given to `set_learning_rate`, reported by the next step.
    pending: Option<ConfigError>,
}

/// Checks the variables and returns their layout and offsets.
fn check_vars<T: CandleReal>(
    vars: &[Var],
    names: Option<&[String]>,
) -> Result<(Vec<VarLayout>, Vec<usize>), LodoCandleError> {
    if vars.is_empty() {
        return Err(LodoCandleError::NoVariables);
    }
    let mixed = vars.iter().any(|v| v.dtype() != vars[0].dtype());
    let mut offsets = Vec::with_capacity(vars.len() + 1);
    let mut layout = Vec::with_capacity(vars.len());
    let mut seen = std::collections::HashSet::new();
    offsets.push(0usize);
    for (index, var) in vars.iter().enumerate() {
        if var.dtype() != T::DTYPE {
            return Err(LodoCandleError::DType {
                index,
                found: var.dtype(),
                expected: T::DTYPE,
                mixed,
            });
        }
        if !var.device().is_cpu() {
            return Err(LodoCandleError::Device {
                index,
                found: format!("{:?}", var.device().location()),
            });
        }
        if !var.is_contiguous() {
            return Err(LodoCandleError::NotContiguous { index });
        }
        if !seen.insert(var.id()) {
            return Err(LodoCandleError::Duplicate { index });
        }
        offsets.push(offsets[index] + var.elem_count());
        layout.push(VarLayout {
            name: names.map(|n| n[index].clone()),
            shape: var.dims().to_vec(),
        });
    }
    Ok((layout, offsets))
}

/// The variables of a `VarMap` sorted by name.
fn sorted_vars(varmap: &VarMap) -> Result<(Vec<String>, Vec<Var>), LodoCandleError> {
    let data = varmap.data().lock().map_err(|_| {
        LodoCandleError::Candle(candle_core::Error::Msg("VarMap lock poisoned".into()))
    })?;
    let mut entries: Vec<(String, Var)> =
        data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    drop(data);
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries.into_iter().unzip())
}

/// Copies `t`'s elements (row-major) into `dst`.
fn gather<T: CandleReal>(t: &Tensor, dst: &mut [T]) -> Result<(), candle_core::Error> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            dst.copy_from_slice(&cpu.as_slice::<T>()?[a..b]);
            return Ok(());
        }
    }
    dst.copy_from_slice(&t.flatten_all()?.to_vec1::<T>()?);
    Ok(())
}

/// Writes a slice into a contiguous CPU variable in place.
struct WriteBack<'a, T>(&'a [T]);

impl<T: CandleReal> InplaceOp1 for WriteBack<'_, T> {
    fn name(&self) -> &'static str {
        "lodo-write-back"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (a, b) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("variable not contiguous".into()))?;
        let dst = T::storage_mut(storage)
            .ok_or_else(|| candle_core::Error::Msg("variable dtype changed".into()))?;
        dst[a..b].copy_from_slice(self.0);
        Ok(())
    }
}

impl<T: CandleReal, P: Preconditioner<T>, M: MetaOptimizer<T>> LodoOptimizer<T, P, M> {
    fn assemble(
        vars: Vec<Var>,
        layout: Vec<VarLayout>,
        offsets: Vec<usize>,
        lodo: Lodo<T, P, M>,
    ) -> Self {
        let n = offsets[vars.len()];
        Self {
            vars,
            layout,
            offsets,
            lodo,
            params: vec![T::zero(); n],
            grads: vec![T::zero(); n],
            pending: None,
        }
    }

    fn build(
        vars: Vec<Var>,
        names: Option<&[String]>,
        config: LodoOptimizerConfig<T, P, M>,
    ) -> Result<Self, LodoCandleError> {
        let (layout, offsets) = check_vars::<T>(&vars, names)?;
        let lodo = Lodo::new(offsets[vars.len()], config.lodo, config.seed)
            .map_err(LodoCandleError::Config)?;
        Ok(Self::assemble(vars, layout, offsets, lodo))
    }

    /// An optimizer over `vars`, flattened in the order given.
    ///
    /// # Errors
    /// [`LodoCandleError`] for unsupported variables or an invalid configuration.
    pub fn try_new(
        vars: Vec<Var>,
        config: LodoOptimizerConfig<T, P, M>,
    ) -> Result<Self, LodoCandleError> {
        Self::build(vars, None, config)
    }

    /// An optimizer over all variables of `varmap`, flattened in name order (stable across
    /// processes, unlike `VarMap::all_vars`); the names are recorded in the saved state.
    ///
    /// # Errors
    /// As [`LodoOptimizer::try_new`].
    pub fn from_varmap(
        varmap: &VarMap,
        config: LodoOptimizerConfig<T, P, M>,
    ) -> Result<Self, LodoCandleError> {
        let (names, vars) = sorted_vars(varmap)?;
        Self::build(vars, Some(&names), config)
    }

    /// Restores an optimizer over `vars` (in the order they were given when the state was
    /// saved) from a state.
    ///
    /// # Errors
    /// [`LodoCandleError::Layout`] if the variables' shapes (or count) differ from the saved
    /// ones, [`LodoCandleError::State`] if the LODO state is invalid, and the checks of
    /// [`LodoOptimizer::try_new`].
    pub fn from_state(
        vars: Vec<Var>,
        state: LodoOptimizerState<T, P, M>,
    ) -> Result<Self, LodoCandleError> {
        Self::restore(vars, None, state)
    }

    /// Restores an optimizer over the variables of `varmap` from a state saved by one built with
    /// [`LodoOptimizer::from_varmap`]; names and shapes must match.
    ///
    /// # Errors
    /// As [`LodoOptimizer::from_state`].
    pub fn from_varmap_state(
        varmap: &VarMap,
        state: LodoOptimizerState<T, P, M>,
    ) -> Result<Self, LodoCandleError> {
        let (names, vars) = sorted_vars(varmap)?;
        Self::restore(vars, Some(&names), state)
    }

    fn restore(
        vars: Vec<Var>,
        names: Option<&[String]>,
        state: LodoOptimizerState<T, P, M>,
    ) -> Result<Self, LodoCandleError> {
        let (mut layout, offsets) = check_vars::<T>(&vars, names)?;
        if state.variables.len() != layout.len() {
            return Err(LodoCandleError::Layout(format!(
                "{} variables given, {} saved",
                layout.len(),
                state.variables.len()
            )));
        }
        for (i, (saved, now)) in state.variables.iter().zip(&mut layout).enumerate() {
            if saved.shape != now.shape {
                return Err(LodoCandleError::Layout(format!(
                    "variable {i} has shape {:?}, saved {:?}",
                    now.shape, saved.shape
                )));
            }
            match (&saved.name, &now.name) {
                (Some(a), Some(b)) if a != b => {
                    return Err(LodoCandleError::Layout(format!(
                        "variable {i} is named {b:?}, saved {a:?}"
                    )));
                }
                // Keep the saved names when the variables came as a list.
                (Some(a), None) => now.name = Some(a.clone()),
                _ => {}
            }
        }
        let lodo = Lodo::from_state(state.lodo).map_err(LodoCandleError::State)?;
        if lodo.momentum().len() != offsets[vars.len()] {
            return Err(LodoCandleError::Layout(format!(
                "the variables hold {} elements, the LODO state {}",
                offsets[vars.len()],
                lodo.momentum().len()
            )));
        }
        Ok(Self::assemble(vars, layout, offsets, lodo))
    }

    /// The state to save (serde).
    #[must_use]
    pub fn state(&self) -> LodoOptimizerState<T, P, M> {
        LodoOptimizerState {
            variables: self.layout.clone(),
            lodo: self.lodo.state().clone(),
        }
    }

    /// The variables in flatten order.
    #[must_use]
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// `(offset, layout)` of each variable in the flat parameter vector.
    pub fn layout(&self) -> impl Iterator<Item = (usize, &VarLayout)> {
        self.offsets.iter().copied().zip(&self.layout)
    }

    /// The LODO optimizer (its preconditioner, momentum, step count).
    #[must_use]
    pub fn lodo(&self) -> &Lodo<T, P, M> {
        &self.lodo
    }

    /// Sets `α₀`.
    ///
    /// # Errors
    /// [`LodoCandleError::Config`] unless finite and positive; nothing changes then.
    pub fn try_set_learning_rate(&mut self, alpha0: f64) -> Result<(), LodoCandleError> {
        let a = T::from(alpha0).ok_or(LodoCandleError::Config(ConfigError::InvalidAlpha0))?;
        lodo_core::Optimizer::set_learning_rate(&mut self.lodo, a)
            .map_err(LodoCandleError::Config)?;
        self.pending = None;
        Ok(())
    }

    /// Copies every variable and its gradient (zero if absent) into the flat vectors.
    fn gather(&mut self, grads: &GradStore) -> Result<(), LodoCandleError> {
        for (index, var) in self.vars.iter().enumerate() {
            let range = self.offsets[index]..self.offsets[index + 1];
            gather(var.as_tensor(), &mut self.params[range.clone()])?;
            match grads.get(var.as_tensor()) {
                None => self.grads[range].fill(T::zero()),
                Some(g) => {
                    if g.dtype() != T::DTYPE || g.dims() != var.dims() {
                        return Err(LodoCandleError::Gradient {
                            index,
                            detail: format!(
                                "{:?} {:?}, the variable is {:?} {:?}",
                                g.dtype(),
                                g.dims(),
                                var.dtype(),
                                var.dims()
                            ),
                        });
                    }
                    gather(g, &mut self.grads[range])?;
                }
            }
        }
        Ok(())
    }

    /// Writes the flat parameters back into the variables.
    fn scatter(&self) -> Result<(), LodoCandleError> {
        for (index, var) in self.vars.iter().enumerate() {
            let range = self.offsets[index]..self.offsets[index + 1];
            var.as_tensor()
                .inplace_op1(&WriteBack(&self.params[range]))?;
        }
        Ok(())
    }

    /// One LODO step on all variables: gathers, steps, writes back.
    ///
    /// # Errors
    /// A pending invalid learning rate ([`LodoCandleError::Config`]), a mismatched gradient
    /// ([`LodoCandleError::Gradient`]), or a refused step ([`LodoCandleError::Step`]); no
    /// variable is written then.
    pub fn try_step(&mut self, grads: &GradStore) -> Result<(), LodoCandleError> {
        if let Some(e) = self.pending.take() {
            return Err(LodoCandleError::Config(e));
        }
        self.gather(grads)?;
        self.lodo
            .step(&mut self.params, &self.grads)
            .map_err(LodoCandleError::Step)?;
        self.scatter()
    }

    /// The adapter's own work in a step (gather of variables and gradients, write-back), without
    /// the LODO step: for measuring its overhead (`examples/candle_overhead.rs`).
    #[doc(hidden)]
    pub fn gather_scatter(&mut self, grads: &GradStore) -> Result<(), LodoCandleError> {
        self.gather(grads)?;
        self.scatter()
    }

    /// Writes the state as JSON to `path` (next to `VarMap::save`).
    ///
    /// # Errors
    /// [`LodoCandleError::Io`] or [`LodoCandleError::Json`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), LodoCandleError>
    where
        P: Serialize,
        M: Serialize,
    {
        let json = serde_json::to_vec(&self.state()).map_err(LodoCandleError::Json)?;
        std::fs::write(path, json).map_err(LodoCandleError::Io)
    }

    /// Reads a state written by [`LodoOptimizer::save`] from an optimizer built with
    /// [`LodoOptimizer::from_varmap`], and attaches it to `varmap`'s variables.
    ///
    /// # Errors
    /// As [`LodoOptimizer::from_varmap_state`], plus I/O and JSON errors.
    pub fn load_for_varmap(path: impl AsRef<Path>, varmap: &VarMap) -> Result<Self, LodoCandleError>
    where
        P: DeserializeOwned,
        M: DeserializeOwned,
    {
        Self::from_varmap_state(varmap, read_state(path.as_ref())?)
    }

    /// Reads a state written by [`LodoOptimizer::save`] and attaches it to `vars` (same order).
    ///
    /// # Errors
    /// As [`LodoOptimizer::from_state`], plus I/O and JSON errors.
    pub fn load(path: impl AsRef<Path>, vars: Vec<Var>) -> Result<Self, LodoCandleError>
    where
        P: DeserializeOwned,
        M: DeserializeOwned,
    {
        Self::from_state(vars, read_state(path.as_ref())?)
    }
}

fn read_state<S: DeserializeOwned>(path: &Path) -> Result<S, LodoCandleError> {
    let bytes = std::fs::read(path).map_err(LodoCandleError::Io)?;
    serde_json::from_slice(&bytes).map_err(LodoCandleError::Json)
}

impl<T: CandleReal, P: Preconditioner<T>, M: MetaOptimizer<T>> Optimizer
    for LodoOptimizer<T, P, M>
{
    type Config = LodoOptimizerConfig<T, P, M>;

    /// Flattens `vars` in the order given; see [`LodoOptimizer::try_new`].
    fn new(vars: Vec<Var>, config: Self::Config) -> candle_core::Result<Self> {
        Ok(Self::try_new(vars, config)?)
    }

    /// See [`LodoOptimizer::try_step`].
    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        Ok(self.try_step(grads)?)
    }

    /// `α₀`.
    fn learning_rate(&self) -> f64 {
        WithDType::to_f64(lodo_core::Optimizer::learning_rate(&self.lodo))
    }

    /// Sets `α₀`; an invalid value is not applied and the next step returns the error.
    fn set_learning_rate(&mut self, lr: f64) {
        if let Err(LodoCandleError::Config(e)) = self.try_set_learning_rate(lr) {
            self.pending = Some(e);
        }
    }
}
