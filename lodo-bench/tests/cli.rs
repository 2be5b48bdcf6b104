//! The command line: clear errors for bad options, a tiny end-to-end run, and Ctrl-C leaving
//! complete files.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lodo-bench"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lodo-bench-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn unknown_optimizer_is_a_clear_error() {
    let out = bin()
        .args(["rosenbrock", "--optimizers", "Adam,AdamW", "--out"])
        .arg(tmp("unknown"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown optimizer \"AdamW\""), "{err}");
    assert!(err.contains("LODO"), "lists the known names: {err}");
}

#[test]
fn zero_steps_and_zero_runs_are_rejected() {
    for flag in ["--steps", "--runs"] {
        let out = bin().args(["bowl", flag, "0"]).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(flag) && err.contains("0 is not in 1.."),
            "{err}"
        );
    }
}

#[test]
fn unwritable_output_folder_is_a_clear_error() {
    let dir = tmp("blocked");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("file");
    std::fs::write(&file, b"").unwrap();
    let out = bin()
        .args(["rosenbrock", "--out"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot create the output folder"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tiny_rosenbrock_run_writes_report_tables_and_figures() {
    let dir = tmp("tiny");
    let out = bin()
        .args([
            "rosenbrock",
            "--runs",
            "2",
            "--population",
            "4",
            "--optimizers",
            "Adam,LODO",
            "--no-ablations",
            "--threads",
            "2",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = dir.join("rosenbrock");
    let report = std::fs::read_to_string(t.join("report.md")).unwrap();
    assert!(
        report.contains("| Adam (tuned) |") && report.contains("| LODO |"),
        "{report}"
    );
    for f in [
        "summary.csv",
        "tuned.json",
        "tuning/LODO.csv",
        "curves/LODO/run1.csv",
        "trajectories/Adam.csv",
        "learning_curves.svg",
        "learning_curves.png",
        "trajectories.svg",
        "trajectories.png",
    ] {
        assert!(t.join(f).is_file(), "{f} missing");
    }
    let png = std::fs::read(t.join("trajectories.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn ctrl_c_leaves_complete_files_for_finished_runs() {
    let dir = tmp("ctrlc");
    let child = bin()
        .args([
            "bowl",
            "--no-tune",
            "--no-ablations",
            "--optimizers",
            "Momentum,LODO",
            "--runs",
            "4",
            "--steps",
            "30000",
            "--dim",
            "20",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let some (fast) Momentum runs finish, then interrupt.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // The machine was fast enough to finish everything: nothing to check.
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let curves = dir.join("bowl/curves");
    let mut complete = 0;
    for opt in std::fs::read_dir(&curves).into_iter().flatten() {
        for f in std::fs::read_dir(opt.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            assert_eq!(p.extension().unwrap(), "csv", "no temporary files: {p:?}");
            let c = lodo_bench::report::read_curve_csv(&p).unwrap();
            assert_eq!(
                c.last().unwrap().0,
                30000,
                "a finished run's curve is complete"
            );
            complete += 1;
        }
    }
    assert!(complete < 8, "interrupted before the end");
    // The report and figures of what finished, marked partial.
    let report = std::fs::read_to_string(dir.join("bowl/report.md")).unwrap();
    assert!(report.starts_with("> **Partial report.**"), "{report}");
    assert!(report.contains("frozen test (not started)"), "{report}");
    if complete > 0 {
        assert!(
            report.contains(&format!(
                "main runs (interrupted: {complete} of 8 runs finished)"
            )),
            "{report}"
        );
        assert!(dir.join("bowl/learning_curves.png").is_file());
    }
    assert!(err.contains("partial report: "), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

fn fails_with(args: &[&str], out: &std::path::Path, needles: &[&str]) {
    let o = bin().args(args).arg("--out").arg(out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} accepted: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {n:?} missing in {err}");
    }
}

#[test]
fn an_optimizer_listed_twice_is_refused() {
    let dir = tmp("twice");
    fails_with(
        &["rosenbrock", "--optimizers", "adam,LODO,Adam"],
        &dir,
        &["lists Adam twice"],
    );
    fails_with(
        &["tune", "--task", "bowl", "--optimizers", "lodo,lodo"],
        &dir,
        &["lists LODO twice"],
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_corrupt_or_empty_tuned_json_is_an_error_naming_the_file() {
    let dir = tmp("corrupt");
    let file = dir.join("bowl").join("tuned.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let args = [
        "bowl",
        "--no-tune",
        "--no-ablations",
        "--optimizers",
        "adam",
        "--runs",
        "1",
        "--steps",
        "10",
        "--dim",
        "4",
    ];
    let name = file.display().to_string();
    for content in [
        "",
        "{\"LODO\": {\"initial_lr\": 0.1}}",
        "[{\"optimizer\": \"Adam\"}",
    ] {
        std::fs::write(&file, content).unwrap();
        fails_with(&args, &dir, &[&name]);
    }
    // A hyperparameter the optimizer does not have.
    std::fs::write(
        &file,
        r#"[{"optimizer":"Adam","names":["lr","zz"],"defaults":[1,1],"values":[0.1,2],"source":"tuned"}]"#,
    )
    .unwrap();
    fails_with(&args, &dir, &[&name, "no hyperparameter \"zz\""]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mnist_seconds_must_be_a_positive_number() {
    let dir = tmp("seconds");
    for s in ["NaN", "-5", "0", "inf"] {
        fails_with(
            &["mnist", &format!("--seconds={s}")],
            &dir,
            &["--seconds must be a positive number"],
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn runs_larger_than_the_memory_are_refused_before_allocating() {
    let dir = tmp("memory");
    // The bowl's dense H and eigenvectors at n = 1e5: 2 · 8 · 1e10 bytes = 149 GiB.
    fails_with(
        &[
            "bowl",
            "--dim",
            "100000",
            "--no-tune",
            "--optimizers",
            "adam",
        ],
        &dir,
        &["would ask for about", "GiB available"],
    );
    fails_with(
        &[
            "mnist",
            "--batch",
            "99999999999999",
            "--optimizers",
            "adam",
            "--samples",
            "0",
        ],
        &dir,
        &["would ask for about", "GiB available"],
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_permutation_lists_are_clear_errors_on_every_subcommand() {
    let dir = tmp("permutations");
    let cases: [(&str, &[&str]); 6] = [
        ("tiled:0", &["tile must hold at least 1 output"]),
        ("tiled:x", &["\"tiled:x\" is not a whole number"]),
        (
            "random,butterfly",
            &["unknown permutation family \"butterfly\"", "shuffle"],
        ),
        ("shuffle,shuffle", &["Shuffle is listed twice"]),
        ("tiled,tiled:64", &["Tiled64 is listed twice"]),
        ("random,,shuffle", &["empty permutation family"]),
    ];
    for cmd in ["bowl", "rosenbrock", "mnist"] {
        for (list, needles) in cases {
            let mut want = vec!["--permutations"];
            want.extend_from_slice(needles);
            fails_with(&[cmd, "--permutations", list], &dir, &want);
        }
    }
    // The families run at LODO's hyperparameters: LODO must be there.
    fails_with(
        &[
            "rosenbrock",
            "--optimizers",
            "Adam",
            "--permutations",
            "shuffle",
        ],
        &dir,
        &["list LODO among the optimizers"],
    );
    fails_with(
        &["frozen", "--permutations", "random,shuffle"],
        &dir,
        &["not apply to the frozen test"],
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_state_lists_are_clear_errors_on_every_subcommand() {
    let dir = tmp("state");
    let cases: [(&str, &[&str]); 3] = [
        ("f16", &["unknown state policy \"f16\"", "bf16", "q8"]),
        ("q8,q8", &["q8 is listed twice"]),
        ("full,,q8", &["empty state policy"]),
    ];
    for cmd in ["bowl", "rosenbrock", "mnist"] {
        for (list, needles) in cases {
            let mut want = vec!["--state"];
            want.extend_from_slice(needles);
            fails_with(&[cmd, "--state", list], &dir, &want);
        }
    }
    fails_with(
        &["rosenbrock", "--optimizers", "Adam", "--state", "q8"],
        &dir,
        &[
            "--state run LODO's layouts",
            "list LODO among the optimizers",
        ],
    );
    fails_with(
        &["frozen", "--state", "q8"],
        &dir,
        &["not apply to the frozen test"],
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `summary.csv` without its timing column (steps/s), and every run's curve.
fn deterministic_outputs(task: &std::path::Path) -> (String, Vec<(String, Vec<u8>)>) {
    let summary = std::fs::read_to_string(task.join("summary.csv")).unwrap();
    let summary: Vec<String> = summary
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect();
    let mut curves = Vec::new();
    for opt in std::fs::read_dir(task.join("curves")).unwrap() {
        let opt = opt.unwrap().path();
        for f in std::fs::read_dir(&opt).unwrap() {
            let p = f.unwrap().path();
            curves.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    curves.sort();
    (summary.join("\n"), curves)
}

#[test]
fn permutation_families_add_rows_and_random_alone_changes_nothing() {
    let run = |name: &str, extra: &[&str]| {
        let dir = tmp(name);
        let out = bin()
            .args([
                "rosenbrock",
                "--runs",
                "2",
                "--optimizers",
                "Adam,LODO",
                "--no-tune",
                "--no-ablations",
                "--threads",
                "2",
            ])
            .args(extra)
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    };
    let default = run("perm-default", &[]);
    let random = run("perm-random", &["--permutations", "random"]);
    let families = run(
        "perm-families",
        &["--permutations", "random,shuffle,tiled:8"],
    );
    let (sd, cd) = deterministic_outputs(&default.join("rosenbrock"));
    let (sr, cr) = deterministic_outputs(&random.join("rosenbrock"));
    assert_eq!(sd, sr);
    assert_eq!(cd.len(), cr.len());
    for ((_, a), (_, b)) in cd.iter().zip(&cr) {
        assert_eq!(a, b, "a curve differs with --permutations random");
    }
    let t = families.join("rosenbrock");
    let (sf, _) = deterministic_outputs(&t);
    let labels: Vec<&str> = sf
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(labels, ["Adam", "LODO", "LODO-Shuffle", "LODO-Tiled8"]);
    // LODO's rows are the default run's; the families' rows have their own curves.
    assert!(sf.starts_with(&sd), "{sf}\n{sd}");
    for f in [
        "curves/LODO-Shuffle/run1.csv",
        "curves/LODO-Tiled8/run0.csv",
    ] {
        assert!(t.join(f).is_file(), "{f} missing");
    }
    let report = std::fs::read_to_string(t.join("report.md")).unwrap();
    assert!(report.contains("| LODO-Shuffle |"), "{report}");
    // `--state full` alone changes nothing; with a family list, every pair but the paper's
    // adds a row.
    let full = run("state-full", &["--state", "full"]);
    let (su, cu) = deterministic_outputs(&full.join("rosenbrock"));
    assert_eq!(sd, su);
    assert_eq!(cd.len(), cu.len());
    for ((_, a), (_, b)) in cd.iter().zip(&cu) {
        assert_eq!(a, b, "a curve differs with --state full");
    }
    let states = run(
        "state-both",
        &["--permutations", "random,shuffle", "--state", "full,q8"],
    );
    let (ss, _) = deterministic_outputs(&states.join("rosenbrock"));
    let labels: Vec<&str> = ss
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["Adam", "LODO", "LODO-q8", "LODO-Shuffle", "LODO-Shuffle-q8"]
    );
    assert!(ss.starts_with(&sd), "{ss}\n{sd}");
    let shuffle_row = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("LODO-Shuffle,"))
            .map(String::from)
    };
    assert_eq!(shuffle_row(&ss), shuffle_row(&sf), "the same Shuffle row");
    // The report tests each layout row against LODO; a run without layout rows has no such part.
    let layout_report = std::fs::read_to_string(states.join("rosenbrock/report.md")).unwrap();
    for row in ["LODO-q8", "LODO-Shuffle", "LODO-Shuffle-q8"] {
        assert!(
            layout_report.contains(&format!("- {row} against LODO: ")),
            "{row}: {layout_report}"
        );
    }
    let plain = std::fs::read_to_string(default.join("rosenbrock/report.md")).unwrap();
    assert!(!plain.contains("against LODO"), "{plain}");
    for d in [default, random, families, full, states] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn without_a_terminal_progress_is_plain_lines_and_tables_have_headings() {
    let dir = tmp("plain");
    let out = bin()
        .args([
            "rosenbrock",
            "--runs",
            "2",
            "--population",
            "4",
            "--optimizers",
            "Adam,LODO",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&dir)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\r'), "no carriage-return bars: {err:?}");
    for line in [
        "[tuning rosenbrock] started: ",
        "[main runs rosenbrock] 4/4 (100 %)",
        "[ablations rosenbrock] 10/10 (100 %)",
        "rosenbrock: main runs, final-10% training loss (2 runs × 200 steps)\n| optimizer |",
        "rosenbrock: LODO ablations, final-10% training loss (2 runs × 200 steps)\n| optimizer |",
    ] {
        assert!(err.contains(line), "{line:?} missing in {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes an IDX image file of `n` 28 × 28 images (and, if `labels`, a label file) into `dir`.
fn idx_set(dir: &std::path::Path, n: u32, labels: Option<&[u8]>) {
    std::fs::create_dir_all(dir).unwrap();
    for name in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
        let mut b = vec![0u8, 0, 8, 3];
        for d in [n, 28, 28] {
            b.extend(d.to_be_bytes());
        }
        b.extend(std::iter::repeat_n(7u8, n as usize * 784));
        std::fs::write(dir.join(name), b).unwrap();
    }
    if let Some(l) = labels {
        let mut b = vec![0u8, 0, 8, 1];
        b.extend((l.len() as u32).to_be_bytes());
        b.extend(l);
        std::fs::write(dir.join("train-labels-idx1-ubyte"), b).unwrap();
    }
}

#[test]
fn mnist_refuses_a_training_set_the_hold_out_would_empty_and_mismatched_labels() {
    let dir = tmp("mnist-data");
    let data = dir.join("data");
    let args = |data: &std::path::Path| {
        vec![
            "mnist".to_string(),
            "--data".into(),
            data.display().to_string(),
            "--optimizers".into(),
            "adam".into(),
            "--steps".into(),
            "1".into(),
            "--samples".into(),
            "0".into(),
        ]
    };
    // One image: the 64 held-out digits would leave nothing to train on.
    idx_set(&data, 1, None);
    let a = args(&data);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    fails_with(
        &a,
        &dir.join("out"),
        &["1 training digit(s)", "at least 65"],
    );
    // Labels that do not belong to the images: named, with both counts.
    idx_set(&data, 70, Some(&[3; 69]));
    fails_with(
        &a,
        &dir.join("out"),
        &["train-labels-idx1-ubyte", "69 labels", "70 images"],
    );
    idx_set(&data, 70, Some(&[[1u8; 69].as_slice(), &[12]].concat()));
    fails_with(&a, &dir.join("out"), &["label 69 is 12, not a digit 0–9"]);
    let _ = std::fs::remove_dir_all(dir);
}
