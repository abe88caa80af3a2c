//! SQLite as a target: one file, one writer, all four write modes.
//!
//! ```text
//! insert    INSERT ... ON CONFLICT (key) DO NOTHING          skipped rows counted, never failed
//! upsert    INSERT ... ON CONFLICT (key) DO UPDATE SET ...
//! truncate  rows go to "_ferry_stage_<hash of t>" (upserted by key when there is one, so a batch written
//!           again after a crash is harmless); finish swaps them in, in one transaction
//! sync      upsert + the batch's keys into "_ferry_keys_<hash of t>" (same transaction);
//!           finish deletes target rows whose key is not there, in one transaction
//! ```
//!
//! Each `write` is one transaction, so a batch lands whole or not at all. SQLite has a single writer:
//! workers encode in parallel and take turns on the connection.

pub mod connector;
pub mod read;
pub mod values;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, ErrorCode, OptionalExtension};

use self::values::{BindableBatch, column_type};
use crate::error::{Cause, ConnectorError, Result};
use crate::failpoint::pause_point;
use crate::sink::{BatchWritten, Resume, TargetOptions, WriteMode};
use crate::sql::ident::{helper_name, quote_ansi as q, quote_list};
use crate::sql::sink::{Dialect, SqlSink, key_positions};
use crate::sql::statements;

/// SQLite's way of doing each step of the SQL sink ([`SqlSink`]).
pub struct Sqlite {
    target: Target,
    conn: Arc<Mutex<Option<Connection>>>,
}

/// A table in a SQLite file as a target.
pub type SqliteSink = SqlSink<Sqlite>;

/// Set by `prepare`: the statements every batch runs.
pub struct WritePlan {
    /// Writes one row into the target (or the staging table, for truncate).
    row_sql: String,
    /// Records one row's key (sync only).
    key_sql: Option<String>,
    /// Where the key's columns are in the result.
    key_positions: Vec<usize>,
}

/// The file and table, and everything about them that needs no open connection of the sink's own.
#[derive(Clone)]
struct Target {
    path: PathBuf,
    options: TargetOptions,
}

/// The columns SQLite cannot store, whatever the file holds (or before it exists).
fn type_problems(schema: &SchemaRef) -> Vec<ConnectorError> {
    schema
        .fields()
        .iter()
        .filter_map(|field| column_type(field).err())
        .collect()
}

impl Sqlite {
    pub fn new(path: PathBuf, options: TargetOptions) -> Self {
        Self {
            target: Target { path, options },
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `f` on the open connection, off the async threads.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        let path = self.target.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().expect("sqlite connection lock");
            if guard.is_none() {
                *guard = Some(open(&path)?);
            }
            f(guard.as_mut().expect("opened above"))
        })
        .await
        .map_err(|e| ConnectorError::fatal(format!("SQLite worker stopped: {e}")))?
    }
}

impl Target {
    fn stage_table(&self) -> String {
        helper_name(&self.options.table, "stage")
    }

    fn keys_table(&self) -> String {
        helper_name(&self.options.table, "keys")
    }

    fn problems(&self, conn: &Connection, schema: &SchemaRef) -> Result<Vec<ConnectorError>> {
        let opts = &self.options;
        let mut problems = type_problems(schema);
        let Some(columns) = table_columns(conn, &opts.table)? else {
            if !opts.create {
                problems.push(
                    ConnectorError::fatal(format!(
                        "table \"{}\" does not exist in {}",
                        opts.table,
                        self.path.display()
                    ))
                    .with_hint("create it, or set create = true under [target]"),
                );
            }
            return Ok(problems);
        };
        for field in schema.fields() {
            if !columns.iter().any(|c| c.eq_ignore_ascii_case(field.name())) {
                let names: Vec<&str> = columns.iter().map(String::as_str).collect();
                problems.push(crate::sql::check::missing_column(
                    format!("\"{}\"", opts.table),
                    field.name(),
                    &names,
                ));
            }
        }
        if !opts.key.is_empty()
            && opts.mode != WriteMode::Truncate
            && !has_unique_key(conn, &opts.table, &opts.key)?
        {
            problems.push(crate::sql::check::no_unique_key(
                q(&opts.table),
                &opts.key,
                opts.mode,
                format!(
                    "CREATE UNIQUE INDEX ON {} ({})",
                    q(&opts.table),
                    quote_list(&opts.key)
                ),
            ));
        }
        Ok(problems)
    }

