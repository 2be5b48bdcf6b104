//! Block-diagonal and permutation kernels for LODO (Liao et al., *Learning to Optimize
//! Quasi-Newton Methods*, TMLR 2023, §3).
//!
//! LODO's preconditioner is `G = α₀ Πᵀ Aᵀ A Π` with `A = B_N P_N ⋯ B_1 P_1`: every layer is a
//! permutation `P_l` followed by a block-diagonal matrix `B_l` of `k × k` blocks. This crate holds
//! the mat-vecs those layers need, in the fused forms the optimizer step uses:
//!
//! | kernel | formula |
//! |---|---|
//! | [`permutation::gather`] | `y = P x`, `y[j] = x[π(j)]` |
//! | [`permutation::scatter`] | `y = Pᵀ x`, `y[π(j)] = x[j]` |
//! | [`block_diagonal::matvec`] | `y = B x` |
//! | [`block_diagonal::matvec_transpose`] | `y = Bᵀ x` |
//! | [`block_diagonal::layer_forward`] | `p = P u`, `u ← B p` (`p` kept) |
//! | [`block_diagonal::layer_backward`] | `y = Pᵀ Bᵀ w` (one pass) |
//! | [`block_diagonal::outer_pair`] | `Δ_b = s (a_b c_bᵀ + d_b e_bᵀ)` per block |
//!
//! # Storage
//! A block-diagonal matrix with `h / k` blocks is a slice of `h · k` numbers: block `b` occupies
//! `[b·k², (b+1)·k²)` in row-major order, so `B_b[r][c] = blocks[b·k² + r·k + c]`.
//! A permutation is a slice of `u32` indices `π` with `(P x)[j] = x[π(j)]`.
//!
//! # Features
//! - `std` (default): reserved for runtime CPU detection. Without it the crate is `#![no_std]`
//!   and allocation-free.
//!
//! Every entry point is safe; shapes are checked with `assert!` (see each `# Panics`).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

#[cfg(feature = "std")]
extern crate std;

pub mod block_diagonal;
pub mod permutation;
