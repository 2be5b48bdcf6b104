//! `lodo-bench mnist`: trains the autoregressive CNN with LODO and the baselines, and writes
//! `report.md`, `curves.csv`, learning-curve plots and a PNG grid of sampled digits.
//!
//! Protocol (paper §5.2, the authors' `experiment2.py` at reduced scale): every optimizer starts
//! from the same initial network (per seed) and sees the same batch sequence; a run that meets a
//! non-finite gradient or step counts as diverged. Per optimizer the report gives the mean
//! training loss over the final 10% of the step budget, the mean training loss over the final
//! 10% of a common wall-clock budget (`--seconds`, default: the shortest run's training time),
//! the test loss (mean over every query position of the first `--test-images` test digits, as
//! the authors' `evaluate_loss_on_dataset`), steps/s and diverged runs.
//!
//! With `--tune`, the harness's evolution strategy ([`crate::tune::tune`]) first tunes LODO's α₀
//! and η (and β with `--tune-beta`) and each baseline's learning rate at a reduced scale
//! (`--tune-generations` × `--tune-population` candidates of `--tune-steps` steps at batch
//! `--tune-batch`; σ from the end of the authors' schedule), starting from the given values; the
//! experiment then runs with the tuned values, and the report lists them. See `lodo-bench/MNIST.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use lodo_core::{
    AdamConfig, BlockConfig, DiagonalConfig, DiagonalLodo, GlobalConfig, GlobalLodo, Lodo,
    LodoConfig, MetaConfig, PreconditionerConfig, ResidualConfig, ResidualLodo, SgdConfig, SgdLodo,
};

use super::idx::Mnist;
use super::net::{self, PIX, SIDE};
use super::task::MnistTask;
use crate::baselines::{HyperParam, Lars, Momentum, RmsProp, Scale, Yogi};
use crate::experiment::derive_seed;
use crate::plot::{LineChart, Series};
use crate::report::{file_stem, fmt_num, write_atomic, write_csv};
use crate::task::{FirstOrder, Minimizer, Task};
use crate::tune::{Generation, TuneOutcome, rosenbrock_schedule, tune};

/// Options of `lodo-bench mnist`.
#[derive(clap::Args, Debug, Clone)]
pub struct MnistArgs {
    /// Folder with the MNIST IDX files (gzip or raw; the full 60k/10k set drops in).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist-10k"))]
    pub data: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "results/mnist")]
    pub out: PathBuf,
    /// Step budget per run (one batch of 256 per step).
    #[arg(long, default_value_t = 100)]
    pub steps: u64,
    /// Wall-clock budget in seconds for the second loss column (default: the shortest run).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Independent seeded runs per optimizer.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Base seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Optimizers (comma-separated): lodo, adam, momentum, rmsprop, yogi, lars, and the
    /// ablations lodo-diagonal, lodo-global, lodo-residual, lodo-sgd, lodo-no-momentum.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lodo,adam,momentum,rmsprop,yogi,lars"
    )]
    pub optimizers: Vec<String>,
    /// Also run the five LODO ablations.
    #[arg(long)]
    pub ablations: bool,
    /// LODO sweeps to add (comma-separated): beta, depth, block.
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<String>,
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
    /// LODO's). Writes `tuned.json` and `tuning.csv`.
    #[arg(long)]
    pub tune: bool,
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
}

/// One optimizer configuration of the experiment.
#[derive(Clone, Debug)]
struct Spec {
    label: String,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Lodo {
        variant: LodoVariant,
        beta: f64,
        layers: usize,
        block: usize,
    },
    Adam,
    Momentum,
    RmsProp,
    Yogi,
    Lars,
}

#[derive(Clone, Copy, Debug)]
enum LodoVariant {
    Block,
    Diagonal,
    Global,
    Residual,
    Sgd,
}

fn lodo_spec(label: &str, variant: LodoVariant, beta: f64, layers: usize, block: usize) -> Spec {
    Spec {
        label: label.to_string(),
        kind: Kind::Lodo {
            variant,
            beta,
            layers,
            block,
        },
    }
}

