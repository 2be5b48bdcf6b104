//! A 784-64-10 MLP on the shipped MNIST digits, 300 steps of batch 32: LODO's loss falls.
//! candle's AdamW and SGD run on the same initial weights and batches for comparison (printed
//! with `--nocapture`); the README's numbers come from `examples/candle_mnist.rs`.

mod support;

use candle_core::DType;
use candle_nn::{AdamW, Optimizer, ParamsAdamW, SGD, VarMap};
use lodo_candle::{LodoOptimizer, LodoOptimizerConfig};
use lodo_core::LodoConfig;

const STEPS: usize = 300;

#[test]
fn lodo_trains_the_mlp() {
    let train = support::Digits::load("train").unwrap();
    let test = support::Digits::load("t10k").unwrap();
    let batches = support::batches(train.len(), 32, STEPS, 0);
    let window = STEPS / 10;
    let mut report = Vec::new();
    for name in ["lodo", "adamw", "sgd"] {
        let mut varmap = VarMap::new();
        let model = support::Mlp::new(&mut varmap, DType::F32, 0).unwrap();
        let losses = match name {
            "lodo" => {
                let lodo = LodoConfig::default()
                    .with_alpha0(0.0846)
                    .unwrap()
                    .with_meta_lr(7.95e-6)
                    .unwrap()
                    .with_beta(0.934)
                    .unwrap();
                let mut opt =
                    LodoOptimizer::<f32>::from_varmap(&varmap, LodoOptimizerConfig::new(lodo, 0))
                        .unwrap();
                support::train(&model, &mut opt, &train, &batches, DType::F32).unwrap()
            }
            "adamw" => {
                let mut opt = AdamW::new(varmap.all_vars(), ParamsAdamW::default()).unwrap();
                support::train(&model, &mut opt, &train, &batches, DType::F32).unwrap()
            }
            _ => {
                let mut opt = SGD::new(varmap.all_vars(), 0.1).unwrap();
                support::train(&model, &mut opt, &train, &batches, DType::F32).unwrap()
            }
        };
        let (first, last) = (
            support::mean(&losses[..window]),
            support::mean(&losses[STEPS - window..]),
        );
        let (accuracy, test_loss) = model.evaluate(&test, DType::F32).unwrap();
        println!(
            "{name}: train loss {first:.4} → {last:.4}, test loss {test_loss:.4}, accuracy {accuracy:.4}"
        );
        report.push((name, first, last, accuracy));
        assert!(losses.iter().all(|l| l.is_finite()), "{name}");
    }
    let (_, first, last, _) = report[0];
    assert!(last < first, "LODO's loss did not fall: {first} → {last}");
    // And it fell a real amount: at least half of the way AdamW's fell on the same run.
    let (_, a_first, a_last, _) = report[1];
    assert!(first - last > 0.5 * (a_first - a_last), "{report:?}");
}
