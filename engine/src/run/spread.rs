//! A run spread over processes: `ferry run PIPELINE --spread N` leads it and `ferry worker --join
//! PIPELINE` processes, on this machine or others sharing the state dir, help it. Nothing but the
//! shared bookkeeping coordinates them:
//!
//! ```text
//! <state_dir>/locks/<pipeline>.<run>.p<k>.lock|.lease   held by the process writing partition k
//! <state_dir>/runs/<pipeline>/<run>/spread.json         the leader's: how many processes to expect
//! <state_dir>/runs/<pipeline>/<run>/arrived/<process>    each process, as it arrives
//! <state_dir>/runs/<pipeline>/<run>/p<k>.started        partition k claimed once
//! <state_dir>/runs/<pipeline>/<run>/p<k>.done           partition k written and logged
//! ```
//!
//! Processes start claiming once all N have arrived (or after half a minute with those that did),
//! each its own share first (by its rank among them), then any partition another process started
//! and let go (it died), or did not start within ten seconds.
//!
//! The leader fixes how partitions divide the rows in `spread.json`: ranges of the first key column
//! when the plan knows that column's least and greatest values (a partitioned database read,
//! parquet files), else the key's hash. With ranges, each process executes the plan filtered to each
//! partition it claimed, and a source that filters (a database's WHERE, parquet statistics) reads
//! only that share; with hashes, it executes the plan once a pass and keeps its partitions' rows.
//! Either way a key is in one partition. It writes them through its own sink (its own connections,
//! its own application users) and logs them in the shared log; then marks them done and claims more. A
//! process that dies frees its claims (its flock ends with it; a lease on object storage expires),
//! and another claims them and writes what the log does not show written. The leader begins the
//! target, waits for every partition, finishes the target and records the run, as in one process.
//! Keyed writes only (insert with a key, upsert): a partition taken over may have batches written
//! but not logged, and writing those again must be harmless.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use ferry_connectors::{ConnectorError, WriteMode};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::progress::Progress;
use super::workers::{self, Counters, WorkerConfig};
use crate::book::lock::RunLock;
use crate::book::recorder::Recorder;
use crate::book::{Book, Totals};
use crate::plan::Planned;
use crate::spec::Pipeline;

/// One spread run's shared marks.
pub struct Shared {
    store: Arc<dyn ObjectStore>,
    folder: Path,
    state_dir: String,
    lock_prefix: String,
    pub partitions: usize,
}

