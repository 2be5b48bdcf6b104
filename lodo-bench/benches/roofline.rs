//! Roofline report for the LODO step (issue 3). Run with
//! `cargo bench -p lodo-bench --bench roofline` (single thread; about a minute and ~4 GB of RAM
//! at n = 1e6 in f64). `LODO_ROOFLINE_QUICK=1` shrinks the sizes for a smoke run;
//! `LODO_ROOFLINE_ONLY=f32` (or `f64`) runs one element type.
//!
//! In one run it measures:
//! 1. **Streaming copy bandwidth**: `dst.copy_from_slice(src)` over two 256 MiB buffers (far
//!    beyond the last-level cache), best of 6; bandwidth = bytes read + bytes written over time.
//!    A read-only sum over one buffer is printed beside it.
//! 2. **LODO step at n = 1e6** (f32, f64; `N = 16`, `k = 4`, `h = 2n`): the minimum traffic a step
//!    must move, `θ, M, V` each read and written once = `6·N·h·k·sizeof(F)` bytes, divided by the
//!    measured step time, as a fraction of the copy bandwidth.
//! 3. **The data-movement floor of the step's design** at n = 1e6, from two figures measured in
//!    the same run: one random gather of `h` numbers (`P x` with this layer size, on the SIMD
//!    path) and the copy bandwidth. A step makes `4N` such passes (forward of `g`, the
//!    hypergradient sweep whose two streams share one gather, forward and backward of the new `m`)
//!    and reads `θ` four times and writes it once, and `M`, `V` once each way:
//!    `9·N·h·k·sizeof(F)` bytes. `floor = 4N·t_gather + 9·NhkF / copy bw` assumes nothing
//!    overlaps; its fraction of the copy bandwidth by the measure (`6NhkF/floor`) is an
//!    estimate of the best this design can report here, not a bound proved for every machine.
//! 4. **LODO step at n = 1e4** (state in cache): GFLOP/s against the core's FMA peak.
//!
//! 5. **Permutation families** (issue 12): for `Random`, `Shuffle` and `TiledShuffle` at
//!    n = 10⁴, 10⁵, 10⁶, f32 and f64, on one thread and on both cores (`--features parallel`;
//!    without it only one thread), the step time against **that family's floor, measured in
//!    the same run**: `floor = (9k + 14)·N·h·F / copy bw + 4N·(t_perm − t_copy)`. The first term
//!    is the traffic of a streaming step (θ read four times and written once, M and V once each
//!    way: `9k·h` per layer; the kept activations and each pass's input and output: `14h`); the
//!    second is what the family's permutation pass costs beyond a plain copy of `h` numbers
//!    (`t_perm`: `gather_wired` through the family's forward wiring; `t_copy`: `copy_from_slice`
//!    of the same length; both best of 5, same thread count), paid by the `4N` passes. A tile
//!    sweep (f32, n = 10⁶, one thread) shows the tile's effect. `LODO_ROOFLINE_SECTIONS=families`
//!    runs this section alone.
//! 6. **Compact state** (issue 17): `Shuffle` at n = 10⁶, f32 and f64, on one thread and (with
//!    `--features parallel`) on both cores, for each
//!    state policy (full; bf16 moments + bf16 activations; q8 moments + bf16 activations), the
//!    step time against **that layout's floor, measured in the same run**:
//!    `floor = N·h·(5k·F + 4k·s_M + 10·F + 4·s_A) / copy bw`: θ read four times and written
//!    once (`5k·F`), M and V read and written once (`4k·s_M`, `s_M` = F, 2, or 1 + 4/tile for
//!    q8's scale pair per tile), the passes' inputs and outputs (`10·F`), and the kept
//!    activations written once and read once (`4·s_A`, `s_A` = F or 2); in f64 also q8 + bf16 with
//!    θ held in f32 (`WeightPrecision::F32`: θ's `5k·F` becomes `5k·4`). The ratio of the full
//!    floor to a compact one bounds the speed-up fewer bytes can buy. Beside it, each layout's
//!    **arithmetic**: the same step at n = 500 (the state in L1/L2, so no memory stalls), timed
//!    per weight and scaled to the table's `N·h·k` weights, a lower bound on the step from the
//!    instructions alone (the decode, Adam and encode of compact moments, the bf16 and f32
//!    roundings), divided by the thread count for the both-cores table; a step cannot beat
//!    `max(floor, arithmetic)`. `LODO_ROOFLINE_SECTIONS=compact`
//!    runs this section alone.
//!
//! Each figure is printed for the reference kernel path and for the best SIMD path, switched
//! in-process with `lodo_kernels::dispatch::force`. Timed: `lodo` (`Lodo::step`: hypergradient
//! fused into Adam, momentum, `apply`, descent), `apply only` (where the time goes) and `adam`.
//!
//! # Flop count of one step (per layer, `h·k` weights)
//! forward of `g`: `2hk`; fused backward sweep: two transposed block mat-vecs `4hk`, gradient
//! `s·(a_r c_c + d_r e_c)` `4hk`, Keras Adam `12hk` (M: 3, V: 4, θ: 5 counting `√` and `÷` as
//! one flop each); forward and backward of the new `m`: `4hk`. Total `26·N·h·k`, plus `5n` for
//! momentum, scaling and descent. Permutations move data and count zero.
//!
//! # FMA peak
//! Nominal: the `cpu MHz` of `/proc/cpuinfo` × 2 FMA units × (16 f32 | 8 f64) lanes × 2 flops,
//! i.e. two 512-bit FMA ports (Ice Lake-SP and later Xeons; an assumption, stated in the
//! output). Measured: 8 independent chains of 16-lane FMAs (`lodo_kernels::probe`) on the same
//! path, which also shows what the frequency under load really is.

