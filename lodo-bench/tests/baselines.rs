//! Every baseline's step against a step computed by hand (or by a plainly written dense formula)
//! on a tiny problem; bad input and bad hyperparameters give typed errors.
#![allow(clippy::needless_range_loop)]

use lodo_bench::baselines::{
    Bfgs, BuildContext, BuildError, FrozenLodo, Lars, Lbfgs, LbfgsVariant, LevenbergMarquardt,
    Momentum, OptimizerKind, RmsProp, Yogi,
};
use lodo_bench::task::{Minimizer, Task};
use lodo_core::{Lodo, LodoConfig, Optimizer, StepError};

/// Relative closeness: |a − b| ≤ 8 ε · max(1, |a|, |b|) (a few roundings).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 8.0 * f64::EPSILON * a.abs().max(b.abs()).max(1.0)
}

fn assert_close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        assert!(close(x, y), "entry {i}: {x} vs {y}");
    }
}

#[test]
fn momentum_two_steps_by_hand() {
    let mut o = Momentum::new(2, 0.1, 0.9).unwrap();
    let mut x = [1.0, 2.0];
    o.step(&mut x, &[0.5, -1.0]).unwrap();
    // v = −0.1·g = (−0.05, 0.1).
    assert_close(&x, &[0.95, 2.1]);
    o.step(&mut x, &[1.0, 1.0]).unwrap();
    // v = 0.9·(−0.05, 0.1) − 0.1·(1, 1) = (−0.145, −0.01).
    assert_close(&x, &[0.95 - 0.145, 2.1 - 0.01]);
}

#[test]
fn rmsprop_two_steps_by_hand() {
    let (lr, rho, eps) = (0.01, 0.9, 1e-7);
    let mut o = RmsProp::new(2, lr, rho, 0.5).unwrap();
    let mut x = [0.0, 0.0];
    let g1 = [2.0, -1.0];
    o.step(&mut x, &g1).unwrap();
    let r1: [f64; 2] = [0.1 * 4.0, 0.1 * 1.0];
    let u1 = [lr * 2.0 / (r1[0].sqrt() + eps), -lr / (r1[1].sqrt() + eps)];
    assert_close(&x, &[-u1[0], -u1[1]]);
    let g2 = [1.0, 3.0];
    o.step(&mut x, &g2).unwrap();
    let r2: [f64; 2] = [0.9 * r1[0] + 0.1 * 1.0, 0.9 * r1[1] + 0.1 * 9.0];
    let u2 = [
        0.5 * u1[0] + lr * 1.0 / (r2[0].sqrt() + eps),
        0.5 * u1[1] + lr * 3.0 / (r2[1].sqrt() + eps),
    ];
    assert_close(&x, &[-u1[0] - u2[0], -u1[1] - u2[1]]);
}

#[test]
fn yogi_two_steps_by_hand() {
    let (lr, b1, b2, eps) = (0.1, 0.9, 0.99, 1e-3);
    let mut o = Yogi::new(1, lr, b1, b2).unwrap();
    let mut x = [1.0];
    o.step(&mut x, &[2.0]).unwrap();
    // m = 0.2, v = 0 − 0.01·sign(0 − 4)·4 = 0.04 (no bias correction).
    let x1 = 1.0 - lr * 0.2 / (0.04f64.sqrt() + eps);
    assert_close(&x, &[x1]);
    o.step(&mut x, &[0.1]).unwrap();
    // m = 0.18 + 0.01 = 0.19, v = 0.04 − 0.01·sign(0.04 − 0.01)·0.01 = 0.0399.
    let x2 = x1 - lr * 0.19 / (0.0399f64.sqrt() + eps);
    assert_close(&x, &[x2]);
}

