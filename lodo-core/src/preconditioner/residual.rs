//! The residual ablation (paper §5.3; the authors' `LODOWithResidualsMinimizationProcedure`):
//!
//! $$ G = α₀\, Πᵀ R_1ᵀ ⋯ R_Nᵀ\, C\, R_N ⋯ R_1\, Π,\qquad R_l = I + D_l P_l, $$
//!
//! with fixed random permutations `P_l`, trainable diagonals `D_l = diag(d_l)` drawn
//! `N(0, 1/√N)` (standard deviation `1/√N`, as the authors) and a trainable middle diagonal
//! `C = diag(c)`, `c ← 1`. Hidden width `h = 2n` by default (any `h ≥ n` may be set; `k` plays no
//! role). `G` is symmetric; it is positive semidefinite while `c ≥ 0`, which training does not
//! enforce (as in the original). Unlike the LODO network, `G ≠ α₀·I` at the start.
//!
//! # Hypergradient
//! With `p_l(v)` the input `P_l u_{l−1}` of layer `l`, `z(v) = R Π v` the forward output and
//! `w_l(v)` the cotangent at layer `l`'s output when `C z(v)` flows back,
//!
//! $$ ∇_c⟨g, Gm⟩ = α₀\, z(g) ⊙ z(m),\qquad ∇_{d_l}⟨g, Gm⟩ = α₀\,(w_l(m) ⊙ p_l(g) + w_l(g) ⊙ p_l(m)). $$
//!
//! # Weight layout
//! `θ = [d_1, …, d_N, c]`, each of length `h`.

use alloc::vec;
use alloc::vec::Vec;

use lodo_kernels::permutation::gather;

use super::{
    Footprint, Preconditioner, WeightSink, check_alpha, check_len, check_weights, pad, unpad_scaled,
};
use crate::config::{PreconditionerConfig, check_hidden, check_layers, hidden_width, set_alpha0};
use crate::error::{ConfigError, StateError};
use crate::memory::{bytes_of, filled, total, with_capacity};
use crate::permutation::{Permutation, PermutationFamily};
use crate::random::Stream;
use crate::real::{Real, lit};

/// The residual ablation's hyperparameters: `α₀` (default 1), the number of layers `N`
/// (default 64, the authors' `LODOWithResiduals`) and an optional hidden width `h ≥ n` (default
/// `2n`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ResidualConfig<T> {
    alpha0: T,
    layers: usize,
    hidden: Option<usize>,
}

impl<T: Real> Default for ResidualConfig<T> {
    fn default() -> Self {
        Self {
            alpha0: T::one(),
            layers: 64,
            hidden: None,
        }
    }
}

impl<T: Real> ResidualConfig<T> {
    /// Sets the number of layers `N`.
    ///
    /// # Errors
    /// [`ConfigError::ZeroLayers`] if `N = 0`.
    pub fn with_layers(mut self, layers: usize) -> Result<Self, ConfigError> {
        self.layers = check_layers(layers)?;
        Ok(self)
    }

    /// Overrides the hidden width `h` (checked against `n` when the preconditioner is built).
    ///
    /// # Errors
    /// [`ConfigError::TooLarge`] if `h` exceeds the `u32` permutation indices.
    pub fn with_hidden(mut self, hidden: usize) -> Result<Self, ConfigError> {
        self.hidden = check_hidden(hidden)?;
        Ok(self)
    }

    /// `N`.
    #[must_use]
    pub fn layers(&self) -> usize {
        self.layers
    }
}

impl<T: Real> PreconditionerConfig<T> for ResidualConfig<T> {
    fn alpha0(&self) -> T {
        self.alpha0
    }

    fn with_alpha0(mut self, alpha0: T) -> Result<Self, ConfigError> {
        set_alpha0(&mut self.alpha0, alpha0)?;
        Ok(self)
    }
}

/// The residual-network ablation. See the [module docs](self).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "T: serde::Serialize",
        deserialize = "T: serde::Deserialize<'de>"
    ))
)]
pub struct Residual<T> {
    n: usize,
    hidden: usize,
    alpha0: T,
    permutations: Vec<Permutation>,
    weights: Vec<T>,
    #[cfg_attr(feature = "serde", serde(skip))]
    cache: Cache<T>,
}

