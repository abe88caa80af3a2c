//! The count check of a partitioned read: the table's rows, counted by the database before the read,
//! against the rows the partitions returned. A partition bound that misses rows would otherwise be
//! a silent loss (and, for a sync, a delete of rows the source still has); with the check, the read
//! fails before the target finishes. Where the count and every range read one snapshot
//! (PostgreSQL), the rows must match it exactly: a row more is a row read twice.
//!
//! ```text
//! CheckedTable::scan(no filter, no limit) ─▶ CountedExec(partitions' union)
//!      each partition stream counts its rows; the last one to end compares the sum with the count
//! CheckedTable::scan(filters or a limit)  ─▶ the union as it is (a filtered read has no count to meet)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ScalarValue, Statistics};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

/// A partitioned read whose whole reads are checked against the table's count.
#[derive(Debug)]
pub struct CheckedTable {
    /// The union of the partitions' filtered scans.
    pub union: Arc<dyn TableProvider>,
    /// The table's rows, counted before the read.
    pub expected: u64,
    /// The table, for the error.
    pub table: String,
    /// The count and every range read one snapshot (PostgreSQL): any difference is a range that
    /// missed rows or read some twice, never a change to the table.
    pub exact: bool,
    /// The partition column's least and greatest values, when the ranges are of a column.
    pub extent: Option<Extent>,
}

/// A column's least and greatest values when the read began, of the column's own type: the plan's
/// statistics say them (a spread run cuts its partitions between them).
#[derive(Debug, Clone)]
pub struct Extent {
    pub column: String,
    pub min: ScalarValue,
    pub max: ScalarValue,
}

#[async_trait]
impl TableProvider for CheckedTable {
    fn schema(&self) -> SchemaRef {
        self.union.schema()
    }

    fn table_type(&self) -> TableType {
        self.union.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.union.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.union.scan(state, projection, filters, limit).await?;
        if !filters.is_empty() || limit.is_some() {
            return Ok(plan);
        }
        Ok(Arc::new(
            CountedExec::new(plan, self.expected, self.table.clone(), self.exact)
                .with_extent(self.extent.clone()),
        ))
    }
}

/// Passes its input through, counting rows; when every partition has ended, fails if fewer rows
/// came than expected.
#[derive(Debug)]
pub struct CountedExec {
    input: Arc<dyn ExecutionPlan>,
    tally: Arc<Tally>,
    extent: Option<Extent>,
}

/// What the partitions of one execution share: the rows read, the partitions ended, and what the
/// rows must add up to.
#[derive(Debug)]
struct Tally {
    expected: u64,
    table: String,
    exact: bool,
    read: AtomicU64,
    ended: AtomicUsize,
}

impl CountedExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, expected: u64, table: String, exact: bool) -> Self {
        let tally = Tally {
            expected,
            table,
            exact,
            read: AtomicU64::new(0),
            ended: AtomicUsize::new(0),
        };
        Self {
            input,
            tally: Arc::new(tally),
            extent: None,
        }
    }

    pub fn with_extent(mut self, extent: Option<Extent>) -> Self {
        self.extent = extent;
        self
    }
}

impl Tally {
    /// A partition ended: the last one to end says whether the rows add up (an error when fewer
    /// came than the table held).
    fn partition_ended(&self, partitions: usize) -> Option<DataFusionError> {
        if self.ended.fetch_add(1, Ordering::AcqRel) + 1 < partitions {
            return None;
        }
        let read = self.read.load(Ordering::Acquire);
        if self.exact && read != self.expected {
            let what = match read < self.expected {
                true => "a range missed rows",
                false => "a range read rows twice",
            };
            return Some(DataFusionError::Execution(format!(
                "the partitioned read of {} returned {read} rows, but the table held {} in the \
                 snapshot every range read: {what}; nothing more is written (read it without \
                 partitions, and report this with the table's partition_column and its type)",
                self.table, self.expected
            )));
        }
        if read < self.expected {
            return Some(DataFusionError::Execution(format!(
                "the partitioned read of {} returned {read} rows, but the table held {} when the \
                 read began: either rows were deleted from it during the read, or a partition \
                 missed rows; nothing more is written (run again, or read it without partitions)",
                self.table, self.expected
            )));
        }
        if read > self.expected {
            tracing::warn!(
                table = %self.table,
                read,
                counted = self.expected,
                "the partitioned read returned more rows than the table held when it began: rows were added during the read"
            );
        }
        None
    }
}

impl DisplayAs for CountedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "CountedExec: expected={}", self.tally.expected)
    }
}

