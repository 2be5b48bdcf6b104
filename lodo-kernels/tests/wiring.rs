//! Structured wirings (issue 12): the perfect shuffle `σ`, its inverse, and their tiled forms
//! `σ∘τ`, `τ⁻¹∘σ⁻¹`, computed while streaming.
//!
//! 1. The closed-form sources ([`Wiring::source`]) are the definitions: `σ(j) = (j mod r)·k +
//!    ⌊j/r⌋`, a permutation; the inverse wirings invert the forward ones; tiles stay in their
//!    window.
//! 2. On every path (reference and each SIMD path this CPU has), every layer kernel gives the
//!    same bits through a structured wiring as through [`Wiring::Index`] holding its
//!    materialised sources, and a layer computed in two parts ([`Wiring::part`]) equals the
//!    whole, bit for bit; so does the fused Adam step cut at a tile boundary, with every moment
//!    storage. (Each path against the reference is `tests/paths.rs`' business, with
//!    an index.)
//!
//! Shapes: `k ∈ {1, 2, 3, 4, 5, 8}`, tile `T = k·t`, `r = k·m` (often not a multiple of `T`:
//! a segment's last tile is shorter), `h = k·r`; values scaled by
//! `10^e`, `|e| ≤ 8` (so the f32 Adam update neither overflows `g²` nor rounds to nothing). `PROPTEST_CASES` overrides the case count; `LODO_FAST_TEST` (and Miri) shrink it.

mod common;

use common::{cases, fast, kernels};
use lodo_kernels::block_diagonal::{AdamCoefficients, AdamSlices, GatheredPair};
use lodo_kernels::compact::{
    Bf16, COMPACT_MAX_K, Moments, Stored, adam_tile, encode_tile, q8_scales,
};
use lodo_kernels::reference;
use lodo_kernels::wiring::{Shuffle, Tiles, Wiring};
use lodo_kernels::{Kernels, Path};
use num_traits::Float;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Case {
    k: usize,
    tile: usize,
    h: usize,
    /// `τ` inside each tile (local offsets) and its inverse.
    tau: Vec<u16>,
    tau_inv: Vec<u16>,
    unit: Vec<f64>,
    scale_exp: i32,
}

impl Case {
    fn vals<T: Float>(&self, off: usize, len: usize) -> Vec<T> {
        self.scaled(off, len, 10f64.powi(self.scale_exp))
    }
    fn scaled<T: Float>(&self, off: usize, len: usize, s: f64) -> Vec<T> {
        (0..len)
            .map(|i| T::from(self.unit[(off + i * 7) % self.unit.len()] * s).unwrap())
            .collect()
    }
    fn shuffle(&self, inverse: bool, tiled: bool) -> Wiring<'_> {
        let local = if inverse { &self.tau_inv } else { &self.tau };
        Wiring::Shuffle(Shuffle {
            width: self.h,
            inverse,
            tiles: tiled.then_some(Tiles {
                tile: self.tile,
                local,
            }),
            offset: 0,
        })
    }
    /// The four structured wirings of the case.
    fn wirings(&self) -> [Wiring<'_>; 4] {
        [
            self.shuffle(false, false),
            self.shuffle(true, false),
            self.shuffle(false, true),
            self.shuffle(true, true),
        ]
    }
}

fn case() -> impl Strategy<Value = Case> {
    let (t_max, m_max) = if fast() { (2usize, 3usize) } else { (6, 24) };
    (
        prop::sample::select(vec![1usize, 2, 3, 4, 4, 5, 8]),
        1..=t_max,
        1..=m_max,
        -8i32..=8,
    )
        .prop_flat_map(|(k, t, m, e)| {
            // r = k·m: a multiple of k, and of the tile only sometimes (a segment's last tile
            // is then shorter).
            let (tile, h) = (k * t, k * k * m);
            let r = h / k;
            let lens: Vec<usize> = (0..k)
                .flat_map(|_| (0..r).step_by(tile).map(move |p| tile.min(r - p)))
                .collect();
            let tiles: Vec<_> = lens
                .iter()
                .map(|&len| Just((0..len as u16).collect::<Vec<_>>()).prop_shuffle())
                .collect();
            let unit = prop::collection::vec(-1.0f64..1.0, 64);
            (Just(k), Just(tile), Just(h), Just(e), tiles, unit)
        })
        .prop_map(|(k, tile, h, scale_exp, tiles, unit)| {
            let tau: Vec<u16> = tiles.concat();
            let r = h / k;
            let mut tau_inv = vec![0u16; h];
            for (j, &l) in tau.iter().enumerate() {
                let start = j - (j % r) % tile;
                tau_inv[start + usize::from(l)] = (j - start) as u16;
            }
            Case {
                k,
                tile,
                h,
                tau,
                tau_inv,
                unit,
                scale_exp,
            }
        })
}

