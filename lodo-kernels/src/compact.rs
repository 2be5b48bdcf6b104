//! Compact storage of the optimizer's state: Adam's moments in bf16 with seeded stochastic
//! rounding or in an 8-bit block-wise code (one pair of scales per tile of the fused kernel),
//! and the kept activations in bf16 ([`Stored`]).
//!
//! The arithmetic stays in the working float `T`: a tile's moments are decoded into `T`,
//! updated, and encoded again ([`crate::Kernels::backward_pair_adam`] with [`Moments::Bf16`] or
//! [`Moments::Q8`]). Every code here is integer arithmetic on the bits of an `f32` and one
//! `f32` product, so it gives the same bits on every path and platform.
//!
//! # bf16
//! The top 16 bits of an `f32` (8 significant bits). Adam's second moment moves by
//! `(1−β₂) ≈ 10⁻³` of itself per step, below bf16's relative spacing `2⁻⁷`: rounding to
//! nearest would freeze it. Encoding therefore rounds stochastically,
//! `code = (bits(x) + r) >> 16` with `r` uniform in `[0, 2¹⁶)` from [`noise`] (a hash of the
//! element's index and the step's key): unbiased, `E[decode(code)] = x`, and deterministic for
//! a given key.
//!
//! # 8-bit block-wise (q8)
//! Each tile of [`adam_tile`] entries (whole `k × k` blocks, a few hundred numbers) has its
//! own scales `s_M = max|M|`, `s_V = max V`, stored as `f32`. An entry is stored relative to its
//! scale, `y = x / s ∈ [−1, 1]`, as a tiny float: the exponent and the top 3 mantissa bits of
//! `y`'s `f32` bits, rounded to nearest (`(bits(|y|) + 2¹⁹) >> 20`), so the relative error is
//! at most `2⁻⁴` whatever the entry's size (a log-scale code, as in the block-wise dynamic
//! quantization of 8-bit Adam, Dettmers et al. 2022):
//! - `M` (signed): a sign bit and 7 bits, 16 binades: `|y| < 2⁻¹⁶` is stored as 0 (a smaller
//!   step, never a larger one);
//! - `V` (non-negative): 8 bits, 32 binades; a positive `y < 2⁻³²` is stored as the smallest
//!   code, never 0 (an overestimated `V` makes a smaller step; a zero `V` would make `M/ε`).
//!
//! Rounding to nearest is deliberate: with a relative spacing of `2⁻³` and `β₂ = 0.999`,
//! stochastic rounding's noise would accumulate in `V` to the order of `V` itself
//! (equilibrium variance `σ²/(1−β₂²)`), while rounding to nearest only lets `V` move when a step
//! changes it by more than half a spacing (it then follows rises of `g²` and decays in steps).

use num_traits::Float;

use crate::tuning::{ADAM_TILE, ADAM_TILE_MAX_K};

/// How the Adam moments of one block layer are stored (each has one entry per weight of `θ`).
#[derive(Debug)]
pub enum Moments<'a, T> {
    /// In the working float `T`.
    Full {
        /// The first moment `M`.
        m: &'a mut [T],
        /// The second moment `V`.
        v: &'a mut [T],
    },
    /// bf16 (`f32`'s top 16 bits), encoded with seeded stochastic rounding.
    Bf16 {
        /// `M` as bf16 bits.
        m: &'a mut [u16],
        /// `V` as bf16 bits.
        v: &'a mut [u16],
    },
    /// The 8-bit block-wise code, one `[s_M, s_V]` pair per tile of [`adam_tile`] entries.
    Q8 {
        /// `M`'s codes (sign bit, 7-bit magnitude).
        m: &'a mut [u8],
        /// `V`'s codes.
        v: &'a mut [u8],
        /// `[max|M|, max V]` of each tile (`⌈len / adam_tile(k)⌉` pairs).
        scales: &'a mut [[f32; 2]],
    },
}

