//! The evolution-strategy tuner on toy problems: it finds the optimum, handles diverged
//! candidates, follows the schedule, and does not depend on the thread count.

use lodo_bench::baselines::{HyperParam, Scale};
use lodo_bench::tune::{Generation, bowl_schedule, rosenbrock_schedule, scaled, tune};

const PARAMS: [HyperParam; 2] = [
    HyperParam {
        name: "lr",
        default: 1.0,
        scale: Scale::Log,
    },
    HyperParam {
        name: "beta",
        default: 0.5,
        scale: Scale::Decay,
    },
];

/// Score with its minimum at lr = 1e−2, β = 0.99, in normalised coordinates; +∞ for lr > 10
/// ("diverged").
fn score(v: &[f64]) -> f64 {
    if v[0] > 10.0 {
        return f64::INFINITY;
    }
    let a = v[0].ln() - 1e-2f64.ln();
    let b = (1.0 - v[1]).max(1e-30).ln() - 0.01f64.ln();
    a * a + b * b
}

fn schedule() -> Vec<Generation> {
    [3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05]
        .into_iter()
        .map(|sigma| Generation {
            sigma,
            steps: 7,
            population: 32,
        })
        .collect()
}

#[test]
fn tuner_finds_the_optimum_of_a_toy_problem() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let out = tune::<(), _>(&PARAMS, &[1.0, 0.5], &schedule(), 42, |v, steps, _seed| {
        assert_eq!(steps, 7, "each candidate gets the generation's steps");
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(score(v))
    })
    .unwrap();
    assert_eq!(calls.into_inner(), 320);
    assert_eq!(out.means.len(), 11);
    assert_eq!(
        out.means[0].iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        [1.0f64.to_bits(), 0.5f64.to_bits()]
    );
    assert_eq!(out.generations.len(), 10);
    assert!(out.generations.iter().all(|g| g.len() == 32));
    // Started 4.6 (lr) and 3.9 (β) normalised units away; must end within 0.2 of the optimum.
    let s = score(&out.best);
    assert!(s < 0.04, "best {:?} scores {s}", out.best);
    assert!(score(&out.means[5]) < score(&out.means[0]));
}

#[test]
fn next_mean_is_the_mean_of_the_best_half_in_normalised_space() {
    let one = [Generation {
        sigma: 1.0,
        steps: 1,
        population: 8,
    }];
    let out = tune::<(), _>(&PARAMS[..1], &[1.0], &one, 7, |v, _, _| {
        Ok(score(&[v[0], 0.99]))
    })
    .unwrap();
    let mut c: Vec<(f64, f64)> = out.generations[0]
        .iter()
        .map(|c| (c.score, c.values[0].ln()))
        .collect();
    c.sort_by(|a, b| a.0.total_cmp(&b.0));
    let expect = (c[..4].iter().map(|p| p.1).sum::<f64>() / 4.0).exp();
    assert!((out.best[0] - expect).abs() < 1e-12 * expect);
}

#[test]
fn diverged_candidates_are_excluded_and_all_diverged_keeps_the_mean() {
    let one = [Generation {
        sigma: 2.0,
        steps: 1,
        population: 16,
    }];
    // Every candidate diverges: the mean stays the start.
    let out = tune::<(), _>(&PARAMS, &[1.0, 0.5], &one, 3, |_, _, _| Ok(f64::NAN)).unwrap();
    assert!(
        out.generations[0]
            .iter()
            .all(|c| c.score.is_infinite() && c.score > 0.0)
    );
    assert!((out.best[0] - 1.0).abs() < 1e-15 && (out.best[1] - 0.5).abs() < 1e-15);
    // Only 2 finite candidates: the mean is theirs, not the best half of 16.
    let out = tune::<(), _>(&PARAMS[..1], &[1.0], &one, 3, |v, _, _| {
        Ok(if v[0] < 0.3 { v[0] } else { f64::INFINITY })
    })
    .unwrap();
    let finite: Vec<f64> = out.generations[0]
        .iter()
        .filter(|c| c.score.is_finite())
        .map(|c| c.values[0].ln())
        .collect();
    assert!(
        !finite.is_empty() && finite.len() < 8,
        "seed gives {} finite",
        finite.len()
    );
    let expect = (finite.iter().sum::<f64>() / finite.len() as f64).exp();
    assert!((out.best[0] - expect).abs() < 1e-12 * expect);
}

#[test]
fn errors_stop_the_tuner() {
    let r = tune::<&str, _>(&PARAMS, &[1.0, 0.5], &schedule(), 1, |_, _, _| Err("stop"));
    assert_eq!(r.unwrap_err(), "stop");
}

#[test]
fn outcome_is_bit_identical_for_any_thread_count() {
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                tune::<(), _>(&PARAMS, &[1.0, 0.5], &schedule(), 5, |v, _, seed| {
                    // Seed-dependent noise, as real runs have.
                    Ok(score(v) + (seed % 1000) as f64 * 1e-4)
                })
                .unwrap()
            })
    };
    let a = run(1);
    let b = run(3);
    let bits = |o: &lodo_bench::tune::TuneOutcome| -> Vec<u64> {
        o.means.iter().flatten().map(|x| x.to_bits()).collect()
    };
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn schedules_are_the_authors() {
    let b = bowl_schedule();
    assert_eq!(b.len(), 10);
    assert_eq!((b[0].sigma, b[0].steps, b[0].population), (3.0, 100, 32));
    assert_eq!((b[9].sigma, b[9].steps), (0.6, 10_000));
    let r = rosenbrock_schedule();
    assert!(r.iter().all(|g| g.steps == 200 && g.population == 32));
    assert_eq!((r[0].sigma, r[9].sigma), (3.0, 0.3));
    let s = scaled(&b, 2000, 12);
    assert_eq!(s[2].steps, 1000);
    assert_eq!(s[3].steps, 2000);
    assert!(s.iter().all(|g| g.population == 12));
}

#[test]
fn scales_round_trip() {
    for x in [1e-8, 0.3, 1.0, 42.0] {
        assert!((Scale::Log.unnormalize(Scale::Log.normalize(x)) - x).abs() < 1e-14 * x);
    }
    for x in [0.0, 0.5, 0.9, 0.999] {
        assert!((Scale::Decay.unnormalize(Scale::Decay.normalize(x)) - x).abs() < 1e-14);
    }
    // z > 0 maps to β = 0 (clipped), as max(0, 1 − eᶻ).
    assert_eq!(Scale::Decay.unnormalize(0.5).to_bits(), 0.0f64.to_bits());
}
