//! PostgreSQL column types: which ones Ferry writes (and how, see `copy.rs`), and which type a new
//! table's column gets from an Arrow field.

use arrow::datatypes::{DataType, Field};

use crate::error::{ConnectorError, Result};
use crate::sql::declared::Declared;

/// The target column types binary COPY can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, char, name, citext and enums (whose binary form is their label).
    Text,
    Json,
    Jsonb,
    Bytea,
    Uuid,
    Date,
    Time,
    Timestamp,
    Timestamptz,
}

impl PgType {
    /// From `pg_type.typname` (and whether it is an enum), or `None` when Ferry cannot write it.
    pub fn from_catalog(typname: &str, is_enum: bool) -> Option<Self> {
        Some(match typname {
            "bool" => Self::Bool,
            "int2" => Self::Int2,
            "int4" => Self::Int4,
            "int8" => Self::Int8,
            "float4" => Self::Float4,
            "float8" => Self::Float8,
            "numeric" => Self::Numeric,
            "text" | "varchar" | "bpchar" | "name" | "citext" => Self::Text,
            "json" => Self::Json,
            "jsonb" => Self::Jsonb,
            "bytea" => Self::Bytea,
            "uuid" => Self::Uuid,
            "date" => Self::Date,
            "time" => Self::Time,
            "timestamp" => Self::Timestamp,
            "timestamptz" => Self::Timestamptz,
            _ if is_enum => Self::Text,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Bool => "boolean",
            Self::Int2 => "smallint",
            Self::Int4 => "integer",
            Self::Int8 => "bigint",
            Self::Float4 => "real",
            Self::Float8 => "double precision",
            Self::Numeric => "numeric",
            Self::Text => "text",
            Self::Json => "json",
            Self::Jsonb => "jsonb",
            Self::Bytea => "bytea",
            Self::Uuid => "uuid",
            Self::Date => "date",
            Self::Time => "time",
            Self::Timestamp => "timestamp",
            Self::Timestamptz => "timestamptz",
        }
    }

    /// Whether values of an Arrow type can be written to this column at all (individual values may
    /// still not fit, which is found per row).
    pub fn accepts(self, from: &DataType) -> bool {
        use DataType::*;
        let from = match from {
            Dictionary(_, v) => v.as_ref(),
            other => other,
        };
        let numeric = from.is_numeric();
        let text = matches!(from, Utf8 | LargeUtf8 | Utf8View);
        match self {
            Self::Bool => matches!(from, Boolean) || text,
            Self::Int2 | Self::Int4 | Self::Int8 | Self::Float4 | Self::Float8 | Self::Numeric => {
                numeric || text || matches!(from, Boolean)
            }
            Self::Text | Self::Json | Self::Jsonb => !matches!(from, Struct(_) | List(_) | Map(..)),
            Self::Bytea => {
                matches!(from, Binary | LargeBinary | BinaryView | FixedSizeBinary(_)) || text
            }
            Self::Uuid => matches!(from, FixedSizeBinary(16)) || text,
            Self::Date => matches!(from, Date32 | Date64 | Timestamp(..)) || text,
            Self::Time => matches!(from, Time32(_) | Time64(_)) || text,
            Self::Timestamp | Self::Timestamptz => {
                matches!(from, Timestamp(..) | Date32 | Date64) || text
            }
        }
    }
}

/// The column type `create = true` gives an Arrow field.
pub fn column_type(field: &Field) -> Result<String> {
    use DataType::*;
    let extension = field
        .metadata()
        .get("ARROW:extension:name")
        .map(String::as_str);
    let declared = Declared::of(field);
    Ok(match field.data_type() {
        // A PostgreSQL source's own declaration: uuid, json, jsonb, varchar(n), char(n).
        Utf8 | LargeUtf8 | Utf8View if declared.is_some() => declared.expect("checked").to_string(),
        Boolean => "boolean".into(),
        Int8 | Int16 | UInt8 => "smallint".into(),
        Int32 | UInt16 => "integer".into(),
        Int64 | UInt32 => "bigint".into(),
        UInt64 => "numeric(20,0)".into(),
        Float16 | Float32 => "real".into(),
        Float64 => "double precision".into(),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) if *s >= 0 => {
            format!("numeric({p},{s})")
        }
        Utf8 | LargeUtf8 | Utf8View if extension == Some("arrow.json") => "jsonb".into(),
        Utf8 | LargeUtf8 | Utf8View => "text".into(),
        FixedSizeBinary(16) if extension == Some("arrow.uuid") => "uuid".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "bytea".into(),
        Date32 | Date64 => "date".into(),
        Time32(_) | Time64(_) => "time".into(),
        Timestamp(_, None) => "timestamp".into(),
        Timestamp(_, Some(_)) => "timestamptz".into(),
        Dictionary(_, value) => {
            return column_type(&Field::new(field.name(), (**value).clone(), true));
        }
        other => {
            return Err(ConnectorError::fatal(format!(
                "column \"{}\" has type {other}, which has no PostgreSQL column type",
                field.name()
            ))
            .with_hint("cast it in a step, for example CAST(col AS VARCHAR)"));
        }
    })
}

/// How a created column's Arrow type is written: the type the catalog will report for it.
pub fn created_type(field: &Field) -> Result<PgType> {
    let ddl = column_type(field)?;
    let base = ddl.split('(').next().unwrap_or(&ddl);
    Ok(match base {
        "boolean" => PgType::Bool,
        "smallint" => PgType::Int2,
        "integer" => PgType::Int4,
        "bigint" => PgType::Int8,
        "numeric" => PgType::Numeric,
        "real" => PgType::Float4,
        "double precision" => PgType::Float8,
        "json" => PgType::Json,
        "jsonb" => PgType::Jsonb,
        "uuid" => PgType::Uuid,
        "bytea" => PgType::Bytea,
        "date" => PgType::Date,
        "time" => PgType::Time,
        "timestamp" => PgType::Timestamp,
        "timestamptz" => PgType::Timestamptz,
        _ => PgType::Text,
    })
}
