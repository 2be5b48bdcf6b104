//! The LODO network (paper §3, Figure 1): `G(θ) = α₀ Πᵀ Aᵀ A Π`,
//! `A = B_N P_N ⋯ B_1 P_1`, with fixed uniformly random permutations `P_l` and trainable
//! block-diagonal `B_l` of `k × k` blocks, each initialised Haar-orthogonal so `G = α₀·I` at the
//! start.
//!
//! # Hypergradient
//! With `p_l(v)` the input of `B_l` when `Πv` flows forward and `w_l(v) = (B_N P_N ⋯ B_{l+1}
//! P_{l+1})ᵀ A Π v` the cotangent at its output when `AΠv` flows back,
//!
//! $$ ∇_{B_l} ⟨g, G m⟩ = α₀ \big(w_l(m)\, p_l(g)^T + w_l(g)\, p_l(m)^T\big)
//!    \quad\text{(restricted to the blocks).} $$
//!
//! `p_l(m)` and `w_l(m)` are exactly the intermediates of the previous step's `G(θ)·m`, so they
//! are kept from there; a step computes one forward pass of `g` (keeping `p_l(g)`), one backward
//! pass of `g` fused with the gradient and meta-update layer by layer, and one forward and backward
//! pass of the new `m`.
//!
//! # Weight layout
//! `θ = [B_1, …, B_N]`, each `B_l` as `h·k` numbers in [`lodo_kernels::block_diagonal`]'s layout.

use alloc::vec;
use alloc::vec::Vec;

use lodo_kernels::block_diagonal::{layer_backward, layer_forward, outer_pair};

use super::{Preconditioner, WeightSink, check_alpha, check_len, check_weights, pad, unpad_scaled};
use crate::config::LodoConfig;
use crate::error::{ConfigError, StateError};
use crate::permutation::Permutation;
use crate::random::Stream;
use crate::real::{Real, lit};

/// The LODO preconditioner network. See the [module docs](self) for the math.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "T: serde::Serialize",
        deserialize = "T: serde::Deserialize<'de>"
    ))
)]
pub struct BlockPreconditioner<T> {
    n: usize,
    hidden: usize,
    block_size: usize,
    alpha0: T,
    permutations: Vec<Permutation>,
    blocks: Vec<T>,
    #[cfg_attr(feature = "serde", serde(skip))]
    cache: Cache<T>,
}

/// Activations kept between steps and scratch, allocated once.
#[derive(Clone, Debug)]
struct Cache<T> {
    /// `p_l(m)` for every layer, `N·h`.
    p_m: Vec<T>,
    /// `w_l(m)` for every layer, `N·h`.
    w_m: Vec<T>,
    /// `p_l(g)` for every layer, `N·h`.
    p_g: Vec<T>,
    /// Two `h`-vectors.
    u: Vec<T>,
    tmp: Vec<T>,
    /// One layer's gradient, `h·k`.
    grad: Vec<T>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Self {
            p_m: Vec::new(),
            w_m: Vec::new(),
            p_g: Vec::new(),
            u: Vec::new(),
            tmp: Vec::new(),
            grad: Vec::new(),
        }
    }
}

impl<T: Real> Cache<T> {
    fn new(layers: usize, h: usize, k: usize) -> Self {
        Self {
            p_m: vec![T::zero(); layers * h],
            w_m: vec![T::zero(); layers * h],
            p_g: vec![T::zero(); layers * h],
            u: vec![T::zero(); h],
            tmp: vec![T::zero(); h],
            grad: vec![T::zero(); h * k],
        }
    }
}

impl<T: Real> BlockPreconditioner<T> {
    /// The hidden width `h`.
    #[must_use]
    pub fn hidden(&self) -> usize {
        self.hidden
    }
    /// The block size `k`.
    #[must_use]
    pub fn block_size(&self) -> usize {
        self.block_size
    }
    /// The number of layers `N`.
    #[must_use]
    pub fn layers(&self) -> usize {
        self.permutations.len()
    }
    /// `α₀`.
    #[must_use]
    pub fn alpha0(&self) -> T {
        self.alpha0
    }
    /// The fixed permutations `P_1, …, P_N`.
    #[must_use]
    pub fn permutations(&self) -> &[Permutation] {
        &self.permutations
    }

    fn layer_len(&self) -> usize {
        self.hidden * self.block_size
    }

    /// Forward `u ← A Π v` into `u`, keeping each layer input `p_l` in `keep` (`N·h`), or in
    /// `tmp` when `keep` is `None`.
    fn forward(&self, v: &[T], u: &mut [T], tmp: &mut [T], mut keep: Option<&mut [T]>) {
        let (h, k, ll) = (self.hidden, self.block_size, self.layer_len());
        pad(v, u);
        for (l, perm) in self.permutations.iter().enumerate() {
            let b = &self.blocks[l * ll..(l + 1) * ll];
            let p = match keep.as_deref_mut() {
                Some(keep) => &mut keep[l * h..(l + 1) * h],
                None => &mut *tmp,
            };
            layer_forward(k, b, perm.forward(), u, p);
        }
    }
}

