//! `ferry preview`: the first rows of any step or source, as a table, nothing written.

use std::path::Path;
use std::process::ExitCode;

use arrow::util::pretty::pretty_format_batches;

use super::INVALID;
use crate::plan;
use crate::spec::did_you_mean;

pub async fn preview(file: &Path, step: Option<&str>, limit: usize, params: &[String]) -> ExitCode {
    let pipeline = match super::load_filled(file, params, false).await {
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
    let names = pipeline.table_names();
    let name = match step {
        None => pipeline
            .steps
            .last()
            .map(|s| s.name.as_str())
            .unwrap_or_default(),
        Some(s) if names.contains(&s.to_lowercase().as_str()) => s,
        Some(s) => {
            let hint = match did_you_mean(s, names.iter().copied()) {
                Some(m) => format!("did you mean --step {m}?"),
                None => format!("steps and sources: {}", names.join(", ")),
            };
            eprintln!("error: there is no step or source named \"{s}\"\n  hint: {hint}");
            return ExitCode::from(INVALID);
        }
    };
    let rows = async {
        let df = planned.ctx.table(name.to_lowercase().as_str()).await?;
        df.limit(0, Some(limit))?.collect().await
    }
    .await;
    match rows {
        Ok(batches) => {
            let shown: usize = batches.iter().map(|b| b.num_rows()).sum();
            match pretty_format_batches(&batches) {
                Ok(table) if shown > 0 => say!("{table}"),
                _ => say!("(no rows)"),
            }
            say!("{name}: first {shown} rows (--limit {limit})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: reading {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
