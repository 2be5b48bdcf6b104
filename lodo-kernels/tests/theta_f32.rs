//! `θ` stored as [`F32`] below an `f64` working float: every kernel that reads `θ` (the forward
//! layer, the gathered backward layer, the fused backward with its gradient, the fused Adam
//! step with full and compact moments) gives, on every path, the same bits as the same kernel
//! with `θ` decoded into `f64` (reading `θ` is exact); the Adam step's new `θ` is the nearest
//! `f32` of that kernel's new `f64` value. With the paths' own tests against the reference this
//! makes each path equal to the reference on bits where the `f64` paths are (and the reference
//! bodies are checked directly, too).

mod common;

use common::{cases, kernels, max_blocks};
use lodo_kernels::block_diagonal::{AdamCoefficients, AdamSlices, GatheredPair, Moments};
use lodo_kernels::compact::{F32, Stored, q8_scales};
use lodo_kernels::reference;
use lodo_kernels::wiring::{Shuffle, Wiring};
use proptest::prelude::*;

fn vals(seed: u64, len: usize, scale: f64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005) ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            u * scale
        })
        .collect()
}

fn bits(x: &[f64]) -> Vec<u64> {
    x.iter().map(|y| y.to_bits()).collect()
}

fn bits32(x: &[F32]) -> Vec<u32> {
    x.iter().map(|y| y.0.to_bits()).collect()
}

fn store(x: &[f64]) -> Vec<F32> {
    x.iter().map(|&v| <F32 as Stored<f64>>::store(v)).collect()
}

fn load(x: &[F32]) -> Vec<f64> {
    x.iter().map(|&v| <F32 as Stored<f64>>::load(v)).collect()
}

/// The moments of one run: full, bf16 or q8.
#[derive(Clone)]
enum Mom {
    Full(Vec<f64>, Vec<f64>),
    Bf16(Vec<u16>, Vec<u16>),
    Q8(Vec<u8>, Vec<u8>, Vec<[f32; 2]>),
}

impl Mom {
    fn new(kind: usize, len: usize, k: usize, seed: u64) -> Self {
        match kind {
            0 => Mom::Full(
                vals(seed, len, 0.1),
                vals(seed + 1, len, 0.3).iter().map(|x| x * x).collect(),
            ),
            1 => Mom::Bf16(vec![0; len], vec![0; len]),
            _ => Mom::Q8(
                vec![0; len],
                vec![0; len],
                vec![[0.0; 2]; q8_scales(len, k)],
            ),
        }
    }
    fn moments(&mut self) -> Moments<'_, f64> {
        match self {
            Mom::Full(m, v) => Moments::Full { m, v },
            Mom::Bf16(m, v) => Moments::Bf16 { m, v },
            Mom::Q8(m, v, scales) => Moments::Q8 { m, v, scales },
        }
    }
    fn key(&self) -> Vec<u64> {
        match self {
            Mom::Full(m, v) => bits(m).into_iter().chain(bits(v)).collect(),
            Mom::Bf16(m, v) => m.iter().chain(v).map(|&c| u64::from(c)).collect(),
            Mom::Q8(m, v, s) => m
                .iter()
                .chain(v)
                .map(|&c| u64::from(c))
                .chain(s.iter().flatten().map(|x| u64::from(x.to_bits())))
                .collect(),
        }
    }
}