use std::hint::black_box;
use std::time::{Duration, Instant};

use lodo_bench::floor::{copy_bandwidth_on, step_bytes};
use lodo_core::random::Stream;
use lodo_core::{
    Adam, AdamConfig, BlockConfig, BlockPreconditioner, Lodo, LodoConfig, Optimizer,
    PermutationFamily, Precision, Preconditioner, Real, WeightPrecision,
};
use lodo_kernels::wiring::{Shuffle, Tiles, Wiring};
use lodo_kernels::{Kernels, Path, dispatch};

const LAYERS: usize = 16;
const K: usize = 4;

fn copy_bandwidth() -> (f64, f64) {
    let len = 32 << 20; // 32 Mi f64 = 256 MiB per buffer
    let src: Vec<f64> = (0..len).map(|i| i as f64).collect();
    let mut dst = vec![1.0f64; len];
    let mut best = Duration::MAX;
    for _ in 0..6 {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        best = best.min(t.elapsed());
    }
    let copy = 2.0 * (len * 8) as f64 / best.as_secs_f64() / 1e9;
    let words: Vec<u64> = src.iter().map(|x| x.to_bits()).collect();
    drop(dst);
    let mut best = Duration::MAX;
    for _ in 0..6 {
        let t = Instant::now();
        let s = black_box(&words)
            .chunks_exact(8)
            .fold([0u64; 8], |mut acc, c| {
                for (a, &x) in acc.iter_mut().zip(c) {
                    *a = a.wrapping_add(x);
                }
                acc
            });
        black_box(s);
        best = best.min(t.elapsed());
    }
    let read = (len * 8) as f64 / best.as_secs_f64() / 1e9;
    (copy, read)
}

fn gradient<T: Real>(t: usize, g: &mut [T]) {
    for (i, gi) in g.iter_mut().enumerate() {
        *gi = T::from((((i * 7 + t * 13) % 101) as f64 - 50.0) * 1e-3).expect("f64");
    }
}

