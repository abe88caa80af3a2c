//! Incremental sources: each run reads the files no earlier run consumed, as an "available now"
//! stream (the files present at the start, then stop). Files are checkpointed only when the run
//! finishes, so a run that dies takes the same files again when it is resumed.
//!
//! A consumed file that has changed since (same path, other size or modification time) is never
//! skipped silently: the run stops and names it, unless the source says `on_changed_file = "reprocess"`.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use chrono::Utc;
use datafusion::prelude::col;
use ferry_connectors::ConnectorError;
use ferry_connectors::files::source::{ListedFile, list_files};

use crate::book::tables::{CheckpointRow, checkpoints_batch};
use crate::book::{Book, CHECKPOINTS, strings};
use crate::spec::{OnChangedFile, Pipeline};

/// The files each incremental source reads in this run, by source name.
pub type Selection = HashMap<String, Vec<ListedFile>>;

struct Consumed {
    size: i64,
    modified: i64,
    run_id: String,
    time: i64,
}

/// Picks the new (and, when asked, changed) files of every incremental source.
pub async fn select(pipeline: &Pipeline, book: &Book) -> Result<Selection, ConnectorError> {
    let mut selection = Selection::new();
    for source in &pipeline.sources {
        let Some(on_changed) = source.incremental else {
            continue;
        };
        let consumed = consumed(book, &source.name).await?;
        let mut take = Vec::new();
        let crate::spec::Origin::File(file_source) = &source.origin else {
            continue;
        };
        for file in list_files(file_source).await? {
            match consumed.get(&file.path) {
                None => take.push(file),
                Some(c) if c.size == file.size as i64 && c.modified == file.modified => {}
                Some(c) if on_changed == OnChangedFile::Reprocess => {
                    tracing::info!(file = %file.path, run = %c.run_id, "reading a changed file again");
                    take.push(file);
                }
                Some(c) => {
                    let when = chrono::DateTime::from_timestamp_micros(c.time).unwrap_or_default();
                    return Err(ConnectorError::fatal(format!(
                        "source \"{}\": {} was consumed by run {} on {} and has changed since ({} bytes then, {} now)",
                        source.name,
                        file.path,
                        c.run_id,
                        when.format("%Y-%m-%d %H:%M:%S UTC"),
                        c.size,
                        file.size
                    ))
                    .with_hint(format!(
                        "a changed file is not read again silently: restore it, or set on_changed_file = \"reprocess\" under [sources.{}]",
                        source.name
                    )));
                }
            }
        }
        selection.insert(source.name.clone(), take);
    }
    Ok(selection)
}

/// Records the selected files as consumed by `run_id`.
pub async fn record(
    pipeline: &Pipeline,
    book: &Book,
    run_id: &str,
    selection: &Selection,
) -> Result<(), ConnectorError> {
    let now = Utc::now();
    let rows: Vec<CheckpointRow> = selection
        .iter()
        .flat_map(|(source, files)| {
            files.iter().map(move |f| CheckpointRow {
                pipeline: pipeline.name.clone(),
                source: source.clone(),
                path: f.path.clone(),
                size: f.size as i64,
                modified: chrono::DateTime::from_timestamp_micros(f.modified).unwrap_or_default(),
                run_id: run_id.to_string(),
                consumed: true,
                time: now,
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    book.append(CHECKPOINTS, vec![checkpoints_batch(&rows)])
        .await
}

/// The latest checkpoint of every file a source consumed.
async fn consumed(book: &Book, source: &str) -> Result<HashMap<String, Consumed>, ConnectorError> {
    let mut latest: HashMap<String, Consumed> = HashMap::new();
    let Some(df) = book.frame(CHECKPOINTS, "pipeline").await? else {
        return Ok(latest);
    };
    let batches = df
        .filter(col("source").eq(datafusion::prelude::lit(source.to_string())))?
        .collect()
        .await?;
    for b in &batches {
        let paths = strings(b, "path");
        let runs = strings(b, "run_id");
        let sizes = b
            .column_by_name("size")
            .expect("size")
            .as_primitive::<Int64Type>();
        let modified = b
            .column_by_name("modified")
            .expect("modified")
            .as_primitive::<TimestampMicrosecondType>();
        let times = b
            .column_by_name("time")
            .expect("time")
            .as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let newer = latest
                .get(paths.value(i))
                .is_none_or(|c| c.time <= times.value(i));
            if newer && !paths.is_null(i) {
                latest.insert(
                    paths.value(i).to_string(),
                    Consumed {
                        size: sizes.value(i),
                        modified: modified.value(i),
                        run_id: runs.value(i).to_string(),
                        time: times.value(i),
                    },
                );
            }
        }
    }
    Ok(latest)
}
