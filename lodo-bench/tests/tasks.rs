//! The synthetic tasks: gradients and Hessian-vector products against central finite
//! differences, the bowl's spectrum and Newton floor, and the random walk's statistics.
#![allow(clippy::needless_range_loop)]

use lodo_bench::task::Task;
use lodo_bench::tasks::{BowlOptions, NoisyQuadraticBowl, Rosenbrock};
use lodo_core::random::Stream;

/// Central difference of `f` along `e_i` with step `h`: error `O(h²)·f'''`.
fn central(f: &mut dyn FnMut(&[f64]) -> f64, x: &[f64], i: usize, h: f64) -> f64 {
    let mut xp = x.to_vec();
    let mut xm = x.to_vec();
    xp[i] += h;
    xm[i] -= h;
    (f(&xp) - f(&xm)) / (2.0 * h)
}

fn small_bowl(seed: u64) -> NoisyQuadraticBowl {
    let o = BowlOptions {
        dim: 12,
        ..BowlOptions::default()
    };
    NoisyQuadraticBowl::new(o, seed).unwrap()
}

#[test]
fn bowl_gradient_matches_central_differences() {
    let mut bowl = small_bowl(3);
    let n = 12;
    let mut rng = Stream::new(9);
    let x: Vec<f64> = (0..n).map(|_| rng.gaussian()).collect();
    let mut g = vec![f64::NAN; n];
    bowl.loss_grad(&x, &mut g); // draws the sample the differences use
    let mut scratch = vec![0.0; n];
    for i in 0..n {
        let fd = central(
            &mut |p| bowl.loss_grad_same_sample(p, &mut scratch),
            &x,
            i,
            1e-4,
        );
        // The loss is quadratic, so the central difference is exact up to rounding of values
        // of size ~|ℓ| ≈ 10: error ≲ 1e-16·10/1e-4.
        assert!((fd - g[i]).abs() < 1e-9, "i={i}: fd {fd} vs {}", g[i]);
    }
}

#[test]
fn bowl_hessian_vector_matches_differences_of_gradients() {
    let mut bowl = small_bowl(4);
    let n = 12;
    let mut rng = Stream::new(1);
    let x: Vec<f64> = (0..n).map(|_| rng.gaussian()).collect();
    let v: Vec<f64> = (0..n).map(|_| rng.gaussian()).collect();
    let mut g = vec![0.0; n];
    bowl.loss_grad(&x, &mut g);
    let mut hv = vec![f64::NAN; n];
    bowl.hessian_vector(&x, &v, &mut hv).unwrap();
    let h = 1e-3;
    let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
    let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
    let (mut gp, mut gm) = (vec![0.0; n], vec![0.0; n]);
    bowl.loss_grad_same_sample(&xp, &mut gp);
    bowl.loss_grad_same_sample(&xm, &mut gm);
    for i in 0..n {
        let fd = (gp[i] - gm[i]) / (2.0 * h);
        assert!((fd - hv[i]).abs() < 1e-10, "i={i}");
    }
    assert!(bowl.constant_hessian());
}

#[test]
fn bowl_spectrum_trace_and_newton_floor() {
    let o = BowlOptions::default();
    let lambda = o.eigenvalues();
    assert_eq!(lambda.len(), 100);
    assert!((lambda[0] - 1e-3).abs() < 1e-15 && (lambda[99] - 1.0).abs() < 1e-14);
    // Log-spaced: constant ratio.
    let r = lambda[1] / lambda[0];
    assert!(lambda.windows(2).all(|w| (w[1] / w[0] - r).abs() < 1e-12));
    // ½ tr(H) ≈ 7.4118 (the paper's floor).
    assert!(
        (o.newton_floor() - 7.4118).abs() < 1e-4,
        "{}",
        o.newton_floor()
    );
    let bowl = NoisyQuadraticBowl::new(o, 5).unwrap();
    let h = bowl.hessian();
    let n = 100;
    let trace: f64 = (0..n).map(|i| h[i * n + i]).sum();
    let frob2: f64 = h.iter().map(|a| a * a).sum();
    let sum_l: f64 = lambda.iter().sum();
    let sum_l2: f64 = lambda.iter().map(|l| l * l).sum();
    // tr(H) = Σλ and ‖H‖²_F = Σλ² hold for H = Q diag(λ) Qᵀ with Q orthogonal.
    assert!((trace - sum_l).abs() < 1e-11 * sum_l, "{trace} vs {sum_l}");
    assert!((frob2 - sum_l2).abs() < 1e-11 * sum_l2);
    for i in 0..n {
        for j in 0..n {
            assert_eq!(h[i * n + j].to_bits(), h[j * n + i].to_bits());
        }
    }
    // Different seeds give different eigenvectors.
    let other = NoisyQuadraticBowl::new(o, 6).unwrap();
    assert_ne!(other.hessian()[1].to_bits(), h[1].to_bits());
}

