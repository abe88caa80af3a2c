//! From a pipeline to a DataFusion plan: sources registered as tables, each step a view named after it,
//! the last step's DataFrame the rows the target receives. Nothing is read yet beyond schemas.
//!
//! ```text
//! [sources.*] ──register──▶ SessionContext ◀──view── step 1 ◀──view── step 2 ... ──▶ result DataFrame
//! ```
//!
//! A SQL error is reported at the step's line, on the line of the name it is about when it can be found.

pub mod cluster;

use std::collections::HashMap;

use datafusion::execution::config::SessionConfig;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionContext};

use crate::spec::{Origin, Pipeline, SpecError, SpecErrors, Step, did_you_mean};

/// A pipeline's sources and steps, ready to execute.
pub struct Planned {
    pub ctx: SessionContext,
    /// One DataFrame per step, in order; the last feeds the target.
    pub steps: Vec<DataFrame>,
}

impl Planned {
    pub fn result(&self) -> &DataFrame {
        self.steps.last().expect("a validated pipeline has a step")
    }
}

/// A session tuned for moving data: batches of DataFusion's usual size, all cores; planned across
/// the `ferry worker`s of `cluster` when it names any.
pub fn session(cluster: &[url::Url]) -> SessionContext {
    let config = SessionConfig::new()
        .with_information_schema(false)
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
    cluster::session(config, cluster)
}

/// Registers every source and plans every step. Stops at the first step that does not plan, since the
/// steps after it build on it; all failing sources are reported together.
pub async fn plan(pipeline: &Pipeline) -> Result<Planned, SpecErrors> {
    plan_with(pipeline, &HashMap::new()).await
}

/// Like [`plan`], with the sources named in `files` reading exactly those files (incremental runs).
pub async fn plan_with(
    pipeline: &Pipeline,
    files: &HashMap<String, Vec<String>>,
) -> Result<Planned, SpecErrors> {
    use ferry_connectors::files::source::{register, register_files};
    let ctx = session(&pipeline.run.cluster);
    let mut errors = Vec::new();
    for source in &pipeline.sources {
        if !pipeline.run.cluster.is_empty() && !distributable(&source.origin) {
            let error = match &source.origin {
                Origin::Database { .. } => pipeline.locator.error(source.span.clone(), format!(
                    "source \"{}\": with a cluster, a database source is read whole by the run's process, not in partitions", source.name))
                    .hint("remove partitions and partition_column (the workers still share the writes), or read it in ranges across processes with `ferry run --spread N`"),
                _ => pipeline.locator.error(source.span.clone(), format!(
                    "source \"{}\": with a cluster, sources are parquet, CSV or JSON files the workers can read, or database tables and queries", source.name))
                    .hint("read Excel and Delta in a pipeline without cluster, or stage them as parquet first"),
            };
            errors.push(error);
            continue;
        }
        let registered = match (&source.origin, files.get(&source.name)) {
            (Origin::File(file), Some(list)) => {
                register_files(&ctx, &source.name, file, list).await
            }
            (Origin::File(file), None) => register(&ctx, &source.name, file).await,
            (Origin::Database { reader, read }, _) => {
                reader.register(&ctx, &source.name, read).await
            }
        };
        if let Err(e) = registered {
            let mut err = pipeline.locator.error(
                source.span.clone(),
                format!("source \"{}\": {}", source.name, e.message),
            );
            err.hint = e.hint;
            errors.push(err);
        }
    }
    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    let mut steps = Vec::with_capacity(pipeline.steps.len());
    for (i, step) in pipeline.steps.iter().enumerate() {
        if step.connection.is_some() && !pipeline.run.cluster.is_empty() {
            return Err(SpecErrors(vec![
                sql_error(
                    pipeline,
                    i,
                    step,
                    "with a cluster, a step cannot run on a database",
                )
                .hint("run database steps in a pipeline without cluster"),
            ]));
        }
        if let Some(reader) = &step.connection {
            // The SQL runs whole on its database; later steps see its result as a table.
            let read = ferry_connectors::Read::Query(step.sql.clone());
            reader
                .register(&ctx, &step.name, &read)
                .await
                .map_err(|e| {
                    let mut err = sql_error(pipeline, i, step, &e.message);
                    err.hint = e.hint.or(err.hint);
                    SpecErrors(vec![err])
                })?;
            steps.push(
                ctx.table(step.name.as_str())
                    .await
                    .map_err(|e| SpecErrors(vec![sql_error(pipeline, i, step, &e.to_string())]))?,
            );
            continue;
        }
        let df = query(&ctx, &step.sql)
            .await
            .map_err(|e| SpecErrors(vec![sql_error(pipeline, i, step, &e)]))?;
        ctx.register_table(step.name.as_str(), df.clone().into_view())
            .map_err(|e| SpecErrors(vec![sql_error(pipeline, i, step, &e.to_string())]))?;
        steps.push(df);
    }
    Ok(Planned { ctx, steps })
}

