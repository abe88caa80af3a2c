//! Proof that source and target agree: the pipeline's result computed again from its sources and
//! compared with what the target holds, through the target's reader. `count` compares the numbers
//! of rows; `checksum` compares every written column of every key (the target's values cast to the
//! result's types, compared with IS DISTINCT FROM) and names the keys that differ: missing from
//! the target, different, or extra (rows the source no longer has; kept by design by `insert` and
//! `upsert`, a difference for `sync` and `truncate`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::BooleanArray;
use arrow::datatypes::DataType;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use ferry_connectors::{Read, WriteMode};

use crate::plan;
use crate::spec::Pipeline;

/// How deep to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Count,
    Checksum,
}

impl Depth {
    pub fn parse(text: &str) -> Option<Depth> {
        match text {
            "count" => Some(Depth::Count),
            "checksum" => Some(Depth::Checksum),
            _ => None,
        }
    }
}

/// Keys named in a report, at most this many of each kind.
const NAMED: usize = 20;

/// Rows of one kind of difference: how many, and the first keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences {
    pub count: u64,
    pub keys: Vec<String>,
}

/// What a reconciliation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub depth: Depth,
    pub table: String,
    pub source_rows: u64,
    pub target_rows: u64,
    pub missing: Differences,
    pub different: Differences,
    pub extra: Differences,
    /// The mode keeps target rows the source does not have (insert, upsert).
    pub extra_allowed: bool,
}

impl Reconciliation {
    pub fn agrees(&self) -> bool {
        match self.depth {
            Depth::Count if self.extra_allowed => self.source_rows <= self.target_rows,
            Depth::Count => self.source_rows == self.target_rows,
            Depth::Checksum => {
                self.missing.count == 0
                    && self.different.count == 0
                    && (self.extra_allowed || self.extra.count == 0)
            }
        }
    }
}

