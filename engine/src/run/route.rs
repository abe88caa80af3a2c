//! Routing the result to the workers: every input partition of the plan is read by a router task that
//! sends each row to the worker its key hashes to (so one key is never written by two workers at once,
//! and a key always lands on the same worker in every run), or whole batches round robin when there is
//! no key. Bounded channels carry the backpressure back to DataFusion.
//!
//! ```text
//! plan partition 0 ──router──┬──▶ worker 0
//! plan partition 1 ──router──┼──▶ worker 1      hash(key) % workers
//!        ...                 └──▶ worker N-1
//! ```

use std::sync::Arc;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::sync::mpsc;

type Item = Result<RecordBatch, DataFusionError>;

/// Turns the plan's partitions into exactly `workers` streams, keyed rows routed by hash.
pub fn route(
    inputs: Vec<SendableRecordBatchStream>,
    workers: usize,
    key: &[String],
) -> Result<Vec<SendableRecordBatchStream>, DataFusionError> {
    let schema: SchemaRef = inputs
        .first()
        .map(|s| s.schema())
        .ok_or_else(|| DataFusionError::Internal("a plan with no partition".into()))?;
    let key_columns: Vec<usize> = key
        .iter()
        .map(|k| schema.index_of(k))
        .collect::<Result<_, _>>()?;
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..workers).map(|_| mpsc::channel::<Item>(2)).unzip();
    let senders = Arc::new(senders);
    for (n, mut input) in inputs.into_iter().enumerate() {
        let senders = senders.clone();
        let key_columns = key_columns.clone();
        tokio::spawn(async move {
            let mut next = n;
            while let Some(batch) = input.next().await {
                let parts = match batch {
                    Err(e) => vec![(next % senders.len(), Err(e))],
                    Ok(batch) if key_columns.is_empty() => {
                        next += 1;
                        vec![(next % senders.len(), Ok(batch))]
                    }
                    Ok(batch) => match split(&batch, &key_columns, senders.len()) {
                        Ok(parts) => parts.into_iter().map(|(w, b)| (w, Ok(b))).collect(),
                        Err(e) => vec![(0, Err(e))],
                    },
                };
                // A worker that is gone (failed, or a partition this process does not write in a
                // spread run) takes nothing more; the others still get their rows.
                for (worker, part) in parts {
                    let _ = senders[worker].send(part).await;
                }
                if senders.iter().all(|s| s.is_closed()) {
                    return;
                }
            }
        });
    }
    drop(senders);
    Ok(receivers
        .into_iter()
        .map(|receiver| {
            let stream = futures::stream::unfold(receiver, |mut r| async move {
                r.recv().await.map(|item| (item, r))
            });
            Box::pin(RecordBatchStreamAdapter::new(schema.clone(), stream))
                as SendableRecordBatchStream
        })
        .collect())
}

/// The rows of `batch` for each worker, by a fixed-seed hash of the key columns.
fn split(
    batch: &RecordBatch,
    key_columns: &[usize],
    workers: usize,
) -> Result<Vec<(usize, RecordBatch)>, DataFusionError> {
    let state = RandomState::with_seed(0x0F3E_22A1);
    let mut hashes = vec![0u64; batch.num_rows()];
    let keys: Vec<_> = key_columns
        .iter()
        .map(|&i| batch.column(i).clone())
        .collect();
    create_hashes(&keys, &state, &mut hashes)?;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); workers];
    for (i, h) in hashes.iter().enumerate() {
        rows[(*h % workers as u64) as usize].push(i as u32);
    }
    rows.into_iter()
        .enumerate()
        .filter(|(_, r)| !r.is_empty())
        .map(|(w, r)| Ok((w, take_record_batch(batch, &UInt32Array::from(r))?)))
        .collect()
}
