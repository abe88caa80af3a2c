//! MySQL and MariaDB as a target: multi-row INSERTs in strict mode, one transaction per batch.
//!
//! ```text
//! insert    INSERT straight into the table; once a batch meets an existing key, batches go through
//!           a temporary stage: INSERT ... SELECT ... LEFT JOIN the table WHERE its key IS NULL
//!           (never INSERT IGNORE, which turns bad values into warnings)
//! upsert    INSERT ... ON DUPLICATE KEY UPDATE when the key's index is the table's only unique one;
//!           otherwise through the stage: UPDATE ... JOIN, then INSERT the new keys, so that a
//!           collision on another unique index is an error for the row, never an overwrite
//! truncate  rows go to "_ferry_stage_<hash of t>" (CREATE TABLE ... LIKE); finish swaps the names in one
//!           RENAME TABLE (TRUNCATE would commit on its own and leave an empty table on failure)
//! sync      upsert + the batch's keys into "_ferry_keys_<hash of t>" (same transaction); finish deletes the
//!           rows whose key is not there, in one transaction, after every batch succeeded
//! ```
//!
//! Plain inserts (insert and truncate before any key conflict, keyless) go by LOAD DATA LOCAL from
//! memory, the server's fastest path; it turns errors into warnings (as IGNORE does), so a batch is
//! kept only when every row landed without one, and is otherwise rolled back and written by INSERT,
//! which reports each error for its row (`load_data`).

pub mod client;
pub mod connector;
pub mod read;
pub mod values;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use self::client::classify;
use self::values::Literals;
use crate::error::{ConnectorError, ErrorClass, Result};
use crate::failpoint::pause_point;
use crate::sink::{BatchWritten, Resume, TargetOptions, WriteMode};
use crate::sql::db::DbConfig;
use crate::sql::ident::{TableName, quote_mysql as q};
use crate::sql::sink::{Dialect, SqlSink};
use crate::sql::{check, statements};

/// Statements stay well under MariaDB's default 16 MiB max_allowed_packet.
const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// MySQL's (and MariaDB's) way of doing each step of the SQL sink ([`SqlSink`]).
pub struct Mysql {
    db: DbConfig,
    pool: Mutex<Option<mysql_async::Pool>>,
    table: TableName,
    options: TargetOptions,
    conflicts_seen: AtomicBool,
    /// The server refused `LOAD DATA LOCAL` (local_infile=OFF, MySQL 8's default): INSERT only.
    local_infile_refused: AtomicBool,
}

/// A MySQL or MariaDB table as a target.
pub type MysqlSink = SqlSink<Mysql>;

pub struct Plan {
    /// `INSERT INTO <into> (cols) VALUES `
    insert: String,
    /// `LOAD DATA LOCAL INFILE ... INTO TABLE <into> ... (cols)`: the fast path for plain inserts.
    load: String,
    /// ` ON DUPLICATE KEY UPDATE ...` when the key's index is the only unique one.
    on_duplicate: Option<String>,
    /// The key's unique index, whose violations mean "the key exists".
    key_index: Option<String>,
    /// Positions of the key columns in the result.
    key_positions: Vec<usize>,
    /// Statements that move the stage into `into`: (SQL, counts as written).
    merge: Vec<(String, bool)>,
    /// Creates and empties the session's temporary stage.
    stage_setup: String,
    /// `INSERT INTO ferry_stage (cols) VALUES `
    stage_insert: String,
    /// Sync: `INSERT INTO <keys> (k) VALUES ` and its ON DUPLICATE KEY clause.
    keys_insert: Option<(String, String)>,
    /// The key is set: the stage paths exist.
    keyed: bool,
}

impl Mysql {
    pub fn new(db: DbConfig, options: TargetOptions) -> Self {
        Self {
            db,
            pool: Mutex::new(None),
            table: TableName::parse(&options.table),
            options,
            conflicts_seen: AtomicBool::new(false),
            local_infile_refused: AtomicBool::new(false),
        }
    }

    async fn conn(&self) -> Result<Conn> {
        let pool = {
            let mut guard = self.pool.lock().expect("pool lock");
            match guard.as_ref() {
                Some(p) => p.clone(),
                None => {
                    let p = client::pool(&self.db)?;
                    *guard = Some(p.clone());
                    p
                }
            }
        };
        client::conn(&pool, &self.db).await
    }

    fn stage_table(&self) -> TableName {
        self.table.helper("stage")
    }

