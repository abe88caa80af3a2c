//! The `ferry` binary: logging set up, then the command line.

use std::process::ExitCode;

use clap::Parser;
use ferry::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // delta-rs's kernel logs an ERROR whenever it looks for a table that does not exist yet, which
    // is how every bookkeeping table starts, and a WARN for every commit that lost a race its
    // conflict check then resolves (processes sharing a run's log): keep them quiet unless asked
    // for with FERRY_LOG.
    let level = match cli.verbose {
        0 => "warn,buoyant_kernel=off,deltalake_core::kernel::transaction=error",
        1 => "info,ferry=debug,buoyant_kernel=off",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let code = cli::main(cli).await;
        // Run leases on object storage a command let go of are released, not left to expire.
        ferry::book::lease::settle().await;
        code
    })
}
