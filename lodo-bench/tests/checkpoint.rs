//! Checkpoints of MNIST runs (`mnist --checkpoint-every`, `--resume`): a run continued from a
//! checkpoint equals the uninterrupted run bit for bit (every logged loss, `g_movement`, the
//! final parameters), whether the checkpoint was taken at the end of a shorter budget, by
//! Ctrl-C ([`STOP`]) in the middle of a run, or read on another number of threads; a missing,
//! corrupt or foreign checkpoint is a clear error. `STOP` is process-wide, so every test here
//! holds one lock (this file is its own test binary).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use lodo_bench::baselines::{LodoParams, LodoVariant, Optimizer, OptimizerKind};
use lodo_bench::experiment::checkpoint::{Checkpoints, RunState};
use lodo_bench::experiment::layouts::layout_rows;
use lodo_bench::experiment::protocol::{Budget, LodoRow, Plan, TaskResults, run_plan};
use lodo_bench::experiment::{
    Clock, MnistSpec, RunCheckpoints, RunOptions, RunRecord, STOP, TaskSpec, derive_seed, run,
    run_checkpointed,
};
use lodo_bench::mnist::idx::Mnist;
use lodo_bench::mnist::net;
use lodo_bench::mnist::task::MnistTask;
use lodo_bench::task::Task;

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    STOP.store(false, Ordering::SeqCst);
    g
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lodo-bench-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn images() -> Arc<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k");
    Arc::new(Mnist::load(&dir).unwrap().train.slice(0..100).pixels)
}

fn spec(images: &Arc<Vec<u8>>) -> TaskSpec {
    TaskSpec::Mnist(MnistSpec {
        images: images.clone(),
        batch: 2,
        layer_starts: net::tensors().chunks(2).map(|p| p[0].0).collect(),
    })
}

/// LODO at the authors' MNIST α₀ and β, with a meta learning rate large enough that θ moves
/// visibly in a few steps (so a θ or Adam moment restored wrongly shows in the losses).
fn lodo() -> LodoParams {
    LodoParams {
        alpha0: 0.0846,
        meta_lr: 1e-4,
        beta: 0.934,
        variant: LodoVariant::BLOCK,
    }
}

fn optimizers(kinds: &[OptimizerKind]) -> Vec<Optimizer> {
    kinds
        .iter()
        .map(|&k| match k {
            OptimizerKind::Lodo => Optimizer::Lodo(lodo()),
            k => k.defaults(),
        })
        .collect()
}

fn plan(
    images: &Arc<Vec<u8>>,
    kinds: &[OptimizerKind],
    ablations: &[OptimizerKind],
    steps: u64,
    out: &Path,
    checkpoint: Option<Checkpoints>,
) -> Plan {
    // With LODO: its compact layout (q8 moments, bf16 activations, Shuffle), whose state holds
    // codes and scales and whose stochastic rounding is keyed by the step.
    let families = if kinds.contains(&OptimizerKind::Lodo) {
        layout_rows(&"shuffle".parse().unwrap(), &"q8".parse().unwrap())
    } else {
        Vec::new()
    };
    Plan {
        spec: spec(images),
        tune_spec: None,
        optimizers: optimizers(kinds),
        ablations: ablations.iter().map(|&k| LodoRow::ablation(k)).collect(),
        families,
        budget: Budget {
            runs: 1,
            steps,
            schedule: Vec::new(),
            curve_points: 100,
            hessian_points: 0,
            hessian_probes: 0,
        },
        tune: None,
        reuse: false,
        frozen: false,
        keep_final: true,
        seed: 11,
        out: out.to_path_buf(),
        checkpoint,
        clock: Clock::Wall,
    }
}

