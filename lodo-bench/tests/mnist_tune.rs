//! `lodo-bench mnist --tune` end to end at a tiny scale: the tuner runs, `tuned.json` holds the
//! best candidate of the (single) generation, and the experiment and report use the tuned values;
//! and the layout rows of `--state`/`--permutations` run and are tested against LODO.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use lodo_bench::mnist::cli::{MnistArgs, run};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: MnistArgs,
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lodo-mnist-tune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn args(out: &std::path::Path, optimizers: &str, extra: &[&str]) -> MnistArgs {
    let mut argv = vec![
        "mnist".to_string(),
        "--out".into(),
        out.display().to_string(),
        "--optimizers".into(),
        optimizers.into(),
        "--steps".into(),
        "2".into(),
        "--batch".into(),
        "2".into(),
        "--test-images".into(),
        "1".into(),
        "--samples".into(),
        "0".into(),
        "--threads".into(),
        "1".into(),
    ];
    argv.extend(extra.iter().map(|s| (*s).to_string()));
    Cli::try_parse_from(argv).unwrap().args
}

/// `(optimizer, hyperparameter) → (generation, candidate) → (value, score)` from
/// `tuning/<optimizer>.csv` (columns: generation, candidate, one per hyperparameter, score).
type Candidates = BTreeMap<(String, String), BTreeMap<(usize, usize), (f64, f64)>>;

fn read_candidates(dir: &std::path::Path, optimizers: &[&str]) -> Candidates {
    let mut out = Candidates::new();
    for opt in optimizers {
        let mut r = csv::Reader::from_path(dir.join(format!("{opt}.csv"))).unwrap();
        let names: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        let params = &names[2..names.len() - 1];
        for row in r.records() {
            let row = row.unwrap();
            let gc = (row[0].parse().unwrap(), row[1].parse().unwrap());
            let score: f64 = row[row.len() - 1].parse().unwrap();
            for (j, hp) in params.iter().enumerate() {
                let v = (row[2 + j].parse().unwrap(), score);
                out.entry((opt.to_string(), hp.clone()))
                    .or_default()
                    .insert(gc, v);
            }
        }
    }
    out
}

/// `optimizer → hyperparameter → value` from `tuned.json` (the harness's one schema).
fn read_tuned(path: &std::path::Path) -> BTreeMap<String, BTreeMap<String, f64>> {
    let list: Vec<lodo_bench::experiment::files::Tuned> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    list.into_iter()
        .map(|t| (t.optimizer, t.names.into_iter().zip(t.values).collect()))
        .collect()
}

