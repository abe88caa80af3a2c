//! One run of a pipeline: plan, check the target, stream the result through the workers, finish, and
//! account for everything in the bookkeeping tables.
//!
//! ```text
//! lock ─▶ history: Running ─▶ result DataFrame ──repartition──▶ partition 0 ─▶ worker 0 ─┐
//!   (resuming the last unfinished run         by hash of the key       ...       ...     ├─▶ Sink::write
//!    unless --fresh: its logged batches       (one key never in two    partition N ─▶ worker N ─┘   │
//!    are skipped)                              partitions), else                        recorder ◀─┘
//!                                              round robin                    (log + quarantine, grouped)
//!   ─▶ Sink::finish ─▶ history: Completed | Partial Success | Failed | Stopped, state ─▶ unlock
//! ```
//!
//! Memory stays bounded by workers x batch_size x row width: nothing collects the whole result.

pub mod cluster_write;
pub mod dry_run;
pub mod incremental;
pub mod isolate;
pub mod params;
pub mod progress;

/// A query's answer as text (NULL as an empty string): its column names and its rows. For small
/// answers: counts, and the dashboard's pages.
pub(crate) async fn query_text(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> Result<(Vec<String>, Vec<Vec<String>>), datafusion::error::DataFusionError> {
    let df = ctx.sql(sql).await?;
    let columns = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for batch in df.collect().await? {
        for i in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, i))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    Ok((columns, rows))
}
pub mod reconcile;
pub mod report;
pub mod retry;
mod route;
pub mod spread;
pub mod validate;
mod workers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ferry_connectors::failpoint::pause_point;
use ferry_connectors::{ConnectorError, Fault, Resume, Sink, WriteMode};

use self::progress::Progress;
pub use self::report::{RunReport, Status};
use self::workers::{Counters, WorkerConfig};
use crate::book::Book;
use crate::book::lock::RunLock;
use crate::book::recorder::Recorder;
use crate::book::tables::{HistoryRow, StateRow};
use crate::plan;
use crate::spec::{Pipeline, SpecErrors};

/// How the command line wants the run done and shown.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// Show a progress bar (only where stderr is a terminal).
    pub progress: bool,
    /// Start a new run even if the last one did not finish.
    pub fresh: bool,
    /// The user confirmed a run that resets the target (truncate on a service: every record deleted).
    pub confirmed: bool,
}