#[derive(Clone, Debug)]
struct Cache<T> {
    p_m: Vec<T>,
    w_m: Vec<T>,
    z_m: Vec<T>,
    p_g: Vec<T>,
    u: Vec<T>,
    tmp: Vec<T>,
    grad: Vec<T>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Self {
            p_m: Vec::new(),
            w_m: Vec::new(),
            z_m: Vec::new(),
            p_g: Vec::new(),
            u: Vec::new(),
            tmp: Vec::new(),
            grad: Vec::new(),
        }
    }
}

impl<T: Real> Cache<T> {
    /// `(3N + 4)·h` numbers, allocated fallibly.
    fn new(layers: usize, h: usize) -> Result<Self, ConfigError> {
        let z = |len: usize| filled(len, T::zero());
        Ok(Self {
            p_m: z(layers * h)?,
            w_m: z(layers * h)?,
            z_m: z(h)?,
            p_g: z(layers * h)?,
            u: z(h)?,
            tmp: z(h)?,
            grad: z(h)?,
        })
    }

    /// The numbers [`Cache::new`] allocates.
    fn len(layers: usize, h: usize) -> usize {
        (3 * layers + 4) * h
    }
}

impl<T: Real> Residual<T> {
    fn layers(&self) -> usize {
        self.permutations.len()
    }

    /// `u ← R Π v`, keeping `p_l` in `keep` (`N·h`) or `tmp`.
    fn forward(&self, v: &[T], u: &mut [T], tmp: &mut [T], mut keep: Option<&mut [T]>) {
        let h = self.hidden;
        pad(v, u);
        for (l, perm) in self.permutations.iter().enumerate() {
            let d = &self.weights[l * h..(l + 1) * h];
            let p = match keep.as_deref_mut() {
                Some(keep) => &mut keep[l * h..(l + 1) * h],
                None => &mut *tmp,
            };
            gather(perm.forward(), u, p);
            for ((ui, &di), &pi) in u.iter_mut().zip(d).zip(p.iter()) {
                *ui = *ui + di * pi;
            }
        }
    }

    /// `w ← R_lᵀ w = w + P_lᵀ (d_l ⊙ w_old)`, reading `w_old` from `old` (a copy of `w`).
    fn layer_backward(&self, l: usize, old: &[T], w: &mut [T]) {
        let h = self.hidden;
        let d = &self.weights[l * h..(l + 1) * h];
        for ((&pj, &dj), &oj) in self.permutations[l].forward().iter().zip(d).zip(old) {
            let i = pj as usize;
            w[i] = w[i] + dj * oj;
        }
    }

    fn middle(&self) -> &[T] {
        &self.weights[self.layers() * self.hidden..]
    }
}

impl<T: Real> Preconditioner<T> for Residual<T> {
    type Config = ResidualConfig<T>;

    fn from_config(
        n: usize,
        config: &ResidualConfig<T>,
        rng: &mut Stream,
    ) -> Result<Self, ConfigError> {
        let layers = config.layers;
        // k plays no role here: the width only has to hold the n parameters.
        let h = hidden_width(n, 1, layers, config.hidden)?;
        let std = 1.0 / libm_sqrt(layers as f64);
        let mut permutations = with_capacity(layers)?;
        let mut weights = with_capacity((layers + 1) * h)?;
        for _ in 0..layers {
            permutations.push(PermutationFamily::Random.draw(h, 1, rng)?);
            weights.extend((0..h).map(|_| lit::<T>(std * rng.gaussian())));
        }
        weights.extend((0..h).map(|_| T::one()));
        Ok(Self {
            n,
            hidden: h,
            alpha0: config.alpha0,
            permutations,
            weights,
            cache: Cache::new(layers, h)?,
        })
    }

    /// `N` permutations (`8h` bytes each, plus headers), `θ` (`(N + 1)·h` numbers) and the
    /// cache (`(3N + 4)·h` numbers).
    fn footprint(n: usize, config: &ResidualConfig<T>) -> Result<Footprint, ConfigError> {
        let layers = config.layers;
        let h = hidden_width(n, 1, layers, config.hidden)?;
        let weights = (layers + 1) * h;
        let bytes = total(&[
            bytes_of::<Permutation>(layers)?,
            bytes_of::<u32>(2 * h)?
                .checked_mul(layers)
                .ok_or(ConfigError::TooLarge)?,
            bytes_of::<T>(weights)?,
            bytes_of::<T>(Cache::<T>::len(layers, h))?,
        ])?;
        Ok(Footprint { bytes, weights })
    }

    fn dim(&self) -> usize {
        self.n
    }

    fn alpha0(&self) -> T {
        self.alpha0
    }

