//! The Markdown report of a task's experiment: hyperparameters, the main table, ablations,
//! Hessian error, frozen test.

use super::TaskSpec;
use super::protocol::{Group, TaskResults};
use crate::report::{Summary, fmt_hparam, hyperparameter_table, results_table};

/// The Markdown section of one task: hyperparameters, the main table, ablations, Hessian error,
/// frozen test. `rel` is the task folder relative to the report (for figure links).
#[must_use]
pub fn task_report(res: &TaskResults, rel: &str) -> String {
    use std::fmt::Write as _;
    let b = &res.budget;
    let mut s = String::new();
    let title = match &res.spec {
        TaskSpec::Bowl(o) => format!(
            "Noisy quadratic bowl (n = {}, eigenvalues in [{}, {}], noise {})",
            o.dim, o.eig_min, o.eig_max, o.noise
        ),
        TaskSpec::Rosenbrock => "Rosenbrock 0.01(1−x)² + (y−x²)² from (−0.5, 2)".into(),
        TaskSpec::Mnist(m) => format!("MNIST autoregression (batch {})", m.batch),
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
        .map(|s| &s.entry)
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
        .map(|s| &s.entry)
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
    if let Some(l) = res.lodo() {
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
