//! What the optimizer stores, and in how many bits: the precision policy of its state.
//!
//! The arithmetic is always in the working float `T`; a policy only says how the largest
//! arrays are *held* between steps. At the defaults (`N = 16`, `k = 4`, `h = 2n`) each
//! parameter has `N·h·k/n = 128` weights `θ`, and Adam keeps two moments for each: in `f32`
//! they are 1,024 of the 1,890 bytes per parameter (`Shuffle`), the largest part of the state.
//!
//! | [`Precision`] | Adam's `M`, `V` per weight | how |
//! |---|---|---|
//! | `Full` | `2·size_of::<T>()` | as computed (the paper's, and the only bit-exact continuation of older states) |
//! | `Bf16` | 4 bytes | `f32`'s top 16 bits, seeded stochastic rounding ([`lodo_kernels::compact`]) |
//! | `Q8` | 2 bytes + 8 per tile of 512 | 8-bit log-scale codes relative to a per-tile `max` ([`lodo_kernels::compact`]) |
//!
//! Chosen per meta-optimizer with [`crate::AdamConfig::with_moments`]'s sibling
//! [`crate::AdamConfig::with_precision`]; a compact state saves compact and resumes bit for bit.

/// How a stored array is held between steps (the arithmetic stays in `T`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Precision {
    /// In the working float `T` (the default).
    #[default]
    Full,
    /// bf16: `f32`'s top 16 bits, encoded with seeded stochastic rounding.
    Bf16,
    /// 8 bits per entry, block-wise: a log-scale code relative to each tile's largest entry.
    Q8,
}

impl Precision {
    /// The policy's name in the harness and the C ABI: `"full"`, `"bf16"`, `"q8"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Bf16 => "bf16",
            Self::Q8 => "q8",
        }
    }

    /// The policy of a name ([`Precision::name`]; `"f32"`/`"f64"` also mean `Full`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "full" | "f32" | "f64" => Some(Self::Full),
            "bf16" => Some(Self::Bf16),
            "q8" => Some(Self::Q8),
            _ => None,
        }
    }
}

/// How the LODO network's weights `θ` are held between steps (the arithmetic stays in `T`;
/// [`crate::BlockConfig::with_weights`]). At the defaults `θ` is `N·h·k/n = 128` numbers per
/// parameter: 1,024 bytes in `f64`, 512 in `f32`.
///
/// | [`WeightPrecision`] | bytes per weight | how |
/// |---|---|---|
/// | `Full` | `size_of::<T>()` | as computed (the paper's) |
/// | `F32` | 4 (`T = f64` only) | rounded to the nearest `f32` after each update ([`lodo_kernels::compact::F32`]); each `k × k` block is read into `f64` registers, so every product is in `f64` |
///
/// `F32` rounds to nearest: `θ`'s updates are `10⁻³…10⁻⁵` of its size, far above `f32`'s
/// relative spacing `2⁻²⁴`, so no update is lost. (bf16, with its `2⁻⁸`, would need stochastic
/// rounding; it is not built.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WeightPrecision {
    /// In the working float `T` (the default).
    #[default]
    Full,
    /// In `f32`, below an `f64` working float.
    F32,
}

impl WeightPrecision {
    /// The policy's name in the harness and the C ABI: `"full"`, `"f32"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::F32 => "f32",
        }
    }

    /// The policy of a name ([`WeightPrecision::name`]).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "full" => Some(Self::Full),
            "f32" => Some(Self::F32),
            _ => None,
        }
    }
}
