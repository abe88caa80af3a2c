//! The `[target]` of a pipeline file: where the rows go and how (mode, key, batches, workers), with
//! each option checked against the kind of target it applies to.

use ferry_connectors::files::FileFormat;
use ferry_connectors::odata::config::{ODataOptions, ServiceKind, parse_rate};
use ferry_connectors::registry::{Endpoint, TargetLocation};
use ferry_connectors::{TargetOptions, WriteMode};
use toml::Spanned;

use super::raw::RawTarget;
use super::*;

impl Checker<'_> {
    pub(super) fn target(
        &mut self,
        raw: RawTarget,
        span: std::ops::Range<usize>,
        connections: &BTreeMap<String, Connection>,
    ) -> Option<Target> {
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
        let location = match (raw.connection, raw.path) {
            (Some(c), None) => match connections.get(c.get_ref()) {
                Some(conn) => Some(TargetLocation::Endpoint(conn.endpoint.clone())),
                None => {
                    self.unknown_connection(&c, connections, "sqlite://out/warehouse.db");
                    None
                }
            },
            (None, Some(p)) => {
                let path_span = p.span();
                let path = self.interpolate_setting(p)?;
                let format = match &raw.format {
                    Some(_) => self.format(raw.format, &path, path_span),
                    None if path.ends_with('/') => Some(FileFormat::Delta),
                    None => self.format(None, &path, path_span),
                };
                format.map(|format| TargetLocation::File {
                    location: self.resolve_location(&path),
                    format,
                })
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
        let table = match (&location, raw.table) {
            (Some(TargetLocation::Endpoint(_)), None) => {
                self.errors.push(
                    self.loc
                        .error(span.clone(), "a database target needs a table")
                        .hint("table = \"order_summary\""),
                );
                String::new()
            }
            (_, Some(t)) => t.into_inner(),
            (_, None) => String::new(),
        };
        let batch_size = self.positive(raw.batch_size, "batch_size", 1000, 1_000_000)?;
        let workers = self.positive(raw.workers, "workers", 4, 256)?;
        let rate_limit = match raw.rate_limit {
            None => None,
            Some(ref r) => match parse_rate(r.get_ref()) {
                Some(rate) => Some(rate),
                None => {
                    self.errors.push(
                        self.loc
                            .error(r.span(), format!("\"{}\" is not a rate", r.get_ref()))
                            .hint("rate_limit = \"6000/300s\" (requests per period, per application user)"),
                    );
                    return None;
                }
            },
        };
        let location = location?;
        let odata_kind = match &location {
            TargetLocation::Endpoint(Endpoint::OData(e)) => Some(e.kind),
            _ => None,
        };
        // OData's own keys on any other target would be silently ignored: say so at their line.
        let odata_only = [
            ("atomic", raw.atomic.as_ref().map(|a| a.span())),
            ("rate_limit", raw.rate_limit.as_ref().map(|r| r.span())),
            (
                "sync_max_missing",
                raw.sync_max_missing.as_ref().map(|r| r.span()),
            ),
        ];
        for (key, at) in odata_only {
            if let (Some(at), None) = (at, odata_kind) {
                self.errors.push(
                    self.loc
                        .error(at, format!("{key} applies to OData targets only"))
                        .hint(format!(
                            "remove {key}, or write to an http(s):// connection"
                        )),
                );
            }
        }
        if let Some(le) = &raw.legal_entity
            && odata_kind != Some(ServiceKind::Fno)
        {
            // Sync and truncate would read and delete across every company.
            self.errors.push(
                self.loc
                    .error(
                        le.span(),
                        "legal_entity applies to Finance & Operations connections only",
                    )
                    .hint("set kind = \"fno\" on the connection, or remove legal_entity"),
            );
        }
        let sync_max_missing = match raw.sync_max_missing {
            None => 0.0,
            Some(m) if (0.0..=1.0).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => {
                self.errors.push(
                    self.loc
                        .error(
                            m.span(),
                            format!(
                                "sync_max_missing must be between 0 and 1, not {}",
                                m.get_ref()
                            ),
                        )
                        .hint("sync_max_missing = 0.01 lets 1% of the written records be missing"),
                );
                0.0
            }
        };
        let odata = ODataOptions {
            atomic: raw.atomic.is_some_and(|a| *a.get_ref()),
            legal_entity: raw.legal_entity.map(Spanned::into_inner),
            rate_limit,
            sync_max_missing,
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Target {
            location,
            options: TargetOptions {
                table,
                mode,
                key,
                create: raw.create.unwrap_or(false),
                odata,
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
        let Some(v) = value else {
            return Some(default);
        };
        match usize::try_from(*v.get_ref()) {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                self.errors.push(
                    self.loc
                        .error(
                            v.span(),
                            format!("{key} must be between 1 and {max}, not {}", v.get_ref()),
                        )
                        .hint(format!("{key} = {default}")),
                );
                None
            }
        }
    }
}
