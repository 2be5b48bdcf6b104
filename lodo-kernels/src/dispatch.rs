//! Which implementation runs: CPU detection, the cached choice and the `LODO_KERNEL` override.
//!
//! Paths, best first: [`Path::Avx512`] (x86-64, `avx512f + avx512vl + avx512bw + avx512dq + avx2 + fma`), [`Path::Avx2`]
//! (x86-64, `avx2 + fma`), [`Path::Neon`] (aarch64), and [`Path::Reference`], the portable
//! bodies written as the formulas read, always available.
//!
//! With the `std` feature the CPU is probed at run time (`is_x86_feature_detected!`) on first
//! use and the choice is cached in an atomic. Without `std` the choice is fixed at compile time
//! from `cfg!(target_feature = …)`: build with `-C target-feature=+avx2,+fma` (or
//! `-C target-cpu=native`) to get a SIMD path in a `no_std` build.
//!
//! `LODO_KERNEL=reference|avx2|avx512|neon` (std only) forces a path. Forcing a path this CPU
//! lacks makes the first kernel call panic, so a test run that asked for a path cannot pass
//! silently on another one.
//!
//! Only `f32` and `f64` take the SIMD paths; any other [`num_traits::Float`] runs the reference
//! bodies whatever the selection.

use core::any::TypeId;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// One implementation of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// Portable, safe bodies written as the formulas read (plain multiply-then-add).
    Reference = 1,
    /// x86-64 with AVX2 and FMA.
    Avx2 = 2,
    /// x86-64 with AVX-512 F, VL, BW, DQ (and AVX2, FMA).
    Avx512 = 3,
    /// aarch64 with NEON.
    Neon = 4,
}

impl Path {
    /// Every path, best first (the order of [`best`]'s search).
    pub const ALL: [Self; 4] = [Self::Avx512, Self::Avx2, Self::Neon, Self::Reference];

    /// The name `LODO_KERNEL` uses.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
            Self::Neon => "neon",
        }
    }

    /// Parses a [`Path::name`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this CPU (std) or this build (no_std) supports the path.
    #[must_use]
    pub fn is_available(self) -> bool {
        match self {
            Self::Reference => true,
            Self::Avx2 => has_avx2(),
            Self::Avx512 => has_avx512(),
            Self::Neon => has_neon(),
        }
    }

    /// The path stored as `x` in [`SELECTED`] (`None` for 0, "not chosen yet").
    const fn from_u8(x: u8) -> Option<Self> {
        match x {
            1 => Some(Self::Reference),
            2 => Some(Self::Avx2),
            3 => Some(Self::Avx512),
            4 => Some(Self::Neon),
            _ => None,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The requested path is not supported here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unavailable(pub Path);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel path `{}` is not available on this CPU/build",
            self.0
        )
    }
}

impl core::error::Error for Unavailable {}

/// Whether AVX2 and FMA are usable: detected at run time (std). Under Miri the detection
/// reports exactly the features enabled at compile time (`.ci/miri` enables them), so the
/// `#[target_feature]` bodies run there only when Miri accepts them.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}
/// Whether AVX2 and FMA are enabled at compile time (no_std: no detection).
#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn has_avx2() -> bool {
    cfg!(all(target_feature = "avx2", target_feature = "fma"))
}
/// Never outside x86-64.
#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

/// Whether AVX-512 (F, VL, BW, DQ), AVX2 and FMA are usable (run-time detection, as
/// [`has_avx2`]).
#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn has_avx512() -> bool {
    has_avx2()
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
}
/// Whether AVX-512 (F, VL, BW, DQ), AVX2 and FMA are enabled at compile time.
#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn has_avx512() -> bool {
    has_avx2()
        && cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512vl",
            target_feature = "avx512bw",
            target_feature = "avx512dq"
        ))
}
/// Never outside x86-64.
#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

