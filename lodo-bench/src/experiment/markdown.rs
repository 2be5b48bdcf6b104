//! The Markdown report of a task's experiment: hyperparameters, the main table, ablations,
//! Hessian error, frozen test; beside each table, what it says about the paper's claims
//! ([`super::claims`]).

use super::TaskSpec;
use super::claims;
use super::protocol::{Group, Phase, TaskResults};
use crate::report::{Summary, fmt_hparam, fmt_sig, hyperparameter_table, results_table};

/// The banner at the top of a report some of whose phases Ctrl-C stopped: `tasks` are
/// `(name, results)`, `None` for a task that did not start. `None` if everything finished.
#[must_use]
pub fn partial_banner(tasks: &[(&str, Option<&TaskResults>)]) -> Option<String> {
    partial_banner_with(tasks, &[])
}

/// [`partial_banner`], with `others` (parts that are not tasks, e.g. `reproduce`'s
/// permutation-family table) listed as missing too.
#[must_use]
pub fn partial_banner_with(
    tasks: &[(&str, Option<&TaskResults>)],
    others: &[&str],
) -> Option<String> {
    let mut missing: Vec<String> = tasks
        .iter()
        .filter_map(|(name, res)| match res {
            None => Some(format!("{name}: not started")),
            Some(r) if r.is_partial() => {
                let m: Vec<String> = r.missing.iter().map(ToString::to_string).collect();
                Some(format!("{name}: {}", m.join(", ")))
            }
            Some(_) => None,
        })
        .collect();
    missing.extend(others.iter().map(|o| format!("{o}: not run")));
    (!missing.is_empty()).then(|| {
        format!(
            "> **Partial report.** Interrupted (Ctrl-C) before the end; missing: {}. The tables \
             and figures below cover the phases that finished; a table of an interrupted phase \
             holds only its finished runs and is not compared. Run the command again for the \
             whole report.\n\n",
            missing.join("; ")
        )
    })
}

/// The heading note of a table whose phase was interrupted.
fn interrupted_note(res: &TaskResults, phase: Phase) -> Option<String> {
    res.missing(phase).map(|m| {
        format!(
            "**Interrupted:** {} of {} runs finished; the rows below hold those only.\n",
            m.finished, m.total
        )
    })
}

fn has_runs(groups: &[Group]) -> bool {
    groups.iter().any(|g| !g.runs.is_empty())
}

/// A task's report on its own (`<out>/<task>/report.md`): the partial banner if Ctrl-C stopped
/// it, the definitions the tables use, then [`task_report`].
#[must_use]
pub fn task_report_standalone(res: &TaskResults) -> String {
    let mut s = partial_banner(&[(res.spec.name(), Some(res))]).unwrap_or_default();
    s.push_str(&definitions());
    s.push_str(&task_report(res, "."));
    s
}

/// What the tables' words and columns mean (once per report).
#[must_use]
pub fn definitions() -> String {
    format!(
        "Losses are training losses of fresh samples; \"final-10% loss\" is each run's mean loss \
         over the last 10% of its steps (the authors' score); \"steps\" count loss-gradient \
         evaluations (O-LBFGS/L-BFGS take two per iteration); \"÷ floor\" divides by the bowl's \
         Newton floor ½·s²·tr(H), the loss of jumping to the last centre each step. Diverged: {}. \
         Levenberg–Marquardt is the one method that uses exact Hessian–vector products of the \
         task besides gradients; every other row, LODO included, sees gradients only.\n\n",
        super::DIVERGED
    )
}

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
    if res.missing(Phase::Tuning).is_some() {
        let _ = writeln!(
            s,
            "**Interrupted during tuning:** no hyperparameters were found and no run started.\n"
        );
        return s;
    }
    let gens: Vec<String> = b
        .schedule
        .iter()
        .map(|g| format!("({}, {}, {})", g.sigma, g.steps, g.population))
        .collect();
    let _ = writeln!(
        s,
        "{} runs × {} steps per optimizer; tuning schedule (σ, steps, population): {}; wall time {:.1} s.\n",
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
            "; Newton floor ½·tr(H) = {}",
            fmt_sig(f, 5)
        ))
    );
    if has_runs(&res.main) {
        if let Some(n) = interrupted_note(res, Phase::Main) {
            let _ = writeln!(s, "{n}");
        }
        let main: Vec<Summary> = res.main.iter().map(Group::summary).collect();
        s.push_str(&results_table(&main, floor));
        s.push('\n');
        if res.missing(Phase::Main).is_none()
            && let Some(n) = claims::main_table_note(res)
        {
            let _ = writeln!(s, "{n}\n");
        }
        if let Some(n) = claims::diverged_note(&res.main) {
            let _ = writeln!(s, "{n}\n");
        }
        if let Some(n) = super::layouts::layout_section(&res.main) {
            let _ = writeln!(s, "{n}");
        }
        let _ = writeln!(s, "![learning curves]({rel}/learning_curves.svg)\n");
    }
    if matches!(res.spec, TaskSpec::Rosenbrock) {
        let _ = writeln!(s, "![trajectories]({rel}/trajectories.svg)\n");
    }
    if has_runs(&res.ablations[1.min(res.ablations.len())..]) {
        let _ = writeln!(s, "### LODO ablations (LODO's tuned hyperparameters)\n");
        if let Some(n) = interrupted_note(res, Phase::Ablations) {
            let _ = writeln!(s, "{n}");
        }
        let ab: Vec<Summary> = res.ablations.iter().map(Group::summary).collect();
        s.push_str(&results_table(&ab, floor));
        s.push('\n');
        if let Some(n) = claims::ablation_note(res) {
            let _ = writeln!(s, "{n}\n");
        }
        if let Some(n) = claims::diverged_note(&res.ablations[1.min(res.ablations.len())..]) {
            let _ = writeln!(s, "{n}\n");
        }
        let _ = writeln!(s, "![ablations]({rel}/ablations.svg)\n");
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
                    "| {} | {} | {} |",
                    pts[0][i].0,
                    fmt_sig(m(&|p| p.1), 4),
                    fmt_sig(m(&|p| p.2), 4)
                );
            }
            s.push('\n');
            if let Some(n) = claims::hessian_note(res) {
                let _ = writeln!(s, "{n}\n");
            }
            let _ = writeln!(s, "![Hessian error]({rel}/hessian_error.svg)\n");
        }
    }
    if has_runs(&res.frozen) {
        let _ = writeln!(
            s,
            "### Frozen preconditioner\n\nLODO trains on bowl A; its θ is then frozen (momentum kept, no meta-update) and run on a fresh bowl B with new eigenvectors, and on bowl A with a new random walk; on-the-fly LODO on bowl B for comparison.\n"
        );
        if let Some(n) = interrupted_note(res, Phase::Frozen) {
            let _ = writeln!(s, "{n}");
        }
        let fr: Vec<Summary> = res.frozen.iter().map(Group::summary).collect();
        s.push_str(&results_table(&fr, floor));
        s.push('\n');
        if let Some(n) = claims::frozen_note(res) {
            let _ = writeln!(s, "{n}\n");
        }
        if let Some(n) = claims::diverged_note(&res.frozen) {
            let _ = writeln!(s, "{n}\n");
        }
        let last_err = claims::frozen_errors(res);
        if !last_err.is_empty() {
            let _ = writeln!(
                s,
                "Last measured exact Hessian error ‖I − G·H‖_F/√n (G against the bowl it runs on), \
                 mean over runs: {}.\n",
                last_err.join("; ")
            );
        }
        let _ = writeln!(s, "![frozen]({rel}/frozen.svg)\n");
    }
    s
}
