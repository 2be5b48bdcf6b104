//! Checkpoints of runs in progress (`lodo-bench mnist --checkpoint-every K`, `--resume DIR`):
//! long runs that survive a crash, a reboot or Ctrl-C, and continue bit for bit.
//!
//! A checkpoint folder holds `manifest.json` (what the experiment is: task, data, seed,
//! optimizers with their hyperparameters; [`fingerprint`]) and one file per run,
//! `<label>_run<r>.ckpt`, with the run's whole state ([`RunState`]): the point `x`, the
//! optimizer's state ([`crate::task::Minimizer::save_state`]), the task's data position
//! ([`crate::task::Task::position`]), the curve logged so far (losses, `g_movement`, seconds)
//! and the loop's running sums. [`super::run_checkpointed`] writes it every `K` iterations, at
//! the end of the run and when Ctrl-C ([`super::STOP`]) is seen; every write is atomic (a
//! temporary file, synced, then renamed), so a crash mid-write leaves the previous checkpoint.
//!
//! # File format (`.ckpt`, version [`FORMAT`])
//!
//! | bytes | content |
//! |---|---|
//! | 16 | [`MAGIC`] |
//! | 4 | format version, `u32` little-endian |
//! | 4 | key length `k`, `u32` LE |
//! | `k` | the run's key (UTF-8): label, run index, optimizer with hyperparameters, seed |
//! | 32 | [`Progress`]: the budget's steps, curve bin, final-window start, iterations done (`u64` LE each) |
//! | 1 | 1 if the run diverged, else 0 |
//! | 8 | body length `b`, `u64` LE |
//! | 8 | optimizer-state length `o`, `u64` LE |
//! | 4 | CRC-32 (IEEE) of the key, the body and the optimizer state, `u32` LE |
//! | `b` | the body: [`RunState`] but its optimizer state, in postcard (every float stored with its bits) |
//! | `o` | the optimizer's state ([`RunState::minimizer`]) |
//!
//! Reading checks each field, the length and the checksum before decoding, and the key against
//! the run being resumed, so a missing, truncated, corrupt or foreign checkpoint is an error
//! that names the file, never a panic or a silent restart. A resume first reads every run's
//! header (key and [`Progress`]), so a foreign file or a budget the run cannot be extended to
//! is refused before any run starts; the checksum is checked when each run reads its state.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::protocol::Plan;
use super::{Clock, RunRecord, RunShape, RunSums, TaskSpec};
use crate::report::{file_stem, write_atomic, write_atomic_parts};

/// The first 16 bytes of every run checkpoint.
pub const MAGIC: &[u8; 16] = b"lodo-bench ckpt\n";

/// The version of the `.ckpt` layout (and of [`RunState`]) this build writes and reads.
pub const FORMAT: u32 = 1;

/// The manifest's name in a checkpoint folder.
pub const MANIFEST: &str = "manifest.json";

/// Where checkpoints go and how often (the `--checkpoint-every`, `--checkpoint-dir` and
/// `--resume` options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoints {
    /// The folder.
    pub dir: PathBuf,
    /// Save every this many iterations of each run (0: only at the end of a run and on
    /// Ctrl-C).
    pub every: u64,
    /// Continue from the folder's checkpoints (it must hold a matching manifest).
    pub resume: bool,
}

impl Checkpoints {
    /// The checkpoint file of run `r` of the row `label`.
    #[must_use]
    pub fn run_path(&self, label: &str, r: usize) -> PathBuf {
        self.dir.join(format!("{}_run{r}.ckpt", file_stem(label)))
    }
}

/// Everything that determines the rest of a run, between two iterations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The step budget (evaluations) of the run that wrote it.
    pub steps: u64,
    /// Iterations per curve point.
    pub bin: u64,
    /// Evaluations before the final window (of that budget).
    pub window_start: u64,
    /// Iterations done.
    pub iterations: u64,
    /// The point `x`, each entry widened to `f64` (exact for `f32` and `f64`).
    pub x: Vec<f64>,
    /// The optimizer's state ([`crate::task::Minimizer::save_state`]); stored in the file as
    /// its own section after the body (not copied into it).
    #[serde(skip)]
    pub minimizer: Vec<u8>,
    /// Fresh samples the task has drawn ([`crate::task::Task::position`]).
    pub draws: u64,
    /// The `α₀` of the `g_movement` metric, read off `G` before the first step.
    pub g_alpha0: Option<f64>,
    /// The loop's running sums and seconds so far.
    pub sums: RunSums,
    /// The record so far: curve, seconds, `g_movement`, divergence.
    pub record: RunRecord,
}

