//! Levenberg–Marquardt in the authors' form (`LevenbergMarquardtMinimizationProcedure`).

use lodo_core::{Real, StepError};

use super::registry::{BuildError, check_positive};
use super::{check_ascent, dot};
use crate::task::{Minimizer, Task};

/// Levenberg–Marquardt on the Hessian (the authors' form): with `g` and `H` on a fresh sample,
///
/// $$ x ← x − \big(H^2 + λ\,\mathrm{diag}(H^2)\big)^{-1} H g. $$
///
/// `H` is assembled column by column from `n` exact Hessian-vector products
/// ([`Task::hessian_vector`]); the system is solved by Gaussian elimination with partial
/// pivoting. `O(n³)` per step; on a task with [`Task::constant_hessian`] the matrix
/// `(H² + λ diag(H²))⁻¹ H` is assembled once and reused (the same step up to rounding), `O(n²)` per
/// step. Authors' default `λ = 1`.
#[derive(Clone, Debug)]
pub struct LevenbergMarquardt<T> {
    lambda: T,
    n: usize,
    g: Vec<T>,
    h: Vec<T>,
    a: Vec<T>,
    rhs: Vec<T>,
    e: Vec<T>,
    col: Vec<T>,
    /// `M = (H² + λ diag(H²))⁻¹ H`, row-major, cached for constant-Hessian tasks.
    cached: Option<Vec<T>>,
}

impl<T: Real> LevenbergMarquardt<T> {
    /// Levenberg–Marquardt over `dim` parameters with damping `λ`.
    ///
    /// # Errors
    /// [`BuildError::Hyperparameter`] unless `λ` is finite and positive.
    pub fn new(dim: usize, lambda: T) -> Result<Self, BuildError> {
        check_positive("lam", lambda)?;
        let z = vec![T::zero(); dim];
        Ok(Self {
            lambda,
            n: dim,
            g: z.clone(),
            h: vec![T::zero(); dim * dim],
            a: vec![T::zero(); dim * dim],
            rhs: z.clone(),
            e: z.clone(),
            col: z,
            cached: None,
        })
    }
}

/// Solves `A z = b` in place (`A` row-major `n × n`, destroyed; `b` becomes `z`). Returns
/// `false` if a pivot is zero or non-finite.
pub(crate) fn solve_in_place<T: Real>(a: &mut [T], b: &mut [T], n: usize) -> bool {
    for k in 0..n {
        let piv = (k..n)
            .max_by(|&i, &j| {
                a[i * n + k]
                    .abs()
                    .partial_cmp(&a[j * n + k].abs())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .unwrap_or(k);
        let p = a[piv * n + k];
        if !(p.is_finite() && p != T::zero()) {
            return false;
        }
        if piv != k {
            for j in 0..n {
                a.swap(k * n + j, piv * n + j);
            }
            b.swap(k, piv);
        }
        for i in k + 1..n {
            let f = a[i * n + k] / p;
            if f != T::zero() {
                for j in k..n {
                    a[i * n + j] = a[i * n + j] - f * a[k * n + j];
                }
                b[i] = b[i] - f * b[k];
            }
        }
    }
    for k in (0..n).rev() {
        let mut acc = b[k];
        for j in k + 1..n {
            acc = acc - a[k * n + j] * b[j];
        }
        b[k] = acc / a[k * n + k];
    }
    b.iter().all(|v| v.is_finite())
}

impl<T: Real> LevenbergMarquardt<T> {
    /// `H` from `n` Hessian-vector products, `A = H² + λ diag(H²)` and `rhs = H g`.
    fn assemble(&mut self, task: &mut dyn Task<T>, x: &[T]) -> Result<(), StepError> {
        let n = self.n;
        // H column by column (H is symmetric, so column j is row j).
        for j in 0..n {
            self.e.fill(T::zero());
            self.e[j] = T::one();
            if task.hessian_vector(x, &self.e, &mut self.col).is_none() {
                return Err(StepError::NonFiniteStep { index: 0 });
            }
            self.h[j * n..(j + 1) * n].copy_from_slice(&self.col);
        }
        // (H²)_ij = Σ_k H_ik H_jk (H symmetric): dot products of rows.
        for i in 0..n {
            for j in 0..=i {
                let v = dot(&self.h[i * n..(i + 1) * n], &self.h[j * n..(j + 1) * n]);
                self.a[i * n + j] = v;
                self.a[j * n + i] = v;
            }
        }
        for i in 0..n {
            self.a[i * n + i] = self.a[i * n + i] * (T::one() + self.lambda);
            self.rhs[i] = dot(&self.h[i * n..(i + 1) * n], &self.g);
        }
        Ok(())
    }

    /// `M = A⁻¹ H`, column by column.
    fn damped_newton_matrix(
        &mut self,
        task: &mut dyn Task<T>,
        x: &[T],
    ) -> Result<Vec<T>, StepError> {
        let n = self.n;
        self.assemble(task, x)?;
        let mut m = vec![T::zero(); n * n];
        for j in 0..n {
            let mut a = self.a.clone();
            let mut col: Vec<T> = (0..n).map(|i| self.h[i * n + j]).collect();
            if !solve_in_place(&mut a, &mut col, n) {
                return Err(StepError::NonFiniteStep { index: 0 });
            }
            for i in 0..n {
                m[i * n + j] = col[i];
            }
        }
        Ok(m)
    }
}

impl<T: Real> Minimizer<T> for LevenbergMarquardt<T> {
    /// # Errors
    /// Besides the length and non-finite checks, [`StepError::NonFiniteStep`] when the task has
    /// no Hessian-vector product or the damped system is singular (`x` unchanged).
    fn iterate(&mut self, task: &mut dyn Task<T>, x: &mut [T]) -> Result<T, StepError> {
        let loss = super::fresh_gradient(task, x, &mut self.g)?;
        let n = self.g.len();
        if task.constant_hessian() {
            if self.cached.is_none() {
                self.cached = Some(self.damped_newton_matrix(task, x)?);
            }
            let m = self.cached.as_deref().unwrap_or(&[]);
            for i in 0..n {
                self.rhs[i] = dot(&m[i * n..(i + 1) * n], &self.g);
            }
        } else {
            self.assemble(task, x)?;
            if !solve_in_place(&mut self.a, &mut self.rhs, n) {
                return Err(StepError::NonFiniteStep { index: 0 });
            }
        }
        for r in &mut self.rhs {
            *r = -*r;
        }
        check_ascent(x, &self.rhs)?;
        for (xi, &d) in x.iter_mut().zip(&self.rhs) {
            *xi = *xi + d;
        }
        Ok(loss)
    }
}
