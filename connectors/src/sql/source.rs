//! PostgreSQL and MySQL tables and queries as DataFusion tables, read through
//! datafusion-table-providers (which pushes projections and filters down as SQL).
//!
//! ```text
//! table = "s.t"                 SqlTable: SELECT <needed columns> FROM s.t WHERE <pushed filters>
//! table + partitions = N        N filtered scans of the table over ranges of partition_column,
//!                               UNION ALL: N connections read in parallel; a whole read must
//!                               return the COUNT(*) taken with the bounds (`counted.rs`)
//! query = "SELECT ..."          the query runs whole on the database and streams back as Arrow;
//! (and steps with connection)   its columns are learned from its first row
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::TableReference;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::unparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use datafusion_table_providers::mysql::MySQLTableFactory;
use datafusion_table_providers::postgres::PostgresTableFactory;
use datafusion_table_providers::sql::db_connection_pool::DbConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::query_arrow;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::sql::sql_provider_datafusion::SqlExec;
use datafusion_table_providers::util::secrets::to_secret_map;
use futures::StreamExt;

use crate::connector::{Read, Reader};
use crate::error::{ConnectorError, Result};
use crate::sql::db::{DbConfig, TlsMode};
use crate::sql::ident::TableName;

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
}

/// A table or query of a server as a DataFusion table, through one of datafusion-table-providers'
/// drivers: its connection pool, its table factory and its SQL dialect (the same steps for each,
/// over types that share no trait).
macro_rules! provider {
    (Postgres, $db:expr, $read:expr) => {
        provider!(@PostgresConnectionPool, PostgresTableFactory, PostgreSqlDialect, pg_params, $db, $read)
    };
    (Mysql, $db:expr, $read:expr) => {
        provider!(@MySQLConnectionPool, MySQLTableFactory, MySqlDialect, mysql_params, $db, $read)
    };
    (@$pool:ident, $factory:ident, $dialect:ident, $params:ident, $db:expr, $read:expr) => {{
        let pool = $pool::new(to_secret_map($params($db)))
            .await
            .map_err(|e| connect_error($db, e))?;
        let pool = Arc::new(pool);
        let provider: Arc<dyn TableProvider> = match $read {
            Read::Table { name: t, .. } => $factory::new(pool.clone())
                .table_provider(table_reference(t))
                .await
                .map_err(|e| read_error(t, e))?,
            Read::Query(q) => {
                let pool: Arc<dyn DbConnectionPool<_, _> + Send + Sync> = pool;
                Arc::new(QueryTable::new(pool, q, Arc::new($dialect {})).await?)
            }
        };
        provider
    }};
}

/// Registers `read` of the server `db` in `ctx` under `name`.
async fn register(
    ctx: &SessionContext,
    name: &str,
    server: Server,
    db: &DbConfig,
    read: &Read,
) -> Result<()> {
    let provider = match server {
        Server::Postgres => provider!(Postgres, db, read),
        Server::Mysql => provider!(Mysql, db, read),
    };
    let partition_bounds = partitioning(server, db, read).await?;
    let Some((Some((column, kind, ranges)), rows)) = partition_bounds else {
        ctx.register_table(name, provider)?;
        return Ok(());
    };
    // One filtered scan per range; the filters are pushed down, so each is its own query.
    let whole = format!("__ferry_{name}_whole");
    ctx.register_table(whole.as_str(), provider)?;
    let mut union: Option<datafusion::prelude::DataFrame> = None;
    let last = ranges.len() - 1;
    let value = |v: i64| match &kind {
        RangeKind::Integer => lit(v),
        RangeKind::Date => lit(datafusion::common::ScalarValue::Date32(Some(v as i32))),
        RangeKind::Timestamp(tz) => lit(datafusion::common::ScalarValue::TimestampMicrosecond(
            Some(v),
            tz.clone(),
        )),
    };
    // The first range is open below (and takes the NULLs), the last open above, and each cut is
    // `< x` on one side and `>= x` on the other: every row is in exactly one range, whatever the
    // column's type and however the bounds compare with it.
    for (i, (from, _)) in ranges.iter().enumerate() {
        let lower = (i > 0).then(|| col(&column).gt_eq(value(*from)));
        let upper = (i < last).then(|| col(&column).lt(value(ranges[i + 1].0)));
        let mut filter = match (lower, upper) {
            (Some(l), Some(u)) => l.and(u),
            (Some(l), None) => l,
            (None, Some(u)) => u,
            (None, None) => lit(true),
        };
        if i == 0 {
            filter = filter.or(col(&column).is_null());
        }
        let part = ctx.table(whole.as_str()).await?.filter(filter)?;
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
    };
    ctx.register_table(name, Arc::new(checked))?;
    Ok(())
}