#[test]
fn bowl_random_walk_statistics() {
    // Each fresh evaluation moves the centre by s·N(0, I); same-sample evaluations do not.
    let o = BowlOptions {
        dim: 50,
        noise: 0.5,
        ..BowlOptions::default()
    };
    let mut bowl = NoisyQuadraticBowl::new(o, 11).unwrap();
    let x = vec![0.0; 50];
    let mut g = vec![0.0; 50];
    let steps = 400;
    let mut prev = bowl.center().to_vec();
    assert!(prev.iter().all(|&c| c == 0.0), "c₀ = 0");
    let (mut sum, mut sum2, mut count) = (0.0, 0.0, 0.0);
    for _ in 0..steps {
        bowl.loss_grad(&x, &mut g);
        let after = bowl.center().to_vec();
        bowl.loss_grad_same_sample(&x, &mut g);
        assert_eq!(
            bowl.center(),
            &after[..],
            "same sample must not move the centre"
        );
        for (a, b) in after.iter().zip(&prev) {
            let d = a - b;
            sum += d;
            sum2 += d * d;
            count += 1.0;
        }
        prev = after;
    }
    let mean = sum / count;
    let var = sum2 / count - mean * mean;
    // 20,000 N(0, 0.25) increments: std error of the mean 0.5/√20000 ≈ 0.0035, of the variance
    // 0.25·√(2/20000) ≈ 0.0025. Allow 5 standard errors.
    assert!(mean.abs() < 5.0 * 0.0036, "mean {mean}");
    assert!((var - 0.25).abs() < 5.0 * 0.0025, "variance {var}");
    // The loss at a fixed point grows like ½ s² t tr(H) in expectation: check the loss is the
    // quadratic form of the centre.
    let l = bowl.loss_grad_same_sample(&x, &mut g);
    let c = bowl.center();
    let h = bowl.hessian();
    let q: f64 = (0..50)
        .map(|i| (0..50).map(|j| c[i] * h[i * 50 + j] * c[j]).sum::<f64>())
        .sum();
    assert!((l - 0.5 * q).abs() < 1e-10 * l.abs().max(1.0));
}

#[test]
fn bowl_rejects_bad_options() {
    for o in [
        BowlOptions {
            dim: 0,
            ..BowlOptions::default()
        },
        BowlOptions {
            eig_min: 0.0,
            ..BowlOptions::default()
        },
        BowlOptions {
            eig_min: 2.0,
            eig_max: 1.0,
            ..BowlOptions::default()
        },
        BowlOptions {
            noise: f64::NAN,
            ..BowlOptions::default()
        },
    ] {
        assert!(NoisyQuadraticBowl::new(o, 0).is_err(), "{o:?}");
    }
}

#[test]
fn rosenbrock_gradient_and_hessian_match_central_differences() {
    let mut task = Rosenbrock;
    assert_eq!(task.initial_point(), vec![-0.5, 2.0]);
    for p in [[-0.5, 2.0], [1.0, 1.0], [0.3, -0.7], [1.2, 0.4]] {
        let mut g = [f64::NAN; 2];
        let l = task.loss_grad(&p, &mut g);
        assert_eq!(l.to_bits(), Rosenbrock::value(p[0], p[1]).to_bits());
        let mut s = [0.0; 2];
        for i in 0..2 {
            let fd = central(&mut |q| task.loss_grad_same_sample(q, &mut s), &p, i, 1e-5);
            assert!((fd - g[i]).abs() < 1e-8 * (1.0 + g[i].abs()), "{p:?} {i}");
        }
        for j in 0..2 {
            let mut e = [0.0; 2];
            e[j] = 1.0;
            let mut hv = [f64::NAN; 2];
            task.hessian_vector(&p, &e, &mut hv).unwrap();
            for i in 0..2 {
                let fd = central(
                    &mut |q| {
                        let mut gg = [0.0; 2];
                        task.loss_grad_same_sample(q, &mut gg);
                        gg[i]
                    },
                    &p,
                    j,
                    1e-5,
                );
                assert!(
                    (fd - hv[i]).abs() < 1e-7 * (1.0 + hv[i].abs()),
                    "{p:?} H[{i}{j}]"
                );
            }
        }
    }
    let mut g = [0.0; 2];
    assert_eq!(
        task.loss_grad(&[1.0, 1.0], &mut g).to_bits(),
        0.0f64.to_bits()
    );
    // ±0: the gradient vanishes exactly at the minimum.
    assert_eq!(g.map(|v| v.abs().to_bits()), [0.0f64.to_bits(); 2]);
}
