//! PostgreSQL as a target: binary COPY for every byte of data, set-based SQL for the modes.
//!
//! ```text
//! insert    COPY straight into the table; once a batch meets an existing key, batches go through
//!           the session's temp stage: COPY → INSERT ... SELECT ... ON CONFLICT (key) DO NOTHING
//! upsert    COPY → temp stage → INSERT ... ON CONFLICT (key) DO UPDATE (only the key's index: a
//!           collision on another unique index is an error for the row, never an overwrite)
//! truncate  rows go to "_ferry_stage_<hash of t>", a copy of the table with its indexes; finish empties the
//!           table and moves them in, in one transaction: readers see old rows or new, never none
//! sync      upsert + the batch's keys into "_ferry_keys_<hash of t>" (same transaction); finish deletes
//!           the rows whose key is not there, in one transaction, after every batch succeeded
//! ```
//!
//! Each `write` is one transaction on its own connection, so batches land whole and in parallel.

pub mod client;
pub mod connector;
pub mod copy;
pub mod read;
pub mod shared;
pub mod types;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::GenericClient;

use self::client::{Conn, Pool, classify};
use self::types::PgType;
use crate::error::{ConnectorError, ErrorClass, Result};
use crate::failpoint::pause_point;
use crate::sink::{BatchWritten, Resume, TargetOptions, WriteMode};
use crate::sql::db::DbConfig;
use crate::sql::ident::{TableName, quote_ansi as q, quote_list};
use crate::sql::sink::{Dialect, SqlSink, key_positions};
use crate::sql::{check, statements};

/// PostgreSQL's way of doing each step of the SQL sink ([`SqlSink`]).
pub struct Postgres {
    pool: Pool,
    table: TableName,
    options: TargetOptions,
    /// A batch met keys already in the table: later ones go through the stage from the start.
    conflicts_seen: AtomicBool,
}

/// A PostgreSQL table as a target.
pub type PostgresSink = SqlSink<Postgres>;

/// A batch as binary COPY data, and how many rows it holds.
pub struct Encoded {
    data: Bytes,
    rows: u64,
}

/// What `begin` learned and every batch uses.
pub struct Plan {
    /// The result's columns as the table spells them, in the result's order.
    columns: Vec<String>,
    types: Vec<PgType>,
    /// Where COPY writes: the table, or the truncate stage.
    into: String,
    /// The unique index on the key, whose violations mean "the key exists".
    key_index: Option<String>,
    /// INSERT ... SELECT from the temp stage into `into`, with the mode's ON CONFLICT.
    merge_sql: Option<String>,
    /// Sync: records the stage's keys.
    keys_sql: Option<String>,
    /// Per key column: whether the table lets it be NULL (sync then compares it NULL-safely; the
    /// NOT NULL ones keep a plain `=`, which the DELETE's hash anti-join needs).
    key_nullable: Vec<bool>,
    /// Creates the session's temp stage.
    stage_sql: String,
    /// Where the key's columns are in the result.
    key_positions: Vec<usize>,
}

impl Postgres {
    pub fn new(db: DbConfig, options: TargetOptions) -> Self {
        Self {
            pool: Pool::new(db),
            table: TableName::parse(&options.table),
            options,
            conflicts_seen: AtomicBool::new(false),
        }
    }

    fn stage_table(&self) -> TableName {
        self.table.helper("stage")
    }

    fn keys_table(&self) -> TableName {
        self.table.helper("keys")
    }

    /// Runs `f` on a pooled connection; the connection goes back unless the server or network failed.
    async fn with_conn<T>(&self, f: impl AsyncFnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut conn = self.pool.get().await?;
        let result = f(&mut conn).await;
        match &result {
            Err(e) if e.class != ErrorClass::Data => {}
            _ => self.pool.put(conn),
        }
        result
    }

