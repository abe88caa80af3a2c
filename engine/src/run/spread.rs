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
//! Each process executes the plan, keeps the rows of the partitions it claimed (a key always hashes
//! to the same partition), writes them through its own sink (its own connections, its own
//! application users) and logs them in the shared log; then marks them done and claims more. A
//! process that dies frees its claims (its flock ends with it; a lease on object storage expires),
//! and another claims them and writes what the log does not show written. The leader begins the
//! target, waits for every partition, finishes the target and records the run, as in one process.
//! Keyed writes only (insert with a key, upsert): a partition taken over may have batches written
//! but not logged, and writing those again must be harmless.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_connectors::{ConnectorError, WriteMode};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

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

    /// The leader says how many processes share the run.
    pub async fn announce(&self, processes: usize) -> Result<(), ConnectorError> {
        let body = serde_json::json!({ "processes": processes, "partitions": self.partitions });
        self.store
            .put(
                &self.mark("spread.json"),
                PutPayload::from(body.to_string()),
            )
            .await
            .map_err(|e| self.cannot(e))?;
        Ok(())
    }

    /// How many processes the leader expects; None before it announced the run.
    pub async fn processes(&self) -> Result<Option<usize>, ConnectorError> {
        match self.store.get(&self.mark("spread.json")).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|e| self.cannot(e))?;
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                Ok(Some(v["processes"].as_u64().unwrap_or(1).max(1) as usize))
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

/// How long processes wait for each other before they start.
const ARRIVAL: Duration = Duration::from_secs(30);

/// How long a process leaves another's unstarted partitions to it.
const GRACE: Duration = Duration::from_secs(10);

/// Why a pipeline cannot be spread, if it cannot.
pub fn refusal(pipeline: &Pipeline) -> Option<String> {
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
    if pipeline.sources.iter().any(|s| s.incremental.is_some()) {
        return Some(
            "a spread run cannot have incremental sources: every process must read the same files"
                .into(),
        );
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
    let processes = loop {
        if let Some(n) = shared.processes().await? {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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
        let written = write_partitions(work, &partitions);
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
async fn write_partitions(work: &Share<'_>, partitions: &[usize]) -> Result<(), ConnectorError> {
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
    let plan = df.create_physical_plan().await?;
    let streams = super::route::route(
        datafusion::physical_plan::execute_stream_partitioned(plan, task)?,
        target.workers,
        &target.options.key,
    )?;
    let mine: Vec<_> = streams
        .into_iter()
        .enumerate()
        .filter(|(k, _)| partitions.contains(k))
        .collect();
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
    written.and(recorded)
}

/// The run's totals over every batch any process logged.
pub async fn run_totals(book: &Book, run_id: &str, table: &str) -> Result<Totals, ConnectorError> {
    let batches = book.written_batches(run_id, table).await?;
    let mut sum = Totals::default();
    for t in batches.values() {
        sum.read += t.read;
        sum.written += t.written;
        sum.skipped += t.skipped;
        sum.rejected += t.rejected;
    }
    Ok(sum)
}
