//! Ferry's engine: pipeline files (`spec`), planning on DataFusion (`plan`), the partitioned run
//! (`run`), bookkeeping in Delta tables (`book`), the scheduler (`schedule`), the dropbox
//! (`dropbox`) and the command line (`cli`). Connectors live in the `ferry-connectors` crate.

pub mod book;
pub mod cli;
pub mod dropbox;
pub mod environment;
pub mod plan;
pub mod promote;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod spec;

pub use ferry_connectors as connectors;
