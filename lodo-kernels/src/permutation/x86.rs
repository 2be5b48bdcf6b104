//! x86-64 gather bodies: the reference loop compiled with AVX2 / AVX-512F, where LLVM may use
//! hardware gathers. Bit-exact by construction (only moves data).

/// `y[j] = x[π(j)]` with AVX2 + FMA enabled.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gather_avx2<T: Copy>(perm: &[u32], x: &[T], y: &mut [T]) {
    for (yj, &pj) in y.iter_mut().zip(perm) {
        *yj = x[pj as usize];
    }
}

/// `y[j] = x[π(j)]` with AVX-512F (and AVX2, FMA) enabled.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) fn gather_avx512<T: Copy>(perm: &[u32], x: &[T], y: &mut [T]) {
    for (yj, &pj) in y.iter_mut().zip(perm) {
        *yj = x[pj as usize];
    }
}
