//! A 784-64-10 MLP on the shipped MNIST digits (9,000 train / 1,000 test): LODO against candle's
//! `AdamW` and `SGD` from the same initial weights and the same batches.
//!
//! ```sh
//! cargo run --release -p lodo-candle --example candle_mnist -- [STEPS] [SEEDS] [OUT_DIR]
//! # the README's numbers: 1000 steps of batch 32, seeds 0..3, results in lodo-candle/results/
//! cargo run --release -p lodo-candle --example candle_mnist -- 1000 3 lodo-candle/results
//! ```
//!
//! Writes `OUT_DIR/mlp_loss.csv` (step, optimizer, seed, training loss on the step's batch) and
//! `OUT_DIR/mlp_loss.svg` (each optimizer's loss averaged over seeds and a 20-step window), and
//! prints a Markdown table (train loss over the last 10% of steps, test loss and accuracy, time).
//!
//! Hyperparameters: LODO with the authors' MNIST values (α₀ = 0.0846, η = 7.95e−6, β = 0.934,
//! default network N = 16, k = 4); AdamW with candle's defaults (lr 1e−3, weight decay 0.01);
//! SGD with lr 0.1. None is tuned for this model.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::time::Instant;

use candle_core::DType;
use candle_nn::{AdamW, Optimizer, ParamsAdamW, SGD, VarMap};
use lodo_candle::{LodoOptimizer, LodoOptimizerConfig};
use lodo_core::LodoConfig;

const NAMES: [&str; 3] = ["LODO", "AdamW", "SGD"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = args.get(1).map_or(Ok(1000), |s| s.parse())?;
    let seeds: u64 = args.get(2).map_or(Ok(3), |s| s.parse())?;
    let out = std::path::PathBuf::from(args.get(3).map_or("lodo-candle/results", String::as_str));
    std::fs::create_dir_all(&out)?;
    let train = support::Digits::load("train")?;
    let test = support::Digits::load("t10k")?;

    let mut csv = String::from("step,optimizer,seed,train_loss\n");
    // curves[o][step]: summed over seeds; stats[o]: (tail loss, test loss, accuracy, seconds).
    let mut curves = vec![vec![0.0; steps]; NAMES.len()];
    let mut stats = vec![Vec::new(); NAMES.len()];
    for seed in 0..seeds {
        let batches = support::batches(train.len(), 32, steps, seed);
        for (o, name) in NAMES.iter().enumerate() {
            let mut varmap = VarMap::new();
            let model = support::Mlp::new(&mut varmap, DType::F32, seed)?;
            let t = Instant::now();
            let losses = match o {
                0 => {
                    let lodo = LodoConfig::default()
                        .with_alpha0(0.0846)?
                        .with_meta_lr(7.95e-6)?
                        .with_beta(0.934)?;
                    let mut opt = LodoOptimizer::<f32>::from_varmap(
                        &varmap,
                        LodoOptimizerConfig::new(lodo, seed),
                    )?;
                    support::train(&model, &mut opt, &train, &batches, DType::F32)?
                }
                1 => {
                    let mut opt = AdamW::new(varmap.all_vars(), ParamsAdamW::default())?;
                    support::train(&model, &mut opt, &train, &batches, DType::F32)?
                }
                _ => {
                    let mut opt = SGD::new(varmap.all_vars(), 0.1)?;
                    support::train(&model, &mut opt, &train, &batches, DType::F32)?
                }
            };
            let seconds = t.elapsed().as_secs_f64();
            let (accuracy, test_loss) = model.evaluate(&test, DType::F32)?;
            let tail = support::mean(&losses[steps - (steps / 10).max(1)..]);
            eprintln!(
                "seed {seed} {name}: tail train loss {tail:.4}, test loss {test_loss:.4}, accuracy {accuracy:.4}, {seconds:.1} s"
            );
            stats[o].push((tail, test_loss, accuracy, seconds));
            for (s, l) in losses.iter().enumerate() {
                writeln!(csv, "{s},{name},{seed},{l}")?;
                curves[o][s] += l / seeds as f64;
            }
        }
    }
    std::fs::write(out.join("mlp_loss.csv"), csv)?;
    std::fs::write(out.join("mlp_loss.svg"), svg(&curves, steps))?;

    let ms = |v: &[f64]| {
        let m = support::mean(v);
        let sd =
            (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len().max(2) - 1) as f64).sqrt();
        format!("{m:.4} ± {sd:.4}")
    };
    println!("\n{steps} steps of batch 32, {seeds} seeds (mean ± std over seeds)\n");
    println!(
        "| optimizer | train loss, last 10% of steps | test loss | test accuracy | time per run (s) |"
    );
    println!("|---|---|---|---|---|");
    for (o, name) in NAMES.iter().enumerate() {
        let col = |f: fn(&(f64, f64, f64, f64)) -> f64| stats[o].iter().map(f).collect::<Vec<_>>();
        println!(
            "| {name} | {} | {} | {} | {:.1} |",
            ms(&col(|s| s.0)),
            ms(&col(|s| s.1)),
            ms(&col(|s| s.2)),
            support::mean(&col(|s| s.3)),
        );
    }
    println!(
        "\nwrote {} and {}",
        out.join("mlp_loss.csv").display(),
        out.join("mlp_loss.svg").display()
    );
    Ok(())
}

/// A plain SVG line chart: loss (log scale) against step, one smoothed line per optimizer.
fn svg(curves: &[Vec<f64>], steps: usize) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 20.0, 30.0, 50.0);
    let smooth: Vec<Vec<f64>> = curves
        .iter()
        .map(|c| {
            (0..c.len())
                .map(|i| {
                    let a = i.saturating_sub(19);
                    support::mean(&c[a..=i])
                })
                .collect()
        })
        .collect();
    let all = smooth.iter().flatten().copied().filter(|v| *v > 0.0);
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (llo, lhi) = (lo.log10().floor(), hi.log10().ceil());
    let x = |s: usize| left + (w - left - right) * s as f64 / (steps.max(2) - 1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (lhi - v.log10()) / (lhi - llo);
    let colors = ["#d62728", "#1f77b4", "#2ca02c"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let mut e = llo;
    while e <= lhi {
        for m in 1..10 {
            let v = 10f64.powf(e) * f64::from(m);
            if v.log10() > lhi + 1e-9 {
                break;
            }
            let yy = y(v);
            let stroke = if m == 1 { "#bbb" } else { "#eee" };
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{stroke}\"/>",
                w - right
            );
            if m == 1 || m == 2 || m == 5 {
                let _ = writeln!(
                    s,
                    "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
                    left - 6.0,
                    yy + 4.0
                );
            }
        }
        e += 1.0;
    }
    for t in 0..=5 {
        let st = (steps - 1) * t / 5;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{st}</text>",
            x(st),
            h - bottom + 18.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step (batch 32)</text>",
        (w + left) / 2.0,
        h - 10.0
    );
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"18\">MLP 784-64-10 on MNIST: training loss (20-step mean, averaged over seeds)</text>"
    );
    for (o, c) in smooth.iter().enumerate() {
        let pts: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
            colors[o],
            pts.join(" ")
        );
        let ly = top + 20.0 + 18.0 * o as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>",
            w - 140.0,
            w - 115.0,
            colors[o],
            w - 110.0,
            ly + 4.0,
            NAMES[o]
        );
    }
    s.push_str("</svg>\n");
    s
}