    /// The table privileges the mode needs, and why.
    fn needed_privileges(&self) -> Vec<(&'static str, &'static str)> {
        let mut needed = vec![("INSERT", "to write rows")];
        match self.options.mode {
            WriteMode::Upsert => needed.push(("UPDATE", "to update existing keys")),
            WriteMode::Sync => {
                needed.push(("UPDATE", "to update existing keys"));
                needed.push(("DELETE", "to delete rows the source no longer has"));
            }
            WriteMode::Truncate => needed.push(("TRUNCATE", "to replace the table's rows")),
            WriteMode::Insert => {}
        }
        needed
    }

    fn missing_privilege(&self, privilege: &str, why: &str) -> ConnectorError {
        let user = self
            .pool
            .config()
            .user()
            .unwrap_or_else(|| "the connected user".into());
        let on = if privilege == "CREATE" {
            format!("SCHEMA {}", self.table.schema_or("public"))
        } else {
            self.table.quoted()
        };
        ConnectorError::fatal(format!(
            "{user} lacks the {privilege} privilege on {} ({} mode needs it {why})",
            self.table, self.options.mode
        ))
        .with_hint(format!("GRANT {privilege} ON {on} TO {user}"))
    }

    async fn write_batch(
        &self,
        conn: &mut Conn,
        plan: &Plan,
        data: Bytes,
        rows: u64,
    ) -> Result<BatchWritten> {
        let direct = plan.merge_sql.is_none()
            || (matches!(self.options.mode, WriteMode::Insert | WriteMode::Truncate)
                && !self.conflicts_seen.load(Ordering::Relaxed));
        if direct {
            match copy_direct(conn, plan, data.clone(), rows).await {
                Err(e)
                    if e.class == ErrorClass::Data
                        && plan.merge_sql.is_some()
                        && e.message
                            .contains(plan.key_index.as_deref().unwrap_or("\u{0}")) =>
                {
                    // Keys already there: from now on, through the stage.
                    self.conflicts_seen.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        if !conn.has_stage {
            conn.client
                .batch_execute(&plan.stage_sql)
                .await
                .map_err(classify)?;
            conn.has_stage = true;
        }
        let tx = conn.client.transaction().await.map_err(classify)?;
        copy_in(&tx, "pg_temp.ferry_stage", &plan.columns, data).await?;
        let written = tx
            .execute(plan.merge_sql.as_deref().expect("keyed"), &[])
            .await
            .map_err(classify)?;
        if let Some(keys_sql) = &plan.keys_sql {
            tx.execute(keys_sql, &[]).await.map_err(classify)?;
        }
        pause_point("sink_mid_batch");
        tx.commit().await.map_err(classify)?;
        // Insert: a row whose key exists is skipped. The other modes: every row is in the table as
        // the source has it, whether updated, added or already so (the merge skips those).
        let (written, skipped) = if self.options.mode == WriteMode::Insert {
            (written, rows - written)
        } else {
            (rows, 0)
        };
        Ok(BatchWritten {
            written,
            skipped,
            ..Default::default()
        })
    }
}

/// COPY into the table (or truncate stage) itself: the fastest path, for keyless and first-time loads.
async fn copy_direct(conn: &mut Conn, plan: &Plan, data: Bytes, rows: u64) -> Result<BatchWritten> {
    let tx = conn.client.transaction().await.map_err(classify)?;
    let written = copy_in(&tx, &plan.into, &plan.columns, data).await?;
    pause_point("sink_mid_batch");
    tx.commit().await.map_err(classify)?;
    debug_assert_eq!(written, rows);
    Ok(BatchWritten {
        written,
        ..Default::default()
    })
}

async fn copy_in(
    tx: &tokio_postgres::Transaction<'_>,
    into: &str,
    columns: &[String],
    data: Bytes,
) -> Result<u64> {
    let sql = format!(
        "COPY {into} ({}) FROM STDIN (FORMAT binary)",
        quote_list(columns)
    );
    let sink = tx.copy_in::<_, Bytes>(&sql).await.map_err(classify)?;
    futures::pin_mut!(sink);
    sink.send(data).await.map_err(classify)?;
    sink.as_mut().finish().await.map_err(classify)
}

#[async_trait]
impl Dialect for Postgres {
    type Plan = Plan;
    type Rows = Encoded;

    fn options(&self) -> &TargetOptions {
        &self.options
    }

    fn create_statement(&self, schema: &SchemaRef) -> Result<String> {
        create_table_sql(&self.table.quoted(), schema, &self.options.key)
    }

    fn describe(&self) -> String {
        format!("postgres {}, table {}", self.pool.config(), self.table)
    }

    async fn references(&self) -> Result<Vec<String>> {
        let client = client::connect(self.pool.config()).await?;
        let rows = client
            .query(
                "SELECT DISTINCT c.confrelid::regclass::text FROM pg_constraint c
                  WHERE c.contype = 'f' AND c.conrelid = to_regclass($1) AND c.confrelid <> c.conrelid",
                &[&self.table.quoted()],
            )
            .await
            .map_err(classify)?;
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let last = name.rsplit('.').next().unwrap_or(&name).to_string();
                last.trim_matches('"').to_string()
            })
            .collect())
    }

