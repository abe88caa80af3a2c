//! PostgreSQL and MySQL tables and queries as DataFusion tables, read by Ferry's own drivers
//! (`scan.rs`; `postgres/read.rs`, `mysql/read.rs`), which push projections and safe filters down
//! as SQL.
//!
//! ```text
//! table = "s.t"                 ScanTable: SELECT <needed columns> FROM s.t WHERE <pushed filters>
//! table + partitions = N        N filtered scans of the table over ranges of partition_column,
//!                               UNION ALL: N connections read in parallel; a whole read must
//!                               return the COUNT(*) taken with the bounds (`counted.rs`); on
//!                               PostgreSQL all of them read the snapshot that COUNT(*) saw
//! query = "SELECT ..."          ScanTable over "(query) AS ferry_query": its columns are the
//! (and steps with connection)   server's description of the prepared query, even with no rows
//! ```

use std::sync::Arc;

use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::prelude::{DataFrame, SessionContext};

use crate::connector::{Read, Reader};
use crate::error::{ConnectorError, Result};
use crate::sql::db::DbConfig;
use crate::sql::ident::TableName;
use crate::sql::postgres::read::Snapshot;
use crate::sql::scan::ScanTable;

/// Which server a [`ServerReader`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    Mysql,
}

/// Reads a PostgreSQL or MySQL connection's tables and queries as DataFusion tables.
#[derive(Debug, Clone)]
pub struct ServerReader {
    pub server: Server,
    pub db: DbConfig,
}

#[async_trait]
impl Reader for ServerReader {
    async fn register(&self, ctx: &SessionContext, name: &str, read: &Read) -> Result<()> {
        register(ctx, name, self.server, &self.db, read).await
    }

    fn string_literal(&self, text: &str) -> String {
        match self.server {
            // An escape string: the same meaning whatever standard_conforming_strings says.
            Server::Postgres => format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''")),
            // The sessions run with NO_BACKSLASH_ESCAPES.
            Server::Mysql => {
                let mut out = String::new();
                super::mysql::values::quote(text, &mut out);
                out
            }
        }
    }
}

/// A table or query of a server as a DataFusion table (on PostgreSQL, read at `snapshot`).
async fn scan_table(
    server: Server,
    db: &DbConfig,
    read: &Read,
    snapshot: Option<Arc<Snapshot>>,
) -> Result<ScanTable> {
    let from = match read {
        Read::Table { name, .. } => {
            let table = TableName::parse(name);
            match server {
                Server::Postgres => table.quoted(),
                Server::Mysql => table.quoted_mysql(),
            }
        }
        Read::Query(sql) => format!("({}) AS ferry_query", sql.trim().trim_end_matches(';')),
    };
    let scanned = match server {
        Server::Postgres => super::postgres::read::scan_table(db, from, snapshot).await,
        Server::Mysql => super::mysql::read::scan_table(db, from).await,
    };
    scanned.map_err(|e| {
        if e.is_retryable() {
            return e;
        }
        match read {
            Read::Table { name, .. } => e.context(format!("cannot read table {name}")).with_hint(
                "check the table name (schema.table) and that the user may SELECT from it",
            ),
            Read::Query(_) => e
                .context("the query failed on the database")
                .with_hint("the query runs whole on its database: write it in that database's SQL"),
        }
    })
}

