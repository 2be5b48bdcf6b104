//! First-order baselines with one gradient per step, as [`lodo_core::Optimizer`]s.
//!
//! Symbols: `g` gradient, `η` learning rate, `t` step count (from 1). All state starts at 0.
//! Each also saves and restores its state ([`Persist`], for checkpoints); so does
//! [`lodo_core::Adam`], the Adam baseline.

use lodo_core::optimizer::check_inputs;
use lodo_core::{Adam, ConfigError, MetaOptimizer, Optimizer, Real, StepError, lit};

use super::registry::{BuildError, check_positive, check_unit};
use super::{check_ascent, dot};
use crate::task::{Persist, StateFloat};

/// Keras SGD with (heavy-ball) momentum, the authors' "Momentum":
///
/// $$ v ← μ v − η g,\qquad x ← x + v. $$
///
/// Authors' defaults `η = 0.01`, `μ = 0`.
#[derive(Clone, Debug)]
pub struct Momentum<T> {
    lr: T,
    mu: T,
    v: Vec<T>,
    scratch: Vec<T>,
}

impl<T: Real> Momentum<T> {
    /// SGD with momentum over `dim` parameters.
    ///
    /// # Errors
    /// [`BuildError::Hyperparameter`] unless `η > 0` is finite and `0 ≤ μ < 1`.
    pub fn new(dim: usize, lr: T, momentum: T) -> Result<Self, BuildError> {
        check_positive("lr", lr)?;
        check_unit("momentum", momentum)?;
        Ok(Self {
            lr,
            mu: momentum,
            v: vec![T::zero(); dim],
            scratch: vec![T::zero(); dim],
        })
    }
}

impl<T: Real> Optimizer<T> for Momentum<T> {
    /// `η`.
    fn learning_rate(&self) -> T {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: T) -> Result<(), ConfigError> {
        set_rate(&mut self.lr, lr)
    }

    fn dim(&self) -> usize {
        self.v.len()
    }

    fn step(&mut self, x: &mut [T], g: &[T]) -> Result<(), StepError> {
        check_inputs(self.v.len(), x, g)?;
        for ((s, &v), &gi) in self.scratch.iter_mut().zip(&self.v).zip(g) {
            *s = self.mu * v - self.lr * gi;
        }
        check_ascent(x, &self.scratch)?;
        std::mem::swap(&mut self.v, &mut self.scratch);
        for (xi, &v) in x.iter_mut().zip(&self.v) {
            *xi = *xi + v;
        }
        Ok(())
    }
}

/// Keras RMSprop (the authors' "RMSprop", `ε = 1e−7`):
///
/// $$ r ← ρ r + (1−ρ) g^2,\qquad u ← μ u + η\,\frac{g}{\sqrt r + ε},\qquad x ← x − u. $$
///
/// Authors' defaults `η = 1e−3`, `ρ = 0.9`, `μ = 0`.
#[derive(Clone, Debug)]
pub struct RmsProp<T> {
    lr: T,
    rho: T,
    mu: T,
    eps: T,
    r: Vec<T>,
    u: Vec<T>,
    r_new: Vec<T>,
    u_new: Vec<T>,
}

impl<T: Real> RmsProp<T> {
    /// RMSprop over `dim` parameters.
    ///
    /// # Errors
    /// [`BuildError::Hyperparameter`] unless `η > 0`, `0 ≤ ρ < 1` and `0 ≤ μ < 1`.
    pub fn new(dim: usize, lr: T, rho: T, momentum: T) -> Result<Self, BuildError> {
        check_positive("lr", lr)?;
        check_unit("rho", rho)?;
        check_unit("momentum", momentum)?;
        let z = vec![T::zero(); dim];
        Ok(Self {
            lr,
            rho,
            mu: momentum,
            eps: lit(1e-7),
            r: z.clone(),
            u: z.clone(),
            r_new: z.clone(),
            u_new: z,
        })
    }
}

impl<T: Real> Optimizer<T> for RmsProp<T> {
    /// `η`.
    fn learning_rate(&self) -> T {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: T) -> Result<(), ConfigError> {
        set_rate(&mut self.lr, lr)
    }

    fn dim(&self) -> usize {
        self.r.len()
    }

