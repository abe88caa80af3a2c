//! Bad-row isolation: a batch the target refuses for its data is split until every bad row is
//! alone, so the good rows land once and only the bad ones go to quarantine.
//!
//! ```text
//! write(rows) ── ok ─────────────────────────▶ landed (and any per-row refusals the sink reported)
//!             ── data error naming row r ────▶ r is bad; write the rows before it and after it
//!             ── data error naming no row ───▶ write each half
//!             ── data error, one row ────────▶ that row is bad
//!             ── retryable, after retries ───▶ every row of the slice waits in quarantine as retryable
//! ```
//!
//! A target that names the failing row (PostgreSQL's COPY line, MySQL's "at row N") costs about one
//! write per bad row; one that does not costs about 2·log2(rows / bad) writes per bad row. The
//! benchmark harness measures both (`benches/benches/hot_paths.rs`).

use std::future::Future;

use arrow::record_batch::RecordBatch;
use ferry_connectors::{BatchWritten, ConnectorError, ErrorClass};

/// Writes `batch` through `write`, splitting on data errors. `reject` is told of every bad row as it
/// is found and may stop the batch (too many rejected rows in a row). Returns what landed and the
/// bad rows, by index in `batch`, in order.
pub async fn isolate<W, F>(
    batch: &RecordBatch,
    mut write: W,
    mut reject: impl FnMut(&ConnectorError) -> Result<(), ConnectorError>,
    retries_spent: impl Fn(ConnectorError) -> ConnectorError,
) -> Result<(BatchWritten, Vec<(usize, ConnectorError)>), ConnectorError>
where
    W: FnMut(RecordBatch) -> F,
    F: Future<Output = Result<BatchWritten, ConnectorError>>,
{
    let mut written = BatchWritten::default();
    let mut rejected = Vec::new();
    let mut pending = vec![(0usize, batch.num_rows())];
    while let Some((offset, len)) = pending.pop() {
        if len == 0 {
            continue;
        }
        match write(batch.slice(offset, len)).await {
            Ok(mut done) => {
                for (row, e) in std::mem::take(&mut done.rejected) {
                    reject(&e)?;
                    rejected.push((offset + row, e));
                }
                written += done;
            }
            Err(e) if e.class == ErrorClass::Data => {
                let bad = match e.row {
                    Some(r) if r < len => Some(r),
                    _ if len == 1 => Some(0),
                    _ => None,
                };
                match bad {
                    Some(r) => {
                        pending.push((offset + r + 1, len - r - 1));
                        pending.push((offset, r));
                        reject(&e)?;
                        rejected.push((offset + r, e));
                    }
                    None => {
                        let half = len / 2;
                        pending.push((offset + half, len - half));
                        pending.push((offset, half));
                    }
                }
            }
            // Still unavailable after every retry: the rows wait in quarantine, marked as
            // retryable, and the run goes on; `ferry quarantine retry` can land them later.
            Err(e) if e.class == ErrorClass::Retryable => {
                let e = retries_spent(e);
                for row in offset..offset + len {
                    reject(&e)?;
                    rejected.push((row, e.clone()));
                }
            }
            Err(e) => return Err(e),
        }
    }
    rejected.sort_by_key(|(row, _)| *row);
    Ok((written, rejected))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn ids(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))]).unwrap()
    }

    /// A target that refuses a write holding an id divisible by 97, naming the row or not.
    async fn target(batch: RecordBatch, names_row: bool) -> Result<BatchWritten, ConnectorError> {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        match ids.iter().position(|id| id.unwrap() % 97 == 0) {
            None => Ok(BatchWritten {
                written: batch.num_rows() as u64,
                ..Default::default()
            }),
            Some(r) => Err(ConnectorError::data(
                format!("id {} refused", ids.value(r)),
                names_row.then_some(r),
            )),
        }
    }

    #[tokio::test]
    async fn exactly_the_bad_rows_are_isolated_whether_or_not_the_target_names_them() {
        for names_row in [true, false] {
            let batch = ids(1000);
            let (written, rejected) = isolate(&batch, |b| target(b, names_row), |_| Ok(()), |e| e)
                .await
                .unwrap();
            let bad: Vec<usize> = rejected.iter().map(|(r, _)| *r).collect();
            let expected: Vec<usize> = (0..1000).filter(|i| i % 97 == 0).collect();
            assert_eq!(bad, expected, "names_row={names_row}");
            assert_eq!(written.written, 1000 - expected.len() as u64);
            assert_eq!(rejected[1].1.message, "id 97 refused");
        }
    }

    #[tokio::test]
    async fn reject_can_stop_the_batch() {
        let stopped = isolate(
            &ids(1000),
            |b| target(b, true),
            |_| Err(ConnectorError::fatal("too many")),
            |e| e,
        )
        .await
        .unwrap_err();
        assert_eq!(stopped.message, "too many");
    }
}