/// Registers `read` of the server `db` in `ctx` under `name`.
async fn register(
    ctx: &SessionContext,
    name: &str,
    server: Server,
    db: &DbConfig,
    read: &Read,
) -> Result<()> {
    let (partition_bounds, snapshot) = match partitioning(server, db, read).await {
        Ok(Some((bounds, rows, snapshot))) => (Some((bounds, rows)), snapshot),
        Ok(None) => (None, None),
        Err(e) => {
            // A table that cannot be read is said as such (with its hint), before the bounds' error.
            scan_table(server, db, read, None).await?;
            return Err(e);
        }
    };
    let exact = snapshot.is_some();
    let scan = scan_table(server, db, read, snapshot).await?;
    let Some((Some((column, kind, ranges)), rows)) = partition_bounds else {
        ctx.register_table(name, Arc::new(scan))?;
        return Ok(());
    };
    // The column's least and greatest values, for the plan's statistics (a spread run cuts its
    // partitions by them).
    let extent = match &kind {
        RangeKind::Blocks => None,
        kind => {
            let column_type = scan.schema().field_with_name(&column)?.data_type().clone();
            let (lo, hi) = (ranges[0].0, ranges[ranges.len() - 1].1);
            Some(super::counted::Extent {
                column: column.clone(),
                min: kind.value(lo, &column_type)?,
                max: kind.value(hi, &column_type)?,
            })
        }
    };
    let parts = match kind {
        RangeKind::Blocks => block_ranges(ctx, name, &scan, &ranges).await?,
        kind => column_ranges(ctx, name, scan, &column, kind, &ranges).await?,
    };
    let mut union: Option<DataFrame> = None;
    for part in parts {
        union = Some(match union {
            None => part,
            Some(u) => u.union(part)?,
        });
    }
    let Read::Table { name: table, .. } = read else {
        unreachable!("only tables are partitioned")
    };
    let checked = super::counted::CheckedTable {
        union: union.expect("at least one range").into_view(),
        expected: rows,
        table: table.clone(),
        exact,
        extent,
    };
    ctx.register_table(name, Arc::new(checked))?;
    Ok(())
}

/// One filtered scan of the whole table per range of `column`; the filters are pushed down, so
/// each is its own query.
async fn column_ranges(
    ctx: &SessionContext,
    name: &str,
    scan: ScanTable,
    column: &str,
    kind: RangeKind,
    ranges: &[(i64, i64)],
) -> Result<Vec<DataFrame>> {
    let whole = format!("__ferry_{name}_whole");
    // Bounds of the column's own type, so that the filters reach the database as they are.
    let column_type = scan.schema().field_with_name(column)?.data_type().clone();
    ctx.register_table(whole.as_str(), Arc::new(scan))?;
    let cuts = ranges[1..]
        .iter()
        .map(|(from, _)| kind.value(*from, &column_type))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut parts = Vec::new();
    for i in 0..ranges.len() {
        let filter = crate::ranges::range_filter(column, i, &cuts);
        parts.push(ctx.table(whole.as_str()).await?.filter(filter)?);
    }
    Ok(parts)
}

/// One scan per range of the table's blocks (PostgreSQL's `ctid`, read by TID range scans): the
/// first range open below, the last open above, so every row version the snapshot sees is in
/// exactly one, wherever it lies.
async fn block_ranges(
    ctx: &SessionContext,
    name: &str,
    scan: &ScanTable,
    ranges: &[(i64, i64)],
) -> Result<Vec<DataFrame>> {
    let last = ranges.len() - 1;
    let mut parts = Vec::new();
    for (i, (from, _)) in ranges.iter().enumerate() {
        let lower = (i > 0).then(|| format!("ctid >= '({from},0)'::tid"));
        let upper = (i < last).then(|| format!("ctid < '({},0)'::tid", ranges[i + 1].0));
        let condition = match (lower, upper) {
            (Some(l), Some(u)) => format!("{l} AND {u}"),
            (Some(c), None) | (None, Some(c)) => c,
            (None, None) => "TRUE".to_string(),
        };
        let part = format!("__ferry_{name}_blocks_{i}");
        ctx.register_table(part.as_str(), Arc::new(scan.restricted(condition)))?;
        parts.push(ctx.table(part.as_str()).await?);
    }
    Ok(parts)
}

/// What the partition column holds: ranges are of integers, of days since 1970, or of microseconds
/// since 1970 (UTC) for a timestamp; bounds are cast to the column's own type.
#[derive(Debug, Clone)]
enum RangeKind {
    Integer,
    Date,
    Timestamp,
    /// Page numbers of a PostgreSQL table (`partition_column = "ctid"`).
    Blocks,
}

