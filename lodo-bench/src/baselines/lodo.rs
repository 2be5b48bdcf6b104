//! LODO as a [`Minimizer`], exposing its preconditioner, and LODO with a frozen `G`.

use lodo_core::{Adam, Lodo, LodoState, MetaOptimizer, Optimizer, Preconditioner, Real, StepError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::registry::{BuildError, check_unit};
use crate::task::{Minimizer, StateFloat, Task};

/// LODO (any preconditioner architecture `P` and meta-optimizer `M`) run against a [`Task`], one gradient per step;
/// [`Minimizer::preconditioner_matvec`] gives `G(θ)·v` for the Hessian-error metric.
#[derive(Clone, Debug)]
pub struct LodoMinimizer<T, P, M = Adam<T>> {
    lodo: Lodo<T, P, M>,
    grad: Vec<T>,
}

impl<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>> LodoMinimizer<T, P, M> {
    /// Wraps `lodo`.
    pub fn new(lodo: Lodo<T, P, M>) -> Self {
        let grad = vec![T::zero(); lodo.dim()];
        Self { lodo, grad }
    }

    /// The optimizer.
    #[must_use]
    pub fn lodo(&self) -> &Lodo<T, P, M> {
        &self.lodo
    }
}

/// Checkpoints save lodo-core's whole [`LodoState`] (postcard: every float's bits) and restore
/// it through [`Lodo::from_state`], which validates every field and recomputes the activations,
/// so the restored optimizer continues bit for bit.
impl<T, P, M> Minimizer<T> for LodoMinimizer<T, P, M>
where
    T: StateFloat,
    P: Preconditioner<T> + Send + Serialize + DeserializeOwned,
    M: MetaOptimizer<T> + Send + Serialize + DeserializeOwned,
{
    fn iterate(&mut self, task: &mut dyn Task<T>, x: &mut [T]) -> Result<T, StepError> {
        let loss = task.loss_grad(x, &mut self.grad);
        self.lodo.step(x, &self.grad)?;
        Ok(loss)
    }

    fn preconditioner_matvec(&self, v: &[T], out: &mut [T]) -> bool {
        self.lodo.preconditioner().matvec(v, out);
        true
    }

    fn save_state(&self) -> anyhow::Result<Vec<u8>> {
        Ok(postcard::to_allocvec(self.lodo.state())?)
    }

    fn load_state(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let state: LodoState<T, P, M> = postcard::from_bytes(bytes)
            .map_err(|e| anyhow::anyhow!("cannot decode the LODO state: {e}"))?;
        let lodo = Lodo::from_state(state)
            .map_err(|e| anyhow::anyhow!("invalid LODO state in the checkpoint: {e}"))?;
        anyhow::ensure!(
            lodo.dim() == self.lodo.dim(),
            "the checkpoint's LODO has {} parameters, this run {}",
            lodo.dim(),
            self.lodo.dim()
        );
        self.lodo = lodo;
        Ok(())
    }
}

/// LODO with `θ` frozen (the authors' `LODOWithCopiedHessianMinimizationProcedure`): momentum
/// and the fixed learned preconditioner, no meta-update:
///
/// $$ m ← β m + (1−β) g,\qquad x ← x − G(θ_\text{frozen})\, m. $$
#[derive(Clone, Debug)]
pub struct FrozenLodo<T, P> {
    preconditioner: P,
    beta: T,
    m: Vec<T>,
    g: Vec<T>,
    step: Vec<T>,
}

impl<T: Real, P: Preconditioner<T>> FrozenLodo<T, P> {
    /// Freezes `preconditioner` (e.g. a clone of a trained LODO's) with momentum `β`.
    ///
    /// # Errors
    /// [`BuildError::Hyperparameter`] unless `0 ≤ β < 1`.
    pub fn new(preconditioner: P, beta: T) -> Result<Self, BuildError> {
        check_unit("beta", beta)?;
        let n = preconditioner.dim();
        Ok(Self {
            preconditioner,
            beta,
            m: vec![T::zero(); n],
            g: vec![T::zero(); n],
            step: vec![T::zero(); n],
        })
    }
}

impl<T: Real, P: Preconditioner<T> + Send> Minimizer<T> for FrozenLodo<T, P> {
    fn iterate(&mut self, task: &mut dyn Task<T>, x: &mut [T]) -> Result<T, StepError> {
        let loss = super::fresh_gradient(task, x, &mut self.g)?;
        let mut m = self.m.clone();
        for (mi, &gi) in m.iter_mut().zip(&self.g) {
            *mi = self.beta * *mi + (T::one() - self.beta) * gi;
        }
        self.preconditioner.matvec(&m, &mut self.step);
        lodo_core::optimizer::apply_descent(x, &self.step)?;
        self.m = m;
        Ok(loss)
    }

    fn preconditioner_matvec(&self, v: &[T], out: &mut [T]) -> bool {
        self.preconditioner.matvec(v, out);
        true
    }
}
