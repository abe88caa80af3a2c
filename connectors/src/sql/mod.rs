//! SQL databases as targets. Each database is a folder with the same few files:
//! `mod.rs` (the sink), `values.rs` (Arrow values to the database's), and shares `ident.rs`.

pub mod ident;
pub mod sqlite;