/// Best and median seconds of `reps` timed steps after `warm` untimed ones.
fn time_steps(warm: usize, reps: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    for t in 0..warm {
        f(t);
    }
    let mut ts: Vec<f64> = (0..reps)
        .map(|r| {
            let t = Instant::now();
            f(warm + r);
            t.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    (ts[0], ts[ts.len() / 2])
}

/// Best and median seconds of `reps` steps of `lodo` on `pool` after `warm` untimed ones, on the
/// gradients of [`gradient`] from `x = 0`. The whole loop runs on one of the pool's threads:
/// entering the pool once per step (a hand-off and a wake-up) added tens of µs, 40 % of an
/// in-cache step at n = 500.
fn lodo_step_times<T: Real>(
    lodo: &mut Lodo<T>,
    warm: usize,
    reps: usize,
    pool: &rayon::ThreadPool,
) -> (f64, f64) {
    let n = lodo.dim();
    let (mut g, mut x) = (vec![T::zero(); n], vec![T::zero(); n]);
    pool.install(|| {
        time_steps(warm, reps, |t| {
            gradient(t % 17, &mut g);
            lodo.step(black_box(&mut x), black_box(&g)).expect("finite");
        })
    })
}

fn config<T: Real>() -> LodoConfig<T> {
    LodoConfig::default()
        .with_alpha0(T::from(1e-3).expect("f64"))
        .expect("alpha0")
}

struct Row {
    variant: &'static str,
    path: Path,
    best: f64,
    median: f64,
}

fn measure<T: Real>(n: usize, paths: &[Path], reps: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut g = vec![T::zero(); n];
    let mut x = vec![T::zero(); n];
    // Build once, then switch paths (the kernels are looked up on every call); the state keeps
    // evolving, which does not change the work.
    let mut lodo = Lodo::<T>::new(n, config(), 1).expect("config");
    let mut pre =
        BlockPreconditioner::<T>::from_config(n, config().preconditioner(), &mut Stream::new(1))
            .expect("config");
    for &path in paths {
        dispatch::force(path).expect("available");
        let (best, median) = time_steps(2, reps, |t| {
            gradient(t % 17, &mut g);
            lodo.step(black_box(&mut x), black_box(&g)).expect("finite");
        });
        rows.push(Row {
            variant: "lodo",
            path,
            best,
            median,
        });
        // Where the time goes: `apply` alone (forward + backward of m: θ read twice).
        let mut out = vec![T::zero(); n];
        let m = lodo.momentum().to_vec();
        let (best, median) = time_steps(1, reps, |_| pre.apply(black_box(&m), &mut out));
        rows.push(Row {
            variant: "apply only",
            path,
            best,
            median,
        });
    }
    drop((lodo, pre));
    let mut adam = Adam::<T>::new(n, T::from(1e-3).expect("f64")).expect("lr");
    let (best, median) = time_steps(2, reps.max(5), |t| {
        gradient(t % 17, &mut g);
        adam.step(black_box(&mut x), black_box(&g)).expect("finite");
    });
    rows.push(Row {
        variant: "adam",
        path: Path::Reference,
        best,
        median,
    });
    rows
}

/// One random gather of `h` numbers on `path` (best of 5), and the floor
/// `4N·t_gather + 9·weight_bytes / copy bandwidth` (see the module docs).
fn design_floor<T: Real>(h: usize, weight_bytes: usize, copy_gbs: f64, path: Path) -> (f64, f64) {
    let kernels = Kernels::new(path).expect("available");
    let perm = Stream::new(3).permutation(h);
    let x: Vec<T> = (0..h).map(|i| T::from(i % 1000).expect("f64")).collect();
    let mut y = vec![T::zero(); h];
    let (t_gather, _) = time_steps(1, 5, |_| kernels.gather(&perm, black_box(&x), &mut y));
    let stream = 9.0 * weight_bytes as f64 / (copy_gbs * 1e9);
    (t_gather, 4.0 * LAYERS as f64 * t_gather + stream)
}

/// The forward wiring of one layer of `family` at width `h` (what a step's permutation passes
/// read through), with `tau` holding random offsets inside the tiles.
fn family_wiring<'a>(
    family: PermutationFamily,
    h: usize,
    perm: &'a [u32],
    tau: &'a [u16],
) -> Wiring<'a> {
    let shuffle = |tiles| {
        Wiring::Shuffle(Shuffle {
            width: h,
            inverse: false,
            tiles,
            offset: 0,
        })
    };
    match family {
        PermutationFamily::Random => Wiring::Index(perm),
        PermutationFamily::Shuffle => shuffle(None),
        PermutationFamily::TiledShuffle { tile } => shuffle(Some(Tiles { tile, local: tau })),
    }
}

