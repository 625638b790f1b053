//! [`init`]: the log setup of the `srbd` and `dsp-sim` binaries.

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default
/// `info`).
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}
