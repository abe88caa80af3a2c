//! The pipeline file exactly as the user wrote it: serde structs that refuse unknown keys and keep
//! where every value stands, so that later errors can name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub state_dir: Option<Spanned<String>>,
    /// Each read by its connector (`Connector::connection`), found by its url.
    #[serde(default)]
    pub connections: BTreeMap<Spanned<String>, Spanned<toml::Table>>,
    #[serde(default)]
    pub sources: BTreeMap<Spanned<String>, Spanned<RawSource>>,
    #[serde(default)]
    pub steps: Vec<Spanned<RawStep>>,
    /// Required here; read from the placed table (its generic keys are a [`RawTarget`], the rest
    /// belong to the target's connector).
    #[allow(dead_code)]
    pub target: Spanned<toml::Table>,
    #[serde(default)]
    pub run: Option<Spanned<RawRun>>,
    /// When `ferry schedule` runs the pipeline.
    #[serde(default)]
    pub schedule: Option<Spanned<RawSchedule>>,
    /// `${params.NAME}` values for SQL, each a default.
    #[serde(default)]
    pub params: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub cron: Option<Spanned<String>>,
    pub after: Option<Spanned<Vec<String>>>,
    pub on_failure: Option<String>,
    pub on_partial: Option<String>,
    pub timezone: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    pub max_retries: Option<Spanned<i64>>,
    pub retry_backoff: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub overlap: Option<Spanned<String>>,
    pub catch_up: Option<Spanned<String>>,
    pub validate: Option<bool>,
}

/// The generic key of a connection: the rest belong to its connector, which reads them itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrl {
    pub url: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub path: Option<Spanned<String>>,
    /// A database connection: read `table` or `query` from it.
    pub connection: Option<Spanned<String>>,
    pub table: Option<Spanned<String>>,
    pub query: Option<Spanned<String>>,
    pub partitions: Option<Spanned<i64>>,
    pub partition_column: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub header: Option<bool>,
    pub delimiter: Option<Spanned<String>>,
    pub sheet: Option<String>,
    /// CSV and Excel: declared column types, `{ code = "text", amount = "decimal(12,2)" }`.
    pub schema: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub incremental: Option<bool>,
    pub on_changed_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub sql: Spanned<String>,
    /// Run the SQL whole on this database connection instead of in DataFusion.
    pub connection: Option<Spanned<String>>,
}

/// The keys every target has; the others are its connector's (OData's `atomic`, for one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub connection: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub table: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub key: Option<Spanned<KeyList>>,
    pub create: Option<bool>,
    pub batch_size: Option<Spanned<i64>>,
    pub workers: Option<Spanned<i64>>,
}

impl RawTarget {
    /// Its keys, as the file spells them: these are read here, every other one by the connector.
    pub const KEYS: [&'static str; 9] = [
        "connection",
        "path",
        "format",
        "table",
        "mode",
        "key",
        "create",
        "batch_size",
        "workers",
    ];
}

/// `key = "id"` or `key = ["a", "b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum KeyList {
    One(String),
    Many(Vec<String>),
}

impl KeyList {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            KeyList::One(k) => vec![k],
            KeyList::Many(ks) => ks,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    pub max_retries: Option<Spanned<i64>>,
    pub max_consecutive_failures: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub validate: Option<bool>,
    /// After a completed run: "count" or "checksum" (`run::reconcile`).
    pub reconcile: Option<Spanned<String>>,
    /// `ferry worker` processes the steps are planned across (`plan::cluster`).
    pub cluster: Option<Spanned<Vec<String>>>,
}
