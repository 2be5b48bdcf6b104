//! The figures of a task's experiment: learning curves (main runs, ablations, frozen test),
//! LODO's Hessian error, and Rosenbrock trajectories over the loss heat map.

use std::path::Path;

use anyhow::Result;

use super::RunRecord;
use super::TaskSpec;
use super::protocol::{Group, TaskResults};
use crate::baselines::OptimizerKind;
use crate::plot::{LineChart, Series, mean_curve, palette, trajectories_on_heatmap};
use crate::tasks::Rosenbrock;

fn curves(g: &Group) -> Vec<Vec<(u64, f64)>> {
    g.runs.iter().map(|r| r.curve.clone()).collect()
}

fn learning_chart(title: &str, groups: &[Group], floor: Option<f64>) -> LineChart {
    LineChart {
        show_growth: false,
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

pub(super) fn hessian_chart(title: &str, groups: &[Group]) -> Option<LineChart> {
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
        show_growth: false,
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
pub(super) fn error_range(c: &LineChart) -> (f64, f64) {
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
    // LODO and the rows of its other layouts (`--permutations`, `--state`), which measure it too.
    let lodo: Vec<Group> = res
        .main
        .iter()
        .filter(|g| g.optimizer.kind() == OptimizerKind::Lodo)
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
            .chain(
                res.ablations
                    .iter()
                    .filter(|g| g.optimizer.kind() != OptimizerKind::Lodo),
            )
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
