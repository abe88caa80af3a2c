//! The contract between the engine and a connector. A connector reads its own keys of the pipeline
//! file (each refused at its line when it does not know it), says what its targets can do, and makes
//! the sinks and readers the engine drives. The engine never asks which connector it holds: it asks
//! the connector. [`crate::registry`] lists them all.
//!
//! ```text
//!   [connections.crm]  url = "https://..."   Connector (by the url's scheme) .connection(keys) -> Connection
//!   [target] connection = "crm", table = ..  Connection.target(table, keys)                  -> Destination
//!   [target] path = "out/x.parquet"          registry::file_target(path, format, keys)        -> Destination
//!   run / retry / dry run                    Destination.sink(options), Destination.reader()
//!   [sources.x] connection = .., steps       Connection.reader().register(ctx, name, read)
//! ```

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::DeTable;

use crate::error::{ConnectorError, Result};
use crate::secret::Secret;
use crate::sink::{Sink, TargetOptions, WriteMode};

/// A table of the pipeline file, every key and value with its place in the file.
pub type Keys<'a> = Spanned<DeTable<'a>>;

/// What a connector's targets can do. The pipeline checker reads it, so a mode or key a target
/// cannot take is an error at its line before anything runs, not a failure of the sink's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The write modes its targets take.
    pub modes: &'static [WriteMode],
    /// A target may have a key: rows are matched by it (upsert, sync, and insert skipping existing keys).
    pub keyed: bool,
    /// Every write lands whole or not at all (a transaction per batch). A service answering each
    /// record on its own is not, unless the target asks for it (`atomic = true` on OData).
    pub atomic_writes: bool,
    /// Truncate fills a staged copy and swaps it in one transaction: readers see the old rows or the
    /// new ones. When false, truncate empties the target before the load (nothing to swap).
    pub atomic_truncate: bool,
    /// It can be read: `[sources]` with this connection, steps run whole on it, `--dry-run`.
    pub reads: bool,
    /// Rows from quarantine can be written again on their own (`ferry quarantine retry`); false for
    /// targets that are rewritten whole.
    pub retries_rows: bool,
}

/// What a connector is, for people and for the checker.
#[derive(Debug, Clone, Copy)]
pub struct About {
    /// For people: "PostgreSQL", "OData".
    pub name: &'static str,
    /// The URL schemes of its connections (`postgres`, `postgresql`); files have none.
    pub schemes: &'static [&'static str],
    /// A connection URL (or target path) to show in hints: `postgres://user@host:5432/database`.
    pub example: &'static str,
    pub capabilities: Capabilities,
    /// The batch size and workers of a target that sets neither.
    pub tuning: Tuning,
}

/// How a target is written when the pipeline does not say: the batch size and workers that
/// `ferry-bench sweep` found fastest for the connector (BENCHMARKS.md, "Fast by default").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    pub batch_size: usize,
    pub workers: usize,
}

/// A kind of database, service or file Ferry reads or writes.
pub trait Connector: Send + Sync + 'static {
    fn about(&self) -> &About;

    /// Reads a `[connections.NAME]` table: the url (already checked to be this connector's) and the
    /// other keys, which the connector parses with `deny_unknown_fields` (see [`read_keys`]).
    /// Problems go to `cx` at their lines; `None` when there was one. Connectors without connections
    /// (files, written with `path =`) keep the default, which the registry never calls.
    fn connection(
        &'static self,
        url: Spanned<String>,
        keys: Keys<'_>,
        cx: &mut dyn Settings,
    ) -> Option<Arc<dyn Connection>> {
        let _ = (keys, cx);
        unreachable!(
            "{} has no url scheme, so no connection: {url:?}",
            self.name()
        )
    }

    fn name(&self) -> &'static str {
        self.about().name
    }

    fn schemes(&self) -> &'static [&'static str] {
        self.about().schemes
    }

    fn example(&self) -> &'static str {
        self.about().example
    }

    fn capabilities(&self) -> Capabilities {
        self.about().capabilities
    }
}

