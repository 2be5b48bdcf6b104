//! A fixed permutation `P` of `0..h`, stored with its inverse (as faer's `Perm`), and the
//! families the LODO network draws its layer permutations from ([`PermutationFamily`]).
//!
//! `(P x)[j] = x[π(j)]` and `(Pᵀ x)[π(j)] = x[j]`; see [`lodo_kernels::permutation`].

use alloc::vec::Vec;

use lodo_kernels::wiring::{Shuffle, Tiles, Wiring};

use crate::error::{ConfigError, StateError};

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
/// | family | `π_l` | held per layer | width `h` |
/// |---|---|---|---|
/// | `Random` | uniformly random (the paper; the default) | `π`, `π⁻¹`: `8h` bytes | multiple of `k` |
/// | `Shuffle` | `σ` in every layer: when `h = k^d`, `d = log_k h` layers connect every input to every output (an Omega network) | nothing | multiple of `k²` |
/// | `TiledShuffle { tile }` | `σ ∘ τ_l`, `τ_l` uniformly random inside each tile: the runs of `tile` consecutive outputs of each of the `k` segments of `r = h/k` outputs (a segment's last tile is shorter when `tile ∤ r`): random wiring whose reads stay in a window of `k·tile` inputs | `τ`, `τ⁻¹` as `u16` offsets: `4h` bytes | multiple of `k²` (`k \| tile`) |
///
/// The structured families are computed while streaming ([`lodo_kernels::wiring`]): a layer
/// reads its input in `k` sequential streams instead of through a random index, which is what
/// makes them faster at large `n` (measured in the roofline bench and the README). Their default
/// width is `2n` rounded up to the multiple in the table ([`crate::BlockConfig::hidden_for`]).
/// A saved state holds whole permutations whatever the family; a state holding structured
/// permutations at a width the family cannot stream (written before the streaming kernels) still
/// loads, with its indices stored whole.
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

    /// The multiple of which the hidden width must be for the family to stream
    /// (see [`lodo_kernels::wiring`]): `k` for `Random`, `k²` for `Shuffle` and for
    /// `TiledShuffle { tile: T }` (which also needs `k | T`).
    ///
    /// # Errors
    /// [`ConfigError::ZeroTile`], [`ConfigError::TileNotMultipleOfBlock`],
    /// [`ConfigError::TooLarge`] on overflow.
    pub fn alignment(self, k: usize) -> Result<usize, ConfigError> {
        self.validate()?;
        match self {
            Self::Random => Ok(k),
            Self::Shuffle => k.checked_mul(k).ok_or(ConfigError::TooLarge),
            Self::TiledShuffle { tile } => {
                if k == 0 || !tile.is_multiple_of(k) {
                    return Err(ConfigError::TileNotMultipleOfBlock {
                        tile,
                        block_size: k,
                    });
                }
                k.checked_mul(k).ok_or(ConfigError::TooLarge)
            }
        }
    }

    /// Draws layer permutation as the network stores it: compact for a structured family
    /// whose width is aligned ([`PermutationFamily::alignment`]), else the whole index. Draws
    /// the same numbers from `rng` as [`PermutationFamily::draw`].
    pub(crate) fn wires(
        self,
        h: usize,
        k: usize,
        rng: &mut crate::random::Stream,
    ) -> Result<Wires, ConfigError> {
        Wires::from_permutation(self.draw(h, k, rng)?, self, k).map_err(|e| match e {
            StateError::Config(c) => c,
            _ => ConfigError::TooLarge,
        })
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
                for segment in forward.chunks_mut(h / k) {
                    for run in segment.chunks_mut(tile) {
                        rng.shuffle(run);
                    }
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
    /// `Shuffle` exactly `σ`, `TiledShuffle` any `σ ∘ τ` with `τ` inside the tiles (of each
    /// segment; or, as lodo-core wrote such states before its streaming kernels, inside runs of
    /// `tile` outputs counted from 0 across segments — the same tiles when `tile | h/k`).
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
                tiled_within(p, k, tile, |j| tile_start(j, h / k, tile))
                    || tiled_within(p, k, tile, |j| j - j % tile)
            }
        }
    }
}