/// `(t_perm, t_copy)`: one pass of `h` numbers through `wiring`, and one plain copy of `h`
/// numbers, split over the threads of `pool` (best of 5 each).
fn permutation_pass<T: Real>(pool: &rayon::ThreadPool, h: usize, wiring: Wiring<'_>) -> (f64, f64) {
    use rayon::prelude::*;
    let kernels = Kernels::selected();
    let x: Vec<T> = (0..h).map(|i| T::from(i % 1000).expect("f64")).collect();
    let mut y = vec![T::zero(); h];
    let part = (h / K).div_ceil(pool.current_num_threads()) * K;
    let (t_perm, _) = time_steps(1, 5, |_| {
        pool.install(|| {
            y.par_chunks_mut(part).enumerate().for_each(|(i, yp)| {
                let w = wiring.part(i * part, yp.len());
                kernels.gather_wired(K, w, black_box(&x), yp);
            });
        });
    });
    let (t_copy, _) = time_steps(1, 5, |_| {
        pool.install(|| {
            y.par_chunks_mut(part)
                .zip(x.par_chunks(part))
                .for_each(|(yp, xp)| yp.copy_from_slice(black_box(xp)));
        });
    });
    (t_perm, t_copy)
}

/// The timed steps' configuration: `family`, the state policy, `α₀ = 10⁻³`.
fn step_config<T: Real>(
    family: PermutationFamily,
    moments: Precision,
    activations: Precision,
    weights: WeightPrecision,
) -> LodoConfig<T> {
    let pc = BlockConfig::<T>::default()
        .with_permutations(family)
        .and_then(|c| c.with_activations(activations))
        .and_then(|c| c.with_weights(weights))
        .expect("policy");
    LodoConfig::new(pc, AdamConfig::default().with_precision(moments))
        .with_alpha0(T::from(1e-3).expect("f64"))
        .expect("alpha0")
}

/// Best step time of LODO with `family` at `n` on the threads of `pool`, and the width `h`.
fn family_step<T: Real>(
    pool: &rayon::ThreadPool,
    n: usize,
    family: PermutationFamily,
    reps: usize,
) -> (f64, usize) {
    let config = step_config(
        family,
        Precision::Full,
        Precision::Full,
        WeightPrecision::Full,
    );
    let mut lodo = Lodo::<T>::new(n, config, 1).expect("config");
    let h = lodo.preconditioner().hidden();
    let (best, _) = lodo_step_times(&mut lodo, 1, reps, pool);
    (best, h)
}

