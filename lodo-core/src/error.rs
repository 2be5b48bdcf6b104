//! Typed errors: bad hyperparameters ([`ConfigError`]), bad input to a step ([`StepError`]) and
//! a state that cannot be restored ([`StateError`]).

use core::fmt;

/// A hyperparameter or shape that LODO cannot run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The problem has no parameters (`n = 0`).
    EmptyProblem,
    /// The initial learning rate `α₀` is not finite and positive.
    InvalidAlpha0,
    /// The meta learning rate `η` is not finite and positive.
    InvalidMetaLearningRate,
    /// The momentum `β` is outside `[0, 1)`.
    InvalidMomentum,
    /// The network has no layers (`N = 0`).
    ZeroLayers,
    /// The block size is zero (`k = 0`).
    ZeroBlockSize,
    /// The hidden width is smaller than the number of parameters.
    HiddenTooSmall {
        /// Requested hidden width `h`.
        hidden: usize,
        /// Number of parameters `n`.
        dim: usize,
    },
    /// The hidden width is not a multiple of the block size.
    HiddenNotMultipleOfBlock {
        /// Requested hidden width `h`.
        hidden: usize,
        /// Block size `k`.
        block_size: usize,
    },
    /// The hidden width does not fit the `u32` permutation indices, or `N·h·k` overflows `usize`.
    TooLarge,
    /// Adam's `β₁` is outside `[0, 1)`.
    InvalidBeta1,
    /// Adam's `β₂` is outside `[0, 1)`.
    InvalidBeta2,
    /// Adam's `ε` is not finite and positive.
    InvalidEpsilon,
    /// A learning rate of a first-order optimizer is not finite and positive.
    InvalidLearningRate,
    /// A `TiledShuffle` permutation family with tiles of 0 outputs.
    ZeroTile,
    /// A `TiledShuffle` tile that is not a multiple of the block size (the streaming kernels
    /// read whole blocks inside one tile).
    TileNotMultipleOfBlock {
        /// The tile `T`.
        tile: usize,
        /// The block size `k`.
        block_size: usize,
    },
    /// An explicit hidden width that a structured permutation family cannot stream: `Shuffle`
    /// needs a multiple of `k²`, `TiledShuffle { tile: T }` a multiple of `k·T` (so blocks and
    /// tiles never straddle the shuffle's segments). The default width is rounded up to it.
    HiddenNotAligned {
        /// Requested hidden width `h`.
        hidden: usize,
        /// The multiple the family needs.
        multiple: usize,
    },
    /// Compact Adam moments ([`crate::Precision::Bf16`], [`crate::Precision::Q8`]) need block
    /// size `k ≤ max` (a tile of the fused kernel holds whole `k × k` blocks on the stack).
    CompactBlockTooLarge {
        /// The block size.
        block_size: usize,
        /// The largest block size with compact moments.
        max: usize,
    },
    /// The kept activations can be held in `T` or bf16, not in q8 ([`crate::Precision::Q8`] is for
    /// Adam's moments).
    UnsupportedActivationPrecision,
    /// The weights `θ` can be held below the working float only where there is something below
    /// it: [`crate::WeightPrecision::F32`] needs `T = f64`.
    UnsupportedWeightPrecision,
    /// The allocator refused a buffer (construction and restore allocate fallibly).
    OutOfMemory {
        /// Bytes the refused allocation asked for.
        bytes: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::EmptyProblem => write!(f, "the problem has no parameters (n = 0)"),
            Self::InvalidAlpha0 => write!(f, "alpha0 must be finite and > 0"),
            Self::InvalidMetaLearningRate => {
                write!(f, "the meta learning rate must be finite and > 0")
            }
            Self::InvalidMomentum => write!(f, "beta (momentum) must lie in [0, 1)"),
            Self::ZeroLayers => write!(f, "the number of layers N must be at least 1"),
            Self::ZeroBlockSize => write!(f, "the block size k must be at least 1"),
            Self::HiddenTooSmall { hidden, dim } => {
                write!(
                    f,
                    "hidden width {hidden} is smaller than the dimension {dim}"
                )
            }
            Self::HiddenNotMultipleOfBlock { hidden, block_size } => {
                write!(
                    f,
                    "hidden width {hidden} is not a multiple of the block size {block_size}"
                )
            }
            Self::TooLarge => write!(
                f,
                "the network is too large for this platform (h must fit u32)"
            ),
            Self::InvalidBeta1 => write!(f, "Adam beta1 must lie in [0, 1)"),
            Self::InvalidBeta2 => write!(f, "Adam beta2 must lie in [0, 1)"),
            Self::InvalidEpsilon => write!(f, "Adam epsilon must be finite and > 0"),
            Self::InvalidLearningRate => write!(f, "the learning rate must be finite and > 0"),
            Self::ZeroTile => write!(f, "the permutation tile must hold at least 1 output"),
            Self::TileNotMultipleOfBlock { tile, block_size } => write!(
                f,
                "the permutation tile {tile} is not a multiple of the block size {block_size}"
            ),
            Self::HiddenNotAligned { hidden, multiple } => write!(
                f,
                "hidden width {hidden} is not a multiple of {multiple}, which the permutation \
                 family needs (k² for Shuffle, k·tile for TiledShuffle)"
            ),
            Self::CompactBlockTooLarge { block_size, max } => write!(
                f,
                "compact Adam moments need block size k <= {max}, got {block_size}"
            ),
            Self::UnsupportedActivationPrecision => write!(
                f,
                "the kept activations can be held in full precision or bf16, not q8"
            ),
            Self::UnsupportedWeightPrecision => write!(
                f,
                "the weights can be held in f32 only when the working float is f64"
            ),
            Self::OutOfMemory { bytes } => {
                write!(
                    f,
                    "out of memory: an allocation of {bytes} bytes was refused"
                )
            }
        }
    }
}

