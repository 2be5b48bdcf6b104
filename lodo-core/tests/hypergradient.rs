//! The hypergradient `∇_θ ℓ(x_{t−1} − G(θ)·m)` of every architecture equals central finite
//! differences (f64) and, for the LODO network, the dense-matrix formula; the f32 computation
//! agrees with the f64 one from the same weights.

mod common;

use common::{DenseNetwork, Shaped, cast, gaussians, random_spd, rel_err, to_f64};
use lodo_core::random::Stream;
use lodo_core::{
    BlockConfig, BlockPreconditioner, Diagonal, Global, PermutationFamily, Preconditioner, Real,
    Residual, lit,
};
use proptest::prelude::*;

/// A quadratic loss `ℓ(x) = ½ (x − c)ᵀ Q (x − c)` and the point before the step.
struct Problem {
    q: common::Dense,
    c: Vec<f64>,
    x_prev: Vec<f64>,
    m: Vec<f64>,
}

impl Problem {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = Stream::new(seed);
        Self {
            q: random_spd(n, 0.1, 3.0, &mut rng),
            c: gaussians(n, 1.0, &mut rng),
            x_prev: gaussians(n, 1.0, &mut rng),
            m: gaussians(n, 1.0, &mut rng),
        }
    }
    fn loss(&self, x: &[f64]) -> f64 {
        let e: Vec<f64> = x.iter().zip(&self.c).map(|(a, b)| a - b).collect();
        0.5 * e
            .iter()
            .zip(self.q.matvec(&e))
            .map(|(a, b)| a * b)
            .sum::<f64>()
    }
    fn grad(&self, x: &[f64]) -> Vec<f64> {
        let e: Vec<f64> = x.iter().zip(&self.c).map(|(a, b)| a - b).collect();
        self.q.matvec(&e)
    }
    /// `ℓ(x_prev − G m)` with `G` given by `p`.
    fn loss_after_step<P: Preconditioner<f64>>(&self, p: &P) -> f64 {
        let mut s = vec![0.0; self.m.len()];
        p.matvec(&self.m, &mut s);
        let x: Vec<f64> = self.x_prev.iter().zip(&s).map(|(a, b)| a - b).collect();
        self.loss(&x)
    }
    /// `g_t = ∇ℓ(x_t)` after the step taken with `apply` (which also records `m`).
    fn gradient_after_apply<T: Real, P: Preconditioner<T>>(&self, p: &mut P) -> Vec<f64> {
        let mut s = vec![T::nan(); self.m.len()];
        p.apply(&cast(&self.m), &mut s);
        let x: Vec<f64> = self
            .x_prev
            .iter()
            .zip(to_f64(&s))
            .map(|(a, b)| a - b)
            .collect();
        self.grad(&x)
    }
}

fn analytic<T: Real, P: Preconditioner<T>>(p: &mut P, prob: &Problem) -> Vec<f64> {
    let g = prob.gradient_after_apply(p);
    let mut out = vec![T::nan(); p.weight_count()];
    p.hypergradient(&cast(&g), &mut out);
    to_f64(&out)
}

fn finite_differences<P: Preconditioner<f64>>(p: &P, prob: &Problem) -> Vec<f64> {
    let mut q = p.clone();
    let mut ws = p.weights();
    (0..ws.len())
        .map(|i| {
            let w = ws[i];
            let h = 1e-6 * w.abs().max(1.0);
            ws[i] = w + h;
            q.set_weights(&ws);
            let up = prob.loss_after_step(&q);
            ws[i] = w - h;
            q.set_weights(&ws);
            let down = prob.loss_after_step(&q);
            ws[i] = w;
            q.set_weights(&ws);
            (up - down) / (2.0 * h)
        })
        .collect()
}

fn perturb<T: Real, P: Preconditioner<T>>(p: &mut P, s: f64, seed: u64) {
    let mut rng = Stream::new(seed);
    let mut ws = p.weights();
    for w in &mut ws {
        *w = *w + lit::<T>(s * rng.gaussian());
    }
    p.set_weights(&ws);
}

/// The architecture `P` with block size `k`, `N` layers and `α₀` (where it has them).
fn build<T: Real, P>(n: usize, (k, layers, alpha0): (usize, usize, f64), seed: u64) -> P
where
    P: Preconditioner<T>,
    P::Config: Shaped<T>,
{
    P::from_config(
        n,
        &Shaped::shaped(k, layers, alpha0),
        &mut Stream::new(seed),
    )
    .unwrap()
}

