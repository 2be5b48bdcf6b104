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

use super::checkpoint::{self, Checkpoints, RunState};
use super::files::{self, Tuned};
use super::progress::Progress;
use super::{
    Clock, Interrupted, RunCheckpoints, RunOptions, RunRecord, RunShape, TaskSpec, derive_seed,
    is_interrupted, run, run_optimizer, run_optimizer_checkpointed,
};
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
    /// LODO rows run with LODO's (tuned) hyperparameters and shown with the main runs: the
    /// layouts of `--permutations` and `--state` ([`super::layouts`]). Needs LODO among
    /// [`Plan::optimizers`].
    pub families: Vec<LodoRow>,
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
    /// Checkpoint the main runs and ablations ([`super::checkpoint`]): MNIST only, not with
    /// tuning.
    pub checkpoint: Option<Checkpoints>,
    /// The clock of the runs' seconds; with [`Clock::Cpu`] the main runs and ablations run one
    /// at a time, with [`Clock::Thread`] each on a thread of its own (see [`Clock`]).
    pub clock: Clock,
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
    /// Phases that Ctrl-C stopped or kept from starting (empty: the experiment is complete).
    pub missing: Vec<Missing>,
}

/// A phase of a [`Plan`], in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Tuning (its results are lost when it is interrupted).
    Tuning,
    /// The main runs.
    Main,
    /// LODO's ablations.
    Ablations,
    /// The frozen-preconditioner test.
    Frozen,
}

impl Phase {
    /// How the report names the phase.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Tuning => "tuning",
            Self::Main => "main runs",
            Self::Ablations => "ablations",
            Self::Frozen => "frozen test",
        }
    }
}

/// A phase that did not finish: `finished` of its `total` units (runs; tuned optimizers) were done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The phase.
    pub phase: Phase,
    /// Whether it started (Ctrl-C came during it) or never began (Ctrl-C came earlier).
    pub started: bool,
    /// Units finished (their files are written).
    pub finished: usize,
    /// Units planned.
    pub total: usize,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.phase.name();
        if !self.started {
            write!(f, "{name} (not started)")
        } else if self.phase == Phase::Tuning {
            write!(f, "{name} (interrupted; an unfinished tuning is not kept)")
        } else {
            write!(
                f,
                "{name} (interrupted: {} of {} runs finished)",
                self.finished, self.total
            )
        }
    }
}

impl TaskResults {
    /// Whether Ctrl-C left a phase unfinished.
    #[must_use]
    pub fn is_partial(&self) -> bool {
        !self.missing.is_empty()
    }

