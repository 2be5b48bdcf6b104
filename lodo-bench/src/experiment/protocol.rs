//! The authors' protocol (`experiment/experiment2.py`, `freeze_hessian_test.py`) as runs:
//! tuning, main runs, ablations and the frozen-preconditioner test, for every task of
//! [`TaskSpec`] (the synthetic tasks and MNIST alike). What the runs write is in
//! [`super::files`], the figures in [`super::figures`], the report in [`super::markdown`].
//!
//! Every run writes its files as soon as it finishes (atomically), so an interrupted experiment
//! leaves complete files for the runs that finished.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use rayon::prelude::*;

use super::files::{self, Tuned};
use super::progress::Progress;
use super::{Interrupted, RunOptions, RunRecord, TaskSpec, derive_seed, run, run_optimizer};
use crate::baselines::{
    BuiltLodo, FrozenLodo, HyperParam, LodoMinimizer, LodoParams, LodoVariant, Optimizer,
    OptimizerKind, TuneScope, build_lodo,
};
use crate::report::{Summary, write_summary_csv};
use crate::task::Minimizer;
use crate::tasks::NoisyQuadraticBowl;
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

/// A row of LODO runs with LODO's hyperparameters: an ablation or a point of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct LodoRow {
    /// Row label.
    pub label: String,
    /// Architecture and meta-optimizer.
    pub variant: LodoVariant,
    /// The row's `β` (`None`: LODO's).
    pub beta: Option<f64>,
}

impl LodoRow {
    /// The ablation `kind` (a LODO kind), labelled by its name.
    #[must_use]
    pub fn ablation(kind: OptimizerKind) -> Self {
        let variant = match kind.defaults() {
            Optimizer::Lodo(p) => p.variant,
            _ => LodoVariant::BLOCK,
        };
        Self {
            label: kind.name().into(),
            variant,
            beta: None,
        }
    }

    /// The row's optimizer, given LODO's hyperparameters.
    #[must_use]
    pub fn optimizer(&self, lodo: &LodoParams) -> Optimizer {
        Optimizer::Lodo(LodoParams {
            beta: self.beta.unwrap_or(lodo.beta),
            variant: self.variant,
            ..*lodo
        })
    }
}

/// One experiment on one task.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The task.
    pub spec: TaskSpec,
    /// The task tuning runs on (`None`: [`Plan::spec`]).
    pub tune_spec: Option<TaskSpec>,
    /// Optimizers tuned and run, at the values tuning starts from (used as they are untuned).
    pub optimizers: Vec<Optimizer>,
    /// LODO rows run with LODO's (tuned) hyperparameters.
    pub ablations: Vec<LodoRow>,
    /// The budget.
    pub budget: Budget,
    /// Tune first, these hyperparameters; otherwise the values of [`Plan::optimizers`].
    pub tune: Option<TuneScope>,
    /// Untuned: take the values from `tuned.json` in the task folder where it has them.
    pub reuse: bool,
    /// Run the frozen-preconditioner test (bowl only).
    pub frozen: bool,
    /// Keep each main run's final point.
    pub keep_final: bool,
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
    /// The optimizer, with its hyperparameters.
    pub optimizer: Optimizer,
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

/// One optimizer's tuning.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// The optimizer at the start values.
    pub start: Optimizer,
    /// The tuned hyperparameters at their start values.
    pub fields: Vec<HyperParam>,
    /// What the tuner did.
    pub outcome: TuneOutcome,
    /// Wall seconds.
    pub seconds: f64,
}

impl Tuning {
    /// The best score of the last generation.
    #[must_use]
    pub fn best_last(&self) -> f64 {
        self.outcome.generations.last().map_or(f64::NAN, |g| {
            g.iter().map(|c| c.score).fold(f64::INFINITY, f64::min)
        })
    }
}

/// The hyperparameters one optimizer runs with, and where they come from.
#[derive(Clone, Debug)]
pub struct Setting {
    /// The optimizer with the values used.
    pub optimizer: Optimizer,
    /// Its `tuned.json` entry.
    pub entry: Tuned,
    /// The tuning, if it was tuned now.
    pub tuning: Option<Tuning>,
}

