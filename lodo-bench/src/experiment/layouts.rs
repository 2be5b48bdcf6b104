//! LODO's layouts in the harness (issues 12 and 17): how the block network's layer
//! permutations are drawn (`--permutations`) and how its optimizer state is stored
//! (`--state`) on the `bowl`, `rosenbrock` and `mnist` subcommands, and `reproduce`'s layout
//! table.
//!
//! A [`Layout`] is a permutation family and a state policy. Neither changes LODO's
//! hyperparameters:
//! - the family ([`PermutationFamily`]) decides how the layer permutations `P_l` are drawn:
//!   `Random` (the paper), `Shuffle` (the `k`-ary perfect shuffle
//!   `σ(j) = (j mod r)·k + ⌊j/r⌋`, `r = h/k`, in every layer) or `TiledShuffle { tile }` (`σ`
//!   followed by a uniformly random permutation inside each run of `tile` outputs);
//! - the state policy ([`StatePolicy`]) decides the precision Adam's moments of `θ` and the
//!   kept activations are stored in between steps (`full`: the working float, the paper's
//!   arithmetic; `bf16`; `q8`: 8-bit block-wise moments with bf16 activations; `q8-theta32`:
//!   q8 with `θ` itself held in f32, for f64 tasks).
//!
//! Each layout other than the paper's (`Random`, `full`) is run as its own LODO row
//! (`LODO-Shuffle`, `LODO-q8`, `LODO-Shuffle-q8`) at LODO's hyperparameters — `α₀`, `η`, `β`
//! as tuned (or loaded) for LODO, never re-tuned — so a difference between rows is the
//! layout's alone. Run `r` of every row sees the same task draw and the same LODO seed.
//!
//! The table ([`run_study`]) compares each layout of [`STUDY_LAYOUTS`] against the paper's
//! with Welch's t-test ([`crate::stats::welch`]) on the runs' final-10% losses, and on the bowl
//! also reports LODO's Hessian approximation error at the end of the runs.

use std::fmt;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result};
use lodo_core::{BlockConfig, PermutationFamily};

use super::TaskSpec;
use super::protocol::{Budget, Group, LodoRow, Plan, TaskResults, main_runs};
use crate::baselines::{LodoParams, LodoVariant, Optimizer, OptimizerKind, StatePolicy};
use crate::report::{fmt_num, write_csv};
use crate::stats::{Welch, mean_var, welch};

/// The tile of `tiled` without `:T`: 64 outputs. A default, not a measured optimum (with
/// `k = 4` a tile's outputs read a window of 256 inputs).
pub const DEFAULT_TILE: usize = 64;

/// The bowl dimension of the table's larger bowl (`h = 2,000`, `h/k = 500 ≫ k = 4`).
pub const LARGE_BOWL_DIM: usize = 1000;

/// The larger bowl runs `1/LARGE_BOWL_STEP_DIVISOR` of the bowl's steps: a LODO step there
/// costs about 23× one at n = 100 (measured on one thread: 641 against 14,855 steps/s, of which
/// the bowl's dense `n × n` product alone takes about 0.94 ms), so its full step count would
/// make `reproduce` several times longer.
pub const LARGE_BOWL_STEP_DIVISOR: u64 = 8;

/// How the block network is laid out: its permutation family and how its state is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The family of the layer permutations.
    pub family: PermutationFamily,
    /// The precision of the stored state.
    pub state: StatePolicy,
}

impl Layout {
    /// The paper's: `Random` permutations, the full state.
    pub const PAPER: Self = Self::new(PermutationFamily::Random, StatePolicy::Full);

    /// The layout with `family` and `state`.
    #[must_use]
    pub const fn new(family: PermutationFamily, state: StatePolicy) -> Self {
        Self { family, state }
    }

    /// Its short name: `Random`, `Shuffle`, `q8` (Random permutations), `Shuffle-q8`.
    #[must_use]
    pub fn name(self) -> String {
        match (self.family, self.state) {
            (f, StatePolicy::Full) => family_name(f),
            (PermutationFamily::Random, s) => s.name().into(),
            (f, s) => format!("{}-{}", family_name(f), s.name()),
        }
    }

