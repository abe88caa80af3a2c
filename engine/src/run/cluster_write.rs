//! A run's writes done by the `ferry worker`s of its `[run] cluster`: the step's plan ends in a
//! [`WriteExec`] that wants its input partitioned by the target's key, so the distributed engine
//! shuffles the rows by key to the workers' tasks, and each task writes its partitions through its
//! own sink (its own connections, its own application users: the pipeline's `${VAR}`s filled from
//! the worker's environment) and logs its batches in the run's shared books. The running `ferry
//! run` gets the rows each partition wrote, finishes the target and takes the run's totals from
//! the log, as a spread run's leader does.
//!
//! ```text
//! sources ─▶ step ─▶ RepartitionExec(hash key) ═ shuffle ═▶ WriteExec (worker tasks) ═ coalesce ═▶ ferry run
//!                                                             │ Sink::write, log rows
//!                                                             ▼
//!                                                   target + shared state_dir
//! ```
//!
//! A task that dies fails the query (the engine does not retry a stage's task): the run fails, and
//! the next run resumes it, skipping the batches the log shows written. Keyed insert/upsert only, as
//! for a spread run: a batch written but not logged is written again harmlessly.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::progress::Progress;
use super::workers::{self, Counters, WorkerConfig};
use crate::book::Book;
use crate::book::recorder::Recorder;
use crate::spec::Pipeline;

/// What a worker needs to write a run's partitions: the pipeline file as written (its `${VAR}`s
/// are filled from the worker's own environment: no secret travels with the plan) and the run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Serialize, Deserialize)]
pub struct WriteJob {
    /// Where the file is (relative paths in it are resolved from there).
    pub file: String,
    pub text: String,
    pub run_id: String,
    pub attempt: i32,
    pub table_name: String,
    pub key: Vec<String>,
}

/// What each partition's writer returns: the rows it wrote (the run's process checks the log
/// holds as many).
fn counts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "rows_written",
        DataType::Int64,
        false,
    )]))
}

/// The logical node: the result of the steps, written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WriteNode {
    input: LogicalPlan,
    job: WriteJob,
    schema: DFSchemaRef,
}

impl WriteNode {
    /// `input` written by the cluster's workers as `job` says.
    pub fn plan(input: LogicalPlan, job: WriteJob) -> Result<LogicalPlan> {
        let schema = Arc::new(DFSchema::try_from(counts_schema().as_ref().clone())?);
        let node = WriteNode { input, job, schema };
        Ok(LogicalPlan::Extension(
            datafusion::logical_expr::Extension {
                node: Arc::new(node),
            },
        ))
    }
}

impl PartialOrd for WriteNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(std::cmp::Ordering::Equal) => self.job.partial_cmp(&other.job),
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for WriteNode {
    fn name(&self) -> &str {
        "FerryWrite"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FerryWrite: {}", self.job.table_name)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        Ok(WriteNode {
            input: inputs.swap_remove(0),
            job: self.job.clone(),
            schema: self.schema.clone(),
        })
    }
}

/// Plans [`WriteNode`] as [`WriteExec`]; everything else as DataFusion does.
#[derive(Debug)]
pub struct WritePlanner;

#[async_trait]
impl ExtensionPlanner for WritePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn datafusion::logical_expr::UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(write) = node.as_any().downcast_ref::<WriteNode>() else {
            return Ok(None);
        };
        Ok(Some(Arc::new(WriteExec::new(
            physical_inputs[0].clone(),
            write.job.clone(),
        )?)))
    }
}

/// The query planner of a cluster's session: DataFusion's, with [`WritePlanner`].
#[derive(Debug)]
pub struct WritingQueryPlanner;

#[async_trait]
impl QueryPlanner for WritingQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(WritePlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

/// `builder` with the query planner that plans a cluster's writes.
pub fn with_write_planner(builder: SessionStateBuilder) -> SessionStateBuilder {
    builder.with_query_planner(Arc::new(WritingQueryPlanner))
}

/// Writes each partition of its input (partitioned by the key) through a sink of its own process,
/// returning a row of counts per partition.
pub struct WriteExec {
    input: Arc<dyn ExecutionPlan>,
    job: WriteJob,
    properties: Arc<PlanProperties>,
    /// The sink, the books and the batches logged before, made once per process on first use.
    writer: Arc<OnceCell<Writer>>,
}

impl fmt::Debug for WriteExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriteExec({})", self.job.table_name)
    }
}

impl Hash for WriteExec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.job.hash(state)
    }
}

impl WriteExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, job: WriteJob) -> Result<Self> {
        let partitions = input.properties().partitioning.partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(counts_schema()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            input,
            job,
            properties: Arc::new(properties),
            writer: Arc::new(OnceCell::new()),
        })
    }

    pub fn job(&self) -> &WriteJob {
        &self.job
    }

    /// The key's columns in the input, for the hash partitioning the writes want.
    fn key_exprs(&self) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
        let schema = self.input.schema();
        self.job
            .key
            .iter()
            .map(|k| {
                let i = schema.index_of(k)?;
                Ok(Arc::new(Column::new(k, i)) as Arc<dyn PhysicalExpr>)
            })
            .collect()
    }
}

impl DisplayAs for WriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WriteExec: {} by {:?}",
            self.job.table_name, self.job.key
        )
    }
}

