//! Ferry's connectors: everything that touches the outside world.
//!
//! Each connector implements [`connector::Connector`]: it reads its own keys of the pipeline file,
//! says what it can do, and makes sinks ([`sink::Sink`]) and readers (DataFusion tables).
//! [`registry`] lists them all.

pub mod connector;
pub mod error;
pub mod failpoint;
pub mod files;
pub mod hash;
pub mod http;
pub mod odata;
pub mod ranges;
pub mod redact;
pub mod registry;
pub mod secret;
pub mod sink;
pub mod sql;

pub use connector::{Capabilities, Connection, Connector, Destination, Read, Reader};
pub use error::{Cause, ConnectorError, ErrorClass, Fault};
pub use secret::Secret;
pub use sink::{Attempt, BatchWritten, Finished, Resume, Sink, TargetOptions, WriteMode};
