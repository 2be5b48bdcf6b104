//! x86-64 bodies: the portable fast bodies compiled with AVX2+FMA or AVX-512F enabled.
//! Calling them is `unsafe` (the features must be present); `mod.rs` does so only for a
//! [`crate::Kernels`] whose path was checked available.

/// `avx2 + fma`.
pub(crate) mod avx2 {
    super::super::simd_bodies!("avx2,fma");
}

/// `avx512f + avx2 + fma`.
pub(crate) mod avx512 {
    super::super::simd_bodies!("avx512f,avx2,fma");
}