/// Why a run could not start at all.
#[derive(Debug)]
pub enum StartError {
    /// The pipeline's sources or steps do not plan.
    Pipeline(SpecErrors),
    /// The target refuses the result (checked before writing anything).
    Target(Vec<ConnectorError>),
    /// The bookkeeping tables cannot be used, or another run holds the lock.
    Book(ConnectorError),
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
            StartError::Book(e) => write!(f, "error: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Exit code: the pipeline file or the target's definition is wrong.
pub const EXIT_INVALID: u8 = 2;
/// Exit code (sysexits' EX_SOFTWARE): a bug in Ferry.
pub const EXIT_BUG: u8 = 70;
/// Exit code (sysexits' EX_TEMPFAIL): busy or unavailable for now (another run holds the pipeline,
/// the target does not answer); the same command later can succeed.
pub const EXIT_TRY_LATER: u8 = 75;

impl StartError {
    /// The exit code, by who must act: the user (2), the other end for now (75), the other end
    /// (1), or Ferry (70).
    pub fn exit_code(&self) -> u8 {
        let by_fault = |e: &ConnectorError, config: u8| match (e.class, e.fault) {
            (ferry_connectors::ErrorClass::Retryable, _) => EXIT_TRY_LATER,
            (_, Fault::Ferry) => EXIT_BUG,
            (_, Fault::External) => 1,
            (_, Fault::Config) => config,
        };
        match self {
            StartError::Pipeline(_) => EXIT_INVALID,
            // The most actionable first: waiting, then a bug, then the other end, then the user.
            StartError::Target(problems) => {
                let codes: Vec<u8> = problems.iter().map(|e| by_fault(e, EXIT_INVALID)).collect();
                [EXIT_TRY_LATER, EXIT_BUG, 1]
                    .into_iter()
                    .find(|c| codes.contains(c))
                    .unwrap_or(EXIT_INVALID)
            }
            // The bookkeeping tables are not the pipeline file: an unusable one is a failure.
            StartError::Book(e) => by_fault(e, 1),
        }
    }
}

/// The sink a pipeline's target describes.
pub fn sink_for(pipeline: &Pipeline) -> Result<Arc<dyn Sink>, StartError> {
    pipeline
        .target
        .destination
        .sink(pipeline.target.options.clone())
        .map_err(|e| StartError::Target(vec![e]))
}

/// The target's name in the log and in `quarantine/<name>`: the table, or the file's name.
pub fn target_name(pipeline: &Pipeline) -> String {
    pipeline.target.destination.name()
}

/// Truncate that empties the target before the load (a service: there is no staging to swap in).
fn resets_target(pipeline: &Pipeline) -> bool {
    pipeline.target.options.mode == WriteMode::Truncate
        && !pipeline
            .target
            .destination
            .connector()
            .capabilities()
            .atomic_truncate
}

/// Runs a pipeline to its end. A run that starts always returns a report, whatever happened.
///
/// The phases follow the diagram above: [`prepare`] (lock, bookkeeping, plan, the target checked),
/// [`start_or_resume`] (this run's identity, history: Running), [`write`] (the workers, until the
/// sink finishes, fails, times out or is stopped), [`account`] (the report, state and history).
pub async fn run(pipeline: &Pipeline, settings: &RunSettings) -> Result<RunReport, StartError> {
    run_as(pipeline, settings, None).await
}

/// A run led by this process and shared with `processes - 1` others that join it (`spread`).
pub async fn run_spread(
    pipeline: &Pipeline,
    settings: &RunSettings,
    processes: usize,
) -> Result<RunReport, StartError> {
    if let Some(why) = spread::refusal(pipeline) {
        return Err(StartError::Target(vec![
            ConnectorError::fatal(why).with_hint("run it in one process: drop --spread"),
        ]));
    }
    run_as(pipeline, settings, Some(processes.max(1))).await
}

async fn run_as(
    pipeline: &Pipeline,
    settings: &RunSettings,
    spread: Option<usize>,
) -> Result<RunReport, StartError> {
    let started = Instant::now();
    let start_time = Utc::now();
    let prepared = prepare(pipeline, settings).await?;
    let mut attempt = start_or_resume(pipeline, settings, &prepared, start_time).await?;
    let counters = Arc::new(Counters::default());
    let progress = Progress::new(settings.progress, &pipeline.name);
    let mut report = RunReport {
        pipeline: pipeline.name.clone(),
        run_id: attempt.run_id.clone(),
        attempt: attempt.number,
        target: prepared.sink.describe(),
        status: Status::Completed,
        rows_read: 0,
        rows_out: 0,
        rows_written: 0,
        rows_skipped: 0,
        rows_rejected: 0,
        rows_resumed: 0,
        rows_deleted: 0,
        batches: 0,
        retries: 0,
        duration: Default::default(),
        error: None,
        notes: Vec::new(),
        reconciled: None,
    };
    match write(
        pipeline,
        &prepared,
        &mut attempt,
        &counters,
        &progress,
        spread,
    )
    .await
    {
        Ok(finished) => {
            pause_point("sink_finished");
            report.rows_deleted = finished.deleted;
        }
        Err((status, e)) => {
            prepared.sink.abort().await;
            report.status = status;
            report.error = Some(e.to_string());
        }
    }
    progress.finish();
    counters.fill(&mut report);
    if report.status == Status::Completed && report.rows_rejected > 0 {
        report.status = Status::PartialSuccess;
    }
    report.notes = prepared.sink.notes();
    report.duration = started.elapsed();
    // After the write, outside its duration: the rate stays the write's.
    if report.status == Status::Completed
        && let Some(depth) = pipeline.run.reconcile
    {
        report.reconciled = Some(reconcile::reconcile(pipeline, depth).await);
    }
    account(
        pipeline,
        &prepared,
        attempt,
        &counters,
        &mut report,
        start_time,
    )
    .await;
    prepared.lock.release().await;
    Ok(report)
}

/// What a run holds once it may start: the run lock, the bookkeeping, the files an incremental
/// source reads this time, the plan, and the target, checked.
struct Prepared {
    lock: RunLock,
    book: Book,
    selection: incremental::Selection,
    planned: plan::Planned,
    sink: Arc<dyn Sink>,
    schema: arrow::datatypes::SchemaRef,
    table_name: String,
}

async fn prepare(pipeline: &Pipeline, settings: &RunSettings) -> Result<Prepared, StartError> {
    let lock = RunLock::acquire(&pipeline.state_dir, &pipeline.name)
        .await
        .map_err(StartError::Book)?;
    let book = Book::open(&pipeline.state_dir, &pipeline.name)
        .await
        .map_err(StartError::Book)?;
    let selection = incremental::select(pipeline, &book)
        .await
        .map_err(StartError::Book)?;
    let files = selection
        .iter()
        .map(|(source, files)| {
            (
                source.clone(),
                files.iter().map(|f| f.path.clone()).collect(),
            )
        })
        .collect();
    let planned = plan::plan_with(pipeline, &files)
        .await
        .map_err(StartError::Pipeline)?;
    let sink = sink_for(pipeline)?;
    if resets_target(pipeline) && !settings.confirmed {
        return Err(StartError::Target(vec![
            ConnectorError::fatal(format!(
                "mode \"truncate\" deletes every record of {} before loading",
                sink.describe()
            ))
            .with_hint("run again with --yes to confirm that the target is reset"),
        ]));
    }
    let schema = Arc::new(planned.result().schema().as_arrow().clone());
    if pipeline.run.validate {
        let problems = workers::retrying("checking the target", pipeline.run.max_retries, || {
            sink.check(&schema)
        })
        .await
        .map_err(|e| StartError::Target(vec![e]))?;
        if !problems.is_empty() {
            return Err(StartError::Target(problems));
        }
    }
    Ok(Prepared {
        lock,
        book,
        selection,
        planned,
        sink,
        schema,
        table_name: target_name(pipeline),
    })
}

/// This run in the bookkeeping: a new one, or the attempt after an unfinished one of the same
/// pipeline and target (whose logged batches are skipped).
struct Attempt {
    run_id: String,
    number: i32,
    resumes: bool,
    /// The batches earlier attempts wrote, with their counts.
    done: HashMap<crate::book::BatchKey, crate::book::Totals>,
    history: HistoryRow,
}

async fn start_or_resume(
    pipeline: &Pipeline,
    settings: &RunSettings,
    prepared: &Prepared,
    start_time: chrono::DateTime<Utc>,
) -> Result<Attempt, StartError> {
    let Prepared {
        book,
        sink,
        table_name,
        ..
    } = prepared;
    let identity = run_identity(pipeline, &sink.describe());
    let previous = if settings.fresh {
        None
    } else {
        book.unfinished_run().await.map_err(StartError::Book)?
    };
    // A run is resumed only against the same target with the same definition: batches logged
    // against another database, or staging kept from another definition, are not this run's.
    let previous = previous.filter(|p| {
        let same = p.identity.as_deref() == Some(identity.as_str());
        if !same {
            tracing::warn!(
                run = %p.run_id,
                status = %p.status,
                "the last run did not finish, but its pipeline file or target has changed since: starting a new run"
            );
        }
        same
    });
    let (run_id, number) = match &previous {
        Some(p) => (p.run_id.clone(), p.attempt + 1),
        None => (new_run_id(), 1),
    };
    let done = match &previous {
        Some(p) => book
            .written_batches(&p.run_id, table_name)
            .await
            .map_err(StartError::Book)?,
        None => HashMap::new(),
    };
    if let Some(p) = &previous {
        tracing::warn!(
            run = %p.run_id,
            status = %p.status,
            batches = done.len(),
            "resuming the last run, which did not finish; `ferry run --fresh` starts a new one"
        );
    }
    if !sink.exactly_once() {
        tracing::warn!(
            target = %sink.describe(),
            "the target has no key: if this run dies and is run again, some rows may be written twice"
        );
    }
    let history = HistoryRow {
        run_id: run_id.clone(),
        pipeline: pipeline.name.clone(),
        start: previous.as_ref().map_or(start_time, |p| p.start),
        end: None,
        duration: None,
        status: "Running".to_string(),
        rows_read: 0,
        rows_written: 0,
        rows_rejected: 0,
        rows_per_second: None,
        attempt: number,
        error: None,
        identity: Some(identity),
    };
    book.record_run(&history).await.map_err(StartError::Book)?;
    pause_point("run_recorded");
    Ok(Attempt {
        run_id,
        number,
        resumes: previous.is_some(),
        done,
        history,
    })
}

/// Begins the target and writes every partition, until the sink finishes, the run fails, times out
/// or is stopped (Ctrl-C). Everything the workers recorded is committed before the outcome is known.
async fn write(
    pipeline: &Pipeline,
    prepared: &Prepared,
    attempt: &mut Attempt,
    counters: &Arc<Counters>,
    progress: &Progress,
    spread: Option<usize>,
) -> Result<ferry_connectors::Finished, (Status, ConnectorError)> {
    let Prepared {
        book,
        planned,
        sink,
        schema,
        table_name,
        ..
    } = prepared;
    let (recorder, recorder_task) = Recorder::start(book.clone());
    let writing = async {
        let begin_as = ferry_connectors::Attempt {
            run_id: attempt.run_id.clone(),
            resume: attempt.resumes,
        };
        let begun = workers::retrying("preparing the target", pipeline.run.max_retries, || {
            sink.begin(schema.clone(), &begin_as)
        })
        .await?;
        if begun == Resume::Lost {
            attempt.done.clear();
        }
        let on_cluster =
            !pipeline.run.cluster.is_empty() && spread::target_refusal(pipeline).is_none();
        if spread.is_some() || on_cluster {
            // Other processes write and log too: the run's totals are the shared log's.
            drop(recorder);
            let totals = match spread {
                Some(processes) => {
                    let shared = spread::Shared::new(pipeline, &attempt.run_id)?;
                    let key = &pipeline.target.options.key;
                    let division = spread::Division::of(planned, key, shared.partitions).await;
                    shared.announce(processes, division).await?;
                    let work = spread::Share {
                        pipeline,
                        planned,
                        sink: sink.clone(),
                        book,
                        run_id: attempt.run_id.clone(),
                        attempt: attempt.number,
                        table_name: table_name.clone(),
                        counters: counters.clone(),
                        progress: progress.clone(),
                    };
                    spread::share(&shared, &work).await?;
                    spread::run_totals(book, &attempt.run_id, table_name).await?
                }
                None => {
                    let (run_id, number) = (&attempt.run_id, attempt.number);
                    cluster_write::write_on_cluster(
                        pipeline, planned, book, run_id, number, table_name,
                    )
                    .await?
                }
            };
            counters.set_run_totals(&totals);
            return workers::retrying("finishing the target", pipeline.run.max_retries, || {
                sink.finish()
            })
            .await;
        }
        let config = WorkerConfig {
            batch_size: pipeline.target.batch_size,
            max_retries: pipeline.run.max_retries,
            max_consecutive_failures: pipeline.run.max_consecutive_failures,
            table_name: table_name.clone(),
            pipeline: pipeline.name.clone(),
            run_id: attempt.run_id.clone(),
            attempt: attempt.number,
            done: std::mem::take(&mut attempt.done),
        };
        write_all(
            pipeline,
            planned,
            sink.clone(),
            config,
            counters,
            progress,
            recorder,
        )
        .await
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout(pipeline.run.timeout, writing) => match r {
            Ok(r) => r.map_err(|e| (Status::Failed, e)),
            Err(_) => Err((Status::Failed, ConnectorError::fatal(format!(
                "the run took longer than its timeout of {}s", pipeline.run.timeout.as_secs()))
                .with_hint("raise timeout under [run], e.g. timeout = \"2h\""))),
        },
        _ = stop_requested() => Err((Status::Stopped, ConnectorError::fatal("stopped by the user or the scheduler"))),
        why = prepared.lock.lost() => Err((Status::Failed, ConnectorError::retryable(why)
            .with_hint("another process may be running this pipeline now; its run carries on from what this one recorded"))),
    };
    let recorded = recorder_task.close().await;
    match (outcome, recorded) {
        (Ok(finished), Ok(())) => Ok(finished),
        (Ok(_), Err(e)) => Err((Status::Failed, e)),
        (Err(e), _) => Err(e),
    }
}

/// What a process that joined a spread run wrote.
pub struct Joined {
    pub run_id: String,
    pub partitions: Vec<usize>,
    pub rows_written: u64,
    /// The rows its sources gave it, when they count them: all of them when partitions are the
    /// key's hashes, about its share when they are ranges a source filters.
    pub source_rows: Option<u64>,
}

/// Joins the spread run of `pipeline` that a `ferry run --spread` leads (waiting up to `wait` for
/// it to start), and writes partitions until every partition is done.
pub async fn join(pipeline: &Pipeline, wait: Duration) -> Result<Joined, ConnectorError> {
    if let Some(why) = spread::refusal(pipeline) {
        return Err(ConnectorError::fatal(why));
    }
    let book = Book::open(&pipeline.state_dir, &pipeline.name).await?;
    let sink = sink_for(pipeline).map_err(|e| ConnectorError::fatal(e.to_string()))?;
    let identity = run_identity(pipeline, &sink.describe());
    let started = Instant::now();
    let (run, shared) = loop {
        if let Some(run) = book.unfinished_run().await?
            && run.status == "Running"
            && run.identity.as_deref() == Some(identity.as_str())
        {
            let shared = spread::Shared::new(pipeline, &run.run_id)?;
            if let Some(announced) = shared.announced().await? {
                // Planned after the leader announced: its reads take the leader's snapshots.
                ferry_connectors::sql::postgres::shared::adopt(announced.snapshots);
                break (run, shared);
            }
        }
        if started.elapsed() > wait {
            return Err(ConnectorError::retryable(format!(
                "no spread run of \"{}\" to join",
                pipeline.name
            ))
            .with_hint("start one with `ferry run PIPELINE --spread N` (the same pipeline file), or wait longer with --wait"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let planned = plan::plan(pipeline)
        .await
        .map_err(|e| ConnectorError::fatal(e.to_string()))?;
    let schema = Arc::new(planned.result().schema().as_arrow().clone());
    let attempt = ferry_connectors::Attempt {
        run_id: run.run_id.clone(),
        resume: true,
    };
    workers::retrying("preparing the target", pipeline.run.max_retries, || {
        sink.begin(schema.clone(), &attempt)
    })
    .await?;
    let counters = Arc::new(Counters::default());
    let work = spread::Share {
        pipeline,
        planned: &planned,
        sink: sink.clone(),
        book: &book,
        run_id: run.run_id.clone(),
        attempt: run.attempt,
        table_name: target_name(pipeline),
        counters: counters.clone(),
        progress: Progress::new(false, &pipeline.name),
    };
    let partitions = tokio::select! {
        r = spread::share(&shared, &work) => r?,
        _ = stop_requested() => return Err(ConnectorError::fatal("stopped by the user")),
    };
    Ok(Joined {
        run_id: run.run_id,
        partitions,
        rows_written: counters.written(),
        source_rows: counters.source_rows(),
    })
}

/// Ctrl-C (SIGINT), or SIGTERM (a service manager, or `ferry schedule` stopping a run at its
/// timeout): the run stops, its written batches recorded, and a later run resumes it.
pub(crate) async fn stop_requested() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
}

/// Records the run's outcome: the incremental sources' files, the state row, the history row,
/// quarantine rows an earlier attempt left for batches written again, and compaction. A failure
/// here turns the report into Failed, saying why.
async fn account(
    pipeline: &Pipeline,
    prepared: &Prepared,
    attempt: Attempt,
    counters: &Counters,
    report: &mut RunReport,
    start_time: chrono::DateTime<Utc>,
) {
    let Prepared {
        book,
        selection,
        table_name,
        ..
    } = prepared;
    let mut history = attempt.history;
    history.end = Some(Utc::now());
    history.duration = Some(report.duration.as_secs_f64());
    history.status = report.status.as_str().to_string();
    history.rows_read = report.rows_read as i64;
    history.rows_written = report.rows_written as i64;
    history.rows_rejected = report.rows_rejected as i64;
    history.rows_per_second = Some(report.rows_per_second());
    history.error = report.error.clone();
    let state = StateRow {
        id: 0,
        table_name: table_name.clone(),
        records: report.rows_out as i64,
        // The seed's meaning: the migration finished and every validation check passed. Today's
        // checks: the target's (`[run] validate`, before writing), every row landed, and the
        // reconciliation when `[run] reconcile` asks for one.
        validated: report.status == Status::Completed
            && pipeline.run.validate
            && report
                .reconciled
                .as_ref()
                .is_none_or(|r| r.as_ref().is_ok_and(|r| r.agrees())),
        workers: pipeline.target.workers as i32,
        status: history.status.clone(),
        rows_written: history.rows_written,
        rows_rejected: history.rows_rejected,
        updated_at: Utc::now(),
        pipeline: pipeline.name.clone(),
    };
    let finished = matches!(report.status, Status::Completed | Status::PartialSuccess);
    let closing = async {
        if finished {
            incremental::record(pipeline, book, &attempt.run_id, selection).await?;
            if attempt.resumes {
                // Rows an earlier attempt quarantined for batches this attempt wrote again (their
                // content came in another order, or their log row was never committed) were
                // quarantined again: keep only one.
                book.forget_superseded_rejections(
                    table_name,
                    &attempt.run_id,
                    start_time,
                    &counters.skipped_batches(),
                )
                .await?;
            }
        }
        book.record_state(state).await?;
        book.record_run(&history).await?;
        for table in [crate::book::LOG, crate::book::HISTORY, crate::book::STATE] {
            book.compact(table).await?;
        }
        Ok::<_, ConnectorError>(())
    };
    if let Err(e) = closing.await {
        report.status = Status::Failed;
        report.error = Some(format!(
            "{}the run's outcome could not be recorded: {e}",
            report
                .error
                .as_ref()
                .map(|e| format!("{e}\n"))
                .unwrap_or_default()
        ));
    }
}

/// The rows the plan's sources produced (its leaves' `output_rows`); `None` when a source does not
/// count them.
pub(super) fn source_rows(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> Option<u64> {
    let children = plan.children();
    if children.is_empty() {
        if let Some(rows) = plan.metrics().and_then(|m| m.output_rows()) {
            return Some(rows as u64);
        }
        // A source that keeps no metrics (rows in memory: a workbook) knows its rows exactly.
        let stats = datafusion::physical_plan::statistics::StatisticsContext::new().compute(
            plan,
            &datafusion::physical_plan::statistics::StatisticsArgs::new(),
        );
        let exact = stats.ok().and_then(|s| match s.num_rows {
            datafusion::common::stats::Precision::Exact(n) => Some(n as u64),
            _ => None,
        });
        tracing::debug!(source = plan.name(), rows = ?exact, "a source without metrics");
        return exact;
    }
    children.into_iter().map(|c| source_rows(c.as_ref())).sum()
}

/// Begins the sink, streams every partition through its worker, and finishes the sink.
async fn write_all(
    pipeline: &Pipeline,
    planned: &plan::Planned,
    sink: Arc<dyn Sink>,
    config: WorkerConfig,
    counters: &Arc<Counters>,
    progress: &Progress,
    recorder: Recorder,
) -> Result<ferry_connectors::Finished, ConnectorError> {
    let target = &pipeline.target;
    let df = planned.result().clone();
    let keyed = !target.options.key.is_empty() && target.options.mode != WriteMode::Truncate;
    let key: &[String] = if keyed { &target.options.key } else { &[] };
    let task = std::sync::Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await?;
    let probe = plan.clone();
    // The number of rows, when the plan knows it without reading them (parquet metadata, a count).
    let stats = datafusion::physical_plan::statistics::StatisticsContext::new().compute(
        plan.as_ref(),
        &datafusion::physical_plan::statistics::StatisticsArgs::new(),
    );
    if let Some(total) = stats.ok().and_then(|s| s.num_rows.get_value().copied()) {
        progress.expect(total as u64);
    }
    let streams = route::route(
        datafusion::physical_plan::execute_stream_partitioned(plan, task)?,
        target.workers,
        key,
    )?;
    pause_point("before_first_batch");
    let written = workers::run_all(
        streams,
        sink.clone(),
        config,
        counters.clone(),
        progress.clone(),
        recorder,
    )
    .await;
    counters.set_source_rows(source_rows(probe.as_ref()));
    written?;
    pause_point("before_finish");
    workers::retrying("finishing the target", pipeline.run.max_retries, || {
        sink.finish()
    })
    .await
}

/// What a run writes, as a short hash: the pipeline file as written (`${VAR}`s unexpanded, so no
/// secret goes in) and the target as `describe` names it (its URL without secrets, its table).
fn run_identity(pipeline: &Pipeline, target: &str) -> String {
    let mut text = pipeline.locator.text().as_bytes().to_vec();
    // The values `${...}` were filled with: another date range is another run.
    for (name, value) in &pipeline.filled {
        text.push(0);
        text.extend_from_slice(format!("{name}={value}").as_bytes());
    }
    text.push(0);
    text.extend_from_slice(target.as_bytes());
    format!("{:016x}", ferry_connectors::hash::fnv1a(&text))
}

/// A run id that sorts by time and says when: 20261122-043012-1a2b3c4d.
fn new_run_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", Utc::now().format("%Y%m%d-%H%M%S"), &uuid[..8])
}
