//! Plain progress lines (stderr not a terminal): a line when a phase starts, at most one per
//! interval while it runs, always the last one, and a note when it stops early; no carriage
//! returns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lodo_bench::experiment::progress::{Progress, fmt_duration, plain_line};

fn capture(len: u64, every: Duration) -> (Progress, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let p = Progress::plain(len, "main runs bowl", every, move |l| {
        sink.lock().unwrap().push(l.to_string());
    });
    (p, lines)
}

#[test]
fn every_unit_gets_a_line_when_the_interval_is_zero() {
    let (p, lines) = capture(3, Duration::ZERO);
    for _ in 0..3 {
        p.inc(1);
    }
    p.finish_and_clear();
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], "[main runs bowl] started: 3 to do");
    assert!(
        lines[1].starts_with("[main runs bowl] 1/3 (33 %), "),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("left"),
        "a time estimate while running: {lines:?}"
    );
    assert!(
        lines[3].starts_with("[main runs bowl] 3/3 (100 %), "),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains('\r') && !l.contains('\n')));
}

#[test]
fn a_long_interval_prints_the_start_and_the_end_only() {
    let (p, lines) = capture(50, Duration::from_secs(3600));
    for _ in 0..50 {
        p.inc(1);
    }
    p.finish_and_clear();
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].starts_with("[main runs bowl] 50/50 (100 %)"),
        "{lines:?}"
    );
}

#[test]
fn a_phase_stopped_early_says_how_far_it_got() {
    let (p, lines) = capture(10, Duration::from_secs(3600));
    p.inc(4);
    p.finish_and_clear();
    let lines = lines.lock().unwrap();
    assert_eq!(lines.last().unwrap(), "[main runs bowl] stopped at 4/10");
}

#[test]
fn lines_and_durations_read_plainly() {
    assert_eq!(
        plain_line("tuning bowl", 5, 20, Duration::from_secs(10)),
        "[tuning bowl] 5/20 (25 %), 10 s elapsed, about 30 s left"
    );
    assert_eq!(fmt_duration(42.0), "42 s");
    assert_eq!(fmt_duration(210.0), "3.5 min");
    assert_eq!(fmt_duration(7560.0), "2.1 h");
}