fn specs(args: &MnistArgs, beta: f64) -> anyhow::Result<Vec<Spec>> {
    let b = beta;
    let mut names = args.optimizers.clone();
    if args.ablations {
        for a in [
            "lodo-diagonal",
            "lodo-global",
            "lodo-residual",
            "lodo-sgd",
            "lodo-no-momentum",
        ] {
            names.push(a.to_string());
        }
    }
    let mut out = Vec::new();
    for n in names {
        let s = match n.trim().to_ascii_lowercase().as_str() {
            "lodo" => lodo_spec("LODO", LodoVariant::Block, b, 16, 4),
            "lodo-diagonal" => lodo_spec("LODO-Diagonal", LodoVariant::Diagonal, b, 16, 4),
            "lodo-global" => lodo_spec("LODO-Global", LodoVariant::Global, b, 16, 4),
            "lodo-residual" => lodo_spec("LODO-Residuals", LodoVariant::Residual, b, 64, 4),
            "lodo-sgd" => lodo_spec("LODO-SGD", LodoVariant::Sgd, b, 16, 4),
            "lodo-no-momentum" => lodo_spec("LODO-no-momentum", LodoVariant::Block, 0.0, 16, 4),
            "adam" => Spec {
                label: "Adam".into(),
                kind: Kind::Adam,
            },
            "momentum" => Spec {
                label: "Momentum".into(),
                kind: Kind::Momentum,
            },
            "rmsprop" => Spec {
                label: "RMSprop".into(),
                kind: Kind::RmsProp,
            },
            "yogi" => Spec {
                label: "Yogi".into(),
                kind: Kind::Yogi,
            },
            "lars" => Spec {
                label: "LARS".into(),
                kind: Kind::Lars,
            },
            other => anyhow::bail!(
                "unknown optimizer {other:?} (expected lodo, adam, momentum, rmsprop, yogi, lars, \
                 lodo-diagonal, lodo-global, lodo-residual, lodo-sgd, lodo-no-momentum)"
            ),
        };
        out.push(s);
    }
    for sw in &args.sweep {
        match sw.trim().to_ascii_lowercase().as_str() {
            "beta" => {
                for beta in [0.0, 0.5, 0.9, 0.97, 0.99] {
                    out.push(lodo_spec(
                        &format!("LODO β={beta}"),
                        LodoVariant::Block,
                        beta,
                        16,
                        4,
                    ));
                }
            }
            "depth" => {
                for layers in [4, 8, 32] {
                    out.push(lodo_spec(
                        &format!("LODO N={layers}"),
                        LodoVariant::Block,
                        b,
                        layers,
                        4,
                    ));
                }
            }
            "block" => {
                for k in [3usize, 5, 6, 8, 10] {
                    let layers = (64 + k / 2) / k;
                    out.push(lodo_spec(
                        &format!("LODO k={k} N={layers}"),
                        LodoVariant::Block,
                        b,
                        layers,
                        k,
                    ));
                }
            }
            other => anyhow::bail!("unknown sweep {other:?} (expected beta, depth, block)"),
        }
    }
    anyhow::ensure!(!out.is_empty(), "no optimizer selected");
    Ok(out)
}

/// The LARS layers of the authors' `hyperparameter_setup.py`: the stem, each block's three
/// convolutions (weights with their bias) and the dense layer.
fn lars_layer_starts() -> Vec<usize> {
    let t = net::tensors();
    t.chunks(2).map(|pair| pair[0].0).collect()
}

/// The hyperparameters the optimizers are built with: the command line's (authors' values by
/// default), or the tuned ones.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Hyper {
    alpha0: f64,
    meta_lr: f64,
    beta: f64,
    adam_lr: f64,
    momentum_lr: f64,
    rmsprop_lr: f64,
    yogi_lr: f64,
    lars_lr: f64,
}

impl Hyper {
    fn from_args(a: &MnistArgs) -> Self {
        Self {
            alpha0: a.alpha0,
            meta_lr: a.meta_lr,
            beta: a.beta,
            adam_lr: a.adam_lr,
            momentum_lr: a.momentum_lr,
            rmsprop_lr: a.rmsprop_lr,
            yogi_lr: a.yogi_lr,
            lars_lr: a.lars_lr,
        }
    }
}

/// LODO's configuration from its parts and the tuned `α₀`, `η`, `β`.
fn tuned_lodo<PC: PreconditionerConfig<f32>, MC: MetaConfig<f32>>(
    preconditioner: PC,
    meta: MC,
    alpha0: f32,
    meta_lr: f32,
    beta: f32,
) -> anyhow::Result<LodoConfig<f32, PC, MC>> {
    Ok(LodoConfig::new(preconditioner, meta)
        .with_alpha0(alpha0)?
        .with_meta_lr(meta_lr)?
        .with_beta(beta)?)
}