impl Shared {
    pub fn new(pipeline: &Pipeline, run_id: &str) -> Result<Shared, ConnectorError> {
        let state_dir = pipeline.state_dir.clone();
        let (store, root): (Arc<dyn ObjectStore>, Path) =
            if ferry_connectors::files::is_url(&state_dir) {
                ferry_connectors::files::stores::store_at(&state_dir)?
            } else {
                std::fs::create_dir_all(&state_dir).map_err(|e| {
                    ConnectorError::fatal(format!("cannot create {state_dir}: {e}"))
                })?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&state_dir)
                    .map_err(|e| ConnectorError::fatal(format!("{state_dir}: {e}")))?;
                (Arc::new(local), Path::from(""))
            };
        let name = crate::book::lock::file_name(&pipeline.name);
        Ok(Shared {
            store,
            folder: Path::from(format!("{root}/runs/{name}/{run_id}")),
            state_dir,
            lock_prefix: format!("{}.{run_id}.p", pipeline.name),
            partitions: pipeline.target.workers,
        })
    }

    fn mark(&self, name: &str) -> Path {
        Path::from(format!("{}/{name}", self.folder))
    }

    fn cannot(&self, e: object_store::Error) -> ConnectorError {
        ConnectorError::retryable(format!(
            "the spread run's marks under {}: {e}",
            self.state_dir
        ))
    }

    /// The leader says how many processes share the run, and how its partitions divide the rows.
    /// A resumed run keeps the division it was first announced with: partitions already done were
    /// cut by it.
    pub async fn announce(
        &self,
        processes: usize,
        division: Option<Division>,
    ) -> Result<Announced, ConnectorError> {
        let division = match self.announced().await? {
            Some(earlier) => earlier.division,
            None => division,
        };
        let announced = Announced {
            processes,
            partitions: self.partitions,
            division,
            snapshots: ferry_connectors::sql::postgres::shared::exported(),
        };
        let body = serde_json::to_string(&announced).expect("plain data");
        self.store
            .put(&self.mark("spread.json"), PutPayload::from(body))
            .await
            .map_err(|e| self.cannot(e))?;
        Ok(announced)
    }

    /// What the leader announced; None before it announced the run.
    pub async fn announced(&self) -> Result<Option<Announced>, ConnectorError> {
        match self.store.get(&self.mark("spread.json")).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|e| self.cannot(e))?;
                let announced: Announced = serde_json::from_slice(&bytes).map_err(|e| {
                    ConnectorError::fatal(format!(
                        "the spread run's {} cannot be read: {e}",
                        self.mark("spread.json")
                    ))
                })?;
                Ok(Some(announced))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.cannot(e)),
        }
    }

    async fn put_mark(&self, name: &str) -> Result<(), ConnectorError> {
        self.store
            .put(&self.mark(name), PutPayload::from_static(b"1"))
            .await
            .map_err(|e| self.cannot(e))?;
        Ok(())
    }

    /// The names of the marks under `folder` of the run (all of them for ""), in a fixed order
    /// every process sees alike: one listing, however many partitions.
    async fn marks(&self, folder: &str) -> Result<Vec<String>, ConnectorError> {
        use futures::TryStreamExt;
        let prefix = if folder.is_empty() {
            self.folder.clone()
        } else {
            self.mark(folder)
        };
        let mut names: Vec<String> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await
            .map_err(|e| self.cannot(e))?;
        names.sort();
        Ok(names)
    }

    /// This process is here: its name among the arrivals.
    async fn arrive(&self) -> Result<String, ConnectorError> {
        let me = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        self.put_mark(&format!("arrived/{me}")).await?;
        Ok(me)
    }

    /// The partitions marked `state` ("started": claimed once, so if its claim is free and it is
    /// not done, its writer died; "done": written and logged).
    async fn partitions_marked(&self, state: &str) -> Result<HashSet<usize>, ConnectorError> {
        let suffix = format!(".{state}");
        Ok(self
            .marks("")
            .await?
            .iter()
            .filter_map(|n| n.strip_suffix(&suffix)?.strip_prefix('p')?.parse().ok())
            .collect())
    }

    /// Partition k's claim, unless another process holds it.
    async fn claim(&self, k: usize) -> Option<RunLock> {
        RunLock::acquire(&self.state_dir, &format!("{}{k}", self.lock_prefix))
            .await
            .ok()
    }
}

/// What the leader announces in `spread.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announced {
    pub processes: usize,
    pub partitions: usize,
    /// Ranges of a key column, or None: partitions by the key's hash.
    pub division: Option<Division>,
    /// The leader's PostgreSQL snapshots, by table, for the others to read at (this leader's: a
    /// resumed run's earlier leader took its own with it).
    #[serde(default)]
    pub snapshots: std::collections::BTreeMap<String, String>,
}

/// Partitions as ranges of the first key column, cut between the least and greatest values the
/// plan's statistics know (a partitioned database read, parquet files). Each process then runs the
/// plan filtered to its partitions' ranges, and a source that filters (a database's WHERE, parquet
/// statistics) reads only those rows. Without it, partitions are the key's hashes, and every process
/// reads every row to keep its partitions'. Either way a key is in one partition, whoever computes
/// it: the cuts are fixed in `spread.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Division {
    pub column: String,
    /// The cuts between partitions, as the column's values in 64-bit integers (days for a date,
    /// its unit since 1970 for a timestamp): partition k holds `cuts[k-1] <= column < cuts[k]`.
    pub cuts: Vec<i64>,
}

