//! What a LODO optimizer holds in memory, and allocation that fails with an error instead of
//! aborting (the embedded issue: a caller plans memory before it allocates, and survives a
//! heap that is too small).
//!
//! Every buffer an optimizer keeps is allocated once, at construction or restore, with
//! [`Vec::try_reserve_exact`]; a failure is [`ConfigError::OutOfMemory`] with the bytes that
//! one allocation asked for. The bytes held are predicted exactly by
//! [`crate::Lodo::memory_bytes`] (checked against a counting allocator in the tests).

use alloc::vec::Vec;
use core::mem::size_of;

use crate::error::ConfigError;

/// `count · size_of::<T>()`, or [`ConfigError::TooLarge`] if that overflows `usize`.
///
/// # Errors
/// [`ConfigError::TooLarge`].
pub fn bytes_of<T>(count: usize) -> Result<usize, ConfigError> {
    count
        .checked_mul(size_of::<T>())
        .ok_or(ConfigError::TooLarge)
}

/// Sums byte counts, or [`ConfigError::TooLarge`] on overflow.
pub(crate) fn total(parts: &[usize]) -> Result<usize, ConfigError> {
    parts
        .iter()
        .try_fold(0usize, |acc, &p| acc.checked_add(p))
        .ok_or(ConfigError::TooLarge)
}

/// An empty vector with room for exactly `len` elements.
///
/// # Errors
/// [`ConfigError::OutOfMemory`] if the allocator refuses, [`ConfigError::TooLarge`] if the
/// byte count overflows.
pub(crate) fn with_capacity<T>(len: usize) -> Result<Vec<T>, ConfigError> {
    let bytes = bytes_of::<T>(len)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| ConfigError::OutOfMemory { bytes })?;
    Ok(v)
}

/// `len` copies of `value`, allocated fallibly ([`with_capacity`]).
///
/// # Errors
/// As [`with_capacity`].
pub(crate) fn filled<T: Clone>(len: usize, value: T) -> Result<Vec<T>, ConfigError> {
    let mut v = with_capacity(len)?;
    v.resize(len, value);
    Ok(v)
}
