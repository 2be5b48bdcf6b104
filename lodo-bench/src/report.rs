//! Tables and files: run summaries, Markdown tables, CSV of learning curves, atomic writes.
//!
//! Generic over task and optimizer names, so any experiment (the synthetic tasks here, MNIST)
//! can use it:
//!
//! ```
//! use lodo_bench::report::{Summary, results_table};
//! let lodo = Summary::from_runs("LODO", &[8.0, 8.2], &[false, false], &[1000.0, 1100.0]);
//! let adam = Summary::from_runs("Adam", &[9.0, f64::INFINITY], &[false, true], &[5e4, 5e4]);
//! let md = results_table(&[lodo, adam], Some(7.41));
//! assert!(md.contains("| LODO | 8.1000 ± 0.10 | 0/2 |"));
//! assert!(md.contains("| Adam | 9.0000 ± 0 | 1/2 |"));
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use serde::Serialize;

/// Mean ± std over runs of one optimizer's final-window loss (the authors' table entry).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Row label (optimizer name).
    pub name: String,
    /// Runs in total.
    pub runs: usize,
    /// Runs that diverged (excluded from mean and std).
    pub diverged: usize,
    /// Mean over the non-diverged runs (NaN if none).
    pub mean: f64,
    /// Population standard deviation (`np.std`) over the non-diverged runs (NaN if none).
    pub std: f64,
    /// Mean steps per second over all runs that ran.
    pub steps_per_sec: f64,
}

impl Summary {
    /// Summarises runs given their final-window losses, divergence flags and speeds (equal
    /// lengths). A run counts as diverged if flagged or if its loss is not finite.
    ///
    /// # Panics
    /// If the slices differ in length.
    #[must_use]
    pub fn from_runs(name: &str, final_losses: &[f64], diverged: &[bool], speeds: &[f64]) -> Self {
        assert!(
            final_losses.len() == diverged.len() && diverged.len() == speeds.len(),
            "Summary::from_runs: slices differ in length"
        );
        let ok: Vec<f64> = final_losses
            .iter()
            .zip(diverged)
            .filter(|&(l, &d)| !d && l.is_finite())
            .map(|(&l, _)| l)
            .collect();
        let (mean, std) = if ok.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            let m = ok.iter().sum::<f64>() / ok.len() as f64;
            let v = ok.iter().map(|l| (l - m) * (l - m)).sum::<f64>() / ok.len() as f64;
            (m, v.sqrt())
        };
        let ran: Vec<f64> = speeds.iter().copied().filter(|s| *s > 0.0).collect();
        Self {
            name: name.to_string(),
            runs: final_losses.len(),
            diverged: final_losses.len() - ok.len(),
            mean,
            std,
            steps_per_sec: if ran.is_empty() {
                0.0
            } else {
                ran.iter().sum::<f64>() / ran.len() as f64
            },
        }
    }
}

/// `x` with `sig` significant digits: plain decimals for magnitudes in `[1e−3, 1e5)` that have
/// at most `sig` digits before the point, scientific (`1.234e-5`, `3.0e4`) otherwise; `∞`, `−∞` and `—` (NaN) for the rest.
#[must_use]
pub fn fmt_sig(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "—".into()
        } else if x > 0.0 {
            "∞".into()
        } else {
            "−∞".into()
        };
    }
    let sig = sig.clamp(1, 17);
    let a = x.abs();
    if a == 0.0 {
        return "0".into();
    }
    // Digits before the point: floor(log10 a) + 1 (≤ 5 in the plain range).
    let int_digits = a.log10().floor() as i64 + 1;
    if (1e-3..1e5).contains(&a) && int_digits <= sig as i64 {
        let decimals = (sig as i64 - int_digits).max(0) as usize;
        let s = format!("{x:.decimals$}");
        // Rounding may carry into a new leading digit (9.9996 → "10.000", 0.09999 → "0.100"):
        // one decimal less then.
        let carried = s
            .parse::<f64>()
            .is_ok_and(|r| r.abs() >= 10f64.powi(int_digits as i32));
        if carried && decimals > 0 {
            format!("{x:.prec$}", prec = decimals - 1)
        } else {
            s
        }
    } else {
        format!("{x:.prec$e}", prec = sig - 1)
    }
}

/// A number for a table or a sentence: 5 significant digits ([`fmt_sig`]).
#[must_use]
pub fn fmt_num(x: f64) -> String {
    fmt_sig(x, 5)
}

/// `values` formatted with the fewest significant digits, at least `min_sig`, at which values
/// that differ also print differently (up to 17 digits, where every `f64` is distinct).
#[must_use]
pub fn fmt_distinct(values: &[f64], min_sig: usize) -> Vec<String> {
    let mut sig = min_sig.clamp(1, 17);
    loop {
        let out: Vec<String> = values.iter().map(|&v| fmt_sig(v, sig)).collect();
        let clash = values.iter().enumerate().any(|(i, a)| {
            values[..i]
                .iter()
                .enumerate()
                .any(|(j, b)| (a - b).abs() > 0.0 && out[i] == out[j])
        });
        if !clash || sig >= 17 {
            return out;
        }
        sig += 1;
    }
}

