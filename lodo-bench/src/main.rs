//! `lodo-bench`: the LODO research harness command line.
//!
//! `lodo-bench reproduce` tunes every optimizer on the noisy quadratic bowl and on Rosenbrock
//! with the authors' evolution strategy, runs the seeded main runs, LODO's ablations, the
//! frozen-preconditioner test and the permutation-family table, and writes
//! `results/report.md`, CSVs and SVG/PNG figures. Each
//! experiment is also its own subcommand (`lodo-bench help`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use lodo_bench::baselines::{OptimizerKind, TuneScope};
use lodo_bench::experiment::claims::claims_section;
use lodo_bench::experiment::figures::draw_figures;
use lodo_bench::experiment::layouts::{self, FamilyList, StateList};
use lodo_bench::experiment::markdown::{
    definitions, partial_banner_with, task_report, task_report_standalone,
};
use lodo_bench::experiment::protocol::{Budget, LodoRow, Phase, Plan, TaskResults, run_plan};
use lodo_bench::experiment::{Interrupted, STOP, TaskSpec, is_interrupted};
use lodo_bench::report::write_atomic;
use lodo_bench::tasks::BowlOptions;
use lodo_bench::tune::{bowl_schedule, rosenbrock_schedule, scaled};

#[derive(Parser, Debug)]
#[command(
    name = "lodo-bench",
    version,
    about = "LODO research harness: the paper's synthetic experiments, baselines, tuning, tables and plots"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Everything: tuning + main runs + ablations (+ frozen test) on the bowl and Rosenbrock,
    /// then LODO's permutation families (random, shuffle, tiled:64) at LODO's hyperparameters
    /// on both and on a bowl with n = 1000.
    Reproduce(Common),
    /// The noisy quadratic bowl: tuning, main runs, ablations, Hessian error, frozen test.
    Bowl(TaskArgs),
    /// Rosenbrock: tuning, main runs, ablations, trajectories.
    Rosenbrock(TaskArgs),
    /// Only tune (writes <out>/<task>/tuned.json, which `--no-tune` runs reuse).
    Tune(TuneArgs),
    /// Only the frozen-preconditioner test on the bowl.
    Frozen(TaskArgs),
    /// The MNIST autoregression experiment (paper §5.2).
    Mnist(lodo_bench::mnist::cli::MnistArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// The paper's scale (8 runs, 100,000 bowl steps, the authors' full tuning schedules).
    #[arg(long)]
    full: bool,
    /// Runs per optimizer (default 8 with --full, else the quick scale's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    runs: Option<u64>,
    /// Steps (loss-gradient evaluations) per main run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    steps: Option<u64>,
    /// Base seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Worker threads (0: all cores). Results are identical for any value.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// A synthetic task.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum TaskName {
    /// The noisy quadratic bowl.
    Bowl,
    /// Rosenbrock.
    Rosenbrock,
}

impl TaskName {
    fn name(self) -> &'static str {
        match self {
            Self::Bowl => "bowl",
            Self::Rosenbrock => "rosenbrock",
        }
    }

    /// The optimizers of the paper's table on this task (LARS cannot leave x₀ = 0 on the bowl).
    fn optimizers(self) -> Vec<OptimizerKind> {
        OptimizerKind::ALL
            .into_iter()
            .filter(|k| !k.is_lodo() || *k == OptimizerKind::Lodo)
            .filter(|k| self == Self::Rosenbrock || *k != OptimizerKind::Lars)
            .collect()
    }
}

#[derive(Args, Debug, Clone)]
struct TaskArgs {
    #[command(flatten)]
    common: Common,
    /// Comma-separated optimizers (default: the task's list: the baselines and LODO).
    #[arg(long, value_delimiter = ',')]
    optimizers: Option<Vec<OptimizerKind>>,
    /// Skip tuning: use <out>/<task>/tuned.json if present, else the authors' defaults.
    #[arg(long)]
    no_tune: bool,
    /// Skip the LODO ablations.
    #[arg(long)]
    no_ablations: bool,
    /// Comma-separated permutation families of LODO's layers: random (the paper's; this is
    /// LODO itself, which always runs and is the one tuned), shuffle (the k-ary perfect
    /// shuffle), tiled or tiled:T (the shuffle, then random inside tiles of T outputs, T a
    /// multiple of the block size 4; `tiled` alone takes T = 64, a default, not a measured
    /// optimum). The structured families round the hidden width 2n up to a multiple of 16. Every family but random adds a
    /// row (LODO-Shuffle, LODO-Tiled64, ...) at LODO's hyperparameters, never re-tuned; needs
    /// LODO among --optimizers. Not used by `frozen`.
    #[arg(long, value_name = "LIST", default_value = "random")]
    permutations: FamilyList,
    /// Comma-separated state policies of LODO (how its optimizer state is stored between
    /// steps; the arithmetic stays in f64): full (the paper's; this is LODO itself), bf16
    /// (Adam's moments in bf16 with stochastic rounding, activations in bf16), q8 (moments in
    /// 8-bit block-wise codes, activations in bf16), q8-theta32 (q8, and θ itself held in f32).
    /// With --permutations, every family runs with every policy; each pair but (random, full)
    /// adds a row (LODO-q8, LODO-Shuffle-bf16, ...) at LODO's hyperparameters, never re-tuned;
    /// needs LODO among --optimizers.
    #[arg(long, value_name = "LIST", default_value = "full")]
    state: StateList,
    #[command(flatten)]
    bowl: BowlArgs,
    #[command(flatten)]
    tuning: TuningArgs,
}

