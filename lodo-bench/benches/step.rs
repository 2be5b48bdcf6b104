//! Criterion bench: one steady-state LODO step against one Adam step at the same `n`
//! (f64, single thread). `cargo bench -p lodo-bench --bench step`; `LODO_BENCH_N=1000,100000`
//! picks the sizes (default 100000).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lodo_core::{Adam, Lodo, LodoConfig, Optimizer};
use std::hint::black_box;

fn sizes() -> Vec<usize> {
    std::env::var("LODO_BENCH_N")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000])
}

/// A deterministic gradient that changes every step (so nothing is cached by accident).
fn gradient(step: usize, out: &mut [f64]) {
    for (i, g) in out.iter_mut().enumerate() {
        *g = (((i * 7 + step * 13) % 101) as f64 - 50.0) * 1e-3;
    }
}

fn bench_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("step_f64");
    group.sample_size(20);
    for n in sizes() {
        group.throughput(Throughput::Elements(n as u64));
        let mut g = vec![0.0; n];
        let config = LodoConfig::default().with_alpha0(1e-3).expect("valid");
        let mut lodo = Lodo::<f64>::new(n, config, 1).expect("valid");
        let mut x = vec![0.0; n];
        // Reach the steady state (non-zero momentum, Adam moments) before timing.
        for t in 0..3 {
            gradient(t, &mut g);
            lodo.step(&mut x, &g).expect("finite");
        }
        let mut t = 3;
        group.bench_with_input(BenchmarkId::new("lodo", n), &n, |b, _| {
            b.iter(|| {
                t += 1;
                gradient(t % 17, &mut g);
                lodo.step(black_box(&mut x), black_box(&g)).expect("finite");
            });
        });
        let mut adam = Adam::new(n, 1e-3).expect("valid");
        let mut x = vec![0.0; n];
        group.bench_with_input(BenchmarkId::new("adam", n), &n, |b, _| {
            b.iter(|| {
                t += 1;
                gradient(t % 17, &mut g);
                adam.step(black_box(&mut x), black_box(&g)).expect("finite");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
