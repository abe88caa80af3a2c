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
    #[serde(default)]
    pub connections: BTreeMap<Spanned<String>, Spanned<RawConnection>>,
    #[serde(default)]
    pub sources: BTreeMap<Spanned<String>, Spanned<RawSource>>,
    #[serde(default)]
    pub steps: Vec<Spanned<RawStep>>,
    pub target: Spanned<RawTarget>,
    #[serde(default)]
    pub run: Option<Spanned<RawRun>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    pub url: Spanned<String>,
    pub user: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    /// OData: dataverse | fno | odata.
    pub kind: Option<Spanned<String>>,
    /// OData: client_credentials | bearer | none.
    pub auth: Option<Spanned<String>>,
    pub token_url: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    pub client_secret: Option<Spanned<String>>,
    pub scope: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    /// OData: plain http:// to a host other than this machine (tokens and secrets in clear text).
    pub allow_http: Option<Spanned<bool>>,
    /// More application users: their limits add up.
    #[serde(default)]
    pub users: Vec<Spanned<RawUser>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub client_id: Spanned<String>,
    pub client_secret: Spanned<String>,
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
    /// OData: each $batch one changeset.
    pub atomic: Option<Spanned<bool>>,
    /// OData (F&O): the dataAreaId written with every record.
    pub legal_entity: Option<Spanned<String>>,
    /// OData: a fixed ceiling per user, "6000/300s".
    pub rate_limit: Option<Spanned<String>>,
    /// OData sync: the share of written records that may be missing when read back before the delete.
    pub sync_max_missing: Option<Spanned<f64>>,
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
}