fn bits(v: Option<f64>) -> Option<u64> {
    v.map(f64::to_bits)
}

/// Where a checkpointed run stands (also in each file's header, so a resume checks every run
/// before any of them starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The step budget it was written under.
    pub steps: u64,
    /// Iterations per curve point.
    pub bin: u64,
    /// That budget's evaluations before the final window.
    pub window_start: u64,
    /// Iterations done.
    pub iterations: u64,
    /// The run diverged (it takes no more steps).
    pub diverged: bool,
}

impl RunState {
    /// Where the run stands.
    #[must_use]
    pub fn progress(&self) -> Progress {
        Progress {
            steps: self.steps,
            bin: self.bin,
            window_start: self.window_start,
            iterations: self.iterations,
            diverged: self.record.diverged,
        }
    }
}

/// Checks that a run at `p` can continue as a run of `shape` (`epi` evaluations per
/// iteration): not past its budget, the same curve bins, and, if the budget changed (an
/// extension), a state before the new final window and at the end of a curve bin.
///
/// # Errors
/// Each of those, with what to do.
pub fn check_progress(p: &Progress, shape: &RunShape, epi: u64) -> Result<()> {
    let at = p.iterations.saturating_mul(epi);
    anyhow::ensure!(
        at <= shape.steps,
        "the checkpoint is at step {at}, beyond this run's budget of {} steps",
        shape.steps
    );
    anyhow::ensure!(
        p.bin == shape.bin,
        "the checkpoint's curve has a point every {} steps, this run's every {} (above 100,000 \
         steps the budget sets the curve's bins): resume with the budget it was written with",
        p.bin,
        shape.bin
    );
    if p.window_start != shape.window_start && !p.diverged {
        anyhow::ensure!(
            at <= shape.window_start,
            "the checkpoint is at step {at}, inside the final 10% of this run's {} steps (its \
             mean loss is the run's result, and the checkpoint has only the old budget's \
             window): extend to at least {} steps",
            shape.steps,
            at + at.div_ceil(9)
        );
        anyhow::ensure!(
            p.iterations.is_multiple_of(shape.bin),
            "the checkpoint ended its run inside a curve bin of {} iterations: it cannot be \
             extended bit for bit",
            shape.bin
        );
    }
    Ok(())
}

/// Checks that `s` can continue a run of `shape` ([`check_progress`]) over `n` parameters
/// whose `G` gives `g_alpha0`.
///
/// # Errors
/// [`check_progress`]'s; a different size or `α₀`; non-finite parameters; a curve that does
/// not match the step count.
pub(crate) fn check_resume(
    s: &RunState,
    shape: &RunShape,
    epi: u64,
    n: usize,
    g_alpha0: Option<f64>,
) -> Result<()> {
    anyhow::ensure!(
        s.x.len() == n,
        "the checkpoint has {} parameters, this run {n}",
        s.x.len()
    );
    anyhow::ensure!(
        s.x.iter().all(|v| v.is_finite()),
        "the checkpoint's parameters are not finite"
    );
    check_progress(&s.progress(), shape, epi)?;
    anyhow::ensure!(
        bits(s.g_alpha0) == bits(g_alpha0),
        "the checkpoint's G started at α₀ = {:?}, this run's at {g_alpha0:?}: another \
         optimizer configuration",
        s.g_alpha0
    );
    anyhow::ensure!(
        s.record
            .curve
            .last()
            .is_none_or(|c| c.0 <= s.iterations * epi)
            && s.record.curve.len() == s.record.times.len(),
        "the checkpoint's curve does not match its step count"
    );
    Ok(())
}

/// Writes run `label`/`r`'s state to `path` atomically, under `key`.
///
/// # Errors
/// Encoding or I/O errors.
pub fn write_run_state(path: &Path, key: &str, state: &RunState) -> Result<()> {
    let body = postcard::to_allocvec(state).context("encoding a run checkpoint")?;
    let key_len = u32::try_from(key.len()).context("checkpoint key too long")?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(key.as_bytes());
    crc.update(&body);
    crc.update(&state.minimizer);
    let mut head = Vec::with_capacity(HEADER + key.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&FORMAT.to_le_bytes());
    head.extend_from_slice(&key_len.to_le_bytes());
    head.extend_from_slice(key.as_bytes());
    let p = state.progress();
    for v in [p.steps, p.bin, p.window_start, p.iterations] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    head.push(u8::from(p.diverged));
    head.extend_from_slice(&(body.len() as u64).to_le_bytes());
    head.extend_from_slice(&(state.minimizer.len() as u64).to_le_bytes());
    head.extend_from_slice(&crc.finalize().to_le_bytes());
    // Three parts, one file: the optimizer's state (the bulk of a LODO checkpoint) is not
    // copied.
    write_atomic_parts(path, &[&head, &body, &state.minimizer])
        .with_context(|| format!("writing checkpoint {}", path.display()))
}

