//! Figures as SVG and PNG, drawn by plotters in pure Rust.
//!
//! Text is rendered with plotters' `ab_glyph` backend and the DejaVu Sans font shipped in
//! `lodo-bench/assets/` (embedded with `include_bytes!`, registered once by [`init_fonts`]), so no
//! system library (fontconfig, freetype) is needed.
//!
//! The API is generic over task and optimizer names. To plot learning curves of any experiment:
//!
//! ```no_run
//! use lodo_bench::plot::{LineChart, Series, mean_curve};
//! # fn main() -> anyhow::Result<()> {
//! let runs: Vec<Vec<(u64, f64)>> = vec![vec![(1, 3.0), (2, 2.0)], vec![(1, 5.0), (2, 4.0)]];
//! let chart = LineChart {
//!     title: "my task".into(),
//!     x_label: "step".into(),
//!     y_label: "training loss".into(),
//!     log_y: true,
//!     series: vec![Series::new("LODO", mean_curve(&runs))],
//!     hlines: vec![],
//! };
//! chart.draw(std::path::Path::new("results/my_task_curves"))?; // .svg and .png
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// DejaVu Sans (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static FONT_INIT: Once = Once::new();

/// Registers the embedded font under the family `sans-serif` (plotters' default). Called by every
/// drawing function; idempotent.
pub fn init_fonts() {
    FONT_INIT.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bytes are a valid TrueType font; a failure would only leave text undrawn.
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}

/// The authors' colour for an optimizer (`default_color_fn`), or a palette colour by index.
#[must_use]
pub fn color_for(name: &str, index: usize) -> RGBColor {
    let n = name.to_ascii_lowercase();
    let c =
        |r: f64, g: f64, b: f64| RGBColor((r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8);
    let named = [
        ("frozen lodo (new", c(1.0, 0.0, 0.0)),
        ("frozen lodo (bowl a", c(1.0, 0.6, 0.0)),
        ("training bowl", c(0.4, 0.4, 0.9)),
        ("on the fly", c(0.0, 0.0, 0.0)),
        ("lodo-diagonal", c(1.0, 0.0, 1.0)),
        ("lodo-global", c(0.0, 0.8, 0.8)),
        ("lodo-residuals", c(0.5, 0.0, 1.0)),
        ("lodo-sgd", c(0.545, 0.27, 0.075)),
        ("lodo-no-momentum", c(0.133, 0.545, 0.133)),
        ("lodo", c(0.0, 0.0, 0.0)),
        ("adam", c(1.0, 0.0, 0.0)),
        ("rmsprop", c(0.3, 0.85, 0.3)),
        ("momentum", c(0.0, 0.0, 1.0)),
        ("lars", c(0.0, 0.5, 0.5)),
        ("yogi", c(1.0, 0.75, 0.0)),
        ("o-lbfgs", c(0.8, 0.8, 0.0)),
        ("l-bfgs", c(0.0, 0.4, 0.0)),
        ("levenberg", c(0.545, 0.27, 0.075)),
        ("bfgs", c(0.58, 0.4, 0.74)),
    ];
    for (key, col) in named {
        if n.contains(key) {
            return col;
        }
    }
    let (r, g, b) = Palette99::pick(index).to_rgba().rgb();
    RGBColor(r, g, b)
}

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label (also picks the colour, see [`color_for`]).
    pub label: String,
    /// `(x, y)` points in order of `x`.
    pub points: Vec<(f64, f64)>,
    /// Explicit RGB colour; `None` picks [`color_for`] the label.
    pub color: Option<(u8, u8, u8)>,
}

impl Series {
    /// A series.
    #[must_use]
    pub fn new(label: &str, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.to_string(),
            points,
            color: None,
        }
    }
}

/// A line chart: several series, optional log y axis and labelled horizontal reference lines
/// (e.g. the bowl's Newton floor).
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Logarithmic y axis (non-positive values are dropped).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// `(label, y)` dashed horizontal lines.
    pub hlines: Vec<(String, f64)>,
}

/// The mean over runs of learning curves sampled at the same steps (the first run's steps; runs
/// that stopped early, e.g. diverged, contribute only where they have points).
#[must_use]
pub fn mean_curve(runs: &[Vec<(u64, f64)>]) -> Vec<(f64, f64)> {
    let Some(longest) = runs.iter().max_by_key(|r| r.len()) else {
        return Vec::new();
    };
    (0..longest.len())
        .filter_map(|i| {
            let vals: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.get(i).map(|p| p.1))
                .filter(|v| v.is_finite())
                .collect();
            (!vals.is_empty()).then(|| {
                (
                    longest[i].0 as f64,
                    vals.iter().sum::<f64>() / vals.len() as f64,
                )
            })
        })
        .collect()
}