impl<T> Moments<'_, T> {
    /// The number of entries of each moment.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Moments::Full { m, .. } => m.len(),
            Moments::Bf16 { m, .. } => m.len(),
            Moments::Q8 { m, .. } => m.len(),
        }
    }

    /// Whether the moments are empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether they are stored compactly (bf16 or q8).
    #[must_use]
    pub fn is_compact(&self) -> bool {
        !matches!(self, Moments::Full { .. })
    }
}

/// How a kept activation of the forward pass is stored between the forward and the backward
/// sweep ([`crate::Kernels::layer_forward_into`] writes it, the fused backward kernels read it
/// through [`crate::block_diagonal::GatheredPair`]): in the working float itself, or as
/// [`Bf16`]. The forward output is computed from the unrounded value either way; only what is
/// kept for the hypergradient is rounded.
pub trait Stored<T>: Copy {
    /// The stored form of `x`.
    fn store(x: T) -> Self;
    /// The value of a stored form.
    fn load(self) -> T;
    /// `dst[i] = store(src[i])` for a run of values (the same bits as [`Stored::store`]),
    /// without branches where that matters: the SIMD forward bodies store each gathered block
    /// with it ([`Bf16`] then rounds by [`bf16_nearest_lanes`]). The reference bodies store
    /// element by element with [`Stored::store`].
    #[inline(always)]
    fn store_run(src: &[T], dst: &mut [Self])
    where
        T: Copy,
    {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = Self::store(s);
        }
    }
    /// The values themselves when the stored form is `T` (no copy), else `None`.
    #[inline(always)]
    fn as_full(stored: &[Self]) -> Option<&[T]> {
        let _ = stored;
        None
    }
    /// [`Stored::as_full`], mutably.
    #[inline(always)]
    fn as_full_mut(stored: &mut [Self]) -> Option<&mut [T]> {
        let _ = stored;
        None
    }
}

impl<T: Float> Stored<T> for T {
    #[inline(always)]
    fn store(x: T) -> Self {
        x
    }
    #[inline(always)]
    fn load(self) -> T {
        self
    }
    #[inline(always)]
    fn as_full(stored: &[Self]) -> Option<&[T]> {
        Some(stored)
    }
    #[inline(always)]
    fn as_full_mut(stored: &mut [Self]) -> Option<&mut [T]> {
        Some(stored)
    }
}

/// An `f32` holding a value of a wider working float (`f64`): the stored form of the weights `θ`
/// below `T` ([`crate::block_diagonal::AdamSlices`], the `W` of the block kernels). Stored
/// rounded to nearest, ties to even (`as f32`; a finite value beyond `f32`'s range becomes ±∞,
/// which the fused Adam update's guard refuses), read back exactly (`f32 → f64` is exact).
///
/// Nearest rounding is enough for `θ`: its updates are `10⁻³…10⁻⁵` of its size, far above
/// `f32`'s relative spacing `2⁻²⁴ ≈ 6·10⁻⁸`, so no update is lost to rounding (unlike bf16's
/// `2⁻⁸`, see [`bf16_stochastic`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(transparent)]
pub struct F32(pub f32);

impl<T: Float> Stored<T> for F32 {
    #[inline(always)]
    fn store(x: T) -> Self {
        F32(to_f32(x))
    }
    #[inline(always)]
    fn load(self) -> T {
        from_f32(self.0)
    }
}

/// A bf16 number (`f32`'s top 16 bits), kept rounded to nearest, ties to even
/// ([`bf16_nearest`]): a kept activation is used once, so there is no drift to fear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl<T: Float> Stored<T> for Bf16 {
    #[inline(always)]
    fn store(x: T) -> Self {
        Bf16(bf16_nearest(to_f32(x)))
    }
    #[inline(always)]
    fn load(self) -> T {
        from_f32(bf16_decode(self.0))
    }
    #[inline(always)]
    fn store_run(src: &[T], dst: &mut [Self]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = Bf16(bf16_nearest_lanes(to_f32(s)));
        }
    }
}

