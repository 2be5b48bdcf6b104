//! `lodo-bench mnist`: trains the autoregressive CNN with LODO and the baselines through the
//! harness's shared runner ([`crate::experiment::protocol`]), and writes `report.md`,
//! `curves.csv`, learning-curve plots and a PNG grid of sampled digits.
//!
//! Protocol (paper §5.2, the authors' `experiment2.py` at reduced scale), the same as the
//! synthetic tasks': run `r` of every optimizer starts from the same initial network and sees the
//! same batch sequence (seeds derived from `--seed`, the task and `r`, so results do not depend
//! on `--threads`); a run that meets a non-finite loss or step counts as diverged; Ctrl-C stops
//! the runs and leaves the files of finished ones. Per optimizer the report gives the mean ± std
//! over runs of the training loss over the final 10% of the step budget, the same over the final
//! 10% of a common wall-clock budget (`--seconds`, default: the shortest run's training time),
//! the test loss (mean over every query position of the first `--test-images` test digits, as
//! the authors' `evaluate_loss_on_dataset`), steps/s and diverged runs.
//!
//! With `--tune`, the harness's tuner ([`crate::experiment::protocol::tune_all`]) first tunes
//! LODO's α₀ and η (and β with `--tune-beta`) and each baseline's learning rate at a reduced
//! scale (`--tune-generations` × `--tune-population` candidates of `--tune-steps` steps at batch
//! `--tune-batch`; σ from the end of the authors' schedule), starting from the given values; the
//! experiment then runs with the tuned values, and the report lists them. See `lodo-bench/MNIST.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use lodo_core::PermutationFamily;

use super::idx::Mnist;
use super::net::{self, PIX, SIDE};
use crate::baselines::{LodoParams, LodoVariant, Optimizer, OptimizerKind, StatePolicy, TuneScope};
use crate::experiment::checkpoint::Checkpoints;
use crate::experiment::layouts::{FamilyList, StateList, layout_rows};
use crate::experiment::protocol::{Budget, Group, LodoRow, Plan, Setting, run_plan};
use crate::experiment::{Clock, Interrupted, MnistSpec, TaskSpec};
use crate::plot::{LineChart, Series};
use crate::report::{Summary, file_stem, fmt_num, fmt_sig, write_atomic, write_csv};
use crate::tune::{Generation, rosenbrock_schedule};

/// Training digits held out at the end of the training file (the authors' validation set).
pub const HOLD_OUT: usize = 64;

/// A sweep of LODO's architecture or momentum.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// β ∈ {0, 0.5, 0.9, 0.97, 0.99}.
    Beta,
    /// Layers N ∈ {4, 8, 32} (k = 4).
    Depth,
    /// Block size k ∈ {3, 5, 6, 8, 10} with N·k ≈ 64.
    Block,
}