/// One layer's permutation as the network stores it and the kernels read it
/// ([`lodo_kernels::wiring`]): the whole index with its inverse (`8h` bytes), or only what
/// determines a structured one (the shuffle: nothing; tiled: `τ` and `τ⁻¹` inside the tiles,
/// `4h` bytes). Saved states always hold the whole forward index (the format does not change
/// with the family); [`Wires::from_permutation`] validates and compacts it on restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Wires {
    /// `π` and `π⁻¹` stored: `Random`, or a structured family at an unaligned width.
    Stored(Permutation),
    /// `π = σ` on a width `h` with `k² | h`.
    Shuffle { h: usize, k: usize },
    /// `π = σ ∘ τ` on a width `h` with `k·T | h`.
    Tiled {
        h: usize,
        k: usize,
        tile: usize,
        /// `τ(j) − T⌊j/T⌋`.
        tau: Vec<u16>,
        /// `τ⁻¹(j) − T⌊j/T⌋`.
        tau_inv: Vec<u16>,
    },
}

impl Wires {
    /// The layer's permutation `p` (of family `family`, block size `k`) in its compact form
    /// when the family streams at this width, else stored whole.
    ///
    /// # Errors
    /// [`StateError::NotAPermutation`] (layer 0; callers relabel) if `p` is not in `family`;
    /// out of memory.
    pub(crate) fn from_permutation(
        p: Permutation,
        family: PermutationFamily,
        k: usize,
    ) -> Result<Self, StateError> {
        if !family.contains(&p, k) {
            return Err(StateError::NotAPermutation { layer: 0 });
        }
        let h = p.len();
        let per_segment = match family {
            PermutationFamily::TiledShuffle { tile } => {
                tiled_within(&p, k, tile, |j| tile_start(j, h / k, tile))
            }
            _ => true,
        };
        Ok(match family {
            _ if !streams(family, h, k) || !per_segment => Self::Stored(p),
            PermutationFamily::Random => Self::Stored(p),
            PermutationFamily::Shuffle => Self::Shuffle { h, k },
            PermutationFamily::TiledShuffle { tile } => {
                let mut tau = crate::memory::filled(h, 0u16)?;
                let mut tau_inv = crate::memory::filled(h, 0u16)?;
                let r = h / k;
                for (j, &pj) in p.forward().iter().enumerate() {
                    // τ(j) = σ⁻¹(π(j)), in j's tile (checked by `streams`).
                    let t = unshuffle(pj as usize, h, k);
                    let start = tile_start(j, r, tile);
                    tau[j] = (t - start) as u16;
                    tau_inv[t] = (j - start) as u16;
                }
                Self::Tiled {
                    h,
                    k,
                    tile,
                    tau,
                    tau_inv,
                }
            }
        })
    }

    /// The width `h`.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Stored(p) => p.len(),
            Self::Shuffle { h, .. } | Self::Tiled { h, .. } => *h,
        }
    }

    /// How the forward layer reads its input: `p_j = u_{π(j)}`.
    pub(crate) fn forward(&self) -> Wiring<'_> {
        self.wiring(false)
    }

    /// How the backward layer below reads this layer's cotangent: `w_i = z_{π⁻¹(i)}`.
    pub(crate) fn inverse(&self) -> Wiring<'_> {
        self.wiring(true)
    }

    fn wiring(&self, inverse: bool) -> Wiring<'_> {
        match self {
            Self::Stored(p) if inverse => Wiring::Index(p.inverse()),
            Self::Stored(p) => Wiring::Index(p.forward()),
            Self::Shuffle { h, .. } => Wiring::Shuffle(Shuffle {
                width: *h,
                inverse,
                tiles: None,
                offset: 0,
            }),
            Self::Tiled {
                h,
                tile,
                tau,
                tau_inv,
                ..
            } => Wiring::Shuffle(Shuffle {
                width: *h,
                inverse,
                tiles: Some(Tiles {
                    tile: *tile,
                    local: if inverse { tau_inv } else { tau },
                }),
                offset: 0,
            }),
        }
    }

    /// `π(j)`.
    pub(crate) fn source(&self, j: usize) -> usize {
        let k = match self {
            Self::Stored(_) => 1,
            Self::Shuffle { k, .. } | Self::Tiled { k, .. } => *k,
        };
        self.forward().source(k, j)
    }

    /// The whole permutation (allocates `8h` bytes for a compact one).
    ///
    /// # Errors
    /// Out of memory.
    pub(crate) fn to_permutation(&self) -> Result<Permutation, StateError> {
        if let Self::Stored(p) = self {
            return Ok(p.clone());
        }
        let mut forward = crate::memory::with_capacity(self.len())?;
        forward.extend((0..self.len()).map(|j| self.source(j) as u32));
        Permutation::try_new(forward, 0)
    }

    /// Bytes the layer's permutation holds on the heap (`8h`, `0` or `4h`).
    pub(crate) fn heap_bytes(family: PermutationFamily, h: usize, k: usize) -> Option<usize> {
        let aligned = streams(family, h, k);
        match family {
            PermutationFamily::Shuffle if aligned => Some(0),
            PermutationFamily::TiledShuffle { .. } if aligned => h.checked_mul(4),
            _ => h.checked_mul(8),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Wires {
    /// As [`Permutation`]: `{"forward": [π(0), …, π(h−1)]}`, computed for a compact layer.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Forward<'a>(&'a Wires);
        impl serde::Serialize for Forward<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0..self.0.len()).map(|j| self.0.source(j) as u32))
            }
        }
        let mut st = s.serialize_struct("Permutation", 1)?;
        st.serialize_field("forward", &Forward(self))?;
        st.end()
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Wires {
    /// A whole [`Permutation`]; the network validates and compacts it on restore.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Permutation::deserialize(d).map(Self::Stored)
    }
}

