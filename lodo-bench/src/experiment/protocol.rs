//! The authors' protocol (`experiment/experiment2.py`, `freeze_hessian_test.py`): tuning, main
//! runs, ablations, the frozen-preconditioner test, and what they write.
//!
//! Output layout under a task folder (e.g. `results/bowl/`):
//!
//! | path | contents |
//! |---|---|
//! | `tuned.json` | tuned hyperparameters per optimizer |
//! | `tuning/<opt>.csv` | every tuning candidate: generation, values, score |
//! | `curves/<group>/run<r>.csv` | each run's learning curve (`step,loss`, bin means) |
//! | `hessian/<group>/run<r>.csv` | LODO's Hessian error (`step,probe,exact`) |
//! | `trajectories/<opt>.csv` | Rosenbrock iterates of run 0 |
//! | `summary.csv` | the table of final-window losses |
//! | `*.svg`, `*.png` | figures |
//!
//! Every run writes its files as soon as it finishes (atomically), so an interrupted experiment
//! leaves complete files for the runs that finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lodo_core::{Lodo, LodoConfig};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Interrupted, RunOptions, RunRecord, TaskSpec, derive_seed, run, run_optimizer};
use crate::baselines::{FrozenLodo, LodoMinimizer, OptimizerKind};
use crate::plot::{LineChart, Series, mean_curve, palette, trajectories_on_heatmap};
use crate::report::{
    Summary, file_stem, fmt_hparam, hyperparameter_table, results_table, write_atomic, write_csv,
    write_curve_csv, write_summary_csv,
};
use crate::tasks::{NoisyQuadraticBowl, Rosenbrock};
use crate::tune::{Generation, TuneOutcome, tune};

/// How much work an experiment does.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    /// Independent seeded runs per optimizer.
    pub runs: usize,
    /// Evaluations per main run.
    pub steps: u64,
    /// Tuning schedule.
    pub schedule: Vec<Generation>,
    /// Points kept per learning curve.
    pub curve_points: usize,
    /// Hessian-error measurements per LODO run (0: none).
    pub hessian_points: u64,
    /// Random probes per Hessian-error measurement.
    pub hessian_probes: usize,
}

/// One experiment on one task.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The task.
    pub spec: TaskSpec,
    /// Optimizers tuned and run.
    pub optimizers: Vec<OptimizerKind>,
    /// LODO ablations, run with LODO's tuned hyperparameters.
    pub ablations: Vec<OptimizerKind>,
    /// The budget.
    pub budget: Budget,
    /// Tune first; otherwise use `tuned.json` from the task folder if present, else the authors'
    /// defaults.
    pub tune: bool,
    /// Run the frozen-preconditioner test (bowl only).
    pub frozen: bool,
    /// Base seed.
    pub seed: u64,
    /// The task's output folder.
    pub out: PathBuf,
}

/// The runs of one row of a table.
#[derive(Clone, Debug)]
pub struct Group {
    /// Row label.
    pub label: String,
    /// Hyperparameters `(name, value)`.
    pub values: Vec<(String, f64)>,
    /// The runs, in run order.
    pub runs: Vec<RunRecord>,
}

impl Group {
    /// The row's summary.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let f: Vec<f64> = self.runs.iter().map(|r| r.final_loss).collect();
        let d: Vec<bool> = self.runs.iter().map(|r| r.diverged).collect();
        let s: Vec<f64> = self.runs.iter().map(|r| r.steps_per_sec).collect();
        Summary::from_runs(&self.label, &f, &d, &s)
    }
}

/// Tuned values of one optimizer and how they were obtained.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tuned {
    /// Optimizer name.
    pub optimizer: String,
    /// Hyperparameter names.
    pub names: Vec<String>,
    /// The authors' defaults.
    pub defaults: Vec<f64>,
    /// The values used.
    pub values: Vec<f64>,
    /// `"tuned"`, `"loaded"` or `"default"`.
    pub source: String,
}

/// Everything one task's experiment produced.
#[derive(Clone, Debug)]
pub struct TaskResults {
    /// The task.
    pub spec: TaskSpec,
    /// Hyperparameters per optimizer.
    pub tuned: Vec<Tuned>,
    /// Main runs, one group per optimizer.
    pub main: Vec<Group>,
    /// Ablation runs (LODO first).
    pub ablations: Vec<Group>,
    /// The frozen-preconditioner test.
    pub frozen: Vec<Group>,
    /// Wall seconds.
    pub seconds: f64,
    /// The budget used.
    pub budget: Budget,
}

