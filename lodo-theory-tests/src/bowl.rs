//! The noisy quadratic bowl of the paper (§5.1; the authors' `NoisyQuadraticBowlTask`):
//! `ℓ_t(x) = ½ (x − c_t)ᵀ H (x − c_t)`, `c_{t+1} = c_t + σ·w_t`, `w_t ~ N(0, I)`, and a plain
//! dense-`G` hypergradient SGD on it (THEORY.md, T1).
//!
//! Only the error `e_t = x_t − c_t` matters for every quantity here (`∇ℓ_t(x_t) = H e_t`), so the
//! simulators track `e` instead of `x` and `c` separately: `e ← e − σ w` when the centre moves,
//! `e ← e − step` when `x` moves. This is the same recursion with the unbounded random walk
//! subtracted.

use faer::Mat;
use lodo_core::random::Stream;

use crate::linalg::{from_eigen, from_row_major, random_orthogonal};

/// A quadratic bowl `H = Q Λ Qᵀ`.
#[derive(Clone, Debug)]
pub struct Bowl {
    /// Eigenvalues `λ_i` of `H`, in the order of the columns of `q`.
    pub lambdas: Vec<f64>,
    /// Orthonormal eigenvectors (columns).
    pub q: Mat<f64>,
    /// `H`.
    pub h: Mat<f64>,
}

impl Bowl {
    /// `H = Q diag(λ) Qᵀ` with Haar-random `Q` from `rng`.
    #[must_use]
    pub fn new(lambdas: Vec<f64>, rng: &mut Stream) -> Self {
        let q = random_orthogonal(lambdas.len(), rng);
        let h = from_eigen(&q, &lambdas);
        Self { lambdas, q, h }
    }

    /// Eigenvalues log-spaced from `hi` down to `lo` (`λ_0 = hi` is the top one), as the paper's
    /// bowl (`n = 100`, `[1e−3, 1]`).
    #[must_use]
    pub fn log_spaced(n: usize, lo: f64, hi: f64, rng: &mut Stream) -> Self {
        let lambdas = (0..n)
            .map(|i| {
                let t = if n == 1 {
                    0.0
                } else {
                    i as f64 / (n - 1) as f64
                };
                (hi.ln() + t * (lo.ln() - hi.ln())).exp()
            })
            .collect();
        Self::new(lambdas, rng)
    }

    /// The dimension.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.lambdas.len()
    }

    /// `H⁻¹`.
    #[must_use]
    pub fn h_inv(&self) -> Mat<f64> {
        let d: Vec<f64> = self.lambdas.iter().map(|l| 1.0 / l).collect();
        from_eigen(&self.q, &d)
    }

    /// `Qᵀ M Q`: `M` in the eigenbasis of `H`.
    #[must_use]
    pub fn to_eigenbasis(&self, m: &Mat<f64>) -> Mat<f64> {
        self.q.transpose() * m * &self.q
    }

    /// `Q M Qᵀ`: back from the eigenbasis.
    #[must_use]
    pub fn from_eigenbasis(&self, m: &Mat<f64>) -> Mat<f64> {
        &self.q * m * self.q.transpose()
    }

    /// `I − G H`.
    #[must_use]
    pub fn residual(&self, g: &Mat<f64>) -> Mat<f64> {
        let n = self.dim();
        let gh = g * &self.h;
        Mat::from_fn(n, n, |i, j| if i == j { 1.0 } else { 0.0 } - gh[(i, j)])
    }

    /// `H` row-major.
    #[must_use]
    pub fn h_row_major(&self) -> Vec<f64> {
        let n = self.dim();
        (0..n * n).map(|t| self.h[(t / n, t % n)]).collect()
    }
}

/// How the dense `G` follows its hypergradient `∇_G ℓ_t = −g_t m_{t−1}ᵀ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// Unconstrained `G ← G + η g_t m_{t−1}ᵀ`.
    Full,
    /// Symmetric `G` (the gradient projected on symmetric matrices):
    /// `G ← G + (η/2)(g_t m_{t−1}ᵀ + m_{t−1} g_tᵀ)`.
    Symmetric,
}

/// Plain SGD on a dense `G` along the LODO recursion (Algorithm 1 with `G(θ)` replaced by a free
/// matrix): per step the centre moves, `g_t = H e_t`, `G ← G − η ∇_G ℓ_t(x_t)`,
/// `m_t = β m_{t−1} + (1−β) g_t`, `x_{t+1} = x_t − G m_t`.
pub struct DenseSgd {
    n: usize,
    /// `G`, row-major.
    pub g: Vec<f64>,
    h: Vec<f64>,
    /// `e_t = x_t − c_t`.
    pub e: Vec<f64>,
    /// `m_{t−1}`.
    pub m: Vec<f64>,
    grad: Vec<f64>,
    eta: f64,
    beta: f64,
    sigma: f64,
    update: Update,
    /// When false, `G` stays frozen (rollouts for the regression estimate).
    pub learn: bool,
    rng: Stream,
}

impl DenseSgd {
    /// A simulator on `bowl` starting from `G = g0`, `e = 0`, `m = 0`.
    #[must_use]
    pub fn new(
        bowl: &Bowl,
        g0: &Mat<f64>,
        eta: f64,
        beta: f64,
        sigma: f64,
        update: Update,
        seed: u64,
    ) -> Self {
        let n = bowl.dim();
        Self {
            n,
            g: (0..n * n).map(|t| g0[(t / n, t % n)]).collect(),
            h: bowl.h_row_major(),
            e: vec![0.0; n],
            m: vec![0.0; n],
            grad: vec![0.0; n],
            eta,
            beta,
            sigma,
            update,
            learn: true,
            rng: Stream::new(seed),
        }
    }

