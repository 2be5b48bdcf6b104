//! The MNIST CNN: parameter count, forward against a plain reference written as the authors'
//! TensorFlow graph reads, backward against central finite differences (f64), kernels, and
//! thread-count independence; the batched fast path against the per-example reference.

use lodo_bench::mnist::kernels::{self, atan_f32, atan_slope_f32};
use lodo_bench::mnist::net::{self, N_PARAMS, PIX, Query, SIDE};

/// A deterministic pseudo-random byte image (every pixel non-zero half the time).
fn image(seed: u64) -> Vec<u8> {
    let mut rng = lodo_core::random::Stream::new(seed);
    (0..PIX)
        .map(|_| {
            if rng.uniform() < 0.5 {
                0
            } else {
                rng.below(256) as u8
            }
        })
        .collect()
}

#[test]
fn parameter_count_is_the_papers() {
    assert_eq!(N_PARAMS, 94_696);
    let total: usize = net::tensors().iter().map(|t| t.1).sum();
    assert_eq!(total, 94_696);
    // Tensors tile the vector contiguously.
    let mut o = 0;
    for (off, len, _) in net::tensors() {
        assert_eq!(off, o);
        o += len;
    }
    assert_eq!(net::init::<f32>(0).len(), 94_696);
}

#[test]
fn init_std_is_one_over_sqrt_fan_in_plus_one() {
    let p = net::init::<f64>(7);
    // The largest tensors: block W2 (120×20, fan-in 120) and the dense W (20×256, fan-in 20).
    for (off, len, fan_in) in net::tensors() {
        if len < 2000 {
            continue;
        }
        let s: f64 = p[off..off + len].iter().map(|v| v * v).sum::<f64>() / len as f64;
        let want = 1.0 / (fan_in as f64 + 1.0);
        // Sample variance of n Gaussians: relative std √(2/n) ≤ 0.032 for n ≥ 2000; 5σ.
        assert!(
            (s / want - 1.0).abs() < 0.16,
            "tensor at {off}: var {s}, want {want}"
        );
    }
}

#[test]
fn features_match_the_authors_preprocess() {
    let img = image(1);
    let mut f = vec![0.0f64; PIX * 5];
    let (r, c) = (10, 5);
    net::features(&img, r, c, &mut f);
    for i in 0..SIDE {
        for j in 0..SIDE {
            let p = i * SIDE + j;
            let v = i < r || (i == r && j < c);
            let want = [
                if v { f64::from(img[p]) / 256.0 } else { 0.0 },
                if j <= c { 1.0 } else { -1.0 },
                if v { 1.0 } else { -1.0 },
                i as f64 / 28.0 * 2.0 - 1.0,
                j as f64 / 28.0 * 2.0 - 1.0,
            ];
            for k in 0..5 {
                assert_eq!(
                    f[p * 5 + k].to_bits(),
                    want[k].to_bits(),
                    "pixel {p} feature {k}"
                );
            }
        }
    }
}

