//! The claims beside the tables are computed from the runs: the same code gives the opposite
//! verdict when the numbers are the other way round, and the numbers it quotes are the runs'.

use lodo_bench::baselines::{Optimizer, OptimizerKind};
use lodo_bench::experiment::claims::{
    Comparison, ablation_finding, compare, diverged_note, frozen_errors, frozen_note,
    hessian_finding, main_table_note, mnist_claim,
};
use lodo_bench::experiment::protocol::{Budget, Group, TaskResults};
use lodo_bench::experiment::{HessianPoint, RunRecord, TaskSpec};
use lodo_bench::report::Summary;
use lodo_bench::tasks::BowlOptions;

fn rec(final_loss: f64) -> RunRecord {
    let mut r = RunRecord::failed(String::new());
    r.final_loss = final_loss;
    r.diverged = !final_loss.is_finite();
    r.diverged_at = (!final_loss.is_finite()).then_some(80);
    r.note = None;
    r.start_loss = 2.8e5;
    r.steps_per_sec = 1000.0;
    r
}

fn group(kind: OptimizerKind, losses: &[f64]) -> Group {
    Group {
        label: kind.name().into(),
        optimizer: kind.defaults(),
        runs: losses.iter().map(|&l| rec(l)).collect(),
    }
}

fn results(main: Vec<Group>, ablations: Vec<Group>) -> TaskResults {
    TaskResults {
        spec: TaskSpec::Bowl(BowlOptions::default()),
        tuned: Vec::new(),
        main,
        ablations,
        frozen: Vec::new(),
        seconds: 1.0,
        budget: Budget {
            runs: 3,
            steps: 40_000,
            schedule: Vec::new(),
            curve_points: 10,
            hessian_points: 4,
            hessian_probes: 1,
        },
        missing: Vec::new(),
    }
}

fn s(name: &str, v: &[f64]) -> Summary {
    let d: Vec<bool> = v.iter().map(|x| !x.is_finite()).collect();
    Summary::from_runs(name, v, &d, &vec![1.0; v.len()])
}

#[test]
fn comparisons_need_a_clear_margin() {
    let lodo = s("LODO", &[9.3, 9.4, 9.5]);
    assert_eq!(
        compare(&s("D", &[33.0, 33.5, 34.0]), &lodo),
        Comparison::Worse
    );
    assert_eq!(
        compare(&s("D", &[5.0, 5.1, 5.2]), &lodo),
        Comparison::Better
    );
    // Within the spread, or within 1 %: alike.
    assert_eq!(compare(&s("D", &[9.2, 9.5, 9.6]), &lodo), Comparison::Alike);
    assert_eq!(
        compare(&s("D", &[9.42; 3]), &s("L", &[9.4; 3])),
        Comparison::Alike
    );
    // More diverged runs is worse whatever the mean of the rest.
    assert_eq!(
        compare(&s("D", &[1.0, f64::INFINITY, 1.0]), &lodo),
        Comparison::Worse
    );
}

#[test]
fn the_ablation_verdict_follows_the_numbers() {
    let lodo = group(OptimizerKind::Lodo, &[9.3, 9.4, 9.5]);
    let ab = |d: f64, g: f64, r: f64| {
        results(
            vec![lodo.clone()],
            vec![
                lodo.clone(),
                group(OptimizerKind::LodoDiagonal, &[d, d + 0.5, d - 0.5]),
                group(OptimizerKind::LodoGlobal, &[g, g + 0.3, g - 0.3]),
                group(OptimizerKind::LodoResiduals, &[r, r + 1.0, r - 1.0]),
            ],
        )
    };
    let f = ablation_finding(&ab(33.5, 21.8, 54.2)).unwrap();
    assert_eq!(f.verdict, "holds");
    for n in [
        "LODO-Diagonal 33.500",
        "LODO-Global 21.800",
        "LODO-Residuals 54.200",
        "LODO 9.4000",
    ] {
        assert!(f.detail.contains(n), "{n} in {}", f.detail);
    }
    let f = ablation_finding(&ab(4.0, 21.8, 54.2)).unwrap();
    assert_eq!(f.verdict, "holds only in part");
    assert!(
        f.detail.contains("better: LODO-Diagonal 4.0000"),
        "{}",
        f.detail
    );
    let f = ablation_finding(&ab(4.0, 3.0, 5.0)).unwrap();
    assert_eq!(f.verdict, "does not hold");
}

#[test]
fn the_main_note_ranks_lodo_and_sets_levenberg_marquardt_apart() {
    let r = results(
        vec![
            group(OptimizerKind::Adam, &[15.9, 16.0, 16.1]),
            group(OptimizerKind::Lbfgs, &[13.2, 13.2, 13.3]),
            group(OptimizerKind::LevenbergMarquardt, &[7.42, 7.43, 7.44]),
            group(OptimizerKind::Lodo, &[9.3, 9.4, 9.5]),
        ],
        Vec::new(),
    );
    let n = main_table_note(&r).unwrap();
    assert!(
        n.contains("LODO (9.4000) ranks 1 of the 3 gradient-only optimizers"),
        "{n}"
    );
    assert!(
        n.contains("lower (better) than the best of the others, L-BFGS 13.233"),
        "{n}"
    );
    assert!(
        n.contains("Levenberg-Marquardt (7.4300) is not a gradient-only rival"),
        "{n}"
    );
    assert!(n.contains("exact Hessian–vector products"), "{n}");
    // Newton floor of the default bowl: 7.4118…
    assert!(n.contains("ends at 1.002× the Newton floor"), "{n}");
}