/// Options of `lodo-bench mnist`.
#[derive(clap::Args, Debug, Clone)]
pub struct MnistArgs {
    /// Folder with the MNIST IDX files (gzip or raw; the full 60k/10k set drops in). Only the
    /// images are used (the task predicts pixels, not digits); label files are optional and, if
    /// present, checked against the images (same count, digits 0–9). The last 64 training digits
    /// are held out, so the training file needs at least 65.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist-10k"))]
    pub data: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "results/mnist")]
    pub out: PathBuf,
    /// Step budget per run (one batch per step). Ctrl-C stops within a step and writes a partial
    /// report of the runs that finished (runs in progress are dropped); exit code 130.
    #[arg(long, default_value_t = 100)]
    pub steps: u64,
    /// Time budget in seconds on --clock for the second loss column (default: the shortest
    /// run).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// The clock of the runs' seconds: `wall` (elapsed time; runs in parallel over the threads),
    /// `cpu` (the process's CPU time, all threads; runs one at a time, each spreading its batch
    /// over the threads) or `thread` (the CPU time of the run's own thread; runs in parallel,
    /// each alone on one thread). Other processes on a shared machine do not inflate `cpu` or
    /// `thread`. Part of a checkpoint's experiment: give the same one with --resume.
    #[arg(long, value_enum, default_value_t = Clock::Wall)]
    pub clock: Clock,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Independent seeded runs per optimizer.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Base seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Optimizers (comma-separated; BFGS and Levenberg-Marquardt, which keep n × n matrices, are
    /// refused).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lodo,adam,momentum,rmsprop,yogi,lars"
    )]
    pub optimizers: Vec<OptimizerKind>,
    /// Also run the five LODO ablations (with LODO's values).
    #[arg(long)]
    pub ablations: bool,
    /// LODO sweeps to add (comma-separated, with LODO's values).
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<Sweep>,
    /// Comma-separated permutation families of LODO's layers: random (the paper's; LODO
    /// itself), shuffle, tiled or tiled:T (`tiled` alone: T = 64, a default, not a measured
    /// optimum). Every family but random adds a row (LODO-Shuffle, LODO-Tiled64, ...) at LODO's
    /// values, never re-tuned; LODO is added to --optimizers if missing.
    #[arg(long, value_name = "LIST", default_value = "random")]
    pub permutations: FamilyList,
    /// Comma-separated state policies of LODO (how its optimizer state is stored; the
    /// arithmetic stays in f32): full (the paper's; LODO itself), bf16 (moments and kept
    /// activations in bf16), q8 (moments in 8-bit block-wise codes, activations in bf16). Every
    /// family of --permutations runs with every policy; each pair but (random, full) adds a row
    /// (LODO-q8, LODO-Shuffle-q8, ...) at LODO's values, never re-tuned; LODO is added to
    /// --optimizers if missing.
    #[arg(long, value_name = "LIST", default_value = "full")]
    pub state: StateList,
    /// LODO's α₀ (authors' MNIST tuning: 0.0846).
    #[arg(long, default_value_t = 0.0846)]
    pub alpha0: f64,
    /// LODO's meta learning rate η (authors' MNIST tuning: 7.95e-6).
    #[arg(long, default_value_t = 7.95e-6)]
    pub meta_lr: f64,
    /// LODO's momentum β (authors' MNIST tuning: 0.934).
    #[arg(long, default_value_t = 0.934)]
    pub beta: f64,
    /// Adam's learning rate (authors' default 1e-3).
    #[arg(long, default_value_t = 1e-3)]
    pub adam_lr: f64,
    /// Momentum's (Keras SGD) learning rate (authors' default 0.01).
    #[arg(long, default_value_t = 0.01)]
    pub momentum_lr: f64,
    /// RMSprop's learning rate (authors' default 1e-3).
    #[arg(long, default_value_t = 1e-3)]
    pub rmsprop_lr: f64,
    /// Yogi's learning rate (authors' default 1e-3).
    #[arg(long, default_value_t = 1e-3)]
    pub yogi_lr: f64,
    /// LARS's learning rate (authors' default 1e-3).
    #[arg(long, default_value_t = 1e-3)]
    pub lars_lr: f64,
    /// Tune first, with the harness's evolution strategy at reduced scale (`--tune-*`), starting
    /// from the values above: LODO's α₀ and η (and β with `--tune-beta`), each baseline's
    /// learning rate; then run the experiment with the tuned values (ablations and sweeps take
    /// LODO's). Writes `tuned.json` and `tuning/<optimizer>.csv`.
    #[arg(long)]
    pub tune: bool,
    /// Take each optimizer's values from `<out>/tuned.json` where it has them (written there by
    /// an earlier `--tune`, e.g. with `--steps 1`), instead of the values above: the way to run
    /// tuned values with checkpoints, and to give LODO-Diagonal (and the other LODO variants in
    /// --optimizers) their own tuned α₀ and η. Not with --tune.
    #[arg(long, conflicts_with = "tune")]
    pub reuse_tuned: bool,
    /// With `--tune`: tune LODO's β too.
    #[arg(long)]
    pub tune_beta: bool,
    /// Batch size of a tuning run.
    #[arg(long, default_value_t = 32)]
    pub tune_batch: usize,
    /// Steps of a tuning run.
    #[arg(long, default_value_t = 30)]
    pub tune_steps: u64,
    /// Candidates per tuning generation.
    #[arg(long, default_value_t = 6)]
    pub tune_population: usize,
    /// Tuning generations (1–10): the last ones of the authors' σ schedule.
    #[arg(long, default_value_t = 3)]
    pub tune_generations: usize,
    /// Test digits for the test loss (each evaluated at all 784 query positions; 0 = all).
    #[arg(long, default_value_t = 8)]
    pub test_images: usize,
    /// Digits to sample for the picture (0 = none).
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Checkpoint every K steps of each run (and at its end, and on Ctrl-C) into
    /// --checkpoint-dir: the optimizer's state, the network, the data position, the curve so
    /// far. Continue with --resume. Not with --tune. A LODO checkpoint is about 155 MB.
    #[arg(long, value_name = "K")]
    pub checkpoint_every: Option<u64>,
    /// Folder of the checkpoints (default: `<out>/checkpoint`); must not hold one already.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue the runs checkpointed in DIR, bit for bit, and keep checkpointing there (every
    /// --checkpoint-every K steps if given, else at the end of each run and on Ctrl-C). Give
    /// the options the checkpoint was started with; --steps may grow (extending finished runs;
    /// not LARS, whose decay depends on the budget) and --runs too (new runs start at step 0).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

impl MnistArgs {
    /// The checkpoint settings of `--checkpoint-every`, `--checkpoint-dir` and `--resume`.
    fn checkpoints(&self) -> Option<Checkpoints> {
        match (&self.resume, self.checkpoint_every) {
            (Some(dir), every) => Some(Checkpoints {
                dir: dir.clone(),
                every: every.unwrap_or(0),
                resume: true,
            }),
            (None, Some(every)) => Some(Checkpoints {
                dir: self
                    .checkpoint_dir
                    .clone()
                    .unwrap_or_else(|| self.out.join("checkpoint")),
                every,
                resume: false,
            }),
            (None, None) => None,
        }
    }
}

/// The optimizer `kind` at the command line's values (the authors' defaults otherwise).
fn start(kind: OptimizerKind, a: &MnistArgs) -> Optimizer {
    match kind.defaults() {
        Optimizer::Lodo(p) => Optimizer::Lodo(LodoParams {
            alpha0: a.alpha0,
            meta_lr: a.meta_lr,
            beta: a.beta,
            ..p
        }),
        Optimizer::Adam { beta_1, beta_2, .. } => Optimizer::Adam {
            lr: a.adam_lr,
            beta_1,
            beta_2,
        },
        Optimizer::Momentum { momentum, .. } => Optimizer::Momentum {
            lr: a.momentum_lr,
            momentum,
        },
        Optimizer::RmsProp { rho, momentum, .. } => Optimizer::RmsProp {
            lr: a.rmsprop_lr,
            rho,
            momentum,
        },
        Optimizer::Yogi { beta1, beta2, .. } => Optimizer::Yogi {
            lr: a.yogi_lr,
            beta1,
            beta2,
        },
        Optimizer::Lars {
            momentum,
            weight_decay,
            ..
        } => Optimizer::Lars {
            lr: a.lars_lr,
            momentum,
            weight_decay,
        },
        other => other,
    }
}