impl<T: Real> Preconditioner<T> for BlockPreconditioner<T> {
    fn from_config(
        n: usize,
        config: &LodoConfig<T>,
        rng: &mut Stream,
    ) -> Result<Self, ConfigError> {
        let k = config.block_size();
        let h = config.hidden_for(n, k)?;
        let layers = config.layers();
        let mut permutations = Vec::with_capacity(layers);
        let mut blocks = Vec::with_capacity(layers * h * k);
        let mut q = vec![0.0f64; k * k];
        for l in 0..layers {
            let perm =
                Permutation::try_new(rng.permutation(h), l).map_err(|_| ConfigError::TooLarge)?;
            permutations.push(perm);
            for _ in 0..h / k {
                rng.orthogonal(k, &mut q);
                blocks.extend(q.iter().map(|&x| lit::<T>(x)));
            }
        }
        Ok(Self {
            n,
            hidden: h,
            block_size: k,
            alpha0: config.alpha0(),
            permutations,
            blocks,
            cache: Cache::new(layers, h, k),
        })
    }

    fn dim(&self) -> usize {
        self.n
    }

    fn weights(&self) -> &[T] {
        &self.blocks
    }

    fn weights_mut(&mut self) -> &mut [T] {
        &mut self.blocks
    }

    fn apply(&mut self, m: &[T], out: &mut [T]) {
        check_len("m", m.len(), self.n);
        check_len("out", out.len(), self.n);
        let mut cache = core::mem::take(&mut self.cache);
        let Cache { p_m, w_m, u, .. } = &mut cache;
        self.forward(m, u, &mut [], Some(p_m));
        let (h, k, ll) = (self.hidden, self.block_size, self.layer_len());
        for (l, perm) in self.permutations.iter().enumerate().rev() {
            let w_l = &mut w_m[l * h..(l + 1) * h];
            w_l.copy_from_slice(u);
            layer_backward(
                k,
                &self.blocks[l * ll..(l + 1) * ll],
                perm.forward(),
                w_l,
                u,
            );
        }
        unpad_scaled(self.alpha0, u, out);
        self.cache = cache;
    }

    fn matvec(&self, v: &[T], out: &mut [T]) {
        check_len("v", v.len(), self.n);
        check_len("out", out.len(), self.n);
        let (k, ll) = (self.block_size, self.layer_len());
        let mut u = vec![T::zero(); self.hidden];
        let mut tmp = vec![T::zero(); self.hidden];
        self.forward(v, &mut u, &mut tmp, None);
        for (l, perm) in self.permutations.iter().enumerate().rev() {
            layer_backward(
                k,
                &self.blocks[l * ll..(l + 1) * ll],
                perm.forward(),
                &u,
                &mut tmp,
            );
            core::mem::swap(&mut u, &mut tmp);
        }
        unpad_scaled(self.alpha0, &u, out);
    }

    fn backprop(&mut self, g: &[T], sink: &mut WeightSink<'_, T>) {
        check_len("g", g.len(), self.n);
        let mut cache = core::mem::take(&mut self.cache);
        let Cache {
            p_m,
            w_m,
            p_g,
            u,
            tmp,
            grad,
        } = &mut cache;
        self.forward(g, u, tmp, Some(p_g));
        let (h, k, ll) = (self.hidden, self.block_size, self.layer_len());
        let scale = -self.alpha0;
        // u holds w_N(g) = AΠg; walk the layers back.
        let (mut w, mut next): (&mut [T], &mut [T]) = (u, tmp);
        for (l, perm) in self.permutations.iter().enumerate().rev() {
            let layer = l * h..(l + 1) * h;
            outer_pair(
                k,
                scale,
                &w_m[layer.clone()],
                &p_g[layer.clone()],
                w,
                &p_m[layer],
                grad,
            );
            let b = &mut self.blocks[l * ll..(l + 1) * ll];
            layer_backward(k, b, perm.forward(), w, next);
            sink(l * ll, b, grad);
            core::mem::swap(&mut w, &mut next);
        }
        self.cache = cache;
    }

    fn prepare(&mut self) -> Result<(), StateError> {
        check_alpha(self.alpha0)?;
        let (n, h, k, layers) = (
            self.n,
            self.hidden,
            self.block_size,
            self.permutations.len(),
        );
        if k == 0 {
            return Err(ConfigError::ZeroBlockSize.into());
        }
        if layers == 0 {
            return Err(ConfigError::ZeroLayers.into());
        }
        let config = LodoConfig::<T>::default()
            .with_layers(layers)?
            .with_hidden(h)?;
        config.hidden_for(n, k)?;
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
        check_weights(&self.blocks, layers * h * k)?;
        self.cache = Cache::new(layers, h, k);
        Ok(())
    }
}