    /// The phase's entry in [`TaskResults::missing`], if it did not finish.
    #[must_use]
    pub fn missing(&self, phase: Phase) -> Option<&Missing> {
        self.missing.iter().find(|m| m.phase == phase)
    }

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

/// Runs `budget.runs` seeded runs of every `(label, optimizer)` in parallel (one at a time with
/// [`Clock::Cpu`]; each alone on one thread with [`Clock::Thread`]); run `r` of every
/// optimizer sees the same task draw (common random numbers). Each run writes its files when done.
///
/// # Errors
/// [`Interrupted`] (wrapped) or I/O errors.
pub fn main_runs(plan: &Plan, rows: &[(String, Optimizer)], what: &str) -> Result<Vec<Group>> {
    let (groups, finished) = phase_runs(plan, rows, what)?;
    anyhow::ensure!(finished == rows.len() * plan.budget.runs, Interrupted);
    Ok(groups)
}

/// As [`main_runs`], but Ctrl-C keeps the runs that finished: returns the groups (each with its
/// finished runs, in run order) and how many runs finished in all.
///
/// # Errors
/// I/O errors.
pub fn phase_runs(
    plan: &Plan,
    rows: &[(String, Optimizer)],
    what: &str,
) -> Result<(Vec<Group>, usize)> {
    let b = &plan.budget;
    let jobs: Vec<(usize, usize)> = (0..rows.len())
        .flat_map(|i| (0..b.runs).map(move |r| (i, r)))
        .collect();
    if let Some(c) = plan.checkpoint.as_ref().filter(|c| c.resume) {
        // Every run's checkpoint belongs to this run and fits its budget before any work
        // starts (checkpointable optimizers take one evaluation per iteration).
        let shape = RunShape::new(b.steps, 1, b.curve_points);
        for &(i, r) in &jobs {
            let (label, optimizer) = &rows[i];
            let path = c.run_path(label, r);
            if path.exists() {
                let seed = derive_seed(plan.seed, &[plan.spec.id(), 200, r as u64]);
                let h = checkpoint::read_run_header(&path)?;
                check_key(&path, &h.key, &run_key(label, r, optimizer, seed))?;
                checkpoint::check_progress(&h.progress, &shape, 1)
                    .with_context(|| format!("{label} run {r} ({})", path.display()))?;
                anyhow::ensure!(
                    optimizer.kind() != OptimizerKind::Lars || h.progress.steps == b.steps,
                    "{label} run {r}: LARS's learning rate decays as (1 − t/T)² over its step \
                     budget T, so a LARS run continues only with its own budget ({} steps, not \
                     {})",
                    h.progress.steps,
                    b.steps
                );
            }
        }
    }
    let pb = bar(jobs.len() as u64, format!("{what} {}", plan.spec.name()));
    let bowl = matches!(plan.spec, TaskSpec::Bowl(_));
    let one = |&(i, r): &(usize, usize)| -> Result<RunRecord> {
        let (label, optimizer) = &rows[i];
        let mut opts = RunOptions::new(b.steps);
        opts.curve_points = b.curve_points;
        opts.clock = plan.clock;
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
        if matches!(plan.spec, TaskSpec::Mnist(_)) && optimizer.kind().is_lodo() {
            // Issue 19: how far G has moved from α₀I, on every MNIST curve point.
            opts.g_movement_probes = 4;
        }
        let seed = derive_seed(plan.seed, &[plan.spec.id(), 200, r as u64]);
        let rec = match &plan.checkpoint {
            None => run_optimizer(&plan.spec, optimizer, &opts, seed)?,
            Some(c) => {
                let key = run_key(label, r, optimizer, seed);
                let path = c.run_path(label, r);
                let resume = resume_state(c, &path, &key, label, r)?;
                let save = |st: &RunState| checkpoint::write_run_state(&path, &key, st);
                let ckpt = RunCheckpoints {
                    every: c.every,
                    resume,
                    save: &save,
                };
                run_optimizer_checkpointed(&plan.spec, optimizer, &opts, seed, Some(ckpt))
                    .with_context(|| format!("{label} run {r}"))?
            }
        };
        files::write_run_files(&plan.out, label, r, &rec)
            .with_context(|| format!("writing the files of {label} run {r}"))?;
        pb.inc(1);
        Ok(rec)
    };
    let records: Vec<Result<RunRecord>> = match plan.clock {
        Clock::Wall => jobs.par_iter().map(one).collect(),
        // One run at a time, so that the process's CPU time is the run's.
        Clock::Cpu => {
            let mut done: Vec<Option<Result<RunRecord>>> = jobs.iter().map(|_| None).collect();
            for j in run_major(&jobs) {
                done[j] = Some(one(&jobs[j]));
            }
            done.into_iter().flatten().collect()
        }
        // Each run alone on a one-thread pool of its own (its inner parallel loops stay on that
        // thread, so the thread's CPU time is the run's), as many at once as the pool has
        // threads, taken in the same order as with `Cpu`.
        Clock::Thread => {
            let order = run_major(&jobs);
            let next = std::sync::atomic::AtomicUsize::new(0);
            let done: Vec<std::sync::Mutex<Option<Result<RunRecord>>>> =
                jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
            let workers = rayon::current_num_threads().min(jobs.len()).max(1);
            std::thread::scope(|s| -> Result<()> {
                let workers: Vec<_> = (0..workers)
                    .map(|_| {
                        s.spawn(|| -> Result<()> {
                            let pool = rayon::ThreadPoolBuilder::new()
                                .num_threads(1)
                                .build()
                                .context("building a one-thread pool for a run")?;
                            while let Some(&j) =
                                order.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                            {
                                let rec = pool.install(|| one(&jobs[j]));
                                *done[j]
                                    .lock()
                                    .map_err(|_| anyhow::anyhow!("a run panicked"))? = Some(rec);
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().map_err(|_| anyhow::anyhow!("a run panicked"))??;
                }
                Ok(())
            })?;
            done.into_iter()
                .map(|m| {
                    m.into_inner()
                        .map_err(|_| anyhow::anyhow!("a run panicked"))?
                        .ok_or_else(|| anyhow::anyhow!("a run did not finish"))?
                })
                .collect()
        }
    };
    pb.finish_and_clear();
    let mut records = records.into_iter();
    let mut groups = Vec::new();
    let mut finished = 0;
    for (label, optimizer) in rows {
        let mut runs = Vec::new();
        for rec in records.by_ref().take(b.runs) {
            match rec {
                Ok(r) => runs.push(r),
                Err(e) if is_interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        finished += runs.len();
        groups.push(Group {
            label: label.clone(),
            optimizer: *optimizer,
            runs,
        });
    }
    Ok((groups, finished))
}

/// The order of `jobs` (`(row, run)` pairs) by run first: run 0 of every row, then run 1, ... (an
/// experiment stopped early has runs of every row).
fn run_major(jobs: &[(usize, usize)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&j| (jobs[j].1, jobs[j].0));
    order
}

/// The key of run `r` of the row `label` in its checkpoint: the row, the optimizer with its
/// hyperparameters and the run's seed.
fn run_key(label: &str, r: usize, optimizer: &Optimizer, seed: u64) -> String {
    format!("{label} run {r}: {optimizer:?}, seed {seed:#018x}")
}

fn check_key(path: &std::path::Path, found: &str, expected: &str) -> Result<()> {
    anyhow::ensure!(
        found == expected,
        "{} belongs to another run: it holds `{found}`, this run is `{expected}`",
        path.display()
    );
    Ok(())
}

/// The state run `r` of `label` continues from: its checkpoint when resuming, else none (a run
/// without a checkpoint had not started; it starts, and says so).
fn resume_state(
    c: &Checkpoints,
    path: &std::path::Path,
    key: &str,
    label: &str,
    r: usize,
) -> Result<Option<RunState>> {
    if !c.resume {
        return Ok(None);
    }
    if !path.exists() {
        eprintln!(
            "[checkpoint] {label} run {r}: no checkpoint in {} (not started before); starting at step 0",
            c.dir.display()
        );
        return Ok(None);
    }
    let (found, state) = checkpoint::read_run_state(path)?;
    check_key(path, &found, key)?;
    eprintln!(
        "[checkpoint] {label} run {r}: resuming at iteration {} of {}",
        state.iterations,
        path.display()
    );
    Ok(Some(state))
}

/// The frozen-preconditioner test (`freeze_hessian_test.py`): LODO trains on bowl A; its `θ` is
/// frozen and run on (i) a fresh bowl B with new eigenvectors, and (ii) bowl A with a new random
/// walk; on-the-fly LODO on bowl B is the comparison. Groups: training run, on-the-fly on B,
/// frozen on B, frozen on A.
///
/// # Errors
/// [`Interrupted`] (wrapped), I/O errors, or a bad LODO configuration.
pub fn frozen(plan: &Plan, lodo: &LodoParams) -> Result<Vec<Group>> {
    let (groups, finished) = frozen_runs(plan, lodo)?;
    anyhow::ensure!(finished == plan.budget.runs, Interrupted);
    Ok(groups)
}

/// As [`frozen`], but Ctrl-C keeps the runs that finished (all four records of each): returns
/// the groups and how many runs `r` finished.
///
/// # Errors
/// I/O errors, or a bad LODO configuration.
pub fn frozen_runs(plan: &Plan, lodo: &LodoParams) -> Result<(Vec<Group>, usize)> {
    let TaskSpec::Bowl(options) = plan.spec else {
        return Ok((Vec::new(), 0));
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
    let mut finished = 0;
    for recs in per_run {
        match recs {
            Ok(recs) => {
                finished += 1;
                for (g, rec) in groups.iter_mut().zip(recs) {
                    g.runs.push(rec);
                }
            }
            Err(e) if is_interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((groups, finished))
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
                LodoVariant::Block {
                    layers, block_size, ..
                } => (layers, block_size),
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
    anyhow::ensure!(
        plan.families.is_empty()
            || plan
                .optimizers
                .iter()
                .any(|o| o.kind() == OptimizerKind::Lodo),
        "--permutations and --state run LODO's layouts at LODO's hyperparameters: list LODO among the optimizers"
    );
    let b = &plan.budget;
    let lodo = plan.ablations.iter().chain(&plan.families).map(|a| {
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
/// CSVs of the phases that finished and returns the results (figures:
/// [`super::figures::draw_figures`]; Markdown: [`super::markdown::task_report`]).
///
/// Ctrl-C ([`super::STOP`]) is not an error here: the phase it stops keeps its finished runs,
/// the later phases do not start, and [`TaskResults::missing`] lists them, so the caller can
/// still draw and report what finished.
///
/// # Errors
/// [`check_plan`]'s, I/O errors.
pub fn run_plan(plan: &Plan) -> Result<TaskResults> {
    check_plan(plan)?;
    if let Some(c) = &plan.checkpoint {
        anyhow::ensure!(
            plan.tune.is_none(),
            "checkpoints cover the runs, not the tuning: tune first, then run the tuned values \
             with checkpoints"
        );
        anyhow::ensure!(
            matches!(plan.spec, TaskSpec::Mnist(_)),
            "only MNIST runs can be checkpointed (the {} task cannot restore its samples)",
            plan.spec.name()
        );
        if let Some(o) = plan.optimizers.iter().find(|o| !o.kind().checkpointable()) {
            anyhow::bail!(
                "{} cannot be checkpointed (only the first-order optimizers and LODO can); \
                 leave it out of --optimizers or run without checkpoints",
                o.kind()
            );
        }
        if !c.resume {
            std::fs::create_dir_all(&c.dir)
                .with_context(|| format!("cannot create checkpoint folder {}", c.dir.display()))?;
        }
        checkpoint::open(plan, c)?;
    }
    let start = Instant::now();
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("cannot create output folder {}", plan.out.display()))?;
    let runs = plan.budget.runs;
    let bowl = matches!(plan.spec, TaskSpec::Bowl(_));
    // The phases planned, with their units.
    let planned: Vec<(Phase, usize)> = [
        (
            Phase::Tuning,
            plan.tune.map_or(0, |_| plan.optimizers.len()),
        ),
        (
            Phase::Main,
            (plan.optimizers.len() + plan.families.len()) * runs,
        ),
        (Phase::Ablations, plan.ablations.len() * runs),
        (Phase::Frozen, if plan.frozen && bowl { runs } else { 0 }),
    ]
    .into_iter()
    .filter(|p| p.1 > 0)
    .collect();
    let mut res = TaskResults {
        spec: plan.spec.clone(),
        tuned: Vec::new(),
        main: Vec::new(),
        ablations: Vec::new(),
        frozen: Vec::new(),
        seconds: 0.0,
        budget: plan.budget.clone(),
        missing: Vec::new(),
    };
    // Marks `phase` (with `finished` units) and every later planned phase as missing.
    let stop = |res: &mut TaskResults, phase: Phase, finished: usize| {
        let at = planned.iter().position(|p| p.0 == phase).unwrap_or(0);
        res.missing = planned[at..]
            .iter()
            .map(|&(p, total)| Missing {
                phase: p,
                started: p == phase,
                finished: if p == phase { finished } else { 0 },
                total,
            })
            .collect();
        res.seconds = start.elapsed().as_secs_f64();
    };
    res.tuned = match hyperparameters(plan) {
        Ok(t) => t,
        Err(e) if is_interrupted(&e) => {
            stop(&mut res, Phase::Tuning, 0);
            return Ok(res);
        }
        Err(e) => return Err(e),
    };
    let lodo = res
        .tuned
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
    // The main rows, then one per permutation family other than random (LODO's
    // hyperparameters, never re-tuned).
    let rows: Vec<(String, Optimizer)> = res.tuned[..plan.optimizers.len()]
        .iter()
        .map(|s| (s.optimizer.kind().name().to_string(), s.optimizer))
        .chain(
            plan.families
                .iter()
                .map(|f| (f.label.clone(), f.optimizer(&lodo))),
        )
        .collect();
    let summaries = |groups: &[Group]| groups.iter().map(Group::summary).collect::<Vec<_>>();
    if !rows.is_empty() {
        let (groups, finished) = phase_runs(plan, &rows, "main runs")?;
        res.main = groups;
        if finished < rows.len() * runs {
            stop(&mut res, Phase::Main, finished);
            return Ok(res);
        }
        write_summary_csv(&plan.out.join("summary.csv"), &summaries(&res.main))?;
    }
    if !plan.ablations.is_empty() {
        let rows: Vec<(String, Optimizer)> = plan
            .ablations
            .iter()
            .map(|a| (a.label.clone(), a.optimizer(&lodo)))
            .collect();
        let (mut groups, finished) = phase_runs(plan, &rows, "ablations")?;
        if let Some(l) = res
            .main
            .iter()
            .find(|g| g.optimizer.kind() == OptimizerKind::Lodo)
        {
            groups.insert(0, l.clone());
        }
        res.ablations = groups;
        if finished < rows.len() * runs {
            stop(&mut res, Phase::Ablations, finished);
            return Ok(res);
        }
        write_summary_csv(&plan.out.join("ablations.csv"), &summaries(&res.ablations))?;
    }
    if plan.frozen && bowl {
        let (groups, finished) = frozen_runs(plan, &lodo)?;
        res.frozen = groups;
        if finished < runs {
            stop(&mut res, Phase::Frozen, finished);
            return Ok(res);
        }
        write_summary_csv(&plan.out.join("frozen.csv"), &summaries(&res.frozen))?;
    }
    res.seconds = start.elapsed().as_secs_f64();
    Ok(res)
}
