//! LodoSolver under argmin's Executor: convergence on Rosenbrock (f32 and f64), the stochastic
//! bowl's evaluation counts, checkpoint resume bit for bit, and typed errors.

mod support;

use std::sync::{Arc, Mutex};

use argmin::core::checkpointing::CheckpointingFrequency;
use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{ArgminFloat, CostFunction, Error, Executor, Gradient, IterState, KV, State};
use argmin_checkpointing_file::FileCheckpoint;
use lodo_argmin::{LodoIterState, LodoSolver, LodoSolverError};
use lodo_core::{
    AdamConfig, BlockConfig, ConfigError, Lodo, LodoConfig, PermutationFamily, Precision, Real,
    StepError, WeightPrecision,
};
use num_traits::FromPrimitive;
use support::{NoisyBowl, Rosenbrock};

fn rosenbrock_cost_falls<T>()
where
    T: Real + ArgminFloat + FromPrimitive + std::iter::Sum + std::ops::AddAssign,
{
    let x0 = Rosenbrock::<T>::start(2);
    let c0 = Rosenbrock::<T>::new().cost(&x0).unwrap();
    let config = LodoConfig::<T>::default()
        .with_alpha0(T::from_f64(1e-3).unwrap())
        .unwrap();
    let result = Executor::new(Rosenbrock::new(), LodoSolver::new(config, 0))
        .configure(|s| s.param(x0).max_iters(2000).counting(true))
        .run()
        .unwrap();
    let state = result.state;
    assert_eq!(state.get_iter(), 2000);
    assert!(
        state.get_best_cost() < c0,
        "{:?} !< {c0:?}",
        state.get_best_cost()
    );
    assert!(state.get_cost().is_finite());
    // Far below the start: the valley is found.
    assert!(state.get_best_cost() < c0 * T::from_f64(0.01).unwrap());
    let counts = state.get_func_counts();
    assert_eq!(counts["gradient_count"], 2000);
    assert_eq!(counts["cost_count"], 2001);
}

#[test]
fn rosenbrock_f64() {
    rosenbrock_cost_falls::<f64>();
}

#[test]
fn rosenbrock_f32() {
    rosenbrock_cost_falls::<f32>();
}

/// Records the observed costs and that `gradient_norm` is reported.
#[derive(Clone, Default)]
struct Record(Arc<Mutex<Vec<(f64, bool)>>>);

impl Observe<LodoIterState<f64>> for Record {
    fn observe_iter(&mut self, state: &LodoIterState<f64>, kv: &KV) -> Result<(), Error> {
        let has = kv.get("gradient_norm").is_some() && kv.get("step_norm").is_some();
        self.0.lock().unwrap().push((state.get_cost(), has));
        Ok(())
    }
}

#[test]
fn noisy_bowl_one_gradient_per_iteration() {
    let bowl = NoisyBowl::new(20, 1.0, 3);
    let floor = bowl.floor();
    let record = Record::default();
    let iters = 3000;
    let config = LodoConfig::default().with_alpha0(1.0).unwrap();
    let result = Executor::new(bowl, LodoSolver::new(config, 1))
        .configure(|s| s.param(vec![0.0; 20]).max_iters(iters).counting(true))
        .add_observer(record.clone(), ObserverMode::Always)
        .run()
        .unwrap();
    let counts = result.state.get_func_counts();
    assert_eq!(counts["gradient_count"], iters);
    assert_eq!(counts["cost_count"], iters + 1);
    let costs = record.0.lock().unwrap();
    assert!(costs.iter().all(|&(_, has)| has));
    let first: f64 = costs[..300].iter().map(|c| c.0).sum::<f64>() / 300.0;
    let last: f64 = costs[costs.len() - 300..].iter().map(|c| c.0).sum::<f64>() / 300.0;
    assert!(last.is_finite());
    // The walk runs away from x₀ = 0; LODO tracks it: the late loss is below the early one.
    assert!(last < first, "late {last} !< early {first} (floor {floor})");
}

/// Stops the run with an error at iteration `.0`, as a crash would.
#[derive(Clone)]
struct Crash(u64);

impl Observe<LodoIterState<f64>> for Crash {
    fn observe_iter(&mut self, state: &LodoIterState<f64>, _kv: &KV) -> Result<(), Error> {
        if state.get_iter() >= self.0 {
            return Err(Error::msg("simulated crash"));
        }
        Ok(())
    }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("lodo-argmin-{name}-{}", std::process::id()))
}

/// `Shuffle` wiring with the given storage of Adam's moments and of the kept activations.
fn shuffle_config(alpha0: f64, moments: Precision, activations: Precision) -> LodoConfig<f64> {
    let block = BlockConfig::default()
        .with_permutations(PermutationFamily::Shuffle)
        .unwrap()
        .with_activations(activations)
        .unwrap();
    LodoConfig::new(block, AdamConfig::default().with_precision(moments))
        .with_alpha0(alpha0)
        .unwrap()
}