    /// Its row label: `LODO` for the paper's, else `LODO-<name>`.
    #[must_use]
    pub fn label(self) -> String {
        if self == Self::PAPER {
            OptimizerKind::Lodo.name().into()
        } else {
            format!("{}-{}", OptimizerKind::Lodo.name(), self.name())
        }
    }

    /// Its row (the paper's block network, LODO's `β`).
    #[must_use]
    pub fn row(self) -> LodoRow {
        LodoRow {
            label: self.label(),
            variant: LodoVariant::block_with(self.family, self.state),
            beta: None,
        }
    }
}

/// The layouts of the table: the paper's first; the shuffle and the tiled shuffle at
/// [`DEFAULT_TILE`] with the full state; the paper's permutations with each compact state
/// (the harness's tasks are f64, so `q8-theta32`, `θ` held in f32, runs on every case).
pub const STUDY_LAYOUTS: [Layout; 6] = [
    Layout::PAPER,
    Layout::new(PermutationFamily::Shuffle, StatePolicy::Full),
    Layout::new(
        PermutationFamily::TiledShuffle { tile: DEFAULT_TILE },
        StatePolicy::Full,
    ),
    Layout::new(PermutationFamily::Random, StatePolicy::Bf16),
    Layout::new(PermutationFamily::Random, StatePolicy::Q8),
    Layout::new(PermutationFamily::Random, StatePolicy::Q8Theta32),
];

/// The significance level of the verdict (two-sided, uncorrected).
pub const ALPHA: f64 = 0.05;

/// A family's short name: `Random`, `Shuffle`, `Tiled64`.
#[must_use]
pub fn family_name(family: PermutationFamily) -> String {
    match family {
        PermutationFamily::Random => "Random".into(),
        PermutationFamily::Shuffle => "Shuffle".into(),
        PermutationFamily::TiledShuffle { tile } => format!("Tiled{tile}"),
    }
}

/// The rows `--permutations` and `--state` add to LODO's: one per layout of the two lists'
/// product other than the paper's (LODO itself is that row and always runs), families outer.
#[must_use]
pub fn layout_rows(families: &FamilyList, states: &StateList) -> Vec<LodoRow> {
    families
        .families()
        .iter()
        .flat_map(|&f| states.states().iter().map(move |&s| Layout::new(f, s)))
        .filter(|&l| l != Layout::PAPER)
        .map(Layout::row)
        .collect()
}

/// The `--state` list: distinct policies in the order given (case-insensitive, comma-separated:
/// `full`, `bf16`, `q8`, `q8-theta32`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateList(Vec<StatePolicy>);

impl Default for StateList {
    /// `full` only.
    fn default() -> Self {
        Self(vec![StatePolicy::Full])
    }
}

impl StateList {
    /// The policies, in the order given.
    #[must_use]
    pub fn states(&self) -> &[StatePolicy] {
        &self.0
    }
}

impl FromStr for StateList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out: Vec<StatePolicy> = Vec::new();
        for item in s.split(',') {
            if item.trim().is_empty() {
                return Err("empty state policy; known: full, bf16, q8, q8-theta32".into());
            }
            let p: StatePolicy = item.parse()?;
            if out.contains(&p) {
                return Err(format!("state policy {p} is listed twice"));
            }
            out.push(p);
        }
        Ok(Self(out))
    }
}

impl fmt::Display for StateList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|p| p.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// Why a `--permutations` list was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FamilyError {
    /// An empty list or an empty item (`random,,shuffle`).
    Empty,
    /// No family has this name.
    Unknown(String),
    /// `tiled:T` with `T` not a whole number.
    BadTile(String),
    /// `tiled:0`.
    ZeroTile,
    /// `tiled:T` with `T` not a multiple of the block size `k` (the streaming kernels read
    /// whole blocks inside a tile).
    TileNotMultipleOfBlock {
        /// The tile asked for.
        tile: usize,
        /// The block size of the harness's network.
        block_size: usize,
    },
    /// The same family twice (`tiled` and `tiled:64` are the same family).
    Duplicate(String),
}

