//! Declared column types of CSV and Excel sources (`schema = { code = "text", amount =
//! "decimal(12,2)" }`): CSV is then parsed as declared (a code `00123` stays text, an amount is an
//! exact decimal, a value that is not one stops the read naming its line), and Excel cells are cast
//! to the declared types. Undeclared columns keep their inferred types.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{ConnectorError, Result};

/// The names a declared type may have, for errors.
pub const TYPE_NAMES: &str = "text, boolean, tinyint, smallint, int, bigint, tinyint unsigned … bigint unsigned, \
    real, double, decimal(p,s), date, time, timestamp, timestamptz";

/// A declared type's name as an Arrow type.
pub fn parse_type(name: &str) -> std::result::Result<DataType, String> {
    let lower = name.trim().to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let joined = words.join(" ");
    let base = joined.split('(').next().unwrap_or("").trim();
    let t = match base {
        "text" | "string" | "varchar" | "char" | "utf8" => DataType::Utf8,
        "boolean" | "bool" => DataType::Boolean,
        "tinyint" | "int8" => DataType::Int8,
        "smallint" | "int16" => DataType::Int16,
        "int" | "integer" | "int32" => DataType::Int32,
        "bigint" | "int64" => DataType::Int64,
        "tinyint unsigned" | "uint8" => DataType::UInt8,
        "smallint unsigned" | "uint16" => DataType::UInt16,
        "int unsigned" | "integer unsigned" | "uint32" => DataType::UInt32,
        "bigint unsigned" | "uint64" => DataType::UInt64,
        "real" | "float" | "float32" => DataType::Float32,
        "double" | "double precision" | "float64" => DataType::Float64,
        "date" => DataType::Date32,
        "time" => DataType::Time64(TimeUnit::Microsecond),
        "timestamp" | "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" | "timestamp with time zone" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        "decimal" | "numeric" => {
            let inside = joined
                .split_once('(')
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(inside, _)| inside.to_string())
                .ok_or_else(|| format!("\"{name}\": write decimal(p,s), e.g. decimal(12,2)"))?;
            let mut parts = inside.split(',').map(|p| p.trim().parse::<u8>());
            let precision = parts.next().and_then(|p| p.ok());
            let scale = parts.next().map(|s| s.ok()).unwrap_or(Some(0));
            match (precision, scale) {
                (Some(p), Some(s)) if (1..=38).contains(&p) && s <= p => {
                    DataType::Decimal128(p, s as i8)
                }
                _ => {
                    return Err(format!(
                        "\"{name}\": a decimal's precision is 1 to 38 and its scale at most the precision"
                    ));
                }
            }
        }
        _ => {
            return Err(format!(
                "\"{name}\" is not a type Ferry knows: {TYPE_NAMES}"
            ));
        }
    };
    Ok(t)
}

/// `inferred` with the declared columns' types; a declared column the file does not have is an
/// error that lists the file's columns.
pub fn apply(inferred: &Schema, declared: &[(String, DataType)], what: &str) -> Result<SchemaRef> {
    let missing: Vec<&str> = declared
        .iter()
        .filter(|(name, _)| inferred.field_with_name(name).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    if !missing.is_empty() {
        let columns: Vec<&str> = inferred
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        return Err(ConnectorError::fatal(format!(
            "the schema of {what} declares {}, which it does not have",
            missing.join(", ")
        ))
        .with_hint(format!("its columns: {}", columns.join(", "))));
    }
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(
            |f| match declared.iter().find(|(name, _)| name == f.name()) {
                Some((_, t)) => Field::new(f.name(), t.clone(), true),
                None => f.as_ref().clone(),
            },
        )
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_read_as_arrow_types() {
        assert_eq!(
            parse_type("Decimal(12, 2)").unwrap(),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(parse_type("bigint unsigned").unwrap(), DataType::UInt64);
        assert_eq!(
            parse_type("timestamptz").unwrap(),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(parse_type("TEXT").unwrap(), DataType::Utf8);
        assert!(parse_type("decimal(40,2)").unwrap_err().contains("1 to 38"));
        assert!(parse_type("money").unwrap_err().contains("decimal(p,s)"));
    }
}