impl Division {
    /// Ranges of the first key column of `planned`'s result for `partitions` partitions, if its
    /// type has integer cuts and the plan knows its least and greatest values without reading.
    pub async fn of(planned: &Planned, key: &[String], partitions: usize) -> Option<Division> {
        use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
        let column = key.first()?;
        if partitions < 2 {
            return None;
        }
        let plan = planned.result().clone().create_physical_plan().await.ok()?;
        let schema = plan.schema();
        let i = schema.index_of(column).ok()?;
        let column_type = schema.field(i).data_type();
        let stats = StatisticsContext::new()
            .compute(plan.as_ref(), &StatisticsArgs::new())
            .ok()?;
        let values = &stats.column_statistics.get(i)?;
        let lo = as_integer(values.min_value.get_value()?, column_type)? as i128;
        let hi = as_integer(values.max_value.get_value()?, column_type)? as i128;
        if hi < lo {
            return None;
        }
        let cuts = cuts(lo, hi, partitions);
        tracing::info!(
            column,
            lo,
            hi,
            partitions,
            "a spread run's partitions are ranges"
        );
        Some(Division {
            column: column.clone(),
            cuts,
        })
    }

    /// The filter of partition k, in the column's own type.
    fn filter(
        &self,
        k: usize,
        column_type: &DataType,
    ) -> datafusion::error::Result<datafusion::prelude::Expr> {
        let cuts = self
            .cuts
            .iter()
            .map(|c| from_integer(*c, column_type))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok(ferry_connectors::ranges::range_filter(
            &self.column,
            k,
            &cuts,
        ))
    }
}

/// The `n - 1` cuts of [lo, hi] into `n` ranges of equal width (equal cuts, hence empty ranges,
/// when it holds fewer than `n` values).
fn cuts(lo: i128, hi: i128, n: usize) -> Vec<i64> {
    let n = n as i128;
    (1..n)
        .map(|k| (lo + (hi - lo + 1) * k / n) as i64)
        .collect()
}

/// A value of an integer, date or timestamp column as a 64-bit integer.
fn as_integer(value: &ScalarValue, column_type: &DataType) -> Option<i64> {
    let comparable = column_type.is_integer()
        || matches!(
            column_type,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
        );
    if !comparable {
        return None;
    }
    let value = match value {
        ScalarValue::Date32(Some(days)) => ScalarValue::Int64(Some(*days as i64)),
        other => other.cast_to(&DataType::Int64).ok()?,
    };
    match value {
        ScalarValue::Int64(Some(v)) => Some(v),
        _ => None,
    }
}

/// The 64-bit integer `v` as a value of the column's type (the inverse of `as_integer`).
fn from_integer(v: i64, column_type: &DataType) -> datafusion::error::Result<ScalarValue> {
    match column_type {
        DataType::Date32 => Ok(ScalarValue::Date32(Some(v as i32))),
        other => ScalarValue::Int64(Some(v)).cast_to(other),
    }
}

/// How long processes wait for each other before they start.
const ARRIVAL: Duration = Duration::from_secs(30);

/// How long a process leaves another's unstarted partitions to it.
const GRACE: Duration = Duration::from_secs(10);

/// Why a pipeline cannot be spread, if it cannot.
pub fn refusal(pipeline: &Pipeline) -> Option<String> {
    if let Some(why) = target_refusal(pipeline) {
        return Some(why);
    }
    if pipeline.sources.iter().any(|s| s.incremental.is_some()) {
        return Some(
            "a spread run cannot have incremental sources: every process must read the same files"
                .into(),
        );
    }
    None
}

/// Why the target cannot be written by several processes at once, if it cannot (a spread run, or
/// a cluster's workers).
pub fn target_refusal(pipeline: &Pipeline) -> Option<String> {
    let options = &pipeline.target.options;
    if options.key.is_empty() || !matches!(options.mode, WriteMode::Insert | WriteMode::Upsert) {
        return Some(
            "a spread run writes with a key (mode \"upsert\", or \"insert\" with key = [...]): a partition taken over from a dead process may be written twice".into(),
        );
    }
    let connector = pipeline.target.destination.connector().name();
    if !matches!(connector, "PostgreSQL" | "MySQL" | "OData") {
        return Some(format!(
            "a spread run writes to PostgreSQL, MySQL/MariaDB or an OData service, not to {connector}"
        ));
    }
    None
}

