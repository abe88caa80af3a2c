//! A database table or query as a DataFusion table, read by Ferry's own drivers (PostgreSQL's binary
//! `COPY ... TO STDOUT`, MySQL's text protocol) straight into Arrow builders.
//!
//! ```text
//! ScanTable   columns (Arrow field + the SQL that selects it), FROM (a table or "(query) AS q")
//!   scan(projection, filters, limit)
//!     -> SELECT <projected columns> FROM <from> [WHERE <pushable filters>] [LIMIT n]
//! ScanExec    one partition: the driver's stream of batches for that SELECT
//! ```
//!
//! Filters are pushed down only where the database and DataFusion agree on their meaning
//! (comparisons of integer, date, timestamp and boolean columns with literals, IS [NOT] NULL, AND,
//! OR), and always as `Inexact`: DataFusion filters the rows again, so a filter the database reads
//! differently can never lose a row. That is what makes a partitioned read one query per range.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

/// Rows per Arrow batch a driver builds.
pub const BATCH_ROWS: usize = 8192;

/// One column of a scanned table: its Arrow field and the SQL expression that selects it (the
/// quoted name, or a cast of it to a type the driver reads).
#[derive(Debug, Clone)]
pub struct ScanColumn {
    pub field: Field,
    pub select: String,
}

/// A database driver's side of a scan: runs one SELECT and streams its rows as batches of `schema`.
pub trait ScanSource: std::fmt::Debug + Send + Sync + 'static {
    fn stream(&self, sql: String, schema: SchemaRef) -> SendableRecordBatchStream;

    /// `name` quoted as an identifier in this database's SQL.
    fn quote(&self, name: &str) -> String;

    /// A UTC timestamp literal (`wall` is `YYYY-MM-DD HH:MM:SS.ffffff`) compared with a column that
    /// holds instants; PostgreSQL's form by default (MySQL's sessions run in UTC and take no zone).
    fn instant_literal(&self, wall: &str) -> String {
        format!("TIMESTAMP '{wall}+00:00'")
    }
}

/// A table or query of a database, read by a [`ScanSource`].
#[derive(Debug)]
pub struct ScanTable {
    source: Arc<dyn ScanSource>,
    from: String,
    columns: Vec<ScanColumn>,
    schema: SchemaRef,
    /// A condition in the database's SQL every scan adds to its WHERE (a range of blocks).
    condition: Option<String>,
}

impl ScanTable {
    /// `from` is what follows FROM: a quoted table name or `(query) AS alias`.
    pub fn new(source: Arc<dyn ScanSource>, from: String, columns: Vec<ScanColumn>) -> Self {
        let schema = Arc::new(Schema::new(
            columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>(),
        ));
        Self {
            source,
            from,
            columns,
            schema,
            condition: None,
        }
    }

    /// The same table, restricted to the rows `condition` (in the database's SQL) selects.
    pub fn restricted(&self, condition: String) -> Self {
        Self {
            source: self.source.clone(),
            from: self.from.clone(),
            columns: self.columns.clone(),
            schema: self.schema.clone(),
            condition: Some(condition),
        }
    }

    /// The SELECT a scan of these columns, filters and limit runs.
    fn select(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> String {
        let all: Vec<usize> = (0..self.columns.len()).collect();
        let picked = projection.unwrap_or(&all);
        let list = if picked.is_empty() {
            // COUNT(*)-shaped scans need rows, not columns.
            "1".to_string()
        } else {
            picked
                .iter()
                .map(|&i| self.columns[i].select.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!("SELECT {list} FROM {}", self.from);
        let pushed: Vec<String> = (self.condition.iter().cloned())
            .chain(filters.iter().filter_map(|f| self.filter_sql(f)))
            .collect();
        if !pushed.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&pushed.join(" AND "));
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }

    /// `expr` in the database's SQL, when it is one the database reads as DataFusion does.
    fn filter_sql(&self, expr: &Expr) -> Option<String> {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let (l, r) = (self.filter_sql(left)?, self.filter_sql(right)?);
                    let word = if *op == Operator::And { "AND" } else { "OR" };
                    Some(format!("({l} {word} {r})"))
                }
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq => {
                    let (column, value, op) = match (left.as_ref(), right.as_ref()) {
                        (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
                        (Expr::Literal(v, _), Expr::Column(c)) => (c, v, op.swap()?),
                        _ => return None,
                    };
                    let field = self.schema.field_with_name(&column.name).ok()?;
                    let value = literal_sql(self.source.as_ref(), field.data_type(), value)?;
                    Some(format!("{} {op} {value}", self.source.quote(&column.name)))
                }
                _ => None,
            },
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let Expr::Column(c) = inner.as_ref() else {
                    return None;
                };
                self.schema.field_with_name(&c.name).ok()?;
                let test = if matches!(expr, Expr::IsNull(_)) {
                    "IS NULL"
                } else {
                    "IS NOT NULL"
                };
                Some(format!("{} {test}", self.source.quote(&c.name)))
            }
            _ => None,
        }
    }
}

