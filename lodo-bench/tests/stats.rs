//! Welch's t-test and Student's t against values computed independently: closed forms of the
//! t distribution for ν = 1…4, printed critical values, a numerical integral of the density,
//! and Welch's t and ν worked out by hand.

use std::f64::consts::PI;

use lodo_bench::stats::{
    StatsError, ln_gamma, regularized_incomplete_beta, student_t_two_sided, welch,
};

/// Two-sided p of Student's t for ν = 1, 2, 3, 4 from the closed forms of the CDF
/// (ν = 1: Cauchy; the others by integrating the density in elementary functions).
fn closed_form(t: f64, df: u32) -> f64 {
    let t = t.abs();
    match df {
        1 => 1.0 - 2.0 / PI * t.atan(),
        2 => 1.0 - t / (2.0 + t * t).sqrt(),
        3 => {
            let u = t / 3f64.sqrt();
            1.0 - 2.0 / PI * (u / (1.0 + u * u) + u.atan())
        }
        4 => {
            let s = t / (4.0 + t * t).sqrt();
            1.0 - s * (1.5 - 0.5 * s * s)
        }
        _ => unreachable!("closed forms for ν ≤ 4 only"),
    }
}

/// `P(|T_ν| ≥ t)` by Simpson's rule, independent of the beta and gamma functions: with
/// `x = √ν·tan θ` the density is `∝ cos^{ν−1} θ` on `θ ∈ [0, π/2)`, so
/// `p = 1 − ∫₀^{θ_t} cos^{ν−1} θ dθ / ∫₀^{π/2} cos^{ν−1} θ dθ`, `θ_t = atan(t/√ν)`.
fn simpson_p(t: f64, df: f64) -> f64 {
    let f = |x: f64| x.cos().powf(df - 1.0);
    let integral = |b: f64| {
        let m = 200_000; // even
        let h = b / m as f64;
        let mut s = f(0.0) + f(b);
        for i in 1..m {
            s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0
    };
    1.0 - integral((t.abs() / df.sqrt()).atan()) / integral(PI / 2.0)
}

#[test]
fn ln_gamma_matches_factorials_and_sqrt_pi() {
    // Γ(n) = (n − 1)!, Γ(1/2) = √π; Lanczos (g = 7, 9 terms) is good to ~1e−15 relative, so
    // 1e−13 on ln Γ leaves room for the sums' rounding.
    let mut fact = 1.0f64;
    for n in 1..30 {
        if n > 1 {
            fact *= (n - 1) as f64;
        }
        let want = fact.ln();
        assert!(
            (ln_gamma(n as f64) - want).abs() <= 1e-13 * want.abs().max(1.0),
            "Γ({n})"
        );
    }
    assert!((ln_gamma(0.5) - PI.sqrt().ln()).abs() < 1e-14);
    assert!((ln_gamma(0.25) - 3.625_609_908_221_908f64.ln()).abs() < 1e-14);
}

#[test]
fn student_t_matches_the_closed_forms() {
    // The continued fraction stops when a factor is within 1e−16 of 1 and Lanczos is good to
    // ~1e−15: 1e−12 absolute (and relative for small p) is a safe margin over both.
    for df in 1..=4 {
        for t in [0.0, 0.05, 0.3, 1.0, 1.7, 2.5, 4.0, 10.0, 60.0, -2.5] {
            let want = closed_form(t, df);
            let got = student_t_two_sided(t, f64::from(df)).unwrap();
            assert!(
                (got - want).abs() <= 1e-12 * want.max(1e-3),
                "ν = {df}, t = {t}: {got} vs {want}"
            );
        }
    }
    assert_eq!(student_t_two_sided(f64::INFINITY, 3.0), Ok(0.0));
    assert_eq!(student_t_two_sided(1.0, 0.0), Err(StatsError::Domain));
    assert_eq!(student_t_two_sided(f64::NAN, 3.0), Err(StatsError::Domain));
}

#[test]
fn student_t_matches_printed_critical_values() {
    // Two-sided 5 % and 1 % points as printed in t tables (3 decimals). The rounding of t is at
    // most 5e−4 and |dp/dt| = 2·f(t) < 0.12 there, so p is within 6e−5 of the level.
    let table = [
        (1.0, 12.706, 0.05),
        (5.0, 2.571, 0.05),
        (10.0, 2.228, 0.05),
        (14.0, 2.145, 0.05),
        (30.0, 2.042, 0.05),
        (3.0, 5.841, 0.01),
        (10.0, 3.169, 0.01),
        (120.0, 1.980, 0.05),
    ];
    for (df, t, level) in table {
        let p = student_t_two_sided(t, df).unwrap();
        assert!((p - level).abs() < 6e-5, "ν = {df}, t = {t}: p = {p}");
    }
}

#[test]
fn student_t_matches_a_numerical_integral_at_fractional_df() {
    // Simpson's error is ≤ (b−a)·h⁴·max|f⁗|/180 with h = (π/2)/2e5 ≈ 7.9e−6, below 1e−17 for
    // smooth f (|f⁗| ≲ ν⁴ on cos^{ν−1}); near π/2, cos^{ν−1} θ ≈ (π/2 − θ)^{ν−1} caps the order
    // at h^{min(4, ν)}, ≈ 2e−13 for ν = 2.5 (so ν ≥ 2.5 here). Summing 2e5 terms adds at most
    // ~2e−11 of rounding: 1e−10 covers both.
    for df in [2.5, 4.7494, 7.3, 13.9] {
        for t in [0.2, 1.0, 2.2, 3.5] {
            let want = simpson_p(t, df);
            let got = student_t_two_sided(t, df).unwrap();
            assert!(
                (got - want).abs() < 1e-10,
                "ν = {df}, t = {t}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn incomplete_beta_limits_and_symmetry() {
    assert_eq!(regularized_incomplete_beta(0.0, 2.0, 3.0), Ok(0.0));
    assert_eq!(regularized_incomplete_beta(1.0, 2.0, 3.0), Ok(1.0));
    // I_x(1, 1) = x; I_x(a, b) = 1 − I_{1−x}(b, a); I_x(2, 1) = x².
    for x in [0.1, 0.37, 0.5, 0.9] {
        let id = regularized_incomplete_beta(x, 1.0, 1.0).unwrap();
        assert!((id - x).abs() < 1e-15);
        let sq = regularized_incomplete_beta(x, 2.0, 1.0).unwrap();
        assert!((sq - x * x).abs() < 1e-15);
        let a = regularized_incomplete_beta(x, 2.5, 7.0).unwrap();
        let b = regularized_incomplete_beta(1.0 - x, 7.0, 2.5).unwrap();
        assert!((a + b - 1.0).abs() < 1e-14);
    }
    assert_eq!(
        regularized_incomplete_beta(1.5, 2.0, 3.0),
        Err(StatsError::Domain)
    );
}

#[test]
fn welch_matches_a_hand_computation() {
    // a: mean 3, s² = 2.5, s²/n = 1/2; b: mean 9, s² = 20/3, s²/n = 5/3.
    // t = −6/√(13/6); ν = (13/6)² / ((1/2)²/4 + (5/3)²/3) = 2028/427.
    let a = [1.0, 2.0, 3.0, 4.0, 5.0];
    let b = [6.0, 8.0, 10.0, 12.0];
    let w = welch(&a, &b).unwrap();
    let t = -6.0 / (13.0f64 / 6.0).sqrt();
    let df = 2028.0 / 427.0;
    assert!((w.t - t).abs() < 1e-14, "{}", w.t);
    assert!((w.df - df).abs() < 1e-13, "{}", w.df);
    let p = simpson_p(t, df);
    assert!((w.p - p).abs() < 1e-10, "{} vs {p}", w.p);
    // Symmetric in the order of the samples, up to t's sign.
    let r = welch(&b, &a).unwrap();
    assert_eq!((r.t, r.df, r.p), (-w.t, w.df, w.p));
    // Equal samples: t = 0, p = 1.
    let same = welch(&a, &a).unwrap();
    assert_eq!((same.t, same.p), (0.0, 1.0));
}

#[test]
fn welch_refuses_what_it_cannot_test() {
    assert_eq!(
        welch(&[1.0], &[1.0, 2.0]),
        Err(StatsError::TooFewSamples { found: 1 })
    );
    assert_eq!(
        welch(&[1.0, f64::NAN], &[1.0, 2.0]),
        Err(StatsError::NonFinite)
    );
    assert_eq!(welch(&[2.0, 2.0], &[3.0, 3.0]), Err(StatsError::NoSpread));
    // One sample without spread is fine: ν is the other's n − 1.
    let w = welch(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]).unwrap();
    assert!((w.df - 2.0).abs() < 1e-12);
    assert!((w.p - closed_form(w.t, 2)).abs() < 1e-12);
}
