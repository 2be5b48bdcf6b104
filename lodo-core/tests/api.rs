//! Configuration validation, bad-input errors (state unchanged, compared on the serialized
//! state), save/resume bit-identity, determinism, and zero allocations per step.

mod common;

use common::{bits, cast, gaussians, random_spd};
use lodo_core::random::Stream;
use lodo_core::{
    Adam, AdamConfig, BlockConfig, ConfigError, Diagonal, Global, Lodo, LodoConfig, LodoState,
    MetaConfig, MetaOptimizer, Optimizer, PermutationFamily, Precision, Preconditioner, Real,
    Residual, ResidualConfig, Sgd, SgdConfig, StateError, StepError, WeightPrecision, lit,
};
use serde::{Serialize, de::DeserializeOwned};

type Block<T> = lodo_core::BlockPreconditioner<T>;

fn json<S: Serialize>(s: &S) -> String {
    serde_json::to_string(s).unwrap()
}

/// A noisy quadratic gradient oracle, deterministic in `seed`.
struct Bowl {
    q: common::Dense,
    c: Vec<f64>,
    rng: Stream,
}

impl Bowl {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = Stream::new(seed);
        Self {
            q: random_spd(n, 0.01, 1.0, &mut rng),
            c: vec![0.0; n],
            rng,
        }
    }
    fn grad<T: Real>(&mut self, x: &[T]) -> Vec<T> {
        for ci in &mut self.c {
            *ci += 0.1 * self.rng.gaussian();
        }
        let e: Vec<f64> = x
            .iter()
            .zip(&self.c)
            .map(|(a, b)| a.to_f64().unwrap() - b)
            .collect();
        cast(&self.q.matvec(&e))
    }
}

fn run<T: Real, P: Preconditioner<T>, M: MetaOptimizer<T>>(
    lodo: &mut Lodo<T, P, M>,
    x: &mut [T],
    bowl: &mut Bowl,
    steps: usize,
) {
    for _ in 0..steps {
        let g = bowl.grad(x);
        lodo.step(x, &g).unwrap();
    }
}

// ---------------------------------------------------------------- configuration

#[test]
fn config_rejects_every_invalid_hyperparameter() {
    let c = LodoConfig::<f64>::default();
    assert_eq!(c.with_alpha0(0.0).unwrap_err(), ConfigError::InvalidAlpha0);
    assert_eq!(c.with_alpha0(-1.0).unwrap_err(), ConfigError::InvalidAlpha0);
    assert_eq!(
        c.with_alpha0(f64::NAN).unwrap_err(),
        ConfigError::InvalidAlpha0
    );
    assert_eq!(
        c.with_alpha0(f64::INFINITY).unwrap_err(),
        ConfigError::InvalidAlpha0
    );
    assert_eq!(
        c.with_meta_lr(0.0).unwrap_err(),
        ConfigError::InvalidMetaLearningRate
    );
    assert_eq!(
        c.with_meta_lr(-1e-3).unwrap_err(),
        ConfigError::InvalidMetaLearningRate
    );
    assert_eq!(c.with_beta(1.0).unwrap_err(), ConfigError::InvalidMomentum);
    assert_eq!(c.with_beta(-0.1).unwrap_err(), ConfigError::InvalidMomentum);
    assert_eq!(
        c.with_beta(f64::NAN).unwrap_err(),
        ConfigError::InvalidMomentum
    );
    assert!(c.with_beta(0.0).is_ok());
    let b = BlockConfig::<f64>::default();
    assert_eq!(b.with_layers(0).unwrap_err(), ConfigError::ZeroLayers);
    assert_eq!(
        b.with_block_size(0).unwrap_err(),
        ConfigError::ZeroBlockSize
    );
    assert_eq!(
        ResidualConfig::<f64>::default().with_layers(0).unwrap_err(),
        ConfigError::ZeroLayers
    );
    let adam = AdamConfig::<f64>::default();
    assert_eq!(
        adam.with_moments(1.0, 0.999, 1e-7).unwrap_err(),
        ConfigError::InvalidBeta1
    );
    assert_eq!(
        adam.with_moments(0.9, 1.0, 1e-7).unwrap_err(),
        ConfigError::InvalidBeta2
    );
    assert_eq!(
        adam.with_moments(0.9, 0.999, 0.0).unwrap_err(),
        ConfigError::InvalidEpsilon
    );
    assert_eq!(
        SgdConfig::<f64>::default()
            .with_learning_rate(f64::NAN)
            .unwrap_err(),
        ConfigError::InvalidLearningRate
    );
    assert_eq!(
        Lodo::<f64>::new(0, c, 0).unwrap_err(),
        ConfigError::EmptyProblem
    );
    let small = c.with_preconditioner(b.with_hidden(9).unwrap());
    assert_eq!(
        Lodo::<f64>::new(10, small, 0).unwrap_err(),
        ConfigError::HiddenTooSmall { hidden: 9, dim: 10 }
    );
    let odd = c.with_preconditioner(b.with_hidden(10).unwrap().with_block_size(4).unwrap());
    assert_eq!(
        Lodo::<f64>::new(10, odd, 0).unwrap_err(),
        ConfigError::HiddenNotMultipleOfBlock {
            hidden: 10,
            block_size: 4
        }
    );
    let wide = c.with_preconditioner(b.with_hidden(12).unwrap());
    assert!(Lodo::<f64>::new(10, wide, 0).is_ok());
    assert_eq!(
        Adam::<f64>::new(3, 0.0).unwrap_err(),
        ConfigError::InvalidLearningRate
    );
    // Errors print something a person can act on.
    assert!(ConfigError::InvalidMomentum.to_string().contains("[0, 1)"));
}

