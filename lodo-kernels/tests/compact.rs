//! The fused Adam kernel with compact moments (bf16, q8): the reference against its definition
//! (decode every tile, the full-precision reference update, encode again: bit for bit), and
//! every SIMD path against the reference (θ and the backward outputs within rounding; the
//! stored moments within one step of their code, and rarely even that).

mod common;

use common::{cases, kernels, max_blocks};
use lodo_kernels::block_diagonal::{AdamCoefficients, AdamSlices, GatheredPair, Moments};
use lodo_kernels::compact::{adam_tile, decode_tile, encode_tile, q8_scales};
use lodo_kernels::reference;
use lodo_kernels::wiring::Wiring;
use num_traits::Float;
use proptest::prelude::*;

/// Compact moments owned by the test.
#[derive(Clone, Debug, PartialEq)]
enum Store {
    Bf16(Vec<u16>, Vec<u16>),
    Q8(Vec<u8>, Vec<u8>, Vec<[f32; 2]>),
}

impl Store {
    fn new(q8: bool, len: usize, k: usize) -> Self {
        if q8 {
            Store::Q8(
                vec![0; len],
                vec![0; len],
                vec![[0.0; 2]; q8_scales(len, k)],
            )
        } else {
            Store::Bf16(vec![0; len], vec![0; len])
        }
    }
    fn moments<T>(&mut self) -> Moments<'_, T> {
        match self {
            Store::Bf16(m, v) => Moments::Bf16 { m, v },
            Store::Q8(m, v, scales) => Moments::Q8 { m, v, scales },
        }
    }
    /// Encodes full moments, tile by tile (as the kernel does).
    fn encode<T: Float>(&mut self, k: usize, key: u32, m: &[T], v: &[T]) {
        let tile = adam_tile(k);
        let mut mo = self.moments::<T>();
        for (t, at) in (0..m.len()).step_by(tile).enumerate() {
            let end = (at + tile).min(m.len());
            encode_tile(&mut mo, t, at, (key, at), &m[at..end], &v[at..end]);
        }
    }
    fn decode<T: Float>(&mut self, k: usize, len: usize) -> (Vec<T>, Vec<T>) {
        let tile = adam_tile(k);
        let (mut m, mut v) = (vec![T::nan(); len], vec![T::nan(); len]);
        let mo = self.moments::<T>();
        for (t, at) in (0..len).step_by(tile).enumerate() {
            let end = (at + tile).min(len);
            decode_tile(&mo, t, at, &mut m[at..end], &mut v[at..end]);
        }
        (m, v)
    }
    /// How many codes of `M` and `V` differ from `other`'s.
    fn codes_differing(&self, other: &Store) -> usize {
        let count = |a: &[u8], b: &[u8]| a.iter().zip(b).filter(|(x, y)| x != y).count();
        let count16 = |a: &[u16], b: &[u16]| a.iter().zip(b).filter(|(x, y)| x != y).count();
        match (self, other) {
            (Store::Q8(m, v, _), Store::Q8(n, w, _)) => count(m, n) + count(v, w),
            (Store::Bf16(m, v), Store::Bf16(n, w)) => count16(m, n) + count16(v, w),
            _ => panic!("different modes"),
        }
    }

    /// The tile scales of q8 (none for bf16), for the tolerance.
    fn scale(&self, k: usize, i: usize, second: bool) -> f64 {
        match self {
            Store::Bf16(..) => 0.0,
            Store::Q8(_, _, s) => f64::from(s[i / adam_tile(k)][usize::from(second)]),
        }
    }
}

fn vals<T: Float>(seed: u64, len: usize, scale: f64) -> Vec<T> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005) ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // Magnitudes over several decades, as Adam's moments have.
            let u = (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            let decades = ((x >> 3) % 5) as i32;
            T::from(u * scale * 10f64.powi(-decades)).unwrap()
        })
        .collect()
}

struct Run<T> {
    theta: Vec<T>,
    store: Store,
    zad: Vec<T>,
    kept: usize,
}

/// One fused hypergradient + Adam step on `kern`'s path (`None`: the reference body) from
/// copies of `θ₀` and the stored moments.
fn fused_step<T: Float + 'static>(
    kern: Option<lodo_kernels::Kernels>,
    k: usize,
    pair: GatheredPair<'_, T, T>,
    (theta0, store0): (&[T], &Store),
    co: AdamCoefficients<T>,
) -> Run<T> {
    let (mut theta, mut store) = (theta0.to_vec(), store0.clone());
    let mut zad = vec![T::nan(); 2 * pair.c.len()];
    let state = AdamSlices {
        theta: &mut theta,
        moments: store.moments(),
    };
    let kept = match kern {
        Some(kern) => kern.backward_pair_adam(k, pair, state, co, &mut zad),
        None => reference::backward_pair_adam(k, pair, state, co, &mut zad),
    };
    Run {
        theta,
        store,
        zad,
        kept,
    }
}

