//! Block-diagonal and permutation kernels for LODO (Liao et al., *Learning to Optimize
//! Quasi-Newton Methods*, TMLR 2023, §3).
//!
//! LODO's preconditioner is `G = α₀ Πᵀ Aᵀ A Π` with `A = B_N P_N ⋯ B_1 P_1`: every layer is a
//! permutation `P_l` followed by a block-diagonal matrix `B_l` of `k × k` blocks. This crate holds
//! the mat-vecs those layers need, in the fused forms the optimizer step uses, including the
//! hypergradient fused with the Keras-Adam update of the blocks
//! ([`Kernels::backward_pair_adam`]). See [`block_diagonal`] and [`permutation`] for the
//! kernel tables.
//!
//! # Storage
//! A block-diagonal matrix with `h / k` blocks is a slice of `h · k` numbers: block `b` occupies
//! `[b·k², (b+1)·k²)` in row-major order, so `B_b[r][c] = blocks[b·k² + r·k + c]`.
//! A permutation is a slice of `u32` indices `π` with `(P x)[j] = x[π(j)]`.
//!
//! # Paths
//! Every kernel has a portable reference body (module `reference`, hidden from the docs) and SIMD bodies for x86-64
//! AVX2+FMA, AVX-512 (F, VL, BW, DQ) and aarch64 NEON, chosen at run time ([`dispatch`]). `f32` and `f64` take
//! the SIMD bodies; other float types the reference. The block kernels are methods of a
//! [`Kernels`] handle, which runs one chosen path ([`Kernels::selected`]: the process-wide
//! choice, [`dispatch::selected`]); the permutation [`permutation::gather`] uses that choice.
//!
//! # Features
//! - `std` (default): runtime CPU detection (cached), the `LODO_KERNEL` override, hardware
//!   `fma`/`sqrt` through std. Without it the crate is `#![no_std]` and allocation-free, the
//!   path is fixed at compile time by `cfg!(target_feature)` (build with
//!   `-C target-feature=+avx2,+fma` or `-C target-cpu=native` to get SIMD), and the SIMD bodies
//!   use separate multiply and add (libm's `fma` is a software routine).
//!
//! Every entry point is safe; shapes are checked with `assert!` (see each `# Panics`).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

#[cfg(feature = "std")]
extern crate std;

pub mod block_diagonal;
pub mod compact;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod cursor;
pub mod dispatch;
pub mod gemm;
pub mod permutation;
#[doc(hidden)]
pub mod probe;
pub mod tuning;
pub mod wiring;

pub use dispatch::{Kernels, Path, Unavailable};

/// The portable reference bodies of every kernel, for tests and benches.
#[doc(hidden)]
pub mod reference {
    pub use crate::block_diagonal::reference::*;
    pub use crate::permutation::reference::*;
}
