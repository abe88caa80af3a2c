//! SQL databases as targets. Each database is a folder with the same few files: `mod.rs` (the sink)
//! and how Arrow values become the database's; `ident.rs` (quoting) and `db.rs` (URLs, TLS) are shared.

pub mod check;
mod counted;
pub mod db;
pub mod ident;
pub mod mysql;
pub mod postgres;
pub mod source;
pub mod sqlite;