#[test]
fn lars_two_steps_by_hand() {
    // Two layers {0, 1} and {2}; budget T = 4 steps.
    let (lr, mu, wd) = (0.5, 0.9, 0.1);
    let mut o = Lars::new(3, lr, mu, wd, 4, &[0, 2]).unwrap();
    let mut x = [3.0, 4.0, -2.0];
    let g = [1.0, 0.0, 0.5];
    o.step(&mut x, &g).unwrap();
    let global = lr * (1.0 - 0.25f64) * (1.0 - 0.25);
    // layer 0: ‖x‖ = 5, ‖g‖ = 1 → λ = 5/(1 + 0.5); layer 1: ‖x‖ = 2, ‖g‖ = 0.5 → λ = 2/0.7.
    let l0 = 5.0 / (1.0 + wd * 5.0);
    let l1 = 2.0 / (0.5 + wd * 2.0);
    let u = [
        global * l0 * (1.0 + wd * 3.0),
        global * l0 * (0.0 + wd * 4.0),
        global * l1 * (0.5 + wd * -2.0),
    ];
    let x1 = [3.0 - u[0], 4.0 - u[1], -2.0 - u[2]];
    assert_close(&x, &x1);
    o.step(&mut x, &[0.0, 0.0, 0.0]).unwrap();
    // Zero gradient: λ = ‖x‖/(w‖x‖) = 1/w, u ← μu + η_t/w · w x = μu + η_t x.
    let global2 = lr * 0.5 * 0.5;
    let x2: Vec<f64> = (0..3)
        .map(|i| x1[i] - (mu * u[i] + global2 * x1[i]))
        .collect();
    assert_close(&x, &x2);
    // At x = 0 with w·‖x‖ = 0 the layer cannot move (the authors' behaviour).
    let mut o = Lars::new(2, lr, mu, 0.0, 4, &[0]).unwrap();
    let mut z = [0.0, 0.0];
    o.step(&mut z, &[1.0, 1.0]).unwrap();
    assert_eq!(z.map(f64::to_bits), [0.0f64.to_bits(); 2]);
    assert_eq!(
        Lars::new(2, lr, mu, wd, 4, &[1]).unwrap_err(),
        BuildError::Layers
    );
}

/// ½ xᵀ A x − bᵀx with a fixed symmetric A; deterministic (same sample = fresh sample).
struct Quadratic {
    a: [[f64; 2]; 2],
    b: [f64; 2],
    constant: bool,
    fresh: usize,
    same: usize,
}

impl Quadratic {
    fn new(constant: bool) -> Self {
        Self {
            a: [[3.0, 1.0], [1.0, 2.0]],
            b: [1.0, -1.0],
            constant,
            fresh: 0,
            same: 0,
        }
    }
    fn grad(&self, x: &[f64]) -> [f64; 2] {
        [
            self.a[0][0] * x[0] + self.a[0][1] * x[1] - self.b[0],
            self.a[1][0] * x[0] + self.a[1][1] * x[1] - self.b[1],
        ]
    }
}

impl Task<f64> for Quadratic {
    fn name(&self) -> &str {
        "quadratic"
    }
    fn dim(&self) -> usize {
        2
    }
    fn initial_point(&self) -> Vec<f64> {
        vec![1.0, 1.0]
    }
    fn loss_grad(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.fresh += 1;
        self.loss_grad_same_sample(x, grad)
    }
    fn loss_grad_same_sample(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.same += 1;
        let g = self.grad(x);
        grad.copy_from_slice(&g);
        // ½ xᵀ(Ax) − bᵀx with Ax = g + b.
        0.5 * (x[0] * (g[0] + self.b[0]) + x[1] * (g[1] + self.b[1]))
            - self.b[0] * x[0]
            - self.b[1] * x[1]
    }
    fn hessian_vector(&mut self, _x: &[f64], v: &[f64], out: &mut [f64]) -> Option<()> {
        out[0] = self.a[0][0] * v[0] + self.a[0][1] * v[1];
        out[1] = self.a[1][0] * v[0] + self.a[1][1] * v[1];
        Some(())
    }
    fn constant_hessian(&self) -> bool {
        self.constant
    }
}

type M2 = [[f64; 2]; 2];

fn mv(m: &M2, v: [f64; 2]) -> [f64; 2] {
    [
        m[0][0] * v[0] + m[0][1] * v[1],
        m[1][0] * v[0] + m[1][1] * v[1],
    ]
}