/// The authors' graph, written index by index (NHWC, TF semantics) in f64.
fn reference_logits(params: &[f64], img: &[u8], r: usize, c: usize) -> Vec<f64> {
    let mut feats = vec![0.0; PIX * 5];
    net::features(img, r, c, &mut feats);
    let mut off = 0;
    let mut take = |n: usize| {
        let s = &params[off..off + n];
        off += n;
        s.to_vec()
    };
    // conv2d 1×1 'SAME' with filter (1,1,ci,co) + bias
    let conv = |x: &[f64], side: usize, ci: usize, co: usize, w: &[f64], b: &[f64]| {
        let mut y = vec![0.0; side * side * co];
        for p in 0..side * side {
            for o in 0..co {
                let mut s = b[o];
                for i in 0..ci {
                    s += x[p * ci + i] * w[i * co + o];
                }
                y[p * co + o] = s;
            }
        }
        y
    };
    let (ws, bs) = (take(100), take(20));
    let mut x = conv(&feats, 28, 5, 20, &ws, &bs);
    let mut side = 28;
    for _stage in 0..5 {
        for _blk in 0..4 {
            let (w1, b1, k, bd, w2, b2) = (
                take(800),
                take(40),
                take(1080),
                take(120),
                take(2400),
                take(20),
            );
            let a1: Vec<f64> = conv(&x, side, 20, 40, &w1, &b1)
                .iter()
                .map(|v| v.atan())
                .collect();
            // depthwise_conv2d, filter (3,3,40,3), output channel c*3+m, zero 'SAME' padding
            let mut z2 = vec![0.0; side * side * 120];
            for yy in 0..side as isize {
                for xx in 0..side as isize {
                    for ch in 0..40 {
                        for m in 0..3 {
                            let mut s = bd[ch * 3 + m];
                            for t in 0..3isize {
                                for u in 0..3isize {
                                    let (sy, sx) = (yy + t - 1, xx + u - 1);
                                    if sy < 0
                                        || sx < 0
                                        || sy >= side as isize
                                        || sx >= side as isize
                                    {
                                        continue;
                                    }
                                    let q = sy as usize * side + sx as usize;
                                    s += a1[q * 40 + ch]
                                        * k[((t * 3 + u) as usize * 40 + ch) * 3 + m];
                                }
                            }
                            z2[(yy as usize * side + xx as usize) * 120 + ch * 3 + m] = s;
                        }
                    }
                }
            }
            let a2: Vec<f64> = z2.iter().map(|v| v.atan()).collect();
            let y = conv(&a2, side, 120, 20, &w2, &b2);
            x = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        }
        // avg_pool2d 2×2 stride 2 'SAME': pad at the end, divide by the valid count
        let so = side.div_ceil(2);
        let mut pooled = vec![0.0; so * so * 20];
        for oy in 0..so {
            for ox in 0..so {
                for ch in 0..20 {
                    let (mut s, mut n) = (0.0, 0.0);
                    for iy in 2 * oy..2 * oy + 2 {
                        for ix in 2 * ox..2 * ox + 2 {
                            if iy < side && ix < side {
                                s += x[(iy * side + ix) * 20 + ch];
                                n += 1.0;
                            }
                        }
                    }
                    pooled[(oy * so + ox) * 20 + ch] = s / n;
                }
            }
        }
        x = pooled;
        side = so;
    }
    assert_eq!(side, 1);
    let (wd, bd) = (take(5120), take(256));
    (0..256)
        .map(|o| bd[o] + (0..20).map(|i| wd[i * 256 + o] * x[i]).sum::<f64>())
        .collect()
}