fn sources(w: Wiring<'_>, k: usize, h: usize) -> Vec<u32> {
    (0..h).map(|j| w.source(k, j) as u32).collect()
}

fn same_bits<T: Float>(what: &str, path: Path, a: &[T], b: &[T]) {
    let bits = |x: &T| x.to_f64().unwrap().to_bits();
    assert!(
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| bits(x) == bits(y)),
        "{what} [{path}]: structured and index differ"
    );
}

/// The closed forms are the definitions.
fn maps(c: &Case) {
    let (k, h) = (c.k, c.h);
    let r = h / k;
    let [fwd, inv, tfwd, tinv] = c.wirings().map(|w| sources(w, k, h));
    for j in 0..h {
        assert_eq!(fwd[j] as usize, (j % r) * k + j / r, "σ({j})");
        // τ(j) stays in j's tile, which restarts at every segment.
        let t = j - (j % r) % c.tile + usize::from(c.tau[j]);
        assert_eq!((t % r) / c.tile, (j % r) / c.tile, "τ({j}) left its tile");
        assert_eq!(t / r, j / r, "τ({j}) left its segment");
        assert_eq!(tfwd[j], fwd[t], "σ(τ({j}))");
        // The inverses: s⁻¹(s(j)) = j.
        assert_eq!(inv[fwd[j] as usize] as usize, j, "σ⁻¹(σ({j}))");
        assert_eq!(tinv[tfwd[j] as usize] as usize, j, "τ⁻¹σ⁻¹(στ({j}))");
    }
    for map in [fwd, inv, tfwd, tinv] {
        let mut sorted = map.clone();
        sorted.sort_unstable();
        assert!(sorted.iter().enumerate().all(|(i, &v)| v as usize == i));
    }
}