/// A literal compared with a column of type `column`, in SQL both databases read alike; `None`
/// when the pair is not one pushed down (text collations, float NaN and decimal scales differ).
fn literal_sql(source: &dyn ScanSource, column: &DataType, value: &ScalarValue) -> Option<String> {
    if value.is_null() || value.data_type() != *column {
        return None;
    }
    let text = value.to_string();
    Some(match column {
        t if t.is_integer() => text,
        DataType::Boolean => text.to_uppercase(),
        DataType::Date32 => format!("DATE '{text}'"),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let ScalarValue::TimestampMicrosecond(Some(us), _) = value else {
                return None;
            };
            let t = chrono::DateTime::from_timestamp_micros(*us)?.naive_utc();
            let t = t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            match tz {
                Some(_) => source.instant_literal(&t),
                None => format!("TIMESTAMP '{t}'"),
            }
        }
        _ => return None,
    })
}

#[async_trait]
impl TableProvider for ScanTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(inexact_where(filters, |f| self.filter_sql(f).is_some()))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let sql = self.select(projection, filters, limit);
        Ok(Arc::new(ScanExec::new(self.source.clone(), sql, schema)))
    }
}

/// One SELECT run by a driver, as a one-partition execution plan.
#[derive(Debug)]
pub struct ScanExec {
    source: Arc<dyn ScanSource>,
    sql: String,
    properties: Arc<PlanProperties>,
    /// Rows it produced: a run reports the rows its sources gave.
    metrics: ExecutionPlanMetricsSet,
}

impl ScanExec {
    fn new(source: Arc<dyn ScanSource>, sql: String, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            source,
            sql,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for ScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "ScanExec: {}", self.sql)
    }
}

impl ExecutionPlan for ScanExec {
    fn name(&self) -> &str {
        "ScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return Err(DataFusionError::Internal("ScanExec has no inputs".into()));
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "ScanExec has one partition, not {partition}"
            )));
        }
        let schema = self.properties.eq_properties.schema().clone();
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let counted = self
            .source
            .stream(self.sql.clone(), schema.clone())
            .inspect(move |b| {
                if let Ok(b) = b {
                    rows.add(b.num_rows());
                }
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, counted)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// How a source that translates some filters answers DataFusion: `Inexact` for those it sends to
/// the database or service (DataFusion filters the rows again, so a filter read differently there
/// never loses a row), `Unsupported` for the rest.
pub fn inexact_where(
    filters: &[&Expr],
    sent: impl Fn(&Expr) -> bool,
) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|f| match sent(f) {
            true => TableProviderFilterPushDown::Inexact,
            false => TableProviderFilterPushDown::Unsupported,
        })
        .collect()
}

/// A value that does not fit the Arrow type its column was given, as the error a read stops with.
pub fn misfit(column: &str, value: &str, why: &str, hint: &str) -> DataFusionError {
    DataFusionError::External(Box::new(
        crate::error::ConnectorError::fatal(format!(
            "column \"{column}\" holds {value}, which {why}"
        ))
        .with_hint(hint.to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    #[derive(Debug)]
    struct Quoting;

    impl ScanSource for Quoting {
        fn stream(&self, _sql: String, _schema: SchemaRef) -> SendableRecordBatchStream {
            unreachable!("not run")
        }
        fn quote(&self, name: &str) -> String {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }

    fn table() -> ScanTable {
        let column = |name: &str, ty: DataType| ScanColumn {
            field: Field::new(name, ty, true),
            select: format!("\"{name}\""),
        };
        ScanTable::new(
            Arc::new(Quoting),
            "\"t\"".into(),
            vec![
                column("id", DataType::Int64),
                column("name", DataType::Utf8),
                column(
                    "at",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                ),
            ],
        )
    }

    #[test]
    fn integer_and_timestamp_ranges_are_pushed_down_text_is_not() {
        let t = table();
        let range = col("id").gt_eq(lit(10i64)).and(col("id").lt(lit(20i64)));
        let at = col("at").lt(lit(ScalarValue::TimestampMicrosecond(
            Some(-1),
            Some("UTC".into()),
        )));
        let text = col("name").eq(lit("x"));
        let sql = t.select(
            Some(&vec![0, 1]),
            &[range, at, text, col("id").is_null()],
            Some(5),
        );
        assert_eq!(
            sql,
            "SELECT \"id\", \"name\" FROM \"t\" WHERE (\"id\" >= 10 AND \"id\" < 20) AND \
             \"at\" < TIMESTAMP '1969-12-31 23:59:59.999999+00:00' AND \"id\" IS NULL LIMIT 5"
        );
    }

    #[test]
    fn a_literal_of_another_type_is_left_to_datafusion() {
        let t = table();
        // An Int32 literal against an Int64 column would compare after a cast DataFusion adds.
        assert!(t.filter_sql(&col("id").eq(lit(1i32))).is_none());
        assert!(
            t.filter_sql(&col("id").eq(lit(1i64)).or(col("name").eq(lit("a"))))
                .is_none()
        );
    }
}