    fn step(&mut self, x: &mut [T], g: &[T]) -> Result<(), StepError> {
        check_inputs(self.r.len(), x, g)?;
        for (i, &gi) in g.iter().enumerate() {
            let r = self.rho * self.r[i] + (T::one() - self.rho) * gi * gi;
            self.r_new[i] = r;
            // Stored negated so that `x + u_new` is the candidate.
            self.u_new[i] = -(self.mu * self.u[i] + self.lr * gi / (r.sqrt() + self.eps));
        }
        check_ascent(x, &self.u_new)?;
        for (xi, u) in x.iter_mut().zip(self.u_new.iter_mut()) {
            *xi = *xi + *u;
            *u = -*u;
        }
        std::mem::swap(&mut self.r, &mut self.r_new);
        std::mem::swap(&mut self.u, &mut self.u_new);
        Ok(())
    }
}

/// Yogi in the authors' form (`YogiMinimizationProcedure`: no bias correction, `ε = 1e−3`):
///
/// $$ m ← β_1 m + (1−β_1) g,\quad v ← v − (1−β_2)\,\mathrm{sign}(v − g^2)\, g^2,\quad
///    x ← x − η \frac{m}{\sqrt v + ε}. $$
///
/// Authors' defaults `η = 1e−3`, `β₁ = 0.9`, `β₂ = 0.999`.
#[derive(Clone, Debug)]
pub struct Yogi<T> {
    lr: T,
    beta1: T,
    beta2: T,
    eps: T,
    m: Vec<T>,
    v: Vec<T>,
    m_new: Vec<T>,
    v_new: Vec<T>,
    s: Vec<T>,
}

impl<T: Real> Yogi<T> {
    /// Yogi over `dim` parameters.
    ///
    /// # Errors
    /// [`BuildError::Hyperparameter`] unless `η > 0` and `0 ≤ β₁, β₂ < 1`.
    pub fn new(dim: usize, lr: T, beta1: T, beta2: T) -> Result<Self, BuildError> {
        check_positive("lr", lr)?;
        check_unit("beta1", beta1)?;
        check_unit("beta2", beta2)?;
        let z = vec![T::zero(); dim];
        Ok(Self {
            lr,
            beta1,
            beta2,
            eps: lit(1e-3),
            m: z.clone(),
            v: z.clone(),
            m_new: z.clone(),
            v_new: z.clone(),
            s: z,
        })
    }
}

/// `*lr ← lr` if finite and positive ([`Optimizer::set_learning_rate`]).
fn set_rate<T: Real>(rate: &mut T, lr: T) -> Result<(), ConfigError> {
    if lr.is_finite() && lr > T::zero() {
        *rate = lr;
        Ok(())
    } else {
        Err(ConfigError::InvalidLearningRate)
    }
}