    fn keys_table(&self) -> TableName {
        self.table.helper("keys")
    }

    fn old_table(&self) -> TableName {
        self.table.helper("old")
    }

    async fn write_batch(
        &self,
        conn: &mut Conn,
        plan: &Plan,
        rows: &Literals,
    ) -> Result<BatchWritten> {
        let n = rows.num_rows() as u64;
        let direct = !plan.keyed
            || plan.on_duplicate.is_some()
            || (matches!(self.options.mode, WriteMode::Insert | WriteMode::Truncate)
                && !self.conflicts_seen.load(Ordering::Relaxed));
        if direct
            && plan.on_duplicate.is_none()
            && rows.loadable()
            && !self.local_infile_refused.load(Ordering::Relaxed)
            && load_data(conn, plan, rows, &self.local_infile_refused).await?
        {
            return Ok(BatchWritten {
                written: n,
                ..Default::default()
            });
        }
        if direct {
            let suffix = plan.on_duplicate.as_deref().unwrap_or("");
            let attempt = in_transaction(conn, async |conn| {
                insert_rows(conn, &plan.insert, suffix, rows, None).await?;
                self.insert_keys(conn, plan, rows).await?;
                pause_point("sink_mid_batch");
                Ok(())
            })
            .await;
            match attempt {
                Err(e)
                    if e.class == ErrorClass::Data && plan.keyed && is_key_violation(&e, plan) =>
                {
                    self.conflicts_seen.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    return Ok(BatchWritten {
                        written: n,
                        ..Default::default()
                    });
                }
            }
        }
        let written = in_transaction(conn, async |conn| {
            conn.query_drop(&plan.stage_setup).await.map_err(classify)?;
            conn.query_drop("DELETE FROM ferry_stage")
                .await
                .map_err(classify)?;
            insert_rows(conn, &plan.stage_insert, "", rows, None).await?;
            let mut written = 0;
            for (sql, counts) in &plan.merge {
                conn.query_drop(sql).await.map_err(classify)?;
                if *counts {
                    written += conn.affected_rows();
                }
            }
            self.insert_keys(conn, plan, rows).await?;
            pause_point("sink_mid_batch");
            Ok(written)
        })
        .await?;
        Ok(if self.options.mode == WriteMode::Insert {
            BatchWritten {
                written,
                skipped: n - written,
                ..Default::default()
            }
        } else {
            BatchWritten {
                written: n,
                ..Default::default()
            }
        })
    }

    async fn insert_keys(&self, conn: &mut Conn, plan: &Plan, rows: &Literals) -> Result<()> {
        if let Some((insert, suffix)) = &plan.keys_insert {
            insert_rows(conn, insert, suffix, rows, Some(&plan.key_positions)).await?;
        }
        Ok(())
    }
}

/// Plain inserts by LOAD DATA LOCAL from memory, the server's fastest path. LOCAL turns errors into
/// warnings (as IGNORE does), so the batch is kept only when every row landed without a warning;
/// otherwise it is rolled back and written by INSERT, which reports each error properly. A server
/// that refuses LOAD DATA LOCAL altogether (`local_infile=OFF`) sets `refused`: INSERT from then on.
async fn load_data(
    conn: &mut Conn,
    plan: &Plan,
    rows: &Literals,
    refused: &AtomicBool,
) -> Result<bool> {
    use futures::StreamExt;
    let file = bytes::Bytes::from(rows.load_data()?);
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(classify)?;
    conn.set_infile_handler(
        async move { Ok(futures::stream::once(async move { Ok(file) }).boxed()) },
    );
    let loaded = conn.query_drop(&plan.load).await;
    // MariaDB 10.6+ says 4166 (capability disabled; 1148 before), MySQL 8 says 3948.
    if let Err(mysql_async::Error::Server(e)) = &loaded
        && matches!(e.code, 1148 | 3948 | 4166)
    {
        if !refused.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e.message, "the server refuses LOAD DATA LOCAL: writing with INSERT");
        }
        let _ = conn.query_drop("ROLLBACK").await;
        return Ok(false);
    }
    let loaded = loaded.map_err(classify);
    let clean = loaded.is_ok()
        && conn.affected_rows() == rows.num_rows() as u64
        && conn.get_warnings() == 0;
    if clean {
        pause_point("sink_mid_batch");
        conn.query_drop("COMMIT").await.map_err(classify)?;
        return Ok(true);
    }
    let _ = conn.query_drop("ROLLBACK").await;
    match loaded {
        Err(e) if e.class != ErrorClass::Data => Err(e),
        _ => Ok(false),
    }
}

