//! The float bound used throughout the crate, and the one way to write a literal.

use core::fmt::Debug;
use num_traits::{Float, FloatConst};

/// Any float LODO can run on: `f32`, `f64`, or another [`num_traits::Float`].
///
/// Blanket-implemented; `sqrt` comes from `libm` without `std`.
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

/// Index of the first non-finite entry of `v`, if any.
#[inline]
pub(crate) fn first_non_finite<T: Real>(v: &[T]) -> Option<usize> {
    v.iter().position(|x| !x.is_finite())
}
