//! OData as a source (Dynamics 365 / Dataverse, F&O, any OData v4 service): an entity set read as a
//! DataFusion table, typed from `$metadata`, paged by `@odata.nextLink` with
//! `Prefer: odata.maxpagesize`, each request through the application user's lane (its rate,
//! concurrency, 429 + Retry-After pauses) like every write.
//!
//! ```text
//! [sources.accounts] connection = "crm", table = "accounts"   [partitions = 4, partition_column = "accountid"]
//!   register: GET $metadata -> EntityInfo -> Arrow schema (Edm -> Arrow, lookups as their GUIDs)
//!   scan(projection, filters, limit) -> $select, $filter (what the service reads as DataFusion does),
//!                                        $top; one output partition per key range
//!   execute(partition p): GET set?$select&$filter[&range of p] as user p mod users, page by page
//! ```
//!
//! Finance & Operations sources read every company (`cross-company=true`); each record carries its
//! `dataAreaId`. Filters are pushed down as `Inexact` (DataFusion filters again), and only where the service and
//! DataFusion agree: integer and boolean comparisons, text and GUID equality (services compare text
//! without case), `IS NULL`. Partition ranges are not filters DataFusion sees: each range is the
//! service's own `ge`/`lt` over a GUID key (cut where text order and SQL Server's GUID order both
//! split evenly), an integer or a date-time column (cut between its first and last value), so every
//! record is in exactly one range in the service's own order.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::prelude::SessionContext;

use super::config::ODataEndpoint;
use super::csdl::{self, EntityInfo};
use super::encode::percent_encode;
use crate::connector::{Read, Reader};
use crate::error::{ConnectorError, Result};
use crate::http::client::Service;

/// Tries of one page before the read stops (429s and 5xx, each waited out).
const PAGE_TRIES: u32 = 8;

/// Reads an OData connection's entity sets.
#[derive(Debug)]
pub struct ODataReader {
    pub endpoint: ODataEndpoint,
}

