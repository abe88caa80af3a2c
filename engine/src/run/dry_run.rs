//! A dry run: what a run would do to a database table (inserts, updates, deletes), counted by
//! comparing the result with the target's rows in DataFusion. Nothing is written and no bookkeeping
//! is touched; the target is only read (its key and the result's columns).

use ferry_connectors::Read;
use ferry_connectors::WriteMode;

use crate::plan;
use crate::spec::Pipeline;

/// What a run would change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub inserts: u64,
    /// Existing keys whose row would change (upsert, sync).
    pub updates: u64,
    /// Existing keys whose row is already as the result has it (upsert, sync), or that insert skips.
    pub unchanged: u64,
    pub deletes: u64,
}

/// Counts what running `pipeline` would change in its PostgreSQL or MySQL target.
pub async fn dry_run(pipeline: &Pipeline) -> Result<Changes, String> {
    let opts = &pipeline.target.options;
    let destination = &pipeline.target.destination;
    let Some(reader) = destination.reader() else {
        return Err(format!(
            "--dry-run reads the target to count its changes, and Ferry does not read {} targets",
            destination.connector().name()
        ));
    };
    let planned = plan::plan(pipeline).await.map_err(|e| e.to_string())?;
    let ctx = &planned.ctx;
    ctx.register_table("__ferry_result", planned.result().clone().into_view())
        .map_err(|e| e.to_string())?;
    // The first row of a query, as numbers (NULL sums as 0).
    let counts = async |sql: String| -> Result<Vec<u64>, String> {
        let (_, rows) = super::query_text(ctx, &sql)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .first()
            .map(|row| row.iter().map(|v| v.parse().unwrap_or(0)).collect())
            .unwrap_or_default())
    };
    let count = async |sql: String| -> Result<u64, String> {
        Ok(counts(sql).await?.first().copied().unwrap_or(0))
    };
    let target = Read::Table {
        name: opts.table.clone(),
        partitions: None,
    };
    if reader
        .register(ctx, "__ferry_target", &target)
        .await
        .is_err()
    {
        // No such table yet: every row would be new.
        let inserts = count("SELECT count(*) FROM __ferry_result".into()).await?;
        return Ok(Changes {
            inserts,
            ..Default::default()
        });
    }
    if opts.mode == WriteMode::Truncate || opts.key.is_empty() {
        return Ok(Changes {
            inserts: count("SELECT count(*) FROM __ferry_result".into()).await?,
            deletes: if opts.mode == WriteMode::Truncate {
                count("SELECT count(*) FROM __ferry_target".into()).await?
            } else {
                0
            },
            ..Default::default()
        });
    }
    let q = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let on = opts
        .key
        .iter()
        .map(|k| format!("r.{0} = t.{0}", q(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let k0 = q(&opts.key[0]);
    let result_schema = planned.result().schema().clone();
    let target_columns: Vec<String> = ctx
        .table("__ferry_target")
        .await
        .map_err(|e| e.to_string())?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let differs = result_schema
        .fields()
        .iter()
        .filter(|f| !opts.key.contains(f.name()) && target_columns.contains(f.name()))
        .map(|f| format!("(r.{0} IS DISTINCT FROM t.{0})", q(f.name())))
        .collect::<Vec<_>>();
    let differs = if differs.is_empty() {
        "false".to_string()
    } else {
        differs.join(" OR ")
    };
    let from = format!("__ferry_result r LEFT JOIN __ferry_target t ON {on}");
    let found = counts(format!(
        "SELECT sum(CASE WHEN t.{k0} IS NULL THEN 1 ELSE 0 END),
                sum(CASE WHEN t.{k0} IS NOT NULL AND ({differs}) THEN 1 ELSE 0 END),
                sum(CASE WHEN t.{k0} IS NOT NULL AND NOT ({differs}) THEN 1 ELSE 0 END)
           FROM {from}"
    ))
    .await?;
    let at = |i: usize| found.get(i).copied().unwrap_or(0);
    let (inserts, updates, unchanged) = if opts.mode == WriteMode::Insert {
        (at(0), 0, at(1) + at(2))
    } else {
        (at(0), at(1), at(2))
    };
    let deletes = if opts.mode == WriteMode::Sync {
        count(format!(
            "SELECT count(*) FROM __ferry_target t WHERE NOT EXISTS (SELECT 1 FROM __ferry_result r WHERE {on})"
        ))
        .await?
    } else {
        0
    };
    Ok(Changes {
        inserts,
        updates,
        unchanged,
        deletes,
    })
}