fn bar(len: u64, msg: String) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:28} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(msg);
    pb
}

fn task_id(spec: &TaskSpec) -> u64 {
    match spec {
        TaskSpec::Bowl(_) => 1,
        TaskSpec::Rosenbrock => 2,
    }
}

fn kind_id(kind: OptimizerKind) -> u64 {
    OptimizerKind::ALL
        .iter()
        .position(|&k| k == kind)
        .unwrap_or(99) as u64
}

fn named(kind: OptimizerKind, values: &[f64]) -> Vec<(String, f64)> {
    kind.hyperparameters()
        .iter()
        .zip(values)
        .map(|(h, &v)| (h.name.to_string(), v))
        .collect()
}

/// Tunes every optimizer of the plan (in parallel across optimizers and candidates).
///
/// # Errors
/// [`Interrupted`].
pub fn tune_all(plan: &Plan) -> Result<Vec<(OptimizerKind, TuneOutcome)>, Interrupted> {
    let per_opt: u64 = plan
        .budget
        .schedule
        .iter()
        .map(|g| g.population as u64)
        .sum();
    let pb = bar(
        per_opt * plan.optimizers.len() as u64,
        format!("tuning {}", plan.spec.name()),
    );
    let out: Result<Vec<_>, Interrupted> = plan
        .optimizers
        .par_iter()
        .map(|&kind| {
            let seed = derive_seed(plan.seed, &[task_id(&plan.spec), 100, kind_id(kind)]);
            let outcome = tune(
                kind.hyperparameters(),
                &kind.defaults(),
                &plan.budget.schedule,
                seed,
                |values, steps, s| {
                    let mut opts = RunOptions::new(steps);
                    opts.curve_points = 1;
                    let r = run_optimizer(&plan.spec, kind, values, &opts, s)?;
                    pb.inc(1);
                    Ok(r.final_loss)
                },
            )?;
            Ok((kind, outcome))
        })
        .collect();
    pb.finish_and_clear();
    out
}

fn write_tuning(plan: &Plan, tuned: &[(OptimizerKind, TuneOutcome)]) -> Result<()> {
    for (kind, outcome) in tuned {
        let mut rows = Vec::new();
        for (g, cands) in outcome.generations.iter().enumerate() {
            for (i, c) in cands.iter().enumerate() {
                let mut row = vec![g.to_string(), i.to_string()];
                row.extend(c.values.iter().map(|v| format!("{v:e}")));
                row.push(format!("{:e}", c.score));
                rows.push(row);
            }
        }
        let mut cols = vec!["generation", "candidate"];
        cols.extend(kind.hyperparameters().iter().map(|h| h.name));
        cols.push("score");
        write_csv(
            &plan
                .out
                .join("tuning")
                .join(format!("{}.csv", file_stem(kind.name()))),
            &cols,
            &rows,
        )?;
    }
    Ok(())
}

/// The hyperparameters for every optimizer of the plan: tuned now, loaded from `tuned.json`,
/// or the authors' defaults. Writes `tuned.json` when tuning.
///
/// # Errors
/// [`Interrupted`] (wrapped) or I/O errors.
pub fn hyperparameters(plan: &Plan) -> Result<Vec<Tuned>> {
    let path = plan.out.join("tuned.json");
    let mut out = Vec::new();
    if plan.tune {
        let tuned = tune_all(plan)?;
        write_tuning(plan, &tuned)?;
        for (kind, outcome) in tuned {
            out.push(Tuned {
                optimizer: kind.name().into(),
                names: kind
                    .hyperparameters()
                    .iter()
                    .map(|h| h.name.into())
                    .collect(),
                defaults: kind.defaults(),
                values: outcome.best,
                source: "tuned".into(),
            });
        }
        // Keep entries of optimizers not tuned this time.
        let mut all: BTreeMap<String, Tuned> = load_tuned(&path)
            .into_iter()
            .map(|t| (t.optimizer.clone(), t))
            .collect();
        for t in &out {
            all.insert(t.optimizer.clone(), t.clone());
        }
        let list: Vec<&Tuned> = all.values().collect();
        write_atomic(&path, serde_json::to_string_pretty(&list)?.as_bytes())?;
    } else {
        let loaded = load_tuned(&path);
        let mut kinds = plan.optimizers.clone();
        if (plan.frozen || !plan.ablations.is_empty()) && !kinds.contains(&OptimizerKind::Lodo) {
            kinds.push(OptimizerKind::Lodo);
        }
        for kind in kinds {
            let found = loaded.iter().find(|t| {
                t.optimizer == kind.name() && t.values.len() == kind.hyperparameters().len()
            });
            out.push(match found {
                Some(t) => Tuned {
                    source: "loaded".into(),
                    ..t.clone()
                },
                None => Tuned {
                    optimizer: kind.name().into(),
                    names: kind
                        .hyperparameters()
                        .iter()
                        .map(|h| h.name.into())
                        .collect(),
                    defaults: kind.defaults(),
                    values: kind.defaults(),
                    source: "default".into(),
                },
            });
        }
    }
    Ok(out)
}

