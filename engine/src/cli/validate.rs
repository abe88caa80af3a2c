//! `ferry validate`: prints every problem `run/validate.rs` finds; writes nothing.

use std::path::Path;
use std::process::ExitCode;

use super::INVALID;
use crate::run::validate::check;

pub async fn validate(file: &Path, params: &[String]) -> ExitCode {
    let pipeline = match super::load_filled(file, params, false).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let checked = match check(&pipeline).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(INVALID);
        }
    };
    if !checked.problems.is_empty() {
        for p in &checked.problems {
            eprintln!("error: target {}: {p}", checked.target);
        }
        return ExitCode::from(INVALID);
    }
    say!(
        "{} is valid: {} sources, {} steps, {} columns into {} (mode {})",
        file.display(),
        pipeline.sources.len(),
        pipeline.steps.len(),
        checked.columns,
        checked.target,
        pipeline.target.options.mode
    );
    if let Some(ddl) = &checked.ddl {
        say!("create = true: when the table is missing, Ferry creates it with\n  {ddl}");
    }
    ExitCode::SUCCESS
}
