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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use lodo_core::{DiagonalLodo, GlobalLodo, Lodo, LodoConfig, ResidualLodo};

use super::idx::Mnist;
use super::net::{self, PIX, SIDE};
use super::task::MnistTask;
use crate::baselines::{Lars, Momentum, RmsProp, Yogi};
use crate::plot::{LineChart, Series};
use crate::report::{file_stem, fmt_num, write_atomic, write_csv};
use crate::task::{FirstOrder, Minimizer, Task};

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

fn specs(args: &MnistArgs) -> anyhow::Result<Vec<Spec>> {
    let b = args.beta;
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

fn build(spec: &Spec, args: &MnistArgs, seed: u64) -> anyhow::Result<Box<dyn Minimizer<f32>>> {
    let n = net::N_PARAMS;
    Ok(match spec.kind {
        Kind::Lodo {
            variant,
            beta,
            layers,
            block,
        } => {
            let mut c = LodoConfig::<f32>::default();
            if matches!(variant, LodoVariant::Residual) {
                c = LodoConfig::residual();
            }
            c = c
                .with_alpha0(args.alpha0 as f32)?
                .with_meta_lr(args.meta_lr as f32)?
                .with_beta(beta as f32)?;
            if !matches!(variant, LodoVariant::Residual) {
                c = c.with_layers(layers)?.with_block_size(block)?;
            }
            match variant {
                LodoVariant::Block => Box::new(FirstOrder::new(Lodo::<f32>::new(n, c, seed)?)),
                LodoVariant::Sgd => Box::new(FirstOrder::new(Lodo::<f32>::new(
                    n,
                    c.with_meta_sgd(),
                    seed,
                )?)),
                LodoVariant::Diagonal => {
                    Box::new(FirstOrder::new(DiagonalLodo::<f32>::new(n, c, seed)?))
                }
                LodoVariant::Global => {
                    Box::new(FirstOrder::new(GlobalLodo::<f32>::new(n, c, seed)?))
                }
                LodoVariant::Residual => {
                    Box::new(FirstOrder::new(ResidualLodo::<f32>::new(n, c, seed)?))
                }
            }
        }
        // The authors' defaults (`training/hyperparameter_setup.py`).
        Kind::Adam => Box::new(FirstOrder::new(lodo_core::Adam::<f32>::new(n, 1e-3)?)),
        Kind::Momentum => Box::new(FirstOrder::new(Momentum::<f32>::new(n, 0.01, 0.0)?)),
        Kind::RmsProp => Box::new(FirstOrder::new(RmsProp::<f32>::new(n, 1e-3, 0.9, 0.0)?)),
        Kind::Yogi => Box::new(FirstOrder::new(Yogi::<f32>::new(n, 1e-3, 0.9, 0.999)?)),
        Kind::Lars => Box::new(FirstOrder::new(Lars::<f32>::new(
            n,
            1e-3,
            0.9,
            5e-4,
            args.steps,
            &lars_layer_starts(),
        )?)),
    })
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

/// Mean loss over the final 10% of the step budget (`+∞` if diverged).
fn final_window_steps(r: &Run, steps: u64) -> f64 {
    if r.diverged {
        return f64::INFINITY;
    }
    let from = steps - (steps / 10).max(1);
    mean(
        &r.curve
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
            .map(|r| final_window_steps(r, args.steps))
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
    if let Some((l, r)) = best {
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
    write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(())
}

/// Runs the MNIST experiment.
///
/// # Errors
/// Bad options, unreadable or malformed data, unwritable output folder.
pub fn run(args: &MnistArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.steps > 0, "--steps must be positive");
    anyhow::ensure!(args.batch > 0, "--batch must be positive");
    anyhow::ensure!(args.runs > 0, "--runs must be positive");
    let specs = specs(args)?;
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
    let train = Arc::new(mnist.train.slice(0..n_train).pixels);
    let n_test = if args.test_images == 0 {
        mnist.test.n
    } else {
        args.test_images.min(mnist.test.n)
    };
    let test = mnist.test.slice(0..n_test).pixels;
    let threads = pool.current_num_threads();
    let header = format!(
        "# MNIST autoregression (paper §5.2)\n\n\
         Model: the authors' 94,696-parameter residual CNN; batch {}; {} training digits from `{}` \
         (last 64 held out), test loss over {} test digits × 784 query positions; {} step(s) per \
         run, {} run(s) per optimizer, seed {}, {} thread(s), f32.\n\n\
         LODO: α₀ = {}, η = {}, β = {} (the authors' MNIST tuning), N = 16, k = 4 unless named. \
         Baselines at the authors' defaults: Adam η = 1e−3; Momentum η = 0.01, μ = 0; RMSprop \
         η = 1e−3, ρ = 0.9; Yogi η = 1e−3 (β₁ 0.9, β₂ 0.999, ε 1e−3); LARS η = 1e−3, μ = 0.9, \
         w = 5e−4, per layer.\n",
        args.batch,
        n_train,
        args.data.display(),
        n_test,
        args.steps,
        args.runs,
        args.seed,
        threads,
        args.alpha0,
        args.meta_lr,
        args.beta
    );
    let mut runs: Vec<Run> = Vec::new();
    for spec in &specs {
        for r in 0..args.runs {
            let seed = args.seed + r as u64;
            let mut task = MnistTask::new(train.clone(), args.batch, seed)?;
            let mut x: Vec<f32> = Task::<f32>::initial_point(&task);
            let mut m = build(spec, args, seed)?;
            let mut curve = Vec::with_capacity(args.steps as usize);
            let mut diverged = false;
            let start = Instant::now();
            pool.install(|| {
                for step in 1..=args.steps {
                    match m.iterate(&mut task, &mut x) {
                        Ok(loss) if loss.is_finite() => {
                            curve.push((step, start.elapsed().as_secs_f64(), f64::from(loss)));
                        }
                        _ => {
                            diverged = true;
                            break;
                        }
                    }
                    if step % 10 == 0 || step == args.steps {
                        let last = curve.len().saturating_sub(10);
                        let recent: Vec<f64> = curve[last..].iter().map(|p| p.2).collect();
                        eprintln!(
                            "[mnist] {} seed {seed}: step {step}/{} loss(10-step mean) {:.4}  {:.1}s",
                            spec.label,
                            args.steps,
                            mean(&recent),
                            start.elapsed().as_secs_f64()
                        );
                    }
                }
            });
            let train_seconds = start.elapsed().as_secs_f64();
            let test_loss = if diverged {
                f64::INFINITY
            } else {
                let t0 = Instant::now();
                let l = pool.install(|| net::dataset_loss(&x, &test));
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
                curve,
                diverged,
                train_seconds,
                test_loss,
                params: x,
            });
            // Complete, readable files after every run (an interrupted run keeps them).
            write_outputs(args, &runs, &header, &specs)?;
            let stem = file_stem(&format!("{}_seed{seed}", spec.label));
            let last = runs.last().expect("just pushed");
            let bytes: Vec<u8> = last.params.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_atomic(&args.out.join(format!("params_{stem}.f32le")), &bytes)?;
        }
    }
    if args.samples > 0 {
        let best = runs
            .iter()
            .filter(|r| r.test_loss.is_finite())
            .min_by(|a, b| a.test_loss.total_cmp(&b.test_loss));
        if let Some(b) = best {
            let t0 = Instant::now();
            let digits = pool.install(|| net::sample(&b.params, args.samples, args.seed));
            save_digit_grid(&digits, &args.out.join("digits.png"), 4)?;
            eprintln!(
                "[mnist] sampled {} digits from {} in {:.1}s → {}",
                args.samples,
                b.label,
                t0.elapsed().as_secs_f64(),
                args.out.join("digits.png").display()
            );
        }
    }
    eprintln!("[mnist] report: {}", args.out.join("report.md").display());
    Ok(())
}
