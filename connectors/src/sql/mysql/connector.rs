//! MySQL and MariaDB in the registry: `mysql://` and `mariadb://` connections (one driver: MariaDB
//! speaks MySQL's protocol).

use std::sync::Arc;

use crate::connector::{About, Tuning};
use crate::sql::server::{SQL_CAPABILITIES, ServerConnector};
use crate::sql::sink::SqlSink;
use crate::sql::source::Server;

pub static MYSQL: ServerConnector = ServerConnector {
    about: About {
        name: "MySQL",
        schemes: &["mysql", "mariadb"],
        example: "mysql://user@host:3306/database",
        capabilities: SQL_CAPABILITIES,
        // LOAD DATA wants large batches; past two streams the server's own work slows each.
        tuning: Tuning {
            batch_size: 20_000,
            workers: 2,
        },
    },
    server: Server::Mysql,
    make_sink: |db, options| Arc::new(SqlSink::new(super::Mysql::new(db, options))),
};
