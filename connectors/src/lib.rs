//! Ferry's connectors: everything that touches the outside world.
//!
//! Sources become DataFusion tables; targets implement [`sink::Sink`]. [`registry`] lists them all.

pub mod error;
pub mod failpoint;
pub mod files;
pub mod hash;
pub mod odata;
pub mod redact;
pub mod registry;
pub mod sink;
pub mod sql;

pub use error::{Cause, ConnectorError, ErrorClass, Fault};
pub use sink::{Attempt, BatchWritten, Finished, Resume, Sink, TargetOptions, WriteMode};
