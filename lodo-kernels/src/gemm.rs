//! The one bridge to matrixmultiply: a safe, shape-checked dense product
//!
//! $$ C \gets α \mathrm{op}(A) B \quad (\text{or } C \gets C + α \mathrm{op}(A) B), $$
//!
//! all row-major, `op(A)` `m × k`, `B` `k × n`, `C` `m × n`. `f32`/`f64` go to matrixmultiply's
//! `sgemm`/`dgemm`; any other float type to a plain triple loop.

use core::any::TypeId;

use num_traits::Float;

/// Overwrite `C` or add to it (instead of a `β` of 0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accum {
    /// `C ← α op(A) B` (`C`'s old contents, even NaN, are ignored).
    Replace,
    /// `C ← C + α op(A) B`.
    Add,
}

/// Whether `A` is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `op(A) = A`, `A` stored `m × k`.
    NoTranspose,
    /// `op(A) = Aᵀ`, `A` stored `k × m`.
    Transpose,
}

/// `C ← α op(A) B` or `C ← C + α op(A) B` (row-major).
///
/// # Panics
/// If `a.len() != m·k`, `b.len() != k·n`, `c.len() != m·n`, or a dimension exceeds `isize::MAX`.
///
/// # Examples
/// ```
/// use lodo_kernels::gemm::{gemm, Accum, Op};
/// let mut c = [f64::NAN; 1];
/// gemm(Accum::Replace, Op::NoTranspose, 1, 2, 1, 1.0, &[1.0, 2.0], &[3.0, 4.0], &mut c);
/// assert_eq!(c, [11.0]);
/// ```
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float + 'static>(
    accum: Accum,
    op: Op,
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    c: &mut [T],
) {
    assert_eq!(Some(a.len()), m.checked_mul(k), "gemm: a must be m·k");
    assert_eq!(Some(b.len()), k.checked_mul(n), "gemm: b must be k·n");
    assert_eq!(Some(c.len()), m.checked_mul(n), "gemm: c must be m·n");
    let to_isize = |x: usize| isize::try_from(x).expect("gemm: dimension exceeds isize::MAX");
    let (ki, ni) = (to_isize(k), to_isize(n));
    let mi = to_isize(m);
    // Strides of op(A) as an m × k matrix.
    let (rsa, csa) = match op {
        Op::NoTranspose => (ki, 1),
        Op::Transpose => (1, mi),
    };
    if m == 0 || n == 0 {
        return;
    }
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        let alpha = alpha.to_f32().unwrap_or(f32::NAN);
        let beta = if accum == Accum::Add { 1.0 } else { 0.0 };
        // SAFETY: T is f32 (TypeId checked just above), so the casts reinterpret nothing. The
        // lengths were asserted at entry: `a` holds m·k, `b` k·n, `c` m·n elements, and the
        // strides (rsa, csa) = (k, 1) or (1, m), (n, 1), (n, 1) address exactly those ranges.
        // `c` is a unique `&mut`, so it aliases neither `a` nor `b`. With β = 0 matrixmultiply
        // does not read C.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha,
                a.as_ptr().cast::<f32>(),
                rsa,
                csa,
                b.as_ptr().cast::<f32>(),
                ni,
                1,
                beta,
                c.as_mut_ptr().cast::<f32>(),
                ni,
                1,
            );
        }
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        let alpha = alpha.to_f64().unwrap_or(f64::NAN);
        let beta = if accum == Accum::Add { 1.0 } else { 0.0 };
        // SAFETY: as for f32 above, with T = f64 checked by TypeId.
        unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                alpha,
                a.as_ptr().cast::<f64>(),
                rsa,
                csa,
                b.as_ptr().cast::<f64>(),
                ni,
                1,
                beta,
                c.as_mut_ptr().cast::<f64>(),
                ni,
                1,
            );
        }
    } else {
        for i in 0..m {
            for j in 0..n {
                let mut acc = T::zero();
                for l in 0..k {
                    let ail = match op {
                        Op::NoTranspose => a[i * k + l],
                        Op::Transpose => a[l * m + i],
                    };
                    acc = acc + ail * b[l * n + j];
                }
                let prod = alpha * acc;
                c[i * n + j] = match accum {
                    Accum::Replace => prod,
                    Accum::Add => c[i * n + j] + prod,
                };
            }
        }
    }
}