fn load_tuned(path: &Path) -> Vec<Tuned> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn write_run_files(dir: &Path, label: &str, r: usize, rec: &RunRecord) -> std::io::Result<()> {
    let stem = file_stem(label);
    write_curve_csv(
        &dir.join("curves").join(&stem).join(format!("run{r}.csv")),
        &rec.curve,
    )?;
    if !rec.hessian.is_empty() {
        let rows: Vec<Vec<String>> = rec
            .hessian
            .iter()
            .map(|h| {
                vec![
                    h.step.to_string(),
                    format!("{:e}", h.probe),
                    format!("{:e}", h.exact),
                ]
            })
            .collect();
        write_csv(
            &dir.join("hessian").join(&stem).join(format!("run{r}.csv")),
            &["step", "probe", "exact"],
            &rows,
        )?;
    }
    if !rec.trajectory.is_empty() && r == 0 {
        let rows: Vec<Vec<String>> = rec
            .trajectory
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let mut row = vec![i.to_string()];
                row.extend(x.iter().map(|v| format!("{v:e}")));
                row
            })
            .collect();
        write_csv(
            &dir.join("trajectories").join(format!("{stem}.csv")),
            &["iteration", "x", "y"],
            &rows,
        )?;
    }
    Ok(())
}

/// Runs `budget.runs` seeded runs of every `(label, kind, values)` in parallel; run `r` of every
/// optimizer sees the same task draw (common random numbers). Each run writes its files when done.
///
/// # Errors
/// [`Interrupted`] (wrapped) or I/O errors.
pub fn main_runs(
    plan: &Plan,
    rows: &[(String, OptimizerKind, Vec<f64>)],
    what: &str,
) -> Result<Vec<Group>> {
    let b = &plan.budget;
    let jobs: Vec<(usize, usize)> = (0..rows.len())
        .flat_map(|i| (0..b.runs).map(move |r| (i, r)))
        .collect();
    let pb = bar(jobs.len() as u64, format!("{what} {}", plan.spec.name()));
    let bowl = matches!(plan.spec, TaskSpec::Bowl(_));
    let records: Vec<Result<RunRecord>> = jobs
        .par_iter()
        .map(|&(i, r)| {
            let (label, kind, values) = &rows[i];
            let mut opts = RunOptions::new(b.steps);
            opts.curve_points = b.curve_points;
            if let Some(every) = b.steps.checked_div(b.hessian_points)
                && bowl
                && kind.is_lodo()
            {
                opts.hessian_every = every.max(1);
                opts.hessian_probes = b.hessian_probes;
            }
            opts.trajectory = !bowl && r == 0;
            let seed = derive_seed(plan.seed, &[task_id(&plan.spec), 200, r as u64]);
            let rec = run_optimizer(&plan.spec, *kind, values, &opts, seed)?;
            write_run_files(&plan.out, label, r, &rec)
                .with_context(|| format!("writing the files of {label} run {r}"))?;
            pb.inc(1);
            Ok(rec)
        })
        .collect();
    pb.finish_and_clear();
    let mut records = records.into_iter();
    let mut groups = Vec::new();
    for (label, kind, values) in rows {
        let runs: Result<Vec<RunRecord>> = records.by_ref().take(b.runs).collect();
        groups.push(Group {
            label: label.clone(),
            values: named(*kind, values),
            runs: runs?,
        });
    }
    Ok(groups)
}