/// Bytes of a header besides the key.
const HEADER: usize = 16 + 4 + 4 + 4 * 8 + 1 + 8 + 8 + 4;

/// The header of a checkpoint file: its key, where the run stands, and the body's length and
/// checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The run's key.
    pub key: String,
    /// Where the run stands.
    pub progress: Progress,
    body_len: u64,
    optimizer_len: u64,
    crc: u32,
}

fn read_header(path: &Path, r: &mut impl std::io::Read) -> Result<Header> {
    let bad = |what: &str| anyhow::anyhow!("{} is not a valid checkpoint: {what}", path.display());
    let mut magic = [0u8; 16];
    r.read_exact(&mut magic)
        .map_err(|_| bad("shorter than its header"))?;
    if &magic != MAGIC {
        return Err(bad(
            "it does not start with a lodo-bench checkpoint's signature",
        ));
    }
    let mut word = [0u8; 4];
    r.read_exact(&mut word)
        .map_err(|_| bad("truncated header"))?;
    let format = u32::from_le_bytes(word);
    anyhow::ensure!(
        format == FORMAT,
        "{} is a checkpoint of format {format}; this build reads format {FORMAT}",
        path.display()
    );
    r.read_exact(&mut word)
        .map_err(|_| bad("truncated header"))?;
    let key_len = u32::from_le_bytes(word) as usize;
    anyhow::ensure!(key_len <= 1 << 16, bad("its key is too long"));
    let mut key = vec![0u8; key_len];
    r.read_exact(&mut key).map_err(|_| bad("truncated key"))?;
    let key = String::from_utf8(key).map_err(|_| bad("its key is not UTF-8"))?;
    let mut long = [0u8; 8];
    let mut u64s = [0u64; 6];
    for v in &mut u64s[..4] {
        r.read_exact(&mut long)
            .map_err(|_| bad("truncated header"))?;
        *v = u64::from_le_bytes(long);
    }
    let mut flag = [0u8; 1];
    r.read_exact(&mut flag)
        .map_err(|_| bad("truncated header"))?;
    anyhow::ensure!(flag[0] <= 1, bad("malformed header"));
    r.read_exact(&mut long)
        .map_err(|_| bad("truncated header"))?;
    u64s[4] = u64::from_le_bytes(long);
    r.read_exact(&mut long)
        .map_err(|_| bad("truncated header"))?;
    u64s[5] = u64::from_le_bytes(long);
    r.read_exact(&mut word)
        .map_err(|_| bad("truncated header"))?;
    Ok(Header {
        key,
        progress: Progress {
            steps: u64s[0],
            bin: u64s[1],
            window_start: u64s[2],
            iterations: u64s[3],
            diverged: flag[0] == 1,
        },
        body_len: u64s[4],
        optimizer_len: u64s[5],
        crc: u32::from_le_bytes(word),
    })
}

/// A checkpoint file's header: the key it was written under and where its run stands (the
/// state itself is not read).
///
/// # Errors
/// An unreadable file or a malformed header.
pub fn read_run_header(path: &Path) -> Result<Header> {
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot open checkpoint {}", path.display()))?;
    read_header(path, &mut f)
}

