//! OData v4 services: the target that writes to Dynamics-365-like services (`sink.rs`, with its
//! token source, row encoding, throughput lanes and their pace, and multipart handling), and the
//! Dataverse-like emulator it is proven against (`emulator/`).

mod auth;
pub mod config;
pub mod csdl;
pub mod emulator;
pub mod encode;
mod lane;
pub mod multipart;
mod pace;
pub mod sink;
