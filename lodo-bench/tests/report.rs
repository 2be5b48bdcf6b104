//! The report writer: summaries, Markdown tables, CSV round trips, atomic writes.

use lodo_bench::report::{
    Summary, file_stem, fmt_num, hyperparameter_table, read_curve_csv, results_table, write_atomic,
    write_curve_csv, write_summary_csv,
};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lodo-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn summary_is_mean_and_population_std_of_non_diverged_runs() {
    let s = Summary::from_runs(
        "X",
        &[1.0, 3.0, f64::INFINITY, 100.0],
        &[false, false, true, true],
        &[10.0, 30.0, 0.0, 20.0],
    );
    assert_eq!((s.runs, s.diverged), (4, 2));
    assert!((s.mean - 2.0).abs() < 1e-15);
    assert!((s.std - 1.0).abs() < 1e-15, "np.std (ddof = 0)");
    assert!(
        (s.steps_per_sec - 20.0).abs() < 1e-12,
        "runs that did not run are excluded"
    );
    let none = Summary::from_runs("Y", &[f64::NAN], &[false], &[1.0]);
    assert_eq!(none.diverged, 1);
    assert!(none.mean.is_nan());
}

#[test]
fn results_table_rows_in_order_with_floor_ratio() {
    let a = Summary::from_runs("LODO", &[8.0, 8.2], &[false, false], &[1000.0, 1100.0]);
    let b = Summary::from_runs("Adam", &[f64::INFINITY, 9.0], &[true, false], &[5.0, 5.0]);
    let md = results_table(&[a, b], Some(8.0));
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("| optimizer |") && lines[0].ends_with("÷ floor |"));
    assert_eq!(lines[2], "| LODO | 8.1000 ± 0.10 | 0/2 | 1050 | 1.012 |");
    assert_eq!(lines[3], "| Adam | 9.0000 ± 0 | 1/2 | 5 | 1.125 |");
    let md = results_table(&[Summary::from_runs("Z", &[1e-7], &[false], &[1.0])], None);
    assert!(md.contains("| Z | 1.0000e-7 ± 0 | 0/1 | 1 |"), "{md}");
}

#[test]
fn number_and_hyperparameter_formatting() {
    assert_eq!(fmt_num(7.41183), "7.4118");
    assert_eq!(fmt_num(2.5e-5), "2.5000e-5");
    assert_eq!(fmt_num(0.0012329), "0.0012329");
    assert_eq!(fmt_num(9.99996), "10.000");
    assert_eq!(fmt_num(-16.712), "-16.712");
    assert_eq!(fmt_num(2.958e5), "2.9580e5");
    assert_eq!(fmt_num(f64::INFINITY), "∞");
    assert_eq!(fmt_num(f64::NAN), "—");
    let t = hyperparameter_table(&[(
        "Adam (tuned)".into(),
        vec![("lr".into(), 0.00123456), ("beta_1".into(), 0.9)],
    )]);
    assert!(
        t.contains("| Adam (tuned) | lr = 1.235e-3, beta_1 = 0.9 |"),
        "{t}"
    );
}

#[test]
fn curve_csv_round_trips_exactly_and_writes_atomically() {
    let dir = tmp("curve");
    let path = dir.join("a/b/run0.csv");
    let curve = vec![(10, 1.0 / 3.0), (20, 7.411_829_3), (30, 1e-300)];
    write_curve_csv(&path, &curve).unwrap();
    let back = read_curve_csv(&path).unwrap();
    assert_eq!(back.len(), 3);
    for (a, b) in curve.iter().zip(&back) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1.to_bits(), b.1.to_bits());
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("step,loss\n10,"));
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["run0.csv".to_string()]);
    // Overwriting replaces the content.
    write_atomic(&path, b"x").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"x");
    let s = Summary::from_runs("L O/DO", &[1.0], &[false], &[2.0]);
    write_summary_csv(&dir.join("s.csv"), &[s]).unwrap();
    let text = std::fs::read_to_string(dir.join("s.csv")).unwrap();
    assert_eq!(
        text,
        "optimizer,runs,diverged,mean,std,steps_per_sec\nL O/DO,1,0,1e0,0e0,2.0\n"
    );
    assert_eq!(file_stem("L O/DO (x)"), "L_O_DO__x_");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn atomic_write_into_unwritable_place_fails() {
    let dir = tmp("blocked");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("plain-file");
    std::fs::write(&file, b"").unwrap();
    // A path *under* a regular file cannot be created.
    assert!(write_atomic(&file.join("x.csv"), b"1").is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn different_means_print_differently() {
    use lodo_bench::report::fmt_distinct;
    // Rosenbrock's LODO variants: alike to 5 digits, apart at 6.
    let v = [0.00122680, 0.00122681, 0.0012329, 0.00122680];
    let t = fmt_distinct(&v, 5);
    assert_eq!(t, ["0.00122680", "0.00122681", "0.00123290", "0.00122680"]);
    // Already distinct: the minimum digits; NaN and ∞ do not force more.
    assert_eq!(
        fmt_distinct(&[9.3919, 33.523, f64::NAN, f64::NAN, f64::INFINITY], 5),
        ["9.3919", "33.523", "—", "—", "∞"]
    );
    // In a table.
    let rows: Vec<Summary> = v[..3]
        .iter()
        .enumerate()
        .map(|(i, &m)| Summary::from_runs(&format!("R{i}"), &[m], &[false], &[1.0]))
        .collect();
    let md = results_table(&rows, None);
    assert!(
        md.contains("| R0 | 0.00122680 ±") && md.contains("| R1 | 0.00122681 ±"),
        "{md}"
    );
}
