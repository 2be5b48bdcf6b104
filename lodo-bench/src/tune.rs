//! The authors' evolution-strategy hyperparameter tuner (`tuning/hyperparameter_tuning_parent2.py`
//! and `_child2.py`).
//!
//! Each hyperparameter lives in a normalised coordinate `z` ([`Scale`](crate::baselines::Scale): `log x`, or
//! `log(1 − x)` for momenta/β). Generation `k` with schedule entry `(σ_k, T_k, P_k)`:
//!
//! 1. sample `P_k` candidates `z ∼ N(μ_k, σ_k² I)` and map them back to values;
//! 2. run each for `T_k` steps; its score is the mean training loss over the last 10% of steps
//!    (`+∞` if the run diverged);
//! 3. `μ_{k+1}` = mean of the renormalised values of the best `min(#finite, ⌊P_k/2⌋)` candidates
//!    (unchanged if none is finite).
//!
//! `μ_0` is the normalised authors' default; the result is the values at `μ_K`.
//! Candidates run in parallel (rayon); sampling is sequential from a seeded stream, and scores
//! are gathered in candidate order, so the outcome does not depend on the number of threads.

use lodo_core::random::Stream;
use rayon::prelude::*;
use serde::Serialize;

use crate::baselines::HyperParam;
use crate::experiment::derive_seed;

/// One generation of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Generation {
    /// Standard deviation `σ` of the candidates around the mean, in normalised coordinates.
    pub sigma: f64,
    /// Steps per candidate run.
    pub steps: u64,
    /// Candidates in the generation.
    pub population: usize,
}

const fn g(sigma: f64, steps: u64, population: usize) -> Generation {
    Generation {
        sigma,
        steps,
        population,
    }
}

/// The authors' schedule for the noisy quadratic bowl (`experiment2.py`).
#[must_use]
pub fn bowl_schedule() -> Vec<Generation> {
    vec![
        g(3.0, 100, 32),
        g(3.0, 300, 32),
        g(3.0, 1000, 32),
        g(3.0, 10_000, 32),
        g(2.0, 10_000, 32),
        g(1.7, 10_000, 32),
        g(1.4, 10_000, 32),
        g(1.2, 10_000, 32),
        g(0.9, 10_000, 32),
        g(0.6, 10_000, 32),
    ]
}

/// The authors' schedule for Rosenbrock (`experiment2.py`).
#[must_use]
pub fn rosenbrock_schedule() -> Vec<Generation> {
    [3.0, 3.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.75, 0.5, 0.3]
        .into_iter()
        .map(|s| g(s, 200, 32))
        .collect()
}

/// `schedule` with every step count capped at `max_steps` (at least 10) and every population
/// set to `population` (at least 2): a cheaper schedule with the same σ sequence.
#[must_use]
pub fn scaled(schedule: &[Generation], max_steps: u64, population: usize) -> Vec<Generation> {
    schedule
        .iter()
        .map(|generation| Generation {
            sigma: generation.sigma,
            steps: generation.steps.min(max_steps.max(10)),
            population: population.max(2),
        })
        .collect()
}

/// One evaluated candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// Hyperparameter values.
    pub values: Vec<f64>,
    /// Its score (`+∞` if diverged).
    pub score: f64,
}

/// What the tuner did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TuneOutcome {
    /// The mean (as values) each generation sampled around; `means[0]` is the start.
    pub means: Vec<Vec<f64>>,
    /// Every candidate of every generation.
    pub generations: Vec<Vec<Candidate>>,
    /// The tuned values: the mean after the last generation.
    pub best: Vec<f64>,
}

/// Runs the evolution strategy.
///
/// `evaluate(values, steps, seed)` runs one candidate and returns its score (lower is better;
/// `+∞` or NaN for a diverged run). An `Err` from it (e.g. an interruption) stops the tuner.
///
/// # Errors
/// The first error `evaluate` returned, in candidate order.
///
/// # Panics
/// If `start.len() != params.len()`.
pub fn tune<E: Send, F>(
    params: &[HyperParam],
    start: &[f64],
    schedule: &[Generation],
    seed: u64,
    evaluate: F,
) -> Result<TuneOutcome, E>
where
    F: Fn(&[f64], u64, u64) -> Result<f64, E> + Sync,
{
    assert_eq!(start.len(), params.len(), "tune: one start value per param");
    let normalize = |values: &[f64]| -> Vec<f64> {
        params
            .iter()
            .zip(values)
            .map(|(p, &x)| p.scale.normalize(x))
            .collect()
    };
    let unnormalize = |z: &[f64]| -> Vec<f64> {
        params
            .iter()
            .zip(z)
            .map(|(p, &x)| p.scale.unnormalize(x))
            .collect()
    };
    let mut mu = normalize(start);
    let mut means = vec![unnormalize(&mu)];
    let mut generations = Vec::with_capacity(schedule.len());
    for (k, generation) in schedule.iter().enumerate() {
        let mut rng = Stream::new(derive_seed(seed, &[k as u64, 0x7475_6e65]));
        let samples: Vec<Vec<f64>> = (0..generation.population)
            .map(|_| {
                let z: Vec<f64> = mu
                    .iter()
                    .map(|&m| m + generation.sigma * rng.gaussian())
                    .collect();
                unnormalize(&z)
            })
            .collect();
        let scores: Vec<Result<f64, E>> = samples
            .par_iter()
            .enumerate()
            .map(|(i, values)| {
                evaluate(
                    values,
                    generation.steps,
                    derive_seed(seed, &[k as u64, i as u64, 0x72_756e]),
                )
            })
            .collect();
        let mut candidates = Vec::with_capacity(samples.len());
        for (values, score) in samples.into_iter().zip(scores) {
            let s = score?;
            candidates.push(Candidate {
                values,
                score: if s.is_nan() { f64::INFINITY } else { s },
            });
        }
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by(|&a, &b| candidates[a].score.total_cmp(&candidates[b].score));
        let finite = candidates.iter().filter(|c| c.score.is_finite()).count();
        let keep = finite.min(generation.population / 2);
        if keep > 0 {
            let mut sum = vec![0.0; params.len()];
            for &i in &order[..keep] {
                for (s, z) in sum.iter_mut().zip(normalize(&candidates[i].values)) {
                    *s += z;
                }
            }
            mu = sum.into_iter().map(|s| s / keep as f64).collect();
        }
        means.push(unnormalize(&mu));
        generations.push(candidates);
    }
    Ok(TuneOutcome {
        best: unnormalize(&mu),
        means,
        generations,
    })
}