// ---------------------------------------------------------------- bad input

fn bad_input_changes_nothing<T, P, M>(n: usize, config: LodoConfig<T, P::Config, M::Config>)
where
    T: Real + Serialize,
    P: Preconditioner<T> + Serialize,
    M: MetaOptimizer<T> + Serialize,
{
    let mut lodo = Lodo::<T, P, M>::new(n, config, 11).unwrap();
    let mut bowl = Bowl::new(n, 12);
    let mut x: Vec<T> = cast(&gaussians(n, 1.0, &mut Stream::new(13)));
    run(&mut lodo, &mut x, &mut bowl, 5);
    let (state, x_before) = (json(lodo.state()), bits(&x));

    let short = vec![T::one(); n - 1];
    assert_eq!(
        lodo.step(&mut x, &short),
        Err(StepError::GradientLength {
            expected: n,
            found: n - 1
        })
    );
    let g = vec![T::one(); n];
    let mut long_x = vec![T::one(); n + 1];
    assert_eq!(
        lodo.step(&mut long_x, &g),
        Err(StepError::ParamsLength {
            expected: n,
            found: n + 1
        })
    );
    for bad in [T::nan(), T::infinity(), T::neg_infinity()] {
        let mut g = vec![T::one(); n];
        g[n / 2] = bad;
        assert_eq!(
            lodo.step(&mut x, &g),
            Err(StepError::NonFiniteGradient { index: n / 2 })
        );
    }
    assert_eq!(json(lodo.state()), state, "state changed on bad input");
    assert_eq!(bits(&x), x_before, "parameters changed on bad input");
}

#[test]
fn bad_input_returns_typed_errors_and_changes_nothing() {
    bad_input_changes_nothing::<f64, Block<f64>, Adam<f64>>(7, LodoConfig::default());
    bad_input_changes_nothing::<f32, Block<f32>, Adam<f32>>(7, LodoConfig::default());
    bad_input_changes_nothing::<f64, Block<f64>, Sgd<f64>>(7, LodoConfig::default());
    bad_input_changes_nothing::<f64, Residual<f64>, Adam<f64>>(5, LodoConfig::default());
    bad_input_changes_nothing::<f64, Diagonal<f64>, Adam<f64>>(5, LodoConfig::default());
    bad_input_changes_nothing::<f32, Global<f32>, Adam<f32>>(5, LodoConfig::default());
}

#[test]
fn a_step_that_would_overflow_leaves_parameters_unchanged() {
    let mut lodo = Lodo::<f64>::new(4, LodoConfig::default(), 1).unwrap();
    let mut x = vec![-1.7e308, 0.0, 1.0, 2.0];
    let before = bits(&x);
    let g = vec![1.7e308, 0.0, 0.0, 0.0];
    assert_eq!(
        lodo.step(&mut x, &g),
        Err(StepError::NonFiniteStep { index: 0 })
    );
    assert_eq!(bits(&x), before);
    let mut adam = Adam::new(2, 1e300).unwrap();
    let mut y = vec![f64::MAX, 0.0];
    assert_eq!(
        adam.step(&mut y, &[-1.0, 1.0]),
        Err(StepError::NonFiniteStep { index: 0 })
    );
    assert_eq!(y, vec![f64::MAX, 0.0]);
}

// ---------------------------------------------------------------- resume and determinism

