//! A parquet file written with its columns encoded in parallel. Encoding (dictionaries, pages,
//! zstd) is most of the CPU of writing parquet, and `ArrowWriter` does it one column after the
//! other on one thread: a table read from a database on several connections waited for it. Here
//! each batch's columns are encoded on the rayon pool (one thread per core, off tokio's workers),
//! each column by its own `ArrowColumnWriter`; a full row group's chunks are appended to the file
//! in column order, so the file is the one `ArrowWriter` would write, row groups included.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;

pub struct ParallelParquetWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// The open row group's column writers (one per leaf column), and its rows so far.
    columns: Vec<ArrowColumnWriter>,
    rows: usize,
    row_groups: usize,
    max_rows: usize,
}

impl<W: Write + Send> ParallelParquetWriter<W> {
    pub fn try_new(out: W, schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let max_rows = props
            .max_row_group_row_count()
            .unwrap_or(1024 * 1024)
            .max(1);
        // ArrowWriter writes the file's header and the Arrow schema into its metadata as always.
        let (file, factory) =
            ArrowWriter::try_new(out, schema.clone(), Some(props))?.into_serialized_writer()?;
        let columns = factory.create_column_writers(0)?;
        Ok(Self {
            file,
            factory,
            schema,
            columns,
            rows: 0,
            row_groups: 0,
            max_rows,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut batch = batch.clone();
        while batch.num_rows() > 0 {
            let room = self.max_rows - self.rows;
            let now = batch.slice(0, batch.num_rows().min(room));
            batch = batch.slice(now.num_rows(), batch.num_rows() - now.num_rows());
            self.encode(&now)?;
            if self.rows == self.max_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Encodes `batch` (which fits the open row group) into its column writers, in parallel.
    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut leaves: Vec<ArrowLeafColumn> = Vec::with_capacity(self.columns.len());
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column)?);
        }
        if leaves.len() != self.columns.len() {
            return Err(ParquetError::General(format!(
                "{} leaf columns for {} column writers",
                leaves.len(),
                self.columns.len()
            )));
        }
        self.columns
            .par_iter_mut()
            .zip(leaves.par_iter())
            .try_for_each(|(writer, leaf)| writer.write(leaf))?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Closes the open row group (its last pages compressed in parallel) and appends it.
    fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        self.row_groups += 1;
        let next = self.factory.create_column_writers(self.row_groups)?;
        let writers = std::mem::replace(&mut self.columns, next);
        let chunks = writers
            .into_par_iter()
            .map(|w| w.close())
            .collect::<Result<Vec<_>>>()?;
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.rows = 0;
        Ok(())
    }

    /// Writes the last row group and the footer.
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        self.file.close()?;
        Ok(())
    }
}

/// `schema`'s column count as parquet leaves, for tests.
#[cfg(test)]
fn leaf_count(schema: &SchemaRef) -> usize {
    parquet::arrow::ArrowSchemaConverter::new()
        .convert(schema)
        .map(|s| s.num_columns())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, Int64Array, ListArray, StringArray, StructArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    /// Nested and flat columns, nulls included, over several row groups: what comes back is what
    /// went in, in order, in the row groups ArrowWriter would make.
    #[test]
    fn a_file_written_in_parallel_reads_back_whole_and_in_order() {
        let ids = Int64Array::from_iter((0..1000).map(|i| (i % 7 != 0).then_some(i)));
        let names = StringArray::from_iter((0..1000).map(|i| Some(format!("name {i}"))));
        let lists = ListArray::from_iter_primitive::<Int64Type, _, _>(
            (0..1000).map(|i| (i % 5 != 0).then(|| vec![Some(i), None, Some(i * 2)])),
        );
        let inner = StructArray::from(vec![
            (
                Arc::new(Field::new("a", DataType::Int64, true)),
                Arc::new(Int64Array::from_iter_values(0..1000)) as ArrayRef,
            ),
            (
                Arc::new(Field::new("b", DataType::Utf8, true)),
                Arc::new(StringArray::from_iter_values(
                    (0..1000).map(|i| i.to_string()),
                )) as ArrayRef,
            ),
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("list", lists.data_type().clone(), true),
            Field::new("inner", inner.data_type().clone(), true),
        ]));
        assert_eq!(leaf_count(&schema), 5);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(ids),
                Arc::new(names),
                Arc::new(lists),
                Arc::new(inner),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(300))
            .build();
        let mut out = Vec::new();
        let mut writer = ParallelParquetWriter::try_new(&mut out, schema.clone(), props).unwrap();
        // Batches that straddle row groups.
        for start in (0..1000).step_by(170) {
            let len = 170.min(1000 - start);
            writer.write(&batch.slice(start, len)).unwrap();
        }
        writer.close().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(out)).unwrap();
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, vec![300, 300, 300, 100]);
        assert_eq!(reader.schema().as_ref(), schema.as_ref());
        let back: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let back = arrow::compute::concat_batches(&schema, &back).unwrap();
        assert_eq!(back, batch);
    }
}
