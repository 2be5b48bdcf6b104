//! The adapter's contract: flatten order and missing gradients against lodo-core directly,
//! construction errors, refused steps leave the variables' bits, the learning-rate mapping, and
//! save/resume bit for bit beside `VarMap::save`.

mod support;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer, VarMap};
use lodo_candle::{LodoCandleError, LodoOptimizer, LodoOptimizerConfig};
use lodo_core::{
    AdamConfig, BlockConfig, ConfigError, Lodo, LodoConfig, Precision, StateError, StepError,
    WeightPrecision,
};

fn config(alpha0: f64) -> LodoOptimizerConfig<f64> {
    LodoOptimizerConfig::new(LodoConfig::default().with_alpha0(alpha0).unwrap(), 3)
}

fn values(v: &Var) -> Vec<f64> {
    v.as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

#[test]
fn flattens_in_order_and_missing_gradient_is_zero() {
    let a = Var::new(&[[1.0f64, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
    let b = Var::new(&[5.0f64, 6.0, 7.0], &Device::Cpu).unwrap();
    let c = Var::new(&[-1.0f64], &Device::Cpu).unwrap(); // not in the loss: no gradient
    let mut opt =
        LodoOptimizer::try_new(vec![a.clone(), b.clone(), c.clone()], config(0.1)).unwrap();
    let offsets: Vec<usize> = opt.layout().map(|(o, _)| o).collect();
    assert_eq!(offsets, [0, 4, 7]);
    // The same LODO on the flat vector a ++ b ++ c, with c's gradient zero.
    let mut lodo = Lodo::<f64>::new(8, config(0.1).lodo, 3).unwrap();
    let mut flat = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, -1.0];
    for _ in 0..5 {
        // loss = Σ a² + Σ (b·[1,2,3])
        let w = Tensor::new(&[1.0f64, 2.0, 3.0], &Device::Cpu).unwrap();
        let loss = (a.as_tensor().sqr().unwrap().sum_all().unwrap()
            + b.as_tensor().mul(&w).unwrap().sum_all().unwrap())
        .unwrap();
        opt.backward_step(&loss).unwrap();
        let mut g: Vec<f64> = flat[..4].iter().map(|x| 2.0 * x).collect();
        g.extend([1.0, 2.0, 3.0, 0.0]);
        lodo.step(&mut flat, &g).unwrap();
    }
    let mut got = values(&a);
    got.extend(values(&b));
    got.extend(values(&c));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&flat));
    // c had no gradient, yet moved (momentum and G's mixing carry the others into it).
    assert_ne!(values(&c)[0].to_bits(), (-1.0f64).to_bits());
}

#[test]
fn unsupported_variables_are_refused_at_construction() {
    let f32v = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
    let f64v = Var::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
    let u32v = Var::new(&[1u32, 2], &Device::Cpu).unwrap();
    let err = LodoOptimizer::<f64>::try_new(vec![f32v.clone()], config(0.1)).unwrap_err();
    assert!(
        matches!(
            err,
            LodoCandleError::DType {
                index: 0,
                found: DType::F32,
                mixed: false,
                ..
            }
        ),
        "{err}"
    );
    let err =
        LodoOptimizer::<f64>::try_new(vec![f64v.clone(), f32v.clone()], config(0.1)).unwrap_err();
    assert!(
        matches!(
            err,
            LodoCandleError::DType {
                index: 1,
                mixed: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("mix"), "{err}");
    let err = LodoOptimizer::<f64>::try_new(vec![f64v.clone(), u32v], config(0.1)).unwrap_err();
    assert!(
        matches!(
            err,
            LodoCandleError::DType {
                index: 1,
                found: DType::U32,
                ..
            }
        ),
        "{err}"
    );
    let err =
        LodoOptimizer::<f64>::try_new(vec![f64v.clone(), f64v.clone()], config(0.1)).unwrap_err();
    assert!(
        matches!(err, LodoCandleError::Duplicate { index: 1 }),
        "{err}"
    );
    let err = LodoOptimizer::<f64>::try_new(vec![], config(0.1)).unwrap_err();
    assert!(matches!(err, LodoCandleError::NoVariables), "{err}");
    // Through candle's trait: a candle error with the message.
    let err = <LodoOptimizer<f32> as Optimizer>::new(vec![f64v], LodoOptimizerConfig::default())
        .unwrap_err();
    assert!(err.to_string().contains("F64"), "{err}");
    assert!(<LodoOptimizer<f32> as Optimizer>::empty(LodoOptimizerConfig::default()).is_err());
}

#[test]
fn refused_step_writes_nothing() {
    let a = Var::new(&[1.0f64, 2.0, 3.0], &Device::Cpu).unwrap();
    let mut opt = LodoOptimizer::try_new(vec![a.clone()], config(0.1)).unwrap();
    let before = values(&a);
    let poison = Tensor::new(&[1.0f64, f64::NAN, 1.0], &Device::Cpu).unwrap();
    let loss = a.as_tensor().mul(&poison).unwrap().sum_all().unwrap();
    let err = opt.try_step(&loss.backward().unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            LodoCandleError::Step(StepError::NonFiniteGradient { index: 1 })
        ),
        "{err}"
    );
    assert_eq!(
        values(&a).iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        before.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    // Through the trait: an error, still nothing written.
    assert!(opt.backward_step(&loss).is_err());
    assert_eq!(values(&a)[0].to_bits(), before[0].to_bits());
}

#[test]
fn learning_rate_is_alpha0() {
    let a = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
    let mut opt = LodoOptimizer::<f32>::try_new(
        vec![a.clone()],
        LodoOptimizerConfig::new(LodoConfig::default().with_alpha0(0.25).unwrap(), 0),
    )
    .unwrap();
    assert_eq!(opt.learning_rate().to_bits(), 0.25f64.to_bits());
    opt.set_learning_rate(0.5);
    assert_eq!(opt.learning_rate().to_bits(), 0.5f64.to_bits());
    // Invalid: not applied, the next step says so, the one after works.
    opt.set_learning_rate(-1.0);
    assert_eq!(opt.learning_rate().to_bits(), 0.5f64.to_bits());
    let loss = a.as_tensor().sqr().unwrap().sum_all().unwrap();
    let err = opt.backward_step(&loss).unwrap_err();
    assert!(err.to_string().contains("alpha0"), "{err}");
    opt.backward_step(&loss).unwrap();
    assert!(opt.try_set_learning_rate(f64::NAN).is_err());
}

fn bits_of(varmap: &VarMap) -> Vec<(String, Vec<u64>)> {
    let mut out: Vec<(String, Vec<u64>)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let t = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            (
                k.clone(),
                t.iter().map(|x| u64::from(x.to_bits())).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn save_and_resume_is_bit_identical() {
    let cfg = LodoOptimizerConfig::<f32>::new(LodoConfig::default().with_alpha0(0.05).unwrap(), 11);
    save_and_resume(cfg, "full");
}

/// The compact state (issue 17: 8-bit moments, bf16 kept activations) through the adapter:
/// it saves compact and resumes bit for bit, and its file is smaller than the full state's.
#[test]
fn compact_state_saves_compact_and_resumes_bit_identical() {
    let block = BlockConfig::default()
        .with_activations(Precision::Bf16)
        .unwrap();
    let lodo = LodoConfig::new(block, AdamConfig::default().with_precision(Precision::Q8))
        .with_alpha0(0.05)
        .unwrap();
    let compact = save_and_resume(LodoOptimizerConfig::<f32>::new(lodo, 11), "compact");
    let full = save_and_resume(
        LodoOptimizerConfig::<f32>::new(LodoConfig::default().with_alpha0(0.05).unwrap(), 11),
        "full-size",
    );
    assert!(
        compact.state < full.state * 3 / 4,
        "compact state file {} B, full {} B",
        compact.state,
        full.state
    );
}

/// Sizes of the files a save wrote, in bytes.
struct Saved {
    state: u64,
}

/// Trains 10 steps, saves model and optimizer, trains 20 more; a fresh model and optimizer
/// loaded from the files train the same 20 steps to the same bits.
fn save_and_resume(cfg: LodoOptimizerConfig<f32>, name: &str) -> Saved {
    let dir =
        std::env::temp_dir().join(format!("lodo-candle-resume-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let train = support::Digits::load("train").unwrap();
    let batches = support::batches(train.len(), 16, 30, 1);
    let policy = (
        cfg.lodo.meta().precision(),
        cfg.lodo.preconditioner().activations(),
    );

    // k = 10 steps, save, m = 20 more.
    let mut varmap = VarMap::new();
    let model = support::Mlp::new(&mut varmap, DType::F32, 2).unwrap();
    let mut opt = LodoOptimizer::<f32>::from_varmap(&varmap, cfg).unwrap();
    support::train(&model, &mut opt, &train, &batches[..10], DType::F32).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
    opt.save(dir.join("lodo.json")).unwrap();
    support::train(&model, &mut opt, &train, &batches[10..], DType::F32).unwrap();

    // Fresh model (another init seed) and optimizer, loaded from the files.
    let mut varmap2 = VarMap::new();
    let model2 = support::Mlp::new(&mut varmap2, DType::F32, 999).unwrap();
    varmap2.load(dir.join("model.safetensors")).unwrap();
    let mut opt2 = LodoOptimizer::<f32>::load_for_varmap(dir.join("lodo.json"), &varmap2).unwrap();
    assert_eq!(opt2.lodo().steps(), 10);
    // The policy comes from the file.
    let lodo2 = opt2.lodo();
    assert_eq!(
        (
            lodo2.meta().precision(),
            lodo2.preconditioner().activations()
        ),
        policy
    );
    support::train(&model2, &mut opt2, &train, &batches[10..], DType::F32).unwrap();

    assert_eq!(bits_of(&varmap), bits_of(&varmap2));
    // A state does not attach to variables of other shapes.
    let other = Var::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let err = LodoOptimizer::<f32>::load(dir.join("lodo.json"), vec![other]).unwrap_err();
    assert!(matches!(err, LodoCandleError::Layout(_)), "{err}");
    let saved = Saved {
        state: std::fs::metadata(dir.join("lodo.json")).unwrap().len(),
    };
    std::fs::remove_dir_all(&dir).ok();
    saved
}

/// `Σ a² + Σ b·[1, 2, 3]` on the adapter's variables, one backward step.
fn quadratic_step(opt: &mut LodoOptimizer<f64>, a: &Var, b: &Var) {
    let w = Tensor::new(&[1.0f64, 2.0, 3.0], &Device::Cpu).unwrap();
    let loss = (a.as_tensor().sqr().unwrap().sum_all().unwrap()
        + b.as_tensor().mul(&w).unwrap().sum_all().unwrap())
    .unwrap();
    opt.backward_step(&loss).unwrap();
}

/// The same loss's gradient on the flat vector `a ++ b`.
fn quadratic_gradient(flat: &[f64]) -> Vec<f64> {
    let mut g: Vec<f64> = flat[..4].iter().map(|x| 2.0 * x).collect();
    g.extend([1.0, 2.0, 3.0]);
    g
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `θ` held in f32 below f64 variables (issue 17, `BlockConfig::with_weights`): the adapter runs
/// lodo-core's `Lodo` with that policy (same bits as driving it directly on the flat vector),
/// the policy changes the run (θ is rounded), and a saved state resumes bit for bit with it.
#[test]
fn f32_weights_on_f64_variables_are_lodo_cores_and_resume() {
    let block = BlockConfig::<f64>::default()
        .with_weights(WeightPrecision::F32)
        .unwrap();
    let lodo = LodoConfig::default()
        .with_preconditioner(block)
        .with_alpha0(0.1)
        .unwrap();
    let cfg: LodoOptimizerConfig<f64> = LodoOptimizerConfig::new(lodo, 3);
    let start = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
    let vars = || {
        (
            Var::new(&[[start[0], start[1]], [start[2], start[3]]], &Device::Cpu).unwrap(),
            Var::new(&start[4..], &Device::Cpu).unwrap(),
        )
    };
    let (a, b) = vars();
    let mut opt = LodoOptimizer::try_new(vec![a.clone(), b.clone()], cfg).unwrap();
    assert_eq!(
        opt.lodo().preconditioner().weight_precision(),
        WeightPrecision::F32
    );
    let mut core = Lodo::<f64>::new(7, cfg.lodo, 3).unwrap();
    let mut flat = start.to_vec();
    let (wa, wb) = vars();
    let mut wide = LodoOptimizer::try_new(vec![wa.clone(), wb.clone()], config(0.1)).unwrap();
    for _ in 0..10 {
        quadratic_step(&mut opt, &a, &b);
        quadratic_step(&mut wide, &wa, &wb);
        let g = quadratic_gradient(&flat);
        core.step(&mut flat, &g).unwrap();
    }
    let got = |a: &Var, b: &Var| {
        let mut v = values(a);
        v.extend(values(b));
        v
    };
    assert_eq!(bits64(&got(&a, &b)), bits64(&flat));
    assert_ne!(
        bits64(&got(&a, &b)),
        bits64(&got(&wa, &wb)),
        "θ in f32 rounds"
    );

    // Save, 10 more steps; a fresh optimizer over variables at the saved values, loaded from the
    // file, takes the same 10 steps to the same bits.
    let dir = std::env::temp_dir().join(format!("lodo-candle-theta32-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lodo.json");
    opt.save(&path).unwrap();
    let saved = got(&a, &b);
    for _ in 0..10 {
        quadratic_step(&mut opt, &a, &b);
    }
    let a2 = Tensor::new(&saved[..4], &Device::Cpu)
        .and_then(|t| t.reshape((2, 2)))
        .and_then(|t| Var::from_tensor(&t))
        .unwrap();
    let b2 = Var::new(&saved[4..], &Device::Cpu).unwrap();
    let mut opt2 = LodoOptimizer::<f64>::load(&path, vec![a2.clone(), b2.clone()]).unwrap();
    assert_eq!(
        opt2.lodo().preconditioner().weight_precision(),
        WeightPrecision::F32
    );
    for _ in 0..10 {
        quadratic_step(&mut opt2, &a2, &b2);
    }
    assert_eq!(bits64(&got(&a, &b)), bits64(&got(&a2, &b2)));
    std::fs::remove_dir_all(&dir).ok();
}

/// `θ` in f32 needs f64: with `LodoOptimizer<f32>` the policy is a typed error wherever it can
/// come from (the builder, a configuration read from JSON, a state file edited to claim it).
#[test]
fn f32_weights_with_f32_variables_are_refused() {
    assert_eq!(
        BlockConfig::<f32>::default()
            .with_weights(WeightPrecision::F32)
            .err(),
        Some(ConfigError::UnsupportedWeightPrecision)
    );
    let a = Var::new(&[1.0f32, 2.0, 3.0], &Device::Cpu).unwrap();
    // A configuration deserialised with the policy (the builder would refuse it).
    let mut json = serde_json::to_value(LodoConfig::<f32>::default()).unwrap();
    assert_eq!(json["preconditioner"]["weights"], "Full");
    json["preconditioner"]["weights"] = "F32".into();
    let lodo: LodoConfig<f32> = serde_json::from_value(json).unwrap();
    let err = LodoOptimizer::<f32>::try_new(vec![a.clone()], LodoOptimizerConfig::new(lodo, 1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            LodoCandleError::Config(ConfigError::UnsupportedWeightPrecision)
        ),
        "{err}"
    );
    // A saved f32 state that claims θ in f32.
    let opt =
        LodoOptimizer::<f32>::try_new(vec![a.clone()], LodoOptimizerConfig::default()).unwrap();
    let mut state = serde_json::to_value(opt.state()).unwrap();
    state["lodo"]["preconditioner"]["weights"] = "F32".into();
    let state = serde_json::from_value(state).unwrap();
    let err = LodoOptimizer::<f32>::from_state(vec![a], state).unwrap_err();
    assert!(
        matches!(
            err,
            LodoCandleError::State(StateError::Config(ConfigError::UnsupportedWeightPrecision))
        ),
        "{err}"
    );
}
