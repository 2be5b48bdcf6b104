//! Seeded randomness for the initial network: uniform permutations, Gaussians and Haar-random
//! orthogonal blocks. Everything is drawn from one `Xoshiro256++` stream seeded by the caller, in
//! `f64`, and only then rounded to `T`, so `f32` and `f64` runs start from the same network.

use alloc::vec::Vec;
use num_traits::Float;
use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The crate's random stream.
#[derive(Clone, Debug)]
pub struct Stream(Xoshiro256PlusPlus);

impl Stream {
    /// A stream determined by `seed` alone.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// Uniform on `(0, 1]`, with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.0.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Standard normal by Box–Muller (one of the pair; deterministic and simple):
    /// `√(−2 ln u₁)·cos(2π u₂)`.
    ///
    /// `ln` and `cos` are the `libm` crate's in every build, never the platform's (which differ
    /// in the last bit between C libraries), so the initial network has the same bits on every
    /// platform, with or without std; `sqrt` is correctly rounded everywhere.
    pub fn gaussian(&mut self) -> f64 {
        let u1 = self.uniform();
        let u2 = self.uniform();
        Float::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * core::f64::consts::PI * u2)
    }

    /// A uniformly random permutation of `0..h` (Fisher–Yates).
    pub fn permutation(&mut self, h: usize) -> Vec<u32> {
        let mut p: Vec<u32> = (0..h as u32).collect();
        self.shuffle(&mut p);
        p
    }

    /// Shuffles `p` uniformly in place (Fisher–Yates, the draws of [`Stream::permutation`]).
    pub fn shuffle(&mut self, p: &mut [u32]) {
        for i in (1..p.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
    }

    /// A Haar-random orthogonal `k × k` matrix, row-major, written to `out` (`k²` entries);
    /// allocates nothing.
    ///
    /// Gram–Schmidt (twice, for orthogonality to rounding) on the columns of a Gaussian matrix;
    /// the resulting `R` has a positive diagonal, which makes `Q` Haar-distributed (Mezzadri 2007).
    pub fn orthogonal(&mut self, k: usize, out: &mut [f64]) {
        debug_assert_eq!(out.len(), k * k);
        // Columns stored contiguously while orthogonalising (col j at out[j*k..]), transposed
        // in place at the end.
        for x in out.iter_mut() {
            *x = self.gaussian();
        }
        let cols = out;
        for j in 0..k {
            for _pass in 0..2 {
                for i in 0..j {
                    let dot: f64 = (0..k).map(|r| cols[i * k + r] * cols[j * k + r]).sum();
                    for r in 0..k {
                        cols[j * k + r] -= dot * cols[i * k + r];
                    }
                }
            }
            let norm = Float::sqrt(
                (0..k)
                    .map(|r| cols[j * k + r] * cols[j * k + r])
                    .sum::<f64>(),
            );
            for r in 0..k {
                cols[j * k + r] /= norm;
            }
        }
        for r in 0..k {
            for c in r + 1..k {
                cols.swap(r * k + c, c * k + r);
            }
        }
    }
}