fn d2(a: [f64; 2], b: [f64; 2]) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}

/// The textbook inverse-Hessian BFGS update H⁺ = (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ.
fn bfgs_update(h: &M2, s: [f64; 2], y: [f64; 2]) -> M2 {
    let rho = 1.0 / d2(s, y);
    let v = |i: usize, j: usize| f64::from(u8::from(i == j)) - rho * y[i] * s[j]; // (I − ρ y sᵀ)
    let mut out = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            let mut acc = 0.0;
            for k in 0..2 {
                for l in 0..2 {
                    acc += v(k, i) * h[k][l] * v(l, j);
                }
            }
            out[i][j] = acc + rho * s[i] * s[j];
        }
    }
    out
}

/// Dense reference of stochastic L-BFGS: returns the iterates.
fn lbfgs_reference(
    task: &Quadratic,
    online: bool,
    eta0: f64,
    tau: f64,
    eps: f64,
    iters: usize,
) -> Vec<[f64; 2]> {
    let mut x = [1.0, 1.0];
    let mut pairs: Vec<([f64; 2], [f64; 2])> = Vec::new();
    let mut out = Vec::new();
    for t in 0..iters {
        let g = task.grad(&x);
        let gamma = if t == 0 {
            eps
        } else if online {
            pairs
                .iter()
                .map(|(s, y)| d2(*s, *y) / d2(*y, *y))
                .sum::<f64>()
                / pairs.len() as f64
        } else {
            let (s, y) = pairs[pairs.len() - 1];
            d2(s, y) / d2(y, y)
        };
        let mut h = [[gamma, 0.0], [0.0, gamma]];
        for (s, y) in &pairs {
            h = bfgs_update(&h, *s, *y);
        }
        let hg = mv(&h, g);
        let rate = eta0 * tau / (tau + t as f64);
        let s = [-rate * hg[0], -rate * hg[1]];
        let xn = [x[0] + s[0], x[1] + s[1]];
        let gn = task.grad(&xn);
        pairs.push((s, [gn[0] - g[0], gn[1] - g[1]]));
        x = xn;
        out.push(x);
    }
    out
}

#[test]
fn lbfgs_and_olbfgs_match_dense_bfgs_reference() {
    for (variant, online) in [
        (LbfgsVariant::NoLineSearch, false),
        (LbfgsVariant::Online, true),
    ] {
        let (eta0, tau, eps) = (0.3, 5.0, 0.2);
        let mut task = Quadratic::new(false);
        let reference = lbfgs_reference(&task, online, eta0, tau, eps, 4);
        let mut o = Lbfgs::new(variant, 2, eta0, tau, eps, 48).unwrap();
        assert_eq!(o.evaluations_per_iteration(), 2);
        let mut x = vec![1.0, 1.0];
        for (t, r) in reference.iter().enumerate() {
            o.iterate(&mut task, &mut x).unwrap();
            for i in 0..2 {
                assert!(
                    (x[i] - r[i]).abs() < 1e-13,
                    "{variant:?} iteration {t}: {x:?} vs {r:?}"
                );
            }
        }
        assert_eq!(task.fresh, 4, "one fresh sample per iteration");
        assert_eq!(task.same, 8, "and one same-sample re-evaluation");
    }
}

