//! Experiment runners: one run of a minimizer on a task with its metrics ([`run`]), seeds, the
//! task catalogue ([`TaskSpec`]), and the paper's protocol, split by what each part does:
//!
//! | module | does |
//! |---|---|
//! | [`protocol`] | runs: tuning, main runs, ablations, the frozen test, for every task (MNIST too) |
//! | [`checkpoint`] | checkpoints of runs in progress (`mnist --checkpoint-every`, `--resume`) |
//! | [`claims`] | the paper's claims, checked against the results |
//! | [`files`] | writes and reads files: `tuned.json`, tuning and curve CSVs, summaries |
//! | [`figures`] | draws the figures |
//! | [`markdown`] | formats the Markdown report |
//! | [`layouts`] | LODO's layouts (permutation family, stored state): `--permutations`, `--state` and `reproduce`'s table |
//! | [`progress`] | progress bars on a terminal, plain lines otherwise |

pub mod checkpoint;
pub mod claims;
pub mod figures;
pub mod files;
pub mod layouts;
pub mod markdown;
pub mod progress;
pub mod protocol;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use lodo_core::random::Stream;
use lodo_core::{Real, lit};
use serde::{Deserialize, Serialize};

use crate::baselines::{BuildContext, Optimizer};
use crate::mnist::task::MnistTask;
use crate::task::{Minimizer, StateFloat, Task};
use crate::tasks::{BowlOptions, NoisyQuadraticBowl, Rosenbrock};

/// What "diverged" means in every table and report of the harness (one definition, applied by
/// [`run`] to [`RunRecord::diverged`]).
pub const DIVERGED: &str = "a run *diverged* if its loss became non-finite or a step was \
refused (non-finite), or if it ended worse than it started: its final-10% loss is above the loss \
its starting point x₀ has over the same steps on the same samples (on the bowl, whose centre walks \
away from x₀, that is about ½·tr(H)·t, measured at every step of the window; on Rosenbrock \
f(x₀); on MNIST the initial network's loss on 4 of the window's batches). Diverged runs are \
counted in the \"diverged\" column and left out of mean ± std";

/// Set by the Ctrl-C handler; runs poll it and stop with [`Interrupted`].
pub static STOP: AtomicBool = AtomicBool::new(false);

/// A run stopped because [`STOP`] was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Whether `e` is (or wraps) [`Interrupted`].
#[must_use]
pub fn is_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Interrupted>())
}

/// SplitMix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed derived from `base` and a path of indices (SplitMix64 chained): independent streams for
/// every (experiment, optimizer, run) without shared state, so results do not depend on the order
/// or thread in which runs execute.
#[must_use]
pub fn derive_seed(base: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(base), |acc, &p| mix(acc ^ mix(p)))
}

/// The MNIST autoregression task of a run: training images and batch size (paper §5.2).
#[derive(Clone, PartialEq)]
pub struct MnistSpec {
    /// Training images, `n·784` bytes.
    pub images: Arc<Vec<u8>>,
    /// Images per step.
    pub batch: usize,
    /// LARS's layers (the network's tensors).
    pub layer_starts: Vec<usize>,
}

impl std::fmt::Debug for MnistSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MnistSpec {{ images: {}, batch: {} }}",
            self.images.len() / crate::mnist::net::PIX,
            self.batch
        )
    }
}

/// A task of the harness, buildable from a seed.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskSpec {
    /// The noisy quadratic bowl; the seed draws the eigenvectors and the random walk.
    Bowl(BowlOptions),
    /// The Rosenbrock variant (deterministic).
    Rosenbrock,
    /// MNIST autoregression (f32); the seed draws the initial network and the batches.
    Mnist(MnistSpec),
}