impl fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = crate::run::report::thousands;
        let verdict = if self.agrees() { "agree" } else { "DIFFER" };
        write!(
            f,
            "source and target {verdict} ({}): {} rows in the source, {} in {}",
            match self.depth {
                Depth::Count => "count",
                Depth::Checksum => "every column of every key",
            },
            n(self.source_rows),
            n(self.target_rows),
            self.table
        )?;
        if self.depth == Depth::Checksum {
            for (what, d) in [
                ("missing from the target", &self.missing),
                ("different", &self.different),
                (
                    if self.extra_allowed {
                        "only in the target (kept by this mode)"
                    } else {
                        "only in the target"
                    },
                    &self.extra,
                ),
            ] {
                if d.count > 0 {
                    let more = d.count.saturating_sub(d.keys.len() as u64);
                    write!(
                        f,
                        "\n  {} {what}: {}{}",
                        n(d.count),
                        d.keys.join("; "),
                        if more > 0 {
                            format!(" (and {} more)", n(more))
                        } else {
                            String::new()
                        }
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Registers the target table as `__ferry_target_raw`: read in ranges of its first key column on
/// as many connections as the machine has cores where the reader can (a database's integer, date
/// or timestamp key; an OData key), else whole on one.
async fn register_target(
    reader: &dyn ferry_connectors::Reader,
    ctx: &SessionContext,
    table: &str,
    key: Option<&String>,
) -> Result<(), ferry_connectors::ConnectorError> {
    let whole = Read::Table {
        name: table.to_string(),
        partitions: None,
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if let Some(key) = key.filter(|_| cores > 1) {
        let ranges = Read::Table {
            name: table.to_string(),
            partitions: Some((cores, key.clone())),
        };
        if reader
            .register(ctx, "__ferry_target_raw", &ranges)
            .await
            .is_ok()
        {
            return Ok(());
        }
    }
    reader.register(ctx, "__ferry_target_raw", &whole).await
}

/// Compares `pipeline`'s result with its target.
pub async fn reconcile(pipeline: &Pipeline, depth: Depth) -> Result<Reconciliation, String> {
    let destination = &pipeline.target.destination;
    let Some(reader) = destination.reader() else {
        return Err(format!(
            "reconciling reads the target back, and Ferry does not read {} targets yet",
            destination.connector().name()
        ));
    };
    if depth == Depth::Checksum && pipeline.target.options.key.is_empty() {
        return Err(
            "comparing every row needs the target's key: set [target] key, or reconcile = \"count\""
                .into(),
        );
    }
    match compare(pipeline, reader.as_ref(), depth).await? {
        Compared::Found(found) => Ok(found),
        Compared::NoTarget { why, .. } => Err(format!("reading the target back: {why}")),
    }
}

/// What comparing found: the target's rows against the result, or no target table to read.
pub(crate) enum Compared {
    Found(Reconciliation),
    /// The target table cannot be read (it does not exist yet): the result's rows, and why.
    NoTarget {
        source_rows: u64,
        why: String,
    },
}

/// The comparison behind `reconcile` and `--dry-run`: the result planned again, the target read
/// through `reader`, counted (and, for `Checksum`, joined on the key, which it must have).
pub(crate) async fn compare(
    pipeline: &Pipeline,
    reader: &dyn ferry_connectors::Reader,
    depth: Depth,
) -> Result<Compared, String> {
    let opts = &pipeline.target.options;
    let planned = plan::plan(pipeline).await.map_err(|e| e.to_string())?;
    let ctx = &planned.ctx;
    let registered = register_target(reader, ctx, &opts.table, opts.key.first()).await;
    if let Err(why) = registered {
        let source_rows = planned
            .result()
            .clone()
            .count()
            .await
            .map_err(|e| e.to_string())? as u64;
        return Ok(Compared::NoTarget {
            source_rows,
            why: why.to_string(),
        });
    }
    let raw = ctx
        .table("__ferry_target_raw")
        .await
        .map_err(|e| e.to_string())?;
    let target_columns: Vec<String> = raw
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // The written columns: the result's that the target has, the target's cast to the result's types.
    let result = planned.result().clone();
    let written: Vec<(String, arrow::datatypes::DataType)> = result
        .schema()
        .fields()
        .iter()
        .filter(|f| target_columns.contains(f.name()))
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let column = |name: &str| datafusion::prelude::col(datafusion::common::Column::from_name(name));
    let source = result
        .select(written.iter().map(|(c, _)| column(c)).collect::<Vec<_>>())
        .map_err(|e| e.to_string())?;
    let target_view = raw
        .select(
            written
                .iter()
                .map(|(c, t)| datafusion::logical_expr::cast(column(c), t.clone()).alias(c))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| e.to_string())?;
    ctx.register_table("__ferry_r", source.into_view())
        .map_err(|e| e.to_string())?;
    ctx.register_table("__ferry_t", target_view.into_view())
        .map_err(|e| e.to_string())?;
    // The first column of a query's rows.
    let rows = async |sql: String| -> Result<Vec<String>, String> {
        let (_, rows) = super::query_text(ctx, &sql)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    };
    let count = async |sql: String| -> Result<u64, String> {
        Ok(rows(sql)
            .await?
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    };
    let extra_allowed = matches!(opts.mode, WriteMode::Insert | WriteMode::Upsert);
    let mut found = Reconciliation {
        depth,
        table: opts.table.clone(),
        source_rows: 0,
        target_rows: 0,
        missing: Differences::default(),
        different: Differences::default(),
        extra: Differences::default(),
        extra_allowed,
    };
    if depth == Depth::Count {
        found.source_rows = count("SELECT count(*) FROM __ferry_r".into()).await?;
        found.target_rows = count("SELECT count(*) FROM __ferry_t".into()).await?;
        return Ok(Compared::Found(found));
    }
    let q = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let on = opts
        .key
        .iter()
        .map(|k| format!("r.{0} = t.{0}", q(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let key_text = |side: &str| {
        let parts: Vec<String> = opts
            .key
            .iter()
            .map(|k| format!("CAST({side}.{} AS VARCHAR)", q(k)))
            .collect();
        format!("concat_ws(', ', {})", parts.join(", "))
    };
    let differs = written
        .iter()
        .filter(|(c, _)| !opts.key.contains(c))
        .map(|(c, _)| format!("(r.{0} IS DISTINCT FROM t.{0})", q(c)))
        .collect::<Vec<_>>();
    let differs = if differs.is_empty() {
        "false".to_string()
    } else {
        differs.join(" OR ")
    };
    // One pass over both sides counts each side's rows (as they stream into the join) and every
    // kind of difference; the keys are read only for the kinds that occur. A reconciliation that
    // agrees reads each side once.
    let source_tally = Tally::register(ctx, "__ferry_tally_r");
    let target_tally = Tally::register(ctx, "__ferry_tally_t");
    let joined_by = |r: &str, t: &str| {
        format!(
            "FROM (SELECT *, {r} AS __ferry_in FROM __ferry_r) r \
             FULL OUTER JOIN (SELECT *, {t} AS __ferry_in FROM __ferry_t) t ON {on}"
        )
    };
    let tallied = joined_by("__ferry_tally_r()", "__ferry_tally_t()");
    let joined = joined_by("true", "true");
    let kinds_sql = format!(
        "SELECT count(CASE WHEN t.__ferry_in IS NULL THEN 1 END), \
         count(CASE WHEN r.__ferry_in AND t.__ferry_in AND ({differs}) THEN 1 END), \
         count(CASE WHEN r.__ferry_in IS NULL THEN 1 END) {tallied}"
    );
    let (_, counted) = super::query_text(ctx, &kinds_sql)
        .await
        .map_err(|e| e.to_string())?;
    found.source_rows = source_tally.load(Ordering::Relaxed);
    found.target_rows = target_tally.load(Ordering::Relaxed);
    let counted: Vec<u64> = counted
        .into_iter()
        .next()
        .unwrap_or_default()
        .iter()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let kinds = [
        (
            format!("{joined} WHERE t.__ferry_in IS NULL"),
            key_text("r"),
        ),
        (
            format!("{joined} WHERE r.__ferry_in AND t.__ferry_in AND ({differs})"),
            key_text("r"),
        ),
        (
            format!("{joined} WHERE r.__ferry_in IS NULL"),
            key_text("t"),
        ),
    ];
    let mut results = Vec::new();
    for (n, (from, key)) in kinds.into_iter().enumerate() {
        let n = counted.get(n).copied().unwrap_or(0);
        let keys = if n > 0 {
            rows(format!("SELECT {key} AS k {from} ORDER BY k LIMIT {NAMED}")).await?
        } else {
            Vec::new()
        };
        results.push(Differences { count: n, keys });
    }
    found.extra = results.pop().unwrap_or_default();
    found.different = results.pop().unwrap_or_default();
    found.missing = results.pop().unwrap_or_default();
    Ok(Compared::Found(found))
}

/// A function of no arguments that returns `true` for every row and counts the rows it was
/// evaluated on: put in one side's projection under the join, it counts that side's rows in the
/// same pass (a join reads each side whole), where `count(*)` of each side would read it again.
#[derive(Debug)]
struct Tally {
    name: String,
    rows: Arc<AtomicU64>,
    signature: Signature,
}

impl Tally {
    /// Registers `name()` in `ctx`; returns its counter.
    fn register(ctx: &SessionContext, name: &str) -> Arc<AtomicU64> {
        let rows = Arc::new(AtomicU64::new(0));
        ctx.register_udf(ScalarUDF::new_from_impl(Tally {
            name: name.to_string(),
            rows: rows.clone(),
            signature: Signature::nullary(Volatility::Volatile),
        }));
        rows
    }
}

impl PartialEq for Tally {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.rows, &other.rows)
    }
}

impl Eq for Tally {}

impl std::hash::Hash for Tally {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Tally {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        self.rows
            .fetch_add(args.number_rows as u64, Ordering::Relaxed);
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
            true;
            args.number_rows
        ]))))
    }
}
