//! `ferry run --dry-run`: prints what a run would do to a database table (`run/dry_run.rs` counts it).

use std::path::Path;
use std::process::ExitCode;

use ferry_connectors::WriteMode;

use super::INVALID;
use crate::run::dry_run::dry_run;
use crate::run::report::thousands;

pub async fn dry_run_command(file: &Path, params: &[String]) -> ExitCode {
    let pipeline = match super::load_filled(file, params, false).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    match dry_run(&pipeline).await {
        Ok(c) => {
            let mode = pipeline.target.options.mode;
            say!(
                "dry run, mode {mode}: {} inserts, {} updates, {} {}, {} deletes in table {}; nothing was written",
                thousands(c.inserts),
                thousands(c.updates),
                thousands(c.unchanged),
                if mode == WriteMode::Insert {
                    "skipped (key exists)"
                } else {
                    "unchanged"
                },
                thousands(c.deletes),
                pipeline.target.options.table
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(INVALID)
        }
    }
}
