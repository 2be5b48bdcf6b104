//! The optimized LODO step against a plain textbook version written as the paper's formulas read
//! (dense `G`, dense hypergradient, Keras Adam), over 50 steps of a random quadratic.

mod common;

use common::{DenseNetwork, Shaped, cast, gaussians, random_spd, rel_err, to_f64};
use lodo_core::random::Stream;
use lodo_core::{
    Adam, BlockConfig, BlockPreconditioner, Lodo, LodoConfig, MetaOptimizer, Preconditioner, Real,
    Sgd, lit,
};

struct Textbook {
    net: DenseNetwork,
    theta: Vec<f64>,
    adam_m: Vec<f64>,
    adam_v: Vec<f64>,
    t: i32,
    m: Vec<f64>,
    beta: f64,
    meta_lr: f64,
    sgd: bool,
}

impl Textbook {
    /// One step from the gradient `g = ∇ℓ(x)`; returns the new x.
    fn step(&mut self, x: &[f64], g: &[f64]) -> Vec<f64> {
        // (1) hypergradient of ℓ(x_t) through x_t = x_{t−1} − G(θ) m_{t−1}.
        let hg = self.net.hypergradient(g, &self.m);
        // (2) meta-step.
        if self.sgd {
            for (th, d) in self.theta.iter_mut().zip(&hg) {
                *th -= self.meta_lr * d;
            }
        } else {
            let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-7);
            self.t += 1;
            let rate = self.meta_lr * (1.0 - b2.powi(self.t)).sqrt() / (1.0 - b1.powi(self.t));
            let moments = self.adam_m.iter_mut().zip(&mut self.adam_v);
            for ((th, d), (m, v)) in self.theta.iter_mut().zip(&hg).zip(moments) {
                *m = b1 * *m + (1.0 - b1) * d;
                *v = b2 * *v + (1.0 - b2) * d * d;
                *th -= rate * *m / (v.sqrt() + eps);
            }
        }
        self.net = self.net.with_weights(&self.theta);
        // (3) momentum.
        for (mi, gi) in self.m.iter_mut().zip(g) {
            *mi = self.beta * *mi + (1.0 - self.beta) * gi;
        }
        // (4) x ← x − G(θ) m.
        let s = self.net.g().matvec(&self.m);
        x.iter().zip(s).map(|(a, b)| a - b).collect()
    }
}

/// `M` is the meta-optimizer under test: [`Adam`] or [`Sgd`] (the textbook's `sgd` flag).
fn run<T: Real, M: MetaOptimizer<T>>(
    n: usize,
    k: usize,
    layers: usize,
    beta: f64,
    seed: u64,
    tol: f64,
) {
    let sgd = M::NAME == Sgd::<T>::NAME;
    let mut rng = Stream::new(seed);
    let q = random_spd(n, 0.05, 2.0, &mut rng);
    let c = gaussians(n, 1.0, &mut rng);
    let meta_lr = if sgd { 1e-3 } else { 1e-2 };
    let config = LodoConfig::<T, BlockConfig<T>, M::Config>::default()
        .with_preconditioner(BlockConfig::shaped(k, layers, 0.7))
        .with_beta(lit(beta))
        .and_then(|c| c.with_meta_lr(lit(meta_lr)))
        .unwrap();
    let mut lodo = Lodo::<T, BlockPreconditioner<T>, M>::new(n, config, seed).unwrap();
    let net = DenseNetwork::of(lodo.preconditioner());
    let theta = to_f64(&lodo.preconditioner().weights());
    let len = theta.len();
    let mut book = Textbook {
        net,
        theta,
        adam_m: vec![0.0; len],
        adam_v: vec![0.0; len],
        t: 0,
        m: vec![0.0; n],
        beta,
        meta_lr,
        sgd,
    };
    let mut x_book = vec![0.0; n];
    let mut x: Vec<T> = cast(&x_book);
    let grad = |x: &[f64]| {
        let e: Vec<f64> = x.iter().zip(&c).map(|(a, b)| a - b).collect();
        q.matvec(&e)
    };
    for t in 0..50 {
        let g = grad(&to_f64(&x));
        lodo.step(&mut x, &cast(&g)).unwrap();
        x_book = book.step(&x_book, &grad(&x_book));
        let err = rel_err(&to_f64(&x), &x_book);
        assert!(
            err <= tol,
            "step {t}: optimized and textbook differ by {err} (tol {tol})"
        );
        let err_theta = rel_err(&to_f64(&lodo.preconditioner().weights()), &book.theta);
        assert!(err_theta <= tol, "step {t}: θ differs by {err_theta}");
    }
    // The run did something: θ moved, so a wrong meta-step would have shown.
    let fresh = Lodo::<T, BlockPreconditioner<T>, M>::new(n, config, seed).unwrap();
    let moved = rel_err(&book.theta, &to_f64(&fresh.preconditioner().weights()));
    assert!(
        moved > 1e-3,
        "θ barely moved ({moved}); the test would not see a wrong meta-step"
    );
}

#[test]
fn f64_adam_matches_textbook() {
    for (seed, n, k, layers) in [(1, 6, 4, 3), (2, 5, 2, 4), (3, 9, 3, 2), (4, 1, 1, 1)] {
        run::<f64, Adam<f64>>(n, k, layers, 0.9, seed, 1e-9);
    }
}

#[test]
fn f64_sgd_meta_and_no_momentum_match_textbook() {
    run::<f64, Sgd<f64>>(6, 4, 3, 0.9, 5, 1e-9);
    run::<f64, Adam<f64>>(6, 4, 3, 0.0, 6, 1e-9);
}

#[test]
fn f32_adam_matches_textbook() {
    // f32 rounding (≈6e−8 per operation) through N layers and 50 steps of Adam.
    run::<f32, Adam<f32>>(6, 4, 3, 0.9, 7, 2e-3);
}