fn sign<T: Real>(x: T) -> T {
    // tf.math.sign: 0 at 0.
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

impl<T: Real> Optimizer<T> for Yogi<T> {
    /// `η`.
    fn learning_rate(&self) -> T {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: T) -> Result<(), ConfigError> {
        set_rate(&mut self.lr, lr)
    }

    fn dim(&self) -> usize {
        self.m.len()
    }

    fn step(&mut self, x: &mut [T], g: &[T]) -> Result<(), StepError> {
        check_inputs(self.m.len(), x, g)?;
        for (i, &gi) in g.iter().enumerate() {
            let g2 = gi * gi;
            let m = self.beta1 * self.m[i] + (T::one() - self.beta1) * gi;
            let v = self.v[i] - (T::one() - self.beta2) * sign(self.v[i] - g2) * g2;
            self.m_new[i] = m;
            self.v_new[i] = v;
            self.s[i] = -self.lr * m / (v.sqrt() + self.eps);
        }
        check_ascent(x, &self.s)?;
        for (xi, &si) in x.iter_mut().zip(&self.s) {
            *xi = *xi + si;
        }
        std::mem::swap(&mut self.m, &mut self.m_new);
        std::mem::swap(&mut self.v, &mut self.v_new);
        Ok(())
    }
}

/// LARS in the authors' form (`LARSMinimizationProcedure`), per layer `l` (a slice of `x`):
///
/// $$ η_t = η\,(1 − t/T)^2,\quad λ_l = \frac{‖x_l‖}{‖g_l‖ + w‖x_l‖},\quad
///    u_l ← μ u_l + η_t λ_l (g_l + w x_l),\quad x_l ← x_l − u_l, $$
///
/// with `t` the step (from 1) and `T` the step budget; `λ_l = 0` when its denominator is 0
/// (so LARS cannot leave `x_l = 0`, as in the authors' code). Authors' defaults `η = 1e−3`,
/// `μ = 0.9`, `w = 5e−4`; on Rosenbrock each coordinate is its own layer.
#[derive(Clone, Debug)]
pub struct Lars<T> {
    lr: T,
    mu: T,
    wd: T,
    total_steps: u64,
    t: u64,
    starts: Vec<usize>,
    u: Vec<T>,
    u_new: Vec<T>,
}

impl<T: Real> Lars<T> {
    /// LARS over `dim` parameters split into layers beginning at `layer_starts` (must start with
    /// 0 and increase), with a budget of `total_steps` steps for the decay `(1 − t/T)²`.
    ///
    /// # Errors
    /// [`BuildError::Hyperparameter`] for a bad `η`, `μ` or `w`; [`BuildError::Layers`] for bad
    /// layer starts or `total_steps = 0`.
    pub fn new(
        dim: usize,
        lr: T,
        momentum: T,
        weight_decay: T,
        total_steps: u64,
        layer_starts: &[usize],
    ) -> Result<Self, BuildError> {
        check_positive("lr", lr)?;
        check_unit("momentum", momentum)?;
        if !(weight_decay.is_finite() && weight_decay >= T::zero()) {
            return Err(BuildError::Hyperparameter {
                name: "weight_decay",
                value: weight_decay.to_f64().unwrap_or(f64::NAN),
                expected: "finite and ≥ 0",
            });
        }
        let ok = layer_starts.first() == Some(&0)
            && layer_starts.windows(2).all(|w| w[0] < w[1])
            && layer_starts.last().is_some_and(|&l| l < dim.max(1));
        if !ok || total_steps == 0 {
            return Err(BuildError::Layers);
        }
        Ok(Self {
            lr,
            mu: momentum,
            wd: weight_decay,
            total_steps,
            t: 0,
            starts: layer_starts.to_vec(),
            u: vec![T::zero(); dim],
            u_new: vec![T::zero(); dim],
        })
    }
}

impl<T: Real> Optimizer<T> for Lars<T> {
    /// `η`.
    fn learning_rate(&self) -> T {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: T) -> Result<(), ConfigError> {
        set_rate(&mut self.lr, lr)
    }

    fn dim(&self) -> usize {
        self.u.len()
    }

    fn step(&mut self, x: &mut [T], g: &[T]) -> Result<(), StepError> {
        let n = self.u.len();
        check_inputs(n, x, g)?;
        let t = self.t + 1;
        let progress: T = lit(t as f64 / self.total_steps as f64);
        let global = self.lr * (T::one() - progress) * (T::one() - progress);
        for (l, &a) in self.starts.iter().enumerate() {
            let b = self.starts.get(l + 1).copied().unwrap_or(n);
            let (xl, gl) = (&x[a..b], &g[a..b]);
            let xn = dot(xl, xl).sqrt();
            let gn = dot(gl, gl).sqrt();
            let den = gn + self.wd * xn;
            let local = if den > T::zero() { xn / den } else { T::zero() };
            for i in a..b {
                self.u_new[i] = self.mu * self.u[i] + global * local * (g[i] + self.wd * x[i]);
            }
        }
        if let Some(index) = x
            .iter()
            .zip(&self.u_new)
            .position(|(&a, &b)| !(a - b).is_finite())
        {
            return Err(StepError::NonFiniteStep { index });
        }
        for (xi, &ui) in x.iter_mut().zip(&self.u_new) {
            *xi = *xi - ui;
        }
        std::mem::swap(&mut self.u, &mut self.u_new);
        self.t = t;
        Ok(())
    }
}

/// `Ok` if a saved hyperparameter has the bits of the built one.
fn same<T: Real>(name: &str, saved: T, built: T) -> anyhow::Result<()> {
    let bits = |v: T| v.to_f64().map(f64::to_bits);
    anyhow::ensure!(
        bits(saved) == bits(built),
        "the checkpoint's {name} is {saved:?}, this run's is {built:?}: it was written by a run \
         with other hyperparameters"
    );
    Ok(())
}

/// `Ok` if a saved vector has `expected` entries, all finite.
fn vector<T: Real>(name: &str, v: &[T], expected: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        v.len() == expected,
        "the checkpoint's {name} has {} entries, this run has {expected} parameters",
        v.len()
    );
    anyhow::ensure!(
        v.iter().all(|x| x.is_finite()),
        "the checkpoint's {name} is not finite"
    );
    Ok(())
}

fn decode<S: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> anyhow::Result<S> {
    postcard::from_bytes(bytes).map_err(|e| anyhow::anyhow!("cannot decode the {what} state: {e}"))
}

fn encode<S: serde::Serialize>(state: &S) -> anyhow::Result<Vec<u8>> {
    Ok(postcard::to_allocvec(state)?)
}