impl fmt::Display for FamilyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KNOWN: &str = "known: random, shuffle, tiled, tiled:T (T a multiple of k = 4)";
        match self {
            Self::Empty => write!(f, "empty permutation family; {KNOWN}"),
            Self::Unknown(s) => write!(f, "unknown permutation family {s:?}; {KNOWN}"),
            Self::BadTile(s) => write!(
                f,
                "the tile of {s:?} is not a whole number; write tiled:T with T ≥ 1"
            ),
            Self::ZeroTile => f.write_str("the tile must hold at least 1 output (tiled:T, T ≥ 1)"),
            Self::TileNotMultipleOfBlock { tile, block_size } => write!(
                f,
                "tiled:{tile}: the tile must be a multiple of the block size k = {block_size}"
            ),
            Self::Duplicate(s) => write!(f, "permutation family {s} is listed twice"),
        }
    }
}

impl std::error::Error for FamilyError {}

/// The `--permutations` list: distinct families in the order given (case-insensitive names,
/// comma-separated): `random`, `shuffle`, `tiled` (tile [`DEFAULT_TILE`]) or `tiled:T`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyList(Vec<PermutationFamily>);

impl Default for FamilyList {
    /// `random` only.
    fn default() -> Self {
        Self(vec![PermutationFamily::Random])
    }
}

impl FamilyList {
    /// The families, in the order given.
    #[must_use]
    pub fn families(&self) -> &[PermutationFamily] {
        &self.0
    }
}

/// One family name: `random`, `shuffle`, `tiled`, `tiled:T`.
fn parse_family(item: &str) -> Result<PermutationFamily, FamilyError> {
    let key = item.trim().to_ascii_lowercase();
    let (name, tile) = match key.split_once(':') {
        Some((n, t)) => (n, Some(t)),
        None => (key.as_str(), None),
    };
    match (name, tile) {
        ("", None) => Err(FamilyError::Empty),
        ("random", None) => Ok(PermutationFamily::Random),
        ("shuffle", None) => Ok(PermutationFamily::Shuffle),
        ("tiled", None) => Ok(PermutationFamily::TiledShuffle { tile: DEFAULT_TILE }),
        ("tiled", Some(t)) => match t.parse::<usize>() {
            Ok(0) => Err(FamilyError::ZeroTile),
            Ok(tile) => {
                let block_size = match LodoVariant::BLOCK {
                    LodoVariant::Block { block_size, .. } => block_size,
                    _ => unreachable!("BLOCK is the block network"),
                };
                if tile.is_multiple_of(block_size) {
                    Ok(PermutationFamily::TiledShuffle { tile })
                } else {
                    Err(FamilyError::TileNotMultipleOfBlock { tile, block_size })
                }
            }
            Err(_) => Err(FamilyError::BadTile(item.trim().to_string())),
        },
        _ => Err(FamilyError::Unknown(item.trim().to_string())),
    }
}

impl FromStr for FamilyList {
    type Err = FamilyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out: Vec<PermutationFamily> = Vec::new();
        for item in s.split(',') {
            let f = parse_family(item)?;
            if out.contains(&f) {
                return Err(FamilyError::Duplicate(family_name(f)));
            }
            out.push(f);
        }
        Ok(Self(out))
    }
}

impl fmt::Display for FamilyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .0
            .iter()
            .map(|p| match p {
                PermutationFamily::Random => "random".into(),
                PermutationFamily::Shuffle => "shuffle".into(),
                PermutationFamily::TiledShuffle { tile } => format!("tiled:{tile}"),
            })
            .collect();
        f.write_str(&names.join(","))
    }
}

/// One task of the table: LODO's hyperparameters and the budget.
#[derive(Clone, Debug)]
pub struct LayoutCase {
    /// Folder name under the table's output folder.
    pub key: String,
    /// Row title.
    pub title: String,
    /// The task.
    pub spec: TaskSpec,
    /// LODO's hyperparameters (its variant is replaced by each layout's block network).
    pub lodo: LodoParams,
    /// Where LODO's hyperparameters come from.
    pub source: String,
    /// Runs per layout.
    pub runs: usize,
    /// Steps per run.
    pub steps: u64,
    /// Hessian-error measurements per run (bowl only; 0: none), with 100 probes each.
    pub hessian_points: u64,
    /// The paper's layout's runs if they were already made with this case's task,
    /// hyperparameters, runs, steps, Hessian points and seeds (the main runs' LODO group), so
    /// they are not run again.
    pub random: Option<Group>,
}

