//! The run loop: final-window score, divergence, Hessian error, determinism across threads.

use lodo_bench::baselines::{LodoParams, LodoVariant, Optimizer, OptimizerKind};
use lodo_bench::experiment::{RunOptions, TaskSpec, derive_seed, g_movement, run, run_optimizer};
use lodo_bench::task::{Minimizer, Task};
use lodo_bench::tasks::BowlOptions;
use lodo_core::StepError;

/// Loss t at the t-th fresh evaluation (1-based); the minimizer does nothing.
struct Counter(u64);
impl Task<f64> for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn dim(&self) -> usize {
        1
    }
    fn initial_point(&self) -> Vec<f64> {
        vec![0.0]
    }
    fn loss_grad(&mut self, _x: &[f64], g: &mut [f64]) -> f64 {
        self.0 += 1;
        g[0] = 0.0;
        self.0 as f64
    }
    fn loss_grad_same_sample(&mut self, _x: &[f64], g: &mut [f64]) -> f64 {
        g[0] = 0.0;
        self.0 as f64
    }
}
struct Idle(usize);
impl Minimizer<f64> for Idle {
    fn iterate(&mut self, task: &mut dyn Task<f64>, x: &mut [f64]) -> Result<f64, StepError> {
        let mut g = [0.0];
        let l = task.loss_grad(x, &mut g);
        for _ in 1..self.0 {
            task.loss_grad_same_sample(x, &mut g);
        }
        Ok(l)
    }
    fn evaluations_per_iteration(&self) -> usize {
        self.0
    }
}

#[test]
fn final_window_is_the_mean_over_the_last_tenth_of_steps() {
    let mut opts = RunOptions::new(100);
    opts.curve_points = 10;
    let rec = run(&mut Counter(0), &mut Idle(1), &opts, 0).unwrap();
    // Losses 91..=100: mean 95.5.
    assert_eq!(rec.final_loss.to_bits(), 95.5f64.to_bits());
    assert!(!rec.diverged);
    assert_eq!(rec.curve.len(), 10);
    assert_eq!(
        (rec.curve[0].0, rec.curve[0].1.to_bits()),
        (10, 5.5f64.to_bits())
    ); // losses 1..=10
    assert_eq!(
        (rec.curve[9].0, rec.curve[9].1.to_bits()),
        (100, 95.5f64.to_bits())
    );
    // Two evaluations per iteration: 50 iterations, the window holds the last 5 iterations
    // (evaluations 92, 94, …, 100), whose fresh losses are 46..=50.
    let rec = run(&mut Counter(0), &mut Idle(2), &opts, 0).unwrap();
    assert_eq!(rec.final_loss.to_bits(), 48.0f64.to_bits());
    assert_eq!(rec.curve.last().unwrap().0, 100);
}

#[test]
fn divergence_is_detected_and_scored_infinite() {
    let spec = TaskSpec::Bowl(BowlOptions {
        dim: 10,
        ..BowlOptions::default()
    });
    let rec = run_optimizer(
        &spec,
        &Optimizer::Momentum {
            lr: 1e3,
            momentum: 0.0,
        },
        &RunOptions::new(2000),
        1,
    )
    .unwrap();
    assert!(
        rec.diverged,
        "lr = 1000 on eigenvalues up to 1 must blow up"
    );
    assert_eq!(rec.final_loss.to_bits(), f64::INFINITY.to_bits());
    assert!(rec.note.is_some());
    // An invalid hyperparameter is a diverged record with the message, not a panic.
    let rec = run_optimizer(
        &spec,
        &Optimizer::Adam {
            lr: 1e-3,
            beta_1: 1.5,
            beta_2: 0.9,
        },
        &RunOptions::new(10),
        1,
    )
    .unwrap();
    assert!(rec.diverged && rec.note.unwrap().contains("beta_1"));
}