/// The frozen-preconditioner test (`freeze_hessian_test.py`): LODO trains on bowl A; its `θ` is
/// frozen and run on (i) a fresh bowl B with new eigenvectors, and (ii) bowl A with a new random
/// walk; on-the-fly LODO on bowl B is the comparison. Groups: training run, on-the-fly on B,
/// frozen on B, frozen on A.
///
/// # Errors
/// [`Interrupted`] (wrapped), I/O errors, or a bad LODO configuration.
pub fn frozen(plan: &Plan, lodo_values: &[f64]) -> Result<Vec<Group>> {
    let TaskSpec::Bowl(options) = plan.spec else {
        return Ok(Vec::new());
    };
    let b = &plan.budget;
    let config = LodoConfig::<f64>::default()
        .with_alpha0(lodo_values[0])?
        .with_meta_lr(lodo_values[1])?
        .with_beta(lodo_values[2])?;
    let labels = [
        "LODO (training bowl A)",
        "LODO on the fly (new bowl B)",
        "Frozen LODO (new bowl B)",
        "Frozen LODO (bowl A, new walk)",
    ];
    let pb = bar(b.runs as u64, "frozen-θ test bowl".into());
    let per_run: Vec<Result<Vec<RunRecord>>> = (0..b.runs)
        .into_par_iter()
        .map(|r| {
            let seed = derive_seed(plan.seed, &[task_id(&plan.spec), 300, r as u64]);
            let mut opts = RunOptions::new(b.steps);
            opts.curve_points = b.curve_points;
            if let Some(every) = b.steps.checked_div(b.hessian_points) {
                opts.hessian_every = every.max(1);
                opts.hessian_probes = b.hessian_probes;
            }
            let (seed_a, seed_b) = (derive_seed(seed, &[1]), derive_seed(seed, &[2]));
            let mut bowl_a =
                NoisyQuadraticBowl::new(options, seed_a).map_err(anyhow::Error::msg)?;
            let mut trained = LodoMinimizer::new(Lodo::<f64>::new(
                options.dim,
                config,
                derive_seed(seed, &[3]),
            )?);
            let rec_a = run(&mut bowl_a, &mut trained, &opts, derive_seed(seed, &[4]))?;
            let g = trained.lodo().preconditioner().clone();

            let mut bowl_b =
                NoisyQuadraticBowl::new(options, seed_b).map_err(anyhow::Error::msg)?;
            let mut fresh = LodoMinimizer::new(Lodo::<f64>::new(
                options.dim,
                config,
                derive_seed(seed, &[3]),
            )?);
            let rec_fly = run(&mut bowl_b, &mut fresh, &opts, derive_seed(seed, &[5]))?;

            let mut bowl_b =
                NoisyQuadraticBowl::new(options, seed_b).map_err(anyhow::Error::msg)?;
            let mut frozen_b = FrozenLodo::new(g.clone(), lodo_values[2])?;
            let rec_fb = run(&mut bowl_b, &mut frozen_b, &opts, derive_seed(seed, &[6]))?;

            let mut bowl_a2 =
                NoisyQuadraticBowl::new(options, seed_a).map_err(anyhow::Error::msg)?;
            bowl_a2.reseed_walk(derive_seed(seed, &[7]));
            let mut frozen_a = FrozenLodo::new(g, lodo_values[2])?;
            let rec_fa = run(&mut bowl_a2, &mut frozen_a, &opts, derive_seed(seed, &[8]))?;

            let recs = vec![rec_a, rec_fly, rec_fb, rec_fa];
            let dir = plan.out.join("frozen");
            for (label, rec) in labels.iter().zip(&recs) {
                write_run_files(&dir, label, r, rec)?;
            }
            pb.inc(1);
            Ok(recs)
        })
        .collect();
    pb.finish_and_clear();
    let mut groups: Vec<Group> = labels
        .iter()
        .map(|l| Group {
            label: (*l).to_string(),
            values: named(OptimizerKind::Lodo, lodo_values),
            runs: Vec::new(),
        })
        .collect();
    for recs in per_run {
        for (g, rec) in groups.iter_mut().zip(recs?) {
            g.runs.push(rec);
        }
    }
    Ok(groups)
}

