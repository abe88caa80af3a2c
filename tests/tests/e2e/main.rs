//! End-to-end tests: real files, real SQLite and Delta tables on disk, real pipeline files.
//! PostgreSQL and MariaDB tests use the machine's servers, each in a database of its own.

mod bookkeeping;
mod emulator;
mod files;
mod incremental;
mod odata;
mod quickstart;
mod safety;
mod sources;
mod sql_sources;
mod sql_targets;
mod sqlite_modes;
mod steps;
mod trials;