fn ckpt(dir: &Path, every: u64, resume: bool) -> Option<Checkpoints> {
    Some(Checkpoints {
        dir: dir.to_path_buf(),
        every,
        resume,
    })
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Two records of the same run agree on every logged number but the seconds.
fn assert_same_run(a: &RunRecord, b: &RunRecord, what: &str) {
    let curve = |r: &RunRecord| -> Vec<(u64, u64)> {
        r.curve.iter().map(|p| (p.0, p.1.to_bits())).collect()
    };
    assert!(!a.curve.is_empty(), "{what}: empty curve");
    assert_eq!(curve(a), curve(b), "{what}: curve");
    assert_eq!(
        bits(&a.g_movement),
        bits(&b.g_movement),
        "{what}: g_movement"
    );
    assert_eq!(a.times.len(), b.times.len(), "{what}: seconds column");
    assert!(!a.final_point.is_empty(), "{what}: final point kept");
    assert_eq!(
        bits(&a.final_point),
        bits(&b.final_point),
        "{what}: final point"
    );
    assert_eq!(
        a.final_loss.to_bits(),
        b.final_loss.to_bits(),
        "{what}: final loss"
    );
    assert_eq!(
        a.start_loss.to_bits(),
        b.start_loss.to_bits(),
        "{what}: x₀'s loss"
    );
    assert_eq!(
        (a.diverged, a.diverged_at),
        (b.diverged, b.diverged_at),
        "{what}"
    );
}

fn assert_same_results(a: &TaskResults, b: &TaskResults) {
    let groups = |r: &TaskResults| {
        r.main
            .iter()
            .chain(&r.ablations)
            .cloned()
            .collect::<Vec<_>>()
    };
    let (ga, gb) = (groups(a), groups(b));
    assert_eq!(ga.len(), gb.len());
    for (x, y) in ga.iter().zip(&gb) {
        assert_eq!(x.label, y.label);
        assert_eq!(x.runs.len(), y.runs.len(), "{}", x.label);
        for (r, (p, q)) in x.runs.iter().zip(&y.runs).enumerate() {
            assert_same_run(p, q, &format!("{} run {r}", x.label));
        }
    }
}

/// `--steps 2K` equals `--steps K --checkpoint-every K`, then `--steps 2K --resume` (here on two
/// threads, the first part on one), for LODO, its compact layout (`--permutations shuffle
/// --state q8`), the LODO-Diagonal ablation and four baselines.
#[test]
fn a_run_of_2k_steps_equals_k_steps_and_a_resume_for_k_more() {
    let _g = lock();
    let imgs = images();
    let kinds = [
        OptimizerKind::Lodo,
        OptimizerKind::Adam,
        OptimizerKind::Momentum,
        OptimizerKind::RmsProp,
        OptimizerKind::Yogi,
    ];
    let abl = [OptimizerKind::LodoDiagonal];
    let dir = tmp("extend");
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let whole = one
        .install(|| run_plan(&plan(&imgs, &kinds, &abl, 8, &dir.join("whole"), None)))
        .unwrap();
    assert!(!whole.is_partial());
    let c = dir.join("ckpt");
    let first = one
        .install(|| {
            run_plan(&plan(
                &imgs,
                &kinds,
                &abl,
                4,
                &dir.join("first"),
                ckpt(&c, 4, false),
            ))
        })
        .unwrap();
    assert_eq!(first.main[0].runs[0].curve.len(), 4);
    for label in [
        "LODO",
        "Adam",
        "Momentum",
        "RMSprop",
        "Yogi",
        "LODO-Diagonal",
    ] {
        assert!(c.join(format!("{label}_run0.ckpt")).is_file(), "{label}");
    }
    let resumed = two
        .install(|| {
            run_plan(&plan(
                &imgs,
                &kinds,
                &abl,
                8,
                &dir.join("second"),
                ckpt(&c, 4, true),
            ))
        })
        .unwrap();
    assert_same_results(&whole, &resumed);
    // Resuming a finished run returns it again, without steps.
    let again = one
        .install(|| {
            run_plan(&plan(
                &imgs,
                &kinds,
                &abl,
                8,
                &dir.join("third"),
                ckpt(&c, 0, true),
            ))
        })
        .unwrap();
    assert_same_results(&whole, &again);
    let _ = std::fs::remove_dir_all(dir);
}

/// `--clock cpu` (runs one at a time, seconds from the process CPU clock) and `--clock thread`
/// (runs in parallel, each alone on one thread, seconds from its thread's CPU clock) change the
/// seconds only: every logged number equals the wall-clock plan's (parallel runs on two
/// threads), for LODO and a baseline; a checkpoint of one clock does not resume under another
/// (its seconds would mix the two).
#[test]
fn the_cpu_clocks_change_the_seconds_only() {
    let _g = lock();
    let imgs = images();
    let kinds = [OptimizerKind::Lodo, OptimizerKind::Adam];
    let dir = tmp("clock");
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let at = |out: &str, c| plan(&imgs, &kinds, &[], 6, &dir.join(out), c);
    let wall = two.install(|| run_plan(&at("wall", None))).unwrap();
    let mut p = at("cpu", ckpt(&dir.join("c"), 3, false));
    p.clock = Clock::Cpu;
    let cpu = two.install(|| run_plan(&p)).unwrap();
    let mut p = at("thread", ckpt(&dir.join("t"), 3, false));
    p.clock = Clock::Thread;
    let thread = two.install(|| run_plan(&p)).unwrap();
    for timed in [&cpu, &thread] {
        assert_same_results(&wall, timed);
        for g in &timed.main {
            let t = &g.runs[0].times;
            assert!(
                t[0] > 0.0 && t.windows(2).all(|w| w[0] <= w[1]),
                "{}: {t:?}",
                g.label
            );
            // The run's total also counts the work after its last curve point.
            assert!(g.runs[0].seconds >= *t.last().unwrap(), "{}", g.label);
        }
    }
    // A thread-clock checkpoint does not resume under the process clock.
    let mut q = at("c2", ckpt(&dir.join("t"), 3, true));
    q.clock = Clock::Cpu;
    let e = err_of(two.install(|| run_plan(&q)));
    assert!(
        e.contains("another experiment") && e.contains("clock"),
        "{e}"
    );
    // The same checkpoint under the wall clock (the plan's default).
    let q = at("w2", ckpt(&dir.join("c"), 3, true));
    let e = err_of(two.install(|| run_plan(&q)));
    assert!(
        e.contains("another experiment") && e.contains("clock"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The MNIST task, setting [`STOP`] (as Ctrl-C does) once it has drawn `after` batches.
struct StopAfter {
    inner: MnistTask,
    after: u64,
}

impl Task<f32> for StopAfter {
    fn name(&self) -> &str {
        "mnist"
    }
    fn dim(&self) -> usize {
        Task::<f32>::dim(&self.inner)
    }
    fn initial_point(&self) -> Vec<f32> {
        self.inner.initial_point()
    }
    fn loss_grad(&mut self, x: &[f32], grad: &mut [f32]) -> f32 {
        let l = self.inner.loss_grad(x, grad);
        if Task::<f32>::position(&self.inner) == Some(self.after) {
            STOP.store(true, Ordering::SeqCst);
        }
        l
    }
    fn loss_grad_same_sample(&mut self, x: &[f32], grad: &mut [f32]) -> f32 {
        self.inner.loss_grad_same_sample(x, grad)
    }
    fn position(&self) -> Option<u64> {
        Task::<f32>::position(&self.inner)
    }
    fn seek(&mut self, draws: u64) -> anyhow::Result<()> {
        Task::<f32>::seek(&mut self.inner, draws)
    }
}

/// Ctrl-C in the middle of a run writes its state at the iteration it stopped, and the run
/// resumed from it (on two threads) equals the uninterrupted one, for every optimizer the
/// MNIST experiment runs (LARS included: same budget; LODO with Adam, LODO-SGD and
/// LODO-Global's preconditioner and meta-optimizer states).
#[test]
fn ctrl_c_mid_run_writes_a_checkpoint_that_resumes_bit_for_bit() {
    let _g = lock();
    let imgs = images();
    let steps = 10;
    let mut opts = RunOptions::new(steps);
    opts.curve_points = 100;
    opts.keep_final = true;
    opts.start_points = 4;
    opts.g_movement_probes = 2;
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for kind in [
        OptimizerKind::Lodo,
        OptimizerKind::LodoGlobal,
        OptimizerKind::LodoSgd,
        OptimizerKind::Adam,
        OptimizerKind::Momentum,
        OptimizerKind::RmsProp,
        OptimizerKind::Yogi,
        OptimizerKind::Lars,
    ] {
        let o = match kind {
            OptimizerKind::Lodo => Optimizer::Lodo(lodo()),
            k => k.defaults(),
        };
        let seed = 5;
        let ctx = spec(&imgs).context(steps, derive_seed(seed, &[2]));
        let task = || MnistTask::new(imgs.clone(), 2, derive_seed(seed, &[1])).unwrap();
        let whole = run(
            &mut task(),
            o.build::<f32>(&ctx).unwrap().as_mut(),
            &opts,
            derive_seed(seed, &[3]),
        )
        .unwrap();
        let saved: Mutex<Vec<RunState>> = Mutex::new(Vec::new());
        let save = |s: &RunState| {
            saved.lock().unwrap().push(s.clone());
            Ok(())
        };
        let mut stopping = StopAfter {
            inner: task(),
            after: 6,
        };
        let err = run_checkpointed(
            &mut stopping,
            o.build::<f32>(&ctx).unwrap().as_mut(),
            &opts,
            derive_seed(seed, &[3]),
            Some(RunCheckpoints {
                every: 0,
                resume: None,
                save: &save,
            }),
        )
        .unwrap_err();
        STOP.store(false, Ordering::SeqCst);
        assert!(
            lodo_bench::experiment::is_interrupted(&err),
            "{kind}: {err:#}"
        );
        let state = saved.lock().unwrap().pop().expect("a checkpoint on Ctrl-C");
        assert_eq!(state.iterations, 6, "{kind}");
        assert_eq!(state.draws, 6, "{kind}");
        assert_eq!(state.record.curve.len(), 6, "{kind}");
        let resumed = two
            .install(|| {
                run_checkpointed(
                    &mut task(),
                    o.build::<f32>(&ctx).unwrap().as_mut(),
                    &opts,
                    derive_seed(seed, &[3]),
                    Some(RunCheckpoints {
                        every: 0,
                        resume: Some(state),
                        save: &save,
                    }),
                )
            })
            .unwrap();
        assert_same_run(&whole, &resumed, kind.name());
    }
}

fn err_of(r: anyhow::Result<TaskResults>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn missing_corrupt_and_foreign_checkpoints_are_clear_errors() {
    let _g = lock();
    let imgs = images();
    let dir = tmp("errors");
    let c = dir.join("ckpt");
    let adam = [OptimizerKind::Adam];
    let both = [OptimizerKind::Adam, OptimizerKind::Momentum];
    let go = |kinds: &[OptimizerKind], steps, ck| {
        run_plan(&plan(&imgs, kinds, &[], steps, &dir.join("out"), ck))
    };
    // Nothing there.
    let e = err_of(go(&adam, 4, ckpt(&dir.join("none"), 0, true)));
    assert!(e.contains("no such folder"), "{e}");
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let e = err_of(go(&adam, 4, ckpt(&dir.join("empty"), 0, true)));
    assert!(e.contains("no checkpoint there"), "{e}");
    // A checkpoint of Adam and Momentum, 20 steps.
    go(&both, 20, ckpt(&c, 5, false)).unwrap();
    let e = err_of(go(&both, 20, ckpt(&c, 5, false)));
    assert!(e.contains("already holds a checkpoint"), "{e}");
    // Another experiment: other optimizers, other hyperparameters, other data.
    let e = err_of(go(&adam, 20, ckpt(&c, 0, true)));
    assert!(
        e.contains("another experiment") && e.contains("Momentum"),
        "{e}"
    );
    let mut other = plan(&imgs, &both, &[], 20, &dir.join("out"), ckpt(&c, 0, true));
    other.optimizers[0] = Optimizer::Adam {
        lr: 2e-3,
        beta_1: 0.9,
        beta_2: 0.999,
    };
    let e = err_of(run_plan(&other));
    assert!(
        e.contains("another experiment") && e.contains("0.002"),
        "{e}"
    );
    let fewer = Arc::new(imgs[..99 * net::PIX].to_vec());
    let e = err_of(run_plan(&plan(
        &fewer,
        &both,
        &[],
        20,
        &dir.join("out"),
        ckpt(&c, 0, true),
    )));
    assert!(
        e.contains("another experiment") && e.contains("99 training images"),
        "{e}"
    );
    // The optimizers' order does not matter (the runs are the same).
    let swapped = [OptimizerKind::Momentum, OptimizerKind::Adam];
    assert_eq!(go(&swapped, 20, ckpt(&c, 0, true)).unwrap().main.len(), 2);
    // Extending into the final window of the longer budget (its mean is the run's result).
    let e = err_of(go(&both, 21, ckpt(&c, 0, true)));
    assert!(e.contains("inside the final 10%"), "{e}");
    // A file of another run, a corrupt, a truncated and a foreign file.
    let adam_file = c.join("Adam_run0.ckpt");
    let good = std::fs::read(&adam_file).unwrap();
    std::fs::copy(c.join("Momentum_run0.ckpt"), &adam_file).unwrap();
    let e = err_of(go(&both, 20, ckpt(&c, 0, true)));
    assert!(e.contains("belongs to another run"), "{e}");
    let mut flipped = good.clone();
    let at = flipped.len() - 1000;
    flipped[at] ^= 0x10;
    std::fs::write(&adam_file, &flipped).unwrap();
    let e = err_of(go(&both, 20, ckpt(&c, 0, true)));
    assert!(e.contains("corrupt") && e.contains("Adam_run0.ckpt"), "{e}");
    std::fs::write(&adam_file, &good[..good.len() / 2]).unwrap();
    let e = err_of(go(&both, 20, ckpt(&c, 0, true)));
    assert!(e.contains("truncated"), "{e}");
    std::fs::write(&adam_file, b"{\"not\": \"a checkpoint\"}").unwrap();
    let e = err_of(go(&both, 20, ckpt(&c, 0, true)));
    assert!(e.contains("signature"), "{e}");
    // Restored, the checkpoint resumes (the finished runs come back).
    std::fs::write(&adam_file, &good).unwrap();
    let res = go(&both, 20, ckpt(&c, 0, true)).unwrap();
    assert_eq!(res.main[0].runs[0].curve.len(), 20);
    // Only MNIST restores its samples.
    let mut bowl = plan(
        &imgs,
        &adam,
        &[],
        4,
        &dir.join("out"),
        ckpt(&dir.join("bowl"), 0, false),
    );
    bowl.spec = TaskSpec::Rosenbrock;
    let e = err_of(run_plan(&bowl));
    assert!(e.contains("only MNIST runs can be checkpointed"), "{e}");
    // L-BFGS keeps no checkpointable state: refused before anything runs.
    let e = err_of(go(
        &[OptimizerKind::Lbfgs],
        4,
        ckpt(&dir.join("lbfgs"), 0, false),
    ));
    assert!(e.contains("L-BFGS cannot be checkpointed"), "{e}");
    // LARS's decay depends on its budget: a LARS run is not extended.
    let lars = [OptimizerKind::Lars];
    let cl = dir.join("lars");
    go(&lars, 4, ckpt(&cl, 0, false)).unwrap();
    let e = err_of(go(&lars, 8, ckpt(&cl, 0, true)));
    assert!(e.contains("LARS") && e.contains("budget"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn sigint_writes_checkpoints_and_the_resumed_cli_run_matches() {
    use std::process::{Command, Stdio};
    let _g = lock();
    let dir = tmp("sigint");
    let args = |out: &Path| -> Vec<String> {
        [
            "mnist",
            "--optimizers",
            "adam,momentum",
            "--steps",
            "300",
            "--batch",
            "1",
            "--test-images",
            "1",
            "--samples",
            "0",
            "--threads",
            "1",
            "--out",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let bin = || Command::new(env!("CARGO_BIN_EXE_lodo-bench"));
    let c = dir.join("ckpt");
    let child = bin()
        .args(args(&dir.join("a")))
        .args(["--checkpoint-every", "20", "--checkpoint-dir"])
        .arg(&c)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first periodic checkpoint exists (the runs are then under way).
    let first = c.join("Adam_run0.ckpt");
    let t0 = std::time::Instant::now();
    while !first.exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(first.exists(), "no checkpoint within 120 s");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // Finished all 300 steps before the signal arrived: nothing to check.
        eprintln!(
            "all 300 steps finished before SIGINT arrived: the interrupt path was not exercised"
        );
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "{err}");
    let (_, state) = lodo_bench::experiment::checkpoint::read_run_state(&first).unwrap();
    assert!(
        state.iterations >= 20 && state.iterations < 300,
        "{}",
        state.iterations
    );
    let resumed = bin()
        .args(args(&dir.join("b")))
        .arg("--resume")
        .arg(&c)
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let whole = bin().args(args(&dir.join("w"))).output().unwrap();
    assert!(whole.status.success());
    // Every column of curves.csv but the seconds, and the final parameters' bytes.
    let columns = |p: PathBuf| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{},{},{},{},{}", f[0], f[1], f[2], f[4], f[5])
            })
            .collect()
    };
    let w = columns(dir.join("w/curves.csv"));
    assert_eq!(w.len(), 601);
    assert_eq!(w, columns(dir.join("b/curves.csv")));
    for f in ["params_Adam_run0.f32le", "params_Momentum_run0.f32le"] {
        assert_eq!(
            std::fs::read(dir.join("w").join(f)).unwrap(),
            std::fs::read(dir.join("b").join(f)).unwrap(),
            "{f}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
