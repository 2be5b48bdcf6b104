//! Criterion benches of the lodo-kernels paths and of the full LODO step (issue 3).
//!
//! `cargo bench -p lodo-bench --bench kernels` runs everything; filter as usual, e.g.
//! `cargo bench -p lodo-bench --bench kernels -- backward_pair_adam` or `-- step_f32`.
//! `LODO_BENCH_N=1000,10000` picks the step sizes (default 1e3, 1e4, 1e5, 1e6).
//!
//! - One group per kernel and element type, one function per available path (reference,
//!   avx2, avx512, neon) on identical inputs, including an awkward size (odd block count, not a
//!   multiple of any lane width). Each path's output is checked against the reference before
//!   timing. Throughput: elements of `θ` (or of the vector for permutations).
//! - `step_f32` / `step_f64`: one steady-state step at each `n`, single thread: `lodo`
//!   (`Lodo::step`, hypergradient fused into Adam) on the best path and on the reference path,
//!   and a plain `adam` step. Throughput: parameters `n`.
//!
//! Record the CPU (`/proc/cpuinfo`) and the commit with any result you keep.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lodo_core::{Adam, Lodo, LodoConfig, Optimizer, Real};
use lodo_kernels::block_diagonal::{AdamCoefficients, AdamSlices, GatheredPair};
use lodo_kernels::wiring::Wiring;
use lodo_kernels::{Kernels, Path, dispatch};

const K: usize = 4;

fn kernels() -> Vec<Kernels> {
    Path::ALL
        .into_iter()
        .filter_map(|p| Kernels::new(p).ok())
        .collect()
}

/// Widths `h`: in L1/L2, in L3, beyond L3; the last is an odd block count.
const WIDTHS: [usize; 3] = [2_000, 200_000, 4 * 250_001];

fn vals<T: Real>(n: usize, seed: usize) -> Vec<T> {
    (0..n)
        .map(|i| T::from(((i * 2_654_435_761 + seed * 97) % 2001) as f64 / 1000.0 - 1.0).unwrap())
        .collect()
}

fn perm(h: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..h as u32).collect();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..h).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p.swap(i, (s % (i as u64 + 1)) as usize);
    }
    p
}

#[track_caller]
fn agree<T: Real>(what: &str, path: Path, got: &[T], want: &[T]) {
    let tol = T::epsilon() * T::from(64.0).unwrap();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (T::one() + w.abs()),
            "{what} [{path}] disagrees with the reference at {i}: {g:?} vs {w:?}"
        );
    }
}