#[allow(clippy::too_many_arguments)]
fn check<T: Float + std::fmt::Debug + 'static>(k: usize, blocks: usize, q8: bool, seed: u64) {
    let h = k * blocks;
    let hk = h * k;
    let perm: Vec<u32> = {
        let mut p: Vec<u32> = (0..h as u32).collect();
        let mut x = seed | 1;
        for i in (1..h).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p.swap(i, (x % (i as u64 + 1)) as usize);
        }
        p
    };
    let (ad, c, e) = (
        vals::<T>(seed + 1, 2 * h, 1.0),
        vals::<T>(seed + 2, h, 1.0),
        vals::<T>(seed + 3, h, 1.0),
    );
    let theta0 = vals::<T>(seed + 4, hk, 1.0);
    let m0 = vals::<T>(seed + 5, hk, 0.1);
    let v0: Vec<T> = vals::<T>(seed + 6, hk, 0.3)
        .into_iter()
        .map(|x| x * x)
        .collect();
    let mut store0 = Store::new(q8, hk, k);
    store0.encode(k, 7, &m0, &v0);
    let co = AdamCoefficients {
        beta1: T::from(0.9).unwrap(),
        beta2: T::from(0.999).unwrap(),
        epsilon: T::from(1e-7).unwrap(),
        rate: T::from(1e-2).unwrap(),
        key: (seed as u32).wrapping_mul(31),
        first: 0,
    };
    for wiring in [Wiring::Index(&perm), Wiring::Identity] {
        let pair = GatheredPair {
            scale: T::from(-0.7).unwrap(),
            ad: &ad,
            wiring,
            c: &c,
            e: &e,
        };
        let run = |kern| fused_step(kern, k, pair, (&theta0, &store0), co);
        let r = run(None);
        // The definition: decode, the full-precision reference update, encode (bits).
        let (mut m, mut v) = store0.clone().decode::<T>(k, hk);
        let mut theta = theta0.clone();
        let mut zad = vec![T::nan(); 2 * h];
        let state = AdamSlices::full(&mut theta, &mut m, &mut v);
        let kept = reference::backward_pair_adam(k, pair, state, co, &mut zad);
        let mut store = Store::new(q8, hk, k);
        store.encode(k, co.key, &m, &v);
        let bits = |x: &[T]| {
            x.iter()
                .map(|y| y.to_f64().unwrap().to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(kept, r.kept);
        assert_eq!(bits(&theta), bits(&r.theta), "reference θ = definition");
        assert_eq!(bits(&zad), bits(&r.zad), "reference zad = definition");
        assert_eq!(store, r.store, "reference codes = definition");
        assert!(theta.iter().zip(&theta0).any(|(a, b)| a != b), "θ moved");
        let (mr, vr) = r.store.clone().decode::<T>(k, hk);
        for kern in kernels() {
            let p = run(Some(kern));
            let path = kern.path();
            assert_eq!(p.kept, r.kept, "[{path}] kept");
            // The backward outputs are those of the path's unfused kernel, bit for bit.
            let (mut g, mut zad_g) = (vec![T::nan(); hk], vec![T::nan(); 2 * h]);
            kern.backward_pair_gradient(k, pair, &theta0, &mut g, &mut zad_g);
            assert_eq!(bits(&p.zad), bits(&zad_g), "[{path}] zad");
            let eps = T::epsilon().to_f64().unwrap();
            for i in 0..hk {
                let (a, b) = (p.theta[i].to_f64().unwrap(), r.theta[i].to_f64().unwrap());
                assert!(
                    (a - b).abs() <= 1e3 * eps * (1.0 + b.abs()),
                    "[{path}] θ[{i}]: {a} vs {b}"
                );
            }
            let (mp, vp) = p.store.clone().decode::<T>(k, hk);
            for i in 0..hk {
                for (second, x, y) in [(false, &mp, &mr), (true, &vp, &vr)] {
                    let (a, b) = (x[i].to_f64().unwrap(), y[i].to_f64().unwrap());
                    let step = if q8 { 1.0 / 8.0 } else { 1.0 / 64.0 };
                    let s = r.store.scale(k, i, second).max(p.store.scale(k, i, second));
                    let tol = step * a.abs().max(b.abs()) + 1e-4 * s + 1e3 * eps * s;
                    assert!(
                        (a - b).abs() <= tol,
                        "[{path}] q8={q8} moment {second} [{i}]: {a} vs {b}"
                    );
                }
            }
            // Codes differ only where an entry sat on a rounding boundary: rarely.
            let moved = p.store.codes_differing(&r.store);
            assert!(
                moved <= 2 + hk / 100,
                "[{path}] {moved} of {} codes differ",
                2 * hk
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    #[test]
    fn compact_adam_f32(k in 1usize..7, blocks in 1usize..max_blocks(80), q8 in any::<bool>(), seed in 0u64..1000) {
        check::<f32>(k, blocks, q8, seed);
    }

    #[test]
    fn compact_adam_f64(k in 1usize..7, blocks in 1usize..max_blocks(80), q8 in any::<bool>(), seed in 0u64..1000) {
        check::<f64>(k, blocks, q8, seed);
    }
}

/// Several tiles at the default block size, each mode and float (under Miri, `fast()`, 70
/// blocks: still three tiles).
#[test]
fn compact_adam_many_tiles() {
    let blocks = if common::fast() { 70 } else { 300 };
    for q8 in [false, true] {
        check::<f32>(4, blocks, q8, 3);
        check::<f64>(4, blocks, q8, 4);
    }
}

/// Kept activations in bf16: the forward output is that of the unrounded values (bits, per
/// path), the kept values are their bf16 rounding, and the fused backward kernels read them as
/// the same kernels read the decoded values in `T` (bits, per path).
fn bf16_activations<T: Float + std::fmt::Debug + 'static>(k: usize, blocks: usize, seed: u64) {
    use lodo_kernels::compact::{Bf16, Stored};
    let h = k * blocks;
    let hk = h * k;
    let perm: Vec<u32> = (0..h as u32).rev().collect();
    let x = vals::<T>(seed, h, 1.0);
    let b = vals::<T>(seed + 1, hk, 1.0);
    let bits = |x: &[T]| {
        x.iter()
            .map(|y| y.to_f64().unwrap().to_bits())
            .collect::<Vec<_>>()
    };
    for kern in kernels() {
        for wiring in [Wiring::Index(&perm), Wiring::Identity] {
            let (mut p, mut y) = (vec![T::nan(); h], vec![T::nan(); h]);
            kern.layer_forward_into(k, &b, wiring, &x, &mut p, &mut y);
            let (mut pb, mut yb) = (vec![Bf16(0); h], vec![T::nan(); h]);
            kern.layer_forward_into(k, &b, wiring, &x, &mut pb, &mut yb);
            assert_eq!(bits(&y), bits(&yb), "[{}] forward output", kern.path());
            let rounded: Vec<Bf16> = p.iter().map(|&v| <Bf16 as Stored<T>>::store(v)).collect();
            assert_eq!(pb, rounded, "[{}] kept = bf16(p)", kern.path());
            // The backward kernels with bf16 c, e = with their decoded values.
            let (c, e) = (&pb, &rounded);
            let (cd, ed): (Vec<T>, Vec<T>) = (
                c.iter().map(|&v| v.load()).collect(),
                e.iter().map(|&v| v.load()).collect(),
            );
            let ad = vals::<T>(seed + 2, 2 * h, 1.0);
            let pair_b = GatheredPair {
                scale: T::one(),
                ad: &ad,
                wiring,
                c,
                e,
            };
            let pair_t = GatheredPair {
                scale: T::one(),
                ad: &ad,
                wiring,
                c: &cd,
                e: &ed,
            };
            let (mut g1, mut z1) = (vec![T::nan(); hk], vec![T::nan(); 2 * h]);
            let (mut g2, mut z2) = (vec![T::nan(); hk], vec![T::nan(); 2 * h]);
            kern.backward_pair_gradient(k, pair_b, &b, &mut g1, &mut z1);
            kern.backward_pair_gradient(k, pair_t, &b, &mut g2, &mut z2);
            assert_eq!(bits(&g1), bits(&g2), "[{}] gradient", kern.path());
            assert_eq!(bits(&z1), bits(&z2), "[{}] zad", kern.path());
            let co = AdamCoefficients {
                beta1: T::from(0.9).unwrap(),
                beta2: T::from(0.999).unwrap(),
                epsilon: T::from(1e-7).unwrap(),
                rate: T::from(1e-2).unwrap(),
                key: 1,
                first: 0,
            };
            let run = |pair_is_bf16: bool| {
                let (mut th, mut m, mut v) = (b.clone(), vec![T::zero(); hk], vec![T::zero(); hk]);
                let mut zad = vec![T::nan(); 2 * h];
                let state = AdamSlices::full(&mut th, &mut m, &mut v);
                let kept = if pair_is_bf16 {
                    kern.backward_pair_adam(k, pair_b, state, co, &mut zad)
                } else {
                    kern.backward_pair_adam(k, pair_t, state, co, &mut zad)
                };
                (kept, th, m, v)
            };
            let (a, bb) = (run(true), run(false));
            assert_eq!(a.0, bb.0);
            assert_eq!(bits(&a.1), bits(&bb.1), "[{}] adam θ", kern.path());
            assert_eq!(bits(&a.3), bits(&bb.3), "[{}] adam V", kern.path());
            // The rounding is real: some kept value differs from its T value.
            assert!(k * blocks < 4 || cd.iter().zip(&p).any(|(a, b)| a != b));
        }
    }
}

#[test]
fn bf16_activations_read_as_their_decoded_values() {
    for (k, blocks) in [(1, 7), (3, 5), (4, 64), (5, 9)] {
        bf16_activations::<f32>(k, blocks, 11);
        bf16_activations::<f64>(k, blocks, 12);
    }
}

/// `2ᵉ` exactly (normal range), built from its bits. Not `powi`: its precision is not
/// guaranteed, and Miri (since late 2025) deliberately returns it a few ulps off, which broke
/// the exactness these tests rely on (`2f64.powi(70)` came out as `2⁷⁰ + 3 ulp`).
fn pow2(e: i32) -> f64 {
    assert!((-1022..=1023).contains(&e));
    f64::from_bits(((1023 + e) as u64) << 52)
}

/// Dyadic numbers `j/16` with `|j| ≤ 16` (zero one time in eight), and `2⁷⁰` at every
/// `huge`-th place: products of two of them and sums of a few such products are exact, so the
/// fused multiply-adds of the SIMD paths round exactly as the reference's multiply-then-add.
fn dyadic<T: Float>(seed: u64, len: usize, huge: usize) -> Vec<T> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = (x % 33) as f64 - 16.0;
            let v = if x.is_multiple_of(8) { 0.0 } else { j / 16.0 };
            let v = if huge > 0 && i % huge == huge - 1 {
                pow2(70)
            } else {
                v
            };
            T::from(v).unwrap()
        })
        .collect()
}