/// Whether the workers of a cluster can read a source: plain file scans travel as plans; Ferry's own
/// readers (databases, Excel, Delta, OData) do not.
/// Whether a source can be read in a cluster's plan: files the workers read themselves, or a
/// database read whole (one scan, a stage of one task, which the engine runs in the run's process;
/// a partitioned read's ranges are not plans it can send to the workers).
fn distributable(origin: &Origin) -> bool {
    use ferry_connectors::connector::Read;
    use ferry_connectors::files::FileFormat;
    match origin {
        Origin::File(f) => matches!(
            f.format,
            FileFormat::Parquet | FileFormat::Csv | FileFormat::Json
        ),
        Origin::Database { read, .. } => !matches!(
            read,
            Read::Table {
                partitions: Some(_),
                ..
            }
        ),
    }
}

/// A step's SQL as a DataFrame, if it is a query: a step that would write a file (COPY, INSERT),
/// define a table over any path (CREATE EXTERNAL TABLE) or change the session (SET) is refused, so
/// that a pipeline file reads and writes only what it names as sources and target.
async fn query(ctx: &SessionContext, sql: &str) -> Result<DataFrame, String> {
    let only_queries = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let plan = ctx
        .state()
        .create_logical_plan(sql)
        .await
        .map_err(|e| e.to_string())?;
    only_queries.verify_plan(&plan).map_err(|e| {
        format!(
            "a step is a query (SELECT, WITH, VALUES); it cannot write files, define tables or change settings ({})",
            e.to_string().trim_start_matches("Error during planning: ")
        )
    })?;
    ctx.execute_logical_plan(plan)
        .await
        .map_err(|e| e.to_string())
}

/// A DataFusion error in a step, placed on the line of the name it complains about.
fn sql_error(pipeline: &Pipeline, index: usize, step: &Step, message: &str) -> SpecError {
    let message = message
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("SQL error: ")
        .trim_start_matches("Schema error: ")
        .to_string();
    let quoted = quoted_names(&message);
    let line = quoted
        .iter()
        .filter_map(|name| {
            let bare = name.rsplit('.').next().unwrap_or(name).to_lowercase();
            step.sql
                .to_lowercase()
                .lines()
                .position(|l| l.contains(&bare))
        })
        .next()
        .unwrap_or(0);
    let err = pipeline.locator.error_in(
        step.sql_span.clone(),
        line,
        format!("step \"{}\": {message}", step.name),
    );
    let available: Vec<&str> = pipeline
        .table_names()
        .into_iter()
        .take(pipeline.sources.len() + index)
        .collect();
    if message.contains("not found") && message.starts_with("table") {
        let missing = quoted
            .first()
            .map(|n| n.rsplit('.').next().unwrap_or(n).to_string())
            .unwrap_or_default();
        return match did_you_mean(&missing, available.iter().copied()) {
            Some(m) => err.hint(format!(
                "did you mean {m}? tables available here: {}",
                available.join(", ")
            )),
            None => err.hint(format!(
                "tables available here: {} (a step sees the sources and the steps before it)",
                available.join(", ")
            )),
        };
    }
    err.hint("run `ferry preview` on the steps before it to see their columns")
}

/// The names a DataFusion message quotes: 'datafusion.public.x', "x", `x`.
fn quoted_names(message: &str) -> Vec<String> {
    let mut names = Vec::new();
    for quote in ['\'', '"', '`'] {
        let parts: Vec<&str> = message.split(quote).collect();
        names.extend(
            parts
                .iter()
                .skip(1)
                .step_by(2)
                .filter(|s| !s.is_empty() && !s.contains(' '))
                .map(|s| s.to_string()),
        );
    }
    names
}