fn resume_is_bit_identical<T, P, M>(n: usize, config: LodoConfig<T, P::Config, M::Config>)
where
    T: Real + Serialize + DeserializeOwned,
    P: Preconditioner<T> + Serialize + DeserializeOwned,
    M: MetaOptimizer<T> + Serialize + DeserializeOwned,
{
    let mut bowl = Bowl::new(n, 21);
    let mut lodo = Lodo::<T, P, M>::new(n, config, 22).unwrap();
    let mut x: Vec<T> = vec![T::zero(); n];
    run(&mut lodo, &mut x, &mut bowl, 20);
    let saved = json(lodo.state());
    let (x_saved, bowl_saved) = (x.clone(), bowl.c.clone());

    run(&mut lodo, &mut x, &mut bowl, 30);

    let state: LodoState<T, P, M> = serde_json::from_str(&saved).unwrap();
    let mut resumed = Lodo::<T, P, M>::from_state(state).unwrap();
    let mut bowl2 = Bowl::new(n, 21);
    for _ in 0..20 {
        bowl2.grad(&x_saved);
    }
    assert_eq!(bits(&bowl2.c), bits(&bowl_saved));
    let mut y = x_saved;
    run(&mut resumed, &mut y, &mut bowl2, 30);
    assert_eq!(bits(&y), bits(&x), "resumed trajectory differs");
    assert_eq!(
        json(resumed.state()),
        json(lodo.state()),
        "resumed state differs"
    );
}

#[test]
fn a_resumed_run_continues_bit_identically() {
    resume_is_bit_identical::<f64, Block<f64>, Adam<f64>>(9, LodoConfig::default());
    resume_is_bit_identical::<f32, Block<f32>, Adam<f32>>(9, LodoConfig::default());
    resume_is_bit_identical::<f64, Block<f64>, Sgd<f64>>(9, LodoConfig::default());
    resume_is_bit_identical::<f64, Residual<f64>, Adam<f64>>(6, LodoConfig::default());
    resume_is_bit_identical::<f64, Diagonal<f64>, Adam<f64>>(6, LodoConfig::default());
    resume_is_bit_identical::<f64, Global<f64>, Adam<f64>>(6, LodoConfig::default());
    // Compact moments save compact and resume bit for bit (n = 70: several q8 tiles a layer).
    for precision in [Precision::Bf16, Precision::Q8] {
        let shuffle = BlockConfig::default()
            .with_permutations(PermutationFamily::Shuffle)
            .unwrap();
        resume_is_bit_identical::<f32, Block<f32>, Adam<f32>>(
            70,
            LodoConfig::default().with_meta(AdamConfig::default().with_precision(precision)),
        );
        resume_is_bit_identical::<f64, Block<f64>, Adam<f64>>(
            70,
            LodoConfig::new(shuffle, AdamConfig::default().with_precision(precision)),
        );
        resume_is_bit_identical::<f64, Diagonal<f64>, Adam<f64>>(
            6,
            LodoConfig::default().with_meta(AdamConfig::default().with_precision(precision)),
        );
        // With bf16 kept activations too (the compact policy).
        let acts = BlockConfig::default()
            .with_permutations(PermutationFamily::Shuffle)
            .and_then(|c| c.with_activations(Precision::Bf16))
            .unwrap();
        resume_is_bit_identical::<f32, Block<f32>, Adam<f32>>(
            70,
            LodoConfig::new(acts, AdamConfig::default().with_precision(precision)),
        );
    }
    let acts = BlockConfig::default()
        .with_activations(Precision::Bf16)
        .unwrap();
    resume_is_bit_identical::<f64, Block<f64>, Sgd<f64>>(
        9,
        LodoConfig::new(acts, SgdConfig::default()),
    );
}

