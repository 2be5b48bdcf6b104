//! What an experiment writes and reads, under a task folder (e.g. `results/bowl/`):
//!
//! | path | contents |
//! |---|---|
//! | `tuned.json` | hyperparameters per optimizer ([`Tuned`]; one schema for every task) |
//! | `tuning/<opt>.csv` | every tuning candidate: generation, values, score |
//! | `curves/<group>/run<r>.csv` | each run's learning curve (`step,loss`, bin means) |
//! | `hessian/<group>/run<r>.csv` | LODO's Hessian error (`step,probe,exact`) |
//! | `trajectories/<opt>.csv` | Rosenbrock iterates of run 0 |
//! | `summary.csv`, `ablations.csv`, `frozen.csv` | the tables of final-window losses |

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::RunRecord;
use super::protocol::Tuning;
use crate::report::{file_stem, write_atomic, write_csv, write_curve_csv};

/// One entry of `tuned.json`: the values of some hyperparameters of one optimizer (all of them on
/// the synthetic tasks, the learning rates on MNIST); the others keep the run's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tuned {
    /// Optimizer name ([`crate::baselines::OptimizerKind::name`]).
    pub optimizer: String,
    /// Hyperparameter names.
    pub names: Vec<String>,
    /// The values tuning started from (the authors' defaults unless given).
    pub defaults: Vec<f64>,
    /// The values used.
    pub values: Vec<f64>,
    /// `"tuned"`, `"loaded"` or `"default"`.
    pub source: String,
}

/// Reads `tuned.json`; a missing file is an empty list.
///
/// # Errors
/// A file that cannot be read or is not a list of [`Tuned`] entries (such as the old MNIST
/// `{optimizer: {name: value}}` map), naming the file.
pub fn load_tuned(path: &Path) -> Result<Vec<Tuned>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let list: Vec<Tuned> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a list of tuned hyperparameters ({{optimizer, names, defaults, values, \
             source}}); delete it or tune again",
            path.display()
        )
    })?;
    for t in &list {
        anyhow::ensure!(
            t.names.len() == t.values.len(),
            "{}: {} has {} names but {} values",
            path.display(),
            t.optimizer,
            t.names.len(),
            t.values.len()
        );
    }
    Ok(list)
}

/// Writes `entries` into `tuned.json`, keeping the entries of other optimizers already there.
///
/// # Errors
/// An unreadable existing file or I/O errors.
pub fn save_tuned(path: &Path, entries: &[Tuned]) -> Result<()> {
    let mut all: BTreeMap<String, Tuned> = load_tuned(path)?
        .into_iter()
        .map(|t| (t.optimizer.clone(), t))
        .collect();
    for t in entries {
        all.insert(t.optimizer.clone(), t.clone());
    }
    let list: Vec<&Tuned> = all.values().collect();
    write_atomic(path, serde_json::to_string_pretty(&list)?.as_bytes())?;
    Ok(())
}

/// Writes `tuning/<opt>.csv` (every candidate: generation, candidate, values, score).
///
/// # Errors
/// I/O errors.
pub fn write_tuning(dir: &Path, tunings: &[Tuning]) -> Result<()> {
    for t in tunings {
        let mut rows = Vec::new();
        for (g, cands) in t.outcome.generations.iter().enumerate() {
            for (i, c) in cands.iter().enumerate() {
                let mut row = vec![g.to_string(), i.to_string()];
                row.extend(c.values.iter().map(|v| format!("{v:e}")));
                row.push(format!("{:e}", c.score));
                rows.push(row);
            }
        }
        let mut cols = vec!["generation", "candidate"];
        cols.extend(t.fields.iter().map(|h| h.name));
        cols.push("score");
        let name = file_stem(t.start.kind().name());
        write_csv(
            &dir.join("tuning").join(format!("{name}.csv")),
            &cols,
            &rows,
        )?;
    }
    Ok(())
}

/// Writes one run's files: its curve, its Hessian error, and run 0's trajectory.
///
/// # Errors
/// I/O errors.
pub fn write_run_files(dir: &Path, label: &str, r: usize, rec: &RunRecord) -> std::io::Result<()> {
    let stem = file_stem(label);
    write_curve_csv(
        &dir.join("curves").join(&stem).join(format!("run{r}.csv")),
        &rec.curve,
    )?;
    if !rec.hessian.is_empty() {
        let rows: Vec<Vec<String>> = rec
            .hessian
            .iter()
            .map(|h| {
                vec![
                    h.step.to_string(),
                    format!("{:e}", h.probe),
                    format!("{:e}", h.exact),
                ]
            })
            .collect();
        write_csv(
            &dir.join("hessian").join(&stem).join(format!("run{r}.csv")),
            &["step", "probe", "exact"],
            &rows,
        )?;
    }
    if !rec.trajectory.is_empty() && r == 0 {
        let rows: Vec<Vec<String>> = rec
            .trajectory
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let mut row = vec![i.to_string()];
                row.extend(x.iter().map(|v| format!("{v:e}")));
                row
            })
            .collect();
        write_csv(
            &dir.join("trajectories").join(format!("{stem}.csv")),
            &["iteration", "x", "y"],
            &rows,
        )?;
    }
    Ok(())
}