/// Saved: `(η, μ, v)`.
impl<T: StateFloat> Persist for Momentum<T> {
    fn save_state(&self) -> anyhow::Result<Vec<u8>> {
        encode(&(self.lr, self.mu, &self.v))
    }

    fn load_state(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let (lr, mu, v): (T, T, Vec<T>) = decode("Momentum", bytes)?;
        same("learning rate", lr, self.lr)?;
        same("momentum", mu, self.mu)?;
        vector("velocity", &v, self.v.len())?;
        self.v = v;
        Ok(())
    }
}

/// Saved: `(η, ρ, μ, r, u)`.
impl<T: StateFloat> Persist for RmsProp<T> {
    fn save_state(&self) -> anyhow::Result<Vec<u8>> {
        encode(&(self.lr, self.rho, self.mu, &self.r, &self.u))
    }

    fn load_state(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let (lr, rho, mu, r, u): (T, T, T, Vec<T>, Vec<T>) = decode("RMSprop", bytes)?;
        same("learning rate", lr, self.lr)?;
        same("rho", rho, self.rho)?;
        same("momentum", mu, self.mu)?;
        vector("mean square", &r, self.r.len())?;
        vector("momentum buffer", &u, self.u.len())?;
        anyhow::ensure!(
            r.iter().all(|x| *x >= T::zero()),
            "the checkpoint's mean square is negative"
        );
        self.r = r;
        self.u = u;
        Ok(())
    }
}

/// Saved: `(η, β₁, β₂, m, v)`.
impl<T: StateFloat> Persist for Yogi<T> {
    fn save_state(&self) -> anyhow::Result<Vec<u8>> {
        encode(&(self.lr, self.beta1, self.beta2, &self.m, &self.v))
    }

    fn load_state(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let (lr, beta1, beta2, m, v): (T, T, T, Vec<T>, Vec<T>) = decode("Yogi", bytes)?;
        same("learning rate", lr, self.lr)?;
        same("beta1", beta1, self.beta1)?;
        same("beta2", beta2, self.beta2)?;
        vector("first moment", &m, self.m.len())?;
        vector("second moment", &v, self.v.len())?;
        self.m = m;
        self.v = v;
        Ok(())
    }
}

/// Saved: `(η, μ, w, T, t, layer starts, u)`. The decay `(1 − t/T)²` depends on the budget
/// `T`, so a state of another budget is refused (a LARS run cannot be extended).
impl<T: StateFloat> Persist for Lars<T> {
    fn save_state(&self) -> anyhow::Result<Vec<u8>> {
        encode(&(
            self.lr,
            self.mu,
            self.wd,
            self.total_steps,
            self.t,
            &self.starts,
            &self.u,
        ))
    }

    fn load_state(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        type Saved<T> = (T, T, T, u64, u64, Vec<usize>, Vec<T>);
        let (lr, mu, wd, total, t, starts, u): Saved<T> = decode("LARS", bytes)?;
        same("learning rate", lr, self.lr)?;
        same("momentum", mu, self.mu)?;
        same("weight decay", wd, self.wd)?;
        anyhow::ensure!(
            total == self.total_steps,
            "LARS's learning rate decays as (1 − t/T)² over its step budget T: the checkpoint \
             has T = {total}, this run T = {}; a LARS run continues only with its own budget",
            self.total_steps
        );
        anyhow::ensure!(
            starts == self.starts,
            "the checkpoint's LARS layers differ from this run's"
        );
        anyhow::ensure!(
            t <= total,
            "the checkpoint's LARS step {t} exceeds T = {total}"
        );
        vector("momentum buffer", &u, self.u.len())?;
        self.t = t;
        self.u = u;
        Ok(())
    }
}

/// The whole [`Adam`] (its serde form: hyperparameters, `t`, moments), validated by lodo-core
/// ([`MetaOptimizer::validate_state`]) and checked against this run's configuration.
impl<T: StateFloat> Persist for Adam<T> {
    fn save_state(&self) -> anyhow::Result<Vec<u8>> {
        encode(self)
    }

    fn load_state(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut saved: Adam<T> = decode("Adam", bytes)?;
        saved
            .validate_state(Optimizer::dim(self))
            .map_err(|e| anyhow::anyhow!("invalid Adam state in the checkpoint: {e}"))?;
        anyhow::ensure!(
            saved.config() == self.config(),
            "the checkpoint's Adam has {:?}, this run's {:?}: it was written by a run with \
             other hyperparameters",
            saved.config(),
            self.config()
        );
        *self = saved;
        Ok(())
    }
}