    fn prepare(
        &self,
        conn: &mut Connection,
        schema: &SchemaRef,
        resume: bool,
    ) -> Result<(WritePlan, Resume)> {
        let opts = &self.options;
        if let Some(first) = self.problems(conn, schema)?.into_iter().next() {
            return Err(first);
        }
        let tx = conn.transaction().map_err(classify)?;
        if table_columns(&tx, &opts.table)?.is_none() {
            tx.execute_batch(&create_table_sql(&opts.table, schema, &opts.key)?)
                .map_err(classify)?;
        }
        // Staging of the mode in use: kept when resuming the run that made it, else started afresh.
        let staging = match opts.mode {
            WriteMode::Truncate => Some(self.stage_table()),
            WriteMode::Sync => Some(self.keys_table()),
            WriteMode::Insert | WriteMode::Upsert => None,
        };
        let kept = match &staging {
            Some(t) => resume && table_columns(&tx, t)?.is_some(),
            None => resume,
        };
        for leftover in [self.stage_table(), self.keys_table()] {
            if !(kept && staging.as_ref() == Some(&leftover)) {
                tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", q(&leftover)))
                    .map_err(classify)?;
            }
        }
        let columns: Vec<String> = field_names(schema);
        let into = match opts.mode {
            WriteMode::Truncate => {
                if !kept {
                    create_stage(&tx, &opts.table, &self.stage_table(), &opts.key)?;
                }
                self.stage_table()
            }
            _ => opts.table.clone(),
        };
        let key_sql = if opts.mode == WriteMode::Sync {
            let key_fields: Vec<_> = opts
                .key
                .iter()
                .map(|k| {
                    let f = schema.field_with_name(k)?;
                    Ok(format!("{} {}", q(k), column_type(f)?))
                })
                .collect::<Result<_>>()?;
            tx.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
                q(&self.keys_table()),
                key_fields.join(", "),
                quote_list(&opts.key)
            ))
            .map_err(classify)?;
            Some(format!(
                "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
                q(&self.keys_table()),
                quote_list(&opts.key),
                placeholders(opts.key.len())
            ))
        } else {
            None
        };
        tx.commit().map_err(classify)?;
        let plan = WritePlan {
            row_sql: row_sql(&into, &columns, opts),
            key_sql,
            key_positions: key_positions(schema, &opts.key)?,
        };
        Ok((plan, if kept { Resume::Intact } else { Resume::Lost }))
    }
}

#[async_trait]
impl Dialect for Sqlite {
    type Plan = WritePlan;
    type Rows = BindableBatch;

    fn options(&self) -> &TargetOptions {
        &self.target.options
    }

    fn create_statement(&self, schema: &SchemaRef) -> Result<String> {
        create_table_sql(&self.target.options.table, schema, &self.target.options.key)
    }

    fn describe(&self) -> String {
        format!(
            "sqlite {}, table {}",
            self.target.path.display(),
            self.target.options.table
        )
    }

