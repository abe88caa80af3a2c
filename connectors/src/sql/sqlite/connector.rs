//! SQLite in the registry: `sqlite://path/to/file.db` connections (relative to the pipeline file).

use std::path::PathBuf;
use std::sync::Arc;

use toml::Spanned;

use crate::connector::{
    About, Connection, Connector, Destination, Keys, Reader, Settings, Tuning, read_keys,
};
use crate::error::Result;
use crate::sink::{Sink, TargetOptions};
use crate::sql::server::{NoKeys, SQL_CAPABILITIES};
use crate::sql::sink::SqlSink;

pub struct SqliteConnector;

static ABOUT: About = About {
    name: "SQLite",
    schemes: &["sqlite"],
    example: "sqlite://out/warehouse.db",
    capabilities: SQL_CAPABILITIES,
    // One writer at a time: a second worker only encodes the next batch while the first commits.
    tuning: Tuning {
        batch_size: 8_192,
        workers: 2,
    },
};

impl Connector for SqliteConnector {
    fn about(&self) -> &About {
        &ABOUT
    }

    fn connection(
        &'static self,
        url: Spanned<String>,
        keys: Keys<'_>,
        cx: &mut dyn Settings,
    ) -> Option<Arc<dyn Connection>> {
        read_keys::<NoKeys>(keys, "a SQLite connection", cx)?;
        let rest = url.get_ref().split_once("://").map_or("", |(_, r)| r);
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() {
            cx.error(
                url.span(),
                "the sqlite:// URL names no file".to_string(),
                Some("write sqlite://path/to/file.db".to_string()),
            );
            return None;
        }
        Some(Arc::new(SqliteConnection {
            path: cx.base_dir().join(path),
        }))
    }
}

/// A SQLite database file.
#[derive(Debug)]
pub struct SqliteConnection {
    pub path: PathBuf,
}

impl Connection for SqliteConnection {
    fn connector(&self) -> &'static dyn Connector {
        &SqliteConnector
    }

    fn target(
        &self,
        table: &str,
        keys: Keys<'_>,
        cx: &mut dyn Settings,
    ) -> Option<Arc<dyn Destination>> {
        let own = read_keys::<crate::sql::atomic::SqlTargetKeys>(keys, "a SQLite target", cx)?;
        Some(Arc::new(SqliteTable {
            path: self.path.clone(),
            table: table.to_string(),
            atomic: own.atomic,
        }))
    }

    fn reader(&self) -> Option<Arc<dyn Reader>> {
        Some(Arc::new(super::read::SqliteReader {
            path: self.path.clone(),
        }))
    }
}

/// A table in a SQLite file, as a pipeline's target.
#[derive(Debug)]
struct SqliteTable {
    path: PathBuf,
    table: String,
    /// `atomic = true`: each batch all or nothing.
    atomic: bool,
}

impl Destination for SqliteTable {
    fn connector(&self) -> &'static dyn Connector {
        &SqliteConnector
    }

    fn name(&self) -> String {
        self.table.clone()
    }

    fn sink(&self, options: TargetOptions) -> Result<Arc<dyn Sink>> {
        Ok(crate::sql::atomic::whole_batches(
            Arc::new(SqlSink::new(super::Sqlite::new(self.path.clone(), options))),
            self.atomic,
        ))
    }

    fn reader(&self) -> Option<Arc<dyn Reader>> {
        Some(Arc::new(super::read::SqliteReader {
            path: self.path.clone(),
        }))
    }
}
