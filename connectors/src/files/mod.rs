//! Files as sources and targets: parquet, CSV, newline-delimited JSON, Excel and Delta tables, on local
//! disk or in an object store (s3://, az://, gs://).
//!
//! Sources become DataFusion tables (`source.rs`, `xlsx.rs`); targets are sinks that become visible only
//! when the run finishes (`sink.rs` for single files, `delta.rs` for Delta tables).

pub mod connector;
pub mod declared;
pub mod delta;
pub mod parquet_writer;
pub mod sink;
pub mod source;
pub mod stores;
pub mod xlsx;

use std::fmt;
use std::str::FromStr;

use crate::error::ConnectorError;

/// The formats Ferry reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    Csv,
    Json,
    Xlsx,
    Delta,
}

impl FileFormat {
    pub const ALL: [&'static str; 5] = ["parquet", "csv", "json", "xlsx", "delta"];

    /// The format a path's extension implies: `orders.parquet`, `data/*.csv`, `book.xlsx`.
    pub fn from_extension(path: &str) -> Option<Self> {
        let last = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let ext = last.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Some(Self::Parquet),
            "csv" | "tsv" | "txt" => Some(Self::Csv),
            "json" | "jsonl" | "ndjson" => Some(Self::Json),
            "xlsx" | "xlsm" | "xls" => Some(Self::Xlsx),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Xlsx => "xlsx",
            Self::Delta => "delta",
        }
    }

    /// The extension DataFusion filters a directory's files by.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => ".parquet",
            Self::Csv => ".csv",
            Self::Json => ".json",
            Self::Xlsx => ".xlsx",
            Self::Delta => "",
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FileFormat {
    type Err = ConnectorError;

    fn from_str(s: &str) -> Result<Self, ConnectorError> {
        match s {
            "parquet" => Ok(Self::Parquet),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            "xlsx" => Ok(Self::Xlsx),
            "delta" => Ok(Self::Delta),
            other => Err(ConnectorError::fatal(format!("unknown format \"{other}\""))
                .with_hint(format!("write one of: {}", Self::ALL.join(", ")))),
        }
    }
}

/// Whether a location is an object-store URL rather than a local path.
pub fn is_url(location: &str) -> bool {
    location.contains("://") && !location.starts_with("file://")
}