impl RangeKind {
    /// The bound `v` as a value of the column's own type.
    fn value(&self, v: i64, column_type: &DataType) -> datafusion::error::Result<ScalarValue> {
        match self {
            RangeKind::Integer => ScalarValue::Int64(Some(v)),
            RangeKind::Date => ScalarValue::Date32(Some(v as i32)),
            RangeKind::Timestamp => ScalarValue::TimestampMicrosecond(Some(v), None),
            RangeKind::Blocks => unreachable!("blocks are not a column's values"),
        }
        .cast_to(column_type)
    }
}

/// Ranges of the partition column (from its MIN and MAX) or of the table's blocks.
type Bounds = Option<(String, RangeKind, Vec<(i64, i64)>)>;

/// The ranges of a partitioned read, the table's rows counted with them (what the partitions must
/// add up to: `counted.rs`), and on PostgreSQL the snapshot they were counted in, which every range
/// reads at.
type Partitioning = Option<(Bounds, u64, Option<Arc<Snapshot>>)>;

/// A partitioned table read's ranges and count; `None` for every other read.
async fn partitioning(server: Server, db: &DbConfig, read: &Read) -> Result<Partitioning> {
    let Read::Table {
        name: table,
        partitions: Some((n, column)),
    } = read
    else {
        return Ok(None);
    };
    let table = TableName::parse(table);
    Ok(Some(match server {
        Server::Postgres => extent_pg(db, &table, column, *n).await?,
        Server::Mysql => {
            let (bounds, rows) = extent_mysql(db, &table, column, *n).await?;
            (bounds, rows, None)
        }
    }))
}

/// The partition column that splits a PostgreSQL table by its blocks (where its rows lie), for a
/// table without an integer or date key.
const BLOCKS: &str = "ctid";

/// PostgreSQL's first version with TID range scans (a range of blocks read without the others).
const TID_RANGE_SCANS: i32 = 140_000;

/// The `n` ranges of `column` (or of the table's blocks) and the table's rows, counted in a
/// snapshot exported for the ranges to read at (when the server has one). A column that does not
/// split is refused before the count reads the whole table.
async fn extent_pg(
    db: &DbConfig,
    table: &TableName,
    column: &str,
    n: usize,
) -> Result<(Bounds, u64, Option<Arc<Snapshot>>)> {
    let client = super::postgres::client::connect(db).await?;
    // A spread run's other processes read at the leader's snapshot; the leader, or one process
    // alone, exports its own.
    let shared_as = super::postgres::shared::key(db, table);
    let adopted = match super::postgres::shared::adopted(&shared_as) {
        Some(id) if Snapshot::adopt(&client, &id).await? => Some(id),
        _ => None,
    };
    let (client, exported, shared_as) = match adopted {
        Some(id) => (client, Some(id), None),
        None => {
            let (client, exported) = Snapshot::export(client).await?;
            (client, exported, Some(shared_as))
        }
    };
    let classify = super::postgres::client::classify;
    let bounds = match column {
        BLOCKS => {
            let version: i32 = client
                .query_one("SELECT current_setting('server_version_num')::int", &[])
                .await
                .map_err(classify)?
                .get(0);
            if version < TID_RANGE_SCANS {
                return Err(ConnectorError::fatal(format!(
                    "partition_column = \"ctid\" needs PostgreSQL 14 or later, which reads a range of a table's blocks alone; this server is version {version}"
                ))
                .with_hint("partition over an integer or date column, or remove partitions"));
            }
            if exported.is_none() {
                return Err(ConnectorError::fatal(format!(
                    "partition_column = \"ctid\" reads {} in ranges of its blocks, which needs one snapshot on every connection, and this server exports none",
                    table.quoted()
                ))
                .with_hint("partition over an integer or date column, or remove partitions"));
            }
            // The blocks the table has now hold every row the snapshot sees; the last range is
            // open above anyway.
            let sql =
                "SELECT pg_relation_size($1::text::regclass) / current_setting('block_size')::int";
            let blocks: i64 = client
                .query_one(sql, &[&table.quoted()])
                .await
                .map_err(classify)?
                .get(0);
            Some((column.to_string(), RangeKind::Blocks, split(n, 0, blocks)))
        }
        _ => {
            let c = crate::sql::ident::quote_ansi(column);
            let sql = format!(
                "SELECT MIN({c})::text, MAX({c})::text FROM {}",
                table.quoted()
            );
            let row = client.query_one(&sql, &[]).await.map_err(classify)?;
            ranges(column, n, row.get(0), row.get(1))?
        }
    };
    let rows: i64 = client
        .query_one(&format!("SELECT COUNT(*) FROM {}", table.quoted()), &[])
        .await
        .map_err(classify)?
        .get(0);
    let snapshot = exported.map(|id| Arc::new(Snapshot::new(id, client, shared_as)));
    Ok((bounds, rows as u64, snapshot))
}

