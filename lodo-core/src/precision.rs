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
