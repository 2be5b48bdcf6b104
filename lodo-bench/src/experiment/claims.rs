//! The paper's claims, checked against the results: every sentence here is chosen and filled in
//! from the runs (means, spreads, counts, Hessian errors), never written in advance.
//!
//! Comparisons use one rule ([`compare`]): a row is *worse* than LODO if it has more diverged
//! runs, or if its mean final-10% loss is higher by more than twice the standard error of the
//! difference of the two means **and** by more than 1 % of LODO's; *better* symmetrically;
//! otherwise *alike*.

use super::TaskSpec;
use super::protocol::{Group, Phase, TaskResults};
use crate::baselines::{Optimizer, OptimizerKind};
use crate::mnist::cli::ClaimRecord;
use crate::report::{Summary, fmt_distinct, fmt_num, fmt_sig};

/// The paper's four claims (Liao et al., arXiv 2210.06171), as the report states them.
pub const CLAIMS: [&str; 4] = [
    "on noisy quadratic bowls, LODO's learned preconditioner G approaches the inverse Hessian H⁻¹",
    "its architecture (block-diagonal layers between fixed permutations) can represent a wide \
     family of preconditioners",
    "simpler preconditioners do worse: diagonal (LODO-Diagonal), scalar (LODO-Global) and a \
     residual network (LODO-Residuals)",
    "it trains the MNIST autoregression CNN at speeds comparable to standard optimizers",
];

/// What the runs say about a claim: a verdict chosen from the numbers, and the numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// `"holds"`, `"holds only in part"` or `"does not hold"`.
    pub verdict: &'static str,
    /// The numbers behind it, as a sentence fragment.
    pub detail: String,
}

impl Finding {
    /// `"Claim {n} ({short}) {verdict} here: {detail}"`, for beside a table.
    #[must_use]
    pub fn beside_table(&self, n: usize, short: &str) -> String {
        format!("Claim {n} ({short}) {} here: {}", self.verdict, self.detail)
    }
}

/// How a row compares with a reference row (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// More diverged runs, or a clearly higher mean.
    Worse,
    /// Fewer diverged runs, or a clearly lower mean.
    Better,
    /// Neither.
    Alike,
}

/// Compares `x` with `reference` (see the module docs).
#[must_use]
pub fn compare(x: &Summary, reference: &Summary) -> Comparison {
    let frac = |s: &Summary| s.diverged as f64 / s.runs.max(1) as f64;
    if frac(x) > frac(reference) {
        return Comparison::Worse;
    }
    if frac(x) < frac(reference) {
        return Comparison::Better;
    }
    if !(x.mean.is_finite() && reference.mean.is_finite()) {
        return Comparison::Alike;
    }
    let n = |s: &Summary| (s.runs - s.diverged).max(1) as f64;
    let se = (x.std * x.std / n(x) + reference.std * reference.std / n(reference)).sqrt();
    let margin = (2.0 * se).max(0.01 * reference.mean.abs());
    let d = x.mean - reference.mean;
    if d > margin {
        Comparison::Worse
    } else if d < -margin {
        Comparison::Better
    } else {
        Comparison::Alike
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The mean of a summary, or `"all N runs diverged"`.
fn value(s: &Summary) -> String {
    if s.mean.is_finite() {
        fmt_num(s.mean)
    } else {
        format!("all {} runs diverged", s.runs)
    }
}

/// Each name with its mean, the means printed with the digits that tell them apart.
fn named_values(rows: &[&Summary]) -> Vec<String> {
    let means: Vec<f64> = rows.iter().map(|s| s.mean).collect();
    let text = fmt_distinct(&means, 5);
    rows.iter()
        .zip(text)
        .map(|(s, t)| {
            let div = if s.diverged > 0 {
                format!(" ({}/{} diverged)", s.diverged, s.runs)
            } else {
                String::new()
            };
            if s.mean.is_finite() {
                format!("{} {t}{div}", s.name)
            } else {
                format!("{} —{div}", s.name)
            }
        })
        .collect()
}

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
    }
}