/// Runs a whole plan: hyperparameters, main runs, ablations, frozen test; writes summary CSVs,
/// figures and returns the results (see [`task_report`] for the Markdown).
///
/// # Errors
/// [`Interrupted`] (wrapped), I/O or drawing errors.
pub fn run_plan(plan: &Plan) -> Result<TaskResults> {
    let start = std::time::Instant::now();
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("cannot create output folder {}", plan.out.display()))?;
    let tuned = hyperparameters(plan)?;
    let value_of = |kind: OptimizerKind| -> Vec<f64> {
        tuned
            .iter()
            .find(|t| t.optimizer == kind.name())
            .map_or_else(|| kind.defaults(), |t| t.values.clone())
    };
    let rows: Vec<(String, OptimizerKind, Vec<f64>)> = plan
        .optimizers
        .iter()
        .map(|&k| (k.name().to_string(), k, value_of(k)))
        .collect();
    let mut main = Vec::new();
    if !rows.is_empty() {
        main = main_runs(plan, &rows, "main runs")?;
        write_summary_csv(
            &plan.out.join("summary.csv"),
            &main.iter().map(Group::summary).collect::<Vec<_>>(),
        )?;
    }
    let lodo_values = value_of(OptimizerKind::Lodo);
    let mut ablations = Vec::new();
    if !plan.ablations.is_empty() {
        let rows: Vec<(String, OptimizerKind, Vec<f64>)> = plan
            .ablations
            .iter()
            .map(|&k| {
                let mut v = lodo_values.clone();
                v.truncate(k.hyperparameters().len());
                (k.name().to_string(), k, v)
            })
            .collect();
        ablations = main_runs(plan, &rows, "ablations")?;
        if let Some(l) = main.iter().find(|g| g.label == "LODO") {
            ablations.insert(0, l.clone());
        }
        write_summary_csv(
            &plan.out.join("ablations.csv"),
            &ablations.iter().map(Group::summary).collect::<Vec<_>>(),
        )?;
    }
    let frozen_groups = if plan.frozen {
        let g = frozen(plan, &lodo_values)?;
        write_summary_csv(
            &plan.out.join("frozen.csv"),
            &g.iter().map(Group::summary).collect::<Vec<_>>(),
        )?;
        g
    } else {
        Vec::new()
    };
    let results = TaskResults {
        spec: plan.spec,
        tuned,
        main,
        ablations,
        frozen: frozen_groups,
        seconds: start.elapsed().as_secs_f64(),
        budget: plan.budget.clone(),
    };
    draw_figures(&results, &plan.out)?;
    Ok(results)
}

fn curves(g: &Group) -> Vec<Vec<(u64, f64)>> {
    g.runs.iter().map(|r| r.curve.clone()).collect()
}

fn learning_chart(title: &str, groups: &[Group], floor: Option<f64>) -> LineChart {
    LineChart {
        title: title.into(),
        x_label: "step (loss-gradient evaluations)".into(),
        y_label: "training loss (mean over runs)".into(),
        log_y: true,
        series: groups
            .iter()
            .map(|g| Series::new(&g.label, mean_curve(&curves(g))))
            .collect(),
        hlines: floor
            .map(|f| vec![(format!("Newton floor ½tr(H) = {f:.4}"), f)])
            .unwrap_or_default(),
    }
}

fn hessian_chart(title: &str, groups: &[Group]) -> Option<LineChart> {
    let mut series = Vec::new();
    for g in groups {
        let runs: Vec<&RunRecord> = g.runs.iter().filter(|r| !r.hessian.is_empty()).collect();
        if runs.is_empty() {
            continue;
        }
        let probe: Vec<Vec<(u64, f64)>> = runs
            .iter()
            .map(|r| r.hessian.iter().map(|h| (h.step, h.probe)).collect())
            .collect();
        let exact: Vec<Vec<(u64, f64)>> = runs
            .iter()
            .map(|r| r.hessian.iter().map(|h| (h.step, h.exact)).collect())
            .collect();
        let k = series.len();
        let mut p = Series::new(&format!("{} (100 probes)", g.label), mean_curve(&probe));
        p.color = Some(palette(k));
        series.push(p);
        let ex = mean_curve(&exact);
        if !ex.is_empty() {
            let mut e = Series::new(&format!("{} (exact, dense G)", g.label), ex);
            e.color = Some(palette(k + 1));
            series.push(e);
        }
    }
    (!series.is_empty()).then(|| LineChart {
        title: title.into(),
        x_label: "step".into(),
        y_label: "‖I − G·H‖_F / √n (mean over runs)".into(),
        log_y: false,
        series,
        hlines: vec![("G = 0 (error 1)".into(), 1.0)],
    })
}

/// `[0, 1.1·max]` over the chart's finite values (at most 10, so a diverged frozen run does not
/// flatten the others).
fn error_range(c: &LineChart) -> (f64, f64) {
    let max = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max);
    (0.0, 1.1 * max.min(10.0))
}

