//! File sources registered as DataFusion tables, so that steps can query them by name.
//!
//! Parquet, CSV and JSON go through DataFusion's listing tables (streamed, projection and filters pushed
//! down, one partition per file or file range); Excel through calamine (`xlsx.rs`); Delta through
//! delta-rs's table provider.

use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};

use super::{FileFormat, declared, delta, is_url, stores, xlsx};
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
    /// CSV and Excel: declared column types (`schema = {...}`); the others are inferred.
    pub declared: Vec<(String, arrow::datatypes::DataType)>,
}

impl FileSource {
    /// A file as most are read: a header line, commas, the first sheet, every type inferred.
    pub fn new(location: impl Into<String>, format: FileFormat) -> FileSource {
        FileSource {
            location: location.into(),
            format,
            header: true,
            delimiter: b',',
            sheet: None,
            declared: Vec::new(),
        }
    }
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
            if source.declared.is_empty() {
                ctx.register_csv(name, &location, options).await?;
            } else {
                // The header and the undeclared columns' types, then every value parsed as declared.
                let inferred = ctx.read_csv(&location, options.clone()).await?;
                let schema = declared::apply(
                    inferred.schema().as_arrow(),
                    &source.declared,
                    &source.location,
                )?;
                ctx.register_csv(name, &location, options.schema(&schema))
                    .await?;
            }
        }
        FileFormat::Json => {
            let options = JsonReadOptions::default().file_extension(extension);
            ctx.register_json(name, &location, options).await?;
        }
        FileFormat::Xlsx if !source.declared.is_empty() => {
            // The cells as the sheet types them, then cast to the declared types.
            let cells = format!("__ferry_{name}_cells");
            xlsx::register(ctx, &cells, source).await?;
            let table = ctx.table(cells.as_str()).await?;
            let schema = declared::apply(
                table.schema().as_arrow(),
                &source.declared,
                &source.location,
            )?;
            let columns: Vec<datafusion::prelude::Expr> = schema
                .fields()
                .iter()
                .map(|f| {
                    datafusion::logical_expr::cast(
                        datafusion::prelude::col(datafusion::common::Column::from_name(f.name())),
                        f.data_type().clone(),
                    )
                    .alias(f.name())
                })
                .collect();
            ctx.register_table(name, table.select(columns)?.into_view())?;
        }
        FileFormat::Xlsx => xlsx::register(ctx, name, source).await?,
        FileFormat::Delta => delta::register_source(ctx, name, &source.location).await?,
    }
    Ok(())
}

/// A file a source location names, with what tells whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    pub path: String,
    pub size: u64,
    /// Last modification, microseconds since the Unix epoch.
    pub modified: i64,
}

/// The files a source location names (a file, a folder read recursively, or a glob; local or on
/// object storage), sorted.
pub async fn list_files(source: &FileSource) -> Result<Vec<ListedFile>> {
    if is_url(&source.location) {
        return list_objects(source).await;
    }
    let location = listing_location(&source.location)?;
    let mut paths: Vec<std::path::PathBuf> = if location.contains(['*', '?', '[']) {
        glob::glob(&location)
            .map_err(|e| {
                ConnectorError::fatal(format!("\"{location}\" is not a valid pattern: {e}"))
            })?
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect()
    } else if location.ends_with('/') {
        let mut found = Vec::new();
        walk(
            std::path::Path::new(&location),
            source.format.extension(),
            &mut found,
        )?;
        found
    } else {
        vec![location.into()]
    };
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p)
                .map_err(|e| ConnectorError::fatal(format!("cannot read {}: {e}", p.display())))?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_micros() as i64);
            Ok(ListedFile {
                path: p.display().to_string(),
                size: meta.len(),
                modified,
            })
        })
        .collect()
}

