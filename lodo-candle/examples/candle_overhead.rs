//! The adapter's overhead per step at the MLP's size (784-64-10, 50,890 f32 parameters): the
//! time to gather the variables and gradients and write the variables back, against the time
//! of the LODO step itself (`lodo_core::Lodo::step` on plain vectors of the same size). Medians
//! of many repetitions, interleaved so both see the same machine load.
//!
//! ```sh
//! cargo run --release -p lodo-candle --example candle_overhead -- [REPS]
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use candle_core::DType;
use candle_nn::VarMap;
use lodo_candle::{LodoOptimizer, LodoOptimizerConfig};
use lodo_core::{Lodo, LodoConfig};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args().nth(1).map_or(Ok(200), |s| s.parse())?;
    let train = support::Digits::load("train")?;
    let mut varmap = VarMap::new();
    let model = support::Mlp::new(&mut varmap, DType::F32, 0)?;
    let config = LodoOptimizerConfig::new(LodoConfig::default().with_alpha0(0.0846)?, 0);
    let mut opt = LodoOptimizer::<f32>::from_varmap(&varmap, config)?;
    let n = opt.lodo().momentum().len();
    let idx: Vec<usize> = (0..32).collect();
    let (x, y) = train.batch(&idx, DType::F32)?;
    let grads = model.loss(&x, &y)?.backward()?;
    // A bare LODO of the same size, stepped on plain vectors with the same gradient.
    let mut lodo = Lodo::<f32>::new(n, config.lodo, 0)?;
    let mut params = vec![0.0f32; n];
    let mut g = vec![0.0f32; n];
    for (i, var) in opt.vars().iter().enumerate() {
        let off = opt.layout().nth(i).map(|(o, _)| o).unwrap_or(0);
        if let Some(t) = grads.get(var.as_tensor()) {
            let v = t.flatten_all()?.to_vec1::<f32>()?;
            g[off..off + v.len()].copy_from_slice(&v);
        }
    }
    for _ in 0..10 {
        opt.gather_scatter(&grads)?;
        lodo.step(&mut params, &g)?;
    }
    let (mut adapter, mut step, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        opt.gather_scatter(&grads)?;
        adapter.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        lodo.step(&mut params, &g)?;
        step.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        opt.try_step(&grads)?;
        full.push(t.elapsed().as_secs_f64());
    }
    let (a, s, f) = (median(&mut adapter), median(&mut step), median(&mut full));
    println!("n = {n} parameters (f32), {reps} repetitions, medians:");
    println!("  gather + scatter (adapter)      {:9.1} µs", a * 1e6);
    println!("  LODO step (lodo-core)           {:9.1} µs", s * 1e6);
    println!("  full adapter step               {:9.1} µs", f * 1e6);
    println!("  overhead = adapter / LODO step  {:9.2} %", 100.0 * a / s);
    Ok(())
}
