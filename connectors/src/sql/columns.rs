//! A batch's columns converted once into a database's shapes (SQL literals, bindable values), so
//! that rows are then written one by one without converting again.

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// Each column of a batch converted by a dialect, and how many rows there are.
pub struct Columns<C> {
    pub columns: Vec<C>,
    rows: usize,
}

impl<C> Columns<C> {
    /// Converts every column of `batch` with `each`.
    pub fn convert(
        batch: &RecordBatch,
        each: impl Fn(&Field, &ArrayRef) -> Result<C>,
    ) -> Result<Self> {
        let columns = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| each(field, column))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            columns,
            rows: batch.num_rows(),
        })
    }

    pub fn num_rows(&self) -> usize {
        self.rows
    }
}
