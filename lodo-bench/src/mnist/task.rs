//! The MNIST autoregression [`Task`]: each fresh evaluation draws a batch of random training
//! images, each with its own uniformly random query pixel (the authors' `AutoregressionTask`).

use std::sync::Arc;

use lodo_core::random::Stream;

use super::Scalar;
use super::net::{self, N_PARAMS, PIX, Query, SIDE};
use crate::task::Task;

/// MNIST pixel autoregression over a set of training images.
pub struct MnistTask {
    images: Arc<Vec<u8>>,
    n_images: usize,
    batch_size: usize,
    init_seed: u64,
    rng: Stream,
    batch: Vec<Query>,
    /// Batches drawn so far (the data-order position a checkpoint stores).
    draws: u64,
}

impl MnistTask {
    /// A task over `images` (`n·784` bytes, `n ≥ 1`) with batches of `batch_size`; `seed` drives
    /// the batches and the initial point.
    ///
    /// # Errors
    /// If `images` is empty or not a multiple of 784 bytes, or `batch_size = 0`.
    pub fn new(images: Arc<Vec<u8>>, batch_size: usize, seed: u64) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !images.is_empty() && images.len().is_multiple_of(PIX),
            "training images must be a non-empty multiple of 784 bytes, got {}",
            images.len()
        );
        anyhow::ensure!(batch_size > 0, "batch size must be positive");
        anyhow::ensure!(
            images.len() / PIX <= u32::MAX as usize,
            "too many training images"
        );
        let n_images = images.len() / PIX;
        Ok(Self {
            images,
            n_images,
            batch_size,
            init_seed: seed,
            rng: Stream::new(seed ^ 0x6d6e_6973_7462_6174),
            batch: Vec::with_capacity(batch_size),
            draws: 0,
        })
    }

    /// The current batch.
    #[must_use]
    pub fn batch(&self) -> &[Query] {
        &self.batch
    }

    /// Draws a fresh batch: images uniformly with replacement, query row and column uniform.
    pub fn draw(&mut self) {
        self.batch.clear();
        for _ in 0..self.batch_size {
            let image = self.rng.below(self.n_images as u64) as u32;
            let row = self.rng.below(SIDE as u64) as u8;
            let col = self.rng.below(SIDE as u64) as u8;
            self.batch.push(Query { image, row, col });
        }
        self.draws += 1;
    }
}

impl<T: Scalar> Task<T> for MnistTask {
    fn name(&self) -> &str {
        "mnist"
    }

    fn dim(&self) -> usize {
        N_PARAMS
    }

    fn initial_point(&self) -> Vec<T> {
        net::init(self.init_seed)
    }

    fn loss_grad(&mut self, x: &[T], grad: &mut [T]) -> T {
        self.draw();
        net::loss_grad(x, &self.images, &self.batch, grad)
    }

    fn loss_grad_same_sample(&mut self, x: &[T], grad: &mut [T]) -> T {
        if self.batch.is_empty() {
            self.draw();
        }
        net::loss_grad(x, &self.images, &self.batch, grad)
    }

    /// Batches drawn so far.
    fn position(&self) -> Option<u64> {
        Some(self.draws)
    }

    /// Draws batches until `draws` have been drawn: the data stream replayed from the seed
    /// (3 random integers per query, so 20,000 batches of 256 take well under a second).
    fn seek(&mut self, draws: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.draws <= draws,
            "the MNIST task has drawn {} batches, past the checkpoint's {draws}",
            self.draws
        );
        while self.draws < draws {
            self.draw();
        }
        Ok(())
    }
}