/// The LODO rows run with LODO's values: the ablations and the sweeps.
fn lodo_rows(args: &MnistArgs) -> Vec<LodoRow> {
    let mut rows = Vec::new();
    if args.ablations {
        rows.extend(OptimizerKind::ABLATIONS.map(LodoRow::ablation));
    }
    let block = |label: String, layers, block_size, beta| LodoRow {
        label,
        variant: LodoVariant::Block {
            layers,
            block_size,
            permutations: PermutationFamily::Random,
            state: StatePolicy::Full,
        },
        beta,
    };
    for sweep in &args.sweep {
        match sweep {
            Sweep::Beta => {
                for beta in [0.0, 0.5, 0.9, 0.97, 0.99] {
                    rows.push(block(format!("LODO β={beta}"), 16, 4, Some(beta)));
                }
            }
            Sweep::Depth => {
                for layers in [4, 8, 32] {
                    rows.push(block(format!("LODO N={layers}"), layers, 4, None));
                }
            }
            Sweep::Block => {
                for k in [3usize, 5, 6, 8, 10] {
                    let layers = (64 + k / 2) / k;
                    rows.push(block(format!("LODO k={k} N={layers}"), layers, k, None));
                }
            }
        }
    }
    rows
}

/// The LARS layers of the authors' `hyperparameter_setup.py`: the stem, each block's three
/// convolutions (weights with their bias) and the dense layer.
fn lars_layer_starts() -> Vec<usize> {
    let t = net::tensors();
    t.chunks(2).map(|pair| pair[0].0).collect()
}

/// The tuning schedule: the last `generations` σ's of the authors' Rosenbrock schedule
/// (3, 3, 3, 2.5, 2, 1.5, 1, 0.75, 0.5, 0.3), each generation `population` candidates of `steps`
/// steps. The start values are already tuned (the authors' MNIST values), so the fine end of
/// their σ sequence is the part that applies.
fn tune_schedule(generations: usize, steps: u64, population: usize) -> Vec<Generation> {
    let base = rosenbrock_schedule();
    base[base.len() - generations.min(base.len())..]
        .iter()
        .map(|g| Generation {
            sigma: g.sigma,
            steps,
            population,
        })
        .collect()
}

/// A hyperparameter value as the report shows it.
fn fmt_hp(x: f64) -> String {
    format!("{x:.4e}")
}

/// The report's tuning section.
fn tuning_markdown(args: &MnistArgs, settings: &[Setting]) -> String {
    let schedule = tune_schedule(args.tune_generations, args.tune_steps, args.tune_population);
    let sigmas: Vec<String> = schedule.iter().map(|g| g.sigma.to_string()).collect();
    let tunings: Vec<_> = settings.iter().filter_map(|s| s.tuning.as_ref()).collect();
    let total: f64 = tunings.iter().map(|t| t.seconds).sum();
    let mut md = format!(
        "\n## Tuning\n\nThe harness's evolution strategy (`lodo_bench::tune`, the authors' \
         `hyperparameter_tuning_parent2.py`) at reduced scale: {} generation(s) × {} candidates, \
         each candidate {} steps at batch {} from its own seeded initial network and batches; \
         score = mean training loss over the last 10% of its steps (∞ if diverged); σ = [{}] in \
         normalised coordinates (log for learning rates, log(1−β) for β), the last generations \
         of the authors' schedule; the next mean is the mean of the best half. Start: the values \
         given (by default the authors' MNIST values for LODO and their defaults for the \
         baselines). The ablations and sweeps use LODO's tuned values. Optimizers were tuned in \
         parallel; the seconds are each one's wall time. All candidates: `tuning/`; the values: \
         `tuned.json`.\n\n\
         | optimizer | hyperparameter | start | tuned | best score, last generation | seconds |\n\
         |---|---|---|---|---|---|\n",
        schedule.len(),
        args.tune_population,
        args.tune_steps,
        args.tune_batch,
        sigmas.join(", "),
    );
    for t in tunings {
        for (p, best) in t.fields.iter().zip(&t.outcome.best) {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.0} |\n",
                t.start.kind(),
                p.name,
                fmt_hp(p.default),
                fmt_hp(*best),
                fmt_num(t.best_last()),
                t.seconds
            ));
        }
    }
    md.push_str(&format!(
        "\nTuning took {total:.0} s of optimizer time in all.\n"
    ));
    md
}

/// Mean loss over the bins finished within `[0.9·W, W]` seconds (the last bin before `W` if
/// none; `+∞` for a run that diverged before `W`).
fn final_window_time(g: &Group, r: usize, w: f64) -> f64 {
    let rec = &g.runs[r];
    let points = || rec.times.iter().zip(&rec.curve);
    let in_window: Vec<f64> = points()
        .filter(|(t, _)| **t >= 0.9 * w && **t <= w)
        .map(|(_, p)| p.1)
        .collect();
    if !in_window.is_empty() {
        return in_window.iter().sum::<f64>() / in_window.len() as f64;
    }
    if rec.diverged && rec.times.last().is_none_or(|t| *t <= w) {
        return f64::INFINITY;
    }
    points()
        .rev()
        .find(|(t, _)| **t <= w)
        .map_or(f64::NAN, |(_, p)| p.1)
}

/// `mean ± std` over the runs not flagged diverged whose value is finite (as the synthetic
/// tasks' tables), or `diverged`.
fn stat(values: &[f64], diverged: &[bool]) -> String {
    let s = Summary::from_runs("", values, diverged, &vec![0.0; values.len()]);
    if diverged.iter().all(|d| *d) {
        "diverged".into()
    } else if s.mean.is_nan() {
        // Runs that did not diverge but have no value (no curve point within the wall-clock
        // budget).
        "—".into()
    } else {
        format!("{} ± {}", fmt_num(s.mean), fmt_sig(s.std, 2))
    }
}