fn stems(stem: &Path) -> (PathBuf, PathBuf) {
    (stem.with_extension("svg"), stem.with_extension("png"))
}

/// The largest magnitude an axis end may have: plotters' tick code must see finite ranges whose
/// width is finite too.
pub const AXIS_MAX: f64 = 1e300;

/// The smallest lower end of a log axis (subnormals and zero are below the axis).
pub const LOG_AXIS_MIN: f64 = 1e-300;

/// Curves beyond this factor times the largest starting value of any series have diverged:
/// their points are clipped to the top of the axis instead of stretching it.
pub const DIVERGED_FACTOR: f64 = 1e3;

/// A y range `(low, high)` plotters can draw for any input: both ends finite, inside
/// `±AXIS_MAX` (log: inside `[LOG_AXIS_MIN, AXIS_MAX]`), `low < high` by a margin that survives
/// rounding. NaN, infinite or inverted input ends are replaced.
#[must_use]
pub fn drawable_range(low: f64, high: f64, log: bool) -> (f64, f64) {
    let (min, max) = if log {
        (LOG_AXIS_MIN, AXIS_MAX)
    } else {
        (-AXIS_MAX, AXIS_MAX)
    };
    let fix = |v: f64, default: f64| {
        if v.is_nan() {
            default
        } else {
            v.clamp(min, max)
        }
    };
    let (mut lo, mut hi) = if log {
        (fix(low, 1e-3), fix(high, 1.0))
    } else {
        (fix(low, 0.0), fix(high, 1.0))
    };
    if lo > hi {
        std::mem::swap(&mut lo, &mut hi);
    }
    if log {
        // At least a factor 2 between the ends, inside the limits.
        if hi < 2.0 * lo {
            lo = (lo / 1.5).max(LOG_AXIS_MIN);
            hi = (lo * 2.0).max(hi * 1.5).min(AXIS_MAX);
            lo = lo.min(hi / 2.0);
        }
    } else {
        let width = 1e-9 * lo.abs().max(hi.abs()).max(1e-300);
        if hi - lo < width {
            let mid = 0.5 * lo + 0.5 * hi;
            let pad = lo.abs().max(hi.abs()).max(1.0) * 0.05;
            lo = (mid - pad).max(-AXIS_MAX);
            hi = (mid + pad).min(AXIS_MAX);
        }
    }
    (lo, hi)
}