/// LODO's hyperparameters in a task's results (`None` if LODO was not among its optimizers).
#[must_use]
pub fn lodo_params(res: &TaskResults) -> Option<LodoParams> {
    res.tuned.iter().find_map(|s| match s.optimizer {
        Optimizer::Lodo(p) if s.optimizer.kind() == OptimizerKind::Lodo => Some(p),
        _ => None,
    })
}

/// `reproduce`'s cases: each task with its LODO hyperparameters, runs, steps and Hessian
/// points, and its main runs' LODO group as the paper's row (the same runs: same seeds, steps,
/// hyperparameters and Hessian points); after the bowl, the same bowl at
/// `n = LARGE_BOWL_DIM` with the bowl's LODO hyperparameters (tuned at its own `n`) and
/// `1/LARGE_BOWL_STEP_DIVISOR` of its steps.
///
/// # Errors
/// A task without LODO among its optimizers.
pub fn reproduce_cases(results: &[&TaskResults]) -> Result<Vec<LayoutCase>> {
    let mut cases = Vec::new();
    for res in results {
        let lodo = lodo_params(res)
            .with_context(|| format!("the {} results have no LODO", res.spec.name()))?;
        let b = &res.budget;
        // The main runs' LODO is this case's Random row when it has every run.
        let random = res.lodo().filter(|g| g.runs.len() == b.runs).cloned();
        match &res.spec {
            TaskSpec::Bowl(o) => {
                cases.push(LayoutCase {
                    key: format!("bowl-n{}", o.dim),
                    title: bowl_title(o),
                    spec: res.spec.clone(),
                    lodo,
                    source: "LODO's, tuned on this bowl".into(),
                    runs: b.runs,
                    steps: b.steps,
                    hessian_points: b.hessian_points,
                    random,
                });
                let large = crate::tasks::BowlOptions {
                    dim: LARGE_BOWL_DIM,
                    ..*o
                };
                cases.push(LayoutCase {
                    key: format!("bowl-n{LARGE_BOWL_DIM}"),
                    title: bowl_title(&large),
                    spec: TaskSpec::Bowl(large),
                    lodo,
                    source: format!("LODO's, tuned on the n = {} bowl", o.dim),
                    runs: b.runs,
                    steps: (b.steps / LARGE_BOWL_STEP_DIVISOR).max(1),
                    // 100 probes of an n × n product per point: about a minute of the
                    // table on 2 cores at n = 1,000, for a curve the n = 100 bowl gives.
                    hessian_points: 0,
                    random: None,
                });
            }
            spec => cases.push(LayoutCase {
                key: spec.name().into(),
                title: match spec {
                    TaskSpec::Rosenbrock => "Rosenbrock".into(),
                    other => other.name().into(),
                },
                spec: spec.clone(),
                lodo,
                source: "LODO's, tuned on this task".into(),
                runs: b.runs,
                steps: b.steps,
                hessian_points: 0,
                random,
            }),
        }
    }
    Ok(cases)
}

/// `Noisy bowl, n = 100 (floor 7.41)`: the Newton floor says how far from converged a loss is.
fn bowl_title(o: &crate::tasks::BowlOptions) -> String {
    format!("Noisy bowl, n = {} (floor {:.2})", o.dim, o.newton_floor())
}

/// One layout's runs in one case.
#[derive(Clone, Debug)]
pub struct LayoutResult {
    /// The layout.
    pub layout: Layout,
    /// LODO's hidden width `h` with this layout on this task (the structured families round
    /// `2n` up to a multiple of `k²`, random to a multiple of `k`).
    pub hidden: usize,
    /// Final-10% losses of the runs that did not diverge.
    pub losses: Vec<f64>,
    /// Runs in all.
    pub runs: usize,
    /// Mean of `losses` (NaN if empty).
    pub mean: f64,
    /// Sample standard deviation of `losses` (`n − 1`; NaN below 2 runs).
    pub std: f64,
    /// Mean steps per second.
    pub steps_per_sec: f64,
    /// Welch's test against the paper's layout (`None` for that layout itself; `Err` if not
    /// computable).
    pub test: Option<Result<Welch, crate::stats::StatsError>>,
    /// LODO's Hessian approximation error `‖I − G·H‖_F/√n` (100 probes) at the last
    /// measurement, mean over the runs that have one (`None`: not measured).
    pub hessian: Option<f64>,
}