#[derive(Args, Debug, Clone)]
struct TuneArgs {
    /// Task to tune on.
    #[arg(long)]
    task: TaskName,
    /// Comma-separated optimizers (default: the task's list: the baselines and LODO).
    #[arg(long, value_delimiter = ',')]
    optimizers: Option<Vec<OptimizerKind>>,
    /// The authors' full tuning schedules.
    #[arg(long)]
    full: bool,
    /// Base seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (writes <out>/<task>/tuned.json and tuning/).
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Worker threads (0: all cores). Results are identical for any value.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    bowl: BowlArgs,
    #[command(flatten)]
    tuning: TuningArgs,
}

/// The bowl's options; the defaults are [`BowlOptions::default`]'s.
#[derive(Args, Debug, Clone)]
struct BowlArgs {
    /// Bowl dimension n.
    #[arg(long, default_value_t = BowlOptions::default().dim as u64, value_parser = clap::value_parser!(u64).range(1..))]
    dim: u64,
    /// Smallest Hessian eigenvalue.
    #[arg(long, default_value_t = BowlOptions::default().eig_min)]
    eig_min: f64,
    /// Largest Hessian eigenvalue.
    #[arg(long, default_value_t = BowlOptions::default().eig_max)]
    eig_max: f64,
    /// Standard deviation of the centre's random-walk step.
    #[arg(long, default_value_t = BowlOptions::default().noise)]
    noise: f64,
}

impl Default for BowlArgs {
    fn default() -> Self {
        let o = BowlOptions::default();
        Self {
            dim: o.dim as u64,
            eig_min: o.eig_min,
            eig_max: o.eig_max,
            noise: o.noise,
        }
    }
}

#[derive(Args, Debug, Clone, Default)]
struct TuningArgs {
    /// Candidates per tuning generation (default 32 with --full).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    population: Option<u64>,
    /// Cap on the steps of a tuning run (default: the authors' schedule with --full).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tune_steps: Option<u64>,
}

/// The quick (default) scale: measured to finish `reproduce` in about 15 minutes on 2 cores.
mod quick {
    pub const BOWL_RUNS: usize = 8;
    pub const BOWL_STEPS: u64 = 40_000;
    pub const BOWL_TUNE_STEPS: u64 = 4_000;
    pub const BOWL_POPULATION: usize = 12;
    pub const ROSENBROCK_RUNS: usize = 8;
    pub const ROSENBROCK_STEPS: u64 = 200;
    pub const ROSENBROCK_POPULATION: usize = 32;
    pub const HESSIAN_POINTS: u64 = 40;
}

fn budget(task: TaskName, common: &Common, tuning: &TuningArgs) -> Budget {
    let bowl = task == TaskName::Bowl;
    let full = common.full;
    let runs = common.runs.map_or(
        if full {
            8
        } else if bowl {
            quick::BOWL_RUNS
        } else {
            quick::ROSENBROCK_RUNS
        },
        |r| r as usize,
    );
    let steps = common.steps.unwrap_or(match (bowl, full) {
        (true, true) => 100_000,
        (true, false) => quick::BOWL_STEPS,
        (false, _) => quick::ROSENBROCK_STEPS,
    });
    let base = if bowl {
        bowl_schedule()
    } else {
        rosenbrock_schedule()
    };
    let population = tuning.population.map_or(
        if full {
            32
        } else if bowl {
            quick::BOWL_POPULATION
        } else {
            quick::ROSENBROCK_POPULATION
        },
        |p| p as usize,
    );
    let cap = tuning.tune_steps.unwrap_or(if full || !bowl {
        u64::MAX
    } else {
        quick::BOWL_TUNE_STEPS
    });
    Budget {
        runs,
        steps,
        schedule: scaled(&base, cap, population),
        curve_points: 500,
        hessian_points: if bowl {
            if full { 1000 } else { quick::HESSIAN_POINTS }
        } else {
            0
        },
        hessian_probes: 100,
    }
}

