//! OData v4 services: the target that writes to Dynamics-365-like services. What is OData's own is
//! here: its keys (`config.rs`, `connector.rs`), row encoding (`encode.rs`), `$metadata` (`csdl.rs`)
//! and the sink with its `$batch` bodies and sync (`sink.rs`). What any REST target needs (lanes,
//! pace, tokens, multipart, refusals) is in `crate::http`. The Dataverse-like emulator it is proven
//! against is its own crate (`emulator/`, ferry-emulator).

pub mod config;
pub mod connector;
pub mod csdl;
pub mod encode;
pub mod sink;
