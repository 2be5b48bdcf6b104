//! Structure of `G(θ)`: symmetric, positive semidefinite, `α₀·I` at initialisation, and the
//! structured mat-vec equal to the dense product `α₀ Πᵀ Aᵀ A Π` built from the same weights.

mod common;

use common::{Dense, DenseNetwork, Shaped, cast, is_positive_definite, rel_err, to_f64};
use lodo_core::random::Stream;
use lodo_core::{
    BlockConfig, BlockPreconditioner, Diagonal, DiagonalConfig, Global, GlobalConfig,
    PermutationFamily, Preconditioner, PreconditionerConfig, Real, Residual, ResidualConfig, lit,
};
use proptest::prelude::*;

fn block<T: Real>(
    n: usize,
    k: usize,
    layers: usize,
    alpha0: f64,
    seed: u64,
) -> BlockPreconditioner<T> {
    block_of::<T>(n, k, layers, alpha0, seed, PermutationFamily::Random)
}

/// [`block`] with its permutations drawn from `family`.
fn block_of<T: Real>(
    n: usize,
    k: usize,
    layers: usize,
    alpha0: f64,
    seed: u64,
    family: PermutationFamily,
) -> BlockPreconditioner<T> {
    let config = BlockConfig::shaped(k, layers, alpha0)
        .with_permutations(family)
        .unwrap();
    BlockPreconditioner::from_config(n, &config, &mut Stream::new(seed)).unwrap()
}

/// Every permutation family for block size `k`, with tiles of `k` to `5k` outputs.
fn family(k: usize) -> impl Strategy<Value = PermutationFamily> {
    prop_oneof![
        Just(PermutationFamily::Random),
        Just(PermutationFamily::Shuffle),
        (1usize..6).prop_map(move |t| PermutationFamily::TiledShuffle { tile: t * k }),
    ]
}

/// Replaces the weights by Gaussians of scale `s` (a generic, non-orthogonal θ).
fn randomize<T: Real, P: Preconditioner<T>>(p: &mut P, s: f64, seed: u64) {
    let mut rng = Stream::new(seed);
    let mut ws = p.weights();
    for w in &mut ws {
        *w = lit(s * rng.gaussian());
    }
    p.set_weights(&ws);
}

fn dense_of<T: Real, P: Preconditioner<T>>(p: &P) -> Dense {
    let n = p.dim();
    Dense {
        rows: n,
        cols: n,
        a: to_f64(&p.to_dense()),
    }
}

/// `G = α₀ I` at initialisation, to a few ε per layer (each orthogonal block is exact to ε).
fn identity_at_init<T: Real>(n: usize, k: usize, layers: usize, seed: u64) {
    let alpha0 = 0.37;
    let p = block::<T>(n, k, layers, alpha0, seed);
    let g = dense_of(&p);
    let eps = T::epsilon().to_f64().unwrap();
    let tol = 8.0 * eps * (2 * layers * k) as f64 * alpha0;
    for i in 0..n {
        for j in 0..n {
            let expect = if i == j { alpha0 } else { 0.0 };
            assert!(
                (g.at(i, j) - expect).abs() <= tol,
                "G[{i}][{j}] = {} (tol {tol})",
                g.at(i, j)
            );
        }
    }
}

/// Symmetric to rounding, and `G + δI` positive definite for `δ = c·ε·‖G‖`.
fn symmetric_psd<T: Real, P: Preconditioner<T>>(p: &P) {
    let g = dense_of(p);
    let n = g.rows;
    let eps = T::epsilon().to_f64().unwrap();
    let norm = g.max_abs() * n as f64;
    for i in 0..n {
        for j in 0..i {
            let d = (g.at(i, j) - g.at(j, i)).abs();
            assert!(d <= 64.0 * eps * norm, "asymmetry {d} at ({i},{j})");
        }
    }
    let mut shifted = g.clone();
    for i in 0..n {
        shifted.set(i, i, g.at(i, i) + 64.0 * eps * norm.max(f64::MIN_POSITIVE));
    }
    assert!(
        is_positive_definite(&shifted),
        "G has an eigenvalue below −64ε‖G‖"
    );
}

