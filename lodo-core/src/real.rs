//! The float bound used throughout the crate, the one way to write a literal, and the one way
//! to call a function that is not correctly rounded everywhere.
//!
//! # Which float functions the optimizer calls, and why its bits are the same everywhere
//! IEEE 754 rounds `+ − × ÷`, `sqrt` and `fma` correctly, so every platform (and every library
//! that implements them, as `libm` does in software) gives the same bits for them. The other
//! functions are not required to be correctly rounded, and the platforms' libraries differ in
//! the last bit (glibc, musl, macOS and Windows all have their own `pow`, `log`, `cos`). The
//! optimizer therefore calls those through the `libm` crate (a Rust port of musl's, pure
//! software) in **every** build, std or not, so the same seed on the same kernel path gives the
//! same bits on every platform, with or without std (issue 18). The complete list, from
//! `grep` over `lodo-core/src` and `lodo-kernels/src`:
//!
//! | function | where | with std it would be | here |
//! |---|---|---|---|
//! | `powf` | Adam's bias correction `β₁ᵗ`, `β₂ᵗ` (`meta/adam.rs`) | the platform's `pow`/`powf`: not correctly rounded | [`powf`]: `libm::powf` / `libm::pow` |
//! | `ln`, `cos` | Box–Muller draws of the initial blocks (`random.rs`, in `f64`) | the platform's `log`, `cos`: not correctly rounded | `libm::log`, `libm::cos` |
//! | `sqrt` | Adam's `√v̂`, the rate's `√(1−β₂ᵗ)`, Gram–Schmidt norms, the residual ablation | the `sqrt` instruction (or std's) | `num_traits::Float::sqrt`: correctly rounded everywhere (IEEE 754 §5.4.1), the same bits as `libm::sqrt` |
//! | `mul_add` | `lodo-kernels`' FMA kernels only (`fast.rs`; `probe.rs` is a throughput probe, not the optimizer) | the `fma` instruction | kept: correctly rounded everywhere, and those kernels are a different *kernel path* from the reference one, which uses no `mul_add` |
//! | `abs`, `max`, `min`, `is_finite`, `to_bits`, comparisons | everywhere | exact | kept: exact operations |
//!
//! Nothing else of [`num_traits::Float`] is called (no `exp`, `tanh`, `powi`, …). A new call to a
//! function outside `+ − × ÷ sqrt fma` and the exact ones must go through `libm` as [`powf`]
//! does, or the promise breaks.

use core::any::Any;
use core::fmt::Debug;
use num_traits::{Float, FloatConst};

/// Any float LODO can run on: `f32`, `f64`, or another [`num_traits::Float`].
///
/// Blanket-implemented; `sqrt` comes from `libm` without `std` (the same bits: it is correctly
/// rounded), every function that is not correctly rounded from `libm` in every build (see the
/// module docs).
pub trait Real: Float + FloatConst + Debug + Send + Sync + 'static {}

impl<T: Float + FloatConst + Debug + Send + Sync + 'static> Real for T {}

/// Converts an `f64` constant to `T` (rounding to nearest).
///
/// # Panics
/// Only if `T` cannot represent any `f64` approximately, which no [`Float`] type does (the
/// conversion goes through [`num_traits::NumCast`]).
#[inline]
#[must_use]
pub fn lit<T: Real>(x: f64) -> T {
    T::from(x).expect("a Float type represents every f64 approximately")
}

/// `xʸ` computed by the `libm` crate in every build, never by the platform's `pow`: the same
/// bits on every platform, with or without std.
///
/// `f32` goes to `libm::powf` (what `num_traits::Float::powf` called without std, so no-std
/// trajectories keep their bits), any other `T` to `libm::pow` on the `f64` values, rounded to
/// `T` (exact for `f64`; for a type wider than `f64` the result has `f64`'s precision, which
/// the bias correction `1 − βᵗ` it serves does not need more of).
#[inline]
#[must_use]
pub fn powf<T: Real>(x: T, y: T) -> T {
    if let (Some(&a), Some(&b)) = (
        (&x as &dyn Any).downcast_ref::<f32>(),
        (&y as &dyn Any).downcast_ref::<f32>(),
    ) {
        return lit(f64::from(libm::powf(a, b)));
    }
    match (x.to_f64(), y.to_f64()) {
        (Some(a), Some(b)) => lit(libm::pow(a, b)),
        // Not reached for any `Float` (to_f64 is total on floats); keep a defined value.
        _ => T::nan(),
    }
}

/// Index of the first non-finite entry of `v`, if any.
#[inline]
pub(crate) fn first_non_finite<T: Real>(v: &[T]) -> Option<usize> {
    v.iter().position(|x| !x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bits `libm` gives, whatever the build: `powf` must be exactly `libm`'s, not the
    /// platform's (which may or may not agree for a given input).
    #[test]
    fn powf_is_libm_bit_for_bit() {
        for t in [1u32, 2, 3, 7, 10, 100, 1000, 12_345, 1_000_000] {
            for beta in [0.9f64, 0.999, 0.99, 0.5] {
                let tt = f64::from(t);
                assert_eq!(
                    powf(beta, tt).to_bits(),
                    libm::pow(beta, tt).to_bits(),
                    "f64 {beta}^{t}"
                );
                let (b32, t32) = (beta as f32, t as f32);
                assert_eq!(
                    powf(b32, t32).to_bits(),
                    libm::powf(b32, t32).to_bits(),
                    "f32 {beta}^{t}"
                );
            }
        }
    }

    /// The module docs' argument for keeping `Float::sqrt` (std's instruction in std builds):
    /// it is correctly rounded, so it has `libm::sqrt`'s bits. Checked on a sweep of values
    /// from a fixed stream (subnormals to huge, both precisions).
    #[test]
    fn float_sqrt_has_libm_bits() {
        let mut s = crate::random::Stream::new(18);
        for i in 0..20_000 {
            let e = (i % 600) as f64 - 300.0;
            let x = s.uniform() * libm::exp2(e);
            assert_eq!(Float::sqrt(x).to_bits(), libm::sqrt(x).to_bits(), "{x:e}");
            let y = x as f32;
            assert_eq!(Float::sqrt(y).to_bits(), libm::sqrtf(y).to_bits(), "{y:e}");
        }
    }
}
