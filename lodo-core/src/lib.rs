//! LODO, the learned quasi-Newton optimizer of Liao, Dangovski, Foerster & Soljačić,
//! *Learning to Optimize Quasi-Newton Methods* (TMLR 2023, arXiv 2210.06171).
//!
//! LODO steps `x ← x − G(θ)·m` with `m` an exponential average of gradients and
//!
//! $$ G(θ) = α₀\, Πᵀ Aᵀ A\, Π,\qquad A = B_N P_N ⋯ B_1 P_1, $$
//!
//! symmetric positive semidefinite by construction (§3). `θ` (the blocks `B_l`) is trained online
//! by Adam on the hypergradient of the loss through the step just taken: no meta-training.
//!
//! | module | object |
//! |---|---|
//! | [`lodo`] | the optimizer [`Lodo`] and its saved state [`LodoState`] |
//! | [`preconditioner`] | `G(θ)`: [`BlockPreconditioner`] and the ablations [`Diagonal`], [`Global`], [`Residual`] |
//! | [`meta`] | the [`MetaOptimizer`] trait; [`Adam`] (Keras form) and [`Sgd`] |
//! | [`config`] | validated hyperparameters [`LodoConfig`]; each part owns its own ([`BlockConfig`], [`AdamConfig`], …) |
//! | [`optimizer`] | the [`Optimizer`] trait every optimizer implements |
//!
//! # Features
//! - `std` (default): std's `sqrt` (the instruction) and runtime CPU detection in
//!   `lodo-kernels`. Without it the crate is `#![no_std]` and needs only `alloc`; `sqrt` goes
//!   through `libm` (the same bits: it is correctly rounded). Functions that are not correctly
//!   rounded (`pow`, `log`, `cos`) go through `libm` either way.
//! - `serde`: (de)serialise [`LodoState`] (see its format table).
//!
//! # Determinism
//! An explicit seed drives every random choice. The same seed on the same kernel path gives the
//! same bits on every platform, with or without std: every float function the optimizer calls
//! is either correctly rounded (`+ − × ÷`, `sqrt`, `fma`) or the `libm` crate's in every build
//! (the list and the argument: the `real` module's source, `lodo-core/src/real.rs`).
#![no_std]
#![forbid(unsafe_code)]
#![deny(unconditional_recursion)]

extern crate alloc;

/// The workspace README, compiled so its example is checked as a doctest.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
#[cfg(feature = "std")]
extern crate std;

pub mod config;
pub mod error;
pub mod lodo;
pub mod memory;
pub mod meta;
pub mod optimizer;
pub mod permutation;
pub mod precision;
pub mod preconditioner;
pub mod random;
mod real;

pub use config::{LodoConfig, PreconditionerConfig, hidden_width};
pub use error::{ConfigError, StateError, StepError};
pub use lodo::{Lodo, LodoState, STATE_FORMAT};
pub use meta::{Adam, AdamConfig, MetaConfig, MetaOptimizer, Sgd, SgdConfig, WeightLayout};
pub use optimizer::Optimizer;
pub use permutation::{Permutation, PermutationFamily};
pub use precision::{Precision, WeightPrecision};
pub use preconditioner::{
    BlockConfig, BlockPreconditioner, Diagonal, DiagonalConfig, Global, GlobalConfig,
    Preconditioner, Residual, ResidualConfig, WeightSink,
};
pub use real::{Real, lit};

/// LODO with the diagonal ablation `G = α₀·diag(w)` (paper §5.3).
pub type DiagonalLodo<T> = Lodo<T, Diagonal<T>>;
/// LODO with the global ablation `G = α₀·w·I` (paper §5.3).
pub type GlobalLodo<T> = Lodo<T, Global<T>>;
/// LODO with the residual-network ablation (paper §5.3).
pub type ResidualLodo<T> = Lodo<T, Residual<T>>;
/// LODO whose meta-optimizer is plain SGD (the paper's "LODO-SGD" ablation, §5.3).
pub type SgdLodo<T> = Lodo<T, BlockPreconditioner<T>, Sgd<T>>;