/// Below a table: which rows diverged and how ([`super::DIVERGED`]): non-finite, or ended above
/// the loss of their starting point (with the mean ratio of final-10% loss to x₀'s loss).
#[must_use]
pub fn diverged_note(groups: &[Group]) -> Option<String> {
    let mut parts = Vec::new();
    for g in groups {
        let s = g.summary();
        if s.diverged == 0 {
            continue;
        }
        let blown: Vec<f64> = g
            .runs
            .iter()
            .filter(|r| r.diverged && !r.final_loss.is_finite())
            .map(|r| r.diverged_at.map_or(f64::NAN, |s| s as f64))
            .collect();
        let above = g
            .runs
            .iter()
            .filter(|r| r.diverged && r.final_loss.is_finite())
            .count();
        let mut why = Vec::new();
        if !blown.is_empty() {
            let at = median(blown.clone());
            why.push(if at.is_finite() {
                format!("{} non-finite (median step {at:.0})", blown.len())
            } else {
                format!("{} non-finite", blown.len())
            });
        }
        if above > 0 {
            let ratios: Vec<f64> = g
                .runs
                .iter()
                .filter(|r| r.final_loss.is_finite() && r.start_loss > 0.0)
                .map(|r| r.final_loss / r.start_loss)
                .collect();
            why.push(format!(
                "{above} ended above x₀'s loss (final-10% loss ÷ x₀'s loss over the same steps: \
                 mean {} over the {} runs that stayed finite)",
                fmt_sig(mean(&ratios), 3),
                ratios.len()
            ));
        }
        parts.push(format!(
            "{} {}/{}: {}",
            s.name,
            s.diverged,
            s.runs,
            why.join("; ")
        ));
    }
    (!parts.is_empty()).then(|| format!("Diverged: {}.", parts.join("; ")))
}

/// The row's rank (1 = lowest mean) among `rows`, diverged-only rows last.
fn rank(rows: &[Summary], name: &str) -> Option<usize> {
    let me = rows.iter().find(|s| s.name == name)?;
    let key = |s: &Summary| {
        if s.mean.is_finite() {
            s.mean
        } else {
            f64::INFINITY
        }
    };
    Some(1 + rows.iter().filter(|s| key(s) < key(me)).count())
}

/// Beside the main table: LODO's place among the gradient-only optimizers, the best other
/// one, and Levenberg–Marquardt set apart (it uses exact Hessian–vector products).
#[must_use]
pub fn main_table_note(res: &TaskResults) -> Option<String> {
    let lodo = res.lodo()?.summary();
    let gradient_only: Vec<Summary> = res
        .main
        .iter()
        .filter(|g| !g.optimizer.kind().uses_hessian())
        .map(Group::summary)
        .collect();
    let r = rank(&gradient_only, &lodo.name)?;
    let best_other = gradient_only
        .iter()
        .filter(|s| s.name != lodo.name && s.mean.is_finite())
        .min_by(|a, b| a.mean.total_cmp(&b.mean));
    let mut s = format!(
        "LODO ({}) ranks {r} of the {} gradient-only optimizers by mean",
        value(&lodo),
        gradient_only.len()
    );
    if let Some(b) = best_other {
        let verdict = match compare(&lodo, b) {
            Comparison::Better => "lower (better) than",
            Comparison::Worse => "higher (worse) than",
            Comparison::Alike => "alike with",
        };
        s.push_str(&format!(
            "; it is {verdict} the best of the others, {}",
            list(&named_values(&[b]))
        ));
    }
    s.push('.');
    for g in res
        .main
        .iter()
        .filter(|g| g.optimizer.kind().uses_hessian())
    {
        let m = g.summary();
        s.push_str(&format!(
            " {} ({}) is not a gradient-only rival: it solves with exact Hessian–vector products \
             of the task",
            m.name,
            value(&m)
        ));
        if let Some(f) = res.spec.floor().filter(|_| m.mean.is_finite()) {
            s.push_str(&format!(
                ", and ends at {}× the Newton floor",
                fmt_sig(m.mean / f, 4)
            ));
        }
        s.push('.');
    }
    Some(s)
}

/// Claim 3 beside the ablation table: the simpler preconditioners against LODO.
#[must_use]
pub fn ablation_note(res: &TaskResults) -> Option<String> {
    ablation_finding(res).map(|f| f.beside_table(3, "simpler preconditioners do worse"))
}