/// The y range that shows `series` and `hlines` (log: their positive values), padded, or
/// `None` if nothing is drawable. Diverged series (beyond [`DIVERGED_FACTOR`] times the largest
/// starting value) do not stretch it: points outside are clipped to its edge when drawn.
#[must_use]
pub fn fit_range(series: &[Series], hlines: &[f64], log: bool) -> Option<(f64, f64)> {
    let usable = |y: f64| y.is_finite() && (!log || y >= LOG_AXIS_MIN) && y.abs() <= AXIS_MAX;
    let first = series
        .iter()
        .filter_map(|s| s.points.iter().map(|p| p.1).find(|&y| usable(y)))
        .fold(0.0f64, |m, y| m.max(y.abs()));
    let cap = if first > 0.0 {
        DIVERGED_FACTOR * first
    } else {
        AXIS_MAX
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(hlines.iter().copied());
    for y in ys.filter(|&y| usable(y) && y.abs() <= cap) {
        lo = lo.min(y);
        hi = hi.max(y);
    }
    if !lo.is_finite() {
        return None;
    }
    Some(if log {
        (lo / 1.5, hi * 1.5)
    } else {
        let pad = 0.05 * (hi - lo).max(1e-12);
        (lo - pad, hi + pad)
    })
}

impl LineChart {
    fn y_range(&self) -> (f64, f64) {
        let hlines: Vec<f64> = self.hlines.iter().map(|h| h.1).collect();
        fit_range(&self.series, &hlines, self.log_y).unwrap_or((1e-3, 1.0))
    }

    /// Whether a point has diverged: not finite, or beyond [`DIVERGED_FACTOR`] times the
    /// largest starting value (such points are drawn at the edge of the axis).
    fn diverged(&self) -> bool {
        let ys = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
        };
        let first = self
            .series
            .iter()
            .filter_map(|s| s.points.first().map(|p| p.1.abs()))
            .filter(|y| y.is_finite())
            .fold(0.0f64, f64::max);
        ys().any(|y| !y.is_finite() || (first > 0.0 && y.abs() > DIVERGED_FACTOR * first))
    }

    fn x_range(&self) -> (f64, f64) {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for x in xs.filter(|x| x.is_finite()) {
            lo = lo.min(x);
            hi = hi.max(x);
        }
        if !lo.is_finite() {
            (0.0, 1.0) // no finite point
        } else if lo >= hi {
            drawable_range(lo.min(0.0), lo.max(0.0) + 1.0, false)
        } else {
            drawable_range(lo.min(0.0), hi, false)
        }
    }

    fn render<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
        y_range: Option<(f64, f64)>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (x0, x1) = self.x_range();
        let (y0, y1) = y_range.unwrap_or_else(|| self.y_range());
        let (y0, y1) = drawable_range(y0, y1, self.log_y);
        let clamp = |y: f64| y.clamp(y0, y1);
        let title = if self.diverged() {
            format!(
                "{} (values beyond {DIVERGED_FACTOR}× the largest start at the axis edge)",
                self.title
            )
        } else {
            self.title.clone()
        };
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(&title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80);
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e}");
        macro_rules! body {
            ($chart:ident) => {{
                $chart
                    .configure_mesh()
                    .x_desc(&self.x_label)
                    .y_desc(&self.y_label)
                    .x_label_formatter(&|x| fmt_tick(*x))
                    .y_label_formatter(&|y| fmt_tick(*y))
                    .label_style(("sans-serif", 15))
                    .axis_desc_style(("sans-serif", 17))
                    .draw()
                    .map_err(err)?;
                for (i, s) in self.series.iter().enumerate() {
                    let col = s
                        .color
                        .map_or_else(|| color_for(&s.label, i), |(r, g, b)| RGBColor(r, g, b));
                    let pts: Vec<(f64, f64)> = s
                        .points
                        .iter()
                        .copied()
                        .filter(|p| {
                            p.0.is_finite() && p.1.is_finite() && (!self.log_y || p.1 > 0.0)
                        })
                        .map(|(x, y)| (x, clamp(y)))
                        .collect();
                    $chart
                        .draw_series(LineSeries::new(pts, col.stroke_width(2)))
                        .map_err(err)?
                        .label(s.label.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                        });
                }
                for (label, y) in self.hlines.iter().filter(|h| (y0..=y1).contains(&h.1)) {
                    let grey = RGBColor(110, 110, 110);
                    let n = 60;
                    let dashes: Vec<PathElement<(f64, f64)>> = (0..n)
                        .step_by(2)
                        .map(|k| {
                            let a = x0 + (x1 - x0) * k as f64 / n as f64;
                            let b = x0 + (x1 - x0) * (k + 1) as f64 / n as f64;
                            PathElement::new(vec![(a, *y), (b, *y)], grey.stroke_width(2))
                        })
                        .collect();
                    $chart
                        .draw_series(dashes)
                        .map_err(err)?
                        .label(label.clone())
                        .legend(move |(x, yy)| {
                            PathElement::new(vec![(x, yy), (x + 20, yy)], grey.stroke_width(2))
                        });
                }
                $chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 15))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(err)?;
            }};
        }
        if self.log_y {
            let mut chart = builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(err)?;
            body!(chart);
        } else {
            let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
            body!(chart);
        }
        root.present().map_err(err)?;
        Ok(())
    }

    /// Draws the chart to `stem.svg` and `stem.png` (900 × 600), creating the folder.
    ///
    /// # Errors
    /// I/O or drawing errors.
    pub fn draw(&self, stem: &Path) -> Result<()> {
        self.draw_in_range(stem, None)
    }

    /// As [`LineChart::draw`], with a fixed y range `(low, high)` (values outside are clamped to
    /// its edges); `None` fits the data.
    ///
    /// # Errors
    /// I/O or drawing errors.
    pub fn draw_in_range(&self, stem: &Path, y_range: Option<(f64, f64)>) -> Result<()> {
        init_fonts();
        if let Some(p) = stem.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        let (svg, png) = stems(stem);
        self.render(
            SVGBackend::new(&svg, (900, 600)).into_drawing_area(),
            y_range,
        )
        .with_context(|| format!("drawing {}", svg.display()))?;
        self.render(
            BitMapBackend::new(&png, (900, 600)).into_drawing_area(),
            y_range,
        )
        .with_context(|| format!("drawing {}", png.display()))?;
        Ok(())
    }
}

/// The `i`-th colour of a fixed qualitative palette (for series without a named colour).
#[must_use]
pub fn palette(i: usize) -> (u8, u8, u8) {
    const P: [(u8, u8, u8); 8] = [
        (0, 0, 0),
        (230, 97, 1),
        (94, 60, 153),
        (27, 158, 119),
        (217, 0, 0),
        (0, 114, 178),
        (170, 170, 0),
        (120, 120, 120),
    ];
    P[i % P.len()]
}