impl fmt::Debug for dyn Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A configured connection of a pipeline.
pub trait Connection: fmt::Debug + Send + Sync {
    fn connector(&self) -> &'static dyn Connector;

    /// The `[target]` that writes `table` on this connection; `keys` are the target's keys the engine
    /// does not know (this connector's own, such as OData's `atomic`), to be read with [`read_keys`].
    fn target(
        &self,
        table: &str,
        keys: Keys<'_>,
        cx: &mut dyn Settings,
    ) -> Option<Arc<dyn Destination>>;

    /// How to read this connection (sources, steps run whole on it, dry runs); `None` when it
    /// cannot be read (`capabilities().reads` is false).
    fn reader(&self) -> Option<Arc<dyn Reader>> {
        None
    }
}

/// Where a pipeline's rows go: makes the sink of each run (or quarantine retry).
pub trait Destination: fmt::Debug + Send + Sync {
    fn connector(&self) -> &'static dyn Connector;

    /// What the log and `quarantine/<name>` call the target: the table, or the file's name.
    fn name(&self) -> String;

    /// The sink for one run with these options (a retry writes with other modes than the run).
    fn sink(&self, options: TargetOptions) -> Result<Arc<dyn Sink>>;

    /// Reads what the target holds now (for `--dry-run`), when it can be read.
    fn reader(&self) -> Option<Arc<dyn Reader>> {
        None
    }

    /// The batch size and workers this target gets when the pipeline sets neither: its
    /// connector's, unless the target writes another way (Dataverse's bulk messages).
    fn tuning(&self) -> Tuning {
        self.connector().about().tuning
    }
}

/// What to read from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A table, `schema.table` or `table`; optionally in N ranges of a column, read in parallel.
    Table {
        name: String,
        partitions: Option<(usize, String)>,
    },
    /// A query run whole on the database, streamed back.
    Query(String),
}

/// Makes a connection's tables and queries DataFusion tables.
#[async_trait]
pub trait Reader: fmt::Debug + Send + Sync {
    /// Registers `read` in `ctx` under `name`.
    async fn register(&self, ctx: &SessionContext, name: &str, read: &Read) -> Result<()>;

    /// `text` as a string literal of this database's SQL (a parameter filled into a query): quotes
    /// doubled, so that no value can end the literal.
    fn string_literal(&self, text: &str) -> String {
        crate::sql::ident::string_literal_ansi(text)
    }
}

/// What a connector may ask of the pipeline checker while it reads its keys: values with `${VAR}`
/// replaced by the rules for credentials and for settings, the pipeline's folder, and where to
/// report a problem so that it names the line.
pub trait Settings {
    /// A credential (user, password, token, client id and secret): `${VAR}` from any variable.
    fn credential(&mut self, value: Spanned<String>) -> Option<String>;

    /// A credential that must never be printed (password, token, client secret).
    fn secret(&mut self, value: Spanned<String>) -> Option<Secret> {
        self.credential(value).map(Secret::new)
    }

    /// A setting that is not a credential (a URL, a path, a scope): `${VAR}` only from `FERRY_*`.
    fn setting(&mut self, value: Spanned<String>) -> Option<String>;

    /// The pipeline file's folder: relative paths in keys are taken from it.
    fn base_dir(&self) -> &Path;

    /// A problem at `span` of the pipeline file.
    fn error(&mut self, span: Range<usize>, message: String, hint: Option<String>);

    /// A table whose keys could not be read as `whose` takes them (an unknown key, a wrong type).
    fn invalid_keys(&mut self, error: toml::de::Error, whose: &str);
}

