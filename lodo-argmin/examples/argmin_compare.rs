//! LODO against argmin's `SteepestDescent` and `LBFGS` (both with a More–Thuente line search) on
//! argmin-testfunctions' Rosenbrock and on the paper's noisy quadratic bowl.
//!
//! ```sh
//! cargo run --release -p lodo-argmin --example argmin_compare            # the README's table
//! cargo run --release -p lodo-argmin --example argmin_compare -- quick   # fewer iterations
//! ```
//!
//! For each run it prints the iterations, the cost and gradient evaluations argmin counted, the
//! final and best cost, and on the bowl the mean cost over the last 10% of iterations (the
//! paper's measure) next to the Newton floor `½·tr(H)`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};

use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{CostFunction, Error, Executor, Gradient, IterState, KV, Solver, State};
use argmin::solver::gradientdescent::SteepestDescent;
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use lodo_argmin::LodoSolver;
use lodo_core::LodoConfig;
use support::{NoisyBowl, Rosenbrock};

type St = IterState<Vec<f64>, Vec<f64>, (), (), (), f64>;

/// Records the cost after every iteration.
#[derive(Clone, Default)]
struct Costs(Arc<Mutex<Vec<f64>>>);

impl Observe<St> for Costs {
    fn observe_iter(&mut self, state: &St, _kv: &KV) -> Result<(), Error> {
        self.0.lock().unwrap().push(state.get_cost());
        Ok(())
    }
}

struct Row {
    name: String,
    iters: u64,
    cost_evals: u64,
    grad_evals: u64,
    final_cost: f64,
    best_cost: f64,
    tail_mean: f64,
    seconds: f64,
    stop: String,
}

fn run<O, S>(name: &str, problem: O, solver: S, x0: Vec<f64>, iters: u64) -> Row
where
    O: CostFunction<Param = Vec<f64>, Output = f64>
        + Gradient<Param = Vec<f64>, Gradient = Vec<f64>>,
    S: Solver<O, St>,
{
    let costs = Costs::default();
    let t = std::time::Instant::now();
    let result = Executor::new(problem, solver)
        .configure(|s| s.param(x0).max_iters(iters).counting(true))
        .add_observer(costs.clone(), ObserverMode::Always)
        .run();
    let seconds = t.elapsed().as_secs_f64();
    let c = costs.0.lock().unwrap().clone();
    let tail = &c[c.len() - (c.len() / 10).max(1).min(c.len())..];
    let tail_mean = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    match result {
        Ok(r) => {
            let counts = r.state.get_func_counts();
            Row {
                name: name.into(),
                iters: r.state.get_iter(),
                cost_evals: counts.get("cost_count").copied().unwrap_or(0),
                grad_evals: counts.get("gradient_count").copied().unwrap_or(0),
                final_cost: r.state.get_cost(),
                best_cost: r.state.get_best_cost(),
                tail_mean,
                seconds,
                stop: r
                    .state
                    .get_termination_reason()
                    .map_or_else(|| "-".into(), |t| t.to_string()),
            }
        }
        Err(e) => {
            println!(
                "  {name}: stopped with an error after {} iterations: {e}",
                c.len()
            );
            Row {
                name: format!("{name} (error)"),
                iters: c.len() as u64,
                cost_evals: 0,
                grad_evals: 0,
                final_cost: c.last().copied().unwrap_or(f64::NAN),
                best_cost: c.iter().copied().fold(f64::INFINITY, f64::min),
                tail_mean,
                seconds,
                stop: format!("error: {e}"),
            }
        }
    }
}

fn print(title: &str, rows: &[Row]) {
    println!("\n{title}\n");
    println!(
        "| solver | iterations | cost evals | gradient evals | final cost | best cost | mean cost, last 10% | time (s) | stopped by |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.4e} | {:.4e} | {:.4e} | {:.2} | {} |",
            r.name,
            r.iters,
            r.cost_evals,
            r.grad_evals,
            r.final_cost,
            r.best_cost,
            r.tail_mean,
            r.seconds,
            r.stop
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "quick");
    let scale = if quick { 10 } else { 1 };

    // Rosenbrock, 2-D and 10-D, from (−1.2, 1, …).
    for n in [2usize, 10] {
        let iters = 20_000 / scale;
        let x0 = Rosenbrock::<f64>::start(n);
        let mut rows = Vec::new();
        for alpha0 in [1e-3, 3e-4] {
            let config = LodoConfig::default().with_alpha0(alpha0)?;
            rows.push(run(
                &format!("LODO α₀={alpha0:e}"),
                Rosenbrock::new(),
                LodoSolver::new(config, 0),
                x0.clone(),
                iters,
            ));
        }
        rows.push(run(
            "SteepestDescent + MoreThuente",
            Rosenbrock::new(),
            SteepestDescent::new(MoreThuenteLineSearch::new()),
            x0.clone(),
            iters,
        ));
        rows.push(run(
            "LBFGS(m=7) + MoreThuente",
            Rosenbrock::new(),
            LBFGS::new(MoreThuenteLineSearch::new(), 7),
            x0.clone(),
            iters,
        ));
        print(
            &format!(
                "Rosenbrock (a=1, b=100), n = {n}, x0 = (−1.2, 1, …), cost(x0) = {:.4}, at most {iters} iterations",
                {
                    use argmin::core::CostFunction as _;
                    Rosenbrock::new().cost(&x0)?
                }
            ),
            &rows,
        );
    }

    // The noisy bowl: n = 100, noise 1, same seed (same H, same walk) for every solver.
    let n = 100;
    let iters = 40_000 / scale;
    let floor = NoisyBowl::new(n, 1.0, 7).floor();
    let mut rows = Vec::new();
    for alpha0 in [1.0, 0.3] {
        let config = LodoConfig::default().with_alpha0(alpha0)?;
        rows.push(run(
            &format!("LODO α₀={alpha0}"),
            NoisyBowl::new(n, 1.0, 7),
            LodoSolver::new(config, 0),
            vec![0.0; n],
            iters,
        ));
    }
    rows.push(run(
        "SteepestDescent + MoreThuente",
        NoisyBowl::new(n, 1.0, 7),
        SteepestDescent::new(MoreThuenteLineSearch::new()),
        vec![0.0; n],
        iters,
    ));
    rows.push(run(
        "LBFGS(m=7) + MoreThuente",
        NoisyBowl::new(n, 1.0, 7),
        LBFGS::new(MoreThuenteLineSearch::new(), 7),
        vec![0.0; n],
        iters,
    ));
    print(
        &format!(
            "Noisy bowl, n = {n}, noise 1 (every cost call moves the centre), {iters} iterations; Newton floor ½·tr(H) = {floor:.4}"
        ),
        &rows,
    );
    Ok(())
}