/// `spec` built with `h` (LODO's β comes from the spec, for the sweeps); `total_steps` is
/// LARS's schedule length.
fn build(
    spec: &Spec,
    h: &Hyper,
    total_steps: u64,
    seed: u64,
) -> anyhow::Result<Box<dyn Minimizer<f32>>> {
    let n = net::N_PARAMS;
    Ok(match spec.kind {
        Kind::Lodo {
            variant,
            beta,
            layers,
            block,
        } => {
            // Every part at its default but α₀, η, β and (for the block network) N and k.
            let (alpha0, meta_lr, beta) = (h.alpha0 as f32, h.meta_lr as f32, beta as f32);
            let network = BlockConfig::default()
                .with_layers(layers)?
                .with_block_size(block)?;
            let adam = AdamConfig::default();
            match variant {
                LodoVariant::Block => Box::new(FirstOrder::new(Lodo::<f32>::new(
                    n,
                    tuned_lodo(network, adam, alpha0, meta_lr, beta)?,
                    seed,
                )?)),
                LodoVariant::Sgd => Box::new(FirstOrder::new(SgdLodo::<f32>::new(
                    n,
                    tuned_lodo(network, SgdConfig::default(), alpha0, meta_lr, beta)?,
                    seed,
                )?)),
                LodoVariant::Diagonal => Box::new(FirstOrder::new(DiagonalLodo::<f32>::new(
                    n,
                    tuned_lodo(DiagonalConfig::default(), adam, alpha0, meta_lr, beta)?,
                    seed,
                )?)),
                LodoVariant::Global => Box::new(FirstOrder::new(GlobalLodo::<f32>::new(
                    n,
                    tuned_lodo(GlobalConfig::default(), adam, alpha0, meta_lr, beta)?,
                    seed,
                )?)),
                LodoVariant::Residual => Box::new(FirstOrder::new(ResidualLodo::<f32>::new(
                    n,
                    tuned_lodo(ResidualConfig::default(), adam, alpha0, meta_lr, beta)?,
                    seed,
                )?)),
            }
        }
        // The other hyperparameters at the authors' defaults (`training/hyperparameter_setup.py`).
        Kind::Adam => Box::new(FirstOrder::new(lodo_core::Adam::<f32>::new(
            n,
            h.adam_lr as f32,
        )?)),
        Kind::Momentum => Box::new(FirstOrder::new(Momentum::<f32>::new(
            n,
            h.momentum_lr as f32,
            0.0,
        )?)),
        Kind::RmsProp => Box::new(FirstOrder::new(RmsProp::<f32>::new(
            n,
            h.rmsprop_lr as f32,
            0.9,
            0.0,
        )?)),
        Kind::Yogi => Box::new(FirstOrder::new(Yogi::<f32>::new(
            n,
            h.yogi_lr as f32,
            0.9,
            0.999,
        )?)),
        Kind::Lars => Box::new(FirstOrder::new(Lars::<f32>::new(
            n,
            h.lars_lr as f32,
            0.9,
            5e-4,
            total_steps,
            &lars_layer_starts(),
        )?)),
    })
}

/// A finished training run: `(step, seconds since start, training loss)` per step.
struct Trained {
    curve: Vec<(u64, f64, f64)>,
    diverged: bool,
    train_seconds: f64,
    params: Vec<f32>,
}

