//! The fast bodies' incremental view of a [`Wiring`]: per block of `k` outputs, the sources
//! `s(j)` without division (see [`crate::wiring`] for the maps and the divisibility that makes
//! them incremental), and the prefetch hint for random indices.

use crate::tuning::PREFETCH_MIN_BYTES;
use crate::wiring::Wiring;

/// Hints the cache to fetch the line holding `*p` (`prefetcht0`); `p` need not be valid.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: `prefetch` is a hint: it never faults and has no architectural effect, so any
    // address is allowed; `p` was formed with `wrapping_add` (no out-of-bounds offset UB).
    // SSE, which the instruction needs, is part of the x86-64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
}

/// Hints the cache to fetch every 64-byte line of the `bytes` bytes from `p` (`p` need not be
/// valid: [`prefetch`] never faults).
#[inline(always)]
pub(crate) fn prefetch_lines<T>(p: *const T, bytes: usize) {
    for line in (0..bytes).step_by(64) {
        prefetch(p.cast::<u8>().wrapping_add(line));
    }
}

/// No prefetch hint on aarch64 (the hardware prefetcher only).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn prefetch<T>(_p: *const T) {}

/// The fast bodies' view of a wiring: the sources of one block of `k` outputs at a time,
/// advanced block by block (structured wirings incrementally, without division).
pub(crate) trait Cursor {
    /// The source of entry `c < k` of the current block.
    fn at(&self, c: usize) -> usize;
    /// Moves to the next block.
    fn advance(&mut self);
    /// Hints the cache to fetch `base[scale·s]` for the sources `s` of the block `ahead`
    /// blocks on (random indices only; streams need no hint).
    #[inline(always)]
    fn prefetch<T>(&self, _base: &[T], _scale: usize, _ahead: usize) {}
    /// `out[c] = x[s(c)]` for the current block (`out.len() = k`).
    #[inline(always)]
    fn gather<T: Copy>(&self, x: &[T], out: &mut [T]) {
        for (c, o) in out.iter_mut().enumerate() {
            *o = x[self.at(c)];
        }
    }
    /// `a[c] = ad[2s(c)]`, `d[c] = ad[2s(c) + 1]` for the current block (interleaved pairs).
    #[inline(always)]
    fn gather_pairs<T: Copy>(&self, ad: &[T], a: &mut [T], d: &mut [T]) {
        for (c, (x, y)) in a.iter_mut().zip(d.iter_mut()).enumerate() {
            let j = 2 * self.at(c);
            *x = ad[j];
            *y = ad[j + 1];
        }
    }
}

/// `out[c] = x[base + c·stride]` (the block of a cursor whose sources are evenly spaced),
/// through one sub-slice: one bounds check per block instead of one per source.
#[inline(always)]
fn gather_strided<T: Copy>(x: &[T], base: usize, stride: usize, out: &mut [T]) {
    let Some(last) = out.len().checked_sub(1) else {
        return;
    };
    let span = &x[base..=base + last * stride];
    for (o, &v) in out.iter_mut().zip(span.iter().step_by(stride)) {
        *o = v;
    }
}

/// `a[c] = ad[2(base + c·stride)]`, `d[c] = ad[2(base + c·stride) + 1]`, as [`gather_strided`].
#[inline(always)]
fn gather_pairs_strided<T: Copy>(ad: &[T], base: usize, stride: usize, a: &mut [T], d: &mut [T]) {
    let Some(last) = a.len().checked_sub(1) else {
        return;
    };
    let span = &ad[2 * base..2 * (base + last * stride) + 2];
    let pairs = span.chunks_exact(2).step_by(stride);
    for ((x, y), p) in a.iter_mut().zip(d.iter_mut()).zip(pairs) {
        (*x, *y) = (p[0], p[1]);
    }
}

/// `s(j) = j`.
pub(crate) struct IdentityCursor {
    j0: usize,
    k: usize,
}

impl Cursor for IdentityCursor {
    #[inline(always)]
    fn at(&self, c: usize) -> usize {
        self.j0 + c
    }
    #[inline(always)]
    fn advance(&mut self) {
        self.j0 += self.k;
    }
}

/// `s(j) = q(j)`, prefetching ahead.
///
/// The index and an offset, not a slice advanced block by block: the slice form (5444b0b)
/// executed 6 % fewer instructions but took 1.35× (f32) and 1.15× (f64) the CPU time per LODO
/// step at n = 10³ (`Random`, in cache; `lodo-bench/scripts/step-vs-commit.sh`), and no less
/// at n = 10⁶. The gathers take the block's `k` indices as one sub-slice (one bounds check per
/// block instead of one per index): 8.5 % fewer instructions per step (callgrind, f32,
/// n = 10⁴, AVX2) and 0.93–0.97× the CPU time at n = 10³ and f64 n = 10⁴, 1.00–1.01× at f32
/// n = 10⁴ (README, "`Random` in cache against an old build").
pub(crate) struct IndexCursor<'a> {
    q: &'a [u32],
    /// The current block's first index in `q`.
    j0: usize,
    k: usize,
}