impl core::error::Error for ConfigError {}

/// Why a step was refused. On every variant the caller's parameters are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepError {
    /// The gradient's length is not the optimizer's dimension. Nothing changed.
    GradientLength {
        /// The optimizer's dimension `n`.
        expected: usize,
        /// The gradient's length.
        found: usize,
    },
    /// The parameter slice's length is not the optimizer's dimension. Nothing changed.
    ParamsLength {
        /// The optimizer's dimension `n`.
        expected: usize,
        /// The parameter slice's length.
        found: usize,
    },
    /// The gradient has a NaN or ±∞ entry. Nothing changed.
    NonFiniteGradient {
        /// Index of the first such entry.
        index: usize,
    },
    /// The step would have written a non-finite value into the parameters. The parameters are
    /// unchanged. For [`crate::Lodo`] the momentum and step count are unchanged too, and `θ` has
    /// taken its (finite) meta-step.
    NonFiniteStep {
        /// Index of the first parameter that would have become non-finite.
        index: usize,
    },
    /// LODO's meta-update would have stored a NaN or ±∞ for some weights (e.g. Adam's `g²`
    /// overflowing for a huge gradient). Those weights kept their values, the others took their
    /// meta-step; parameters, momentum and step count are unchanged (see [`crate::Lodo::step`]).
    NonFiniteMetaUpdate {
        /// How many weights kept their values.
        kept: usize,
    },
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::GradientLength { expected, found } => {
                write!(f, "gradient has length {found}, expected {expected}")
            }
            Self::ParamsLength { expected, found } => {
                write!(f, "parameters have length {found}, expected {expected}")
            }
            Self::NonFiniteGradient { index } => {
                write!(f, "gradient entry {index} is not finite; nothing changed")
            }
            Self::NonFiniteStep { index } => write!(
                f,
                "the step would make parameter {index} non-finite; parameters left unchanged"
            ),
            Self::NonFiniteMetaUpdate { kept } => write!(
                f,
                "the meta-update of {kept} preconditioner weights would not be finite (gradient \
                 too large?); they kept their values and the parameters are unchanged"
            ),
        }
    }
}

impl core::error::Error for StepError {}

/// A saved state that cannot be restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// The state was written by a format version this build cannot read (it reads formats 1
    /// to [`crate::STATE_FORMAT`]).
    UnsupportedFormat {
        /// The version found.
        found: u32,
    },
    /// The hyperparameters stored in the state are invalid.
    Config(ConfigError),
    /// A stored array has the wrong length.
    Length {
        /// Which array.
        what: &'static str,
        /// The length the other fields imply.
        expected: usize,
        /// The stored length.
        found: usize,
    },
    /// A stored permutation is not a permutation of `0..h`, or not of the stored family.
    NotAPermutation {
        /// Index of the layer.
        layer: usize,
    },
    /// A stored array holds a NaN or ±∞.
    NonFinite {
        /// Which array.
        what: &'static str,
    },
    /// A stored array that must be non-negative (Adam's second moment) holds a negative value.
    Negative {
        /// Which array.
        what: &'static str,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnsupportedFormat { found } => write!(
                f,
                "state format {found} is not supported (this build reads formats 1 to {})",
                crate::STATE_FORMAT
            ),
            Self::Config(e) => write!(f, "invalid hyperparameters in state: {e}"),
            Self::Length {
                what,
                expected,
                found,
            } => {
                write!(f, "{what} has length {found}, expected {expected}")
            }
            Self::NotAPermutation { layer } => write!(f, "layer {layer}'s permutation is invalid"),
            Self::NonFinite { what } => write!(f, "{what} holds a non-finite value"),
            Self::Negative { what } => write!(f, "{what} holds a negative value"),
        }
    }
}

impl core::error::Error for StateError {}

impl From<ConfigError> for StateError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}
