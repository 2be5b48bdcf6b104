//! x86-64 bodies: the portable fast bodies compiled with AVX2+FMA or AVX-512 (F, VL, BW, DQ)
//! enabled.
//! Calling them is `unsafe` (the features must be present); `mod.rs` does so only for a
//! [`crate::Kernels`] whose path was checked available.

/// `avx2 + fma`.
pub(crate) mod avx2 {
    super::super::simd_bodies!("avx2,fma");
}

/// `avx512f + avx512vl + avx512bw + avx512dq + avx2 + fma`. VL gives the 256-bit masked stores: with AVX-512F alone, LLVM
/// writes eight `f32` lanes (θ held in f32 below f64) with a masked 512-bit store, which
/// overlaps the next iteration's load and blocks store-to-load forwarding (the fused q8 +
/// θ-in-f32 Adam loop ran 1.39× slower for it, in cache, December 7).
pub(crate) mod avx512 {
    super::super::simd_bodies!("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma");
}