/// Trains `spec` (built with `h`) for `steps` steps of batch `batch` from the seeded initial
/// network; stops at the first non-finite loss, gradient or step (diverged). Logs every 10
/// steps if `log`.
fn train(
    spec: &Spec,
    h: &Hyper,
    images: &Arc<Vec<u8>>,
    batch: usize,
    steps: u64,
    seed: u64,
    log: bool,
) -> anyhow::Result<Trained> {
    let mut task = MnistTask::new(images.clone(), batch, seed)?;
    let mut x: Vec<f32> = Task::<f32>::initial_point(&task);
    let mut m = build(spec, h, steps, seed)?;
    let mut curve = Vec::with_capacity(steps as usize);
    let mut diverged = false;
    let start = Instant::now();
    for step in 1..=steps {
        match m.iterate(&mut task, &mut x) {
            Ok(loss) if loss.is_finite() => {
                curve.push((step, start.elapsed().as_secs_f64(), f64::from(loss)));
            }
            _ => {
                diverged = true;
                break;
            }
        }
        if log && (step % 10 == 0 || step == steps) {
            let last = curve.len().saturating_sub(10);
            let recent: Vec<f64> = curve[last..].iter().map(|p| p.2).collect();
            eprintln!(
                "[mnist] {} seed {seed}: step {step}/{steps} loss(10-step mean) {:.4}  {:.1}s",
                spec.label,
                mean(&recent),
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Trained {
        curve,
        diverged,
        train_seconds: start.elapsed().as_secs_f64(),
        params: x,
    })
}

/// The optimizers `--tune` tunes, each with the hyperparameters it tunes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tunable {
    Lodo,
    Adam,
    Momentum,
    RmsProp,
    Yogi,
    Lars,
}

impl Tunable {
    /// Which tuning a spec's hyperparameters come from (LODO's ablations and sweeps: LODO's).
    fn of(kind: &Kind) -> Self {
        match kind {
            Kind::Lodo { .. } => Self::Lodo,
            Kind::Adam => Self::Adam,
            Kind::Momentum => Self::Momentum,
            Kind::RmsProp => Self::RmsProp,
            Kind::Yogi => Self::Yogi,
            Kind::Lars => Self::Lars,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Lodo => "LODO",
            Self::Adam => "Adam",
            Self::Momentum => "Momentum",
            Self::RmsProp => "RMSprop",
            Self::Yogi => "Yogi",
            Self::Lars => "LARS",
        }
    }

    /// The tuned hyperparameters (names as in the harness registry) with their current values
    /// in `h` as defaults.
    fn params(self, h: &Hyper, tune_beta: bool) -> Vec<HyperParam> {
        let p = |name, default, scale| HyperParam {
            name,
            default,
            scale,
        };
        match self {
            Self::Lodo => {
                let mut v = vec![
                    p("initial_lr", h.alpha0, Scale::Log),
                    p("meta_lr", h.meta_lr, Scale::Log),
                ];
                if tune_beta {
                    v.push(p("beta", h.beta, Scale::Decay));
                }
                v
            }
            Self::Adam => vec![p("lr", h.adam_lr, Scale::Log)],
            Self::Momentum => vec![p("lr", h.momentum_lr, Scale::Log)],
            Self::RmsProp => vec![p("lr", h.rmsprop_lr, Scale::Log)],
            Self::Yogi => vec![p("lr", h.yogi_lr, Scale::Log)],
            Self::Lars => vec![p("lr", h.lars_lr, Scale::Log)],
        }
    }

    /// `h` with this optimizer's tuned hyperparameters set to `v` (in [`Self::params`] order).
    fn apply(self, h: &Hyper, v: &[f64]) -> Hyper {
        let mut h = *h;
        match self {
            Self::Lodo => {
                h.alpha0 = v[0];
                h.meta_lr = v[1];
                if let Some(&b) = v.get(2) {
                    h.beta = b;
                }
            }
            Self::Adam => h.adam_lr = v[0],
            Self::Momentum => h.momentum_lr = v[0],
            Self::RmsProp => h.rmsprop_lr = v[0],
            Self::Yogi => h.yogi_lr = v[0],
            Self::Lars => h.lars_lr = v[0],
        }
        h
    }

    /// The configuration a tuning run trains.
    fn spec(self, h: &Hyper) -> Spec {
        let kind = match self {
            Self::Lodo => {
                return lodo_spec("LODO", LodoVariant::Block, h.beta, 16, 4);
            }
            Self::Adam => Kind::Adam,
            Self::Momentum => Kind::Momentum,
            Self::RmsProp => Kind::RmsProp,
            Self::Yogi => Kind::Yogi,
            Self::Lars => Kind::Lars,
        };
        Spec {
            label: self.label().into(),
            kind,
        }
    }
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

/// One optimizer's tuning.
struct Tuning {
    opt: Tunable,
    params: Vec<HyperParam>,
    outcome: TuneOutcome,
    seconds: f64,
}

/// Tunes every optimizer `specs` need, from `h`; returns `h` with the tuned values and the
/// tunings. A candidate is scored by the mean training loss over the last 10% of its steps
/// (`+∞` if it diverged or its values are out of range).
fn tune_all(
    args: &MnistArgs,
    specs: &[Spec],
    h: &Hyper,
    images: &Arc<Vec<u8>>,
) -> anyhow::Result<(Hyper, Vec<Tuning>)> {
    let mut needed: Vec<Tunable> = Vec::new();
    for s in specs {
        let t = Tunable::of(&s.kind);
        if !needed.contains(&t) {
            needed.push(t);
        }
    }
    let schedule = tune_schedule(args.tune_generations, args.tune_steps, args.tune_population);
    let mut tuned = *h;
    let mut out = Vec::new();
    for (i, &opt) in needed.iter().enumerate() {
        let params = opt.params(h, args.tune_beta);
        let start: Vec<f64> = params.iter().map(|p| p.default).collect();
        let t0 = Instant::now();
        let seed = derive_seed(args.seed, &[0x6d6e_6973_7475_6e65, i as u64]);
        let outcome = tune(&params, &start, &schedule, seed, |values, steps, s| {
            let hv = opt.apply(h, values);
            let spec = opt.spec(&hv);
            let score = match train(&spec, &hv, images, args.tune_batch, steps, s, false) {
                Ok(t) => final_window(&t.curve, t.diverged, steps),
                // Out-of-range values (rejected by the optimizer) score as diverged.
                Err(_) => f64::INFINITY,
            };
            eprintln!(
                "[mnist tune] {} {} → score {score:.4}",
                opt.label(),
                params
                    .iter()
                    .zip(values)
                    .map(|(p, v)| format!("{}={v:.4e}", p.name))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            Ok::<f64, anyhow::Error>(score)
        })?;
        let seconds = t0.elapsed().as_secs_f64();
        eprintln!(
            "[mnist tune] {} tuned: {:?} ({seconds:.1}s)",
            opt.label(),
            outcome.best
        );
        tuned = opt.apply(&tuned, &outcome.best);
        out.push(Tuning {
            opt,
            params,
            outcome,
            seconds,
        });
    }
    Ok((tuned, out))
}

/// A hyperparameter value as the report and `tuned.json` readers compare it.
fn fmt_hp(x: f64) -> String {
    format!("{x:.4e}")
}

/// The report's tuning section.
fn tuning_markdown(args: &MnistArgs, tunings: &[Tuning]) -> String {
    let schedule = tune_schedule(args.tune_generations, args.tune_steps, args.tune_population);
    let sigmas: Vec<String> = schedule.iter().map(|g| g.sigma.to_string()).collect();
    let total: f64 = tunings.iter().map(|t| t.seconds).sum();
    let mut md = format!(
        "\n## Tuning\n\nThe harness's evolution strategy (`lodo_bench::tune`, the authors' \
         `hyperparameter_tuning_parent2.py`) at reduced scale: {} generation(s) × {} candidates, \
         each candidate {} steps at batch {} from its own seeded initial network and batches; \
         score = mean training loss over the last 10% of its steps (∞ if diverged); σ = [{}] in \
         normalised coordinates (log for learning rates, log(1−β) for β), the last generations \
         of the authors' schedule; the next mean is the mean of the best half. Start: the values \
         given (by default the authors' MNIST values for LODO and their defaults for the \
         baselines). The ablations and sweeps use LODO's tuned values. Tuning took {:.0} s. All \
         candidates: `tuning.csv`; the values: `tuned.json`.\n\n\
         | optimizer | hyperparameter | start | tuned | best score, last generation | seconds |\n\
         |---|---|---|---|---|---|\n",
        schedule.len(),
        args.tune_population,
        args.tune_steps,
        args.tune_batch,
        sigmas.join(", "),
        total
    );
    for t in tunings {
        let best_last = t.outcome.generations.last().map_or(f64::NAN, |g| {
            g.iter().map(|c| c.score).fold(f64::INFINITY, f64::min)
        });
        for (j, p) in t.params.iter().enumerate() {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.0} |\n",
                t.opt.label(),
                p.name,
                fmt_hp(p.default),
                fmt_hp(t.outcome.best[j]),
                fmt_num(best_last),
                t.seconds
            ));
        }
    }
    md
}