/// The compact state (issue 17): 8-bit moments, bf16 kept activations.
fn compact_config(alpha0: f64) -> LodoConfig<f64> {
    shuffle_config(alpha0, Precision::Q8, Precision::Bf16)
}

/// `config` with the weights `θ` held in f32 (below the f64 working float).
fn f32_weights(config: LodoConfig<f64>) -> LodoConfig<f64> {
    let block = config
        .preconditioner()
        .with_weights(WeightPrecision::F32)
        .unwrap();
    config.with_preconditioner(block)
}

#[test]
fn checkpoint_resume_is_bit_identical() {
    checkpoint_resume(LodoConfig::default().with_alpha0(1e-3).unwrap(), "resume");
}

/// argmin's checkpoints (bincode) carry a compact state whole: the resumed run is the
/// straight one on bits.
#[test]
fn compact_state_checkpoint_resume_is_bit_identical() {
    checkpoint_resume(compact_config(1e-3), "resume-compact");
}

/// The same with `θ` held in f32: the checkpoint carries the f32 weights and their policy.
#[test]
fn f32_weights_checkpoint_resume_is_bit_identical() {
    checkpoint_resume(f32_weights(compact_config(1e-3)), "resume-theta32");
}

fn checkpoint_resume(config: LodoConfig<f64>, name: &str) {
    let x0 = Rosenbrock::<f64>::start(4);
    let dir = temp_dir(name);
    let dir_str = dir.to_str().unwrap().to_string();
    let checkpoint =
        || FileCheckpoint::new(dir_str.as_str(), "lodo", CheckpointingFrequency::Every(20));
    // Straight through.
    let straight = Executor::new(Rosenbrock::new(), LodoSolver::new(config, 5))
        .configure(|s| s.param(x0.clone()).max_iters(100))
        .run()
        .unwrap()
        .state;
    // Checkpointed every 20 iterations (argmin's file checkpoint, bincode), crashing at 50.
    let crashed = Executor::new(Rosenbrock::new(), LodoSolver::new(config, 5))
        .configure(|s| s.param(x0.clone()).max_iters(100))
        .checkpointing(checkpoint())
        .add_observer(Crash(50), ObserverMode::Always)
        .run();
    assert!(crashed.is_err());
    // A fresh solver with another configuration and seed: everything comes from the checkpoint
    // at iteration 40.
    let resumed = Executor::new(
        Rosenbrock::new(),
        LodoSolver::new(LodoConfig::default().with_alpha0(0.5).unwrap(), 99),
    )
    .configure(|s| s.param(vec![0.0; 4]).max_iters(100))
    .checkpointing(checkpoint())
    .run()
    .unwrap();
    assert_eq!(resumed.state.get_iter(), 100);
    let lodo = resumed.solver.lodo().unwrap();
    assert_eq!(lodo.steps(), 100);
    // The policy came back from the checkpoint, not from the fresh solver's configuration.
    assert_eq!(lodo.meta().precision(), config.meta().precision());
    assert_eq!(
        lodo.preconditioner().activations(),
        config.preconditioner().activations()
    );
    assert_eq!(
        lodo.preconditioner().weight_precision(),
        config.preconditioner().weights()
    );
    assert_eq!(
        bits(resumed.state.get_param().unwrap()),
        bits(straight.get_param().unwrap())
    );
    assert_eq!(
        resumed.state.get_cost().to_bits(),
        straight.get_cost().to_bits()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The compact policy is the one that runs: on the same problem, wiring and seed its trajectory
/// parts from the full state's (the codes round), and it still descends.
#[test]
fn compact_state_is_used_and_descends() {
    let x0 = Rosenbrock::<f64>::start(4);
    let c0 = Rosenbrock::<f64>::new().cost(&x0).unwrap();
    let run = |config: LodoConfig<f64>| {
        Executor::new(Rosenbrock::new(), LodoSolver::new(config, 5))
            .configure(|s| s.param(x0.clone()).max_iters(500))
            .run()
            .unwrap()
            .state
    };
    let full = run(shuffle_config(1e-3, Precision::Full, Precision::Full));
    let compact = run(compact_config(1e-3));
    assert_ne!(
        bits(full.get_param().unwrap()),
        bits(compact.get_param().unwrap())
    );
    assert!(
        compact.get_best_cost() < 0.5 * c0,
        "{}",
        compact.get_best_cost()
    );
}

#[test]
fn corrupt_checkpoint_is_refused() {
    let config = LodoConfig::default().with_alpha0(1e-3).unwrap();
    let solver = Executor::new(Rosenbrock::new(), LodoSolver::new(config, 5))
        .configure(|s| s.param(Rosenbrock::<f64>::start(2)).max_iters(5))
        .run()
        .unwrap()
        .solver;
    // The solver alone round-trips through JSON too.
    let json = serde_json::to_string(&solver).unwrap();
    let back: LodoSolver<f64> = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["lodo"]["momentum"] = serde_json::json!([1.0]);
    let err = serde_json::from_value::<LodoSolver<f64>>(value).unwrap_err();
    assert!(err.to_string().contains("momentum"), "{err}");
}

#[test]
fn missing_parameter_is_a_typed_error() {
    let err = Executor::new(
        Rosenbrock::new(),
        LodoSolver::<f64>::new(LodoConfig::default(), 0),
    )
    .configure(|s: IterState<Vec<f64>, Vec<f64>, (), (), (), f64>| s.max_iters(3))
    .run()
    .err()
    .unwrap();
    assert_eq!(
        err.downcast_ref::<LodoSolverError>(),
        Some(&LodoSolverError::NoParameter)
    );
}

/// A gradient that turns NaN after a few calls.
struct Poisoned(Mutex<u32>);

impl CostFunction for Poisoned {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, x: &Vec<f64>) -> Result<f64, Error> {
        Ok(x.iter().map(|v| v * v).sum())
    }
}

impl Gradient for Poisoned {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, x: &Vec<f64>) -> Result<Vec<f64>, Error> {
        let mut calls = self.0.lock().unwrap();
        *calls += 1;
        Ok(if *calls > 3 {
            vec![f64::NAN; x.len()]
        } else {
            x.iter().map(|v| 2.0 * v).collect()
        })
    }
}

