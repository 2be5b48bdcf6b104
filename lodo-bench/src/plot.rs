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
//!     show_growth: false,
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
    /// The y axis shows every point, however far it grows from the first (a quantity that
    /// starts near zero, as `G`'s distance from `α₀I`); `false` (learning curves): points
    /// beyond [`DIVERGED_FACTOR`] times the largest starting value are drawn at the top edge.
    pub show_growth: bool,
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
/// `None` if nothing is drawable. Unless `growth`, diverged series (beyond [`DIVERGED_FACTOR`]
/// times the largest starting value) do not stretch it: points outside are clipped to its edge
/// when drawn.
#[must_use]
pub fn fit_range(series: &[Series], hlines: &[f64], log: bool, growth: bool) -> Option<(f64, f64)> {
    let usable = |y: f64| y.is_finite() && (!log || y >= LOG_AXIS_MIN) && y.abs() <= AXIS_MAX;
    let first = series
        .iter()
        .filter_map(|s| s.points.iter().map(|p| p.1).find(|&y| usable(y)))
        .fold(0.0f64, |m, y| m.max(y.abs()));
    let cap = if first > 0.0 && !growth {
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

/// Tick positions of an axis: `bold` ones are labelled, `light` ones only draw grid lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ticks {
    /// Labelled ticks, increasing.
    pub bold: Vec<f64>,
    /// Grid-only ticks, increasing.
    pub light: Vec<f64>,
}

/// At most this many labelled ticks per axis.
const MAX_TICKS: usize = 12;

/// `k·step` for the integers `k` with `lo ≤ k·step ≤ hi`, at most `limit` of them.
fn multiples(lo: f64, hi: f64, step: f64, limit: usize) -> Vec<f64> {
    if !(step > 0.0 && step.is_finite() && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let first = (lo / step).ceil();
    let last = (hi / step).floor();
    if !(first.is_finite() && last.is_finite()) || last < first || last - first > limit as f64 {
        return Vec::new();
    }
    (0..=(last - first) as usize)
        .map(|i| (first + i as f64) * step)
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// Ticks of a linear axis on `[lo, hi]`: a step of 1, 2 or 5 × 10ᵏ giving at most 10 labels,
/// grid lines between them.
#[must_use]
pub fn linear_ticks(lo: f64, hi: f64) -> Ticks {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return Ticks::default();
    }
    let raw = span / 10.0;
    let mag = 10f64.powf(raw.log10().floor());
    let (step, sub) = [(1.0, 5.0), (2.0, 4.0), (5.0, 5.0), (10.0, 5.0)]
        .into_iter()
        .map(|(m, sub)| (m * mag, sub))
        .find(|(st, _)| *st >= raw)
        .unwrap_or((10.0 * mag, 5.0));
    Ticks {
        bold: multiples(lo, hi, step, 4 * MAX_TICKS),
        light: multiples(lo, hi, step / sub, 50 * MAX_TICKS),
    }
}

/// Ticks of a logarithmic axis on `[lo, hi]` (`0 < lo < hi`): powers of ten, with 2 and 5 (or
/// every digit) labelled when the range spans few decades, every k-th power when it spans many;
/// linear ticks when it spans less than a decade and holds fewer than 3 of those.
#[must_use]
pub fn log_ticks(lo: f64, hi: f64) -> Ticks {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Ticks::default();
    }
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let decades = hi.log10() - lo.log10();
    let every = ((decades / 8.0).ceil() as i32).max(1);
    let inside = |v: &f64| (lo..=hi).contains(v);
    let with = |digits: &[f64], stride: i32| -> Vec<f64> {
        (e0..=e1)
            .filter(|e| e.rem_euclid(stride) == 0)
            .flat_map(|e| digits.iter().map(move |d| d * 10f64.powi(e)))
            .filter(inside)
            .collect()
    };
    let all: Vec<f64> = (1..=9).map(f64::from).collect();
    let (bold, light) = if decades > 3.0 {
        (
            with(&[1.0], every),
            if every == 1 {
                with(&all, 1)
            } else {
                with(&[1.0], 1)
            },
        )
    } else if decades > 1.2 {
        (with(&[1.0, 2.0, 5.0], 1), with(&all, 1))
    } else {
        let b = with(&all, 1);
        let light: Vec<f64> = (1..=99)
            .map(|d| f64::from(d) / 10.0)
            .flat_map(|d| (e0..=e1).map(move |e| d * 10f64.powi(e)))
            .filter(inside)
            .collect();
        (b, light)
    };
    if bold.len() >= 3 {
        Ticks { bold, light }
    } else {
        linear_ticks(lo, hi)
    }
}

/// Labels for `ticks`, distinct wherever the ticks differ: [`fmt_tick`], or more significant
/// digits where two ticks would print alike.
#[must_use]
pub fn tick_labels(ticks: &[f64]) -> Vec<String> {
    let distinct = |labels: &[String]| {
        labels
            .windows(2)
            .zip(ticks.windows(2))
            .all(|(l, t)| l[0] != l[1] || (t[0] - t[1]).abs() <= 0.0)
    };
    let labels: Vec<String> = ticks.iter().map(|&t| fmt_tick(t)).collect();
    if distinct(&labels) {
        return labels;
    }
    for sig in 3..=17 {
        let labels: Vec<String> = ticks
            .iter()
            .map(|&t| {
                let s = crate::report::fmt_sig(t, sig);
                if s.contains('.') && !s.contains('e') {
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    s
                }
            })
            .collect();
        if distinct(&labels) {
            return labels;
        }
    }
    labels
}

/// An axis with the given [`Ticks`] instead of plotters' own key points (whose log-axis choice
/// can repeat a label), mapping values as `inner` does.
struct Keyed<R: Ranged<ValueType = f64>> {
    inner: R,
    ticks: Ticks,
}

impl<R: Ranged<ValueType = f64>> Ranged for Keyed<R> {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.ticks.light.clone()
        } else {
            self.ticks.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }

    fn axis_pixel_range(&self, limit: (i32, i32)) -> std::ops::Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

fn keyed<R: Ranged<ValueType = f64>>(inner: R, ticks: Ticks) -> Keyed<R> {
    Keyed { inner, ticks }
}

/// The label of `v` among `ticks` (their [`tick_labels`]), else [`fmt_tick`].
fn label_of(v: f64, ticks: &[f64], labels: &[String]) -> String {
    ticks
        .iter()
        .position(|t| t.to_bits() == v.to_bits())
        .map_or_else(|| fmt_tick(v), |i| labels[i].clone())
}

impl LineChart {
    fn y_range(&self) -> (f64, f64) {
        let hlines: Vec<f64> = self.hlines.iter().map(|h| h.1).collect();
        fit_range(&self.series, &hlines, self.log_y, self.show_growth).unwrap_or((1e-3, 1.0))
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

    /// The legend label of series `s`, saying where its points lie outside `[y0, y1]` (they are
    /// drawn at the edge) or are not finite (not drawn).
    fn legend_label(&self, s: &Series, y0: f64, y1: f64) -> String {
        let ys = || s.points.iter().map(|p| p.1);
        let above = ys().any(|y| y > y1);
        let below = ys().any(|y| y < y0 && (!self.log_y || y > 0.0));
        let missing = ys().any(|y| !y.is_finite() || (self.log_y && y <= 0.0));
        let mut notes = Vec::new();
        if above {
            notes.push("above the axis: drawn at the top edge");
        }
        if below {
            notes.push("below the axis: drawn at the bottom edge");
        }
        if missing {
            notes.push(if self.log_y {
                "non-finite or ≤ 0 values not drawn"
            } else {
                "non-finite values not drawn"
            });
        }
        if notes.is_empty() {
            s.label.clone()
        } else {
            format!("{} ({})", s.label, notes.join("; "))
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
        let xt = linear_ticks(x0, x1);
        let yt = if self.log_y {
            log_ticks(y0, y1)
        } else {
            linear_ticks(y0, y1)
        };
        let (xl, yl) = (tick_labels(&xt.bold), tick_labels(&yt.bold));
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(&self.title, ("sans-serif", 24))
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
                    .x_label_formatter(&|x| label_of(*x, &xt.bold, &xl))
                    .y_label_formatter(&|y| label_of(*y, &yt.bold, &yl))
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
                    // A series of a few points (e.g. runs that diverged early) also gets markers,
                    // so a single point is visible.
                    if pts.len() <= 20 {
                        $chart
                            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, col.filled())))
                            .map_err(err)?;
                    }
                    $chart
                        .draw_series(LineSeries::new(pts, col.stroke_width(2)))
                        .map_err(err)?
                        .label(self.legend_label(s, y0, y1))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                        });
                }
                // Reference lines last, dark and thick, so a curve lying on one (Levenberg–
                // Marquardt on the bowl's Newton floor) does not hide it.
                for (label, y) in self.hlines.iter().filter(|h| (y0..=y1).contains(&h.1)) {
                    let ink = RGBColor(40, 40, 40);
                    let n = 60;
                    let dashes: Vec<PathElement<(f64, f64)>> = (0..n)
                        .step_by(2)
                        .map(|k| {
                            let a = x0 + (x1 - x0) * k as f64 / n as f64;
                            let b = x0 + (x1 - x0) * (k + 1) as f64 / n as f64;
                            PathElement::new(vec![(a, *y), (b, *y)], ink.stroke_width(3))
                        })
                        .collect();
                    $chart
                        .draw_series(dashes)
                        .map_err(err)?
                        .label(label.clone())
                        .legend(move |(x, yy)| {
                            PathElement::new(vec![(x, yy), (x + 20, yy)], ink.stroke_width(3))
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
        let x_axis = || -> plotters::coord::types::RangedCoordf64 { (x0..x1).into() };
        if self.log_y {
            let y_axis: LogCoord<f64> = (y0..y1).log_scale().into();
            let mut chart = builder
                .build_cartesian_2d(keyed(x_axis(), xt.clone()), keyed(y_axis, yt.clone()))
                .map_err(err)?;
            body!(chart);
        } else {
            let y_axis: plotters::coord::types::RangedCoordf64 = (y0..y1).into();
            let mut chart = builder
                .build_cartesian_2d(keyed(x_axis(), xt.clone()), keyed(y_axis, yt.clone()))
                .map_err(err)?;
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

/// The frame of a trajectory figure: `bounds = (left, right, bottom, top)` widened to hold every
/// finite point of `trajectories` that lies within twice the frame's size around its centre (a
/// path beyond that, e.g. one that diverged, is cut at the frame's edge instead of stretching it).
#[must_use]
pub fn trajectory_frame(
    bounds: (f64, f64, f64, f64),
    trajectories: &[(String, Vec<(f64, f64)>)],
) -> (f64, f64, f64, f64) {
    let (l, r, b, t) = bounds;
    let (cx, cy, hx, hy) = (0.5 * (l + r), 0.5 * (b + t), r - l, t - b);
    let near = |p: &(f64, f64)| (p.0 - cx).abs() <= hx && (p.1 - cy).abs() <= hy;
    let (mut f0, mut f1, mut f2, mut f3) = bounds;
    for p in trajectories
        .iter()
        .flat_map(|t| t.1.iter())
        .filter(|p| near(p))
    {
        f0 = f0.min(p.0);
        f1 = f1.max(p.0);
        f2 = f2.min(p.1);
        f3 = f3.max(p.1);
    }
    // A small margin where the frame grew, so a path does not run along the edge.
    let (mx, my) = (0.03 * (f1 - f0), 0.03 * (f3 - f2));
    (
        if f0 < l { f0 - mx } else { l },
        if f1 > r { f1 + mx } else { r },
        if f2 < b { f2 - my } else { b },
        if f3 > t { f3 + my } else { t },
    )
}

/// The segment `p–q` cut to the rectangle `frame` (Liang–Barsky), or `None` if it lies outside.
#[must_use]
pub fn clip_segment(
    p: (f64, f64),
    q: (f64, f64),
    frame: (f64, f64, f64, f64),
) -> Option<((f64, f64), (f64, f64))> {
    let (l, r, b, t) = frame;
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let (mut u0, mut u1) = (0.0f64, 1.0f64);
    for (pk, qk) in [(-dx, p.0 - l), (dx, r - p.0), (-dy, p.1 - b), (dy, t - p.1)] {
        if pk == 0.0 {
            if qk < 0.0 {
                return None;
            }
        } else {
            let u = qk / pk;
            if pk < 0.0 {
                u0 = u0.max(u);
            } else {
                u1 = u1.min(u);
            }
        }
    }
    // Rounding can put a cut point a hair outside (or short of) an edge: snap it onto the edge.
    let snap = |v: f64, lo: f64, hi: f64| {
        let eps = 1e-12 * (hi - lo).abs();
        if (v - lo).abs() <= eps {
            lo
        } else if (v - hi).abs() <= eps {
            hi
        } else {
            v.clamp(lo, hi)
        }
    };
    let at = |u: f64| {
        if u <= 0.0 {
            p
        } else if u >= 1.0 {
            q
        } else {
            (snap(p.0 + u * dx, l, r), snap(p.1 + u * dy, b, t))
        }
    };
    (u0 <= u1 && u0.is_finite() && u1.is_finite()).then(|| (at(u0), at(u1)))
}

/// A path cut to `frame`: the pieces inside it, each a polyline (non-finite points end a piece).
#[must_use]
pub fn clip_path(points: &[(f64, f64)], frame: (f64, f64, f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let (l, r, b, t) = frame;
    if points.len() == 1 && finite(&points[0]) {
        let p = points[0];
        if (l..=r).contains(&p.0) && (b..=t).contains(&p.1) {
            return vec![vec![p]];
        }
    }
    for w in points.windows(2) {
        let (p, q) = (w[0], w[1]);
        let cut = if finite(&p) && finite(&q) {
            clip_segment(p, q, frame)
        } else {
            None
        };
        match cut {
            Some((a, c)) => {
                if current.last() != Some(&a) {
                    if !current.is_empty() {
                        pieces.push(std::mem::take(&mut current));
                    }
                    current.push(a);
                }
                current.push(c);
                // The segment left the frame: the piece ends here.
                if c != q {
                    pieces.push(std::mem::take(&mut current));
                }
            }
            None => {
                if !current.is_empty() {
                    pieces.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Trajectories `(label, [(x, y)])` over the heat map of `log(f(x, y) + 1e−3)`, with a colour
/// bar giving `f + 10⁻³` and the minimum marked (the authors' Rosenbrock figure). The frame is
/// `bounds = (left, right, bottom, top)` widened by [`trajectory_frame`]; paths are cut at its
/// edge ([`clip_path`]) and the legend names those that leave it. Writes `stem.svg` and
/// `stem.png`.
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
    let frame = trajectory_frame(bounds, trajectories);
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
        let root = root.titled(title, ("sans-serif", 24)).map_err(err)?;
        let (w, _) = root.dim_in_pixel();
        let (map_area, bar_area) = root.split_horizontally(w.saturating_sub(130));
        let (l, r, b, t) = bounds;
        let xt = linear_ticks(l, r);
        let yt = linear_ticks(b, t);
        let (xl, yl) = (tick_labels(&xt.bold), tick_labels(&yt.bold));
        let x_axis: plotters::coord::types::RangedCoordf64 = (l..r).into();
        let y_axis: plotters::coord::types::RangedCoordf64 = (b..t).into();
        let mut chart = ChartBuilder::on(&map_area)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(keyed(x_axis, xt.clone()), keyed(y_axis, yt.clone()))
            .map_err(err)?;
        let grid = 120;
        let (dx, dy) = ((r - l) / grid as f64, (t - b) / grid as f64);
        let mut cells = Vec::with_capacity(grid * grid);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for i in 0..grid {
            for j in 0..grid {
                let (x, y) = (l + (i as f64 + 0.5) * dx, b + (j as f64 + 0.5) * dy);
                let v = (f(x, y) + 1e-3).ln();
                if v.is_finite() {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
                cells.push((i, j, v));
            }
        }
        if !(lo.is_finite() && hi > lo) {
            (lo, hi) = (0.0, 1.0);
        }
        let shade = |v: f64| rdbu((v - lo) / (hi - lo));
        chart
            .draw_series(cells.into_iter().map(|(i, j, v)| {
                let (x, y) = (l + i as f64 * dx, b + j as f64 * dy);
                Rectangle::new([(x, y), (x + dx, y + dy)], shade(v).filled())
            }))
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("x")
            .y_desc("y")
            .x_label_formatter(&|x| label_of(*x, &xt.bold, &xl))
            .y_label_formatter(&|y| label_of(*y, &yt.bold, &yl))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .draw()
            .map_err(err)?;
        for (k, (label, pts)) in trajectories.iter().enumerate() {
            let col = color_for(label, k);
            let pieces = clip_path(pts, bounds);
            let drawn: usize = pieces.iter().map(Vec::len).sum();
            let inside = pts
                .iter()
                .all(|p| (l..=r).contains(&p.0) && (b..=t).contains(&p.1));
            let legend = if inside {
                label.clone()
            } else {
                format!("{label} (leaves the frame)")
            };
            if drawn == 0 {
                continue;
            }
            for (i, piece) in pieces.into_iter().enumerate() {
                let s = chart
                    .draw_series(LineSeries::new(piece, col.stroke_width(2)))
                    .map_err(err)?;
                if i == 0 {
                    s.label(legend.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                    });
                }
            }
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
        // The colour bar: f + 10⁻³ on a log axis, coloured as the map.
        let (v0, v1) = (lo.exp(), hi.exp());
        let bt = log_ticks(v0, v1);
        let bl = tick_labels(&bt.bold);
        let bar_axis: LogCoord<f64> = (v0..v1).log_scale().into();
        let unit: plotters::coord::types::RangedCoordf64 = (0.0..1.0).into();
        let mut bar = ChartBuilder::on(&bar_area)
            .margin_top(15)
            .margin_bottom(60)
            .margin_right(10)
            .y_label_area_size(65)
            .build_cartesian_2d(keyed(unit, Ticks::default()), keyed(bar_axis, bt.clone()))
            .map_err(err)?;
        let steps = 200;
        bar.draw_series((0..steps).map(|k| {
            let a = lo + (hi - lo) * k as f64 / steps as f64;
            let c = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
            Rectangle::new(
                [(0.0, a.exp()), (1.0, c.exp())],
                shade(0.5 * (a + c)).filled(),
            )
        }))
        .map_err(err)?;
        bar.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc("f(x, y) + 0.001")
            .y_label_formatter(&|v| label_of(*v, &bt.bold, &bl))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
        Ok(())
    }
    render(
        SVGBackend::new(&svg, (900, 800)).into_drawing_area(),
        title,
        f,
        frame,
        minimum,
        trajectories,
    )
    .with_context(|| format!("drawing {}", svg.display()))?;
    render(
        BitMapBackend::new(&png, (900, 800)).into_drawing_area(),
        title,
        f,
        frame,
        minimum,
        trajectories,
    )
    .with_context(|| format!("drawing {}", png.display()))?;
    Ok(())
}
