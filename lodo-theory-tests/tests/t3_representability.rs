//! T3 (THEORY.md): representability of the LODO network — structural mixing depth and fits of
//! `G(θ)` to families of target SPD matrices.

// Index loops mirror the formulas.
#![allow(clippy::needless_range_loop)]

use faer::Mat;
use lodo_core::random::Stream;
use lodo_core::{BlockConfig, BlockPreconditioner, PermutationFamily, Preconditioner};
use lodo_theory_tests::fit::{Metrics, fit, metrics};
use lodo_theory_tests::linalg::{frob, from_eigen, sym_eigen};
use lodo_theory_tests::mixing::{log_lower_bound, mixing_depth};
use lodo_theory_tests::network::dense_from_core;
use lodo_theory_tests::seed;

fn permutations(
    n: usize,
    k: usize,
    layers: usize,
    seed: u64,
) -> (usize, Vec<lodo_core::Permutation>) {
    let config = BlockConfig::<f32>::default()
        .with_block_size(k)
        .and_then(|c| c.with_layers(layers))
        .expect("valid");
    let p =
        BlockPreconditioner::<f32>::from_config(n, &config, &mut Stream::new(seed)).expect("valid");
    (p.hidden(), p.permutations().expect("memory"))
}

/// The predicted excess of the mixing depth over `⌈log_k h⌉` (THEORY.md T3-mixing):
/// `⌈log_k log₂(n·h)⌉ + 1`, the doubly-exponential clean-up of the last missing entries.
fn excess_bound(n: usize, h: usize, k: usize) -> usize {
    let target = ((n * h) as f64).log2();
    let mut j = 0;
    let mut reach = 1.0;
    while reach < target {
        reach *= k as f64;
        j += 1;
    }
    j + 1
}

/// Measured mixing depth `D` for each `(n, k)` against `⌈log_k h⌉ ≤ D ≤ ⌈log_k h⌉ + excess`.
fn mixing_table(ns: &[usize], ks: &[usize], seeds: u64) {
    for &k in ks {
        for &n in ns {
            let h = k * (2 * n).div_ceil(k);
            let lower = log_lower_bound(h, k);
            for s in 0..seeds {
                let (hh, perms) = permutations(n, k, lower + 12, seed() ^ ((s + 1) * 0x9e37));
                assert_eq!(hh, h);
                let d = mixing_depth(&perms, n, k).expect("dense within ⌈log_k h⌉ + 12 layers");
                let max_excess = excess_bound(n, h, k);
                eprintln!(
                    "n = {n}, k = {k}, h = {h}: depth {d}, ⌈log_k h⌉ = {lower}, excess {} (bound {max_excess})",
                    d - lower
                );
                assert!(d >= lower, "denser than the support-growth bound allows");
                assert!(
                    d <= lower + max_excess,
                    "excess {} > {max_excess}",
                    d - lower
                );
            }
        }
    }
}

#[test]
fn t3_mixing_depth_is_log_k_h_plus_constant() {
    mixing_table(&[10, 100, 1000, 10_000], &[2, 3, 4, 8], 2);
}

/// `cargo test -p lodo-theory-tests --test t3_representability -- --ignored --nocapture t3_mixing_long`
#[test]
#[ignore = "long: n up to 10⁵, 5 seeds"]
fn t3_mixing_long() {
    mixing_table(&[10, 100, 1000, 10_000, 100_000], &[2, 4, 8], 5);
}

#[test]
fn t3_mixing_needs_k_at_least_two() {
    // k = 1: every B_l is diagonal, A·Π is a scaled partial permutation; never dense for n ≥ 2.
    let (_, perms) = permutations(5, 1, 20, seed());
    assert_eq!(mixing_depth(&perms, 5, 1), None);
}

/// `W = X Xᵀ/m + s I` with `X` a `k × m` Gaussian matrix.
fn wishart(k: usize, m: usize, shift: f64, rng: &mut Stream) -> Mat<f64> {
    let x = Mat::from_fn(k, m, |_, _| rng.gaussian());
    let mut w = &x * x.transpose() * faer::Scale(1.0 / m as f64);
    for i in 0..k {
        w[(i, i)] += shift;
    }
    w
}