/// The family table: step time against the family's floor measured in the same run.
fn families<T: Real>(name: &str, bytes: usize, sizes: &[usize], pools: &[rayon::ThreadPool]) {
    println!("\n## Permutation families, {name}");
    println!(
        "| n | threads | copy bw at θ's size | family | h | best step | t_perm − t_copy per pass | floor | step / floor | speed-up over random |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        let reps = if n >= 1_000_000 {
            3
        } else if n >= 100_000 {
            5
        } else {
            20
        };
        for pool in pools {
            let threads = pool.current_num_threads();
            // The copy bandwidth at the size of θ (N·h·k numbers), measured now: beyond the
            // last-level cache at n = 10⁶, inside it at small n.
            let copy_gbs = copy_bandwidth_on(pool, LAYERS * 2 * n * K * bytes);
            let mut random_step = None;
            for family in FAMILIES {
                let (step, h) = family_step::<T>(pool, n, family, reps);
                let perm = Stream::new(3).permutation(h);
                let tau = tile_offsets(family, h);
                let (t_perm, t_copy) =
                    permutation_pass::<T>(pool, h, family_wiring(family, h, &perm, &tau));
                let premium = (t_perm - t_copy).max(0.0);
                // (9k + 14)·N·h·F: the full state's bytes (`lodo_bench::floor`).
                let moved = step_bytes(
                    LAYERS,
                    h,
                    K,
                    (bytes, bytes),
                    Precision::Full,
                    Precision::Full,
                );
                let stream = moved / (copy_gbs * 1e9);
                // (copy_gbs is read + written, as the step's traffic is counted.)
                let floor = stream + 4.0 * LAYERS as f64 * premium;
                let random = *random_step.get_or_insert(step);
                println!(
                    "| {n} | {threads} | {copy_gbs:.1} GB/s | {} | {h} | {:.2} ms | {:.3} ms | {:.2} ms | {:.2} | {:.2}× |",
                    family_name(family),
                    step * 1e3,
                    premium * 1e3,
                    floor * 1e3,
                    step / floor,
                    random / step
                );
            }
        }
    }
}

/// The families the table compares (`Random` first: the speed-ups are against it).
const FAMILIES: [PermutationFamily; 3] = [
    PermutationFamily::Random,
    PermutationFamily::Shuffle,
    PermutationFamily::TiledShuffle { tile: 64 },
];

fn family_name(family: PermutationFamily) -> String {
    match family {
        PermutationFamily::Random => "random".into(),
        PermutationFamily::Shuffle => "shuffle".into(),
        PermutationFamily::TiledShuffle { tile } => format!("tiled:{tile}"),
    }
}

/// Random offsets inside each tile of `family` (empty for the untiled families).
fn tile_offsets(family: PermutationFamily, h: usize) -> Vec<u16> {
    let PermutationFamily::TiledShuffle { tile } = family else {
        return Vec::new();
    };
    // Tiles restart at every segment of r = h/k outputs (the last one of a segment is shorter).
    let (mut rng, r) = (Stream::new(5), h / K);
    let mut tau = Vec::with_capacity(h);
    for _ in 0..K {
        for start in (0..r).step_by(tile) {
            let len = tile.min(r - start);
            tau.extend(rng.permutation(len).into_iter().map(|v| v as u16));
        }
    }
    tau
}

/// The step at n = 10⁶ (f32, one thread) for tiles from 8 to 4096, against `Shuffle`.
fn tile_sweep(pool: &rayon::ThreadPool) {
    println!("\n## Tile sweep, f32, n = 1000000, 1 thread (best of 3 steps)");
    println!("| family | h | best step |");
    println!("|---|---|---|");
    for family in [
        PermutationFamily::Shuffle,
        PermutationFamily::TiledShuffle { tile: 8 },
        PermutationFamily::TiledShuffle { tile: 64 },
        PermutationFamily::TiledShuffle { tile: 512 },
        PermutationFamily::TiledShuffle { tile: 4096 },
    ] {
        let (step, h) = family_step::<f32>(pool, 1_000_000, family, 3);
        println!("| {} | {h} | {:.1} ms |", family_name(family), step * 1e3);
    }
}