#[test]
fn forward_matches_the_reference_graph() {
    let params = net::init::<f64>(3);
    let w = net::Prepared::new(&params);
    let mut tape = net::Tape::<f64>::new();
    for (seed, r, c) in [(1, 0, 0), (2, 13, 7), (3, 27, 27)] {
        let img = image(seed);
        tape.forward(&w, &img, r, c);
        let want = reference_logits(&params, &img, r, c);
        for (k, (&a, &b)) in tape.logits().iter().zip(&want).enumerate() {
            // Same operations in a different summation order: 1e3·ε relative.
            assert!(
                (a - b).abs() <= 1e3 * f64::EPSILON * b.abs().max(1.0),
                "logit {k}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn f32_forward_tracks_f64() {
    let p64 = net::init::<f64>(4);
    let p32: Vec<f32> = p64.iter().map(|&v| v as f32).collect();
    let img = image(9);
    let (w64, w32) = (net::Prepared::new(&p64), net::Prepared::new(&p32));
    let (mut t64, mut t32) = (net::Tape::<f64>::new(), net::Tape::<f32>::new());
    t64.forward(&w64, &img, 20, 3);
    t32.forward(&w32, &img, 20, 3);
    for (&a, &b) in t32.logits().iter().zip(t64.logits()) {
        // ~10⁴ roundings of relative size 6e−8 through 22 layers: 1e−4 absolute on O(1) logits.
        assert!((f64::from(a) - b).abs() < 1e-4, "{a} vs {b}");
    }
}

fn batch() -> (Vec<u8>, Vec<Query>) {
    let mut images = image(11);
    images.extend(image(12));
    let q = vec![
        Query {
            image: 0,
            row: 14,
            col: 9,
        },
        Query {
            image: 1,
            row: 27,
            col: 26,
        },
        Query {
            image: 1,
            row: 3,
            col: 0,
        },
    ];
    (images, q)
}

#[test]
fn gradient_matches_central_differences_f64() {
    let (images, q) = batch();
    let mut params = net::init::<f64>(5);
    let mut g = vec![0.0; N_PARAMS];
    let l0 = net::loss_grad(&params, &images, &q, &mut g);
    assert!(l0.is_finite());
    let mut rng = lodo_core::random::Stream::new(99);
    let h = 1e-5;
    // One random entry of every tensor (weights and biases of every layer).
    for (off, len, _) in net::tensors() {
        let i = off + rng.below(len as u64) as usize;
        let x0 = params[i];
        params[i] = x0 + h;
        let lp = net::loss_grad(&params, &images, &q, &mut vec![0.0; N_PARAMS]);
        params[i] = x0 - h;
        let lm = net::loss_grad(&params, &images, &q, &mut vec![0.0; N_PARAMS]);
        params[i] = x0;
        let fd = (lp - lm) / (2.0 * h);
        // Central-difference error O(h²·|f'''|) ≈ 1e−10 plus rounding ε·|L|/h ≈ 1e−10.
        assert!(
            (fd - g[i]).abs() <= 1e-7 + 1e-6 * g[i].abs(),
            "param {i}: fd {fd} vs analytic {}",
            g[i]
        );
    }
    // A directional derivative along a random direction covers every parameter at once.
    let v: Vec<f64> = (0..N_PARAMS).map(|_| rng.gaussian()).collect();
    let shift = |s: f64| -> Vec<f64> { params.iter().zip(&v).map(|(p, d)| p + s * d).collect() };
    let lp = net::loss_grad(&shift(h), &images, &q, &mut vec![0.0; N_PARAMS]);
    let lm = net::loss_grad(&shift(-h), &images, &q, &mut vec![0.0; N_PARAMS]);
    let fd = (lp - lm) / (2.0 * h);
    let an: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
    assert!(
        (fd - an).abs() <= 1e-6 * an.abs().max(1.0),
        "directional: fd {fd} vs {an}"
    );
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let mut images = Vec::new();
    for s in 0..4 {
        images.extend(image(20 + s));
    }
    let q: Vec<Query> = (0..40)
        .map(|i| Query {
            image: (i % 4) as u32,
            row: (i * 7 % 28) as u8,
            col: (i * 11 % 28) as u8,
        })
        .collect();
    let params = net::init::<f32>(6);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut g = vec![0.0f32; N_PARAMS];
            let l = net::loss_grad(&params, &images, &q, &mut g);
            (l, g)
        })
    };
    let (l1, g1) = run(1);
    let (l3, g3) = run(3);
    assert_eq!(l1.to_bits(), l3.to_bits());
    assert!(g1.iter().zip(&g3).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn atan_f32_is_accurate() {
    let mut worst = 0.0f64;
    let mut x = -1e4f64;
    while x < 1e4 {
        let xf = x as f32;
        let e = (f64::from(atan_f32(xf)) - f64::from(xf).atan()).abs();
        worst = worst.max(e);
        x += if x.abs() < 10.0 { 1e-3 } else { 0.7 };
    }
    // Cephes atanf: about 2 ulp of π/2 (2.4e−7) at worst.
    assert!(worst < 3e-7, "max abs error {worst}");
    assert!((atan_f32(f32::INFINITY) - std::f32::consts::FRAC_PI_2).abs() < 1e-7);
    assert!((atan_f32(f32::NEG_INFINITY) + std::f32::consts::FRAC_PI_2).abs() < 1e-7);
    assert!(atan_f32(f32::NAN).is_nan());
    assert_eq!(atan_f32(-0.0).to_bits(), (-0.0f32).to_bits());
}

#[test]
fn atan_slope_f32_is_accurate() {
    let (mut worst_a, mut worst_s) = (0.0f64, 0.0f64);
    let mut x = -1e4f64;
    while x < 1e4 {
        let xf = x as f32;
        let (a, s) = atan_slope_f32(xf);
        let x64 = f64::from(xf);
        worst_a = worst_a.max((f64::from(a) - x64.atan()).abs());
        let want = 1.0 / (1.0 + x64 * x64);
        worst_s = worst_s.max((f64::from(s) - want).abs() / want);
        x += if x.abs() < 10.0 { 1e-3 } else { 0.7 };
    }
    // As `atan_f32`; the slope: a few roundings (s, den·s, 1/·, den·q) of ε/2 each.
    assert!(worst_a < 3e-7, "atan: max abs error {worst_a}");
    assert!(
        worst_s < 4.0 * f64::from(f32::EPSILON),
        "slope: max rel error {worst_s}"
    );
    for big in [1e13f32, 3e38, f32::INFINITY] {
        let (a, s) = atan_slope_f32(big);
        assert_eq!(a.to_bits(), std::f32::consts::FRAC_PI_2.to_bits());
        assert!(s > 0.0 && s <= 1.01e-24, "{s}");
        let (a, _) = atan_slope_f32(-big);
        assert_eq!(a.to_bits(), (-std::f32::consts::FRAC_PI_2).to_bits());
    }
    let (a, s) = atan_slope_f32(f32::NAN);
    assert!(a.is_nan() && s.is_nan());
    assert_eq!(atan_slope_f32(-0.0).0.to_bits(), (-0.0f32).to_bits());
    assert_eq!(atan_slope_f32(0.0).1.to_bits(), 1.0f32.to_bits());
}

#[test]
fn pooling_same_divides_by_valid_cells() {
    // 3×3 single channel → 2×2: windows of 4, 2, 2 and 1 cells.
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let mut y = vec![f64::NAN; 4];
    kernels::avg_pool::<f64, 1>(&x, &mut y, 3);
    let want: [f64; 4] = [
        (1.0 + 2.0 + 4.0 + 5.0) / 4.0,
        (3.0 + 6.0) / 2.0,
        (7.0 + 8.0) / 2.0,
        9.0,
    ];
    for (a, b) in y.iter().zip(want) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
    // Adjoint: ⟨pool(x), d⟩ = ⟨x, poolᵀ(d)⟩.
    let d = [0.3, -1.1, 2.0, 0.7];
    let mut dx = vec![f64::NAN; 9];
    kernels::avg_pool_backward::<f64, 1>(&d, &mut dx, 3);
    let lhs: f64 = y.iter().zip(d).map(|(a, b)| a * b).sum();
    let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
    assert!((lhs - rhs).abs() < 1e-14);
}

/// Deterministic values in [−1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = lodo_core::random::Stream::new(seed);
    (0..n).map(|_| 2.0 * rng.uniform() - 1.0).collect()
}

#[test]
fn gemm_paths_match_the_plain_loops() {
    // 784 positions take the matrixmultiply path, 16 the loop path (also checked to be itself).
    for p in [784usize, 49, 16] {
        let x = values(p * 20, 1);
        let w = values(20 * 40, 2);
        let b = values(40, 3);
        let (mut y, mut r) = (vec![f64::NAN; p * 40], vec![f64::NAN; p * 40]);
        kernels::conv1x1::<f64, 20, 40>(&x, &w, &b, &mut y);
        kernels::conv1x1_loop::<f64, 20, 40>(&x, &w, &b, &mut r);
        // 20-term dot products of O(1) values: 64·ε.
        assert!(
            y.iter()
                .zip(&r)
                .all(|(a, b)| (a - b).abs() <= 64.0 * f64::EPSILON),
            "conv p={p}"
        );

        let dz = values(p * 40, 4);
        let w1t = values(40 * 20, 5);
        let (mut y, mut r) = (values(p * 20, 6), values(p * 20, 6));
        kernels::conv1x1_acc::<f64, 40, 20>(&dz, &w1t, &mut y);
        kernels::conv1x1_acc_loop::<f64, 40, 20>(&dz, &w1t, &mut r);
        assert!(
            y.iter()
                .zip(&r)
                .all(|(a, b)| (a - b).abs() <= 64.0 * f64::EPSILON),
            "acc p={p}"
        );

        let (mut dw, mut rw) = (values(800, 7), values(800, 7));
        let (mut db, mut rb) = (values(40, 8), values(40, 8));
        kernels::outer_acc::<f64, 20, 40>(&x, &dz, &mut dw, &mut db);
        kernels::outer_acc_loop::<f64, 20, 40>(&x, &dz, &mut rw, &mut rb);
        // p-term sums: 4·p·ε.
        let tol = 4.0 * p as f64 * f64::EPSILON;
        assert!(
            dw.iter().zip(&rw).all(|(a, b)| (a - b).abs() <= tol),
            "outer p={p}"
        );
        assert!(
            db.iter().zip(&rb).all(|(a, b)| (a - b).abs() <= tol),
            "bias p={p}"
        );
        // Against the formula itself.
        let i = p / 2;
        let want: f64 = b[7] + (0..20).map(|k| x[i * 20 + k] * w[k * 40 + 7]).sum::<f64>();
        let mut y = vec![f64::NAN; p * 40];
        kernels::conv1x1::<f64, 20, 40>(&x, &w, &b, &mut y);
        assert!((y[i * 40 + 7] - want).abs() <= 64.0 * f64::EPSILON);
    }
}

/// Queries over `images` (`count` of them): two full chunks and a partial one for 19.
fn queries(count: usize, n_images: usize) -> Vec<Query> {
    (0..count)
        .map(|i| Query {
            image: (i % n_images) as u32,
            row: (i * 7 % 28) as u8,
            col: (i * 11 % 28) as u8,
        })
        .collect()
}

#[test]
fn batched_forward_matches_the_reference_graph() {
    use lodo_bench::mnist::batched::{Weights, Workspace};
    let params = net::init::<f64>(3);
    let w = Weights::new(&params);
    let mut ws = Workspace::<f64>::with_examples(3);
    let mut images = Vec::new();
    for s in 1..=3 {
        images.extend(image(s));
    }
    let q = [(0, 0, 0), (1, 13, 7), (2, 27, 27)].map(|(i, r, c)| Query {
        image: i,
        row: r,
        col: c,
    });
    ws.forward(&w, &images, &q);
    for (e, qq) in q.iter().enumerate() {
        let i = qq.image as usize;
        let want = reference_logits(
            &params,
            &images[i * PIX..(i + 1) * PIX],
            qq.row.into(),
            qq.col.into(),
        );
        for (k, (&a, &b)) in ws.logits()[e * 256..(e + 1) * 256]
            .iter()
            .zip(&want)
            .enumerate()
        {
            // As `forward_matches_the_reference_graph`: 1e3·ε relative.
            assert!(
                (a - b).abs() <= 1e3 * f64::EPSILON * b.abs().max(1.0),
                "example {e} logit {k}: {a} vs {b}"
            );
        }
    }
}

/// Largest `|a − b|` over the entries, and the largest `|b|`.
fn max_diff<T: Into<f64> + Copy>(a: &[T], b: &[T]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(d, m), (&x, &y)| {
        let (x, y): (f64, f64) = (x.into(), y.into());
        (d.max((x - y).abs()), m.max(y.abs()))
    })
}