fn table_reference(table: &str) -> TableReference {
    let t = TableName::parse(table);
    match t.schema {
        Some(s) => TableReference::partial(s, t.name),
        None => TableReference::bare(t.name),
    }
}

/// The parameters datafusion-table-providers' drivers take, with the port key, default port and
/// TLS words of each server.
fn params(db: &DbConfig, port_key: &str, port: u16, sslmode: &str) -> HashMap<String, String> {
    let mut p = HashMap::new();
    p.insert("host".into(), db.host().to_string());
    p.insert(port_key.into(), db.url.port().unwrap_or(port).to_string());
    if let Some(d) = db.database() {
        p.insert("db".into(), d.to_string());
    }
    if let Some(u) = db.user() {
        p.insert("user".into(), u);
    }
    if let Some(pw) = &db.password {
        p.insert("pass".into(), pw.expose().to_string());
    }
    p.insert("sslmode".into(), sslmode.into());
    if let Some(cert) = &db.root_cert {
        p.insert("sslrootcert".into(), cert.display().to_string());
    }
    p
}

fn pg_params(db: &DbConfig) -> HashMap<String, String> {
    let sslmode = match db.tls {
        TlsMode::Disable => "disable",
        TlsMode::VerifyCa => "verify-ca",
        // Certificates are checked whenever TLS is used.
        TlsMode::Prefer | TlsMode::Require | TlsMode::VerifyFull => "verify-full",
    };
    params(db, "port", 5432, sslmode)
}

fn mysql_params(db: &DbConfig) -> HashMap<String, String> {
    let sslmode = if db.tls == TlsMode::Disable {
        "disabled"
    } else {
        "required"
    };
    params(db, "tcp_port", 3306, sslmode)
}

fn connect_error(db: &DbConfig, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::fatal(format!("cannot connect to {db}: {e}"))
        .with_hint("check the connection's url, user and password variable")
}

fn read_error(table: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::fatal(format!("cannot read table {table}: {e}"))
        .with_hint("check the table name (schema.table) and that the user may SELECT from it")
}

/// What the partition column holds: ranges are of integers, of days since 1970, or of microseconds
/// since 1970 for a timestamp (with its time zone, when it has one), so bounds have the column's type.
#[derive(Debug, Clone)]
enum RangeKind {
    Integer,
    Date,
    Timestamp(Option<Arc<str>>),
}

/// Integer or date ranges of the partition column, from its MIN and MAX.
type Bounds = Option<(String, RangeKind, Vec<(i64, i64)>)>;

/// The ranges of a partitioned read, and the table's rows counted with them (what the partitions
/// must add up to: `counted.rs`).
type Partitioning = Option<(Bounds, u64)>;

/// The partition column's MIN and MAX as the server prints them, and the table's rows.
type Extent = (Option<String>, Option<String>, u64);

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
    let (min, max, rows) = match server {
        Server::Postgres => extent_pg(db, &table, column).await?,
        Server::Mysql => extent_mysql(db, &table, column).await?,
    };
    Ok(Some((ranges(column, *n, min, max)?, rows)))
}