fn cpu_mhz() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn fma_peak<T: Real>(path: Path) -> f64 {
    let kernels = Kernels::new(path).expect("available");
    let x = T::from(0.999_999).expect("f64");
    let y = T::from(1e-7).expect("f64");
    // Grow the run until it takes 0.2 s (the reference path's `mul_add` is a software routine),
    // then keep the best of three runs of that length.
    let run = |iters: usize| {
        let t = Instant::now();
        let (flops, sum) = lodo_kernels::probe::fma_chains::<T>(kernels, iters, x, y);
        black_box(sum);
        let secs = t.elapsed().as_secs_f64();
        (secs, secs / flops as f64)
    };
    let mut iters = 10_000;
    let mut best = loop {
        let (secs, per_flop) = run(iters);
        if secs > 0.2 {
            break per_flop;
        }
        iters *= 2;
    };
    for _ in 0..2 {
        best = best.min(run(iters).1);
    }
    1.0 / best / 1e9
}

fn report<T: Real>(name: &str, bytes: usize, copy_gbs: f64, simd: Path, quick: bool) {
    let paths = [Path::Reference, simd];
    let big = if quick { 100_000 } else { 1_000_000 };
    let h = 2 * big;
    let weights = LAYERS * h * K;
    let min_bytes = 6.0 * (weights * bytes) as f64;
    println!(
        "\n## {name}, n = {big} (N·h·k = {weights}; 6·N·h·k·sizeof = {:.2} GB)",
        min_bytes / 1e9
    );
    println!("| variant | path | best step | median | 6NhkF/best | of copy bw |");
    println!("|---|---|---|---|---|---|");
    for r in measure::<T>(big, &paths, 3) {
        if r.variant == "apply only" {
            let gbs = 2.0 * (weights * bytes) as f64 / r.best / 1e9;
            println!(
                "| apply only | {} | {:.1} ms | {:.1} ms | 2NhkF/best = {gbs:.2} GB/s | {:.1}% |",
                r.path.name(),
                r.best * 1e3,
                r.median * 1e3,
                100.0 * gbs / copy_gbs
            );
            continue;
        }
        if r.variant == "adam" {
            // Plain Adam moves 7n numbers (x, g, M, V read; x, M, V written): its own figure.
            let gbs = 7.0 * (big * bytes) as f64 / r.best / 1e9;
            println!(
                "| adam (own traffic 7nF) | - | {:.1} ms | {:.1} ms | {gbs:.2} GB/s | {:.1}% |",
                r.best * 1e3,
                r.median * 1e3,
                100.0 * gbs / copy_gbs
            );
            continue;
        }
        let gbs = min_bytes / r.best / 1e9;
        let path = r.path.name();
        println!(
            "| {} | {path} | {:.1} ms | {:.1} ms | {gbs:.2} GB/s | {:.1}% |",
            r.variant,
            r.best * 1e3,
            r.median * 1e3,
            100.0 * gbs / copy_gbs
        );
    }
    let (t_gather, floor) = design_floor::<T>(h, weights * bytes, copy_gbs, simd);
    let floor_gbs = min_bytes / floor / 1e9;
    println!(
        "| data-movement floor | 4N gathers of h ({:.2} ms each, {:.2} ns per number) + 9NhkF at copy bw | {:.1} ms | - | {floor_gbs:.2} GB/s | {:.1}% |",
        t_gather * 1e3,
        t_gather / h as f64 * 1e9,
        floor * 1e3,
        100.0 * floor_gbs / copy_gbs
    );
    let small = 10_000;
    let h = 2 * small;
    let flops = 26.0 * (LAYERS * h * K) as f64 + 5.0 * small as f64;
    let peak_ref = fma_peak::<T>(Path::Reference);
    let peak_simd = fma_peak::<T>(simd);
    let lanes = 64 / bytes;
    let nominal = cpu_mhz().map(|mhz| mhz * 1e-3 * 2.0 * lanes as f64 * 2.0);
    println!(
        "\n## {name}, n = {small}: {:.2} Mflop per step (26·N·h·k + 5n)",
        flops / 1e6
    );
    println!(
        "FMA peak: nominal {} GFLOP/s (cpu MHz × 2 ports × {lanes} lanes × 2); measured chains: \
         {peak_simd:.1} GFLOP/s on {simd}, {peak_ref:.1} GFLOP/s on reference (no hardware FMA \
         there: `mul_add` is a libm call)",
        nominal.map_or_else(|| "?".into(), |p| format!("{p:.1}"))
    );
    println!("| variant | path | best step | GFLOP/s | of measured {simd} peak |");
    println!("|---|---|---|---|---|");
    for r in measure::<T>(small, &paths, 30) {
        if r.variant == "apply only" {
            continue;
        }
        if r.variant == "adam" {
            println!("| adam | - | {:.1} µs | - | - |", r.best * 1e6);
            continue;
        }
        let gf = flops / r.best / 1e9;
        println!(
            "| {} | {} | {:.1} µs | {gf:.2} | {:.1}% |",
            r.variant,
            r.path.name(),
            r.best * 1e6,
            100.0 * gf / peak_simd
        );
    }
}