    async fn references(&self) -> Result<Vec<String>> {
        let table = self.target.options.table.clone();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)")
                .map_err(classify)?;
            let names = stmt
                .query_map([&table], |r| r.get::<_, String>(0))
                .map_err(classify)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(classify)?;
            Ok(names.into_iter().filter(|n| *n != table).collect())
        })
        .await
    }

    async fn problems(&self, schema: &SchemaRef) -> Result<Vec<ConnectorError>> {
        let target = self.target.clone();
        if !target.path.exists() {
            let mut problems = type_problems(schema);
            if !target.options.create {
                problems.push(
                    ConnectorError::fatal(format!(
                        "SQLite file {} does not exist",
                        target.path.display()
                    ))
                    .with_hint("check the url, or set create = true to create it"),
                );
            }
            return Ok(problems);
        }
        let schema = schema.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_read_only(&target.path)?;
            target.problems(&conn, &schema)
        })
        .await
        .map_err(|e| ConnectorError::fatal(e.to_string()))?
    }

    async fn prepare(&self, schema: &SchemaRef, resume: bool) -> Result<(WritePlan, Resume)> {
        if let Some(dir) = self.target.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                ConnectorError::fatal(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let target = self.target.clone();
        let schema = schema.clone();
        self.with_conn(move |conn| target.prepare(conn, &schema, resume))
            .await
    }

    /// Casting is the costly part: done before taking the single writer's turn.
    fn encode(_plan: &WritePlan, batch: &RecordBatch) -> Result<BindableBatch> {
        BindableBatch::new(batch)
    }

    async fn load(&self, plan: &Arc<WritePlan>, rows: BindableBatch) -> Result<BatchWritten> {
        let plan = plan.clone();
        self.with_conn(move |conn| write_rows(conn, &plan, &rows))
            .await
    }

    fn encode_keys(_plan: &WritePlan, rows: &RecordBatch) -> Result<BindableBatch> {
        BindableBatch::new(rows)
    }

    async fn record_keys(&self, plan: &Arc<WritePlan>, rows: BindableBatch) -> Result<()> {
        let plan = plan.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(classify)?;
            {
                let sql = plan.key_sql.as_deref().expect("sync");
                let mut stmt = tx.prepare_cached(sql).map_err(classify)?;
                for row in 0..rows.num_rows() {
                    record_key(&mut stmt, &rows, &plan.key_positions, row)?;
                }
            }
            tx.commit().map_err(classify)
        })
        .await
    }

    async fn swap(&self, _plan: &Arc<WritePlan>) -> Result<()> {
        let table = self.target.options.table.clone();
        let stage = self.target.stage_table();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(classify)?;
            tx.execute(&format!("DELETE FROM {}", q(&table)), [])
                .map_err(classify)?;
            let cols = quote_list(&table_columns(&tx, &stage)?.unwrap_or_default());
            tx.execute(
                &format!(
                    "INSERT INTO {} ({cols}) SELECT {cols} FROM {}",
                    q(&table),
                    q(&stage)
                ),
                [],
            )
            .map_err(classify)?;
            tx.execute_batch(&format!("DROP TABLE {}", q(&stage)))
                .map_err(classify)?;
            pause_point("sink_finish_before_commit");
            tx.commit().map_err(classify)
        })
        .await
    }

    async fn delete_missing(&self, _plan: &Arc<WritePlan>) -> Result<u64> {
        let opts = self.target.options.clone();
        let keys = self.target.keys_table();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(classify)?;
            let matches = opts
                .key
                .iter()
                .map(|k| format!("k.{0} IS t.{0}", q(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let deleted = tx
                .execute(
                    &format!(
                        "DELETE FROM {} AS t WHERE NOT EXISTS (SELECT 1 FROM {} AS k WHERE {matches})",
                        q(&opts.table),
                        q(&keys)
                    ),
                    [],
                )
                .map_err(classify)?;
            tx.execute_batch(&format!("DROP TABLE {}", q(&keys)))
                .map_err(classify)?;
            pause_point("sink_finish_before_commit");
            tx.commit().map_err(classify)?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn drop_helpers(&self) -> Result<()> {
        let stage = self.target.stage_table();
        let keys = self.target.keys_table();
        self.with_conn(move |conn| {
            conn.execute_batch(&format!(
                "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
                q(&stage),
                q(&keys)
            ))
            .map_err(classify)
        })
        .await
    }
}

fn write_rows(
    conn: &mut Connection,
    plan: &WritePlan,
    rows: &BindableBatch,
) -> Result<BatchWritten> {
    let tx = conn.transaction().map_err(classify)?;
    let mut written = BatchWritten::default();
    {
        let mut stmt = tx.prepare_cached(&plan.row_sql).map_err(classify)?;
        let mut key_stmt = match &plan.key_sql {
            Some(sql) => Some(tx.prepare_cached(sql).map_err(classify)?),
            None => None,
        };
        let ncols = stmt.parameter_count();
        for row in 0..rows.num_rows() {
            if row == rows.num_rows() / 2 {
                pause_point("sink_mid_batch");
            }
            for col in 0..ncols {
                stmt.raw_bind_parameter(col + 1, ToSqlOutput::Borrowed(rows.value(col, row)))
                    .map_err(classify)?;
            }
            let changed = stmt.raw_execute().map_err(|e| classify(e).at_row(row))?;
            if changed == 0 {
                written.skipped += 1;
            } else {
                written.written += 1;
            }
            if let Some(key_stmt) = key_stmt.as_mut() {
                record_key(key_stmt, rows, &plan.key_positions, row)?;
            }
        }
    }
    tx.commit().map_err(classify)?;
    Ok(written)
}

/// Records one row's key in the sync keys table.
fn record_key(
    stmt: &mut rusqlite::CachedStatement<'_>,
    rows: &BindableBatch,
    key_columns: &[usize],
    row: usize,
) -> Result<()> {
    for (i, &col) in key_columns.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, ToSqlOutput::Borrowed(rows.value(col, row)))
            .map_err(classify)?;
    }
    stmt.raw_execute().map_err(classify)?;
    Ok(())
}

fn row_sql(into: &str, columns: &[String], opts: &TargetOptions) -> String {
    let insert = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        q(into),
        quote_list(columns),
        placeholders(columns.len())
    );
    if opts.key.is_empty() {
        return insert;
    }
    statements::on_conflict(&insert, columns, &opts.key, opts.mode, q)
}

