//! `lodo-bench`: the LODO research harness command line.
//!
//! Until the full harness lands, `reproduce` runs LODO and Adam on a 100-dimensional noisy
//! quadratic bowl (eigenvalues log-spaced in [1e−3, 1]) and prints their final-window losses.

use lodo_core::{Adam, Lodo, LodoConfig, Optimizer};

fn main() -> anyhow::Result<()> {
    let n = 100;
    let steps = 20_000;
    let eig: Vec<f64> = (0..n).map(|i| 10f64.powf(-3.0 + 3.0 * i as f64 / (n - 1) as f64)).collect();
    let mut rng = lodo_core::random::Stream::new(0);
    let run = |opt: &mut dyn Optimizer<f64>, rng: &mut lodo_core::random::Stream| -> anyhow::Result<f64> {
        let (mut x, mut c, mut g) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let mut tail = 0.0;
        for t in 0..steps {
            c.iter_mut().for_each(|ci| *ci += rng.gaussian());
            let mut loss = 0.0;
            for i in 0..n {
                g[i] = eig[i] * (x[i] - c[i]);
                loss += 0.5 * eig[i] * (x[i] - c[i]).powi(2);
            }
            if t >= steps * 9 / 10 {
                tail += loss / (steps / 10) as f64;
            }
            opt.step(&mut x, &g)?;
        }
        Ok(tail)
    };
    let mut lodo = Lodo::<f64>::new(n, LodoConfig::default().with_alpha0(0.5)?, 0)?;
    let mut adam = Adam::new(n, 0.1)?;
    println!("noisy quadratic bowl, n = {n}, {steps} steps, Newton floor ½·tr(H) = {:.4}", 0.5 * eig.iter().sum::<f64>());
    println!("LODO final-10% mean loss: {:.4}", run(&mut lodo, &mut rng)?);
    println!("Adam final-10% mean loss: {:.4}", run(&mut adam, &mut rng)?);
    Ok(())
}