    /// `G` as a matrix.
    #[must_use]
    pub fn g_mat(&self) -> Mat<f64> {
        from_row_major(self.n, self.n, &self.g)
    }

    /// One step (see [`DenseSgd::step_with`] to observe the state).
    pub fn step(&mut self) {
        self.step_with(|_, _| {});
    }

    /// One step, calling `observe(e_before_step, m_before_step)` with the error `e` at which
    /// the momentum `m` was formed and that `m` (both before the new step `x ← x − G m`).
    pub fn step_with(&mut self, mut observe: impl FnMut(&[f64], &[f64])) {
        let n = self.n;
        // The centre moves: e ← e − σ w.
        for ei in &mut self.e {
            *ei -= self.sigma * self.rng.gaussian();
        }
        // g_t = H e_t.
        for i in 0..n {
            let row = &self.h[i * n..(i + 1) * n];
            self.grad[i] = row.iter().zip(&self.e).map(|(a, b)| a * b).sum();
        }
        // G ← G + η g mᵀ (hypergradient −g mᵀ).
        if self.learn {
            let (eta, g, m) = (self.eta, &self.grad, &self.m);
            match self.update {
                Update::Full => {
                    for i in 0..n {
                        for j in 0..n {
                            self.g[i * n + j] += eta * g[i] * m[j];
                        }
                    }
                }
                Update::Symmetric => {
                    for i in 0..n {
                        for j in 0..n {
                            self.g[i * n + j] += 0.5 * eta * (g[i] * m[j] + m[i] * g[j]);
                        }
                    }
                }
            }
        }
        // m_t = β m + (1−β) g.
        for (mi, &gi) in self.m.iter_mut().zip(&self.grad) {
            *mi = self.beta * *mi + (1.0 - self.beta) * gi;
        }
        observe(&self.e, &self.m);
        // x ← x − G m.
        for i in 0..n {
            let row = &self.g[i * n..(i + 1) * n];
            let s: f64 = row.iter().zip(&self.m).map(|(a, b)| a * b).sum();
            self.e[i] -= s;
        }
    }
}

/// Exact stationary second moments `(E[e mᵀ], E[m mᵀ])` for a frozen `G` with momentum `β`
/// (THEORY.md, T1 with β > 0). The state `s_t = (e_t, m_t)`, observed after the centre moved
/// and `m_t` was formed, follows the linear recursion `s_{t+1} = A s_t + B w_{t+1}` with
/// `A = [[I, −G], [(1−β)H, βI − (1−β)HG]]`, `B = [−σI; −(1−β)σH]`; its stationary covariance
/// `Σ = Σ_k A^k B Bᵀ (A^k)ᵀ` is summed by doubling. `None` if the recursion is unstable.
#[must_use]
pub fn stationary_moments(
    bowl: &Bowl,
    g: &Mat<f64>,
    beta: f64,
    sigma: f64,
) -> Option<(Mat<f64>, Mat<f64>)> {
    let n = bowl.dim();
    let h = &bowl.h;
    // Observed state s = (e_t, m_t) with e_t after the centre moved, m_t = β m_{t−1} + (1−β) H e_t.
    // Next: e_{t+1} = e_t − G m_t − σ w,  m_{t+1} = β m_t + (1−β) H e_{t+1}.
    // e' = [I, −G] s − σ w;  m' = (1−β) H [I, −G] s + β [0, I] s − (1−β) σ H w.
    let mut a = Mat::<f64>::zeros(2 * n, 2 * n);
    let hg = h * g;
    for i in 0..n {
        for j in 0..n {
            a[(i, j)] = if i == j { 1.0 } else { 0.0 };
            a[(i, n + j)] = -g[(i, j)];
            a[(n + i, j)] = (1.0 - beta) * h[(i, j)];
            a[(n + i, n + j)] = -(1.0 - beta) * hg[(i, j)] + if i == j { beta } else { 0.0 };
        }
    }
    let mut b = Mat::<f64>::zeros(2 * n, n);
    for i in 0..n {
        for j in 0..n {
            b[(i, j)] = if i == j { -sigma } else { 0.0 };
            b[(n + i, j)] = -(1.0 - beta) * sigma * h[(i, j)];
        }
    }
    // Doubling: Σ = Σ_k A^k B Bᵀ A^kᵀ, Σ_{2K} = Σ_K + A^K Σ_K A^Kᵀ, A^{2K} = A^K A^K.
    let mut sigma_acc = &b * b.transpose();
    let mut ak = a;
    for _ in 0..60 {
        let add = &ak * &sigma_acc * ak.transpose();
        sigma_acc += &add;
        ak = &ak * &ak;
        let norm = crate::linalg::frob(&ak);
        if !norm.is_finite() || norm > 1e12 {
            return None;
        }
        if norm < 1e-14 {
            break;
        }
    }
    if crate::linalg::frob(&ak) > 1e-8 {
        return None;
    }
    let em = Mat::from_fn(n, n, |i, j| sigma_acc[(i, n + j)]);
    let mm = Mat::from_fn(n, n, |i, j| sigma_acc[(n + i, n + j)]);
    Some((em, mm))
}

/// The regression `R(G) = E[e mᵀ] E[m mᵀ]⁻¹` for the given moments.
#[must_use]
pub fn regression(em: &Mat<f64>, mm: &Mat<f64>) -> Mat<f64> {
    use faer::linalg::solvers::DenseSolveCore;
    let inv = mm.partial_piv_lu().inverse();
    em * inv
}