/// The structured `matvec` (and `apply`) equal the dense `α₀ Πᵀ Aᵀ A Π` from the same weights.
fn structured_equals_dense<T: Real>(p: &mut BlockPreconditioner<T>, seed: u64) {
    let dense = DenseNetwork::of(p).g();
    let n = p.dim();
    let v = common::gaussians(n, 1.0, &mut Stream::new(seed));
    let expect = dense.matvec(&v);
    let mut out = vec![T::nan(); n];
    p.matvec(&cast(&v), &mut out);
    let eps = T::epsilon().to_f64().unwrap();
    let tol = 16.0 * eps * (4 * p.layers() * p.block_size()) as f64;
    let scale = dense.max_abs() * n as f64;
    assert!(
        rel_err(&to_f64(&out), &expect) <= tol * scale.max(1.0),
        "matvec differs"
    );
    let mut applied = vec![T::nan(); n];
    p.apply(&cast(&v), &mut applied);
    assert_eq!(
        common::bits(&applied),
        common::bits(&out),
        "apply and matvec differ in bits"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn identity_at_initialisation(n in 1usize..24, k in 1usize..6, layers in 1usize..8, seed: u64) {
        identity_at_init::<f64>(n, k, layers, seed);
        identity_at_init::<f32>(n, k, layers, seed);
    }

    #[test]
    fn block_network_is_symmetric_psd(n in 1usize..16, k in 1usize..5, layers in 1usize..6, seed: u64, s in 0.1f64..2.0) {
        let mut p64 = block::<f64>(n, k, layers, 1.0, seed);
        randomize(&mut p64, s, seed ^ 1);
        symmetric_psd(&p64);
        let mut p32 = block::<f32>(n, k, layers, 1.0, seed);
        randomize(&mut p32, s, seed ^ 1);
        symmetric_psd(&p32);
    }

    #[test]
    fn structured_matvec_equals_dense(n in 1usize..16, k in 1usize..5, layers in 1usize..6, seed: u64) {
        let mut p64 = block::<f64>(n, k, layers, 0.8, seed);
        randomize(&mut p64, 0.7, seed ^ 2);
        structured_equals_dense(&mut p64, seed ^ 3);
        let mut p32 = block::<f32>(n, k, layers, 0.8, seed);
        randomize(&mut p32, 0.7, seed ^ 2);
        structured_equals_dense(&mut p32, seed ^ 3);
    }

    /// The dense-G oracle for every permutation family: `α₀·I` at initialisation, symmetric
    /// PSD after randomising θ, structured mat-vec equal to the dense product.
    #[test]
    fn every_permutation_family_matches_the_dense_oracle(
        n in 1usize..16, (k, fam) in (1usize..5).prop_flat_map(|k| (Just(k), family(k))),
        layers in 1usize..6, seed: u64,
    ) {
        let fresh = block_of::<f64>(n, k, layers, 0.8, seed, fam);
        prop_assert_eq!(fresh.permutation_family(), fam);
        for p in &fresh.permutations().unwrap() {
            prop_assert!(fam.contains(p, k));
        }
        let dense = dense_of(&fresh);
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 0.8 } else { 0.0 };
                prop_assert!((dense.at(i, j) - want).abs() <= 1e-12, "G ≠ α₀·I at ({}, {})", i, j);
            }
        }
        let mut p64 = fresh;
        randomize(&mut p64, 0.7, seed ^ 2);
        symmetric_psd(&p64);
        structured_equals_dense(&mut p64, seed ^ 3);
        let mut p32 = block_of::<f32>(n, k, layers, 0.8, seed, fam);
        randomize(&mut p32, 0.7, seed ^ 2);
        structured_equals_dense(&mut p32, seed ^ 3);
    }

    #[test]
    fn residual_is_symmetric_and_psd_with_nonnegative_middle(n in 1usize..12, layers in 1usize..8, seed: u64) {
        let config = ResidualConfig::<f64>::default().with_layers(layers).unwrap();
        let mut p = Residual::<f64>::from_config(n, &config, &mut Stream::new(seed)).unwrap();
        // Keep c ≥ 0 (the documented PSD condition), perturb the diagonals.
        let h = p.weight_count() / (layers + 1);
        let mut rng = Stream::new(seed ^ 5);
        let mut ws = p.weights();
        for (i, w) in ws.iter_mut().enumerate() {
            *w = if i >= layers * h { rng.uniform() } else { 0.5 * rng.gaussian() };
        }
        p.set_weights(&ws);
        symmetric_psd(&p);
    }
}