/// Entries per tile of the fused Adam kernel for block size `k`: the whole `k × k` blocks that
/// fit [`ADAM_TILE`] (at least one block). A q8 tile is a quantization block.
#[must_use]
pub const fn adam_tile(k: usize) -> usize {
    let kk = k * k;
    if kk == 0 {
        return ADAM_TILE;
    }
    let t = (ADAM_TILE / kk) * kk;
    if t == 0 { kk } else { t }
}

/// The number of q8 scale pairs of a layer of `len` entries with block size `k`.
#[must_use]
pub const fn q8_scales(len: usize, k: usize) -> usize {
    len.div_ceil(adam_tile(k))
}

/// Largest block size with compact moments (a tile must fit the kernel's stack buffers).
pub const COMPACT_MAX_K: usize = ADAM_TILE_MAX_K;

/// The largest finite bf16, `(2 − 2⁻⁷)·2¹²⁷`: compact moments hold nothing larger (the fused
/// update keeps the old values of an element whose new `V` would exceed it).
pub const BF16_MAX: f32 = f32::from_bits(0x7F7F_0000);

/// 32 uniformly distributed bits from a key and an index (the `lowbias32` integer hash of
/// Chris Wellons, applied to `index ⊕ key·φ`): the stochastic-rounding source.
#[inline(always)]
#[must_use]
pub fn noise(key: u32, index: u32) -> u32 {
    let mut x = index ^ key.wrapping_mul(0x9E37_79B9);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x
}

/// `x` as bf16 bits, rounded stochastically with the 16 bits `r`: `(bits(x) + r) >> 16`
/// (`|x| ≤` [`BF16_MAX`], so it never rounds to ±∞).
#[inline(always)]
#[must_use]
pub fn bf16_stochastic(x: f32, r: u32) -> u16 {
    let bits = x.to_bits();
    let sign = bits & 0x8000_0000;
    let mag = (bits & 0x7FFF_FFFF).min(0x7F7F_0000);
    ((sign | (mag + (r & 0xFFFF)).min(0x7F7F_FFFF)) >> 16) as u16
}

/// `x` as bf16 bits, rounded to nearest, ties to even (finite `x`; saturates at [`BF16_MAX`];
/// NaN stays NaN).
#[inline(always)]
#[must_use]
pub fn bf16_nearest(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = bits & 0x8000_0000;
    let mag = bits & 0x7FFF_FFFF;
    if mag > 0x7F80_0000 {
        return ((bits >> 16) | 0x0040) as u16;
    }
    let rounded = if mag == 0x7F80_0000 {
        mag
    } else {
        (mag + 0x7FFF + ((mag >> 16) & 1)).min(0x7F7F_FFFF)
    };
    ((sign | rounded) >> 16) as u16
}

/// [`bf16_nearest`] without branches: every case computed, then combined with bit masks (not
/// `if`s, which LLVM turned back into branches, so the forward's store of a block's `k`
/// activations ran as `k` scalar branchy sequences); the same bits for every `x` (tested on a
/// sweep of `f32` bit patterns and the rounding boundaries, and through [`Stored::store_run`]
/// on every kernel path).
#[inline(always)]
#[must_use]
pub fn bf16_nearest_lanes(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = bits & 0x8000_0000;
    let mag = bits & 0x7FFF_FFFF;
    // `mag + 0x8000` cannot overflow (`mag < 2³¹`).
    let rounded = (mag + 0x7FFF + ((mag >> 16) & 1)).min(0x7F7F_FFFF);
    // All ones where `x` is ±∞ or NaN (`mag ≥ 0x7F80_0000`), else 0; NaN sets the quiet bit.
    let special = u32::from(mag >= 0x7F80_0000).wrapping_neg();
    let quiet = u32::from(mag > 0x7F80_0000) << 6;
    let finite = (sign | rounded) >> 16;
    let other = (bits >> 16) | quiet;
    ((special & other) | (!special & finite)) as u16
}