#[test]
fn non_finite_gradient_is_a_typed_error() {
    let err = Executor::new(
        Poisoned(Mutex::new(0)),
        LodoSolver::<f64>::new(LodoConfig::default(), 0),
    )
    .configure(|s| s.param(vec![1.0; 3]).max_iters(10))
    .run()
    .err()
    .unwrap();
    assert_eq!(
        err.downcast_ref::<LodoSolverError>(),
        Some(&LodoSolverError::Step(StepError::NonFiniteGradient {
            index: 0
        }))
    );
}

/// `θ` held in f32 below f64 (issue 17, `BlockConfig::with_weights`): the solver's iterates are
/// lodo-core's `Lodo` with that policy driven directly (gradient at `x_t`, one step), bit for
/// bit; the policy changes the run (θ is rounded), and it still descends.
#[test]
fn f32_weights_are_lodo_cores_steps() {
    let x0 = Rosenbrock::<f64>::start(4);
    let c0 = Rosenbrock::<f64>::new().cost(&x0).unwrap();
    let iters = 300;
    let run = |config: LodoConfig<f64>| {
        Executor::new(Rosenbrock::new(), LodoSolver::new(config, 5))
            .configure(|s| s.param(x0.clone()).max_iters(iters))
            .run()
            .unwrap()
    };
    for base in [
        LodoConfig::default().with_alpha0(1e-3).unwrap(),
        compact_config(1e-3),
    ] {
        let config = f32_weights(base);
        let result = run(config);
        assert_eq!(
            result
                .solver
                .lodo()
                .unwrap()
                .preconditioner()
                .weight_precision(),
            WeightPrecision::F32
        );
        let mut lodo = Lodo::<f64>::new(x0.len(), config, 5).unwrap();
        let mut x = x0.clone();
        for _ in 0..iters {
            let g = Rosenbrock::<f64>::new().gradient(&x).unwrap();
            lodo.step(&mut x, &g).unwrap();
        }
        let param = result.state.get_param().unwrap();
        assert_eq!(bits(param), bits(&x));
        assert_ne!(
            bits(param),
            bits(run(base).state.get_param().unwrap()),
            "θ in f32 rounds"
        );
        assert!(
            result.state.get_best_cost() < 0.5 * c0,
            "{}",
            result.state.get_best_cost()
        );
    }
}

/// `θ` in f32 needs f64: with `LodoSolver<f32>` the policy is a typed error (from the builder,
/// and from a configuration deserialised with it: `LodoSolverError::Config` when the run starts).
#[test]
fn f32_weights_with_f32_are_refused() {
    assert_eq!(
        BlockConfig::<f32>::default()
            .with_weights(WeightPrecision::F32)
            .err(),
        Some(ConfigError::UnsupportedWeightPrecision)
    );
    let mut json = serde_json::to_value(LodoConfig::<f32>::default()).unwrap();
    assert_eq!(json["preconditioner"]["weights"], "Full");
    json["preconditioner"]["weights"] = "F32".into();
    let config: LodoConfig<f32> = serde_json::from_value(json).unwrap();
    let err = Executor::new(Rosenbrock::<f32>::new(), LodoSolver::new(config, 0))
        .configure(|s| s.param(Rosenbrock::<f32>::start(2)).max_iters(3))
        .run()
        .err()
        .unwrap();
    assert_eq!(
        err.downcast_ref::<LodoSolverError>(),
        Some(&LodoSolverError::Config(
            ConfigError::UnsupportedWeightPrecision
        ))
    );
}