/// Whether a structured family at width `h` can be stored compactly and streamed: `h` aligned
/// ([`PermutationFamily::alignment`]) and tile offsets that fit `u16` (`T ≤ 2¹⁶`).
fn streams(family: PermutationFamily, h: usize, k: usize) -> bool {
    let small_tiles = match family {
        PermutationFamily::TiledShuffle { tile } => tile <= 1 << 16,
        _ => true,
    };
    small_tiles && family.alignment(k).is_ok_and(|m| h.is_multiple_of(m))
}

/// The first position of `j`'s tile: tiles of `T` restart at every segment of `r` outputs.
#[inline]
fn tile_start(j: usize, r: usize, tile: usize) -> usize {
    j - (j % r) % tile
}

/// Whether `p = σ ∘ τ` with `τ(j)` in `j`'s tile for every `j`, tiles given by their start.
fn tiled_within(p: &Permutation, k: usize, tile: usize, start: impl Fn(usize) -> usize) -> bool {
    let h = p.len();
    tile > 0
        && p.forward()
            .iter()
            .enumerate()
            .all(|(j, &pj)| start(unshuffle(pj as usize, h, k)) == start(j))
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

    /// Tiles restart at every segment (`h = 48`, `k = 4`, `r = 12`, tiles of 8: each segment
    /// has a tile of 8 and one of 4); such a layer is held compactly. A permutation with tiles
    /// counted across segments (as drawn before the streaming kernels) is still in the family,
    /// and is held whole.
    #[test]
    fn tiles_restart_at_every_segment_and_old_tiles_still_load() {
        let (h, k, tile) = (48, 4, 8);
        let family = PermutationFamily::TiledShuffle { tile };
        let p = family.draw(h, k, &mut Stream::new(3)).unwrap();
        for (j, &pj) in p.forward().iter().enumerate() {
            let t = unshuffle(pj as usize, h, k);
            assert_eq!(tile_start(t, 12, tile), tile_start(j, 12, tile), "j = {j}");
        }
        let compact = Wires::from_permutation(p.clone(), family, k).unwrap();
        assert!(matches!(compact, Wires::Tiled { .. }));
        assert_eq!(compact.to_permutation().unwrap(), p);
        // The old definition: runs of 8 from 0 across segments ([8, 16) spans two segments).
        let mut old: Vec<u32> = (0..h as u32).collect();
        for run in old.chunks_mut(tile) {
            run.rotate_left(1);
        }
        let old: Vec<u32> = old.iter().map(|&t| shuffle(t as usize, h, k)).collect();
        let old = Permutation::try_new(old, 0).unwrap();
        assert!(family.contains(&old, k));
        let held = Wires::from_permutation(old.clone(), family, k).unwrap();
        assert_eq!(held, Wires::Stored(old));
        // And neither is a plain shuffle.
        assert!(!PermutationFamily::Shuffle.contains(&p, k));
    }

    #[test]
    fn random_draws_what_the_stream_always_drew() {
        let a = PermutationFamily::Random
            .draw(50, 5, &mut Stream::new(9))
            .unwrap();
        assert_eq!(a.forward(), Stream::new(9).permutation(50).as_slice());
    }
}