/// Reads a table of keys into a connector's own struct, which says `#[serde(deny_unknown_fields)]`:
/// a key of another connector (`client_id` on PostgreSQL) is an error at its line, never ignored.
/// `whose` names the table for people: "a PostgreSQL connection".
pub fn read_keys<T: DeserializeOwned>(
    mut keys: Keys<'_>,
    whose: &str,
    cx: &mut dyn Settings,
) -> Option<T> {
    // serde stops at the first unknown key: take it out and read again, so that every one is
    // reported at once.
    let mut failed = false;
    loop {
        match T::deserialize(toml::de::Deserializer::from(keys.clone())) {
            Ok(t) => return (!failed).then_some(t),
            Err(e) => {
                let unknown = UnknownKey::of(&e).map(|u| u.key.to_string());
                cx.invalid_keys(e, whose);
                failed = true;
                let key = unknown.and_then(|word| {
                    keys.get_ref()
                        .keys()
                        .find(|k| k.get_ref().as_ref() == word)
                        .cloned()
                });
                match key {
                    Some(key) => {
                        keys.get_mut().remove(&key);
                    }
                    None => return None,
                }
            }
        }
    }
}

/// A key serde refused with `deny_unknown_fields`, read from its message ("unknown field `pth`,
/// expected one of `path`, `format`" or "..., there are no fields"): the one place that reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownKey<'a> {
    pub key: &'a str,
    /// The keys the table takes; empty when it takes none.
    pub expected: Vec<&'a str>,
}

impl<'a> UnknownKey<'a> {
    pub fn parse(message: &'a str) -> Option<Self> {
        let rest = message.strip_prefix("unknown field `")?;
        Some(Self {
            key: rest.split('`').next()?,
            expected: rest.split('`').skip(2).step_by(2).collect(),
        })
    }

    pub fn of(error: &'a toml::de::Error) -> Option<Self> {
        Self::parse(error.message().trim())
    }
}

/// Takes the keys `names` out of `keys`, for a generic layer that reads them before the connector
/// reads the rest.
pub fn split_keys<'a>(keys: &mut Keys<'a>, names: &[&str]) -> Keys<'a> {
    let span = keys.span();
    let mut taken = DeTable::new();
    let mine: Vec<_> = keys
        .get_ref()
        .keys()
        .filter(|k| names.contains(&k.get_ref().as_ref()))
        .cloned()
        .collect();
    for key in mine {
        if let Some(value) = keys.get_mut().remove(&key) {
            taken.insert(key, value);
        }
    }
    Spanned::new(span, taken)
}

/// A sink's own guard against a mode its connector does not list (the pipeline checker reports it
/// at the `mode` line first, with [`check_target`]).
pub fn mode_refused(connector: &dyn Connector, mode: WriteMode) -> Option<ConnectorError> {
    let modes = connector.capabilities().modes;
    (!modes.contains(&mode)).then(|| {
        ConnectorError::fatal(unsupported_mode(connector, mode))
            .with_hint("change the mode, or write to a database or service that takes it")
    })
}

fn unsupported_mode(connector: &dyn Connector, mode: WriteMode) -> String {
    let modes: Vec<String> = connector
        .capabilities()
        .modes
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect();
    format!(
        "{} target takes mode {}, not \"{mode}\"",
        article(connector.name()),
        modes.join(" or ")
    )
}

/// Checks that a target's mode and key suit its connector; each problem is reported at `mode_at`
/// or `key_at`.
pub fn check_target(
    connector: &dyn Connector,
    mode: WriteMode,
    keyed: bool,
    mode_at: Range<usize>,
    key_at: Range<usize>,
    cx: &mut dyn Settings,
) {
    let can = connector.capabilities();
    if !can.modes.contains(&mode) {
        cx.error(
            mode_at,
            unsupported_mode(connector, mode),
            Some(
                "change the mode, or write to a database or service that takes it (`ferry connectors` lists what each can do)"
                    .to_string(),
            ),
        );
    } else if keyed && !can.keyed {
        cx.error(
            key_at,
            format!(
                "{} target has no keys: rows are not matched to existing ones",
                article(connector.name())
            ),
            Some("remove key, or write to a database for keyed modes".to_string()),
        );
    }
}

/// "a PostgreSQL", "an OData service".
pub fn article(name: &str) -> String {
    let vowel = name
        .chars()
        .next()
        .is_some_and(|c| "AEIOUaeiou".contains(c));
    if name.starts_with("a ") || name.starts_with("an ") {
        name.to_string()
    } else if vowel {
        format!("an {name}")
    } else {
        format!("a {name}")
    }
}