/// What a process needs to write its share.
pub struct Share<'a> {
    pub pipeline: &'a Pipeline,
    pub planned: &'a Planned,
    pub sink: Arc<dyn ferry_connectors::Sink>,
    pub book: &'a Book,
    pub run_id: String,
    pub attempt: i32,
    pub table_name: String,
    pub counters: Arc<Counters>,
    pub progress: Progress,
}

/// Claims and writes partitions until every partition of the run is done (by this process or
/// another). Returns the partitions this process wrote.
pub async fn share(shared: &Shared, work: &Share<'_>) -> Result<Vec<usize>, ConnectorError> {
    let announced = loop {
        if let Some(announced) = shared.announced().await? {
            break announced;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let processes = announced.processes.max(1);
    let me = shared.arrive().await?;
    ferry_connectors::failpoint::pause_point("spread_arrived");
    let arrived_at = std::time::Instant::now();
    let mut arrived = shared.marks("arrived").await?;
    while arrived.len() < processes && arrived_at.elapsed() < ARRIVAL {
        tokio::time::sleep(Duration::from_millis(200)).await;
        arrived = shared.marks("arrived").await?;
    }
    // Each process's own share: the partitions k with k % count == its rank. Another's partition
    // is taken only once it was started and let go (its writer died), or when its owner has not
    // started it within the grace period (its owner never came, or died before it began).
    let count = arrived.len().max(1);
    let rank = arrived.iter().position(|a| *a == me).unwrap_or(0);
    let per_pass = shared.partitions.div_ceil(count).max(1);
    let mut mine = Vec::new();
    loop {
        let done = shared.partitions_marked("done").await?;
        if done.len() >= shared.partitions {
            return Ok(mine);
        }
        let graced = arrived_at.elapsed() > GRACE;
        let started = shared.partitions_marked("started").await?;
        let mut claimed = Vec::new();
        for k in (0..shared.partitions).filter(|k| !done.contains(k)) {
            if claimed.len() == per_pass {
                break;
            }
            let ours = k % count == rank;
            if !ours && !graced && !started.contains(&k) {
                continue;
            }
            if let Some(lock) = shared.claim(k).await {
                shared.put_mark(&format!("p{k}.started")).await?;
                claimed.push((k, lock));
            }
        }
        // Done between the listing and the claim: its writer marked it, then let it go.
        let done = shared.partitions_marked("done").await?;
        claimed.retain(|(k, _)| !done.contains(k));
        if claimed.is_empty() {
            // The rest are being written; wait, and take over any whose writer dies. Each look
            // at a lease on object storage is a few requests: look less often there.
            let pause = if ferry_connectors::files::is_url(&shared.state_dir) {
                Duration::from_secs(2)
            } else {
                Duration::from_millis(500)
            };
            tokio::time::sleep(pause).await;
            continue;
        }
        let partitions: Vec<usize> = claimed.iter().map(|(k, _)| *k).collect();
        tracing::info!(?partitions, "writing partitions of the spread run");
        let written = write_partitions(work, &partitions, announced.division.as_ref());
        let lost = async {
            let mut losses: futures::stream::FuturesUnordered<_> =
                claimed.iter().map(|(_, lock)| lock.lost()).collect();
            futures::StreamExt::next(&mut losses)
                .await
                .unwrap_or_default()
        };
        tokio::select! {
            r = written => r?,
            why = lost => return Err(ConnectorError::retryable(why)),
        }
        for (k, lock) in claimed {
            shared.put_mark(&format!("p{k}.done")).await?;
            lock.release().await;
            mine.push(k);
        }
    }
}

/// One pass: the plan executed, the claimed partitions written and logged (skipping batches any
/// process already logged for the run).
async fn write_partitions(
    work: &Share<'_>,
    partitions: &[usize],
    division: Option<&Division>,
) -> Result<(), ConnectorError> {
    let target = &work.pipeline.target;
    let done = work
        .book
        .written_batches(&work.run_id, &work.table_name)
        .await?;
    let config = WorkerConfig {
        batch_size: target.batch_size,
        max_retries: work.pipeline.run.max_retries,
        max_consecutive_failures: work.pipeline.run.max_consecutive_failures,
        table_name: work.table_name.clone(),
        pipeline: work.pipeline.name.clone(),
        run_id: work.run_id.clone(),
        attempt: work.attempt,
        done,
    };
    let df = work.planned.result().clone();
    let task = Arc::new(df.task_ctx());
    let mut plans = Vec::new();
    let mine: Vec<_> = match division {
        // Each partition its own plan, filtered to its range: a source that filters reads only it.
        Some(division) => {
            let column_type = df
                .schema()
                .field_with_unqualified_name(&division.column)?
                .data_type()
                .clone();
            let mut mine = Vec::new();
            for &k in partitions {
                let filter = division.filter(k, &column_type)?;
                let plan = df.clone().filter(filter)?.create_physical_plan().await?;
                plans.push(plan.clone());
                mine.push((
                    k,
                    datafusion::physical_plan::execute_stream(plan, task.clone())?,
                ));
            }
            mine
        }
        // Every row read, each kept by the partition its key hashes to.
        None => {
            let plan = df.create_physical_plan().await?;
            plans.push(plan.clone());
            let streams = super::route::route(
                datafusion::physical_plan::execute_stream_partitioned(plan, task)?,
                target.workers,
                &target.options.key,
            )?;
            streams
                .into_iter()
                .enumerate()
                .filter(|(k, _)| partitions.contains(k))
                .collect()
        }
    };
    let (recorder, recorded) = Recorder::start(work.book.clone());
    let written = workers::run_partitions(
        mine,
        work.sink.clone(),
        config,
        work.counters.clone(),
        work.progress.clone(),
        recorder,
    )
    .await;
    // Logged before marked done: a partition marked done is in the log.
    let recorded = recorded.close().await;
    let sources: Option<u64> = plans.iter().map(|p| super::source_rows(p.as_ref())).sum();
    work.counters.add_source_rows(sources);
    written.and(recorded)
}

/// The run's totals over every batch any process logged, and how many batches that is.
pub async fn run_totals(
    book: &Book,
    run_id: &str,
    table: &str,
) -> Result<(Totals, u64), ConnectorError> {
    let batches = book.written_batches(run_id, table).await?;
    let mut sum = Totals::default();
    for t in batches.values() {
        sum.read += t.read;
        sum.written += t.written;
        sum.skipped += t.skipped;
        sum.rejected += t.rejected;
    }
    Ok((sum, batches.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_share_the_values_out_evenly_and_repeat_when_there_are_too_few() {
        assert_eq!(cuts(1, 30_000, 4), vec![7_501, 15_001, 22_501]);
        assert_eq!(cuts(1, 2, 4), vec![1, 2, 2]);
        assert_eq!(
            cuts(i64::MIN as i128, i64::MAX as i128, 2),
            vec![0],
            "the whole range of i64 without overflow"
        );
    }

    #[test]
    fn dates_and_timestamps_cut_in_their_own_units() {
        let day = ScalarValue::Date32(Some(19_000));
        assert_eq!(as_integer(&day, &DataType::Date32), Some(19_000));
        assert_eq!(from_integer(19_000, &DataType::Date32).unwrap(), day);
        let unit = DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into()));
        let instant =
            ScalarValue::TimestampMillisecond(Some(1_700_000_000_000), Some("UTC".into()));
        assert_eq!(as_integer(&instant, &unit), Some(1_700_000_000_000));
        assert_eq!(from_integer(1_700_000_000_000, &unit).unwrap(), instant);
        // Text keys are cut by their hashes instead.
        assert_eq!(
            as_integer(&ScalarValue::Utf8(Some("a".into())), &DataType::Utf8),
            None
        );
    }
}
