//! A fixed permutation `P` of `0..h`, stored with its inverse (as faer's `Perm`), and the
//! families the LODO network draws its layer permutations from ([`PermutationFamily`]).
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

/// Where the LODO network's layer permutations `P_l` come from (paper §3 draws them uniformly
/// at random; the structured families mix as well and can be applied while streaming).
///
/// With `r = h/k`, the `k`-ary perfect shuffle is the transpose of the `r × k` grid:
///
/// $$ σ(j) = (j \bmod r)\,k + \lfloor j / r \rfloor, \qquad p_j = u_{σ(j)}. $$
///
/// | family | `π_l` |
/// |---|---|
/// | `Random` | uniformly random (the paper; the default) |
/// | `Shuffle` | `σ` in every layer: when `h = k^d`, `d = log_k h` layers connect every input to every output (an Omega network) |
/// | `TiledShuffle { tile }` | `σ ∘ τ_l`, `τ_l` uniformly random inside each run of `tile` consecutive outputs (the last run may be shorter): random wiring whose reads stay in a window of `k·tile` inputs |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PermutationFamily {
    /// Uniformly random permutations (paper §3).
    #[default]
    Random,
    /// The `k`-ary perfect shuffle in every layer.
    Shuffle,
    /// The shuffle followed by a uniformly random permutation inside each tile of outputs.
    TiledShuffle {
        /// Outputs per tile (≥ 1).
        tile: usize,
    },
}

impl PermutationFamily {
    /// Checks the family's own parameters.
    ///
    /// # Errors
    /// [`crate::ConfigError::ZeroTile`] for `TiledShuffle { tile: 0 }`.
    pub fn validate(self) -> Result<(), crate::ConfigError> {
        match self {
            Self::TiledShuffle { tile: 0 } => Err(crate::ConfigError::ZeroTile),
            _ => Ok(()),
        }
    }

    /// Draws layer `layer`'s permutation of `0..h` for block size `k` (`k` divides `h`);
    /// `Random` and `TiledShuffle` draw from `rng`, `Shuffle` draws nothing.
    ///
    /// # Errors
    /// [`crate::ConfigError::OutOfMemory`], [`crate::ConfigError::TooLarge`] (`h` beyond `u32`),
    /// [`crate::ConfigError::ZeroTile`].
    pub fn draw(
        self,
        h: usize,
        k: usize,
        rng: &mut crate::random::Stream,
    ) -> Result<Permutation, crate::ConfigError> {
        self.validate()?;
        let top = u32::try_from(h).map_err(|_| crate::ConfigError::TooLarge)?;
        let mut forward: Vec<u32> = crate::memory::with_capacity(h)?;
        match self {
            Self::Random => {
                forward.extend(0..top);
                rng.shuffle(&mut forward);
            }
            Self::Shuffle => forward.extend((0..h).map(|j| shuffle(j, h, k))),
            Self::TiledShuffle { tile } => {
                forward.extend(0..top);
                for run in forward.chunks_mut(tile) {
                    rng.shuffle(run);
                }
                for t in &mut forward {
                    *t = shuffle(*t as usize, h, k);
                }
            }
        }
        Permutation::try_new(forward, 0).map_err(|e| match e {
            StateError::Config(c) => c,
            _ => crate::ConfigError::TooLarge,
        })
    }

    /// Whether `p` belongs to this family for block size `k`: `Random` takes any permutation,
    /// `Shuffle` exactly `σ`, `TiledShuffle` any `σ ∘ τ` with `τ` inside the tiles.
    #[must_use]
    pub fn contains(self, p: &Permutation, k: usize) -> bool {
        let h = p.len();
        if k == 0 || !h.is_multiple_of(k) {
            return false;
        }
        match self {
            Self::Random => true,
            Self::Shuffle => p
                .forward()
                .iter()
                .enumerate()
                .all(|(j, &pj)| pj == shuffle(j, h, k)),
            // τ(j) = σ⁻¹(π(j)) must stay in j's tile.
            Self::TiledShuffle { tile } => {
                tile > 0
                    && p.forward()
                        .iter()
                        .enumerate()
                        .all(|(j, &pj)| unshuffle(pj as usize, h, k) / tile == j / tile)
            }
        }
    }
}

/// `σ(j) = (j mod r)·k + ⌊j/r⌋`, `r = h/k`: the gather index of the `k`-ary perfect shuffle.
#[inline]
fn shuffle(j: usize, h: usize, k: usize) -> u32 {
    let r = h / k;
    ((j % r) * k + j / r) as u32
}

/// `σ⁻¹(i) = (i mod k)·r + ⌊i/k⌋`.
#[inline]
fn unshuffle(i: usize, h: usize, k: usize) -> usize {
    let r = h / k;
    (i % k) * r + i / k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Stream;

    #[test]
    fn shuffle_and_its_inverse() {
        for (h, k) in [(12, 4), (12, 3), (8, 2), (7, 1), (4, 4)] {
            let p = PermutationFamily::Shuffle
                .draw(h, k, &mut Stream::new(0))
                .unwrap();
            for j in 0..h {
                assert_eq!(unshuffle(p.forward()[j] as usize, h, k), j);
            }
            assert!(PermutationFamily::Shuffle.contains(&p, k));
        }
        // h = 12, k = 4, r = 3: σ = [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11].
        let p = PermutationFamily::Shuffle
            .draw(12, 4, &mut Stream::new(0))
            .unwrap();
        assert_eq!(p.forward(), &[0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    }

    #[test]
    fn tiled_shuffle_stays_in_its_tiles_and_is_random_inside() {
        let family = PermutationFamily::TiledShuffle { tile: 5 };
        let (h, k) = (40, 4);
        let a = family.draw(h, k, &mut Stream::new(1)).unwrap();
        let b = family.draw(h, k, &mut Stream::new(2)).unwrap();
        assert!(family.contains(&a, k) && family.contains(&b, k));
        assert_ne!(a, b);
        assert!(!PermutationFamily::Shuffle.contains(&a, k));
        let random = PermutationFamily::Random
            .draw(h, k, &mut Stream::new(1))
            .unwrap();
        assert!(!family.contains(&random, k));
        assert_eq!(
            PermutationFamily::TiledShuffle { tile: 0 }.validate(),
            Err(crate::ConfigError::ZeroTile)
        );
    }

    #[test]
    fn random_draws_what_the_stream_always_drew() {
        let a = PermutationFamily::Random
            .draw(50, 5, &mut Stream::new(9))
            .unwrap();
        assert_eq!(a.forward(), Stream::new(9).permutation(50).as_slice());
    }
}