/// Claim 4 (LODO trains the CNN at speeds comparable to standard optimizers), from the table:
/// LODO's training loss at the common wall-clock budget against the other optimizers'.
fn speed_claim(groups: &[&Group], by_time: &[Vec<f64>], wall: f64, clock: Clock) -> Option<String> {
    let mean_of = |i: usize| {
        let g = groups[i];
        let flags: Vec<bool> = g.runs.iter().map(|r| r.diverged).collect();
        Summary::from_runs(&g.label, &by_time[i], &flags, &vec![0.0; flags.len()])
    };
    let lodo = groups
        .iter()
        .position(|g| g.optimizer.kind() == OptimizerKind::Lodo)?;
    let l = mean_of(lodo);
    let others: Vec<Summary> = (0..groups.len())
        .filter(|&i| i != lodo && !groups[i].optimizer.kind().is_lodo())
        .map(mean_of)
        .filter(|s| s.mean.is_finite())
        .collect();
    if others.is_empty() {
        return None;
    }
    let lead = "Claim 4 of the paper (LODO trains this CNN at speeds comparable to standard \
                optimizers)";
    if !l.mean.is_finite() {
        let all_diverged = groups[lodo].runs.iter().all(|r| r.diverged);
        return Some(format!(
            "{lead} does not hold here: {}.",
            if all_diverged {
                "every LODO run diverged".to_string()
            } else {
                format!(
                    "within {} s ({}, the time budget) LODO finished no curve point, while \
                     the standard optimizers reached {} ({}) to {} ({})",
                    fmt_sig(wall, 3),
                    clock.describe(),
                    fmt_num(others.iter().map(|s| s.mean).fold(f64::INFINITY, f64::min)),
                    others
                        .iter()
                        .min_by(|a, b| a.mean.total_cmp(&b.mean))
                        .map_or("", |s| s.name.as_str()),
                    fmt_num(
                        others
                            .iter()
                            .map(|s| s.mean)
                            .fold(f64::NEG_INFINITY, f64::max)
                    ),
                    others
                        .iter()
                        .max_by(|a, b| a.mean.total_cmp(&b.mean))
                        .map_or("", |s| s.name.as_str()),
                )
            }
        ));
    }
    let below = others.iter().filter(|s| s.mean < l.mean).count();
    let (best, worst) = others.iter().fold((&others[0], &others[0]), |(b, w), s| {
        (
            if s.mean < b.mean { s } else { b },
            if s.mean > w.mean { s } else { w },
        )
    });
    let verdict = if below == 0 {
        "holds here (LODO is ahead of every standard optimizer)"
    } else if l.mean <= worst.mean {
        "holds here (comparable: LODO is within the standard optimizers' range, not ahead)"
    } else {
        "does not hold here (LODO is behind every standard optimizer)"
    };
    Some(format!(
        "{lead} {verdict}: after {} s ({}) of training LODO's loss is {} against {} ({}) to {} \
         ({}); {below} of {} standard optimizers are lower ({} run(s) per optimizer).",
        fmt_sig(wall, 3),
        clock.describe(),
        fmt_num(l.mean),
        fmt_num(best.mean),
        best.name,
        fmt_num(worst.mean),
        worst.name,
        others.len(),
        groups[lodo].runs.len()
    ))
}