    async fn problems(&self, schema: &SchemaRef) -> Result<Vec<ConnectorError>> {
        let opts = &self.options;
        let mut problems = Vec::new();
        let client = client::connect(self.pool.config()).await?;
        let qualified = self.table.quoted();
        let Some(columns) = table_columns(&client, &qualified).await? else {
            for field in schema.fields() {
                if let Err(e) = types::column_type(field) {
                    problems.push(e);
                }
            }
            if !opts.create {
                problems.push(
                    ConnectorError::fatal(format!(
                        "table {} does not exist in {}",
                        self.table,
                        self.pool.config()
                    ))
                    .with_hint("create it, or set create = true under [target]"),
                );
            } else if !schema_privilege(&client, &self.table).await? {
                problems.push(self.missing_privilege("CREATE", "to create the table"));
            }
            return Ok(problems);
        };
        for field in schema.fields() {
            match columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(field.name()))
            {
                None => {
                    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                    problems.push(check::missing_column(&self.table, field.name(), &names))
                }
                Some(Column {
                    ty: None,
                    type_name,
                    ..
                }) => problems.push(
                    ConnectorError::fatal(format!(
                        "column \"{}\" of {} has type {type_name}, which Ferry cannot write",
                        field.name(),
                        self.table
                    ))
                    .with_hint(
                        "write to a text, numeric, date/time, boolean, uuid, json or bytea column",
                    ),
                ),
                Some(Column { ty: Some(ty), .. }) if !ty.accepts(field.data_type()) => problems
                    .push(
                        ConnectorError::fatal(format!(
                            "column \"{}\" is {} in the result but {} in {}",
                            field.name(),
                            field.data_type(),
                            ty.name(),
                            self.table
                        ))
                        .with_hint("cast it in the last step, for example CAST(col AS BIGINT)"),
                    ),
                Some(_) => {}
            }
        }
        for column in &columns {
            if column.not_null
                && !column.has_default
                && schema.column_with_name(&column.name).is_none()
                && !schema
                    .fields()
                    .iter()
                    .any(|f| f.name().eq_ignore_ascii_case(&column.name))
            {
                problems.push(
                    ConnectorError::fatal(format!(
                        "column \"{}\" of {} is NOT NULL without a default, and the result has no such column",
                        column.name, self.table
                    ))
                    .with_hint("add it to the last step's SELECT"),
                );
            }
        }
        if !opts.key.is_empty()
            && opts.mode != WriteMode::Truncate
            && key_index(&client, &qualified, &opts.key).await?.is_none()
        {
            problems.push(check::no_unique_key(
                &self.table,
                &opts.key,
                opts.mode,
                format!(
                    "CREATE UNIQUE INDEX ON {qualified} ({})",
                    quote_list(&opts.key)
                ),
            ));
        }
        for (privilege, why) in self.needed_privileges() {
            let granted: bool = client
                .query_one(
                    "SELECT has_table_privilege(to_regclass($1), $2)",
                    &[&qualified, &privilege],
                )
                .await
                .map_err(classify)?
                .get(0);
            if !granted {
                problems.push(self.missing_privilege(privilege, why));
            }
        }
        if matches!(opts.mode, WriteMode::Truncate | WriteMode::Sync)
            && !schema_privilege(&client, &self.table).await?
        {
            problems.push(self.missing_privilege("CREATE", "for the staging table of its mode"));
        }
        Ok(problems)
    }

    /// Creates the table if asked, prepares staging, and works out how batches are written.
    async fn prepare(&self, schema: &SchemaRef, resume: bool) -> Result<(Plan, Resume)> {
        let opts = &self.options;
        if let Some(first) = self.problems(schema).await?.into_iter().next() {
            return Err(first);
        }
        let mut client = client::connect(self.pool.config()).await?;
        let qualified = self.table.quoted();
        let tx = client.transaction().await.map_err(classify)?;
        if table_columns(&tx, &qualified).await?.is_none() {
            tx.batch_execute(&create_table_sql(&qualified, schema, &opts.key)?)
                .await
                .map_err(classify)?;
        }
        let table_cols = table_columns(&tx, &qualified)
            .await?
            .ok_or_else(|| ConnectorError::fatal(format!("table {} vanished", self.table)))?;
        let mut columns = Vec::new();
        let mut types = Vec::new();
        for field in schema.fields() {
            let column = table_cols
                .iter()
                .find(|c| &c.name == field.name())
                .or_else(|| {
                    table_cols
                        .iter()
                        .find(|c| c.name.eq_ignore_ascii_case(field.name()))
                })
                .expect("checked above");
            columns.push(column.name.clone());
            types.push(column.ty.expect("checked above"));
        }
        let key: Vec<String> = opts
            .key
            .iter()
            .map(|k| {
                columns
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(k))
                    .cloned()
                    .unwrap_or_else(|| k.clone())
            })
            .collect();
        let staging = match opts.mode {
            WriteMode::Truncate => Some(self.stage_table()),
            WriteMode::Sync => Some(self.keys_table()),
            WriteMode::Insert | WriteMode::Upsert => None,
        };
        let kept = match &staging {
            Some(t) => resume && table_columns(&tx, &t.quoted()).await?.is_some(),
            None => resume,
        };
        for leftover in [self.stage_table(), self.keys_table()] {
            if !(kept && staging.as_ref() == Some(&leftover)) {
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", leftover.quoted()))
                    .await
                    .map_err(classify)?;
            }
        }
        let into = match opts.mode {
            WriteMode::Truncate => {
                let stage = self.stage_table().quoted();
                if !kept {
                    tx.batch_execute(&format!(
                        "CREATE TABLE {stage} (LIKE {qualified} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"
                    ))
                    .await
                    .map_err(classify)?;
                    // Keyed so that a batch written again after a crash replaces itself.
                    if !key.is_empty() && key_index(&tx, &stage, &key).await?.is_none() {
                        tx.batch_execute(&format!(
                            "CREATE UNIQUE INDEX ON {stage} ({})",
                            quote_list(&key)
                        ))
                        .await
                        .map_err(classify)?;
                    }
                }
                stage
            }
            _ => qualified.clone(),
        };
        let keys_sql = if opts.mode == WriteMode::Sync {
            let keys = self.keys_table().quoted();
            // No index: the final DELETE hash-joins against it, and a key recorded twice (a batch
            // written again after a crash) changes nothing.
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {keys} AS SELECT {k} FROM {qualified} WITH NO DATA",
                k = quote_list(&key),
            ))
            .await
            .map_err(classify)?;
            Some(format!(
                "INSERT INTO {keys} ({k}) SELECT {k} FROM pg_temp.ferry_stage",
                k = quote_list(&key)
            ))
        } else {
            None
        };
        let key_nullable = key
            .iter()
            .map(|k| {
                table_cols
                    .iter()
                    .find(|c| &c.name == k)
                    .is_none_or(|c| !c.not_null)
            })
            .collect();
        let key_index = if key.is_empty() {
            None
        } else {
            let on = if opts.mode == WriteMode::Truncate {
                &into
            } else {
                &qualified
            };
            key_index(&tx, on, &key).await?
        };
        tx.commit().await.map_err(classify)?;
        // A row the table already holds as it is is not written again (no new row version, no
        // index churn): what makes a sync of a mostly unchanged source fast.
        let skip_unchanged = columns
            .iter()
            .filter(|c| !key.contains(c))
            .all(|c| table_cols.iter().any(|t| &t.name == c && t.exact_equality));
        let merge_sql =
            (!key.is_empty()).then(|| merge_sql(&into, &columns, &key, opts.mode, skip_unchanged));
        let plan = Plan {
            stage_sql: format!(
                "CREATE TEMP TABLE IF NOT EXISTS ferry_stage ON COMMIT DELETE ROWS AS SELECT {} FROM {qualified} WITH NO DATA",
                quote_list(&columns)
            ),
            columns,
            types,
            into,
            key_index,
            merge_sql,
            keys_sql,
            key_nullable,
            key_positions: key_positions(schema, &opts.key)?,
        };
        Ok((plan, if kept { Resume::Intact } else { Resume::Lost }))
    }

    fn encode(plan: &Plan, batch: &RecordBatch) -> Result<Encoded> {
        Ok(Encoded {
            data: Bytes::from(copy::encode(batch, &plan.types)?),
            rows: batch.num_rows() as u64,
        })
    }

    async fn load(&self, plan: &Arc<Plan>, rows: Encoded) -> Result<BatchWritten> {
        self.with_conn(async |conn| self.write_batch(conn, plan, rows.data, rows.rows).await)
            .await
    }

    fn encode_keys(plan: &Plan, rows: &RecordBatch) -> Result<Encoded> {
        let keys = rows.project(&plan.key_positions)?;
        let types: Vec<PgType> = plan.key_positions.iter().map(|&i| plan.types[i]).collect();
        Ok(Encoded {
            data: Bytes::from(copy::encode(&keys, &types)?),
            rows: keys.num_rows() as u64,
        })
    }

    async fn record_keys(&self, plan: &Arc<Plan>, keys: Encoded) -> Result<()> {
        let columns: Vec<String> = plan
            .key_positions
            .iter()
            .map(|&i| plan.columns[i].clone())
            .collect();
        let into = self.keys_table().quoted();
        self.with_conn(async |conn| {
            let tx = conn.client.transaction().await.map_err(classify)?;
            copy_in(&tx, &into, &columns, keys.data).await?;
            tx.commit().await.map_err(classify)
        })
        .await
    }

    async fn swap(&self, plan: &Arc<Plan>) -> Result<()> {
        let qualified = self.table.quoted();
        let columns = quote_list(&plan.columns);
        let stage = self.stage_table().quoted();
        let mut client = client::connect(self.pool.config()).await?;
        let tx = client.transaction().await.map_err(classify)?;
        tx.batch_execute(&format!("LOCK TABLE {qualified} IN ACCESS EXCLUSIVE MODE"))
            .await
            .map_err(classify)?;
        // TRUNCATE is instant but refused when other tables reference this one.
        tx.batch_execute("SAVEPOINT ferry_truncate")
            .await
            .map_err(classify)?;
        if tx
            .batch_execute(&format!("TRUNCATE {qualified}"))
            .await
            .is_err()
        {
            tx.batch_execute("ROLLBACK TO SAVEPOINT ferry_truncate")
                .await
                .map_err(classify)?;
            tx.batch_execute(&format!("DELETE FROM {qualified}"))
                .await
                .map_err(classify)?;
        }
        tx.batch_execute(&format!(
            "INSERT INTO {qualified} ({columns}) SELECT {columns} FROM {stage}; DROP TABLE {stage}"
        ))
        .await
        .map_err(classify)?;
        pause_point("sink_finish_before_commit");
        tx.commit().await.map_err(classify)
    }

    async fn delete_missing(&self, plan: &Arc<Plan>) -> Result<u64> {
        let qualified = self.table.quoted();
        let keys = self.keys_table().quoted();
        let key = key_columns(plan, &self.options.key);
        let mut client = client::connect(self.pool.config()).await?;
        let tx = client.transaction().await.map_err(classify)?;
        tx.batch_execute(&format!("ANALYZE {keys}"))
            .await
            .map_err(classify)?;
        let matches = key
            .iter()
            .zip(&plan.key_nullable)
            .map(|(k, nullable)| match nullable {
                true => format!("k.{0} IS NOT DISTINCT FROM t.{0}", q(k)),
                false => format!("k.{0} = t.{0}", q(k)),
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        let deleted = tx
            .execute(
                &format!(
                    "DELETE FROM {qualified} AS t WHERE NOT EXISTS (SELECT 1 FROM {keys} AS k WHERE {matches})"
                ),
                &[],
            )
            .await
            .map_err(classify)?;
        tx.batch_execute(&format!("DROP TABLE {keys}"))
            .await
            .map_err(classify)?;
        pause_point("sink_finish_before_commit");
        tx.commit().await.map_err(classify)?;
        Ok(deleted)
    }

    async fn drop_helpers(&self) -> Result<()> {
        // The pooled sessions first: nothing of this run stays open on the server.
        self.pool.clear();
        let sql = format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
            self.stage_table().quoted(),
            self.keys_table().quoted()
        );
        let client = client::connect(self.pool.config()).await?;
        client.batch_execute(&sql).await.map_err(classify)
    }

    fn release(&self) {
        self.pool.clear();
    }
}