#[test]
fn hessian_error_of_fresh_lodo_is_that_of_alpha0_identity() {
    // At step 0, G = α₀ I, so ‖I − α₀H‖_F/√n = sqrt(mean_i (1 − α₀λ_i)²).
    let o = BowlOptions {
        dim: 16,
        ..BowlOptions::default()
    };
    let spec = TaskSpec::Bowl(o);
    let alpha = 0.5;
    let mut opts = RunOptions::new(100);
    opts.hessian_every = 50;
    opts.hessian_probes = 400;
    let lodo = Optimizer::Lodo(LodoParams {
        alpha0: alpha,
        meta_lr: 1e-3,
        beta: 0.9,
        variant: LodoVariant::BLOCK,
    });
    let rec = run_optimizer(&spec, &lodo, &opts, 3).unwrap();
    assert_eq!(rec.hessian.len(), 3);
    assert_eq!(rec.hessian[0].step, 0);
    let lambda = o.eigenvalues();
    let expect = (lambda
        .iter()
        .map(|l| (1.0 - alpha * l).powi(2))
        .sum::<f64>()
        / 16.0)
        .sqrt();
    let h0 = rec.hessian[0];
    assert!(
        (h0.exact - expect).abs() < 1e-12,
        "{} vs {expect}",
        h0.exact
    );
    // The probe estimate: 400 unit probes, relative error a few percent.
    assert!(
        (h0.probe - expect).abs() < 0.05 * expect,
        "{} vs {expect}",
        h0.probe
    );
    // Non-LODO minimizers have no preconditioner: no measurements.
    let rec = run_optimizer(&spec, &OptimizerKind::Adam.defaults(), &opts, 3).unwrap();
    assert!(rec.hessian.is_empty());
}

#[test]
fn runs_are_bit_identical_for_any_thread_count() {
    use rayon::prelude::*;
    let spec = TaskSpec::Bowl(BowlOptions {
        dim: 20,
        ..BowlOptions::default()
    });
    let kinds = [
        OptimizerKind::Lodo,
        OptimizerKind::OLbfgs,
        OptimizerKind::Yogi,
    ];
    let go = |threads: usize| -> Vec<u64> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                (0..6)
                    .into_par_iter()
                    .map(|i| {
                        let k = kinds[i % 3];
                        let r = run_optimizer(
                            &spec,
                            &k.defaults(),
                            &RunOptions::new(300),
                            derive_seed(0, &[i as u64]),
                        )
                        .unwrap();
                        r.curve.iter().fold(r.final_loss.to_bits(), |h, c| {
                            h.rotate_left(5) ^ c.1.to_bits()
                        })
                    })
                    .collect()
            })
    };
    assert_eq!(go(1), go(2));
    assert_ne!(derive_seed(0, &[1]), derive_seed(0, &[2]));
    assert_ne!(derive_seed(0, &[1, 2]), derive_seed(0, &[2, 1]));
}

#[test]
fn mnist_runs_through_the_shared_runner_bit_identically_for_any_thread_count() {
    use lodo_bench::experiment::MnistSpec;
    use std::sync::Arc;
    // Eight pseudo-random "digits": the runner's seeding and statistics, not the data, are tested.
    let mut s = lodo_core::random::Stream::new(7);
    let images: Vec<u8> = (0..8 * 784).map(|_| s.below(256) as u8).collect();
    let spec = TaskSpec::Mnist(MnistSpec {
        images: Arc::new(images),
        // Nine chunks of the batch-parallel forward/backward (`net::CHUNK` = 2), the last partial.
        batch: 17,
        layer_starts: vec![0],
    });
    let go = |threads: usize, kind: OptimizerKind| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut opts = RunOptions::new(3);
                opts.keep_final = true;
                run_optimizer(&spec, &kind.defaults(), &opts, derive_seed(0, &[3, 200, 0])).unwrap()
            })
    };
    for kind in [OptimizerKind::Lodo, OptimizerKind::Adam] {
        let (a, b) = (go(1, kind), go(2, kind));
        assert!(!a.diverged, "{kind}: {:?}", a.note);
        assert_eq!(a.curve.len(), 3, "{kind}: one curve point per step");
        let bits = |r: &lodo_bench::experiment::RunRecord| -> Vec<u64> {
            r.curve
                .iter()
                .map(|c| c.1.to_bits())
                .chain(r.final_point.iter().map(|x| x.to_bits()))
                .collect()
        };
        assert_eq!(bits(&a), bits(&b), "{kind}");
        assert_eq!(a.final_point.len(), lodo_bench::mnist::net::N_PARAMS);
        // Steps 3 of 3: the final 10% window is the last step.
        assert_eq!(a.final_loss.to_bits(), a.curve[2].1.to_bits());
    }
}