/// Runs the MNIST experiment (tuning first with `--tune`).
///
/// # Errors
/// Bad options, unreadable or malformed data, unwritable output folder, an interruption.
pub fn run(args: &MnistArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    anyhow::ensure!(args.steps > 0, "--steps must be positive");
    anyhow::ensure!(args.batch > 0, "--batch must be positive");
    anyhow::ensure!(args.runs > 0, "--runs must be positive");
    if let Some(w) = args.seconds {
        anyhow::ensure!(
            w.is_finite() && w > 0.0,
            "--seconds must be a positive number of seconds, got {w}"
        );
    }
    anyhow::ensure!(
        args.checkpoint_dir.is_none() || args.checkpoint_every.is_some(),
        "--checkpoint-dir needs --checkpoint-every K"
    );
    anyhow::ensure!(
        args.checkpoint_every != Some(0),
        "--checkpoint-every must be positive"
    );
    if args.reuse_tuned {
        let path = args.out.join("tuned.json");
        anyhow::ensure!(
            path.is_file(),
            "--reuse-tuned: {} does not exist (run --tune with the same --out first)",
            path.display()
        );
    }
    let checkpoints = args.checkpoints();
    anyhow::ensure!(
        checkpoints.is_none() || !args.tune,
        "checkpoints cover the runs, not the tuning: run --tune first, then the runs with the \
         tuned values (--alpha0, --meta-lr, --adam-lr, ...) and --checkpoint-every"
    );
    args.clock.check()?;
    if args.tune {
        anyhow::ensure!(args.tune_steps > 0, "--tune-steps must be positive");
        anyhow::ensure!(args.tune_batch > 0, "--tune-batch must be positive");
        anyhow::ensure!(
            args.tune_population >= 2,
            "--tune-population must be at least 2"
        );
        anyhow::ensure!(
            (1..=10).contains(&args.tune_generations),
            "--tune-generations must be 1 to 10"
        );
    }
    let mut kinds = args.optimizers.clone();
    let rows = lodo_rows(args);
    let families = layout_rows(&args.permutations, &args.state);
    if (!rows.is_empty() || !families.is_empty()) && !kinds.contains(&OptimizerKind::Lodo) {
        kinds.push(OptimizerKind::Lodo);
    }
    let optimizers: Vec<Optimizer> = kinds.iter().map(|&k| start(k, args)).collect();
    // Validates the names and values before any work.
    let ctx = TaskSpec::Rosenbrock.context(args.steps, 0);
    for o in &optimizers {
        anyhow::ensure!(
            !o.kind().is_dense(),
            "{} keeps a dense n × n matrix; not available on MNIST (n = {})",
            o.kind(),
            net::N_PARAMS
        );
        let small = crate::baselines::BuildContext {
            dim: 2,
            ..ctx.clone()
        };
        o.build::<f32>(&small)
            .with_context(|| format!("{}: bad hyperparameters", o.kind()))?;
    }
    if let Some(o) = optimizers.iter().find(|o| o.kind() == OptimizerKind::Lodo) {
        let Optimizer::Lodo(lodo) = o else {
            unreachable!("a LODO kind is Optimizer::Lodo")
        };
        for row in rows.iter().chain(&families) {
            row.optimizer(lodo)
                .build::<f32>(&crate::baselines::BuildContext {
                    dim: 2,
                    ..ctx.clone()
                })
                .with_context(|| format!("{}: bad hyperparameters", row.label))?;
        }
    }
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = args.threads {
        anyhow::ensure!(t > 0, "--threads must be positive");
        pool = pool.num_threads(t);
    }
    let pool = pool.build()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output folder {}", args.out.display()))?;
    write_atomic(&args.out.join(".write-test"), b"ok")
        .with_context(|| format!("output folder {} is not writable", args.out.display()))?;
    let _ = std::fs::remove_file(args.out.join(".write-test"));

    let mnist = Mnist::load(&args.data)?;
    // The authors hold out the last 64 training digits for validation; we do the same.
    anyhow::ensure!(
        mnist.train.n > HOLD_OUT,
        "{}: {} training digit(s); the last {HOLD_OUT} are held out (as the authors do), so at \
         least {} are needed",
        args.data.display(),
        mnist.train.n,
        HOLD_OUT + 1
    );
    let n_train = mnist.train.n - HOLD_OUT;
    let images = Arc::new(mnist.train.slice(0..n_train).pixels);
    let n_test = if args.test_images == 0 {
        mnist.test.n
    } else {
        args.test_images.min(mnist.test.n)
    };
    let test = mnist.test.slice(0..n_test).pixels;
    let threads = pool.current_num_threads();
    let spec = |batch| {
        TaskSpec::Mnist(MnistSpec {
            images: images.clone(),
            batch,
            layer_starts: lars_layer_starts(),
        })
    };
    let plan = Plan {
        spec: spec(args.batch),
        tune_spec: Some(spec(args.tune_batch)),
        optimizers,
        ablations: rows,
        families,
        budget: Budget {
            runs: args.runs,
            steps: args.steps,
            schedule: tune_schedule(args.tune_generations, args.tune_steps, args.tune_population),
            curve_points: usize::try_from(args.steps.min(100_000))?,
            hessian_points: 0,
            hessian_probes: 0,
        },
        tune: args.tune.then_some(TuneScope::Rates {
            beta: args.tune_beta,
        }),
        reuse: args.reuse_tuned,
        frozen: false,
        keep_final: true,
        seed: args.seed,
        out: args.out.clone(),
        checkpoint: checkpoints.clone(),
        clock: args.clock,
    };
    let res = pool.install(|| run_plan(&plan))?;
    let experiment_seconds = started.elapsed().as_secs_f64();
    // The main runs, then the ablations and sweeps (whose first row repeats LODO's); after
    // Ctrl-C, the rows with a finished run.
    let groups: Vec<&Group> = res
        .main
        .iter()
        .chain(res.ablations.iter().skip(1))
        .filter(|g| !g.runs.is_empty())
        .collect();
    if res.is_partial() {
        eprintln!(
            "[mnist] interrupted: the test loss of the {} finished run(s), then a partial report \
             (no sampled digits; Ctrl-C again to quit now)",
            groups.iter().map(|g| g.runs.len()).sum::<usize>()
        );
    }
    let mut test_loss: Vec<Vec<f64>> = Vec::new();
    for g in &groups {
        let mut losses = Vec::new();
        for (r, rec) in g.runs.iter().enumerate() {
            let params: Vec<f32> = rec.final_point.iter().map(|&v| v as f32).collect();
            let bytes: Vec<u8> = params.iter().flat_map(|v| v.to_le_bytes()).collect();
            let stem = file_stem(&format!("{}_run{r}", g.label));
            write_atomic(&args.out.join(format!("params_{stem}.f32le")), &bytes)?;
            losses.push(if rec.diverged || params.is_empty() {
                f64::INFINITY
            } else {
                pool.install(|| net::dataset_loss(&params, &test))
            });
        }
        test_loss.push(losses);
    }
    let test_seconds = started.elapsed().as_secs_f64() - experiment_seconds;
    let best = groups
        .iter()
        .zip(&test_loss)
        .flat_map(|(g, l)| l.iter().enumerate().map(move |(r, &v)| (v, *g, r)))
        .filter(|p| p.0.is_finite())
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let mut sampling_seconds = 0.0;
    let mut md = header(args, &res.tuned, n_train, n_test, threads);
    if let Some(p) = crate::experiment::markdown::partial_banner(&[("mnist", Some(&res))]) {
        let at = md.find("\n\n").map_or(0, |i| i + 2);
        md.insert_str(at, &p);
    }
    if let Some(c) = &checkpoints {
        md.push_str(&format!(
            "\nCheckpoints: `{}` ({}{}); the seconds of resumed runs continue from their saved \
             totals.\n",
            c.dir.display(),
            if c.every > 0 {
                format!(
                    "every {} steps, at the end of each run and on Ctrl-C",
                    c.every
                )
            } else {
                "at the end of each run and on Ctrl-C".into()
            },
            if c.resume {
                "; this invocation resumed from them"
            } else {
                ""
            }
        ));
    }
    if args.tune {
        md.push_str(&tuning_markdown(args, &res.tuned));
    }
    if groups.is_empty() {
        md.push_str("\nNo run finished before the interruption: nothing to tabulate.\n");
    } else {
        let (table, claim) = results_markdown(args, &groups, &test_loss);
        md.push_str(&table);
        if let (Some(verdict), false) = (claim, res.is_partial()) {
            let record = ClaimRecord {
                command: std::iter::once("lodo-bench".to_string())
                    .chain(std::env::args().skip(1))
                    .collect::<Vec<_>>()
                    .join(" "),
                finished: utc_now(),
                verdict,
            };
            write_atomic(
                &args.out.join(CLAIM_FILE),
                serde_json::to_string_pretty(&record)?.as_bytes(),
            )?;
        }
    }
    if let (Some((l, g, r)), true) = (best, args.samples > 0 && !res.is_partial()) {
        let t0 = Instant::now();
        let params: Vec<f32> = g.runs[r].final_point.iter().map(|&v| v as f32).collect();
        let digits = pool.install(|| net::sample(&params, args.samples, args.seed));
        save_digit_grid(&digits, &args.out.join("digits.png"), 4)?;
        sampling_seconds = t0.elapsed().as_secs_f64();
        md.push_str(&format!(
            "\nDigits sampled from the {} network (run {r}, test loss {}): `digits.png`.\n",
            g.label,
            fmt_num(l)
        ));
    }
    write_curves(args, &groups)?;
    md.push_str(&format!(
        "\nFiles: `curves.csv` (every step), `curves/`, `curves_step.{{svg,png}}`, \
         `curves_time.{{svg,png}}`, `g_movement.{{svg,png}}` (LODO rows), `params_*.f32le`.\n\nWall-clock ({threads} thread(s)): {:.0} s \
         in all; tuning and training {experiment_seconds:.0} s, test losses {test_seconds:.0} s, \
         sampling {sampling_seconds:.0} s.\n",
        started.elapsed().as_secs_f64(),
    ));
    write_atomic(&args.out.join("report.md"), md.as_bytes())?;
    if res.is_partial() {
        eprintln!(
            "[mnist] partial report: {}",
            args.out.join("report.md").display()
        );
        if let Some(c) = &checkpoints {
            eprintln!(
                "[mnist] every started run is checkpointed in {}; continue with the same options \
                 and --resume {0}",
                c.dir.display()
            );
        }
        return Err(Interrupted.into());
    }
    eprintln!("[mnist] report: {}", args.out.join("report.md").display());
    Ok(())
}