#[test]
fn batched_loss_and_gradient_match_the_reference() {
    let mut images = Vec::new();
    for s in 0..5 {
        images.extend(image(40 + s));
    }
    let q = queries(19, 5);
    let p64 = net::init::<f64>(8);
    let (mut g, mut r) = (vec![0.0f64; N_PARAMS], vec![0.0f64; N_PARAMS]);
    let l = net::loss_grad(&p64, &images, &q, &mut g);
    let lr = net::loss_grad_reference(&p64, &images, &q, &mut r);
    // Same sums in another order, with FMAs: ~10⁴ roundings of relative size ε on each entry.
    assert!(
        (l - lr).abs() <= 1e4 * f64::EPSILON * lr.abs(),
        "{l} vs {lr}"
    );
    let (d, m) = max_diff(&g, &r);
    assert!(
        d <= 1e4 * f64::EPSILON * m,
        "f64 gradient: max diff {d}, max {m}"
    );
    // f32: the same bound at f32's ε.
    let p32: Vec<f32> = p64.iter().map(|&v| v as f32).collect();
    let (mut g, mut r) = (vec![0.0f32; N_PARAMS], vec![0.0f32; N_PARAMS]);
    let l = net::loss_grad(&p32, &images, &q, &mut g);
    let lr = net::loss_grad_reference(&p32, &images, &q, &mut r);
    assert!(
        (l - lr).abs() <= 1e4 * f32::EPSILON * lr.abs(),
        "{l} vs {lr}"
    );
    let (d, m) = max_diff(&g, &r);
    assert!(
        d <= 1e4 * f64::from(f32::EPSILON) * m,
        "f32 gradient: max diff {d}, max {m}"
    );
    // The forward-only path gives the same losses.
    let s = net::loss_sum(&p64, &images, &q);
    let want = net::loss_grad_reference(&p64, &images, &q, &mut vec![0.0; N_PARAMS]) * 19.0;
    assert!(
        (s - want).abs() <= 1e4 * f64::EPSILON * want,
        "{s} vs {want}"
    );
}

