//! Ranges of a column's values that hold every row exactly once: the first open below (and taking
//! the NULLs), the last open above, each cut `< x` on one side and `>= x` on the other, whatever the
//! column's type and however the cuts compare with its values. A partitioned database read uses
//! them for its connections; a spread run for its partitions, so that each process reads only its
//! share of a source that filters.
//!
//! ```text
//! cuts [c1, c2]:   range 0: col < c1 OR col IS NULL   range 1: col >= c1 AND col < c2   range 2: col >= c2
//! ```

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::ident;

/// The filter of range `i` of `column` cut at `cuts` (`cuts.len() + 1` ranges in all), the cuts
/// of the column's own type so that the filter reaches a database as it is.
pub fn range_filter(column: &str, i: usize, cuts: &[ScalarValue]) -> Expr {
    let lower = i
        .checked_sub(1)
        .and_then(|below| cuts.get(below))
        .map(|cut| ident(column).gt_eq(lit(cut.clone())));
    let upper = cuts.get(i).map(|cut| ident(column).lt(lit(cut.clone())));
    let filter = match (lower, upper) {
        (Some(l), Some(u)) => l.and(u),
        (Some(l), None) => l,
        (None, Some(u)) => u,
        (None, None) => lit(true),
    };
    if i == 0 {
        filter.or(ident(column).is_null())
    } else {
        filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;
    use std::sync::Arc;

    #[tokio::test]
    async fn every_value_and_null_falls_in_exactly_one_range() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let values: Vec<Option<i64>> = (-5..25).map(Some).chain([None]).collect();
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap();
        // An empty range between two equal cuts.
        let cuts: Vec<ScalarValue> = [3i64, 3, 10]
            .iter()
            .map(|c| ScalarValue::Int64(Some(*c)))
            .collect();
        let ctx = SessionContext::new();
        let mut counts = Vec::new();
        for i in 0..=cuts.len() {
            let df = ctx.read_batch(batch.clone()).unwrap();
            counts.push(
                df.filter(range_filter("k", i, &cuts))
                    .unwrap()
                    .count()
                    .await
                    .unwrap(),
            );
        }
        // -5..=2 and NULL; none; 3..=9; 10..=24.
        assert_eq!(counts, vec![9, 0, 7, 15]);
    }
}
