//! The interface between experiments, tasks and optimizers.
//!
//! A [`Task`] is a stochastic loss oracle in the authors' sense (`training_iteration_handler`):
//! each fresh evaluation draws a new sample (a new minibatch, a new random-walk step of the
//! bowl's centre), and an evaluation on the *same* sample is available for methods that need two
//! gradients per iteration (O-LBFGS). A [`Minimizer`] is one optimizer iteration against a task.
//!
//! Checkpoints (`lodo-bench mnist --checkpoint-every`): a task tells how many samples it has
//! drawn ([`Task::position`]) and can be put back there ([`Task::seek`]); a minimizer saves and
//! restores its state as bytes ([`Minimizer::save_state`], [`Minimizer::load_state`]; first-order
//! optimizers through [`Persist`]). Floats are stored with their bits (postcard), so a restored
//! run continues bit for bit.

use lodo_core::{Optimizer, Real, StepError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A float whose optimizer states the harness can save and restore (`f32`, `f64`).
pub trait StateFloat: Real + Serialize + DeserializeOwned {}

impl<T: Real + Serialize + DeserializeOwned> StateFloat for T {}

/// Saving and restoring an optimizer's state: everything that determines its future steps (for
/// first-order optimizers run through [`FirstOrder`]).
pub trait Persist {
    /// The state as bytes (postcard).
    ///
    /// # Errors
    /// If the state cannot be encoded.
    fn save_state(&self) -> anyhow::Result<Vec<u8>>;

    /// Replaces the state by one [`Persist::save_state`] wrote, after checking that it belongs
    /// to an optimizer of the same kind, size and hyperparameters; on error nothing changes.
    ///
    /// # Errors
    /// Undecodable bytes, or a state of another size or configuration.
    fn load_state(&mut self, bytes: &[u8]) -> anyhow::Result<()>;
}

/// A stochastic objective over `dim()` parameters of type `T`.
pub trait Task<T: Real>: Send {
    /// A short name for tables and file names.
    fn name(&self) -> &str;

    /// Number of parameters `n`.
    fn dim(&self) -> usize;

    /// The starting point `x₀`.
    fn initial_point(&self) -> Vec<T>;

    /// Draws a fresh sample, then returns the loss at `x` on it and writes its gradient.
    fn loss_grad(&mut self, x: &[T], grad: &mut [T]) -> T;

    /// Loss and gradient at `x` on the sample of the last [`Task::loss_grad`] call.
    fn loss_grad_same_sample(&mut self, x: &[T], grad: &mut [T]) -> T;

    /// Hessian-vector product `H(x)·v` on the current sample, if the task can give it exactly.
    fn hessian_vector(&mut self, _x: &[T], _v: &[T], _out: &mut [T]) -> Option<()> {
        None
    }

    /// `true` if the Hessian is the same at every point and on every sample (a quadratic), so a
    /// method may assemble it once. Default `false`.
    fn constant_hessian(&self) -> bool {
        false
    }

    /// The task's known loss floor (e.g. the bowl's Newton reference `½·tr(H)`), if any.
    fn reference_loss(&self) -> Option<f64> {
        None
    }

    /// Fresh samples drawn so far (the data-order position a checkpoint stores), or `None` if
    /// the task cannot be checkpointed (the default).
    fn position(&self) -> Option<u64> {
        None
    }

    /// Puts a freshly built task (same seed) at `draws` samples drawn, as [`Task::position`]
    /// reported, with the last of them as the current sample.
    ///
    /// # Errors
    /// A task that cannot be checkpointed (the default), or one already past `draws`.
    fn seek(&mut self, _draws: u64) -> anyhow::Result<()> {
        anyhow::bail!("the task {} cannot be checkpointed", self.name())
    }
}

/// One optimizer, run iteration by iteration against a [`Task`].
pub trait Minimizer<T: Real>: Send {
    /// Runs one iteration from `x` (updated in place); returns the training loss of the fresh
    /// sample drawn this iteration (at the point the gradient was taken).
    ///
    /// # Errors
    /// The optimizer's [`StepError`]; `x` is then unchanged.
    fn iterate(&mut self, task: &mut dyn Task<T>, x: &mut [T]) -> Result<T, StepError>;

    /// Loss-gradient evaluations one [`Minimizer::iterate`] makes (2 for the L-BFGS variants,
    /// which re-evaluate on the same sample). Step budgets count evaluations, as the authors'
    /// `TrainingIterationHandler` counts samples.
    fn evaluations_per_iteration(&self) -> usize {
        1
    }

    /// `out = G·v` for a minimizer with a learned preconditioner `G` (LODO): returns `false`
    /// (and leaves `out` alone) for every other minimizer. Used for the Hessian-error metric
    /// `‖I − G·H‖_F/√n`.
    fn preconditioner_matvec(&self, _v: &[T], _out: &mut [T]) -> bool {
        false
    }

    /// The optimizer's state as bytes, for a checkpoint (see [`Persist`]).
    ///
    /// # Errors
    /// A minimizer that cannot be checkpointed (the default: L-BFGS, BFGS, Levenberg–Marquardt,
    /// frozen LODO).
    fn save_state(&self) -> anyhow::Result<Vec<u8>> {
        anyhow::bail!("this optimizer cannot be checkpointed")
    }

    /// Restores a state [`Minimizer::save_state`] wrote; on error nothing changes.
    ///
    /// # Errors
    /// A minimizer that cannot be checkpointed (the default), undecodable bytes, or a state of
    /// another size or configuration.
    fn load_state(&mut self, _bytes: &[u8]) -> anyhow::Result<()> {
        anyhow::bail!("this optimizer cannot be checkpointed")
    }
}

/// Runs any one-gradient-per-step [`Optimizer`] (LODO, Adam, …) as a [`Minimizer`].
pub struct FirstOrder<T, O> {
    optimizer: O,
    grad: Vec<T>,
}

impl<T: Real, O: Optimizer<T>> FirstOrder<T, O> {
    /// Wraps `optimizer`.
    pub fn new(optimizer: O) -> Self {
        let grad = vec![T::zero(); optimizer.dim()];
        Self { optimizer, grad }
    }

    /// The wrapped optimizer.
    pub fn optimizer(&self) -> &O {
        &self.optimizer
    }
}

impl<T: Real, O: Optimizer<T> + Persist + Send> Minimizer<T> for FirstOrder<T, O> {
    fn iterate(&mut self, task: &mut dyn Task<T>, x: &mut [T]) -> Result<T, StepError> {
        let loss = task.loss_grad(x, &mut self.grad);
        self.optimizer.step(x, &self.grad)?;
        Ok(loss)
    }

    fn save_state(&self) -> anyhow::Result<Vec<u8>> {
        self.optimizer.save_state()
    }

    fn load_state(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.optimizer.load_state(bytes)
    }
}