#[test]
fn relayout_is_a_permutation_and_round_trips() {
    use lodo_bench::mnist::batched::{channel, relayout};
    let mut seen = [false; 120];
    for j in 0..120 {
        assert!(!seen[channel(j)]);
        seen[channel(j)] = true;
    }
    // TF channel 3c + m sits at 40m + c.
    assert_eq!(channel(3 * 7 + 2), 40 * 2 + 7);
    let p = net::init::<f32>(2);
    let (mut q, mut back) = (vec![0.0f32; N_PARAMS], vec![0.0f32; N_PARAMS]);
    relayout(&p, &mut q, true);
    relayout(&q, &mut back, false);
    assert!(p.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(p.iter().zip(&q).any(|(a, b)| a.to_bits() != b.to_bits()));
    let mut sorted_p: Vec<u32> = p.iter().map(|v| v.to_bits()).collect();
    let mut sorted_q: Vec<u32> = q.iter().map(|v| v.to_bits()).collect();
    sorted_p.sort_unstable();
    sorted_q.sort_unstable();
    assert_eq!(sorted_p, sorted_q);
}

/// Distance of `got` from `want` in units of the last place of `f32` at `want` (the spacing of
/// `f32` in `want`'s binade; `2⁻¹⁴⁹` among the subnormals).
fn ulps_f32(got: f32, want: f64) -> f64 {
    let a = want.abs();
    let e = if a == 0.0 {
        -126
    } else {
        (((a.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(-126)
    };
    (f64::from(got) - want).abs() / 2f64.powi(e - 23)
}

/// Largest errors, in ulp of `f32`, of an `atan` and a slope `1/(1+x²)` over every 509th
/// bit pattern of `f32` (both signs, subnormals, every binade, the NaNs and ±∞ included).
/// The slope is compared where it is not clamped (`|x| ≤ 10¹²`; beyond, it is checked by
/// [`atan_slope_f32_is_accurate`]).
fn atan_ulp_sweep(f: impl Fn(f32) -> (f32, f32)) -> (f64, f64) {
    let (mut worst_a, mut worst_s) = (0.0f64, 0.0f64);
    for bits in (0..=u32::MAX).step_by(509).chain([
        0,
        0x8000_0000,
        1,
        f32::INFINITY.to_bits(),
        f32::NEG_INFINITY.to_bits(),
    ]) {
        let x = f32::from_bits(bits);
        let (a, s) = f(x);
        if x.is_nan() {
            assert!(a.is_nan() && s.is_nan(), "{bits:#x}");
            continue;
        }
        let x64 = f64::from(x);
        worst_a = worst_a.max(ulps_f32(a, x64.atan()));
        assert_eq!(a.is_sign_negative(), x.is_sign_negative(), "{bits:#x}");
        if x64.abs() <= 1e12 {
            worst_s = worst_s.max(ulps_f32(s, 1.0 / x64.mul_add(x64, 1.0)));
        }
    }
    (worst_a, worst_s)
}

#[test]
fn atan_f32_ulp_sweep() {
    // Before the shared reduction and the multiply-add polynomial of `atan_slope_f32` (Dec 7),
    // this sweep gave 3.54 ulp (atan) and 2.74 ulp (slope); since, the same. Over every third
    // positive `f32` (the functions are odd / even): 3.971 → 3.957 and 2.884 → 2.884 ulp.
    // `atan_f32` (separate multiplies and adds, the same values as before): 2.69 ulp here,
    // 2.831 over every third positive `f32`.
    let (a, s) = atan_ulp_sweep(atan_slope_f32);
    assert!(a < 4.0 && s < 3.0, "atan_slope_f32: {a} ulp, slope {s} ulp");
    let (a, _) = atan_ulp_sweep(|x| (atan_f32(x), 1.0 / x.mul_add(x, 1.0)));
    assert!(a < 3.0, "atan_f32: {a} ulp");
}