/// Draws the task's figures into `dir`.
///
/// # Errors
/// I/O or drawing errors.
pub fn draw_figures(res: &TaskResults, dir: &Path) -> Result<()> {
    let name = res.spec.name();
    let floor = res.spec.floor();
    // The bowl's interesting range: below the floor up to 40× it (the authors plot [0, 40]).
    let range = floor.map(|f| (f / 1.5, f * 40.0));
    if !res.main.is_empty() {
        learning_chart(&format!("{name}: learning curves"), &res.main, floor)
            .draw_in_range(&dir.join("learning_curves"), range)?;
    }
    if !res.ablations.is_empty() {
        learning_chart(&format!("{name}: LODO ablations"), &res.ablations, floor)
            .draw_in_range(&dir.join("ablations"), range)?;
    }
    if !res.frozen.is_empty() {
        learning_chart(
            &format!("{name}: frozen preconditioner"),
            &res.frozen,
            floor,
        )
        .draw_in_range(&dir.join("frozen"), range)?;
        if let Some(c) = hessian_chart(&format!("{name}: Hessian error, frozen test"), &res.frozen)
        {
            c.draw_in_range(&dir.join("frozen_hessian_error"), Some(error_range(&c)))?;
        }
    }
    let lodo: Vec<Group> = res
        .main
        .iter()
        .filter(|g| g.label == "LODO")
        .cloned()
        .collect();
    if let Some(c) = hessian_chart(
        &format!("{name}: LODO's Hessian approximation error"),
        &lodo,
    ) {
        c.draw_in_range(&dir.join("hessian_error"), Some(error_range(&c)))?;
    }
    if matches!(res.spec, TaskSpec::Rosenbrock) {
        let trajs: Vec<(String, Vec<(f64, f64)>)> = res
            .main
            .iter()
            .chain(res.ablations.iter().filter(|g| g.label != "LODO"))
            .filter_map(|g| {
                let r = g.runs.first()?;
                (!r.trajectory.is_empty()).then(|| {
                    (
                        g.label.clone(),
                        r.trajectory.iter().map(|p| (p[0], p[1])).collect(),
                    )
                })
            })
            .collect();
        let main_only: Vec<(String, Vec<(f64, f64)>)> = trajs
            .iter()
            .filter(|(l, _)| res.main.iter().any(|g| &g.label == l))
            .cloned()
            .collect();
        trajectories_on_heatmap(
            "Rosenbrock 0.01(1−x)² + (y−x²)²: trajectories of run 0",
            &Rosenbrock::value,
            Rosenbrock::PLOT_BOUNDS,
            (1.0, 1.0),
            &main_only,
            &dir.join("trajectories"),
        )?;
    }
    Ok(())
}

