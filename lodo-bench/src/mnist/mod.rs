//! The MNIST pixel-autoregression task (paper §5.2; the authors' `tasks/autoregression_mnist.py`):
//! predict the byte value of one queried pixel of an MNIST digit from the pixels before it in
//! raster order, with a 94,696-parameter residual CNN.
//!
//! | module | contents |
//! |---|---|
//! | [`idx`] | the IDX file reader (gzip or raw) and [`idx::Mnist`] |
//! | [`kernels`] | the CNN's vectorisable inner loops (1×1 conv as GEMM, depthwise 3×3, pooling, `atan`) |
//! | [`batched`] | the fast path: a chunk of examples per pass, each 1×1 convolution one GEMM |
//! | [`pointwise`] | the 1×1 convolutions and their weight gradients: explicit-SIMD products (f32) |
//! | [`net`] | the model: parameter layout, init, forward, backward, dataset loss, sampling |
//! | [`task`] | [`task::MnistTask`], the [`crate::task::Task`] the optimizers train |
//! | [`cli`] | `lodo-bench mnist`: the experiment through the shared runner, its report and pictures |

pub mod batched;
pub mod idx;
pub mod kernels;
pub mod net;
pub mod pointwise;
pub mod task;

mod experiment;

/// The float types the network runs in (`f32`, and `f64` for gradient checks).
pub trait Scalar: lodo_core::Real + kernels::Atan + pointwise::Pointwise {}

impl<T: lodo_core::Real + kernels::Atan + pointwise::Pointwise> Scalar for T {}

/// The `lodo-bench mnist` subcommand.
pub mod cli {
    pub use super::experiment::{
        CLAIM_FILE, ClaimRecord, MnistArgs, SHIPPED_CLAIM, Sweep, read_claim, run, shipped_claim,
        utc_date,
    };
}
