//! One run of a pipeline: plan, check the target, stream the result through the workers, finish.
//!
//! ```text
//! result DataFrame ──repartition──▶ partition 0 ──▶ worker 0 ─┐  batches of batch_size,
//!   by hash of the key (upsert, sync:    ...          ...      ├─▶ Sink::write  (retried when
//!   one key never in two partitions),  partition N ──▶ worker N ─┘   the error is retryable)
//!   round robin otherwise                                            then Sink::finish once
//! ```
//!
//! Memory stays bounded by workers x batch_size x row width: nothing collects the whole result.

pub mod progress;
pub mod report;
mod workers;

use std::sync::Arc;
use std::time::Instant;

use datafusion::logical_expr::Partitioning;
use datafusion::logical_expr::ident;
use ferry_connectors::{ConnectorError, Sink, WriteMode};

use self::progress::Progress;
pub use self::report::{RunReport, Status};
use self::workers::{Counters, WorkerConfig};
use crate::plan;
use crate::spec::{Pipeline, SpecErrors};

/// How the command line wants the run shown.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// Show a progress bar (only where stderr is a terminal).
    pub progress: bool,
}

/// Why a run could not start at all.
#[derive(Debug)]
pub enum StartError {
    /// The pipeline's sources or steps do not plan.
    Pipeline(SpecErrors),
    /// The target refuses the result (checked before writing anything).
    Target(Vec<ConnectorError>),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Pipeline(e) => write!(f, "{e}"),
            StartError::Target(problems) => {
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "error: target: {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for StartError {}

/// The sink a pipeline's target describes.
pub fn sink_for(pipeline: &Pipeline) -> Result<Arc<dyn Sink>, StartError> {
    ferry_connectors::registry::sink(&pipeline.target.location, pipeline.target.options.clone())
        .map_err(|e| StartError::Target(vec![e]))
}

/// Runs a pipeline to its end. A run that starts always returns a report, whatever happened.
pub async fn run(pipeline: &Pipeline, settings: &RunSettings) -> Result<RunReport, StartError> {
    let started = Instant::now();
    let planned = plan::plan(pipeline).await.map_err(StartError::Pipeline)?;
    let sink = sink_for(pipeline)?;
    let schema = Arc::new(planned.result().schema().as_arrow().clone());
    if pipeline.run.validate {
        let problems = sink
            .check(&schema)
            .await
            .map_err(|e| StartError::Target(vec![e]))?;
        if !problems.is_empty() {
            return Err(StartError::Target(problems));
        }
    }
    let counters = Arc::new(Counters::default());
    let progress = Progress::new(settings.progress, &pipeline.name);
    let mut report = RunReport {
        pipeline: pipeline.name.clone(),
        target: sink.describe(),
        status: Status::Completed,
        rows_read: 0,
        rows_written: 0,
        rows_skipped: 0,
        rows_rejected: 0,
        rows_deleted: 0,
        batches: 0,
        retries: 0,
        duration: Default::default(),
        error: None,
    };
    let write = write_all(
        pipeline,
        &planned,
        sink.clone(),
        schema,
        &counters,
        &progress,
    );
    let outcome = tokio::select! {
        r = tokio::time::timeout(pipeline.run.timeout, write) => match r {
            Ok(r) => r.map_err(|e| (Status::Failed, e)),
            Err(_) => Err((Status::Failed, ConnectorError::fatal(format!(
                "the run took longer than its timeout of {}s", pipeline.run.timeout.as_secs()))
                .with_hint("raise timeout under [run], e.g. timeout = \"2h\""))),
        },
        _ = tokio::signal::ctrl_c() => Err((Status::Stopped, ConnectorError::fatal("stopped by the user"))),
    };
    match outcome {
        Ok(finished) => report.rows_deleted = finished.deleted,
        Err((status, e)) => {
            sink.abort().await;
            report.status = status;
            report.error = Some(e.to_string());
        }
    }
    progress.finish();
    counters.fill(&mut report);
    report.duration = started.elapsed();
    Ok(report)
}

/// Begins the sink, streams every partition through its worker, and finishes the sink.
async fn write_all(
    pipeline: &Pipeline,
    planned: &plan::Planned,
    sink: Arc<dyn Sink>,
    schema: arrow::datatypes::SchemaRef,
    counters: &Arc<Counters>,
    progress: &Progress,
) -> Result<ferry_connectors::Finished, ConnectorError> {
    let target = &pipeline.target;
    sink.begin(schema).await?;
    let df = planned.result().clone();
    let streams = if target.workers == 1 {
        vec![df.execute_stream().await?]
    } else {
        let keyed = !target.options.key.is_empty() && target.options.mode != WriteMode::Truncate;
        let partitioning = if keyed {
            let exprs = target.options.key.iter().map(ident).collect();
            Partitioning::Hash(exprs, target.workers)
        } else {
            Partitioning::RoundRobinBatch(target.workers)
        };
        df.repartition(partitioning)?
            .execute_stream_partitioned()
            .await?
    };
    let config = WorkerConfig {
        batch_size: target.batch_size,
        max_retries: pipeline.run.max_retries,
        key: target.options.key.clone(),
    };
    workers::run_all(
        streams,
        sink.clone(),
        config,
        counters.clone(),
        progress.clone(),
    )
    .await?;
    sink.finish().await
}