/// `ℓ_t(x) = (x − t)²`: the centre walks away from `x₀ = 0` by 1 per fresh evaluation (a
/// one-dimensional moving bowl).
struct Walk(f64);
impl Task<f64> for Walk {
    fn name(&self) -> &str {
        "walk"
    }
    fn dim(&self) -> usize {
        1
    }
    fn initial_point(&self) -> Vec<f64> {
        vec![0.0]
    }
    fn loss_grad(&mut self, x: &[f64], g: &mut [f64]) -> f64 {
        self.0 += 1.0;
        self.loss_grad_same_sample(x, g)
    }
    fn loss_grad_same_sample(&mut self, x: &[f64], g: &mut [f64]) -> f64 {
        g[0] = 2.0 * (x[0] - self.0);
        (x[0] - self.0).powi(2)
    }
}

/// Moves `x` by `step` per iteration after evaluating.
struct Drift(f64);
impl Minimizer<f64> for Drift {
    fn iterate(&mut self, task: &mut dyn Task<f64>, x: &mut [f64]) -> Result<f64, StepError> {
        let mut g = [0.0];
        let l = task.loss_grad(x, &mut g);
        x[0] += self.0;
        Ok(l)
    }
}

#[test]
fn a_run_that_ends_worse_than_its_starting_point_is_diverged() {
    let mut opts = RunOptions::new(100);
    opts.start_points = usize::MAX;
    // Standing still scores x₀'s loss exactly: not above it, so not diverged.
    let still = run(&mut Walk(0.0), &mut Drift(0.0), &opts, 0).unwrap();
    assert_eq!(still.start_loss.to_bits(), still.final_loss.to_bits());
    assert!(!still.diverged && still.diverged_at.is_none());
    // Following the centre: far below x₀'s loss.
    let follow = run(&mut Walk(0.0), &mut Drift(1.0), &opts, 0).unwrap();
    assert!(!follow.diverged && follow.final_loss < 0.01 * follow.start_loss);
    // Walking away: finite, but above x₀'s loss over the same steps: diverged, with the reason;
    // the loss itself stays in the record.
    let away = run(&mut Walk(0.0), &mut Drift(-0.5), &opts, 0).unwrap();
    assert!(away.diverged, "{away:?}");
    assert!(away.final_loss.is_finite() && away.final_loss > away.start_loss);
    assert!(away.diverged_at.is_none());
    assert!(
        away.note.as_deref().unwrap().contains("above x₀"),
        "{:?}",
        away.note
    );
    // x₀'s loss over the window (steps 91..=100): the mean of t².
    let expect = (91..=100).map(|t| f64::from(t * t)).sum::<f64>() / 10.0;
    assert_eq!(away.start_loss.to_bits(), expect.to_bits());
    // Without the measurement (tuning runs) nothing is compared.
    let away = run(&mut Walk(0.0), &mut Drift(-0.5), &RunOptions::new(100), 0).unwrap();
    assert!(!away.diverged && away.start_loss.is_nan());
    // Summaries count it as diverged and leave it out of the mean.
    let s = lodo_bench::report::Summary::from_runs(
        "away",
        &[follow.final_loss, 1e9],
        &[follow.diverged, true],
        &[1.0, 1.0],
    );
    assert_eq!(
        (s.diverged, s.mean.to_bits()),
        (1, follow.final_loss.to_bits())
    );
}