impl ExecutionPlan for CountedExec {
    fn name(&self) -> &str {
        "CountedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "CountedExec has one input".into(),
            ));
        }
        Ok(Arc::new(
            Self::new(
                children.swap_remove(0),
                self.tally.expected,
                self.tally.table.clone(),
                self.tally.exact,
            )
            .with_extent(self.extent.clone()),
        ))
    }

    /// The rows counted before the read (exact when counted in the read's snapshot) and the
    /// partition column's least and greatest values (inexact: rows may come and go).
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let schema = self.schema();
        let mut stats = Statistics::new_unknown(&schema);
        if args.partition().is_some() {
            return Ok(Arc::new(stats));
        }
        stats.num_rows = match self.tally.exact {
            true => Precision::Exact(self.tally.expected as usize),
            false => Precision::Inexact(self.tally.expected as usize),
        };
        if let Some(extent) = &self.extent
            && let Ok(i) = schema.index_of(&extent.column)
        {
            stats.column_statistics[i].min_value = Precision::Inexact(extent.min.clone());
            stats.column_statistics[i].max_value = Precision::Inexact(extent.max.clone());
        }
        Ok(Arc::new(stats))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let partitions = self.input.properties().partitioning.partition_count();
        let counting = self.tally.clone();
        let counted = input.inspect(move |batch| {
            if let Ok(b) = batch {
                counting
                    .read
                    .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
            }
        });
        // After the input's last batch: the last partition to end checks the sum.
        let tally = self.tally.clone();
        let end = futures::stream::once(async move { tally.partition_ended(partitions).map(Err) })
            .filter_map(|r| async move { r });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            counted.chain(end),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    /// Two partitions of 3 and 2 rows, read whole through a check that expects `expected` (counted
    /// in the ranges' own snapshot when `exact`).
    async fn read_whole(expected: u64, exact: bool) -> Result<usize> {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = |ids: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids))]).unwrap()
        };
        let union = MemTable::try_new(
            schema.clone(),
            vec![vec![batch(vec![1, 2, 3])], vec![batch(vec![4, 5])]],
        )?;
        let ctx = SessionContext::new();
        ctx.register_table(
            "t",
            Arc::new(CheckedTable {
                union: Arc::new(union),
                expected,
                table: "public.t".into(),
                exact,
                extent: None,
            }),
        )?;
        let batches = ctx.sql("SELECT * FROM t").await?.collect().await?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn a_whole_read_that_meets_the_count_passes() {
        assert_eq!(read_whole(5, false).await.unwrap(), 5);
        assert_eq!(read_whole(5, true).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_read_that_returns_fewer_rows_than_the_table_held_fails() {
        let e = read_whole(7, false).await.unwrap_err().to_string();
        assert!(
            e.contains("the partitioned read of public.t returned 5 rows, but the table held 7"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn more_rows_than_a_table_held_pass_unless_counted_in_the_same_snapshot() {
        // Rows added during a read whose ranges each read at their own start.
        assert_eq!(read_whole(4, false).await.unwrap(), 5);
        // In one snapshot, a row more is a row read twice.
        let e = read_whole(4, true).await.unwrap_err().to_string();
        assert!(
            e.contains(
                "the partitioned read of public.t returned 5 rows, but the table held 4 in the \
                 snapshot every range read: a range read rows twice"
            ),
            "{e}"
        );
        let e = read_whole(6, true).await.unwrap_err().to_string();
        assert!(
            e.contains("held 6 in the snapshot every range read: a range missed rows"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_filtered_read_is_not_held_to_the_count() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let rows =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
                .unwrap();
        let ctx = SessionContext::new();
        ctx.register_table(
            "t",
            Arc::new(CheckedTable {
                union: Arc::new(MemTable::try_new(schema, vec![vec![rows]]).unwrap()),
                expected: 9,
                table: "t".into(),
                exact: true,
                extent: None,
            }),
        )
        .unwrap();
        let n: usize = ctx
            .sql("SELECT * FROM t LIMIT 1")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_whole_read_says_its_count_and_its_columns_extent() {
        use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
        ]));
        let ctx = SessionContext::new();
        ctx.register_table(
            "t",
            Arc::new(CheckedTable {
                union: Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap()),
                expected: 300,
                table: "t".into(),
                exact: true,
                extent: Some(Extent {
                    column: "id".into(),
                    min: ScalarValue::Int64(Some(-5)),
                    max: ScalarValue::Int64(Some(3000)),
                }),
            }),
        )
        .unwrap();
        let plan = ctx
            .sql("SELECT id FROM t")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let stats = StatisticsContext::new()
            .compute(plan.as_ref(), &StatisticsArgs::new())
            .unwrap();
        assert_eq!(stats.num_rows, Precision::Exact(300));
        let id = &stats.column_statistics[0];
        assert_eq!(
            id.min_value,
            Precision::Inexact(ScalarValue::Int64(Some(-5)))
        );
        assert_eq!(
            id.max_value,
            Precision::Inexact(ScalarValue::Int64(Some(3000)))
        );
    }
}