fn main() {
    // Criterion-style filters are passed by `cargo bench`; this program takes none.
    let quick = std::env::var_os("LODO_ROOFLINE_QUICK").is_some();
    let simd = dispatch::best();
    println!(
        "# LODO roofline ({}; best kernel path: {simd})",
        cpu_model()
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start (2 cores, shared): {}", load.trim());
    }
    let only = std::env::var("LODO_ROOFLINE_ONLY").unwrap_or_default();
    let sections = std::env::var("LODO_ROOFLINE_SECTIONS").unwrap_or_default();
    dispatch::force(simd).expect("available");
    let pools = thread_pools();
    if sections == "compact" {
        let n = if quick { 100_000 } else { 1_000_000 };
        for pool in &pools {
            if only != "f64" {
                compact::<f32>("f32", 4, n, pool);
            }
            if only != "f32" {
                compact::<f64>("f64", 8, n, pool);
            }
        }
        return;
    }
    if sections != "families" {
        let (copy, read) = copy_bandwidth();
        println!(
            "streaming copy: {copy:.2} GB/s (read + written, 2 × 256 MiB, best of 6); read-only sum: {read:.2} GB/s"
        );
        if only != "f64" {
            report::<f32>("f32", 4, copy, simd, quick);
        }
        if only != "f32" {
            report::<f64>("f64", 8, copy, simd, quick);
        }
    }
    dispatch::force(simd).expect("available");
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    if only != "f64" {
        families::<f32>("f32", 4, sizes, &pools);
    }
    if only != "f32" {
        families::<f64>("f64", 8, sizes, &pools);
    }
    if !quick && only != "f64" {
        tile_sweep(&pools[0]);
    }
}

/// One thread, and both cores when lodo-core splits layers (`--features parallel`).
fn thread_pools() -> Vec<rayon::ThreadPool> {
    let mut counts = vec![1];
    if cfg!(feature = "parallel") {
        counts.push(
            std::thread::available_parallelism()
                .map_or(2, |c| c.get())
                .max(2),
        );
    } else {
        println!("\n(one thread only: build with `--features parallel` for the both-cores rows)");
    }
    counts
        .into_iter()
        .map(|t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("thread pool")
        })
        .collect()
}

/// The state policies of the compact table: (name, Adam's moments, kept activations, θ).
/// `θ in f32` is for the f64 table only (it needs a wider `T`).
const POLICIES: [(&str, Precision, Precision, WeightPrecision); 6] = [
    (
        "full",
        Precision::Full,
        Precision::Full,
        WeightPrecision::Full,
    ),
    (
        "bf16",
        Precision::Bf16,
        Precision::Bf16,
        WeightPrecision::Full,
    ),
    ("q8", Precision::Q8, Precision::Bf16, WeightPrecision::Full),
    (
        "q8, full activations",
        Precision::Q8,
        Precision::Full,
        WeightPrecision::Full,
    ),
    (
        "q8, θ in f32",
        Precision::Q8,
        Precision::Bf16,
        WeightPrecision::F32,
    ),
    (
        "bf16, θ in f32",
        Precision::Bf16,
        Precision::Bf16,
        WeightPrecision::F32,
    ),
];