/// Everything one task's experiment produced.
#[derive(Clone, Debug)]
pub struct TaskResults {
    /// The task.
    pub spec: TaskSpec,
    /// Hyperparameters per optimizer.
    pub tuned: Vec<Setting>,
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

impl TaskResults {
    /// The main runs' LODO group.
    #[must_use]
    pub fn lodo(&self) -> Option<&Group> {
        self.main
            .iter()
            .find(|g| g.optimizer.kind() == OptimizerKind::Lodo)
    }
}

fn bar(len: u64, msg: String) -> Progress {
    Progress::new(len, &msg)
}

/// Tunes every optimizer of the plan, the hyperparameters of `scope` (in parallel across
/// optimizers and candidates), on [`Plan::tune_spec`].
///
/// # Errors
/// [`Interrupted`].
pub fn tune_all(plan: &Plan, scope: TuneScope) -> Result<Vec<Tuning>, Interrupted> {
    let spec = plan.tune_spec.as_ref().unwrap_or(&plan.spec);
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
        .map(|&start| {
            let t0 = Instant::now();
            let seed = derive_seed(plan.seed, &[spec.id(), 100, start.kind().id()]);
            let fields = start.scoped_fields(scope);
            let names: Vec<&str> = fields.iter().map(|h| h.name).collect();
            let values: Vec<f64> = fields.iter().map(|h| h.default).collect();
            let outcome = tune(
                &fields,
                &values,
                &plan.budget.schedule,
                seed,
                |values, steps, s| {
                    let mut opts = RunOptions::new(steps);
                    opts.curve_points = 1;
                    // The names are the optimizer's own, so this cannot fail.
                    let score = match start.with_named(&names, values) {
                        Ok(o) => run_optimizer(spec, &o, &opts, s)?.final_loss,
                        Err(_) => f64::INFINITY,
                    };
                    pb.inc(1);
                    Ok(score)
                },
            )?;
            Ok(Tuning {
                start,
                fields,
                outcome,
                seconds: t0.elapsed().as_secs_f64(),
            })
        })
        .collect();
    pb.finish_and_clear();
    out
}

/// The hyperparameters for every optimizer of the plan (in plan order, then LODO's for the
/// ablations and the frozen test if LODO is not among them): tuned now (writing `tuned.json`
/// and `tuning/<opt>.csv`), loaded from `tuned.json` ([`Plan::reuse`]), or the plan's values.
///
/// # Errors
/// [`Interrupted`] (wrapped), I/O errors, or a `tuned.json` that cannot be read or used.
pub fn hyperparameters(plan: &Plan) -> Result<Vec<Setting>> {
    let path = plan.out.join("tuned.json");
    let mut out = Vec::new();
    if let Some(scope) = plan.tune {
        // An unreadable tuned.json (kept entries are merged into it) fails before the tuning.
        files::load_tuned(&path)?;
        let tunings = tune_all(plan, scope)?;
        files::write_tuning(&plan.out, &tunings)?;
        for t in tunings {
            let names: Vec<String> = t.fields.iter().map(|h| h.name.into()).collect();
            let optimizer = t.start.with_named(&names, &t.outcome.best)?;
            out.push(Setting {
                optimizer,
                entry: Tuned {
                    optimizer: optimizer.kind().name().into(),
                    names,
                    defaults: t.fields.iter().map(|h| h.default).collect(),
                    values: t.outcome.best.clone(),
                    source: "tuned".into(),
                },
                tuning: Some(t),
            });
        }
        let entries: Vec<Tuned> = out.iter().map(|s| s.entry.clone()).collect();
        files::save_tuned(&path, &entries)?;
    } else {
        let loaded = if plan.reuse {
            files::load_tuned(&path)?
        } else {
            Vec::new()
        };
        let mut list = plan.optimizers.clone();
        let needs_lodo = plan.frozen || !plan.ablations.is_empty();
        if needs_lodo && !list.iter().any(|o| o.kind() == OptimizerKind::Lodo) {
            list.push(OptimizerKind::Lodo.defaults());
        }
        for start in list {
            let kind = start.kind();
            let setting = match loaded.iter().find(|t| t.optimizer == kind.name()) {
                Some(t) => Setting {
                    optimizer: start
                        .with_named(&t.names, &t.values)
                        .with_context(|| format!("{}: entry {}", path.display(), t.optimizer))?,
                    entry: Tuned {
                        source: "loaded".into(),
                        ..t.clone()
                    },
                    tuning: None,
                },
                None => {
                    let fields = start.fields();
                    Setting {
                        optimizer: start,
                        entry: Tuned {
                            optimizer: kind.name().into(),
                            names: fields.iter().map(|h| h.name.into()).collect(),
                            defaults: kind.defaults().values(),
                            values: start.values(),
                            source: "default".into(),
                        },
                        tuning: None,
                    }
                }
            };
            out.push(setting);
        }
    }
    Ok(out)
}

/// Runs `budget.runs` seeded runs of every `(label, optimizer)` in parallel; run `r` of every
/// optimizer sees the same task draw (common random numbers). Each run writes its files when done.
///
/// # Errors
/// [`Interrupted`] (wrapped) or I/O errors.
pub fn main_runs(plan: &Plan, rows: &[(String, Optimizer)], what: &str) -> Result<Vec<Group>> {
    let b = &plan.budget;
    let jobs: Vec<(usize, usize)> = (0..rows.len())
        .flat_map(|i| (0..b.runs).map(move |r| (i, r)))
        .collect();
    let pb = bar(jobs.len() as u64, format!("{what} {}", plan.spec.name()));
    let bowl = matches!(plan.spec, TaskSpec::Bowl(_));
    let records: Vec<Result<RunRecord>> = jobs
        .par_iter()
        .map(|&(i, r)| {
            let (label, optimizer) = &rows[i];
            let mut opts = RunOptions::new(b.steps);
            opts.curve_points = b.curve_points;
            if let Some(every) = b.steps.checked_div(b.hessian_points)
                && bowl
                && optimizer.kind().is_lodo()
            {
                opts.hessian_every = every.max(1);
                opts.hessian_probes = b.hessian_probes;
            }
            opts.trajectory = matches!(plan.spec, TaskSpec::Rosenbrock) && r == 0;
            opts.keep_final = plan.keep_final;
            opts.start_points = plan.spec.start_points();
            let seed = derive_seed(plan.seed, &[plan.spec.id(), 200, r as u64]);
            let rec = run_optimizer(&plan.spec, optimizer, &opts, seed)?;
            files::write_run_files(&plan.out, label, r, &rec)
                .with_context(|| format!("writing the files of {label} run {r}"))?;
            pb.inc(1);
            Ok(rec)
        })
        .collect();
    pb.finish_and_clear();
    let mut records = records.into_iter();
    let mut groups = Vec::new();
    for (label, optimizer) in rows {
        let runs: Result<Vec<RunRecord>> = records.by_ref().take(b.runs).collect();
        groups.push(Group {
            label: label.clone(),
            optimizer: *optimizer,
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
pub fn frozen(plan: &Plan, lodo: &LodoParams) -> Result<Vec<Group>> {
    let TaskSpec::Bowl(options) = plan.spec else {
        return Ok(Vec::new());
    };
    let b = &plan.budget;
    let block = LodoParams {
        variant: LodoVariant::BLOCK,
        ..*lodo
    };
    let new_lodo = |seed: u64| -> Result<LodoMinimizer<f64, _>> {
        match build_lodo::<f64>(&block, options.dim, seed)? {
            BuiltLodo::Block(l) => Ok(LodoMinimizer::new(l)),
            _ => anyhow::bail!("the frozen test needs the block network"),
        }
    };
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
            let seed = derive_seed(plan.seed, &[plan.spec.id(), 300, r as u64]);
            let mut opts = RunOptions::new(b.steps);
            opts.curve_points = b.curve_points;
            if let Some(every) = b.steps.checked_div(b.hessian_points) {
                opts.hessian_every = every.max(1);
                opts.hessian_probes = b.hessian_probes;
            }
            opts.start_points = plan.spec.start_points();
            let (seed_a, seed_b) = (derive_seed(seed, &[1]), derive_seed(seed, &[2]));
            // A run of `m` on the bowl drawn from `task_seed`, its walk reseeded by `walk_seed`.
            let go = |m: &mut dyn Minimizer<f64>, task_seed, walk_seed: Option<u64>, k| {
                let mut bowl =
                    NoisyQuadraticBowl::new(options, task_seed).map_err(anyhow::Error::msg)?;
                if let Some(w) = walk_seed {
                    bowl.reseed_walk(w);
                }
                anyhow::Ok(run(&mut bowl, m, &opts, derive_seed(seed, &[k]))?)
            };
            let mut trained = new_lodo(derive_seed(seed, &[3]))?;
            let rec_a = go(&mut trained, seed_a, None, 4)?;
            let g = trained.lodo().preconditioner().clone();
            let rec_fly = go(&mut new_lodo(derive_seed(seed, &[3]))?, seed_b, None, 5)?;
            let rec_fb = go(&mut FrozenLodo::new(g.clone(), lodo.beta)?, seed_b, None, 6)?;
            let walk = Some(derive_seed(seed, &[7]));
            let rec_fa = go(&mut FrozenLodo::new(g, lodo.beta)?, seed_a, walk, 8)?;
            let recs = vec![rec_a, rec_fly, rec_fb, rec_fa];
            let dir = plan.out.join("frozen");
            for (label, rec) in labels.iter().zip(&recs) {
                files::write_run_files(&dir, label, r, rec)?;
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
            optimizer: Optimizer::Lodo(block),
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

/// Bytes one run of `optimizer` on `spec` for `steps` evaluations allocates, roughly: the task
/// (the bowl's dense `H` and eigenvectors, MNIST's batch), the optimizer (dense `n × n`
/// matrices of BFGS and Levenberg–Marquardt, LODO's blocks with their Adam moments), the kept
/// learning curve and, on Rosenbrock, the trajectory.
#[must_use]
pub fn run_bytes(spec: &TaskSpec, optimizer: &Optimizer, steps: u64, curve_points: usize) -> u128 {
    let n = spec.dim() as u128;
    let f = 8u128; // f64 (MNIST's f32 is counted as f64: an upper bound)
    let task = match spec {
        TaskSpec::Bowl(_) => 2 * n * n * f,
        TaskSpec::Rosenbrock => 0,
        TaskSpec::Mnist(m) => {
            m.batch as u128 * std::mem::size_of::<crate::mnist::net::Query>() as u128
        }
    };
    let opt = match optimizer {
        o if o.kind().is_dense() => 3 * n * n * f,
        // Layers × hidden width (≈ 2n) × block size, for the blocks, Adam's two moments and
        // the backward pass.
        Optimizer::Lodo(p) => {
            let (layers, k) = match p.variant {
                LodoVariant::Block { layers, block_size } => (layers, block_size),
                LodoVariant::Residuals => (64, 4),
                _ => (16, 4),
            };
            layers as u128 * 2 * n * k as u128 * f * 4
        }
        _ => 8 * n * f,
    };
    let points = u128::from(steps).min(curve_points as u128 + 1);
    let trajectory = if matches!(spec, TaskSpec::Rosenbrock) {
        (u128::from(steps) + 1) * (24 + n * f)
    } else {
        0
    };
    task + opt + points * 24 + trajectory
}

/// The memory this machine has available (Linux `MemAvailable`), if known.
#[must_use]
pub fn available_memory() -> Option<u128> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Checks a plan before anything runs: every optimizer once, and the runs that execute at once
/// (one per worker thread) fit in the available memory.
///
/// # Errors
/// A duplicate optimizer, or the memory asked and the memory available.
pub fn check_plan(plan: &Plan) -> Result<()> {
    for (i, o) in plan.optimizers.iter().enumerate() {
        anyhow::ensure!(
            !plan.optimizers[..i].iter().any(|p| p.kind() == o.kind()),
            "--optimizers lists {} twice",
            o.kind()
        );
    }
    let b = &plan.budget;
    let lodo = plan.ablations.iter().map(|a| {
        a.optimizer(&LodoParams {
            alpha0: 1.0,
            meta_lr: 1.0,
            beta: 0.0,
            variant: LodoVariant::BLOCK,
        })
    });
    let tune_steps = b.schedule.iter().map(|g| g.steps).max().unwrap_or(0);
    let tune_spec = plan.tune_spec.as_ref().unwrap_or(&plan.spec);
    let (bytes, what) = plan
        .optimizers
        .iter()
        .copied()
        .chain(lodo)
        .flat_map(|o| {
            [
                (run_bytes(&plan.spec, &o, b.steps, b.curve_points), o),
                (run_bytes(tune_spec, &o, tune_steps, 1), o),
            ]
        })
        .max_by_key(|p| p.0)
        .map_or((0, None), |(b, o)| (b, Some(o.kind())));
    let at_once = rayon::current_num_threads().max(1) as u128;
    let gib = |b: u128| b as f64 / f64::from(1u32 << 30);
    if let (Some(avail), Some(kind)) = (available_memory(), what) {
        anyhow::ensure!(
            bytes.saturating_mul(at_once) <= avail,
            "a run of {kind} on {} would ask for about {:.1} GiB ({} at once: {:.1} GiB), but this \
             machine has {:.1} GiB available; use a smaller --dim/--batch/--steps or fewer --threads",
            plan.spec.name(),
            gib(bytes),
            at_once,
            gib(bytes.saturating_mul(at_once)),
            gib(avail)
        );
    }
    Ok(())
}

/// Runs a whole plan: hyperparameters, main runs, ablations, frozen test; writes the summary
/// CSVs and returns the results (figures: [`super::figures::draw_figures`]; Markdown:
/// [`super::markdown::task_report`]).
///
/// # Errors
/// [`check_plan`]'s, [`Interrupted`] (wrapped), I/O errors.
pub fn run_plan(plan: &Plan) -> Result<TaskResults> {
    check_plan(plan)?;
    let start = Instant::now();
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("cannot create output folder {}", plan.out.display()))?;
    let tuned = hyperparameters(plan)?;
    let rows: Vec<(String, Optimizer)> = tuned[..plan.optimizers.len()]
        .iter()
        .map(|s| (s.optimizer.kind().name().to_string(), s.optimizer))
        .collect();
    let summaries = |groups: &[Group]| groups.iter().map(Group::summary).collect::<Vec<_>>();
    let mut main = Vec::new();
    if !rows.is_empty() {
        main = main_runs(plan, &rows, "main runs")?;
        write_summary_csv(&plan.out.join("summary.csv"), &summaries(&main))?;
    }
    let lodo = tuned
        .iter()
        .find_map(|s| match s.optimizer {
            Optimizer::Lodo(p) if s.optimizer.kind() == OptimizerKind::Lodo => Some(p),
            _ => None,
        })
        .or(match OptimizerKind::Lodo.defaults() {
            Optimizer::Lodo(p) => Some(p),
            _ => None,
        })
        .context("LODO's hyperparameters")?;
    let mut ablations = Vec::new();
    if !plan.ablations.is_empty() {
        let rows: Vec<(String, Optimizer)> = plan
            .ablations
            .iter()
            .map(|a| (a.label.clone(), a.optimizer(&lodo)))
            .collect();
        ablations = main_runs(plan, &rows, "ablations")?;
        if let Some(l) = main
            .iter()
            .find(|g| g.optimizer.kind() == OptimizerKind::Lodo)
        {
            ablations.insert(0, l.clone());
        }
        write_summary_csv(&plan.out.join("ablations.csv"), &summaries(&ablations))?;
    }
    let frozen_groups = if plan.frozen {
        let g = frozen(plan, &lodo)?;
        write_summary_csv(&plan.out.join("frozen.csv"), &summaries(&g))?;
        g
    } else {
        Vec::new()
    };
    Ok(TaskResults {
        spec: plan.spec.clone(),
        tuned,
        main,
        ablations,
        frozen: frozen_groups,
        seconds: start.elapsed().as_secs_f64(),
        budget: plan.budget.clone(),
    })
}
