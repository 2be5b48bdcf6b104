//! The LODO optimizer (paper §3, Algorithm 1): momentum, a learned preconditioner and its online
//! meta-update, one gradient per step.
//!
//! Each call of [`Lodo::step`] receives `g_t = ∇ℓ(x_t)` at the current parameters and, in the
//! authors' order:
//! 1. computes the hypergradient `∇_θ ℓ(x_t) = −∇_θ⟨g_t, G(θ)·m_{t−1}⟩` through the step
//!    `x_t = x_{t−1} − G(θ)·m_{t−1}` just taken,
//! 2. takes a meta-step on `θ` with it (Adam, or SGD),
//! 3. updates the momentum `m_t = β·m_{t−1} + (1−β)·g_t` (`m_0 = 0`),
//! 4. applies the new step `x_{t+1} = x_t − G(θ_new)·m_t` to the caller's parameters.
//!
//! After construction a step allocates nothing (checked for the serial build; with the `parallel`
//! feature, rayon's scheduler is outside that check).

use alloc::vec::Vec;

use crate::config::{LodoConfig, check_momentum};
use crate::error::{ConfigError, StateError, StepError};
use crate::memory::{bytes_of, filled, total};
use crate::meta::{Adam, MetaOptimizer};
use crate::optimizer::{Optimizer, apply_descent, check_inputs};
use crate::preconditioner::{BlockPreconditioner, Preconditioner};
use crate::random::Stream;
use crate::real::{Real, first_non_finite};

/// The version of [`LodoState`]'s layout that this build writes.
///
/// | format | written by | layout |
/// |---|---|---|
/// | 1 | lodo-core 0.1 | the table on [`LodoState`]; `meta` is `{"Adam": …}` or `{"Sgd": …}` |
/// | 2 | lodo-core 0.2 | the same fields; `meta` is tagged by [`MetaOptimizer::NAME`], so any meta-optimizer type can be saved |
/// | 3 | lodo-core 0.3 | the same fields; Adam adds `compact` (its moments in bf16 or q8, [`crate::Precision`]) and its configuration `precision` |
/// | 4 | lodo-core 0.4 | the same fields; the LODO network adds `blocks_f32` (after `blocks`: `θ` as `f32`, empty unless held so) and `weights` (last: [`crate::WeightPrecision`]); `blocks` is empty when `θ` is held in `f32` |
///
/// [`Lodo::from_state`] reads all four (a format-1 state continues bit for bit, checked against a
/// state written by 0.1 in the tests) and refuses any other number with
/// [`StateError::UnsupportedFormat`].
pub const STATE_FORMAT: u32 = 4;

/// The oldest format [`Lodo::from_state`] reads.
const OLDEST_FORMAT: u32 = 1;

/// Everything that determines a LODO run's future, and nothing else: the unit of
/// save/restore (with the `serde` feature).
///
/// # Format
/// A serde struct with these fields, in this order:
///
/// | field | meaning |
/// |---|---|
/// | `format` | [`STATE_FORMAT`] (currently 4) |
/// | `beta` | momentum `β` |
/// | `preconditioner` | the architecture: shape, `α₀`, permutations (forward indices `π`), weights `θ` |
/// | `meta` | `{NAME: state}` ([`MetaOptimizer::NAME`]): `{"Adam": {learning_rate, beta1, beta2, epsilon, t, m, v, compact}}` or `{"Sgd": {learning_rate, dim}}` |
/// | `momentum` | `m_t`, length `n` |
/// | `steps` | steps taken |
///
/// Activations and scratch are not stored; [`Lodo::from_state`] validates every field and
/// recomputes them, so a resumed run continues bit for bit. Any serde format that round-trips
/// floats exactly works (e.g. `serde_json` with `float_roundtrip`, or a binary format).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "T: Real + serde::Serialize, P: serde::Serialize, M: MetaOptimizer<T> + serde::Serialize",
        deserialize = "T: Real + serde::Deserialize<'de>, P: serde::Deserialize<'de>, M: MetaOptimizer<T> + serde::Deserialize<'de>"
    ))
)]
pub struct LodoState<T, P, M = Adam<T>> {
    format: u32,
    beta: T,
    preconditioner: P,
    #[cfg_attr(feature = "serde", serde(with = "crate::meta::tagged"))]
    meta: M,
    momentum: Vec<T>,
    steps: u64,
}

