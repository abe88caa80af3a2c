//! A dry run: what a run would do to a database table (inserts, updates, deletes), counted by
//! comparing the result with the target's rows in DataFusion (`reconcile::compare`, the same
//! comparison a reconciliation makes after the run). Nothing is written and no bookkeeping
//! is touched; the target is only read (its key and the result's columns).

use ferry_connectors::WriteMode;

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
    use super::reconcile::{Compared, Depth, compare};
    let keyed = opts.mode != WriteMode::Truncate && !opts.key.is_empty();
    let depth = if keyed { Depth::Checksum } else { Depth::Count };
    let found = match compare(pipeline, reader.as_ref(), depth).await? {
        // No such table yet: every row would be new.
        Compared::NoTarget { source_rows, .. } => {
            return Ok(Changes {
                inserts: source_rows,
                ..Default::default()
            });
        }
        Compared::Found(found) => found,
    };
    if !keyed {
        return Ok(Changes {
            inserts: found.source_rows,
            deletes: if opts.mode == WriteMode::Truncate {
                found.target_rows
            } else {
                0
            },
            ..Default::default()
        });
    }
    let (inserts, updates) = (found.missing.count, found.different.count);
    let same = found.source_rows.saturating_sub(inserts + updates);
    let (updates, unchanged) = if opts.mode == WriteMode::Insert {
        // Insert skips every existing key, changed or not.
        (0, updates + same)
    } else {
        (updates, same)
    };
    Ok(Changes {
        inserts,
        updates,
        unchanged,
        deletes: if opts.mode == WriteMode::Sync {
            found.extra.count
        } else {
            0
        },
    })
}