#[async_trait]
impl Reader for ODataReader {
    async fn register(&self, ctx: &SessionContext, name: &str, read: &Read) -> Result<()> {
        let Read::Table {
            name: set,
            partitions,
        } = read
        else {
            return Err(ConnectorError::fatal(format!(
                "{} runs no SQL: an OData source reads an entity set",
                self.endpoint.url
            ))
            .with_hint("write table = \"accounts\" under the source, and the SQL as a step"));
        };
        let service = Arc::new(Service::new(
            &self.endpoint.url,
            self.endpoint.auth.clone(),
            None,
        )?);
        let xml = metadata(&service).await?;
        let info = csdl::entity(&xml, set).ok_or_else(|| {
            ConnectorError::fatal(format!(
                "{} has no entity set \"{set}\" ($metadata)",
                self.endpoint.url
            ))
            .with_hint(
                "the entity set's name is plural and lower case in Dataverse: accounts, contacts",
            )
        })?;
        let schema = arrow_schema(&info);
        let ranges = match partitions {
            None => vec![None],
            Some((n, column)) => {
                let field = schema.field_with_name(column).map_err(|_| {
                    ConnectorError::fatal(format!(
                        "{set} has no column \"{column}\" to partition by"
                    ))
                    .with_hint(format!("partition_column = \"{}\" (its key)", info.key))
                })?;
                ranges(&service, set, column, field.data_type(), *n).await?
            }
        };
        let table = EntitySetTable {
            service,
            set: set.clone(),
            schema: Arc::new(schema),
            ranges,
            page_size: self.endpoint.page_size,
            // F&O answers for the user's default company unless asked for every one; each
            // record carries its dataAreaId, to filter on in a step.
            every_company: self.endpoint.kind == super::config::ServiceKind::Fno,
        };
        ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    fn string_literal(&self, text: &str) -> String {
        format!("'{}'", text.replace('\'', "''"))
    }
}

async fn metadata(service: &Service) -> Result<String> {
    retrying(service, 0, move || async move {
        let response = service
            .send(0, || service.client.get(service.url("$metadata")))
            .await?;
        if !response.status().is_success() {
            return Err(service
                .refused(
                    0,
                    response,
                    "is the url the service root (…/api/data/v9.2)?".into(),
                )
                .await);
        }
        response
            .text()
            .await
            .map_err(|e| ConnectorError::retryable(format!("{}: $metadata: {e}", service.root)))
    })
    .await
}

/// An entity type's properties as Arrow fields: text and GUIDs (keys, lookups' `_x_value`) as text,
/// whole numbers as integers, decimals and money as decimal(38, 10), date-times as UTC
/// timestamps, dates as dates; any other Edm type (binary, enums, complex types) as its JSON text.
pub fn arrow_schema(info: &EntityInfo) -> Schema {
    Schema::new(
        info.properties
            .iter()
            .map(|(name, edm, _)| Field::new(name, edm_type(edm), name != &info.key))
            .collect::<Vec<_>>(),
    )
}

fn edm_type(edm: &str) -> DataType {
    match edm {
        "Edm.Int16" | "Edm.Int32" | "Edm.Byte" | "Edm.SByte" => DataType::Int32,
        "Edm.Int64" => DataType::Int64,
        "Edm.Boolean" => DataType::Boolean,
        "Edm.Double" | "Edm.Single" => DataType::Float64,
        "Edm.Decimal" => DataType::Decimal128(38, 10),
        "Edm.DateTimeOffset" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "Edm.Date" => DataType::Date32,
        _ => DataType::Utf8,
    }
}

/// The service's `ge`/`lt` ranges of `column` for `n` partitions (`None` bounds: open).
async fn ranges(
    service: &Service,
    set: &str,
    column: &str,
    kind: &DataType,
    n: usize,
) -> Result<Vec<Option<String>>> {
    let cuts: Vec<String> = match kind {
        // GUIDs: cut on the first hex digit of the first group (text order, the emulator's) and
        // of the last group (SQL Server's order, Dataverse's): even in both.
        DataType::Utf8 => (1..n.min(16))
            .map(|i| {
                let d = format!("{:x}", i * 16 / n.min(16));
                format!("{d}0000000-0000-0000-0000-{d}00000000000")
            })
            .collect(),
        DataType::Int32 | DataType::Int64 => {
            let (Some(low), Some(high)) = (
                edge(service, set, column, false).await?,
                edge(service, set, column, true).await?,
            ) else {
                return Ok(vec![None]);
            };
            let (low, high) = (low.as_i64().unwrap_or(0), high.as_i64().unwrap_or(0));
            let step = ((high - low) / n as i64).max(1);
            (1..n as i64)
                .map(|i| low + i * step)
                .filter(|c| *c <= high)
                .map(|c| c.to_string())
                .collect()
        }
        DataType::Timestamp(..) => {
            let (Some(low), Some(high)) = (
                edge(service, set, column, false).await?,
                edge(service, set, column, true).await?,
            ) else {
                return Ok(vec![None]);
            };
            let parse = |v: &serde_json::Value| {
                v.as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp_micros())
            };
            let (Some(low), Some(high)) = (parse(&low), parse(&high)) else {
                return Ok(vec![None]);
            };
            let step = ((high - low) / n as i64).max(1);
            (1..n as i64)
                .map(|i| low + i * step)
                .filter(|c| *c <= high)
                .filter_map(chrono::DateTime::from_timestamp_micros)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                .collect()
        }
        other => {
            return Err(ConnectorError::fatal(format!(
                "partition_column \"{column}\" of {set} is {other}: ranges are of a GUID key, a whole number or a date-time"
            ))
            .with_hint("partition_column = the set's key (a GUID), or createdon"));
        }
    };
    let mut out = Vec::with_capacity(cuts.len() + 1);
    for i in 0..=cuts.len() {
        let lower = (i > 0).then(|| format!("{column} ge {}", cuts[i - 1]));
        let upper = (i < cuts.len()).then(|| format!("{column} lt {}", cuts[i]));
        out.push(match (lower, upper) {
            (Some(l), Some(u)) => Some(format!("{l} and {u}")),
            (Some(l), None) => Some(l),
            // The first range also takes the records without a value.
            (None, Some(u)) => Some(format!("({u} or {column} eq null)")),
            (None, None) => None,
        });
    }
    Ok(out)
}