/// The key as the table spells it.
fn key_columns(plan: &Plan, key: &[String]) -> Vec<String> {
    key.iter()
        .map(|k| {
            plan.columns
                .iter()
                .find(|c| c.eq_ignore_ascii_case(k))
                .cloned()
                .unwrap_or_else(|| k.clone())
        })
        .collect()
}

/// INSERT ... SELECT from the stage with the mode's ON CONFLICT; with `skip_unchanged`, a
/// conflicting row is updated only where some column differs (`IS DISTINCT FROM`, NULL-safe).
fn merge_sql(
    into: &str,
    columns: &[String],
    key: &[String],
    mode: WriteMode,
    skip_unchanged: bool,
) -> String {
    let cols = quote_list(columns);
    let insert =
        format!("INSERT INTO {into} AS ferry_t ({cols}) SELECT {cols} FROM pg_temp.ferry_stage");
    let merge = statements::on_conflict(&insert, columns, key, mode, q);
    let others: Vec<&String> = columns.iter().filter(|c| !key.contains(c)).collect();
    if !skip_unchanged || others.is_empty() || !merge.contains("DO UPDATE") {
        return merge;
    }
    let side = |prefix: &str| {
        others
            .iter()
            .map(|c| format!("{prefix}.{}", q(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{merge} WHERE ({}) IS DISTINCT FROM ({})",
        side("ferry_t"),
        side("excluded")
    )
}

fn create_table_sql(qualified: &str, schema: &SchemaRef, key: &[String]) -> Result<String> {
    let spell = statements::Spelling {
        quote: q,
        column_type: &|field, _| types::column_type(field),
        nullable: "",
        suffix: "",
    };
    statements::create_table(qualified, schema, key, &spell)
}

/// A column of an existing table.
struct Column {
    name: String,
    type_name: String,
    ty: Option<PgType>,
    not_null: bool,
    has_default: bool,
    /// Whether `=` on the column means "the same value": false for json (no equality at all),
    /// citext and text under a nondeterministic collation (`'a' = 'A'`), and types Ferry does not
    /// know. An upsert skips rows only where every column compares exactly.
    exact_equality: bool,
}

async fn table_columns(
    client: &impl GenericClient,
    qualified: &str,
) -> Result<Option<Vec<Column>>> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified])
        .await
        .map_err(classify)?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT a.attname::text, t.typname::text, t.typtype = 'e', a.attnotnull,
                    a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',
                    format_type(a.atttypid, a.atttypmod),
                    COALESCE((SELECT (to_jsonb(c) ->> 'collisdeterministic') = 'false'
                                FROM pg_collation c WHERE c.oid = a.attcollation), false)
               FROM pg_attribute a
               JOIN pg_type t ON t.oid = CASE WHEN (SELECT typtype FROM pg_type WHERE oid = a.atttypid) = 'd'
                                              THEN (SELECT typbasetype FROM pg_type WHERE oid = a.atttypid)
                                              ELSE a.atttypid END
              WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&qualified],
        )
        .await
        .map_err(classify)?;
    Ok(Some(
        rows.iter()
            .map(|r| {
                let typname: String = r.get(1);
                let nondeterministic: bool = r.get(6);
                Column {
                    name: r.get(0),
                    ty: PgType::from_catalog(typname.as_str(), r.get(2)),
                    not_null: r.get(3),
                    has_default: r.get(4),
                    type_name: r.get(5),
                    exact_equality: !nondeterministic
                        && (r.get::<_, bool>(2)
                            || matches!(
                                typname.as_str(),
                                "bool"
                                    | "int2"
                                    | "int4"
                                    | "int8"
                                    | "float4"
                                    | "float8"
                                    | "numeric"
                                    | "text"
                                    | "varchar"
                                    | "bpchar"
                                    | "jsonb"
                                    | "bytea"
                                    | "uuid"
                                    | "date"
                                    | "time"
                                    | "timestamp"
                                    | "timestamptz"
                            )),
                }
            })
            .collect(),
    ))
}