/// The report's header: the setup and the hyperparameters used.
fn header(
    args: &MnistArgs,
    settings: &[Setting],
    n_train: usize,
    n_test: usize,
    threads: usize,
) -> String {
    let used = |kind: OptimizerKind| {
        settings
            .iter()
            .find(|s| s.optimizer.kind() == kind)
            .map_or_else(
                || (start(kind, args), false),
                |s| {
                    (
                        s.optimizer,
                        s.tuning.is_some() || s.entry.source == "loaded",
                    )
                },
            )
    };
    let rate = |kind| match used(kind).0 {
        Optimizer::Adam { lr, .. }
        | Optimizer::Momentum { lr, .. }
        | Optimizer::RmsProp { lr, .. }
        | Optimizer::Yogi { lr, .. }
        | Optimizer::Lars { lr, .. } => fmt_hp(lr),
        _ => "-".into(),
    };
    let (lodo, lodo_tuned) = match used(OptimizerKind::Lodo) {
        (Optimizer::Lodo(p), t) => (p, t),
        _ => unreachable!("LODO's kind is Optimizer::Lodo"),
    };
    let baselines_tuned = settings.iter().any(|s| {
        (s.tuning.is_some() || s.entry.source == "loaded") && !s.optimizer.kind().is_lodo()
    });
    let tuned_word = if args.reuse_tuned {
        "tuned, from `tuned.json`"
    } else {
        "tuned"
    };
    let source = |tuned: bool, what: &str| -> String {
        if tuned {
            tuned_word.into()
        } else {
            what.into()
        }
    };
    // Every value loaded from tuned.json (LODO variants have their own α₀ and η there).
    let loaded: Vec<String> = settings
        .iter()
        .filter(|s| s.entry.source == "loaded")
        .map(|s| {
            let values: Vec<String> = s
                .entry
                .names
                .iter()
                .zip(&s.entry.values)
                .map(|(n, v)| format!("{n} = {}", fmt_hp(*v)))
                .collect();
            format!("{}: {}", s.entry.optimizer, values.join(", "))
        })
        .collect();
    let loaded = if loaded.is_empty() {
        String::new()
    } else {
        format!(
            "\nValues from `{}` (an earlier `--tune`): {}.\n",
            args.out.join("tuned.json").display(),
            loaded.join("; ")
        )
    };
    format!(
        "# MNIST autoregression (paper §5.2)\n\n\
         Model: the authors' 94,696-parameter residual CNN; batch {}; {} training digits from `{}` \
         (last 64 held out), test loss over {} test digits × 784 query positions; {} step(s) per \
         run, {} run(s) per optimizer, seed {}, {} thread(s), f32.\n\n\
         LODO: α₀ = {}, η = {} ({}), β = {} ({}), N = 16, k = 4 unless named. \
         Baselines ({}; other hyperparameters at the authors' defaults): Adam η = {}; Momentum \
         η = {}, μ = 0; RMSprop η = {}, ρ = 0.9; Yogi η = {} (β₁ 0.9, β₂ 0.999, ε 1e−3); LARS \
         η = {}, μ = 0.9, w = 5e−4, per layer.\n{loaded}",
        args.batch,
        n_train,
        args.data.display(),
        n_test,
        args.steps,
        args.runs,
        args.seed,
        threads,
        fmt_hp(lodo.alpha0),
        fmt_hp(lodo.meta_lr),
        source(lodo_tuned, "the authors' MNIST tuning"),
        fmt_hp(lodo.beta),
        source(lodo_tuned && args.tune_beta, "the authors' MNIST tuning"),
        source(baselines_tuned, "learning rates: the authors' defaults"),
        rate(OptimizerKind::Adam),
        rate(OptimizerKind::Momentum),
        rate(OptimizerKind::RmsProp),
        rate(OptimizerKind::Yogi),
        rate(OptimizerKind::Lars),
    )
}