impl TaskSpec {
    /// The task's name (`"bowl"`, `"rosenbrock"`, `"mnist"`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bowl(_) => "bowl",
            Self::Rosenbrock => "rosenbrock",
            Self::Mnist(_) => "mnist",
        }
    }

    /// The task's part of derived seeds.
    #[must_use]
    pub fn id(&self) -> u64 {
        match self {
            Self::Bowl(_) => 1,
            Self::Rosenbrock => 2,
            Self::Mnist(_) => 3,
        }
    }

    /// Dimension.
    #[must_use]
    pub fn dim(&self) -> usize {
        match self {
            Self::Bowl(o) => o.dim,
            Self::Rosenbrock => 2,
            Self::Mnist(_) => crate::mnist::net::N_PARAMS,
        }
    }

    /// A fresh f64 task (the bowl, Rosenbrock).
    ///
    /// # Errors
    /// Invalid bowl options, or an f32 task (MNIST).
    pub fn make(&self, seed: u64) -> Result<Box<dyn Task<f64>>, String> {
        Ok(match self {
            Self::Bowl(o) => Box::new(NoisyQuadraticBowl::new(*o, seed)?),
            Self::Rosenbrock => Box::new(Rosenbrock),
            Self::Mnist(_) => return Err("MNIST runs in f32".into()),
        })
    }

    /// How often a main run measures the loss of `x₀` in its final window
    /// ([`RunOptions::start_points`]): every step on the bowl (an `O(n²)` evaluation, its centre
    /// moves each step), once on the deterministic Rosenbrock, on 4 batches on MNIST (a
    /// forward and backward pass each).
    #[must_use]
    pub fn start_points(&self) -> usize {
        match self {
            Self::Bowl(_) => usize::MAX,
            Self::Rosenbrock => 1,
            Self::Mnist(_) => 4,
        }
    }

    /// The loss floor drawn on plots (the bowl's Newton reference).
    #[must_use]
    pub fn floor(&self) -> Option<f64> {
        match self {
            Self::Bowl(o) => Some(o.newton_floor()),
            Self::Rosenbrock | Self::Mnist(_) => None,
        }
    }

    /// The build context of a run of `steps` evaluations.
    #[must_use]
    pub fn context(&self, steps: u64, seed: u64) -> BuildContext {
        BuildContext {
            dim: self.dim(),
            total_steps: steps,
            seed,
            // The authors split Rosenbrock's two coordinates into two LARS "layers".
            layer_starts: match self {
                Self::Bowl(_) => None,
                Self::Rosenbrock => Some(vec![0, 1]),
                Self::Mnist(m) => Some(m.layer_starts.clone()),
            },
            hessian_vector: !matches!(self, Self::Mnist(_)),
        }
    }
}

/// What [`run`] records besides the loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunOptions {
    /// Budget of loss-gradient evaluations (iterations × evaluations per iteration).
    pub steps: u64,
    /// Points kept of the learning curve (each the mean loss over its bin of iterations).
    pub curve_points: usize,
    /// Measure the Hessian error every this many evaluations (0: never); needs a minimizer with
    /// a preconditioner and a task with Hessian-vector products.
    pub hessian_every: u64,
    /// Random probes per Hessian-error measurement (the authors use 100).
    pub hessian_probes: usize,
    /// Also compute the exact `‖I − GH‖_F/√n` from dense `G` and `H` when `n ≤` this.
    pub exact_hessian_max_dim: usize,
    /// Keep every iterate (for trajectory plots; only sensible for small problems).
    pub trajectory: bool,
    /// Keep the final point (MNIST's test loss and sampled digits).
    pub keep_final: bool,
    /// Evaluate the loss of the starting point `x₀` at this many evenly spaced iterations of the
    /// final window, on the samples the run sees there (0: never), for
    /// [`RunRecord::start_loss`]; `usize::MAX`: at every iteration of the window.
    pub start_points: usize,
    /// Gaussian probes of [`g_movement`] at every curve point (0: never), for
    /// [`RunRecord::g_movement`]; `α₀` is read off `G` before the first step (`G = α₀I` there).
    pub g_movement_probes: usize,
    /// The clock of [`RunRecord::times`] and [`RunRecord::seconds`].
    pub clock: Clock,
}

