//! How a layer reads its input through a permutation: a stored index, or a structured
//! permutation computed while streaming.
//!
//! Every fused layer kernel reads its input `x` as `x̂_j = x_{s(j)}` for a source map `s`. A
//! [`Wiring`] names `s`:
//!
//! | wiring | `s(j)` | memory |
//! |---|---|---|
//! | [`Wiring::Identity`] | $j$ | none |
//! | [`Wiring::Index`] | $q(j)$, a stored `u32` index (the paper's random permutations) | $4h$ bytes, read once per pass |
//! | [`Wiring::Shuffle`] | $σ(τ(j))$ or its inverse $τ^{-1}(σ^{-1}(j))$ ([`Shuffle`]) | none, or $2h$ bytes of tile offsets |
//!
//! With `r = h/k`, the `k`-ary perfect shuffle (the transpose of the `r × k` grid) is
//!
//! $$ σ(j) = (j \bmod r)\,k + \lfloor j/r \rfloor,\qquad σ^{-1}(i) = (i \bmod k)\,r + \lfloor i/k \rfloor, $$
//!
//! and `τ` permutes inside each tile: the runs of `T` consecutive positions of each segment of
//! `r` positions (tiles restart at every segment; a segment's last tile is shorter when `T ∤ r`):
//! `τ(j) = t(j) + local(j)`, `t(j) = j − (j mod r) mod T` the start of `j`'s tile. Requiring
//! `k | r` and `k | T` makes every block of `k` outputs read a strided run of one segment and of
//! one tile (`σ`: `k` sources `k` apart; `σ⁻¹`: `k` sources `r` apart, i.e. `k` sequential
//! streams), and every tile read a window of `k·T` inputs, so the fast bodies compute the
//! sources of each block incrementally, with no division and no random access beyond one tile.
//!
//! The kernels give the same bits for a structured wiring as for [`Wiring::Index`] holding its
//! materialised source map ([`Wiring::source`]): the wiring only decides where each input is
//! read from.

/// Where a layer kernel reads output `j`'s input from (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wiring<'a> {
    /// `s(j) = j`.
    Identity,
    /// `s(j) = q(j)`: a stored gather index.
    Index(&'a [u32]),
    /// A computed perfect shuffle, optionally tiled.
    Shuffle(Shuffle<'a>),
}

/// The `k`-ary perfect shuffle of a layer of width `h` (`k` is the kernel's block size), or its
/// inverse, optionally composed with a permutation inside tiles (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shuffle<'a> {
    /// The layer width `h` (a multiple of `k²`, so `k | r = h/k`).
    pub width: usize,
    /// `false`: `s = σ ∘ τ` (a forward layer's gather). `true`: `s = τ⁻¹ ∘ σ⁻¹` (the inverse,
    /// which the backward layers read through).
    pub inverse: bool,
    /// The tiles (`τ` for the forward map, `τ⁻¹` for the inverse), or `None` for `τ = id`.
    pub tiles: Option<Tiles<'a>>,
    /// The first output this call computes: `0` for a whole layer, the start of the part when
    /// a layer is split across threads (a multiple of `k`).
    pub offset: usize,
}

/// A permutation inside each tile of `T` consecutive positions of a segment:
/// `τ(j) = t(j) + local[j]`, `t(j) = j − (j mod r) mod T` (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles<'a> {
    /// The tile length `T` (a multiple of `k`).
    pub tile: usize,
    /// `local[j] < T`, the offset inside `j`'s tile (`h` entries).
    pub local: &'a [u16],
}

impl Wiring<'_> {
    /// The source `s(j)` of (part-relative) output `j`, in closed form: what the reference
    /// bodies read and what the fast bodies' incremental cursors must reproduce.
    ///
    /// `k` is the block size (the shuffle's arity).
    ///
    /// # Panics
    /// If `j` is beyond an index or a tile table, or `k == 0` for a shuffle.
    #[must_use]
    #[track_caller]
    pub fn source(&self, k: usize, j: usize) -> usize {
        match *self {
            Self::Identity => j,
            Self::Index(q) => q[j] as usize,
            Self::Shuffle(s) => s.source(k, s.offset + j),
        }
    }

    /// The wiring of outputs `start..start + len` only (a part of a layer split across
    /// threads): the index sliced, or the shuffle's offset moved.
    ///
    /// # Panics
    /// If an index is shorter than `start + len`.
    #[must_use]
    #[track_caller]
    pub fn part(self, start: usize, len: usize) -> Self {
        match self {
            Self::Identity => Self::Identity,
            Self::Index(q) => Self::Index(&q[start..start + len]),
            Self::Shuffle(s) => Self::Shuffle(Shuffle {
                offset: s.offset + start,
                ..s
            }),
        }
    }

    /// Checks the wiring for `len` outputs of block size `k` (the kernels' entry points call
    /// this; the source values themselves are bounds-checked where they are read).
    ///
    /// # Panics
    /// - an index whose length is not `len`;
    /// - a shuffle with `k == 0`, `k² ∤ h`, `offset` not a multiple of `k` or
    ///   `offset + len > h`;
    /// - tiles with `T == 0`, `k ∤ T`, or a table whose length is not `h`.
    #[track_caller]
    pub(crate) fn check(&self, k: usize, len: usize) {
        match *self {
            Self::Identity => {}
            Self::Index(q) => assert_eq!(q.len(), len, "wiring: index has the wrong length"),
            Self::Shuffle(s) => s.check(k, len),
        }
    }
}

impl Shuffle<'_> {
    /// `s(j)` for a global output `j` (closed form, with divisions).
    #[track_caller]
    fn source(&self, k: usize, j: usize) -> usize {
        let r = self.width / k;
        let tiled = |j: usize| match self.tiles {
            Some(t) => j - (j % r) % t.tile + usize::from(t.local[j]),
            None => j,
        };
        if self.inverse {
            tiled((j % k) * r + j / k)
        } else {
            let t = tiled(j);
            (t % r) * k + t / r
        }
    }

    #[track_caller]
    fn check(&self, k: usize, len: usize) {
        let h = self.width;
        assert!(k > 0, "shuffle: block size k must be positive");
        assert!(
            h.is_multiple_of(k * k),
            "shuffle: width {h} is not a multiple of k² = {}",
            k * k
        );
        assert!(
            self.offset.is_multiple_of(k) && self.offset + len <= h,
            "shuffle: outputs {}..{} are not whole blocks of the layer",
            self.offset,
            self.offset + len
        );
        if let Some(t) = self.tiles {
            assert!(
                t.tile > 0 && t.tile.is_multiple_of(k),
                "shuffle: tile {} must be a positive multiple of k = {k}",
                t.tile
            );
            assert_eq!(t.local.len(), h, "shuffle: tile table has the wrong length");
        }
    }
}
