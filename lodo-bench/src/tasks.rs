//! The paper's synthetic tasks (§5.1): the noisy quadratic bowl and the Rosenbrock variant.
//!
//! Both follow the authors' `tasks/noisy_quadratic_bowl.py` and `tasks/rosenbrock.py`, in `f64`.

use lodo_core::random::Stream;

use crate::task::Task;

/// Options of the noisy quadratic bowl. The defaults are the paper's: `n = 100`, eigenvalues
/// log-spaced in `[1e−3, 1]`, centre steps `N(0, I)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BowlOptions {
    /// Dimension `n`.
    pub dim: usize,
    /// Smallest eigenvalue of `H`.
    pub eig_min: f64,
    /// Largest eigenvalue of `H`.
    pub eig_max: f64,
    /// Standard deviation `s` of each coordinate of the centre's random-walk step `N(0, s²I)`.
    pub noise: f64,
}

impl Default for BowlOptions {
    fn default() -> Self {
        Self {
            dim: 100,
            eig_min: 1e-3,
            eig_max: 1.0,
            noise: 1.0,
        }
    }
}

impl BowlOptions {
    /// Checks the options.
    ///
    /// # Errors
    /// A message naming the bad option: `dim = 0`, eigenvalues not finite with
    /// `0 < eig_min ≤ eig_max`, or a negative / non-finite noise scale.
    pub fn validate(&self) -> Result<(), String> {
        if self.dim == 0 {
            return Err("the bowl's dimension must be at least 1".into());
        }
        if !(self.eig_min.is_finite()
            && self.eig_max.is_finite()
            && self.eig_min > 0.0
            && self.eig_min <= self.eig_max)
        {
            return Err(format!(
                "the bowl's spectrum must satisfy 0 < eig_min ≤ eig_max (got [{}, {}])",
                self.eig_min, self.eig_max
            ));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(format!(
                "the bowl's noise scale must be finite and ≥ 0 (got {})",
                self.noise
            ));
        }
        Ok(())
    }

    /// The eigenvalues `λ_i = exp(log λ_min + i/(n−1)·(log λ_max − log λ_min))`, as
    /// `np.e**np.linspace(np.log(λ_min), np.log(λ_max), n)`.
    #[must_use]
    pub fn eigenvalues(&self) -> Vec<f64> {
        let n = self.dim;
        let (a, b) = (self.eig_min.ln(), self.eig_max.ln());
        (0..n)
            .map(|i| {
                if n == 1 {
                    a.exp()
                } else {
                    (a + (b - a) * i as f64 / (n - 1) as f64).exp()
                }
            })
            .collect()
    }

    /// The Newton reference loss `½·s²·tr(H)`: the expected loss of an optimizer that jumps to
    /// the last centre before each new step of the walk (the floor drawn on the bowl's plots;
    /// ≈ 7.4118 for the defaults).
    #[must_use]
    pub fn newton_floor(&self) -> f64 {
        0.5 * self.noise * self.noise * self.eigenvalues().iter().sum::<f64>()
    }
}

/// The noisy quadratic bowl (paper §5.1, the authors' `NoisyQuadraticBowlTask`):
///
/// $$ ℓ_t(x) = ½ (x − c_t)ᵀ H (x − c_t),\qquad c_t = c_{t−1} + s·ξ_t,\ ξ_t ∼ N(0, I),\ c_0 = 0, $$
///
/// with `H = Q·diag(λ)·Qᵀ`, `Q` Haar-random orthogonal and `λ` log-spaced. Every fresh evaluation
/// first moves the centre; [`Task::loss_grad_same_sample`] does not. `x₀ = 0`.
pub struct NoisyQuadraticBowl {
    options: BowlOptions,
    /// `H`, row-major `n × n`.
    hessian: Vec<f64>,
    center: Vec<f64>,
    diff: Vec<f64>,
    rng: Stream,
}

impl std::fmt::Debug for NoisyQuadraticBowl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoisyQuadraticBowl")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl NoisyQuadraticBowl {
    /// A bowl whose eigenvectors and random walk are determined by `seed` alone.
    ///
    /// # Errors
    /// The message of [`BowlOptions::validate`].
    pub fn new(options: BowlOptions, seed: u64) -> Result<Self, String> {
        options.validate()?;
        let n = options.dim;
        let mut rng = Stream::new(seed);
        let mut q = vec![0.0; n * n];
        rng.orthogonal(n, &mut q);
        let lambda = options.eigenvalues();
        // H = Q diag(λ) Qᵀ.
        let mut hessian = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let h: f64 = (0..n)
                    .map(|k| q[i * n + k] * lambda[k] * q[j * n + k])
                    .sum();
                hessian[i * n + j] = h;
                hessian[j * n + i] = h;
            }
        }
        Ok(Self {
            options,
            hessian,
            center: vec![0.0; n],
            diff: vec![0.0; n],
            rng,
        })
    }

    /// Restarts the random walk (centre back to 0) with a new seed, keeping `H`: the same bowl
    /// with new noise.
    pub fn reseed_walk(&mut self, seed: u64) {
        self.rng = Stream::new(seed);
        self.center.fill(0.0);
    }

    /// The options it was built with.
    #[must_use]
    pub fn options(&self) -> &BowlOptions {
        &self.options
    }

    /// `H`, row-major.
    #[must_use]
    pub fn hessian(&self) -> &[f64] {
        &self.hessian
    }

    /// The current centre `c_t`.
    #[must_use]
    pub fn center(&self) -> &[f64] {
        &self.center
    }

    fn evaluate(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        let n = self.options.dim;
        assert!(
            x.len() == n && grad.len() == n,
            "bowl: x and grad must have length {n}"
        );
        for ((d, &xi), &ci) in self.diff.iter_mut().zip(x).zip(&self.center) {
            *d = xi - ci;
        }
        let mut loss = 0.0;
        for (i, gi) in grad.iter_mut().enumerate() {
            let row = &self.hessian[i * n..(i + 1) * n];
            let hd: f64 = row.iter().zip(&self.diff).map(|(a, b)| a * b).sum();
            *gi = hd;
            loss += self.diff[i] * hd;
        }
        0.5 * loss
    }
}