    fn set_alpha0(&mut self, alpha0: T) -> Result<(), ConfigError> {
        set_alpha0(&mut self.alpha0, alpha0)
    }

    fn weight_count(&self) -> usize {
        self.weights.len()
    }

    fn weights_into(&self, out: &mut [T]) {
        check_len("out", out.len(), self.weights.len());
        out.copy_from_slice(&self.weights);
    }

    fn set_weights(&mut self, w: &[T]) {
        check_len("w", w.len(), self.weights.len());
        self.weights.copy_from_slice(w);
    }

    fn apply(&mut self, m: &[T], out: &mut [T]) {
        check_len("m", m.len(), self.n);
        check_len("out", out.len(), self.n);
        let h = self.hidden;
        let mut cache = core::mem::take(&mut self.cache);
        let Cache {
            p_m, w_m, z_m, u, ..
        } = &mut cache;
        self.forward(m, u, &mut [], Some(p_m));
        z_m.copy_from_slice(u);
        for (ui, &ci) in u.iter_mut().zip(self.middle()) {
            *ui = *ui * ci;
        }
        for l in (0..self.layers()).rev() {
            let w_l = &mut w_m[l * h..(l + 1) * h];
            w_l.copy_from_slice(u);
            self.layer_backward(l, w_l, u);
        }
        unpad_scaled(self.alpha0, u, out);
        self.cache = cache;
    }

    fn matvec(&self, v: &[T], out: &mut [T]) {
        check_len("v", v.len(), self.n);
        check_len("out", out.len(), self.n);
        let mut u = vec![T::zero(); self.hidden];
        let mut tmp = vec![T::zero(); self.hidden];
        self.forward(v, &mut u, &mut tmp, None);
        for (ui, &ci) in u.iter_mut().zip(self.middle()) {
            *ui = *ui * ci;
        }
        for l in (0..self.layers()).rev() {
            tmp.copy_from_slice(&u);
            self.layer_backward(l, &tmp, &mut u);
        }
        unpad_scaled(self.alpha0, &u, out);
    }

    fn backprop(&mut self, g: &[T], sink: &mut WeightSink<'_, T>) {
        check_len("g", g.len(), self.n);
        let (h, layers) = (self.hidden, self.layers());
        let scale = -self.alpha0;
        let mut cache = core::mem::take(&mut self.cache);
        let Cache {
            p_m,
            w_m,
            z_m,
            p_g,
            u,
            tmp,
            grad,
        } = &mut cache;
        self.forward(g, u, tmp, Some(p_g));
        // ∇c = −α₀ z(g) ⊙ z(m); then the cotangent C z(g) with the old c.
        for ((d, &zg), &zm) in grad.iter_mut().zip(u.iter()).zip(z_m.iter()) {
            *d = scale * zg * zm;
        }
        for (ui, &ci) in u.iter_mut().zip(self.middle()) {
            *ui = *ui * ci;
        }
        sink(layers * h, &mut self.weights[layers * h..], grad);
        for l in (0..layers).rev() {
            let layer = l * h..(l + 1) * h;
            let (wm, pg, pm) = (
                &w_m[layer.clone()],
                &p_g[layer.clone()],
                &p_m[layer.clone()],
            );
            for ((((d, &a), &b), &c), &e) in grad.iter_mut().zip(wm).zip(pg).zip(u.iter()).zip(pm) {
                *d = scale * (a * b + c * e);
            }
            tmp.copy_from_slice(u);
            self.layer_backward(l, tmp, u);
            sink(l * h, &mut self.weights[layer], grad);
        }
        self.cache = cache;
    }

    fn prepare(&mut self) -> Result<(), StateError> {
        check_alpha(self.alpha0)?;
        let (n, h, layers) = (self.n, self.hidden, self.permutations.len());
        if layers == 0 {
            return Err(ConfigError::ZeroLayers.into());
        }
        hidden_width(n, 1, layers, Some(h))?;
        for (l, p) in self.permutations.iter_mut().enumerate() {
            if p.len() != h {
                return Err(StateError::Length {
                    what: "permutation",
                    expected: h,
                    found: p.len(),
                });
            }
            p.rebuild_inverse(l)?;
        }
        check_weights(&self.weights, (layers + 1) * h)?;
        self.cache = Cache::new(layers, h)?;
        Ok(())
    }
}

fn libm_sqrt(x: f64) -> f64 {
    num_traits::Float::sqrt(x)
}