#[test]
fn a_non_finite_run_records_the_step_it_diverged_at() {
    let spec = TaskSpec::Bowl(BowlOptions {
        dim: 10,
        ..BowlOptions::default()
    });
    let mut opts = RunOptions::new(2000);
    opts.start_points = spec.start_points();
    let rec = run_optimizer(
        &spec,
        &Optimizer::Momentum {
            lr: 1e3,
            momentum: 0.0,
        },
        &opts,
        1,
    )
    .unwrap();
    let at = rec.diverged_at.expect("blew up");
    assert!(at > 0 && at < 2000, "{at}");
    assert!(rec.note.unwrap().contains(&format!("step {at}")));
}

#[test]
fn g_movement_matches_the_dense_g() {
    use lodo_bench::baselines::BuildContext;
    let n = 24;
    let alpha0 = 0.3;
    let lodo = Optimizer::Lodo(LodoParams {
        alpha0,
        meta_lr: 3e-2,
        beta: 0.9,
        variant: LodoVariant::BLOCK,
    });
    let ctx = BuildContext {
        dim: n,
        total_steps: 100,
        seed: 5,
        layer_starts: None,
        hessian_vector: false,
    };
    let mut m = lodo.build::<f64>(&ctx).unwrap();
    let mut rng = lodo_core::random::Stream::new(9);
    // A fresh LODO has G = α₀I exactly: no movement.
    let g0 = g_movement(m.as_ref(), alpha0, n, 10, &mut rng).unwrap();
    assert!(g0 <= 1e-12, "{g0}");
    let spec = TaskSpec::Bowl(BowlOptions {
        dim: n,
        ..BowlOptions::default()
    });
    let mut task = spec.make(4).unwrap();
    let mut x = task.initial_point();
    for _ in 0..60 {
        m.iterate(task.as_mut(), &mut x).unwrap();
    }
    // Dense G, column by column: ‖G − α₀I‖_F / (α₀√n).
    let (mut e, mut col) = (vec![0.0; n], vec![0.0; n]);
    let mut sum = 0.0;
    for j in 0..n {
        e[j] = 1.0;
        assert!(m.preconditioner_matvec(&e, &mut col));
        e[j] = 0.0;
        for (i, &g) in col.iter().enumerate() {
            let d = g - if i == j { alpha0 } else { 0.0 };
            sum += d * d;
        }
    }
    let exact = sum.sqrt() / (alpha0 * (n as f64).sqrt());
    assert!(exact > 1e-3, "G has not moved: {exact}");
    // 4,000 probes: relative standard error ≤ 1/√8000 ≈ 1.1 %; 5 % is > 4σ.
    let est = g_movement(m.as_ref(), alpha0, n, 4000, &mut rng).unwrap();
    assert!((est - exact).abs() <= 0.05 * exact, "{est} vs {exact}");
    // No preconditioner: no estimate.
    let adam = OptimizerKind::Adam.defaults().build::<f64>(&ctx).unwrap();
    assert!(g_movement(adam.as_ref(), alpha0, n, 10, &mut rng).is_none());
}

#[test]
fn mnist_runs_log_g_movement_on_every_curve_point() {
    use lodo_bench::experiment::MnistSpec;
    use std::sync::Arc;
    let mut s = lodo_core::random::Stream::new(7);
    let images: Vec<u8> = (0..4 * 784).map(|_| s.below(256) as u8).collect();
    let spec = TaskSpec::Mnist(MnistSpec {
        images: Arc::new(images),
        batch: 2,
        layer_starts: vec![0],
    });
    let mut opts = RunOptions::new(3);
    opts.g_movement_probes = 2;
    let lodo = run_optimizer(&spec, &OptimizerKind::Lodo.defaults(), &opts, 1).unwrap();
    assert_eq!(lodo.g_movement.len(), lodo.curve.len());
    // Three steps at the authors' η: G has barely moved, but it has.
    assert!(
        lodo.g_movement.iter().all(|&g| g.is_finite() && g < 0.1),
        "{:?}",
        lodo.g_movement
    );
    let adam = run_optimizer(&spec, &OptimizerKind::Adam.defaults(), &opts, 1).unwrap();
    assert!(adam.g_movement.is_empty());
}
