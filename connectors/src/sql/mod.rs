//! SQL databases as targets. Each database is a folder with the same few files: `connector.rs` (its
//! entry in the registry), `mod.rs` (the sink) and how Arrow values become the database's;
//! `ident.rs` (quoting), `db.rs` (URLs, TLS) and `server.rs` (a server's connection) are shared.

pub mod atomic;
pub mod check;
pub mod columns;
mod counted;
pub mod db;
pub mod declared;
pub mod ident;
pub mod mysql;
pub mod postgres;
pub mod scan;
pub mod server;
pub mod sink;
pub mod source;
pub mod sqlite;
pub mod statements;