fn kron(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    let (p, q) = (a.nrows(), b.nrows());
    Mat::from_fn(p * q, p * q, |i, j| a[(i / q, j / q)] * b[(i % q, j % q)])
}

/// Scales `t` to trace `n` (mean eigenvalue 1, the scale of `G = α₀ I` with `α₀ = 1`).
fn normalise(t: Mat<f64>) -> Mat<f64> {
    let n = t.nrows();
    let tr: f64 = (0..n).map(|i| t[(i, i)]).sum();
    &t * faer::Scale(n as f64 / tr)
}

/// The target families of T3 for dimension `n = k^d` and block size `k`.
fn targets(n: usize, k: usize, rng: &mut Stream) -> Vec<(&'static str, Mat<f64>)> {
    // Kronecker product of k×k SPD factors (n must be a power of k).
    let mut kr = wishart(k, k, 0.5, rng);
    while kr.nrows() < n {
        kr = kron(&kr, &wishart(k, k, 0.5, rng));
    }
    assert_eq!(kr.nrows(), n, "n must be a power of k");
    // Block-diagonal SPD (k×k blocks) in a random permuted basis.
    let perm = rng_perm(n, rng);
    let mut bd = Mat::<f64>::zeros(n, n);
    for b in 0..n / k {
        let w = wishart(k, k, 0.5, rng);
        for r in 0..k {
            for c in 0..k {
                bd[(perm[b * k + r], perm[b * k + c])] = w[(r, c)];
            }
        }
    }
    // I + low rank (rank 2).
    let u = Mat::from_fn(n, 2, |_, _| rng.gaussian() * (2.0 / n as f64).sqrt());
    let mut lr = &u * u.transpose();
    for i in 0..n {
        lr[(i, i)] += 1.0;
    }
    // (L + I)⁻¹ for a ring with n/2 random chords.
    let mut lap = Mat::<f64>::zeros(n, n);
    let edge = |a: usize, b: usize, lap: &mut Mat<f64>| {
        if a != b {
            lap[(a, b)] -= 1.0;
            lap[(b, a)] -= 1.0;
            lap[(a, a)] += 1.0;
            lap[(b, b)] += 1.0;
        }
    };
    for i in 0..n {
        edge(i, (i + 1) % n, &mut lap);
    }
    for _ in 0..n / 2 {
        let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
        edge(a, b, &mut lap);
    }
    let (vals, q) = sym_eigen(&lap);
    let inv: Vec<f64> = vals.iter().map(|v| 1.0 / (v + 1.0)).collect();
    let li = from_eigen(&q, &inv);
    // Generic Wishart with an n × 2n Gaussian factor.
    let wi = wishart(n, 2 * n, 0.0, rng);
    vec![
        ("kronecker", normalise(kr)),
        ("perm-block-diag", normalise(bd)),
        ("identity+low-rank", normalise(lr)),
        ("laplacian-inverse", normalise(li)),
        ("wishart", normalise(wi)),
    ]
}

fn rng_perm(n: usize, rng: &mut Stream) -> Vec<usize> {
    rng.permutation(n).into_iter().map(|x| x as usize).collect()
}

/// Degrees of freedom of `θ ↦ G(θ)` (THEORY.md T3): the live weights `N·h·k − (h−n)·k` (rigorous
/// upper bound) and the gauge-reduced count `− (N−1)·h − h(k−1)/2` (heuristic).
fn dof(n: usize, k: usize, layers: usize) -> (usize, usize) {
    let h = k * (2 * n).div_ceil(k);
    let live = layers * h * k - (h - n) * k;
    (
        live,
        live.saturating_sub((layers - 1) * h + h * (k - 1) / 2),
    )
}

/// Top-`r` eigenspace used for the principal angles: the target's rank-2 part for
/// `identity+low-rank` (its other eigenvalue is `n−2`-fold degenerate), else 3.
fn top_r(name: &str) -> usize {
    if name == "identity+low-rank" { 2 } else { 3 }
}

