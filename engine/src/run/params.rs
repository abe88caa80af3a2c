//! The values a run fills into `${...}`: the pipeline's `[params]` (and `--param NAME=VALUE`), the
//! time it is scheduled for (`FERRY_SCHEDULED_TIME`, set by `ferry schedule`; a manual run's start,
//! or the start of the unfinished run it resumes), and when the pipeline last succeeded (from its
//! history). A resumed run gets the values its first attempt had, so its identity matches.

use chrono::Utc;

use crate::book::Book;
use crate::spec::Pipeline;

/// Set by `ferry schedule` for the runs it starts: the fire's time, RFC 3339.
pub const SCHEDULED_TIME_VARIABLE: &str = "FERRY_SCHEDULED_TIME";

/// `pipeline` with its placeholders filled for a run; the error says which value is wrong.
pub async fn fill_for_run(
    pipeline: &Pipeline,
    overrides: &[String],
    fresh: bool,
) -> Result<Pipeline, String> {
    let used = pipeline.placeholder_names();
    if used.is_empty() && overrides.is_empty() {
        return Ok(pipeline.clone());
    }
    let book = Book::reader_for(&pipeline.state_dir, &pipeline.name);
    let scheduled = match std::env::var(SCHEDULED_TIME_VARIABLE) {
        Ok(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map_err(|e| format!("{SCHEDULED_TIME_VARIABLE}={text} is not an RFC 3339 time: {e}"))?
            .with_timezone(&Utc),
        Err(_) if used.iter().any(|n| n == "run.scheduled_time") && !fresh => book
            .unfinished_run()
            .await
            .map_err(|e| e.to_string())?
            .map_or_else(Utc::now, |run| run.start),
        Err(_) => Utc::now(),
    };
    let last_success = match used.iter().any(|n| n == "run.last_success_time") {
        true => book.last_success_start().await.map_err(|e| e.to_string())?,
        false => None,
    };
    let values = pipeline.values(
        overrides,
        scheduled.naive_utc(),
        last_success.map(|t| t.naive_utc()),
    )?;
    pipeline.fill(&values)
}
