//! The optimizers the authors compared LODO against (paper §5, `training/minimization_procedure.py`
//! and Keras), in their exact forms, plus the LODO minimizers and a name registry.
//!
//! | module | optimizers |
//! |---|---|
//! | [`first_order`] | [`Momentum`] (Keras SGD), [`RmsProp`] (Keras), [`Yogi`] (authors' form), [`Lars`] (authors' form); Adam is [`lodo_core::Adam`] (Keras form) |
//! | [`quasi_newton`] | [`Lbfgs`] (L-BFGS without line search and O-LBFGS, Schraudolph, Yu & Günter 2007 §3.2–3.3), [`Bfgs`] (dense, fixed step) |
//! | [`levenberg_marquardt`] | [`LevenbergMarquardt`] (dense Hessian from Hessian-vector products) |
//! | [`lodo`] | [`LodoMinimizer`] (LODO and its ablations) and [`FrozenLodo`] (a fixed learned `G`) |
//! | [`registry`] | [`OptimizerKind`] (names) and [`Optimizer`] (typed hyperparameters): authors' defaults, tuner normalisation, construction ([`build_lodo`] for every LODO) |
//!
//! First-order methods implement [`lodo_core::Optimizer`] (run them through
//! [`crate::task::FirstOrder`]); the others implement [`crate::task::Minimizer`] directly.
//! Every step is atomic: on a [`lodo_core::StepError`] the parameters are unchanged.

pub mod first_order;
pub mod levenberg_marquardt;
pub mod lodo;
pub mod quasi_newton;
pub mod registry;

pub use first_order::{Lars, Momentum, RmsProp, Yogi};
pub use levenberg_marquardt::LevenbergMarquardt;
pub use lodo::{FrozenLodo, LodoMinimizer};
pub use quasi_newton::{Bfgs, Lbfgs, LbfgsVariant};
pub use registry::{
    BuildContext, BuildError, BuiltLodo, HyperParam, LbfgsParams, LodoParams, LodoVariant,
    Optimizer, OptimizerKind, Scale, StatePolicy, TuneScope, build_lodo,
};

use lodo_core::{Real, StepError};

use crate::task::Task;

/// The checks every baseline makes before it moves: `x` has the optimizer's length
/// (`g.len()`), then the task is evaluated on a fresh sample into `g`, and a non-finite gradient
/// is refused. Returns the sampled loss.
///
/// # Errors
/// [`StepError::ParamsLength`] (task not evaluated) or [`StepError::NonFiniteGradient`].
pub(crate) fn fresh_gradient<T: Real>(
    task: &mut dyn Task<T>,
    x: &[T],
    g: &mut [T],
) -> Result<T, StepError> {
    if x.len() != g.len() {
        return Err(StepError::ParamsLength {
            expected: g.len(),
            found: x.len(),
        });
    }
    let loss = task.loss_grad(x, g);
    match g.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(StepError::NonFiniteGradient { index }),
        None => Ok(loss),
    }
}

/// `Err(NonFiniteStep)` at the first index where `x + s` is not finite.
pub(crate) fn check_ascent<T: Real>(x: &[T], s: &[T]) -> Result<(), StepError> {
    match x.iter().zip(s).position(|(&a, &b)| !(a + b).is_finite()) {
        Some(index) => Err(StepError::NonFiniteStep { index }),
        None => Ok(()),
    }
}

/// `⟨a, b⟩`.
#[inline]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |acc, (&x, &y)| acc + x * y)
}
