//! The memory floor of one LODO step (paper §3; the roofline bench's issue 3, 12 and 17
//! sections, and the MNIST bench's share of a step, issue 19): the bytes a step must move
//! and the copy bandwidth they are divided by, in one place.
//!
//! A streaming step of the block network (`N` layers of width `h`, `k × k` blocks, floats of
//! `F` bytes, `θ` stored in `s_W` bytes: `F`, or 4 with θ in f32 below an f64 `T`) reads `θ`
//! four times and writes it once (`5k·s_W` per hidden unit and layer),
//! reads and writes Adam's moments `M`, `V` once (`4k·s_M`), reads and writes each pass's input
//! and output (`10·F`), and writes the kept activations once and reads them once (`4·s_A`):
//!
//! $$ \text{bytes} = N h \,(5k\,s_W + 4k\,s_M + 10F + 4 s_A) $$
//!
//! with `s_M` = `F` (full), 2 (bf16) or `1 + 4/tile` (q8: one 8-byte scale pair per Adam tile,
//! shared by `M` and `V`), and `s_A` = `F` or 2 (bf16). For the full state this is
//! `(9k + 14)·N·h·F`. The floor is `bytes / copy bandwidth`; it assumes nothing overlaps and
//! that the permutation passes cost no more than a copy (the roofline bench adds `Random`'s
//! gather premium separately).

use std::hint::black_box;
use std::time::{Duration, Instant};

use lodo_core::Precision;

/// Bytes per stored number of a state policy: `F` for [`Precision::Full`], 2 for bf16, and
/// for q8 `1 + 4/tile` (`tile` = `lodo_kernels::compact::adam_tile(k)`: one 8-byte scale pair
/// per tile shared by two moments).
#[must_use]
pub fn stored_bytes(precision: Precision, float_bytes: usize, k: usize) -> f64 {
    match precision {
        Precision::Full => float_bytes as f64,
        Precision::Bf16 => 2.0,
        Precision::Q8 => 1.0 + 4.0 / lodo_kernels::compact::adam_tile(k) as f64,
    }
}

/// The bytes one step moves: `N·h·(5k·s_W + 4k·s_M + 10·F + 4·s_A)` (module docs), for
/// `layers` = N, `hidden` = h, `block` = k, `float_bytes` = F, `weight_bytes` = `s_W` (θ's
/// stored width), the moments' and the kept activations' precisions.
#[must_use]
pub fn step_bytes(
    layers: usize,
    hidden: usize,
    block: usize,
    (float_bytes, weight_bytes): (usize, usize),
    moments: Precision,
    activations: Precision,
) -> f64 {
    let (k, f, w) = (block as f64, float_bytes as f64, weight_bytes as f64);
    let s_m = stored_bytes(moments, float_bytes, block);
    let s_a = stored_bytes(activations, float_bytes, block);
    (layers * hidden) as f64 * (5.0 * k * w + 4.0 * k * s_m + 10.0 * f + 4.0 * s_a)
}

/// Streaming copy bandwidth (GB/s, bytes read + bytes written) with the copy split over the
/// threads of `pool`, best of 6, between two buffers of `bytes` each (the size of the working
/// set it stands for: beyond the last-level cache at large sizes, inside it at small ones).
#[must_use]
pub fn copy_bandwidth_on(pool: &rayon::ThreadPool, bytes: usize) -> f64 {
    use rayon::prelude::*;
    let len = (bytes / 8).max(1 << 10);
    let src: Vec<f64> = (0..len).map(|i| i as f64).collect();
    let mut dst = vec![1.0f64; len];
    let part = len.div_ceil(pool.current_num_threads());
    let mut best = Duration::MAX;
    for _ in 0..6 {
        let t = Instant::now();
        pool.install(|| {
            dst.par_chunks_mut(part)
                .zip(src.par_chunks(part))
                .for_each(|(d, s)| d.copy_from_slice(black_box(s)));
        });
        black_box(&mut dst);
        best = best.min(t.elapsed());
    }
    2.0 * (len * 8) as f64 / best.as_secs_f64() / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_state_is_nine_k_plus_fourteen() {
        // The roofline bench's families formula, (9k + 14)·N·h·F, for k = 4, f32.
        let b = step_bytes(16, 1000, 4, (4, 4), Precision::Full, Precision::Full);
        assert_eq!(
            b.to_bits(),
            (((9 * 4 + 14) * 16 * 1000 * 4) as f64).to_bits()
        );
        // bf16 moments and activations: N·h·(5k·4 + 4k·2 + 40 + 8).
        let b = step_bytes(2, 10, 4, (4, 4), Precision::Bf16, Precision::Bf16);
        assert_eq!(
            b.to_bits(),
            (20.0f64 * (80.0 + 32.0 + 40.0 + 8.0)).to_bits()
        );
        // f64 with θ in f32: 5k·4 bytes of θ traffic instead of 5k·8 per unit and layer.
        let full = step_bytes(2, 10, 4, (8, 8), Precision::Q8, Precision::Bf16);
        let theta32 = step_bytes(2, 10, 4, (8, 4), Precision::Q8, Precision::Bf16);
        assert_eq!(
            (full - theta32).to_bits(),
            (20.0f64 * 5.0 * 4.0 * 4.0).to_bits()
        );
    }
}