/// The compact codes of every SIMD path equal the reference's bit for bit. The inputs are
/// chosen so that the update itself is exact on every path (dyadic numbers, β₁ = β₂ = ½:
/// every product that a path fuses is exact), so any difference comes from the decode, the
/// scales or the encode. The moments themselves have arbitrary mantissas (encoded from
/// arbitrary values), some tiles are all zero, and some elements hit the guard (a gradient of
/// `2⁷⁰`: `V` above the bf16 range); returns how many did (both wirings).
fn codes_bit_for_bit<T: Float + std::fmt::Debug + 'static>(
    k: usize,
    blocks: usize,
    q8: bool,
    seed: u64,
) -> usize {
    let h = k * blocks;
    let hk = h * k;
    let perm: Vec<u32> = (0..h as u32).map(|i| (i * 7 + 3) % h as u32).collect();
    let perm = if h.is_multiple_of(7) {
        (0..h as u32).rev().collect()
    } else {
        perm
    };
    let ad = dyadic::<T>(seed + 1, 2 * h, 37);
    let mut c = dyadic::<T>(seed + 2, h, 0);
    let mut e = dyadic::<T>(seed + 3, h, 0);
    let theta0 = dyadic::<T>(seed + 4, hk, 0);
    let mut m0 = vals::<T>(seed + 5, hk, 0.1);
    let mut v0: Vec<T> = vals::<T>(seed + 6, hk, 0.3)
        .into_iter()
        .map(|x| x * x)
        .collect();
    // A zero run: zero moments and zero gradients (c = e = 0) over the first tile or more.
    let tile = adam_tile(k);
    let zero = if hk >= 2 * tile { tile } else { 0 };
    for i in 0..zero / k {
        (c[i], e[i]) = (T::zero(), T::zero());
    }
    for i in 0..zero {
        (m0[i], v0[i]) = (T::zero(), T::zero());
    }
    let mut store0 = Store::new(q8, hk, k);
    store0.encode(k, 5, &m0, &v0);
    let half = T::from(0.5).unwrap();
    let co = AdamCoefficients {
        beta1: half,
        beta2: half,
        epsilon: T::from(pow2(-10)).unwrap(),
        rate: T::from(pow2(-4)).unwrap(),
        key: (seed as u32).wrapping_mul(0x0101_0101),
        first: 0,
    };
    let bits = |x: &[T]| {
        x.iter()
            .map(|y| y.to_f64().unwrap().to_bits())
            .collect::<Vec<_>>()
    };
    let mut guarded = 0;
    for wiring in [Wiring::Index(&perm), Wiring::Identity] {
        let pair = GatheredPair {
            scale: T::from(-0.5).unwrap(),
            ad: &ad,
            wiring,
            c: &c,
            e: &e,
        };
        let run = |kern| {
            let r = fused_step(kern, k, pair, (&theta0, &store0), co);
            (r.kept, bits(&r.theta), r.store, bits(&r.zad))
        };
        let r = run(None);
        guarded += r.0;
        assert!(r.1 != bits(&theta0) || hk < 16, "θ moved");
        for kern in kernels() {
            let p = run(Some(kern));
            let path = kern.path();
            assert_eq!(p.0, r.0, "[{path}] kept");
            assert_eq!(p.3, r.3, "[{path}] zad");
            assert_eq!(p.1, r.1, "[{path}] θ");
            assert_eq!(p.2, r.2, "[{path}] q8={q8}: codes and scales");
        }
    }
    guarded
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    #[test]
    fn compact_codes_bit_for_bit_f32(k in 1usize..7, blocks in 1usize..max_blocks(200), q8 in any::<bool>(), seed in 0u64..1000) {
        codes_bit_for_bit::<f32>(k, blocks, q8, seed);
    }

    #[test]
    fn compact_codes_bit_for_bit_f64(k in 1usize..7, blocks in 1usize..max_blocks(200), q8 in any::<bool>(), seed in 0u64..1000) {
        codes_bit_for_bit::<f64>(k, blocks, q8, seed);
    }
}

