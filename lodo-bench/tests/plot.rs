//! Figures survive any data: zero, subnormal, huge, infinite and NaN values and empty series.
//! The axis range is a pure function ([`drawable_range`], [`fit_range`]) checked on its own, so
//! plotters' tick code only ever sees finite, non-degenerate ranges; then every such data set
//! is drawn (log and linear axes).

use lodo_bench::plot::{
    AXIS_MAX, DIVERGED_FACTOR, LOG_AXIS_MIN, LineChart, Series, drawable_range, fit_range,
};

const NASTY: [f64; 12] = [
    0.0,
    -0.0,
    5e-324,
    1e-310,
    1e-300,
    1e300,
    f64::MAX,
    -1e300,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    1.0,
];

fn drawable(lo: f64, hi: f64, log: bool) -> bool {
    let finite = lo.is_finite() && hi.is_finite() && (hi - lo).is_finite();
    let ordered = lo < hi && hi - lo >= 1e-9 * lo.abs().max(hi.abs());
    let inside = if log {
        lo >= LOG_AXIS_MIN && hi <= AXIS_MAX && hi >= 2.0 * lo
    } else {
        lo >= -AXIS_MAX && hi <= AXIS_MAX
    };
    finite && ordered && inside
}

#[test]
fn every_pair_of_ends_gives_a_drawable_range() {
    for log in [false, true] {
        for &a in &NASTY {
            for &b in &NASTY {
                let (lo, hi) = drawable_range(a, b, log);
                assert!(drawable(lo, hi, log), "({a}, {b}) log {log} → ({lo}, {hi})");
            }
        }
    }
    // Ordinary ranges pass unchanged (the figures of ordinary runs do not move).
    assert_eq!(drawable_range(4.9, 296.5, true), (4.9, 296.5));
    assert_eq!(drawable_range(0.0, 1.1, false), (0.0, 1.1));
}

#[test]
fn diverged_series_do_not_stretch_the_axis() {
    let good = Series::new("good", vec![(0.0, 10.0), (1.0, 1.0), (2.0, 0.5)]);
    let bad = Series::new("bad", vec![(0.0, 10.0), (1.0, 1e200), (2.0, 1e300)]);
    for log in [false, true] {
        let (lo, hi) = fit_range(&[good.clone(), bad.clone()], &[], log).unwrap();
        assert!(hi <= 1.5 * DIVERGED_FACTOR * 10.0, "log {log}: {hi}");
        assert!(lo < 0.5, "log {log}: {lo}");
    }
    // Nothing drawable: no range (the caller uses a default).
    let empty = Series::new("empty", vec![]);
    let nan = Series::new("nan", vec![(0.0, f64::NAN), (1.0, f64::INFINITY)]);
    assert_eq!(fit_range(&[empty, nan], &[f64::NAN], true), None);
}

#[test]
fn charts_of_any_data_are_drawn() {
    let dir = std::env::temp_dir().join(format!("lodo-bench-plot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sets: Vec<(&str, Vec<f64>)> = vec![
        ("zeros", vec![0.0; 5]),
        ("subnormal", vec![5e-324, 1e-310, 1e-320]),
        ("huge", vec![1e300, f64::MAX, 1e300]),
        ("infinite", vec![f64::INFINITY, f64::NEG_INFINITY, 1.0]),
        ("nan", vec![f64::NAN, f64::NAN]),
        ("empty", vec![]),
        ("constant", vec![7.4118; 4]),
        ("diverged", vec![10.0, 1e10, 1e300, f64::INFINITY]),
    ];
    for (name, ys) in sets {
        for log in [false, true] {
            for hline in [None, Some(0.0), Some(f64::NAN), Some(1e300)] {
                let chart = LineChart {
                    title: name.into(),
                    x_label: "step".into(),
                    y_label: "loss".into(),
                    log_y: log,
                    series: vec![Series::new(
                        name,
                        ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
                    )],
                    hlines: hline
                        .map(|y| vec![("floor".to_string(), y)])
                        .unwrap_or_default(),
                };
                let stem = dir.join(format!("{name}-{log}-{}", hline.is_some()));
                chart.draw(&stem).unwrap();
                // A fixed range made of the same values (as the bowl's floor-based range).
                let f = hline.unwrap_or(0.0);
                chart
                    .draw_in_range(&stem, Some((f / 1.5, f * 40.0)))
                    .unwrap();
                assert!(stem.with_extension("png").is_file());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