/// Reads a checkpoint file: its key and state, after checking the header, the length and the
/// checksum.
///
/// # Errors
/// An unreadable, truncated, corrupt or undecodable file.
pub fn read_run_state(path: &Path) -> Result<(String, RunState)> {
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot open checkpoint {}", path.display()))?;
    let h = read_header(path, &mut f)?;
    let len = f.metadata()?.len();
    let header_len = (HEADER + h.key.len()) as u64;
    let announced = h.body_len.checked_add(h.optimizer_len);
    anyhow::ensure!(
        announced.is_some() && len.checked_sub(header_len) == announced,
        "{} is not a valid checkpoint: {} bytes of state announced, {} present (truncated or \
         overwritten)",
        path.display(),
        h.body_len.saturating_add(h.optimizer_len),
        len.saturating_sub(header_len)
    );
    let mut body = vec![0u8; usize::try_from(h.body_len)?];
    f.read_exact(&mut body)?;
    let mut optimizer = vec![0u8; usize::try_from(h.optimizer_len)?];
    f.read_exact(&mut optimizer)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(h.key.as_bytes());
    crc.update(&body);
    crc.update(&optimizer);
    anyhow::ensure!(
        crc.finalize() == h.crc,
        "{} is corrupt: its checksum does not match its contents",
        path.display()
    );
    let mut state: RunState = postcard::from_bytes(&body).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a valid checkpoint: cannot decode its state ({e})",
            path.display()
        )
    })?;
    state.minimizer = optimizer;
    anyhow::ensure!(
        state.progress() == h.progress,
        "{} is not a valid checkpoint: its header and its state disagree",
        path.display()
    );
    Ok((h.key, state))
}

/// FNV-1a, 64 bits: a fingerprint of the training data.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What an experiment is, line by line (sorted), for the manifest: the task (and a fingerprint
/// of its data), the seed, each optimizer and LODO row with its hyperparameters, whether final
/// points are kept. The step budget and the number of runs are not part of it (a resumed
/// experiment may extend either).
#[must_use]
pub fn fingerprint(plan: &Plan) -> Vec<String> {
    let task = match &plan.spec {
        TaskSpec::Mnist(m) => format!(
            "task: mnist, {} training images (FNV-1a {:016x}), batch {}",
            m.images.len() / crate::mnist::net::PIX,
            fnv1a(&m.images),
            m.batch
        ),
        other => format!("task: {other:?}"),
    };
    let mut lines = vec![task, format!("seed: {}", plan.seed)];
    lines.extend(plan.optimizers.iter().map(|o| format!("optimizer: {o:?}")));
    lines.extend(
        plan.families
            .iter()
            .map(|f| format!("layout row: {} {:?} beta {:?}", f.label, f.variant, f.beta)),
    );
    lines.extend(plan.ablations.iter().map(|a| {
        format!(
            "ablation row: {} {:?} beta {:?}",
            a.label, a.variant, a.beta
        )
    }));
    lines.push(format!("keep final points: {}", plan.keep_final));
    // Only a CPU clock adds a line, so manifests written before `--clock` existed still match.
    if plan.clock != Clock::Wall {
        lines.push(format!("clock: {}", plan.clock.describe()));
    }
    // The order of the optimizers does not change their runs (seeds depend on the run index).
    lines.sort();
    lines
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    experiment: Vec<String>,
    steps: u64,
    runs: usize,
}

/// Writes the folder's manifest for `plan`; with [`Checkpoints::resume`], first checks that the
/// folder holds a manifest of the same experiment ([`fingerprint`]).
///
/// # Errors
/// A missing or unreadable manifest when resuming, a different experiment, I/O errors.
pub fn open(plan: &Plan, c: &Checkpoints) -> Result<()> {
    let path = c.dir.join(MANIFEST);
    let now = fingerprint(plan);
    if c.resume {
        anyhow::ensure!(
            c.dir.is_dir(),
            "--resume {}: no such folder",
            c.dir.display()
        );
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "--resume {}: no checkpoint there ({} cannot be read)",
                c.dir.display(),
                path.display()
            )
        })?;
        let saved: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a checkpoint manifest", path.display()))?;
        anyhow::ensure!(
            saved.format == FORMAT,
            "{} is of checkpoint format {}; this build reads format {FORMAT}",
            path.display(),
            saved.format
        );
        if saved.experiment != now {
            let mut diff = String::new();
            for line in saved.experiment.iter().filter(|l| !now.contains(l)) {
                diff.push_str(&format!("\n  checkpoint: {line}"));
            }
            for line in now.iter().filter(|l| !saved.experiment.contains(l)) {
                diff.push_str(&format!("\n  this run:   {line}"));
            }
            anyhow::bail!(
                "--resume {}: the checkpoint was written by another experiment (give the options \
                 it was started with; only --steps and --runs may grow):{diff}",
                c.dir.display()
            );
        }
    } else {
        anyhow::ensure!(
            !path.exists(),
            "{} already holds a checkpoint: continue it with --resume {0}, or choose another \
             --checkpoint-dir",
            c.dir.display()
        );
    }
    let manifest = Manifest {
        format: FORMAT,
        experiment: now,
        steps: plan.budget.steps,
        runs: plan.budget.runs,
    };
    write_atomic(&path, serde_json::to_string_pretty(&manifest)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
