//! Quasi-Newton baselines: stochastic L-BFGS without line search / O-LBFGS, and dense BFGS.

use lodo_core::{Real, StepError, lit};

use super::registry::{BuildError, check_positive};
use super::{check_ascent, dot};
use crate::task::{Minimizer, Task};

/// Which stochastic L-BFGS of Schraudolph, Yu & Günter (2007) to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbfgsVariant {
    /// Algorithm 1 with §3.2's stochastic changes and the first paragraph of §3.3: the initial
    /// scaling is `sᵀy/yᵀy` of the newest pair (the authors' "L-BFGS-no-line-search").
    NoLineSearch,
    /// O-LBFGS: as above but the initial scaling averages `sᵀy/yᵀy` over the buffer (§3.3).
    Online,
}

/// Stochastic L-BFGS without line search (the authors' `LBFGSNoLineSearchMinimizationProcedure`
/// and `OLBFGSMinimizationProcedure`, §3.2–3.3 of Schraudolph, Yu & Günter 2007). Iteration `t`
/// (from 0), with the buffer of the last `M` pairs `(s_i, y_i)`:
///
/// 1. `g = ∇ℓ(x)` on a fresh sample;
/// 2. two-loop recursion `p = −H_t g` with `H_t⁰ = γ_t I`: `γ_0 = ε`,
///    `γ_t = s_{t−1}ᵀy_{t−1}/y_{t−1}ᵀy_{t−1}` ([`LbfgsVariant::NoLineSearch`]) or
///    `γ_t = (1/min(t, M)) Σ_i s_iᵀy_i/y_iᵀy_i` over the buffer ([`LbfgsVariant::Online`]);
/// 3. `s = η₀·τ/(τ + t)·p`, `x' = x + s`;
/// 4. `g' = ∇ℓ(x')` on the *same* sample, `y = g' − g` (λ = 0); push `(s, y)`; `x ← x'`.
///
/// Two evaluations per iteration. Authors' defaults `η₀ = 1e−3`, `τ = 1e4`, `ε = 1e−10`,
/// `M = 48`. (The authors' no-line-search code scales by the *oldest* `s` with the newest `y`,
/// a slip; this implements the paper's newest pair.)
#[derive(Clone, Debug)]
pub struct Lbfgs<T> {
    variant: LbfgsVariant,
    eta0: T,
    tau: T,
    eps: T,
    capacity: usize,
    t: u64,
    /// Ring buffer of pairs; entry `t % M` is the newest after iteration `t`.
    s: Vec<Vec<T>>,
    y: Vec<Vec<T>>,
    g: Vec<T>,
    g2: Vec<T>,
    p: Vec<T>,
    x_new: Vec<T>,
    alphas: Vec<T>,
}

impl<T: Real> Lbfgs<T> {
    /// A stochastic L-BFGS over `dim` parameters with a buffer of `buffer` pairs.
    ///
    /// # Errors
    /// [`BuildError::Hyperparameter`] unless `η₀`, `τ`, `ε` are finite and positive and
    /// `buffer ≥ 1`.
    pub fn new(
        variant: LbfgsVariant,
        dim: usize,
        eta0: T,
        tau: T,
        epsilon: T,
        buffer: usize,
    ) -> Result<Self, BuildError> {
        check_positive("eta_0", eta0)?;
        check_positive("tau", tau)?;
        check_positive("epsilon", epsilon)?;
        if buffer == 0 {
            return Err(BuildError::Hyperparameter {
                name: "buffer_size",
                value: 0.0,
                expected: "≥ 1",
            });
        }
        let z = vec![T::zero(); dim];
        Ok(Self {
            variant,
            eta0,
            tau,
            eps: epsilon,
            capacity: buffer,
            t: 0,
            s: Vec::with_capacity(buffer),
            y: Vec::with_capacity(buffer),
            g: z.clone(),
            g2: z.clone(),
            p: z.clone(),
            x_new: z,
            alphas: vec![T::zero(); buffer],
        })
    }

    /// Index in the ring of the pair from iteration `t − i` (`1 ≤ i ≤ min(t, M)`).
    fn slot(&self, i: u64) -> usize {
        ((self.t - i) % self.capacity as u64) as usize
    }

    /// `p = −H_t g` by the two-loop recursion.
    fn direction(&mut self) {
        for (p, &g) in self.p.iter_mut().zip(&self.g) {
            *p = -g;
        }
        let stored = self.t.min(self.capacity as u64);
        for i in 1..=stored {
            let k = self.slot(i);
            let a = dot(&self.s[k], &self.p) / dot(&self.s[k], &self.y[k]);
            self.alphas[(i - 1) as usize] = a;
            for (p, &y) in self.p.iter_mut().zip(&self.y[k]) {
                *p = *p - a * y;
            }
        }
        let gamma = if self.t == 0 {
            self.eps
        } else {
            match self.variant {
                LbfgsVariant::NoLineSearch => {
                    let k = self.slot(1);
                    dot(&self.s[k], &self.y[k]) / dot(&self.y[k], &self.y[k])
                }
                LbfgsVariant::Online => {
                    let mut c = T::zero();
                    for i in 1..=stored {
                        let k = self.slot(i);
                        c = c + dot(&self.s[k], &self.y[k]) / dot(&self.y[k], &self.y[k]);
                    }
                    c / lit(stored as f64)
                }
            }
        };
        for p in &mut self.p {
            *p = *p * gamma;
        }
        for i in (1..=stored).rev() {
            let k = self.slot(i);
            let b = dot(&self.y[k], &self.p) / dot(&self.y[k], &self.s[k]);
            let c = self.alphas[(i - 1) as usize] - b;
            for (p, &s) in self.p.iter_mut().zip(&self.s[k]) {
                *p = *p + c * s;
            }
        }
    }
}