/// Fits every family at each `N` (Adam, `steps` steps at rate 1e−2) and returns
/// `(family, N, metrics)`.
fn fit_table(
    n: usize,
    k: usize,
    layers: &[usize],
    steps: usize,
) -> Vec<(&'static str, usize, Metrics)> {
    fit_table_of(PermutationFamily::Random, n, k, layers, steps)
}

/// [`fit_table`] with the layer permutations drawn from `family`.
fn fit_table_of(
    family: PermutationFamily,
    n: usize,
    k: usize,
    layers: &[usize],
    steps: usize,
) -> Vec<(&'static str, usize, Metrics)> {
    let mut out = Vec::new();
    let ts = targets(n, k, &mut Stream::new(seed() ^ 0x7a));
    for &nl in layers {
        let (live, gauge) = dof(n, k, nl);
        eprintln!(
            "n = {n}, k = {k}, N = {nl}: live weights {live}, gauge-reduced {gauge}, n(n+1)/2 = {}",
            n * (n + 1) / 2
        );
        for (name, t) in &ts {
            let config = BlockConfig::<f64>::default()
                .with_block_size(k)
                .and_then(|c| c.with_layers(nl))
                .and_then(|c| c.with_permutations(family))
                .expect("valid");
            let mut p = BlockPreconditioner::<f64>::from_config(
                n,
                &config,
                &mut Stream::new(seed() ^ 0x7b),
            )
            .expect("valid");
            let loss = fit(&mut p, t, steps, 1e-2);
            let g = dense_from_core(&p);
            let m = metrics(&g, t, top_r(name));
            eprintln!(
                "  {name:18} rel err {:.3e} eig rel err {:.3e} top cos {:.4?}",
                m.rel_err, m.eig_rel_err, m.top_cosines
            );
            // The loss the optimiser saw is the squared relative error of the materialised G.
            assert!((m.rel_err * m.rel_err - loss).abs() <= 1e-9 + 1e-6 * loss);
            out.push((*name, nl, m));
        }
    }
    out
}