fn create_table_sql(table: &str, schema: &SchemaRef, key: &[String]) -> Result<String> {
    let spell = statements::Spelling {
        quote: q,
        column_type: &|field, _| column_type(field),
        nullable: "",
        suffix: "",
    };
    statements::create_table(&q(table), schema, key, &spell)
}

/// The staging table for truncate: the target's columns with their types and NOT NULL, keyed by the
/// run's key (else the target's primary key), so that bad rows fail while staging, not during the swap.
/// The truncate stage: the table's own definition (types, NOT NULL, CHECK, UNIQUE, defaults) under
/// the stage's name, so that a row the table would refuse is refused while staging and not at the
/// swap (which would fail the whole run); keyed, so that a batch written again after a crash
/// replaces itself.
fn create_stage(conn: &Connection, table: &str, stage: &str, key: &[String]) -> Result<()> {
    let definition: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .optional()
        .map_err(classify)?;
    let sql = match definition.as_deref().and_then(after_table_name) {
        Some(body) => format!("CREATE TABLE {} {body}", q(stage)),
        None => create_stage_sql(conn, table, stage, key)?,
    };
    conn.execute_batch(&sql).map_err(classify)?;
    if !key.is_empty() && !has_unique_key(conn, stage, key)? {
        conn.execute_batch(&format!(
            "CREATE UNIQUE INDEX {} ON {} ({})",
            q(&helper_name(stage, "key")),
            q(stage),
            quote_list(key)
        ))
        .map_err(classify)?;
    }
    Ok(())
}

/// What follows the table's name in its `CREATE TABLE` statement: the column list and options.
fn after_table_name(sql: &str) -> Option<&str> {
    fn keyword(rest: &mut &str, word: &str) -> bool {
        let matches = rest.len() > word.len()
            && rest[..word.len()].eq_ignore_ascii_case(word)
            && rest[word.len()..].starts_with(|c: char| c.is_whitespace());
        if matches {
            *rest = rest[word.len()..].trim_start();
        }
        matches
    }
    /// Skips one identifier, quoted ("x", [x], `x`, 'x') or bare.
    fn identifier(s: &str) -> Option<&str> {
        let close = match s.chars().next()? {
            '"' => b'"',
            '[' => b']',
            '`' => b'`',
            '\'' => b'\'',
            _ => {
                let end = s
                    .find(|c: char| c.is_whitespace() || c == '(' || c == '.')
                    .unwrap_or(s.len());
                return Some(&s[end..]);
            }
        };
        let bytes = s.as_bytes();
        let mut i = 1;
        while i < bytes.len() {
            if bytes[i] == close {
                if close != b']' && bytes.get(i + 1) == Some(&close) {
                    i += 2;
                    continue;
                }
                return Some(&s[i + 1..]);
            }
            i += 1;
        }
        None
    }
    let mut rest = sql.trim_start();
    if !keyword(&mut rest, "CREATE") {
        return None;
    }
    let _ = keyword(&mut rest, "TEMP") || keyword(&mut rest, "TEMPORARY");
    if !keyword(&mut rest, "TABLE") {
        return None;
    }
    if keyword(&mut rest, "IF") && !(keyword(&mut rest, "NOT") && keyword(&mut rest, "EXISTS")) {
        return None;
    }
    loop {
        rest = identifier(rest)?.trim_start();
        match rest.strip_prefix('.') {
            Some(more) => rest = more.trim_start(),
            None => break,
        }
    }
    rest.starts_with('(').then_some(rest)
}

/// The stage from the table's columns alone, when its definition cannot be read.
fn create_stage_sql(conn: &Connection, table: &str, stage: &str, key: &[String]) -> Result<String> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({})", q(table)))
        .map_err(classify)?;
    let mut defs = Vec::new();
    let mut pk: Vec<(i64, String)> = Vec::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(classify)?;
    for row in rows {
        let (name, ty, not_null, pk_pos) = row.map_err(classify)?;
        defs.push(format!(
            "{} {ty}{}",
            q(&name),
            if not_null { " NOT NULL" } else { "" }
        ));
        if pk_pos > 0 {
            pk.push((pk_pos, name));
        }
    }
    pk.sort();
    let names: Vec<String> = if key.is_empty() {
        pk.into_iter().map(|(_, n)| n).collect()
    } else {
        key.to_vec()
    };
    if !names.is_empty() {
        defs.push(format!("PRIMARY KEY ({})", quote_list(&names)));
    }
    Ok(format!("CREATE TABLE {} ({})", q(stage), defs.join(", ")))
}