#[test]
fn lbfgs_buffer_keeps_the_newest_pairs() {
    // With a buffer of 1, L-BFGS uses only the newest pair: compare with the reference restricted
    // to the last pair.
    let mut task = Quadratic::new(false);
    let mut o = Lbfgs::new(LbfgsVariant::Online, 2, 0.3, 5.0, 0.2, 1).unwrap();
    let mut x = vec![1.0, 1.0];
    let mut xr = [1.0, 1.0];
    let mut last: Option<([f64; 2], [f64; 2])> = None;
    for t in 0..5 {
        o.iterate(&mut task, &mut x).unwrap();
        let g = task.grad(&xr);
        let h = match last {
            None => [[0.2, 0.0], [0.0, 0.2]],
            Some((s, y)) => {
                let gm = d2(s, y) / d2(y, y);
                bfgs_update(&[[gm, 0.0], [0.0, gm]], s, y)
            }
        };
        let hg = mv(&h, g);
        let rate = 0.3 * 5.0 / (5.0 + t as f64);
        let s = [-rate * hg[0], -rate * hg[1]];
        let xn = [xr[0] + s[0], xr[1] + s[1]];
        let gn = task.grad(&xn);
        last = Some((s, [gn[0] - g[0], gn[1] - g[1]]));
        xr = xn;
        assert!(
            (x[0] - xr[0]).abs() < 1e-13 && (x[1] - xr[1]).abs() < 1e-13,
            "t={t}"
        );
    }
}

#[test]
fn bfgs_matches_textbook_update() {
    let (lr, h0) = (0.1, 0.5);
    let mut task = Quadratic::new(false);
    let mut o = Bfgs::new(2, lr, h0).unwrap();
    let mut x = vec![1.0, 1.0];
    let mut xr = [1.0, 1.0];
    let mut h = [[h0, 0.0], [0.0, h0]];
    let mut prev: Option<([f64; 2], [f64; 2])> = None; // (s, g)
    for t in 0..4 {
        o.iterate(&mut task, &mut x).unwrap();
        let g = task.grad(&xr);
        if let Some((s, gp)) = prev {
            h = bfgs_update(&h, s, [g[0] - gp[0], g[1] - gp[1]]);
        }
        let hg = mv(&h, g);
        let s = [-lr * hg[0], -lr * hg[1]];
        xr = [xr[0] + s[0], xr[1] + s[1]];
        prev = Some((s, g));
        assert!(
            (x[0] - xr[0]).abs() < 1e-14 && (x[1] - xr[1]).abs() < 1e-14,
            "t={t}: {x:?} vs {xr:?}"
        );
    }
    let hi = o.inverse_hessian();
    assert!((hi[1] - hi[2]).abs() < 1e-15, "H stays symmetric");
}

#[test]
fn levenberg_marquardt_step_by_hand() {
    for constant in [false, true] {
        let lam = 0.5;
        let mut task = Quadratic::new(constant);
        let mut o = LevenbergMarquardt::new(2, lam).unwrap();
        let mut x = vec![1.0, 1.0];
        o.iterate(&mut task, &mut x).unwrap();
        // H = [[3,1],[1,2]], H² = [[10,5],[5,5]], A = H² + 0.5 diag(H²) = [[15,5],[5,7.5]].
        let g = task.grad(&[1.0, 1.0]); // (3, 4)
        let hg = [3.0 * g[0] + g[1], g[0] + 2.0 * g[1]];
        let det = 15.0 * 7.5 - 25.0;
        let d = [
            (7.5 * hg[0] - 5.0 * hg[1]) / det,
            (-5.0 * hg[0] + 15.0 * hg[1]) / det,
        ];
        let expect = [1.0 - d[0], 1.0 - d[1]];
        for i in 0..2 {
            assert!(
                (x[i] - expect[i]).abs() < 1e-14,
                "constant={constant}: {x:?} vs {expect:?}"
            );
        }
    }
}

