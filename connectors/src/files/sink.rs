//! Parquet and CSV files as targets.
//!
//! Rows stream into a hidden file beside the target (`.<name>.ferry-partial`); `finish` renames it over
//! the target in one step, so a reader sees the old file or the new one, and a failed run leaves the old
//! file untouched. Files have no keys, so the only mode is `truncate` (replace the file).

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::csv::Writer as CsvWriter;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::FileFormat;
use super::parquet_writer::ParallelParquetWriter;
use crate::error::{ConnectorError, Result};
use crate::sink::{Attempt, BatchWritten, Finished, Resume, Sink, WriteMode};

enum Writer {
    Parquet(Box<ParallelParquetWriter<BufWriter<File>>>),
    Csv(Box<CsvWriter<BufWriter<File>>>),
}

/// A single parquet or CSV file, replaced whole when the run finishes.
pub struct FileSink {
    path: PathBuf,
    format: FileFormat,
    mode: WriteMode,
    writer: Arc<Mutex<Option<Writer>>>,
}

impl FileSink {
    pub fn new(path: PathBuf, format: FileFormat, mode: WriteMode) -> Self {
        Self {
            path,
            format,
            mode,
            writer: Arc::new(Mutex::new(None)),
        }
    }

    fn partial_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path.with_file_name(format!(".{name}.ferry-partial"))
    }

    fn io_error(&self, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::fatal(format!("writing {}: {e}", self.path.display()))
    }
}

#[async_trait]
impl Sink for FileSink {
    fn describe(&self) -> String {
        format!("{} file {}", self.format, self.path.display())
    }

    async fn check(&self, _schema: &SchemaRef) -> Result<Vec<ConnectorError>> {
        // The pipeline checker reports both at their lines; this guards every other caller.
        let mut problems: Vec<ConnectorError> =
            crate::connector::mode_refused(&super::connector::SingleFile, self.mode)
                .into_iter()
                .collect();
        if !matches!(self.format, FileFormat::Parquet | FileFormat::Csv) {
            problems.push(
                ConnectorError::fatal(format!("Ferry does not write {} files", self.format))
                    .with_hint("write parquet, csv or delta"),
            );
        }
        Ok(problems)
    }

    fn exactly_once(&self) -> bool {
        true
    }

    /// A file starts over on every attempt: nothing is visible until `finish` renames it.
    async fn begin(&self, schema: SchemaRef, _attempt: &Attempt) -> Result<Resume> {
        if let Some(first) = self.check(&schema).await?.into_iter().next() {
            return Err(first);
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io_error(e))?;
        }
        let file = File::create(self.partial_path()).map_err(|e| self.io_error(e))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        let writer = match self.format {
            FileFormat::Csv => Writer::Csv(Box::new(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out),
            )),
            _ => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    // Small row groups keep the writer's buffer, and so the run's memory, flat.
                    .set_max_row_group_row_count(Some(128 * 1024))
                    .build();
                Writer::Parquet(Box::new(
                    ParallelParquetWriter::try_new(out, schema, props)
                        .map_err(|e| self.io_error(e))?,
                ))
            }
        };
        *self.writer.lock().expect("writer lock") = Some(writer);
        Ok(Resume::Lost)
    }

    async fn write(&self, batch: RecordBatch) -> Result<BatchWritten> {
        let writer = self.writer.clone();
        let rows = batch.num_rows() as u64;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = writer.lock().expect("writer lock");
            let result = match guard.as_mut() {
                Some(Writer::Parquet(w)) => w.write(&batch).map_err(|e| e.to_string()),
                Some(Writer::Csv(w)) => w.write(&batch).map_err(|e| e.to_string()),
                None => Err("write before begin".to_string()),
            };
            result.map_err(|e| ConnectorError::fatal(format!("writing {}: {e}", path.display())))
        })
        .await
        .map_err(|e| self.io_error(e))??;
        Ok(BatchWritten {
            written: rows,
            ..Default::default()
        })
    }

    async fn finish(&self) -> Result<Finished> {
        let writer = self.writer.lock().expect("writer lock").take();
        match writer {
            Some(Writer::Parquet(w)) => {
                w.close().map_err(|e| self.io_error(e))?;
            }
            Some(Writer::Csv(w)) => {
                let mut out = w.into_inner();
                std::io::Write::flush(&mut out).map_err(|e| self.io_error(e))?;
            }
            None => return Err(ConnectorError::fatal("finish before begin")),
        }
        std::fs::rename(self.partial_path(), &self.path).map_err(|e| self.io_error(e))?;
        Ok(Finished::default())
    }

    async fn abort(&self) {
        self.writer.lock().expect("writer lock").take();
        let _ = std::fs::remove_file(self.partial_path());
    }
}
