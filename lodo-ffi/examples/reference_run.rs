//! The Rust side of the Python binding's bit-for-bit test (`lodo-py/tests/test_reference.py`).
//!
//! `cargo run --release -p lodo-ffi --example reference_run -- CASE` runs one configuration,
//! built here with lodo-core's own API (not through the binding's keyword options), for
//! `STEPS` steps on the bowl `g_i = d_i·(x_i − c_i)`, `d_i = 1 + (i mod 5)`,
//! `c_i = (i mod 7) − 3`, from `x = 0`, and prints two lines: the final parameters as hex bits
//! (`u32`/`u64`, space-separated), and the state bytes (lodo-ffi's envelope) in hex. The Python
//! test runs the same case through `lodo.Lodo` and compares both lines exactly.
//!
//! `cargo run … -- list` prints the case names.

use std::process::ExitCode;

use lodo::{FfiFloat, encode_state};
use lodo_core::{
    Adam, AdamConfig, BlockConfig, BlockPreconditioner, Lodo, LodoConfig, MetaOptimizer,
    PermutationFamily, Precision, Sgd, SgdConfig, WeightPrecision,
};
use serde::Serialize;

/// Steps per case.
const STEPS: usize = 30;

/// The bits of a float, as hex.
trait Bits: FfiFloat {
    fn hex(self) -> String;
}

impl Bits for f32 {
    fn hex(self) -> String {
        format!("{:08x}", self.to_bits())
    }
}

impl Bits for f64 {
    fn hex(self) -> String {
        format!("{:016x}", self.to_bits())
    }
}

fn run<T: Bits, M: MetaOptimizer<T> + Serialize>(
    mut lodo: Lodo<T, BlockPreconditioner<T>, M>,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let d: Vec<T> = (0..n).map(|i| T::from_c((1 + i % 5) as f64)).collect();
    let c: Vec<T> = (0..n).map(|i| T::from_c((i % 7) as f64 - 3.0)).collect();
    let mut x = vec![T::from_c(0.0); n];
    let mut g = vec![T::from_c(0.0); n];
    for _ in 0..STEPS {
        for i in 0..n {
            g[i] = d[i] * (x[i] - c[i]);
        }
        lodo.step(&mut x, &g)?;
    }
    let bits: Vec<String> = x.iter().map(|v| v.hex()).collect();
    println!("{}", bits.join(" "));
    let state = encode_state(&lodo)?;
    let hex: String = state.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
    Ok(())
}

/// The cases; `lodo-py/tests/test_reference.py` holds the same list as keyword options.
const CASES: [&str; 5] = [
    "adam-f64",
    "adam-f32-shuffle-q8",
    "sgd-f32-tiled",
    "adam-f64-custom",
    "adam-f64-theta32",
];

fn case(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    match name {
        // The paper's defaults, α₀ = 0.5.
        "adam-f64" => {
            let config = LodoConfig::default().with_alpha0(0.5)?;
            run(Lodo::<f64>::new(37, config, 7)?, 37)
        }
        // Shuffle wiring, 8 layers of 3 × 3 blocks, q8 moments, bf16 activations.
        "adam-f32-shuffle-q8" => {
            let network = BlockConfig::<f32>::default()
                .with_layers(8)?
                .with_block_size(3)?
                .with_permutations(PermutationFamily::Shuffle)?
                .with_activations(Precision::Bf16)?;
            let adam = AdamConfig::default().with_precision(Precision::Q8);
            let config = LodoConfig::new(network, adam).with_alpha0(0.25)?;
            run(Lodo::<f32>::new(50, config, 11)?, 50)
        }
        // θ held in f32 below f64, with q8 moments and bf16 activations, Shuffle wiring.
        "adam-f64-theta32" => {
            let network = BlockConfig::<f64>::default()
                .with_permutations(PermutationFamily::Shuffle)?
                .with_activations(Precision::Bf16)?
                .with_weights(WeightPrecision::F32)?;
            let adam = AdamConfig::default().with_precision(Precision::Q8);
            let config = LodoConfig::new(network, adam).with_alpha0(0.3)?;
            run(Lodo::<f64>::new(41, config, 13)?, 41)
        }
        // SGD meta-optimizer, tiled shuffle of tile 8, β = 0.5, α₀ = 0.1.
        "sgd-f32-tiled" => {
            let network = BlockConfig::<f32>::default()
                .with_permutations(PermutationFamily::TiledShuffle { tile: 8 })?;
            let config = LodoConfig::new(network, SgdConfig::default())
                .with_beta(0.5)?
                .with_alpha0(0.1)?
                .with_meta_lr(1e-3)?;
            run(
                Lodo::<f32, BlockPreconditioner<f32>, Sgd<f32>>::new(29, config, 3)?,
                29,
            )
        }
        // Explicit width, 4 layers of 2 × 2 blocks, Adam's β₁, β₂, ε changed.
        "adam-f64-custom" => {
            let network = BlockConfig::<f64>::default()
                .with_layers(4)?
                .with_block_size(2)?
                .with_hidden(64)?;
            let adam = AdamConfig::default().with_moments(0.8, 0.99, 1e-8)?;
            let config = LodoConfig::new(network, adam)
                .with_alpha0(0.2)?
                .with_meta_lr(3e-3)?;
            run(
                Lodo::<f64, BlockPreconditioner<f64>, Adam<f64>>::new(30, config, 5)?,
                30,
            )
        }
        other => Err(format!("unknown case {other:?}; cases: {}", CASES.join(", ")).into()),
    }
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1).unwrap_or_default();
    if arg == "list" {
        println!("{}", CASES.join("\n"));
        return ExitCode::SUCCESS;
    }
    match case(&arg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reference_run: {e}");
            ExitCode::FAILURE
        }
    }
}