impl LayoutResult {
    /// `(mean − mean_paper)/mean_paper` in percent.
    #[must_use]
    pub fn relative(&self, random: &LayoutResult) -> f64 {
        100.0 * (self.mean - random.mean) / random.mean
    }
}

/// One case of the table.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case.
    pub case: LayoutCase,
    /// One result per layout, the paper's first.
    pub layouts: Vec<LayoutResult>,
    /// Wall seconds.
    pub seconds: f64,
}

/// The whole table.
#[derive(Clone, Debug)]
pub struct LayoutStudy {
    /// The cases in order.
    pub cases: Vec<CaseResult>,
    /// Wall seconds of all of it.
    pub seconds: f64,
}

/// The summary of one layout's group of runs, with Welch's test against `random` (the paper's
/// layout's losses) if given; [`LayoutResult::hessian`] is left `None`.
#[must_use]
pub fn summarize(
    layout: Layout,
    hidden: usize,
    finals: &[f64],
    diverged: &[bool],
    speeds: &[f64],
    random: Option<&[f64]>,
) -> LayoutResult {
    let losses: Vec<f64> = finals
        .iter()
        .zip(diverged)
        .filter(|&(l, &d)| !d && l.is_finite())
        .map(|(&l, _)| l)
        .collect();
    let (mean, std) = match mean_var(&losses) {
        Ok((m, v)) => (m, v.sqrt()),
        Err(_) if losses.len() == 1 => (losses[0], f64::NAN),
        Err(_) => (f64::NAN, f64::NAN),
    };
    let ran: Vec<f64> = speeds.iter().copied().filter(|s| *s > 0.0).collect();
    LayoutResult {
        layout,
        hidden,
        runs: finals.len(),
        mean,
        std,
        steps_per_sec: ran.iter().sum::<f64>() / ran.len().max(1) as f64,
        test: random.map(|r| welch(&losses, r)),
        losses,
        hessian: None,
    }
}

/// The mean over `g`'s runs of each run's last Hessian-error measurement (probes).
fn final_hessian(g: &Group) -> Option<f64> {
    let last: Vec<f64> = g
        .runs
        .iter()
        .filter_map(|r| r.hessian.last().map(|h| h.probe))
        .collect();
    (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64)
}

