//! File sources registered as DataFusion tables, so that steps can query them by name.
//!
//! Parquet, CSV and JSON go through DataFusion's listing tables (streamed, projection and filters pushed
//! down, one partition per file or file range); Excel through calamine (`xlsx.rs`); Delta through
//! delta-rs's table provider.

use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};

use super::{FileFormat, delta, is_url, stores, xlsx};
use crate::error::{ConnectorError, Result};

/// A file source as the pipeline file describes it, with its location resolved.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// An absolute local path (file, directory or glob) or an object-store URL.
    pub location: String,
    pub format: FileFormat,
    /// CSV: whether the first line names the columns.
    pub header: bool,
    /// CSV: the field separator.
    pub delimiter: u8,
    /// Excel: the worksheet to read (the first one when not given).
    pub sheet: Option<String>,
}

/// Registers `source` as the table `name`.
pub async fn register(ctx: &SessionContext, name: &str, source: &FileSource) -> Result<()> {
    stores::register_for(ctx, &source.location)?;
    let location = listing_location(&source.location)?;
    // A directory is filtered by the format's extension; a file or a glob names its files itself.
    let extension = if location.ends_with('/') {
        source.format.extension()
    } else {
        ""
    };
    match source.format {
        FileFormat::Parquet => {
            let options = ParquetReadOptions::default().file_extension(extension);
            ctx.register_parquet(name, &location, options).await?;
        }
        FileFormat::Csv => {
            let options = CsvReadOptions::new()
                .has_header(source.header)
                .delimiter(source.delimiter)
                .file_extension(extension);
            ctx.register_csv(name, &location, options).await?;
        }
        FileFormat::Json => {
            let options = JsonReadOptions::default().file_extension(extension);
            ctx.register_json(name, &location, options).await?;
        }
        FileFormat::Xlsx => xlsx::register(ctx, name, source).await?,
        FileFormat::Delta => delta::register_source(ctx, name, &source.location).await?,
    }
    Ok(())
}

/// Checks that a local location names something, and marks directories with a trailing slash as
/// DataFusion expects.
fn listing_location(location: &str) -> Result<String> {
    if is_url(location) {
        return Ok(location.to_string());
    }
    if location.contains(['*', '?', '[']) {
        let mut matches = glob::glob(location).map_err(|e| {
            ConnectorError::fatal(format!("\"{location}\" is not a valid pattern: {e}"))
        })?;
        if matches.next().is_none() {
            return Err(
                ConnectorError::fatal(format!("no file matches {location}")).with_hint(
                    "check the path; relative paths are read from the pipeline file's folder",
                ),
            );
        }
        return Ok(location.to_string());
    }
    let path = std::path::Path::new(location);
    if path.is_dir() {
        Ok(format!("{}/", location.trim_end_matches('/')))
    } else if path.exists() {
        Ok(location.to_string())
    } else {
        Err(ConnectorError::fatal(format!("{location} does not exist"))
            .with_hint("check the path; relative paths are read from the pipeline file's folder"))
    }
}