impl<T: Real> Minimizer<T> for Lbfgs<T> {
    fn iterate(&mut self, task: &mut dyn Task<T>, x: &mut [T]) -> Result<T, StepError> {
        let loss = super::fresh_gradient(task, x, &mut self.g)?;
        self.direction();
        let rate = self.eta0 * self.tau / (self.tau + lit(self.t as f64));
        for p in &mut self.p {
            *p = *p * rate;
        }
        check_ascent(x, &self.p)?;
        for ((xn, &xi), &s) in self.x_new.iter_mut().zip(x.iter()).zip(&self.p) {
            *xn = xi + s;
        }
        task.loss_grad_same_sample(&self.x_new, &mut self.g2);
        if let Some(index) = self.g2.iter().position(|v| !v.is_finite()) {
            return Err(StepError::NonFiniteGradient { index });
        }
        let y: Vec<T> = self.g2.iter().zip(&self.g).map(|(&a, &b)| a - b).collect();
        let k = (self.t % self.capacity as u64) as usize;
        if self.s.len() < self.capacity {
            self.s.push(self.p.clone());
            self.y.push(y);
        } else {
            self.s[k].copy_from_slice(&self.p);
            self.y[k] = y;
        }
        x.copy_from_slice(&self.x_new);
        self.t += 1;
        Ok(loss)
    }

    fn evaluations_per_iteration(&self) -> usize {
        2
    }
}

/// Dense BFGS with a fixed step (the authors' `BFGSMinimizationProcedure`): with the inverse
/// Hessian estimate `H₀ = h₀·I`, at iteration `t`
///
/// $$ g_t = ∇ℓ_t(x_t),\quad y = g_t − g_{t−1},\quad
///    H ← H + \frac{(sᵀy + yᵀHy)\, ssᵀ}{(sᵀy)^2} − \frac{Hy\,sᵀ + s\,yᵀH}{sᵀy}\ (t ≥ 1),\quad
///    s = −η\, H g_t,\quad x_{t+1} = x_t + s, $$
///
/// one fresh sample per iteration (so `y` mixes two samples, as in the authors' code). Authors'
/// defaults `η = 0.01`, `h₀ = 1`. `O(n²)` memory and time per step.
#[derive(Clone, Debug)]
pub struct Bfgs<T> {
    lr: T,
    n: usize,
    h: Vec<T>,
    g: Vec<T>,
    g_prev: Vec<T>,
    s: Vec<T>,
    hy: Vec<T>,
    started: bool,
}

impl<T: Real> Bfgs<T> {
    /// BFGS over `dim` parameters.
    ///
    /// # Errors
    /// [`BuildError::Hyperparameter`] unless `η` and `h₀` are finite and positive.
    pub fn new(dim: usize, lr: T, h0_scale: T) -> Result<Self, BuildError> {
        check_positive("lr", lr)?;
        check_positive("H0_scale", h0_scale)?;
        let mut h = vec![T::zero(); dim * dim];
        for i in 0..dim {
            h[i * dim + i] = h0_scale;
        }
        let z = vec![T::zero(); dim];
        Ok(Self {
            lr,
            n: dim,
            h,
            g: z.clone(),
            g_prev: z.clone(),
            s: z.clone(),
            hy: z,
            started: false,
        })
    }

    /// The inverse-Hessian estimate `H`, row-major.
    #[must_use]
    pub fn inverse_hessian(&self) -> &[T] {
        &self.h
    }
}

impl<T: Real> Minimizer<T> for Bfgs<T> {
    fn iterate(&mut self, task: &mut dyn Task<T>, x: &mut [T]) -> Result<T, StepError> {
        let loss = super::fresh_gradient(task, x, &mut self.g)?;
        let n = self.n;
        let mut h_new = None;
        if self.started {
            let y: Vec<T> = self
                .g
                .iter()
                .zip(&self.g_prev)
                .map(|(&a, &b)| a - b)
                .collect();
            for i in 0..n {
                self.hy[i] = dot(&self.h[i * n..(i + 1) * n], &y);
            }
            let sy = dot(&self.s, &y);
            let yhy = dot(&y, &self.hy);
            let c1 = (sy + yhy) / (sy * sy);
            let mut h = self.h.clone();
            for i in 0..n {
                for j in 0..n {
                    // H is symmetric, so yᵀH = (Hy)ᵀ.
                    h[i * n + j] = h[i * n + j] + c1 * self.s[i] * self.s[j]
                        - (self.hy[i] * self.s[j] + self.s[i] * self.hy[j]) / sy;
                }
            }
            h_new = Some(h);
        }
        let h = h_new.as_deref().unwrap_or(&self.h);
        let s: Vec<T> = (0..n)
            .map(|i| -self.lr * dot(&h[i * n..(i + 1) * n], &self.g))
            .collect();
        check_ascent(x, &s)?;
        if let Some(h) = h_new {
            self.h = h;
        }
        for (xi, &si) in x.iter_mut().zip(&s) {
            *xi = *xi + si;
        }
        self.s = s;
        std::mem::swap(&mut self.g_prev, &mut self.g);
        self.started = true;
        Ok(loss)
    }
}