#[test]
fn tuning_runs_and_its_values_reach_the_report() {
    let out = out_dir("tiny");
    let a = args(
        &out,
        "lodo,adam",
        &[
            "--tune",
            "--tune-steps",
            "3",
            "--tune-batch",
            "2",
            "--tune-population",
            "2",
            "--tune-generations",
            "1",
        ],
    );
    run(&a).unwrap();
    let tuned = read_tuned(&out.join("tuned.json"));
    let names: Vec<(&str, &str, f64)> = vec![
        ("LODO", "initial_lr", a.alpha0),
        ("LODO", "meta_lr", a.meta_lr),
        ("Adam", "lr", a.adam_lr),
    ];
    assert_eq!(tuned.len(), 2, "{tuned:?}");
    assert_eq!(tuned["LODO"].len(), 2, "β is not tuned without --tune-beta");
    let cands = read_candidates(&out.join("tuning"), &["LODO", "Adam"]);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for (opt, hp, start) in names {
        let v = tuned[opt][hp];
        assert!(v.is_finite() && v > 0.0, "{opt} {hp} = {v}");
        // With two candidates the next mean is the better one, so the tuned value is the
        // better candidate's, not the start.
        let c = &cands[&(opt.to_string(), hp.to_string())];
        assert_eq!(c.len(), 2, "{opt} {hp}: two candidates in one generation");
        let best = c
            .values()
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .copied()
            .unwrap();
        assert!(
            (v - best.0).abs() <= 1e-9 * best.0,
            "{opt} {hp}: tuned {v} is not the best candidate {best:?}"
        );
        assert!((v - start).abs() > 1e-6 * start, "{opt} {hp}: not moved");
        // The tuning table row and the header of the experiment carry the tuned value.
        let shown = format!("{v:.4e}");
        assert!(
            report.contains(&format!("| {opt} | {hp} | {start:.4e} | {shown} |")),
            "{opt} {hp}: tuning row missing in\n{report}"
        );
        let header = match (opt, hp) {
            ("LODO", "initial_lr") => format!("α₀ = {shown}"),
            ("LODO", "meta_lr") => format!("η = {shown} (tuned)"),
            _ => format!("Adam η = {shown}"),
        };
        assert!(report.contains(&header), "{header:?} missing in\n{report}");
    }
    // The experiment ran with them: one row per optimizer.
    assert!(report.contains("| LODO | "), "{report}");
    assert!(report.contains("| Adam | "), "{report}");
    // Claim 4 is stated from the wall-clock column: LODO's and Adam's values as the table shows
    // them (the mean before " ± " in the third column).
    let by_time = |opt: &str| -> String {
        // The results table comes after the tuning table: the last row of `opt`.
        let row = report
            .lines()
            .rfind(|l| l.starts_with(&format!("| {opt} | ")))
            .unwrap();
        let cell = row.split(" | ").nth(2).unwrap();
        cell.split(" ± ").next().unwrap().to_string()
    };
    let claim = report
        .lines()
        .find(|l| l.starts_with("Claim 4 of the paper"))
        .unwrap_or_else(|| panic!("no claim 4 in\n{report}"));
    // A LODO step can outlast the fastest run (the budget): then it has no value there.
    let lodo = by_time("LODO");
    if lodo == "—" {
        assert!(
            claim.contains("does not hold here: within")
                && claim.contains("LODO finished no curve point")
                && claim.contains(&format!("{} (Adam)", by_time("Adam"))),
            "{claim}"
        );
    } else {
        assert!(
            claim.contains(&format!("LODO's loss is {lodo} against"))
                && claim.contains(&format!("{} (Adam)", by_time("Adam")))
                && claim.contains("of 1 standard optimizers are lower"),
            "{claim}"
        );
    }
    // claim4.json carries the same sentence, for reproduce's claims section.
    let record = lodo_bench::mnist::cli::read_claim(&out.join("claim4.json"))
        .unwrap()
        .expect("claim4.json written");
    assert!(record.verdict.starts_with(claim), "{record:?}");
    // --reuse-tuned: a second invocation into the same folder runs with tuned.json's values
    // (with checkpoints and the CPU clock, which --tune cannot take).
    let b = args(
        &out,
        "lodo,adam",
        &["--reuse-tuned", "--clock", "cpu", "--checkpoint-every", "1"],
    );
    run(&b).unwrap();
    let again = std::fs::read_to_string(out.join("report.md")).unwrap();
    for (opt, hp, text) in [
        ("LODO", "initial_lr", "α₀ = "),
        ("LODO", "meta_lr", "η = "),
        ("Adam", "lr", "Adam η = "),
    ] {
        let shown = format!("{text}{:.4e}", tuned[opt][hp]);
        assert!(again.contains(&shown), "{shown:?} missing in\n{again}");
    }
    assert!(
        again.contains("(tuned, from `tuned.json`)") && again.contains("(process CPU)"),
        "{again}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn without_tune_nothing_is_tuned() {
    let out = out_dir("plain");
    let mut a = args(&out, "adam", &[]);
    a.adam_lr = 2e-3;
    run(&a).unwrap();
    assert!(!out.join("tuned.json").exists());
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(!report.contains("## Tuning"), "{report}");
    assert!(
        !report.contains("digits.png"),
        "no digits with --samples 0: {report}"
    );
    assert!(
        report.contains("Adam η = 2.0000e-3"),
        "the given learning rate is used: {report}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn state_rows_run_and_are_tested_against_lodo() {
    let out = out_dir("state");
    let a = args(&out, "adam", &["--state", "full,q8", "--runs", "2"]);
    run(&a).unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    // LODO is added for its layouts; the q8 row is in the table and tested against it.
    for row in ["| Adam |", "| LODO |", "| LODO-q8 |"] {
        assert!(report.contains(row), "{row}: {report}");
    }
    assert!(
        report.contains("- LODO-q8 against LODO: training loss ")
            && report.contains("; test loss "),
        "{report}"
    );
    // Adam is not a layout of LODO.
    assert!(!report.contains("- Adam against LODO"), "{report}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_tuning_options_are_refused() {
    let out = out_dir("bad");
    for extra in [
        &["--tune", "--tune-population", "1"][..],
        &["--tune", "--tune-generations", "11"],
        &["--tune", "--tune-generations", "0"],
        &["--tune", "--tune-steps", "0"],
        &["--tune", "--tune-batch", "0"],
        &["--reuse-tuned"],
    ] {
        assert!(
            run(&args(&out, "adam", extra)).is_err(),
            "{extra:?} accepted"
        );
    }
    assert!(
        Cli::try_parse_from(["mnist", "--tune", "--reuse-tuned"]).is_err(),
        "--tune with --reuse-tuned accepted"
    );
    let mut a = args(&out, "adam", &[]);
    a.adam_lr = -1.0;
    assert!(run(&a).is_err(), "a negative learning rate accepted");
    let mut a = args(&out, "lodo", &[]);
    a.alpha0 = f64::NAN;
    assert!(run(&a).is_err(), "a NaN α₀ accepted");
    let _ = std::fs::remove_dir_all(&out);
}
