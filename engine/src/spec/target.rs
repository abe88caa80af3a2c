//! The `[target]` of a pipeline file: where the rows go and how (mode, key, batches, workers). The
//! generic keys are read here; the connector reads its own (OData's `atomic`, for one) and its
//! capabilities say which modes and keys it takes, reported at their lines.

use ferry_connectors::connector::{check_target, split_keys};
use ferry_connectors::files::FileFormat;
use ferry_connectors::files::connector::file_target;
use ferry_connectors::{TargetOptions, WriteMode};
use serde::Deserialize;
use toml::Spanned;

use super::raw::RawTarget;
use super::*;

impl Checker<'_> {
    pub(super) fn target(
        &mut self,
        mut keys: Keys<'_>,
        connections: &BTreeMap<String, Arc<dyn Connection>>,
    ) -> Option<Target> {
        let span = keys.span();
        let generic = split_keys(&mut keys, &RawTarget::KEYS);
        let raw = match RawTarget::deserialize(toml::de::Deserializer::from(generic)) {
            Ok(raw) => raw,
            Err(e) => {
                self.errors.push(toml_error(self.loc, &e));
                return None;
            }
        };
        let errors_before = self.errors.len();
        let mode = match &raw.mode {
            None => WriteMode::Insert,
            Some(m) => match m.get_ref().parse::<WriteMode>() {
                Ok(mode) => mode,
                Err(e) => {
                    let mut err = self.connector_error(m.span(), e);
                    if let Some(s) = did_you_mean(m.get_ref(), WriteMode::ALL) {
                        err = err.hint(format!("did you mean mode = \"{s}\"?"));
                    }
                    self.errors.push(err);
                    WriteMode::Insert
                }
            },
        };
        let key_span = raw.key.as_ref().map(|k| k.span());
        let key: Vec<String> = raw
            .key
            .map(|k| k.into_inner().into_vec())
            .unwrap_or_default();
        if mode.needs_key() && key.is_empty() {
            let at = raw.mode.as_ref().map(|m| m.span()).unwrap_or(span.clone());
            self.errors.push(
                self.loc
                    .error(
                        at,
                        format!("mode \"{mode}\" needs a key: the columns that identify a row"),
                    )
                    .hint("add key = [\"customer_id\"] under [target]"),
            );
        }
        if let Some(dup) = key.iter().enumerate().find(|(i, k)| key[..*i].contains(k)) {
            self.errors.push(self.loc.error(
                key_span.clone().unwrap_or(span.clone()),
                format!("key column \"{}\" is listed twice", dup.1),
            ));
        }
        let mode_at = raw.mode.as_ref().map_or(span.clone(), |m| m.span());
        let key_at = key_span.clone().unwrap_or(span.clone());
        let destination = match (raw.connection, raw.path) {
            (Some(c), None) => match (connections.get(c.get_ref()), &raw.table) {
                (Some(conn), Some(table)) => conn.target(table.get_ref(), keys, self),
                (Some(_), None) => {
                    self.errors.push(
                        self.loc
                            .error(span.clone(), "a database target needs a table")
                            .hint("table = \"order_summary\""),
                    );
                    None
                }
                (None, _) => {
                    self.unknown_connection(&c, connections, "sqlite://out/warehouse.db");
                    None
                }
            },
            (None, Some(p)) => {
                if let Some(t) = &raw.table {
                    // Silently ignored, it would hide a target that was meant to be a database.
                    self.errors.push(
                        self.loc
                            .error(t.span(), "a file target has no table: the file is the table")
                            .hint("remove table, or write connection = \"...\" instead of path to write a database table"),
                    );
                }
                let path_span = p.span();
                let format_at = raw.format.as_ref().map_or(path_span.clone(), |f| f.span());
                let path = self.interpolate_setting(p)?;
                let format = match &raw.format {
                    Some(_) => self.format(raw.format, &path, path_span),
                    None if path.ends_with('/') => Some(FileFormat::Delta),
                    None => self.format(None, &path, path_span),
                };
                let location = self.resolve_location(&path);
                format.and_then(|format| file_target(location, format, format_at, keys, self))
            }
            (Some(c), Some(_)) => {
                self.errors.push(
                    self.loc
                        .error(c.span(), "the target has both a connection and a path")
                        .hint("keep connection = \"...\" with table = \"...\" for a database, or path = \"...\" for a file"),
                );
                None
            }
            (None, None) => {
                self.errors.push(
                    self.loc
                        .error(span.clone(), "the target says neither where to write nor how")
                        .hint("connection = \"warehouse\" with table = \"order_summary\", or path = \"out/summary.parquet\""),
                );
                None
            }
        };
        if let Some(destination) = &destination {
            check_target(
                destination.connector(),
                mode,
                !key.is_empty(),
                mode_at,
                key_at,
                self,
            );
        }
        let table = raw.table.map(Spanned::into_inner).unwrap_or_default();
        // Unset, they are what the connector is fastest with (`Tuning`, measured by the sweep).
        let tuning = destination.as_ref().map(|d| d.tuning()).unwrap_or(
            ferry_connectors::connector::Tuning {
                batch_size: 1000,
                workers: 4,
            },
        );
        let batch_size =
            self.positive(raw.batch_size, "batch_size", tuning.batch_size, 1_000_000)?;
        let workers = self.positive(raw.workers, "workers", tuning.workers, 256)?;
        let destination = destination?;
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Target {
            destination,
            options: TargetOptions {
                table,
                mode,
                key,
                create: raw.create.unwrap_or(false),
            },
            batch_size,
            workers,
            span,
        })
    }

    pub(super) fn positive(
        &mut self,
        value: Option<Spanned<i64>>,
        key: &str,
        default: usize,
        max: usize,
    ) -> Option<usize> {
        self.whole_between(value, key, default, 1, max)
    }

    /// A whole number from `min` to `max` (`default` when not written); out of range, an error at
    /// its line.
    pub(super) fn whole_between(
        &mut self,
        value: Option<Spanned<i64>>,
        key: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Option<usize> {
        let Some(v) = value else {
            return Some(default);
        };
        match usize::try_from(*v.get_ref()) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.errors.push(
                    self.loc
                        .error(
                            v.span(),
                            format!("{key} must be between {min} and {max}, not {}", v.get_ref()),
                        )
                        .hint(format!("{key} = {default}")),
                );
                None
            }
        }
    }
}