impl Task<f64> for NoisyQuadraticBowl {
    fn name(&self) -> &str {
        "bowl"
    }

    fn dim(&self) -> usize {
        self.options.dim
    }

    fn initial_point(&self) -> Vec<f64> {
        vec![0.0; self.options.dim]
    }

    /// Moves the centre by `s·N(0, I)`, then `ℓ = ½(x−c)ᵀH(x−c)`, `∇ℓ = H(x−c)`.
    fn loss_grad(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        let s = self.options.noise;
        for c in &mut self.center {
            *c += s * self.rng.gaussian();
        }
        self.evaluate(x, grad)
    }

    fn loss_grad_same_sample(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.evaluate(x, grad)
    }

    /// `H·v` exactly (the Hessian does not depend on `x` or the sample).
    fn hessian_vector(&mut self, _x: &[f64], v: &[f64], out: &mut [f64]) -> Option<()> {
        let n = self.options.dim;
        if v.len() != n || out.len() != n {
            return None;
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.hessian[i * n..(i + 1) * n]
                .iter()
                .zip(v)
                .map(|(a, b)| a * b)
                .sum();
        }
        Some(())
    }

    fn constant_hessian(&self) -> bool {
        true
    }

    fn reference_loss(&self) -> Option<f64> {
        Some(self.options.newton_floor())
    }
}

/// The authors' Rosenbrock variant (paper §5.1, `tasks/rosenbrock.py`):
///
/// $$ ℓ(x, y) = 0.01\,(1 − x)^2 + (y − x^2)^2, \qquad (x_0, y_0) = (−0.5, 2), $$
///
/// minimum 0 at `(1, 1)`. As in the authors' code it is deterministic: a "fresh sample" and the
/// same sample give the same value.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rosenbrock;

impl Rosenbrock {
    /// The bounds `(left, right, bottom, top)` of the authors' trajectory plot.
    pub const PLOT_BOUNDS: (f64, f64, f64, f64) = (-1.2, 1.5, -1.0, 2.5);

    /// `ℓ(x, y)`.
    #[must_use]
    pub fn value(x: f64, y: f64) -> f64 {
        0.01 * (1.0 - x) * (1.0 - x) + (y - x * x) * (y - x * x)
    }

    fn evaluate(p: &[f64], grad: &mut [f64]) -> f64 {
        assert!(
            p.len() == 2 && grad.len() == 2,
            "rosenbrock: x and grad must have length 2"
        );
        let (x, y) = (p[0], p[1]);
        let r = y - x * x;
        // ∂ℓ/∂x = −0.02(1−x) − 4x(y−x²), ∂ℓ/∂y = 2(y−x²).
        grad[0] = -0.02 * (1.0 - x) - 4.0 * x * r;
        grad[1] = 2.0 * r;
        Self::value(x, y)
    }
}

impl Task<f64> for Rosenbrock {
    fn name(&self) -> &str {
        "rosenbrock"
    }

    fn dim(&self) -> usize {
        2
    }

    fn initial_point(&self) -> Vec<f64> {
        vec![-0.5, 2.0]
    }

    fn loss_grad(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        Self::evaluate(x, grad)
    }

    fn loss_grad_same_sample(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        Self::evaluate(x, grad)
    }

    /// `H = [[0.02 + 12x² − 4y, −4x], [−4x, 2]]` times `v`.
    fn hessian_vector(&mut self, p: &[f64], v: &[f64], out: &mut [f64]) -> Option<()> {
        if p.len() != 2 || v.len() != 2 || out.len() != 2 {
            return None;
        }
        let (x, y) = (p[0], p[1]);
        let hxx = 0.02 + 12.0 * x * x - 4.0 * y;
        let hxy = -4.0 * x;
        out[0] = hxx * v[0] + hxy * v[1];
        out[1] = hxy * v[0] + 2.0 * v[1];
        Some(())
    }

    fn reference_loss(&self) -> Option<f64> {
        None
    }
}
