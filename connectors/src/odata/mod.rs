//! OData v4 services: the target that writes to Dynamics-365-like services, and the source that
//! reads their entity sets. What is OData's own is here: its keys (`config.rs`, `connector.rs`), row
//! encoding (`encode.rs`), `$metadata` (`csdl.rs`), the sink with its `$batch` bodies and sync
//! (`sink.rs`), Dataverse's bulk messages (`multiple.rs`) and the paged, partitioned reads (`read.rs`). What any REST target needs (lanes,
//! pace, tokens, multipart, refusals) is in `crate::http`. The Dataverse-like emulator it is proven
//! against is its own crate (`emulator/`, ferry-emulator).

pub mod config;
pub mod connector;
pub mod csdl;
pub mod encode;
pub mod multiple;
pub mod read;
pub mod sink;