/// A Markdown table `| optimizer | final-window loss (mean ± std) | diverged | steps/s |`, one row
/// per summary in the given order; with `floor`, a last column gives `mean / floor`. The means
/// have at least 5 significant digits, more where two different means would print alike
/// ([`fmt_distinct`]); the spreads have 2.
#[must_use]
pub fn results_table(summaries: &[Summary], floor: Option<f64>) -> String {
    let mut s = String::new();
    s.push_str("| optimizer | final-10% loss (mean ± std) | diverged | steps/s |");
    if floor.is_some() {
        s.push_str(" ÷ floor |");
    }
    s.push('\n');
    s.push_str("|---|---|---|---|");
    if floor.is_some() {
        s.push_str("---|");
    }
    s.push('\n');
    let means = fmt_distinct(&summaries.iter().map(|r| r.mean).collect::<Vec<_>>(), 5);
    for (r, mean) in summaries.iter().zip(means) {
        // A spread below 1e−12 of the mean is rounding (e.g. identical deterministic runs).
        let std = if r.std <= 1e-12 * r.mean.abs() {
            0.0
        } else {
            r.std
        };
        let _ = write!(
            s,
            "| {} | {mean} ± {} | {}/{} | {:.0} |",
            r.name,
            fmt_sig(std, 2),
            r.diverged,
            r.runs,
            r.steps_per_sec
        );
        if let Some(f) = floor {
            let _ = write!(s, " {} |", fmt_sig(r.mean / f, 4));
        }
        s.push('\n');
    }
    s
}

/// A Markdown table of hyperparameters: one row per `(optimizer, [(name, value)])`.
#[must_use]
pub fn hyperparameter_table(rows: &[(String, Vec<(String, f64)>)]) -> String {
    let mut s = String::from("| optimizer | hyperparameters |\n|---|---|\n");
    for (name, values) in rows {
        let hp: Vec<String> = values
            .iter()
            .map(|(k, v)| format!("{k} = {}", fmt_hparam(*v)))
            .collect();
        let _ = writeln!(s, "| {name} | {} |", hp.join(", "));
    }
    s
}

/// A hyperparameter value with 4 significant digits; values in `(0.99, 1)` (momenta, β) as
/// `1 − d` so that e.g. `β₂ = 0.99998` does not print as 1.
#[must_use]
pub fn fmt_hparam(v: f64) -> String {
    if v > 0.99 && v < 1.0 {
        return format!("1 − {:.3e}", 1.0 - v);
    }
    if v == 0.0 || ((1e-2..1e4).contains(&v.abs())) {
        format!("{}", (v * 1e4).round() / 1e4)
    } else {
        format!("{v:.3e}")
    }
}

/// Writes `bytes` to `path` atomically: to `path.tmp`, then renamed, so a reader (or a run
/// interrupted by Ctrl-C) never sees a half-written file. Creates missing parent folders.
///
/// # Errors
/// Any I/O error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_parts(path, &[bytes])
}

/// As [`write_atomic`], the file being the concatenation of `parts` (written in order, never
/// copied into one buffer).
///
/// # Errors
/// Any I/O error; `path` then keeps its previous contents.
pub fn write_atomic_parts(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = fs::File::create(&tmp)?;
        for part in parts {
            f.write_all(part)?;
        }
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Writes a CSV with the header `columns` and one row per entry of `rows`, atomically.
///
/// # Errors
/// Any I/O or CSV error.
pub fn write_csv(path: &Path, columns: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(columns)?;
    for r in rows {
        w.write_record(r)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Writes a learning curve `step,loss` (full precision) atomically.
///
/// # Errors
/// Any I/O error.
pub fn write_curve_csv(path: &Path, curve: &[(u64, f64)]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = curve
        .iter()
        .map(|(s, l)| vec![s.to_string(), format!("{l:e}")])
        .collect();
    write_csv(path, &["step", "loss"], &rows)
}

/// Reads a curve written by [`write_curve_csv`].
///
/// # Errors
/// Any I/O or parse error.
pub fn read_curve_csv(path: &Path) -> io::Result<Vec<(u64, f64)>> {
    let mut r = csv::Reader::from_path(path)?;
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec?;
        let bad = |_| io::Error::new(io::ErrorKind::InvalidData, "bad number in curve CSV");
        let s: u64 = rec.get(0).unwrap_or("").parse().map_err(|_| bad(()))?;
        let l: f64 = rec.get(1).unwrap_or("").parse().map_err(|_| bad(()))?;
        out.push((s, l));
    }
    Ok(out)
}

/// Writes summaries as CSV (`optimizer,runs,diverged,mean,std,steps_per_sec`).
///
/// # Errors
/// Any I/O error.
pub fn write_summary_csv(path: &Path, summaries: &[Summary]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.runs.to_string(),
                s.diverged.to_string(),
                format!("{:e}", s.mean),
                format!("{:e}", s.std),
                format!("{:.1}", s.steps_per_sec),
            ]
        })
        .collect();
    write_csv(
        path,
        &[
            "optimizer",
            "runs",
            "diverged",
            "mean",
            "std",
            "steps_per_sec",
        ],
        &rows,
    )
}

/// File-name form of a label: keeps `[A-Za-z0-9._-]`, maps the rest to `_`.
#[must_use]
pub fn file_stem(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