macro_rules! typed {
    ($m:ident, $T:ty) => {
        mod $m {
            use super::*;

            /// Forward and backward layers: structured = index (bits), parts = whole (bits).
            pub(super) fn layers(c: &Case) {
                let (k, h) = (c.k, c.h);
                let (b, x) = (c.vals::<$T>(3, h * k), c.vals::<$T>(5, h));
                let cut = (h / k / 2) * k;
                for kern in kernels() {
                    let path = kern.path();
                    for w in c.wirings() {
                        let idx = sources(w, k, h);
                        let q = Wiring::Index(&idx);
                        let (mut p0, mut y0) = (vec![<$T>::nan(); h], vec![<$T>::nan(); h]);
                        kern.layer_forward_into(k, &b, q, &x, &mut p0, &mut y0);
                        let (mut p, mut y) = (vec![<$T>::nan(); h], vec![<$T>::nan(); h]);
                        kern.layer_forward_into(k, &b, w, &x, &mut p, &mut y);
                        same_bits("forward p", path, &p, &p0);
                        same_bits("forward y", path, &y, &y0);
                        let (mut pp, mut yp) = (vec![<$T>::nan(); h], vec![<$T>::nan(); h]);
                        let ((p1, p2), (y1, y2)) = (pp.split_at_mut(cut), yp.split_at_mut(cut));
                        let (b1, b2) = b.split_at(cut * k);
                        kern.layer_forward_into(k, b1, w.part(0, cut), &x, p1, y1);
                        kern.layer_forward_into(k, b2, w.part(cut, h - cut), &x, p2, y2);
                        same_bits("forward parts p", path, &pp, &p0);
                        same_bits("forward parts y", path, &yp, &y0);

                        let mut z0 = vec![<$T>::nan(); h];
                        kern.layer_backward_gathered(k, &b, q, &x, &mut z0);
                        let mut z = vec![<$T>::nan(); h];
                        kern.layer_backward_gathered(k, &b, w, &x, &mut z);
                        same_bits("backward", path, &z, &z0);
                        let (z1, z2) = z.split_at_mut(cut);
                        z1.fill(<$T>::nan());
                        z2.fill(<$T>::nan());
                        kern.layer_backward_gathered(k, b1, w.part(0, cut), &x, z1);
                        kern.layer_backward_gathered(k, b2, w.part(cut, h - cut), &x, z2);
                        same_bits("backward parts", path, &z, &z0);
                    }
                }
            }

            /// The inputs of a fused layer: the interleaved cotangents, the kept vectors, and
            /// `θ`, `M`, `V` of order 1 (so a step always moves `θ` by more than its last bit).
            struct Inputs {
                ad: Vec<$T>,
                cc: Vec<$T>,
                e: Vec<$T>,
                theta: Vec<$T>,
                m0: Vec<$T>,
                v0: Vec<$T>,
            }

            fn inputs(c: &Case) -> Inputs {
                let (h, hk) = (c.h, c.h * c.k);
                let v0: Vec<$T> = c.scaled::<$T>(23, hk, 1.0);
                Inputs {
                    ad: c.vals::<$T>(7, 2 * h),
                    cc: c.vals::<$T>(11, h),
                    e: c.vals::<$T>(13, h),
                    theta: c.scaled::<$T>(17, hk, 1.0),
                    m0: c.scaled::<$T>(19, hk, 1.0),
                    v0: v0.iter().map(|v| v * v).collect(),
                }
            }

            /// The fused hypergradient sweep, with and without Adam: structured = index (bits).
            pub(super) fn fused(c: &Case) {
                let (k, h) = (c.k, c.h);
                let hk = h * k;
                let Inputs {
                    ad,
                    cc,
                    e,
                    theta,
                    m0,
                    v0,
                } = inputs(c);
                let co = AdamCoefficients {
                    beta1: 0.9,
                    beta2: 0.999,
                    epsilon: 1e-7,
                    rate: 1e-2,
                    key: 0,
                    first: 0,
                };
                for kern in kernels() {
                    let path = kern.path();
                    for w in c.wirings() {
                        let idx = sources(w, k, h);
                        let run = |wiring: Wiring<'_>| {
                            let pair = GatheredPair {
                                scale: -0.5,
                                ad: &ad,
                                wiring,
                                c: &cc,
                                e: &e,
                            };
                            let (mut g, mut zad) =
                                (vec![<$T>::nan(); hk], vec![<$T>::nan(); 2 * h]);
                            kern.backward_pair_gradient(k, pair, &theta, &mut g, &mut zad);
                            let (mut th, mut m, mut v) = (theta.clone(), m0.clone(), v0.clone());
                            let mut zad2 = vec![<$T>::nan(); 2 * h];
                            let state = AdamSlices::full(&mut th, &mut m, &mut v);
                            let kept = kern.backward_pair_adam(k, pair, state, co, &mut zad2);
                            (g, zad, th, m, v, zad2, kept)
                        };
                        let (g0, zad0, th0, mm0, vv0, zz0, kept0) = run(Wiring::Index(&idx));
                        let (g, zad, th, mm, vv, zz, kept) = run(w);
                        same_bits("gradient", path, &g, &g0);
                        same_bits("gradient zad", path, &zad, &zad0);
                        same_bits("adam θ", path, &th, &th0);
                        same_bits("adam M", path, &mm, &mm0);
                        same_bits("adam V", path, &vv, &vv0);
                        same_bits("adam zad", path, &zz, &zz0);
                        assert_eq!(kept, kept0);
                        // The step moved θ (the comparison above is not of two no-ops).
                        assert!(
                            th.iter()
                                .zip(&theta)
                                .any(|(a, b)| a.to_bits() != b.to_bits())
                                || theta.is_empty()
                        );
                    }
                }
            }

            /// The fused Adam step of a layer cut into two parts at a tile boundary (as the
            /// `parallel` feature splits it: each part reads the whole layer's `ad` through its
            /// part of the wiring, or its own slice without one, and starts its stochastic
            /// rounding at [`AdamCoefficients::first`]) equals the whole layer's, bit for bit,
            /// with moments in `T`, bf16 and q8.
            pub(super) fn fused_parts(c: &Case) {
                let (k, h) = (c.k, c.h);
                let rows = adam_tile(k) / k;
                let cut = (h / rows / 2) * rows;
                if k > COMPACT_MAX_K || cut == 0 {
                    return;
                }
                let hk = h * k;
                let Inputs {
                    ad,
                    cc,
                    e,
                    theta,
                    m0,
                    v0,
                } = inputs(c);
                let co = AdamCoefficients {
                    beta1: 0.9,
                    beta2: 0.999,
                    epsilon: 1e-7,
                    rate: 1e-2,
                    key: 0x5EED,
                    first: 0,
                };
                // The state after one step, with the layer in the parts `cuts` (row ranges):
                // θ, M and V (decoded), zad, the count kept, and the compact codes.
                let step = |kern: Kernels, w: Wiring<'_>, store: u8, cuts: &[(usize, usize)]| {
                    let mut th = theta.clone();
                    let (mut m, mut v) = (m0.clone(), v0.clone());
                    // The compact moments start from M₀, V₀ encoded (order 1, so θ moves).
                    let bf = |x: &Vec<$T>| -> Vec<u16> {
                        x.iter()
                            .map(|&x| <Bf16 as Stored<$T>>::store(x).0)
                            .collect()
                    };
                    let (mut m16, mut v16) = (bf(&m0), bf(&v0));
                    let (mut m8, mut v8) = (vec![0u8; hk], vec![0u8; hk]);
                    let mut scales = vec![[0.0f32; 2]; q8_scales(hk, k)];
                    let mut q8 = Moments::Q8 {
                        m: &mut m8,
                        v: &mut v8,
                        scales: &mut scales,
                    };
                    for (t, at) in (0..hk).step_by(adam_tile(k)).enumerate() {
                        let end = (at + adam_tile(k)).min(hk);
                        encode_tile(&mut q8, t, at, (0, at), &m0[at..end], &v0[at..end]);
                    }
                    let mut zad = vec![<$T>::nan(); 2 * h];
                    let mut kept = 0;
                    for &(r0, r1) in cuts {
                        let (a, b) = (r0 * k, r1 * k);
                        let pair = GatheredPair {
                            scale: -0.5,
                            ad: if w == Wiring::Identity {
                                &ad[2 * r0..2 * r1]
                            } else {
                                &ad
                            },
                            wiring: w.part(r0, r1 - r0),
                            c: &cc[r0..r1],
                            e: &e[r0..r1],
                        };
                        let moments = match store {
                            0 => Moments::Full {
                                m: &mut m[a..b],
                                v: &mut v[a..b],
                            },
                            1 => Moments::Bf16 {
                                m: &mut m16[a..b],
                                v: &mut v16[a..b],
                            },
                            _ => Moments::Q8 {
                                m: &mut m8[a..b],
                                v: &mut v8[a..b],
                                scales: &mut scales[a / adam_tile(k)..q8_scales(b, k)],
                            },
                        };
                        let state = AdamSlices {
                            theta: &mut th[a..b],
                            moments,
                        };
                        let co = AdamCoefficients { first: a, ..co };
                        let z = &mut zad[2 * r0..2 * r1];
                        kept += kern.backward_pair_adam(k, pair, state, co, z);
                    }
                    (th, m, v, zad, kept, (m16, v16, m8, v8, scales))
                };
                for kern in kernels() {
                    let path = kern.path();
                    let idx = sources(c.wirings()[0], k, h);
                    let mut ws = c.wirings().to_vec();
                    ws.extend([Wiring::Index(&idx), Wiring::Identity]);
                    for w in ws {
                        for store in 0..3 {
                            let whole = step(kern, w, store, &[(0, h)]);
                            let parts = step(kern, w, store, &[(0, cut), (cut, h)]);
                            same_bits("parts θ", path, &parts.0, &whole.0);
                            same_bits("parts M", path, &parts.1, &whole.1);
                            same_bits("parts V", path, &parts.2, &whole.2);
                            same_bits("parts zad", path, &parts.3, &whole.3);
                            assert_eq!(parts.4, whole.4, "[{path}] kept");
                            assert!(parts.5 == whole.5, "[{path}] compact codes of parts");
                            // The step moved θ (not two no-ops compared).
                            assert!(
                                whole
                                    .0
                                    .iter()
                                    .zip(&theta)
                                    .any(|(a, b)| a.to_bits() != b.to_bits())
                            );
                        }
                    }
                }
            }
        }
    };
}
typed!(f32s, f32);
typed!(f64s, f64);