/// The name of the unique index (primary key included) covering exactly the key columns.
async fn key_index(
    client: &impl GenericClient,
    qualified: &str,
    key: &[String],
) -> Result<Option<String>> {
    let rows = client
        .query(
            "SELECT c.relname::text, array_agg(a.attname::text)
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
              WHERE i.indrelid = to_regclass($1) AND i.indisunique
                AND i.indpred IS NULL AND i.indexprs IS NULL
              GROUP BY c.relname",
            &[&qualified],
        )
        .await
        .map_err(classify)?;
    let wanted: BTreeSet<String> = key.iter().map(|k| k.to_lowercase()).collect();
    Ok(rows.iter().find_map(|r| {
        let cols: BTreeSet<String> = r
            .get::<_, Vec<String>>(1)
            .into_iter()
            .map(|c| c.to_lowercase())
            .collect();
        (cols == wanted).then(|| r.get::<_, String>(0))
    }))
}

/// Whether the connected user may create tables in the target's schema.
async fn schema_privilege(client: &impl GenericClient, table: &TableName) -> Result<bool> {
    let schema = match &table.schema {
        Some(s) => s.clone(),
        None => client
            .query_one("SELECT current_schema()::text", &[])
            .await
            .map_err(classify)?
            .get::<_, Option<String>>(0)
            .unwrap_or_else(|| "public".into()),
    };
    Ok(client
        .query_one("SELECT has_schema_privilege($1, 'CREATE')", &[&schema])
        .await
        .map_err(classify)?
        .get(0))
}