#[test]
fn frozen_lodo_steps_with_the_frozen_preconditioner() {
    // A fresh LODO has G = α₀ I, so frozen LODO is momentum SGD with rate α₀(1−β)… per step.
    let lodo = Lodo::<f64>::new(2, LodoConfig::default().with_alpha0(0.25).unwrap(), 1).unwrap();
    let mut o = FrozenLodo::new(lodo.preconditioner().clone(), 0.5).unwrap();
    let mut task = Quadratic::new(false);
    let mut x = vec![1.0, 1.0];
    o.iterate(&mut task, &mut x).unwrap();
    let g = task.grad(&[1.0, 1.0]);
    let m1 = [0.5 * g[0], 0.5 * g[1]];
    let x1 = [1.0 - 0.25 * m1[0], 1.0 - 0.25 * m1[1]];
    assert!((x[0] - x1[0]).abs() < 1e-14 && (x[1] - x1[1]).abs() < 1e-14);
    o.iterate(&mut task, &mut x).unwrap();
    let g2 = task.grad(&x1);
    let m2 = [0.5 * m1[0] + 0.5 * g2[0], 0.5 * m1[1] + 0.5 * g2[1]];
    let x2 = [x1[0] - 0.25 * m2[0], x1[1] - 0.25 * m2[1]];
    assert!((x[0] - x2[0]).abs() < 1e-14 && (x[1] - x2[1]).abs() < 1e-14);
    let mut gv = [0.0; 2];
    assert!(o.preconditioner_matvec(&[1.0, 2.0], &mut gv));
    assert!((gv[0] - 0.25).abs() < 1e-14 && (gv[1] - 0.5).abs() < 1e-14);
}

#[test]
fn steps_are_atomic_and_inputs_checked() {
    let mut o = Momentum::new(2, 1e300, 0.0).unwrap();
    let mut x = [1.0, 1.0];
    assert_eq!(
        o.step(&mut x, &[1e300, 0.0]),
        Err(StepError::NonFiniteStep { index: 0 })
    );
    assert_eq!(x.map(f64::to_bits), [1.0f64.to_bits(); 2]);
    let mut y = Yogi::new(2, 0.1, 0.9, 0.99).unwrap();
    assert_eq!(
        y.step(&mut x, &[f64::NAN, 0.0]),
        Err(StepError::NonFiniteGradient { index: 0 })
    );
    assert_eq!(
        y.step(&mut x, &[1.0]),
        Err(StepError::GradientLength {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(x.map(f64::to_bits), [1.0f64.to_bits(); 2]);
}

#[test]
fn bad_hyperparameters_and_names_give_typed_errors() {
    assert!(matches!(
        Momentum::new(2, -1.0, 0.0),
        Err(BuildError::Hyperparameter { name: "lr", .. })
    ));
    assert!(matches!(
        RmsProp::new(2, 0.1, 1.0, 0.0),
        Err(BuildError::Hyperparameter { name: "rho", .. })
    ));
    assert!(matches!(
        Lbfgs::new(LbfgsVariant::Online, 2, 0.1, f64::NAN, 1.0, 4),
        Err(BuildError::Hyperparameter { name: "tau", .. })
    ));
    let ctx = BuildContext {
        dim: 2,
        total_steps: 10,
        ..BuildContext::default()
    };
    assert!(matches!(
        OptimizerKind::Adam.defaults().with_values(&[0.1]),
        Err(BuildError::Count {
            expected: 3,
            found: 1,
            ..
        })
    ));
    assert!(matches!(
        OptimizerKind::LevenbergMarquardt
            .defaults()
            .with_values(&[1.0])
            .unwrap()
            .build::<f64>(&ctx),
        Err(BuildError::NeedsHessian(_))
    ));
    assert!(matches!(
        OptimizerKind::Lodo
            .defaults()
            .with_values(&[0.0, 1e-3, 0.9])
            .unwrap()
            .build::<f64>(&ctx),
        Err(BuildError::Config(lodo_core::ConfigError::InvalidAlpha0))
    ));
    let err = "adamw".parse::<OptimizerKind>().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("unknown optimizer \"adamw\"") && msg.contains("LODO-Residuals"),
        "{msg}"
    );
    assert_eq!(
        "o_lbfgs".parse::<OptimizerKind>().unwrap(),
        OptimizerKind::OLbfgs
    );
    // Every kind builds with its defaults on a task with Hessian-vector products.
    let ctx = BuildContext {
        dim: 2,
        total_steps: 10,
        hessian_vector: true,
        ..BuildContext::default()
    };
    for k in OptimizerKind::ALL {
        assert!(k.defaults().build::<f64>(&ctx).is_ok(), "{k}");
        assert_eq!(k.defaults().kind(), k);
        assert_eq!(k.name().parse::<OptimizerKind>().unwrap(), k);
    }
}
