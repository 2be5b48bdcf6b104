//! A fixed permutation `P` of `0..h`, stored with its inverse (as faer's `Perm`).
//!
//! `(P x)[j] = x[π(j)]` and `(Pᵀ x)[π(j)] = x[j]`; see [`lodo_kernels::permutation`].

use alloc::vec::Vec;

use crate::error::StateError;

/// A permutation `π` of `0..h` with its inverse: `8h` bytes of indices.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Permutation {
    forward: Vec<u32>,
    #[cfg_attr(feature = "serde", serde(skip))]
    inverse: Vec<u32>,
}

impl Permutation {
    /// Builds a permutation from its forward indices.
    ///
    /// # Errors
    /// [`StateError::NotAPermutation`] (with `layer` as given) if `forward` is not a
    /// permutation of `0..forward.len()`; [`crate::ConfigError::OutOfMemory`] (as
    /// [`StateError::Config`]) if the inverse cannot be allocated.
    pub fn try_new(forward: Vec<u32>, layer: usize) -> Result<Self, StateError> {
        let mut p = Self {
            forward,
            inverse: Vec::new(),
        };
        p.rebuild_inverse(layer)?;
        Ok(p)
    }

    /// A uniformly random permutation of `0..h` drawn from `rng` (as
    /// [`crate::random::Stream::permutation`]), allocated fallibly.
    ///
    /// # Errors
    /// [`crate::ConfigError::OutOfMemory`], or [`crate::ConfigError::TooLarge`] if `h` exceeds
    /// the `u32` indices.
    pub(crate) fn random(
        h: usize,
        rng: &mut crate::random::Stream,
    ) -> Result<Self, crate::ConfigError> {
        let top = u32::try_from(h).map_err(|_| crate::ConfigError::TooLarge)?;
        let mut forward = crate::memory::with_capacity(h)?;
        forward.extend(0..top);
        rng.shuffle(&mut forward);
        Self::try_new(forward, 0).map_err(|e| match e {
            StateError::Config(c) => c,
            _ => crate::ConfigError::TooLarge,
        })
    }

    /// Recomputes the inverse (after deserialisation), validating the forward indices.
    pub(crate) fn rebuild_inverse(&mut self, layer: usize) -> Result<(), StateError> {
        let h = self.forward.len();
        let mut inverse = crate::memory::filled(h, u32::MAX)?;
        for (j, &pj) in self.forward.iter().enumerate() {
            let slot = inverse
                .get_mut(pj as usize)
                .ok_or(StateError::NotAPermutation { layer })?;
            if *slot != u32::MAX {
                return Err(StateError::NotAPermutation { layer });
            }
            *slot = j as u32;
        }
        self.inverse = inverse;
        Ok(())
    }

    /// The forward indices `π`.
    #[must_use]
    pub fn forward(&self) -> &[u32] {
        &self.forward
    }

    /// The inverse indices `π⁻¹`.
    #[must_use]
    pub fn inverse(&self) -> &[u32] {
        &self.inverse
    }

    /// Its size `h`.
    #[must_use]
    pub fn len(&self) -> usize {
        self.forward.len()
    }

    /// Whether `h = 0`.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.forward.is_empty()
    }
}