/// The Markdown section of one task: hyperparameters, the main table, ablations, Hessian error,
/// frozen test. `rel` is the task folder relative to the report (for figure links).
#[must_use]
pub fn task_report(res: &TaskResults, rel: &str) -> String {
    use std::fmt::Write as _;
    let b = &res.budget;
    let mut s = String::new();
    let title = match res.spec {
        TaskSpec::Bowl(o) => format!(
            "Noisy quadratic bowl (n = {}, eigenvalues in [{}, {}], noise {})",
            o.dim, o.eig_min, o.eig_max, o.noise
        ),
        TaskSpec::Rosenbrock => "Rosenbrock 0.01(1−x)² + (y−x²)² from (−0.5, 2)".into(),
    };
    let _ = writeln!(s, "## {title}\n");
    let gens: Vec<String> = b
        .schedule
        .iter()
        .map(|g| format!("({}, {}, {})", g.sigma, g.steps, g.population))
        .collect();
    let _ = writeln!(
        s,
        "{} runs × {} steps per optimizer; tuning schedule (σ, steps, population): {}; wall time {:.0} s.\n",
        b.runs,
        b.steps,
        if gens.is_empty() {
            "none".into()
        } else {
            gens.join(" ")
        },
        res.seconds
    );
    let _ = writeln!(s, "### Hyperparameters\n");
    let rows: Vec<(String, Vec<(String, f64)>)> = res
        .tuned
        .iter()
        .map(|t| {
            (
                format!("{} ({})", t.optimizer, t.source),
                t.names
                    .iter()
                    .cloned()
                    .zip(t.values.iter().copied())
                    .collect(),
            )
        })
        .collect();
    s.push_str(&hyperparameter_table(&rows));
    let defaults: Vec<String> = res
        .tuned
        .iter()
        .map(|t| {
            let d: Vec<String> = t
                .names
                .iter()
                .zip(&t.defaults)
                .map(|(n, v)| format!("{n} = {}", fmt_hparam(*v)))
                .collect();
            format!("{}: {}", t.optimizer, d.join(", "))
        })
        .collect();
    let _ = writeln!(
        s,
        "\nStarting points (authors' defaults): {}.\n",
        defaults.join("; ")
    );
    let floor = res.spec.floor();
    let _ = writeln!(
        s,
        "### Final-window training loss\n\nMean ± std over non-diverged runs of each run's mean loss over the last 10% of steps{}.\n",
        floor.map_or(String::new(), |f| format!(
            "; Newton floor ½·tr(H) = {f:.4}"
        ))
    );
    if !res.main.is_empty() {
        let main: Vec<Summary> = res.main.iter().map(Group::summary).collect();
        s.push_str(&results_table(&main, floor));
        let _ = writeln!(s, "\n![learning curves]({rel}/learning_curves.svg)\n");
    }
    if matches!(res.spec, TaskSpec::Rosenbrock) {
        let _ = writeln!(s, "![trajectories]({rel}/trajectories.svg)\n");
    }
    if !res.ablations.is_empty() {
        let _ = writeln!(s, "### LODO ablations (LODO's tuned hyperparameters)\n");
        let ab: Vec<Summary> = res.ablations.iter().map(Group::summary).collect();
        s.push_str(&results_table(&ab, floor));
        let _ = writeln!(s, "\n![ablations]({rel}/ablations.svg)\n");
    }
    if let Some(l) = res.main.iter().find(|g| g.label == "LODO") {
        let pts: Vec<Vec<(u64, f64, f64)>> = l
            .runs
            .iter()
            .map(|r| {
                r.hessian
                    .iter()
                    .map(|h| (h.step, h.probe, h.exact))
                    .collect()
            })
            .filter(|v: &Vec<_>| !v.is_empty())
            .collect();
        if !pts.is_empty() {
            let _ = writeln!(
                s,
                "### LODO's Hessian approximation error ‖I − G·H‖_F/√n\n\n| step | probes (100 unit vectors) | exact (dense G) |\n|---|---|---|"
            );
            let len = pts.iter().map(Vec::len).min().unwrap_or(0);
            let picks: Vec<usize> = if len <= 6 {
                (0..len).collect()
            } else {
                let mut p: Vec<usize> = (0..6).map(|k| k * (len - 1) / 5).collect();
                p.dedup();
                p
            };
            for i in picks {
                let m = |f: &dyn Fn(&(u64, f64, f64)) -> f64| {
                    pts.iter().map(|v| f(&v[i])).sum::<f64>() / pts.len() as f64
                };
                let _ = writeln!(
                    s,
                    "| {} | {:.4} | {:.4} |",
                    pts[0][i].0,
                    m(&|p| p.1),
                    m(&|p| p.2)
                );
            }
            let _ = writeln!(s, "\n![Hessian error]({rel}/hessian_error.svg)\n");
        }
    }
    if !res.frozen.is_empty() {
        let _ = writeln!(
            s,
            "### Frozen preconditioner\n\nLODO trains on bowl A; its θ is then frozen (momentum kept, no meta-update) and run on a fresh bowl B with new eigenvectors, and on bowl A with a new random walk; on-the-fly LODO on bowl B for comparison.\n"
        );
        let fr: Vec<Summary> = res.frozen.iter().map(Group::summary).collect();
        s.push_str(&results_table(&fr, floor));
        let last_err: Vec<String> = res
            .frozen
            .iter()
            .filter_map(|g| {
                let v: Vec<f64> = g
                    .runs
                    .iter()
                    .filter_map(|r| r.hessian.last().map(|h| h.exact))
                    .collect();
                (!v.is_empty())
                    .then(|| format!("{}: {:.4}", g.label, v.iter().sum::<f64>() / v.len() as f64))
            })
            .collect();
        let _ = writeln!(
            s,
            "\nFinal exact Hessian error ‖I − G·H‖_F/√n (G against the bowl it runs on): {}.\n\n![frozen]({rel}/frozen.svg)\n",
            last_err.join("; ")
        );
    }
    s
}
