//! The LODO network with `θ` held in `f32` below `f64` ([`WeightPrecision::F32`]): every step is
//! the step of the full-`θ` network on the same (f32-valued) weights, bit for bit, with the new
//! `θ` rounded to the nearest `f32` (the arithmetic stays in `f64`). Checked for the forward
//! `G·m`, the hypergradient, the fused Adam step (full and compact moments, both permutation
//! families), the unfused SGD step and the dense `G`; with `parallel`, serial and parallel give
//! the same bits as everywhere else.

use lodo_core::random::Stream;
use lodo_core::{
    Adam, AdamConfig, BlockConfig, BlockPreconditioner, MetaConfig, MetaOptimizer,
    PermutationFamily, Precision, Preconditioner, Sgd, WeightPrecision,
};

fn vals(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Stream::new(seed);
    (0..n).map(|_| rng.gaussian()).collect()
}

fn bits(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn round32(x: &[f64]) -> Vec<u64> {
    x.iter().map(|&v| f64::from(v as f32).to_bits()).collect()
}

/// A network with θ in f32 and the full network holding the same weights.
fn pair(
    n: usize,
    config: BlockConfig<f64>,
) -> (BlockPreconditioner<f64>, BlockPreconditioner<f64>) {
    let compact = config.with_weights(WeightPrecision::F32).unwrap();
    let c = BlockPreconditioner::from_config(n, &compact, &mut Stream::new(7)).unwrap();
    let mut f = BlockPreconditioner::from_config(n, &config, &mut Stream::new(7)).unwrap();
    assert_eq!(c.weight_precision(), WeightPrecision::F32);
    // The initial θ is the full network's, rounded once.
    assert_eq!(bits(&c.weights()), round32(&f.weights()));
    f.set_weights(&c.weights());
    (c, f)
}

fn steps<M: MetaOptimizer<f64>>(n: usize, config: BlockConfig<f64>, make: impl Fn(usize) -> M) {
    let (mut c, mut f) = pair(n, config);
    let (mut mc, mut mf) = (make(c.weight_count()), make(f.weight_count()));
    let mut out_c = vec![0.0; n];
    let mut out_f = vec![0.0; n];
    for step in 0..4 {
        let m = vals(n, 100 + step);
        c.apply(&m, &mut out_c);
        f.apply(&m, &mut out_f);
        assert_eq!(bits(&out_c), bits(&out_f), "step {step}: G·m");
        let g = vals(n, 200 + step);
        let mut hc = vec![0.0; c.weight_count()];
        let mut hf = vec![0.0; f.weight_count()];
        c.hypergradient(&g, &mut hc);
        f.hypergradient(&g, &mut hf);
        assert_eq!(bits(&hc), bits(&hf), "step {step}: hypergradient");
        mc.begin_step();
        mf.begin_step();
        let kc = c.backprop_meta(&g, &mut mc);
        let kf = f.backprop_meta(&g, &mut mf);
        assert_eq!(kc, kf);
        let before = f.weights();
        assert_eq!(bits(&c.weights()), round32(&before), "step {step}: θ");
        assert_ne!(bits(&before), bits(&c.weights()), "the rounding is real");
        // Continue from the same weights.
        f.set_weights(&c.weights());
    }
    assert_eq!(bits(&c.to_dense()), bits(&f.to_dense()), "dense G");
}

#[test]
fn theta_f32_steps_are_the_full_steps_rounded() {
    let adam = |precision: Precision| {
        move |len: usize| {
            let config = AdamConfig::default()
                .with_learning_rate(1e-2)
                .unwrap()
                .with_precision(precision);
            Adam::for_layout(
                &config,
                lodo_core::WeightLayout {
                    len,
                    segment: len / 3,
                    block: 4,
                },
            )
            .unwrap()
        }
    };
    for n in [5, 37, 300] {
        for family in [PermutationFamily::Random, PermutationFamily::Shuffle] {
            let config = BlockConfig::default()
                .with_layers(3)
                .unwrap()
                .with_permutations(family)
                .unwrap();
            for precision in [Precision::Full, Precision::Bf16, Precision::Q8] {
                steps(n, config, adam(precision));
            }
            steps(n, config, |len| Sgd::new(len, 1e-2).unwrap());
            let acts = config.with_activations(Precision::Bf16).unwrap();
            steps(n, acts, adam(Precision::Q8));
        }
    }
}

/// The sink path hands `θ` over decoded and stores what the sink leaves, rounded.
#[test]
fn theta_f32_sink_sees_decoded_weights() {
    let (mut c, _) = pair(9, BlockConfig::default().with_layers(2).unwrap());
    let mut out = vec![0.0; 9];
    c.apply(&vals(9, 1), &mut out);
    let before = c.weights();
    c.backprop(&vals(9, 2), &mut |offset, theta, _grad| {
        assert_eq!(bits(theta), bits(&before[offset..offset + theta.len()]));
        for t in theta.iter_mut() {
            *t += 1e-3;
        }
    });
    let want: Vec<f64> = before.iter().map(|&w| w + 1e-3).collect();
    assert_eq!(bits(&c.weights()), round32(&want));
}

/// Wide enough for the `parallel` feature to split each layer into parts
/// (`h ≥ PARALLEL_MIN_ROWS`): the parts read `θ` in `f32` as the whole layer does.
#[test]
fn theta_f32_wide_network_splits_alike() {
    use lodo_core::preconditioner::block::PARALLEL_MIN_ROWS;
    let n = PARALLEL_MIN_ROWS / 2 + 1001;
    for family in [PermutationFamily::Random, PermutationFamily::Shuffle] {
        let config = BlockConfig::default()
            .with_layers(2)
            .unwrap()
            .with_permutations(family)
            .unwrap();
        let (c, f) = pair(n, config);
        assert!(c.hidden() >= PARALLEL_MIN_ROWS);
        let v = vals(n, 3);
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        c.matvec(&v, &mut a);
        f.matvec(&v, &mut b);
        assert_eq!(bits(&a), bits(&b));
    }
}