/// Runs every case: [`STUDY_LAYOUTS`] at the case's LODO hyperparameters, `runs` seeded runs
/// each (the main runs' seeds, so run `r` of every layout shares its task draw and LODO seed;
/// the paper's layout is taken from [`LayoutCase::random`] when given); writes each run's curve
/// under `out/<case>/curves/`, on the bowl the Hessian-error figure
/// `out/<case>/hessian_error.svg`, and `out/layouts.csv`.
///
/// # Errors
/// [`super::Interrupted`] (wrapped), I/O errors.
pub fn run_study(cases: &[LayoutCase], seed: u64, out: &Path) -> Result<LayoutStudy> {
    let start = Instant::now();
    let mut done = Vec::new();
    for case in cases {
        let t0 = Instant::now();
        let plan = Plan {
            spec: case.spec.clone(),
            tune_spec: None,
            optimizers: Vec::new(),
            ablations: Vec::new(),
            families: Vec::new(),
            budget: Budget {
                runs: case.runs,
                steps: case.steps,
                schedule: Vec::new(),
                curve_points: 500,
                hessian_points: case.hessian_points,
                hessian_probes: 100,
            },
            tune: None,
            reuse: false,
            frozen: false,
            keep_final: false,
            seed,
            out: out.join(&case.key),
            checkpoint: None,
            clock: super::Clock::Wall,
        };
        let rows: Vec<(String, Optimizer)> = STUDY_LAYOUTS
            .iter()
            .filter(|&&l| case.random.is_none() || l != Layout::PAPER)
            .map(|&l| (l.label(), l.row().optimizer(&case.lodo)))
            .collect();
        let mut groups: Vec<Group> = case.random.iter().cloned().collect();
        groups.extend(main_runs(
            &plan,
            &rows,
            &format!("LODO layouts {}", case.key),
        )?);
        let mut layouts: Vec<LayoutResult> = Vec::new();
        for (&layout, g) in STUDY_LAYOUTS.iter().zip(&groups) {
            let finals: Vec<f64> = g.runs.iter().map(|r| r.final_loss).collect();
            let diverged: Vec<bool> = g.runs.iter().map(|r| r.diverged).collect();
            let speeds: Vec<f64> = g.runs.iter().map(|r| r.steps_per_sec).collect();
            let random = layouts.first().map(|r| r.losses.as_slice());
            let hidden = BlockConfig::<f64>::default()
                .with_permutations(layout.family)
                .and_then(|c| c.hidden_for(case.spec.dim()))
                .unwrap_or(0);
            let mut r = summarize(layout, hidden, &finals, &diverged, &speeds, random);
            r.hessian = final_hessian(g);
            layouts.push(r);
        }
        if let Some(c) = super::figures::hessian_chart(
            &format!("{}: LODO's Hessian error by layout", case.title),
            &groups,
        ) {
            c.draw_in_range(
                &plan.out.join("hessian_error"),
                Some(super::figures::error_range(&c)),
            )?;
        }
        done.push(CaseResult {
            case: case.clone(),
            layouts,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    let study = LayoutStudy {
        cases: done,
        seconds: start.elapsed().as_secs_f64(),
    };
    study.write_csv(&out.join("layouts.csv"))?;
    Ok(study)
}

/// Whether `g` is a layout row (`--permutations`, `--state`): LODO's block network under a
/// label other than `LODO` itself (ablations and sweeps live in other groups).
#[must_use]
pub fn is_layout_row(g: &Group) -> bool {
    matches!(g.optimizer, Optimizer::Lodo(p) if matches!(p.variant, LodoVariant::Block { .. }))
        && g.label != OptimizerKind::Lodo.name()
        && g.label.starts_with("LODO-")
}

/// `values` of the runs of `g` that did not diverge and are finite (`values[r]` belongs to run
/// `r`).
#[must_use]
pub fn kept(g: &Group, values: &[f64]) -> Vec<f64> {
    g.runs
        .iter()
        .zip(values)
        .filter(|(r, l)| !r.diverged && l.is_finite())
        .map(|(_, &l)| l)
        .collect()
}

/// `a` against `b`: the difference of the means in percent of `b`'s, and Welch's t-test
/// (two-sided), e.g. `+0.12 % (t = 0.35, df = 13.9, p = 0.730)`.
#[must_use]
pub fn welch_line(a: &[f64], b: &[f64]) -> String {
    match welch(a, b) {
        Ok(w) => {
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let (ma, mb) = (mean(a), mean(b));
            format!(
                "{:+.2} % (t = {:.2}, df = {:.1}, p = {})",
                100.0 * (ma - mb) / mb,
                w.t,
                w.df,
                fmt_p(w.p)
            )
        }
        Err(e) => format!("no test ({e})"),
    }
}

/// The part of a synthetic task's report that tests each layout row of the main runs against
/// LODO itself (Welch's t on the final-10% losses of the non-diverged runs) and gives each
/// row's last Hessian error (the mean of the runs' last probe estimate, on the bowl); `None`
/// without layout rows or without LODO.
#[must_use]
pub fn layout_section(main: &[Group]) -> Option<String> {
    let base = main
        .iter()
        .find(|g| g.label == OptimizerKind::Lodo.name())?;
    let finals = |g: &Group| -> Vec<f64> { g.runs.iter().map(|r| r.final_loss).collect() };
    let base_finals = kept(base, &finals(base));
    let hessian = |g: &Group| {
        final_hessian(g).map_or(String::new(), |h| {
            format!("; last Hessian error {}", fmt_num(h))
        })
    };
    let lines: Vec<String> = main
        .iter()
        .filter(|g| is_layout_row(g))
        .map(|g| {
            format!(
                "- {} against LODO: {}{}.\n",
                g.label,
                welch_line(&kept(g, &finals(g)), &base_finals),
                hessian(g)
            )
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    Some(format!(
        "LODO's layouts (`--permutations`, `--state`) against LODO itself, at LODO's values: \
         difference of the final-10% means, Welch's t-test (two-sided; non-diverged runs; run r \
         of every row sees the same task draw and LODO seed){}.\n\n{}",
        final_hessian(base).map_or(String::new(), |h| format!(
            "; LODO's last Hessian error {}",
            fmt_num(h)
        )),
        lines.concat()
    ))
}

/// A p-value for text: three decimals, or scientific below 0.001.
#[must_use]
pub fn fmt_p(p: f64) -> String {
    if p >= 1e-3 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// A signed percentage with two decimals (`+0.31 %`, `−2.10 %`).
fn fmt_pct(x: f64) -> String {
    if x < 0.0 {
        format!("−{:.2} %", -x)
    } else {
        format!("+{x:.2} %")
    }
}

/// The verdict on one layout against the paper's, from its test.
#[must_use]
pub fn layout_verdict(f: &LayoutResult, paper: &LayoutResult) -> String {
    let name = f.layout.name();
    let base = paper.layout.name();
    match &f.test {
        Some(Ok(w)) if w.p < ALPHA => format!(
            "{name} is {:.2} % {} than {base} (p = {})",
            f.relative(paper).abs(),
            if f.mean > paper.mean {
                "worse"
            } else {
                "better"
            },
            fmt_p(w.p)
        ),
        Some(Ok(w)) => format!(
            "{name}: no difference detected ({}, p = {})",
            fmt_pct(f.relative(paper)),
            fmt_p(w.p)
        ),
        Some(Err(e)) => format!("{name}: no test ({e})"),
        None => format!("{name}: no test"),
    }
}

impl CaseResult {
    /// The case's part of the verdict: `<title>: <layout verdicts>`.
    #[must_use]
    pub fn verdict(&self) -> String {
        let Some((paper, rest)) = self.layouts.split_first() else {
            return format!("{}: no runs", self.case.title);
        };
        let parts: Vec<String> = rest.iter().map(|f| layout_verdict(f, paper)).collect();
        format!("{}: {}", self.case.title, parts.join(", "))
    }
}

impl LayoutStudy {
    /// The number of tests (layouts other than the paper's × cases).
    #[must_use]
    pub fn comparisons(&self) -> usize {
        self.cases
            .iter()
            .map(|c| c.layouts.len().saturating_sub(1))
            .sum()
    }

    /// The one-sentence verdict, computed from the tests.
    #[must_use]
    pub fn verdict(&self) -> String {
        let parts: Vec<String> = self.cases.iter().map(CaseResult::verdict).collect();
        format!(
            "Verdict (Welch's t, two-sided, {} % level, {} comparisons uncorrected): {}.",
            ALPHA * 100.0,
            self.comparisons(),
            parts.join("; ")
        )
    }

    /// Writes the table as CSV
    /// (`case,family,state,dim,steps,runs,diverged,mean,std,rel_pct,t,df,p,hessian_error`).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        let mut rows = Vec::new();
        for c in &self.cases {
            let paper = c.layouts.first();
            for f in &c.layouts {
                let (t, df, p) = match &f.test {
                    Some(Ok(w)) => (
                        format!("{:e}", w.t),
                        format!("{:e}", w.df),
                        format!("{:e}", w.p),
                    ),
                    _ => (String::new(), String::new(), String::new()),
                };
                rows.push(vec![
                    c.case.key.clone(),
                    family_name(f.layout.family),
                    f.layout.state.name().into(),
                    c.case.spec.dim().to_string(),
                    c.case.steps.to_string(),
                    f.runs.to_string(),
                    (f.runs - f.losses.len()).to_string(),
                    format!("{:e}", f.mean),
                    format!("{:e}", f.std),
                    paper.map_or(String::new(), |r| format!("{:e}", f.relative(r))),
                    t,
                    df,
                    p,
                    f.hessian.map_or(String::new(), |h| format!("{h:e}")),
                ]);
            }
        }
        write_csv(
            path,
            &[
                "case",
                "family",
                "state",
                "dim",
                "steps",
                "runs",
                "diverged",
                "mean",
                "std",
                "rel_pct",
                "t",
                "df",
                "p",
                "hessian_error",
            ],
            &rows,
        )
    }

    /// The report's section: the table, how it was made, the verdict.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut s =
            String::from("## LODO's layouts: permutation families and the stored state\n\n");
        let _ = writeln!(
            s,
            "LODO with each layout of its block network. Permutation families \
             (`PermutationFamily`): Random (the paper), Shuffle (the k-ary perfect shuffle in \
             every layer), Tiled{DEFAULT_TILE} (the shuffle, then a random permutation inside \
             each tile of {DEFAULT_TILE} outputs; {DEFAULT_TILE} is a default, not a measured \
             optimum). Stored state (`--state`): full (moments and kept activations in the \
             working float, f64 here: the paper's arithmetic), bf16 (Adam's moments in bf16 \
             with seeded stochastic rounding, activations in bf16), q8 (moments in 8-bit \
             block-wise log codes, activations in bf16), q8-theta32 (q8, and θ itself held \
             in f32 between steps; the arithmetic stays in f64). Every layout runs at LODO's α₀, η, β \
             (not re-tuned), N = 16, k = 4; run r of every layout sees the same task draw and \
             the same LODO seed. Final-10% loss: mean ± sample std (n − 1) over the \
             non-diverged runs; Δ = difference of means relative to the paper's layout \
             (Random, full); Welch's t-test of each layout against it (t, Welch–Satterthwaite \
             df, two-sided p; Student's t through the regularized incomplete beta function, \
             `lodo_bench::stats`); H err = LODO's Hessian approximation error ‖I − G·H‖_F/√n \
             (100 probes) at the last measurement, mean over runs (bowl only; its curve is \
             `layouts/<case>/hessian_error.svg`). Wall time {:.0} s ({}). Files: \
             `layouts/layouts.csv`, `layouts/<case>/curves/`.",
            self.seconds,
            self.cases
                .iter()
                .map(|c| format!("{}: {:.0} s", c.case.key, c.seconds))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let reused: Vec<&str> = self
            .cases
            .iter()
            .filter(|c| c.case.random.is_some())
            .map(|c| c.case.title.as_str())
            .collect();
        if !reused.is_empty() {
            let _ = writeln!(
                s,
                "The paper's layout on {} is the main table's LODO (the same runs), not run \
                 again.",
                reused.join(" and ")
            );
        }
        s.push('\n');
        s.push_str(
            "| task | steps | LODO's hyperparameters | family | state | h | final-10% loss | Δ | t | df | p | H err | diverged | steps/s |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for c in &self.cases {
            let paper = c.layouts.first();
            for (i, f) in c.layouts.iter().enumerate() {
                let head = if i == 0 {
                    format!(
                        "{} | {} | α₀ = {}, η = {}, β = {} ({})",
                        c.case.title,
                        c.case.steps,
                        fmt_num(c.case.lodo.alpha0),
                        fmt_sci(c.case.lodo.meta_lr),
                        fmt_num(c.case.lodo.beta),
                        c.case.source
                    )
                } else {
                    " | | ".into()
                };
                let (t, df, p) = match &f.test {
                    Some(Ok(w)) => (fmt_signed(w.t), format!("{:.1}", w.df), fmt_p(w.p)),
                    Some(Err(_)) => ("n/a".into(), "n/a".into(), "n/a".into()),
                    None => ("—".into(), "—".into(), "—".into()),
                };
                let delta = match (i, paper) {
                    (0, _) | (_, None) => "—".into(),
                    (_, Some(r)) => fmt_pct(f.relative(r)),
                };
                let _ = writeln!(
                    s,
                    "| {head} | {} | {} | {} | {} ± {} | {delta} | {t} | {df} | {p} | {} | {}/{} | {:.0} |",
                    family_name(f.layout.family),
                    f.layout.state.name(),
                    f.hidden,
                    fmt_num(f.mean),
                    fmt_num(f.std),
                    f.hessian.map_or("—".into(), |h| format!("{h:.3}")),
                    f.runs - f.losses.len(),
                    f.runs,
                    f.steps_per_sec
                );
            }
        }
        let _ = writeln!(s, "\n{}\n", self.verdict());
        s
    }
}

/// `t` with two decimals and a typographic minus (as the Δ column).
fn fmt_signed(x: f64) -> String {
    if x < 0.0 {
        format!("−{:.2}", -x)
    } else {
        format!("{x:.2}")
    }
}

/// A value like `9.6e-4` for a table.
fn fmt_sci(x: f64) -> String {
    format!("{x:.3e}")
}
