//! The problem the firmware solves, shared word for word with the host check (`host/`), so both
//! compute the gradient with the same operations in the same order: an ill-conditioned quadratic
//!
//! $$ ℓ(x) = ½ \sum_i d_i (x_i − c_i)^2,\qquad d_i = 1/(1+i)^2,\ c_i = 1 + i/8, $$
//!
//! over `N = 16` parameters (condition number 256), from `x = 0`. Every constant is exact in f32
//! (or a correctly rounded division), and no call goes to a math library, so host and target agree
//! bit for bit as long as LODO itself does (reference kernel path on both).

/// Number of parameters.
pub const N: usize = 16;
/// Steps taken.
pub const STEPS: usize = 300;
/// Print the loss every this many steps.
pub const PRINT_EVERY: usize = 25;
/// LODO's seed.
pub const SEED: u64 = 2023;
/// LODO's initial learning rate `α₀` (the preconditioner starts as `α₀·I`).
pub const ALPHA0: f32 = 0.5;

/// Curvature `d_i` along coordinate `i`.
#[inline(never)]
pub fn curvature(i: usize) -> f32 {
    let s = 1.0 + i as f32;
    1.0 / (s * s)
}

/// The minimiser's coordinate `c_i`.
#[inline(never)]
pub fn target(i: usize) -> f32 {
    1.0 + i as f32 / 8.0
}

/// Writes `∇ℓ(x)` into `g` and returns `ℓ(x)` (summed in index order).
#[inline(never)]
pub fn loss_and_gradient(x: &[f32; N], g: &mut [f32; N]) -> f32 {
    let mut loss = 0.0f32;
    for i in 0..N {
        let d = curvature(i);
        let r = x[i] - target(i);
        g[i] = d * r;
        loss += 0.5 * d * r * r;
    }
    loss
}
