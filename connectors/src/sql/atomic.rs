//! `atomic = true` on a SQL target: each batch is all or nothing. A SQL batch is already one
//! transaction; what atomic changes is what happens when the database refuses a row of it: the
//! whole batch is refused, every row to quarantine with the database's reason, instead of being
//! split until the bad rows are isolated and the others land. The dropbox makes an entity one batch,
//! so the entity lands whole or not at all.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::Deserialize;

use crate::error::{ConnectorError, ErrorClass, Result};
use crate::sink::{Attempt, BatchWritten, Finished, Resume, Sink};

/// The keys a SQL target has beyond the generic ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlTargetKeys {
    /// Each batch all or nothing: a refused row refuses the batch.
    #[serde(default)]
    pub atomic: bool,
}

/// `sink` with batches refused whole.
pub fn whole_batches(sink: Arc<dyn Sink>, atomic: bool) -> Arc<dyn Sink> {
    if atomic {
        Arc::new(WholeBatches(sink))
    } else {
        sink
    }
}

struct WholeBatches(Arc<dyn Sink>);

#[async_trait]
impl Sink for WholeBatches {
    fn describe(&self) -> String {
        format!("{} (atomic batches)", self.0.describe())
    }

    async fn check(&self, schema: &SchemaRef) -> Result<Vec<ConnectorError>> {
        self.0.check(schema).await
    }

    async fn begin(&self, schema: SchemaRef, attempt: &Attempt) -> Result<Resume> {
        self.0.begin(schema, attempt).await
    }

    fn exactly_once(&self) -> bool {
        self.0.exactly_once()
    }

    async fn write(&self, batch: RecordBatch) -> Result<BatchWritten> {
        let rows = batch.num_rows();
        match self.0.write(batch).await {
            Err(e) if e.class == ErrorClass::Data => {
                let whole = ConnectorError {
                    message: format!(
                        "the batch was refused whole (atomic): {}{}",
                        e.message,
                        e.row
                            .map(|r| format!(" (row {})", r + 1))
                            .unwrap_or_default()
                    ),
                    row: None,
                    ..e
                };
                Ok(BatchWritten {
                    rejected: (0..rows).map(|i| (i, whole.clone())).collect(),
                    ..Default::default()
                })
            }
            other => other,
        }
    }

    async fn keep_keys(&self, rows: RecordBatch) -> Result<()> {
        self.0.keep_keys(rows).await
    }

    async fn finish(&self) -> Result<Finished> {
        self.0.finish().await
    }

    async fn abort(&self) {
        self.0.abort().await
    }

    async fn references(&self) -> Result<Vec<String>> {
        self.0.references().await
    }

    fn notes(&self) -> Vec<String> {
        self.0.notes()
    }

    fn planned_ddl(&self, schema: &SchemaRef) -> Option<Result<String>> {
        self.0.planned_ddl(schema)
    }
}