fn table_columns(conn: &Connection, table: &str) -> Result<Option<Vec<String>>> {
    let exists: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .optional()
        .map_err(classify)?;
    if exists.is_none() {
        return Ok(None);
    }
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({})", q(table)))
        .map_err(classify)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .map_err(classify)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(classify)?;
    Ok(Some(names))
}

/// Whether the primary key or a unique index covers exactly the key columns.
fn has_unique_key(conn: &Connection, table: &str, key: &[String]) -> Result<bool> {
    let wanted = |cols: &mut Vec<String>| {
        let mut key: Vec<String> = key.iter().map(|k| k.to_lowercase()).collect();
        key.sort();
        cols.iter_mut().for_each(|c| *c = c.to_lowercase());
        cols.sort();
        *cols == key
    };
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({})", q(table)))
        .map_err(classify)?;
    let mut pk: Vec<String> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))
        .map_err(classify)?
        .filter_map(|r| r.ok())
        .filter(|(_, pos)| *pos > 0)
        .map(|(n, _)| n)
        .collect();
    if !pk.is_empty() && wanted(&mut pk) {
        return Ok(true);
    }
    let mut stmt = conn
        .prepare(&format!("PRAGMA index_list({})", q(table)))
        .map_err(classify)?;
    let unique_indexes: Vec<String> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, bool>(2)?)))
        .map_err(classify)?
        .filter_map(|r| r.ok())
        .filter(|(_, unique)| *unique)
        .map(|(n, _)| n)
        .collect();
    for index in unique_indexes {
        let mut stmt = conn
            .prepare(&format!("PRAGMA index_info({})", q(&index)))
            .map_err(classify)?;
        let mut cols: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(2))
            .map_err(classify)?
            .filter_map(|r| r.ok())
            .collect();
        if wanted(&mut cols) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn field_names(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        ConnectorError::fatal(format!("cannot open SQLite file {}: {e}", path.display()))
    })?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(classify)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(classify)?;
    Ok(conn)
}

fn open_read_only(path: &Path) -> Result<Connection> {
    Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
        ConnectorError::fatal(format!("cannot open SQLite file {}: {e}", path.display()))
    })
}

/// SQLite's error codes, sorted into what the run does about them.
fn classify(err: rusqlite::Error) -> ConnectorError {
    let message = err.to_string();
    let extended = match &err {
        rusqlite::Error::SqliteFailure(e, _) => e.extended_code,
        _ => 0,
    };
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            ConnectorError::retryable(message)
        }
        Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch) => {
            let cause = match extended {
                rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => Cause::RequiredMissing,
                rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => Cause::DuplicateKey,
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Cause::MissingReference,
                rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => Cause::CheckFailed,
                rusqlite::ffi::SQLITE_CONSTRAINT_DATATYPE => Cause::WrongType,
                rusqlite::ffi::SQLITE_TOOBIG => Cause::TooLong,
                _ => Cause::Rejected,
            };
            ConnectorError::data(message, None).with_cause(cause)
        }
        _ => ConnectorError::fatal(message),
    }
}

impl ConnectorError {
    fn at_row(mut self, row: usize) -> Self {
        if self.class == crate::error::ErrorClass::Data {
            self.row = Some(row);
        }
        self
    }
}

#[cfg(test)]
mod stage_tests {
    use super::after_table_name;

    #[test]
    fn the_definition_after_any_spelling_of_the_name() {
        let body = "(id INTEGER PRIMARY KEY, x TEXT CHECK (x <> ''))";
        for head in [
            "CREATE TABLE t ",
            "create table \"t \"\"(x\" ",
            "CREATE TABLE [a b]",
            "CREATE TABLE `t`",
            "CREATE TEMP TABLE IF NOT EXISTS main.\"t\"",
        ] {
            assert_eq!(
                after_table_name(&format!("{head}{body}")),
                Some(body),
                "{head}"
            );
        }
        assert_eq!(after_table_name("CREATE TABLE t AS SELECT 1"), None);
    }
}