impl ExecutionPlan for WriteExec {
    fn name(&self) -> &str {
        "WriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        match self.key_exprs() {
            Ok(exprs) => vec![Distribution::KeyPartitioned(exprs)],
            Err(_) => vec![Distribution::UnspecifiedDistribution],
        }
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(WriteExec::new(
            children.swap_remove(0),
            self.job.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        // A partition's number in the whole run: this task's partitions follow the earlier tasks'.
        let partitions = self.input.properties().partitioning.partition_count();
        let global = task_index(&context) * partitions + partition;
        let input = self.input.execute(partition, context)?;
        let writer = self.writer.clone();
        let job = self.job.clone();
        let schema = self.input.schema();
        let counts = async move {
            let writer = writer
                .get_or_try_init(|| Writer::start(job, schema))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let written = writer
                .write(global, input)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            RecordBatch::try_new(
                counts_schema(),
                vec![Arc::new(Int64Array::from(vec![written as i64]))],
            )
            .map_err(DataFusionError::from)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            counts_schema(),
            futures::stream::once(counts),
        )))
    }
}

/// The index of the task executing a plan among its stage's tasks; 0 in one process.
fn task_index(context: &Arc<TaskContext>) -> usize {
    #[cfg(feature = "distributed")]
    {
        datafusion_distributed::DistributedTaskContext::from_ctx(context).task_index
    }
    #[cfg(not(feature = "distributed"))]
    {
        let _ = context;
        0
    }
}

/// One process's writer of a run: its sink, begun, and the run's books.
struct Writer {
    pipeline: Pipeline,
    sink: Arc<dyn ferry_connectors::Sink>,
    book: Book,
    job: WriteJob,
}

impl Writer {
    async fn start(
        job: WriteJob,
        schema: SchemaRef,
    ) -> Result<Writer, ferry_connectors::ConnectorError> {
        use ferry_connectors::ConnectorError;
        let pipeline = Pipeline::parse(Path::new(&job.file), &job.text)
            .map_err(|e| ConnectorError::fatal(format!("the run's pipeline file: {e}")))?;
        let book = Book::open(&pipeline.state_dir, &pipeline.name).await?;
        let sink = super::sink_for(&pipeline).map_err(|e| ConnectorError::fatal(e.to_string()))?;
        let attempt = ferry_connectors::Attempt {
            run_id: job.run_id.clone(),
            resume: true,
        };
        workers::retrying("preparing the target", pipeline.run.max_retries, || {
            sink.begin(schema.clone(), &attempt)
        })
        .await?;
        Ok(Writer {
            pipeline,
            sink,
            book,
            job,
        })
    }

    /// Writes one partition's rows, logging its batches; the rows written.
    async fn write(
        &self,
        partition: usize,
        input: SendableRecordBatchStream,
    ) -> Result<u64, ferry_connectors::ConnectorError> {
        let done = self
            .book
            .written_batches(&self.job.run_id, &self.job.table_name)
            .await?;
        let config = WorkerConfig {
            batch_size: self.pipeline.target.batch_size,
            max_retries: self.pipeline.run.max_retries,
            max_consecutive_failures: self.pipeline.run.max_consecutive_failures,
            table_name: self.job.table_name.clone(),
            pipeline: self.pipeline.name.clone(),
            run_id: self.job.run_id.clone(),
            attempt: self.job.attempt,
            done,
        };
        let counters = Arc::new(Counters::default());
        let (recorder, recorded) = Recorder::start(self.book.clone());
        let written = workers::run_partitions(
            vec![(partition, input)],
            self.sink.clone(),
            config,
            counters.clone(),
            Progress::new(false, &self.pipeline.name),
            recorder,
        )
        .await;
        let recorded = recorded.close().await;
        written.and(recorded)?;
        Ok(counters.written())
    }
}

/// Writes the run's result on the cluster's workers; the run's totals from the log (and its
/// batches). Fails when the workers logged fewer rows than they wrote here: their books are not this
/// run's (a `state_dir` each machine resolves to a folder of its own).
pub async fn write_on_cluster(
    pipeline: &Pipeline,
    planned: &crate::plan::Planned,
    book: &Book,
    run_id: &str,
    attempt: i32,
    table_name: &str,
) -> Result<(crate::book::Totals, u64), ferry_connectors::ConnectorError> {
    let file = pipeline.locator.file();
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let job = WriteJob {
        file: file.display().to_string(),
        text: pipeline.locator.text().to_string(),
        run_id: run_id.to_string(),
        attempt,
        table_name: table_name.to_string(),
        key: pipeline.target.options.key.clone(),
    };
    let (state, logical) = planned.result().clone().into_parts();
    let written = datafusion::prelude::DataFrame::new(state, WriteNode::plan(logical, job)?);
    let mut reported = 0u64;
    for batch in written.collect().await? {
        let column = batch
            .column_by_name("rows_written")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
        reported += column.map_or(0, |c| c.iter().flatten().sum::<i64>() as u64);
    }
    let totals = super::spread::run_totals(book, run_id, table_name).await?;
    let logged = totals.0.written + totals.0.skipped;
    if logged < reported {
        return Err(ferry_connectors::ConnectorError::fatal(format!(
            "the cluster's workers wrote {reported} rows but this run's log holds {logged}: they keep their books elsewhere"
        ))
        .with_hint(
            "give the pipeline a state_dir every worker reaches as the same place: object storage (s3://, az://, gs://) or a shared folder",
        ));
    }
    Ok(totals)
}
