//! The LODO research harness: tasks, baselines, tuning, experiments, reports and plots.
//!
//! | module | contents |
//! |---|---|
//! | [`task`] | the [`task::Task`] oracle trait and the [`task::Minimizer`] trait every optimizer runs through |
//! | [`tasks`] | the paper's synthetic tasks (noisy quadratic bowl, Rosenbrock) |
//! | [`baselines`] | the baselines the authors compared against |
//! | [`tune`] | the authors' evolution-strategy hyperparameter tuner |
//! | [`experiment`] | experiment runners (tuning, main runs, ablations) |
//! | [`report`] | Markdown tables and CSV |
//! | [`floor`] | the bytes a LODO step moves and the copy bandwidth: its memory floor |
//! | [`stats`] | Welch's t-test (Student's t through the regularized incomplete beta function) |
//! | [`plot`] | SVG/PNG figures |
//! | [`mnist`] | the MNIST autoregression task (paper §5.2) |

pub mod baselines;
pub mod experiment;
pub mod floor;
pub mod mnist;
pub mod plot;
pub mod report;
pub mod stats;
pub mod task;
pub mod tasks;
pub mod tune;
