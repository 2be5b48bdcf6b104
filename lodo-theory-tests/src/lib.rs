//! Numerical checks of the claims of *Learning to Optimize Quasi-Newton Methods* (Liao et al.,
//! TMLR 2023) against `lodo-core`. The statements, their assumptions and derivations are in the
//! crate's `THEORY.md`; the tests live in `tests/`.
//!
//! This library holds only the measuring instruments: dense linear algebra through
//! [`faer`] (pinned), an independent `f64` materialisation of the LODO network `A·Π`
//! ([`network`]), the noisy quadratic bowl and a plain dense-`G` hypergradient SGD ([`bowl`]),
//! fitting of `G(θ)` to target matrices ([`fit`]) and the structural mixing depth ([`mixing`]).

// Index loops mirror the formulas (G_ij, e_i m_j) in this crate's numerics.
#![allow(clippy::needless_range_loop)]

pub mod bowl;
pub mod fit;
pub mod linalg;
pub mod mixing;
pub mod network;

/// The base seed of every randomised test: `LODO_THEORY_SEED` if set (decimal), else a fixed
/// value, so runs are reproducible and a failure can be replayed or varied.
#[must_use]
pub fn seed() -> u64 {
    std::env::var("LODO_THEORY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x10d0_7e57)
}

/// `x` as `f64` (exact for `f32` and `f64`).
#[must_use]
pub fn f<T: lodo_core::Real>(x: T) -> f64 {
    x.to_f64().expect("a float converts to f64")
}
