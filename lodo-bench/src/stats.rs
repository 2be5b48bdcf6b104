//! Statistics for comparing groups of runs: Welch's unequal-variance t-test with the
//! Student-t distribution computed through the regularized incomplete beta function.
//!
//! For samples `a` (size `n_a`, mean `ā`, sample variance `s_a²`) and `b`:
//!
//! $$ t = \frac{\bar a - \bar b}{\sqrt{s_a^2/n_a + s_b^2/n_b}}, \qquad
//!    ν = \frac{(s_a^2/n_a + s_b^2/n_b)^2}{\frac{(s_a^2/n_a)^2}{n_a - 1} + \frac{(s_b^2/n_b)^2}{n_b - 1}} $$
//!
//! (Welch–Satterthwaite degrees of freedom), and the two-sided p-value of `t` under Student's
//! t with `ν` degrees of freedom is
//!
//! $$ p = P(|T_ν| ≥ |t|) = I_{ν/(ν + t^2)}\left(\tfrac{ν}{2}, \tfrac12\right), $$
//!
//! where `I_x(a, b) = B(x; a, b)/B(a, b)` is the regularized incomplete beta function, evaluated
//! by its continued fraction (modified Lentz; Numerical Recipes §6.4) on the side of
//! `x = (a+1)/(a+b+2)` where it converges fast, and `ln Γ` by Lanczos' approximation (g = 7,
//! 9 terms; relative error below 1e−15 for positive arguments).

use std::f64::consts::PI;
use std::fmt;

/// Why a test could not be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatsError {
    /// A sample has fewer than 2 values (no sample variance).
    TooFewSamples {
        /// Its size.
        found: usize,
    },
    /// A value is NaN or infinite.
    NonFinite,
    /// Both samples have zero spread: `t` is undefined.
    NoSpread,
    /// An argument is outside the function's domain (e.g. `ν ≤ 0`, `x ∉ [0, 1]`).
    Domain,
    /// The continued fraction did not converge (not seen for `ν` up to 1e8).
    NoConvergence,
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFewSamples { found } => {
                write!(
                    f,
                    "a sample has {found} value(s); Welch's test needs at least 2"
                )
            }
            Self::NonFinite => f.write_str("a sample value is not finite"),
            Self::NoSpread => f.write_str("both samples have zero spread; t is undefined"),
            Self::Domain => f.write_str("argument outside the function's domain"),
            Self::NoConvergence => {
                f.write_str("the incomplete beta continued fraction did not converge")
            }
        }
    }
}

impl std::error::Error for StatsError {}

/// The result of Welch's t-test of `a` against `b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    /// `t` (positive when `mean(a) > mean(b)`).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom `ν`.
    pub df: f64,
    /// Two-sided p-value `P(|T_ν| ≥ |t|)`.
    pub p: f64,
}

/// Mean and sample variance (`n − 1` in the denominator).
///
/// # Errors
/// [`StatsError::TooFewSamples`] or [`StatsError::NonFinite`].
pub fn mean_var(x: &[f64]) -> Result<(f64, f64), StatsError> {
    if x.len() < 2 {
        return Err(StatsError::TooFewSamples { found: x.len() });
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite);
    }
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0);
    Ok((m, v))
}

/// Welch's t-test of `a` against `b` (see the module docs for the formulas).
///
/// # Errors
/// [`StatsError::TooFewSamples`], [`StatsError::NonFinite`], [`StatsError::NoSpread`] (both
/// variances zero), or the p-value's errors.
pub fn welch(a: &[f64], b: &[f64]) -> Result<Welch, StatsError> {
    let (ma, va) = mean_var(a)?;
    let (mb, vb) = mean_var(b)?;
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se2 = sa + sb;
    if se2 <= 0.0 {
        return Err(StatsError::NoSpread);
    }
    let t = (ma - mb) / se2.sqrt();
    let df = se2 * se2 / (sa * sa / (a.len() - 1) as f64 + sb * sb / (b.len() - 1) as f64);
    let p = student_t_two_sided(t, df)?;
    Ok(Welch { t, df, p })
}

/// `P(|T_ν| ≥ |t|)` for Student's t with `df = ν > 0` degrees of freedom:
/// `I_{ν/(ν+t²)}(ν/2, 1/2)`.
///
/// # Errors
/// [`StatsError::Domain`] for `ν ≤ 0` or a NaN; [`StatsError::NoConvergence`].
pub fn student_t_two_sided(t: f64, df: f64) -> Result<f64, StatsError> {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return Err(StatsError::Domain);
    }
    if t.is_infinite() {
        return Ok(0.0);
    }
    // x = ν/(ν+t²) and 1 − x = t²/(ν+t²), each computed directly (no cancellation near 1).
    let t2 = t * t;
    let x = df / (df + t2);
    let y = t2 / (df + t2);
    inc_beta_xy(df / 2.0, 0.5, x, y)
}

/// The regularized incomplete beta function `I_x(a, b)`, `a, b > 0`, `0 ≤ x ≤ 1`.
///
/// # Errors
/// [`StatsError::Domain`], [`StatsError::NoConvergence`].
pub fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> Result<f64, StatsError> {
    inc_beta_xy(a, b, x, 1.0 - x)
}

/// `I_x(a, b)` given `x` and `y = 1 − x` (each as accurate as the caller has it).
fn inc_beta_xy(a: f64, b: f64, x: f64, y: f64) -> Result<f64, StatsError> {
    if !(a > 0.0 && b > 0.0 && (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y)) {
        return Err(StatsError::Domain);
    }
    if x == 0.0 {
        return Ok(0.0);
    }
    if y == 0.0 {
        return Ok(1.0);
    }
    // x^a y^b / B(a, b)
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * y.ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        Ok(front * beta_continued_fraction(a, b, x)? / a)
    } else {
        Ok(1.0 - front * beta_continued_fraction(b, a, y)? / b)
    }
}

/// The continued fraction of `I_x(a, b)` (Numerical Recipes' `betacf`), by modified Lentz.
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> Result<f64, StatsError> {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    const MAX_ITER: usize = 100_000;
    let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        // Even step.
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        h *= d * c;
        // Odd step.
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            return Ok(h);
        }
    }
    Err(StatsError::NoConvergence)
}

/// `ln Γ(x)` for `x > 0`: Lanczos' approximation (g = 7, 9 coefficients), with the reflection
/// `Γ(x)Γ(1−x) = π/sin(πx)` below 1/2.
#[must_use]
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut s = C[0];
    for (i, &c) in C.iter().enumerate().skip(1) {
        s += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}
