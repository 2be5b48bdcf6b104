//! Ctrl-C ([`STOP`]) set programmatically: the plan returns what finished, marked partial, and
//! the report, the figures and the MNIST report are still written. `STOP` is process-wide, so
//! every test here holds one lock for its whole body (this file is its own test binary).

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use lodo_bench::baselines::{OptimizerKind, TuneScope};
use lodo_bench::experiment::figures::draw_figures;
use lodo_bench::experiment::markdown::task_report_standalone;
use lodo_bench::experiment::protocol::{Budget, LodoRow, Missing, Phase, Plan, run_plan};
use lodo_bench::experiment::{STOP, TaskSpec, is_interrupted};
use lodo_bench::tune::{rosenbrock_schedule, scaled};

static LOCK: Mutex<()> = Mutex::new(());

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lodo-bench-int-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn plan(out: &std::path::Path, tune: bool) -> Plan {
    Plan {
        spec: TaskSpec::Rosenbrock,
        tune_spec: None,
        optimizers: vec![
            OptimizerKind::Adam.defaults(),
            OptimizerKind::Lodo.defaults(),
        ],
        ablations: vec![LodoRow::ablation(OptimizerKind::LodoDiagonal)],
        families: Vec::new(),
        budget: Budget {
            runs: 2,
            steps: 100,
            schedule: scaled(&rosenbrock_schedule(), 50, 4)[..2].to_vec(),
            curve_points: 50,
            hessian_points: 0,
            hessian_probes: 0,
        },
        tune: tune.then_some(TuneScope::All),
        reuse: false,
        frozen: false,
        keep_final: false,
        seed: 3,
        out: out.to_path_buf(),
        checkpoint: None,
        clock: lodo_bench::experiment::Clock::Wall,
    }
}

/// Sets `STOP` for the guard's lifetime.
struct Stopped;
impl Stopped {
    fn new() -> Self {
        STOP.store(true, Ordering::SeqCst);
        Self
    }
}
impl Drop for Stopped {
    fn drop(&mut self) {
        STOP.store(false, Ordering::SeqCst);
    }
}

#[test]
fn an_interrupted_plan_returns_what_finished_and_a_partial_report() {
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Stopped before anything ran: every planned phase is missing, nothing is an error.
    let dir = tmp("before");
    let res = {
        let _stop = Stopped::new();
        run_plan(&plan(&dir, true)).unwrap()
    };
    assert!(res.is_partial());
    assert_eq!(
        res.missing.iter().map(|m| m.phase).collect::<Vec<_>>(),
        [Phase::Tuning, Phase::Main, Phase::Ablations]
    );
    assert!(res.main.is_empty() && res.tuned.is_empty());
    let md = task_report_standalone(&res);
    assert!(md.starts_with("> **Partial report.**"), "{md}");
    assert!(
        md.contains(
            "tuning (interrupted; an unfinished tuning is not kept), main runs (not started)"
        ),
        "{md}"
    );
    assert!(md.contains("Interrupted during tuning"), "{md}");
    draw_figures(&res, &dir).unwrap();

    // The same plan without the stop: complete, no banner, the claims note beside the tables.
    let full = run_plan(&plan(&dir, false)).unwrap();
    assert!(!full.is_partial());
    let md = task_report_standalone(&full);
    assert!(!md.contains("Partial report"), "{md}");
    assert!(
        md.contains("Claim 3 (simpler preconditioners do worse)"),
        "{md}"
    );
    assert!(dir.join("ablations.csv").is_file());

    // Stopped during the ablations (its first run finished): the main table and its note stay,
    // the ablation table holds the finished run and no claim is drawn from it.
    let mut part = full.clone();
    part.ablations.truncate(2);
    part.ablations[1].runs.truncate(1);
    part.missing = vec![Missing {
        phase: Phase::Ablations,
        started: true,
        finished: 1,
        total: 2,
    }];
    let md = task_report_standalone(&part);
    assert!(
        md.contains("missing: rosenbrock: ablations (interrupted: 1 of 2 runs finished)"),
        "{md}"
    );
    assert!(md.contains("| Adam |") && md.contains("ranks"), "{md}");
    assert!(md.contains("**Interrupted:** 1 of 2 runs finished"), "{md}");
    assert!(
        !md.contains("Claim 3"),
        "no verdict from an interrupted table: {md}"
    );
    let figs = tmp("partial-figures");
    draw_figures(&part, &figs).unwrap();
    assert!(figs.join("learning_curves.png").is_file() && figs.join("ablations.png").is_file());
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(figs);
}

#[test]
fn interrupted_main_runs_keep_no_summary_csv_and_later_phases_do_not_start() {
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("main");
    let res = {
        let _stop = Stopped::new();
        run_plan(&plan(&dir, false)).unwrap()
    };
    assert_eq!(
        res.missing,
        [
            Missing {
                phase: Phase::Main,
                started: true,
                finished: 0,
                total: 4
            },
            Missing {
                phase: Phase::Ablations,
                started: false,
                finished: 0,
                total: 2
            }
        ]
    );
    assert!(res.main.iter().all(|g| g.runs.is_empty()));
    assert!(
        !dir.join("summary.csv").exists(),
        "no summary of an unfinished phase"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn interrupted_mnist_writes_a_partial_report_and_reports_the_interruption() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: lodo_bench::mnist::cli::MnistArgs,
    }
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("mnist");
    let args = Cli::try_parse_from([
        "mnist",
        "--out",
        dir.to_str().unwrap(),
        "--optimizers",
        "adam",
        "--steps",
        "2",
        "--batch",
        "2",
        "--test-images",
        "1",
        "--threads",
        "1",
    ])
    .unwrap()
    .args;
    let e = {
        let _stop = Stopped::new();
        lodo_bench::mnist::cli::run(&args).unwrap_err()
    };
    assert!(is_interrupted(&e), "{e:#}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("**Partial report.**"), "{md}");
    assert!(
        md.contains("main runs (interrupted: 0 of 1 runs finished)"),
        "{md}"
    );
    assert!(md.contains("No run finished"), "{md}");
    assert!(!dir.join("digits.png").exists(), "no sampling after Ctrl-C");
    let _ = std::fs::remove_dir_all(dir);
}