#[test]
fn default_hidden_width_is_k_ceil_2n_over_k() {
    for (n, k, h) in [
        (1, 4, 4),
        (2, 4, 4),
        (3, 4, 8),
        (10, 4, 20),
        (10, 3, 21),
        (7, 1, 14),
    ] {
        let p = block::<f64>(n, k, 2, 1.0, 0);
        assert_eq!(p.hidden(), h, "n = {n}, k = {k}");
    }
}

#[test]
fn diagonal_and_global_ablations_start_at_alpha0_identity() {
    let d_config = DiagonalConfig::<f64>::default().with_alpha0(0.25).unwrap();
    let g_config = GlobalConfig::<f64>::default().with_alpha0(0.25).unwrap();
    let d = Diagonal::<f64>::from_config(5, &d_config, &mut Stream::new(0)).unwrap();
    let g = Global::<f64>::from_config(5, &g_config, &mut Stream::new(0)).unwrap();
    for p in [dense_of(&d), dense_of(&g)] {
        for i in 0..5 {
            for j in 0..5 {
                let expect = if i == j { 0.25 } else { 0.0 };
                assert_eq!(p.at(i, j).to_bits(), f64::to_bits(expect));
            }
        }
    }
    assert_eq!(d.weight_count(), 5);
    assert_eq!(g.weight_count(), 1);
}

/// `G·v` of a network wide enough to be split into parts by the `parallel` feature
/// (`h ≥ PARALLEL_MIN_ROWS`) equals, bit for bit, the plain composition of whole-layer kernels:
/// `u = A Π v` by `layer_forward_into`, then `Aᵀ u` by `layer_backward_gathered` through
/// `π_{l+1}⁻¹`, and `α₀ Πᵀ P_1ᵀ` as a gather through `π_1⁻¹`, all through whole stored indices.
/// Serial builds check the wiring; `--features parallel` checks that the parts add up to the
/// whole. For every family (the structured ones stream their computed permutations).
#[test]
fn wide_network_equals_whole_layer_kernels() {
    use lodo_core::preconditioner::block::PARALLEL_MIN_ROWS;
    use lodo_kernels::{Kernels, wiring::Wiring};
    let n = PARALLEL_MIN_ROWS / 2 + 1001;
    // Random, and the structured families whose parts are streamed with a moved offset.
    for family in [
        PermutationFamily::Random,
        PermutationFamily::Shuffle,
        PermutationFamily::TiledShuffle { tile: 64 },
    ] {
        let config = BlockConfig::<f32>::default()
            .with_layers(3)
            .and_then(|c| c.with_permutations(family))
            .unwrap();
        let pre =
            BlockPreconditioner::<f32>::from_config(n, &config, &mut Stream::new(11)).unwrap();
        let (h, k) = (pre.hidden(), pre.block_size());
        assert!(h >= PARALLEL_MIN_ROWS);
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let mut got = vec![0.0; n];
        pre.matvec(&v, &mut got);

        let kern = Kernels::selected();
        let ll = h * k;
        let all = pre.weights();
        let theta = |l: usize| &all[l * ll..(l + 1) * ll];
        let mut u = vec![0.0f32; h];
        u[..n].copy_from_slice(&v);
        let (mut p, mut y) = (vec![0.0f32; h], vec![0.0f32; h]);
        let perms = pre.permutations().unwrap();
        for (l, perm) in perms.iter().enumerate() {
            let wiring = Wiring::Index(perm.forward());
            kern.layer_forward_into(k, theta(l), wiring, &u, &mut p, &mut y);
            std::mem::swap(&mut u, &mut y);
        }
        for l in (0..pre.layers()).rev() {
            let wiring = perms
                .get(l + 1)
                .map_or(Wiring::Identity, |p| Wiring::Index(p.inverse()));
            kern.layer_backward_gathered(k, theta(l), wiring, &u, &mut y);
            std::mem::swap(&mut u, &mut y);
        }
        let first = perms[0].inverse();
        let want: Vec<f32> = first[..n]
            .iter()
            .map(|&i| pre.alpha0() * u[i as usize])
            .collect();
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "entry {i}: {a} vs {b}");
        }
    }
}
