//! End-to-end tests: real files, real SQLite and Delta tables on disk, real pipeline files.
//! PostgreSQL and MariaDB tests use throwaway servers the tests start (`ferry_tests::servers`), or
//! the ones FERRY_TEST_PG / FERRY_TEST_MYSQL name, each test in a database of its own.

mod bookkeeping;
mod bulk;
mod capabilities;
mod cluster;
mod dropbox;
mod emulator;
mod environments;
mod files;
mod fuzz;
mod incremental;
mod matrix;
mod object_storage;
mod odata;
mod odata_source;
mod params;
mod pipelines;
mod quickstart;
mod reconcile;
mod safety;
mod schedule;
mod secrets;
mod serve;
mod servers;
mod sources;
mod spread;
mod sql_sources;
mod sql_targets;
mod sqlite_modes;
mod steps;
mod trials;
mod types;