fn bench_kernels<T: Real>(c: &mut Criterion, ty: &str) {
    let reference = Kernels::reference();
    for h in WIDTHS {
        let hk = h * K;
        let (b, x, w, d) = (
            vals::<T>(hk, 1),
            vals::<T>(h, 2),
            vals::<T>(h, 3),
            vals::<T>(h, 4),
        );
        let (pc, pe) = (vals::<T>(h, 5), vals::<T>(h, 6));
        let p = perm(h);

        let mut g = c.benchmark_group(format!("layer_forward_into_{ty}"));
        g.throughput(Throughput::Elements(hk as u64));
        let (mut p0, mut y0) = (vec![T::zero(); h], vec![T::zero(); h]);
        reference.layer_forward_into(K, &b, Wiring::Index(&p), &x, &mut p0, &mut y0);
        for kern in kernels() {
            let (mut pp, mut y) = (vec![T::nan(); h], vec![T::nan(); h]);
            kern.layer_forward_into(K, &b, Wiring::Index(&p), &x, &mut pp, &mut y);
            agree("layer_forward_into", kern.path(), &y, &y0);
            g.bench_with_input(BenchmarkId::new(kern.path().name(), h), &h, |bch, _| {
                bch.iter(|| {
                    kern.layer_forward_into(
                        K,
                        black_box(&b),
                        Wiring::Index(&p),
                        black_box(&x),
                        &mut pp,
                        &mut y,
                    )
                });
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("layer_backward_{ty}"));
        g.throughput(Throughput::Elements(hk as u64));
        let mut y0 = vec![T::zero(); h];
        reference.layer_backward(K, &b, &p, &w, &mut y0);
        for kern in kernels() {
            let mut y = vec![T::nan(); h];
            kern.layer_backward(K, &b, &p, &w, &mut y);
            agree("layer_backward", kern.path(), &y, &y0);
            g.bench_with_input(BenchmarkId::new(kern.path().name(), h), &h, |bch, _| {
                bch.iter(|| kern.layer_backward(K, black_box(&b), &p, black_box(&w), &mut y));
            });
        }
        g.finish();

        // The optimizer's backward layer: the permutation as a gather on the way in.
        let mut g = c.benchmark_group(format!("layer_backward_gathered_{ty}"));
        g.throughput(Throughput::Elements(hk as u64));
        let mut z0 = vec![T::zero(); h];
        reference.layer_backward_gathered(K, &b, Wiring::Index(&p), &w, &mut z0);
        for kern in kernels() {
            let mut z = vec![T::nan(); h];
            kern.layer_backward_gathered(K, &b, Wiring::Index(&p), &w, &mut z);
            agree("layer_backward_gathered", kern.path(), &z, &z0);
            g.bench_with_input(BenchmarkId::new(kern.path().name(), h), &h, |bch, _| {
                bch.iter(|| {
                    kern.layer_backward_gathered(
                        K,
                        black_box(&b),
                        Wiring::Index(&p),
                        black_box(&w),
                        &mut z,
                    )
                });
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("matvec_{ty}"));
        g.throughput(Throughput::Elements(hk as u64));
        let mut y0 = vec![T::zero(); h];
        reference.matvec(K, &b, &x, &mut y0);
        for kern in kernels() {
            let mut y = vec![T::nan(); h];
            kern.matvec(K, &b, &x, &mut y);
            agree("matvec", kern.path(), &y, &y0);
            g.bench_with_input(BenchmarkId::new(kern.path().name(), h), &h, |bch, _| {
                bch.iter(|| kern.matvec(K, black_box(&b), black_box(&x), &mut y));
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("gather_{ty}"));
        g.throughput(Throughput::Elements(h as u64));
        let mut y0 = vec![T::zero(); h];
        reference.gather(&p, &x, &mut y0);
        for kern in kernels() {
            let mut y = vec![T::nan(); h];
            kern.gather(&p, &x, &mut y);
            assert!(
                y.iter()
                    .zip(&y0)
                    .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()))
            );
            g.bench_with_input(BenchmarkId::new(kern.path().name(), h), &h, |bch, _| {
                bch.iter(|| kern.gather(&p, black_box(&x), &mut y));
            });
        }
        g.finish();

        // The fused hypergradient + Adam layer step, against the unfused sequence (the layer
        // gradient materialised by `backward_pair_gradient`, then a separate Adam pass).
        let mut g = c.benchmark_group(format!("backward_pair_adam_{ty}"));
        g.throughput(Throughput::Elements(hk as u64));
        let co = AdamCoefficients {
            beta1: T::from(0.9).unwrap(),
            beta2: T::from(0.999).unwrap(),
            epsilon: T::from(1e-7).unwrap(),
            rate: T::from(1e-3).unwrap(),
            key: 0,
            first: 0,
        };
        let ad: Vec<T> = w.iter().zip(&d).flat_map(|(&x, &y)| [x, y]).collect();
        let pair = GatheredPair {
            scale: T::from(-1e-3).unwrap(),
            ad: &ad,
            wiring: Wiring::Index(&p),
            c: &pc,
            e: &pe,
        };
        let (mut th0, mut m0, mut v0) = (b.clone(), vec![T::zero(); hk], vec![T::zero(); hk]);
        let mut zad0 = vec![T::zero(); 2 * h];
        let st = AdamSlices::full(&mut th0, &mut m0, &mut v0);
        reference.backward_pair_adam(K, pair, st, co, &mut zad0);
        for kern in kernels() {
            let (mut th, mut m, mut v) = (b.clone(), vec![T::zero(); hk], vec![T::zero(); hk]);
            let mut zad = vec![T::nan(); 2 * h];
            let st = AdamSlices::full(&mut th, &mut m, &mut v);
            kern.backward_pair_adam(K, pair, st, co, &mut zad);
            agree("backward_pair_adam θ", kern.path(), &th, &th0);
            agree("backward_pair_adam zad", kern.path(), &zad, &zad0);
            g.bench_with_input(
                BenchmarkId::new(format!("fused/{}", kern.path().name()), h),
                &h,
                |bch, _| {
                    bch.iter(|| {
                        let st = AdamSlices::full(&mut th, &mut m, &mut v);
                        kern.backward_pair_adam(K, pair, st, co, &mut zad);
                    });
                },
            );
            let mut grad = vec![T::zero(); hk];
            g.bench_with_input(
                BenchmarkId::new(format!("unfused/{}", kern.path().name()), h),
                &h,
                |bch, _| {
                    bch.iter(|| {
                        kern.backward_pair_gradient(K, pair, &th, &mut grad, &mut zad);
                        let (c1, c2) = (T::one() - co.beta1, T::one() - co.beta2);
                        for (((t, mi), vi), &gi) in th.iter_mut().zip(&mut m).zip(&mut v).zip(&grad)
                        {
                            *mi = co.beta1 * *mi + c1 * gi;
                            *vi = co.beta2 * *vi + c2 * gi * gi;
                            *t = *t - co.rate * *mi / (vi.sqrt() + co.epsilon);
                        }
                    });
                },
            );
        }
        g.finish();
    }
}

fn gradient<T: Real>(t: usize, g: &mut [T]) {
    for (i, gi) in g.iter_mut().enumerate() {
        *gi = T::from((((i * 7 + t * 13) % 101) as f64 - 50.0) * 1e-3).unwrap();
    }
}

fn sizes() -> Vec<usize> {
    std::env::var("LODO_BENCH_N")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000, 1_000_000])
}

fn bench_step<T: Real>(c: &mut Criterion, ty: &str) {
    let mut group = c.benchmark_group(format!("step_{ty}"));
    group.sample_size(10);
    let best = dispatch::best();
    let config = || {
        LodoConfig::<T>::default()
            .with_alpha0(T::from(1e-3).unwrap())
            .unwrap()
    };
    for n in sizes() {
        group.throughput(Throughput::Elements(n as u64));
        let mut g = vec![T::zero(); n];
        let mut x = vec![T::zero(); n];
        let mut t = 0;
        {
            let mut lodo = Lodo::<T>::new(n, config(), 1).unwrap();
            for path in [best, Path::Reference] {
                dispatch::force(path).unwrap();
                group.bench_with_input(
                    BenchmarkId::new(format!("lodo/{}", path.name()), n),
                    &n,
                    |b, _| {
                        b.iter(|| {
                            t += 1;
                            gradient(t % 17, &mut g);
                            lodo.step(black_box(&mut x), black_box(&g)).unwrap();
                        });
                    },
                );
            }
        }
        dispatch::force(best).unwrap();
        let mut adam = Adam::<T>::new(n, T::from(1e-3).unwrap()).unwrap();
        group.bench_with_input(BenchmarkId::new("adam", n), &n, |b, _| {
            b.iter(|| {
                t += 1;
                gradient(t % 17, &mut g);
                adam.step(black_box(&mut x), black_box(&g)).unwrap();
            });
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_kernels::<f32>(c, "f32");
    bench_kernels::<f64>(c, "f64");
    bench_step::<f32>(c, "f32");
    bench_step::<f64>(c, "f64");
}

criterion_group! {
    name = kernel_benches;
    config = Criterion::default().without_plots();
    targets = benches
}
criterion_main!(kernel_benches);