fn get<'a>(table: &'a [(&'static str, usize, Metrics)], name: &str, nl: usize) -> &'a Metrics {
    &table
        .iter()
        .find(|r| r.0 == name && r.1 == nl)
        .expect("fitted")
        .2
}

/// The expectations stated in THEORY.md T3-families for `n = 16`, `k = 4` (`h = 32`):
/// `N = 1` cannot fit any family (G is block-diagonal in `P₁`'s basis, 64 live weights < 136);
/// `N = 2` cannot fit a generic Wishart target (gauge-reduced count 112 < 136);
/// `N = 4` (count 304, depth ≥ mixing depth 3) fits every family.
#[test]
fn t3_families_small() {
    let names = [
        "kronecker",
        "perm-block-diag",
        "identity+low-rank",
        "laplacian-inverse",
        "wishart",
    ];
    let table = fit_table(16, 4, &[1, 2, 4], 2000);
    for name in names {
        assert!(get(&table, name, 1).rel_err > 0.2, "{name} fitted at N = 1");
        let m4 = get(&table, name, 4);
        assert!(m4.rel_err < 1e-2, "{name} at N = 4: rel err {}", m4.rel_err);
        assert!(
            m4.eig_rel_err < 1e-2,
            "{name} at N = 4: eig rel err {}",
            m4.eig_rel_err
        );
        assert!(
            m4.top_cosines.iter().all(|&c| c > 0.99),
            "{name} at N = 4: {:?}",
            m4.top_cosines
        );
        assert!(get(&table, name, 2).rel_err < get(&table, name, 1).rel_err);
    }
    assert!(
        get(&table, "wishart", 2).rel_err > 0.1,
        "generic Wishart fitted below the dof count"
    );
}

/// Representability for each structured permutation family (issue 12), as `t3_families_small`
/// states it for random permutations: at `n = 16`, `k = 4`, `h = 32` (a multiple of `k² = 16`
/// and of `k·T = 32` for tiles of 8), `N = 4` fits every target family and `N = 1` none.
///
/// The fit keeps its best iterate ([`fit`]): with the last one, tiles of 8 ended at 1.07e−2 on
/// the Wishart target after 2000 steps and 4.9e−3 after 4000, random permutations at 5.6e−4
/// and 9.4e−3: fixed-rate Adam's noise near the threshold, not what the network represents.
#[test]
fn t3_families_small_for_each_permutation_family() {
    for family in [
        PermutationFamily::Shuffle,
        PermutationFamily::TiledShuffle { tile: 8 },
    ] {
        let table = fit_table_of(family, 16, 4, &[1, 4], 2000);
        for (name, _, _) in table.iter().filter(|r| r.1 == 4) {
            assert!(
                get(&table, name, 1).rel_err > 0.2,
                "{family:?}: {name} fitted at N = 1"
            );
            let m4 = get(&table, name, 4);
            assert!(
                m4.rel_err < 1e-2 && m4.top_cosines.iter().all(|&c| c > 0.99),
                "{family:?}: {name} at N = 4: rel err {}, top cos {:?}",
                m4.rel_err,
                m4.top_cosines
            );
        }
    }
}

/// `cargo test -p lodo-theory-tests --test t3_representability -- --ignored --nocapture t3_families_long`
#[test]
#[ignore = "long: n = 64, k ∈ {4, 8}, several N"]
fn t3_families_long() {
    let names = [
        "kronecker",
        "perm-block-diag",
        "identity+low-rank",
        "laplacian-inverse",
        "wishart",
    ];
    let sym = 64 * 65 / 2;
    for (k, layers) in [
        (4usize, &[1usize, 2, 4, 6, 8, 10][..]),
        (8, &[1, 2, 3, 4, 6][..]),
    ] {
        let table = fit_table(64, k, layers, 1500);
        for &nl in layers {
            let (_, count) = dof(64, k, nl);
            let w = get(&table, "wishart", nl).rel_err;
            // Well below the count: no fit; above it: a fit (THEORY.md T3-families, 1).
            if 4 * count < 3 * sym {
                assert!(
                    w > 0.05,
                    "k = {k}, N = {nl}: Wishart fitted (rel err {w}) with count {count}"
                );
            }
            if count > sym {
                assert!(
                    w < 1e-2,
                    "k = {k}, N = {nl}: Wishart not fitted (rel err {w}) with count {count}"
                );
            }
        }
        let deepest = *layers.last().expect("layers");
        for name in names {
            let m = get(&table, name, deepest);
            assert!(
                m.rel_err < 5e-2,
                "{name}, k = {k}, N = {deepest}: rel err {}",
                m.rel_err
            );
            assert!(
                m.top_cosines.iter().all(|&c| c > 0.99),
                "{name}: {:?}",
                m.top_cosines
            );
        }
    }
}

/// The fitting gradient (lodo-core's hypergradient assembled as in `fit::loss_and_grad`) against
/// central finite differences of the loss.
#[test]
fn t3_fit_gradient_matches_finite_differences() {
    let (n, k, nl) = (5, 2, 3);
    let config = BlockConfig::<f64>::default()
        .with_block_size(k)
        .and_then(|c| c.with_layers(nl))
        .expect("valid");
    let mut rng = Stream::new(seed() ^ 0xfd);
    let mut p = BlockPreconditioner::<f64>::from_config(n, &config, &mut rng).expect("valid");
    let mut ws = p.weights();
    for w in &mut ws {
        *w = 0.7 * rng.gaussian();
    }
    p.set_weights(&ws);
    let t = normalise(wishart(n, 2 * n, 0.1, &mut rng));
    let mut grad = vec![0.0; p.weight_count()];
    lodo_theory_tests::fit::loss_and_grad(&mut p, &t, &mut grad);
    let mut scratch = vec![0.0; grad.len()];
    let hstep = 1e-6;
    let mut worst: f64 = 0.0;
    for i in 0..grad.len() {
        let w0 = ws[i];
        ws[i] = w0 + hstep;
        p.set_weights(&ws);
        let lp = lodo_theory_tests::fit::loss_and_grad(&mut p, &t, &mut scratch);
        ws[i] = w0 - hstep;
        p.set_weights(&ws);
        let lm = lodo_theory_tests::fit::loss_and_grad(&mut p, &t, &mut scratch);
        ws[i] = w0;
        p.set_weights(&ws);
        let fd = (lp - lm) / (2.0 * hstep);
        let scale = grad[i].abs().max(fd.abs()).max(1e-3);
        worst = worst.max((fd - grad[i]).abs() / scale);
    }
    assert!(worst < 1e-5, "worst relative FD mismatch {worst:e}");
    let _ = frob(&t);
}

/// The layer permutations of a network of `layers` layers over `n` parameters, hidden width `h`,
/// block size `k`, drawn from `family`.
fn family_permutations(
    family: PermutationFamily,
    n: usize,
    h: usize,
    k: usize,
    layers: usize,
    seed: u64,
) -> Vec<lodo_core::Permutation> {
    let config = BlockConfig::<f32>::default()
        .with_block_size(k)
        .and_then(|c| c.with_layers(layers))
        .and_then(|c| c.with_hidden(h))
        .and_then(|c| c.with_permutations(family))
        .expect("valid");
    let p =
        BlockPreconditioner::<f32>::from_config(n, &config, &mut Stream::new(seed)).expect("valid");
    p.permutations().expect("memory")
}

/// T3 for the structured families (issue "streaming permutations"): the perfect shuffle reaches
/// the support-growth lower bound exactly when `h = k^d` — `d = ⌈log_k h⌉` layers make `A·Π`
/// structurally dense (an Omega network), for every `n ≤ h` — and one layer fewer does not.
#[test]
fn t3_shuffle_mixes_in_exactly_log_k_h_layers_when_h_is_a_power_of_k() {
    for (k, d) in [
        (2usize, 3u32),
        (2, 6),
        (2, 10),
        (3, 4),
        (3, 6),
        (4, 3),
        (4, 5),
        (8, 3),
    ] {
        let h = k.pow(d);
        assert_eq!(log_lower_bound(h, k), d as usize);
        for n in [1, h / 2, h] {
            let perms = family_permutations(PermutationFamily::Shuffle, n, h, k, d as usize + 3, 1);
            assert_eq!(
                mixing_depth(&perms, n, k),
                Some(d as usize),
                "k = {k}, h = {h}, n = {n}"
            );
        }
    }
}

/// Mixing depth of every family at its default width (`2n` rounded up to the family's
/// alignment: `k` for random, `k²` for the shuffle, `k·T` for tiles of `T`), against
/// `⌈log_k h⌉`: printed (`--nocapture`) and bounded as for random permutations.
#[test]
fn t3_mixing_depth_of_each_permutation_family() {
    for family in [
        PermutationFamily::Random,
        PermutationFamily::Shuffle,
        PermutationFamily::TiledShuffle { tile: 8 },
        PermutationFamily::TiledShuffle { tile: 64 },
    ] {
        for (n, k) in [(100usize, 4usize), (1000, 4), (1000, 2), (10_000, 4)] {
            let h = BlockConfig::<f32>::default()
                .with_block_size(k)
                .and_then(|c| c.with_permutations(family))
                .and_then(|c| c.hidden_for(n))
                .expect("valid");
            let lower = log_lower_bound(h, k);
            let perms = family_permutations(family, n, h, k, lower + 12, seed() ^ 0x51);
            let depth = mixing_depth(&perms, n, k);
            eprintln!(
                "{family:?}: n = {n}, k = {k}, h = {h}: depth {depth:?}, ⌈log_k h⌉ = {lower}"
            );
            let d = depth.expect("dense within ⌈log_k h⌉ + 12 layers");
            assert!(d >= lower);
            assert!(
                d <= lower + excess_bound(n, h, k),
                "{family:?}: excess {}",
                d - lower
            );
        }
    }
}
