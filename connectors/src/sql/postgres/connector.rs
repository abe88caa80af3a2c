//! PostgreSQL in the registry: `postgres://` and `postgresql://` connections.

use std::sync::Arc;

use crate::connector::{About, Tuning};
use crate::sql::server::{SQL_CAPABILITIES, ServerConnector};
use crate::sql::sink::SqlSink;
use crate::sql::source::Server;

pub static POSTGRES: ServerConnector = ServerConnector {
    about: About {
        name: "PostgreSQL",
        schemes: &["postgres", "postgresql"],
        example: "postgres://user@host:5432/database",
        capabilities: SQL_CAPABILITIES,
        // COPY wants large batches, and four connections (the sweep's best, BENCHMARKS.md).
        tuning: Tuning {
            batch_size: 20_000,
            workers: 4,
        },
    },
    server: Server::Postgres,
    make_sink: |db, options| Arc::new(SqlSink::new(super::Postgres::new(db, options))),
};