/// The whole check for one architecture: f64 analytic vs FD, f32 analytic vs f64 analytic.
fn check<P64, P32>(n: usize, k: usize, layers: usize, seed: u64)
where
    P64: Preconditioner<f64>,
    P32: Preconditioner<f32>,
    P64::Config: Shaped<f64>,
    P32::Config: Shaped<f32>,
{
    let prob = Problem::new(n, seed);
    let mut p64: P64 = build(n, (k, layers, 0.6), seed);
    perturb(&mut p64, 0.3, seed ^ 9);
    let exact = analytic(&mut p64, &prob);
    let fd = finite_differences(&p64, &prob);
    assert!(
        rel_err(&exact, &fd) < 1e-6,
        "f64 hypergradient vs FD: {}",
        rel_err(&exact, &fd)
    );

    // f32 on the same weights (rounded), against f64 on those rounded weights.
    let mut p32: P32 = build(n, (k, layers, 0.6), seed);
    let w32: Vec<f32> = p64.weights().iter().map(|&w| w as f32).collect();
    p32.set_weights(&w32);
    let w64: Vec<f64> = w32.iter().map(|&w| f64::from(w)).collect();
    p64.set_weights(&w64);
    let a32 = analytic(&mut p32, &prob);
    let a64 = analytic(&mut p64, &prob);
    let tol = 64.0 * f64::from(f32::EPSILON) * (4 * layers * k) as f64;
    assert!(
        rel_err(&a32, &a64) < tol,
        "f32 vs f64 hypergradient: {} (tol {tol})",
        rel_err(&a32, &a64)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn block_network(n in 1usize..9, k in 1usize..5, layers in 1usize..5, seed: u64) {
        check::<BlockPreconditioner<f64>, BlockPreconditioner<f32>>(n, k, layers, seed);
    }

    #[test]
    fn block_network_equals_dense_formula(n in 1usize..9, k in 1usize..5, layers in 1usize..5, seed: u64) {
        let prob = Problem::new(n, seed);
        let mut p: BlockPreconditioner<f64> = build(n, (k, layers, 0.6), seed);
        perturb(&mut p, 0.3, seed ^ 9);
        let exact = analytic(&mut p, &prob);
        let g = prob.gradient_after_apply(&mut p);
        let dense = DenseNetwork::of(&p).hypergradient(&g, &prob.m);
        prop_assert!(rel_err(&exact, &dense) < 1e-12, "vs dense formula: {}", rel_err(&exact, &dense));
    }

    /// The hypergradient of the network with structured permutations, against central finite
    /// differences and against the dense formula.
    #[test]
    fn block_network_with_structured_permutations(n in 1usize..9, k in 1usize..5, layers in 1usize..5, seed: u64, tile in 0usize..4) {
        let family = if tile == 0 { PermutationFamily::Shuffle } else { PermutationFamily::TiledShuffle { tile: tile * k } };
        let config = BlockConfig::<f64>::shaped(k, layers, 0.6).with_permutations(family).unwrap();
        let mut p = BlockPreconditioner::<f64>::from_config(n, &config, &mut Stream::new(seed)).unwrap();
        perturb(&mut p, 0.3, seed ^ 9);
        let prob = Problem::new(n, seed);
        let exact = analytic(&mut p, &prob);
        let fd = finite_differences(&p, &prob);
        prop_assert!(rel_err(&exact, &fd) < 1e-6, "vs FD: {}", rel_err(&exact, &fd));
        let g = prob.gradient_after_apply(&mut p);
        let dense = DenseNetwork::of(&p).hypergradient(&g, &prob.m);
        prop_assert!(rel_err(&exact, &dense) < 1e-12, "vs dense formula: {}", rel_err(&exact, &dense));
    }

    #[test]
    fn residual(n in 1usize..9, layers in 1usize..6, seed: u64) {
        check::<Residual<f64>, Residual<f32>>(n, 1, layers, seed);
    }

    #[test]
    fn diagonal(n in 1usize..12, seed: u64) {
        check::<Diagonal<f64>, Diagonal<f32>>(n, 1, 1, seed);
    }

    #[test]
    fn global(n in 1usize..12, seed: u64) {
        check::<Global<f64>, Global<f32>>(n, 1, 1, seed);
    }
}

#[test]
fn hypergradient_leaves_weights_unchanged_and_backprop_hands_over_every_weight_once() {
    let prob = Problem::new(6, 3);
    let mut p: BlockPreconditioner<f64> = build(6, (4, 3, 1.0), 3);
    let before = p.weights();
    let _ = analytic(&mut p, &prob);
    assert_eq!(common::bits(&p.weights()), common::bits(&before));
    let mut seen = vec![0u8; p.weight_count()];
    let g = prob.gradient_after_apply(&mut p);
    p.backprop(&g, &mut |offset, theta, grad| {
        assert_eq!(theta.len(), grad.len());
        seen[offset..offset + grad.len()]
            .iter_mut()
            .for_each(|s| *s += 1);
    });
    assert!(seen.iter().all(|&s| s == 1));
}
