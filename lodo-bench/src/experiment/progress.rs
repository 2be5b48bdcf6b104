//! Progress of a phase (tuning candidates, runs): an `indicatif` bar when stderr is a terminal,
//! otherwise plain lines (no carriage returns) that a log file or a pipe keeps readable: one when
//! the phase starts, one at most every [`PLAIN_EVERY`] as units finish, and one when it is done.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The shortest time between two plain progress lines of one phase.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// A plain progress line: `[label] done/len (p %), elapsed, time left at the rate so far`.
#[must_use]
pub fn plain_line(label: &str, done: u64, len: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let pct = if len == 0 {
        100.0
    } else {
        100.0 * done as f64 / len as f64
    };
    let left = if done == 0 || done >= len {
        String::new()
    } else {
        format!(
            ", about {} left",
            fmt_duration(secs * (len - done) as f64 / done as f64)
        )
    };
    format!(
        "[{label}] {done}/{len} ({pct:.0} %), {} elapsed{left}",
        fmt_duration(secs)
    )
}

/// `42 s`, `3.5 min`, `2.1 h`.
#[must_use]
pub fn fmt_duration(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 5400.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

struct Plain {
    label: String,
    len: u64,
    done: AtomicU64,
    start: Instant,
    /// When the last line was printed, and the count it showed.
    last: Mutex<(Instant, u64)>,
    every: Duration,
    sink: Box<dyn Fn(&str) + Send + Sync>,
}

/// The progress of one phase of `len` units.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Plain>,
}

impl Progress {
    /// A bar on a terminal, plain lines on stderr otherwise.
    #[must_use]
    pub fn new(len: u64, label: &str) -> Self {
        if std::io::stderr().is_terminal() {
            let pb = ProgressBar::new(len);
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg:28} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_message(label.to_string());
            Self {
                bar: Some(pb),
                plain: None,
            }
        } else {
            Self::plain(len, label, PLAIN_EVERY, |l| eprintln!("{l}"))
        }
    }

    /// Plain lines passed to `sink`, at most one per `every` between the first and the last.
    #[must_use]
    pub fn plain(
        len: u64,
        label: &str,
        every: Duration,
        sink: impl Fn(&str) + Send + Sync + 'static,
    ) -> Self {
        let now = Instant::now();
        sink(&format!("[{label}] started: {len} to do"));
        Self {
            bar: None,
            plain: Some(Plain {
                label: label.to_string(),
                len,
                done: AtomicU64::new(0),
                start: now,
                last: Mutex::new((now, 0)),
                every,
                sink: Box::new(sink),
            }),
        }
    }

    /// `n` more units are done.
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.bar {
            pb.inc(n);
        }
        if let Some(p) = &self.plain {
            let done = p.done.fetch_add(n, Ordering::SeqCst) + n;
            let Ok(mut last) = p.last.lock() else {
                return;
            };
            let now = Instant::now();
            if done >= p.len || now.duration_since(last.0) >= p.every {
                // Only the thread that moves the count forward prints (no repeated lines).
                if done > last.1 {
                    *last = (now, done);
                    (p.sink)(&plain_line(&p.label, done, p.len, now - p.start));
                }
            }
        }
    }

    /// The phase ended (finished or interrupted): clears the bar; a plain phase that stopped
    /// early says how far it got.
    pub fn finish_and_clear(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
        if let Some(p) = &self.plain {
            let done = p.done.load(Ordering::SeqCst);
            if done < p.len {
                (p.sink)(&format!("[{}] stopped at {done}/{}", p.label, p.len));
            }
        }
    }
}