/// The objects an object-store location names: `.../folder/` (every object below it with the
/// format's extension), a glob (`.../2026-*.csv`, matched below the part before the first wildcard),
/// or one object. Sizes and last-modified times come from the store's listing.
async fn list_objects(source: &FileSource) -> Result<Vec<ListedFile>> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;

    let location = source.location.as_str();
    let (store, path) = stores::store_at(location)?;
    let url = url::Url::parse(location).map_err(|e| ConnectorError::fatal(e.to_string()))?;
    let root = format!("{}://{}", url.scheme(), url.authority());
    let cannot = |e: object_store::Error| {
        ConnectorError::retryable(format!("cannot list {location}: {e}"))
            .with_hint("check the URL and the cloud's environment variables (AWS_*, AZURE_STORAGE_*, GOOGLE_*)")
    };
    let listed = |meta: object_store::ObjectMeta| ListedFile {
        path: format!("{root}/{}", meta.location),
        size: meta.size,
        modified: meta.last_modified.timestamp_micros(),
    };
    let wildcard = url.path().find(['*', '?', '[']);
    let mut files: Vec<ListedFile> = if let Some(at) = wildcard {
        let pattern = glob::Pattern::new(url.path().trim_start_matches('/')).map_err(|e| {
            ConnectorError::fatal(format!("\"{location}\" is not a valid pattern: {e}"))
        })?;
        let fixed = &url.path()[..at];
        let prefix = object_store::path::Path::from(&fixed[..fixed.rfind('/').unwrap_or(0)]);
        store
            .list(Some(&prefix))
            .try_filter(|m| std::future::ready(pattern.matches(m.location.as_ref())))
            .map_ok(listed)
            .try_collect()
            .await
            .map_err(cannot)?
    } else if location.ends_with('/') {
        let extension = source.format.extension();
        store
            .list(Some(&path))
            .try_filter(|m| std::future::ready(m.location.as_ref().ends_with(extension)))
            .map_ok(listed)
            .try_collect()
            .await
            .map_err(cannot)?
    } else {
        vec![listed(store.head(&path).await.map_err(cannot)?)]
    };
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(dir: &std::path::Path, extension: &str, found: &mut Vec<std::path::PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ConnectorError::fatal(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with(['.', '_']);
        if path.is_dir() && !hidden {
            walk(&path, extension, found)?;
        } else if path.is_file() && !hidden && path.to_string_lossy().ends_with(extension) {
            found.push(path);
        }
    }
    Ok(())
}

/// Registers `source` as the table `name`, reading only `files` (an incremental run's new files).
/// With no files, the table has the source's columns and no rows.
pub async fn register_files(
    ctx: &SessionContext,
    name: &str,
    source: &FileSource,
    files: &[String],
) -> Result<()> {
    if files.is_empty() {
        let probe = SessionContext::new();
        register(&probe, "probe", source).await?;
        let schema = probe.table("probe").await?.schema().as_arrow().clone();
        let empty =
            datafusion::datasource::MemTable::try_new(std::sync::Arc::new(schema), vec![vec![]])?;
        ctx.register_table(name, std::sync::Arc::new(empty))?;
        return Ok(());
    }
    stores::register_for(ctx, &source.location)?;
    let paths: Vec<String> = files.to_vec();
    let df = match source.format {
        FileFormat::Parquet => {
            ctx.read_parquet(paths, ParquetReadOptions::default().file_extension(""))
                .await?
        }
        FileFormat::Csv => {
            let options = CsvReadOptions::new()
                .has_header(source.header)
                .delimiter(source.delimiter)
                .file_extension("");
            ctx.read_csv(paths, options).await?
        }
        FileFormat::Json => {
            ctx.read_json(paths, JsonReadOptions::default().file_extension(""))
                .await?
        }
        FileFormat::Xlsx => {
            return xlsx::register_paths(ctx, name, &paths, source.sheet.as_deref()).await;
        }
        FileFormat::Delta => {
            return Err(
                ConnectorError::fatal("a Delta table is read whole, not file by file")
                    .with_hint("drop incremental = true for Delta sources"),
            );
        }
    };
    ctx.register_table(name, df.into_view())?;
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