impl<T, P, M> LodoState<T, P, M> {
    /// The format version this state was written in (see [`STATE_FORMAT`]).
    #[must_use]
    pub fn format(&self) -> u32 {
        self.format
    }
}

/// The LODO optimizer over `n` parameters with preconditioner architecture `P` (default: the
/// paper's [`BlockPreconditioner`]) trained by the meta-optimizer `M` (default: [`Adam`]).
///
/// # Examples
/// ```
/// use lodo_core::{Lodo, LodoConfig, Optimizer};
///
/// // Minimise ½‖x − 1‖² in 10 dimensions.
/// let config = LodoConfig::default().with_alpha0(0.5)?;
/// let mut lodo = Lodo::<f64>::new(10, config, 42)?;
/// let mut x = vec![0.0; 10];
/// for _ in 0..200 {
///     let g: Vec<f64> = x.iter().map(|xi| xi - 1.0).collect();
///     lodo.step(&mut x, &g)?;
/// }
/// assert!(x.iter().all(|xi| (xi - 1.0).abs() < 1e-3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Lodo<T, P = BlockPreconditioner<T>, M = Adam<T>> {
    state: LodoState<T, P, M>,
    /// Scratch for `G(θ)·m_t`.
    step: Vec<T>,
    /// `m_{t−1}` during a step, restored if the step is refused.
    previous: Vec<T>,
}