fn bowl_spec(b: &BowlArgs) -> Result<TaskSpec> {
    let o = BowlOptions {
        dim: usize::try_from(b.dim)?,
        eig_min: b.eig_min,
        eig_max: b.eig_max,
        noise: b.noise,
    };
    o.validate().map_err(anyhow::Error::msg)?;
    Ok(TaskSpec::Bowl(o))
}

/// Creates `out` and checks that a file can be written there.
fn check_out(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let probe = out.join(".lodo-bench-write-test");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("the output folder {} is not writable", out.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}

fn plan(task: TaskName, args: &TaskArgs, frozen_only: bool) -> Result<Plan> {
    let spec = match task {
        TaskName::Bowl => bowl_spec(&args.bowl)?,
        TaskName::Rosenbrock => TaskSpec::Rosenbrock,
    };
    let layouts = layouts::layout_rows(&args.permutations, &args.state);
    anyhow::ensure!(
        !frozen_only || layouts.is_empty(),
        "--permutations and --state do not apply to the frozen test (it runs the paper's LODO)"
    );
    let optimizers = if frozen_only {
        vec![]
    } else {
        args.optimizers.clone().unwrap_or_else(|| task.optimizers())
    };
    Ok(Plan {
        spec,
        tune_spec: None,
        optimizers: optimizers
            .into_iter()
            .map(OptimizerKind::defaults)
            .collect(),
        ablations: if args.no_ablations || frozen_only {
            vec![]
        } else {
            OptimizerKind::ABLATIONS.map(LodoRow::ablation).to_vec()
        },
        families: layouts,
        budget: budget(task, &args.common, &args.tuning),
        tune: (!args.no_tune && !frozen_only).then_some(TuneScope::All),
        reuse: true,
        frozen: task == TaskName::Bowl,
        keep_final: false,
        seed: args.common.seed,
        out: args.common.out.join(task.name()),
        checkpoint: None,
        clock: lodo_bench::experiment::Clock::Wall,
    })
}

fn header(cmd: &str, threads: usize, seconds: f64) -> String {
    format!(
        "# LODO reproduction report\n\nCommand: `lodo-bench {cmd}`; {} worker threads; total wall time {:.0} s ({:.1} min). Generated by lodo-bench {}.\n\n{}",
        if threads == 0 {
            rayon::current_num_threads()
        } else {
            threads
        },
        seconds,
        seconds / 60.0,
        env!("CARGO_PKG_VERSION"),
        definitions(),
    )
}

/// Runs a task and writes its figures and report, also for the phases that finished when Ctrl-C
/// stopped it ([`TaskResults::is_partial`]).
fn run_task(task: TaskName, args: &TaskArgs, frozen_only: bool) -> Result<TaskResults> {
    let p = plan(task, args, frozen_only)?;
    let res = run_plan(&p)?;
    draw_figures(&res, &p.out)?;
    let md = task_report_standalone(&res);
    // A frozen-only run must not replace the task's full report.
    let name = if frozen_only {
        "frozen_report.md"
    } else {
        "report.md"
    };
    write_atomic(&p.out.join(name), md.as_bytes())?;
    Ok(res)
}

/// Prints the task's tables to stderr, each under its heading.
fn print_tables(res: &TaskResults) {
    let floor = res.spec.floor();
    let name = res.spec.name();
    let b = &res.budget;
    let tables = [
        (Phase::Main, "main runs", &res.main[..]),
        (Phase::Ablations, "LODO ablations", &res.ablations[..]),
        (Phase::Frozen, "frozen-preconditioner test", &res.frozen[..]),
    ];
    for (phase, what, groups) in tables {
        if groups.iter().all(|g| g.runs.is_empty()) {
            continue;
        }
        let s: Vec<_> = groups.iter().map(|g| g.summary()).collect();
        let stopped = res.missing(phase).map_or(String::new(), |m| {
            format!("; interrupted: {} of {} runs finished", m.finished, m.total)
        });
        eprintln!(
            "\n{name}: {what}, final-10% training loss ({} runs × {} steps{stopped})\n{}",
            b.runs,
            b.steps,
            lodo_bench::report::results_table(&s, floor)
        );
    }
}

fn task_command(task: TaskName, args: &TaskArgs, frozen_only: bool) -> Result<()> {
    check_out(&args.common.out)?;
    pool(args.common.threads)?.install(|| -> Result<()> {
        let res = run_task(task, args, frozen_only)?;
        print_tables(&res);
        let name = if frozen_only {
            "frozen_report.md"
        } else {
            "report.md"
        };
        let path = args.common.out.join(task.name()).join(name);
        if res.is_partial() {
            eprintln!("partial report: {}", path.display());
            return Err(Interrupted.into());
        }
        eprintln!("report: {}", path.display());
        Ok(())
    })
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: stopping; finished runs are kept and a partial report is written; \
             with mnist --checkpoint-every, runs in progress save a checkpoint first (Ctrl-C \
             again to quit now: a checkpoint being written is dropped, the previous one stays)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    let start = Instant::now();
    match cli.command {
        Command::Mnist(args) => lodo_bench::mnist::cli::run(&args),
        Command::Reproduce(common) => {
            check_out(&common.out)?;
            let threads = common.threads;
            pool(threads)?.install(|| -> Result<()> {
                let a = TaskArgs {
                    common: common.clone(),
                    optimizers: None,
                    no_tune: false,
                    no_ablations: false,
                    permutations: FamilyList::default(),
                    state: StateList::default(),
                    bowl: BowlArgs::default(),
                    tuning: TuningArgs::default(),
                };
                let rosen = run_task(TaskName::Rosenbrock, &a, false)?;
                print_tables(&rosen);
                let bowl = if rosen.is_partial() {
                    None
                } else {
                    let b = run_task(TaskName::Bowl, &a, false)?;
                    print_tables(&b);
                    Some(b)
                };
                // The layout table, once both tasks finished (it reuses their tuned LODO and
                // its runs); Ctrl-C during it leaves it out of a partial report.
                let study = match &bowl {
                    Some(b) if !b.is_partial() => {
                        let cases = layouts::reproduce_cases(&[b, &rosen])?;
                        match layouts::run_study(&cases, common.seed, &common.out.join("layouts")) {
                            Ok(study) => {
                                eprintln!("{}", study.verdict());
                                Some(study)
                            }
                            Err(e) if lodo_bench::experiment::is_interrupted(&e) => None,
                            Err(e) => return Err(e),
                        }
                    }
                    _ => None,
                };
                let cmd = format!(
                    "reproduce{} --seed {}",
                    if common.full { " --full" } else { "" },
                    common.seed
                );
                let mut md = header(&cmd, threads, start.elapsed().as_secs_f64());
                let no_study: &[&str] = if study.is_none() {
                    &["layout table"]
                } else {
                    &[]
                };
                let partial = partial_banner_with(
                    &[("bowl", bowl.as_ref()), ("rosenbrock", Some(&rosen))],
                    no_study,
                );
                let title_end = md.find("\n\n").map_or(0, |i| i + 2);
                if let Some(p) = &partial {
                    md.insert_str(title_end, p);
                }
                let tasks: Vec<&TaskResults> = bowl.iter().chain([&rosen]).collect();
                md.push_str(&claims_section(&tasks));
                if let Some(b) = &bowl {
                    md.push_str(&task_report(b, "bowl"));
                }
                md.push_str(&task_report(&rosen, "rosenbrock"));
                if let Some(study) = &study {
                    md.push_str(&study.markdown());
                }
                let path = common.out.join("report.md");
                write_atomic(&path, md.as_bytes())?;
                if partial.is_some() {
                    eprintln!("partial report: {}", path.display());
                    return Err(Interrupted.into());
                }
                eprintln!(
                    "report: {} ({:.1} min)",
                    path.display(),
                    start.elapsed().as_secs_f64() / 60.0
                );
                Ok(())
            })
        }
        Command::Bowl(args) => task_command(TaskName::Bowl, &args, false),
        Command::Rosenbrock(args) => task_command(TaskName::Rosenbrock, &args, false),
        Command::Frozen(args) => task_command(TaskName::Bowl, &args, true),
        Command::Tune(t) => {
            check_out(&t.out)?;
            let args = TaskArgs {
                common: Common {
                    full: t.full,
                    runs: None,
                    steps: None,
                    seed: t.seed,
                    out: t.out.clone(),
                    threads: t.threads,
                },
                optimizers: t.optimizers.clone(),
                no_tune: false,
                no_ablations: true,
                permutations: FamilyList::default(),
                state: StateList::default(),
                bowl: t.bowl.clone(),
                tuning: t.tuning.clone(),
            };
            let p = plan(t.task, &args, false)?;
            pool(t.threads)?.install(|| -> Result<()> {
                lodo_bench::experiment::protocol::check_plan(&p)?;
                std::fs::create_dir_all(&p.out)?;
                let tuned = lodo_bench::experiment::protocol::hyperparameters(&p)?;
                for s in tuned {
                    eprintln!("{:?}", s.optimizer);
                }
                eprintln!("written: {}", p.out.join("tuned.json").display());
                Ok(())
            })
        }
    }
}

fn main() {
    if let Err(e) = real_main() {
        if is_interrupted(&e) {
            eprintln!("interrupted: the files of every finished run are complete (exit code 130)");
            std::process::exit(130);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