/// A compact tick label: integers without decimals, `1e5`-style for large or small magnitudes.
#[must_use]
pub fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let e = a.log10().floor();
        let m = v / 10f64.powf(e);
        if (m.abs() - 1.0).abs() < 1e-9 {
            format!("{}1e{e}", if v < 0.0 { "-" } else { "" })
        } else {
            format!("{m:.1}e{e}")
        }
    } else if (v - v.round()).abs() < 1e-9 * a.max(1.0) {
        format!("{}", v.round())
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A diverging red–white–blue colour for `t ∈ [0, 1]` (matplotlib's `RdBu`, approximately).
fn rdbu(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let stops = [
        (0.0, (103.0, 0.0, 31.0)),
        (0.25, (214.0, 96.0, 77.0)),
        (0.5, (247.0, 247.0, 247.0)),
        (0.75, (67.0, 147.0, 195.0)),
        (1.0, (5.0, 48.0, 97.0)),
    ];
    for w in stops.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if t <= b {
            let u = (t - a) / (b - a);
            let mixc = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
            return RGBColor(mixc(ca.0, cb.0), mixc(ca.1, cb.1), mixc(ca.2, cb.2));
        }
    }
    RGBColor(5, 48, 97)
}

/// Trajectories `(label, [(x, y)])` over the heat map of `log(f(x, y) + 1e−3)` on
/// `bounds = (left, right, bottom, top)`, with the minimum marked (the authors' Rosenbrock
/// figure). Writes `stem.svg` and `stem.png`.
///
/// # Errors
/// I/O or drawing errors.
pub fn trajectories_on_heatmap(
    title: &str,
    f: &dyn Fn(f64, f64) -> f64,
    bounds: (f64, f64, f64, f64),
    minimum: (f64, f64),
    trajectories: &[(String, Vec<(f64, f64)>)],
    stem: &Path,
) -> Result<()> {
    init_fonts();
    if let Some(p) = stem.parent() {
        std::fs::create_dir_all(p)?;
    }
    let (svg, png) = stems(stem);
    fn render<DB: DrawingBackend>(
        root: DrawingArea<DB, Shift>,
        title: &str,
        f: &dyn Fn(f64, f64) -> f64,
        bounds: (f64, f64, f64, f64),
        minimum: (f64, f64),
        trajectories: &[(String, Vec<(f64, f64)>)],
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e}");
        root.fill(&WHITE).map_err(err)?;
        let (l, r, b, t) = bounds;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(l..r, b..t)
            .map_err(err)?;
        let grid = 120;
        let (dx, dy) = ((r - l) / grid as f64, (t - b) / grid as f64);
        let mut cells = Vec::with_capacity(grid * grid);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for i in 0..grid {
            for j in 0..grid {
                let (x, y) = (l + (i as f64 + 0.5) * dx, b + (j as f64 + 0.5) * dy);
                let v = (f(x, y) + 1e-3).ln();
                lo = lo.min(v);
                hi = hi.max(v);
                cells.push((i, j, v));
            }
        }
        chart
            .draw_series(cells.into_iter().map(|(i, j, v)| {
                let (x, y) = (l + i as f64 * dx, b + j as f64 * dy);
                Rectangle::new(
                    [(x, y), (x + dx, y + dy)],
                    rdbu((v - lo) / (hi - lo).max(1e-12)).filled(),
                )
            }))
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("x")
            .y_desc("y")
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .draw()
            .map_err(err)?;
        for (k, (label, pts)) in trajectories.iter().enumerate() {
            let col = color_for(label, k);
            let pts: Vec<(f64, f64)> = pts
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|(x, y)| (x.clamp(l, r), y.clamp(b, t)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, col.stroke_width(2)))
                .map_err(err)?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                });
        }
        let green = RGBColor(0, 200, 0);
        chart
            .draw_series(std::iter::once(Circle::new(minimum, 7, green.filled())))
            .map_err(err)?
            .label("minimum")
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, green.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
        Ok(())
    }
    render(
        SVGBackend::new(&svg, (800, 800)).into_drawing_area(),
        title,
        f,
        bounds,
        minimum,
        trajectories,
    )
    .with_context(|| format!("drawing {}", svg.display()))?;
    render(
        BitMapBackend::new(&png, (800, 800)).into_drawing_area(),
        title,
        f,
        bounds,
        minimum,
        trajectories,
    )
    .with_context(|| format!("drawing {}", png.display()))?;
    Ok(())
}