/// The `f32` value of bf16 bits (exact).
#[inline(always)]
#[must_use]
pub fn bf16_decode(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// `(bits >> 20)` of the largest `|y| = 1`.
const ONE: u32 = 0x3F80_0000 >> 20;
/// Offsets of the q8 codes: code `c > 0` is `(c + LO) << 20` (relative to the scale).
const LO_M: u32 = ONE - 127;
const LO_V: u32 = ONE - 255;

/// The q8 code of a signed `y = M/s_M ∈ [−1, 1]`: sign bit and the 7-bit magnitude
/// `clamp((bits(|y|) + 2¹⁹) >> 20 − LO_M, 0, 127)`.
#[inline(always)]
#[must_use]
pub fn q8_signed(y: f32) -> u8 {
    let bits = y.to_bits();
    let r = ((bits & 0x7FFF_FFFF) + (1 << 19)) >> 20;
    let mag = r.saturating_sub(LO_M).min(127);
    (((bits >> 24) & 0x80) | mag) as u8
}

/// The value of a signed q8 code relative to its scale (exact).
#[inline(always)]
#[must_use]
pub fn q8_signed_decode(c: u8) -> f32 {
    let mag = u32::from(c & 0x7F);
    let bits = if mag == 0 { 0 } else { (mag + LO_M) << 20 };
    f32::from_bits(bits | (u32::from(c & 0x80) << 24))
}

/// The q8 code of `y = V/s_V ∈ [0, 1]`: `clamp((bits(y) + 2¹⁹) >> 20 − LO_V, 1, 255)`, and 0
/// only for `y = 0`.
#[inline(always)]
#[must_use]
pub fn q8_unsigned(y: f32) -> u8 {
    let bits = y.to_bits() & 0x7FFF_FFFF;
    let r = (bits + (1 << 19)) >> 20;
    let c = r.saturating_sub(LO_V).clamp(1, 255);
    if bits == 0 { 0 } else { c as u8 }
}

/// The value of an unsigned q8 code relative to its scale (exact).
#[inline(always)]
#[must_use]
pub fn q8_unsigned_decode(c: u8) -> f32 {
    if c == 0 {
        0.0
    } else {
        f32::from_bits((u32::from(c) + LO_V) << 20)
    }
}

#[inline(always)]
pub(crate) fn to_f32<T: Float>(x: T) -> f32 {
    x.to_f32().unwrap_or(f32::NAN)
}

#[inline(always)]
fn from_f32<T: Float>(x: f32) -> T {
    T::from(x).unwrap_or_else(T::nan)
}

/// The value in `T` of a bf16 moment.
#[inline(always)]
pub(crate) fn bf16_value<T: Float>(c: u16) -> T {
    from_f32(bf16_decode(c))
}

/// The value in `T` of `M`'s q8 code `c` in a tile of scale `s`: `decode(c)·s`, in `f32`.
#[inline(always)]
pub(crate) fn q8_m_value<T: Float>(c: u8, s: f32) -> T {
    from_f32(q8_signed_decode(c) * s)
}

/// The value in `T` of `V`'s q8 code `c` in a tile of scale `s`: `decode(c)·s`, in `f32`.
#[inline(always)]
pub(crate) fn q8_v_value<T: Float>(c: u8, s: f32) -> T {
    from_f32(q8_unsigned_decode(c) * s)
}

/// The largest value compact moments hold, in `T`.
#[inline(always)]
pub(crate) fn compact_limit<T: Float>() -> T {
    from_f32(BF16_MAX)
}

/// Decodes tile `tile` (entries `[at, at + mb.len())` of the layer) into `mb`, `vb`.
///
/// # Panics
/// If the tile lies outside the moments.
#[inline(always)]
pub fn decode_tile<T: Float>(
    moments: &Moments<'_, T>,
    tile: usize,
    at: usize,
    mb: &mut [T],
    vb: &mut [T],
) {
    let len = mb.len();
    match moments {
        Moments::Full { m, v } => {
            mb.copy_from_slice(&m[at..at + len]);
            vb.copy_from_slice(&v[at..at + len]);
        }
        Moments::Bf16 { m, v } => {
            for (x, &c) in mb.iter_mut().zip(&m[at..at + len]) {
                *x = bf16_value(c);
            }
            for (x, &c) in vb.iter_mut().zip(&v[at..at + len]) {
                *x = bf16_value(c);
            }
        }
        Moments::Q8 { m, v, scales } => {
            let [sm, sv] = scales[tile];
            for (x, &c) in mb.iter_mut().zip(&m[at..at + len]) {
                *x = q8_m_value(c, sm);
            }
            for (x, &c) in vb.iter_mut().zip(&v[at..at + len]) {
                *x = q8_v_value(c, sv);
            }
        }
    }
}

/// Encodes `mb`, `vb` (every entry finite, `|M|, V ≤` [`BF16_MAX`]) into tile `tile` at `at`.
/// bf16 rounds stochastically with [`noise`]`(key, index + i)` for `(key, index) = noise_at`
/// (`index`: the tile's first entry in its layer, `at` for moments that start with the layer):
/// 16 bits for `M`, 16 for `V`; q8 sets the tile's scales to `max|M|`, `max V` first.
///
/// # Panics
/// If the tile lies outside the moments.
#[inline(always)]
pub fn encode_tile<T: Float>(
    moments: &mut Moments<'_, T>,
    tile: usize,
    at: usize,
    (key, index): (u32, usize),
    mb: &[T],
    vb: &[T],
) {
    let len = mb.len();
    match moments {
        Moments::Full { m, v } => {
            m[at..at + len].copy_from_slice(mb);
            v[at..at + len].copy_from_slice(vb);
        }
        Moments::Bf16 { m, v } => {
            let codes = m[at..at + len].iter_mut().zip(&mut v[at..at + len]);
            for (i, ((cm, cv), (&x, &y))) in codes.zip(mb.iter().zip(vb)).enumerate() {
                (*cm, *cv) = bf16_moment_codes(key, index + i, x, y);
            }
        }
        Moments::Q8 { m, v, scales } => {
            // Rounding to `f32` is monotonic, so the largest rounded magnitude is the rounded
            // largest one.
            let (sm, sv) = (
                q8_scale(mb.iter().map(|&x| to_f32(x))),
                q8_scale(vb.iter().map(|&x| to_f32(x))),
            );
            scales[tile] = [sm, sv];
            let (im, iv) = (inverse(sm), inverse(sv));
            for (c, &x) in m[at..at + len].iter_mut().zip(mb) {
                *c = q8_signed(to_f32(x) * im);
            }
            for (c, &x) in v[at..at + len].iter_mut().zip(vb) {
                *c = q8_unsigned(to_f32(x) * iv);
            }
        }
    }
}

/// A q8 tile's scale: the largest `|x|` of its (finite) entries (`V ≥ 0`, so `max V` for the
/// second moment). Taken as the largest of the magnitudes' bit patterns, which order like the
/// magnitudes themselves: an integer maximum that vectorises without the NaN handling of
/// [`f32::max`], and the same value.
#[inline(always)]
pub(crate) fn q8_scale(xs: impl IntoIterator<Item = f32>) -> f32 {
    f32::from_bits(
        xs.into_iter()
            .fold(0, |a, x| a.max(x.to_bits() & 0x7FFF_FFFF)),
    )
}

/// The bf16 codes of one element's moments `M`, `V` (entry `index` of the layer), rounded
/// stochastically with [`noise`]`(key, index)`: its low 16 bits for `M`, its high 16 for `V`.
#[inline(always)]
pub(crate) fn bf16_moment_codes<T: Float>(key: u32, index: usize, m: T, v: T) -> (u16, u16) {
    let r = noise(key, index as u32);
    (
        bf16_stochastic(to_f32(m), r),
        bf16_stochastic(to_f32(v), r >> 16),
    )
}

/// `1/s`, or 0 for a zero scale (a tile of zeros).
#[inline(always)]
pub(crate) fn inverse(s: f32) -> f32 {
    if s > 0.0 {
        (1.0 / s).min(f32::MAX)
    } else {
        0.0
    }
}

/// Checks the shapes of compact moments against `θ` (`len` entries, block size `k`).
#[track_caller]
pub(crate) fn check<T>(moments: &Moments<'_, T>, len: usize, k: usize) {
    let lens = match moments {
        Moments::Full { m, v } => (m.len(), v.len()),
        Moments::Bf16 { m, v } => (m.len(), v.len()),
        Moments::Q8 { m, v, scales } => {
            assert_eq!(scales.len(), q8_scales(len, k), "q8 scales per tile");
            (m.len(), v.len())
        }
    };
    assert_eq!(lens.0, len, "M has {} entries, expected {len}", lens.0);
    assert_eq!(lens.1, len, "V has {} entries, expected {len}", lens.1);
    if moments.is_compact() {
        assert!(
            k <= COMPACT_MAX_K,
            "compact moments need k ≤ {COMPACT_MAX_K}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_is_nearest_or_unbiased() {
        for &x in &[
            1.0f32,
            -1.0,
            core::f32::consts::PI,
            1e-30,
            -7.5e20,
            0.0,
            BF16_MAX,
        ] {
            let n = bf16_decode(bf16_nearest(x));
            assert!((n - x).abs() <= x.abs() * (1.0 / 256.0), "{x} -> {n}");
            let lo = bf16_decode((x.to_bits() >> 16) as u16);
            for r in [0, 1, 0x7FFF, 0xFFFF] {
                let s = bf16_decode(bf16_stochastic(x, r));
                assert!(
                    s.to_bits() == lo.to_bits() || s.abs() > lo.abs(),
                    "{x} r={r}: {s}"
                );
                assert!(s.is_finite());
            }
        }
        // The mean of the stochastic codes is the value.
        let x = 1.0f32 + 3.0 / 1024.0;
        let mean = (0..65536u32)
            .map(|r| f64::from(bf16_decode(bf16_stochastic(x, r))))
            .sum::<f64>()
            / 65536.0;
        assert!((mean - f64::from(x)).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn bf16_nearest_lanes_is_bf16_nearest() {
        let stride = if cfg!(miri) { 0x00FF_FFF1 } else { 251 };
        let boundaries = [0u32, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF]
            .into_iter()
            .flat_map(|lo| [0u32, 0x7F7F, 0x7F80, 0x7FC0, 0x3F80, 0x0001].map(|hi| hi << 16 | lo));
        let bits = (0..=u32::MAX).step_by(stride).chain(boundaries);
        for b in bits.flat_map(|b| [b, b | 0x8000_0000]) {
            let x = f32::from_bits(b);
            assert_eq!(bf16_nearest_lanes(x), bf16_nearest(x), "{b:#010x}");
        }
    }

    #[test]
    fn q8_codes_round_trip_within_a_sixteenth() {
        let mut y = 1.0f32;
        while y > 1e-4 {
            for s in [1.0f32, -1.0] {
                let d = q8_signed_decode(q8_signed(s * y));
                assert!((d - s * y).abs() <= y / 16.0, "{y}: {d}");
            }
            let d = q8_unsigned_decode(q8_unsigned(y));
            assert!((d - y).abs() <= y / 16.0, "{y}: {d}");
            y *= 0.93;
        }
        assert_eq!(q8_signed(0.0), 0);
        assert_eq!(q8_signed_decode(q8_signed(1e-6)).to_bits(), 0);
        assert_eq!(q8_unsigned(0.0), 0);
        assert!(q8_unsigned_decode(q8_unsigned(1e-30)) > 0.0);
        assert_eq!(q8_unsigned_decode(255).to_bits(), 1.0f32.to_bits());
        assert_eq!(q8_signed_decode(127).to_bits(), 1.0f32.to_bits());
        assert_eq!(q8_signed_decode(0xFF).to_bits(), (-1.0f32).to_bits());
    }

    #[test]
    fn tiles_are_whole_blocks() {
        for k in 1..=COMPACT_MAX_K {
            let t = adam_tile(k);
            assert_eq!(t % (k * k), 0);
            assert!(t <= ADAM_TILE && t >= k * k);
        }
        assert_eq!(adam_tile(4), 512);
    }
}