/// Which clock a run's seconds come from.
///
/// `Wall` is the time a user waits; on a shared or loaded machine it also counts the time the
/// run waited for a core. `Cpu` is the process's CPU time (user + system, every thread; on Unix,
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`), which other processes do not inflate; it belongs
/// to one run only if runs do not overlap, so [`protocol::run_plan`] runs them one at a time with
/// it (each still spreading its batch over the threads), and on an idle machine with one thread
/// it equals the wall-clock time. `Thread` is the CPU time of the one thread a run runs on
/// (`CLOCK_THREAD_CPUTIME_ID`): [`protocol::phase_runs`] runs each run alone on a one-thread
/// pool of its own, as many runs at once as there are threads, so runs overlap (the machine's
/// cores all work) and each run's seconds are still its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Clock {
    /// Elapsed real time.
    #[default]
    Wall,
    /// CPU time of the process (all threads).
    Cpu,
    /// CPU time of the run's own thread (each run on one thread, runs in parallel).
    Thread,
}

impl Clock {
    /// The clock's name in reports: `"wall-clock"` or `"process CPU"`.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Wall => "wall-clock",
            Self::Cpu => "process CPU",
            Self::Thread => "thread CPU",
        }
    }

    /// Checks that the clock can be read here (the CPU clocks need Unix).
    ///
    /// # Errors
    /// `Cpu` or `Thread` where that CPU clock cannot be read.
    pub fn check(self) -> anyhow::Result<()> {
        match self {
            Self::Wall => Ok(()),
            Self::Cpu | Self::Thread => cpu_seconds(self).map(|_| ()).ok_or_else(|| {
                anyhow::anyhow!("the {} clock cannot be read here", self.describe())
            }),
        }
    }
}

/// The process's CPU time in seconds (all threads, user + system), if the OS gives it.
#[must_use]
pub fn process_cpu_seconds() -> Option<f64> {
    cpu_seconds(Clock::Cpu)
}

/// The CPU time in seconds of `clock` (`Cpu`: the process, `Thread`: the calling thread; user +
/// system), if the OS gives it; `None` for `Wall`.
fn cpu_seconds(clock: Clock) -> Option<f64> {
    #[cfg(unix)]
    {
        use nix::time::{ClockId, clock_gettime};
        let id = match clock {
            Clock::Wall => return None,
            Clock::Cpu => ClockId::CLOCK_PROCESS_CPUTIME_ID,
            Clock::Thread => ClockId::CLOCK_THREAD_CPUTIME_ID,
        };
        let t = clock_gettime(id).ok()?;
        #[allow(clippy::cast_precision_loss)]
        Some(t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    {
        let _ = clock;
        None
    }
}

/// Seconds since it was started, on a [`Clock`].
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch {
    wall: Instant,
    clock: Clock,
    cpu: Option<f64>,
}

impl Stopwatch {
    /// Starts now (a CPU clock that cannot be read falls back to wall-clock time; check
    /// [`Clock::check`] first). A `Thread` stopwatch must be read on the thread that started it.
    #[must_use]
    pub fn start(clock: Clock) -> Self {
        Self {
            wall: Instant::now(),
            clock,
            cpu: cpu_seconds(clock),
        }
    }

    /// Seconds since [`Stopwatch::start`].
    #[must_use]
    pub fn elapsed(&self) -> f64 {
        match self.cpu.and_then(|c0| Some(cpu_seconds(self.clock)? - c0)) {
            Some(s) => s,
            None => self.wall.elapsed().as_secs_f64(),
        }
    }
}

impl RunOptions {
    /// `steps` evaluations, 500 curve points, no extra metrics.
    #[must_use]
    pub fn new(steps: u64) -> Self {
        Self {
            steps,
            curve_points: 500,
            hessian_every: 0,
            hessian_probes: 100,
            exact_hessian_max_dim: 256,
            trajectory: false,
            keep_final: false,
            start_points: 0,
            g_movement_probes: 0,
            clock: Clock::Wall,
        }
    }
}

/// One Hessian-error measurement.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HessianPoint {
    /// Evaluations so far.
    pub step: u64,
    /// `sqrt(mean_v ‖v − G H v‖²)` over random unit probes `v` (the authors' estimator).
    pub probe: f64,
    /// `‖I − G H‖_F / √n` from dense matrices (NaN if not computed).
    pub exact: f64,
}

/// The record of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `(evaluations at the end of the bin, mean loss over the bin)`.
    pub curve: Vec<(u64, f64)>,
    /// Seconds in the optimizer and task at the end of each bin of `curve`.
    pub times: Vec<f64>,
    /// Mean training loss over the final 10% of evaluations; `+∞` if the loss became non-finite
    /// (a run that ended above [`RunRecord::start_loss`] keeps its finite value).
    pub final_loss: f64,
    /// The mean loss of the starting point `x₀` over the final window, on the run's own samples
    /// (see [`RunOptions::start_points`]); NaN if not measured.
    pub start_loss: f64,
    /// The run diverged, as the reports define it ([`DIVERGED`]): its loss became non-finite,
    /// a step was refused (non-finite), or it could not be built; or it ended worse than it
    /// started: `final_loss > start_loss`.
    pub diverged: bool,
    /// Evaluations done when the loss became non-finite or a step was refused.
    pub diverged_at: Option<u64>,
    /// Why it diverged, if it did.
    pub note: Option<String>,
    /// Seconds spent in the optimizer and task (metrics excluded), on [`RunOptions::clock`].
    pub seconds: f64,
    /// Evaluations per second.
    pub steps_per_sec: f64,
    /// Hessian-error measurements.
    pub hessian: Vec<HessianPoint>,
    /// [`g_movement`] at every point of `curve` (empty if not asked or without a
    /// preconditioner).
    pub g_movement: Vec<f64>,
    /// Every iterate (if asked), starting with `x₀`.
    pub trajectory: Vec<Vec<f64>>,
    /// The final point (if asked).
    pub final_point: Vec<f64>,
}

impl RunRecord {
    /// A record of a run that could not even start.
    #[must_use]
    pub fn failed(note: String) -> Self {
        Self {
            curve: Vec::new(),
            times: Vec::new(),
            final_loss: f64::INFINITY,
            start_loss: f64::NAN,
            diverged: true,
            diverged_at: Some(0),
            note: Some(note),
            seconds: 0.0,
            steps_per_sec: 0.0,
            hessian: Vec::new(),
            g_movement: Vec::new(),
            trajectory: Vec::new(),
            final_point: Vec::new(),
        }
    }
}

fn to_f64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64().unwrap_or(f64::NAN)).collect()
}

/// The Hessian error of `minimizer`'s preconditioner on `task` at `x`; `None` if either lacks
/// what it needs. Probes are drawn and errors summed in f64.
pub fn hessian_error<T: Real>(
    task: &mut dyn Task<T>,
    minimizer: &dyn Minimizer<T>,
    x: &[T],
    probes: usize,
    exact_max_dim: usize,
    rng: &mut Stream,
) -> Option<(f64, f64)> {
    let n = x.len();
    let mut v = vec![0.0; n];
    let (mut vt, mut hv, mut ghv) = (vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]);
    let mut total = 0.0;
    for _ in 0..probes {
        for vi in &mut v {
            *vi = rng.gaussian();
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        for (t, &a) in vt.iter_mut().zip(&v) {
            *t = lit(a);
        }
        task.hessian_vector(x, &vt, &mut hv)?;
        if !minimizer.preconditioner_matvec(&hv, &mut ghv) {
            return None;
        }
        total += v
            .iter()
            .zip(to_f64(&ghv))
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>();
    }
    let probe = (total / probes.max(1) as f64).sqrt();
    let mut exact = f64::NAN;
    if n <= exact_max_dim {
        // Column j of GH is G·(H e_j).
        let mut sum = 0.0;
        let mut e = vec![T::zero(); n];
        for j in 0..n {
            e[j] = T::one();
            task.hessian_vector(x, &e, &mut hv)?;
            e[j] = T::zero();
            minimizer.preconditioner_matvec(&hv, &mut ghv);
            for (i, gh) in to_f64(&ghv).into_iter().enumerate() {
                let d = if i == j { 1.0 - gh } else { -gh };
                sum += d * d;
            }
        }
        exact = (sum / n as f64).sqrt();
    }
    Some((probe, exact))
}

/// How far LODO's learned preconditioner has moved from its start `α₀·I` (issue 19):
/// `‖G − α₀I‖_F / ‖α₀I‖_F`, estimated with `probes` Gaussian vectors `v ~ N(0, I)` as
/// `√(mean ‖G·v − α₀v‖²) / (α₀√n)` (Hutchinson: `E‖A·v‖² = ‖A‖²_F`), from `G·v` products only,
/// no dense `G`; relative standard error at most `1/√(2·probes)`. `None` for a minimizer without
/// a preconditioner, no probes, `n = 0` or `α₀ ≤ 0`. Probes are drawn and sums taken in f64.
pub fn g_movement<T: Real>(
    minimizer: &dyn Minimizer<T>,
    alpha0: f64,
    n: usize,
    probes: usize,
    rng: &mut Stream,
) -> Option<f64> {
    if probes == 0 || n == 0 || alpha0.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let mut v = vec![0.0; n];
    let (mut vt, mut gv) = (vec![T::zero(); n], vec![T::zero(); n]);
    let mut total = 0.0;
    for _ in 0..probes {
        for (a, t) in v.iter_mut().zip(vt.iter_mut()) {
            *a = rng.gaussian();
            *t = lit(*a);
        }
        if !minimizer.preconditioner_matvec(&vt, &mut gv) {
            return None;
        }
        total += v
            .iter()
            .zip(to_f64(&gv))
            .map(|(a, g)| (g - alpha0 * a) * (g - alpha0 * a))
            .sum::<f64>();
    }
    Some((total / probes as f64).sqrt() / (alpha0 * (n as f64).sqrt()))
}

/// Runs `minimizer` on `task` from the task's `x₀` for `options.steps` evaluations.
///
/// A non-finite loss or a refused step ends the run as diverged (`final_loss = +∞`). With
/// [`RunOptions::start_points`], the loss of `x₀` is also measured in the final window (time not
/// counted) and a run whose final-window loss is above it is marked diverged ([`DIVERGED`]).
///
/// # Errors
/// [`Interrupted`] if [`STOP`] is set during the run.
pub fn run<T: Real>(
    task: &mut dyn Task<T>,
    minimizer: &mut dyn Minimizer<T>,
    options: &RunOptions,
    metric_seed: u64,
) -> Result<RunRecord, Interrupted> {
    // Without checkpoints the only error is the interruption.
    run_checkpointed(task, minimizer, options, metric_seed, None).map_err(|_| Interrupted)
}

/// The running sums of [`run_checkpointed`]'s loop, saved in a checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSums {
    /// Loss summed over the open curve bin.
    pub bin_sum: f64,
    /// Iterations in the open curve bin.
    pub bin_len: u64,
    /// Loss summed over the final window so far.
    pub win_sum: f64,
    /// Iterations of the final window so far.
    pub win_len: u64,
    /// `x₀`'s loss summed over its measurements in the final window so far.
    pub start_sum: f64,
    /// Measurements of `x₀`'s loss so far.
    pub start_len: u64,
    /// Seconds in the optimizer and task so far (metrics and checkpoints excluded).
    pub elapsed: f64,
}

/// Where [`run_checkpointed`] saves its progress and what it continues from.
pub struct RunCheckpoints<'a> {
    /// Save after every this many iterations (0: only when interrupted and at the end).
    pub every: u64,
    /// The state to continue from (`None`: start at `x₀`).
    pub resume: Option<checkpoint::RunState>,
    /// Writes a state (atomically); called between iterations, after the last one, and when
    /// [`STOP`] is seen.
    pub save: &'a (dyn Fn(&checkpoint::RunState) -> anyhow::Result<()> + Sync),
}

/// How [`run_checkpointed`] divides a budget: iterations, curve bins, the final window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunShape {
    /// Iterations.
    pub iters: u64,
    /// Evaluations (`iters` × evaluations per iteration).
    pub steps: u64,
    /// Evaluations before the final 10% window (iterations whose count is above it are in it).
    pub window_start: u64,
    /// Iterations per curve point.
    pub bin: u64,
}

impl RunShape {
    /// The shape of a run of `steps` evaluations, `epi` per iteration, with `curve_points`
    /// points.
    #[must_use]
    pub fn new(steps: u64, epi: u64, curve_points: usize) -> Self {
        let epi = epi.max(1);
        let iters = (steps / epi).max(1);
        let steps = iters * epi;
        let window = (steps / 10).max(1);
        Self {
            iters,
            steps,
            window_start: steps - window,
            bin: (iters / curve_points.max(1) as u64).max(1),
        }
    }
}

/// The α₀ of [`g_movement`]: `⟨v, Gv⟩/⟨v, v⟩` for one probe of `G` as built (`G = α₀I`).
fn g_alpha0<T: Real>(minimizer: &dyn Minimizer<T>, n: usize, seed: u64) -> Option<f64> {
    let mut g_rng = Stream::new(seed);
    let v: Vec<f64> = (0..n).map(|_| g_rng.gaussian()).collect();
    let vt: Vec<T> = v.iter().map(|&a| lit(a)).collect();
    let mut gv = vec![T::zero(); n];
    minimizer.preconditioner_matvec(&vt, &mut gv).then(|| {
        let num: f64 = v.iter().zip(to_f64(&gv)).map(|(a, g)| a * g).sum();
        num / v.iter().map(|a| a * a).sum::<f64>()
    })
}

/// As [`run`], saving its state every [`RunCheckpoints::every`] iterations, at the end and on
/// [`STOP`], and continuing from [`RunCheckpoints::resume`]: a run resumed from a state of
/// iteration `t` reproduces the uninterrupted run bit for bit from `t` on (the point, the
/// optimizer state, the task's data position, the curve, the window sums; only the seconds
/// differ). A state may also come from a run with a smaller budget (extending it), provided the
/// curve bins are the same and the state precedes this budget's final window.
///
/// Each curve point's [`g_movement`] probes come from their own stream, seeded by the metric
/// seed and the point's index, so they need no state.
///
/// # Errors
/// [`Interrupted`] (after saving) if [`STOP`] is set; with checkpoints, a task or minimizer that
/// cannot be checkpointed, Hessian-error measurements (not supported), a state that does not
/// fit this run, or the error of a save.
pub fn run_checkpointed<T: Real>(
    task: &mut dyn Task<T>,
    minimizer: &mut dyn Minimizer<T>,
    options: &RunOptions,
    metric_seed: u64,
    mut checkpoints: Option<RunCheckpoints<'_>>,
) -> anyhow::Result<RunRecord> {
    let epi = minimizer.evaluations_per_iteration().max(1) as u64;
    let RunShape {
        iters,
        steps,
        window_start,
        bin,
    } = RunShape::new(options.steps, epi, options.curve_points);
    let mut x = task.initial_point();
    let mut rec = RunRecord {
        curve: Vec::with_capacity((iters / bin + 1) as usize),
        times: Vec::with_capacity((iters / bin + 1) as usize),
        final_loss: f64::INFINITY,
        start_loss: f64::NAN,
        diverged: false,
        diverged_at: None,
        note: None,
        seconds: 0.0,
        steps_per_sec: 0.0,
        hessian: Vec::new(),
        g_movement: Vec::new(),
        trajectory: Vec::new(),
        final_point: Vec::new(),
    };
    // α₀ from G at the start (G = α₀I), from its own stream; the probes of curve point i come
    // from a stream of their own (seeded by i), so the other metrics' draws are unchanged.
    let g_seed = metric_seed ^ 0x6d6f_7665;
    let g_alpha0 = if options.g_movement_probes > 0 {
        g_alpha0(minimizer, x.len(), g_seed)
    } else {
        None
    };
    let mut rng = Stream::new(metric_seed);
    let mut sums = RunSums::default();
    // x₀'s loss in the final window: at every `start_every`-th iteration of it.
    let window_iters = iters - window_start / epi;
    let start_every = match options.start_points {
        0 => 0,
        k => (window_iters / k as u64).max(1),
    };
    let x0 = if start_every > 0 {
        x.clone()
    } else {
        Vec::new()
    };
    let mut scratch = vec![T::zero(); if start_every > 0 { x.len() } else { 0 }];
    let mut first = 0;
    let resume = checkpoints.as_mut().and_then(|c| c.resume.take());
    if checkpoints.is_some() {
        anyhow::ensure!(
            options.hessian_every == 0,
            "runs with Hessian-error measurements cannot be checkpointed"
        );
        // Fails early for a task that cannot be restored.
        anyhow::ensure!(
            task.position().is_some(),
            "the task {} cannot be checkpointed",
            task.name()
        );
    }
    if let Some(s) = resume {
        let shape = RunShape {
            iters,
            steps,
            window_start,
            bin,
        };
        checkpoint::check_resume(&s, &shape, epi, x.len(), g_alpha0)?;
        let extended = s.window_start != window_start;
        minimizer.load_state(&s.minimizer)?;
        task.seek(s.draws)?;
        x = s.x.iter().map(|&v| lit(v)).collect();
        sums = s.sums;
        if extended {
            // The state precedes this budget's final window (checked): none of it is summed.
            sums.win_sum = 0.0;
            sums.win_len = 0;
            sums.start_sum = 0.0;
            sums.start_len = 0;
        }
        rec = s.record;
        first = s.iterations;
    } else if options.trajectory {
        rec.trajectory.push(to_f64(&x));
    }
    let resumed_at = first;
    let snapshot = |task: &dyn Task<T>,
                    m: &dyn Minimizer<T>,
                    x: &[T],
                    iterations: u64,
                    sums: &RunSums,
                    rec: &RunRecord|
     -> anyhow::Result<checkpoint::RunState> {
        Ok(checkpoint::RunState {
            steps,
            bin,
            window_start,
            iterations,
            x: to_f64(x),
            minimizer: m.save_state()?,
            draws: task.position().context("the task cannot be checkpointed")?,
            g_alpha0,
            sums: *sums,
            record: rec.clone(),
        })
    };
    let mut measure = |task: &mut dyn Task<T>,
                       m: &dyn Minimizer<T>,
                       x: &[T],
                       step: u64,
                       out: &mut Vec<HessianPoint>| {
        if let Some((probe, exact)) = hessian_error(
            task,
            m,
            x,
            options.hessian_probes,
            options.exact_hessian_max_dim,
            &mut rng,
        ) {
            out.push(HessianPoint { step, probe, exact });
        }
    };
    if options.hessian_every > 0 {
        measure(task, minimizer, &x, 0, &mut rec.hessian);
    }
    let mut start = Stopwatch::start(options.clock);
    let mut done = first;
    for it in first..iters {
        if rec.diverged {
            break;
        }
        if STOP.load(Ordering::Relaxed) {
            // Nothing to save before this call's first iteration (a fresh run starts over, a
            // resumed one has its file).
            if let Some(c) = &checkpoints
                && it > resumed_at
            {
                sums.elapsed += start.elapsed();
                (c.save)(&snapshot(task, minimizer, &x, it, &sums, &rec)?)?;
            }
            return Err(Interrupted.into());
        }
        let evals = (it + 1) * epi;
        done = it + 1;
        let loss = match minimizer.iterate(task, &mut x) {
            Ok(l) if l.is_finite() => l.to_f64().unwrap_or(f64::NAN),
            Ok(l) => {
                rec.diverged = true;
                rec.diverged_at = Some(evals);
                rec.note = Some(format!(
                    "loss {} at step {evals}",
                    l.to_f64().unwrap_or(f64::NAN)
                ));
                break;
            }
            Err(e) => {
                rec.diverged = true;
                rec.diverged_at = Some(evals);
                rec.note = Some(format!("{e} at step {evals}"));
                break;
            }
        };
        if options.trajectory {
            rec.trajectory.push(to_f64(&x));
        }
        sums.bin_sum += loss;
        sums.bin_len += 1;
        if sums.bin_len == bin || it + 1 == iters {
            rec.curve.push((evals, sums.bin_sum / sums.bin_len as f64));
            rec.times.push(sums.elapsed + start.elapsed());
            sums.bin_sum = 0.0;
            sums.bin_len = 0;
            if let Some(a0) = g_alpha0 {
                sums.elapsed += start.elapsed();
                let point = rec.curve.len() as u64 - 1;
                let g = g_movement(
                    minimizer,
                    a0,
                    x.len(),
                    options.g_movement_probes,
                    &mut Stream::new(derive_seed(g_seed, &[point])),
                );
                rec.g_movement.push(g.unwrap_or(f64::NAN));
                start = Stopwatch::start(options.clock);
            }
        }
        if evals > window_start {
            sums.win_sum += loss;
            sums.win_len += 1;
            if start_every > 0 && (it - window_start / epi).is_multiple_of(start_every) {
                sums.elapsed += start.elapsed();
                let l = task.loss_grad_same_sample(&x0, &mut scratch);
                sums.start_sum += l.to_f64().unwrap_or(f64::NAN);
                sums.start_len += 1;
                start = Stopwatch::start(options.clock);
            }
        }
        if options.hessian_every > 0 && evals % options.hessian_every < epi {
            sums.elapsed += start.elapsed();
            measure(task, minimizer, &x, evals, &mut rec.hessian);
            start = Stopwatch::start(options.clock);
        }
        if let Some(c) = &checkpoints
            && c.every > 0
            && (it + 1).is_multiple_of(c.every)
            && it + 1 < iters
        {
            sums.elapsed += start.elapsed();
            (c.save)(&snapshot(task, minimizer, &x, it + 1, &sums, &rec)?)?;
            start = Stopwatch::start(options.clock);
        }
    }
    sums.elapsed += start.elapsed();
    if let Some(c) = &checkpoints
        && done > resumed_at
    {
        // The final state, so that a longer budget can continue from it.
        (c.save)(&snapshot(task, minimizer, &x, done, &sums, &rec)?)?;
    }
    let elapsed = sums.elapsed;
    rec.seconds = elapsed;
    if options.keep_final {
        rec.final_point = to_f64(&x);
    }
    let done = rec.curve.last().map_or(0, |c| c.0);
    rec.steps_per_sec = if elapsed > 0.0 {
        done as f64 / elapsed
    } else {
        0.0
    };
    if sums.start_len > 0 {
        rec.start_loss = sums.start_sum / sums.start_len as f64;
    }
    if !rec.diverged && sums.win_len > 0 {
        let mean = sums.win_sum / sums.win_len as f64;
        if mean.is_finite() {
            rec.final_loss = mean;
            if mean > rec.start_loss {
                rec.diverged = true;
                rec.note = Some(format!(
                    "final-10% loss {mean:e} above x₀'s {:e} over the same steps",
                    rec.start_loss
                ));
            }
        } else {
            rec.diverged = true;
            rec.diverged_at = Some(steps);
        }
    }
    Ok(rec)
}

/// Builds `optimizer` for `spec` and runs it on a fresh task drawn from `seed` (in f32 on MNIST,
/// f64 otherwise). A build error gives a diverged record with the message.
///
/// # Errors
/// [`Interrupted`].
pub fn run_optimizer(
    spec: &TaskSpec,
    optimizer: &Optimizer,
    options: &RunOptions,
    seed: u64,
) -> Result<RunRecord, Interrupted> {
    // Without checkpoints the only error is the interruption.
    run_optimizer_checkpointed(spec, optimizer, options, seed, None).map_err(|_| Interrupted)
}

/// As [`run_optimizer`], with checkpoints ([`run_checkpointed`]).
///
/// # Errors
/// [`Interrupted`] (wrapped), and with checkpoints [`run_checkpointed`]'s errors.
pub fn run_optimizer_checkpointed(
    spec: &TaskSpec,
    optimizer: &Optimizer,
    options: &RunOptions,
    seed: u64,
    checkpoints: Option<RunCheckpoints<'_>>,
) -> anyhow::Result<RunRecord> {
    let ctx = spec.context(options.steps, derive_seed(seed, &[2]));
    match spec {
        TaskSpec::Mnist(m) => {
            match MnistTask::new(m.images.clone(), m.batch, derive_seed(seed, &[1])) {
                Ok(mut task) => {
                    run_built::<f32>(&mut task, optimizer, &ctx, options, seed, checkpoints)
                }
                Err(e) => Ok(RunRecord::failed(e.to_string())),
            }
        }
        _ => match spec.make(derive_seed(seed, &[1])) {
            Ok(mut task) => {
                run_built::<f64>(task.as_mut(), optimizer, &ctx, options, seed, checkpoints)
            }
            Err(e) => Ok(RunRecord::failed(e)),
        },
    }
}

fn run_built<T: StateFloat>(
    task: &mut dyn Task<T>,
    optimizer: &Optimizer,
    ctx: &BuildContext,
    options: &RunOptions,
    seed: u64,
    checkpoints: Option<RunCheckpoints<'_>>,
) -> anyhow::Result<RunRecord> {
    match optimizer.build::<T>(ctx) {
        Ok(mut minimizer) => run_checkpointed(
            task,
            minimizer.as_mut(),
            options,
            derive_seed(seed, &[3]),
            checkpoints,
        ),
        Err(e) => Ok(RunRecord::failed(e.to_string())),
    }
}
