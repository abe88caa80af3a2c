//! Files in the registry: a target with `path` instead of a connection is a Delta table (a folder)
//! or a single Parquet or CSV file. Neither has keys of its own.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::FileFormat;
use crate::connector::{
    About, Capabilities, Connector, Destination, Keys, Settings, Tuning, read_keys,
};
use crate::error::Result;
use crate::sink::{Sink, TargetOptions, WriteMode};

/// A Delta table: appended to (insert) or overwritten (truncate), one commit per run.
pub struct Delta;

/// A single Parquet or CSV file, replaced whole when the run finishes.
pub struct SingleFile;

/// Files are written by one writer: batches as large as the sources' own, two workers to overlap
/// reading and encoding.
const FILE_TUNING: Tuning = Tuning {
    batch_size: 8_192,
    workers: 2,
};

static DELTA: About = About {
    name: "Delta table",
    schemes: &[],
    example: "path = \"out/orders/\"",
    capabilities: Capabilities {
        modes: &[WriteMode::Insert, WriteMode::Truncate],
        keyed: false,
        // Nothing is visible until the run's one commit.
        atomic_writes: true,
        atomic_truncate: true,
        reads: false,
        retries_rows: false,
    },
    tuning: FILE_TUNING,
};

static SINGLE_FILE: About = About {
    name: "Parquet or CSV file",
    schemes: &[],
    example: "path = \"out/summary.parquet\"",
    capabilities: Capabilities {
        modes: &[WriteMode::Truncate],
        keyed: false,
        // Written beside the file and renamed over it when the run finishes.
        atomic_writes: true,
        atomic_truncate: true,
        reads: false,
        retries_rows: false,
    },
    tuning: FILE_TUNING,
};

impl Connector for Delta {
    fn about(&self) -> &About {
        &DELTA
    }
}

impl Connector for SingleFile {
    fn about(&self) -> &About {
        &SINGLE_FILE
    }
}

/// A file target has no keys beyond the generic ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoKeys {}

/// The target `path = "..."` of `format`; `format_at` is where the format was written or implied.
pub fn file_target(
    location: String,
    format: FileFormat,
    format_at: Range<usize>,
    keys: Keys<'_>,
    cx: &mut dyn Settings,
) -> Option<Arc<dyn Destination>> {
    let connector: &'static dyn Connector = match format {
        FileFormat::Delta => &Delta,
        FileFormat::Parquet | FileFormat::Csv => &SingleFile,
        FileFormat::Json | FileFormat::Xlsx => {
            cx.error(
                format_at,
                format!("Ferry does not write {format} files"),
                Some("write parquet, csv or delta".to_string()),
            );
            return None;
        }
    };
    let whose = format!("a {} target", connector.name());
    read_keys::<NoKeys>(keys, &whose, cx)?;
    Some(Arc::new(FileTarget {
        connector,
        location,
        format,
    }))
}

/// A file or Delta table as a pipeline's target.
#[derive(Debug)]
struct FileTarget {
    connector: &'static dyn Connector,
    location: String,
    format: FileFormat,
}

impl Destination for FileTarget {
    fn connector(&self) -> &'static dyn Connector {
        self.connector
    }

    /// The file's name without its extension: `out/summary.parquet` is "summary".
    fn name(&self) -> String {
        self.location
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("target")
            .split('.')
            .next()
            .unwrap_or("target")
            .to_string()
    }

    fn sink(&self, options: TargetOptions) -> Result<Arc<dyn Sink>> {
        Ok(match self.format {
            FileFormat::Delta => Arc::new(super::delta::DeltaSink::new(
                self.location.clone(),
                options.mode,
            )),
            format => Arc::new(super::sink::FileSink::new(
                PathBuf::from(&self.location),
                format,
                options.mode,
            )),
        })
    }
}
