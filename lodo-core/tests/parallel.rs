//! The `parallel` feature (`cargo test -p lodo-core --features parallel`; without it this file
//! is empty): a network wide enough to be split (`h ≥ PARALLEL_MIN_ROWS`) takes the same steps,
//! bit for bit, on one, two and three of rayon's threads. On one thread every layer runs whole;
//! on more, the forward, the backward and the fused hypergradient + Adam sweep run in parts. For
//! every state policy (moments in `T`, bf16, q8; kept activations bf16; `θ` in f32 below f64)
//! and for the paper's random permutations and the shuffle: the parameters after each step and
//! the whole serialized state (θ, the moments' codes and scales) are compared.
#![cfg(feature = "parallel")]

mod common;

use common::bits;
use lodo_core::preconditioner::block::PARALLEL_MIN_ROWS;
use lodo_core::{
    AdamConfig, BlockConfig, Lodo, LodoConfig, MetaConfig, PermutationFamily, Precision, Real,
    WeightPrecision, lit,
};
use serde::Serialize;

/// Parameters after each of 3 steps on a fixed quadratic and the final state, on `threads`.
fn steps<T: Real + Serialize>(
    n: usize,
    config: LodoConfig<T>,
    threads: usize,
) -> (Vec<Vec<u64>>, String) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut lodo = Lodo::<T>::new(n, config, 5).unwrap();
        let mut x: Vec<T> = (0..n)
            .map(|i| lit(((i * 37 % 101) as f64 - 50.0) / 50.0))
            .collect();
        let mut seen = Vec::new();
        for t in 0..3 {
            // ∇ of Σ (1 + i mod 7)/2 · (x_i − t/10)².
            let g: Vec<T> = x
                .iter()
                .enumerate()
                .map(|(i, &xi)| lit::<T>(1.0 + (i % 7) as f64) * (xi - lit(f64::from(t) / 10.0)))
                .collect();
            lodo.step(&mut x, &g).unwrap();
            seen.push(bits(&x));
        }
        (seen, serde_json::to_string(lodo.state()).unwrap())
    })
}

fn same_on_any_threads<T: Real + Serialize>(what: &str, config: LodoConfig<T>) {
    let n = PARALLEL_MIN_ROWS / 2 + 1001;
    let one = steps(n, config, 1);
    for threads in [2, 3] {
        let many = steps(n, config, threads);
        assert!(
            many.0 == one.0,
            "{what}: parameters differ on {threads} threads"
        );
        assert!(
            many.1 == one.1,
            "{what}: state differs on {threads} threads"
        );
    }
    // The steps moved the parameters (not three no-ops compared).
    assert_ne!(one.0[0], one.0[2], "{what}");
}

#[test]
fn wide_steps_are_the_same_bits_on_any_number_of_threads() {
    for family in [PermutationFamily::Random, PermutationFamily::Shuffle] {
        for precision in [Precision::Full, Precision::Bf16, Precision::Q8] {
            let meta = AdamConfig::default()
                .with_precision(precision)
                .with_learning_rate(1e-2)
                .unwrap();
            let pre = BlockConfig::<f32>::default()
                .with_layers(2)
                .and_then(|c| c.with_permutations(family))
                .unwrap();
            let acts = pre.with_activations(Precision::Bf16).unwrap();
            let what = format!("f32 {family:?} {precision:?}");
            same_on_any_threads(&what, LodoConfig::new(pre, meta));
            same_on_any_threads(&format!("{what} bf16 kept"), LodoConfig::new(acts, meta));
            let meta64 = AdamConfig::<f64>::default()
                .with_precision(precision)
                .with_learning_rate(1e-2)
                .unwrap();
            let theta32 = BlockConfig::<f64>::default()
                .with_layers(2)
                .and_then(|c| c.with_permutations(family))
                .and_then(|c| c.with_activations(Precision::Bf16))
                .and_then(|c| c.with_weights(WeightPrecision::F32))
                .unwrap();
            same_on_any_threads(
                &format!("f64 {family:?} {precision:?} θ f32"),
                LodoConfig::new(theta32, meta64),
            );
        }
    }
}