/// The `n` ranges of `column` and the table's rows; a column that does not split is refused before
/// the count reads the whole table.
async fn extent_mysql(
    db: &DbConfig,
    table: &TableName,
    column: &str,
    n: usize,
) -> Result<(Bounds, u64)> {
    use mysql_async::prelude::Queryable;
    let pool = super::mysql::client::pool(db)?;
    let mut conn = super::mysql::client::conn(&pool, db).await?;
    let c = crate::sql::ident::quote_mysql(column);
    let classify = super::mysql::client::classify;
    let ends: Option<(Option<String>, Option<String>)> = conn
        .query_first(format!(
            "SELECT CAST(MIN({c}) AS CHAR), CAST(MAX({c}) AS CHAR) FROM {}",
            table.quoted_mysql()
        ))
        .await
        .map_err(classify)?;
    let (min, max) = ends.unwrap_or_default();
    let bounds = ranges(column, n, min, max)?;
    let rows: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {}", table.quoted_mysql()))
        .await
        .map_err(classify)?;
    drop(conn);
    pool.disconnect().await.ok();
    Ok((bounds, rows.unwrap_or_default()))
}

/// A timestamp as the databases print it (`2026-01-01 08:00:00[.123456][+02[:00]]`): microseconds
/// since 1970 in UTC (a zone-less one is taken as UTC, as the bounds are cast to the column's type).
fn timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_micros());
        }
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

/// Splits [min, max] into `n` ranges of integers, or of days for a date column.
fn ranges(column: &str, n: usize, min: Option<String>, max: Option<String>) -> Result<Bounds> {
    let (Some(min), Some(max)) = (min, max) else {
        // An empty table: one range is enough.
        return Ok(None);
    };
    let integer = |s: &str| s.trim().parse::<i64>().ok();
    let day = |s: &str| {
        let s = s.trim();
        (s.len() == 10)
            .then(|| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .flatten()
            .map(|d| (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days())
    };
    let kind_lo_hi = match (integer(&min), integer(&max), day(&min), day(&max)) {
        (Some(lo), Some(hi), _, _) => Some((RangeKind::Integer, lo, hi)),
        (_, _, Some(lo), Some(hi)) => Some((RangeKind::Date, lo, hi)),
        _ => match (timestamp(&min), timestamp(&max)) {
            (Some(lo), Some(hi)) => Some((RangeKind::Timestamp, lo, hi)),
            _ => None,
        },
    };
    let (kind, lo, hi) = match kind_lo_hi {
        Some(k) => k,
        None => {
            return Err(ConnectorError::fatal(format!(
                "partition_column \"{column}\" must be an integer or date column (its values run from {min} to {max})"
            ))
            .with_hint("pick a numeric key such as the primary key, or a date (on PostgreSQL 14+, \"ctid\" splits any table by its blocks), or remove partitions"));
        }
    };
    Ok(Some((column.to_string(), kind, split(n, lo, hi))))
}

/// [lo, hi] in at most `n` ranges of equal width (at least 1), each from the last one's end.
fn split(n: usize, lo: i64, hi: i64) -> Vec<(i64, i64)> {
    let n = n.max(1) as i64;
    let step = ((hi - lo) / n).max(1);
    let mut out = Vec::new();
    let mut from = lo;
    for i in 0..n {
        let to = if i == n - 1 {
            hi
        } else {
            (from + step).min(hi)
        };
        out.push((from, to));
        if to >= hi {
            break;
        }
        from = to;
    }
    out
}