fn check(k: usize, blocks: usize, seed: u64) {
    let h = k * blocks;
    let hk = h * k;
    let perm: Vec<u32> = (0..h as u32).map(|i| (i * 7 + 3) % h as u32).collect();
    let perm = if h.is_multiple_of(7) {
        (0..h as u32).rev().collect()
    } else {
        perm
    };
    let x = vals(seed, h, 1.0);
    let theta = store(&vals(seed + 1, hk, 1.0));
    let decoded = load(&theta);
    let ad = vals(seed + 2, 2 * h, 1.0);
    let (c, e) = (vals(seed + 3, h, 1.0), vals(seed + 4, h, 1.0));
    let mut wirings = vec![Wiring::Index(&perm), Wiring::Identity];
    for inverse in [false, true] {
        if h.is_multiple_of(k * k) {
            wirings.push(Wiring::Shuffle(Shuffle {
                width: h,
                inverse,
                tiles: None,
                offset: 0,
            }));
        }
    }
    let co = AdamCoefficients {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-7,
        rate: 1e-2,
        key: seed as u32,
        first: 0,
    };
    for wiring in wirings {
        // The reference body with θ in F32 = with θ decoded, then every path the same way.
        let (mut p1, mut y1) = (vec![f64::NAN; h], vec![f64::NAN; h]);
        let (mut p2, mut y2) = (vec![f64::NAN; h], vec![f64::NAN; h]);
        reference::layer_forward_into(k, &theta, wiring, &x, &mut p1, &mut y1);
        reference::layer_forward_into(k, &decoded, wiring, &x, &mut p2, &mut y2);
        assert_eq!(bits(&y1), bits(&y2), "reference forward");
        let mut z1 = vec![f64::NAN; h];
        let mut z2 = vec![f64::NAN; h];
        reference::layer_backward_gathered(k, &theta, wiring, &x, &mut z1);
        reference::layer_backward_gathered(k, &decoded, wiring, &x, &mut z2);
        assert_eq!(bits(&z1), bits(&z2), "reference backward");
        for kern in kernels() {
            let path = kern.path();
            let (mut p1, mut y1) = (vec![f64::NAN; h], vec![f64::NAN; h]);
            let (mut p2, mut y2) = (vec![f64::NAN; h], vec![f64::NAN; h]);
            kern.layer_forward_into(k, &theta, wiring, &x, &mut p1, &mut y1);
            kern.layer_forward_into(k, &decoded, wiring, &x, &mut p2, &mut y2);
            assert_eq!(bits(&y1), bits(&y2), "[{path}] forward");
            assert_eq!(bits(&p1), bits(&p2), "[{path}] kept");
            let (mut z1, mut z2) = (vec![f64::NAN; h], vec![f64::NAN; h]);
            kern.layer_backward_gathered(k, &theta, wiring, &x, &mut z1);
            kern.layer_backward_gathered(k, &decoded, wiring, &x, &mut z2);
            assert_eq!(bits(&z1), bits(&z2), "[{path}] backward");
            let pair = GatheredPair {
                scale: -0.5,
                ad: &ad,
                wiring,
                c: &c,
                e: &e,
            };
            let (mut g1, mut zad1) = (vec![f64::NAN; hk], vec![f64::NAN; 2 * h]);
            let (mut g2, mut zad2) = (vec![f64::NAN; hk], vec![f64::NAN; 2 * h]);
            kern.backward_pair_gradient(k, pair, &theta, &mut g1, &mut zad1);
            kern.backward_pair_gradient(k, pair, &decoded, &mut g2, &mut zad2);
            assert_eq!(bits(&g1), bits(&g2), "[{path}] gradient");
            assert_eq!(bits(&zad1), bits(&zad2), "[{path}] gradient zad");
            let kinds = if k <= lodo_kernels::compact::COMPACT_MAX_K {
                0..3
            } else {
                0..1
            };
            for kind in kinds {
                let mom0 = Mom::new(kind, hk, k, seed + 5);
                // θ in F32, on this path and on the reference.
                let mut runs = Vec::new();
                for on_path in [true, false] {
                    let (mut th, mut mom) = (theta.clone(), mom0.clone());
                    let mut zad = vec![f64::NAN; 2 * h];
                    let state = AdamSlices {
                        theta: &mut th,
                        moments: mom.moments(),
                    };
                    let kept = if on_path {
                        kern.backward_pair_adam(k, pair, state, co, &mut zad)
                    } else {
                        reference::backward_pair_adam(k, pair, state, co, &mut zad)
                    };
                    runs.push((kept, th, mom, zad));
                }
                // θ decoded into f64, on this path.
                let (mut th, mut mom) = (decoded.clone(), mom0.clone());
                let mut zad = vec![f64::NAN; 2 * h];
                let state = AdamSlices {
                    theta: &mut th,
                    moments: mom.moments(),
                };
                let kept = kern.backward_pair_adam(k, pair, state, co, &mut zad);
                let (kept1, th1, mom1, zad1) = &runs[0];
                assert_eq!(*kept1, kept, "[{path}] kind {kind}: kept");
                assert_eq!(bits32(th1), bits32(&store(&th)), "[{path}] kind {kind}: θ");
                assert_eq!(mom1.key(), mom.key(), "[{path}] kind {kind}: moments");
                assert_eq!(bits(zad1), bits(&zad), "[{path}] kind {kind}: zad");
                assert!(bits32(th1) != bits32(&theta), "[{path}] θ moved");
                // The reference with θ in F32 = the reference with θ decoded, rounded.
                let (mut th, mut mom) = (decoded.clone(), mom0.clone());
                let state = AdamSlices {
                    theta: &mut th,
                    moments: mom.moments(),
                };
                let kept = reference::backward_pair_adam(k, pair, state, co, &mut zad);
                let (kept2, th2, mom2, _) = &runs[1];
                assert_eq!(*kept2, kept, "reference kind {kind}: kept");
                assert_eq!(bits32(th2), bits32(&store(&th)), "reference kind {kind}: θ");
                assert_eq!(mom2.key(), mom.key(), "reference kind {kind}: moments");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    #[test]
    fn theta_f32_reads_as_its_decoded_values(k in 1usize..7, blocks in 1usize..max_blocks(80), seed in 0u64..1000) {
        check(k, blocks, seed);
    }
}

#[test]
fn theta_f32_many_tiles_and_shuffles() {
    // k = 4 (the unrolled bodies), whole shuffles and several Adam tiles; k = 9 (generic k).
    // Under Miri (`fast()`), 36 blocks of k = 4: still two Adam tiles (32 blocks each), a whole
    // shuffle (h = 144); the tile logic itself is tested at 70 blocks in tests/compact.rs.
    let many = if common::fast() { 36 } else { 256 };
    for (k, blocks, seed) in [(4, 4, 1), (4, many, 2), (3, 27, 3), (9, 18, 4)] {
        check(k, blocks, seed);
    }
}

/// A value beyond `f32`'s range is refused by the guard (the old `θ`, `M`, `V` stay).
#[test]
fn theta_f32_guard_refuses_what_f32_cannot_hold() {
    let big = 3.0e38f32;
    for kern in kernels() {
        let mut theta = [F32(big)];
        let (mut m, mut v) = ([0.0f64], [0.0f64]);
        let pair = GatheredPair {
            scale: 1.0,
            ad: &[-1.0, 0.0],
            wiring: Wiring::Identity,
            c: &[1.0],
            e: &[0.0],
        };
        let co = AdamCoefficients {
            beta1: 0.5,
            beta2: 0.5,
            epsilon: 0.0,
            rate: 1e38,
            key: 0,
            first: 0,
        };
        let mut zad = [0.0; 2];
        let state = AdamSlices::full(&mut theta, &mut m, &mut v);
        let kept = kern.backward_pair_adam(1, pair, state, co, &mut zad);
        assert_eq!(kept, 1, "[{}]", kern.path());
        assert_eq!(theta[0].0.to_bits(), big.to_bits());
        assert_eq!((m[0], v[0]), (0.0, 0.0));
    }
}
