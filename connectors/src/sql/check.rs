//! The checks every SQL target makes of the result against its table, worded the same everywhere.

use std::fmt::Display;

use arrow::datatypes::SchemaRef;

use crate::error::ConnectorError;

/// A key column the last step does not return.
pub fn missing_key_columns(schema: &SchemaRef, key: &[String]) -> Vec<ConnectorError> {
    key.iter()
        .filter(|k| schema.column_with_name(k).is_none())
        .map(|k| {
            ConnectorError::fatal(format!(
                "key column \"{k}\" is not in the result of the last step"
            ))
            .with_hint(format!(
                "the last step returns: {}",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
        .collect()
}

/// A result column the table lacks.
pub fn missing_column(table: impl Display, column: &str, columns: &[&str]) -> ConnectorError {
    ConnectorError::fatal(format!("table {table} has no column \"{column}\"")).with_hint(format!(
        "the table's columns are: {}; rename the column in the last step or add it to the table",
        columns.join(", ")
    ))
}

/// Keyed modes match rows by the key, which needs a unique index on it. `add` is the statement that
/// creates one, in the table's dialect.
pub fn no_unique_key(
    table: impl Display,
    key: &[String],
    mode: crate::sink::WriteMode,
    add: String,
) -> ConnectorError {
    ConnectorError::fatal(format!(
        "table {table} has no primary key or unique index on ({})",
        key.join(", ")
    ))
    .with_hint(format!("mode {mode} needs one: {add}"))
}
