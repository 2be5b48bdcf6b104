//! The MNIST pixel-autoregression task (paper §5.2). (in progress)

/// The `lodo-bench mnist` subcommand.
pub mod cli {
    /// Options of `lodo-bench mnist`.
    #[derive(clap::Args, Debug, Clone)]
    pub struct MnistArgs {}

    /// Runs the MNIST experiment.
    ///
    /// # Errors
    /// Any I/O or data error.
    pub fn run(_args: &MnistArgs) -> anyhow::Result<()> {
        anyhow::bail!("the MNIST experiment is not implemented yet")
    }
}
