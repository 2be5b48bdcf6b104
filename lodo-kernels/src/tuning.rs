//! Named thresholds of the kernels, each with what it cuts and where it was chosen.

/// Elements of `θ` handled per tile by the fused hypergradient + Adam kernel
/// ([`crate::Kernels::backward_pair_adam`]). Phase 1 of a tile computes the block
/// gradients into a stack buffer of this many elements; phase 2 streams `θ, M, V` through the
/// Adam update. 512 elements (2 KiB f32, 4 KiB f64) keep the buffer and the tile's `θ` in L1
/// (48 KiB per core on the Xeon this was written on) while the update loop is long enough for
/// full-width vectors. Not tuned further; the kernel is bandwidth-bound at large `n`.
pub const ADAM_TILE: usize = 512;

/// Largest block size the tiled fast path of the fused kernel handles (`k² ≤ ADAM_TILE`);
/// larger blocks use the reference body on every path.
pub const ADAM_TILE_MAX_K: usize = 22;

/// Minimum number of right-hand sides for which the batched block mat-vec
/// ([`crate::Kernels::matmat`]) calls matrixmultiply per block instead of the plain
/// loops. matrixmultiply packs its operands, which costs more than the product for a handful of
/// columns. The value is a conservative choice, not a measurement; the batched path is used for
/// dense materialisation (tests, diagnostics), not in the optimizer step.
pub const MATMAT_GEMM_MIN_COLS: usize = 32;

/// How many blocks ahead the SIMD bodies prefetch the randomly addressed elements of a
/// permutation (the gathered input of a forward layer, the scattered outputs of a backward
/// layer). At `h = 2·10⁶` f32 (8 MB, beyond L2) a plain scatter cost ≈ 22 ns per element and
/// ≈ 12 ns with prefetching 32 elements ahead; a gather ≈ 14 → 8 ns (shared, loaded 2-core
/// Xeon; noisy). 8 blocks of `k = 4` is that distance.
pub const PREFETCH_BLOCKS: usize = 8;

/// Smallest randomly addressed array (bytes) for which the SIMD bodies issue the prefetches of
/// [`PREFETCH_BLOCKS`]: below it the array sits in L2 (2 MiB per core on the Xeon this was
/// measured on) and the hints are pure overhead. A LODO step with `Random` permutations at
/// n = 10³ (f32, in cache) took 1.19× the CPU time of 48fb174's with the hints and the same
/// without them; at n = 10⁶ it took 0.93 s either way on a loaded machine
/// (`lodo-bench/scripts/step-vs-commit.sh`).
pub const PREFETCH_MIN_BYTES: usize = 1 << 20;

/// How many runs of positions ahead the streamed `Shuffle` forward layer prefetches the blocks
/// of its `k` segments (`k` streams of `θ`; one 64-byte line per segment and run at `k = 4`
/// f32), for `θ` of at least [`PREFETCH_MIN_BYTES`]. The hardware prefetcher alone left the
/// forward stalled on `θ` when the kept activations are bf16 (their rounding lengthens each
/// block's work, so fewer blocks' loads are in flight): 16 forward layers at `h = 2·10⁶`, f32,
/// bf16 kept, took ≈ 81–88 ms of CPU time with the hint against 96–103 ms without (f64:
/// ≈ 120–142 against 150; f32 with the full state unchanged, ≈ 65 ms). 4, 8 and 16 measured
/// alike (shared, loaded 2-core Xeon, December 7 2026).
pub const FORWARD_AHEAD: usize = 8;

/// How many blocks ahead the fused hypergradient + Adam kernel prefetches `θ` (for `θ` of at
/// least [`PREFETCH_MIN_BYTES`]). With compact moments a tile's update (decode, Adam, encode)
/// runs from L1 and issues no loads from memory, so without the hint the bus idles while it
/// computes; prefetching lets the next blocks arrive meanwhile. A LODO step at `n = 10⁶`
/// (f32, `Shuffle`, q8 moments + bf16 activations) took ≈ 0.9× the CPU time with this hint and
/// [`FORWARD_AHEAD`]'s than without; 16, 64 and 128 measured alike (shared, loaded 2-core
/// Xeon, December 7 2026).
pub const THETA_AHEAD: usize = 16;

/// Whether the block mat-vec `Kernels::matvec` (a bench baseline) on the AVX-512 path runs the AVX2 body. Compiled
/// with AVX-512 enabled, the compiler vectorises the plain block mat-vec across blocks with
/// 16-lane shuffles that cost more than they save: `matvec_f32` in the kernels bench measured
/// 10.1 µs (AVX-512 body) vs 3.0 µs (AVX2 body) at h = 2,000, and 5.2 ms vs 2.5 ms at
/// h = 10⁶ (same run, shared machine). The fused layer kernels, whose gathers break that
/// pattern, keep their AVX-512 bodies.
pub const MATVEC_AVX512_RUNS_AVX2: bool = true;
