//! Criterion bench for the MNIST autoregression CNN (94,696 parameters), f32, single thread:
//! one training step (forward + backward over a batch of 256) and the optimizer update alone
//! (LODO with the authors' MNIST hyperparameters vs Adam). The step/update ratio is the number
//! issue 6 asks for (target: LODO update ≤ 15% of forward + backward).
//!
//! `CARGO_TARGET_DIR=… cargo bench -p lodo-bench --bench mnist`
//! (`LODO_MNIST_BATCH=64` shrinks the batch for a quick look).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lodo_bench::mnist::net::{self, N_PARAMS, PIX, Query, SIDE};
use lodo_core::{Adam, Lodo, LodoConfig, Optimizer};

fn batch_size() -> usize {
    std::env::var("LODO_MNIST_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

/// Real digits from the shipped data, with random query pixels.
fn data(batch: usize) -> (Vec<u8>, Vec<Query>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k");
    let mnist = lodo_bench::mnist::idx::Mnist::load(&dir).expect("shipped MNIST data");
    let mut rng = lodo_core::random::Stream::new(1);
    let n = mnist.train.n;
    let q = (0..batch)
        .map(|_| Query {
            image: rng.below(n as u64) as u32,
            row: rng.below(SIDE as u64) as u8,
            col: rng.below(SIDE as u64) as u8,
        })
        .collect();
    (mnist.train.pixels, q)
}

fn bench(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    let b = batch_size();
    let (images, queries) = data(b);
    assert_eq!(images.len() % PIX, 0);
    let params = net::init::<f32>(0);
    let mut grad = vec![0.0f32; N_PARAMS];

    let mut group = c.benchmark_group("mnist_f32_1thread");
    group.sample_size(10);
    group.throughput(Throughput::Elements(b as u64));
    group.bench_function(format!("forward_backward_batch{b}"), |bch| {
        bch.iter(|| {
            pool.install(|| net::loss_grad(black_box(&params), &images, &queries, &mut grad))
        });
    });
    group.finish();

    // A realistic gradient for the updates.
    let loss = pool.install(|| net::loss_grad(&params, &images, &queries, &mut grad));
    assert!(loss.is_finite());
    let mut group = c.benchmark_group("mnist_update_f32");
    group.sample_size(20);
    group.throughput(Throughput::Elements(N_PARAMS as u64));
    let config = LodoConfig::<f32>::default()
        .with_alpha0(0.0846)
        .and_then(|c| c.with_meta_lr(7.95e-6))
        .and_then(|c| c.with_beta(0.934))
        .expect("valid");
    let mut lodo = Lodo::<f32>::new(N_PARAMS, config, 1).expect("valid");
    let mut x = params.clone();
    for _ in 0..3 {
        lodo.step(&mut x, &grad).expect("finite");
    }
    group.bench_function("lodo", |bch| {
        bch.iter(|| {
            let mut y = x.clone();
            lodo.step(black_box(&mut y), black_box(&grad))
                .expect("finite");
            y
        });
    });
    let mut adam = Adam::<f32>::new(N_PARAMS, 1e-3).expect("valid");
    group.bench_function("adam", |bch| {
        bch.iter(|| {
            let mut y = x.clone();
            adam.step(black_box(&mut y), black_box(&grad))
                .expect("finite");
            y
        });
    });
    group.bench_function("clone_params_only", |bch| bch.iter(|| black_box(x.clone())));
    group.finish();
}

// No criterion plots: its plotters backend needs system fonts, which the workspace avoids.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