impl Cursor for IndexCursor<'_> {
    #[inline(always)]
    fn at(&self, c: usize) -> usize {
        self.q[self.j0 + c] as usize
    }
    #[inline(always)]
    fn advance(&mut self) {
        self.j0 += self.k;
    }
    /// One bounds check per block on `q` (the provided form checks every index).
    #[inline(always)]
    fn gather<T: Copy>(&self, x: &[T], out: &mut [T]) {
        let idx = &self.q[self.j0..self.j0 + out.len()];
        for (o, &i) in out.iter_mut().zip(idx) {
            *o = x[i as usize];
        }
    }
    #[inline(always)]
    fn gather_pairs<T: Copy>(&self, ad: &[T], a: &mut [T], d: &mut [T]) {
        let idx = &self.q[self.j0..self.j0 + a.len()];
        for ((x, y), &i) in a.iter_mut().zip(d.iter_mut()).zip(idx) {
            let j = 2 * i as usize;
            *x = ad[j];
            *y = ad[j + 1];
        }
    }
    #[inline(always)]
    fn prefetch<T>(&self, base: &[T], scale: usize, ahead: usize) {
        if size_of_val(base) < PREFETCH_MIN_BYTES {
            return;
        }
        let next = self.j0 + ahead * self.k;
        if let Some(idx) = self.q.get(next..next + self.k) {
            for &i in idx {
                prefetch(base.as_ptr().wrapping_add(scale * i as usize));
            }
        }
    }
}

/// `s(j) = σ(j)`: block `j₀ = a·r + pos` reads `(pos + c)·k + a`.
pub(crate) struct ShuffleCursor {
    a: usize,
    pos: usize,
    k: usize,
    r: usize,
}

impl Cursor for ShuffleCursor {
    #[inline(always)]
    fn at(&self, c: usize) -> usize {
        (self.pos + c) * self.k + self.a
    }
    #[inline(always)]
    fn gather<T: Copy>(&self, x: &[T], out: &mut [T]) {
        gather_strided(x, self.at(0), self.k, out);
    }
    #[inline(always)]
    fn gather_pairs<T: Copy>(&self, ad: &[T], a: &mut [T], d: &mut [T]) {
        gather_pairs_strided(ad, self.at(0), self.k, a, d);
    }
    #[inline(always)]
    fn advance(&mut self) {
        self.pos += self.k;
        if self.pos == self.r {
            self.pos = 0;
            self.a += 1;
        }
    }
}

/// `s(j) = σ(τ(j))`: in segment `a`, the tile starting at position `p₀` reads
/// `(p₀ + local[j])·k + a`. Tiles restart at every segment (the last one of a segment may be
/// shorter), so a new segment starts a new tile.
pub(crate) struct TiledShuffleCursor<'a> {
    shuffle: ShuffleCursor,
    j0: usize,
    tile_start: usize,
    left: usize,
    tile: usize,
    local: &'a [u16],
}

impl Cursor for TiledShuffleCursor<'_> {
    #[inline(always)]
    fn at(&self, c: usize) -> usize {
        let t = self.tile_start + usize::from(self.local[self.j0 + c]);
        t * self.shuffle.k + self.shuffle.a
    }
    #[inline(always)]
    fn advance(&mut self) {
        let k = self.shuffle.k;
        self.j0 += k;
        self.left -= k;
        self.shuffle.advance();
        if self.left == 0 {
            // A segment ends on a tile boundary (its last tile is cut there).
            let pos = self.shuffle.pos;
            self.left = self.tile.min(self.shuffle.r - pos);
            self.tile_start = pos;
        }
    }
}

/// `s(j) = σ⁻¹(j)`: block `b` reads `c·r + b`, i.e. `k` sequential streams.
pub(crate) struct UnshuffleCursor {
    b: usize,
    r: usize,
}

impl Cursor for UnshuffleCursor {
    #[inline(always)]
    fn at(&self, c: usize) -> usize {
        c * self.r + self.b
    }
    #[inline(always)]
    fn gather<T: Copy>(&self, x: &[T], out: &mut [T]) {
        gather_strided(x, self.b, self.r, out);
    }
    #[inline(always)]
    fn gather_pairs<T: Copy>(&self, ad: &[T], a: &mut [T], d: &mut [T]) {
        gather_pairs_strided(ad, self.b, self.r, a, d);
    }
    #[inline(always)]
    fn advance(&mut self) {
        self.b += 1;
    }
}