impl<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>> Lodo<T, P, M> {
    /// A fresh optimizer for `n` parameters. `seed` alone determines the permutations and initial
    /// blocks.
    ///
    /// Every buffer is allocated here, fallibly: a heap too small is
    /// [`ConfigError::OutOfMemory`], never an abort ([`Lodo::memory_bytes`] says how much).
    ///
    /// # Errors
    /// Any [`ConfigError`] the configuration has for this `n` (an invalid meta learning rate is
    /// [`ConfigError::InvalidMetaLearningRate`]), or [`ConfigError::OutOfMemory`].
    pub fn new(
        n: usize,
        config: LodoConfig<T, P::Config, M::Config>,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(ConfigError::EmptyProblem);
        }
        check_momentum(config.beta())?;
        let mut preconditioner =
            P::from_config(n, config.preconditioner(), &mut Stream::new(seed))?;
        if !M::FUSES_BLOCK_LAYER {
            preconditioner.reserve_meta_scratch()?;
        }
        let meta = M::for_layout(config.meta(), preconditioner.layout()).map_err(|e| {
            if e == ConfigError::InvalidLearningRate {
                ConfigError::InvalidMetaLearningRate
            } else {
                e
            }
        })?;
        Ok(Self {
            state: LodoState {
                format: STATE_FORMAT,
                beta: config.beta(),
                preconditioner,
                meta,
                momentum: filled(n, T::zero())?,
                steps: 0,
            },
            step: filled(n, T::zero())?,
            previous: filled(n, T::zero())?,
        })
    }

    /// The bytes an optimizer built by [`Lodo::new`] with these arguments holds, from the
    /// formula (checked against a counting allocator in the tests):
    ///
    /// $$ \text{bytes} = 3n·s_T + \text{preconditioner} + \text{meta-optimizer}, $$
    ///
    /// with `s_T = size_of::<T>()`: the momentum, the step and the kept `m_{t−1}`, then
    /// [`Preconditioner::footprint`] (for the paper's network: `N` permutations of `8h` bytes,
    /// none for `Shuffle`; `θ` of `N·h·k` numbers; `2N·h` kept activations of `s_T` bytes, or 2
    /// in bf16; `7h` numbers of scratch) and [`MetaOptimizer::memory_bytes`] (Adam: `2·|θ|`
    /// numbers, or 2 bytes each in bf16, or 1 byte each plus 8 bytes per tile of `h·k` in q8).
    /// A meta-optimizer that does not fuse its update into the backward sweep (SGD) adds the
    /// `h·k` numbers of one layer's hypergradient. The struct headers themselves
    /// (`size_of::<Lodo<…>>()`) and the transient `k × k` scratch of construction come on top.
    ///
    /// At the defaults (`N = 16`, `k = 4`, `h = 2n` for even `n`, Adam), per parameter, at
    /// `n = 10⁶` (tested against the allocator):
    ///
    /// | state | `f32` `Random` | `f32` `Shuffle` | `f64` `Shuffle` |
    /// |---|---|---|---|
    /// | full (moments and activations in `T`) | 2,116 | 1,860 | 3,720 |
    /// | bf16 moments, bf16 activations | 1,476 | 1,220 | 1,800 |
    /// | q8 moments, bf16 activations | 1,222 | 966 | 1,546 |
    ///
    /// (`f32` `Shuffle` full: `θ` 512, Adam's moments 1,024, activations 256, scratch 56, the
    /// three `n`-vectors 12; `Random` adds its indices, 256.)
    ///
    /// # Errors
    /// The [`ConfigError`] [`Lodo::new`] would return for this shape.
    pub fn memory_bytes(
        n: usize,
        config: &LodoConfig<T, P::Config, M::Config>,
    ) -> Result<usize, ConfigError> {
        if n == 0 {
            return Err(ConfigError::EmptyProblem);
        }
        let pre = P::footprint(n, config.preconditioner())?;
        let layout = P::weight_layout(n, config.preconditioner())?;
        total(&[
            bytes_of::<T>(n.checked_mul(3).ok_or(ConfigError::TooLarge)?)?,
            pre.bytes,
            M::layout_bytes(config.meta(), layout)?,
            if M::FUSES_BLOCK_LAYER {
                0
            } else {
                P::meta_scratch_bytes(n, config.preconditioner())?
            },
        ])
    }

    /// Restores an optimizer from a saved state, validating every field.
    ///
    /// # Errors
    /// [`StateError`] naming the first inconsistency found.
    ///
    /// A state of an older format ([`STATE_FORMAT`]'s table) is read and saved from then on in
    /// the current one. Sizes are checked against the stored arrays before anything is
    /// allocated.
    pub fn from_state(mut state: LodoState<T, P, M>) -> Result<Self, StateError> {
        if !(OLDEST_FORMAT..=STATE_FORMAT).contains(&state.format) {
            return Err(StateError::UnsupportedFormat {
                found: state.format,
            });
        }
        state.format = STATE_FORMAT;
        check_momentum(state.beta)?;
        // `n` is bounded by the stored momentum before any scratch of size n is allocated.
        let n = state.preconditioner.dim();
        if state.momentum.len() != n {
            return Err(StateError::Length {
                what: "momentum",
                expected: n,
                found: state.momentum.len(),
            });
        }
        if first_non_finite(&state.momentum).is_some() {
            return Err(StateError::NonFinite { what: "momentum" });
        }
        state.preconditioner.prepare()?;
        if !M::FUSES_BLOCK_LAYER {
            state.preconditioner.reserve_meta_scratch()?;
        }
        state.meta.validate_layout(state.preconditioner.layout())?;
        let mut step = filled(n, T::zero())?;
        // Recreate the activations of m_t under θ, exactly as the last step left them.
        state.preconditioner.apply(&state.momentum, &mut step);
        Ok(Self {
            state,
            step,
            previous: filled(n, T::zero())?,
        })
    }

    /// The state to save (see [`LodoState`] for the format).
    #[must_use]
    pub fn state(&self) -> &LodoState<T, P, M> {
        &self.state
    }

    /// The preconditioner.
    #[must_use]
    pub fn preconditioner(&self) -> &P {
        &self.state.preconditioner
    }

    /// The momentum `m_t`.
    #[must_use]
    pub fn momentum(&self) -> &[T] {
        &self.state.momentum
    }

    /// Steps taken.
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.state.steps
    }

    /// The momentum coefficient `β` of `m_t = β·m_{t−1} + (1 − β)·g_t` (paper §4, Algorithm 1).
    #[must_use]
    pub fn beta(&self) -> T {
        self.state.beta
    }

    /// The meta-optimizer.
    #[must_use]
    pub fn meta(&self) -> &M {
        &self.state.meta
    }

    /// One LODO step (see the [module docs](self)): `params ← params − G(θ_new)·m_t`.
    ///
    /// Nothing non-finite is ever stored: not in `params`, `θ`, the meta-optimizer's state or the
    /// momentum. On every error `params`, the momentum and the step count keep their bits.
    ///
    /// # Errors
    /// - [`StepError::GradientLength`], [`StepError::ParamsLength`] and
    ///   [`StepError::NonFiniteGradient`]: checked first; nothing changes.
    /// - [`StepError::NonFiniteMetaUpdate`]: the meta-update of some weights would have been
    ///   NaN or ±∞ (a gradient of 1e160 in `f64` overflows Adam's `g²`). Those weights keep their
    ///   `θ`, `M`, `V`; the others took their meta-step (the recovery: the optimizer stays
    ///   usable, the next step continues from there); Adam's step counter, the momentum, the step
    ///   count and `params` are unchanged.
    /// - [`StepError::NonFiniteStep`]: the new step `G(θ_new)·m_t` would put a non-finite value
    ///   into `params`. `params`, the momentum and the step count are unchanged; `θ` has taken
    ///   its (finite) meta-step.
    pub fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<(), StepError> {
        let s = &mut self.state;
        check_inputs(s.momentum.len(), params, grad)?;
        // (1)+(2): hypergradient through the last step, fused with the meta-update per piece.
        s.meta.begin_step();
        let kept = s.preconditioner.backprop_meta(grad, &mut s.meta);
        if kept > 0 {
            s.meta.cancel_step();
            return Err(StepError::NonFiniteMetaUpdate { kept });
        }
        // (3): momentum, keeping m_{t−1} until the new step is known to be finite.
        self.previous.copy_from_slice(&s.momentum);
        let (beta, one_minus_beta) = (s.beta, T::one() - s.beta);
        for (m, &g) in s.momentum.iter_mut().zip(grad) {
            *m = beta * *m + one_minus_beta * g;
        }
        // (4): the new step with the new θ; its activations stay for the next hypergradient.
        s.preconditioner.apply(&s.momentum, &mut self.step);
        if let Err(e) = apply_descent(params, &self.step) {
            s.momentum.copy_from_slice(&self.previous);
            // The activations of the kept m_{t−1} under the new θ, for the next hypergradient.
            s.preconditioner.apply(&s.momentum, &mut self.step);
            return Err(e);
        }
        s.steps = s.steps.saturating_add(1);
        Ok(())
    }
}

impl<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>> Optimizer<T> for Lodo<T, P, M> {
    fn dim(&self) -> usize {
        self.state.momentum.len()
    }

    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<(), StepError> {
        Lodo::step(self, params, grad)
    }

    /// `α₀`, the scale of `G` (`G = α₀·I` at the start; paper §3).
    fn learning_rate(&self) -> T {
        self.state.preconditioner.alpha0()
    }

    /// Sets `α₀` ([`Preconditioner::set_alpha0`]): the following steps are `α_new/α_old` times
    /// larger for the same `θ` and `m`.
    fn set_learning_rate(&mut self, learning_rate: T) -> Result<(), ConfigError> {
        self.state.preconditioner.set_alpha0(learning_rate)
    }
}
