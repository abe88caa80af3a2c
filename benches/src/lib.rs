//! What `ferry-bench`'s commands and its criterion micro-benchmarks share: the generated datasets.

pub mod dashboard;
pub mod data;