#[test]
fn runs_above_their_starting_loss_are_reported_with_their_ratio() {
    let mut g = group(OptimizerKind::Bfgs, &[3.0e5, 2.5e5, 3.1e5]);
    for r in &mut g.runs {
        r.diverged = r.final_loss > r.start_loss;
    }
    let n = diverged_note(&[g]).unwrap();
    assert!(
        n.starts_with("Diverged: BFGS 2/3: 2 ended above x₀'s loss"),
        "{n}"
    );
    // (3.0 + 2.5 + 3.1) / 2.8 / 3
    assert!(n.contains("mean 1.02 over the 3 runs"), "{n}");
    let blown = group(OptimizerKind::LodoNoMomentum, &[f64::INFINITY; 3]);
    let n = diverged_note(&[blown]).unwrap();
    assert!(
        n.contains("LODO-No-Momentum 3/3: 3 non-finite (median step 80)"),
        "{n}"
    );
    assert!(diverged_note(&[group(OptimizerKind::Adam, &[1.0])]).is_none());
}

fn with_hessian(mut g: Group, first: f64, last: f64, steps: u64) -> Group {
    for r in &mut g.runs {
        r.hessian = vec![
            HessianPoint {
                step: 0,
                probe: first,
                exact: first,
            },
            HessianPoint {
                step: steps,
                probe: last,
                exact: last,
            },
        ];
    }
    g
}

#[test]
fn the_hessian_verdict_and_the_momentum_fixed_point_come_from_the_runs() {
    let mut lodo = group(OptimizerKind::Lodo, &[9.3, 9.4, 9.5]);
    if let Optimizer::Lodo(p) = &mut lodo.optimizer {
        p.beta = 0.2;
    }
    let r = results(
        vec![with_hessian(lodo.clone(), 0.99, 0.76, 40_000)],
        Vec::new(),
    );
    let f = hessian_finding(&r).unwrap();
    assert_eq!(f.verdict, "holds only in part");
    assert!(
        f.detail
            .contains("went from 0.9900 to 0.7600 by step 40000"),
        "{}",
        f.detail
    );
    assert!(f.detail.contains("fell in 3 of 3 runs"), "{}", f.detail);
    assert!(
        f.detail.contains("β = 0.2000") && f.detail.contains("3.80×"),
        "{}",
        f.detail
    );
    let r = results(
        vec![with_hessian(lodo.clone(), 0.99, 0.3, 40_000)],
        Vec::new(),
    );
    assert_eq!(hessian_finding(&r).unwrap().verdict, "holds");
    let r = results(vec![with_hessian(lodo, 0.7, 0.9, 40_000)], Vec::new());
    assert_eq!(hessian_finding(&r).unwrap().verdict, "does not hold");
}

#[test]
fn the_frozen_note_says_why_bowl_b_diverged_and_labels_step_zero_errors() {
    let lodo = group(OptimizerKind::Lodo, &[9.3, 9.4, 9.5]);
    let mut r = results(vec![lodo.clone()], Vec::new());
    let mut b = with_hessian(
        group(OptimizerKind::Lodo, &[f64::INFINITY; 3]),
        5.29,
        5.29,
        0,
    );
    for run in &mut b.runs {
        run.hessian.truncate(1);
    }
    r.frozen = vec![
        with_hessian(lodo.clone(), 0.99, 0.75, 40_000),
        with_hessian(lodo.clone(), 0.99, 0.76, 40_000),
        b,
        with_hessian(
            group(OptimizerKind::Lodo, &[9.35, 9.36, 9.37]),
            0.75,
            0.75,
            40_000,
        ),
    ];
    for (g, l) in r
        .frozen
        .iter_mut()
        .zip(["A", "fly", "frozen B", "frozen A"])
    {
        g.label = l.into();
    }
    let n = frozen_note(&r).unwrap();
    assert!(
        n.contains("diverged in 3/3 runs (loss non-finite by step 80, median)"),
        "{n}"
    );
    assert!(
        n.contains("its error at step 0 is 5.290, worse than G = 0"),
        "{n}"
    );
    assert!(n.contains("scores 9.3600 against 9.4000"), "{n}");
    assert!(n.contains("supports claim 1"), "{n}");
    let e = frozen_errors(&r);
    assert_eq!(e[0], "A: 0.7500 (at step 40000)");
    assert!(
        e[2].starts_with("frozen B: 5.290 (at step 0, the last measurement before the loss became non-finite in 3/3 runs"),
        "{e:?}"
    );
}

/// Claim 4 on MNIST quotes the shipped record of the long experiment (its command, date and
/// verdict) when there is one, says it is not measured when there is none, and says why when
/// the file is not a record; the record `mnist` writes reads back as written.
#[test]
fn mnist_claim_quotes_the_shipped_record() {
    use lodo_bench::mnist::cli::{ClaimRecord, read_claim};
    let dir = std::env::temp_dir().join(format!("lodo-bench-claim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("claim4.json");
    assert_eq!(read_claim(&path).unwrap(), None);
    assert!(mnist_claim(read_claim(&path)).starts_with("not measured by this command"));
    let record = ClaimRecord {
        command: "lodo-bench mnist --steps 20000".into(),
        finished: "2026-12-08 03:10 UTC".into(),
        verdict: "Claim 4 of the paper (...) holds here: after 4,000 s LODO's loss is 1.1.".into(),
    };
    std::fs::write(&path, serde_json::to_string(&record).unwrap()).unwrap();
    assert_eq!(read_claim(&path).unwrap().as_ref(), Some(&record));
    let text = mnist_claim(read_claim(&path));
    for part in [
        "`lodo-bench mnist --steps 20000`",
        "finished 2026-12-08 03:10 UTC",
        "holds here: after 4,000 s LODO's loss is 1.1",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    std::fs::write(&path, "{ not json").unwrap();
    let text = mnist_claim(read_claim(&path));
    assert!(
        text.contains("cannot be read") && text.contains("claim4.json"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
