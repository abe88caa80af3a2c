//! `ferry validate`: parse, plan every step, check the target; report every problem; write nothing.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::INVALID;
use crate::plan;
use crate::run::sink_for;

pub async fn validate(file: &Path) -> ExitCode {
    let pipeline = match super::load(file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let planned = match plan::plan(&pipeline).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(INVALID);
        }
    };
    let schema = Arc::new(planned.result().schema().as_arrow().clone());
    let sink = match sink_for(&pipeline) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(INVALID);
        }
    };
    let problems = match sink.check(&schema).await {
        Ok(p) => p,
        Err(e) => vec![e],
    };
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: target {}: {p}", sink.describe());
        }
        return ExitCode::from(INVALID);
    }
    say!(
        "{} is valid: {} sources, {} steps, {} columns into {} (mode {})",
        file.display(),
        pipeline.sources.len(),
        pipeline.steps.len(),
        schema.fields().len(),
        sink.describe(),
        pipeline.target.options.mode
    );
    ExitCode::SUCCESS
}
