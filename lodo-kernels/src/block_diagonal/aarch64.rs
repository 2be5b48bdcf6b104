//! aarch64 bodies: the portable fast bodies compiled with NEON enabled. Calling them is
//! `unsafe`; `mod.rs` does so only for a [`crate::Kernels`] whose path was checked available.

/// `neon`.
pub(crate) mod neon {
    super::super::simd_bodies!("neon");
}
