//! A throughput probe for reports: fused multiply-adds in independent chains, compiled per path
//! like the kernels, so a roofline report can compare a kernel's FLOP rate with what the core
//! sustains. Not part of the optimizer.

use num_traits::Float;

use crate::dispatch::Kernels;
#[cfg(target_arch = "x86_64")]
use crate::dispatch::Path;

/// Chains of independent accumulators, enough to cover FMA latency × ports on current cores.
const CHAINS: usize = 8;
/// Lanes per chain (one 512-bit register of f32, two of f64).
const LANES: usize = 16;

#[inline(always)]
fn body<T: Float>(iters: usize, x: T, y: T) -> T {
    let mut acc = [T::zero(); CHAINS * LANES];
    let mut seed = T::zero();
    for a in &mut acc {
        *a = seed;
        seed = seed + y;
    }
    for _ in 0..iters {
        // Fixed trip count over a flat array: LLVM keeps `acc` in registers (an iterator over
        // nested arrays made it spill to memory and use gathers).
        #[allow(clippy::needless_range_loop)]
        for i in 0..CHAINS * LANES {
            acc[i] = acc[i].mul_add(x, y);
        }
    }
    acc.iter().fold(T::zero(), |s, &a| s + a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn body_avx512<T: Float>(iters: usize, x: T, y: T) -> T {
    body(iters, x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn body_avx2<T: Float>(iters: usize, x: T, y: T) -> T {
    body(iters, x, y)
}

/// Runs `iters × 8 × 16` fused multiply-adds `a ← a·x + y` (2 flops each) on the path of
/// `kernels`; returns the number of flops and a checksum (use it, so nothing is optimised
/// away). Pass `x` just below 1 and small `y` to keep values finite.
#[must_use]
pub fn fma_chains<T: Float + 'static>(kernels: Kernels, iters: usize, x: T, y: T) -> (u64, T) {
    let flops = (iters * CHAINS * LANES * 2) as u64;
    let sum = match kernels.path_for::<T>() {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => {
            // SAFETY: `kernels` holds `Path::Avx512` only after `Path::is_available` confirmed
            // avx512f + avx512vl + avx512bw + avx512dq + avx2 + fma (`Kernels::new` or
            // `dispatch::selected`).
            unsafe { body_avx512(iters, x, y) }
        }
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => {
            // SAFETY: `kernels` holds `Path::Avx2` only after `Path::is_available` confirmed
            // avx2 + fma (`Kernels::new` or `dispatch::selected`).
            unsafe { body_avx2(iters, x, y) }
        }
        _ => body(iters, x, y),
    };
    (flops, sum)
}