/// The results table.
///
/// Returns the Markdown and, with LODO and a standard optimizer among the rows, claim 4's verdict
/// with the `G` movement (for [`ClaimRecord`]).
fn results_markdown(
    args: &MnistArgs,
    groups: &[&Group],
    test_loss: &[Vec<f64>],
) -> (String, Option<String>) {
    // Common wall-clock budget.
    let wall = args.seconds.unwrap_or_else(|| {
        groups
            .iter()
            .flat_map(|g| &g.runs)
            .filter(|r| !r.diverged)
            .map(|r| r.seconds)
            .fold(f64::INFINITY, f64::min)
    });
    let mut md = format!(
        "\n| optimizer | train loss, last 10% of {} steps | train loss, last 10% of {} s ({}) | test loss | steps/s | diverged |\n|---|---|---|---|---|---|\n",
        args.steps,
        fmt_sig(wall, 3),
        args.clock.describe()
    );
    let mut by_times = Vec::new();
    for (g, test) in groups.iter().zip(test_loss) {
        let s = g.summary();
        let flags: Vec<bool> = g.runs.iter().map(|r| r.diverged).collect();
        let by_time: Vec<f64> = (0..g.runs.len())
            .map(|r| final_window_time(g, r, wall))
            .collect();
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.3} | {}/{} |\n",
            g.label,
            stat(
                &g.runs.iter().map(|r| r.final_loss).collect::<Vec<_>>(),
                &flags
            ),
            stat(&by_time, &flags),
            stat(test, &flags),
            s.steps_per_sec,
            s.diverged,
            s.runs
        ));
        by_times.push(by_time);
    }
    md.push_str(&format!(
        "\nTest loss: mean cross-entropy (nats) over every query position of the test digits \
         used. `log 256` = 5.545 is the loss of a uniform guess. Mean ± std over runs \
         (population std, as the synthetic tasks' tables); — in the time-budget column: no curve \
         point within that budget (a step took longer). Diverged: {}.\n",
        crate::experiment::DIVERGED
    ));
    match args.clock {
        Clock::Wall => {}
        Clock::Cpu => md.push_str(
            "\nSeconds are the process's CPU time (all threads; the runs ran one at a time), \
             not wall-clock time: other processes on the machine do not count. steps/s are per \
             CPU second.\n",
        ),
        Clock::Thread => md.push_str(
            "\nSeconds are the CPU time of each run's own thread (each run ran alone on one \
             thread, as many runs at once as threads), not wall-clock time: other runs and other \
             processes on the machine do not count. steps/s are per CPU second.\n",
        ),
    }
    let moved: Vec<String> = groups
        .iter()
        .filter_map(|g| {
            let last: Vec<f64> = g
                .runs
                .iter()
                .filter_map(|r| r.g_movement.last().copied())
                .collect();
            (!last.is_empty()).then(|| {
                let (lo, hi) = last
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                        (a.min(v), b.max(v))
                    });
                format!("{} {}–{}", g.label, fmt_sig(lo, 3), fmt_sig(hi, 3))
            })
        })
        .collect();
    let moved = (!moved.is_empty()).then(|| {
        format!(
            "How far `G` moved by the last step, `‖G − α₀I‖_F / ‖α₀I‖_F` (4 random probes, \
             lowest–highest over runs): {}.",
            moved.join("; ")
        )
    });
    if let Some(m) = &moved {
        md.push_str(&format!(
            "\n{m} The whole curve: `g_movement.{{svg,png}}` and `curves.csv`.\n"
        ));
    }
    let claim = speed_claim(groups, &by_times, wall, args.clock);
    if let Some(c) = &claim {
        md.push_str(&format!("\n{c}\n"));
    }
    md.push_str(&layout_tests(groups, test_loss));
    let verdict = claim.map(|c| match &moved {
        Some(m) => format!("{c} {m}"),
        None => c,
    });
    (md, verdict)
}

/// The file `mnist` writes beside `report.md` when every run finished: claim 4's verdict, for
/// `reproduce`'s claims section to quote from a shipped copy ([`shipped_claim`]).
pub const CLAIM_FILE: &str = "claim4.json";

/// Where `reproduce` looks for the shipped result of the long MNIST experiment (MNIST.md, "The
/// long experiment"): `lodo-bench/results/mnist-long/claim4.json` in the source tree.
pub const SHIPPED_CLAIM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/results/mnist-long/claim4.json"
);

/// Claim 4 as one `mnist` invocation measured it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimRecord {
    /// The command line that produced it.
    pub command: String,
    /// When it finished, `YYYY-MM-DD HH:MM UTC`.
    pub finished: String,
    /// The report's claim-4 sentence and the `G` movement.
    pub verdict: String,
}

/// The shipped claim-4 record ([`SHIPPED_CLAIM`]), if the source tree has one.
///
/// # Errors
/// A file that exists but is not a claim record.
pub fn shipped_claim() -> anyhow::Result<Option<ClaimRecord>> {
    read_claim(Path::new(SHIPPED_CLAIM))
}

/// The claim-4 record at `path` (`None` if there is no file).
///
/// # Errors
/// A file that exists but cannot be read or is not a claim record.
pub fn read_claim(path: &Path) -> anyhow::Result<Option<ClaimRecord>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(Some(serde_json::from_str(&text).with_context(|| {
        format!("{} is not a claim record", path.display())
    })?))
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(secs)
}

