//! End-to-end tests: real files, real SQLite and Delta tables on disk, real pipeline files.
//! (PostgreSQL, MariaDB and the OData emulator join as their connectors land.)

mod bookkeeping;
mod emulator;
mod files;
mod incremental;
mod odata;
mod quickstart;
mod sources;
mod sqlite_modes;
mod steps;