/// Whether NEON is usable (run-time detection).
#[cfg(all(target_arch = "aarch64", feature = "std"))]
fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}
/// Whether NEON is enabled at compile time.
#[cfg(all(target_arch = "aarch64", not(feature = "std")))]
fn has_neon() -> bool {
    cfg!(target_feature = "neon")
}
/// Never outside aarch64.
#[cfg(not(target_arch = "aarch64"))]
fn has_neon() -> bool {
    false
}

/// The best available path (the first of [`Path::ALL`] that [`Path::is_available`]).
#[must_use]
pub fn best() -> Path {
    Path::ALL
        .into_iter()
        .find(|p| p.is_available())
        .unwrap_or(Path::Reference)
}

/// 0: not chosen yet; otherwise a `Path as u8` that was checked available before being stored.
static SELECTED: AtomicU8 = AtomicU8::new(0);

/// The path the safe entry points use: the one set by [`force`], else `LODO_KERNEL` (std), else
/// [`best`]. Chosen on first call and cached.
///
/// # Panics
/// If `LODO_KERNEL` is set to an unknown name or to a path this CPU lacks (std only).
#[must_use]
pub fn selected() -> Path {
    if let Some(p) = Path::from_u8(SELECTED.load(Ordering::Relaxed)) {
        return p;
    }
    let p = initial();
    SELECTED.store(p as u8, Ordering::Relaxed);
    p
}

/// The first selection: `LODO_KERNEL` if set (checked available), else [`best`].
#[cfg(feature = "std")]
fn initial() -> Path {
    match std::env::var("LODO_KERNEL") {
        Ok(name) if !name.is_empty() => {
            let Some(p) = Path::from_name(&name) else {
                panic!("LODO_KERNEL={name}: expected reference, avx2, avx512 or neon");
            };
            assert!(
                p.is_available(),
                "LODO_KERNEL={name} forces a kernel path this CPU does not support"
            );
            p
        }
        _ => best(),
    }
}

/// The first selection: [`best`] (no environment without std).
#[cfg(not(feature = "std"))]
fn initial() -> Path {
    best()
}

/// Makes every later call of the safe entry points use `path` (process-wide; meant for
/// benches and reports that compare paths in one run).
///
/// # Errors
/// [`Unavailable`] if the path is not supported here; the selection is then unchanged.
pub fn force(path: Path) -> Result<(), Unavailable> {
    if !path.is_available() {
        return Err(Unavailable(path));
    }
    SELECTED.store(path as u8, Ordering::Relaxed);
    Ok(())
}

/// A handle on one available path: every kernel is a method, so tests and benches can run each
/// path side by side without touching the process-wide selection.
///
/// Invariant: `self.path.is_available()` was true when the value was made (only [`Kernels::new`]
/// and [`Kernels::selected`] make one). The unsafe calls into `#[target_feature]` bodies rely on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernels {
    path: Path,
}

impl Kernels {
    /// The kernels of `path`.
    ///
    /// # Errors
    /// [`Unavailable`] if the path is not supported on this CPU/build.
    pub fn new(path: Path) -> Result<Self, Unavailable> {
        if path.is_available() {
            Ok(Self { path })
        } else {
            Err(Unavailable(path))
        }
    }

    /// The kernels of [`selected`].
    ///
    /// # Panics
    /// As [`selected`].
    #[must_use]
    #[inline]
    pub fn selected() -> Self {
        // `selected` only returns paths that passed `is_available` (in `initial` or `force`).
        Self { path: selected() }
    }

    /// The reference kernels (always available).
    #[must_use]
    pub const fn reference() -> Self {
        Self {
            path: Path::Reference,
        }
    }

    /// This handle's path.
    #[must_use]
    pub const fn path(self) -> Path {
        self.path
    }

    /// The path element type `T` actually takes: this one for `f32`/`f64`, the reference for
    /// any other type.
    #[must_use]
    #[inline]
    pub(crate) fn path_for<T: 'static>(self) -> Path {
        if is_native::<T>() {
            self.path
        } else {
            Path::Reference
        }
    }
}

/// Whether `T` is `f32` or `f64`, the types with SIMD bodies.
#[inline]
#[must_use]
pub(crate) fn is_native<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>()
}
