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
        let (lo, hi) = fit_range(&[good.clone(), bad.clone()], &[], log, false).unwrap();
        assert!(hi <= 1.5 * DIVERGED_FACTOR * 10.0, "log {log}: {hi}");
        assert!(lo < 0.5, "log {log}: {lo}");
    }
    // A quantity that grows from near zero (G's distance from α₀I) keeps every point on
    // the axis when the chart asks for it.
    let grows = Series::new("grows", vec![(0.0, 1e-7), (1.0, 1e-3), (2.0, 0.2)]);
    for log in [false, true] {
        let (lo, hi) = fit_range(std::slice::from_ref(&grows), &[], log, true).unwrap();
        assert!(hi >= 0.2 && lo <= 1e-7, "log {log}: ({lo}, {hi})");
        let (_, hi) = fit_range(std::slice::from_ref(&grows), &[], log, false).unwrap();
        assert!(hi < 0.2, "log {log}: {hi}");
    }
    // Nothing drawable: no range (the caller uses a default).
    let empty = Series::new("empty", vec![]);
    let nan = Series::new("nan", vec![(0.0, f64::NAN), (1.0, f64::INFINITY)]);
    assert_eq!(fit_range(&[empty, nan], &[f64::NAN], true, false), None);
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
                    show_growth: false,
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

#[test]
fn tick_labels_never_repeat() {
    use lodo_bench::plot::{linear_ticks, log_ticks, tick_labels};
    // The bowl's fixed range (floor/1.5 to 40 × floor) gave two "100" labels before.
    let f = 7.411_829;
    let mut ranges = vec![(f / 1.5, f * 40.0, true), (0.75, 0.751, false)];
    for (lo, hi) in [
        (1e-300, 1e300),
        (4.9, 5.1),
        (1e-3, 1.0),
        (0.5, 3.0),
        (-1e300, 1e300),
    ] {
        ranges.push((lo, hi, lo > 0.0));
        ranges.push((lo, hi, false));
    }
    for (lo, hi, log) in ranges {
        let t = if log {
            log_ticks(lo, hi)
        } else {
            linear_ticks(lo, hi)
        };
        assert!(
            t.bold.len() >= 2 && t.bold.len() <= 40,
            "{lo} {hi} {log}: {:?}",
            t.bold
        );
        assert!(t.bold.windows(2).all(|w| w[0] < w[1]), "{:?}", t.bold);
        assert!(t.bold.iter().all(|v| (lo..=hi).contains(v)), "{:?}", t.bold);
        let l = tick_labels(&t.bold);
        let mut seen = l.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), l.len(), "{lo} {hi} {log}: {l:?}");
    }
    let t = log_ticks(f / 1.5, f * 40.0);
    assert_eq!(tick_labels(&t.bold), ["5", "10", "20", "50", "100", "200"]);
    assert_eq!(tick_labels(&[0.7502, 0.7504]), ["0.7502", "0.7504"]);
}

#[test]
fn trajectories_are_cut_at_the_frame_and_the_frame_grows_to_hold_them() {
    use lodo_bench::plot::{clip_path, clip_segment, trajectory_frame};
    let frame = (-1.0, 1.0, -1.0, 1.0);
    let inside = |p: &(f64, f64)| (-1.0..=1.0).contains(&p.0) && (-1.0..=1.0).contains(&p.1);
    // A segment through the frame is cut at both edges.
    let (a, b) = clip_segment((-3.0, 0.0), (3.0, 0.0), frame).unwrap();
    assert_eq!((a, b), ((-1.0, 0.0), (1.0, 0.0)));
    assert_eq!(clip_segment((2.0, 2.0), (3.0, 3.0), frame), None);
    // A path that leaves and comes back is two pieces, every point inside.
    let path = [
        (0.0, 0.0),
        (0.5, 0.0),
        (5.0, 0.0),
        (0.5, 0.5),
        (0.0, 0.5),
        (f64::NAN, 0.0),
        (0.1, 0.1),
    ];
    let pieces = clip_path(&path, frame);
    assert_eq!(pieces.len(), 2, "{pieces:?}");
    assert!(pieces.iter().flatten().all(inside), "{pieces:?}");
    assert_eq!(pieces[0], [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0)]);
    assert_eq!(pieces[1].last(), Some(&(0.0, 0.5)));
    // The frame grows to hold nearby points, not a path that ran off to 1e40.
    let t = vec![
        ("a".to_string(), vec![(-1.6, 0.0), (0.0, 1.2)]),
        ("diverged".to_string(), vec![(0.0, 0.0), (-5e40, 9e36)]),
    ];
    let (l, r, b, top) = trajectory_frame(frame, &t);
    assert!(l < -1.6 && l > -1.8 && top > 1.2 && top < 1.4, "{l} {top}");
    assert_eq!((r, b), (1.0, -1.0));
}