/// Several tiles at the default block size (and a block size with a partial last tile). Under
/// Miri (`fast()`) fewer blocks, still at least two tiles and the leading zero tile of each case.
#[test]
fn compact_codes_bit_for_bit_many_tiles() {
    let (b4, b5, b3) = if common::fast() {
        (70, 42, 115)
    } else {
        (300, 120, 250)
    };
    for q8 in [false, true] {
        let guarded = codes_bit_for_bit::<f32>(4, b4, q8, 1)
            .min(codes_bit_for_bit::<f64>(4, b4, q8, 2))
            .min(codes_bit_for_bit::<f32>(5, b5, q8, 3))
            .min(codes_bit_for_bit::<f64>(3, b3, q8, 4));
        assert!(guarded > 0, "some elements hit the guard in every case");
    }
}

/// Kept bf16 activations of every path equal the reference's rounding bit for bit on the
/// rounding boundaries: ties (to even, both ways), just below and above them, ±0,
/// subnormals, the saturation at the largest bf16, ±∞ and NaN.
#[test]
fn bf16_activations_on_the_boundaries() {
    use lodo_kernels::compact::{Bf16, bf16_nearest};
    let mut xs: Vec<f32> = vec![
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE / 3.0,
        f32::from_bits(1),
        f32::MAX,
        -f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7FA0_0001),
        f32::from_bits(0x7F7F_7FFF),
        f32::from_bits(0x7F7F_8000),
        f32::from_bits(0x7F7F_8001),
    ];
    for hi in [0x3F80u32, 0x3F81, 0x0001, 0x8042, 0x7F7E, 0xC2FF] {
        for lo in [0x0000u32, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF] {
            xs.push(f32::from_bits(hi << 16 | lo));
        }
    }
    while !xs.len().is_multiple_of(4) {
        xs.push(1.0);
    }
    let h = xs.len();
    let blocks: Vec<f32> = (0..h / 4)
        .flat_map(|_| (0..16).map(|i| if i % 5 == 0 { 1.0 } else { 0.0 }))
        .collect();
    let expected: Vec<u16> = xs.iter().map(|&x| bf16_nearest(x)).collect();
    let perm: Vec<u32> = (0..h as u32).rev().collect();
    for kern in kernels() {
        for wiring in [Wiring::Identity, Wiring::Index(&perm)] {
            let (mut p, mut y) = (vec![Bf16(0); h], vec![0.0f32; h]);
            kern.layer_forward_into(4, &blocks, wiring, &xs, &mut p, &mut y);
            let got: Vec<u16> = p.iter().map(|b| b.0).collect();
            let want: Vec<u16> = (0..h)
                .map(|j| match wiring {
                    Wiring::Index(q) => expected[q[j] as usize],
                    _ => expected[j],
                })
                .collect();
            assert_eq!(got, want, "[{}] bf16 of the gathered values", kern.path());
        }
    }
}
