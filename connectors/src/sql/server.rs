//! A database server's connection and targets, shared by the PostgreSQL and MySQL connectors: the
//! server's keys (`user`, `password`), a target that is a table on it, and its reader.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::connector::{
    About, Capabilities, Connection, Connector, Destination, Keys, Reader, Settings, read_keys,
};
use crate::error::Result;
use crate::sink::{Sink, TargetOptions, WriteMode};
use crate::sql::db::DbConfig;
use crate::sql::source::{Server, ServerReader};

/// Every SQL database: all four modes, a transaction per batch, truncate swapped in one transaction.
pub const SQL_CAPABILITIES: Capabilities = Capabilities {
    modes: &[
        WriteMode::Insert,
        WriteMode::Upsert,
        WriteMode::Truncate,
        WriteMode::Sync,
    ],
    keyed: true,
    atomic_writes: true,
    atomic_truncate: true,
    reads: true,
    retries_rows: true,
};

/// A SQL target has no keys of its own beyond the generic ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoKeys {}

/// Makes the sink of a table on a server.
pub type MakeSink = fn(DbConfig, TargetOptions) -> Arc<dyn Sink>;

/// A database server's connector: what it is, which server it reads, and how its sinks are made.
pub struct ServerConnector {
    pub about: About,
    pub server: Server,
    pub make_sink: MakeSink,
}

impl Connector for ServerConnector {
    fn about(&self) -> &About {
        &self.about
    }

    fn connection(
        &'static self,
        url: Spanned<String>,
        keys: Keys<'_>,
        cx: &mut dyn Settings,
    ) -> Option<Arc<dyn Connection>> {
        let whose = format!("a {} connection", self.name());
        let db = DbConfig::from_keys(url, keys, &whose, cx)?;
        Some(Arc::new(ServerConnection {
            connector: self,
            db,
        }))
    }
}

/// A connection to a PostgreSQL or MySQL server: its connector (which server, how sinks are made)
/// and how to reach it.
#[derive(Debug, Clone)]
pub struct ServerConnection {
    connector: &'static ServerConnector,
    db: DbConfig,
}

impl std::fmt::Debug for ServerConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.about.name)
    }
}

impl Connection for ServerConnection {
    fn connector(&self) -> &'static dyn Connector {
        self.connector
    }

    fn target(
        &self,
        table: &str,
        keys: Keys<'_>,
        cx: &mut dyn Settings,
    ) -> Option<Arc<dyn Destination>> {
        let whose = format!("a {} target", self.connector.name());
        let own = read_keys::<crate::sql::atomic::SqlTargetKeys>(keys, &whose, cx)?;
        Some(Arc::new(ServerTable {
            connection: self.clone(),
            table: table.to_string(),
            atomic: own.atomic,
        }))
    }

    fn reader(&self) -> Option<Arc<dyn Reader>> {
        Some(Arc::new(ServerReader {
            server: self.connector.server,
            db: self.db.clone(),
        }))
    }
}

/// A table on a server, as a pipeline's target.
#[derive(Debug)]
struct ServerTable {
    connection: ServerConnection,
    table: String,
    /// `atomic = true`: each batch all or nothing.
    atomic: bool,
}

impl Destination for ServerTable {
    fn connector(&self) -> &'static dyn Connector {
        self.connection.connector
    }

    fn name(&self) -> String {
        self.table.clone()
    }

    fn sink(&self, options: TargetOptions) -> Result<Arc<dyn Sink>> {
        let connection = &self.connection;
        Ok(crate::sql::atomic::whole_batches(
            (connection.connector.make_sink)(connection.db.clone(), options),
            self.atomic,
        ))
    }

    fn reader(&self) -> Option<Arc<dyn Reader>> {
        self.connection.reader()
    }
}