/// Runs `f` between START TRANSACTION and COMMIT; rolls back when it fails.
async fn in_transaction<T>(
    conn: &mut Conn,
    f: impl AsyncFnOnce(&mut Conn) -> Result<T>,
) -> Result<T> {
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(classify)?;
    match f(conn).await {
        Ok(v) => {
            conn.query_drop("COMMIT").await.map_err(classify)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.query_drop("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Multi-row INSERTs of every row (or of the columns at `only`), each statement under the size limit.
async fn insert_rows(
    conn: &mut Conn,
    prefix: &str,
    suffix: &str,
    rows: &Literals,
    only: Option<&[usize]>,
) -> Result<()> {
    let mut sql = String::with_capacity(MAX_STATEMENT_BYTES + 4096);
    let mut first_row = 0;
    for row in 0..rows.num_rows() {
        if sql.is_empty() {
            sql.push_str(prefix);
            first_row = row;
        } else {
            sql.push(',');
        }
        rows.row(row, only, &mut sql)?;
        if sql.len() >= MAX_STATEMENT_BYTES || row + 1 == rows.num_rows() {
            sql.push_str(suffix);
            conn.query_drop(&sql).await.map_err(|e| {
                let mut e = classify(e);
                e.row = e.row.map(|r| r + first_row);
                e
            })?;
            sql.clear();
        }
    }
    Ok(())
}

fn is_key_violation(err: &ConnectorError, plan: &Plan) -> bool {
    let Some(index) = &plan.key_index else {
        return false;
    };
    err.message.starts_with("Duplicate entry")
        && (err.message.ends_with(&format!("'{index}'"))
            || err.message.ends_with(&format!(".{index}'")))
}

fn key_index(indexes: &[(String, Vec<String>)], key: &[String]) -> Option<String> {
    let mut wanted: Vec<String> = key.iter().map(|k| k.to_lowercase()).collect();
    wanted.sort();
    indexes.iter().find_map(|(name, cols)| {
        let mut cols: Vec<String> = cols.iter().map(|c| c.to_lowercase()).collect();
        cols.sort();
        (cols == wanted).then(|| name.clone())
    })
}

fn list(names: &[String]) -> String {
    names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
}

fn create_table_sql(target: &str, schema: &SchemaRef, key: &[String]) -> Result<String> {
    let spell = statements::Spelling {
        quote: q,
        column_type: &values::column_type,
        nullable: " NULL",
        suffix: " DEFAULT CHARSET = utf8mb4",
    };
    statements::create_table(target, schema, key, &spell)
}

#[async_trait]
impl Dialect for Mysql {
    type Plan = Plan;
    type Rows = Literals;

    fn options(&self) -> &TargetOptions {
        &self.options
    }

    fn create_statement(&self, schema: &SchemaRef) -> Result<String> {
        create_table_sql(&self.table.quoted_mysql(), schema, &self.options.key)
    }

    fn describe(&self) -> String {
        format!("mysql {}, table {}", self.db, self.table)
    }

    async fn references(&self) -> Result<Vec<String>> {
        use mysql_async::prelude::Queryable;
        let mut conn = self.conn().await?;
        conn.exec(
            "SELECT DISTINCT REFERENCED_TABLE_NAME FROM information_schema.KEY_COLUMN_USAGE
              WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
                AND REFERENCED_TABLE_NAME IS NOT NULL AND REFERENCED_TABLE_NAME <> TABLE_NAME",
            (self.table.schema.as_deref(), &self.table.name),
        )
        .await
        .map_err(classify)
    }

    async fn problems(&self, schema: &SchemaRef) -> Result<Vec<ConnectorError>> {
        let opts = &self.options;
        let mut problems = Vec::new();
        let mut conn = self.conn().await?;
        let user = client::set_grantee(&mut conn).await?;
        let schema_name = self.table.schema.as_deref();
        let privileges = client::privileges(&mut conn, schema_name, &self.table.name).await?;
        let need = |privilege: &str, why: &str, problems: &mut Vec<ConnectorError>| {
            if !privileges.iter().any(|p| p.eq_ignore_ascii_case(privilege)) {
                problems.push(
                    ConnectorError::fatal(format!(
                        "{user} lacks the {privilege} privilege on {} ({} mode needs it {why})",
                        self.table, opts.mode
                    ))
                    .with_hint(format!(
                        "GRANT {privilege} ON {} TO {user}",
                        match privilege {
                            "CREATE TEMPORARY TABLES" =>
                                format!("{}.*", q(self.table.schema_or("<database>"))),
                            _ => self.table.quoted_mysql(),
                        }
                    )),
                );
            }
        };
        let Some(columns) = client::table_columns(&mut conn, schema_name, &self.table.name).await?
        else {
            for field in schema.fields() {
                if let Err(e) = values::column_type(field, opts.key.contains(field.name())) {
                    problems.push(e);
                }
            }
            if !opts.create {
                problems.push(
                    ConnectorError::fatal(format!(
                        "table {} does not exist in {}",
                        self.table, self.db
                    ))
                    .with_hint("create it, or set create = true under [target]"),
                );
            } else {
                need("CREATE", "to create the table", &mut problems);
            }
            return Ok(problems);
        };
        for field in schema.fields() {
            if !columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(field.name()))
            {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                problems.push(check::missing_column(&self.table, field.name(), &names));
            }
        }
        for column in &columns {
            if column.not_null
                && !column.has_default
                && !schema
                    .fields()
                    .iter()
                    .any(|f| f.name().eq_ignore_ascii_case(&column.name))
            {
                problems.push(
                    ConnectorError::fatal(format!(
                        "column \"{}\" ({}) of {} is NOT NULL without a default, and the result has no such column",
                        column.name, column.data_type, self.table
                    ))
                    .with_hint("add it to the last step's SELECT"),
                );
            }
        }
        let indexes = client::unique_indexes(&mut conn, schema_name, &self.table.name).await?;
        if !opts.key.is_empty()
            && opts.mode != WriteMode::Truncate
            && key_index(&indexes, &opts.key).is_none()
        {
            problems.push(check::no_unique_key(
                &self.table,
                &opts.key,
                opts.mode,
                format!(
                    "ALTER TABLE {} ADD UNIQUE ({})",
                    self.table.quoted_mysql(),
                    list(&opts.key)
                ),
            ));
        }
        need("INSERT", "to write rows", &mut problems);
        match opts.mode {
            WriteMode::Insert | WriteMode::Upsert if !opts.key.is_empty() => {
                if opts.mode == WriteMode::Upsert {
                    need("UPDATE", "to update existing keys", &mut problems);
                }
                need(
                    "CREATE TEMPORARY TABLES",
                    "for its staging table",
                    &mut problems,
                );
            }
            WriteMode::Insert | WriteMode::Upsert => {}
            WriteMode::Sync => {
                need("UPDATE", "to update existing keys", &mut problems);
                need(
                    "DELETE",
                    "to delete rows the source no longer has",
                    &mut problems,
                );
                need("CREATE", "for its keys table", &mut problems);
                need("DROP", "to drop its keys table", &mut problems);
                need(
                    "CREATE TEMPORARY TABLES",
                    "for its staging table",
                    &mut problems,
                );
            }
            WriteMode::Truncate => {
                need("CREATE", "for the table that replaces it", &mut problems);
                need("ALTER", "to swap the tables' names", &mut problems);
                need("DROP", "to drop the old rows", &mut problems);
            }
        }
        Ok(problems)
    }

    async fn prepare(&self, schema: &SchemaRef, resume: bool) -> Result<(Plan, Resume)> {
        let opts = &self.options;
        if let Some(first) = self.problems(schema).await?.into_iter().next() {
            return Err(first);
        }
        let mut conn = self.conn().await?;
        let schema_name = self.table.schema.as_deref();
        let target = self.table.quoted_mysql();
        if client::table_columns(&mut conn, schema_name, &self.table.name)
            .await?
            .is_none()
        {
            conn.query_drop(create_table_sql(&target, schema, &opts.key)?)
                .await
                .map_err(classify)?;
        }
        let table_cols = client::table_columns(&mut conn, schema_name, &self.table.name)
            .await?
            .ok_or_else(|| ConnectorError::fatal(format!("table {} vanished", self.table)))?;
        let spelled = |name: &str| {
            table_cols
                .iter()
                .find(|c| c.name == name)
                .or_else(|| {
                    table_cols
                        .iter()
                        .find(|c| c.name.eq_ignore_ascii_case(name))
                })
                .map(|c| c.name.clone())
                .unwrap_or_else(|| name.to_string())
        };
        let columns: Vec<String> = schema.fields().iter().map(|f| spelled(f.name())).collect();
        let key: Vec<String> = opts.key.iter().map(|k| spelled(k)).collect();
        let key_positions = opts
            .key
            .iter()
            .map(|k| schema.index_of(k))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let staging = match opts.mode {
            WriteMode::Truncate => Some(self.stage_table()),
            WriteMode::Sync => Some(self.keys_table()),
            WriteMode::Insert | WriteMode::Upsert => None,
        };
        let exists = async |conn: &mut Conn, t: &TableName| -> Result<bool> {
            Ok(client::table_columns(conn, t.schema.as_deref(), &t.name)
                .await?
                .is_some())
        };
        let kept = match &staging {
            Some(t) => resume && exists(&mut conn, t).await?,
            None => resume,
        };
        for leftover in [self.stage_table(), self.keys_table(), self.old_table()] {
            if !(kept && staging.as_ref() == Some(&leftover)) {
                conn.query_drop(format!("DROP TABLE IF EXISTS {}", leftover.quoted_mysql()))
                    .await
                    .map_err(classify)?;
            }
        }
        let into = match opts.mode {
            WriteMode::Truncate => {
                let stage = self.stage_table();
                if !kept {
                    conn.query_drop(format!(
                        "CREATE TABLE {} LIKE {target}",
                        stage.quoted_mysql()
                    ))
                    .await
                    .map_err(classify)?;
                    let indexes =
                        client::unique_indexes(&mut conn, stage.schema.as_deref(), &stage.name)
                            .await?;
                    if !key.is_empty() && key_index(&indexes, &key).is_none() {
                        conn.query_drop(format!(
                            "ALTER TABLE {} ADD UNIQUE ({})",
                            stage.quoted_mysql(),
                            list(&key)
                        ))
                        .await
                        .map_err(classify)?;
                    }
                }
                stage
            }
            _ => self.table.clone(),
        };
        let keys_insert = if opts.mode == WriteMode::Sync {
            let keys = self.keys_table().quoted_mysql();
            if !kept {
                conn.query_drop(format!(
                    "CREATE TABLE {keys} AS SELECT {k} FROM {target} LIMIT 0",
                    k = list(&key)
                ))
                .await
                .map_err(classify)?;
                // An index, not a primary key: a key part may be NULL (a unique index allows
                // that), and a key recorded twice (a batch written again) changes nothing.
                conn.query_drop(format!("ALTER TABLE {keys} ADD INDEX ({})", list(&key)))
                    .await
                    .map_err(classify)?;
            }
            Some((
                format!("INSERT INTO {keys} ({}) VALUES ", list(&key)),
                String::new(),
            ))
        } else {
            None
        };
        let indexes = client::unique_indexes(&mut conn, into.schema.as_deref(), &into.name).await?;
        let key_index = key_index(&indexes, &key);
        let into = into.quoted_mysql();
        let cols = list(&columns);
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !key.contains(c))
            .map(|c| format!("{0} = VALUES({0})", q(c)))
            .collect();
        let only_key_unique = key_index.is_some() && indexes.len() == 1;
        let on_duplicate = (opts.mode != WriteMode::Insert && only_key_unique).then(|| {
            if updates.is_empty() {
                format!(" ON DUPLICATE KEY UPDATE {0} = {0}", q(&key[0]))
            } else {
                format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
            }
        });
        let joined = key
            .iter()
            .map(|k| format!("t.{0} = s.{0}", q(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let s_cols = columns
            .iter()
            .map(|c| format!("s.{}", q(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let insert_new = key.first().map(|k0| {
            format!(
                "INSERT INTO {into} ({cols}) SELECT {s_cols} FROM ferry_stage s LEFT JOIN {into} t ON {joined} WHERE t.{} IS NULL",
                q(k0)
            )
        });
        let mut merge = Vec::new();
        if opts.mode != WriteMode::Insert && !updates.is_empty() {
            let sets = columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("t.{0} = s.{0}", q(c)))
                .collect::<Vec<_>>()
                .join(", ");
            merge.push((
                format!("UPDATE {into} t JOIN ferry_stage s ON {joined} SET {sets}"),
                false,
            ));
        }
        if let Some(sql) = insert_new {
            merge.push((sql, true));
        }
        conn.disconnect().await.ok();
        let plan = Plan {
            insert: format!("INSERT INTO {into} ({cols}) VALUES "),
            // A real tab and newline inside the quotes: the session has NO_BACKSLASH_ESCAPES.
            load: format!(
                "LOAD DATA LOCAL INFILE 'ferry-batch' INTO TABLE {into} CHARACTER SET utf8mb4 \
                 FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' ({cols})"
            ),
            on_duplicate,
            key_index,
            key_positions,
            merge,
            stage_setup: format!(
                "CREATE TEMPORARY TABLE IF NOT EXISTS ferry_stage AS SELECT {cols} FROM {target} LIMIT 0"
            ),
            stage_insert: format!("INSERT INTO ferry_stage ({cols}) VALUES "),
            keys_insert,
            keyed: !key.is_empty(),
        };
        Ok((plan, if kept { Resume::Intact } else { Resume::Lost }))
    }

    fn encode(_plan: &Plan, batch: &RecordBatch) -> Result<Literals> {
        Literals::new(batch)
    }

    async fn load(&self, plan: &Arc<Plan>, rows: Literals) -> Result<BatchWritten> {
        let mut conn = self.conn().await?;
        let result = self.write_batch(&mut conn, plan, &rows).await;
        if let Err(e) = &result
            && e.class != ErrorClass::Data
        {
            // The session may be broken: do not hand it to the next batch.
            conn.disconnect().await.ok();
        }
        result
    }

    /// The whole rows: `insert_keys` takes the key's columns by position.
    fn encode_keys(_plan: &Plan, rows: &RecordBatch) -> Result<Literals> {
        Literals::new(rows)
    }

    async fn record_keys(&self, plan: &Arc<Plan>, rows: Literals) -> Result<()> {
        let mut conn = self.conn().await?;
        let result = in_transaction(&mut conn, async |conn| {
            self.insert_keys(conn, plan, &rows).await
        })
        .await;
        if let Err(e) = &result
            && e.class != ErrorClass::Data
        {
            conn.disconnect().await.ok();
        }
        result
    }

    async fn swap(&self, _plan: &Arc<Plan>) -> Result<()> {
        let mut conn = self.conn().await?;
        let target = self.table.quoted_mysql();
        pause_point("sink_finish_before_commit");
        let old = self.old_table().quoted_mysql();
        conn.query_drop(format!(
            "RENAME TABLE {target} TO {old}, {} TO {target}",
            self.stage_table().quoted_mysql()
        ))
        .await
        .map_err(classify)?;
        conn.query_drop(format!("DROP TABLE {old}"))
            .await
            .map_err(classify)?;
        conn.disconnect().await.ok();
        Ok(())
    }

    async fn delete_missing(&self, _plan: &Arc<Plan>) -> Result<u64> {
        let mut conn = self.conn().await?;
        let target = self.table.quoted_mysql();
        let keys = self.keys_table().quoted_mysql();
        // <=>: NULL-safe, so a key with an empty part that the source still has stays.
        let joined = self
            .options
            .key
            .iter()
            .map(|k| format!("k.{0} <=> t.{0}", q(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let deleted = in_transaction(&mut conn, async |conn| {
            conn.query_drop(format!(
                "DELETE t FROM {target} t WHERE NOT EXISTS (SELECT 1 FROM {keys} k WHERE {joined})"
            ))
            .await
            .map_err(classify)?;
            let deleted = conn.affected_rows();
            pause_point("sink_finish_before_commit");
            Ok(deleted)
        })
        .await?;
        conn.query_drop(format!("DROP TABLE {keys}"))
            .await
            .map_err(classify)?;
        conn.disconnect().await.ok();
        Ok(deleted)
    }

    async fn drop_helpers(&self) -> Result<()> {
        let sql = format!(
            "DROP TABLE IF EXISTS {}, {}",
            self.stage_table().quoted_mysql(),
            self.keys_table().quoted_mysql()
        );
        let mut conn = self.conn().await?;
        conn.query_drop(sql).await.map_err(classify)?;
        conn.disconnect().await.ok();
        Ok(())
    }

    fn notes(&self) -> Vec<String> {
        if !self.local_infile_refused.load(Ordering::Relaxed) {
            return Vec::new();
        }
        vec![
            "the server refuses LOAD DATA LOCAL (local_infile=OFF), so rows went in by multi-row INSERT, about half as fast; SET GLOBAL local_infile = 1 on the server lets Ferry load faster".to_string(),
        ]
    }

    fn release(&self) {
        if let Some(pool) = self.pool.lock().expect("pool lock").take() {
            tokio::spawn(pool.disconnect());
        }
    }
}