/// Writes `tuned.json` (`{optimizer: {hyperparameter: value}}`) and `tuning.csv` (every
/// candidate).
fn write_tuning(out: &Path, tunings: &[Tuning]) -> anyhow::Result<()> {
    let mut json = serde_json::Map::new();
    let mut rows = Vec::new();
    for t in tunings {
        let mut o = serde_json::Map::new();
        for (p, v) in t.params.iter().zip(&t.outcome.best) {
            o.insert(p.name.into(), serde_json::json!(v));
        }
        json.insert(t.opt.label().into(), serde_json::Value::Object(o));
        for (g, cands) in t.outcome.generations.iter().enumerate() {
            for (i, c) in cands.iter().enumerate() {
                for (p, v) in t.params.iter().zip(&c.values) {
                    rows.push(vec![
                        t.opt.label().to_string(),
                        g.to_string(),
                        i.to_string(),
                        p.name.to_string(),
                        format!("{v:e}"),
                        format!("{:e}", c.score),
                    ]);
                }
            }
        }
    }
    write_atomic(
        &out.join("tuned.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(json))?.as_bytes(),
    )?;
    write_csv(
        &out.join("tuning.csv"),
        &[
            "optimizer",
            "generation",
            "candidate",
            "hyperparameter",
            "value",
            "score",
        ],
        &rows,
    )?;
    Ok(())
}

/// One finished run.
#[derive(Clone, Debug)]
struct Run {
    label: String,
    seed: u64,
    /// `(step, seconds since start, training loss)`.
    curve: Vec<(u64, f64, f64)>,
    diverged: bool,
    train_seconds: f64,
    test_loss: f64,
    params: Vec<f32>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Mean loss over the final 10% (at least one step) of the step budget (`+∞` if diverged).
fn final_window(curve: &[(u64, f64, f64)], diverged: bool, steps: u64) -> f64 {
    if diverged {
        return f64::INFINITY;
    }
    let from = steps - (steps / 10).max(1);
    mean(
        &curve
            .iter()
            .filter(|p| p.0 > from)
            .map(|p| p.2)
            .collect::<Vec<_>>(),
    )
}

/// Mean loss over steps finished within `[0.9·W, W]` seconds (the last step before `W` if none).
fn final_window_time(r: &Run, w: f64) -> f64 {
    let in_window: Vec<f64> = r
        .curve
        .iter()
        .filter(|p| p.1 >= 0.9 * w && p.1 <= w)
        .map(|p| p.2)
        .collect();
    if !in_window.is_empty() {
        return mean(&in_window);
    }
    if r.diverged && r.curve.last().is_none_or(|p| p.1 <= w) {
        return f64::INFINITY;
    }
    r.curve
        .iter()
        .rev()
        .find(|p| p.1 <= w)
        .map_or(f64::NAN, |p| p.2)
}

fn mean_std(v: &[f64]) -> String {
    if v.iter().any(|x| !x.is_finite()) {
        let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if finite.is_empty() {
            return "diverged".into();
        }
        return format!("{} (finite runs)", mean_std(&finite));
    }
    let m = mean(v);
    if v.len() < 2 {
        return fmt_num(m);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    format!("{} ± {}", fmt_num(m), fmt_num(var.sqrt()))
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

fn write_outputs(
    args: &MnistArgs,
    runs: &[Run],
    header: &str,
    specs: &[Spec],
    footer: &str,
) -> anyhow::Result<()> {
    let out = &args.out;
    // curves.csv
    let rows: Vec<Vec<String>> = runs
        .iter()
        .flat_map(|r| {
            r.curve.iter().map(move |p| {
                vec![
                    r.label.clone(),
                    r.seed.to_string(),
                    p.0.to_string(),
                    format!("{:.4}", p.1),
                    format!("{:e}", p.2),
                ]
            })
        })
        .collect();
    write_csv(
        &out.join("curves.csv"),
        &["optimizer", "seed", "step", "seconds", "loss"],
        &rows,
    )?;
    // Common wall-clock budget.
    let wall = args.seconds.unwrap_or_else(|| {
        runs.iter()
            .filter(|r| !r.diverged)
            .map(|r| r.train_seconds)
            .fold(f64::INFINITY, f64::min)
    });
    let mut md = String::from(header);
    md.push_str(&format!(
        "\n| optimizer | train loss, last 10% of {} steps | train loss, last 10% of {:.0} s | test loss | steps/s | diverged |\n|---|---|---|---|---|---|\n",
        args.steps, wall
    ));
    let mut best: Option<(f64, &Run)> = None;
    for s in specs {
        let rs: Vec<&Run> = runs.iter().filter(|r| r.label == s.label).collect();
        if rs.is_empty() {
            continue;
        }
        let a: Vec<f64> = rs
            .iter()
            .map(|r| final_window(&r.curve, r.diverged, args.steps))
            .collect();
        let b: Vec<f64> = rs.iter().map(|r| final_window_time(r, wall)).collect();
        let t: Vec<f64> = rs.iter().map(|r| r.test_loss).collect();
        let sps: Vec<f64> = rs
            .iter()
            .map(|r| r.curve.len() as f64 / r.train_seconds.max(1e-9))
            .collect();
        let div = rs.iter().filter(|r| r.diverged).count();
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.3} | {}/{} |\n",
            s.label,
            mean_std(&a),
            mean_std(&b),
            mean_std(&t),
            mean(&sps),
            div,
            rs.len()
        ));
        for r in rs {
            if r.test_loss.is_finite() && best.is_none_or(|(l, _)| r.test_loss < l) {
                best = Some((r.test_loss, r));
            }
        }
    }
    md.push_str(
        "\nTest loss: mean cross-entropy (nats) over every query position of the test digits \
         used. `log 256` = 5.545 is the loss of a uniform guess.\n",
    );
    // Curves: per optimizer the mean over seeds, smoothed over 10 steps.
    let mut by_step = Vec::new();
    let mut by_time = Vec::new();
    for s in specs {
        let rs: Vec<&Run> = runs.iter().filter(|r| r.label == s.label).collect();
        if rs.is_empty() {
            continue;
        }
        let len = rs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
        let pts: Vec<(f64, f64)> = (0..len)
            .map(|i| {
                let l = mean(&rs.iter().map(|r| r.curve[i].2).collect::<Vec<_>>());
                (rs[0].curve[i].0 as f64, l)
            })
            .collect();
        by_step.push(Series::new(&s.label, smooth(&pts, 10)));
        let tpts: Vec<(f64, f64)> = (0..len)
            .map(|i| {
                (
                    mean(&rs.iter().map(|r| r.curve[i].1).collect::<Vec<_>>()),
                    mean(&rs.iter().map(|r| r.curve[i].2).collect::<Vec<_>>()),
                )
            })
            .collect();
        by_time.push(Series::new(&s.label, smooth(&tpts, 10)));
    }
    let chart = |x_label: &str, series: Vec<Series>| LineChart {
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
    chart("step", by_step).draw(&out.join("curves_step"))?;
    chart("seconds", by_time).draw(&out.join("curves_time"))?;
    if let (Some((l, r)), true) = (best, args.samples > 0) {
        md.push_str(&format!(
            "\nDigits sampled from the {} network (seed {}, test loss {}): `digits.png`.\n",
            r.label,
            r.seed,
            fmt_num(l)
        ));
    }
    md.push_str(
        "\nFiles: `curves.csv` (every step), `curves_step.{svg,png}`, `curves_time.{svg,png}`.\n",
    );
    md.push_str(footer);
    write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(())
}

/// Runs the MNIST experiment (tuning first with `--tune`).
///
/// # Errors
/// Bad options, unreadable or malformed data, unwritable output folder.
pub fn run(args: &MnistArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    anyhow::ensure!(args.steps > 0, "--steps must be positive");
    anyhow::ensure!(args.batch > 0, "--batch must be positive");
    anyhow::ensure!(args.runs > 0, "--runs must be positive");
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
    let mut hyper = Hyper::from_args(args);
    // Validates the names and values before any work.
    let mut specs = specs(args, hyper.beta)?;
    for s in &specs {
        build(s, &hyper, args.steps, 0)
            .with_context(|| format!("{}: bad hyperparameters", s.label))?;
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
    let n_train = mnist.train.n.saturating_sub(64).max(1);
    let train_images = Arc::new(mnist.train.slice(0..n_train).pixels);
    let n_test = if args.test_images == 0 {
        mnist.test.n
    } else {
        args.test_images.min(mnist.test.n)
    };
    let test = mnist.test.slice(0..n_test).pixels;
    let threads = pool.current_num_threads();

    let mut tuning_md = String::new();
    let mut tuning_seconds = 0.0;
    let (mut lodo_tuned, mut baselines_tuned) = (false, false);
    if args.tune {
        let (tuned, tunings) = pool.install(|| tune_all(args, &specs, &hyper, &train_images))?;
        hyper = tuned;
        specs = self::specs(args, hyper.beta)?;
        write_tuning(&args.out, &tunings)?;
        tuning_md = tuning_markdown(args, &tunings);
        tuning_seconds = tunings.iter().map(|t| t.seconds).sum();
        lodo_tuned = tunings.iter().any(|t| t.opt == Tunable::Lodo);
        baselines_tuned = tunings.iter().any(|t| t.opt != Tunable::Lodo);
    }
    let source =
        |tuned: bool, what: &str| -> String { if tuned { "tuned".into() } else { what.into() } };
    let header = format!(
        "# MNIST autoregression (paper §5.2)\n\n\
         Model: the authors' 94,696-parameter residual CNN; batch {}; {} training digits from `{}` \
         (last 64 held out), test loss over {} test digits × 784 query positions; {} step(s) per \
         run, {} run(s) per optimizer, seed {}, {} thread(s), f32.\n\n\
         LODO: α₀ = {}, η = {} ({}), β = {} ({}), N = 16, k = 4 unless named. \
         Baselines ({}; other hyperparameters at the authors' defaults): Adam η = {}; Momentum \
         η = {}, μ = 0; RMSprop η = {}, ρ = 0.9; Yogi η = {} (β₁ 0.9, β₂ 0.999, ε 1e−3); LARS \
         η = {}, μ = 0.9, w = 5e−4, per layer.\n{}",
        args.batch,
        n_train,
        args.data.display(),
        n_test,
        args.steps,
        args.runs,
        args.seed,
        threads,
        fmt_hp(hyper.alpha0),
        fmt_hp(hyper.meta_lr),
        source(lodo_tuned, "the authors' MNIST tuning"),
        fmt_hp(hyper.beta),
        source(lodo_tuned && args.tune_beta, "the authors' MNIST tuning"),
        source(baselines_tuned, "learning rates: the authors' defaults"),
        fmt_hp(hyper.adam_lr),
        fmt_hp(hyper.momentum_lr),
        fmt_hp(hyper.rmsprop_lr),
        fmt_hp(hyper.yogi_lr),
        fmt_hp(hyper.lars_lr),
        tuning_md
    );
    let experiment_start = Instant::now();
    let mut runs: Vec<Run> = Vec::new();
    for spec in &specs {
        for r in 0..args.runs {
            let seed = args.seed + r as u64;
            let t = pool.install(|| {
                train(
                    spec,
                    &hyper,
                    &train_images,
                    args.batch,
                    args.steps,
                    seed,
                    true,
                )
            })?;
            let test_loss = if t.diverged {
                f64::INFINITY
            } else {
                let t0 = Instant::now();
                let l = pool.install(|| net::dataset_loss(&t.params, &test));
                eprintln!(
                    "[mnist] {} seed {seed}: test loss {l:.4} ({:.1}s)",
                    spec.label,
                    t0.elapsed().as_secs_f64()
                );
                l
            };
            runs.push(Run {
                label: spec.label.clone(),
                seed,
                curve: t.curve,
                diverged: t.diverged,
                train_seconds: t.train_seconds,
                test_loss,
                params: t.params,
            });
            // Complete, readable files after every run (an interrupted run keeps them).
            write_outputs(args, &runs, &header, &specs, "")?;
            let stem = file_stem(&format!("{}_seed{seed}", spec.label));
            let last = runs.last().expect("just pushed");
            let bytes: Vec<u8> = last.params.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_atomic(&args.out.join(format!("params_{stem}.f32le")), &bytes)?;
        }
    }
    let experiment_seconds = experiment_start.elapsed().as_secs_f64();
    let mut sampling_seconds = 0.0;
    if args.samples > 0 {
        let best = runs
            .iter()
            .filter(|r| r.test_loss.is_finite())
            .min_by(|a, b| a.test_loss.total_cmp(&b.test_loss));
        if let Some(b) = best {
            let t0 = Instant::now();
            let digits = pool.install(|| net::sample(&b.params, args.samples, args.seed));
            save_digit_grid(&digits, &args.out.join("digits.png"), 4)?;
            sampling_seconds = t0.elapsed().as_secs_f64();
            eprintln!(
                "[mnist] sampled {} digits from {} in {sampling_seconds:.1}s → {}",
                args.samples,
                b.label,
                args.out.join("digits.png").display()
            );
        }
    }
    let timing = format!(
        "\nWall-clock ({threads} thread(s)): {:.0} s in all; tuning {:.0} s, training and test \
         losses {:.0} s, sampling {:.0} s.\n",
        started.elapsed().as_secs_f64(),
        tuning_seconds,
        experiment_seconds,
        sampling_seconds
    );
    write_outputs(args, &runs, &header, &specs, &timing)?;
    eprintln!("[mnist] report: {}", args.out.join("report.md").display());
    Ok(())
}