/// `YYYY-MM-DD HH:MM UTC` of Unix time `secs` (proleptic Gregorian calendar; the days-to-date
/// conversion of Hinnant's `civil_from_days`).
#[must_use]
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3_600, (secs % 3_600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// Welch's t-test of each of LODO's other layouts (`--permutations`, `--state`: a LODO row
/// other than `LODO` itself, not an ablation or sweep) against LODO, on the final-10% training
/// loss and on the test loss of the non-diverged runs (empty without such rows).
fn layout_tests(groups: &[&Group], test_loss: &[Vec<f64>]) -> String {
    use crate::experiment::layouts::{is_layout_row, kept, welch_line};
    let finals = |g: &Group| g.runs.iter().map(|r| r.final_loss).collect::<Vec<_>>();
    let Some(lodo) = groups
        .iter()
        .position(|g| g.label == OptimizerKind::Lodo.name())
    else {
        return String::new();
    };
    let base = groups[lodo];
    let (base_train, base_test) = (kept(base, &finals(base)), kept(base, &test_loss[lodo]));
    let lines: Vec<String> = groups
        .iter()
        .zip(test_loss)
        .filter(|(g, _)| is_layout_row(g))
        .map(|(g, t)| {
            format!(
                "- {} against LODO: training loss {}; test loss {}.\n",
                g.label,
                welch_line(&kept(g, &finals(g)), &base_train),
                welch_line(&kept(g, t), &base_test)
            )
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\nLODO's layouts (`--permutations`, `--state`) against LODO itself, at LODO's values: \
         difference of means, Welch's t-test (two-sided; non-diverged runs; run r of every row \
         sees the same batches and LODO seed).\n\n{}",
        lines.concat()
    )
}

/// Writes `curves.csv` (every curve point with its seconds and, for LODO's block network,
/// `g_movement` = `‖G − α₀I‖_F/‖α₀I‖_F` from 4 probes, [`crate::experiment::g_movement`]) and the learning-curve plots (mean
/// over runs, smoothed over 10 points).
fn write_curves(args: &MnistArgs, groups: &[&Group]) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .flat_map(|g| {
            g.runs.iter().enumerate().flat_map(move |(r, rec)| {
                rec.curve
                    .iter()
                    .zip(&rec.times)
                    .enumerate()
                    .map(move |(i, (p, t))| {
                        vec![
                            g.label.clone(),
                            r.to_string(),
                            p.0.to_string(),
                            format!("{t:.4}"),
                            format!("{:e}", p.1),
                            rec.g_movement
                                .get(i)
                                .map_or(String::new(), |v| format!("{v:e}")),
                        ]
                    })
            })
        })
        .collect();
    write_csv(
        &args.out.join("curves.csv"),
        &["optimizer", "run", "step", "seconds", "loss", "g_movement"],
        &rows,
    )?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (mut by_step, mut by_time, mut moved) = (Vec::new(), Vec::new(), Vec::new());
    for g in groups {
        let g_len = g.runs.iter().map(|r| r.g_movement.len()).min().unwrap_or(0);
        if g_len > 0 {
            let pts: Vec<(f64, f64)> = (0..g_len)
                .map(|i| {
                    let v: Vec<f64> = g.runs.iter().map(|r| r.g_movement[i]).collect();
                    (g.runs[0].curve[i].0 as f64, mean(&v))
                })
                .collect();
            moved.push(Series::new(&g.label, smooth(&pts, 10)));
        }
        let len = g.runs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
        let at = |f: &dyn Fn(&crate::experiment::RunRecord) -> f64| {
            mean(&g.runs.iter().map(f).collect::<Vec<_>>())
        };
        let pts: Vec<(f64, f64)> = (0..len)
            .map(|i| (g.runs[0].curve[i].0 as f64, at(&|r| r.curve[i].1)))
            .collect();
        by_step.push(Series::new(&g.label, smooth(&pts, 10)));
        let tpts: Vec<(f64, f64)> = (0..len)
            .map(|i| (at(&|r| r.times[i]), at(&|r| r.curve[i].1)))
            .collect();
        by_time.push(Series::new(&g.label, smooth(&tpts, 10)));
    }
    let chart = |x_label: &str, series: Vec<Series>| LineChart {
        show_growth: false,
        title: format!(
            "MNIST autoregression, batch {} (10-step moving average)",
            args.batch
        ),
        x_label: x_label.into(),
        y_label: "training loss (nats)".into(),
        log_y: true,
        series,
        hlines: vec![],
    };
    chart("step", by_step).draw(&args.out.join("curves_step"))?;
    if !moved.is_empty() {
        LineChart {
            show_growth: true,
            title: format!(
                "‖G − α₀I‖_F / ‖α₀I‖_F, batch {} (4 probes, run mean, 10-step average)",
                args.batch
            ),
            x_label: "step".into(),
            y_label: "relative distance from α₀I".into(),
            log_y: true,
            series: moved,
            hlines: vec![],
        }
        .draw(&args.out.join("g_movement"))?;
    }
    chart(&format!("seconds ({})", args.clock.describe()), by_time)
        .draw(&args.out.join("curves_time"))?;
    Ok(())
}

/// Writes `images` (`count·784` bytes) as a PNG grid, white digits on black, each pixel drawn
/// as `scale × scale`.
fn save_digit_grid(images: &[u8], path: &Path, scale: u32) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let count = images.len() / PIX;
    let cols = (count as f64).sqrt().ceil().max(1.0) as u32;
    let rows = (count as u32).div_ceil(cols).max(1);
    let gap = 2 * scale;
    let cell = SIDE as u32 * scale + gap;
    let (w, h) = (cols * cell + gap, rows * cell + gap);
    {
        let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
        root.fill(&RGBColor(90, 90, 90))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for d in 0..count {
            let (gx, gy) = (
                (d as u32 % cols) * cell + gap,
                (d as u32 / cols) * cell + gap,
            );
            for p in 0..PIX {
                let v = images[d * PIX + p];
                let (x0, y0) = (
                    gx + (p % SIDE) as u32 * scale,
                    gy + (p / SIDE) as u32 * scale,
                );
                root.draw(&Rectangle::new(
                    [
                        (x0 as i32, y0 as i32),
                        ((x0 + scale) as i32, (y0 + scale) as i32),
                    ],
                    RGBColor(v, v, v).filled(),
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// A moving average over `w` steps, for readable noisy curves.
fn smooth(points: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|i| {
            let lo = i.saturating_sub(w - 1);
            let s: f64 = points[lo..=i].iter().map(|p| p.1).sum();
            (points[i].0, s / (i - lo + 1) as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn utc_dates_of_known_instants() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 12:34 UTC (a leap day of a century leap year).
        assert_eq!(utc_date(951_827_640), "2000-02-29 12:34 UTC");
        // 2026-12-07 11:55 UTC.
        assert_eq!(utc_date(1_796_644_500), "2026-12-07 11:55 UTC");
        // 2100-03-01 00:00 UTC (2100 is not a leap year).
        assert_eq!(utc_date(4_107_542_400), "2100-03-01 00:00 UTC");
    }
}