fn config() -> ProptestConfig {
    let cases = cases(48);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// `h = 12` is not a multiple of `k² = 16`: a shuffle of it is refused, not misread.
#[test]
#[should_panic(expected = "not a multiple of k²")]
fn a_shuffle_needs_whole_segments_of_blocks() {
    let (mut p, mut y) = ([0.0f64; 12], [0.0f64; 12]);
    let w = Wiring::Shuffle(Shuffle {
        width: 12,
        inverse: false,
        tiles: None,
        offset: 0,
    });
    Kernels::reference().layer_forward_into(4, &[0.0; 48], w, &[0.0; 12], &mut p, &mut y);
}

/// `h = 16`, `k = 2`, `T = 2` fixed, on every path (the Miri run reaches every cursor here).
#[test]
fn fixed_case_every_wiring_every_path() {
    let (k, tile, h) = (2, 2, 16);
    let tau: Vec<u16> = (0..h).map(|j| [1, 0][j % 2]).collect();
    let c = Case {
        k,
        tile,
        h,
        tau_inv: tau.clone(),
        tau,
        unit: (0..64).map(|i| (i as f64 * 0.7 + 0.3).sin()).collect(),
        scale_exp: 0,
    };
    maps(&c);
    f32s::layers(&c);
    f64s::layers(&c);
    f32s::fused(&c);
    f64s::fused(&c);
}

/// Long segments (`r` up to 300; the property cases stop at `r = 192` and keep activations in
/// `T`), with a tile that does not divide them, and the forward with bf16 kept activations:
/// every path through the structured wiring and through its index keeps the reference's bits.
/// Values with a prime period, so that reading a wrong window of `x` shows.
#[test]
fn long_segments_and_bf16_kept_activations() {
    // Under Miri (`fast()`) one small case: k = 1, still r > 192 and a cut last tile.
    let cases: &[(usize, usize, usize)] = if fast() {
        &[(1, 200, 7)]
    } else {
        &[(4, 70, 12), (3, 90, 12), (1, 300, 7)]
    };
    for &(k, m, tile) in cases {
        let h = k * k * m;
        let r = h / k;
        assert!(r > 192 && r % tile != 0);
        // Identity offsets inside each tile (a tile per `tile` positions, the last one cut).
        let tau: Vec<u16> = (0..k)
            .flat_map(|_| (0..r).map(move |p| (p % tile) as u16))
            .collect();
        let c = Case {
            k,
            tile,
            h,
            tau_inv: tau.clone(),
            tau,
            unit: (0..1009).map(|i| (i as f64 * 0.3 + 0.1).cos()).collect(),
            scale_exp: 1,
        };
        maps(&c);
        f32s::layers(&c);
        f64s::layers(&c);
        f32s::fused(&c);
        f64s::fused(&c);
        f32s::fused_parts(&c);
        f64s::fused_parts(&c);
        bf16_forward::<f32>(&c);
        bf16_forward::<f64>(&c);
    }
}

fn bf16_forward<T: Float + std::fmt::Debug + 'static>(c: &Case) {
    let (k, h) = (c.k, c.h);
    let (b, x) = (c.vals::<T>(3, h * k), c.vals::<T>(5, h));
    for w in c.wirings() {
        let idx = sources(w, k, h);
        let q = Wiring::Index(&idx);
        let (mut p0, mut y0) = (vec![Bf16(1); h], vec![T::nan(); h]);
        reference::layer_forward_into(k, &b, q, &x, &mut p0, &mut y0);
        for kern in kernels() {
            let path = kern.path();
            // The kept activations are rounded copies: the reference's bits on every path. The
            // products may be fused on a SIMD path: its structured forward equals its index's.
            let (mut pq, mut yq) = (vec![Bf16(1); h], vec![T::nan(); h]);
            kern.layer_forward_into(k, &b, q, &x, &mut pq, &mut yq);
            let (mut p, mut y) = (vec![Bf16(1); h], vec![T::nan(); h]);
            kern.layer_forward_into(k, &b, w, &x, &mut p, &mut y);
            assert_eq!(pq, p0, "[{path}] bf16 kept activations, index");
            assert_eq!(p, p0, "[{path}] bf16 kept activations, structured");
            same_bits("bf16 forward y", path, &y, &yq);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn structured_sources_are_the_definitions(c in case()) {
        maps(&c);
    }

    #[test]
    fn structured_layers_equal_their_index_on_bits(c in case()) {
        f32s::layers(&c);
        f64s::layers(&c);
    }

    #[test]
    fn structured_fused_sweep_equals_its_index_on_bits(c in case()) {
        f32s::fused(&c);
        f64s::fused(&c);
    }

    #[test]
    fn a_fused_adam_layer_in_parts_equals_the_whole_on_bits(c in case()) {
        f32s::fused_parts(&c);
        f64s::fused_parts(&c);
    }
}