/// Claim 3: the simpler preconditioners against LODO (`None` without a finished ablation table).
#[must_use]
pub fn ablation_finding(res: &TaskResults) -> Option<Finding> {
    if res.missing(Phase::Ablations).is_some() {
        return None;
    }
    let lodo = res.lodo()?.summary();
    let simpler = [
        OptimizerKind::LodoDiagonal,
        OptimizerKind::LodoGlobal,
        OptimizerKind::LodoResiduals,
    ];
    let rows: Vec<(Summary, Comparison)> = res
        .ablations
        .iter()
        .filter(|g| simpler.contains(&g.optimizer.kind()))
        .map(|g| {
            let s = g.summary();
            let c = compare(&s, &lodo);
            (s, c)
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let worse = rows.iter().filter(|r| r.1 == Comparison::Worse).count();
    let verdict = if worse == rows.len() {
        "holds"
    } else if worse > 0 {
        "holds only in part"
    } else {
        "does not hold"
    };
    let mut all: Vec<&Summary> = rows.iter().map(|r| &r.0).collect();
    all.push(&lodo);
    let text = named_values(&all);
    let describe = |c: Comparison| -> Vec<String> {
        rows.iter()
            .zip(&text)
            .filter(|(r, _)| r.1 == c)
            .map(|(_, t)| t.clone())
            .collect()
    };
    let mut parts = Vec::new();
    for (c, word) in [
        (Comparison::Worse, "worse"),
        (Comparison::Alike, "alike"),
        (Comparison::Better, "better"),
    ] {
        let d = describe(c);
        if !d.is_empty() {
            parts.push(format!("{word}: {}", list(&d)));
        }
    }
    let others: Vec<String> = res
        .ablations
        .iter()
        .filter(|g| {
            let k = g.optimizer.kind();
            k.is_lodo() && k != OptimizerKind::Lodo && !simpler.contains(&k)
        })
        .map(|g| {
            let s = g.summary();
            let word = match compare(&s, &lodo) {
                Comparison::Worse => "worse",
                Comparison::Better => "better",
                Comparison::Alike => "alike",
            };
            format!("{}: {} ({word})", s.name, value(&s))
        })
        .collect();
    let mut detail = format!(
        "against {}, {}.",
        text.last().map_or("", String::as_str),
        parts.join("; ")
    );
    if !others.is_empty() {
        detail.push_str(&format!(
            " The meta-optimizer variants (same network): {}.",
            list(&others)
        ));
    }
    Some(Finding { verdict, detail })
}

/// LODO's Hessian-error measurements: `(first, last, runs whose error fell, runs, last step)`,
/// from the exact error where computed, else the probe estimate.
fn hessian_trend(g: &Group) -> Option<(f64, f64, usize, usize, u64)> {
    let runs: Vec<(f64, f64, u64)> = g
        .runs
        .iter()
        .filter_map(|r| {
            let pick = |h: &super::HessianPoint| if h.exact.is_nan() { h.probe } else { h.exact };
            Some((
                pick(r.hessian.first()?),
                pick(r.hessian.last()?),
                r.hessian.last()?.step,
            ))
        })
        .collect();
    if runs.is_empty() {
        return None;
    }
    let first = mean(&runs.iter().map(|r| r.0).collect::<Vec<_>>());
    let last = mean(&runs.iter().map(|r| r.1).collect::<Vec<_>>());
    let fell = runs.iter().filter(|r| r.1 < r.0).count();
    let step = runs.iter().map(|r| r.2).min().unwrap_or(0);
    Some((first, last, fell, runs.len(), step))
}

/// LODO's β on this task.
fn lodo_beta(res: &TaskResults) -> Option<f64> {
    match res.lodo()?.optimizer {
        Optimizer::Lodo(p) => Some(p.beta),
        _ => None,
    }
}

/// Claim 1 beside the Hessian-error table.
#[must_use]
pub fn hessian_note(res: &TaskResults) -> Option<String> {
    hessian_finding(res).map(|f| f.beside_table(1, "G approaches H⁻¹"))
}

/// Claim 1 from LODO's Hessian-error measurements (`None` without them): it holds if the error
/// fell in every run and ended below ½ (closer to `H⁻¹` than to `G = 0`), in part if it fell in
/// most runs.
#[must_use]
pub fn hessian_finding(res: &TaskResults) -> Option<Finding> {
    let (first, last, fell, n, step) = hessian_trend(res.lodo()?)?;
    let verdict = if fell == n && last <= 0.5 {
        "holds"
    } else if 2 * fell > n {
        "holds only in part"
    } else {
        "does not hold"
    };
    let mut s = format!(
        "‖I − G·H‖_F/√n went from {} to {} by step {step} and fell in {fell} of {n} runs \
         (G = 0 scores 1, G = H⁻¹ scores 0",
        fmt_sig(first, 4),
        fmt_sig(last, 4),
    );
    s.push_str(if last > 0.5 {
        "; G is not yet halfway to H⁻¹ in this metric)."
    } else {
        ")."
    });
    if let Some(beta) = lodo_beta(res).filter(|b| *b > 0.0) {
        s.push_str(&format!(
            " With momentum β = {} the hypergradient's fixed point is (1+β)·H⁻¹, not H⁻¹ \
             (THEORY.md, T1-β), and it scores β = {} here, so G ends {}× as far from H⁻¹ as \
             that fixed point.",
            fmt_sig(beta, 4),
            fmt_sig(beta, 4),
            fmt_sig(last / beta, 3)
        ));
    }
    Some(Finding { verdict, detail: s })
}

/// Beside the frozen test: what each row shows, why a frozen row diverged, and the step each
/// row's last Hessian error was measured at.
#[must_use]
pub fn frozen_note(res: &TaskResults) -> Option<String> {
    if res.frozen.len() < 4 || res.missing(Phase::Frozen).is_some() {
        return None;
    }
    let [train, fly, frozen_b, frozen_a] = [0, 1, 2, 3].map(|i| &res.frozen[i]);
    let (st, sf, sb, sa) = (
        train.summary(),
        fly.summary(),
        frozen_b.summary(),
        frozen_a.summary(),
    );
    let mut s = String::new();
    // Bowl A with a new walk: does the frozen G keep working where it was learned?
    let a_vs_train = compare(&sa, &st);
    s.push_str(&format!(
        "On bowl A with a new random walk the frozen G scores {} against {} while it was \
         learning there ({}). ",
        value(&sa),
        value(&st),
        match a_vs_train {
            Comparison::Alike => "alike",
            Comparison::Better => "better",
            Comparison::Worse => "worse",
        }
    ));
    if sb.diverged > 0 {
        let at: Vec<f64> = frozen_b
            .runs
            .iter()
            .filter(|r| r.diverged)
            .filter_map(|r| r.diverged_at.map(|s| s as f64))
            .collect();
        let err0: Vec<f64> = frozen_b
            .runs
            .iter()
            .filter_map(|r| r.hessian.first().map(|h| h.exact))
            .collect();
        let e0 = mean(&err0);
        s.push_str(&format!(
            "On bowl B (new eigenvectors) the frozen G diverged in {}/{} runs",
            sb.diverged, sb.runs
        ));
        if !at.is_empty() {
            s.push_str(&format!(
                " (loss non-finite by step {:.0}, median)",
                median(at)
            ));
        }
        if e0.is_finite() {
            s.push_str(&format!(
                ": against bowl B's Hessian its error at step 0 is {}",
                fmt_sig(e0, 4)
            ));
            if e0 > 1.0 {
                s.push_str(
                    ", worse than G = 0 (error 1): G·H_B is far from I, so the frozen steps are \
                     mis-scaled along bowl B's eigenvectors, and with no meta-update G cannot \
                     correct itself",
                );
            }
        }
        s.push_str(&format!(
            ", while LODO learning on bowl B from scratch scores {}. ",
            value(&sf)
        ));
        if a_vs_train != Comparison::Worse && sb.diverged == sb.runs {
            s.push_str(
                "So G holds the curvature of the bowl it was learned on, not a step size that \
                 suits any bowl: this supports claim 1. ",
            );
        }
    } else {
        s.push_str(&format!(
            "On bowl B (new eigenvectors) the frozen G scores {} against {} for LODO learning \
             there ({}). ",
            value(&sb),
            value(&sf),
            match compare(&sb, &sf) {
                Comparison::Alike => "alike",
                Comparison::Better => "better",
                Comparison::Worse => "worse",
            }
        ));
    }
    Some(s.trim_end().to_string())
}

/// The last Hessian error of each frozen-test row, labelled with the step it was measured at
/// (a run that diverged stops measuring: its last value can be the step-0 one).
#[must_use]
pub fn frozen_errors(res: &TaskResults) -> Vec<String> {
    res.frozen
        .iter()
        .filter_map(|g| {
            let last: Vec<(f64, u64)> = g
                .runs
                .iter()
                .filter_map(|r| r.hessian.last().map(|h| (h.exact, h.step)))
                .collect();
            if last.is_empty() {
                return None;
            }
            let v = mean(&last.iter().map(|p| p.0).collect::<Vec<_>>());
            let lo = last.iter().map(|p| p.1).min().unwrap_or(0);
            let hi = last.iter().map(|p| p.1).max().unwrap_or(0);
            let at = if lo == hi {
                format!("step {lo}")
            } else {
                format!("steps {lo}–{hi}")
            };
            let diverged = g.runs.iter().filter(|r| r.diverged_at.is_some()).count();
            let why = if diverged > 0 && lo < res.budget.steps {
                format!(
                    ", the last measurement before the loss became non-finite in {diverged}/{} runs",
                    g.runs.len()
                )
            } else {
                String::new()
            };
            Some(format!("{}: {} (at {at}{why})", g.label, fmt_sig(v, 4)))
        })
        .collect()
}

/// Claim 4 on the synthetic tasks: LODO's step rate against the first-order optimizers'
/// (the MNIST claim itself needs `lodo-bench mnist`).
#[must_use]
pub fn speed_note(res: &TaskResults) -> Option<String> {
    let lodo = res.lodo()?.summary();
    let adam = res
        .main
        .iter()
        .find(|g| g.optimizer.kind() == OptimizerKind::Adam)?
        .summary();
    (lodo.steps_per_sec > 0.0 && adam.steps_per_sec > 0.0).then(|| {
        format!(
            "a LODO step ran at {:.0} steps/s against Adam's {:.0} ({}× Adam's time per step)",
            lodo.steps_per_sec,
            adam.steps_per_sec,
            fmt_sig(adam.steps_per_sec / lodo.steps_per_sec, 3)
        )
    })
}

/// Claim 4 on MNIST for the claims section: the shipped result of the long experiment
/// ([`crate::mnist::cli::SHIPPED_CLAIM`]) with its command and date, or why there is none.
#[must_use]
pub fn mnist_claim(shipped: anyhow::Result<Option<ClaimRecord>>) -> String {
    match shipped {
        Ok(Some(c)) => format!(
            "not run by this command; the shipped result of the long MNIST experiment \
             (`lodo-bench/results/mnist-long/`, produced by `{}`, finished {}; \
             lodo-bench/MNIST.md, \"The long experiment\"): {}",
            c.command.trim(),
            c.finished,
            c.verdict.trim_end_matches('.')
        ),
        Ok(None) => "not measured by this command: the MNIST experiment is `lodo-bench mnist` \
                     (its report compares training loss at a common time budget; \
                     lodo-bench/MNIST.md has measured tables)"
            .to_string(),
        Err(e) => format!("not measured: the shipped MNIST result cannot be read ({e:#})"),
    }
}

/// The report's claims section: each claim with what the tasks that ran say about it.
#[must_use]
pub fn claims_section(tasks: &[&TaskResults]) -> String {
    let name = |r: &TaskResults| match r.spec {
        TaskSpec::Bowl(_) => "the bowl",
        TaskSpec::Rosenbrock => "Rosenbrock",
        TaskSpec::Mnist(_) => "MNIST",
    };
    let mut s = String::from(
        "## The paper's claims, checked here\n\nEach finding below is computed from this \
         report's runs (the sections that follow give the tables); \"worse\" and \"alike\" \
         follow one rule: more diverged runs, or a mean higher by more than twice the standard \
         error of the difference and by more than 1 %.\n\n",
    );
    for (i, claim) in CLAIMS.iter().enumerate() {
        s.push_str(&format!(
            "{}. **The paper:** {claim}.  \n   **Here:** ",
            i + 1
        ));
        let found: Vec<String> = match i {
            0 => tasks
                .iter()
                .filter_map(|r| {
                    let h = hessian_finding(r)?;
                    let f = frozen_note(r).map_or(String::new(), |f| format!(" {f}"));
                    Some(format!("on {} it {}: {}{f}", name(r), h.verdict, h.detail))
                })
                .collect(),
            1 => vec![
                "not measured by these tables. `lodo-theory-tests` (THEORY.md) checks which \
                 families of inverse Hessians the network can fit at which depth; the ablations \
                 below compare architectures only by the loss they reach."
                    .into(),
            ],
            2 => tasks
                .iter()
                .filter_map(|r| {
                    let a = ablation_finding(r)?;
                    Some(format!("on {} it {}: {}", name(r), a.verdict, a.detail))
                })
                .collect(),
            _ => {
                let speeds: Vec<String> = tasks
                    .iter()
                    .filter_map(|r| speed_note(r).map(|v| format!("on {} {v}", name(r))))
                    .collect();
                let mut v = vec![mnist_claim(crate::mnist::cli::shipped_claim())];
                if !speeds.is_empty() {
                    v.push(format!("for scale, {}", speeds.join("; ")));
                }
                vec![format!("{}.", v.join("; "))]
            }
        };
        if found.is_empty() {
            s.push_str("no run of this report measures it (not run or interrupted).");
        } else {
            s.push_str(&found.join("  \n   "));
        }
        s.push_str("\n\n");
    }
    s
}