async fn extent_pg(db: &DbConfig, table: &TableName, column: &str) -> Result<Extent> {
    let client = super::postgres::client::connect(db).await?;
    let c = crate::sql::ident::quote_ansi(column);
    let sql = format!(
        "SELECT MIN({c})::text, MAX({c})::text, COUNT(*) FROM {}",
        table.quoted()
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(super::postgres::client::classify)?;
    Ok((row.get(0), row.get(1), row.get::<_, i64>(2) as u64))
}

async fn extent_mysql(db: &DbConfig, table: &TableName, column: &str) -> Result<Extent> {
    use mysql_async::prelude::Queryable;
    let pool = super::mysql::client::pool(db)?;
    let mut conn = super::mysql::client::conn(&pool, db).await?;
    let c = crate::sql::ident::quote_mysql(column);
    let row: Option<Extent> = conn
        .query_first(format!(
            "SELECT CAST(MIN({c}) AS CHAR), CAST(MAX({c}) AS CHAR), COUNT(*) FROM {}",
            table.quoted_mysql()
        ))
        .await
        .map_err(super::mysql::client::classify)?;
    drop(conn);
    pool.disconnect().await.ok();
    Ok(row.unwrap_or_default())
}

/// A timestamp as the databases print it (`2026-01-01 08:00:00[.123456][+02[:00]]`): microseconds
/// since 1970 in UTC, and whether it had a time zone.
fn timestamp(text: &str) -> Option<(i64, bool)> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(text, format) {
            return Some((t.timestamp_micros(), true));
        }
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| (t.and_utc().timestamp_micros(), false))
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
            (Some((lo, zoned)), Some((hi, _))) => Some((
                RangeKind::Timestamp(zoned.then(|| Arc::from("+00:00"))),
                lo,
                hi,
            )),
            _ => None,
        },
    };
    let (kind, lo, hi) = match kind_lo_hi {
        Some(k) => k,
        None => {
            return Err(ConnectorError::fatal(format!(
                "partition_column \"{column}\" must be an integer or date column (its values run from {min} to {max})"
            ))
            .with_hint("pick a numeric key such as the primary key, or a date, or remove partitions"));
        }
    };
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
    Ok(Some((column.to_string(), kind, out)))
}

/// A query run whole on its database: DataFusion sees its result as a table.
pub struct QueryTable<T: 'static, P: 'static> {
    pool: Arc<dyn DbConnectionPool<T, P> + Send + Sync>,
    sql: String,
    schema: SchemaRef,
    dialect: Arc<dyn Dialect + Send + Sync>,
}

impl<T: 'static, P: 'static> QueryTable<T, P> {
    async fn new(
        pool: Arc<dyn DbConnectionPool<T, P> + Send + Sync>,
        sql: &str,
        dialect: Arc<dyn Dialect + Send + Sync>,
    ) -> Result<Self> {
        let sql = sql.trim().trim_end_matches(';').to_string();
        let conn = pool
            .connect()
            .await
            .map_err(|e| ConnectorError::fatal(format!("cannot connect: {e}")))?;
        let probe = format!("SELECT * FROM ({sql}) AS ferry_query LIMIT 1");
        let mut stream = query_arrow(conn, probe, None)
            .await
            .map_err(|e| query_error(&e.to_string()))?;
        let first = match stream.next().await {
            Some(batch) => batch.map_err(|e| query_error(&e.to_string()))?,
            None => {
                return Err(ConnectorError::fatal(
                    "the query returned no rows, so Ferry cannot learn its columns",
                )
                .with_hint(
                    "run it on the database to check it; an empty result has nothing to move",
                ));
            }
        };
        Ok(Self {
            pool,
            sql,
            schema: first.schema(),
            dialect,
        })
    }
}

impl<T, P> std::fmt::Debug for QueryTable<T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryTable")
            .field("sql", &self.sql)
            .finish()
    }
}

fn query_error(message: &str) -> ConnectorError {
    ConnectorError::fatal(format!("the query failed on the database: {message}"))
        .with_hint("the query runs whole on its database: write it in that database's SQL")
}

#[async_trait]
impl<T: 'static, P: 'static> TableProvider for QueryTable<T, P> {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let columns = match projection {
            Some(p) if !p.is_empty() => p
                .iter()
                .map(|&i| {
                    self.dialect
                        .identifier_quote_style(self.schema.field(i).name())
                        .map(|q| {
                            let name = self.schema.field(i).name();
                            let doubled = name.replace(q, &format!("{q}{q}"));
                            format!("{q}{doubled}{q}")
                        })
                        .unwrap_or_else(|| self.schema.field(i).name().clone())
                })
                .collect::<Vec<_>>()
                .join(", "),
            _ => "*".to_string(),
        };
        let mut sql = format!("SELECT {columns} FROM ({}) AS ferry_query", self.sql);
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        Ok(Arc::new(SqlExec::new(
            projection,
            &self.schema,
            self.pool.clone(),
            sql,
            self.dialect.clone(),
        )?))
    }
}