/// `s(j) = τ⁻¹(σ⁻¹(j))`: block `b` reads `c·r + b₀ + local[c·r + b]`, `b₀ = T⌊b/T⌋` (the
/// tile of `c·r + b` starts at `c·r + b₀` in every segment `c`).
pub(crate) struct TiledUnshuffleCursor<'a> {
    unshuffle: UnshuffleCursor,
    tile_start: usize,
    left: usize,
    tile: usize,
    local: &'a [u16],
}

impl Cursor for TiledUnshuffleCursor<'_> {
    #[inline(always)]
    fn at(&self, c: usize) -> usize {
        let row = c * self.unshuffle.r;
        row + self.tile_start + usize::from(self.local[row + self.unshuffle.b])
    }
    #[inline(always)]
    fn advance(&mut self) {
        self.unshuffle.advance();
        self.left -= 1;
        if self.left == 0 {
            // Past the last block (`b = r`) the cursor is not read; `max(1)` keeps the count
            // from wrapping if it were advanced once more.
            let b = self.unshuffle.b;
            self.left = self.tile.min(self.unshuffle.r.saturating_sub(b)).max(1);
            self.tile_start = b;
        }
    }
}

impl ShuffleCursor {
    /// At output `a·r + pos` (`pos` a multiple of `k`), without division.
    #[inline(always)]
    pub(crate) fn at_segment(a: usize, pos: usize, k: usize, r: usize) -> Self {
        Self { a, pos, k, r }
    }
}

impl<'a> TiledShuffleCursor<'a> {
    /// At the start of the tile at position `pos` of segment `a` (`pos` a multiple of `T`).
    #[inline(always)]
    pub(crate) fn at_tile(
        a: usize,
        pos: usize,
        k: usize,
        r: usize,
        tile: usize,
        local: &'a [u16],
    ) -> Self {
        Self {
            shuffle: ShuffleCursor::at_segment(a, pos, k, r),
            j0: a * r + pos,
            tile_start: pos,
            left: tile.min(r - pos),
            tile,
            local,
        }
    }
}

/// A wiring's cursor, positioned at its first output; [`with_cursor!`] runs a body once per
/// concrete type.
pub(crate) enum Cursors<'a> {
    Identity(IdentityCursor),
    Index(IndexCursor<'a>),
    Shuffle(ShuffleCursor),
    TiledShuffle(TiledShuffleCursor<'a>),
    Unshuffle(UnshuffleCursor),
    TiledUnshuffle(TiledUnshuffleCursor<'a>),
}

impl<'a> Cursors<'a> {
    /// The cursor of `wiring` for block size `k` (checked by the caller: [`Wiring::check`]).
    #[inline(always)]
    pub(crate) fn of(wiring: Wiring<'a>, k: usize) -> Self {
        let s = match wiring {
            Wiring::Identity => return Self::Identity(IdentityCursor { j0: 0, k }),
            Wiring::Index(q) => return Self::Index(IndexCursor { q, j0: 0, k }),
            Wiring::Shuffle(s) => s,
        };
        let (j0, r) = (s.offset, s.width / k);
        match (s.inverse, s.tiles) {
            (false, tiles) => {
                let shuffle = ShuffleCursor {
                    a: j0 / r,
                    pos: j0 % r,
                    k,
                    r,
                };
                let Some(t) = tiles else {
                    return Self::Shuffle(shuffle);
                };
                let into = shuffle.pos % t.tile;
                let start = shuffle.pos - into;
                Self::TiledShuffle(TiledShuffleCursor {
                    tile_start: start,
                    left: t.tile.min(r - start) - into,
                    shuffle,
                    j0,
                    tile: t.tile,
                    local: t.local,
                })
            }
            (true, tiles) => {
                let unshuffle = UnshuffleCursor { b: j0 / k, r };
                let Some(t) = tiles else {
                    return Self::Unshuffle(unshuffle);
                };
                let into = unshuffle.b % t.tile;
                let start = unshuffle.b - into;
                Self::TiledUnshuffle(TiledUnshuffleCursor {
                    tile_start: start,
                    left: t.tile.min(r - start) - into,
                    unshuffle,
                    tile: t.tile,
                    local: t.local,
                })
            }
        }
    }
}

/// Runs `$body` with `$c` bound to the concrete cursor of `$wiring` (one copy of the body per
/// cursor type, so each is compiled with its own source arithmetic inlined).
macro_rules! with_cursor {
    ($wiring:expr, $k:expr, |$c:ident| $body:expr) => {
        match $crate::cursor::Cursors::of($wiring, $k) {
            $crate::cursor::Cursors::Identity($c) => $body,
            $crate::cursor::Cursors::Index($c) => $body,
            $crate::cursor::Cursors::Shuffle($c) => $body,
            $crate::cursor::Cursors::TiledShuffle($c) => $body,
            $crate::cursor::Cursors::Unshuffle($c) => $body,
            $crate::cursor::Cursors::TiledUnshuffle($c) => $body,
        }
    };
}
pub(crate) use with_cursor;