/// θ in f32 below f64: saved compact (`blocks` empty, `blocks_f32` the codes), resumed bit for
/// bit (Adam with every moment policy, SGD), and refused when inconsistent.
#[test]
fn f32_weights_are_saved_compact_and_resume_bit_for_bit() {
    let shuffle = BlockConfig::<f64>::default()
        .with_permutations(PermutationFamily::Shuffle)
        .and_then(|c| c.with_activations(Precision::Bf16))
        .and_then(|c| c.with_weights(WeightPrecision::F32))
        .unwrap();
    for precision in [Precision::Full, Precision::Bf16, Precision::Q8] {
        resume_is_bit_identical::<f64, Block<f64>, Adam<f64>>(
            70,
            LodoConfig::new(shuffle, AdamConfig::default().with_precision(precision)),
        );
    }
    let random = BlockConfig::<f64>::default()
        .with_weights(WeightPrecision::F32)
        .unwrap();
    resume_is_bit_identical::<f64, Block<f64>, Adam<f64>>(
        9,
        LodoConfig::default().with_preconditioner(random),
    );
    resume_is_bit_identical::<f64, Block<f64>, Sgd<f64>>(
        9,
        LodoConfig::new(random, SgdConfig::default()),
    );

    let n = 40;
    let mut full = Lodo::<f64>::new(n, LodoConfig::default(), 1).unwrap();
    let mut compact =
        Lodo::<f64>::new(n, LodoConfig::default().with_preconditioner(random), 1).unwrap();
    assert_eq!(
        compact.preconditioner().weight_precision(),
        WeightPrecision::F32
    );
    let (mut x, mut y) = (vec![0.0f64; n], vec![0.0f64; n]);
    run(&mut full, &mut x, &mut Bowl::new(n, 2), 5);
    run(&mut compact, &mut y, &mut Bowl::new(n, 2), 5);
    let good: serde_json::Value = serde_json::to_value(compact.state()).unwrap();
    let theta = full.preconditioner().weight_count();
    assert_eq!(good["preconditioner"]["weights"], "F32");
    assert_eq!(
        good["preconditioner"]["blocks"].as_array().unwrap().len(),
        0
    );
    assert_eq!(
        good["preconditioner"]["blocks_f32"]
            .as_array()
            .unwrap()
            .len(),
        theta
    );
    let full_json: serde_json::Value = serde_json::to_value(full.state()).unwrap();
    assert_eq!(
        full_json["preconditioner"]["blocks"]
            .as_array()
            .unwrap()
            .len(),
        theta
    );
    assert_eq!(
        full_json["preconditioner"]["blocks_f32"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Saved compact: θ's f32 codes are written as f32 (at most 9 significant digits, against
    // 17 for θ in f64), so the network's saved text shrinks.
    let (small, large) = (
        json(compact.preconditioner()).len(),
        json(full.preconditioner()).len(),
    );
    assert!(4 * small < 3 * large, "{small} vs {large}");
    let load = |v: &serde_json::Value| {
        let s: LodoState<f64, Block<f64>> = serde_json::from_value(v.clone()).unwrap();
        Lodo::from_state(s).map(|_| ())
    };
    assert_eq!(load(&good), Ok(()));
    let mut bad = good.clone();
    bad["preconditioner"]["blocks_f32"]
        .as_array_mut()
        .unwrap()
        .pop();
    assert!(matches!(
        load(&bad),
        Err(StateError::Length {
            what: "weights (f32)",
            ..
        })
    ));
    let mut bad = good.clone();
    bad["preconditioner"]["weights"] = "Full".into();
    assert!(matches!(
        load(&bad),
        Err(StateError::Length {
            what: "weights",
            ..
        })
    ));
    // θ in f32 in an f32 state is refused.
    let mut bad: serde_json::Value = serde_json::to_value(
        Lodo::<f32>::new(n, LodoConfig::default(), 1)
            .unwrap()
            .state(),
    )
    .unwrap();
    bad["preconditioner"]["weights"] = "F32".into();
    let s: LodoState<f32, Block<f32>> = serde_json::from_value(bad).unwrap();
    assert_eq!(
        Lodo::from_state(s).err(),
        Some(StateError::Config(ConfigError::UnsupportedWeightPrecision))
    );
}

#[test]
fn bf16_activations_are_saved_checked_and_change_only_the_last_bits_early() {
    let n = 40;
    let acts = BlockConfig::default()
        .with_activations(Precision::Bf16)
        .unwrap();
    let mut full = Lodo::<f32>::new(n, LodoConfig::default(), 1).unwrap();
    let mut kept = Lodo::<f32>::new(n, LodoConfig::default().with_preconditioner(acts), 1).unwrap();
    assert_eq!(kept.preconditioner().activations(), Precision::Bf16);
    let (mut x, mut y) = (vec![0.0f32; n], vec![0.0f32; n]);
    run(&mut full, &mut x, &mut Bowl::new(n, 2), 30);
    run(&mut kept, &mut y, &mut Bowl::new(n, 2), 30);
    // The hypergradient reads rounded activations: the runs differ, but stay close.
    assert_ne!(bits(&x), bits(&y));
    let gap = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let size = x.iter().map(|a| a.abs()).fold(0.0f32, f32::max);
    assert!(gap <= 0.05 * size, "{gap} vs {size}");
    // A state that claims q8 activations is refused.
    let mut v: serde_json::Value = serde_json::to_value(kept.state()).unwrap();
    assert_eq!(v["preconditioner"]["activations"], "Bf16");
    v["preconditioner"]["activations"] = "Q8".into();
    let s: LodoState<f32, Block<f32>> = serde_json::from_value(v).unwrap();
    assert_eq!(
        Lodo::from_state(s).err(),
        Some(StateError::Config(
            ConfigError::UnsupportedActivationPrecision
        ))
    );
}

#[test]
fn compact_moments_are_saved_compact_and_checked_on_restore() {
    let n = 40;
    let mut sizes = Vec::new();
    for precision in [Precision::Full, Precision::Bf16, Precision::Q8] {
        let config =
            LodoConfig::default().with_meta(AdamConfig::default().with_precision(precision));
        let mut lodo = Lodo::<f32>::new(n, config, 1).unwrap();
        let mut x = vec![0.0f32; n];
        run(&mut lodo, &mut x, &mut Bowl::new(n, 2), 3);
        assert_eq!(lodo.meta().precision(), precision);
        // The decoded moments moved from zero and are finite.
        let (m, v) = lodo.meta().moments();
        assert!(m.iter().any(|&x| x != 0.0) && v.iter().all(|&x| x >= 0.0 && x.is_finite()));
        sizes.push(json(lodo.state()).len());
        if precision == Precision::Full {
            continue;
        }
        let good: serde_json::Value = serde_json::to_value(lodo.state()).unwrap();
        let load = |v: &serde_json::Value| {
            let s: LodoState<f32, Block<f32>> = serde_json::from_value(v.clone()).unwrap();
            Lodo::from_state(s).map(|_| ())
        };
        assert_eq!(load(&good), Ok(()));
        let name = if precision == Precision::Bf16 {
            "Bf16"
        } else {
            "Q8"
        };
        let mut bad = good.clone();
        bad["meta"]["Adam"]["compact"][name]["v"]
            .as_array_mut()
            .unwrap()
            .pop();
        assert!(matches!(
            load(&bad),
            Err(StateError::Length {
                what: "Adam second moment",
                ..
            })
        ));
        let mut bad = good.clone();
        if precision == Precision::Bf16 {
            // 0x7F80 is +∞ in bf16.
            bad["meta"]["Adam"]["compact"][name]["m"][0] = 0x7F80.into();
            assert_eq!(
                load(&bad),
                Err(StateError::NonFinite {
                    what: "Adam moments"
                })
            );
        } else {
            bad["meta"]["Adam"]["compact"][name]["scales"][0][1] = (-1.0).into();
            assert_eq!(
                load(&bad),
                Err(StateError::NonFinite {
                    what: "Adam q8 scales"
                })
            );
            let mut short = good.clone();
            short["meta"]["Adam"]["compact"][name]["scales"]
                .as_array_mut()
                .unwrap()
                .pop();
            assert!(matches!(
                load(&short),
                Err(StateError::Length {
                    what: "Adam q8 scales",
                    ..
                })
            ));
        }
    }
    // Bytes on disk shrink with the moments (JSON: an f32 is ~12 characters, a code 1–5).
    assert!(sizes[1] < sizes[0] && sizes[2] < sizes[1], "{sizes:?}");
}

#[test]
fn same_seed_same_trajectory_other_seed_other_network() {
    let trajectory = |seed: u64| {
        let mut lodo = Lodo::<f64>::new(12, LodoConfig::default(), seed).unwrap();
        let mut bowl = Bowl::new(12, 5);
        let mut x = vec![0.0; 12];
        run(&mut lodo, &mut x, &mut bowl, 40);
        (bits(&x), bits(&lodo.preconditioner().weights()))
    };
    assert_eq!(trajectory(3), trajectory(3));
    assert_ne!(trajectory(3).1, trajectory(4).1);
}

#[test]
fn corrupted_states_are_rejected() {
    let mut lodo = Lodo::<f64>::new(5, LodoConfig::default(), 1).unwrap();
    let mut x = vec![0.0; 5];
    run(&mut lodo, &mut x, &mut Bowl::new(5, 2), 3);
    let good: serde_json::Value = serde_json::to_value(lodo.state()).unwrap();
    let load = |v: &serde_json::Value| {
        let s: LodoState<f64, Block<f64>> = serde_json::from_value(v.clone()).unwrap();
        Lodo::from_state(s).map(|_| ())
    };
    assert_eq!(load(&good), Ok(()));

    let mut v = good.clone();
    v["format"] = 99.into();
    assert_eq!(load(&v), Err(StateError::UnsupportedFormat { found: 99 }));

    let mut v = good.clone();
    v["momentum"].as_array_mut().unwrap().pop();
    assert_eq!(
        load(&v),
        Err(StateError::Length {
            what: "momentum",
            expected: 5,
            found: 4
        })
    );

    let mut v = good.clone();
    let perm = v["preconditioner"]["permutations"][1]["forward"]
        .as_array_mut()
        .unwrap();
    perm[0] = perm[1].clone();
    assert_eq!(load(&v), Err(StateError::NotAPermutation { layer: 1 }));

    let mut v = good.clone();
    v["beta"] = 1.5.into();
    assert_eq!(
        load(&v),
        Err(StateError::Config(ConfigError::InvalidMomentum))
    );

    let mut v = good.clone();
    v["meta"]["Adam"]["v"].as_array_mut().unwrap().truncate(3);
    assert!(matches!(
        load(&v),
        Err(StateError::Length {
            what: "Adam second moment",
            ..
        })
    ));

    let mut v = good;
    v["preconditioner"]["blocks"].as_array_mut().unwrap().pop();
    assert!(matches!(
        load(&v),
        Err(StateError::Length {
            what: "weights",
            ..
        })
    ));
}

// ---------------------------------------------------------------- allocation

#[test]
fn a_step_allocates_nothing_after_construction() {
    fn check<P: Preconditioner<f64>, M: MetaOptimizer<f64>>(
        config: LodoConfig<f64, P::Config, M::Config>,
    ) {
        let n = 33;
        let mut lodo = Lodo::<f64, P, M>::new(n, config, 1).unwrap();
        let mut bowl = Bowl::new(n, 2);
        let grads: Vec<Vec<f64>> = (0..10).map(|_| bowl.grad(&vec![0.0; n])).collect();
        let mut x = vec![0.0; n];
        let info = allocation_counter::measure(|| {
            for g in &grads {
                lodo.step(&mut x, g).unwrap();
            }
        });
        assert_eq!(
            info.count_total, 0,
            "{} allocations in 10 steps",
            info.count_total
        );
    }
    check::<Block<f64>, Adam<f64>>(LodoConfig::default());
    check::<Block<f64>, Sgd<f64>>(LodoConfig::default());
    check::<Residual<f64>, Adam<f64>>(LodoConfig::default());
    check::<Diagonal<f64>, Adam<f64>>(LodoConfig::default());
    check::<Global<f64>, Adam<f64>>(LodoConfig::default());
    let acts = BlockConfig::default()
        .with_activations(Precision::Bf16)
        .unwrap();
    check::<Block<f64>, Sgd<f64>>(LodoConfig::new(acts, SgdConfig::default()));
    for precision in [Precision::Bf16, Precision::Q8] {
        check::<Block<f64>, Adam<f64>>(
            LodoConfig::default().with_meta(AdamConfig::default().with_precision(precision)),
        );
        check::<Block<f64>, Adam<f64>>(LodoConfig::new(
            acts,
            AdamConfig::default().with_precision(precision),
        ));
        check::<Diagonal<f64>, Adam<f64>>(
            LodoConfig::default().with_meta(AdamConfig::default().with_precision(precision)),
        );
    }
    // The counter does see allocations (the test can fail).
    let info = allocation_counter::measure(|| {
        std::hint::black_box(vec![0u8; 16]);
    });
    assert!(info.count_total > 0);
}

#[test]
fn lodo_converges_on_a_deterministic_quadratic_in_f32_and_f64() {
    fn go<T: Real>() -> f64 {
        let n = 20;
        let q = random_spd(n, 0.1, 1.0, &mut Stream::new(1));
        let mut lodo =
            Lodo::<T>::new(n, LodoConfig::default().with_alpha0(lit(0.5)).unwrap(), 2).unwrap();
        let mut x: Vec<T> = vec![T::one(); n];
        for _ in 0..500 {
            let g: Vec<T> = cast(&q.matvec(&common::to_f64(&x)));
            lodo.step(&mut x, &g).unwrap();
        }
        common::to_f64(&x)
            .iter()
            .map(|v| v.abs())
            .fold(0.0, f64::max)
    }
    assert!(go::<f64>() < 1e-4, "{}", go::<f64>());
    assert!(go::<f32>() < 1e-3, "{}", go::<f32>());
}