/// The size whose whole optimizer state sits in L1/L2 (about 1.5 MB in f64 with the full
/// state), at which a step's time is its arithmetic.
const IN_CACHE_N: usize = 500;

/// Seconds per weight of a step of `config` at [`IN_CACHE_N`] (best of 201 after 20 warm-up steps):
/// the layout's arithmetic with the state in cache.
fn in_cache_seconds_per_weight<T: Real>(config: LodoConfig<T>, pool: &rayon::ThreadPool) -> f64 {
    let mut lodo = Lodo::<T>::new(IN_CACHE_N, config, 1).expect("config");
    let weights = (LAYERS * lodo.preconditioner().hidden() * K) as f64;
    let (best, _) = lodo_step_times(&mut lodo, 20, 201, pool);
    best / weights
}

/// The compact-state table: each policy's step (`Shuffle`, on the threads of `pool`) against
/// its own floor, with the copy bandwidth measured now at the size of θ on those threads (see
/// the module docs, section 6). The arithmetic bound is the in-cache step (one thread: at
/// [`IN_CACHE_N`] the layers are too small to split) divided by the thread count, as if the
/// threads shared it perfectly.
fn compact<T: Real>(name: &str, bytes: usize, n: usize, pool: &rayon::ThreadPool) {
    let threads = pool.current_num_threads();
    println!(
        "\n## Compact state, {name}, n = {n}, Shuffle, {threads} thread(s) (best and median of 5 steps)"
    );
    println!(
        "| state | B/param held | bytes moved per step | floor | arithmetic (n = {IN_CACHE_N}, scaled, ÷ {threads}) | best step | median | step / floor | step / max(floor, arithmetic) | speed-up over full | full's best / max(floor, arithmetic) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let copy_gbs = copy_bandwidth_on(pool, LAYERS * 2 * n * K * bytes);
    let mut full = None;
    for (policy, moments, activations, weights) in POLICIES {
        if weights == WeightPrecision::F32 && bytes <= 4 {
            continue;
        }
        let config = step_config(PermutationFamily::Shuffle, moments, activations, weights);
        let held = Lodo::<T>::memory_bytes(n, &config).expect("config");
        let mut lodo = Lodo::<T>::new(n, config, 1).expect("config");
        let h = lodo.preconditioner().hidden();
        // θ crosses the bus 5 times a step (see lodo_bench::floor), in its stored width.
        let weight_bytes = match weights {
            WeightPrecision::Full => bytes,
            WeightPrecision::F32 => 4,
        };
        let moved = step_bytes(LAYERS, h, K, (bytes, weight_bytes), moments, activations);
        let floor = moved / (copy_gbs * 1e9);
        let arithmetic = in_cache_seconds_per_weight::<T>(config, pool) * (LAYERS * h * K) as f64
            / threads as f64;
        let bound = floor.max(arithmetic);
        let (best, median) = lodo_step_times(&mut lodo, 1, 5, pool);
        let (full_best, full_floor) = *full.get_or_insert((best, floor));
        println!(
            "| {policy} | {:.0} | {:.2} GB ({:.0}h) | {:.1} ms ({:.2}× below full's) | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} | {:.2} | {:.2}× | {:.2}× |",
            held as f64 / n as f64,
            moved / 1e9,
            moved / (LAYERS * h) as f64,
            floor * 1e3,
            full_floor / floor,
            arithmetic * 1e3,
            best * 1e3,
            median * 1e3,
            best / floor,
            best / bound,
            full_best / best,
            full_best / bound
        );
    }
    println!(
        "copy bandwidth at θ's size, measured in this run: {copy_gbs:.1} GB/s (read + written)"
    );
}