/// The first (or last) value of `column` in the set, `None` when it has none.
async fn edge(
    service: &Service,
    set: &str,
    column: &str,
    last: bool,
) -> Result<Option<serde_json::Value>> {
    let url = service.url(&format!(
        "{set}?$select={column}&$filter={column}%20ne%20null&$orderby={column}{}&$top=1",
        if last { "%20desc" } else { "" }
    ));
    let page = page(service, 0, &url, 1).await?;
    Ok(page["value"]
        .get(0)
        .and_then(|r| r.get(column))
        .filter(|v| !v.is_null())
        .cloned())
}

/// One page, through `user`'s lane, tried again while the service is busy.
async fn page(
    service: &Service,
    user: usize,
    url: &str,
    page_size: usize,
) -> Result<serde_json::Value> {
    retrying(service, user, move || async move {
        let response = service
            .send(user, || {
                service
                    .client
                    .get(url)
                    .header("prefer", format!("odata.maxpagesize={page_size}"))
                    .header("odata-version", "4.0")
            })
            .await?;
        if !response.status().is_success() {
            return Err(service
                .refused(user, response, "is the entity set's name right?".into())
                .await);
        }
        response.json::<serde_json::Value>().await.map_err(|e| {
            ConnectorError::retryable(format!("{}: a page was cut off: {e}", service.root))
        })
    })
    .await
}

/// A read (`$metadata`, a page) through `user`'s lane, tried again up to `PAGE_TRIES` times while
/// the service is busy or fails for a moment (429, 5xx, a response cut off).
async fn retrying<T, F: Future<Output = Result<T>>>(
    service: &Service,
    user: usize,
    request: impl Fn() -> F,
) -> Result<T> {
    let mut tries = 0;
    loop {
        tries += 1;
        let lane = service.lane(user);
        let slot = lane.acquire().await;
        match request().await {
            Ok(value) => {
                slot.success();
                return Ok(value);
            }
            Err(e) if e.class == crate::error::ErrorClass::Retryable && tries < PAGE_TRIES => {
                drop(slot);
                // A 429 paused the lane (acquire waits it out); anything else: back off.
                if e.cause != Some(crate::error::Cause::Throttled) {
                    tokio::time::sleep(std::time::Duration::from_millis(200 << tries.min(6))).await;
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// An entity set as a DataFusion table.
#[derive(Debug)]
struct EntitySetTable {
    service: Arc<Service>,
    set: String,
    schema: SchemaRef,
    /// One `$filter` per output partition (`None`: the whole set).
    ranges: Vec<Option<String>>,
    /// Records asked for per page.
    page_size: usize,
    /// `cross-company=true` on every request (Finance & Operations).
    every_company: bool,
}

impl EntitySetTable {
    /// `expr` as an OData `$filter`, when the service reads it as DataFusion does.
    fn filter(&self, expr: &Expr) -> Option<String> {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let (l, r) = (self.filter(left)?, self.filter(right)?);
                    let word = if *op == Operator::And { "and" } else { "or" };
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
                    let word = match op {
                        Operator::Eq => "eq",
                        Operator::NotEq => "ne",
                        Operator::Lt => "lt",
                        Operator::LtEq => "le",
                        Operator::Gt => "gt",
                        _ => "ge",
                    };
                    let value = match (field.data_type(), value) {
                        (t, v) if t.is_integer() && v.data_type().is_integer() && !v.is_null() => {
                            v.to_string()
                        }
                        (DataType::Boolean, ScalarValue::Boolean(Some(b))) => b.to_string(),
                        // Services compare text without case: only equality keeps every row
                        // DataFusion would keep.
                        (DataType::Utf8, ScalarValue::Utf8(Some(s))) if word == "eq" => {
                            if uuid::Uuid::parse_str(s).is_ok() && !s.contains('\'') {
                                s.clone()
                            } else {
                                format!("'{}'", s.replace('\'', "''"))
                            }
                        }
                        _ => return None,
                    };
                    Some(format!("{} {word} {value}", column.name))
                }
                _ => None,
            },
            Expr::IsNull(inner) => match inner.as_ref() {
                Expr::Column(c) if self.schema.field_with_name(&c.name).is_ok() => {
                    Some(format!("{} eq null", c.name))
                }
                _ => None,
            },
            _ => None,
        }
    }
}

#[async_trait]
impl TableProvider for EntitySetTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(crate::sql::scan::inexact_where(filters, |f| {
            self.filter(f).is_some()
        }))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        // A scan that needs no column (a count) still needs the records: ask for the key only.
        let select: Vec<String> = if schema.fields().is_empty() {
            vec![self.schema.field(0).name().clone()]
        } else {
            schema.fields().iter().map(|f| f.name().clone()).collect()
        };
        let pushed: Vec<String> = filters.iter().filter_map(|f| self.filter(f)).collect();
        let urls = self
            .ranges
            .iter()
            .map(|range| {
                let mut filter: Vec<String> = pushed.clone();
                filter.extend(range.clone());
                let mut url = format!("{}?$select={}", self.set, select.join(","));
                if !filter.is_empty() {
                    url.push_str("&$filter=");
                    url.push_str(&percent_encode(&filter.join(" and ")));
                }
                if let Some(n) = limit {
                    url.push_str(&format!("&$top={n}"));
                }
                if self.every_company {
                    url.push_str("&cross-company=true");
                }
                self.service.url(&url)
            })
            .collect();
        Ok(Arc::new(EntitySetExec::new(
            self.service.clone(),
            urls,
            schema,
            self.page_size,
        )))
    }
}

