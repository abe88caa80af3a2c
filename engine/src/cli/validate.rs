//! `ferry validate`: parse, plan every step, check the target; report every problem; write nothing.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use ferry_connectors::ConnectorError;

use super::INVALID;
use crate::plan;
use crate::run::sink_for;
use crate::spec::Pipeline;

pub async fn validate(file: &Path) -> ExitCode {
    let pipeline = match super::load(file) {
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
    ExitCode::SUCCESS
}

/// What validating found.
pub struct Checked {
    /// The target, for people.
    pub target: String,
    /// Columns of the last step's result.
    pub columns: usize,
    /// Every problem the target would have, found without writing.
    pub problems: Vec<ConnectorError>,
}

/// Plans every step and asks the target what would go wrong; writes nothing.
pub async fn check(pipeline: &Pipeline) -> Result<Checked, String> {
    let planned = plan::plan(pipeline).await.map_err(|e| e.to_string())?;
    let schema = Arc::new(planned.result().schema().as_arrow().clone());
    let sink = sink_for(pipeline).map_err(|e| e.to_string())?;
    let problems = match sink.check(&schema).await {
        Ok(p) => p,
        Err(e) => vec![e],
    };
    Ok(Checked {
        target: sink.describe(),
        columns: schema.fields().len(),
        problems,
    })
}
