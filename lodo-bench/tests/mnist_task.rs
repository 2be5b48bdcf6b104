//! The MNIST task as a harness `Task<f32>`: seeded batches, same-sample re-evaluation, and one
//! optimizer step through `FirstOrder` lowering the loss on a fixed batch.

use std::sync::Arc;

use lodo_bench::mnist::idx::Mnist;
use lodo_bench::mnist::net::{N_PARAMS, SIDE};
use lodo_bench::mnist::task::MnistTask;
use lodo_bench::task::Task;

fn images() -> Arc<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k");
    Arc::new(Mnist::load(&dir).unwrap().train.slice(0..50).pixels)
}

#[test]
fn batches_are_seeded_and_same_sample_repeats() {
    let imgs = images();
    let mut a = MnistTask::new(imgs.clone(), 3, 5).unwrap();
    let mut b = MnistTask::new(imgs.clone(), 3, 5).unwrap();
    assert_eq!(Task::<f32>::dim(&a), N_PARAMS);
    let x: Vec<f32> = Task::<f32>::initial_point(&a);
    let mut g1 = vec![0.0f32; N_PARAMS];
    let mut g2 = vec![0.0f32; N_PARAMS];
    let l1 = a.loss_grad(&x, &mut g1);
    let l2 = b.loss_grad(&x, &mut g2);
    assert_eq!(a.batch(), b.batch());
    assert_eq!(l1.to_bits(), l2.to_bits());
    assert!(a.batch().iter().all(|q| (q.image as usize) < 50
        && usize::from(q.row) < SIDE
        && usize::from(q.col) < SIDE));
    // Same sample: identical loss and gradient, bit for bit.
    let l3 = a.loss_grad_same_sample(&x, &mut g2);
    assert_eq!(l1.to_bits(), l3.to_bits());
    assert!(g1.iter().zip(&g2).all(|(p, q)| p.to_bits() == q.to_bits()));
    // A fresh sample is a new batch.
    let before = a.batch().to_vec();
    a.loss_grad(&x, &mut g2);
    assert_ne!(before, a.batch());
    // Loss at init is near log 256 (uniform guess) and the gradient is finite.
    assert!(l1 > 3.0 && l1 < 9.0, "initial loss {l1}");
    assert!(g1.iter().all(|g| g.is_finite()));
}

#[test]
fn a_small_gradient_step_lowers_the_batch_loss() {
    let mut task = MnistTask::new(images(), 4, 1).unwrap();
    let mut x: Vec<f32> = Task::<f32>::initial_point(&task);
    let mut g = vec![0.0f32; N_PARAMS];
    let l0 = task.loss_grad(&x, &mut g);
    let norm2: f32 = g.iter().map(|v| v * v).sum();
    let lr = 0.05 / norm2.sqrt();
    for (xi, gi) in x.iter_mut().zip(&g) {
        *xi -= lr * gi;
    }
    let l1 = task.loss_grad_same_sample(&x, &mut g);
    // First-order decrease ≈ lr·‖g‖² = 0.05·‖g‖.
    assert!(l1 < l0, "{l1} !< {l0}");
    assert!(
        (l0 - l1) > 0.5 * 0.05 * norm2.sqrt(),
        "decrease {} too small",
        l0 - l1
    );
}

#[test]
fn bad_task_options_are_errors() {
    assert!(MnistTask::new(Arc::new(vec![]), 4, 0).is_err());
    assert!(MnistTask::new(Arc::new(vec![0; 785]), 4, 0).is_err());
    assert!(MnistTask::new(images(), 0, 0).is_err());
}