/// The pages of one or more ranges of an entity set, one output partition each.
#[derive(Debug)]
struct EntitySetExec {
    service: Arc<Service>,
    urls: Vec<String>,
    page_size: usize,
    properties: Arc<PlanProperties>,
}

impl EntitySetExec {
    fn new(service: Arc<Service>, urls: Vec<String>, schema: SchemaRef, page_size: usize) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(urls.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            service,
            urls,
            page_size,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for EntitySetExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "EntitySetExec: {}", self.urls.join(" | "))
    }
}

impl ExecutionPlan for EntitySetExec {
    fn name(&self) -> &str {
        "EntitySetExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return Err(DataFusionError::Internal(
                "EntitySetExec has no inputs".into(),
            ));
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let schema = self.properties.eq_properties.schema().clone();
        let first = self.urls.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("EntitySetExec has no partition {partition}"))
        })?;
        let service = self.service.clone();
        // Each range as its own application user, in turn: their limits add up.
        let user = partition % service.users();
        let page_size = self.page_size;
        let root = service.root.clone();
        let decode_schema = schema.clone();
        let pages = futures::stream::try_unfold(
            (Some(first), std::collections::HashSet::new()),
            move |(next, mut seen)| {
                let (service, schema, root) =
                    (service.clone(), decode_schema.clone(), root.clone());
                async move {
                    let Some(url) = next else {
                        return Ok(None);
                    };
                    let page = page(&service, user, &url, page_size).await?;
                    let batch = decode(&page, &schema)?;
                    let next =
                        super::sink::next_page(&root, page["@odata.nextLink"].as_str(), &mut seen)?;
                    Ok::<_, ConnectorError>(Some((batch, (next, seen))))
                }
            },
        );
        let batches = futures::StreamExt::map(pages, |b| {
            b.map_err(|e| DataFusionError::External(Box::new(e)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// A page's records as a batch of `schema` (properties it lacks are empty).
fn decode(
    page: &serde_json::Value,
    schema: &SchemaRef,
) -> Result<arrow::record_batch::RecordBatch> {
    let records = page["value"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if schema.fields().is_empty() {
        let options =
            arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(records.len()));
        return Ok(arrow::record_batch::RecordBatch::try_new_with_options(
            schema.clone(),
            vec![],
            &options,
        )?);
    }
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(records.len().max(1))
        .build_decoder()?;
    decoder.serialize(records).map_err(|e| {
        ConnectorError::fatal(format!(
            "a record of the page does not fit its $metadata types: {e}"
        ))
        .with_hint(
            "the service's answer differs from its $metadata; report it with the entity set's name",
        )
    })?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| arrow::record_batch::RecordBatch::new_empty(schema.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn only_filters_the_service_reads_as_datafusion_does_are_pushed() {
        let info = EntityInfo {
            key: "accountid".into(),
            properties: vec![
                ("accountid".into(), "Edm.Guid".into(), None),
                ("name".into(), "Edm.String".into(), None),
                ("numberofemployees".into(), "Edm.Int32".into(), None),
                ("creditonhold".into(), "Edm.Boolean".into(), None),
                ("revenue".into(), "Edm.Decimal".into(), None),
            ],
            ..Default::default()
        };
        let table = EntitySetTable {
            service: Arc::new(
                Service::new(
                    "http://127.0.0.1:1/api/data/v9.2",
                    crate::http::auth::Auth::None,
                    None,
                )
                .unwrap(),
            ),
            set: "accounts".into(),
            page_size: crate::odata::config::MAX_PAGE,
            schema: Arc::new(arrow_schema(&info)),
            ranges: vec![None],
            every_company: false,
        };
        let pushed = |e: Expr| table.filter(&e);
        assert_eq!(
            pushed(
                col("numberofemployees")
                    .gt_eq(lit(500))
                    .and(col("creditonhold").eq(lit(true)))
            ),
            Some("(numberofemployees ge 500 and creditonhold eq true)".into())
        );
        assert_eq!(
            pushed(lit(10).lt(col("numberofemployees"))),
            Some("numberofemployees gt 10".into())
        );
        assert_eq!(
            pushed(col("name").eq(lit("O'Neil"))),
            Some("name eq 'O''Neil'".into())
        );
        assert_eq!(
            pushed(col("accountid").eq(lit("5f2c0000-0000-0000-0000-000000000001"))),
            Some("accountid eq 5f2c0000-0000-0000-0000-000000000001".into())
        );
        assert_eq!(pushed(col("name").is_null()), Some("name eq null".into()));
        // Services order text without case, and decimals may round: DataFusion filters these alone.
        assert_eq!(pushed(col("name").lt(lit("m"))), None);
        assert_eq!(pushed(col("revenue").gt(lit(1.5))), None);
        assert_eq!(
            pushed(col("name").eq(lit("x")).or(col("revenue").gt(lit(1.5)))),
            None
        );
    }

    #[test]
    fn edm_types_map_to_arrow_and_records_decode() {
        let info = EntityInfo {
            name: "account".into(),
            key: "accountid".into(),
            properties: vec![
                ("accountid".into(), "Edm.Guid".into(), None),
                ("name".into(), "Edm.String".into(), Some(160)),
                ("revenue".into(), "Edm.Decimal".into(), None),
                ("numberofemployees".into(), "Edm.Int32".into(), None),
                ("createdon".into(), "Edm.DateTimeOffset".into(), None),
                ("creditonhold".into(), "Edm.Boolean".into(), None),
            ],
            ..Default::default()
        };
        let schema = Arc::new(arrow_schema(&info));
        assert!(!schema.field(0).is_nullable());
        let page = serde_json::json!({"value": [
            {"@odata.etag": "W/\"1\"", "accountid": "5f2c0000-0000-0000-0000-000000000001", "name": "Contoso",
             "revenue": 1234.5, "numberofemployees": 12, "createdon": "2026-01-02T03:04:05Z", "creditonhold": true},
            {"accountid": "5f2c0000-0000-0000-0000-000000000002", "name": null}
        ]});
        let batch = decode(&page, &schema).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let text = arrow::util::pretty::pretty_format_batches(&[batch])
            .unwrap()
            .to_string();
        assert!(text.contains("1234.5000000000"), "{text}");
        assert!(text.contains("2026-01-02T03:04:05Z"), "{text}");
    }
}
